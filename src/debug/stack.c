/* SPDX-License-Identifier: MIT */
/*
 * Stacks for the debug heap: capture (a frame-pointer walk), the depot that stores each
 * distinct stack once, and the table of thread stacks the leak scan needs.
 *
 * Stack capture: the hooks pass the caller's return address, which is always exact and becomes
 * frame #0. The frame-pointer chain from here is then followed until that address shows up
 * (our own frames are skipped that way) and from there up to the top of the thread's stack;
 * every frame pointer must move up the stack, stay inside it and be 8-aligned, so code without
 * frame pointers yields a shorter stack, never a fault. If the caller's address never shows up
 * in the chain the stack is that one frame.
 *
 * Depot: each distinct stack is stored once (hash table of 32-bit ids into an append-only
 * arena, both mapped from the OS); lookups are lock-free, inserts take a lock. A block keeps
 * only the id.
 *
 * Thread stacks: each thread registers its stack on its first capture; its key destructor
 * marks it dead at exit, so the leak scan skips the stale stacks glibc keeps for reuse.
 *
 * Invariants: a depot record never changes once its slot is published (release store), so an
 * id stays valid, and readable without a lock, for the life of the process; depot.used and
 * depot.count change only under depot.lock, the stack table only under stacks.lock.
 */
#include "debug/debug_internal.h"
#include "os/os.h"
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

/* ---- the stack depot ----------------------------------------------------------------------- */

#define DEPOT_SLOTS ((size_t)1 << 21)
#define DEPOT_WORDS ((size_t)32 << 20) /* 256 MiB of address space, touched as used */
#define MAX_FRAMES  64

static struct {
    pthread_once_t once;
    ga_lock_t lock;
    _Atomic uint32_t *slots; /* 0 = empty, else an arena word index */
    uint64_t *arena;         /* record: (hash << 32 | depth), then depth frames */
    size_t used;             /* arena words used (lock) */
    size_t count;            /* stacks stored (lock) */
    _Atomic bool ready;      /* slots and arena mapped (set once, after them) */
} depot = {.once = PTHREAD_ONCE_INIT, .lock = GA_LOCK_INIT};

static void depot_init(void)
{
    size_t pg = ga__os_page_size();
    (void)pg;
    depot.slots = ga__dbg_map_noscan(DEPOT_SLOTS * sizeof(uint32_t));
    depot.arena = ga__dbg_map_noscan(DEPOT_WORDS * sizeof(uint64_t));
    if (depot.slots != NULL && depot.arena != NULL)
        atomic_store_explicit(&depot.ready, true, memory_order_release);
    depot.used = 1; /* id 0 means "no stack" */
}

/* A frame's share of its stack's hash: independent multiplies (one per frame, each position
 * with its own odd constant) pipeline, where a chained hash waits on each product. The capture
 * adds them up while it walks; stack_hash mixes the sum. */
static inline uint64_t frame_hash(uintptr_t ra, unsigned i)
{
    return (ra ^ (i * 0x632be59bd9b4e019ull)) * (0xff51afd7ed558ccdull + 2 * i);
}

static inline uint32_t stack_hash(uint64_t sum, unsigned n)
{
    uint64_t h = sum + 0x9e3779b97f4a7c15ull * (n + 1);
    h ^= h >> 31;
    h *= 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 29;
    return (uint32_t)h | 1;
}

static inline bool record_is(uint32_t id, uint32_t hash, const uintptr_t *f, unsigned n)
{
    const uint64_t *r = &depot.arena[id];
    if (r[0] != ((uint64_t)hash << 32 | n)) return false;
    /* Word by word with an exit (which keeps compilers from vectorizing it): f was just
     * written a word at a time, and 16-byte loads of it would stall on store forwarding. */
    for (unsigned i = 0; i < n; i++)
        if (r[i + 1] != f[i]) return false;
    return true;
}

/* The id of the stack f[0..n) whose frame_hash sum is sum: found, or added. */
static uint32_t depot_put(const uintptr_t *f, unsigned n, uint64_t sum)
{
    if (GA_UNLIKELY(!atomic_load_explicit(&depot.ready, memory_order_acquire))) {
        pthread_once(&depot.once, depot_init); /* threads' first stacks may race here */
        if (!atomic_load_explicit(&depot.ready, memory_order_acquire)) return 0;
    }
    if (n == 0) return 0;
    uint32_t hash = stack_hash(sum, n);
    size_t mask = DEPOT_SLOTS - 1, i = hash & mask;
    for (;; i = (i + 1) & mask) {
        uint32_t id = atomic_load_explicit(&depot.slots[i], memory_order_acquire);
        if (id == 0) break;
        if (record_is(id, hash, f, n)) return id;
    }
    ga__lock(&depot.lock);
    uint32_t id = 0;
    for (;; i = (i + 1) & mask) { /* continue from the empty slot: others may have filled it */
        uint32_t cur = atomic_load_explicit(&depot.slots[i], memory_order_acquire);
        if (cur == 0) break;
        if (record_is(cur, hash, f, n)) {
            id = cur;
            break;
        }
    }
    GA_ASSERT_HELD(&depot.lock); /* used and count change under it */
    if (id == 0 && depot.count < DEPOT_SLOTS / 4 * 3 && depot.used + n + 1 <= DEPOT_WORDS) {
        id = (uint32_t)depot.used;
        uint64_t *r = &depot.arena[id];
        r[0] = (uint64_t)hash << 32 | n;
        memcpy(r + 1, f, n * sizeof *f);
        depot.used += n + 1;
        depot.count++;
        GA_ASSERT_INTERNAL(depot.used <= DEPOT_WORDS);
        atomic_store_explicit(&depot.slots[i], id, memory_order_release);
    }
    ga__unlock(&depot.lock);
    return id;
}

size_t ga__stack_count(void)
{
    ga__lock(&depot.lock);
    size_t n = depot.count;
    ga__unlock(&depot.lock);
    return n;
}

unsigned ga__stack_frames(uint32_t id, const uintptr_t **frames)
{
    if (id == 0 || !atomic_load_explicit(&depot.ready, memory_order_acquire)) return 0;
    *frames = (const uintptr_t *)&depot.arena[id + 1];
    return (unsigned)(depot.arena[id] & 0xffffffffu);
}

/* ---- stack capture ----------------------------------------------------------------------- */

static GA_TLS uintptr_t tl_stack_hi; /* top of this thread's stack (0: not known yet) */

/* Thread stacks seen by the debug heap, so the leak scan can skip the stacks of threads that
 * exited (glibc keeps them mapped for reuse, full of stale pointers). A thread registers its
 * stack on its first stack capture; a key destructor marks it dead at exit. */
#define MAX_STACKS 1024
static struct {
    ga_lock_t lock;
    pthread_once_t once;
    pthread_key_t key;
    bool have_key;
    struct {
        uintptr_t lo, hi;
        uintptr_t tp; /* thread pointer (glibc: the thread descriptor) */
        bool live;
    } s[MAX_STACKS];
    size_t n;
} stacks = {.lock = GA_LOCK_INIT, .once = PTHREAD_ONCE_INIT};

static void thread_exit(void *arg)
{
    uintptr_t lo = (uintptr_t)arg;
    ga__dbg_thread_exit();
    ga__lock(&stacks.lock);
    for (size_t i = 0; i < stacks.n; i++)
        if (stacks.s[i].lo == lo) stacks.s[i].live = false;
    ga__unlock(&stacks.lock);
}

static void stacks_init(void)
{
    stacks.have_key = pthread_key_create(&stacks.key, thread_exit) == 0;
}

/* fork (registered by src/init.c): the child must not inherit a depot or stack-table lock held
 * by a thread it lost. */
void ga__debug_fork_prepare(void)
{
    ga__lock(&depot.lock);
    ga__lock(&stacks.lock);
}
void ga__debug_fork_after(void)
{
    ga__unlock(&stacks.lock);
    ga__unlock(&depot.lock);
}

void ga__dbg_thread_note(void)
{
    pthread_once(&stacks.once, stacks_init);
    if (stacks.have_key && pthread_getspecific(stacks.key) == NULL) {
        ga__dbg_busy++; /* may allocate */
        pthread_setspecific(stacks.key, (void *)1);
        ga__dbg_busy--;
    }
}

static void stack_register(uintptr_t lo, uintptr_t hi, uintptr_t tp)
{
    pthread_once(&stacks.once, stacks_init);
    ga__lock(&stacks.lock);
    size_t i = 0; /* the same stack again (glibc reuses them), else a new entry */
    while (i < stacks.n && stacks.s[i].lo != lo)
        i++;
    for (size_t k = 0; i == MAX_STACKS && k < stacks.n; k++)
        if (!stacks.s[k].live)
            i = k; /* full: forget a dead stack (it is then scanned: conservative) */
    if (i < MAX_STACKS) {
        stacks.s[i].lo = lo;
        stacks.s[i].hi = hi;
        stacks.s[i].tp = tp;
        stacks.s[i].live = true;
        if (i == stacks.n) stacks.n++;
    }
    GA_ASSERT_INTERNAL(stacks.n <= MAX_STACKS);
    ga__unlock(&stacks.lock);
    if (stacks.have_key) /* may allocate (undecorated: the caller is busy) */
        pthread_setspecific(stacks.key, (void *)lo);
}

static pthread_t main_thread(void)
{
    static pthread_t main_id;
    static bool known;
    if (!known) { /* the constructor runs on the main thread */
        main_id = pthread_self();
        known = true;
    }
    return main_id;
}
void ga__debug_note_main_thread(void) { (void)main_thread(); }

/* glibc keeps the thread descriptor at the top of a thread's stack block, at the thread
 * pointer == pthread_self(). Once the thread exited, the block (kept for reuse) is stale data
 * except the descriptor's DTV pointer (x86-64: tp + 8), which still owns the dynamic TLS
 * blocks: the scan reads that word only. Elsewhere the descriptor is scanned whole. */
static uintptr_t thread_descriptor(void *lo, uintptr_t hi)
{
    uintptr_t tp = (uintptr_t)pthread_self();
    return tp > (uintptr_t)lo && tp + 16 <= hi ? tp : 0;
}
#if defined(__x86_64__) && defined(__GLIBC__)
#define DTV_SLOT(tp) ((tp) + 8)
#endif

static GA_DBG_NO_SAN uintptr_t stack_top(uintptr_t here)
{
    if (tl_stack_hi > here) return tl_stack_hi;
    uintptr_t lo, hi = 0;
    ga__dbg_busy++; /* pthread_getattr_np may allocate */
    if (ga__os_thread_stack(&lo, &hi) && pthread_self() != main_thread())
        stack_register(lo, hi, thread_descriptor((void *)lo, hi));
    ga__dbg_busy--;
    tl_stack_hi = hi > here ? hi : here + 1; /* unknown: walk nothing */
    return tl_stack_hi;
}

/* A frame record [saved fp, return address] at fp lies inside this thread's stack. */
static inline bool frame_ok(uintptr_t fp, uintptr_t lo, uintptr_t hi)
{
    return fp >= lo && fp < hi && hi - fp >= 16 && (fp & 7) == 0;
}

GA_DBG_NO_SAN uint32_t ga__stack_capture(void *ret)
{
    unsigned max = ga__dbg_opts.stacks;
    if (max == 0) return 0;
    GA_ASSERT_INTERNAL(max <= MAX_FRAMES); /* the option is capped at 64 */
    uintptr_t f[MAX_FRAMES];
    unsigned n = 0;
    f[n++] = (uintptr_t)ret;
    uint64_t sum = frame_hash((uintptr_t)ret, 0);
    uintptr_t fp = (uintptr_t)__builtin_frame_address(0);
    uintptr_t lo = fp, hi = GA_LIKELY(tl_stack_hi > lo) ? tl_stack_hi : stack_top(lo);
    /* Skip our own frames: up to the record whose return address is the caller's. The hooks
     * call this directly, so that record is usually the second one: tried first, straight. */
    bool found = false;
    if (GA_LIKELY(frame_ok(fp, lo, hi))) {
        uintptr_t up = ((const uintptr_t *)fp)[0];
        if (up > fp && frame_ok(up, lo, hi) && ((const uintptr_t *)up)[1] == (uintptr_t)ret &&
            ((const uintptr_t *)up)[0] > up) {
            fp = ((const uintptr_t *)up)[0];
            found = true;
        }
    }
    for (int i = 0; !found && i < 8 && frame_ok(fp, lo, hi); i++) {
        const uintptr_t *rec = (const uintptr_t *)fp;
        if (rec[0] <= fp) break;
        fp = rec[0];
        if (rec[1] == (uintptr_t)ret) {
            found = true;
            break;
        }
    }
    if (!found) return depot_put(f, n, sum);
    /* Each next frame pointer must be above the last (so inside [lo, hi) reduces to one
     * unsigned compare; found implies hi - lo >= 16) and 8-aligned; return addresses that point
     * into the stack area are not code (a frame without a frame pointer): the walk stops. */
    while (n < max && fp - lo <= hi - lo - 16 && (fp & 7) == 0) {
        const uintptr_t *rec = (const uintptr_t *)fp;
        uintptr_t ra = rec[1], next = rec[0];
        if (ra < 4096 || ra - lo < ((uintptr_t)64 << 20)) break;
        sum += frame_hash(ra, n);
        f[n++] = ra;
        if (next <= fp) break;
        fp = next;
    }
    return depot_put(f, n, sum);
}

/* ---- the thread-stack table, for the leak scan ------------------------------------------- */

bool ga__stack_skip_range(size_t i, uintptr_t *a, uintptr_t *b)
{
    if (i >= stacks.n) return false;
    *a = stacks.s[i].live ? 0 : stacks.s[i].lo;
#ifdef DTV_SLOT
    *b = stacks.s[i].hi;
#else
    *b = stacks.s[i].tp ? stacks.s[i].tp : stacks.s[i].hi;
#endif
    return true;
}

void ga__stack_scan_dead_dtvs(uintptr_t lo, uintptr_t hi, void (*scan)(uintptr_t, uintptr_t))
{
#ifdef DTV_SLOT
    for (size_t i = 0; i < stacks.n; i++) {
        uintptr_t slot = DTV_SLOT(stacks.s[i].tp);
        if (!stacks.s[i].live && stacks.s[i].tp && slot >= lo && slot + 8 <= hi)
            scan(slot, slot + 8);
    }
#else
    (void)lo, (void)hi, (void)scan;
#endif
}
