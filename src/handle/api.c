/* SPDX-License-Identifier: MIT */
/*
 * The native ga_handle_* API over the slot table (table.c) and tagged blocks (block.c), and the
 * slow paths of the inline lock/unlock in handle.h. Handles of shared heaps are passed on to
 * src/shared/.
 *
 * Handle values: bit 3 set and bits 0..2 clear (v % 16 == 8), bits 4..27 the slot index,
 * bits 28..51 the slot generation (never 0 for a live handle), bits 52..62 a heap id (0 = the
 * process heap; others are reserved for shared heaps), bit 63 clear. No pointer is stored in a
 * handle, so handle values are position independent.
 *
 * Concurrency: lock/unlock are one CAS on the state word. Everything that changes the data,
 * size, attributes or liveness first sets BUSY by CAS (lockers wait for it to clear; unlocks
 * do not need to), then releases it with a CAS that bumps the sequence, so readers can take a
 * consistent lock-free snapshot (seqlock style). An alloc or free marks its thread's cache
 * (ga__op_begin/ga__op_end) so that a fork child knows a slot may be between places.
 */
#include "handle/handle_internal.h"
#include <sched.h>
#include <stdatomic.h>

/* ---- handles of other heaps ------------------------------------------------------------ */

const ga__remote_ops_t *ga__remote;

void ga__handle_set_remote(const ga__remote_ops_t *ops) { ga__remote = ops; }

/* Operation op of a handle of another heap, or fail with GA_EHANDLE while none is installed. */
#define REMOTE(op, fail, ...)                                                                  \
    (ga__remote != NULL ? ga__remote->op(__VA_ARGS__) : (ga__set_error(GA_EHANDLE), (fail)))

static inline uint64_t attr_to_state(unsigned f)
{
    return ((f & GA_HDISCARDABLE) ? S_DISCARDABLE : 0) | ((f & GA_HSHARE) ? S_SHARE : 0);
}

static void backoff(unsigned *spins)
{
    if (++*spins < 64) {
        atomic_signal_fence(memory_order_seq_cst);
    } else {
        sched_yield();
    }
}

/* ---- busy bit and snapshots ---------------------------------------------------------- */

/* Sets BUSY on h's slot. 0 (and *ps, *pst = the state with BUSY) or GA_EHANDLE. */
static int slot_begin(ga_handle_t h, ga__slot_t **ps, uint64_t *pst)
{
    ga__slot_t *s = ga__slot_of(h);
    if (!s) return GA_EHANDLE;
    uint64_t st = atomic_load_explicit(&s->state, memory_order_relaxed);
    for (unsigned spins = 0;;) {
        if (!ga__st_matches(st, h)) return GA_EHANDLE;
        if (st & S_BUSY) {
            backoff(&spins);
            st = atomic_load_explicit(&s->state, memory_order_relaxed);
            continue;
        }
        if (atomic_compare_exchange_weak_explicit(&s->state, &st, st | S_BUSY, memory_order_acquire,
                                                  memory_order_relaxed))
            break;
    }
    /* Seqlock writer: the data/size stores below must not become visible before BUSY. */
    atomic_thread_fence(memory_order_release);
    *ps = s;
    *pst = st | S_BUSY;
    return 0;
}

/* Clears BUSY, applies set/clear to the flag bits, bumps the sequence. Unlocks may have changed
 * the count meanwhile, hence the CAS loop. */
static void slot_end(ga__slot_t *s, uint64_t set, uint64_t clear)
{
    uint64_t st = atomic_load_explicit(&s->state, memory_order_relaxed);
    GA_ASSERT_INTERNAL(st & S_BUSY); /* the caller's slot_begin set it */
    uint64_t nst;
    do {
        nst = (st & ~(clear | S_BUSY | S_SEQ_MASK)) | set | ((st + S_SEQ_ONE) & S_SEQ_MASK);
    } while (!atomic_compare_exchange_weak_explicit(&s->state, &st, nst, memory_order_release,
                                                    memory_order_relaxed));
}

typedef struct {
    uint64_t state;
    uint64_t *data;
    size_t size;
} snap_t;

/* A consistent view of a live slot without taking BUSY. 0 or GA_EHANDLE. */
static int slot_snapshot(ga_handle_t h, snap_t *out)
{
    ga__slot_t *s = ga__slot_of(h);
    if (!s) return GA_EHANDLE;
    for (unsigned spins = 0;;) {
        uint64_t st = atomic_load_explicit(&s->state, memory_order_acquire);
        if (!ga__st_matches(st, h)) return GA_EHANDLE;
        if (!(st & S_BUSY)) {
            out->data = atomic_load_explicit(&s->data, memory_order_relaxed);
            out->size = atomic_load_explicit(&s->size, memory_order_relaxed);
            atomic_thread_fence(memory_order_acquire);
            uint64_t st2 = atomic_load_explicit(&s->state, memory_order_relaxed);
            if (((st ^ st2) & ~S_COUNT) == 0) {
                out->state = st2;
                return 0;
            }
        }
        backoff(&spins);
    }
}

/* ---- handle operations --------------------------------------------------------------- */

int ga__handle_alloc(size_t size, unsigned flags, ga_handle_t *out)
{
    if (flags & ~(unsigned)(GA_HZERO | GA_HDISCARDABLE | GA_HSHARE)) return GA_EINVAL;
    if (size > MAX_REQUEST) return GA_EOVERFLOW;
    uint32_t idx;
    ga__tcache_t *c = ga__tl_cache;
    if (GA_UNLIKELY(!c) && !(c = ga__tcache_attach())) return GA_ENOMEM;
    ga__op_begin(c);
    int rc = ga__slot_take(&idx, c);
    if (rc) {
        ga__op_end(c);
        return rc;
    }
    ga__slot_t *s = ga__slot_at(idx);
    uint64_t st = atomic_load_explicit(&s->state, memory_order_relaxed);
    GA_ASSERT_INTERNAL(!(st & S_LIVE) && ga__st_gen(st) != 0); /* free, and a live gen is not 0 */
    ga_handle_t h = ga__make_handle(idx, ga__st_gen(st));
    uint64_t *hdr = NULL;
    if (size) {
        hdr = ga__block_alloc(size, flags & GA_HZERO, h, &rc);
        if (!hdr) {
            ga__slot_give(idx); /* its generation was never handed out: reuse it as is */
            ga__op_end(c);
            return rc;
        }
    }
    atomic_store_explicit(&s->data, hdr, memory_order_relaxed);
    atomic_store_explicit(&s->size, size, memory_order_relaxed);
    /* A free slot is never CASed by anyone (every CAS expects LIVE), so a store is enough. */
    atomic_store_explicit(&s->state,
                          (st & (S_GEN_MASK | S_SEQ_MASK)) | S_LIVE | attr_to_state(flags) |
                              (size ? 0 : S_DISCARDED),
                          memory_order_release);
    ga__live_add(c, 1);
    ga__op_end(c);
    *out = h;
    return 0;
}

ga_handle_t ga_handle_alloc(ga_heap_t *heap, size_t size, unsigned flags)
{
    ga_handle_t h = 0;
    if (heap && ga__remote_is_heap(heap)) return ga__remote->alloc(heap, size, flags);
    int rc = (heap && heap != ga_heap_default()) ? GA_EINVAL : ga__handle_alloc(size, flags, &h);
    if (rc) {
        ga__set_error(rc);
        return 0;
    }
    return h;
}

int ga_handle_free(ga_handle_t h)
{
    if (IS_SHARED(h)) return REMOTE(free, GA_EHANDLE, h);
    ga__slot_t *s;
    uint64_t st;
    int rc = slot_begin(h, &s, &st);
    if (rc) return rc;
    ga__tcache_t *c = ga__tl_cache ? ga__tl_cache : ga__tcache_attach(); /* NULL: out of memory */
    if (c) ga__op_begin(c);
    uint64_t *hdr = atomic_load_explicit(&s->data, memory_order_relaxed);
    atomic_store_explicit(&s->data, NULL, memory_order_relaxed);
    atomic_store_explicit(&s->size, 0, memory_order_relaxed);
    uint32_t gen = ga__st_gen(st) + 1;
    if (gen > H_FIELD_MASK) gen = 1;
    atomic_store_explicit(&s->state,
                          ((uint64_t)gen << S_GEN_SHIFT) | ((st + S_SEQ_ONE) & S_SEQ_MASK),
                          memory_order_release);
    if (hdr) ga__block_free(hdr, 0);
    ga__slot_give(ga__h_index(h));
    if (GA_LIKELY(c)) {
        ga__live_add(c, -1);
        ga__op_end(c);
    } else {
        atomic_fetch_sub(&ga__tcaches.retired, 1); /* no cache could be made for this thread */
    }
    return 0;
}

int ga__handle_lock_slow(ga_handle_t h, void **out)
{
    if (IS_SHARED(h)) {
        void *p = REMOTE(lock, NULL, h);
        if (!p) return ga_last_error();
        *out = p;
        return 0;
    }
    ga__slot_t *s = ga__slot_of(h);
    if (!s) return GA_EHANDLE;
    uint64_t st = atomic_load_explicit(&s->state, memory_order_relaxed);
    for (unsigned spins = 0;;) {
        if (!ga__st_matches(st, h)) return GA_EHANDLE;
        if (st & S_BUSY) { /* a resize or free is under way: wait for it */
            backoff(&spins);
            st = atomic_load_explicit(&s->state, memory_order_relaxed);
            continue;
        }
        if (st & S_DISCARDED) return GA_EDISCARDED;
        uint64_t nst = (st & S_COUNT) == S_COUNT ? st : st + 1; /* saturates at 255 */
        if (atomic_compare_exchange_weak_explicit(&s->state, &st, nst, memory_order_acquire,
                                                  memory_order_relaxed))
            break;
    }
    *out = (char *)atomic_load_explicit(&s->data, memory_order_relaxed) + GA__HDR_SIZE;
    return 0;
}

/* 0 and *out = data, GA_EHANDLE or GA_EDISCARDED. */
static int handle_lock(ga_handle_t h, void **out)
{
    return ga__handle_lock_inline(h, out);
}

void *ga_handle_lock(ga_handle_t h)
{
    void *p;
    int rc = handle_lock(h, &p);
    if (GA_UNLIKELY(rc)) {
        ga__set_error(rc);
        return NULL;
    }
    return p;
}

int ga__handle_unlock_slow(ga_handle_t h)
{
    if (IS_SHARED(h)) return REMOTE(unlock, GA_EHANDLE, h);
    ga__slot_t *s = ga__slot_of(h);
    if (!s) return GA_EHANDLE;
    uint64_t st = atomic_load_explicit(&s->state, memory_order_relaxed);
    for (;;) {
        if (!ga__st_matches(st, h)) return GA_EHANDLE;
        if (!(st & S_COUNT)) return GA_ENOTLOCKED;
        /* Release: the caller's writes to the data happen before a later move copies them. */
        if (atomic_compare_exchange_weak_explicit(&s->state, &st, st - 1, memory_order_release,
                                                  memory_order_relaxed))
            return (int)((st - 1) & S_COUNT);
    }
}

int ga_handle_unlock(ga_handle_t h)
{
    return ga__handle_unlock_inline(h);
}

int ga_handle_discard(ga_handle_t h)
{
    if (IS_SHARED(h)) return REMOTE(discard, GA_EHANDLE, h);
    ga__slot_t *s;
    uint64_t st;
    int rc = slot_begin(h, &s, &st);
    if (rc) return rc;
    if (st & S_COUNT) {
        slot_end(s, 0, 0);
        return GA_ELOCKED;
    }
    uint64_t *hdr = atomic_load_explicit(&s->data, memory_order_relaxed);
    atomic_store_explicit(&s->data, NULL, memory_order_relaxed);
    atomic_store_explicit(&s->size, 0, memory_order_relaxed);
    slot_end(s, S_DISCARDED, 0);
    if (hdr) ga__block_free(hdr, 0);
    return 0;
}

int ga_handle_realloc(ga_handle_t h, size_t size, unsigned flags)
{
    if (IS_SHARED(h)) return REMOTE(realloc, GA_EHANDLE, h, size, flags);
    if (flags & ~(unsigned)(GA_HZERO | GA_HMOVE)) return GA_EINVAL;
    if (size == 0) return ga_handle_discard(h);
    ga__slot_t *s;
    uint64_t st;
    int rc = slot_begin(h, &s, &st);
    if (rc) return rc;
    uint64_t *hdr = atomic_load_explicit(&s->data, memory_order_relaxed), *old = NULL;
    if (!hdr) {
        /* Discarded blocks are never locked: fresh data. */
        GA_ASSERT_INTERNAL(!(st & S_COUNT));
        hdr = ga__block_alloc(size, flags & GA_HZERO, h, &rc);
    } else {
        bool locked = (st & S_COUNT) != 0;
        rc = ga__block_resize(&hdr, hdr[0], size, flags & GA_HZERO, !locked || (flags & GA_HMOVE),
                              h, 0, &old);
    }
    if (rc == 0) {
        atomic_store_explicit(&s->data, hdr, memory_order_relaxed);
        atomic_store_explicit(&s->size, size, memory_order_relaxed);
    }
    slot_end(s, 0, rc == 0 ? S_DISCARDED : 0);
    /* Freed only now: until data points to the new block, the slot's block is the old one
     * (what a fork child relies on, see repair_busy_slots in fork.c). */
    if (old) ga__block_free(old, 0);
    return rc;
}

int ga_handle_modify(ga_handle_t h, unsigned set, unsigned clear)
{
    if (IS_SHARED(h)) return REMOTE(modify, GA_EHANDLE, h, set, clear);
    if ((set | clear) & ~(unsigned)(GA_HDISCARDABLE | GA_HSHARE)) return GA_EINVAL;
    ga__slot_t *s;
    uint64_t st;
    int rc = slot_begin(h, &s, &st);
    if (rc) return rc;
    slot_end(s, attr_to_state(set), attr_to_state(clear) & ~attr_to_state(set));
    return 0;
}

int ga_handle_info(ga_handle_t h, ga_handle_info_t *info)
{
    if (IS_SHARED(h)) return ga__remote_info(h, info);
    if (!info) return GA_EINVAL;
    snap_t sn;
    int rc = slot_snapshot(h, &sn);
    if (rc) return rc;
    info->size = sn.size;
    info->lock_count = (unsigned)(sn.state & S_COUNT);
    info->flags = ((sn.state & S_DISCARDABLE) ? GA_HDISCARDABLE : 0u) |
                  ((sn.state & S_SHARE) ? GA_HSHARE : 0u) |
                  ((sn.state & S_DISCARDED) ? GA_HDISCARDED : 0u);
    info->data = sn.data ? ga__user_of(sn.data) : NULL;
    return 0;
}

size_t ga_handle_size(ga_handle_t h)
{
    if (IS_SHARED(h)) return REMOTE(size, 0, h);
    snap_t sn;
    int rc = slot_snapshot(h, &sn);
    if (rc) {
        ga__set_error(rc);
        return 0;
    }
    return sn.size;
}

ga_handle_t ga_handle_from_ptr(const void *p)
{
    ga__set_error(GA_OK);
    ga_handle_t sh = ga__remote_from_ptr(p); /* 0 and no error: not in a shared heap */
    if (sh || ga_last_error() == GA_ENOTOWNED) return sh;
    ga__ref_t ref;
    if (ga__classify(p, &ref) != GA__K_DATA) {
        ga__set_error(GA_ENOTOWNED);
        return 0;
    }
    return ref.handle;
}
