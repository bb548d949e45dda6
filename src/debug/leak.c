/* SPDX-License-Identifier: MIT */
/*
 * Leaks for the debug heap: the reachability scan and the leak report (on demand and at exit).
 *
 * Leak = a live debug block that no pointer reaches (as LeakSanitizer): roots are every
 * private writable mapping of the process (globals, stacks, TLS, other allocators) except our
 * segments, plus every engine block that is not a debug block (blocks from before debug mode,
 * and free blocks: conservative). Any word that points into a block's user bytes marks it, and
 * marked blocks are scanned in turn. GA_LEAK_ALL (or leaks=all) lists every live block.
 * The mark phase holds the registry lock so no segment is unmapped under the scan; reports are
 * written after it is released (symbolization forks addr2line, and fork takes that lock).
 *
 * Data: the mark stack and the maps text (scan, mapped from the OS and skipped by the scan, as
 * every mapping made through ga__dbg_map_noscan), and a report's group table (open addressing
 * on the allocation stack id). One report at a time (report_lock): the marks in the block
 * headers belong to the report that set them.
 */
#include "debug/debug_internal.h"
#include "engine/alloc_fast.h"
#include <stdatomic.h>
#include "os/os.h"
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* ---- our own mappings ------------------------------------------------------------------- */

/* Our own mappings (depot, quarantine, buffers) hold no block pointers worth scanning. */
static struct {
    _Atomic uintptr_t lo, hi;
} noscan[16];

static void noscan_add(const void *p, size_t size)
{
    for (size_t i = 0; p && i < sizeof noscan / sizeof noscan[0]; i++) {
        uintptr_t z = 0;
        if (atomic_compare_exchange_strong(&noscan[i].lo, &z, (uintptr_t)p)) {
            atomic_store(&noscan[i].hi, (uintptr_t)p + size);
            return;
        }
    }
}

void *ga__dbg_map_noscan(size_t size)
{
    void *p = ga__os_map_aligned(size, ga__os_page_size());
    noscan_add(p, size);
    return p;
}

/* ---- epochs ------------------------------------------------------------------------------- */

_Atomic uint32_t ga__dbg_epoch;

uint64_t ga_debug_mark(void)
{
    return atomic_fetch_add(&ga__dbg_epoch, 1) + 1;
}

/* ---- reachability ------------------------------------------------------------------------------
 */

static struct {
    ga_dbg_hdr_t **stack; /* mark stack, mapped; grows by remapping */
    size_t n, cap;
    char *maps; /* the process's mappings, as ga__os_maps_read gives them */
} scan;
#define MAPS_MAX ((size_t)8 << 20)

static void push(ga_dbg_hdr_t *h)
{
    if (scan.n == scan.cap) {
        size_t cap = scan.cap ? scan.cap * 2 : (size_t)1 << 16;
        ga_dbg_hdr_t **s = ga__os_map_aligned(cap * sizeof *s, ga__os_page_size());
        if (s == NULL) return; /* the block stays unmarked: reported (conservatively, as a leak) */
        if (scan.stack) {
            memcpy(s, scan.stack, scan.n * sizeof *s);
            ga__os_unmap(scan.stack, scan.cap * sizeof *s);
        }
        scan.stack = s;
        scan.cap = cap;
    }
    scan.stack[scan.n++] = h;
}

/* Marks the live block whose user bytes contain word w. */
static GA_DBG_NO_SAN void consider(uintptr_t w)
{
    size_t size;
    bool freed;
    uint8_t *raw = ga__engine_block_containing(w, &size);
    if (raw == NULL) return;
    ga_dbg_hdr_t *h = ga__dbg_classify(raw, size, &freed);
    if (h == NULL || freed || h->mark) return;
    uintptr_t user = (uintptr_t)h + GA_DBG_HDR;
    if (w < user || (w >= user + h->size && !(h->size == 0 && w == user))) return;
    h->mark = 1;
    push(h);
}

static GA_DBG_NO_SAN void scan_range(uintptr_t lo, uintptr_t hi);
static GA_DBG_NO_SAN void scan_foreign(uintptr_t lo, uintptr_t hi);

/* The i-th range the scan skips: our own mappings, then the used part of exited threads'
 * stacks (their thread descriptor and TLS, above, are still scanned: they hold the DTV). */
static bool skip_range(size_t i, uintptr_t *a, uintptr_t *b)
{
    size_t nn = sizeof noscan / sizeof noscan[0];
    if (i < nn) {
        *a = atomic_load(&noscan[i].lo);
        *b = atomic_load(&noscan[i].hi);
        return true;
    }
    return ga__stack_skip_range(i - nn, a, b);
}

/* scan_range minus the skipped ranges. */
static void scan_clipped(uintptr_t lo, uintptr_t hi, size_t first)
{
    uintptr_t a, b;
    for (size_t i = first; lo < hi && skip_range(i, &a, &b); i++) {
        if (a == 0 || b <= lo || a >= hi) continue;
        if (a > lo) scan_clipped(lo, a, i + 1);
        lo = b;
    }
    if (lo < hi) scan_foreign(lo, hi);
}

static void scan_outside(uintptr_t lo, uintptr_t hi) { scan_clipped(lo, hi, 0); }

static GA_DBG_NO_SAN void scan_range(uintptr_t lo, uintptr_t hi)
{
    lo = (lo + 7) & ~(uintptr_t)7;
    for (uintptr_t a = lo; a + 8 <= hi; a += 8) {
        uintptr_t w = *(const uintptr_t *)a;
        if (ga__engine_maybe_heap(w)) consider(w);
    }
}

static void drain(void)
{
    while (scan.n > 0) {
        ga_dbg_hdr_t *h = scan.stack[--scan.n];
        uintptr_t user = (uintptr_t)h + GA_DBG_HDR;
        scan_range(user, user + h->size);
    }
}

static void unmark(ga_dbg_hdr_t *h, bool freed, void *arg)
{
    (void)freed;
    (void)arg;
    h->mark = 0;
}

static GA_DBG_NO_SAN void root_block(uint8_t *raw, size_t size, void *arg)
{
    (void)arg;
    bool freed;
    if (ga__dbg_classify(raw, size, &freed) != NULL) return;
    /* word 0 of a free block is an encoded link; the rest is stale data (conservative) */
    scan_range((uintptr_t)raw, (uintptr_t)raw + size);
}

/* Scans memory that is not ours: another thread may unmap it meanwhile (a thread exiting while
 * the process exits frees its stack), so it is copied with process_vm_readv, which fails
 * instead of faulting; where that call is not allowed, read directly. */
#define COPY_CHUNK ((size_t)64 << 10)
static GA_DBG_NO_SAN void scan_foreign(uintptr_t lo, uintptr_t hi)
{
    static uint8_t *buf;
    static bool direct;
#ifdef GA_ASAN
    direct = true; /* ASan's process_vm_readv interceptor upsets its stack-scope poisoning */
#endif
    if (buf == NULL && !direct) {
        buf = ga__dbg_map_noscan(COPY_CHUNK);
        direct = buf == NULL;
    }
    lo = (lo + 7) & ~(uintptr_t)7;
    while (!direct && lo < hi) {
        size_t n = hi - lo < COPY_CHUNK ? hi - lo : COPY_CHUNK;
        long got = ga__os_copy_from_self(buf, (const void *)lo, n);
        if (got == GA_OS_COPY_UNSUPPORTED) {
            direct = true;
            break;
        }
        if (got > 0)
            for (size_t i = 0; i + 8 <= (size_t)got; i += 8) {
                uintptr_t w;
                memcpy(&w, buf + i, 8);
                if (ga__engine_maybe_heap(w)) consider(w);
            }
        if (got < (long)n) { /* unreadable from here: skip to the next page */
            uintptr_t at = lo + (got > 0 ? (size_t)got : 0);
            lo = (at | (ga__os_page_size() - 1)) + 1;
        } else {
            lo += n;
        }
    }
    if (direct && lo < hi) scan_range(lo, hi);
}

/* Scans every private writable mapping outside our segments; the calling thread's stack only
 * from sp up. */
static GA_DBG_NO_SAN void scan_mappings(uintptr_t sp)
{
    if (scan.maps == NULL) scan.maps = ga__dbg_map_noscan(MAPS_MAX);
    if (scan.maps == NULL || !ga__os_maps_read(scan.maps, MAPS_MAX)) return;
    ga_os_mapping_t m;
    for (const char *s = scan.maps; ga__os_maps_next(&s, &m);) {
        uintptr_t lo = m.lo, hi = m.hi;
        if (!m.rw_private || m.device || hi - lo > ((uintptr_t)4 << 30))
            continue; /* (sanitizer shadow memory is terabytes: skipped) */
        if (sp >= lo && sp < hi) lo = sp;
        ga__stack_scan_dead_dtvs(lo, hi, scan_foreign);
        ga__engine_outside_heap(lo, hi, scan_outside);
    }
}

/* sp: where the caller's part of this thread's stack starts (our own frames below it hold
 * only stale copies of pointers). */
static void mark_reachable(uintptr_t sp)
{
    ga__dbg_walk(unmark, NULL);
    scan_mappings(sp);
    drain();
    ga__engine_each_block(root_block, NULL);
    drain();
}

/* ---- grouping and the report ----------------------------------------------------------------- */

typedef struct group_s {
    uint32_t stack;
    uint32_t tid;
    uint64_t count, bytes, min, max, first_serial;
    uintptr_t example;
    uint8_t kind;
} group_t;

typedef struct collect_s {
    group_t *g; /* open addressing on stack id, cap a power of two */
    size_t cap, used;
    uint32_t since;
    bool all;
    uint64_t blocks, bytes;
    uint64_t reachable, reachable_bytes; /* live blocks not reported (still referenced) */
} collect_t;

static void collect(ga_dbg_hdr_t *h, bool freed, void *arg)
{
    collect_t *c = arg;
    if (freed || h->epoch < c->since) return;
    if (!c->all && h->mark) {
        c->reachable++;
        c->reachable_bytes += h->size;
        return;
    }
    c->blocks++;
    c->bytes += h->size;
    if (c->g == NULL) return;
    size_t mask = c->cap - 1, i = (h->alloc_stack * 0x9e3779b1u) & mask;
    for (;; i = (i + 1) & mask) {
        group_t *g = &c->g[i];
        if (g->count == 0) {
            if (c->used + 1 >= c->cap)
                return; /* table full: the block is counted but not grouped */
            c->used++;
            *g = (group_t){.stack = h->alloc_stack,
                           .tid = h->tid,
                           .min = h->size,
                           .max = h->size,
                           .first_serial = h->serial,
                           .example = (uintptr_t)h + GA_DBG_HDR,
                           .kind = h->kind};
        } else if (g->stack != h->alloc_stack) {
            continue;
        }
        g->count++;
        g->bytes += h->size;
        if (h->size < g->min) g->min = h->size;
        if (h->size > g->max) g->max = h->size;
        if (h->serial < g->first_serial) {
            g->first_serial = h->serial;
            g->example = (uintptr_t)h + GA_DBG_HDR;
            g->tid = h->tid;
        }
        return;
    }
}

static bool group_before(const group_t *a, const group_t *b)
{
    return a->bytes != b->bytes ? a->bytes > b->bytes : a->first_serial < b->first_serial;
}

/* True when g[0..n) is in report order (for the assert after sorting). */
static __attribute__((unused)) bool groups_sorted(const group_t *g, size_t n)
{
    for (size_t i = 1; i < n; i++)
        if (group_before(&g[i], &g[i - 1])) return false;
    return true;
}

/* Compacts the table's groups to its front and sorts them, largest first (shell sort). */
static size_t sort_groups(group_t *g, size_t cap)
{
    size_t n = 0;
    for (size_t i = 0; i < cap; i++)
        if (g[i].count) g[n++] = g[i];
    for (size_t gap = n / 2; gap > 0; gap = gap == 2 ? 1 : gap * 5 / 11) {
        for (size_t i = gap; i < n; i++) {
            group_t t = g[i];
            size_t j = i;
            for (; j >= gap && group_before(&t, &g[j - gap]); j -= gap)
                g[j] = g[j - gap];
            g[j] = t;
        }
    }
    GA_ASSERT_EXPENSIVE(groups_sorted(g, n));
    return n;
}

#define MAX_GROUPS_PRINTED 100

static ga_lock_t report_lock = GA_LOCK_INIT;

static long report_since(uint64_t mark, int fd, unsigned flags, uintptr_t sp)
{
    ga__lock(&report_lock);
    collect_t c = {.since = (uint32_t)mark, .all = (flags & GA_LEAK_ALL) != 0};
    bool quiet = (flags & GA_LEAK_QUIET) || fd < 0;
    size_t nstacks = ga__stack_count();
    if (!quiet) {
        c.cap = 64;
        while (c.cap < 2 * nstacks + 16)
            c.cap *= 2;
        GA_ASSERT_INTERNAL((c.cap & (c.cap - 1)) == 0); /* collect's open addressing masks */
        c.g = ga__os_map_aligned(c.cap * sizeof(group_t), ga__os_page_size());
    }
    ga__dbg_busy++;
    ga__registry_lock();
    if (!c.all) mark_reachable(sp);
    ga__dbg_walk(collect, &c);
    ga__registry_unlock();
    if (!quiet && c.blocks > 0) {
        size_t n = c.g ? sort_groups(c.g, c.cap) : 0;
        ga__dbg_printf(fd,
                       "globalalloc: ==== %s (pid %d): %llu bytes in %llu block%s from %zu "
                       "allocation site%s ====\n",
                       c.all ? "live blocks" : "LEAKS", ga__os_pid(), (unsigned long long)c.bytes,
                       (unsigned long long)c.blocks, c.blocks == 1 ? "" : "s", n,
                       n == 1 ? "" : "s");
        size_t shown = n < MAX_GROUPS_PRINTED ? n : MAX_GROUPS_PRINTED;
        ga__sym_lock();
        if (!(flags & GA_LEAK_NOSYM)) {
            uint32_t ids[MAX_GROUPS_PRINTED] = {0};
            for (size_t i = 0; i < shown; i++)
                ids[i] = c.g[i].stack;
            ga__symbolize(ids, shown);
        }
        for (size_t i = 0; i < shown; i++) {
            group_t *g = &c.g[i];
            char sizes[64];
            if (g->min == g->max)
                snprintf(sizes, sizeof sizes, "of %llu bytes", (unsigned long long)g->min);
            else
                snprintf(sizes, sizeof sizes, "of %llu..%llu bytes", (unsigned long long)g->min,
                         (unsigned long long)g->max);
            ga__dbg_printf(fd,
                           "globalalloc: %llu bytes in %llu %s%s %s (first: %#jx, allocation "
                           "#%llu, thread %u) allocated at:\n",
                           (unsigned long long)g->bytes, (unsigned long long)g->count,
                           g->kind == GA_DBG_RAW ? "raw/GlobalAlloc " : "",
                           g->count == 1 ? "block" : "blocks", sizes, (uintmax_t)g->example,
                           (unsigned long long)g->first_serial, g->tid);
            ga__stack_print_frames(fd, g->stack, "    ");
        }
        ga__sym_unlock();
        if (n > shown)
            ga__dbg_printf(fd, "globalalloc: ... and %zu more allocation sites\n", n - shown);
    }
    if (!quiet && (flags & GA_LEAK_SUMMARY) && c.reachable > 0 && c.blocks > 0)
        ga__dbg_printf(fd,
                       "globalalloc: (not leaks: %llu bytes in %llu blocks still referenced; "
                       "GLOBALALLOC_DEBUG=leaks=all lists them)\n",
                       (unsigned long long)c.reachable_bytes, (unsigned long long)c.reachable);
    ga__dbg_busy--;
    if (c.g) ga__os_unmap(c.g, c.cap * sizeof(group_t));
    ga__unlock(&report_lock);
    return (long)c.blocks;
}

/* The scan of this thread's stack starts in this frame: __builtin_unwind_init makes the
 * prologue save every callee-saved register (the caller's live values) just below the frame
 * pointer, and everything below that is ours (stale copies of pointers, not roots). */
GA_NOINLINE long ga_leak_report_since(uint64_t mark, int fd, unsigned flags)
{
    __builtin_unwind_init();
    if (!ga__debug_enabled) return GA_EPERM;
    uintptr_t fp = (uintptr_t)__builtin_frame_address(0);
#if defined(__x86_64__)
    uintptr_t sp = fp - 5 * sizeof(void *); /* rbx r12 r13 r14 r15 */
#else
    uintptr_t sp = (uintptr_t)&fp; /* conservative: the whole frame */
#endif
    ga__world_enter(); /* check=N: its allocations (symbolization) must not wait on it */
    long n = report_since(mark, fd, flags, sp);
    ga__world_leave();
    __asm__ volatile("" : : : "memory");
    return n;
}

long ga_leak_report(int fd, unsigned flags)
{
    return ga_leak_report_since(0, fd, flags);
}

long ga_leak_count(void)
{
    return ga_leak_report_since(0, -1, GA_LEAK_QUIET);
}

/* At exit: the guards of every block still allocated (an overrun of a block that is never
 * freed is found nowhere else) and the fill of every block still in a quarantine, then the leak
 * report. A broken block is reported once the check fails twice in a row: a thread that is
 * still running may be in the middle of writing a block's header when the first check looks. */
void ga__debug_at_exit(void)
{
    if (!ga__debug_enabled) return;
    ga__world_enter(); /* with check=N, no periodic check runs meanwhile */
    bool broken =
        ga__dbg_check_blocks(GA_CHECK_QUIET, "exit") != 0 && ga__dbg_check_blocks(0, "exit") != 0;
    long n = 0;
    if (ga__dbg_opts.leaks != 0) {
        unsigned flags = ga__dbg_opts.leaks == 2 ? GA_LEAK_ALL : GA_LEAK_SUMMARY;
        n = ga_leak_report(ga__dbg_report_fd(), flags);
    }
    ga__world_leave();
    if ((n > 0 || broken) && ga__dbg_opts.exitcode != 0) {
        fflush(NULL);
        _exit(ga__dbg_opts.exitcode);
    }
}
