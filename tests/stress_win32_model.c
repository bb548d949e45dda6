/* SPDX-License-Identifier: MIT */
/*
 * Randomized model test of the Win32 surface. NTHREADS threads each run seeded random
 * sequences of GlobalAlloc/LocalAlloc, ReAlloc (every flag combination, incl. MODIFY), Lock,
 * Unlock, Discard, Free, Size, Flags, Handle and invalid calls on freed handles, and compare
 * every return value and GetLastError with a small model of what Windows must answer
 * (spec win32-global-heap.md). Every block holds a content pattern that is checked after each
 * move. A few handles are shared by all threads for concurrent lock/unlock.
 *
 * The run is split in rounds; between rounds all threads wait at a barrier while the main
 * thread runs ga_heap_check (the checker needs a quiet heap).
 *
 * Usage: stress_win32_model [seed [rounds]]. The seed is printed; rerun with it to reproduce.
 */
#include "test.h"
#include "win32_test_util.h"
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <time.h>

#define NTHREADS    4
#define NOBJ        48
#define NSTALE      16
#define NSHARED     4
#define SHARED_SIZE 256

static unsigned g_rounds = 24;
static unsigned g_ops_per_round = 8000;
static uint64_t g_seed;
static _Atomic int g_failures;
static _Atomic unsigned long g_ops;
static pthread_barrier_t g_barrier;
static HGLOBAL g_shared[NSHARED];
static void *g_shared_ptr[NSHARED];

typedef enum { OBJ_NONE, OBJ_FIXED, OBJ_MOVEABLE } okind_t;

typedef struct {
    okind_t kind;
    bool local;
    HANDLE h; /* fixed: the pointer; moveable: the handle */
    size_t size;
    unsigned locks;
    bool discardable, share, discarded;
    unsigned seed; /* content pattern of [0, size) */
    void *lockptr; /* data pointer while locks > 0 */
} obj_t;

typedef struct {
    int id;
    uint64_t rng;
    unsigned long op;
    const char *opname;
    obj_t obj[NOBJ];
    HANDLE stale[NSTALE];
    bool stale_local[NSTALE];
    unsigned nstale;
} thr_t;

__attribute__((format(printf, 3, 4))) static void failf(thr_t *t, int line, const char *fmt, ...)
{
    int n = atomic_fetch_add(&g_failures, 1);
    if (n >= 20) return;
    char msg[300];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "FAIL seed=%llu thread=%d op#%lu (%s) line %d: %s\n",
            (unsigned long long)g_seed, t->id, t->op, t->opname, line, msg);
}

#define EXPECT(cond, ...)                                                                          \
    do {                                                                                           \
        if (!(cond)) failf(t, __LINE__, __VA_ARGS__);                                              \
    } while (0)
#define EXPECT_EQ(a, b)                                                                            \
    do {                                                                                           \
        uintmax_t a_ = (uintmax_t)(a), b_ = (uintmax_t)(b);                                        \
        if (a_ != b_) failf(t, __LINE__, "%s = %#jx, expected %s = %#jx", #a, a_, #b, b_);         \
    } while (0)

static uint64_t rnd(thr_t *t)
{
    uint64_t x = t->rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    t->rng = x;
    return x * UINT64_C(2685821657736338717);
}
static unsigned rn(thr_t *t, unsigned n)
{
    return (unsigned)(rnd(t) >> 33) % n;
}
static bool chance(thr_t *t, unsigned percent)
{
    return rn(t, 100) < percent;
}

static size_t rnd_size(thr_t *t)
{
    unsigned r = rn(t, 1000);
    if (r < 100) return 0;
    if (r < 700) return rn(t, 256);
    if (r < 950) return 256 + rn(t, 8192);
    if (r < 997) return 8192 + rn(t, 65536 - 8192);
    return (size_t)1 << 20;
}

static const size_t huge_sizes[] = {~(size_t)0, SIZE_MAX - 8, SIZE_MAX - 16, SIZE_MAX / 2 + 1,
                                    (size_t)1 << 50};
static size_t rnd_huge(thr_t *t)
{
    return huge_sizes[rn(t, 5)];
}

/* ---- content patterns (sampled checks keep big blocks cheap) ---- */

static unsigned char pat(unsigned seed, size_t i)
{
    return (unsigned char)(seed + i * 13 + (i >> 9));
}

static void fill(void *p, size_t n, unsigned seed)
{
    unsigned char *c = p;
    for (size_t i = 0; i < n; i++)
        c[i] = pat(seed, i);
}

static size_t check_span(thr_t *t, size_t n, size_t k)
{
    if (n <= 1024) return k; /* every byte */
    if (k < 512) return k;
    if (k < 1024) return n - 1024 + k;
    return 512 + (size_t)rn(t, (unsigned)(n - 1024));
}

/* 1 if p[0..n) has the pattern of seed (all bytes for small blocks, a sample for big ones). */
static int pattern_ok(thr_t *t, const void *p, size_t n, unsigned seed)
{
    const unsigned char *c = p;
    size_t samples = n <= 1024 ? n : 1024 + 64;
    for (size_t k = 0; k < samples; k++) {
        size_t i = check_span(t, n, k);
        if (c[i] != pat(seed, i)) return 0;
    }
    return 1;
}

static int zero_ok(thr_t *t, const void *p, size_t from, size_t to)
{
    const unsigned char *c = p;
    size_t n = to - from;
    size_t samples = n <= 1024 ? n : 1024 + 64;
    for (size_t k = 0; k < samples; k++)
        if (c[from + check_span(t, n, k)] != 0) return 0;
    return 1;
}

/* ---- model helpers ---- */

static UINT expect_flags(const obj_t *o, bool local)
{
    if (o->kind == OBJ_FIXED) return 0;
    UINT f = o->locks;
    if (o->discardable) f |= local ? LMEM_DISCARDABLE : GMEM_DISCARDABLE;
    if (o->share) f |= GMEM_DDESHARE;
    if (o->discarded) f |= GMEM_DISCARDED;
    return f;
}

static void *data_of(obj_t *o)
{
    if (o->kind == OBJ_FIXED) return o->h;
    return o->locks ? o->lockptr : NULL;
}

/* Gives the block a fresh pattern (locking a moveable block briefly, without net change). */
static void rewrite(thr_t *t, obj_t *o)
{
    if (o->size == 0 || o->discarded) return;
    void *p = o->kind == OBJ_FIXED ? o->h : (o->local ? LocalLock(o->h) : GlobalLock(o->h));
    EXPECT(p != NULL, "lock for rewrite failed");
    if (!p) return;
    o->seed = (unsigned)rnd(t);
    fill(p, o->size, o->seed);
    if (o->kind == OBJ_MOVEABLE) {
        if (o->locks) EXPECT_EQ(p, o->lockptr);
        o->local ? LocalUnlock(o->h) : GlobalUnlock(o->h);
    }
}

/* Checks the content through a temporary lock. */
static void verify(thr_t *t, obj_t *o)
{
    if (o->size == 0 || o->discarded) return;
    void *p = o->kind == OBJ_FIXED ? o->h : (o->local ? LocalLock(o->h) : GlobalLock(o->h));
    EXPECT(p != NULL && pattern_ok(t, p, o->size, o->seed), "content lost (size %zu)", o->size);
    if (o->kind == OBJ_MOVEABLE && p) o->local ? LocalUnlock(o->h) : GlobalUnlock(o->h);
}

/* ---- operations ---- */

static void op_alloc(thr_t *t, obj_t *o)
{
    t->opname = "alloc";
    bool local = chance(t, 40);
    bool moveable = chance(t, 55);
    UINT flags = moveable ? GMEM_MOVEABLE : 0;
    bool zero = chance(t, 30), disc = chance(t, 25), share = !local && chance(t, 15);
    if (zero) flags |= GMEM_ZEROINIT;
    if (disc) flags |= local ? (0x100u << rn(t, 4)) : GMEM_DISCARDABLE;
    if (share) flags |= GMEM_DDESHARE;
    if (chance(t, 10))
        flags |= GMEM_NOCOMPACT | GMEM_NODISCARD | (local ? 0 : GMEM_NOTIFY | GMEM_NOT_BANKED);
    if (chance(t, 1)) {
        size_t n = rnd_huge(t);
        SetLastError(SENTINEL);
        HANDLE r = local ? LocalAlloc(flags, n) : GlobalAlloc(flags, n);
        EXPECT(r == NULL, "huge alloc %#zx succeeded", n);
        EXPECT_EQ(GetLastError(), ERROR_NOT_ENOUGH_MEMORY);
        return;
    }
    size_t n = rnd_size(t);
    HANDLE r = local ? LocalAlloc(flags, n) : GlobalAlloc(flags, n);
    EXPECT(r != NULL, "alloc(%#x, %zu) failed", flags, n);
    if (!r) return;
    *o = (obj_t){.kind = moveable ? OBJ_MOVEABLE : OBJ_FIXED, .local = local, .h = r, .size = n};
    if (moveable) {
        EXPECT(is_handle_shaped(r), "moveable result %p is not a handle", r);
        o->discardable = disc;
        o->share = share;
        o->discarded = n == 0;
    } else {
        EXPECT(is_aligned16(r), "fixed %p misaligned", r);
        if (!local && n == 0) o->size = 1;
    }
    EXPECT_EQ(local ? LocalSize(r) : GlobalSize(r), o->size);
    EXPECT_EQ(local ? LocalFlags(r) : GlobalFlags(r), expect_flags(o, local));
    if (zero && o->size && !o->discarded) {
        void *p = local ? LocalLock(r) : GlobalLock(r);
        EXPECT(p && zero_ok(t, p, 0, o->size), "ZEROINIT block not zero");
        if (moveable) local ? LocalUnlock(r) : GlobalUnlock(r);
    }
    rewrite(t, o);
}

static void op_lock(thr_t *t, obj_t *o)
{
    t->opname = "lock";
    if (o->kind == OBJ_MOVEABLE && o->locks >= 200) return;
    SetLastError(SENTINEL);
    void *p = o->local ? LocalLock(o->h) : GlobalLock(o->h);
    if (o->kind == OBJ_FIXED) {
        EXPECT_EQ(p, o->h);
        EXPECT_EQ(GetLastError(), SENTINEL);
        return;
    }
    if (o->discarded) {
        EXPECT_EQ(p, NULL);
        EXPECT_EQ(GetLastError(), ERROR_DISCARDED);
        return;
    }
    EXPECT(p != NULL && is_aligned16(p) && p != o->h, "lock gave %p", p);
    if (o->locks) EXPECT_EQ(p, o->lockptr);
    o->locks++;
    o->lockptr = p;
    if (p) EXPECT(pattern_ok(t, p, o->size, o->seed), "content at lock");
}

static void op_unlock(thr_t *t, obj_t *o)
{
    t->opname = "unlock";
    SetLastError(SENTINEL);
    BOOL r = o->local ? LocalUnlock(o->h) : GlobalUnlock(o->h);
    if (o->kind == OBJ_FIXED) {
        EXPECT_EQ(r, o->local ? FALSE : TRUE);
        EXPECT_EQ(GetLastError(), o->local ? ERROR_NOT_LOCKED : SENTINEL);
        return;
    }
    if (o->locks == 0) {
        EXPECT_EQ(r, FALSE);
        EXPECT_EQ(GetLastError(), ERROR_NOT_LOCKED);
    } else if (o->locks == 1) {
        EXPECT_EQ(r, FALSE);
        EXPECT_EQ(GetLastError(), NO_ERROR);
        o->locks = 0;
    } else {
        EXPECT(r != FALSE, "unlock at %u gave FALSE", o->locks);
        EXPECT_EQ(GetLastError(), SENTINEL);
        o->locks--;
    }
}

static void op_lock_burst(thr_t *t, obj_t *o)
{
    t->opname = "lock-burst";
    if (o->kind != OBJ_MOVEABLE || o->discarded) return;
    unsigned before = o->locks;
    for (int i = 0; i < 260; i++)
        (void)(o->local ? LocalLock(o->h) : GlobalLock(o->h));
    EXPECT_EQ((o->local ? LocalFlags(o->h) : GlobalFlags(o->h)) & 0xFF, 0xFF);
    for (unsigned i = before; i < 255; i++)
        (void)(o->local ? LocalUnlock(o->h) : GlobalUnlock(o->h));
    EXPECT_EQ(o->local ? LocalFlags(o->h) : GlobalFlags(o->h), expect_flags(o, o->local));
    if (before == 0) o->lockptr = NULL;
}

/* After a successful resize of o from old_size: the kept part has the old pattern, growth is
 * zero with ZEROINIT; then the block gets a fresh pattern. */
static void after_resize(thr_t *t, obj_t *o, size_t old_size, bool had_data, bool zero)
{
    if (o->size == 0 || o->discarded) return;
    void *p = o->kind == OBJ_FIXED ? o->h : (o->local ? LocalLock(o->h) : GlobalLock(o->h));
    EXPECT(p != NULL, "lock after resize failed");
    if (!p) return;
    if (o->kind == OBJ_MOVEABLE) {
        if (o->locks) {
            o->lockptr = p;
        }
        EXPECT_EQ(o->local ? LocalHandle(p) : GlobalHandle(p), o->h);
    }
    size_t keep = had_data ? (old_size < o->size ? old_size : o->size) : 0;
    EXPECT(pattern_ok(t, p, keep, o->seed), "content not kept across resize %zu -> %zu", old_size,
           o->size);
    if (zero && o->size > keep)
        EXPECT(zero_ok(t, p, keep, o->size), "growth %zu -> %zu not zeroed", keep, o->size);
    if (o->kind == OBJ_MOVEABLE) o->local ? LocalUnlock(o->h) : GlobalUnlock(o->h);
    rewrite(t, o);
}

static void realloc_fixed(thr_t *t, obj_t *o, size_t n, UINT flags, bool huge)
{
    UINT disc = o->local ? LMEM_DISCARDABLE : GMEM_DISCARDABLE;
    SetLastError(SENTINEL);
    HANDLE r = o->local ? LocalReAlloc(o->h, n, flags) : GlobalReAlloc(o->h, n, flags);
    if (flags & GMEM_MODIFY) {
        if (!o->local && (flags & GMEM_MOVEABLE)) {
            EXPECT(r != NULL && is_handle_shaped(r), "fixed->moveable gave %p", r);
            if (!r) return;
            o->kind = OBJ_MOVEABLE;
            o->h = r;
            o->locks = 0;
            o->discardable = (flags & GMEM_DISCARDABLE) != 0;
            o->share = (flags & GMEM_DDESHARE) != 0;
            o->discarded = o->size == 0;
            verify(t, o);
        } else {
            EXPECT_EQ(r, o->h);
        }
        return;
    }
    if (flags & disc) {
        EXPECT_EQ(r, NULL);
        EXPECT_EQ(GetLastError(), ERROR_INVALID_PARAMETER);
        return;
    }
    if (huge) {
        EXPECT_EQ(r, NULL);
        EXPECT_EQ(GetLastError(), ERROR_NOT_ENOUGH_MEMORY);
        return;
    }
    if (!(flags & GMEM_MOVEABLE) && r == NULL) { /* in place impossible: allowed */
        EXPECT_EQ(GetLastError(), ERROR_NOT_ENOUGH_MEMORY);
        return;
    }
    EXPECT(r != NULL && !is_handle_shaped(r), "fixed realloc gave %p", r);
    if (!r) return;
    if (!(flags & GMEM_MOVEABLE)) EXPECT_EQ(r, o->h);
    size_t old = o->size;
    o->h = r;
    o->size = n;
    after_resize(t, o, old, true, flags & GMEM_ZEROINIT);
}

static void realloc_moveable(thr_t *t, obj_t *o, size_t n, UINT flags, bool huge)
{
    UINT disc = o->local ? LMEM_DISCARDABLE : GMEM_DISCARDABLE;
    void *oldptr = o->lockptr;
    SetLastError(SENTINEL);
    HANDLE r = o->local ? LocalReAlloc(o->h, n, flags) : GlobalReAlloc(o->h, n, flags);
    if (flags & GMEM_MODIFY) {
        EXPECT_EQ(r, o->h);
        if (flags & disc) o->discardable = true;
        return;
    }
    if (!o->local && o->locks && (n == 0 || (flags & disc))) {
        EXPECT_EQ(r, NULL);
        EXPECT_EQ(GetLastError(), SENTINEL);
        return;
    }
    if ((flags & disc) || (n == 0 && (!(flags & GMEM_MOVEABLE) || o->locks))) {
        EXPECT_EQ(r, NULL);
        EXPECT_EQ(GetLastError(), ERROR_INVALID_PARAMETER);
        return;
    }
    if (n == 0) {
        EXPECT_EQ(r, o->h);
        o->discarded = true;
        o->size = 0;
        return;
    }
    if (huge) {
        EXPECT_EQ(r, NULL);
        EXPECT_EQ(GetLastError(), ERROR_NOT_ENOUGH_MEMORY);
        return;
    }
    if (o->locks && !(flags & GMEM_MOVEABLE)) {
        if (r == NULL) {
            EXPECT(n > o->size, "locked shrink %zu -> %zu refused", o->size, n);
            EXPECT_EQ(GetLastError(), ERROR_NOT_ENOUGH_MEMORY);
            return;
        }
    }
    EXPECT_EQ(r, o->h);
    if (!r) return;
    size_t old = o->size;
    bool had = !o->discarded;
    o->size = n;
    o->discarded = false;
    after_resize(t, o, old, had, flags & GMEM_ZEROINIT);
    if (o->locks && !(flags & GMEM_MOVEABLE))
        EXPECT_EQ(o->lockptr, oldptr); /* never moves without GMEM_MOVEABLE while locked */
}

static void op_realloc(thr_t *t, obj_t *o)
{
    t->opname = "realloc";
    UINT flags = 0;
    if (chance(t, 50)) flags |= GMEM_MOVEABLE;
    if (chance(t, 30)) flags |= GMEM_ZEROINIT;
    if (chance(t, 15)) flags |= GMEM_MODIFY;
    if (chance(t, 12)) flags |= o->local ? (0x100u << rn(t, 4)) : GMEM_DISCARDABLE;
    if (!o->local && chance(t, 10)) flags |= GMEM_DDESHARE;
    bool huge = chance(t, 2);
    size_t n = huge ? rnd_huge(t) : rnd_size(t);
    size_t old = o->size;
    if (o->kind == OBJ_FIXED)
        realloc_fixed(t, o, n, flags, huge);
    else
        realloc_moveable(t, o, n, flags, huge);
    if (o->kind != OBJ_NONE) EXPECT_EQ(o->local ? LocalSize(o->h) : GlobalSize(o->h), o->size);
    (void)old;
}

static void op_discard(thr_t *t, obj_t *o)
{
    t->opname = "discard";
    SetLastError(SENTINEL);
    HANDLE r = o->local ? LocalDiscard(o->h) : GlobalDiscard(o->h);
    if (o->kind == OBJ_FIXED) {
        EXPECT(r != NULL && !is_handle_shaped(r), "discard of fixed gave %p", r);
        if (r) {
            o->h = r;
            o->size = 0;
        }
        return;
    }
    if (o->locks) {
        EXPECT_EQ(r, NULL);
        EXPECT_EQ(GetLastError(), o->local ? ERROR_INVALID_PARAMETER : SENTINEL);
        return;
    }
    EXPECT_EQ(r, o->h);
    o->discarded = true;
    o->size = 0;
    SetLastError(SENTINEL);
    EXPECT_EQ(o->local ? LocalLock(o->h) : GlobalLock(o->h), NULL);
    EXPECT_EQ(GetLastError(), ERROR_DISCARDED);
}

static void op_free(thr_t *t, obj_t *o)
{
    t->opname = "free";
    verify(t, o);
    SetLastError(SENTINEL);
    HANDLE r = o->local ? LocalFree(o->h) : GlobalFree(o->h);
    EXPECT_EQ(r, NULL);
    EXPECT_EQ(GetLastError(), SENTINEL);
    if (o->kind == OBJ_MOVEABLE) {
        unsigned k = t->nstale++ % NSTALE;
        t->stale[k] = o->h;
        t->stale_local[k] = o->local;
    }
    o->kind = OBJ_NONE;
}

static void op_query(thr_t *t, obj_t *o)
{
    t->opname = "query";
    bool local = o->local;
    EXPECT_EQ(local ? LocalSize(o->h) : GlobalSize(o->h), o->size);
    EXPECT_EQ(local ? LocalFlags(o->h) : GlobalFlags(o->h), expect_flags(o, local));
    void *d = data_of(o);
    if (o->kind == OBJ_FIXED) {
        EXPECT_EQ(local ? LocalHandle(d) : GlobalHandle(d), o->h);
    } else if (d) {
        EXPECT_EQ(local ? LocalHandle(d) : GlobalHandle(d), o->h);
        EXPECT_EQ(local ? LocalSize(d) : GlobalSize(d), o->size);
    }
}

static void op_stale(thr_t *t)
{
    t->opname = "stale";
    if (t->nstale == 0) return;
    unsigned k = rn(t, t->nstale < NSTALE ? t->nstale : NSTALE);
    HANDLE h = t->stale[k];
    bool local = t->stale_local[k];
    SetLastError(SENTINEL);
    EXPECT_EQ(local ? LocalFree(h) : GlobalFree(h), h);
    EXPECT_EQ(GetLastError(), ERROR_INVALID_HANDLE);
    SetLastError(SENTINEL);
    EXPECT_EQ(local ? LocalLock(h) : GlobalLock(h), NULL);
    EXPECT_EQ(GetLastError(), ERROR_INVALID_HANDLE);
    SetLastError(SENTINEL);
    EXPECT_EQ(local ? LocalSize(h) : GlobalSize(h), 0);
    EXPECT_EQ(GetLastError(), ERROR_INVALID_HANDLE);
    SetLastError(SENTINEL);
    EXPECT_EQ(local ? LocalFlags(h) : GlobalFlags(h), 0x8000);
    EXPECT_EQ(GetLastError(), ERROR_INVALID_HANDLE);
    SetLastError(SENTINEL);
    EXPECT_EQ(local ? LocalUnlock(h) : GlobalUnlock(h), local ? FALSE : TRUE);
    EXPECT_EQ(GetLastError(), ERROR_INVALID_HANDLE);
    SetLastError(SENTINEL);
    UINT f = chance(t, 50) ? GMEM_MOVEABLE : GMEM_MODIFY;
    EXPECT_EQ(local ? LocalReAlloc(h, rnd_size(t), f) : GlobalReAlloc(h, rnd_size(t), f), NULL);
    EXPECT_EQ(GetLastError(), ERROR_INVALID_HANDLE);
}

static void op_bogus(thr_t *t)
{
    t->opname = "bogus";
    char local_buf[32] __attribute__((aligned(16)));
    void *p = chance(t, 50) ? (void *)BOGUS_PTR : (void *)local_buf;
    SetLastError(SENTINEL);
    EXPECT_EQ(GlobalFree(p), p);
    EXPECT_EQ(GetLastError(), ERROR_NOACCESS);
    SetLastError(SENTINEL);
    EXPECT_EQ(LocalFlags(p), 0x8000);
    EXPECT_EQ(GetLastError(), ERROR_NOACCESS);
    SetLastError(SENTINEL);
    EXPECT_EQ(GlobalReAlloc(p, 5, GMEM_MOVEABLE), NULL);
    EXPECT_EQ(GetLastError(), ERROR_NOACCESS);
    SetLastError(SENTINEL);
    EXPECT_EQ(GlobalUnlock(p), TRUE);
    EXPECT_EQ(GetLastError(), SENTINEL);
}

static void op_shared(thr_t *t)
{
    t->opname = "shared";
    unsigned k = rn(t, NSHARED);
    void *p = GlobalLock(g_shared[k]);
    EXPECT_EQ(p, g_shared_ptr[k]);
    if (p) EXPECT(pattern_ok(t, p, SHARED_SIZE, k), "shared content");
    EXPECT(GlobalFlags(g_shared[k]) & 0xFF, "shared lock count 0");
    SetLastError(SENTINEL);
    EXPECT(GlobalUnlock(g_shared[k]) == TRUE, "shared unlock"); /* main holds one lock */
    EXPECT_EQ(GetLastError(), SENTINEL);
}

static void one_op(thr_t *t)
{
    obj_t *o = &t->obj[rn(t, NOBJ)];
    unsigned r = rn(t, 100);
    if (r < 4) {
        op_stale(t);
    } else if (r < 6) {
        op_bogus(t);
    } else if (r < 16) {
        op_shared(t);
    } else if (o->kind == OBJ_NONE) {
        op_alloc(t, o);
    } else if (r < 34) {
        op_lock(t, o);
    } else if (r < 52) {
        op_unlock(t, o);
    } else if (r < 70) {
        op_realloc(t, o);
    } else if (r < 75) {
        op_discard(t, o);
    } else if (r < 86) {
        op_free(t, o);
    } else if (r < 87) {
        op_lock_burst(t, o);
    } else {
        op_query(t, o);
    }
}

static size_t handles_in_use(void)
{
    ga_stats_t st;
    return ga_heap_stats(NULL, &st) == 0 ? st.handles_in_use : (size_t)-1;
}

static void *worker(void *arg)
{
    thr_t *t = arg;
    for (unsigned round = 0; round < g_rounds; round++) {
        for (unsigned i = 0; i < g_ops_per_round; i++, t->op++)
            one_op(t);
        atomic_fetch_add(&g_ops, g_ops_per_round);
        pthread_barrier_wait(&g_barrier); /* main checks the heap */
        pthread_barrier_wait(&g_barrier);
    }
    for (int i = 0; i < NOBJ; i++)
        if (t->obj[i].kind != OBJ_NONE) op_free(t, &t->obj[i]);
    return NULL;
}

int main(int argc, char **argv)
{
    g_seed = argc > 1 ? strtoull(argv[1], NULL, 0) : (uint64_t)time(NULL);
    if (argc > 2) g_rounds = (unsigned)strtoul(argv[2], NULL, 0);
    printf("stress_win32_model: seed %llu, %d threads, %u rounds x %u ops\n",
           (unsigned long long)g_seed, NTHREADS, g_rounds, g_ops_per_round);
    fflush(stdout);
    size_t handles_before = handles_in_use();
    for (int k = 0; k < NSHARED; k++) {
        g_shared[k] = GlobalAlloc(GMEM_MOVEABLE, SHARED_SIZE);
        g_shared_ptr[k] = GlobalLock(g_shared[k]);
        fill(g_shared_ptr[k], SHARED_SIZE, (unsigned)k);
    }
    static thr_t thr[NTHREADS];
    pthread_t tid[NTHREADS];
    pthread_barrier_init(&g_barrier, NULL, NTHREADS + 1);
    for (int i = 0; i < NTHREADS; i++) {
        thr[i].id = i;
        thr[i].rng = (g_seed + 1) * UINT64_C(0x9E3779B97F4A7C15) + (uint64_t)i * 7919 + 1;
        pthread_create(&tid[i], NULL, worker, &thr[i]);
    }
    int check_failures = 0;
    for (unsigned round = 0; round < g_rounds; round++) {
        pthread_barrier_wait(&g_barrier);
        int rc = ga_heap_check(NULL, 0);
        if (rc) {
            check_failures++;
            fprintf(stderr, "seed %llu round %u: ga_heap_check: %s\n", (unsigned long long)g_seed,
                    round, ga_err_name(rc));
        }
        pthread_barrier_wait(&g_barrier);
    }
    for (int i = 0; i < NTHREADS; i++)
        pthread_join(tid[i], NULL);
    for (int k = 0; k < NSHARED; k++) {
        if (GlobalFlags(g_shared[k]) != 1) {
            fprintf(stderr, "shared handle %d: lock count %u, expected 1\n", k,
                    GlobalFlags(g_shared[k]));
            check_failures++;
        }
        GlobalFree(g_shared[k]);
    }
    if (handles_in_use() != handles_before) {
        fprintf(stderr, "handles leaked: %zu -> %zu\n", handles_before, handles_in_use());
        check_failures++;
    }
    int rc = ga_heap_check(NULL, 0);
    if (rc) {
        fprintf(stderr, "final ga_heap_check: %s\n", ga_err_name(rc));
        check_failures++;
    }
    int fails = atomic_load(&g_failures) + check_failures;
    printf("%lu ops, %d failures (seed %llu)\n", atomic_load(&g_ops), fails,
           (unsigned long long)g_seed);
    return fails ? 1 : 0;
}
