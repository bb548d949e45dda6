/* SPDX-License-Identifier: MIT */
/*
 * A thread's heap from start to exit: the pool of heap structs, the registry of live heaps
 * (ga__all_heaps, registry lock), the engine's start (secret, thread-exit key, fork handlers),
 * a thread's first allocation (ga__heap_thread_init), its exit and fork.
 *
 * Heap structs come from a pool and are never unmapped, so a stale heap pointer read by a
 * racing freer is always safe to write to. Invariant (registry lock): a heap is on
 * ga__all_heaps exactly while its thread lives (live == true); pooled heaps are on heaps.pool.
 */
#include "engine/engine_internal.h"
#include <string.h>

static struct {
    pthread_once_t once;
    pthread_key_t key;
    ga_theap_t *pool; /* recycled heap structs (registry lock) */
    uint8_t *chunk;   /* carving area for new heap structs */
    size_t chunk_left;
} heaps = {.once = PTHREAD_ONCE_INIT};

static void heap_thread_done(void *arg);

static void fork_prepare(void) { ga__registry_lock(); }
static void fork_parent(void) { ga__registry_unlock(); }
/* Only the forking thread survives in the child: the other heaps' segments are abandoned (so
 * the child adopts their memory) and their heap structs recycled. Their owners may have been
 * anywhere in a malloc when the fork happened; ga__segment_orphan_all repairs what can be
 * mid-update. */
static void fork_child(void)
{
    ga_theap_t *self = ga__tl_heap;
    ga__segment_orphan_all(self);
    ga_theap_t *h = ga__all_heaps;
    ga__all_heaps = NULL;
    while (h) {
        ga_theap_t *next = h->reg_next;
        if (h == self) {
            h->reg_prev = NULL;
            h->reg_next = ga__all_heaps;
            ga__all_heaps = h;
        } else {
            h->live = false;
            h->reg_next = heaps.pool;
            heaps.pool = h;
        }
        h = next;
    }
    ga__world_reset();
    ga__registry_unlock();
}

/* The engine starts itself, on its first allocation, and registers its own fork handlers then:
 * under LD_PRELOAD the dynamic loader and libc allocate before any constructor runs, and its
 * prepare handler must run after every other (registered first = prepared last), since the other
 * layers allocate while they hold their own locks. src/init.c documents the whole order. */
static void engine_init_once(void)
{
    ga__secret = ga__os_random();
    pthread_key_create(&heaps.key, heap_thread_done);
    pthread_atfork(fork_prepare, fork_parent, fork_child);
}

void ga__engine_init(void) { pthread_once(&heaps.once, engine_init_once); }

static ga_theap_t *heap_struct_alloc(void)
{
    GA_ASSERT_REGISTRY_HELD();
    ga_theap_t *heap = heaps.pool;
    if (heap) {
        heaps.pool = heap->reg_next;
        return heap;
    }
    size_t sz = (sizeof(ga_theap_t) + GA_CACHE_LINE - 1) & ~(size_t)(GA_CACHE_LINE - 1);
    if (heaps.chunk_left < sz) {
        size_t chunk = (size_t)64 << 10;
        heaps.chunk = ga__os_map_aligned(chunk, ga__os_page_size());
        if (heaps.chunk == NULL)
            return NULL;
        ga__count_mapped((ptrdiff_t)chunk);
        heaps.chunk_left = chunk;
    }
    heap = (ga_theap_t *)heaps.chunk;
    heaps.chunk += sz;
    heaps.chunk_left -= sz;
    return heap;
}

ga_theap_t *ga__heap_thread_init(void)
{
    ga__engine_init();
    ga__registry_lock();
    ga_theap_t *heap = heap_struct_alloc();
    if (heap == NULL) {
        ga__registry_unlock();
        return NULL;
    }
    /* `delayed` may still be written by a freer that read a stale owner: atomics only. */
    size_t after = offsetof(ga_theap_t, delayed) + sizeof heap->delayed;
    memset(heap, 0, offsetof(ga_theap_t, delayed));
    memset((uint8_t *)heap + after, 0, sizeof *heap - after);
    atomic_store(&heap->delayed, 0);
    for (size_t w = 0; w < GA_DIRECT_SLOTS; w++)
        heap->direct[w] = &ga__empty_page;
    heap->live = true;
    heap->reg_prev = NULL;
    heap->reg_next = ga__all_heaps;
    if (ga__all_heaps)
        ga__all_heaps->reg_prev = heap;
    ga__all_heaps = heap;
    ga__registry_unlock();
    ga__tl_heap = heap;
    pthread_setspecific(heaps.key, heap); /* may allocate: ga__tl_heap is already set */
    return heap;
}

/* The heap struct goes back to the pool (never unmapped: a racing freer may still write it). */
static void heap_unregister(ga_theap_t *heap)
{
    ga__registry_lock();
    if (heap->reg_prev)
        heap->reg_prev->reg_next = heap->reg_next;
    else
        ga__all_heaps = heap->reg_next;
    if (heap->reg_next)
        heap->reg_next->reg_prev = heap->reg_prev;
    heap->reg_next = heaps.pool;
    heaps.pool = heap;
    ga__registry_unlock();
}

static void heap_thread_done(void *arg)
{
    ga_theap_t *heap = arg;
    if (heap == NULL || heap == &ga__empty_heap)
        return;
    ga__tl_heap = &ga__empty_heap; /* later frees here take the cross-thread path */
    ga__world_enter(); /* not while a whole-heap check runs */
    ga__heap_detach(heap);
    heap_unregister(heap);
    ga__world_leave();
}

