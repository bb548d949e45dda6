/* SPDX-License-Identifier: MIT */
/*
 * scratch: Hoard's cache-scratch test of passive false sharing (Berger et al., "Hoard", ASPLOS
 * 2000). The main thread allocates one small block per worker -- neighbours, so likely on one
 * cache line -- and hands them out. Each worker frees its block, then repeatedly allocates a
 * block of the same size, writes it many times and frees it. An allocator that gives a worker
 * back the block it just freed, or another block on a line other threads use, makes the
 * workers fight over cache lines; one that keeps per-thread pages does not.
 */
#include "bench.h"
#include <stdlib.h>

#define OBJ_SIZE    8
#define REPETITIONS 2000

typedef struct scratch_s {
    char *first; /* allocated by the main thread */
    uint64_t iterations;
    uint64_t sum;
    char pad[64];
} scratch_t;

static void *worker(void *arg)
{
    scratch_t *s = arg;
    uint64_t sum = 0;
    free(s->first);
    for (uint64_t it = 0; it < s->iterations; it++) {
        volatile char *a = malloc(OBJ_SIZE);
        if (!a) bench_die("malloc failed");
        for (int r = 0; r < REPETITIONS; r++) {
            for (int k = 0; k < OBJ_SIZE; k++) {
                a[k] = (char)(k + r);
                sum += (unsigned char)a[k];
            }
        }
        free((void *)a);
    }
    s->sum = sum;
    return NULL;
}

int bench_scratch(const bench_args_t *args, bench_result_t *res)
{
    scratch_t s[256];
    int n = args->threads;
    uint64_t iterations = bench_count(args, 160000, 10);
    double t0 = bench_now();
    for (int i = 0; i < n; i++) {
        s[i] = (scratch_t){malloc(OBJ_SIZE), iterations, 0, {0}};
        if (!s[i].first) bench_die("malloc failed");
        s[i].first[0] = 1;
    }
    bench_run_threads(n, worker, s, sizeof s[0]);
    res->seconds = bench_now() - t0;
    res->ops = 0;
    res->checksum = 0;
    for (int i = 0; i < n; i++) {
        res->ops += s[i].iterations;
        res->checksum += s[i].sum;
    }
    return 0;
}
