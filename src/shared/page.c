/* SPDX-License-Identifier: MIT */
/*
 * Shared heaps: the page table and the page pool (pages lock): runs of free pages for large
 * blocks, a page for a size class, a page for a handle-table chunk, and the pages lock's repair.
 *
 * Large blocks take a run of pages: a LARGE head descriptor carrying the state byte and n, then
 * TAIL descriptors naming the head. Runs are found first-fit in the page table under the pages
 * lock; the head is written last (it is the commit), so a holder dying half-way leaves only
 * orphan TAILs, which ga__shm_repair_pages frees (the intent record says where it was).
 * A large block freed by any process goes ALLOC(x) -> CACHED(me) (one CAS), then back to the
 * page pool under the pages lock; inside a logged window the second step waits for
 * ga__shm_after_window.
 */
#include "shared/shared_internal.h"
#include <string.h>

shm_page_t *ga__shm_page(shm_att_t *a, uint64_t i)
{
    return i < ga__shm_top_pages(a) ? &a->pages[i] : NULL;
}

int ga__shm_lock_pages(shm_att_t *a)
{
    return ga__shm_lock(a, SHM_LOCK_PAGES, ga__shm_repair_pages, NULL);
}

void ga__shm_repair_pages(shm_att_t *a, void *arg)
{
    (void)arg;
    GA_ASSERT_SHM_HELD(a, SHM_LOCK_PAGES);
    shm_header_t *h = a->hdr;
    uint64_t top = ga__shm_top_pages(a);
    /* Orphan TAILs (a run whose head was never written, or was freed first) become FREE. */
    for (uint64_t p = 0; p < top; p++) {
        uint64_t d = atomic_load(&a->pages[p].desc);
        if (PD_KIND(d) != PG_TAIL) continue;
        uint64_t head = PD_N(d);
        uint64_t hd = head < p ? atomic_load(&a->pages[head].desc) : 0;
        if (PD_KIND(hd) != PG_LARGE || head + PD_N(hd) <= p)
            atomic_store(&a->pages[p].desc, PD_MAKE(PG_FREE, 0, 0, 0));
    }
    for (uint64_t p = 0; p < top; p++) { /* handle-table pages never published */
        uint64_t d = atomic_load(&a->pages[p].desc);
        if (PD_KIND(d) == PG_HTABLE &&
            (PD_N(d) >= SHM_HCHUNKS_MAX || atomic_load(&h->hchunk[PD_N(d)]) != p + 1))
            atomic_store(&a->pages[p].desc, PD_MAKE(PG_FREE, 0, 0, 0));
    }
    ga__shm_intent_end(&h->pages_intent);
    h->pages_hint = 0;
}

/* ---- runs of pages --------------------------------------------------------------------- */

/* Finds n free pages (pages lock held), committing more if needed. Index or UINT64_MAX. */
static uint64_t find_run(shm_att_t *a, uint64_t n, int *err)
{
    GA_ASSERT_SHM_HELD(a, SHM_LOCK_PAGES);
    shm_header_t *h = a->hdr;
    uint64_t top = ga__shm_top_pages(a), run = 0, start = h->pages_hint < top ? h->pages_hint : 0;
    bool all_busy_below = true;
    for (uint64_t p = start; p < top; p++) {
        if (PD_KIND(atomic_load_explicit(&a->pages[p].desc, memory_order_relaxed)) != PG_FREE) {
            run = 0;
            continue;
        }
        if (run == 0 && all_busy_below) {
            h->pages_hint = (uint32_t)p;
            all_busy_below = false;
        }
        if (++run == n) return p + 1 - n;
    }
    if (all_busy_below) h->pages_hint = (uint32_t)top;
    uint64_t first = top - run;
    if (n > a->max_pages || first + n > a->max_pages) {
        *err = GA_EFULL;
        return UINT64_MAX;
    }
    *err = ga__shm_commit(a, first + n);
    return *err ? UINT64_MAX : first;
}

/* Allocates a run of n pages: a large block owned by `owner` (state byte), n >= 1.
 * The page index or UINT64_MAX (*err set). */
uint64_t ga__shm_large_alloc(shm_att_t *a, uint64_t n, unsigned owner, int *err)
{
    if ((*err = ga__shm_lock_pages(a)) != 0) return UINT64_MAX;
    uint64_t pg = find_run(a, n, err);
    if (pg != UINT64_MAX) {
        shm_intent_t *in = ga__shm_intent_begin(a, SHM_LOCK_PAGES, (uint32_t)pg);
        ga__shm_intent_add_run(in, n);
        ga__shm_intent_commit(in, INTENT_PALLOC);
        for (uint64_t i = 1; i < n; i++)
            atomic_store(&a->pages[pg + i].desc, PD_MAKE(PG_TAIL, 0, 0, pg));
        atomic_store_explicit(&a->pages[pg].desc, PD_MAKE(PG_LARGE, owner, 0, n),
                              memory_order_release);
        ga__shm_intent_end(in);
    }
    ga__shm_unlock(a, SHM_LOCK_PAGES);
    return pg;
}

int ga__shm_large_release(shm_att_t *a, uint64_t pg, unsigned expect)
{
    shm_header_t *h = a->hdr;
    int rc = ga__shm_lock_pages(a);
    if (rc) return rc;
    uint64_t d = pg < ga__shm_top_pages(a) ? atomic_load(&a->pages[pg].desc) : 0;
    uint64_t n = PD_N(d);
    if (PD_KIND(d) != PG_LARGE || PD_OWNER(d) != expect || n == 0 ||
        pg + n > ga__shm_top_pages(a)) {
        ga__shm_unlock(a, SHM_LOCK_PAGES);
        return GA_ECORRUPT;
    }
    shm_intent_t *in = ga__shm_intent_begin(a, SHM_LOCK_PAGES, (uint32_t)pg);
    ga__shm_intent_add_run(in, n);
    ga__shm_intent_commit(in, INTENT_PFREE);
    if (atomic_compare_exchange_strong(&a->pages[pg].desc, &d, PD_MAKE(PG_FREE, 0, 0, 0))) {
        for (uint64_t i = 1; i < n; i++)
            atomic_store(&a->pages[pg + i].desc, PD_MAKE(PG_FREE, 0, 0, 0));
        if (pg < h->pages_hint) h->pages_hint = (uint32_t)pg;
    } else {
        rc = GA_ECORRUPT;
    }
    ga__shm_intent_end(in);
    ga__shm_unlock(a, SHM_LOCK_PAGES);
    return rc;
}

/* Takes a free page for class c (class lock held; takes the pages lock): state bytes zeroed,
 * its record reset, the SMALL descriptor stored last. The page index or UINT64_MAX (*err set). */
uint64_t ga__shm_page_new_small(shm_att_t *a, unsigned c, int *err)
{
    GA_ASSERT_SHM_HELD(a, SHM_LOCK_CLASS(c));
    if ((*err = ga__shm_lock_pages(a)) != 0) return UINT64_MAX;
    uint64_t pg = find_run(a, 1, err);
    if (pg != UINT64_MAX) {
        shm_intent_t *in = ga__shm_intent_begin(a, SHM_LOCK_PAGES, (uint32_t)pg);
        ga__shm_intent_add_run(in, 1);
        ga__shm_intent_commit(in, INTENT_PALLOC);
        memset(a->base + a->data_off + pg * SHM_PAGE, 0, ga__shm_geo.hdr[c]);
        shm_page_t *r = &a->pages[pg];
        r->free_count = ga__shm_geo.count[c];
        r->scan = 0;
        r->in_partial = 0;
        r->next_partial = 0;
        r->owner = 0;
        atomic_store_explicit(&r->desc, PD_MAKE(PG_SMALL, 0, c, 0), memory_order_release);
        ga__shm_intent_end(in);
    }
    ga__shm_unlock(a, SHM_LOCK_PAGES);
    return pg;
}

int ga__shm_htable_chunk(shm_att_t *a, uint32_t chunk)
{
    shm_header_t *h = a->hdr;
    if (chunk >= SHM_HCHUNKS_MAX) return GA_EFULL;
    if (atomic_load_explicit(&h->hchunk[chunk], memory_order_acquire)) return 0;
    int rc = ga__shm_lock_pages(a);
    if (rc) return rc;
    if (atomic_load(&h->hchunk[chunk]) == 0) {
        uint64_t pg = find_run(a, 1, &rc);
        if (pg != UINT64_MAX) {
            /* The descriptor names its chunk, so a page whose publication below never
             * happened is recognized (and freed) by ga__shm_repair_pages. */
            memset(a->base + a->data_off + pg * SHM_PAGE, 0, SHM_PAGE);
            atomic_store(&a->pages[pg].desc, PD_MAKE(PG_HTABLE, 0, 0, chunk));
            atomic_store_explicit(&h->hchunk[chunk], (uint32_t)(pg + 1), memory_order_release);
        }
    }
    ga__shm_unlock(a, SHM_LOCK_PAGES);
    return rc;
}
