/* SPDX-License-Identifier: MIT */
/*
 * The engine halves of ga_heap_check() and ga_heap_stats() (composed with the other layers' in
 * src/check.c).
 *
 * The check walks the registry of segments under the registry lock and verifies, for each
 * segment: its magic, kind, geometry and owner; for each page in use: class and geometry,
 * counters (used <= capacity <= reserved), the whole free list (every link a block of this
 * page, no cycle, length + used == capacity) and the cross-thread list (its length matches
 * the count the statistics use). Other threads must not allocate meanwhile (their free lists
 * are read without synchronisation). The statistics walk the same pages with relaxed loads.
 */
#include "engine/engine_internal.h"
#include <string.h>

static int corrupt(unsigned flags, const void *where, const char *what)
{
    if (!(flags & GA_CHECK_QUIET))
        ga__report(GA_ECORRUPT, (uintptr_t)where, false, "heap check: %s", what);
    return GA_ECORRUPT;
}

/* Counts a free list; -1 when a link leaves the page, is misaligned, or the list cycles. */
static long count_list(const ga_page_t *page, const ga_block_t *head)
{
    const uint8_t *lo = page->start;
    const uint8_t *hi = lo + (size_t)page->capacity * page->block_size;
    long n = 0;
    for (const ga_block_t *b = head; b != NULL; n++) {
        const uint8_t *a = (const uint8_t *)b;
        if (a < lo || a >= hi || (size_t)(a - lo) % page->block_size != 0 ||
            n > (long)page->capacity)
            return -1;
        b = ga__decode(page, b->next);
    }
    return n;
}

/* OWNER_VIEW (with the GA_CHECK_* flags): the page's owner checks its own page at a state change
 * while other threads may push onto its cross-thread list, so the count of that list (bumped
 * before each push) may run ahead of it; everything else must hold at any instant. */
#define OWNER_VIEW 0x80000000u

static int check_page(const ga_segment_t *seg, const ga_page_t *page, size_t idx, unsigned flags)
{
    if (page->class_idx >= GA_CLASS_COUNT || page->block_size != ga__class_size[page->class_idx])
        return corrupt(flags, page, "page block size does not match its size class");
    if (ga__class_kind(page->class_idx) != seg->kind)
        return corrupt(flags, page, "page class does not belong in this segment kind");
    if (page->start != ga__page_area_start(seg, idx))
        return corrupt(flags, page, "page start is not where the segment puts it");
    const uint8_t *end = (const uint8_t *)seg + ((idx + 1) << seg->page_shift);
    if (page->start + ga__page_area(page) > end)
        return corrupt(flags, page, "page blocks run past the page");
    uint32_t used = ga__page_used(page);
    if (page->capacity > page->reserved || used > page->capacity)
        return corrupt(flags, page, "page counters out of range");
    long nfree = count_list(page, page->free);
    if (nfree < 0)
        return corrupt(flags, page, "page free list is broken (write after free?)");
    uintptr_t xfree = atomic_load(&page->xfree);
    bool full = atomic_load_explicit(&page->flags, memory_order_relaxed) & GA_PAGE_FULL;
    if ((xfree & GA_XFREE_FULL) && !full)
        return corrupt(flags, page, "page marked full for other threads but not on the full list");
    long nx = count_list(page, (const ga_block_t *)(xfree & ~GA_XFREE_FULL));
    if (nx < 0)
        return corrupt(flags, page, "cross-thread free list is broken (double free?)");
    if ((long)used + nfree != (long)page->capacity)
        return corrupt(flags, page, "free list length + used blocks != carved blocks");
    if (nx > (long)used)
        return corrupt(flags, page, "more cross-thread frees than used blocks");
    if (!(flags & OWNER_VIEW) && (uint32_t)nx != atomic_load(&page->xfree_count))
        return corrupt(flags, page, "cross-thread free count does not match its list");
    return 0;
}

static int check_segment(const ga_segment_t *seg, unsigned flags)
{
    if (seg->magic != (GA_SEGMENT_MAGIC ^ (uintptr_t)seg))
        return corrupt(flags, seg, "segment magic is wrong");
    if (((uintptr_t)seg & GA_SEGMENT_MASK) != 0 || !ga__segmap_has(seg))
        return corrupt(flags, seg, "segment is not aligned or not in the segment map");
    if (seg->kind == GA_SEG_HUGE) {
        const ga_page_t *page = &seg->pages[0];
        if (seg->page_count != 1 || seg->header_size >= seg->size ||
            (page->in_use && page->start != (const uint8_t *)seg + seg->header_size))
            return corrupt(flags, seg, "huge segment geometry is wrong");
        return 0;
    }
    if (seg->page_count == 0 || seg->page_count > GA_MAX_PAGES ||
        (GA_SEGMENT_SIZE >> seg->page_shift) != seg->page_count || seg->size != GA_SEGMENT_SIZE)
        return corrupt(flags, seg, "segment geometry is wrong");
    uint32_t in_use = 0;
    for (uint32_t i = 0; i < seg->page_count; i++) {
        const ga_page_t *page = &seg->pages[i];
        if (!page->in_use)
            continue;
        in_use++;
        int rc = check_page(seg, page, i, flags);
        if (rc)
            return rc;
    }
    if (in_use != seg->used_pages)
        return corrupt(flags, seg, "segment's count of pages in use is wrong");
    return 0;
}

bool ga__page_is_valid(const ga_segment_t *seg, const ga_page_t *page)
{
    return check_page(seg, page, (size_t)(page - seg->pages), OWNER_VIEW) == 0;
}

bool ga__segment_is_valid(const ga_segment_t *seg)
{
    return check_segment(seg, OWNER_VIEW) == 0;
}

int ga__engine_check(unsigned flags)
{
    int rc = 0;
    ga__registry_lock();
    for (ga_segment_t *seg = ga__all_segments; seg && rc == 0; seg = seg->all_next)
        rc = check_segment(seg, flags);
    ga__registry_unlock();
    return rc;
}

/* Live blocks of a page: handed out, minus those waiting on the cross-thread list. */
static size_t page_live(const ga_page_t *page)
{
    uint32_t used = ga__page_used(page);
    uint32_t pending = atomic_load_explicit(&page->xfree_count, memory_order_relaxed);
    return pending < used ? used - pending : 0;
}

void ga__engine_stats(ga_stats_t *out)
{
    static const size_t page_bytes[GA_SEG_KINDS] = {
        (size_t)1 << GA_SMALL_PAGE_SHIFT, (size_t)1 << GA_MEDIUM_PAGE_SHIFT,
        (size_t)1 << GA_LARGE_PAGE_SHIFT};
    memset(out, 0, sizeof *out);
    out->class_count = GA_CLASS_COUNT;
    for (unsigned c = 0; c < GA_CLASS_COUNT; c++)
        out->classes[c].block_size = ga__class_size[c];
    ga__registry_lock();
    for (const ga_theap_t *h = ga__all_heaps; h; h = h->reg_next)
        out->threads++;
    for (ga_segment_t *seg = ga__all_segments; seg; seg = seg->all_next) {
        if (seg->kind == GA_SEG_HUGE)
            continue;
        for (uint32_t i = 0; i < seg->page_count; i++) {
            const ga_page_t *page = &seg->pages[i];
            if (!atomic_load_explicit(&page->in_use, memory_order_relaxed))
                continue;
            unsigned c = atomic_load_explicit(&page->class_idx, memory_order_relaxed);
            ga_class_stats_t *cs = &out->classes[c < GA_CLASS_COUNT ? c : 0];
            cs->blocks_used += page_live(page);
            cs->pages++;
            cs->bytes_reserved += page_bytes[seg->kind];
        }
    }
    ga__registry_unlock();
    for (unsigned c = 0; c < GA_CLASS_COUNT; c++) {
        out->blocks_in_use += out->classes[c].blocks_used;
        out->bytes_in_use += out->classes[c].blocks_used * out->classes[c].block_size;
    }
    out->huge_blocks = atomic_load(&ga__global.huge_blocks);
    out->blocks_in_use += out->huge_blocks;
    out->bytes_in_use += atomic_load(&ga__global.huge_bytes);
    out->bytes_mapped = atomic_load(&ga__global.mapped);
    out->bytes_committed = atomic_load(&ga__global.committed);
    out->peak_mapped = atomic_load(&ga__global.peak_mapped);
}
