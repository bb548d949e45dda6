/* SPDX-License-Identifier: MIT */
/*
 * Multithreaded stress of the malloc-style API, in the style of mimalloc's test-stress: random
 * sizes (mostly small, some medium and large, a few huge), blocks that change hands so most are
 * freed by a thread other than the one that allocated them, producer/consumer pairs through a
 * queue, and threads that exit while others still hold their blocks (the survivors free them).
 *
 * Every block carries a header {size, tag} where tag is a hash of its address and size, and is
 * filled with the tag's bytes (the whole block when small, its first and last 4 KiB when big),
 * so a block handed out twice, overlapping another, or scribbled on is caught before it is freed.
 * Each test ends with ga_heap_check (test.h) and with blocks_in_use back to its starting value.
 * Work is bounded by iteration counts and by a wall-clock budget, so a slow sanitizer build
 * stops early rather than running long.
 */
#include "test.h"
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <time.h>

#define THREADS     6
#define ROUNDS      4
#define ITERS       20000 /* per thread per round */
#define SLOTS       512
#define LOCAL       64
#define EDGE        4096 /* bytes checked at each end of a big block */
#define BUDGET_SECS 8.0  /* per test: later rounds are cut short past this */

/* ---- blocks with self-checking contents ------------------------------------------------- */

typedef struct {
    size_t size;
    uint64_t tag;
} hdr_t;

static atomic_int failures;

static uint64_t mix64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    return x ^ (x >> 33);
}

static uint64_t tag_of(const void *p, size_t n)
{
    return mix64((uintptr_t)p ^ (n << 20) ^ n);
}

static unsigned char tag_byte(uint64_t tag, size_t i)
{
    return (unsigned char)(tag >> ((i & 7) * 8));
}

/* Fills [from, to) of block p with the tag's bytes. */
static void fill_range(unsigned char *p, uint64_t tag, size_t from, size_t to)
{
    for (size_t i = from; i < to; i++)
        p[i] = tag_byte(tag, i);
}

static bool check_range(const unsigned char *p, uint64_t tag, size_t from, size_t to)
{
    for (size_t i = from; i < to; i++)
        if (p[i] != tag_byte(tag, i)) return false;
    return true;
}

/* The checked ranges of an n-byte block: [16, a) and [b, n). */
static void ranges(size_t n, size_t *a, size_t *b)
{
    if (n <= 2 * EDGE) {
        *a = n;
        *b = n;
    } else {
        *a = EDGE;
        *b = n - EDGE;
    }
}

static void stamp(void *p, size_t n)
{
    hdr_t h = {n, tag_of(p, n)};
    memcpy(p, &h, sizeof h);
    size_t a, b;
    ranges(n, &a, &b);
    fill_range(p, h.tag, sizeof h, a);
    fill_range(p, h.tag, b, n);
}

static void fail(const char *what, const void *p, size_t n)
{
    if (atomic_fetch_add(&failures, 1) < 10)
        fprintf(stderr, "stress: %s: block %p size %zu\n", what, p, n);
}

/* Verifies block p (stamped by any thread) and returns its size; 0 if it is broken. */
static size_t verify(const void *p)
{
    hdr_t h;
    memcpy(&h, p, sizeof h);
    if (h.size < sizeof h || h.tag != tag_of(p, h.size)) {
        fail("header overwritten or block handed out twice", p, h.size);
        return 0;
    }
    size_t a, b;
    ranges(h.size, &a, &b);
    if (!check_range(p, h.tag, sizeof h, a) || !check_range(p, h.tag, b, h.size)) {
        fail("contents overwritten", p, h.size);
        return 0;
    }
    if (!ga_owns(p) || ga_usable_size(p) < h.size) {
        fail("not owned or usable size too small", p, h.size);
        return 0;
    }
    return h.size;
}

static void verify_free(void *p)
{
    if (p) {
        verify(p);
        ga_free(p);
    }
}

/* ---- randomness, sizes, time ------------------------------------------------------------ */

static uint64_t next_rand(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static size_t huge_threshold; /* largest class block size: above it blocks are huge */

static size_t rand_size(uint64_t *rng)
{
    uint64_t r = next_rand(rng) % 10000;
    uint64_t x = next_rand(rng);
    if (r < 8000) return 16 + x % 240;             /* small */
    if (r < 9300) return 256 + x % 3840;           /* small to medium */
    if (r < 9900) return 4096 + x % (60 * 1024);   /* medium */
    if (r < 9990) return 65536 + x % (960 * 1024); /* large */
    return huge_threshold + 1 + x % (256 * 1024);  /* huge: one mapping each */
}

static double now_secs(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static double deadline;

static void *alloc_stamped(size_t n)
{
    void *p = ga_malloc(n);
    if (!p) {
        fail("ga_malloc returned NULL", NULL, n);
        return NULL;
    }
    stamp(p, n);
    return p;
}

static size_t live_blocks(void)
{
    ga_stats_t s;
    memset(&s, 0, sizeof s);
    ga_heap_stats(NULL, &s);
    return s.blocks_in_use;
}

static void start(pthread_t *t, int n, void *(*fn)(void *), void *arg, size_t arg_size)
{
    for (int i = 0; i < n; i++)
        if (pthread_create(&t[i], NULL, fn, (char *)arg + (size_t)i * arg_size) != 0) {
            perror("pthread_create");
            abort();
        }
}

static void join(pthread_t *t, int n)
{
    for (int i = 0; i < n; i++)
        pthread_join(t[i], NULL);
}

/* ---- 1. blocks swapped through shared slots, over several generations of threads -------- */

static _Atomic(void *) slots[SLOTS];

typedef struct {
    int id;
    int round;
} worker_arg_t;

static void worker_realloc(void **slot, uint64_t *rng)
{
    void *p = *slot;
    size_t old = verify(p);
    if (!old) return;
    uint64_t old_tag = tag_of(p, old);
    size_t n = rand_size(rng);
    void *q = ga_realloc(p, n);
    if (!q) {
        fail("ga_realloc returned NULL", p, n);
        return;
    }
    /* The kept prefix still holds the old block's bytes (its header included). */
    size_t keep = old < n ? old : n, a, b;
    ranges(old, &a, &b);
    if (keep > a) keep = a;
    if (!check_range(q, old_tag, sizeof(hdr_t), keep)) fail("realloc lost contents", q, n);
    stamp(q, n);
    *slot = q;
}

static void *transfer_worker(void *argp)
{
    worker_arg_t *arg = argp;
    uint64_t rng = mix64((uint64_t)arg->id * 7919 + (uint64_t)arg->round * 104729 + 1);
    void *local[LOCAL] = {0};
    for (int it = 0; it < ITERS; it++) {
        if ((it & 255) == 0 && now_secs() > deadline) break;
        uint64_t r = next_rand(&rng) % 100;
        size_t li = next_rand(&rng) % LOCAL;
        if (r < 50) {
            /* Hand a new block to whoever next touches this slot; free what was there. */
            void *p = alloc_stamped(rand_size(&rng));
            void *old = atomic_exchange(&slots[next_rand(&rng) % SLOTS], p);
            verify_free(old);
        } else if (r < 80) {
            verify_free(local[li]);
            local[li] = alloc_stamped(rand_size(&rng));
        } else if (r < 90) {
            if (local[li]) worker_realloc(&local[li], &rng);
        } else {
            size_t n = rand_size(&rng);
            unsigned char *p = ga_calloc(1, n);
            if (!p) {
                fail("ga_calloc returned NULL", NULL, n);
                continue;
            }
            size_t a, b;
            ranges(n, &a, &b);
            if (!check_range(p, 0, 0, a) || !check_range(p, 0, b, n))
                fail("calloc block not zeroed", p, n);
            stamp(p, n);
            verify_free(local[li]);
            local[li] = p;
        }
    }
    for (int i = 0; i < LOCAL; i++)
        verify_free(local[i]);
    return NULL; /* blocks left in slots[] outlive this thread: the next round frees them */
}

TEST(transfer_between_threads)
{
    size_t start_blocks = live_blocks();
    int failures_before = atomic_load(&failures);
    deadline = now_secs() + BUDGET_SECS;
    for (int round = 0; round < ROUNDS; round++) {
        pthread_t t[THREADS];
        worker_arg_t args[THREADS];
        for (int i = 0; i < THREADS; i++)
            args[i] = (worker_arg_t){i, round};
        start(t, THREADS, transfer_worker, args, sizeof args[0]);
        join(t, THREADS);
        CHECK_HEAP();
    }
    /* main is the last survivor: it frees what the exited threads left in the slots. */
    for (int i = 0; i < SLOTS; i++)
        verify_free(atomic_exchange(&slots[i], NULL));
    ASSERT_EQ(atomic_load(&failures) - failures_before, 0);
    ASSERT_EQ(live_blocks(), start_blocks);
}

/* ---- 2. producer/consumer pairs ---------------------------------------------------------- */

#define PAIRS     (THREADS / 2)
#define QUEUE_CAP 64
#define PER_PAIR  20000

typedef struct {
    pthread_mutex_t lock;
    pthread_cond_t not_full, not_empty;
    void *items[QUEUE_CAP];
    size_t head, count;
    bool done;
    int id;
    size_t consumed;
} queue_t;

static void *producer(void *argp)
{
    queue_t *q = argp;
    uint64_t rng = mix64((uint64_t)q->id + 77);
    for (int i = 0; i < PER_PAIR; i++) {
        if ((i & 255) == 0 && now_secs() > deadline) break;
        void *p = alloc_stamped(rand_size(&rng));
        pthread_mutex_lock(&q->lock);
        while (q->count == QUEUE_CAP)
            pthread_cond_wait(&q->not_full, &q->lock);
        q->items[(q->head + q->count++) % QUEUE_CAP] = p;
        pthread_cond_signal(&q->not_empty);
        pthread_mutex_unlock(&q->lock);
    }
    pthread_mutex_lock(&q->lock);
    q->done = true;
    pthread_cond_signal(&q->not_empty);
    pthread_mutex_unlock(&q->lock);
    return NULL;
}

static void *consumer(void *argp)
{
    queue_t *q = argp;
    for (;;) {
        pthread_mutex_lock(&q->lock);
        while (q->count == 0 && !q->done)
            pthread_cond_wait(&q->not_empty, &q->lock);
        if (q->count == 0) {
            pthread_mutex_unlock(&q->lock);
            return NULL;
        }
        void *p = q->items[q->head];
        q->head = (q->head + 1) % QUEUE_CAP;
        q->count--;
        pthread_cond_signal(&q->not_full);
        pthread_mutex_unlock(&q->lock);
        verify_free(p);
        q->consumed++;
    }
}

TEST(producer_consumer_pairs)
{
    size_t start_blocks = live_blocks();
    int failures_before = atomic_load(&failures);
    deadline = now_secs() + BUDGET_SECS;
    static queue_t queues[PAIRS];
    pthread_t prod[PAIRS], cons[PAIRS];
    for (int i = 0; i < PAIRS; i++) {
        queue_t *q = &queues[i];
        memset(q, 0, sizeof *q);
        pthread_mutex_init(&q->lock, NULL);
        pthread_cond_init(&q->not_full, NULL);
        pthread_cond_init(&q->not_empty, NULL);
        q->id = i;
    }
    start(cons, PAIRS, consumer, queues, sizeof queues[0]);
    start(prod, PAIRS, producer, queues, sizeof queues[0]);
    join(prod, PAIRS);
    join(cons, PAIRS);
    size_t consumed = 0;
    for (int i = 0; i < PAIRS; i++) {
        consumed += queues[i].consumed;
        pthread_mutex_destroy(&queues[i].lock);
        pthread_cond_destroy(&queues[i].not_full);
        pthread_cond_destroy(&queues[i].not_empty);
    }
    CHECK(consumed > 0);
    ASSERT_EQ(atomic_load(&failures) - failures_before, 0);
    ASSERT_EQ(live_blocks(), start_blocks);
}

/* ---- 3. threads that exit while others hold their blocks --------------------------------- */

#define ORPHANS_PER 3000

static void *orphans[THREADS][ORPHANS_PER];
static atomic_int published[THREADS];

static void *dying_thread(void *argp)
{
    int id = *(int *)argp;
    uint64_t rng = mix64((uint64_t)id * 31 + 5);
    /* Interleave short-lived blocks with the ones it leaves behind, so its pages are partly
     * free when it exits. */
    for (int i = 0; i < ORPHANS_PER; i++) {
        void *tmp = alloc_stamped(rand_size(&rng));
        orphans[id][i] = alloc_stamped(rand_size(&rng));
        verify_free(tmp);
    }
    atomic_store(&published[id], 1);
    return NULL; /* exits at once, while the survivors free its blocks */
}

static void *survivor_thread(void *argp)
{
    int id = *(int *)argp;
    for (int d = 0; d < THREADS; d++) {
        while (!atomic_load(&published[d]))
            sched_yield();
        for (int i = id; i < ORPHANS_PER; i += THREADS) /* a share of every dead thread's */
            verify_free(orphans[d][i]);
    }
    /* and allocate a little too, reusing what the dead threads' pages freed up */
    uint64_t rng = mix64((uint64_t)id + 999);
    for (int i = 0; i < 1000; i++)
        verify_free(alloc_stamped(rand_size(&rng)));
    return NULL;
}

TEST(threads_exit_while_blocks_live)
{
    size_t start_blocks = live_blocks();
    int failures_before = atomic_load(&failures);
    for (int i = 0; i < THREADS; i++)
        atomic_store(&published[i], 0);
    pthread_t dying[THREADS], survivors[THREADS];
    int ids[THREADS];
    for (int i = 0; i < THREADS; i++)
        ids[i] = i;
    start(survivors, THREADS, survivor_thread, ids, sizeof ids[0]);
    start(dying, THREADS, dying_thread, ids, sizeof ids[0]);
    join(dying, THREADS);
    join(survivors, THREADS);
    ASSERT_EQ(atomic_load(&failures) - failures_before, 0);
    ASSERT_EQ(live_blocks(), start_blocks);
    /* Collecting everything (the dead threads' caches included) keeps the heap consistent. */
    ga_heap_collect(NULL, 1);
    CHECK_HEAP();
    ASSERT_EQ(live_blocks(), start_blocks);
}

int main(int argc, char **argv)
{
    ga_stats_t s;
    memset(&s, 0, sizeof s);
    ga_heap_stats(NULL, &s);
    huge_threshold = s.class_count ? s.classes[s.class_count - 1].block_size : 8 << 20;
    static const test_entry_t tests[] = {TEST_ENTRY(transfer_between_threads),
                                         TEST_ENTRY(producer_consumer_pairs),
                                         TEST_ENTRY(threads_exit_while_blocks_live)};
    return test_main(tests, sizeof tests / sizeof tests[0], argc, argv);
}
