/* SPDX-License-Identifier: MIT */
/*
 * large: one thread keeps LIVE large blocks (log-uniform 64 KiB .. 16 MiB) and replaces a random
 * one per step, writing one byte in every 4 KiB page of the new block, as a program that really
 * uses its buffers would. The cost is mostly mmap/munmap and page faults, so this shows whether
 * the allocator caches large blocks and how much memory (peak RSS) it keeps for it.
 */
#include "bench.h"
#include <stdlib.h>

#define LIVE 8
#define PAGE 4096

static size_t pick_size(bench_rng_t *rng)
{
    unsigned shift = 16 + (unsigned)bench_below(rng, 8); /* 64 KiB .. 8 MiB */
    return ((size_t)1 << shift) + (size_t)bench_below(rng, (size_t)1 << shift);
}

static void touch(unsigned char *p, size_t size, uint64_t tag)
{
    for (size_t off = 0; off < size; off += PAGE)
        p[off] = (unsigned char)(tag + off / PAGE);
    p[size - 1] = (unsigned char)tag;
}

static uint64_t sample(const unsigned char *p, size_t size)
{
    return (uint64_t)p[0] + p[size / 2 / PAGE * PAGE] + p[size - 1];
}

int bench_large(const bench_args_t *args, bench_result_t *res)
{
    unsigned char *slot[LIVE];
    size_t len[LIVE];
    bench_rng_t rng = {0x5eed0500};
    uint64_t steps = bench_count(args, 3000, 20), sum = 0;

    double t0 = bench_now();
    for (size_t i = 0; i < LIVE; i++) {
        len[i] = pick_size(&rng);
        if (!(slot[i] = malloc(len[i]))) bench_die("malloc failed");
        touch(slot[i], len[i], i);
    }
    for (uint64_t s = 0; s < steps; s++) {
        size_t i = (size_t)bench_below(&rng, LIVE);
        sum += sample(slot[i], len[i]);
        free(slot[i]);
        len[i] = pick_size(&rng);
        if (!(slot[i] = malloc(len[i]))) bench_die("malloc failed");
        touch(slot[i], len[i], s);
    }
    for (size_t i = 0; i < LIVE; i++) {
        sum += sample(slot[i], len[i]);
        free(slot[i]);
    }
    res->seconds = bench_now() - t0;
    res->ops = steps + LIVE;
    res->checksum = sum;
    return 0;
}
