/* SPDX-License-Identifier: MIT */
/*
 * The quarantine: freed debug blocks are held back, filled with GA_FILL_FREED, so that a write
 * after free is found when they leave and a stale pointer does not meet a new block at once.
 * Each thread has its own FIFO ring (ga_dbg_qring_t, in debug_internal.h with the inline push
 * and make-room steps every free runs), budget ga__dbg_opts.quarantine bytes.
 *
 * Invariants: a quarantined block is FREED (both magic words) and in exactly one ring; a block
 * leaving the ring is verified (its fill and guards), becomes RELEASED and goes back to the
 * engine, from the thread that freed it. A ring's bytes are the sum of its blocks' size +
 * GA_DBG_HDR. When a thread exits its ring is parked (with its blocks), kept spare (empty) or
 * unmapped: slots are taken and given with one atomic exchange (no lock: fork-safe).
 */
#include "debug/debug_internal.h"
#include "engine/alloc_fast.h"
#include "os/os.h"
#include <stdatomic.h>

GA_TLS ga_dbg_qring_t *ga__dbg_tl_q;

void ga__dbg_release(ga_dbg_hdr_t *h, bool verify)
{
    uint8_t *user = ga__dbg_user_of(h);
    if (verify &&
        GA_UNLIKELY(!ga__dbg_guards_ok(h) || (ga__dbg_opts.fill && !ga__dbg_freed_fill_ok(h))))
        ga__dbg_verify(h, true, GA_DBG_FATAL, "reuse (leaving the quarantine)", NULL);
    h->state = ga__dbg_key(GA_DBG_RELEASED, user);
    h->magic = 0;
    ga__free_fast(ga__dbg_raw_of(h));
}

/* Releases the oldest blocks until the quarantine holds at most `limit` bytes (and has room). */
void ga__dbg_quarantine_trim(size_t limit)
{
    ga_dbg_qring_t *q = ga__dbg_tl_q;
    while (q != NULL && q->count > 0 && (q->bytes > limit || q->count == GA_DBG_QRING_CAP))
        ga__dbg_release_oldest(q);
}

/* Rings of exited threads, for the next threads: mapping and unmapping one per thread made
 * programs that run many short threads pay page faults and a TLB shootdown per thread. The
 * first PARKED_RINGS are handed on with their blocks: emptying a quarantine at exit released a
 * whole budget of blocks at once, mostly into pages of threads that had exited too, which cost
 * programs that hand work from thread to thread (larson) a tenth of their time; the next
 * thread releases them one per free instead. The others go back empty. Slots are taken and
 * given with one atomic exchange (no lock: fork-safe). */
#define SPARE_RINGS  64
#define PARKED_RINGS 2
static _Atomic(ga_dbg_qring_t *) parked_rings[PARKED_RINGS];
static _Atomic(ga_dbg_qring_t *) spare_rings[SPARE_RINGS];

static bool ring_give(_Atomic(ga_dbg_qring_t *) *slots, size_t n, ga_dbg_qring_t *r)
{
    for (size_t i = 0; i < n; i++) {
        ga_dbg_qring_t *none = NULL;
        if (atomic_load_explicit(&slots[i], memory_order_relaxed) == NULL &&
            atomic_compare_exchange_strong(&slots[i], &none, r))
            return true;
    }
    return false;
}

static ga_dbg_qring_t *ring_take(_Atomic(ga_dbg_qring_t *) *slots, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (atomic_load_explicit(&slots[i], memory_order_relaxed) != NULL) {
            ga_dbg_qring_t *r = atomic_exchange(&slots[i], NULL);
            if (r != NULL) return r;
        }
    return NULL;
}

ga_dbg_qring_t *ga__dbg_ring_get(void)
{
    ga_dbg_qring_t *r = ring_take(parked_rings, PARKED_RINGS);
    if (r == NULL) r = ring_take(spare_rings, SPARE_RINGS);
    if (r == NULL) r = ga__os_map_aligned(sizeof(ga_dbg_qring_t), ga__os_page_size()); /* zeroed */
    return r;
}

void ga__dbg_thread_exit(void)
{
    ga_dbg_qring_t *q = ga__dbg_tl_q;
    if (q == NULL) return;
    ga__dbg_tl_q = NULL;
    if (q->count > 0 && ring_give(parked_rings, PARKED_RINGS, q)) return;
    ga__dbg_tl_q = q; /* emptied by this thread: releases check the blocks (and may report) */
    ga__world_enter();
    ga__dbg_quarantine_trim(0);
    ga__world_leave();
    GA_ASSERT_INTERNAL(q->count == 0 && q->bytes == 0); /* spare rings are empty */
    ga__dbg_tl_q = NULL;
    if (!ring_give(spare_rings, SPARE_RINGS, q)) ga__os_unmap(q, sizeof *q);
}
