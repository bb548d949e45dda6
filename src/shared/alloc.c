/* SPDX-License-Identifier: MIT */
/*
 * Shared heaps: the block allocator (size classes, thread caches, pages, large blocks).
 *
 * Small blocks (<= 16 KiB, 36 classes) live in SMALL pages: the page starts with one state byte
 * per block (ST_* in layout.h), the blocks follow. Each thread keeps, per attached heap
 * and per class, a cache of up to TC_CAP blocks in state CACHED(my slot): allocation pops one
 * and stores ALLOC(my slot) into its state byte, free CASes ALLOC(x) -> CACHED(my slot) and
 * pushes it. No lock on that path. A refill takes the class lock and turns FREE bytes of the
 * class's partial pages into CACHED(me); a flush turns CACHED(me) back to FREE. So the state
 * bytes are the truth, and the class's partial list and per-page free counts are hints that
 * ga__shm_repair_class rebuilds from them whenever a holder of the class lock died.
 *
 * Large blocks take a run of pages: a LARGE head descriptor carrying the state byte and n, then
 * TAIL descriptors naming the head. Runs are found first-fit in the page table under the pages
 * lock; the head is written last (it is the commit), so a holder dying half-way leaves only
 * orphan TAILs, which ga__shm_repair_pages frees (the intent record says where it was).
 * A large block freed by any process goes ALLOC(x) -> CACHED(me) (one CAS), then back to the
 * page pool under the pages lock; inside a logged window the second step waits for
 * ga__shm_after_window. Pages of a class are not given back to the page pool (yet).
 */
#include "shared/shared_internal.h"
#include <string.h>
#include <sys/mman.h>

const uint32_t ga__shm_class_size[SHM_NCLASS] = SHM_CLASS_SIZES;

static struct {
    uint32_t hdr[SHM_NCLASS];   /* bytes of state area (block 0 starts here) */
    uint32_t count[SHM_NCLASS]; /* blocks per page */
    uint64_t recip[SHM_NCLASS]; /* floor(2^32 / size) + 1: rel / size == rel * recip >> 32,
                                 * exact for rel < 2^16 and size <= 2^16 */
} geo;

__attribute__((constructor)) static void geo_init(void)
{
    for (unsigned c = 0; c < SHM_NCLASS; c++) {
        uint32_t bs = ga__shm_class_size[c], nb = (uint32_t)(SHM_PAGE / (bs + 1)), hdr;
        for (;; nb--) {
            hdr = (nb + 15) & ~15u;
            if (hdr + (uint64_t)nb * bs <= SHM_PAGE) break;
        }
        geo.hdr[c] = hdr;
        geo.count[c] = nb;
        geo.recip[c] = ((uint64_t)1 << 32) / bs + 1;
    }
}

uint32_t ga__shm_class_hdr(unsigned c)
{
    return geo.hdr[c];
}
uint32_t ga__shm_class_count(unsigned c)
{
    return geo.count[c];
}

static inline unsigned size_class(size_t s)
{
    if (s <= 128) return s ? (unsigned)((s - 1) >> 4) : 0;
    unsigned lg = 63u - (unsigned)__builtin_clzll((unsigned long long)(s - 1));
    unsigned k = (unsigned)((s - 1) >> (lg - 2)); /* 4..7 */
    return 8 + (lg - 7) * 4 + (k - 4);
}

/* Thread-cache entries pack the block offset (< 2^40) with its index in the page. */
#define TC_OFF(e)         ((e) & (((uint64_t)1 << 40) - 1))
#define TC_IDX(e)         ((uint32_t)((e) >> 48))
#define TC_PACK(off, idx) ((off) | ((uint64_t)(idx) << 48))

static inline uint64_t top_pages(shm_att_t *a)
{
    uint64_t t = atomic_load_explicit(&a->hdr->npages_top, memory_order_acquire);
    return GA_LIKELY(t <= a->known_top) ? t : ga__shm_top_slow(a, t);
}

shm_page_t *ga__shm_page(shm_att_t *a, uint64_t i)
{
    return i < top_pages(a) ? &a->pages[i] : NULL;
}

static inline _Atomic uint8_t *state_bytes(shm_att_t *a, uint64_t page)
{
    return (_Atomic uint8_t *)(a->base + a->data_off + page * SHM_PAGE);
}

/* ---- locks ------------------------------------------------------------------------------ */

int ga__shm_lock_class(shm_att_t *a, unsigned c)
{
    return ga__shm_lock(a, &a->hdr->classes[c].lock, ga__shm_repair_class, (void *)(uintptr_t)c);
}

int ga__shm_lock_pages(shm_att_t *a)
{
    return ga__shm_lock(a, &a->hdr->pages_lock, ga__shm_repair_pages, NULL);
}

static void partial_push(shm_att_t *a, unsigned c, uint64_t pg)
{
    shm_page_t *r = &a->pages[pg];
    if (r->in_partial) return;
    r->in_partial = 1;
    r->next_partial = a->hdr->classes[c].partial_head;
    a->hdr->classes[c].partial_head = (uint32_t)(pg + 1);
}

static uint32_t count_free(shm_att_t *a, uint64_t pg, unsigned c)
{
    _Atomic uint8_t *st = state_bytes(a, pg);
    uint32_t n = 0;
    for (uint32_t i = 0; i < geo.count[c]; i++)
        n += atomic_load_explicit(&st[i], memory_order_relaxed) == ST_FREE;
    return n;
}

void ga__shm_repair_class(shm_att_t *a, void *arg)
{
    unsigned c = (unsigned)(uintptr_t)arg;
    shm_class_t *cl = &a->hdr->classes[c];
    cl->partial_head = 0;
    cl->npages = 0;
    uint64_t top = top_pages(a);
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

void ga__shm_repair_pages(shm_att_t *a, void *arg)
{
    (void)arg;
    shm_header_t *h = a->hdr;
    uint64_t top = top_pages(a);
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
    atomic_store(&h->pages_intent.op, INTENT_NONE);
    h->pages_hint = 0;
}

/* ---- pages ------------------------------------------------------------------------------ */

/* Finds n free pages (pages lock held), committing more if needed. Index or UINT64_MAX. */
static uint64_t find_run(shm_att_t *a, uint64_t n, int *err)
{
    shm_header_t *h = a->hdr;
    uint64_t top = top_pages(a), run = 0, start = h->pages_hint < top ? h->pages_hint : 0;
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
static uint64_t large_alloc(shm_att_t *a, uint64_t n, unsigned owner, int *err)
{
    shm_header_t *h = a->hdr;
    if ((*err = ga__shm_lock_pages(a)) != 0) return UINT64_MAX;
    uint64_t pg = find_run(a, n, err);
    if (pg != UINT64_MAX) {
        h->pages_intent.idx = (uint32_t)pg;
        h->pages_intent.new_size = n;
        h->pages_intent.slot = a->slot;
        atomic_store(&h->pages_intent.op, INTENT_PALLOC);
        for (uint64_t i = 1; i < n; i++)
            atomic_store(&a->pages[pg + i].desc, PD_MAKE(PG_TAIL, 0, 0, pg));
        atomic_store_explicit(&a->pages[pg].desc, PD_MAKE(PG_LARGE, owner, 0, n),
                              memory_order_release);
        atomic_store(&h->pages_intent.op, INTENT_NONE);
    }
    ga__shm_unlock(&h->pages_lock);
    return pg;
}

int ga__shm_large_release(shm_att_t *a, uint64_t pg, unsigned expect)
{
    shm_header_t *h = a->hdr;
    int rc = ga__shm_lock_pages(a);
    if (rc) return rc;
    uint64_t d = pg < top_pages(a) ? atomic_load(&a->pages[pg].desc) : 0;
    uint64_t n = PD_N(d);
    if (PD_KIND(d) != PG_LARGE || PD_OWNER(d) != expect || n == 0 || pg + n > top_pages(a)) {
        ga__shm_unlock(&h->pages_lock);
        return GA_ECORRUPT;
    }
    h->pages_intent.idx = (uint32_t)pg;
    h->pages_intent.new_size = n;
    h->pages_intent.slot = a->slot;
    atomic_store(&h->pages_intent.op, INTENT_PFREE);
    if (atomic_compare_exchange_strong(&a->pages[pg].desc, &d, PD_MAKE(PG_FREE, 0, 0, 0))) {
        for (uint64_t i = 1; i < n; i++)
            atomic_store(&a->pages[pg + i].desc, PD_MAKE(PG_FREE, 0, 0, 0));
        if (pg < h->pages_hint) h->pages_hint = (uint32_t)pg;
    } else {
        rc = GA_ECORRUPT;
    }
    atomic_store(&h->pages_intent.op, INTENT_NONE);
    ga__shm_unlock(&h->pages_lock);
    return rc;
}

/* A new page for class c (class lock held). 0 or GA_E*. */
static int small_page_new(shm_att_t *a, unsigned c)
{
    shm_header_t *h = a->hdr;
    int rc = ga__shm_lock_pages(a);
    if (rc) return rc;
    uint64_t pg = find_run(a, 1, &rc);
    if (pg != UINT64_MAX) {
        h->pages_intent.idx = (uint32_t)pg;
        h->pages_intent.new_size = 1;
        h->pages_intent.slot = a->slot;
        atomic_store(&h->pages_intent.op, INTENT_PALLOC);
        memset(a->base + a->data_off + pg * SHM_PAGE, 0, geo.hdr[c]);
        shm_page_t *r = &a->pages[pg];
        r->free_count = geo.count[c];
        r->scan = 0;
        r->in_partial = 0;
        r->next_partial = 0;
        r->owner = 0;
        atomic_store_explicit(&r->desc, PD_MAKE(PG_SMALL, 0, c, 0), memory_order_release);
        atomic_store(&h->pages_intent.op, INTENT_NONE);
    }
    ga__shm_unlock(&h->pages_lock);
    if (pg == UINT64_MAX) return rc;
    partial_push(a, c, pg);
    h->classes[c].npages++;
    return 0;
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
    ga__shm_unlock(&h->pages_lock);
    return rc;
}

/* ---- giving pages back ------------------------------------------------------------------ */

/* Returns the wholly free pages of class c to the page pool (class lock held). A page whose
 * state bytes are all FREE cannot change under the class lock: no cache holds a block of it
 * and no block of it is allocated. Unlinking it from the partial list is a hint change; the
 * descriptor store (under the pages lock) is the single step that gives it back. */
static uint64_t trim_class(shm_att_t *a, unsigned c)
{
    shm_class_t *cl = &a->hdr->classes[c];
    uint64_t top = top_pages(a), freed = 0, steps = 0;
    uint32_t *link = &cl->partial_head;
    while (*link && steps++ <= top) {
        uint64_t pg = *link - 1;
        uint64_t d = pg < top ? atomic_load(&a->pages[pg].desc) : 0;
        if (PD_KIND(d) != PG_SMALL || PD_CLASS(d) != c) break; /* a bad list: left for the repair */
        shm_page_t *r = &a->pages[pg];
        if (count_free(a, pg, c) != geo.count[c] || ga__shm_lock_pages(a) != 0) {
            link = &r->next_partial;
            continue;
        }
        *link = r->next_partial;
        r->in_partial = 0;
        r->next_partial = 0;
        r->free_count = 0;
        atomic_store(&r->desc, PD_MAKE(PG_FREE, 0, 0, 0));
        if (pg < a->hdr->pages_hint) a->hdr->pages_hint = (uint32_t)pg;
        ga__shm_unlock(&a->hdr->pages_lock);
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
            ga__shm_unlock(&a->hdr->classes[c].lock);
        }
    }
    return n;
}

/* ---- thread caches ---------------------------------------------------------------------- */

static GA_TLS shm_tcache_t *tl_tc[ATT_MAX];
/* Every thread cache of the process. tc_list_lock is the innermost lock: it is taken inside
 * shared-heap locks (a cache is made on first use), so its holder takes no other lock. */
static shm_tcache_t *tc_all;
static pthread_mutex_t tc_list_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_key_t tc_key;
static pthread_once_t tc_once = PTHREAD_ONCE_INIT;

static void flush_class(shm_att_t *a, shm_tcache_t *tc, unsigned c, uint32_t keep);

static void tc_thread_exit(void *arg)
{
    (void)arg;
    ga__shm_proc_lock(); /* keeps attachments from closing while we flush */
    for (unsigned i = 0; i < ATT_MAX; i++) {
        shm_tcache_t *tc = tl_tc[i];
        if (!tc) continue;
        if (tc->att && tc->att->state == ATT_OPEN && tc->att->serial == tc->serial)
            for (unsigned c = 0; c < SHM_NCLASS; c++)
                flush_class(tc->att, tc, c, 0);
        pthread_mutex_lock(&tc_list_lock);
        for (shm_tcache_t **pp = &tc_all; *pp; pp = &(*pp)->next) {
            if (*pp == tc) {
                *pp = tc->next;
                break;
            }
        }
        pthread_mutex_unlock(&tc_list_lock);
        tl_tc[i] = NULL;
        munmap(tc, sizeof *tc);
    }
    ga__shm_proc_unlock();
}

static void tc_init(void)
{
    pthread_key_create(&tc_key, tc_thread_exit);
}

static GA_NOINLINE shm_tcache_t *tc_slow(shm_att_t *a)
{
    shm_tcache_t *tc = tl_tc[a->index];
    if (!tc) {
        pthread_once(&tc_once, tc_init);
        tc = mmap(NULL, sizeof *tc, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (tc == MAP_FAILED) return NULL;
        pthread_mutex_lock(&tc_list_lock);
        tc->next = tc_all;
        tc_all = tc;
        pthread_mutex_unlock(&tc_list_lock);
        pthread_setspecific(tc_key, (void *)1);
        tl_tc[a->index] = tc;
    }
    /* A cache of a closed attachment was flushed by its close: start afresh. */
    memset(tc->n, 0, sizeof tc->n);
    tc->att = a;
    tc->serial = a->serial;
    return tc;
}

static inline shm_tcache_t *tc_get(shm_att_t *a)
{
    shm_tcache_t *tc = tl_tc[a->index];
    if (GA_LIKELY(tc && tc->att == a && tc->serial == a->serial)) return tc;
    return tc_slow(a);
}

void ga__shm_tcache_fork(int phase)
{
    if (phase == 0) {
        pthread_mutex_lock(&tc_list_lock);
        return;
    }
    if (phase == 2) {
        tc_all = NULL; /* the parent's caches: the child must not flush them */
        for (unsigned i = 0; i < ATT_MAX; i++)
            tl_tc[i] = NULL;
    }
    pthread_mutex_unlock(&tc_list_lock);
}

void ga__shm_flush_all(shm_att_t *a)
{
    /* The caller holds the process lock, so no cache goes away meanwhile (a thread that exits
     * waits for it); the list lock is only held to walk, never across a flush. */
    for (;;) {
        shm_tcache_t *tc;
        pthread_mutex_lock(&tc_list_lock);
        for (tc = tc_all; tc; tc = tc->next)
            if (tc->att == a && tc->serial == a->serial) break;
        pthread_mutex_unlock(&tc_list_lock);
        if (!tc) return;
        for (unsigned c = 0; c < SHM_NCLASS; c++)
            flush_class(a, tc, c, 0);
        tc->att = NULL;
    }
}

/* ---- small blocks ----------------------------------------------------------------------- */

/* Moves all but `keep` (the newest) cached blocks of class c back to the free pool. */
static void flush_class(shm_att_t *a, shm_tcache_t *tc, unsigned c, uint32_t keep)
{
    uint32_t n = tc->n[c];
    if (n <= keep || ga__shm_lock_class(a, c) != 0) return;
    uint32_t out = n - keep;
    uint64_t top = top_pages(a);
    uint8_t mine = (uint8_t)ST_CACHED(a->slot);
    for (uint32_t i = 0; i < out; i++) {
        uint64_t off = TC_OFF(tc->off[c][i]);
        uint32_t idx = TC_IDX(tc->off[c][i]);
        uint64_t pg = (off - a->data_off) >> SHM_PAGE_SHIFT;
        if (off < a->data_off || pg >= top || idx >= geo.count[c]) continue;
        uint64_t d = atomic_load(&a->pages[pg].desc);
        uint8_t e = mine;
        if (PD_KIND(d) != PG_SMALL || PD_CLASS(d) != c ||
            !atomic_compare_exchange_strong(&state_bytes(a, pg)[idx], &e, ST_FREE))
            continue; /* not ours any more: corruption, found by ga_shared_check */
        shm_page_t *r = &a->pages[pg];
        if (r->free_count < geo.count[c]) r->free_count++;
        partial_push(a, c, pg);
    }
    ga__shm_unlock(&a->hdr->classes[c].lock);
    memmove(tc->off[c], tc->off[c] + out, keep * sizeof tc->off[c][0]);
    tc->n[c] = keep;
}

void ga__shm_small_release_locked(shm_att_t *a, uint64_t pg, uint32_t idx)
{
    uint64_t d = atomic_load(&a->pages[pg].desc);
    unsigned c = PD_CLASS(d);
    atomic_store(&state_bytes(a, pg)[idx], ST_FREE);
    shm_page_t *r = &a->pages[pg];
    if (r->free_count < geo.count[c]) r->free_count++;
    partial_push(a, c, pg);
}

/* Scans page pg from its scan hint for FREE bytes; takes up to want of them. */
static uint32_t take_from_page(shm_att_t *a, shm_tcache_t *tc, unsigned c, uint64_t pg,
                               uint32_t want)
{
    shm_page_t *r = &a->pages[pg];
    _Atomic uint8_t *st = state_bytes(a, pg);
    uint32_t nb = geo.count[c], got = 0, i = r->scan < nb ? r->scan : 0;
    uint8_t mine = (uint8_t)ST_CACHED(a->slot);
    uint64_t pbase = a->data_off + pg * SHM_PAGE + geo.hdr[c];
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
    shm_class_t *cl = &a->hdr->classes[c];
    uint32_t me = a->slot + 1, owner = a->pages[cl->partial_head - 1].owner;
    if (owner == 0 || owner == me) return;
    uint64_t top = top_pages(a);
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

static GA_NOINLINE int refill(shm_att_t *a, shm_tcache_t *tc, unsigned c)
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
        uint64_t d = pg < top_pages(a) ? atomic_load(&a->pages[pg].desc) : 0;
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
    ga__shm_unlock(&cl->lock);
    return tc->n[c] > 0 ? 0 : (rc ? rc : GA_EFULL);
}

GA_INLINE uint64_t alloc_small(shm_att_t *a, unsigned c, int *err)
{
    shm_tcache_t *tc = tc_get(a);
    if (GA_UNLIKELY(!tc)) {
        *err = GA_ENOMEM;
        return 0;
    }
    if (GA_UNLIKELY(tc->n[c] == 0) && (*err = refill(a, tc, c)) != 0) return 0;
    uint64_t e = tc->off[c][--tc->n[c]];
    uint64_t off = TC_OFF(e);
    _Atomic uint8_t *st = (_Atomic uint8_t *)(a->base + (off & ~(SHM_PAGE - 1))) + TC_IDX(e);
    if (GA_UNLIKELY(atomic_load_explicit(st, memory_order_relaxed) != ST_CACHED(a->slot))) {
        *err = GA_ECORRUPT;
        return 0;
    }
    atomic_store_explicit(st, (uint8_t)ST_ALLOC(a->slot), memory_order_release);
    return off;
}

uint64_t ga__shm_alloc_off(shm_att_t *a, size_t size, bool zero)
{
    int err = 0;
    uint64_t off = 0;
    if (GA_LIKELY(size <= SHM_SMALL_MAX && !zero)) { /* the thread-cache path, inlined */
        off = alloc_small(a, size_class(size), &err);
        if (GA_LIKELY(off)) return off;
        if (err != GA_EFULL) {
            ga__set_error(err ? err : GA_EFULL);
            return 0;
        }
    }
    for (int attempt = 0; attempt < 2; attempt++) {
        if (size <= SHM_SMALL_MAX) {
            unsigned c = size_class(size);
            off = alloc_small(a, c, &err);
            if (off && zero) memset(a->base + off, 0, ga__shm_class_size[c]);
        } else {
            uint64_t n = (size + SHM_PAGE - 1) >> SHM_PAGE_SHIFT;
            uint64_t pg =
                size > SHM_MAX_SIZE ? UINT64_MAX : large_alloc(a, n, ST_ALLOC(a->slot), &err);
            if (size > SHM_MAX_SIZE) err = GA_EFULL;
            if (pg != UINT64_MAX) {
                off = a->data_off + pg * SHM_PAGE;
                if (zero) memset(a->base + off, 0, n * SHM_PAGE);
            }
        }
        if (off || err != GA_EFULL || attempt) break;
        /* Full: flush our caches, take back dead peers' caches and give wholly free pages of
         * every class back to the page pool, then try once more. */
        shm_tcache_t *tc = tc_get(a);
        for (unsigned c = 0; tc && c < SHM_NCLASS; c++)
            flush_class(a, tc, c, 0);
        if (ga__shm_recover(a, false) < 0) break;
        ga__shm_trim(a);
    }
    if (!off) ga__set_error(err ? err : GA_EFULL);
    return off;
}

/* ---- block lookup, free ----------------------------------------------------------------- */

typedef struct {
    uint64_t pg;
    uint32_t idx;
    unsigned cls; /* SHM_NCLASS for large */
    size_t usable;
} blockref_t;

/* Resolves off to a block start. 0 or GA_ENOTOWNED. */
GA_INLINE int resolve(shm_att_t *a, uint64_t off, blockref_t *b)
{
    uint64_t top = top_pages(a);
    if (off < a->data_off || off >= a->data_off + top * SHM_PAGE || (off & 15)) return GA_ENOTOWNED;
    b->pg = (off - a->data_off) >> SHM_PAGE_SHIFT;
    uint64_t d = atomic_load_explicit(&a->pages[b->pg].desc, memory_order_acquire);
    uint32_t in = (uint32_t)(off & (SHM_PAGE - 1));
    if (PD_KIND(d) == PG_SMALL) {
        unsigned c = PD_CLASS(d);
        if (c >= SHM_NCLASS || in < geo.hdr[c]) return GA_ENOTOWNED;
        uint32_t bs = ga__shm_class_size[c], rel = in - geo.hdr[c];
        uint32_t idx = (uint32_t)(((uint64_t)rel * geo.recip[c]) >> 32);
        if (idx * bs != rel || idx >= geo.count[c]) return GA_ENOTOWNED;
        b->idx = idx;
        b->cls = c;
        b->usable = bs;
        return 0;
    }
    if (PD_KIND(d) == PG_LARGE && in == 0 && PD_N(d) > 0 && b->pg + PD_N(d) <= top) {
        b->idx = 0;
        b->cls = SHM_NCLASS;
        b->usable = (size_t)PD_N(d) * SHM_PAGE;
        return 0;
    }
    return GA_ENOTOWNED;
}

GA_INLINE unsigned block_state(shm_att_t *a, const blockref_t *b)
{
    if (b->cls < SHM_NCLASS) return atomic_load(&state_bytes(a, b->pg)[b->idx]);
    return PD_OWNER(atomic_load(&a->pages[b->pg].desc));
}

size_t ga__shm_block_info(shm_att_t *a, uint64_t off, unsigned *state)
{
    blockref_t b;
    if (resolve(a, off, &b)) return 0;
    if (state) *state = block_state(a, &b);
    return b.usable;
}

GA_INLINE bool cas_ref(shm_att_t *a, const blockref_t *b, unsigned from, unsigned to)
{
    if (b->cls < SHM_NCLASS) {
        uint8_t e = (uint8_t)from;
        return atomic_compare_exchange_strong(&state_bytes(a, b->pg)[b->idx], &e, (uint8_t)to);
    }
    _Atomic uint64_t *dp = &a->pages[b->pg].desc;
    uint64_t d = atomic_load(dp);
    if (PD_KIND(d) != PG_LARGE || PD_OWNER(d) != from) return false;
    return atomic_compare_exchange_strong(dp, &d, (d & ~(uint64_t)0xFF00) | ((uint64_t)to << 8));
}

bool ga__shm_block_cas(shm_att_t *a, uint64_t off, unsigned from, unsigned to)
{
    blockref_t b;
    return resolve(a, off, &b) == 0 && cas_ref(a, &b, from, to);
}

int ga__shm_free_off(shm_att_t *a, uint64_t off, unsigned expect, bool in_window)
{
    blockref_t b;
    int rc = resolve(a, off, &b);
    if (rc) return rc;
    unsigned mine = ST_CACHED(a->slot), cur = expect ? expect : ST_ALLOC(a->slot);
    /* A small block's CAS is tried first with the likely state (our own allocation): on a
     * miss it hands back the real state byte, which is then checked as before. So the common
     * free reads the state byte once, inside the CAS. */
    if (b.cls < SHM_NCLASS) {
        uint8_t e = (uint8_t)cur;
        if (GA_LIKELY(atomic_compare_exchange_strong(&state_bytes(a, b.pg)[b.idx], &e,
                                                     (uint8_t)mine)))
            goto small_cached;
    }
    for (;;) {
        cur = block_state(a, &b);
        if (ST_KIND(cur) != ST_KALLOC)
            return (cur == ST_FREE || ST_KIND(cur) == ST_KCACHED) ? GA_EDOUBLEFREE : GA_ECORRUPT;
        if (expect && cur != expect) return GA_ENOTOWNED;
        if (cas_ref(a, &b, cur, mine)) break;
    }
    if (b.cls == SHM_NCLASS) return in_window ? 0 : ga__shm_large_release(a, b.pg, mine);
small_cached:;
    shm_tcache_t *tc = tc_get(a);
    if (!tc) return GA_ENOMEM; /* the block stays CACHED(me): recovered when we go */
    if (tc->n[b.cls] >= TC_CAP) flush_class(a, tc, b.cls, TC_CAP / 2);
    if (tc->n[b.cls] < TC_SLOTS) tc->off[b.cls][tc->n[b.cls]++] = TC_PACK(off, b.idx);
    return 0;
}

void ga__shm_after_window(shm_att_t *a, uint64_t off)
{
    blockref_t b;
    if (off && resolve(a, off, &b) == 0 && b.cls == SHM_NCLASS &&
        block_state(a, &b) == ST_CACHED(a->slot))
        ga__shm_large_release(a, b.pg, ST_CACHED(a->slot));
}

/* ---- public ----------------------------------------------------------------------------- */

void *ga_shared_alloc(ga_heap_t *heap, size_t size)
{
    shm_att_t *a = ga__shm_att_fast(heap);
    if (!a) return NULL;
    uint64_t off = ga__shm_alloc_off(a, size, false);
    return off ? a->base + off : NULL;
}

void *ga_shared_calloc(ga_heap_t *heap, size_t n, size_t size)
{
    shm_att_t *a = ga__shm_att(heap);
    if (!a) return NULL;
    if (size && n > SIZE_MAX / size) {
        ga__set_error(GA_EOVERFLOW);
        return NULL;
    }
    uint64_t off = ga__shm_alloc_off(a, n * size, true);
    return off ? a->base + off : NULL;
}

static uint64_t ptr_off(shm_att_t *a, const void *p)
{
    uintptr_t u = (uintptr_t)p, b = (uintptr_t)a->base;
    return u >= b && u - b < a->map_size ? (uint64_t)(u - b) : 0;
}

int ga_shared_free(ga_heap_t *heap, void *p)
{
    shm_att_t *a = ga__shm_att_fast(heap);
    if (!a) return GA_EINVAL;
    if (!p) return 0;
    uint64_t off = ptr_off(a, p);
    int rc = off ? ga__shm_free_off(a, off, 0, false) : GA_ENOTOWNED;
    if (rc) {
        ga__report(rc, (uintptr_t)p, false, "ga_shared_free(%s): %s", a->name, ga_strerror(rc));
        ga__set_error(rc);
    }
    return rc;
}

size_t ga_shared_usable_size(ga_heap_t *heap, const void *p)
{
    shm_att_t *a = ga__shm_att(heap);
    unsigned st = 0;
    size_t n = a && p ? ga__shm_block_info(a, ptr_off(a, p), &st) : 0;
    if (!n || ST_KIND(st) != ST_KALLOC) {
        ga__set_error(GA_ENOTOWNED);
        return 0;
    }
    return n;
}

void *ga_shared_realloc(ga_heap_t *heap, void *p, size_t size)
{
    shm_att_t *a = ga__shm_att(heap);
    if (!a) return NULL;
    if (!p) return ga_shared_alloc(heap, size);
    unsigned st = 0;
    uint64_t off = ptr_off(a, p);
    size_t old = off ? ga__shm_block_info(a, off, &st) : 0;
    if (!old || ST_KIND(st) != ST_KALLOC) {
        int rc = old ? GA_EDOUBLEFREE : GA_ENOTOWNED;
        ga__report(rc, (uintptr_t)p, false, "ga_shared_realloc(%s): %s", a->name, ga_strerror(rc));
        ga__set_error(rc);
        return NULL;
    }
    if (size <= old && (size > old / 2 || old <= 16)) return p;
    uint64_t noff = ga__shm_alloc_off(a, size, false);
    if (!noff) return NULL;
    memcpy(a->base + noff, p, old < size ? old : size);
    ga__shm_free_off(a, off, 0, false);
    return a->base + noff;
}

uint64_t ga_shared_offset(ga_heap_t *heap, const void *p)
{
    shm_att_t *a = ga__shm_att(heap);
    uint64_t off = a ? ptr_off(a, p) : 0;
    if (!a || off < a->data_off || off >= a->data_off + top_pages(a) * SHM_PAGE) {
        ga__set_error(GA_ENOTOWNED);
        return 0;
    }
    return off;
}

void *ga_shared_ptr(ga_heap_t *heap, uint64_t off)
{
    shm_att_t *a = ga__shm_att(heap);
    if (!a) return NULL;
    if (off < a->data_off || off >= a->data_off + top_pages(a) * SHM_PAGE) {
        ga__set_error(GA_EINVAL);
        return NULL;
    }
    return a->base + off;
}
