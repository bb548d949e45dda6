/* SPDX-License-Identifier: MIT */
/*
 * Engine-internal declarations and the inline fast paths shared by the engine's own files
 * (size_class.c, segment.c, page.c, heap.c, thread.c, alloc.c, world.c, check.c). The layers
 * above use engine/engine.h and engine/alloc_fast.h only.
 */
#ifndef GA_ENGINE_INTERNAL_H
#define GA_ENGINE_INTERNAL_H

#include "engine/engine.h"
#include "engine/types.h"
#include "os/os.h"

/* ---- AddressSanitizer annotations ------------------------------------------------------ */
/* In ASan builds a free block is poisoned except its first 16 bytes (the free-list link, and
 * the header word the Win32 layer may inspect when validating a stale pointer), so a use after
 * free inside the block is reported by ASan even though the memory never left our heap. */
#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define GA_ASAN 1
#endif
#endif
#if !defined(GA_ASAN) && defined(__SANITIZE_ADDRESS__)
#define GA_ASAN 1
#endif
#ifdef GA_ASAN
#include <sanitizer/asan_interface.h>
#define GA_POISON_FREE(b, size)                                                                \
    ((size) > 16 ? ASAN_POISON_MEMORY_REGION((uint8_t *)(b) + 16, (size)-16) : (void)0)
#define GA_UNPOISON(b, size) ASAN_UNPOISON_MEMORY_REGION((b), (size))
#else
#define GA_POISON_FREE(b, size) ((void)0)
#define GA_UNPOISON(b, size)    ((void)0)
#endif

/* ---- size_class.c --------------------------------------------------------------------- */
extern const uint32_t ga__class_size[GA_CLASS_COUNT];
extern const uint8_t ga__direct_class[GA_DIRECT_SLOTS];

/* Size class of a request of size bytes (size <= GA_LARGE_MAX). */
GA_INLINE unsigned ga__size_class(size_t size)
{
    if (size <= 128)
        return size <= 16 ? 0 : (unsigned)((size + 15) >> 4) - 1;
    size_t w = size - 1;
    unsigned k = 63u - (unsigned)__builtin_clzll((unsigned long long)w);
    unsigned sub = (unsigned)(w >> (k - 2)) & 3u;
    return 8u + (k - 7u) * 4u + sub;
}
/* Which segment kind holds pages for class c. */
GA_INLINE ga_segment_kind_t ga__class_kind(unsigned c)
{
    uint32_t bs = ga__class_size[c];
    return bs <= GA_SMALL_MAX ? GA_SEG_SMALL : bs <= GA_MEDIUM_MAX ? GA_SEG_MEDIUM : GA_SEG_LARGE;
}

/* ---- segment.c ------------------------------------------------------------------------ */
extern _Atomic uint64_t ga__segmap[GA_SEGMAP_WORDS];
extern uint64_t ga__secret; /* random per process, set at init */

GA_INLINE ga_segment_t *ga__segment_of(const void *p)
{
    return (ga_segment_t *)((uintptr_t)p & ~(uintptr_t)GA_SEGMENT_MASK);
}
/* True when seg is the start of a live segment (never dereferences seg). */
GA_INLINE bool ga__segmap_has(const ga_segment_t *seg)
{
    uintptr_t i = (uintptr_t)seg >> GA_SEGMENT_SHIFT;
    if (GA_UNLIKELY(i >= GA_SEGMAP_WORDS * 64))
        return false;
    uint64_t w = atomic_load_explicit(&ga__segmap[i >> 6], memory_order_relaxed);
    return (w >> (i & 63)) & 1;
}
GA_INLINE ga_page_t *ga__page_of(ga_segment_t *seg, const void *p)
{
    return &seg->pages[((uintptr_t)p - (uintptr_t)seg) >> seg->page_shift];
}

/* Registry of segments and heaps, abandoned segments, huge cache: one lock, rare paths only. */
/* "pre: registry lock held", checked in GA_DEBUG >= 2 builds. */
#if GA_DEBUG >= 2
bool ga__registry_held(void);
#define GA_ASSERT_REGISTRY_HELD() GA__ASSERT(ga__registry_held())
#else
#define GA_ASSERT_REGISTRY_HELD() ((void)0)
#endif
extern ga_segment_t *ga__all_segments;

ga_segment_t *ga__segment_alloc(ga_theap_t *heap, ga_segment_kind_t kind);
void ga__segment_release(ga_theap_t *heap, ga_segment_t *seg);
/* Takes one abandoned segment for heap (owner set), or NULL. */
ga_segment_t *ga__segment_adopt(ga_theap_t *heap);
void ga__segment_abandon(ga_segment_t *seg);
/* In a child after fork (pre: registry lock held): every segment of a heap other than `keep`
 * (threads that did not survive the fork) is repaired and abandoned, so the child reuses it. */
void ga__segment_orphan_all(const ga_theap_t *keep);
void *ga__huge_alloc(size_t size, size_t alignment, bool zero);
void ga__huge_free(ga_segment_t *seg, const void *p);
bool ga__huge_try_resize(ga_segment_t *seg, size_t new_size);
size_t ga__huge_cache_drain(void);

typedef struct ga_global_counters_s {
    _Atomic size_t mapped, committed, peak_mapped;
    _Atomic size_t huge_blocks, huge_bytes;
} ga_global_counters_t;
extern ga_global_counters_t ga__global;
void ga__count_mapped(ptrdiff_t delta);

/* ---- page.c --------------------------------------------------------------------------- */
GA_INLINE ga_block_t *ga__decode(const ga_page_t *page, uintptr_t v)
{
    return (ga_block_t *)(v ^ page->key);
}
GA_INLINE uintptr_t ga__encode(const ga_page_t *page, const ga_block_t *b)
{
    return (uintptr_t)b ^ page->key;
}
GA_INLINE uint32_t ga__page_used(const ga_page_t *page)
{
    return atomic_load_explicit(&page->used, memory_order_relaxed);
}
GA_INLINE void ga__page_set_used(ga_page_t *page, uint32_t v)
{
    atomic_store_explicit(&page->used, v, memory_order_relaxed);
}
GA_INLINE size_t ga__page_area(const ga_page_t *page)
{
    return (size_t)page->reserved * page->block_size;
}
/* Exact offset / block_size for offsets below 2^22 and block sizes up to 2^19: the rounding
 * error of the reciprocal, off / 2^42 <= 2^-20, stays below 1 / block_size. */
#define GA_DIV_SHIFT 42
static_assert(GA_SEGMENT_SHIFT <= 22 && GA_LARGE_MAX <= ((size_t)1 << 19), "GA_DIV_SHIFT bound");
GA_INLINE size_t ga__page_block_index(const ga_page_t *page, size_t off)
{
    return (size_t)(((uint64_t)off * page->div_mul) >> GA_DIV_SHIFT);
}
/* The block that contains p (p may be an aligned offset into it). */
GA_INLINE ga_block_t *ga__page_block_of(const ga_page_t *page, const void *p)
{
    size_t off = (size_t)((const uint8_t *)p - page->start);
    return (ga_block_t *)(page->start + ga__page_block_index(page, off) * page->block_size);
}

void ga__page_init(ga_segment_t *seg, ga_page_t *page, unsigned cls);
/* Carves more blocks onto the free list; false when the page is fully carved. */
bool ga__page_extend(ga_page_t *page);
/* Moves blocks freed by other threads to the free list. Returns how many. */
uint32_t ga__page_collect(ga_page_t *page);
/* Returns the memory of an empty medium or large page to the OS (pre: used == 0); the page
 * stays formatted and is carved again on its next allocation. */
void ga__page_decommit(ga_segment_t *seg, ga_page_t *page);
uint8_t *ga__page_area_start(const ga_segment_t *seg, size_t idx);

/* ---- thread.c: a thread's heap from start to exit --------------------------------------- */
/* The calling thread's first allocation: a heap from the pool, registered. NULL if no memory. */
ga_theap_t *ga__heap_thread_init(void);

/* ---- heap.c --------------------------------------------------------------------------- */
/* Thread exit: detaches every page (freeing empty ones, abandoning the segments of the rest). */
void ga__heap_detach(ga_theap_t *heap);
extern GA_TLS ga_theap_t *ga__tl_heap;
extern ga_theap_t ga__empty_heap;
extern ga_page_t ga__empty_page;

void *ga__alloc_slow(ga_theap_t *heap, size_t size, bool zero);
void ga__free_slow(ga_segment_t *seg, ga_page_t *page, ga_block_t *b, void *p);
/* Local free reached used == 0 or a full page: queue bookkeeping. */
void ga__page_after_local_free(ga_theap_t *heap, ga_page_t *page);
size_t ga__heap_collect(ga_theap_t *heap, bool force);
/* Double-free check for a block whose first word looks like a free-list link. */
bool ga__block_is_free(ga_theap_t *heap, ga_page_t *page, ga_block_t *b);
extern ga_theap_t *ga__all_heaps;

/* ---- check.c ------------------------------------------------------------------------- */
/* The checker's page and segment rules as invariants that run (GA_ASSERT_EXPENSIVE, the
 * GA_DEBUG=3 build) at the engine's state changes, as mimalloc's mi_segment_is_valid. Called by
 * the owner (or under the registry lock for an ownerless segment); a broken rule is reported
 * (what, where) before the assert stops the program. */
bool ga__page_is_valid(const ga_segment_t *seg, const ga_page_t *page);
bool ga__segment_is_valid(const ga_segment_t *seg);

/* ---- alloc.c -------------------------------------------------------------------------- */
void ga__free_invalid(const void *p, int err, bool fatal);

#endif /* GA_ENGINE_INTERNAL_H */
