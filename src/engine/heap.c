/* SPDX-License-Identifier: MIT */
/*
 * Thread heaps: one per thread that allocates, reached through a TLS pointer. A heap keeps, per
 * size class, a queue of pages (the first one feeds the fast path through heap->direct[]), a list
 * of full pages, and per kind the segments that still have free page slots.
 *
 * Full pages leave their class queue so that a big live set costs nothing on the slow path.
 * The owner marks a page full by setting GA_XFREE_FULL in its empty xfree word (one CAS); the
 * first freer whose push clears that bit raises heap->delayed, and the owner scans its full list
 * on its next slow path. Marking and pushing are one atomic word, so no free goes unnoticed,
 * and a freer touches nothing of the page after its push (the page may be gone by then).
 *
 * A thread that exits abandons its segments (ga__heap_detach); another thread adopts them on its
 * slow path. The heap structs' pool, start and exit are thread.c's.
 */
#include "engine/engine_internal.h"
#include <errno.h>
#include <string.h>

#define E1 &ga__empty_page
#define E8 E1, E1, E1, E1, E1, E1, E1, E1
ga_page_t ga__empty_page;
ga_theap_t ga__empty_heap = {.direct = {E8, E8, E8, E8, E8, E8, E8, E8, E1}};
static_assert(GA_DIRECT_SLOTS == 65, "empty heap initializer covers every direct slot");
#undef E8
#undef E1

GA_TLS ga_theap_t *ga__tl_heap = &ga__empty_heap;
ga_theap_t *ga__all_heaps;


/* ---- page queues ------------------------------------------------------------------------ */

static void queue_remove(ga_page_queue_t *q, ga_page_t *page)
{
    if (page->prev)
        page->prev->next = page->next;
    else
        q->first = page->next;
    if (page->next)
        page->next->prev = page->prev;
    else
        q->last = page->prev;
    page->next = page->prev = NULL;
}

static void queue_push_front(ga_page_queue_t *q, ga_page_t *page)
{
    page->prev = NULL;
    page->next = q->first;
    if (q->first)
        q->first->prev = page;
    else
        q->last = page;
    q->first = page;
}

static void queue_append(ga_page_queue_t *q, ga_page_t *page)
{
    page->next = NULL;
    page->prev = q->last;
    if (q->last)
        q->last->next = page;
    else
        q->first = page;
    q->last = page;
}

/* heap->direct[] must point at the first page of each small class (or the empty page). */
static void update_direct(ga_theap_t *heap, unsigned cls)
{
    if (ga__class_size[cls] > GA_DIRECT_MAX)
        return;
    ga_page_t *page = heap->queues[cls].first ? heap->queues[cls].first : &ga__empty_page;
    size_t wmax = ga__class_size[cls] / 16;
    size_t wmin = cls == 0 ? 0 : ga__class_size[cls - 1] / 16 + 1;
    for (size_t w = wmin; w <= wmax; w++)
        heap->direct[w] = page;
}

static void page_to_front(ga_theap_t *heap, ga_page_t *page)
{
    ga_page_queue_t *q = &heap->queues[page->class_idx];
    if (q->first != page) {
        queue_remove(q, page);
        queue_push_front(q, page);
        update_direct(heap, page->class_idx);
    }
}

/* The page leaves the full list: other threads need not wake us for it any more. */
static void page_clear_xfull(ga_page_t *page)
{
    if (atomic_load_explicit(&page->xfree, memory_order_relaxed) & GA_XFREE_FULL)
        atomic_fetch_and(&page->xfree, ~GA_XFREE_FULL);
}

/* A full page got free blocks back. It joins the end of its queue: the current first page
 * keeps serving, so a page that regains one block at a time does not bounce between the full
 * list and the front (each bounce costs a slow-path allocation). */
static void page_unfull(ga_theap_t *heap, ga_page_t *page)
{
    page_clear_xfull(page);
    queue_remove(&heap->full, page);
    atomic_store_explicit(&page->flags,
                          atomic_load_explicit(&page->flags, memory_order_relaxed) & ~GA_PAGE_FULL,
                          memory_order_release);
    ga_page_queue_t *q = &heap->queues[page->class_idx];
    queue_append(q, page);
    if (q->first == page)
        update_direct(heap, page->class_idx);
}

/* Moves a page without free blocks to the full list. Returns false (and leaves it in its
 * queue) when another thread freed into it meanwhile. */
static bool page_mark_full(ga_theap_t *heap, ga_page_t *page)
{
    unsigned cls = page->class_idx;
    ga_page_queue_t *q = &heap->queues[cls];
    uintptr_t empty = 0;
    if (!atomic_compare_exchange_strong(&page->xfree, &empty, GA_XFREE_FULL))
        return false; /* blocks arrived from other threads: the caller collects them */
    bool was_first = q->first == page;
    queue_remove(q, page);
    queue_append(&heap->full, page);
    atomic_store_explicit(&page->flags,
                          atomic_load_explicit(&page->flags, memory_order_relaxed) | GA_PAGE_FULL,
                          memory_order_relaxed);
    if (was_first)
        update_direct(heap, cls);
    return true;
}

/* ---- pages in and out of segments --------------------------------------------------------- */

static void seg_free_push(ga_theap_t *heap, ga_segment_t *seg)
{
    ga_segment_t **head = &heap->seg_free[seg->kind];
    seg->prev = NULL;
    seg->next = *head;
    if (*head)
        (*head)->prev = seg;
    *head = seg;
    seg->in_free_list = 1;
}

static void seg_free_remove(ga_theap_t *heap, ga_segment_t *seg)
{
    if (!seg->in_free_list)
        return;
    if (seg->prev)
        seg->prev->next = seg->next;
    else
        heap->seg_free[seg->kind] = seg->next;
    if (seg->next)
        seg->next->prev = seg->prev;
    seg->next = seg->prev = NULL;
    seg->in_free_list = 0;
}

/* Gives an empty page (used == 0, in no queue) back to its segment. */
/* decommit: also give the page's memory back now (ga_heap_collect). Otherwise it stays
 * committed for the next page formatted in this slot: decommitting on every release made a
 * workload that cycles big blocks fault every page in again. */
static void page_release_ex(ga_theap_t *heap, ga_page_t *page, bool decommit)
{
    ga_segment_t *seg = ga__segment_of(page);
    if (decommit)
        ga__page_decommit(seg, page);
    page->in_use = 0;
    atomic_store_explicit(&page->flags, GA_PAGE_FULL, memory_order_relaxed); /* not fast-freeable */
    seg->used_pages--;
    if (seg->used_pages == 0) {
        seg_free_remove(heap, seg);
        ga__segment_release(heap, seg);
    } else if (!seg->in_free_list) {
        seg_free_push(heap, seg);
    }
}

static void page_release(ga_theap_t *heap, ga_page_t *page)
{
    page_release_ex(heap, page, false);
}

static void page_unlink(ga_theap_t *heap, ga_page_t *page)
{
    if (atomic_load_explicit(&page->flags, memory_order_relaxed) & GA_PAGE_FULL) {
        queue_remove(&heap->full, page);
    } else {
        ga_page_queue_t *q = &heap->queues[page->class_idx];
        bool was_first = q->first == page;
        queue_remove(q, page);
        if (was_first)
            update_direct(heap, page->class_idx);
    }
}

static ga_page_t *page_fresh(ga_theap_t *heap, unsigned cls)
{
    ga_segment_kind_t kind = ga__class_kind(cls);
    ga_segment_t *seg = heap->seg_free[kind];
    if (seg == NULL) {
        seg = ga__segment_alloc(heap, kind);
        if (seg == NULL)
            return NULL;
        seg_free_push(heap, seg);
    }
    ga_page_t *page = NULL;
    for (uint32_t i = 0; i < seg->page_count; i++) {
        if (!seg->pages[i].in_use) {
            page = &seg->pages[i];
            break;
        }
    }
    GA_ASSERT(page != NULL);
    if (page == NULL) /* inconsistent segment: never hand out from it */
        return NULL;
    seg->used_pages++;
    if (seg->used_pages == seg->page_count)
        seg_free_remove(heap, seg);
    ga__page_init(seg, page, cls);
    ga__page_extend(page);
    queue_push_front(&heap->queues[cls], page);
    update_direct(heap, cls);
    return page;
}

/* Takes over an abandoned segment: its live pages join this heap's queues. */
static void adopt_segment(ga_theap_t *heap, ga_segment_t *seg)
{
    if (seg->kind == GA_SEG_HUGE)
        return;
    for (uint32_t i = 0; i < seg->page_count; i++) {
        ga_page_t *page = &seg->pages[i];
        if (!page->in_use)
            continue;
        ga__page_collect(page);
        page_clear_xfull(page);
        atomic_store_explicit(&page->flags, 0, memory_order_relaxed);
        if (ga__page_used(page) == 0) {
            bool last = seg->used_pages == 1;
            page_release(heap, page); /* the last page takes the segment with it */
            if (last)
                return;
            continue;
        }
        queue_append(&heap->queues[page->class_idx], page);
        update_direct(heap, page->class_idx);
    }
    if (seg->used_pages < seg->page_count && !seg->in_free_list)
        seg_free_push(heap, seg);
}

/* ---- delayed frees ------------------------------------------------------------------------ */

/* Another thread freed into a full page: revive the full pages that have blocks again. Only a
 * flag is shared (no list of pages), so a stale notification, even to a recycled heap, costs
 * one scan of the full list and never touches memory that may be gone. */
static void process_delayed(ga_theap_t *heap)
{
    if (atomic_load_explicit(&heap->delayed, memory_order_relaxed) == 0 ||
        atomic_exchange(&heap->delayed, 0) == 0)
        return;
    /* seq_cst: a freer whose check of `delayed` came before the exchange pushed before it. */
    for (ga_page_t *page = heap->full.first, *next; page; page = next) {
        next = page->next;
        if ((atomic_load(&page->xfree) & ~GA_XFREE_FULL) != 0 && ga__page_collect(page) > 0)
            page_unfull(heap, page);
    }
}

/* Called by a non-owner that took GA_XFREE_FULL off a page. `owner` was read before the push:
 * once the block is published the page may be collected, released and unmapped at any moment,
 * but heap structs are never unmapped, so writing to a stale owner is safe. */
static void notify_owner(ga_theap_t *owner)
{
    if (owner != NULL && atomic_load(&owner->delayed) == 0)
        atomic_store(&owner->delayed, 1);
}

/* ---- heap lifecycle ---------------------------------------------------------------------- */

static void release_cached(ga_theap_t *heap)
{
    for (unsigned k = 0; k < GA_SEG_KINDS; k++) {
        ga_segment_t *seg = heap->cached[k];
        heap->cached[k] = NULL;
        if (seg)
            ga__segment_release(NULL, seg);
    }
}

/* ---- thread exit ---------------------------------------------------------------------------- */

/* A thread's exit: pages still holding blocks are detached and their segments abandoned (other
 * threads adopt them); the rest is freed. The heap struct itself is thread.c's. */
void ga__heap_detach(ga_theap_t *heap)
{
    heap->live = false;
    process_delayed(heap);
    ga_page_t *keep = NULL;
    for (unsigned c = 0; c <= GA_CLASS_COUNT; c++) {
        ga_page_queue_t *q = c < GA_CLASS_COUNT ? &heap->queues[c] : &heap->full;
        while (q->first) {
            ga_page_t *page = q->first;
            page_unlink(heap, page);
            ga__page_collect(page);
            page_clear_xfull(page);
            atomic_store_explicit(&page->flags, 0, memory_order_relaxed);
            if (ga__page_used(page) == 0) {
                page_release(heap, page);
            } else {
                page->next = keep;
                keep = page;
            }
        }
    }
    /* Detach every page before publishing any segment: once abandoned, a segment's pages
     * belong to whoever adopts it, and we must not write their links any more. */
    ga_segment_t *to_abandon = NULL;
    for (ga_page_t *page = keep, *next; page; page = next) {
        next = page->next;
        page->next = page->prev = NULL;
        ga_segment_t *seg = ga__segment_of(page);
        if (!seg->abandoning) {
            seg_free_remove(heap, seg);
            seg->abandoning = 1;
            seg->next = to_abandon;
            to_abandon = seg;
        }
    }
    for (ga_segment_t *seg = to_abandon, *next; seg; seg = next) {
        next = seg->next;
        seg->abandoning = 0;
        ga__segment_abandon(seg);
    }
    for (unsigned k = 0; k < GA_SEG_KINDS; k++)
        heap->seg_free[k] = NULL;
    release_cached(heap);
}

/* ---- allocation slow path ------------------------------------------------------------------ */

static ga_page_t *find_page(ga_theap_t *heap, unsigned cls)
{
    for (;;) {
        ga_page_queue_t *q = &heap->queues[cls];
        for (ga_page_t *page = q->first, *next; page; page = next) {
            next = page->next;
            ga__page_collect(page);
            if (page->free || ga__page_extend(page)) {
                page_to_front(heap, page);
                return page;
            }
            if (!page_mark_full(heap, page)) { /* a racing free just arrived */
                ga__page_collect(page);
                if (page->free) {
                    page_to_front(heap, page);
                    return page;
                }
            }
        }
        ga_segment_t *seg = ga__segment_adopt(heap);
        if (seg == NULL)
            return page_fresh(heap, cls);
        adopt_segment(heap, seg);
    }
}

void *ga__alloc_slow(ga_theap_t *heap, size_t size, bool zero)
{
    if (GA_UNLIKELY(heap == &ga__empty_heap)) {
        heap = ga__heap_thread_init();
        if (heap == NULL)
            return NULL;
    }
    if (size > GA_LARGE_MAX)
        return ga__huge_alloc(size, 0, zero);
    unsigned cls = ga__size_class(size);
    process_delayed(heap);
    ga_page_t *page = heap->queues[cls].first;
    if (page == NULL || page->free == NULL) {
        page = find_page(heap, cls);
        if (page == NULL)
            return NULL;
    }
    ga_block_t *b = page->free;
    ga_block_t *next = ga__decode(page, b->next);
    if (GA_UNLIKELY(next && ((uintptr_t)next ^ (uintptr_t)b) >> GA_SEGMENT_SHIFT)) {
        ga__report(GA_ECORRUPT, (uintptr_t)b, true,
                   "free list of page %p is broken (write after free?)", (void *)page);
        return NULL;
    }
    page->free = next;
    b->next = 0;
    GA_UNPOISON(b, page->block_size);
    ga__page_set_used(page, ga__page_used(page) + 1);
    if (zero)
        memset(b, 0, page->block_size);
    return b;
}

/* ---- free slow paths ------------------------------------------------------------------------ */

void ga__page_after_local_free(ga_theap_t *heap, ga_page_t *page)
{
    if (atomic_load_explicit(&page->flags, memory_order_relaxed) & GA_PAGE_FULL)
        page_unfull(heap, page);
    if (ga__page_used(page) != 0)
        return;
    ga_page_queue_t *q = &heap->queues[page->class_idx];
    if (q->first == page) {
        /* The page that serves allocations stays, empty: releasing it now would have the next
         * allocation of this class format a fresh page (batch alloc/free churn). At most one
         * empty page per class is kept; ga_heap_collect and thread exit release them. */
        return;
    }
    page_unlink(heap, page);
    page_release(heap, page);
}

bool ga__block_is_free(ga_theap_t *heap, ga_page_t *page, ga_block_t *b)
{
    (void)heap;
    uint32_t n = 0;
    for (ga_block_t *f = page->free; f && n <= page->capacity; f = ga__decode(page, f->next), n++) {
        if (f == b)
            return true;
        if (((uintptr_t)f ^ (uintptr_t)page->start) >> GA_SEGMENT_SHIFT)
            break;
    }
    n = 0;
    for (ga_block_t *f = (ga_block_t *)(atomic_load(&page->xfree) & ~GA_XFREE_FULL);
         f && n <= page->capacity;
         f = ga__decode(page, f->next), n++) {
        if (f == b)
            return true;
        if (((uintptr_t)f ^ (uintptr_t)page->start) >> GA_SEGMENT_SHIFT)
            break;
    }
    return false;
}

void ga__free_slow(ga_segment_t *seg, ga_page_t *page, ga_block_t *b, void *p)
{
    if (seg->kind == GA_SEG_HUGE) {
        if (!page->in_use || p != page->start) {
            ga__free_invalid(p, page->in_use ? GA_ENOTOWNED : GA_EDOUBLEFREE, true);
            return;
        }
        ga__huge_free(seg, p);
        return;
    }
    if (!page->in_use || (uint8_t *)p < page->start) {
        ga__free_invalid(p, page->in_use ? GA_ENOTOWNED : GA_EDOUBLEFREE, true);
        return;
    }
    if (atomic_load_explicit(&page->flags, memory_order_relaxed) & GA_PAGE_ALIGNED)
        b = ga__page_block_of(page, p);
    size_t off = (size_t)((uint8_t *)b - page->start);
    if (off % page->block_size != 0 || off / page->block_size >= page->reserved) {
        ga__free_invalid(p, GA_ENOTOWNED, true);
        return;
    }
    ga_theap_t *heap = ga__tl_heap;
    if (atomic_load_explicit(&seg->owner, memory_order_relaxed) == heap) {
        uintptr_t d = b->next ^ page->key;
        if ((d == 0 || d - (uintptr_t)page->start < ga__page_area(page)) &&
            ga__block_is_free(heap, page, b)) {
            ga__free_invalid(p, GA_EDOUBLEFREE, true);
            return;
        }
        b->next = ga__encode(page, page->free);
        page->free = b;
        GA_POISON_FREE(b, page->block_size);
        ga__page_set_used(page, ga__page_used(page) - 1);
        ga__page_after_local_free(heap, page);
        return;
    }
    /* Links on both free lists of a page are keyed, so the first word of a block that is on
     * either (freed before, by any thread) decodes to a block of this page or to NULL; a live
     * block's does with odds of about 2^-42 (its first word is 0 when handed out). The owner's
     * lists cannot be scanned from here, so the first word decides: a double free is refused
     * before it can link a block into two lists. */
    uintptr_t d = b->next ^ page->key;
    if (GA_UNLIKELY(d == 0 || d - (uintptr_t)page->start < ga__page_area(page))) {
        ga__free_invalid(p, GA_EDOUBLEFREE, true);
        return;
    }
    /* Everything the push needs from the page and segment is read before it. */
    ga_theap_t *owner = atomic_load(&seg->owner);
    atomic_fetch_add_explicit(&page->xfree_count, 1, memory_order_relaxed);
    GA_POISON_FREE(b, page->block_size);
    uintptr_t head = atomic_load_explicit(&page->xfree, memory_order_relaxed);
    do {
        b->next = ga__encode(page, (ga_block_t *)(head & ~GA_XFREE_FULL));
    } while (!atomic_compare_exchange_weak(&page->xfree, &head, (uintptr_t)b));
    if (head & GA_XFREE_FULL)
        notify_owner(owner);
}

/* ---- collect ------------------------------------------------------------------------------ */

size_t ga__heap_collect(ga_theap_t *heap, bool force)
{
    size_t before = atomic_load(&ga__global.committed);
    if (heap != &ga__empty_heap) {
        process_delayed(heap);
        if (force) {
            ga_segment_t *seg;
            while ((seg = ga__segment_adopt(heap)) != NULL)
                adopt_segment(heap, seg);
        }
        for (unsigned c = 0; c <= GA_CLASS_COUNT; c++) {
            ga_page_queue_t *q = c < GA_CLASS_COUNT ? &heap->queues[c] : &heap->full;
            for (ga_page_t *page = q->first, *next; page; page = next) {
                next = page->next;
                ga__page_collect(page);
                if (ga__page_used(page) == 0) {
                    page_unlink(heap, page);
                    page_release_ex(heap, page, true);
                } else if (c == GA_CLASS_COUNT && page->free) {
                    page_unfull(heap, page);
                }
            }
        }
        release_cached(heap);
    }
    if (force)
        ga__huge_cache_drain();
    size_t after = atomic_load(&ga__global.committed);
    return before > after ? before - after : 0;
}
