/* SPDX-License-Identifier: MIT */
/*
 * realloc: 64 buffers grow side by side by small random appends (1..256 bytes, each a realloc
 * to the exact new length, as naive string builders do) up to a random target between 1 KiB
 * and 1 MiB, are checked and freed, and start again. Interleaving keeps a neighbour in the way
 * of in-place growth, so the allocator's growth policy (in-place, size-class slack, mremap for
 * large blocks) decides the time.
 */
#include "bench.h"
#include <stdlib.h>
#include <string.h>

#define BUFS 64

typedef struct buf_s {
    unsigned char *p;
    size_t len, target;
} buf_t;

static size_t pick_target(bench_rng_t *rng)
{
    /* Log-uniform 1 KiB .. 1 MiB: most buffers stay small, a few get big. */
    unsigned shift = 10 + (unsigned)bench_below(rng, 10);
    return ((size_t)1 << shift) + (size_t)bench_below(rng, (size_t)1 << shift);
}

int bench_realloc(const bench_args_t *args, bench_result_t *res)
{
    buf_t b[BUFS];
    bench_rng_t rng = {0x5eed0400};
    uint64_t steps = bench_count(args, 1500000, 1000), sum = 0;

    double t0 = bench_now();
    for (int i = 0; i < BUFS; i++)
        b[i] = (buf_t){NULL, 0, pick_target(&rng)};
    for (uint64_t s = 0; s < steps; s++) {
        buf_t *x = &b[bench_below(&rng, BUFS)];
        size_t add = 1 + (size_t)bench_below(&rng, 256);
        unsigned char *q = realloc(x->p, x->len + add);
        if (!q) bench_die("realloc failed");
        /* Each append writes its last byte as a function of the offset, checked later. */
        memset(q + x->len, (int)(s & 0xff), add);
        q[x->len + add - 1] = (unsigned char)((x->len + add) * 131);
        x->p = q;
        x->len += add;
        if (x->len >= x->target) {
            sum += x->len + q[x->len - 1] + q[0];
            free(q);
            *x = (buf_t){NULL, 0, pick_target(&rng)};
        }
    }
    for (int i = 0; i < BUFS; i++) {
        if (b[i].p) sum += b[i].len + b[i].p[b[i].len - 1] + b[i].p[0];
        free(b[i].p);
    }
    res->seconds = bench_now() - t0;
    res->ops = steps;
    res->checksum = sum;
    return 0;
}
