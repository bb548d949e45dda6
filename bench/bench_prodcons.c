/* SPDX-License-Identifier: MIT */
/*
 * prodcons: P producer/consumer pairs (2P threads). A producer allocates blocks of mixed small
 * sizes, writes them and passes them through a single-producer single-consumer ring; its
 * consumer reads and frees them. Every free is of a block another thread allocated, so this
 * measures the allocator's remote-free path (and how fast freed memory gets back to the
 * producer), which thread caches without a cross-thread path handle badly.
 */
#include "bench.h"
#include <sched.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdlib.h>

#define RING 4096 /* power of two */

typedef struct pair_s {
    alignas(64) _Atomic uint64_t head; /* written by the producer */
    alignas(64) _Atomic uint64_t tail; /* written by the consumer */
    alignas(64) uint64_t items;
    uint64_t seed;
    uint64_t sum;
    void *ring[RING];
} pair_t;

static void *producer(void *arg)
{
    pair_t *p = arg;
    bench_rng_t rng = {p->seed};
    uint64_t tail_seen = 0;
    for (uint64_t i = 0; i < p->items; i++) {
        while (i - tail_seen >= RING) {
            tail_seen = atomic_load_explicit(&p->tail, memory_order_acquire);
            if (i - tail_seen >= RING) sched_yield();
        }
        size_t len = bench_small_size(&rng);
        unsigned char *b = malloc(len);
        if (!b) bench_die("malloc failed");
        b[0] = (unsigned char)(len >> 8); /* the consumer needs the length back */
        b[1] = (unsigned char)len;
        b[len - 1] = (unsigned char)i;
        p->ring[i & (RING - 1)] = b;
        atomic_store_explicit(&p->head, i + 1, memory_order_release);
    }
    return NULL;
}

static void *consumer(void *arg)
{
    pair_t *p = arg;
    uint64_t head_seen = 0, sum = 0;
    for (uint64_t i = 0; i < p->items; i++) {
        while (i >= head_seen) {
            head_seen = atomic_load_explicit(&p->head, memory_order_acquire);
            if (i >= head_seen) sched_yield();
        }
        unsigned char *b = p->ring[i & (RING - 1)];
        size_t len = (size_t)b[0] << 8 | b[1];
        sum += len + b[len - 1];
        free(b);
        atomic_store_explicit(&p->tail, i + 1, memory_order_release);
    }
    p->sum = sum;
    return NULL;
}

static void *pair_thread(void *arg)
{
    /* Even slots produce, odd slots consume: see bench_prodcons. */
    void **slot = arg;
    pair_t *p = slot[0];
    return slot[1] ? consumer(p) : producer(p);
}

int bench_prodcons(const bench_args_t *args, bench_result_t *res)
{
    int pairs = args->threads;
    if (pairs > 128) bench_die("at most 128 pairs");
    uint64_t total = bench_count(args, 4000000, 1000);
    pair_t *p = aligned_alloc(64, (size_t)pairs * sizeof *p);
    void *slots[256][2];
    if (!p) bench_die("aligned_alloc failed");
    for (int i = 0; i < pairs; i++) {
        atomic_init(&p[i].head, 0);
        atomic_init(&p[i].tail, 0);
        p[i].items = total / (uint64_t)pairs;
        p[i].seed = 0x5eed0300u + (uint64_t)i;
        p[i].sum = 0;
        slots[2 * i][0] = &p[i];
        slots[2 * i][1] = NULL;
        slots[2 * i + 1][0] = &p[i];
        slots[2 * i + 1][1] = &p[i];
    }
    double t0 = bench_now();
    bench_run_threads(2 * pairs, pair_thread, slots, sizeof slots[0]);
    res->seconds = bench_now() - t0;
    res->ops = 0;
    res->checksum = 0;
    for (int i = 0; i < pairs; i++) {
        res->ops += p[i].items;
        res->checksum += p[i].sum;
    }
    free(p);
    return 0;
}
