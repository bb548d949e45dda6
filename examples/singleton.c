/* SPDX-License-Identifier: MIT */
/*
 * The singleton manager (pattern 2) on the native API.
 *
 * Creation goes through pthread_once, so however many threads race into manager_get() the
 * constructor runs exactly once and every caller returns only after it finished (the classic
 * unlocked "if (!instance) instance = new" check would let two threads both construct).
 * `creations` counts constructor runs so the demo can prove it. The manager itself is one
 * ga_calloc block; its own mutex guards its fields.
 */
#include "singleton.h"
#include <globalalloc.h>
#include <pthread.h>
#include <stdatomic.h>

struct manager_s {
    pthread_mutex_t lock;
    unsigned long tickets; /* handed out so far */
    int last_caller;
};

static pthread_once_t once = PTHREAD_ONCE_INIT;
static manager_t *instance;
static atomic_uint creations;

static void construct(void)
{
    manager_t *m = ga_calloc(1, sizeof *m);
    if (!m) return;
    pthread_mutex_init(&m->lock, NULL);
    m->last_caller = -1;
    atomic_fetch_add(&creations, 1);
    instance = m; /* published to other threads by pthread_once's own synchronisation */
}

manager_t *manager_get(void)
{
    pthread_once(&once, construct);
    return instance;
}

unsigned long manager_ticket(manager_t *m, int caller)
{
    pthread_mutex_lock(&m->lock);
    unsigned long t = ++m->tickets;
    m->last_caller = caller;
    pthread_mutex_unlock(&m->lock);
    return t;
}

unsigned long manager_tickets_issued(manager_t *m, int *last_caller)
{
    pthread_mutex_lock(&m->lock);
    unsigned long t = m->tickets;
    if (last_caller) *last_caller = m->last_caller;
    pthread_mutex_unlock(&m->lock);
    return t;
}

unsigned manager_creations(void)
{
    return atomic_load(&creations);
}

void manager_destroy(void)
{
    if (!instance) return;
    pthread_mutex_destroy(&instance->lock);
    ga_free(instance);
    instance = NULL;
}
