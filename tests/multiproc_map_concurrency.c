/* SPDX-License-Identifier: MIT */
/*
 * Shared maps under concurrency: 3 processes x 2 threads doing incr, cas loops, optimistic
 * transactions (ga_map_txn_expect, retried on a conflict), puts and gets give exact final counts;
 * reader threads never see a torn value (every value carries its own checksum, small and large
 * ones) while writers replace values and other writers grow and shrink the table (resizes, deletes,
 * clears of a second map). Bounded: a fixed number of operations per thread, every wait with a
 * deadline.
 */
#include "test.h"
#include "shared_test_util.h"
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#define PROCS   3
#define THREADS 2
#define ITERS   3000

static const char *heap_name;

static uint64_t sum64(const unsigned char *p, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 1099511628211ull;
    return h;
}

/* A value of n bytes: 8 bytes of checksum, then a pattern from seed. */
static size_t make_value(unsigned char *buf, unsigned seed)
{
    size_t n = 16 + (seed % 7 == 0 ? 300 + seed % 2000 : seed % 200);
    for (size_t i = 8; i < n; i++)
        buf[i] = (unsigned char)(seed * 31 + i);
    uint64_t s = sum64(buf + 8, n - 8);
    memcpy(buf, &s, 8);
    return n;
}

static bool value_ok(const unsigned char *buf, size_t n)
{
    uint64_t s;
    if (n < 16) return false;
    memcpy(&s, buf, 8);
    return s == sum64(buf + 8, n - 8);
}

typedef struct worker_s {
    ga_map_t *m, *churn;
    int id, torn, errors;
} worker_t;

static void *counter_thread(void *arg)
{
    worker_t *w = arg;
    unsigned char buf[4096];
    for (int i = 0; i < ITERS; i++) {
        if (ga_map_incr(w->m, "hits", 4, 1, NULL) != 0) w->errors++;
        /* a cas loop on an 8-byte counter */
        for (int tries = 0; tries < 100000; tries++) {
            int64_t cur = 0, next;
            long n = ga_map_get_copy(w->m, "cas", 3, &cur, 8, NULL);
            if (n != 8 && n != GA_ENOENT) {
                w->errors++;
                break;
            }
            next = cur + 1;
            int rc = n == GA_ENOENT ? ga_map_cas(w->m, "cas", 3, NULL, 0, &next, 8)
                                    : ga_map_cas(w->m, "cas", 3, &cur, 8, &next, 8);
            if (rc == 1) break;
            if (rc != 0) {
                w->errors++;
                break;
            }
        }
        /* an optimistic transaction: read, expect the version, write, retry on a conflict */
        for (int tries = 0; tries < 100000; tries++) {
            int64_t cur = 0;
            uint64_t ver = 0;
            long n = ga_map_get_copy(w->m, "opt", 3, &cur, 8, &ver);
            if (n != 8 && n != GA_ENOENT) {
                w->errors++;
                break;
            }
            int64_t next = cur + 1;
            ga_map_txn_t *t = ga_map_txn_begin(w->m);
            ga_map_txn_expect(t, "opt", 3, n == 8 ? ver : 0);
            ga_map_txn_put(t, "opt", 3, &next, 8);
            int rc = ga_map_txn_commit(t);
            if (rc == 0) break;
            if (rc != 1) {
                w->errors++;
                break;
            }
        }
        /* checksummed values replaced under readers */
        char k[16];
        int kl = snprintf(k, sizeof k, "v%d", i % 4);
        size_t n = make_value(buf, (unsigned)(w->id * ITERS + i));
        if (ga_map_put(w->m, k, (size_t)kl, buf, n) != 0) w->errors++;
        /* table churn: grow, delete, clear */
        kl = snprintf(k, sizeof k, "c%d.%d", w->id, i % 400);
        if (ga_map_put(w->churn, k, (size_t)kl, buf, n) != 0) w->errors++;
        if (i % 3 == 0) ga_map_delete(w->churn, k, (size_t)kl);
        if (i % 1000 == 999 && w->id == 0) ga_map_clear(w->churn);
    }
    return NULL;
}

static void *reader_thread(void *arg)
{
    worker_t *w = arg;
    unsigned char buf[4096];
    for (int i = 0; i < ITERS * 6; i++) {
        char k[16];
        int kl = snprintf(k, sizeof k, "v%d", i % 4);
        long n = ga_map_get_copy(w->m, k, (size_t)kl, buf, sizeof buf, NULL);
        if (n >= 0 && !value_ok(buf, (size_t)n)) w->torn++;
        if (n < 0 && n != GA_ENOENT) w->errors++;
        kl = snprintf(k, sizeof k, "c%d.%d", i % PROCS, i % 400);
        n = ga_map_get_copy(w->churn, k, (size_t)kl, buf, sizeof buf, NULL);
        if (n >= 0 && !value_ok(buf, (size_t)n)) w->torn++;
        if (n < 0 && n != GA_ENOENT) w->errors++;
    }
    return NULL;
}

static int proc_main(int p)
{
    ga_heap_t *h = ga_shared_open(heap_name, 0, 0, NULL);
    ga_map_t *m = h ? ga_map_open(h, "counts", 0, NULL) : NULL;
    ga_map_t *c = h ? ga_map_open(h, "churn", 0, NULL) : NULL;
    if (!m || !c) return 3;
    pthread_t t[THREADS + 1];
    worker_t w[THREADS + 1];
    for (int i = 0; i <= THREADS; i++) {
        w[i] = (worker_t){m, c, p * THREADS + i, 0, 0};
        pthread_create(&t[i], NULL, i < THREADS ? counter_thread : reader_thread, &w[i]);
    }
    int torn = 0, errors = 0;
    for (int i = 0; i <= THREADS; i++) {
        pthread_join(t[i], NULL);
        torn += w[i].torn;
        errors += w[i].errors;
    }
    if (torn || errors) fprintf(stderr, "proc %d: %d torn reads, %d errors\n", p, torn, errors);
    ga_map_close(m);
    ga_map_close(c);
    ga_shared_close(h);
    return torn ? 1 : errors ? 2 : 0;
}

TEST(exact_counts_no_torn_reads)
{
    heap_name = shm_test_name("mapconc");
    ga_heap_t *h = ga_shared_open(heap_name, 64 << 20, GA_SHARED_CREATE | GA_SHARED_EXCL, NULL);
    CHECK(h != NULL);
    if (!h) return;
    ga_map_t *m = ga_map_open(h, "counts", GA_MAP_CREATE, NULL);
    ga_map_t *c = ga_map_open(h, "churn", GA_MAP_CREATE, NULL);
    CHECK(m && c);
    pid_t pids[PROCS];
    for (int p = 0; p < PROCS; p++)
        if ((pids[p] = fork()) == 0) _exit(proc_main(p));
    for (int p = 0; p < PROCS; p++) {
        int st = shm_test_wait(pids[p], 120000);
        CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    }
    int64_t hits = 0, cas = 0, opt = 0;
    ASSERT_EQ(ga_map_get_copy(m, "hits", 4, &hits, 8, NULL), 8);
    ASSERT_EQ(ga_map_get_copy(m, "cas", 3, &cas, 8, NULL), 8);
    ASSERT_EQ(ga_map_get_copy(m, "opt", 3, &opt, 8, NULL), 8);
    ASSERT_EQ(hits, PROCS * THREADS * ITERS);
    ASSERT_EQ(cas, PROCS * THREADS * ITERS);
    ASSERT_EQ(opt, PROCS * THREADS * ITERS);
    ASSERT_EQ(ga_map_len(m), 7);
    ASSERT_EQ(ga_map_check(m, 0), 0);
    ASSERT_EQ(ga_map_check(c, 0), 0);
    ASSERT_EQ(ga_shared_check(h, 0), 0);
    ga_map_close(m);
    ga_map_close(c);
    ga_shared_close(h);
}

/* Threads of one process share one handle, with ga_shared_check running meanwhile. */
TEST(threads_and_checker)
{
    heap_name = shm_test_name("mapthr");
    ga_heap_t *h = ga_shared_open(heap_name, 64 << 20, GA_SHARED_CREATE | GA_SHARED_EXCL, NULL);
    ga_map_t *m = ga_map_open(h, "counts", GA_MAP_CREATE, NULL);
    ga_map_t *c = ga_map_open(h, "churn", GA_MAP_CREATE, NULL);
    pthread_t t[3];
    worker_t w[3];
    for (int i = 0; i < 3; i++) {
        w[i] = (worker_t){m, c, i, 0, 0};
        pthread_create(&t[i], NULL, i < 2 ? counter_thread : reader_thread, &w[i]);
    }
    for (int i = 0; i < 20; i++)
        ASSERT_EQ(ga_shared_check(h, 0), 0);
    for (int i = 0; i < 3; i++) {
        pthread_join(t[i], NULL);
        ASSERT_EQ(w[i].torn, 0);
        ASSERT_EQ(w[i].errors, 0);
    }
    int64_t hits = 0;
    ASSERT_EQ(ga_map_get_copy(m, "hits", 4, &hits, 8, NULL), 8);
    ASSERT_EQ(hits, 2 * ITERS);
    ASSERT_EQ(ga_shared_check(h, 0), 0);
    ga_map_close(m);
    ga_map_close(c);
    ga_shared_close(h);
}

static const test_entry_t tests[] = {TEST_ENTRY(exact_counts_no_torn_reads),
                                     TEST_ENTRY(threads_and_checker)};

int main(int argc, char **argv)
{
    return test_main(tests, sizeof tests / sizeof tests[0], argc, argv);
}
