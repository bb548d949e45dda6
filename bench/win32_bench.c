/* SPDX-License-Identifier: MIT */
/*
 * ga-bench-win32: the Win32 path, which cannot be preloaded, measured in one process.
 *
 *   ga-bench-win32 [-s SCALE] [-t THREADS]
 *
 * Cases (each prints "RESULT workload=win32 case=NAME threads=T ops=N seconds=X ns_per_op=Y"):
 *   fixed-global    GlobalAlloc(GMEM_FIXED) + GlobalFree, batches of 64 mixed small sizes
 *   fixed-ga        ga_malloc + ga_free, the same batches (what GMEM_FIXED costs on top)
 *   fixed-malloc    malloc + free (the system allocator: this program is not preloaded)
 *   moveable-global GMEM_MOVEABLE alloc, lock/write/unlock, GlobalReAlloc, lock/read/unlock, free
 *   moveable-malloc the same data movement with malloc/realloc/free, for reference
 *   lock-1          GlobalLock + GlobalUnlock pair on a thread's own handle, 1 thread
 *   lock-own-T      the same in T threads at once, each on its own handle
 *   lock-shared-T   T threads locking and unlocking one shared handle
 * An op is one alloc+free pair, one moveable cycle, or one lock+unlock pair.
 */
#include "globalalloc/win32.h"
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BATCH 64

static double scale = 1.0;
static int nthreads = 2;
static unsigned sizes[BATCH * 16]; /* fixed-seed mixed small sizes, shared by every case */
static volatile uint64_t sink;     /* keeps read-back data alive */

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static uint64_t count(uint64_t n)
{
    double v = (double)n * scale;
    return v < 64 ? 64 : (uint64_t)v;
}

static void die(const char *what)
{
    fprintf(stderr, "ga-bench-win32: %s failed\n", what);
    exit(2);
}

static void report(const char *name, int threads, uint64_t ops, double seconds)
{
    printf("RESULT workload=win32 case=%s threads=%d ops=%" PRIu64 " seconds=%.6f "
           "ns_per_op=%.2f\n",
           name, threads, ops, seconds, seconds * 1e9 / (double)ops);
}

static void init_sizes(void)
{
    uint64_t s = 0x5eed0600;
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        s = s * 6364136223846793005u + 1442695040888963407u;
        unsigned x = (unsigned)(s >> 33);
        sizes[i] = (x & 3) ? 8 + x % 120 : 128 + x % 897; /* 3/4 up to 127, rest up to 1 KiB */
    }
}

/* ---- fixed blocks ---------------------------------------------------------------------- */

typedef enum { VIA_GLOBAL, VIA_GA, VIA_MALLOC } via_t;

static void *fixed_alloc(via_t via, size_t n)
{
    switch (via) {
    case VIA_GLOBAL:
        return GlobalAlloc(GMEM_FIXED, n);
    case VIA_GA:
        return ga_malloc(n);
    default:
        return malloc(n);
    }
}

static void fixed_free(via_t via, void *p)
{
    switch (via) {
    case VIA_GLOBAL:
        if (GlobalFree(p) != NULL) die("GlobalFree");
        break;
    case VIA_GA:
        ga_free(p);
        break;
    default:
        free(p);
    }
}

static void bench_fixed(const char *name, via_t via)
{
    uint64_t batches = count(200000), ops = batches * BATCH, sum = 0;
    void *p[BATCH];
    double t0 = now();
    for (uint64_t b = 0; b < batches; b++) {
        const unsigned *sz = &sizes[(b % 16) * BATCH];
        for (int i = 0; i < BATCH; i++) {
            if (!(p[i] = fixed_alloc(via, sz[i]))) die("fixed alloc");
            *(unsigned char *)p[i] = (unsigned char)i;
        }
        for (int i = 0; i < BATCH; i++) {
            sum += *(unsigned char *)p[i];
            fixed_free(via, p[i]);
        }
    }
    double t = now() - t0;
    sink += sum;
    report(name, 1, ops, t);
}

/* ---- moveable cycles ------------------------------------------------------------------- */

static void bench_moveable_global(void)
{
    uint64_t batches = count(40000), ops = batches * BATCH, sum = 0;
    HGLOBAL h[BATCH];
    double t0 = now();
    for (uint64_t b = 0; b < batches; b++) {
        const unsigned *sz = &sizes[(b % 16) * BATCH];
        for (int i = 0; i < BATCH; i++) {
            if (!(h[i] = GlobalAlloc(GMEM_MOVEABLE, sz[i]))) die("GlobalAlloc(GMEM_MOVEABLE)");
            unsigned char *d = GlobalLock(h[i]);
            if (!d) die("GlobalLock");
            memset(d, i, sz[i]);
            GlobalUnlock(h[i]);
        }
        for (int i = 0; i < BATCH; i++) {
            /* Grow about 3x: past the size class, so the block usually moves. */
            if (GlobalReAlloc(h[i], sz[i] * 3 + 16, GMEM_MOVEABLE) != h[i]) die("GlobalReAlloc");
            unsigned char *d = GlobalLock(h[i]);
            if (!d) die("GlobalLock");
            sum += d[0] + d[sz[i] - 1];
            GlobalUnlock(h[i]);
        }
        for (int i = 0; i < BATCH; i++) {
            if (GlobalFree(h[i]) != NULL) die("GlobalFree");
        }
    }
    double t = now() - t0;
    sink += sum;
    report("moveable-global", 1, ops, t);
}

static void bench_moveable_malloc(void)
{
    uint64_t batches = count(40000), ops = batches * BATCH, sum = 0;
    unsigned char *p[BATCH];
    double t0 = now();
    for (uint64_t b = 0; b < batches; b++) {
        const unsigned *sz = &sizes[(b % 16) * BATCH];
        for (int i = 0; i < BATCH; i++) {
            if (!(p[i] = malloc(sz[i]))) die("malloc");
            memset(p[i], i, sz[i]);
        }
        for (int i = 0; i < BATCH; i++) {
            if (!(p[i] = realloc(p[i], sz[i] * 3 + 16))) die("realloc");
            sum += p[i][0] + p[i][sz[i] - 1];
        }
        for (int i = 0; i < BATCH; i++)
            free(p[i]);
    }
    double t = now() - t0;
    sink += sum;
    report("moveable-malloc", 1, ops, t);
}

/* ---- lock/unlock pairs ----------------------------------------------------------------- */

typedef struct locker_s {
    HGLOBAL h;
    uint64_t pairs;
    uint64_t sum;
    double seconds; /* this thread's own time: the main thread may run late after the barrier */
    char pad[64];
} locker_t;

static pthread_barrier_t start_line;

static void *locker(void *arg)
{
    locker_t *l = arg;
    uint64_t sum = 0;
    pthread_barrier_wait(&start_line);
    double t0 = now();
    for (uint64_t i = 0; i < l->pairs; i++) {
        volatile unsigned char *d = GlobalLock(l->h);
        if (!d) die("GlobalLock");
        sum += d[0];
        GlobalUnlock(l->h);
    }
    l->seconds = now() - t0;
    l->sum = sum;
    return NULL;
}

static void bench_lock(int threads, int shared)
{
    locker_t l[256];
    pthread_t tid[256];
    HGLOBAL one = GlobalAlloc(GMEM_MOVEABLE | GMEM_ZEROINIT, 64);
    uint64_t pairs = count(20000000) / (uint64_t)threads;
    if (!one) die("GlobalAlloc");
    for (int i = 0; i < threads; i++) {
        l[i].h = shared ? one : GlobalAlloc(GMEM_MOVEABLE | GMEM_ZEROINIT, 64);
        if (!l[i].h) die("GlobalAlloc");
        l[i].pairs = pairs;
    }
    pthread_barrier_init(&start_line, NULL, (unsigned)threads + 1);
    for (int i = 0; i < threads; i++) {
        if (pthread_create(&tid[i], NULL, locker, &l[i]) != 0) die("pthread_create");
    }
    /* Every thread starts its clock at the barrier, so thread creation is not timed. */
    pthread_barrier_wait(&start_line);
    double t = 0;
    for (int i = 0; i < threads; i++)
        pthread_join(tid[i], NULL);
    pthread_barrier_destroy(&start_line);
    for (int i = 0; i < threads; i++) {
        t += l[i].seconds / threads;
        sink += l[i].sum;
        if (!shared) GlobalFree(l[i].h);
    }
    GlobalFree(one);
    char name[32];
    if (threads == 1)
        snprintf(name, sizeof name, "lock-1");
    else
        snprintf(name, sizeof name, "lock-%s-%d", shared ? "shared" : "own", threads);
    /* t is the threads' mean time, so ns_per_op is what one thread sees a pair cost. */
    report(name, threads, pairs, t);
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        char *end = NULL;
        errno = 0;
        if (strcmp(argv[i], "-s") == 0 && i + 1 < argc) {
            scale = strtod(argv[++i], &end);
            if (errno || *end || !(scale > 0)) goto usage;
        } else if (strcmp(argv[i], "-t") == 0 && i + 1 < argc) {
            long t = strtol(argv[++i], &end, 10);
            if (errno || *end || t < 2 || t > 256) goto usage;
            nthreads = (int)t;
        } else {
            goto usage;
        }
    }
    init_sizes();
    bench_fixed("fixed-global", VIA_GLOBAL);
    bench_fixed("fixed-ga", VIA_GA);
    bench_fixed("fixed-malloc", VIA_MALLOC);
    bench_moveable_global();
    bench_moveable_malloc();
    bench_lock(1, 0);
    bench_lock(nthreads, 0);
    bench_lock(nthreads, 1);
    return 0;
usage:
    fprintf(stderr, "usage: ga-bench-win32 [-s SCALE] [-t THREADS (2..256)]\n");
    return 2;
}
