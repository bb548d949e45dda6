/* SPDX-License-Identifier: MIT */
/*
 * Shared heaps: small blocks (<= 16 KiB, 36 classes) and the thread caches that hold them.
 *
 * Small blocks live in SMALL pages: the page starts with one state byte per block (ST_* in
 * layout.h), the blocks follow. Each thread keeps, per attached heap and per class, a cache of up
 * to TC_CAP blocks in state CACHED(my slot): allocation pops one and stores ALLOC(my slot) into
 * its state byte, free CASes ALLOC(x) -> CACHED(my slot) and pushes it (src/shared/alloc.c). No
 * lock on that path. A refill takes the class lock and turns FREE bytes of the class's partial
 * pages into CACHED(me); a flush turns CACHED(me) back to FREE. So the state bytes are the truth,
 * and the class's partial list and per-page free counts are hints that ga__shm_repair_class
 * rebuilds from them whenever a holder of the class lock died. Wholly free pages go back to the
 * page pool only when the heap is full (ga__shm_trim).
 */
#include "shared/shared_internal.h"
#include <string.h>

/* ---- class state (class lock) ---------------------------------------------------------- */

int ga__shm_lock_class(shm_att_t *a, unsigned c)
{
    return ga__shm_lock(a, SHM_LOCK_CLASS(c), ga__shm_repair_class, (void *)(uintptr_t)c);
}

static void partial_push(shm_att_t *a, unsigned c, uint64_t pg)
{
    GA_ASSERT_SHM_HELD(a, SHM_LOCK_CLASS(c));
    shm_page_t *r = &a->pages[pg];
    if (r->in_partial) return;
    r->in_partial = 1;
    r->next_partial = a->hdr->classes[c].partial_head;
    a->hdr->classes[c].partial_head = (uint32_t)(pg + 1);
}

static uint32_t count_free(shm_att_t *a, uint64_t pg, unsigned c)
{
    _Atomic uint8_t *st = ga__shm_state_bytes(a, pg);
    uint32_t n = 0;
    for (uint32_t i = 0; i < ga__shm_geo.count[c]; i++)
        n += atomic_load_explicit(&st[i], memory_order_relaxed) == ST_FREE;
    return n;
}

void ga__shm_repair_class(shm_att_t *a, void *arg)
{
    unsigned c = (unsigned)(uintptr_t)arg;
    GA_ASSERT_SHM_HELD(a, SHM_LOCK_CLASS(c));
    shm_class_t *cl = &a->hdr->classes[c];
    cl->partial_head = 0;
    cl->npages = 0;
    uint64_t top = ga__shm_top_pages(a);
    for (uint64_t p = 0; p < top; p++) {
        uint64_t d = atomic_load(&a->pages[p].desc);
        if (PD_KIND(d) != PG_SMALL || PD_CLASS(d) != c) continue;
        shm_page_t *r = &a->pages[p];
        r->free_count = count_free(a, p, c);
        r->scan = 0;
        r->in_partial = 0;
        cl->npages++;
        if (r->free_count) partial_push(a, c, p);
    }
}

/* A new page for class c (class lock held). 0 or GA_E*. */
static int small_page_new(shm_att_t *a, unsigned c)
{
    GA_ASSERT_SHM_HELD(a, SHM_LOCK_CLASS(c));
    int rc;
    uint64_t pg = ga__shm_page_new_small(a, c, &rc);
    if (pg == UINT64_MAX) return rc;
    partial_push(a, c, pg);
    a->hdr->classes[c].npages++;
    return 0;
}

/* ---- giving pages back ------------------------------------------------------------------ */

/* Returns the wholly free pages of class c to the page pool (class lock held). A page whose
 * state bytes are all FREE cannot change under the class lock: no cache holds a block of it
 * and no block of it is allocated. Unlinking it from the partial list is a hint change; the
 * descriptor store (under the pages lock) is the single step that gives it back. */
static uint64_t trim_class(shm_att_t *a, unsigned c)
{
    GA_ASSERT_SHM_HELD(a, SHM_LOCK_CLASS(c));
    shm_class_t *cl = &a->hdr->classes[c];
    uint64_t top = ga__shm_top_pages(a), freed = 0, steps = 0;
    uint32_t *link = &cl->partial_head;
    while (*link && steps++ <= top) {
        uint64_t pg = *link - 1;
        uint64_t d = pg < top ? atomic_load(&a->pages[pg].desc) : 0;
        if (PD_KIND(d) != PG_SMALL || PD_CLASS(d) != c) break; /* a bad list: left for the repair */
        shm_page_t *r = &a->pages[pg];
        if (count_free(a, pg, c) != ga__shm_geo.count[c] || ga__shm_lock_pages(a) != 0) {
            link = &r->next_partial;
            continue;
        }
        *link = r->next_partial;
        r->in_partial = 0;
        r->next_partial = 0;
        r->free_count = 0;
        atomic_store(&r->desc, PD_MAKE(PG_FREE, 0, 0, 0));
        if (pg < a->hdr->pages_hint) a->hdr->pages_hint = (uint32_t)pg;
        ga__shm_unlock(a, SHM_LOCK_PAGES);
        if (cl->npages) cl->npages--;
        freed++;
    }
    return freed;
}

uint64_t ga__shm_trim(shm_att_t *a)
{
    uint64_t n = 0;
    for (unsigned c = 0; c < SHM_NCLASS; c++) {
        if (ga__shm_lock_class(a, c) == 0) {
            n += trim_class(a, c);
            ga__shm_unlock(a, SHM_LOCK_CLASS(c));
        }
    }
    return n;
}

/* ---- thread caches ---------------------------------------------------------------------- */

GA_TLS shm_tcache_t *ga__shm_tl_tc[ATT_MAX];
/* Every thread cache of the process. tc_list_lock is the innermost lock: it is taken inside
 * shared-heap locks (a cache is made on first use), so its holder takes no other lock. */
static shm_tcache_t *tc_all;
static ga_lock_t tc_list_lock = GA_LOCK_INIT;
static pthread_key_t tc_key;
static pthread_once_t tc_once = PTHREAD_ONCE_INIT;

static void tc_thread_exit(void *arg)
{
    (void)arg;
    ga__shm_proc_lock(); /* keeps attachments from closing while we flush */
    for (unsigned i = 0; i < ATT_MAX; i++) {
        shm_tcache_t *tc = ga__shm_tl_tc[i];
        if (!tc) continue;
        if (tc->att && tc->att->state == ATT_OPEN && tc->att->serial == tc->serial)
            for (unsigned c = 0; c < SHM_NCLASS; c++)
                ga__shm_flush_class(tc->att, tc, c, 0);
        ga__lock(&tc_list_lock);
        for (shm_tcache_t **pp = &tc_all; *pp; pp = &(*pp)->next) {
            if (*pp == tc) {
                *pp = tc->next;
                break;
            }
        }
        ga__unlock(&tc_list_lock);
        ga__shm_tl_tc[i] = NULL;
        ga__shm_local_free(tc, sizeof *tc);
    }
    ga__shm_proc_unlock();
}

static void tc_init(void)
{
    pthread_key_create(&tc_key, tc_thread_exit);
}

GA_NOINLINE shm_tcache_t *ga__shm_tc_slow(shm_att_t *a)
{
    shm_tcache_t *tc = ga__shm_tl_tc[a->index];
    if (!tc) {
        pthread_once(&tc_once, tc_init);
        tc = ga__shm_local_alloc(sizeof *tc);
        if (!tc) return NULL;
        ga__lock(&tc_list_lock);
        tc->next = tc_all;
        tc_all = tc;
        ga__unlock(&tc_list_lock);
        pthread_setspecific(tc_key, (void *)1);
        ga__shm_tl_tc[a->index] = tc;
    }
    /* A cache of a closed attachment was flushed by its close: start afresh. */
    memset(tc->n, 0, sizeof tc->n);
    tc->att = a;
    tc->serial = a->serial;
    return tc;
}

void ga__shm_tcache_fork(int phase)
{
    if (phase == 0) {
        ga__lock(&tc_list_lock);
        return;
    }
    if (phase == 2) {
        tc_all = NULL; /* the parent's caches: the child must not flush them */
        for (unsigned i = 0; i < ATT_MAX; i++)
            ga__shm_tl_tc[i] = NULL;
    }
    ga__unlock(&tc_list_lock);
}

void ga__shm_flush_all(shm_att_t *a)
{
    GA_ASSERT_PROC_HELD();
    /* The caller holds the process lock, so no cache goes away meanwhile (a thread that exits
     * waits for it); the list lock is only held to walk, never across a flush. */
    for (;;) {
        shm_tcache_t *tc;
        ga__lock(&tc_list_lock);
        for (tc = tc_all; tc; tc = tc->next)
            if (tc->att == a && tc->serial == a->serial) break;
        ga__unlock(&tc_list_lock);
        if (!tc) return;
        for (unsigned c = 0; c < SHM_NCLASS; c++)
            ga__shm_flush_class(a, tc, c, 0);
        tc->att = NULL;
    }
}

/* ---- small blocks ----------------------------------------------------------------------- */

/* Moves all but `keep` (the newest) cached blocks of class c back to the free pool. */
void ga__shm_flush_class(shm_att_t *a, shm_tcache_t *tc, unsigned c, uint32_t keep)
{
    uint32_t n = tc->n[c];
    if (n <= keep || ga__shm_lock_class(a, c) != 0) return;
    uint32_t out = n - keep;
    uint64_t top = ga__shm_top_pages(a);
    uint8_t mine = (uint8_t)ST_CACHED(a->slot);
    for (uint32_t i = 0; i < out; i++) {
        uint64_t off = TC_OFF(tc->off[c][i]);
        uint32_t idx = TC_IDX(tc->off[c][i]);
        uint64_t pg = (off - a->data_off) >> SHM_PAGE_SHIFT;
        if (off < a->data_off || pg >= top || idx >= ga__shm_geo.count[c]) continue;
        uint64_t d = atomic_load(&a->pages[pg].desc);
        uint8_t e = mine;
        if (PD_KIND(d) != PG_SMALL || PD_CLASS(d) != c ||
            !atomic_compare_exchange_strong(&ga__shm_state_bytes(a, pg)[idx], &e, ST_FREE))
            continue; /* not ours any more: corruption, found by ga_shared_check */
        shm_page_t *r = &a->pages[pg];
        if (r->free_count < ga__shm_geo.count[c]) r->free_count++;
        partial_push(a, c, pg);
    }
    ga__shm_unlock(a, SHM_LOCK_CLASS(c));
    memmove(tc->off[c], tc->off[c] + out, keep * sizeof tc->off[c][0]);
    tc->n[c] = keep;
}

void ga__shm_small_release_locked(shm_att_t *a, uint64_t pg, uint32_t idx)
{
    uint64_t d = atomic_load(&a->pages[pg].desc);
    unsigned c = PD_CLASS(d);
    GA_ASSERT_INTERNAL(c < SHM_NCLASS && ga__shm_held(a, SHM_LOCK_CLASS(c)));
    atomic_store(&ga__shm_state_bytes(a, pg)[idx], ST_FREE);
    shm_page_t *r = &a->pages[pg];
    if (r->free_count < ga__shm_geo.count[c]) r->free_count++;
    partial_push(a, c, pg);
}

/* Scans page pg from its scan hint for FREE bytes; takes up to want of them. */
static uint32_t take_from_page(shm_att_t *a, shm_tcache_t *tc, unsigned c, uint64_t pg,
                               uint32_t want)
{
    GA_ASSERT_SHM_HELD(a, SHM_LOCK_CLASS(c));
    shm_page_t *r = &a->pages[pg];
    _Atomic uint8_t *st = ga__shm_state_bytes(a, pg);
    uint32_t nb = ga__shm_geo.count[c], got = 0, i = r->scan < nb ? r->scan : 0;
    uint8_t mine = (uint8_t)ST_CACHED(a->slot);
    uint64_t pbase = a->data_off + pg * SHM_PAGE + ga__shm_geo.hdr[c];
    for (uint32_t seen = 0; seen < nb && got < want; seen++, i = i + 1 < nb ? i + 1 : 0) {
        if ((i & 7) == 0 && i + 8 <= nb && seen + 8 <= nb) {
            uint64_t w =
                atomic_load_explicit((_Atomic uint64_t *)(void *)&st[i], memory_order_relaxed);
            if (((w - 0x0101010101010101ull) & ~w & 0x8080808080808080ull) == 0) {
                seen += 7;
                i += 7;
                continue;
            }
        }
        if (atomic_load_explicit(&st[i], memory_order_relaxed) != ST_FREE) continue;
        atomic_store_explicit(&st[i], mine, memory_order_relaxed);
        tc->off[c][tc->n[c]++] = TC_PACK(pbase + (uint64_t)i * ga__shm_class_size[c], i);
        got++;
    }
    r->scan = i;
    r->free_count = got <= r->free_count ? r->free_count - got : 0;
    return got;
}

/* Moves a listed page that no other process refilled from last to the head of class c's list,
 * looking a few pages deep. Processes then take blocks from pages of their own, so they do not
 * write to the same cache lines of state bytes. The list is a hint: any order is correct. */
static void prefer_own_page(shm_att_t *a, unsigned c)
{
    GA_ASSERT_SHM_HELD(a, SHM_LOCK_CLASS(c));
    shm_class_t *cl = &a->hdr->classes[c];
    uint32_t me = a->slot + 1, owner = a->pages[cl->partial_head - 1].owner;
    if (owner == 0 || owner == me) return;
    uint64_t top = ga__shm_top_pages(a);
    uint32_t *link = &a->pages[cl->partial_head - 1].next_partial;
    for (int i = 0; i < 8 && *link && *link - 1 < top; i++) {
        uint64_t pg = *link - 1;
        shm_page_t *r = &a->pages[pg];
        uint64_t d = atomic_load_explicit(&r->desc, memory_order_relaxed);
        if (PD_KIND(d) != PG_SMALL || PD_CLASS(d) != c || !r->in_partial) return;
        if (r->owner == 0 || r->owner == me) {
            *link = r->next_partial;
            r->next_partial = cl->partial_head;
            cl->partial_head = (uint32_t)pg + 1;
            return;
        }
        link = &r->next_partial;
    }
}

GA_NOINLINE int ga__shm_refill(shm_att_t *a, shm_tcache_t *tc, unsigned c)
{
    shm_class_t *cl = &a->hdr->classes[c];
    int rc = ga__shm_lock_class(a, c);
    if (rc) return rc;
    uint32_t want = TC_CAP / 2;
    bool repaired = false;
    while (tc->n[c] == 0 || want > 0) {
        uint32_t head = cl->partial_head;
        if (head == 0) {
            if (tc->n[c] > 0) break;
            if ((rc = small_page_new(a, c)) != 0) break;
            continue;
        }
        uint64_t pg = head - 1;
        uint64_t d = pg < ga__shm_top_pages(a) ? atomic_load(&a->pages[pg].desc) : 0;
        /* A page not marked as listed means a cycle or a stale link: rebuild the list. */
        if (PD_KIND(d) != PG_SMALL || PD_CLASS(d) != c || !a->pages[pg].in_partial) {
            if (repaired) { /* the repaired list is bad again: give up */
                rc = GA_ECORRUPT;
                break;
            }
            ga__shm_repair_class(a, (void *)(uintptr_t)c);
            repaired = true;
            continue;
        }
        if (a->pages[pg].owner != a->slot + 1) {
            prefer_own_page(a, c);
            if (cl->partial_head != head) continue;
        }
        a->pages[pg].owner = a->slot + 1;
        uint32_t got = take_from_page(a, tc, c, pg, want);
        want = got < want ? want - got : 0;
        if (want > 0 || a->pages[pg].free_count == 0) {
            shm_page_t *r = &a->pages[pg];
            cl->partial_head = r->next_partial;
            r->in_partial = 0;
            if (got == 0) r->free_count = 0;
        }
    }
    ga__shm_unlock(a, SHM_LOCK_CLASS(c));
    return tc->n[c] > 0 ? 0 : (rc ? rc : GA_EFULL);
}
