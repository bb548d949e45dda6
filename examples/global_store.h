/* SPDX-License-Identifier: MIT */
/*
 * Pattern 1, the global data store: one process-wide list of items that any thread may add to,
 * copy out, or clear. Its storage is a Win32 moveable block (GlobalAlloc(GMEM_MOVEABLE)), locked
 * only while the store's mutex is held and grown with GlobalReAlloc; copies handed to callers
 * are plain ga_malloc blocks.
 */
#ifndef DEMO_GLOBAL_STORE_H
#define DEMO_GLOBAL_STORE_H

#include <stddef.h>

typedef struct store_item_s {
    unsigned id;    /* 1, 2, 3... in the order items were added */
    int owner;      /* who added it (the demo puts a thread number here) */
    int value;      /* payload */
    char label[20]; /* short NUL-terminated text */
} store_item_t;

/* Adds a copy of the item (id is assigned here). 0, or a negative GA_E* code. */
int store_add(int owner, int value, const char *label);
/* Number of items right now. */
size_t store_count(void);
/* A consistent copy of all items (one ga_malloc block the caller frees with ga_free), and
 * their number in *count. NULL with *count == 0 when the store is empty; NULL with *count
 * == (size_t)-1 when out of memory. */
store_item_t *store_copy(size_t *count);
/* Removes every item and gives the storage back. */
void store_clear(void);

#endif
