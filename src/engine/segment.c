/* SPDX-License-Identifier: MIT */
/*
 * Segments: getting aligned memory from the OS, the segment map, the registry of all segments,
 * abandoned segments of exited threads, and huge blocks (with a small cache of freed ones).
 *
 * The segment map has one bit per GA_SEGMENT_SIZE of address space: set while a segment starts
 * there. It lets free() and the Win32 layer reject foreign pointers without touching them.
 * Invariants (registry lock held for changes): every mapped segment is on ga__all_segments and
 * has its map bit set; an abandoned segment has owner == NULL and is on `abandoned`; a cached
 * huge segment has pages[0].in_use == 0 and is on `huge_cache`, still mapped and registered
 * (so a second free of its block is recognised as a double free).
 */
#include "engine/engine_internal.h"
#include <string.h>

_Atomic uint64_t ga__segmap[GA_SEGMAP_WORDS];
uint64_t ga__secret;
ga_global_counters_t ga__global;
ga_segment_t *ga__all_segments;

#define HUGE_CACHE_MAX_BYTES ((size_t)128 << 20)
#define HUGE_CACHE_MAX_COUNT 16

static struct {
    ga_lock_t lock;
    ga_segment_t *_Atomic abandoned;
    ga_segment_t *huge_cache;
    size_t huge_cache_bytes, huge_cache_count;
} segs = {.lock = GA_LOCK_INIT};

void ga__registry_lock(void) { ga__lock(&segs.lock); }
void ga__registry_unlock(void) { ga__unlock(&segs.lock); }
#if GA_DEBUG >= 2
bool ga__registry_held(void) { return ga__lock_held(&segs.lock); }
#endif

void ga__count_mapped(ptrdiff_t delta)
{
    size_t now = atomic_fetch_add(&ga__global.mapped, (size_t)delta) + (size_t)delta;
    atomic_fetch_add(&ga__global.committed, (size_t)delta);
    size_t peak = atomic_load(&ga__global.peak_mapped);
    while (now > peak && !atomic_compare_exchange_weak(&ga__global.peak_mapped, &peak, now)) {
    }
}

static void segmap_set(ga_segment_t *seg, bool on)
{
    uintptr_t i = (uintptr_t)seg >> GA_SEGMENT_SHIFT;
    uint64_t bit = (uint64_t)1 << (i & 63);
    if (on)
        atomic_fetch_or_explicit(&ga__segmap[i >> 6], bit, memory_order_release);
    else
        atomic_fetch_and_explicit(&ga__segmap[i >> 6], ~bit, memory_order_release);
}

static void registry_add(ga_segment_t *seg)
{
    GA_ASSERT_REGISTRY_HELD();
    seg->all_prev = NULL;
    seg->all_next = ga__all_segments;
    if (ga__all_segments)
        ga__all_segments->all_prev = seg;
    ga__all_segments = seg;
    segmap_set(seg, true);
}

static void registry_remove(ga_segment_t *seg)
{
    GA_ASSERT_REGISTRY_HELD();
    segmap_set(seg, false);
    if (seg->all_prev)
        seg->all_prev->all_next = seg->all_next;
    else
        ga__all_segments = seg->all_next;
    if (seg->all_next)
        seg->all_next->all_prev = seg->all_prev;
}

static size_t header_size_for(uint32_t page_count)
{
    size_t h = sizeof(ga_segment_t) + page_count * sizeof(ga_page_t);
    size_t os_page = ga__os_page_size();
    return (h + os_page - 1) & ~(os_page - 1);
}

static void segment_unmap(ga_segment_t *seg)
{
    size_t size = seg->size;
    if (seg->kind != GA_SEG_HUGE) { /* decommitted bytes were already taken off `committed` */
        for (uint32_t i = 0; i < seg->page_count; i++)
            atomic_fetch_add(&ga__global.committed, seg->pages[i].decommitted);
    }
    GA_UNPOISON(seg, size); /* the address range may be mapped again later */
    ga__os_unmap(seg, size);
    ga__count_mapped(-(ptrdiff_t)size);
}

ga_segment_t *ga__segment_alloc(ga_theap_t *heap, ga_segment_kind_t kind)
{
    static const uint32_t shifts[GA_SEG_KINDS] = {GA_SMALL_PAGE_SHIFT, GA_MEDIUM_PAGE_SHIFT,
                                                   GA_LARGE_PAGE_SHIFT};
    ga_segment_t *seg = NULL;
    if (heap->cached[kind]) {
        seg = heap->cached[kind];
        heap->cached[kind] = NULL;
        return seg; /* still owned, registered and formatted for this kind */
    }
    seg = ga__os_map_aligned(GA_SEGMENT_SIZE, GA_SEGMENT_SIZE);
    if (seg == NULL)
        return NULL;
    ga__count_mapped((ptrdiff_t)GA_SEGMENT_SIZE);
    uint32_t shift = shifts[kind];
    uint32_t count = (uint32_t)(GA_SEGMENT_SIZE >> shift);
    seg->magic = GA_SEGMENT_MAGIC ^ (uintptr_t)seg;
    seg->kind = kind;
    seg->page_shift = shift;
    seg->page_count = count;
    seg->used_pages = 0;
    seg->size = GA_SEGMENT_SIZE;
    seg->header_size = header_size_for(count);
    seg->next = seg->prev = NULL;
    seg->in_free_list = 0;
    /* mmap memory is zero: every page descriptor starts not in use. FULL keeps frees of
     * pointers into unused pages off the fast path (which would trust them). */
    for (uint32_t i = 0; i < count; i++)
        atomic_store_explicit(&seg->pages[i].flags, GA_PAGE_FULL, memory_order_relaxed);
    atomic_store_explicit(&seg->owner, heap, memory_order_release);
    ga__registry_lock();
    registry_add(seg);
    ga__registry_unlock();
    GA_ASSERT_EXPENSIVE(ga__segment_is_valid(seg));
    return seg;
}

/* An empty segment leaves its heap: kept as the heap's cache (small ones) or unmapped. */
void ga__segment_release(ga_theap_t *heap, ga_segment_t *seg)
{
    GA_ASSERT(seg->used_pages == 0);
    GA_ASSERT_EXPENSIVE(ga__segment_is_valid(seg));
    if (heap && heap->live && heap->cached[seg->kind] == NULL) {
        heap->cached[seg->kind] = seg;
        return;
    }
    ga__registry_lock();
    registry_remove(seg);
    ga__registry_unlock();
    segment_unmap(seg);
}

void ga__segment_abandon(ga_segment_t *seg)
{
    GA_ASSERT_EXPENSIVE(ga__segment_is_valid(seg));
    ga__registry_lock();
    atomic_store_explicit(&seg->owner, NULL, memory_order_release);
    seg->prev = NULL;
    seg->next = segs.abandoned;
    segs.abandoned = seg;
    ga__registry_unlock();
}

/* Makes a page of a thread that no longer exists self-consistent: its free list is always
 * consistent after each store, but `used` and the queue links may be mid-update. */
static void orphan_page(ga_page_t *page)
{
    uint32_t n = 0;
    const uint8_t *lo = page->start, *hi = lo + (size_t)page->capacity * page->block_size;
    for (ga_block_t *b = page->free; b; b = ga__decode(page, b->next), n++) {
        if ((const uint8_t *)b < lo || (const uint8_t *)b >= hi || n > page->capacity) {
            page->free = NULL; /* unrepairable: leak the page's free blocks, stay safe */
            n = 0;
            break;
        }
    }
    ga__page_set_used(page, page->capacity - n);
    page->next = page->prev = NULL;
    atomic_store_explicit(&page->flags, 0, memory_order_relaxed);
    if (atomic_load(&page->xfree) & GA_XFREE_FULL)
        atomic_fetch_and(&page->xfree, ~GA_XFREE_FULL);
}

void ga__segment_orphan_all(const ga_theap_t *keep)
{
    GA_ASSERT_REGISTRY_HELD();
    for (ga_segment_t *seg = ga__all_segments; seg; seg = seg->all_next) {
        ga_theap_t *owner = atomic_load(&seg->owner);
        if (seg->kind == GA_SEG_HUGE || owner == NULL || owner == keep)
            continue;
        uint32_t in_use = 0;
        for (uint32_t i = 0; i < seg->page_count; i++) {
            if (seg->pages[i].in_use) {
                orphan_page(&seg->pages[i]);
                in_use++;
            }
        }
        seg->used_pages = in_use;
        seg->in_free_list = 0;
        seg->abandoning = 0;
        atomic_store_explicit(&seg->owner, NULL, memory_order_relaxed);
        seg->prev = NULL;
        seg->next = segs.abandoned;
        segs.abandoned = seg;
    }
}

ga_segment_t *ga__segment_adopt(ga_theap_t *heap)
{
    if (atomic_load_explicit(&segs.abandoned, memory_order_relaxed) == NULL)
        return NULL; /* a peek without the lock: a miss only delays adoption */
    ga__registry_lock();
    ga_segment_t *seg = segs.abandoned;
    if (seg) {
        segs.abandoned = seg->next;
        seg->next = seg->prev = NULL;
        seg->in_free_list = 0;
        atomic_store_explicit(&seg->owner, heap, memory_order_release);
    }
    ga__registry_unlock();
    GA_ASSERT_EXPENSIVE(seg == NULL || ga__segment_is_valid(seg));
    return seg;
}

/* ---- huge blocks ------------------------------------------------------------------------ */

static size_t huge_start_offset(size_t alignment)
{
    size_t off = header_size_for(1);
    if (alignment > off)
        off = alignment; /* the segment base is aligned to max(alignment, segment size) */
    return off;
}

/* The smallest cached segment of at least `need` bytes, else the largest smaller one (the
 * caller tries to grow it in place). Reusing a segment saves the mapping and, above all, the
 * page faults of touching fresh memory. */
static ga_segment_t *huge_cache_take(size_t need)
{
    GA_ASSERT_REGISTRY_HELD();
    ga_segment_t **best = NULL, **below = NULL;
    for (ga_segment_t **link = &segs.huge_cache; *link; link = &(*link)->next) {
        size_t sz = (*link)->size;
        if (sz >= need && (best == NULL || sz < (*best)->size))
            best = link;
        else if (sz < need && (below == NULL || sz > (*below)->size))
            below = link;
    }
    if (best == NULL)
        best = below;
    if (best == NULL)
        return NULL;
    ga_segment_t *seg = *best;
    *best = seg->next;
    segs.huge_cache_bytes -= seg->size;
    segs.huge_cache_count--;
    return seg;
}

void *ga__huge_alloc(size_t size, size_t alignment, bool zero)
{
    size_t os_page = ga__os_page_size();
    if (alignment < GA_MIN_ALIGN)
        alignment = GA_MIN_ALIGN;
    size_t off = huge_start_offset(alignment);
    if (size > ((size_t)1 << (GA_ADDRESS_BITS - 1)) - off - os_page)
        return NULL;
    size_t need = (off + size + os_page - 1) & ~(os_page - 1);
    ga_segment_t *seg = NULL;
    bool fresh = true;
    if (alignment <= header_size_for(1)) {
        ga__registry_lock();
        seg = huge_cache_take(need);
        ga__registry_unlock();
        if (seg && seg->size < need && !ga__os_try_extend(seg, seg->size, need)) {
            ga__registry_lock(); /* could not grow it: put it back */
            seg->next = segs.huge_cache;
            segs.huge_cache = seg;
            segs.huge_cache_bytes += seg->size;
            segs.huge_cache_count++;
            ga__registry_unlock();
            seg = NULL;
        } else if (seg && seg->size < need) {
            ga__count_mapped((ptrdiff_t)(need - seg->size));
            seg->size = need;
        } else if (seg && seg->size / 4 > need) { /* give back a tail we would mostly waste */
            ga__os_shrink(seg, seg->size, need);
            ga__count_mapped(-(ptrdiff_t)(seg->size - need));
            seg->size = need;
        }
        fresh = seg == NULL;
    }
    if (seg == NULL) {
        size_t align = alignment > GA_SEGMENT_SIZE ? alignment : GA_SEGMENT_SIZE;
        seg = ga__os_map_aligned(need, align);
        if (seg == NULL)
            return NULL;
        ga__count_mapped((ptrdiff_t)need);
        seg->magic = GA_SEGMENT_MAGIC ^ (uintptr_t)seg;
        seg->kind = GA_SEG_HUGE;
        seg->page_shift = GA_ADDRESS_BITS; /* every address of the segment is page 0 */
        seg->page_count = 1;
        seg->size = need;
        seg->header_size = off;
        atomic_store_explicit(&seg->owner, NULL, memory_order_relaxed);
    }
    ga_page_t *page = &seg->pages[0];
    page->start = (uint8_t *)seg + seg->header_size;
    page->block_size = (uint32_t)0; /* huge: size is seg->size - header_size */
    page->reserved = page->capacity = 1;
    page->class_idx = 0;
    page->in_use = 1;
    seg->used_pages = 1;
    ga__page_set_used(page, 1);
    atomic_store_explicit(&page->flags, 0, memory_order_relaxed);
    if (!fresh && zero)
        memset(page->start, 0, seg->size - seg->header_size);
    atomic_fetch_add(&ga__global.huge_blocks, 1);
    atomic_fetch_add(&ga__global.huge_bytes, seg->size - seg->header_size);
    if (fresh) {
        ga__registry_lock();
        registry_add(seg);
        ga__registry_unlock();
    }
    return page->start;
}

void ga__huge_free(ga_segment_t *seg, const void *p)
{
    (void)p;
    ga_page_t *page = &seg->pages[0];
    atomic_fetch_sub(&ga__global.huge_blocks, 1);
    atomic_fetch_sub(&ga__global.huge_bytes, seg->size - seg->header_size);
    ga__registry_lock();
    page->in_use = 0;
    seg->used_pages = 0;
    ga__page_set_used(page, 0);
    if (seg->header_size == header_size_for(1) && seg->size <= HUGE_CACHE_MAX_BYTES / 2) {
        /* Keep it for reuse; evict the oldest entries beyond the cache budget. */
        seg->next = segs.huge_cache;
        segs.huge_cache = seg;
        segs.huge_cache_bytes += seg->size;
        segs.huge_cache_count++;
        seg = NULL;
        while (segs.huge_cache_bytes > HUGE_CACHE_MAX_BYTES ||
               segs.huge_cache_count > HUGE_CACHE_MAX_COUNT) {
            ga_segment_t **link = &segs.huge_cache;
            while ((*link)->next)
                link = &(*link)->next;
            ga_segment_t *old = *link;
            *link = NULL;
            segs.huge_cache_bytes -= old->size;
            segs.huge_cache_count--;
            registry_remove(old);
            ga__registry_unlock();
            segment_unmap(old);
            ga__registry_lock();
        }
    } else {
        registry_remove(seg);
    }
    ga__registry_unlock();
    if (seg)
        segment_unmap(seg);
}

/* Grows or shrinks a huge block in place (the mapping may grow if the address range after it
 * is free). pre: the caller owns the block. */
bool ga__huge_try_resize(ga_segment_t *seg, size_t new_size)
{
    size_t os_page = ga__os_page_size();
    if (new_size > ((size_t)1 << (GA_ADDRESS_BITS - 1)))
        return false;
    size_t need = (seg->header_size + new_size + os_page - 1) & ~(os_page - 1);
    size_t old = seg->size;
    if (need == old)
        return true;
    if (need < old) {
        if (need < old / 2 && old - need >= GA_SEGMENT_SIZE) {
            ga__os_shrink(seg, old, need);
            ga__count_mapped(-(ptrdiff_t)(old - need));
            seg->size = need;
            atomic_fetch_sub(&ga__global.huge_bytes, old - need);
            return true;
        }
        return true; /* keep the tail: the block still fits */
    }
    /* Growing must not run into the next segment-aligned address that another segment uses;
     * mremap fails by itself when the range after the block is mapped. */
    if (!ga__os_try_extend(seg, old, need))
        return false;
    ga__count_mapped((ptrdiff_t)(need - old));
    seg->size = need;
    atomic_fetch_add(&ga__global.huge_bytes, need - old);
    return true;
}

size_t ga__huge_cache_drain(void)
{
    size_t freed = 0;
    ga__registry_lock();
    ga_segment_t *list = segs.huge_cache;
    segs.huge_cache = NULL;
    segs.huge_cache_bytes = segs.huge_cache_count = 0;
    for (ga_segment_t *seg = list; seg; seg = seg->next)
        registry_remove(seg);
    ga__registry_unlock();
    while (list) {
        ga_segment_t *next = list->next;
        freed += list->size;
        segment_unmap(list);
        list = next;
    }
    return freed;
}
