/* SPDX-License-Identifier: MIT */
/*
 * Pages: formatting a page for a size class, carving blocks lazily onto its free list, and
 * taking back the blocks other threads freed.
 *
 * Free-list links inside blocks (the owner's list and the cross-thread xfree list alike) are
 * stored XORed with the page's random key, so a stray write into a free block (use after free)
 * shows up as a link that decodes outside the page, which alloc, collect and ga_heap_check
 * catch, and a block freed twice shows up as one whose first word decodes inside it. Invariant (owner view):
 *   length(free list) + used == capacity <= reserved, and every link is a block of this page.
 * Blocks are carved at most GA_EXTEND_BYTES at a time so a fresh page only touches (commits)
 * what is used.
 */
#include "engine/engine_internal.h"

#define GA_EXTEND_BYTES (16u << 10)

uint8_t *ga__page_area_start(const ga_segment_t *seg, size_t idx)
{
    uint8_t *p = (uint8_t *)seg + (idx << seg->page_shift);
    if (idx == 0)
        p += seg->header_size;
    return p;
}

void ga__page_init(ga_segment_t *seg, ga_page_t *page, unsigned cls)
{
    size_t idx = (size_t)(page - seg->pages);
    uint8_t *start = ga__page_area_start(seg, idx);
    uint8_t *end = (uint8_t *)seg + ((idx + 1) << seg->page_shift);
    page->block_size = ga__class_size[cls];
    page->class_idx = (uint8_t)cls;
    page->div_mul = ((uint64_t)1 << GA_DIV_SHIFT) / page->block_size + 1;
    page->start = start;
    page->reserved = (uint32_t)((size_t)(end - start) / page->block_size);
    GA_UNPOISON(start, (size_t)(end - start)); /* it may have served another class before */
    page->capacity = 0;
    page->free = NULL;
    page->key = (uintptr_t)(ga__secret ^ ((uintptr_t)page * 0x9E3779B97F4A7C15ull)) | 1;
    page->in_use = 1;
    page->next = page->prev = NULL;
    ga__page_set_used(page, 0);
    atomic_store_explicit(&page->flags, 0, memory_order_relaxed);
    atomic_store_explicit(&page->xfree, 0, memory_order_relaxed);
    atomic_store_explicit(&page->xfree_count, 0, memory_order_relaxed);
    GA_ASSERT_EXPENSIVE(ga__page_is_valid(seg, page));
}

void ga__page_decommit(ga_segment_t *seg, ga_page_t *page)
{
    GA_ASSERT(ga__page_used(page) == 0);
    if (seg->kind == GA_SEG_SMALL || page->capacity == 0)
        return;
    uintptr_t os = ga__os_page_size();
    uintptr_t lo = ((uintptr_t)page->start + os - 1) & ~(os - 1);
    uintptr_t hi = ((uintptr_t)page->start + (size_t)page->capacity * page->block_size) & ~(os - 1);
    if (hi > lo) {
        ga__os_decommit((void *)lo, hi - lo);
        page->decommitted += (uint32_t)(hi - lo);
        atomic_fetch_sub(&ga__global.committed, hi - lo);
    }
    page->capacity = 0; /* the free list lived in the blocks: carve again from scratch */
    page->free = NULL;
    GA_ASSERT_EXPENSIVE(ga__page_is_valid(seg, page));
}

bool ga__page_extend(ga_page_t *page)
{
    if (page->decommitted) { /* carving touches the memory again */
        atomic_fetch_add(&ga__global.committed, page->decommitted);
        page->decommitted = 0;
    }
    uint32_t avail = page->reserved - page->capacity;
    if (avail == 0)
        return false;
    uint32_t n = GA_EXTEND_BYTES / page->block_size;
    if (n == 0)
        n = 1;
    if (n > avail)
        n = avail;
    uint8_t *first = page->start + (size_t)page->capacity * page->block_size;
    size_t bs = page->block_size;
    /* Link the new blocks in address order, ending in the old free list (normally empty). */
    ga_block_t *tail_next = page->free;
    for (uint32_t i = 0; i + 1 < n; i++) {
        ga_block_t *b = (ga_block_t *)(first + i * bs);
        b->next = ga__encode(page, (ga_block_t *)(first + (i + 1) * bs));
        GA_POISON_FREE(b, bs);
    }
    GA_POISON_FREE(first + (size_t)(n - 1) * bs, bs);
    ((ga_block_t *)(first + (size_t)(n - 1) * bs))->next = ga__encode(page, tail_next);
    page->free = (ga_block_t *)first;
    page->capacity += n;
    GA_ASSERT_INTERNAL(page->capacity <= page->reserved);
    GA_ASSERT_EXPENSIVE(ga__page_is_valid(ga__segment_of(page), page));
    return true;
}

uint32_t ga__page_collect(ga_page_t *page)
{
    if ((atomic_load_explicit(&page->xfree, memory_order_relaxed) & ~GA_XFREE_FULL) == 0)
        return 0;
    uintptr_t head = atomic_exchange_explicit(&page->xfree, 0, memory_order_acquire);
    head &= ~GA_XFREE_FULL;
    uint32_t n = 0;
    ga_block_t *b = (ga_block_t *)head, *last = NULL;
    uint8_t *lo = page->start, *hi = page->start + (size_t)page->capacity * page->block_size;
    while (b) {
        if (GA_UNLIKELY((uint8_t *)b < lo || (uint8_t *)b >= hi || n >= page->capacity)) {
            ga__report(GA_ECORRUPT, (uintptr_t)b, true,
                       "cross-thread free list of page %p is broken (double free?)", (void *)page);
            if (last) /* keep what was collected; drop the broken rest */
                last->next = ga__encode(page, page->free);
            break;
        }
        ga_block_t *next = ga__decode(page, b->next);
        b->next = ga__encode(page, next ? next : page->free);
        last = b;
        n++;
        b = next;
    }
    if (last)
        page->free = (ga_block_t *)head;
    GA_ASSERT_INTERNAL(n <= ga__page_used(page));
    ga__page_set_used(page, ga__page_used(page) - n);
    atomic_fetch_sub_explicit(&page->xfree_count, n, memory_order_relaxed);
    GA_ASSERT_EXPENSIVE(ga__page_is_valid(ga__segment_of(page), page));
    return n;
}
