/* SPDX-License-Identifier: MIT */
/*
 * churn: one thread keeps a live set of LIVE blocks of mixed small sizes and replaces a random
 * one per step (read it back, free it, allocate another size, write it). This is the common
 * case of a long-running single-threaded program: the allocator must reuse freed blocks of
 * many size classes without the heap growing, and its fast paths dominate the time.
 */
#include "bench.h"
#include <stdlib.h>

#define LIVE 20000

int bench_churn(const bench_args_t *args, bench_result_t *res)
{
    static void *slot[LIVE];
    static size_t len[LIVE];
    bench_rng_t rng = {0x5eed0001};
    uint64_t steps = bench_count(args, 30000000, 1000), sum = 0;

    double t0 = bench_now();
    for (size_t i = 0; i < LIVE; i++) {
        len[i] = bench_small_size(&rng);
        if (!(slot[i] = malloc(len[i]))) bench_die("malloc failed");
        bench_fill(slot[i], len[i], i);
    }
    for (uint64_t s = 0; s < steps; s++) {
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
    res->seconds = bench_now() - t0;
    res->ops = steps + LIVE;
    res->checksum = sum;
    return 0;
}
