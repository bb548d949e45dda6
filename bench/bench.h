/* SPDX-License-Identifier: MIT */
/*
 * Shared pieces of the preloadable benchmark program (ga-bench): the workload table, a fixed-seed
 * random generator, the clock, and the one result line every workload prints.
 *
 * The workloads call only malloc/free/realloc, so LD_PRELOAD decides which allocator they measure.
 * Invariants: every workload is deterministic for a given (scale, threads) -- fixed seeds, fixed
 * operation counts -- and returns a checksum of data it read back from its blocks, which the
 * result line prints, so the compiler cannot drop the work and a broken allocator shows up as a
 * changed checksum between allocators.
 */
#ifndef GA_BENCH_H
#define GA_BENCH_H

#include <stddef.h>
#include <stdint.h>

/* What the driver hands a workload. */
typedef struct bench_args_s {
    double scale; /* multiplies the operation counts: 1.0 = a full timing run */
    int threads;  /* worker threads (workloads that have them) */
} bench_args_t;

/* What a workload hands back. seconds covers the measured part only. */
typedef struct bench_result_s {
    uint64_t ops;      /* allocation operations done (the unit is the workload's own) */
    uint64_t checksum; /* data read back from blocks; equal across correct allocators */
    double seconds;
} bench_result_t;

/* Each workload: runs, fills *res, returns 0 (or 1 after printing why it failed). */
typedef int bench_fn_t(const bench_args_t *args, bench_result_t *res);

bench_fn_t bench_churn;
bench_fn_t bench_larson;
bench_fn_t bench_prodcons;
bench_fn_t bench_threads;
bench_fn_t bench_scratch;
bench_fn_t bench_realloc;
bench_fn_t bench_large;

/* ---- helpers (bench_util.c) -------------------------------------------------------------- */

/* Monotonic seconds. */
double bench_now(void);
/* scale * n, at least min_n. */
uint64_t bench_count(const bench_args_t *args, uint64_t n, uint64_t min_n);
/* Prints "ga-bench: msg" on stderr and exits with status 2 (for malloc failure in a harness). */
void bench_die(const char *msg) __attribute__((noreturn));
/* Starts n threads running fn(arg_i) with arg_i = (char *)args + i * stride, waits for them all.
 * Exits through bench_die if a thread cannot be created. */
void bench_run_threads(int n, void *(*fn)(void *), void *args, size_t stride);

/* splitmix64: small, fast, and good enough to pick sizes and slots. */
typedef struct bench_rng_s {
    uint64_t s;
} bench_rng_t;

static inline uint64_t bench_rand(bench_rng_t *r)
{
    uint64_t z = (r->s += 0x9E3779B97F4A7C15u);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9u;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBu;
    return z ^ (z >> 31);
}

/* Uniform in [0, n). n > 0. */
static inline uint64_t bench_below(bench_rng_t *r, uint64_t n)
{
    return bench_rand(r) % n;
}

/* A "mixed small" size: mostly tiny, some medium, a few up to 1 KiB -- the shape of the sizes
 * real programs ask for (strings, list nodes, small structs), as in mimalloc-bench's workloads. */
static inline size_t bench_small_size(bench_rng_t *r)
{
    uint64_t x = bench_rand(r);
    unsigned pick = (unsigned)(x & 15);
    x >>= 4;
    if (pick < 10) return 8 + (size_t)(x % 57);   /* 8..64 */
    if (pick < 14) return 65 + (size_t)(x % 192); /* 65..256 */
    return 257 + (size_t)(x % 768);               /* 257..1024 */
}

/* Writes a few bytes of a fresh block derived from tag, so a block is really used. */
static inline void bench_fill(void *p, size_t size, uint64_t tag)
{
    unsigned char *b = p;
    b[0] = (unsigned char)tag;
    b[size - 1] = (unsigned char)(tag >> 8);
    if (size >= 16) b[size / 2] = (unsigned char)(tag >> 16);
}

/* Reads back what bench_fill wrote, folded into a checksum. */
static inline uint64_t bench_read(const void *p, size_t size)
{
    const unsigned char *b = p;
    uint64_t v = (uint64_t)b[0] | (uint64_t)b[size - 1] << 8;
    if (size >= 16) v |= (uint64_t)b[size / 2] << 16;
    return v;
}

#endif /* GA_BENCH_H */
