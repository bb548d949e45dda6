/* SPDX-License-Identifier: MIT */
/*
 * larson: the server simulation of Larson & Krishnan ("Memory allocation for long-running
 * server applications", ISMM 1998), as in mimalloc-bench. T chains run at once; each chain owns
 * an array of LIVE blocks (sizes 8..1000). A thread of a chain replaces ROUND random blocks and
 * then starts its successor on the same array and exits, so most blocks are freed by a thread
 * other than the one that allocated them, and every thread's heap is abandoned when it exits.
 * Unlike the original (which runs for a fixed time) the work is a fixed number of steps.
 */
#include "bench.h"
#include <pthread.h>
#include <stdlib.h>

#define LIVE  2000
#define ROUND 10000

typedef struct chain_s {
    void *slot[LIVE];
    size_t len[LIVE];
    bench_rng_t rng;
    uint64_t generations_left;
    uint64_t sum;
} chain_t;

static struct {
    pthread_mutex_t lock;
    pthread_cond_t done;
    int chains_running;
} larson = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0};

static void *generation(void *arg)
{
    chain_t *c = arg;
    uint64_t sum = 0;
    for (uint64_t s = 0; s < ROUND; s++) {
        size_t i = (size_t)bench_below(&c->rng, LIVE);
        sum += bench_read(c->slot[i], c->len[i]);
        free(c->slot[i]);
        c->len[i] = 8 + (size_t)bench_below(&c->rng, 993);
        if (!(c->slot[i] = malloc(c->len[i]))) bench_die("malloc failed");
        bench_fill(c->slot[i], c->len[i], s);
    }
    c->sum += sum;
    if (--c->generations_left > 0) {
        pthread_t next;
        if (pthread_create(&next, NULL, generation, c) != 0) bench_die("pthread_create failed");
        pthread_detach(next);
        return NULL;
    }
    pthread_mutex_lock(&larson.lock);
    if (--larson.chains_running == 0) pthread_cond_signal(&larson.done);
    pthread_mutex_unlock(&larson.lock);
    return NULL;
}

int bench_larson(const bench_args_t *args, bench_result_t *res)
{
    int n = args->threads;
    uint64_t total = bench_count(args, 40000000, 1000);
    uint64_t gens = total / ((uint64_t)n * ROUND);
    if (gens < 2) gens = 2; /* at least one hand-over, or no block is freed by another thread */
    chain_t *chains = calloc((size_t)n, sizeof *chains);
    if (!chains) bench_die("calloc failed");

    double t0 = bench_now();
    for (int t = 0; t < n; t++) {
        chain_t *c = &chains[t];
        c->rng.s = 0x5eed0200u + (uint64_t)t;
        c->generations_left = gens;
        for (size_t i = 0; i < LIVE; i++) {
            c->len[i] = 8 + (size_t)bench_below(&c->rng, 993);
            if (!(c->slot[i] = malloc(c->len[i]))) bench_die("malloc failed");
            bench_fill(c->slot[i], c->len[i], i);
        }
    }
    larson.chains_running = n;
    for (int t = 0; t < n; t++) {
        pthread_t tid;
        if (pthread_create(&tid, NULL, generation, &chains[t]) != 0)
            bench_die("pthread_create failed");
        pthread_detach(tid);
    }
    pthread_mutex_lock(&larson.lock);
    while (larson.chains_running > 0)
        pthread_cond_wait(&larson.done, &larson.lock);
    pthread_mutex_unlock(&larson.lock);
    uint64_t sum = 0;
    for (int t = 0; t < n; t++) {
        for (size_t i = 0; i < LIVE; i++) {
            sum += bench_read(chains[t].slot[i], chains[t].len[i]);
            free(chains[t].slot[i]);
        }
        sum += chains[t].sum;
    }
    res->seconds = bench_now() - t0;
    free(chains);
    res->ops = (uint64_t)n * (gens * ROUND + LIVE);
    res->checksum = sum;
    return 0;
}
