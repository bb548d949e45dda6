/* SPDX-License-Identifier: MIT */
/*
 * The process heap's entry points: the malloc-style API (ga_malloc, ga_free, ...) and the raw
 * block calls of the other layers (ga__alloc, ga__free, ...). Each is the engine's fast path
 * (inline, engine/alloc_fast.h) behind one predictable branch: when the debug heap is on, the
 * entry hands over to its ga__debug_* twin with the caller's return address (the exact first
 * frame of the allocation stack). This file is what keeps the engine a leaf: the engine never
 * calls the debug heap; the debug heap calls the engine's ga__engine_* functions directly.
 *
 * The preload library compiles this file inside src/preload/preload.c, so that malloc/free can
 * be exact aliases of ga_malloc/ga_free.
 */
#include "debug/debug.h"
#include "engine/alloc_fast.h"

#define DEBUG_HOOK(call)                                                                       \
    do {                                                                                       \
        if (GA_UNLIKELY(ga__debug_enabled))                                                    \
            return call;                                                                       \
    } while (0)
#define CALLER __builtin_return_address(0)

/* ---- raw blocks for the other layers ------------------------------------------------------ */

void *ga__alloc(size_t size)
{
    DEBUG_HOOK(ga__debug_malloc(size, false, GA_DBG_RAW, CALLER));
    return ga__alloc_fast(size, false);
}
void *ga__zalloc(size_t size)
{
    DEBUG_HOOK(ga__debug_malloc(size, true, GA_DBG_RAW, CALLER));
    return ga__alloc_fast(size, true);
}
void ga__free(void *p)
{
    if (GA_UNLIKELY(ga__debug_enabled)) {
        ga__debug_free(p, CALLER);
        return;
    }
    ga__free_fast(p);
}
size_t ga__usable_size(const void *p)
{
    DEBUG_HOOK(ga__debug_usable_size(p));
    return ga__engine_block_usable(p);
}
bool ga__is_block_start(const void *p)
{
    DEBUG_HOOK(ga__debug_is_block_start(p));
    return ga__engine_is_block_start(p);
}

/* ---- the public malloc-style API ------------------------------------------------------------ */

void *ga_malloc(size_t size)
{
    DEBUG_HOOK(ga__debug_malloc(size, false, GA_DBG_MALLOC, CALLER));
    void *p = ga__alloc_fast(size, false);
    return GA_LIKELY(p != NULL) ? p : ga__engine_fail_alloc(GA_ENOMEM);
}

void *ga_calloc(size_t n, size_t size)
{
    DEBUG_HOOK(ga__debug_calloc(n, size, CALLER));
    size_t total;
    if (GA_UNLIKELY(__builtin_mul_overflow(n, size, &total)))
        return ga__engine_fail_alloc(GA_EOVERFLOW);
    void *p = ga__alloc_fast(total, true);
    return GA_LIKELY(p != NULL) ? p : ga__engine_fail_alloc(GA_ENOMEM);
}

void ga_free(void *p)
{
    if (GA_UNLIKELY(ga__debug_enabled)) {
        ga__debug_free(p, CALLER);
        return;
    }
    ga__free_fast(p);
}

void *ga_realloc(void *p, size_t size)
{
    DEBUG_HOOK(ga__debug_realloc(p, size, CALLER));
    return ga__engine_realloc(p, size);
}

void *ga_aligned_alloc(size_t alignment, size_t size)
{
    DEBUG_HOOK(ga__debug_aligned_alloc(alignment, size, CALLER));
    return ga__engine_aligned_alloc(alignment, size);
}

size_t ga_usable_size(const void *p)
{
    DEBUG_HOOK(ga__debug_usable_size(p));
    return ga__engine_usable(p);
}

int ga_owns(const void *p)
{
    DEBUG_HOOK(ga__debug_owns(p));
    return ga__engine_owns(p);
}

ga_heap_t *ga_heap_default(void)
{
    static int process_heap; /* the process heap has no state of its own: a unique address */
    return (ga_heap_t *)&process_heap;
}

size_t ga_heap_collect(ga_heap_t *heap, int force)
{
    (void)heap;
    ga__world_enter(); /* not while a whole-heap check runs */
    size_t n = ga__engine_collect(force != 0);
    ga__world_leave();
    return n;
}
