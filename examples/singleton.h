/* SPDX-License-Identifier: MIT */
/*
 * Pattern 2, the singleton manager: one manager object for the whole process, created on first
 * use by whichever thread gets there first, and the same object for everybody afterwards.
 * The demo's manager hands out ticket numbers and keeps a short history of who asked.
 */
#ifndef DEMO_SINGLETON_H
#define DEMO_SINGLETON_H

#include <stddef.h>

typedef struct manager_s manager_t;

/* The one manager (created on the first call, from any thread). NULL only if out of memory. */
manager_t *manager_get(void);
/* Next ticket number (1, 2, ...), recording the caller's id. Thread-safe. */
unsigned long manager_ticket(manager_t *m, int caller);
/* How many tickets were handed out, and to whom the last one went. */
unsigned long manager_tickets_issued(manager_t *m, int *last_caller);
/* How many times the manager object has been constructed (must stay 1). */
unsigned manager_creations(void);
/* Frees the manager (at exit). A singleton is never built twice: manager_get() returns NULL
 * after this. */
void manager_destroy(void);

#endif
