/* SPDX-License-Identifier: MIT */
/*
 * ga_heap_stats and ga_heap_check in debug mode: the statistics as the program sees them
 * (quarantined blocks are free, a debug block counts its requested bytes), the guards and
 * freed fill of every debug block, and the periodic check (check=N) that runs both halves of
 * ga_heap_check with every other thread held outside the allocator.
 *
 * The walks hold the registry lock; a broken block is reported after it is released (the
 * report symbolizes, which forks, and fork takes that lock).
 */
#include "debug/debug_internal.h"

/* ---- ga_heap_stats ------------------------------------------------------------------------ */

typedef struct stats_s {
    ga_stats_t *out;
    uint64_t debug_blocks, debug_bytes; /* engine view of debug blocks */
    uint64_t live, live_bytes;          /* user view: live debug blocks, requested bytes */
} stats_t;

/* Statistics may be asked for while other threads allocate: a header read mid-update only
 * makes the numbers approximate (classify validates what it reads), hence GA_DBG_NO_SAN. */
static GA_DBG_NO_SAN void stats_visit(uint8_t *raw, size_t size, void *arg)
{
    stats_t *st = arg;
    bool freed;
    ga_dbg_hdr_t *h = ga__dbg_classify(raw, size, &freed);
    if (h == NULL) return;
    st->debug_blocks++;
    st->debug_bytes += size;
    int cls = ga__engine_class_of(size);
    if (freed && cls >= 0) { /* quarantined: free for the program */
        ga_class_stats_t *cs = &st->out->classes[cls];
        cs->blocks_used -= cs->blocks_used > 0;
    } else if (freed) {
        st->out->huge_blocks -= st->out->huge_blocks > 0;
    }
    if (!freed) {
        st->live++;
        st->live_bytes += h->size;
    }
}

/* In debug mode ga_heap_stats shows the program's view: quarantined blocks are free, and a
 * debug block counts its usable bytes, which are its requested bytes (not its header, guards
 * and class rounding). */
void ga__debug_stats(ga_stats_t *out)
{
    stats_t st = {out, 0, 0, 0, 0};
    ga__registry_lock();
    ga__engine_each_block(stats_visit, &st);
    ga__registry_unlock();
    out->blocks_in_use -=
        out->blocks_in_use >= st.debug_blocks ? st.debug_blocks : out->blocks_in_use;
    out->blocks_in_use += st.live;
    out->bytes_in_use -= out->bytes_in_use >= st.debug_bytes ? st.debug_bytes : out->bytes_in_use;
    out->bytes_in_use += st.live_bytes;
}

/* ---- ga_heap_check ------------------------------------------------------------------------- */

typedef struct check_s {
    ga_dbg_hdr_t *bad;
    bool bad_freed;
} check_t;

static void check_visit(ga_dbg_hdr_t *h, bool freed, void *arg)
{
    check_t *c = arg;
    if (c->bad == NULL && ga__dbg_verify(h, freed, GA_CHECK_QUIET, "heap check", NULL) != 0) {
        c->bad = h;
        c->bad_freed = freed;
    }
}

int ga__dbg_check_blocks(unsigned flags, const char *when)
{
    check_t c = {NULL, false};
    ga__registry_lock();
    ga__dbg_walk(check_visit, &c);
    ga__registry_unlock();
    if (c.bad == NULL) return 0;
    /* report outside the lock (symbolization forks) */
    return ga__dbg_verify(c.bad, c.bad_freed, flags & GA_CHECK_QUIET, when, NULL);
}

int ga__debug_check(unsigned flags)
{
    return ga__dbg_check_blocks(flags, "ga_heap_check");
}

/* ---- check=N ------------------------------------------------------------------------------- */

/* check=N: every N allocator calls of a thread, the engine's and the debug blocks' checks of
 * ga_heap_check, with every other thread held outside the allocator (the handle table is not
 * checked: handle calls change it outside the allocator). Reported while still alone, so the
 * report describes what the check saw. */
GA_NOINLINE void ga__dbg_periodic_check(void)
{
    ga__world_stop();
    int rc = ga__engine_check(GA_CHECK_QUIET);
    if (rc == 0) rc = ga__debug_check(GA_CHECK_QUIET);
    if (rc != 0 && (rc = ga__engine_check(0)) == 0) rc = ga__debug_check(0); /* the report */
    ga__world_resume();
    if (rc != 0)
        ga__report(rc, 0, true, "check=%u: the heap check failed (see above)", ga__dbg_opts.check);
}
