/* SPDX-License-Identifier: MIT */
/*
 * Shared heaps: orphaned handles, those whose creating process has gone (detached, exited or
 * died). Each live handle entry names its creator (slot, the slot's generation at creation,
 * pid: layout.h); the creator has gone when that slot has since been freed or claimed again, or
 * holds a dead process. Such handles are kept (a handle may be meant to outlive its creator,
 * like the clipboard's), listed apart by the owners report, and freed only on request
 * (ga_shared_reclaim with GA_RECLAIM_HANDLES).
 *
 * Scans read entries without the stripe locks (a snapshot, like the report); a free re-checks
 * the entry under its stripe lock, and asks the slot afresh whether its process lives, so a
 * process that attached after the snapshot never loses a handle.
 */
#include "shared/shared_internal.h"
#include <string.h>

void ga__shm_alive_snapshot(shm_att_t *a, int alive[SHM_PROC_SLOTS])
{
    for (unsigned s = 0; s < SHM_PROC_SLOTS; s++)
        alive[s] = ga__shm_slot_alive(a, s);
}

bool ga__shm_creator_gone(shm_att_t *a, const shm_hentry_t *e, const int alive[SHM_PROC_SLOTS])
{
    /* Relaxed atomic reads: the scans race with allocations (a torn value only misfiles one
     * handle in a snapshot; a free re-checks under the stripe lock). */
    uint32_t c = __atomic_load_n(&e->creator, __ATOMIC_RELAXED), s = HC_SLOT(c);
    int32_t pid = __atomic_load_n(&e->creator_pid, __ATOMIC_RELAXED);
    if (c == 0 || s >= SHM_PROC_SLOTS) return false; /* unknown: never taken for gone */
    const shm_slot_t *sl = &a->hdr->slots[s];
    if (atomic_load(&sl->pid) != pid || atomic_load(&sl->gen) != HC_GEN(c))
        return true; /* the slot was freed or claimed again since */
    if (alive && alive[s] == 1) return false;
    return ga__shm_slot_alive(a, s) != 1; /* asked afresh: it may have attached meanwhile */
}

typedef struct {
    shm_att_t *a;
    int alive[SHM_PROC_SLOTS];
    ga__shm_handle_fn *fn;
    void *arg;
    uint64_t bytes;
} orphan_ctx_t;

static bool orphan_one(void *arg, uint32_t idx, shm_hentry_t *e, uint64_t w)
{
    orphan_ctx_t *o = arg;
    if (!ga__shm_creator_gone(o->a, e, o->alive)) return false;
    uint64_t size = __atomic_load_n(&e->size, __ATOMIC_RELAXED);
    o->bytes += size;
    if (o->fn)
        o->fn(o->arg, H_MAKE(idx, HW_GEN(w), o->a->heap_id), size,
              __atomic_load_n(&e->creator_pid, __ATOMIC_RELAXED));
    return true;
}

long ga__shm_orphan_handles(shm_att_t *a, ga__shm_handle_fn *fn, void *arg, uint64_t *bytes)
{
    orphan_ctx_t o = {.a = a, .fn = fn, .arg = arg};
    ga__shm_alive_snapshot(a, o.alive);
    long n = ga__shm_each_handle(a, orphan_one, &o);
    if (bytes) *bytes = o.bytes;
    return n;
}

/* Frees the orphaned handles: one per stripe-lock hold (a free inside the logged window keeps
 * its block in our cache until ga__shm_after_window). Handles freed, or GA_E*. */
static long reclaim_handles(shm_att_t *a)
{
    int alive[SHM_PROC_SLOTS];
    ga__shm_alive_snapshot(a, alive);
    long n = 0;
    for (unsigned s = 0; s < SHM_NSTRIPES; s++) {
        for (uint32_t k = 0;;) {
            int rc = ga__shm_lock_stripe(a, s);
            if (rc) return rc;
            uint32_t next_k = a->hdr->stripes[s].next_k;
            uint64_t old = 0;
            bool found = false;
            for (; k < next_k && !found; k++) {
                uint32_t idx = s + k * SHM_NSTRIPES;
                shm_hentry_t *e = ga__shm_hentry(a, idx);
                if (!e) break;
                uint64_t w = atomic_load(&e->word);
                if (!(w & HW_LIVE) || !ga__shm_creator_gone(a, e, alive)) continue;
                old = ga__shm_entry_free(a, s, idx, e, w);
                found = true;
            }
            ga__shm_unlock(a, SHM_LOCK_STRIPE(s));
            if (!found) break;
            ga__shm_after_window(a, old);
            n++;
        }
    }
    return n;
}

long ga_shared_reclaim(ga_heap_t *heap, unsigned flags)
{
    shm_att_t *a = ga__shm_att(heap);
    if (!a) return GA_EINVAL;
    if (flags & ~(unsigned)GA_RECLAIM_HANDLES) return ga__set_error(GA_EINVAL);
    long n = ga__shm_recover(a, true);
    if (n >= 0 && (flags & GA_RECLAIM_HANDLES)) {
        long m = reclaim_handles(a);
        n = m < 0 ? m : n + m;
    }
    return n < 0 ? ga__set_error((int)n) : n;
}
