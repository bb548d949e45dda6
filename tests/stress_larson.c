/* SPDX-License-Identifier: MIT */
/* Larson-style hand-over (Larson & Krishnan, ISMM 1998): each thread replaces random blocks of
 * an array, then starts a successor on the same array and exits while the successor frees what
 * it allocated. Exercises abandoned segments, adoption and frees racing with thread exit. */
#include "test.h"
#include <pthread.h>
#include <stdatomic.h>

enum { CHAINS = 3, SLOTS = 2000, ROUNDS = 4000, GENERATIONS = 60 };

typedef struct {
    void *slot[SLOTS];
    size_t len[SLOTS];
    unsigned seed;
    int generation;
} chain_t;

static chain_t chains[CHAINS];
static atomic_int running;
static atomic_int bad;

static unsigned next_rand(unsigned *s)
{
    *s = *s * 1103515245u + 12345u;
    return *s >> 8;
}

static void *generation(void *arg)
{
    chain_t *c = arg;
    for (int r = 0; r < ROUNDS; r++) {
        unsigned i = next_rand(&c->seed) % SLOTS;
        if (c->slot[i]) {
            unsigned char *p = c->slot[i];
            if (p[0] != (unsigned char)c->len[i] || p[c->len[i] - 1] != (unsigned char)i)
                atomic_fetch_add(&bad, 1);
            ga_free(p);
        }
        size_t len = 8 + next_rand(&c->seed) % 1000;
        unsigned char *p = ga_malloc(len);
        p[0] = (unsigned char)len;
        p[len - 1] = (unsigned char)i;
        c->slot[i] = p;
        c->len[i] = len;
    }
    if (++c->generation < GENERATIONS) {
        pthread_t next;
        pthread_create(&next, NULL, generation, c);
        pthread_detach(next);
    } else {
        atomic_fetch_sub(&running, 1);
    }
    return NULL;
}

TEST(larson_hand_over)
{
    ga_stats_t st0;
    ga_heap_stats(NULL, &st0);
    atomic_store(&running, CHAINS);
    for (int t = 0; t < CHAINS; t++) {
        chains[t].seed = (unsigned)t + 1;
        pthread_t tid;
        pthread_create(&tid, NULL, generation, &chains[t]);
        pthread_detach(tid);
    }
    while (atomic_load(&running) > 0)
        sched_yield();
    ga_stats_t st1;
    ga_heap_stats(NULL, &st1);
    /* Detached threads may still be exiting: wait until they all gave their heaps back. */
    for (int spin = 0; spin < 2000 && st1.threads > st0.threads; spin++) {
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
        ga_heap_stats(NULL, &st1);
    }
    ASSERT_EQ(atomic_load(&bad), 0);
    size_t live = 0;
    for (int t = 0; t < CHAINS; t++)
        for (int i = 0; i < SLOTS; i++)
            live += chains[t].slot[i] != NULL;
    ASSERT_EQ(st1.blocks_in_use, st0.blocks_in_use + live);
    CHECK_HEAP();
    for (int t = 0; t < CHAINS; t++)
        for (int i = 0; i < SLOTS; i++)
            ga_free(chains[t].slot[i]);
    ga_heap_stats(NULL, &st1);
    ASSERT_EQ(st1.blocks_in_use, st0.blocks_in_use);
    CHECK_HEAP();
}

TEST_MAIN(TEST_ENTRY(larson_hand_over))
