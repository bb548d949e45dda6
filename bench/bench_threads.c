/* SPDX-License-Identifier: MIT */
/*
 * threads: T threads, each allocating and freeing only its own blocks (a private live set of
 * mixed small sizes, replaced at random). The total work is fixed and split evenly, so with
 * perfect scaling the time falls as 1/T up to the number of cores; an allocator with a shared
 * lock on the fast path stays flat or gets slower. run.py reports T = 1, 2 and 4.
 */
#include "bench.h"
#include <stdlib.h>

#define LIVE 2000

typedef struct worker_s {
    uint64_t steps;
    uint64_t seed;
    uint64_t sum;
    char pad[64];
} worker_t;

static void *worker(void *arg)
{
    worker_t *w = arg;
    void *slot[LIVE];
    size_t len[LIVE];
    bench_rng_t rng = {w->seed};
    uint64_t sum = 0;
    for (size_t i = 0; i < LIVE; i++) {
        len[i] = bench_small_size(&rng);
        if (!(slot[i] = malloc(len[i]))) bench_die("malloc failed");
        bench_fill(slot[i], len[i], i);
    }
    for (uint64_t s = 0; s < w->steps; s++) {
        size_t i = (size_t)bench_below(&rng, LIVE);
        sum += bench_read(slot[i], len[i]);
        free(slot[i]);
        len[i] = bench_small_size(&rng);
        if (!(slot[i] = malloc(len[i]))) bench_die("malloc failed");
        bench_fill(slot[i], len[i], s);
    }
    for (size_t i = 0; i < LIVE; i++) {
        sum += bench_read(slot[i], len[i]);
        free(slot[i]);
    }
    w->sum = sum;
    return NULL;
}

int bench_threads(const bench_args_t *args, bench_result_t *res)
{
    worker_t w[256];
    int n = args->threads;
    uint64_t total = bench_count(args, 30000000, 1000);
    for (int i = 0; i < n; i++)
        w[i] = (worker_t){total / (uint64_t)n, 0x5eed0100u + (uint64_t)i, 0, {0}};

    double t0 = bench_now();
    bench_run_threads(n, worker, w, sizeof w[0]);
    res->seconds = bench_now() - t0;
    res->ops = 0;
    res->checksum = 0;
    for (int i = 0; i < n; i++) {
        res->ops += w[i].steps + LIVE;
        res->checksum += w[i].sum;
    }
    return 0;
}
