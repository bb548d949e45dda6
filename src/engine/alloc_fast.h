/* SPDX-License-Identifier: MIT */
/*
 * The process heap's fast paths, inline, part of the engine's interface: the entry points
 * (src/malloc.c) are built on them, and the debug heap (src/debug/hooks.c) calls them directly
 * for the engine blocks under its debug blocks, so that neither pays a call per operation.
 *
 * Fast paths: an allocation of up to GA_DIRECT_MAX bytes pops the free list of
 * heap->direct[]'s page; a free of a block whose segment this thread owns, on a page with no
 * flags, pushes it back. Everything else goes to the GA_NOINLINE slow paths in heap.c. Every
 * free first checks the segment map, so a foreign pointer is reported instead of trusted.
 */
#ifndef GA_ALLOC_FAST_H
#define GA_ALLOC_FAST_H

#include "engine/engine_internal.h"
#include <string.h>

GA_INLINE void *ga__alloc_fast(size_t size, bool zero)
{
    ga_theap_t *heap = ga__tl_heap;
    if (GA_LIKELY(size <= GA_DIRECT_MAX)) {
        ga_page_t *page = heap->direct[(size + 15) >> 4];
        ga_block_t *b = page->free;
        if (GA_LIKELY(b != NULL)) {
            ga_block_t *next = ga__decode(page, b->next);
            /* GA_CHECK: a link must stay in the segment, or a write after free broke it. */
            if (GA_LIKELY(((uintptr_t)next ^ (uintptr_t)b) >> GA_SEGMENT_SHIFT == 0 ||
                          next == NULL)) {
                page->free = next;
                b->next = 0;
                GA_UNPOISON(b, page->block_size);
                ga__page_set_used(page, ga__page_used(page) + 1);
                if (zero)
                    memset(b, 0, page->block_size);
                return b;
            }
        }
    }
    return ga__alloc_slow(heap, size, zero);
}

GA_INLINE void ga__free_fast(void *p)
{
    ga_segment_t *seg = ga__segment_of(p);
    if (GA_UNLIKELY(!ga__segmap_has(seg))) {
        if (p != NULL)
            ga__free_invalid(p, GA_ENOTOWNED, true);
        return;
    }
    ga_page_t *page = ga__page_of(seg, p);
    ga_theap_t *heap = ga__tl_heap;
    ga_block_t *b = p;
    size_t off = (size_t)((uint8_t *)p - page->start);
    size_t idx = ga__page_block_index(page, off);
    /* Only an owned, unflagged page and an exact block start take the fast path. */
    if (GA_LIKELY(atomic_load_explicit(&seg->owner, memory_order_relaxed) == heap &&
                  atomic_load_explicit(&page->flags, memory_order_relaxed) == 0 &&
                  idx * page->block_size == off && idx < page->capacity)) {
        uintptr_t d = b->next ^ page->key;
        /* A first word that decodes to a link of this page suggests a double free: the slow
         * path confirms (a tail call keeps this path free of saved registers). */
        if (GA_UNLIKELY(d == 0 || d - (uintptr_t)page->start < ga__page_area(page))) {
            ga__free_slow(seg, page, b, p);
            return;
        }
        b->next = ga__encode(page, page->free);
        page->free = b;
        GA_POISON_FREE(b, page->block_size);
        uint32_t used = ga__page_used(page) - 1;
        ga__page_set_used(page, used);
        if (GA_UNLIKELY(used == 0))
            ga__page_after_local_free(heap, page);
        return;
    }
    ga__free_slow(seg, page, b, p);
}

/* ---- for the debug hooks, inline as the fast paths ---------------------------------------- */

/* The block the engine hands out after raw in raw's class (NULL if none): the debug heap
 * prefetches it. pre: raw was just allocated. */
GA_INLINE const void *ga__engine_next_free(const void *raw)
{
    return ga__page_of(ga__segment_of(raw), raw)->free;
}
/* True when w may point into the heap: a segment of ours starts at w's granule (the leak scan
 * asks this of every word it reads). */
GA_INLINE bool ga__engine_maybe_heap(uintptr_t w)
{
    return w >= 4096 && ga__segmap_has(ga__segment_of((void *)w));
}
/* True when [p - before, p] lies in one segment of the heap, so reading it cannot fault. */
GA_INLINE bool ga__engine_has_range(const void *p, size_t before)
{
    ga_segment_t *seg = ga__segment_of(p);
    return ((uintptr_t)p & GA_SEGMENT_MASK) >= before && ga__segmap_has(seg) &&
           (size_t)((const uint8_t *)p - (uint8_t *)seg) < seg->size;
}

#endif /* GA_ALLOC_FAST_H */
