/* SPDX-License-Identifier: MIT */
/*
 * Shared heaps: handles (moveable blocks) whose table lives in the segment.
 *
 * A handle is H_MAKE(entry index, generation, heap id): position-independent, so it means the
 * same block in every attached process, and each process turns it into its own pointer on
 * ga_handle_lock. The table is a list of 64 KiB chunks (PG_HTABLE pages, hdr->hchunk[] lists
 * them) of 32-byte entries; entry i belongs to stripe i % SHM_NSTRIPES (16), whose robust lock
 * guards every change of its entries (so different handles rarely contend). A live entry's block is
 * owned by the heap (state ALLOC(SHM_SLOT_HEAP)) and starts with a 16-byte prefix naming the entry,
 * so ga_handle_from_ptr finds the handle from its data.
 *
 * Every change that touches more than one word is logged in the stripe's intent record:
 *   alloc:   block allocated as ALLOC(me), intent HALLOC, entry filled, word LIVE (commit),
 *            block handed to the heap, intent cleared.
 *   realloc: new block as ALLOC(me), intent HREALLOC, copy, data_off = new (commit), size,
 *            new block to the heap, old block freed (stays CACHED(me): see ga__shm_free_off).
 *   free:    intent HFREE, word not LIVE + generation bumped (commit), block freed.
 * repair_stripe (after EOWNERDEAD) looks at the commit word: done -> finish (hand over the new
 * block, free the old one if still the heap's); not done -> undo (free the new block if still
 * ALLOC(dead)). The stripe's free list is a hint, rebuilt from the entries' words.
 *
 * Each live entry names its creator (slot, generation, pid; layout.h): src/shared/orphan.c
 * finds the handles whose creator has gone. A handle of a heap this process has not open is
 * resolved through the process's share heap, attached on first use (att_for_id).
 */
#include "shared/shared_internal.h"
#include "os/os.h"
#include <string.h>

shm_hentry_t *ga__shm_hentry(shm_att_t *a, uint32_t idx)
{
    uint32_t chunk = idx / SHM_HCHUNK_ENTRIES;
    if (chunk >= SHM_HCHUNKS_MAX) return NULL;
    uint32_t pg1 = atomic_load_explicit(&a->hdr->hchunk[chunk], memory_order_acquire);
    shm_page_t *r = pg1 ? ga__shm_page(a, pg1 - 1) : NULL;
    if (!r) return NULL;
    uint64_t d = atomic_load(&r->desc);
    if (PD_KIND(d) != PG_HTABLE || PD_N(d) != chunk) return NULL;
    shm_hentry_t *t = (shm_hentry_t *)(a->base + a->data_off + (uint64_t)(pg1 - 1) * SHM_PAGE);
    return &t[idx % SHM_HCHUNK_ENTRIES];
}

/* ---- stripes ---------------------------------------------------------------------------- */

static void repair_stripe(shm_att_t *a, void *arg);

int ga__shm_lock_stripe(shm_att_t *a, unsigned s)
{
    return ga__shm_lock(a, SHM_LOCK_STRIPE(s), repair_stripe, (void *)(uintptr_t)s);
}

static inline void unlock_stripe(shm_att_t *a, unsigned s)
{
    ga__shm_unlock(a, SHM_LOCK_STRIPE(s));
}

static void repair_intent(shm_att_t *a, shm_intent_t *in)
{
    unsigned op = atomic_load(&in->op);
    shm_hentry_t *e = op ? ga__shm_hentry(a, in->idx) : NULL;
    unsigned dead = ga__shm_intent_owner(in);
    unsigned heap = ST_ALLOC(SHM_SLOT_HEAP);
    if (e && op == INTENT_HALLOC) {
        uint64_t w = atomic_load(&e->word);
        if ((w & HW_LIVE) && e->data_off == in->new_off)
            ga__shm_block_cas(a, in->new_off, dead, heap);
        else
            ga__shm_free_if(a, in->new_off, dead);
    } else if (e && op == INTENT_HREALLOC) {
        if (e->data_off == in->new_off) { /* committed: finish */
            e->size = in->new_size;
            ga__shm_block_cas(a, in->new_off, dead, heap);
            ga__shm_free_if(a, in->old_off, heap);
        } else { /* not committed: undo */
            e->size = in->old_size;
            ga__shm_free_if(a, in->new_off, dead);
        }
    } else if (e && op == INTENT_HFREE) {
        if (!(atomic_load(&e->word) & HW_LIVE)) {
            ga__shm_free_if(a, in->old_off, heap);
            e->data_off = 0;
            e->size = 0;
        }
    }
    ga__shm_intent_end(in);
}

static void repair_stripe(shm_att_t *a, void *arg)
{
    unsigned s = (unsigned)(uintptr_t)arg;
    GA_ASSERT_SHM_HELD(a, SHM_LOCK_STRIPE(s));
    shm_stripe_t *st = &a->hdr->stripes[s];
    repair_intent(a, &st->intent);
    st->free_head = 0;
    uint32_t kmax = (uint32_t)(((uint64_t)1 << 24) / SHM_NSTRIPES);
    if (st->next_k > kmax) st->next_k = kmax;
    for (uint32_t k = st->next_k; k-- > 0;) {
        uint32_t idx = s + k * SHM_NSTRIPES;
        shm_hentry_t *e = ga__shm_hentry(a, idx);
        if (!e) {
            st->next_k = k; /* the chunk never came: these entries were never used */
            continue;
        }
        if (!(atomic_load(&e->word) & HW_LIVE)) {
            e->next_free = st->free_head;
            st->free_head = idx + 1;
        }
    }
}

/* Takes a free entry of stripe s (lock held). Index, or UINT32_MAX (*err set). */
static uint32_t entry_new(shm_att_t *a, unsigned s, int *err)
{
    GA_ASSERT_SHM_HELD(a, SHM_LOCK_STRIPE(s));
    shm_stripe_t *st = &a->hdr->stripes[s];
    while (st->free_head) {
        uint32_t idx = st->free_head - 1;
        shm_hentry_t *e = idx % SHM_NSTRIPES == s ? ga__shm_hentry(a, idx) : NULL;
        if (e && !(atomic_load(&e->word) & HW_LIVE)) {
            st->free_head = e->next_free;
            return idx;
        }
        repair_stripe(a, (void *)(uintptr_t)s); /* a bad hint: rebuild it from the truth */
        if (st->free_head == idx + 1) {
            *err = GA_ECORRUPT;
            return UINT32_MAX;
        }
    }
    uint64_t idx = s + (uint64_t)st->next_k * SHM_NSTRIPES;
    if (idx >= ((uint64_t)1 << 24)) {
        *err = GA_EFULL;
        return UINT32_MAX;
    }
    if ((*err = ga__shm_htable_chunk(a, (uint32_t)(idx / SHM_HCHUNK_ENTRIES))) != 0)
        return UINT32_MAX;
    st->next_k++;
    return (uint32_t)idx;
}

static void entry_release(shm_att_t *a, unsigned s, uint32_t idx, shm_hentry_t *e)
{
    GA_ASSERT_SHM_HELD(a, SHM_LOCK_STRIPE(s));
    shm_stripe_t *st = &a->hdr->stripes[s];
    e->next_free = st->free_head;
    st->free_head = idx + 1;
}

/* Names entry idx in the prefix of its new data block at off. */
static void prefix_put(shm_att_t *a, uint64_t off, uint32_t idx)
{
    shm_hprefix_t *p = (shm_hprefix_t *)(a->base + off);
    p->magic = HPREFIX_MAGIC;
    p->index = idx;
    p->pad = 0;
}

/* Is the entry's block sane? (live entry with data_off != 0) */
static bool entry_block_ok(shm_att_t *a, shm_hentry_t *e, uint32_t idx, size_t *usable)
{
    unsigned st = 0;
    size_t u = ga__shm_block_info(a, e->data_off, &st);
    if (!u || st != ST_ALLOC(SHM_SLOT_HEAP) || e->size > u - HPREFIX) return false;
    const shm_hprefix_t *p = (const shm_hprefix_t *)(a->base + e->data_off);
    if (p->magic != HPREFIX_MAGIC || p->index != idx) return false;
    if (usable) *usable = u;
    return true;
}

/* ---- operations on one handle ----------------------------------------------------------- */

typedef struct {
    shm_att_t *a;
    shm_hentry_t *e;
    uint32_t idx;
    unsigned stripe;
    uint64_t word;
} hctx_t;

/* The attachment for heap id `id`: a heap this process has open, else the process's share heap
 * (GLOBALALLOC_HEAP / ga_set_share_heap), attached on this first use of one of its handles, if
 * it is that heap. A process may thus use a handle it received without allocating first. NULL
 * (GA_EHANDLE set) when neither is that heap. */
static shm_att_t *att_for_id(unsigned id)
{
    shm_att_t *a = ga__shm_att_by_id(id);
    if (a) return a;
    int err;
    if (!ga__share_heap_get(&err)) { /* none configured, or it cannot be opened (reported) */
        ga__set_error(GA_EHANDLE);
        return NULL;
    }
    return ga__shm_att_by_id(id);
}

/* Resolves and locks h's stripe. 0 (stripe locked) or GA_EHANDLE / GA_ECORRUPT (not locked). */
static int hopen(ga_handle_t h, hctx_t *c)
{
    if ((h & 15) != GA__H_SHAPE || (h >> 63) || H_HEAPID(h) == 0) return GA_EHANDLE;
    c->a = att_for_id(H_HEAPID(h));
    if (!c->a) return GA_EHANDLE;
    c->idx = H_INDEX(h);
    c->stripe = c->idx % SHM_NSTRIPES;
    c->e = ga__shm_hentry(c->a, c->idx);
    if (!c->e) return GA_EHANDLE;
    int rc = ga__shm_lock_stripe(c->a, c->stripe);
    if (rc) return rc;
    c->word = atomic_load(&c->e->word);
    if (!(c->word & HW_LIVE) || HW_GEN(c->word) != H_GEN(h)) {
        unlock_stripe(c->a, c->stripe);
        return GA_EHANDLE;
    }
    if (c->e->data_off ? !entry_block_ok(c->a, c->e, c->idx, NULL) : c->e->size != 0) {
        unlock_stripe(c->a, c->stripe);
        ga__shm_corrupt(c->a, false, h, "handle entry points to a bad block");
        return GA_ECORRUPT;
    }
    return 0;
}

static inline void hclose(hctx_t *c)
{
    unlock_stripe(c->a, c->stripe);
}

static unsigned pick_stripe(void)
{
    static GA_TLS unsigned next;
    if (next == 0) next = (unsigned)((uintptr_t)&next >> 6) | 1u;
    return (next++) % SHM_NSTRIPES;
}

ga_handle_t ga__shared_handle_alloc(ga_heap_t *heap, size_t size, unsigned flags)
{
    shm_att_t *a = ga__shm_att(heap);
    if (!a) return 0;
    if (size > SIZE_MAX - HPREFIX) {
        ga__set_error(GA_EOVERFLOW);
        return 0;
    }
    /* The block first, with no lock held: a full heap runs dead-peer recovery, which takes
     * every lock (a stripe lock held here would deadlock it, or a peer recovering). */
    uint64_t off = 0;
    int err = 0;
    if (size > 0) {
        off = ga__shm_alloc_off(a, size + HPREFIX, (flags & GA_HZERO) != 0);
        if (!off) {
            err = ga_last_error();
            ga__set_error(err == GA_EFULL ? GA_ENOMEM : err);
            return 0;
        }
    }
    unsigned s = pick_stripe();
    uint32_t idx = UINT32_MAX;
    shm_hentry_t *e = NULL;
    if ((err = ga__shm_lock_stripe(a, s)) == 0) {
        idx = entry_new(a, s, &err);
        e = idx == UINT32_MAX ? NULL : ga__shm_hentry(a, idx);
        if (idx != UINT32_MAX && !e) /* the chunk directory changed under us: corruption */
            err = ga__shm_corrupt(a, false, idx, "handle-table chunk is missing");
        if (!e) unlock_stripe(a, s);
    }
    if (!e) {
        if (off) ga__shm_free_off(a, off, ST_ALLOC(a->slot), false);
        ga__set_error(err);
        return 0;
    }
    shm_intent_t *in = ga__shm_intent_of(a, SHM_LOCK_STRIPE(s));
    if (off) {
        ga__shm_intent_begin(a, SHM_LOCK_STRIPE(s), idx);
        ga__shm_intent_add_blocks(in, off, 0);
        ga__shm_intent_commit(in, INTENT_HALLOC);
        prefix_put(a, off, idx);
    }
    uint32_t gen = HW_GEN(atomic_load(&e->word));
    e->data_off = off;
    e->size = size;
    __atomic_store_n(&e->creator_pid, (int32_t)ga__os_pid(), __ATOMIC_RELAXED); /* scans read */
    __atomic_store_n(&e->creator, HC_MAKE(a->slot, atomic_load(&a->hdr->slots[a->slot].gen)),
                     __ATOMIC_RELAXED);
    unsigned rec = (flags & (GA_HDISCARDABLE | GA_HSHARE)) | GA_HSHARE;
    atomic_store_explicit(&e->word, HW_MAKE(gen, 1, 0, rec), memory_order_release);
    if (off) ga__shm_block_cas(a, off, ST_ALLOC(a->slot), ST_ALLOC(SHM_SLOT_HEAP));
    ga__shm_intent_end(in);
    unlock_stripe(a, s);
    return H_MAKE(idx, gen, a->heap_id);
}

ga_handle_t ga_shared_handle_alloc(ga_heap_t *heap, size_t size, unsigned flags)
{
    shm_att_t *a = ga__shm_att(heap);
    if (!a) return 0;
    SHM_GUARD_ENTER(); /* a file truncated underneath: GA_ECORRUPT, not SIGBUS */
    ga_handle_t h = ga__shared_handle_alloc(heap, size, flags);
    if (GA_UNLIKELY(SHM_GUARD_LEAVE(a))) return ga__set_error(GA_ECORRUPT), 0;
    return h;
}

uint64_t ga__shm_entry_free(shm_att_t *a, unsigned s, uint32_t idx, shm_hentry_t *e, uint64_t w)
{
    GA_ASSERT_SHM_HELD(a, SHM_LOCK_STRIPE(s));
    uint64_t old = e->data_off;
    shm_intent_t *in = ga__shm_intent_begin(a, SHM_LOCK_STRIPE(s), idx);
    ga__shm_intent_add_blocks(in, 0, old);
    ga__shm_intent_commit(in, INTENT_HFREE);
    atomic_store(&e->word, HW_MAKE((HW_GEN(w) + 1) & HW_GEN_MASK, 0, 0, 0)); /* commit */
    if (old) ga__shm_free_off(a, old, ST_ALLOC(SHM_SLOT_HEAP), true);
    e->data_off = 0;
    e->size = 0;
    e->creator = 0;
    entry_release(a, s, idx, e);
    ga__shm_intent_end(in);
    return old;
}

int ga__shared_handle_free(ga_handle_t h)
{
    hctx_t c;
    int rc = hopen(h, &c);
    if (rc) return ga__set_error(rc);
    uint64_t old = ga__shm_entry_free(c.a, c.stripe, c.idx, c.e, c.word);
    hclose(&c);
    ga__shm_after_window(c.a, old);
    return 0;
}

void *ga__shared_handle_lock(ga_handle_t h)
{
    hctx_t c;
    int rc = hopen(h, &c);
    if (rc) {
        ga__set_error(rc);
        return NULL;
    }
    void *p = NULL;
    if (c.e->data_off == 0) {
        rc = GA_EDISCARDED;
    } else {
        if (HW_LOCKS(c.word) < 255) atomic_store(&c.e->word, c.word + ((uint64_t)1 << 32));
        p = c.a->base + c.e->data_off + HPREFIX;
    }
    hclose(&c);
    if (rc) ga__set_error(rc);
    return p;
}

int ga__shared_handle_unlock(ga_handle_t h)
{
    hctx_t c;
    int rc = hopen(h, &c);
    if (rc) return ga__set_error(rc);
    unsigned n = HW_LOCKS(c.word);
    if (n == 0) {
        hclose(&c);
        return ga__set_error(GA_ENOTLOCKED);
    }
    atomic_store(&c.e->word, c.word - ((uint64_t)1 << 32));
    hclose(&c);
    return (int)(n - 1);
}

/* Moves the entry's data to the new block noff (ALLOC(me), allocated for `size` bytes before
 * the stripe was locked), or drops it when size == 0 (noff 0). Stripe locked. */
static void hmove(hctx_t *c, uint64_t noff, size_t size, bool zero)
{
    GA_ASSERT_SHM_HELD(c->a, SHM_LOCK_STRIPE(c->stripe));
    shm_att_t *a = c->a;
    uint64_t old = c->e->data_off;
    size_t osize = c->e->size;
    shm_intent_t *in = ga__shm_intent_begin(a, SHM_LOCK_STRIPE(c->stripe), c->idx);
    ga__shm_intent_add_blocks(in, noff, old);
    ga__shm_intent_add_sizes(in, size, osize);
    ga__shm_intent_commit(in, INTENT_HREALLOC);
    if (noff) {
        prefix_put(a, noff, c->idx);
        size_t keep = old ? (osize < size ? osize : size) : 0;
        if (keep) memcpy(a->base + noff + HPREFIX, a->base + old + HPREFIX, keep);
        if (zero && size > keep) memset(a->base + noff + HPREFIX + keep, 0, size - keep);
    }
    atomic_store_explicit((_Atomic uint64_t *)&c->e->data_off, noff, memory_order_release);
    c->e->size = size;
    if (noff) ga__shm_block_cas(a, noff, ST_ALLOC(a->slot), ST_ALLOC(SHM_SLOT_HEAP));
    if (old) ga__shm_free_off(a, old, ST_ALLOC(SHM_SLOT_HEAP), true);
    ga__shm_intent_end(in);
}

int ga__shared_handle_realloc(ga_handle_t h, size_t size, unsigned flags)
{
    if (flags & ~(unsigned)(GA_HZERO | GA_HMOVE)) return ga__set_error(GA_EINVAL);
    if (size > SIZE_MAX - HPREFIX) return ga__set_error(GA_EOVERFLOW);
    hctx_t c;
    shm_att_t *na = NULL; /* the heap noff belongs to */
    uint64_t noff = 0, old;
    int rc;
    /* A move needs a new block, allocated with the stripe unlocked (a full heap runs recovery,
     * which takes every lock): then the entry is looked at again, as it may have changed. */
    for (;;) {
        if ((rc = hopen(h, &c)) != 0) break;
        old = c.e->data_off;
        size_t usable = 0;
        bool move = false;
        if (size == 0) {
            rc = HW_LOCKS(c.word) ? GA_ELOCKED : 0;
            if (rc == 0 && old) hmove(&c, 0, 0, false);
        } else if (old && entry_block_ok(c.a, c.e, c.idx, &usable) && size <= usable - HPREFIX) {
            if ((flags & GA_HZERO) && size > c.e->size)
                memset(c.a->base + old + HPREFIX + c.e->size, 0, size - c.e->size);
            c.e->size = size; /* in place: one store */
            old = 0;
        } else if (HW_LOCKS(c.word) && !(flags & GA_HMOVE)) {
            rc = GA_ENOMEM;
            old = 0;
        } else if (noff && c.a == na) {
            hmove(&c, noff, size, (flags & GA_HZERO) != 0);
            noff = 0;
        } else {
            move = true;
        }
        hclose(&c);
        if (!move) {
            if (old && rc == 0) ga__shm_after_window(c.a, old);
            break;
        }
        na = c.a;
        if ((noff = ga__shm_alloc_off(na, size + HPREFIX, false)) == 0) {
            rc = GA_ENOMEM;
            break;
        }
    }
    if (noff) ga__shm_free_off(na, noff, ST_ALLOC(na->slot), false); /* not needed after all */
    return rc ? ga__set_error(rc) : 0;
}

int ga__shared_handle_discard(ga_handle_t h)
{
    return ga__shared_handle_realloc(h, 0, 0);
}

int ga__shared_handle_info(ga_handle_t h, ga_handle_info_t *info)
{
    hctx_t c;
    if (!info) return ga__set_error(GA_EINVAL);
    int rc = hopen(h, &c);
    if (rc) return ga__set_error(rc);
    info->size = c.e->size;
    info->lock_count = HW_LOCKS(c.word);
    info->flags =
        (HW_FLAGS(c.word) & GA_HDISCARDABLE) | GA_HSHARE | (c.e->data_off ? 0 : GA_HDISCARDED);
    info->data = c.e->data_off ? c.a->base + c.e->data_off + HPREFIX : NULL;
    hclose(&c);
    return 0;
}

size_t ga__shared_handle_size(ga_handle_t h)
{
    hctx_t c;
    int rc = hopen(h, &c);
    if (rc) {
        ga__set_error(rc);
        return 0;
    }
    size_t n = c.e->size;
    hclose(&c);
    return n;
}

int ga__shared_handle_modify(ga_handle_t h, unsigned set, unsigned clear)
{
    if ((set | clear) & ~(unsigned)(GA_HDISCARDABLE | GA_HSHARE)) return ga__set_error(GA_EINVAL);
    hctx_t c;
    int rc = hopen(h, &c);
    if (rc) return ga__set_error(rc);
    unsigned f = (HW_FLAGS(c.word) | set) & ~clear;
    atomic_store(&c.e->word, (c.word & ~((uint64_t)0xFF << 40)) | ((uint64_t)f << 40));
    hclose(&c);
    return 0;
}

ga_handle_t ga__shared_handle_from_ptr(const void *p)
{
    shm_att_t *a = ga__shm_att_by_ptr(p);
    if (!a) return 0;
    uint64_t off = (uint64_t)((uintptr_t)p - (uintptr_t)a->base);
    unsigned st = 0;
    if (off < HPREFIX || !ga__shm_block_info(a, off - HPREFIX, &st) ||
        st != ST_ALLOC(SHM_SLOT_HEAP)) {
        ga__set_error(GA_ENOTOWNED);
        return 0;
    }
    const shm_hprefix_t *pre = (const shm_hprefix_t *)(a->base + off - HPREFIX);
    uint32_t idx = pre->index;
    shm_hentry_t *e = pre->magic == HPREFIX_MAGIC ? ga__shm_hentry(a, idx) : NULL;
    ga_handle_t h = 0;
    if (e && ga__shm_lock_stripe(a, idx % SHM_NSTRIPES) == 0) {
        uint64_t w = atomic_load(&e->word);
        if ((w & HW_LIVE) && e->data_off == off - HPREFIX) h = H_MAKE(idx, HW_GEN(w), a->heap_id);
        unlock_stripe(a, idx % SHM_NSTRIPES);
    }
    if (!h) ga__set_error(GA_ENOTOWNED);
    return h;
}

long ga__shm_each_handle(shm_att_t *a, ga__shm_entry_fn *fn, void *arg)
{
    long n = 0;
    for (unsigned s = 0; s < SHM_NSTRIPES; s++) {
        uint32_t next_k = a->hdr->stripes[s].next_k;
        for (uint32_t k = 0; k < next_k; k++) {
            uint32_t idx = s + k * SHM_NSTRIPES;
            shm_hentry_t *e = ga__shm_hentry(a, idx);
            if (!e) break;
            uint64_t w = atomic_load(&e->word);
            if ((w & HW_LIVE) && (!fn || fn(arg, idx, e, w))) n++;
        }
    }
    return n;
}

typedef struct {
    ga_handle_t *out;
    size_t max, n;
    unsigned heap_id;
} list_ctx_t;

static bool list_one(void *arg, uint32_t idx, shm_hentry_t *e, uint64_t w)
{
    list_ctx_t *l = arg;
    (void)e;
    if (l->out && l->n < l->max) l->out[l->n] = H_MAKE(idx, HW_GEN(w), l->heap_id);
    l->n++;
    return true;
}

long ga_shared_handle_list(ga_heap_t *heap, ga_handle_t *out, size_t max)
{
    shm_att_t *a = ga__shm_att(heap);
    if (!a) return GA_EINVAL;
    list_ctx_t l = {.out = out, .max = max, .heap_id = a->heap_id};
    return ga__shm_each_handle(a, list_one, &l);
}

/* ---- check ------------------------------------------------------------------------------ */

int ga__shm_check_handles(shm_att_t *a, uint64_t *refs, uint64_t *bytes, uint64_t *nlive,
                          bool quiet)
{
    for (unsigned s = 0; s < SHM_NSTRIPES; s++) {
        shm_stripe_t *st = &a->hdr->stripes[s];
        GA_ASSERT_SHM_HELD(a, SHM_LOCK_STRIPE(s));
        if (atomic_load(&st->intent.op) != INTENT_NONE)
            return ga__shm_corrupt(a, quiet, s, "handle stripe has an unfinished change");
        uint32_t nfree = 0, listed = 0;
        for (uint32_t k = 0; k < st->next_k; k++) {
            uint32_t idx = s + k * SHM_NSTRIPES;
            shm_hentry_t *e = ga__shm_hentry(a, idx);
            if (!e) return ga__shm_corrupt(a, quiet, idx, "handle entry in a missing chunk");
            uint64_t w = atomic_load(&e->word);
            if (!(w & HW_LIVE)) {
                nfree++;
                continue;
            }
            size_t u = 0;
            if (e->data_off ? !entry_block_ok(a, e, idx, &u) : e->size != 0)
                return ga__shm_corrupt(a, quiet, idx, "handle entry points to a bad block");
            if (HW_FLAGS(w) & ~(unsigned)(GA_HDISCARDABLE | GA_HSHARE))
                return ga__shm_corrupt(a, quiet, idx, "handle entry has unknown flags");
            if (e->creator && (HC_SLOT(e->creator) >= SHM_PROC_SLOTS || (e->creator >> 24)))
                return ga__shm_corrupt(a, quiet, idx, "handle entry names a bad creator");
            (*nlive)++;
            if (e->data_off) {
                (*refs)++;
                *bytes += u;
            }
        }
        for (uint32_t f = st->free_head; f; listed++) {
            shm_hentry_t *e = (f - 1) % SHM_NSTRIPES == s ? ga__shm_hentry(a, f - 1) : NULL;
            if (!e || listed >= nfree || (atomic_load(&e->word) & HW_LIVE))
                return ga__shm_corrupt(a, quiet, s, "handle free list is broken");
            f = e->next_free;
        }
        if (listed != nfree)
            return ga__shm_corrupt(a, quiet, s, "handle entries lost from the free list");
    }
    return 0;
}

/* The handle layer reaches shared handles only through this table (src/init.c installs it). */
const ga__remote_ops_t ga__shared_remote_ops = {
    .is_heap = ga__shared_is_heap,
    .alloc = ga__shared_handle_alloc,
    .free = ga__shared_handle_free,
    .lock = ga__shared_handle_lock,
    .unlock = ga__shared_handle_unlock,
    .realloc = ga__shared_handle_realloc,
    .discard = ga__shared_handle_discard,
    .info = ga__shared_handle_info,
    .size = ga__shared_handle_size,
    .modify = ga__shared_handle_modify,
    .from_ptr = ga__shared_handle_from_ptr,
};
