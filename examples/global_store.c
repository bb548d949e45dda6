/* SPDX-License-Identifier: MIT */
/*
 * The global data store (pattern 1) on the Win32 API.
 *
 * State: one struct `store`, guarded by store.lock. The items live in one GMEM_MOVEABLE block
 * (store.mem, NULL when the store has never held anything or was cleared) holding
 * store.capacity slots of which the first store.count are used. Invariants, with the mutex
 * held: count <= capacity; mem == NULL <=> capacity == 0; the block is unlocked between calls,
 * so the heap is free to move it when it grows -- which is exactly what moveable memory is for:
 * nobody keeps a pointer into it, everyone keeps the handle.
 */
#include "global_store.h"
#include <globalalloc.h>
#include <globalalloc/win32.h>
#include <pthread.h>
#include <string.h>

static struct {
    pthread_mutex_t lock;
    HGLOBAL mem;
    size_t count, capacity;
    unsigned next_id;
} store = {PTHREAD_MUTEX_INITIALIZER, NULL, 0, 0, 1};

/* Makes room for one more item. Caller holds store.lock. 0 or GA_ENOMEM. */
static int reserve_one(void)
{
    if (store.count < store.capacity) return 0;
    size_t cap = store.capacity ? store.capacity * 2 : 8;
    if (!store.mem) {
        store.mem = GlobalAlloc(GMEM_MOVEABLE | GMEM_ZEROINIT, cap * sizeof(store_item_t));
        if (!store.mem) return GA_ENOMEM;
    } else {
        /* The same handle comes back; only the data behind it may move. */
        if (!GlobalReAlloc(store.mem, cap * sizeof(store_item_t), GMEM_MOVEABLE | GMEM_ZEROINIT))
            return GA_ENOMEM;
    }
    store.capacity = cap;
    return 0;
}

int store_add(int owner, int value, const char *label)
{
    pthread_mutex_lock(&store.lock);
    int rc = reserve_one();
    if (rc == 0) {
        store_item_t *items = GlobalLock(store.mem);
        if (!items) {
            rc = GA_EHANDLE;
        } else {
            store_item_t *it = &items[store.count++];
            it->id = store.next_id++;
            it->owner = owner;
            it->value = value;
            strncpy(it->label, label ? label : "", sizeof it->label - 1);
            it->label[sizeof it->label - 1] = '\0';
            GlobalUnlock(store.mem);
        }
    }
    pthread_mutex_unlock(&store.lock);
    return rc;
}

size_t store_count(void)
{
    pthread_mutex_lock(&store.lock);
    size_t n = store.count;
    pthread_mutex_unlock(&store.lock);
    return n;
}

store_item_t *store_copy(size_t *count)
{
    store_item_t *copy = NULL;
    pthread_mutex_lock(&store.lock);
    *count = 0;
    if (store.count > 0) {
        /* The copy is the caller's: a plain native block, independent of the store. */
        copy = ga_malloc(store.count * sizeof *copy);
        const store_item_t *items = copy ? GlobalLock(store.mem) : NULL;
        if (items) {
            memcpy(copy, items, store.count * sizeof *copy);
            *count = store.count;
            GlobalUnlock(store.mem);
        } else {
            ga_free(copy);
            copy = NULL;
            *count = (size_t)-1;
        }
    }
    pthread_mutex_unlock(&store.lock);
    return copy;
}

void store_clear(void)
{
    pthread_mutex_lock(&store.lock);
    if (store.mem) GlobalFree(store.mem);
    store.mem = NULL;
    store.count = store.capacity = 0;
    pthread_mutex_unlock(&store.lock);
}
