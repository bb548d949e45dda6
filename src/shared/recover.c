/* SPDX-License-Identifier: MIT */
/*
 * Shared heaps: recovery from dead processes, the checker, statistics.
 *
 * A process slot is dead when its pid is gone, a zombie, or a different process (start time).
 * Recovery (ga__shm_recover), under the slots lock so two survivors never recover the same
 * slot together: first every robust lock is taken once, so each repair a dead holder left to do
 * runs (src/shared/page.c, small.c, handle.c, object.c); only then are the dead slots' CACHED
 * blocks turned FREE (the repairs may still look at blocks a dead process freed inside a logged
 * change, which is why those stay CACHED until here). Its ALLOC blocks stay until
 * ga_shared_reclaim_dead, which also frees the slot; or, when a process finds the slot table
 * full, until ga__shm_recycle hands them to SHM_SLOT_DEAD (reclaim_dead frees those too) and
 * frees the slot for reuse.
 *
 * The checker takes every lock (in the lock order), so it runs the same repairs, and then
 * verifies the header, each page descriptor and state byte, class lists and free counts, the
 * handle table, named objects, and that the heap-owned blocks are exactly those referenced.
 */
#include "shared/shared_internal.h"
#include <string.h>

int ga__shm_corrupt(shm_att_t *a, bool quiet, uint64_t where, const char *what)
{
    if (!quiet)
        ga__report(GA_ECORRUPT, (uintptr_t)where, false, "shared heap %s: %s (at %llu)", a->name,
                   what, (unsigned long long)where);
    return GA_ECORRUPT;
}

/* Takes every lock in order (running repairs), optionally keeping them. 0 or GA_E*. */
static int lock_all(shm_att_t *a, bool keep)
{
    int rc = ga__shm_lock_named(a);
    if (rc) return rc;
    unsigned s, c = 0;
    bool pages = false;
    for (s = 0; s < SHM_NSTRIPES; s++)
        if ((rc = ga__shm_lock_stripe(a, s)) != 0) break;
    if (rc == 0)
        for (c = 0; c < SHM_NCLASS; c++)
            if ((rc = ga__shm_lock_class(a, c)) != 0) break;
    if (rc == 0) pages = (rc = ga__shm_lock_pages(a)) == 0;
    if (!keep || rc) {
        if (pages) ga__shm_unlock(a, SHM_LOCK_PAGES);
        while (c-- > 0)
            ga__shm_unlock(a, SHM_LOCK_CLASS(c));
        while (s-- > 0)
            ga__shm_unlock(a, SHM_LOCK_STRIPE(s));
        ga__shm_unlock(a, SHM_LOCK_NAMED);
    }
    return rc;
}

static void unlock_all(shm_att_t *a)
{
    ga__shm_unlock(a, SHM_LOCK_PAGES);
    for (unsigned c = SHM_NCLASS; c-- > 0;)
        ga__shm_unlock(a, SHM_LOCK_CLASS(c));
    for (unsigned s = SHM_NSTRIPES; s-- > 0;)
        ga__shm_unlock(a, SHM_LOCK_STRIPE(s));
    ga__shm_unlock(a, SHM_LOCK_NAMED);
}

enum { RECOVER_CACHES, RECOVER_RECYCLE, RECOVER_RECLAIM };

/* Bit mask of dead slots (skipping those already recovered unless all). */
static uint64_t dead_slots(shm_att_t *a, bool all)
{
    uint64_t m = 0;
    for (unsigned s = 0; s < SHM_PROC_SLOTS; s++)
        if (ga__shm_slot_alive(a, s) == 0 && (all || !atomic_load(&a->hdr->slots[s].recovered)))
            m |= (uint64_t)1 << s;
    return m;
}

/* What recovery does with a block in state st: 0 nothing, 1 free it, 2 hand it to
 * SHM_SLOT_DEAD (its slot is being recycled). */
static int action(unsigned st, uint64_t dead, unsigned how)
{
    unsigned k = ST_KIND(st), s = ST_SLOT(st);
    if (k == ST_KALLOC && s == SHM_SLOT_DEAD) return how == RECOVER_RECLAIM;
    if (s >= SHM_PROC_SLOTS || !(dead >> s & 1)) return 0;
    if (k == ST_KCACHED) return 1;
    if (k != ST_KALLOC || how == RECOVER_CACHES) return 0;
    return how == RECOVER_RECLAIM ? 1 : 2;
}

/* The blocks of the dead slots, as `how` says (slots lock held). Blocks moved or freed. */
static long recover_blocks(shm_att_t *a, uint64_t dead, unsigned how)
{
    const unsigned to = ST_ALLOC(SHM_SLOT_DEAD);
    long n = 0;
    for (unsigned c = 0; c < SHM_NCLASS; c++) {
        if (ga__shm_lock_class(a, c)) continue;
        uint64_t top = ga__shm_top_pages(a);
        for (uint64_t p = 0; p < top; p++) {
            uint64_t d = atomic_load(&a->pages[p].desc);
            if (PD_KIND(d) != PG_SMALL || PD_CLASS(d) != c) continue;
            _Atomic uint8_t *st = ga__shm_state_bytes(a, p);
            for (uint32_t i = 0; i < ga__shm_class_count(c); i++) {
                uint8_t b = atomic_load(&st[i]);
                int act = action(b, dead, how);
                if (act == 1) {
                    ga__shm_small_release_locked(a, p, i);
                    n++;
                } else if (act == 2) { /* a CAS: a live peer may free the block meanwhile */
                    n += atomic_compare_exchange_strong(&st[i], &b, (uint8_t)to);
                }
            }
        }
        ga__shm_unlock(a, SHM_LOCK_CLASS(c));
    }
    uint64_t top = ga__shm_top_pages(a);
    for (uint64_t p = 0; p < top; p++) {
        uint64_t d = atomic_load(&a->pages[p].desc);
        if (PD_KIND(d) != PG_LARGE) continue;
        int act = action(PD_OWNER(d), dead, how);
        if (act == 1 && ga__shm_large_release(a, p, PD_OWNER(d)) == 0) n++;
        if (act == 2) n += ga__shm_block_cas(a, a->data_off + p * SHM_PAGE, PD_OWNER(d), to);
    }
    return n;
}

static long recover(shm_att_t *a, unsigned how)
{
    shm_header_t *h = a->hdr;
    /* It takes every lock: a caller holding one would wait for itself (or for a peer waiting
     * for that lock, in a cycle). */
    GA_ASSERT_INTERNAL(!ga__shm_held_any(a));
    bool all = how != RECOVER_CACHES;
    if (how != RECOVER_RECLAIM && !dead_slots(a, all)) return 0;
    int rc = ga__shm_lock(a, SHM_LOCK_SLOTS, NULL, NULL);
    if (rc) return rc;
    uint64_t dead = dead_slots(a, all);
    long n = 0;
    /* Every lock first, so the repairs a dead holder left run before its blocks move; the
     * layers above first of all (a map's repair frees blocks, taking segment locks). */
    if ((dead || how == RECOVER_RECLAIM) && ga__shared_hooks && ga__shared_hooks->recover)
        ga__shared_hooks->recover((ga_heap_t *)a);
    if ((dead || how == RECOVER_RECLAIM) && (rc = lock_all(a, false)) == 0) {
        n = recover_blocks(a, dead, how);
        for (unsigned s = 0; s < SHM_PROC_SLOTS; s++) {
            if (!(dead >> s & 1)) continue;
            atomic_store(&h->slots[s].recovered, 1);
            if (how != RECOVER_CACHES) atomic_store(&h->slots[s].pid, 0); /* free for reuse */
        }
    }
    ga__shm_unlock(a, SHM_LOCK_SLOTS);
    return rc ? rc : n;
}

long ga__shm_recover(shm_att_t *a, bool blocks)
{
    return recover(a, blocks ? RECOVER_RECLAIM : RECOVER_CACHES);
}

long ga__shm_recycle(shm_att_t *a)
{
    return recover(a, RECOVER_RECYCLE);
}

long ga_shared_reclaim_dead(ga_heap_t *heap)
{
    return ga_shared_reclaim(heap, 0);
}

/* ---- check ------------------------------------------------------------------------------ */

/* A state byte is valid when it is FREE, or names a taken slot, the orphan or the heap. */
static bool state_ok(shm_att_t *a, unsigned st, bool large)
{
    if (st == ST_FREE) return !large;
    unsigned k = ST_KIND(st), s = ST_SLOT(st);
    if (k == ST_KALLOC) return s >= SHM_PROC_SLOTS || atomic_load(&a->hdr->slots[s].pid) != 0;
    if (k == ST_KCACHED) return s < SHM_PROC_SLOTS && atomic_load(&a->hdr->slots[s].pid) != 0;
    return false;
}

static int check_small_page(shm_att_t *a, uint64_t p, unsigned c, bool quiet, uint64_t *heap)
{
    shm_page_t *r = &a->pages[p];
    _Atomic uint8_t *st = ga__shm_state_bytes(a, p);
    uint32_t nfree = 0;
    for (uint32_t i = 0; i < ga__shm_class_count(c); i++) {
        unsigned b = atomic_load(&st[i]);
        if (!state_ok(a, b, false)) return ga__shm_corrupt(a, quiet, p, "bad block state byte");
        nfree += b == ST_FREE;
        *heap += b == ST_ALLOC(SHM_SLOT_HEAP);
    }
    if (nfree != r->free_count) return ga__shm_corrupt(a, quiet, p, "page free count is wrong");
    if (nfree && !r->in_partial)
        return ga__shm_corrupt(a, quiet, p, "page with free blocks missing from its class");
    return 0;
}

static int check_pages(shm_att_t *a, bool quiet, uint64_t *heap)
{
    GA_ASSERT_SHM_HELD(a, SHM_LOCK_PAGES);
    shm_header_t *h = a->hdr;
    uint64_t top = atomic_load(&h->npages_top);
    if (top != ga__shm_top_pages(a))
        return ga__shm_corrupt(a, quiet, top, "committed top is past the end of the file");
    if (atomic_load(&h->pages_intent.op) != INTENT_NONE)
        return ga__shm_corrupt(a, quiet, 0, "page table has an unfinished change");
    uint32_t in_partial[SHM_NCLASS] = {0};
    for (uint64_t p = 0; p < top; p++) {
        uint64_t d = atomic_load(&a->pages[p].desc);
        int rc = 0;
        /* Fields a kind does not use must be zero, so more corruption is seen. */
        static const uint64_t unused[] = {~(uint64_t)0, 0xFFFFFFFFFF00FF00ull, 0xFF0000ull,
                                          0xFFFF00ull, 0xFFFF00ull};
        if (PD_KIND(d) <= PG_HTABLE && ((d & unused[PD_KIND(d)]) || (d & 0xFF000000ull)))
            return ga__shm_corrupt(a, quiet, p, "page descriptor has stray bits");
        switch (PD_KIND(d)) {
        case PG_FREE:
            break;
        case PG_SMALL:
            if (PD_CLASS(d) >= SHM_NCLASS)
                return ga__shm_corrupt(a, quiet, p, "page has a bad size class");
            rc = check_small_page(a, p, PD_CLASS(d), quiet, heap);
            in_partial[PD_CLASS(d)] += a->pages[p].in_partial != 0;
            break;
        case PG_LARGE: {
            uint64_t n = PD_N(d);
            if (n == 0 || p + n > top || !state_ok(a, PD_OWNER(d), true))
                return ga__shm_corrupt(a, quiet, p, "bad large block descriptor");
            for (uint64_t i = 1; i < n; i++) {
                uint64_t t = atomic_load(&a->pages[p + i].desc);
                if (PD_KIND(t) != PG_TAIL || PD_N(t) != p)
                    return ga__shm_corrupt(a, quiet, p + i, "large block tail is broken");
            }
            *heap += PD_OWNER(d) == ST_ALLOC(SHM_SLOT_HEAP);
            p += n - 1;
            break;
        }
        case PG_HTABLE:
            if (PD_N(d) >= SHM_HCHUNKS_MAX || atomic_load(&h->hchunk[PD_N(d)]) != p + 1)
                return ga__shm_corrupt(a, quiet, p, "handle-table page not in the directory");
            break;
        default:
            return ga__shm_corrupt(a, quiet, p, "bad page descriptor");
        }
        if (rc) return rc;
    }
    for (unsigned c = 0; c < SHM_NCLASS; c++) {
        GA_ASSERT_SHM_HELD(a, SHM_LOCK_CLASS(c));
        uint32_t n = 0;
        for (uint32_t f = h->classes[c].partial_head; f; n++) {
            uint64_t d = f - 1 < top ? atomic_load(&a->pages[f - 1].desc) : 0;
            if (n >= in_partial[c] || PD_KIND(d) != PG_SMALL || PD_CLASS(d) != c ||
                !a->pages[f - 1].in_partial)
                return ga__shm_corrupt(a, quiet, c, "class page list is broken");
            f = a->pages[f - 1].next_partial;
        }
        if (n != in_partial[c]) return ga__shm_corrupt(a, quiet, c, "class page list lost pages");
    }
    for (uint32_t k = 0; k < SHM_HCHUNKS_MAX; k++) {
        uint32_t pg1 = atomic_load(&h->hchunk[k]);
        uint64_t d = pg1 && pg1 - 1 < top ? atomic_load(&a->pages[pg1 - 1].desc) : 0;
        if (pg1 && (PD_KIND(d) != PG_HTABLE || PD_N(d) != k))
            return ga__shm_corrupt(a, quiet, k, "handle-table directory is broken");
    }
    return 0;
}

static int check_header(shm_att_t *a, bool quiet)
{
    const shm_header_t *h = a->hdr;
    if (h->magic != SHM_MAGIC || h->version != SHM_VERSION ||
        h->header_size != sizeof(shm_header_t) || h->max_size != a->map_size ||
        h->max_pages != a->max_pages || h->data_off != a->data_off ||
        h->page_table_off != a->pt_off || h->heap_id != a->heap_id)
        return ga__shm_corrupt(a, quiet, 0, "segment header changed");
    if (ga__shm_layout_sum(h) != h->layout_sum)
        return ga__shm_corrupt(a, quiet, 0, "segment header checksum is wrong");
    if (atomic_load(&((shm_header_t *)h)->init_state) != INIT_READY)
        return ga__shm_corrupt(a, quiet, 0, "segment is not initialized");
    return 0;
}

static int check_unguarded(ga_heap_t *heap, unsigned flags)
{
    shm_att_t *a = ga__shm_att(heap);
    if (!a) return GA_EINVAL;
    bool quiet = (flags & GA_CHECK_QUIET) != 0;
    int rc = check_header(a, quiet);
    if (rc) return ga__set_error(rc);
    /* The layers above lock their structures before the segment's locks (their writers hold
     * theirs while allocating) and count their blocks under them. */
    const ga__shared_hooks_t *hk = ga__shared_hooks;
    void *ctx = hk ? hk->check_begin(heap) : NULL;
    if ((rc = lock_all(a, true)) != 0) {
        if (hk) hk->check_end(heap, ctx);
        return ga__set_error(rc);
    }
    uint64_t heap_blocks = 0, refs = 0, bytes = 0, nlive = 0;
    rc = check_pages(a, quiet, &heap_blocks);
    if (rc == 0) rc = ga__shm_check_handles(a, &refs, &bytes, &nlive, quiet);
    if (rc == 0) rc = ga__shm_check_named(a, &refs, &bytes, &nlive, quiet);
    if (rc == 0 && hk) rc = hk->check_refs(heap, ctx, &refs, quiet);
    if (rc == 0 && refs != heap_blocks)
        rc = ga__shm_corrupt(a, quiet, heap_blocks,
                             "heap-owned blocks and handle/object/map references differ");
    unlock_all(a);
    if (hk) hk->check_end(heap, ctx);
    return rc ? ga__set_error(rc) : 0;
}

int ga__shared_heap_check(ga_heap_t *heap, unsigned flags)
{
    return ga_shared_check(heap, flags);
}

/* ---- statistics ------------------------------------------------------------------------- */

static void count_block(ga_shared_stats_t *o, shm_att_t *a, unsigned st, size_t bs, int alive[])
{
    unsigned k = ST_KIND(st), s = ST_SLOT(st);
    if (k == ST_KCACHED) {
        o->bytes_cached += bs;
        return;
    }
    if (k != ST_KALLOC) return;
    o->blocks_in_use++;
    o->bytes_in_use += bs;
    if (s == SHM_SLOT_HEAP) {
        o->heap_blocks++;
    } else if (s == SHM_SLOT_ORPHAN) {
        o->orphan_blocks++;
    } else if (s == SHM_SLOT_DEAD) { /* dead processes whose slots were reused */
        o->dead_blocks++;
        o->dead_bytes += bs;
    } else {
        o->procs[s].blocks++;
        o->procs[s].bytes += bs;
        if (alive[s] == 0) {
            o->dead_blocks++;
            o->dead_bytes += bs;
        }
    }
    (void)a;
}

static int stats_unguarded(ga_heap_t *heap, ga_shared_stats_t *o)
{
    shm_att_t *a = ga__shm_att(heap);
    if (!a || !o) return ga__set_error(GA_EINVAL);
    shm_header_t *h = a->hdr;
    memset(o, 0, sizeof *o);
    o->heap_id = a->heap_id;
    o->reserved = a->map_size;
    uint64_t top = ga__shm_top_pages(a);
    o->committed = a->data_off + top * SHM_PAGE;
    o->pages_total = top;
    int alive[SHM_SLOTS];
    for (unsigned s = 0; s < SHM_SLOTS; s++) {
        alive[s] = ga__shm_slot_alive(a, s);
        if (s < SHM_PROC_SLOTS && alive[s] >= 0) {
            o->procs[s].pid = atomic_load(&h->slots[s].pid);
            o->procs[s].alive = alive[s];
            o->attached += alive[s] == 1;
            o->dead += alive[s] == 0;
        }
    }
    o->class_count = SHM_NCLASS;
    for (unsigned c = 0; c < SHM_NCLASS; c++)
        o->classes[c].block_size = ga__shm_class_size[c];
    for (uint64_t p = 0; p < top; p++) {
        uint64_t d = atomic_load(&a->pages[p].desc);
        unsigned kind = PD_KIND(d), c = PD_CLASS(d);
        if (kind == PG_FREE) {
            o->pages_free++;
        } else if (kind == PG_SMALL && c < SHM_NCLASS) {
            size_t bs = ga__shm_class_size[c], before = o->blocks_in_use;
            _Atomic uint8_t *st = ga__shm_state_bytes(a, p);
            for (uint32_t i = 0; i < ga__shm_class_count(c); i++)
                count_block(o, a, atomic_load_explicit(&st[i], memory_order_relaxed), bs, alive);
            o->classes[c].pages++;
            o->classes[c].bytes_reserved += SHM_PAGE;
            o->classes[c].blocks_used += o->blocks_in_use - before;
        } else if (kind == PG_LARGE && PD_N(d) > 0 && p + PD_N(d) <= top) {
            count_block(o, a, PD_OWNER(d), (size_t)PD_N(d) * SHM_PAGE, alive);
            p += PD_N(d) - 1;
        }
    }
    o->objects = h->named_count;
    o->repairs = atomic_load(&h->repairs);
    long nh = ga_shared_handle_list(heap, NULL, 0);
    o->handles_in_use = nh > 0 ? (size_t)nh : 0;
    uint64_t hb = 0;
    o->exited_handles = (size_t)ga__shm_orphan_handles(a, NULL, NULL, &hb);
    o->exited_handle_bytes = (size_t)hb;
    return 0;
}

int ga__shared_heap_stats(ga_heap_t *heap, ga_stats_t *out)
{
    ga_shared_stats_t s;
    int rc = ga_shared_stats(heap, &s);
    if (rc) return rc;
    memset(out, 0, sizeof *out);
    out->bytes_in_use = s.bytes_in_use;
    out->blocks_in_use = s.blocks_in_use;
    out->bytes_mapped = s.reserved;
    out->bytes_committed = s.committed;
    out->peak_mapped = s.reserved;
    out->handles_in_use = s.handles_in_use;
    out->threads = s.attached;
    out->class_count = s.class_count;
    memcpy(out->classes, s.classes, sizeof out->classes);
    return 0;
}

/* ---- truncation guard (shared_internal.h): GA_ECORRUPT, not SIGBUS ---------------------- */

int ga_shared_check(ga_heap_t *heap, unsigned flags)
{
    shm_att_t *a = ga__shm_att(heap);
    if (!a) return ga_last_error() == GA_ECORRUPT ? GA_ECORRUPT : GA_EINVAL;
    SHM_GUARD_ENTER();
    int rc = check_unguarded(heap, flags);
    return SHM_GUARD_LEAVE(a) ? ga__set_error(GA_ECORRUPT) : rc;
}

int ga_shared_stats(ga_heap_t *heap, ga_shared_stats_t *o)
{
    shm_att_t *a = ga__shm_att(heap);
    if (!a) return ga_last_error() == GA_ECORRUPT ? GA_ECORRUPT : ga__set_error(GA_EINVAL);
    SHM_GUARD_ENTER();
    int rc = stats_unguarded(heap, o);
    return SHM_GUARD_LEAVE(a) ? ga__set_error(GA_ECORRUPT) : rc;
}
