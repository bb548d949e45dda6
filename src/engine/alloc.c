/* SPDX-License-Identifier: MIT */
/*
 * The engine's block calls below the entry points of src/malloc.c: pointer validation (block
 * starts, aligned interiors, live pages), realloc, aligned allocation, usable sizes, ownership.
 * Nothing here knows the debug heap: the entry points choose between it and these.
 */
#include "engine/alloc_fast.h"
#include <errno.h>
#include <string.h>

void ga__free_invalid(const void *p, int err, bool fatal)
{
    if (err == GA_EDOUBLEFREE)
        ga__report(err, (uintptr_t)p, fatal, "free(%p): double free (block is already free)", p);
    else
        ga__report(err, (uintptr_t)p, fatal,
                   "free(%p): pointer was not allocated by globalalloc (or is not a block start)",
                   p);
}

void *ga__engine_fail_alloc(int err)
{
    ga__set_error(err);
    errno = ENOMEM;
    return NULL;
}

/* Usable bytes from p to the end of its block. pre: p is in a live page of seg. */
static size_t usable_in(ga_segment_t *seg, ga_page_t *page, const void *p)
{
    GA_ASSERT_INTERNAL(page->in_use);
    if (seg->kind == GA_SEG_HUGE)
        return seg->size - (size_t)((const uint8_t *)p - (const uint8_t *)seg);
    const uint8_t *b = (const uint8_t *)ga__page_block_of(page, p);
    return page->block_size - (size_t)((const uint8_t *)p - b);
}

/* ---- pointer validation -------------------------------------------------------------------- */

size_t ga__engine_block_usable(const void *p)
{
    ga_segment_t *seg = ga__segment_of(p);
    return usable_in(seg, ga__page_of(seg, p), p);
}

bool ga__is_huge_block(const void *p)
{
    ga_segment_t *seg = ga__segment_of(p);
    return ga__segmap_has(seg) && seg->kind == GA_SEG_HUGE;
}

bool ga__is_heap_memory(const void *p)
{
    ga_segment_t *seg = ga__segment_of(p);
    return ga__segmap_has(seg) && (size_t)((const uint8_t *)p - (uint8_t *)seg) < seg->size;
}

static bool is_block_start(const void *p)
{
    ga_segment_t *seg = ga__segment_of(p);
    if (p == NULL || ((uintptr_t)p & (GA_MIN_ALIGN - 1)) || !ga__segmap_has(seg))
        return false;
    ga_page_t *page = ga__page_of(seg, p);
    if (!page->in_use)
        return false;
    if (seg->kind == GA_SEG_HUGE)
        return p == page->start;
    if ((const uint8_t *)p < page->start)
        return false;
    /* `reserved`, not `capacity`: it never changes, so other threads may read it. */
    size_t off = (size_t)((const uint8_t *)p - page->start);
    size_t idx = ga__page_block_index(page, off);
    return idx * page->block_size == off && idx < page->reserved;
}

/* True when p is a pointer this heap may have handed out from page: a block start, or on a
 * page with aligned blocks, the aligned address inside a block (p = align_up(block, A) for a
 * power of two A, so p - block < A <= the largest power of two dividing p). */
static bool valid_user_ptr(const ga_segment_t *seg, const ga_page_t *page, const void *p)
{
    if (seg->kind == GA_SEG_HUGE)
        return p == page->start;
    if ((const uint8_t *)p < page->start || ((uintptr_t)p & (GA_MIN_ALIGN - 1)))
        return false;
    size_t off = (size_t)((const uint8_t *)p - page->start);
    size_t idx = ga__page_block_index(page, off);
    if (idx >= page->reserved)
        return false;
    size_t into = off - idx * page->block_size;
    if (into == 0)
        return true;
    uintptr_t pow = (uintptr_t)p & (~(uintptr_t)p + 1);
    return (atomic_load_explicit(&page->flags, memory_order_relaxed) & GA_PAGE_ALIGNED) &&
           into < pow;
}

/* ---- realloc, aligned blocks, sizes, ownership ------------------------------------------------ */

/* Validates p for realloc/usable_size; NULL (after a report when `report`) if not ours. */
static ga_page_t *live_page_of(const void *p, ga_segment_t **segp, bool report)
{
    ga_segment_t *seg = ga__segment_of(p);
    if (!ga__segmap_has(seg)) {
        if (report)
            ga__free_invalid(p, GA_ENOTOWNED, true);
        return NULL;
    }
    ga_page_t *page = ga__page_of(seg, p);
    if (!page->in_use || !valid_user_ptr(seg, page, p)) {
        if (report)
            ga__free_invalid(p, page->in_use ? GA_ENOTOWNED : GA_EDOUBLEFREE, true);
        return NULL;
    }
    *segp = seg;
    return page;
}

void *ga__engine_realloc(void *p, size_t size)
{
    if (p == NULL) {
        void *q = ga__alloc_fast(size, false);
        return q ? q : ga__engine_fail_alloc(GA_ENOMEM);
    }
    ga_segment_t *seg;
    ga_page_t *page = live_page_of(p, &seg, true);
    if (page == NULL)
        return ga__engine_fail_alloc(GA_ENOTOWNED);
    size_t usable = usable_in(seg, page, p);
    if (size <= usable && (size >= usable / 2 || usable <= 64))
        return p; /* fits without wasting more than half */
    if (seg->kind == GA_SEG_HUGE && size > GA_LARGE_MAX && p == page->start &&
        ga__huge_try_resize(seg, size))
        return p;
    void *q = ga__alloc_fast(size, false);
    if (q == NULL)
        return ga__engine_fail_alloc(GA_ENOMEM);
    memcpy(q, p, size < usable ? size : usable);
    ga__free_fast(p);
    return q;
}

void *ga__engine_aligned_alloc(size_t alignment, size_t size)
{
    if (alignment == 0 || (alignment & (alignment - 1)) != 0) {
        ga__set_error(GA_EINVAL);
        errno = EINVAL;
        return NULL;
    }
    if (alignment <= GA_MIN_ALIGN) {
        void *q = ga__alloc_fast(size, false);
        return q ? q : ga__engine_fail_alloc(GA_ENOMEM);
    }
    if (alignment > GA_MAX_ALIGN) { /* a block must start in the segment of its header */
        ga__set_error(GA_EINVAL);
        errno = ENOMEM;
        return NULL;
    }
    if (size > SIZE_MAX - alignment)
        return ga__engine_fail_alloc(GA_ENOMEM);
    size_t padded = size + alignment - GA_MIN_ALIGN;
    void *p;
    if (padded <= GA_LARGE_MAX && alignment <= GA_LARGE_MAX / 2) {
        uint8_t *b = ga__alloc_fast(padded, false);
        if (b == NULL)
            return ga__engine_fail_alloc(GA_ENOMEM);
        p = (void *)(((uintptr_t)b + alignment - 1) & ~(uintptr_t)(alignment - 1));
        if (p != b) {
            ga_page_t *page = ga__page_of(ga__segment_of(b), b);
            atomic_store_explicit(&page->flags,
                                  atomic_load_explicit(&page->flags, memory_order_relaxed) |
                                      GA_PAGE_ALIGNED,
                                  memory_order_relaxed);
        }
    } else {
        if (ga__tl_heap == &ga__empty_heap)
            ga__engine_init();
        p = ga__huge_alloc(size, alignment, false);
        if (p == NULL)
            return ga__engine_fail_alloc(GA_ENOMEM);
    }
    return p;
}

size_t ga__engine_usable(const void *p)
{
    if (p == NULL)
        return 0;
    ga_segment_t *seg;
    ga_page_t *page = live_page_of(p, &seg, false);
    return page ? usable_in(seg, page, p) : 0;
}

int ga__engine_owns(const void *p)
{
    ga_segment_t *seg;
    if (p == NULL || live_page_of(p, &seg, false) == NULL)
        return 0;
    ga_page_t *page = ga__page_of(seg, p);
    if (seg->kind != GA_SEG_HUGE && atomic_load(&seg->owner) == ga__tl_heap &&
        is_block_start(p)) {
        const ga_block_t *b = p;
        uintptr_t d = b->next ^ page->key;
        if ((d == 0 || d - (uintptr_t)page->start < ga__page_area(page)) &&
            ga__block_is_free(ga__tl_heap, page, (ga_block_t *)b))
            return 0;
    }
    return 1;
}

size_t ga__engine_collect(bool force) { return ga__heap_collect(ga__tl_heap, force); }

/* ---- for the debug heap ------------------------------------------------------------------------ */

void ga__engine_free(void *p) { ga__free_fast(p); }
bool ga__engine_resize_in_place(void *p, size_t size)
{
    ga_segment_t *seg = ga__segment_of(p);
    if (!ga__segmap_has(seg)) return false;
    ga_page_t *page = ga__page_of(seg, p);
    if (seg->kind == GA_SEG_HUGE && size > GA_LARGE_MAX && p == page->start)
        return ga__huge_try_resize(seg, size); /* grows, or shrinks when that gives memory back */
    size_t usable = usable_in(seg, page, p);
    return size <= usable && (size >= usable / 2 || usable <= 64); /* as ga_realloc */
}
bool ga__engine_is_block_start(const void *p) { return is_block_start(p); }

/* ---- walks, for the debug heap's scans (they read pages other threads change: unsanitized) -- */

/* Every carved block of every page in use (live or free). pre: registry lock held. */
GA_NO_SAN void ga__engine_each_block(ga_block_visit_t *visit, void *arg)
{
    GA_ASSERT_REGISTRY_HELD();
    for (ga_segment_t *seg = ga__all_segments; seg; seg = seg->all_next) {
        if (seg->kind == GA_SEG_HUGE) {
            ga_page_t *page = &seg->pages[0];
            if (page->in_use)
                visit(page->start, seg->size - (size_t)(page->start - (uint8_t *)seg), arg);
            continue;
        }
        for (uint32_t i = 0; i < seg->page_count; i++) {
            ga_page_t *page = &seg->pages[i];
            if (!page->in_use) continue;
            for (uint32_t k = 0; k < page->capacity; k++)
                visit(page->start + (size_t)k * page->block_size, page->block_size, arg);
        }
    }
}

/* The engine block containing addr; NULL if none. pre: registry lock held, or racy reads. */
GA_NO_SAN uint8_t *ga__engine_block_containing(uintptr_t addr, size_t *size)
{
    ga_segment_t *seg = ga__segment_of((void *)addr);
    if (!ga__segmap_has(seg)) return NULL;
    if (seg->kind == GA_SEG_HUGE) {
        ga_page_t *page = &seg->pages[0];
        if (!page->in_use || addr < (uintptr_t)page->start || addr - (uintptr_t)seg >= seg->size)
            return NULL;
        *size = seg->size - (size_t)(page->start - (uint8_t *)seg);
        return page->start;
    }
    if (addr - (uintptr_t)seg < seg->header_size) return NULL;
    ga_page_t *page = ga__page_of(seg, (void *)addr);
    if (!page->in_use || addr < (uintptr_t)page->start) return NULL;
    size_t idx = ga__page_block_index(page, addr - (uintptr_t)page->start);
    if (idx >= page->capacity) return NULL;
    *size = page->block_size;
    return page->start + idx * page->block_size;
}

void ga__engine_outside_heap(uintptr_t lo, uintptr_t hi, void (*visit)(uintptr_t, uintptr_t))
{
    for (uintptr_t a = lo; a < hi;) {
        uintptr_t seg_end = ((a >> GA_SEGMENT_SHIFT) + 1) << GA_SEGMENT_SHIFT;
        uintptr_t end = seg_end < hi ? seg_end : hi;
        if (!ga__segmap_has(ga__segment_of((void *)a))) visit(a, end);
        a = end;
    }
}
