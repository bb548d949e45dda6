/* SPDX-License-Identifier: MIT */
/*
 * The debug heap's internal contract between its files, one section per file that owns what
 * it declares: options.c (the switch), block.c (checks, reports), stack.c (capture, depot),
 * symbolize.c, walk.c (walks over blocks), leak.c (scan, report), check.c (stats, heap check),
 * hooks.c (the hooks, declared in debug.h) and quarantine.c. The engine's calls without the
 * hook and the world lock come from engine/engine.h.
 *
 * A debug block is an ordinary engine block laid out as
 *
 *     [redirect (aligned blocks only)][header: 64 bytes][user: size bytes][tail guard]
 *
 * The header ends with 8 guard bytes; the tail guard is `guard` bytes (default 16; fewer only
 * if the option asks for more than the engine block has room for). A block is recognised by its
 * header magic, keyed with the user address and a per-process secret, so a pointer that is not a
 * debug block (allocated before debug mode was switched on, or never ours) is told apart without
 * any table. Every engine block that is a debug block has, at its first word, either the header
 * magic (LIVE or FREED) or the REDIRECT magic followed by the header's offset, which is what the
 * leak walk looks for.
 */
#ifndef GA_DEBUG_HEAP_H
#define GA_DEBUG_HEAP_H

#include "debug/debug.h"
#include "engine/engine.h"
#include "os/os.h"
#include <string.h>

/* Leak scan and walks read memory that other threads may be writing, or that ASan has poisoned
 * (free blocks): no sanitizer there (noinline: inlined into a caller, it would be instrumented). */
#define GA_DBG_NO_SAN GA_NO_SAN

/* ---- the debug block (made in hooks.c, checked in block.c) ----------------------------------- */
#define GA_DBG_HDR   64u
#define GA_DBG_FRONT 8u

typedef struct ga_dbg_hdr_s {
    uint64_t magic;       /* (GA_DBG_LIVE | GA_DBG_FREED) ^ user ^ secret; first word */
    uint64_t state;       /* same value as magic, but survives the engine's free-list link */
    uint64_t size;        /* requested bytes */
    uint64_t serial;      /* allocation number, 1, 2, ... (unique, roughly in time order) */
    uint32_t alloc_stack; /* stack depot ids (0 = none) */
    uint32_t free_stack;
    uint32_t tid;                /* allocating thread (kernel thread id) */
    uint32_t epoch;              /* ga_debug_mark() epoch at allocation */
    uint32_t pad;                /* bytes from the engine block start to this header */
    uint16_t tail;               /* tail guard bytes after the user bytes */
    uint8_t kind;                /* GA_DBG_MALLOC / GA_DBG_RAW */
    uint8_t mark;                /* leak scan: reachable */
    uint8_t front[GA_DBG_FRONT]; /* guard bytes before the user bytes */
} ga_dbg_hdr_t;
_Static_assert(sizeof(ga_dbg_hdr_t) == GA_DBG_HDR, "debug header is 64 bytes");

#define GA_DBG_LIVE     0x6761444247564c31ull
#define GA_DBG_FREED    0x6761444247465231ull
#define GA_DBG_RELEASED 0x6761444247524c31ull
#define GA_DBG_REDIRECT 0x6761444247524431ull

/* Fill patterns (as the Windows CRT debug heap). */
#define GA_FILL_FRESH 0xCD
#define GA_FILL_FREED 0xDD
#define GA_FILL_GUARD 0xFD

/* ---- options.c: GLOBALALLOC_DEBUG, the switch ------------------------------------------------ */
typedef struct ga_dbg_opts_s {
    unsigned stacks;   /* frames per stack (0: none) */
    unsigned guard;    /* minimum tail guard bytes */
    size_t quarantine; /* bytes of freed blocks each thread holds back */
    bool fill;         /* fresh / freed fill patterns */
    bool free_stacks;  /* record the stack of each free */
    bool symbolize;    /* addr2line in reports */
    int leaks;         /* at-exit report: 0 no, 1 unreachable blocks, 2 every live block */
    int exitcode;      /* exit status when the at-exit report finds leaks (0: unchanged) */
    unsigned check;    /* verify every debug block each `check` operations (0: never) */
    int report_fd;     /* where reports go */
} ga_dbg_opts_t;
/* The options; hidden, as the secret: the hooks read them on every call (no GOT load). */
extern ga_dbg_opts_t ga__dbg_opts __attribute__((visibility("hidden")));
/* Keys every header word (ga__dbg_key): random, and non-zero once debug mode is on. */
extern uint64_t ga__dbg_secret __attribute__((visibility("hidden")));
/* The report descriptor: report_fd, or the kept copy of stderr once the program closed fd 2. */
int ga__dbg_report_fd(void);


/* ---- block.c: checks and reports of debug blocks --------------------------------------------- */
/* A header word: magic m keyed with the user address and the secret. */
static inline uint64_t ga__dbg_key(uint64_t m, const void *user)
{
    return m ^ (uintptr_t)user ^ ga__dbg_secret;
}
/* The user bytes of header h / the engine block that holds it. */
static inline uint8_t *ga__dbg_user_of(ga_dbg_hdr_t *h)
{
    return (uint8_t *)h + GA_DBG_HDR;
}
static inline uint8_t *ga__dbg_raw_of(ga_dbg_hdr_t *h)
{
    return (uint8_t *)h - h->pad;
}

/* ga__dbg_verify flag: a broken block is fatal (free, realloc, reuse), not just reported. */
#define GA_DBG_FATAL 0x80000000u
/* The calling thread's kernel id, cached (ga__dbg_tl_tid: 0 until the first call). */
extern GA_TLS uint32_t ga__dbg_tl_tid;
static inline uint32_t ga__dbg_thread_id(void)
{
    if (GA_UNLIKELY(ga__dbg_tl_tid == 0)) ga__dbg_tl_tid = ga__os_thread_id();
    return ga__dbg_tl_tid;
}

/* Patterns are written with memset (glibc picks the widest vector code at run time: faster
 * than an inline loop here, measured) and checked with ga__dbg_all_are. */
typedef uint8_t ga_v16_t __attribute__((vector_size(16)));

/* True when every byte in [p, p+n) is c: 16-byte vector steps and one last overlapping step,
 * every byte read and no early exit (the answer is almost always yes: an exit per step would
 * only add branches). */
static inline bool ga__dbg_all_are(const uint8_t *p, size_t n, uint8_t c)
{
    if (GA_LIKELY(n >= 16)) {
        ga_v16_t v = {0}, acc = {0}, x;
        v += c;
        for (size_t i = 0; i < n - 16; i += 16) {
            memcpy(&x, p + i, 16);
            acc |= x ^ v;
        }
        memcpy(&x, p + n - 16, 16);
        acc |= x ^ v;
        uint64_t w[2];
        memcpy(w, &acc, 16);
        return (w[0] | w[1]) == 0;
    }
    uint8_t acc = 0;
    for (size_t i = 0; i < n; i++)
        acc |= p[i] ^ c;
    return acc == 0;
}

/* Raw blocks (the Win32 layer's) keep their second word when freed: the layer's tag, which
 * tells a double GlobalFree from a foreign pointer, as it does without debug mode. */
static inline size_t ga__dbg_kept_words(const ga_dbg_hdr_t *h)
{
    return h->kind == GA_DBG_RAW && h->size >= 16 ? 16 : 0;
}

/* The common case, checked with a few loads: front guard and tail guard intact. */
static inline bool ga__dbg_guards_ok(const ga_dbg_hdr_t *h)
{
    const uint64_t w = 0x0101010101010101ull * GA_FILL_GUARD;
    uint64_t f, a, b;
    const uint8_t *tail = (const uint8_t *)h + GA_DBG_HDR + h->size;
    memcpy(&f, h->front, 8);
    if (GA_UNLIKELY(h->tail != 16)) return f == w && ga__dbg_all_are(tail, h->tail, GA_FILL_GUARD);
    memcpy(&a, tail, 8);
    memcpy(&b, tail + 8, 8);
    return ((f ^ w) | (a ^ w) | (b ^ w)) == 0;
}

/* True when every byte of a freed block's user bytes (but its kept words) is GA_FILL_FREED. */
bool ga__dbg_freed_fill_ok(ga_dbg_hdr_t *h);
/* Verifies one block's guards (and, when freed, its fill); reports and returns GA_E* or 0. */
int ga__dbg_verify(ga_dbg_hdr_t *h, bool freed, unsigned check_flags, const char *when, void *ret);
/* Prints a block's description and stacks (ret: first frame of the bad call, NULL: here),
 * then reports through ga__report. */
void ga__dbg_block_report(int err, ga_dbg_hdr_t *h, const void *p, bool fatal, const char *what,
                          void *ret);
/* Writes printf-style text to fd without allocating. */
void ga__dbg_printf(int fd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- stack.c: capture, the depot, thread stacks ---------------------------------------------- */
/* Captures the current stack (first frame ret) into the depot; returns its id (0 = none). */
uint32_t ga__stack_capture(void *ret);
/* The frames of depot stack id into *frames: how many (0: none, or no such stack). */
unsigned ga__stack_frames(uint32_t id, const uintptr_t **frames);
/* How many distinct stacks the depot holds. */
size_t ga__stack_count(void);
/* The i-th thread-stack range [*a, *b) the leak scan skips (*a == 0: none, the thread is
 * live): the used part of an exited thread's stack. False past the table. */
bool ga__stack_skip_range(size_t i, uintptr_t *a, uintptr_t *b);
/* Calls scan(w, w + 8) for the DTV word w of every exited thread that lies in [lo, hi) (glibc
 * x86-64: the one word of a dead thread's descriptor that still owns memory). */
void ga__stack_scan_dead_dtvs(uintptr_t lo, uintptr_t hi, void (*scan)(uintptr_t, uintptr_t));
/* Makes sure this thread's exit calls ga__dbg_thread_exit. */
void ga__dbg_thread_note(void);

/* ---- symbolize.c: frames to function, file and line ------------------------------------------ */
/* Writes a stack, symbolized when enabled, one frame a line, each line prefixed by indent. */
void ga__stack_print(int fd, uint32_t id, const char *indent);
/* The symbolization lock: one report at a time (recursive: a report made while symbolizing
 * takes it again). */
void ga__sym_lock(void);
void ga__sym_unlock(void);
/* Gives every frame of the depot stacks ids[0..n) a text. pre: symbolization lock held. */
void ga__symbolize(const uint32_t *ids, size_t n);
/* Writes stack id as ga__stack_print does, with the texts ga__symbolize gave (addresses only
 * for frames it did not see). pre: symbolization lock held. */
void ga__stack_print_frames(int fd, uint32_t id, const char *indent);

/* ---- walk.c: every block, the block at an address -------------------------------------------- */
/* The debug header of engine block raw of block_size bytes (NULL if it is not a debug block);
 * *freed tells FREED from LIVE. */
ga_dbg_hdr_t *ga__dbg_classify(uint8_t *raw, size_t block_size, bool *freed);
/* Walks every debug block of the process heap (registry lock held). */
typedef void ga_dbg_visit_t(ga_dbg_hdr_t *h, bool freed, void *arg);
void ga__dbg_walk(ga_dbg_visit_t *visit, void *arg);
/* The debug block (live or freed) whose engine block contains addr, or NULL. Never faults. */
ga_dbg_hdr_t *ga__dbg_find(const void *addr);

/* ---- leak.c: the reachability scan, the leak report ------------------------------------------ */
/* Maps size bytes from the OS (zeroed) that the leak scan skips; NULL on failure. */
void *ga__dbg_map_noscan(size_t size);
/* The current ga_debug_mark() epoch (each new block records it). */
extern _Atomic uint32_t ga__dbg_epoch;

/* ---- check.c: ga_heap_stats and ga_heap_check in debug mode (also in debug.h) ---------------- */
/* ga__debug_check, `when` naming the moment in the report: 0 or the first block's GA_E*. */
int ga__dbg_check_blocks(unsigned flags, const char *when);
/* check=N: both halves of ga_heap_check, alone (the world stopped); a failure is fatal. */
void ga__dbg_periodic_check(void);

/* ---- hooks.c: the hooks (declared in debug.h) ------------------------------------------------ */
/* Set while the debug heap calls out (libc, unwinder): nested allocations go undecorated. */
extern __thread int ga__dbg_busy __attribute__((tls_model("initial-exec")));
/* Header of the debug block whose user pointer is p (live or freed), or NULL. Never faults. */
ga_dbg_hdr_t *ga__dbg_header(const void *p);

/* ---- quarantine.c: freed blocks held back ---------------------------------------------------- */
/* The quarantine is per thread (no lock, and a block is given back to the engine by the thread
 * that freed it, usually its owner: no cross-thread frees): a FIFO ring, mapped with its state
 * on the thread's first free and handed on when the thread exits (see ga__dbg_thread_exit). */
#define GA_DBG_QRING_CAP ((size_t)1 << 16)
#define GA_DBG_QPREFETCH 4 /* blocks ahead */
typedef struct ga_dbg_qring_s {
    size_t head, count, bytes;
    ga_dbg_hdr_t *slot[GA_DBG_QRING_CAP];
} ga_dbg_qring_t;
/* The thread's ring (NULL until its first free into the quarantine). */
extern GA_TLS ga_dbg_qring_t *ga__dbg_tl_q;

/* Gives h back to the engine as RELEASED; verify: check its fill and guards first (fatal). */
void ga__dbg_release(ga_dbg_hdr_t *h, bool verify);
/* Releases the oldest blocks until the quarantine holds at most `limit` bytes (and has room). */
void ga__dbg_quarantine_trim(size_t limit);
/* A ring for this thread: a parked one (with blocks), a spare one, or a new mapping; NULL. */
ga_dbg_qring_t *ga__dbg_ring_get(void);
/* Releases the thread's oldest quarantined block. */
static inline void ga__dbg_release_oldest(ga_dbg_qring_t *q)
{
    GA_ASSERT_INTERNAL(q->count > 0);
    ga_dbg_hdr_t *h = q->slot[q->head];
    q->slot[q->head] = NULL; /* rings outlive threads, and the leak scan reads them: no stale
                                pointer may keep a reused block "reachable" */
    q->head = (q->head + 1) & (GA_DBG_QRING_CAP - 1);
    q->count--;
    q->bytes -= h->size + GA_DBG_HDR;
    /* The ring is FIFO: the block released a few frees from now is known, and long out of
     * cache. Fetch its first lines now, so that checking it then does not wait. */
    if (q->count > GA_DBG_QPREFETCH) {
        const char *next =
            (const char *)q->slot[(q->head + GA_DBG_QPREFETCH) & (GA_DBG_QRING_CAP - 1)];
        __builtin_prefetch(next);
        __builtin_prefetch(next + 64);
        __builtin_prefetch(next + 128);
        __builtin_prefetch(next + 192);
    }
    ga__dbg_release(h, true);
}

/* Holds back the freed block h (FREED, filled) in this thread's ring, trimmed to its budget;
 * without a ring (quarantine=0, or no memory) h is released at once. */
static inline void ga__dbg_quarantine_push(ga_dbg_hdr_t *h)
{
    ga_dbg_qring_t *q = ga__dbg_tl_q;
    if (GA_UNLIKELY(q == NULL) && ga__dbg_opts.quarantine != 0) {
        q = ga__dbg_tl_q = ga__dbg_ring_get();
        if (q != NULL) ga__dbg_thread_note(); /* so that the thread's exit hands it on */
    }
    if (q == NULL) {
        ga__dbg_release(h, false); /* no quarantine: just verified by free_block */
        return;
    }
    GA_ASSERT_INTERNAL(q->count < GA_DBG_QRING_CAP); /* a full ring is trimmed at once */
    q->slot[(q->head + q->count) & (GA_DBG_QRING_CAP - 1)] = h;
    q->count++;
    q->bytes += h->size + GA_DBG_HDR;
    size_t budget = ga__dbg_opts.quarantine;
    if (GA_UNLIKELY(q->bytes > budget + budget / 4 || q->count == GA_DBG_QRING_CAP))
        ga__dbg_quarantine_trim(budget); /* a big block came in */
}

/* Called at the start of each free, before the freed block's header is read (it is usually not
 * in the cache: the program touched the block's bytes, not its header): releasing the oldest
 * block first gives the processor independent work while that load is under way. Over budget,
 * one block goes out per block in, so the quarantine hovers at its budget and this branch goes
 * the same way nearly every time (draining down to the budget would loop a size-dependent
 * number of times); only a big block pushing it past 5/4 of the budget drains more. */
static inline void ga__dbg_quarantine_make_room(void)
{
    ga_dbg_qring_t *q = ga__dbg_tl_q;
    if (GA_LIKELY(q != NULL) && q->bytes > ga__dbg_opts.quarantine && q->count > 0)
        ga__dbg_release_oldest(q);
}

/* Thread exit: the thread's quarantine is emptied (called by stack.c's key destructor). */
void ga__dbg_thread_exit(void);

#endif /* GA_DEBUG_HEAP_H */
