/* SPDX-License-Identifier: MIT */
/*
 * ga_shared_mutex_t, ga_shared_cond_t and ga_shared_object_init within one process: threads
 * exclude each other (a counter comes out exact), trylock, relock and unlock by a non-holder
 * refused, a timeout, a holder thread that exits holding the mutex (the next locker gets
 * GA_EOWNERDEAD, then 0), bad pointers and damaged objects (GA_EINVAL / GA_ECORRUPT, reported,
 * nothing written), the condvar's broadcast, signal and timeout, once-init raced by threads,
 * failing, called from its own init, and ga_shared_check clean with a mutex held and an init
 * running. The multi-process cases are in multiproc_shared_sync.c and multiproc_shared_once.c.
 * Threads meet through the mutex, pipes and joins; no sleep decides anything.
 */
#include "test.h"
#include "shared_test_util.h"
#include "shared/shared_internal.h"
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#define MIB ((size_t)1 << 20)

static ga_heap_t *heap;
static int reports[32]; /* by -code */
static char last_msg[512];

static int note(int err, const char *msg, uintptr_t ptr, void *arg)
{
    (void)ptr, (void)arg;
    if (err <= 0 && err > -32) reports[-err]++;
    snprintf(last_msg, sizeof last_msg, "%s", msg);
    return 1;
}

typedef struct shared_s {
    ga_shared_mutex_t m;
    ga_shared_cond_t c;
    uint64_t counter;
    uint32_t go, waiting, woken;
} shared_t;

static shared_t *fresh(const char *name)
{
    shared_t *s = ga_shared_object(heap, name, sizeof *s, 0, NULL);
    CHECK(s != NULL);
    if (!s) abort();
    memset(s, 0, sizeof *s);
    ASSERT_EQ(ga_shared_mutex_init(heap, &s->m), 0);
    ASSERT_EQ(ga_shared_cond_init(heap, &s->c), 0);
    return s;
}

/* ---- mutual exclusion ------------------------------------------------------------------- */

#define THREADS 4
#define ROUNDS  20000

static void *count_thread(void *arg)
{
    shared_t *s = arg;
    for (int i = 0; i < ROUNDS; i++) {
        if (ga_shared_mutex_lock(heap, &s->m, 20000) != 0) return (void *)1;
        uint64_t v = s->counter; /* a torn read-modify-write shows up as a lost count */
        s->counter = v + 1;
        if (ga_shared_mutex_unlock(heap, &s->m) != 0) return (void *)2;
    }
    return NULL;
}

TEST(mutex_threads_exclude_each_other)
{
    shared_t *s = fresh("count");
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++)
        CHECK(pthread_create(&t[i], NULL, count_thread, s) == 0);
    for (int i = 0; i < THREADS; i++) {
        void *r = (void *)3;
        pthread_join(t[i], &r);
        CHECK(r == NULL);
    }
    ASSERT_EQ(s->counter, (uint64_t)THREADS * ROUNDS);
}

/* A thread that takes the mutex, says so on a pipe, and waits for its own pipe before it
 * unlocks (or, with exit_holding, exits without unlocking). */
typedef struct {
    shared_t *s;
    int ready[2], go[2];
    bool exit_holding;
    int rc;
    uint32_t tid;
} holder_t;

/* Threads other than the main one report through their result, not CHECK (not thread-safe). */
static void *holder_thread(void *arg)
{
    holder_t *h = arg;
    h->tid = ga__os_thread_id();
    h->rc = ga_shared_mutex_lock(heap, &h->s->m, 20000);
    char c = 'L';
    if (write(h->ready[1], &c, 1) != 1) return (void *)1;
    if (!h->exit_holding) {
        if (read(h->go[0], &c, 1) != 1) return (void *)2;
        if (ga_shared_mutex_unlock(heap, &h->s->m) != 0) return (void *)3;
    }
    return NULL;
}

static void holder_start(holder_t *h, pthread_t *t, shared_t *s, bool exit_holding)
{
    memset(h, 0, sizeof *h);
    h->s = s;
    h->exit_holding = exit_holding;
    CHECK(pipe(h->ready) == 0 && pipe(h->go) == 0);
    CHECK(pthread_create(t, NULL, holder_thread, h) == 0);
    char c;
    CHECK(read(h->ready[0], &c, 1) == 1); /* it holds the mutex now */
    ASSERT_EQ(h->rc, 0);
}

static void holder_end(holder_t *h, pthread_t t)
{
    char c = 'G';
    if (!h->exit_holding) CHECK(write(h->go[1], &c, 1) == 1);
    void *r = (void *)9;
    pthread_join(t, &r);
    CHECK(r == NULL);
    /* A joined thread may linger in the kernel for a moment (its id still in /proc): a trylock
     * that looks once must come after it has gone. */
    double end = shm_test_now() + 20;
    while (ga__os_thread_alive(h->tid) && shm_test_now() < end)
        sched_yield();
    CHECK(!ga__os_thread_alive(h->tid));
    close(h->ready[0]), close(h->ready[1]), close(h->go[0]), close(h->go[1]);
}

TEST(mutex_trylock_timeout_and_non_holder)
{
    shared_t *s = fresh("try");
    memset(reports, 0, sizeof reports);
    holder_t h;
    pthread_t t;
    holder_start(&h, &t, s, false);
    ASSERT_EQ(ga_shared_mutex_trylock(heap, &s->m), GA_ELOCKED);
    ASSERT_EQ(ga_shared_mutex_lock(heap, &s->m, 30), GA_ETIMEDOUT);
    ASSERT_EQ(ga_last_error(), GA_ETIMEDOUT);
    ASSERT_EQ(reports[-GA_ETIMEDOUT], 0);                     /* a result, not a report */
    ASSERT_EQ(ga_shared_mutex_unlock(heap, &s->m), GA_EPERM); /* held by the other thread */
    ASSERT_EQ(reports[-GA_EPERM], 1);
    CHECK(strstr(last_msg, "does not hold") != NULL);
    holder_end(&h, t);
    ASSERT_EQ(ga_shared_mutex_unlock(heap, &s->m), GA_EPERM); /* unlocked */
    ASSERT_EQ(ga_shared_mutex_trylock(heap, &s->m), 0);
    ASSERT_EQ(ga_shared_mutex_lock(heap, &s->m, 1000), GA_EPERM); /* not recursive */
    ASSERT_EQ(ga_shared_mutex_trylock(heap, &s->m), GA_EPERM);
    CHECK(strstr(last_msg, "already holds") != NULL);
    ASSERT_EQ(ga_shared_mutex_unlock(heap, &s->m), 0);
    ASSERT_EQ(ga_shared_mutex_lock(heap, &s->m, GA_TIMEOUT_DEFAULT), 0);
    ASSERT_EQ(ga_shared_mutex_unlock(heap, &s->m), 0);
}

TEST(mutex_holder_thread_exits)
{
    shared_t *s = fresh("exit");
    ga_shared_stats_t st;
    ASSERT_EQ(ga_shared_stats(heap, &st), 0);
    size_t repairs = st.repairs;
    holder_t h;
    pthread_t t;
    holder_start(&h, &t, s, true);
    holder_end(&h, t); /* joined: it exited holding the mutex */
    ASSERT_EQ(ga_shared_mutex_lock(heap, &s->m, 20000), GA_EOWNERDEAD);
    ASSERT_EQ(ga_shared_mutex_unlock(heap, &s->m), 0);
    ASSERT_EQ(ga_shared_mutex_lock(heap, &s->m, 20000), 0); /* normal again */
    ASSERT_EQ(ga_shared_mutex_unlock(heap, &s->m), 0);
    holder_start(&h, &t, s, true);
    holder_end(&h, t);
    ASSERT_EQ(ga_shared_mutex_trylock(heap, &s->m), GA_EOWNERDEAD); /* trylock too */
    ASSERT_EQ(ga_shared_mutex_unlock(heap, &s->m), 0);
    ASSERT_EQ(ga_shared_stats(heap, &st), 0);
    ASSERT_EQ(st.repairs, repairs + 2);
}

TEST(mutex_bad_pointers)
{
    shared_t *s = fresh("bad");
    memset(reports, 0, sizeof reports);
    ga_shared_mutex_t local;
    memset(&local, 0, sizeof local);
    ASSERT_EQ(ga_shared_mutex_init(heap, &local), GA_EINVAL); /* not in the heap */
    ASSERT_EQ(ga_shared_mutex_lock(heap, &local, 10), GA_EINVAL);
    ASSERT_EQ(ga_shared_mutex_unlock(heap, &local), GA_EINVAL);
    ASSERT_EQ(ga_shared_mutex_lock(NULL, &s->m, 10), GA_EINVAL);
    ASSERT_EQ(ga_shared_mutex_lock((ga_heap_t *)&local, &s->m, 10), GA_EINVAL);
    ASSERT_EQ(ga_shared_mutex_lock(ga_heap_default(), &s->m, 10), GA_EINVAL);
    ASSERT_EQ(ga_shared_mutex_lock(heap, NULL, 10), GA_EINVAL);
    char *base = (char *)s;
    ASSERT_EQ(ga_shared_mutex_init(heap, (ga_shared_mutex_t *)(base + 4)), GA_EINVAL); /* align */
    CHECK(strstr(last_msg, "8-byte aligned") != NULL);
    /* The header and the page table are not the data area. */
    char *seg = (char *)ga_shared_ptr(heap, ga_shared_offset(heap, s)) - ga_shared_offset(heap, s);
    ASSERT_EQ(ga_shared_mutex_init(heap, (ga_shared_mutex_t *)(seg + 64)), GA_EINVAL);
    ASSERT_EQ(ga_shared_cond_init(heap, (ga_shared_cond_t *)(seg + 104)), GA_EINVAL);
    /* Inside the data area but not in an allocated block: refused by init. */
    void *blk = ga_shared_alloc(heap, 64);
    CHECK(blk != NULL);
    ASSERT_EQ(ga_shared_free(heap, blk), 0);
    ASSERT_EQ(ga_shared_mutex_init(heap, blk), GA_EINVAL);
    CHECK(strstr(last_msg, "not inside a block") != NULL);
    blk = ga_shared_alloc(heap, 16);
    ASSERT_EQ(ga_shared_mutex_init(heap, (ga_shared_mutex_t *)((char *)blk + 8)), GA_EINVAL);
    ASSERT_EQ(ga_shared_mutex_init(heap, blk), 0); /* a 16-byte block holds one exactly */
    ga_shared_free(heap, blk);
    /* Never initialised, and damaged. */
    ga_shared_mutex_t *zero = ga_shared_calloc(heap, 1, sizeof *zero);
    ASSERT_EQ(ga_shared_mutex_lock(heap, zero, 10), GA_EINVAL);
    CHECK(strstr(last_msg, "not an initialised mutex") != NULL);
    ASSERT_EQ(ga_shared_cond_signal(heap, (ga_shared_cond_t *)zero), GA_EINVAL);
    ga_shared_free(heap, zero);
    memset(&s->m, 0x5A, sizeof s->m);
    ASSERT_EQ(ga_shared_mutex_lock(heap, &s->m, 10), GA_ECORRUPT);
    ASSERT_EQ(ga_shared_mutex_trylock(heap, &s->m), GA_ECORRUPT);
    ASSERT_EQ(ga_shared_mutex_unlock(heap, &s->m), GA_ECORRUPT);
    ASSERT_EQ(ga_shared_cond_wait(heap, &s->c, &s->m, 10), GA_ECORRUPT);
    CHECK(strstr(last_msg, "a damaged mutex") != NULL);
    memset(&s->c, 0xA5, sizeof s->c);
    ASSERT_EQ(ga_shared_cond_broadcast(heap, &s->c), GA_ECORRUPT);
    CHECK(reports[-GA_EINVAL] >= 12 && reports[-GA_ECORRUPT] >= 5);
    /* A damaged lock word under a good magic: its "holder" is no thread, so it is taken over. */
    ASSERT_EQ(ga_shared_mutex_init(heap, &s->m), 0);
    memset(&s->m, 0x7E, 4);
    ASSERT_EQ(ga_shared_mutex_lock(heap, &s->m, 20000), GA_EOWNERDEAD);
    ASSERT_EQ(ga_shared_mutex_unlock(heap, &s->m), 0);
    ASSERT_EQ(ga_shared_check(heap, 0), 0);
}

/* ---- the condition variable ------------------------------------------------------------- */

static void *wait_go_thread(void *arg)
{
    shared_t *s = arg;
    if (ga_shared_mutex_lock(heap, &s->m, 20000)) return (void *)1;
    s->waiting++;
    ga_shared_cond_broadcast(heap, &s->c); /* the main thread waits for all of us to wait */
    int rc = 0;
    while (!s->go && rc == 0)
        rc = ga_shared_cond_wait(heap, &s->c, &s->m, 20000);
    s->woken++;
    ga_shared_mutex_unlock(heap, &s->m);
    return rc ? (void *)2 : NULL;
}

TEST(cond_broadcast_wakes_all)
{
    shared_t *s = fresh("bcast");
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++)
        CHECK(pthread_create(&t[i], NULL, wait_go_thread, s) == 0);
    ASSERT_EQ(ga_shared_mutex_lock(heap, &s->m, 20000), 0);
    int rc = 0;
    while (s->waiting < THREADS && rc == 0)
        rc = ga_shared_cond_wait(heap, &s->c, &s->m, 20000);
    ASSERT_EQ(rc, 0);
    s->go = 1;
    ASSERT_EQ(ga_shared_cond_broadcast(heap, &s->c), 0);
    ASSERT_EQ(ga_shared_mutex_unlock(heap, &s->m), 0);
    for (int i = 0; i < THREADS; i++) {
        void *r = (void *)3;
        pthread_join(t[i], &r);
        CHECK(r == NULL);
    }
    ASSERT_EQ(s->woken, THREADS);
}

/* Producer / consumer with signal: every item is taken exactly once. */
#define ITEMS 2000
typedef struct {
    shared_t *s;
    uint64_t taken;
} consumer_t;

static void *consume_thread(void *arg)
{
    consumer_t *c = arg;
    shared_t *s = c->s;
    if (ga_shared_mutex_lock(heap, &s->m, 20000)) return (void *)1;
    for (;;) {
        int rc = 0;
        while (s->counter == 0 && !s->go && rc == 0)
            rc = ga_shared_cond_wait(heap, &s->c, &s->m, 20000);
        if (rc) return (void *)2; /* a 20 s wait for work that is there: a lost wake-up */
        if (s->counter == 0) break;
        s->counter--;
        c->taken++;
    }
    ga_shared_mutex_unlock(heap, &s->m);
    return NULL;
}

TEST(cond_signal_producer_consumer)
{
    shared_t *s = fresh("pc");
    consumer_t c[THREADS];
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++) {
        c[i] = (consumer_t){s, 0};
        CHECK(pthread_create(&t[i], NULL, consume_thread, &c[i]) == 0);
    }
    for (int i = 0; i < ITEMS; i++) {
        ASSERT_EQ(ga_shared_mutex_lock(heap, &s->m, 20000), 0);
        s->counter++;
        ASSERT_EQ(ga_shared_cond_signal(heap, &s->c), 0);
        ASSERT_EQ(ga_shared_mutex_unlock(heap, &s->m), 0);
    }
    ASSERT_EQ(ga_shared_mutex_lock(heap, &s->m, 20000), 0);
    s->go = 1; /* no more: drain and leave */
    ASSERT_EQ(ga_shared_cond_broadcast(heap, &s->c), 0);
    ASSERT_EQ(ga_shared_mutex_unlock(heap, &s->m), 0);
    uint64_t taken = 0;
    for (int i = 0; i < THREADS; i++) {
        void *r = (void *)3;
        pthread_join(t[i], &r);
        CHECK(r == NULL);
        taken += c[i].taken;
    }
    ASSERT_EQ(taken, ITEMS);
    ASSERT_EQ(s->counter, 0);
}

TEST(cond_timeout_and_misuse)
{
    shared_t *s = fresh("ctime");
    memset(reports, 0, sizeof reports);
    ASSERT_EQ(ga_shared_cond_wait(heap, &s->c, &s->m, 10), GA_EPERM); /* m not held */
    ASSERT_EQ(ga_shared_mutex_lock(heap, &s->m, 20000), 0);
    ASSERT_EQ(ga_shared_cond_wait(heap, &s->c, &s->m, 20), GA_ETIMEDOUT);
    /* held again after the timeout: unlock works, a relock would be refused */
    ASSERT_EQ(ga_shared_mutex_trylock(heap, &s->m), GA_EPERM);
    ASSERT_EQ(ga_shared_mutex_unlock(heap, &s->m), 0);
    ASSERT_EQ(ga_shared_cond_wait(heap, &s->c, (ga_shared_mutex_t *)&s->c, 10), GA_EINVAL);
    ASSERT_EQ(ga_shared_cond_signal(heap, NULL), GA_EINVAL);
    ASSERT_EQ(ga_shared_cond_broadcast(NULL, &s->c), GA_EINVAL);
    ASSERT_EQ(reports[-GA_ETIMEDOUT], 0);
}

/* The relock after a wait cannot be had within the lock timeout: GA_ENOTLOCKED, not held. */
static int relock_gate[2];
static void *signal_and_keep(void *arg)
{
    shared_t *s = arg;
    if (ga_shared_mutex_lock(heap, &s->m, 20000)) return (void *)1; /* once the waiter waits */
    ga_shared_cond_signal(heap, &s->c);
    char c;
    if (read(relock_gate[0], &c, 1) != 1) return (void *)2;
    return ga_shared_mutex_unlock(heap, &s->m) ? (void *)3 : NULL;
}

TEST(cond_relock_times_out)
{
    shared_t *s = fresh("relock");
    memset(reports, 0, sizeof reports);
    CHECK(pipe(relock_gate) == 0);
    ga__shm_set_lock_timeout(50);
    ASSERT_EQ(ga_shared_mutex_lock(heap, &s->m, 20000), 0);
    pthread_t t;
    CHECK(pthread_create(&t, NULL, signal_and_keep, s) == 0);
    ASSERT_EQ(ga_shared_cond_wait(heap, &s->c, &s->m, 20000), GA_ENOTLOCKED);
    ASSERT_EQ(reports[-GA_ENOTLOCKED], 1);
    CHECK(strstr(last_msg, "could not lock the mutex") != NULL);
    ga__shm_set_lock_timeout(30000);
    ASSERT_EQ(ga_shared_mutex_unlock(heap, &s->m), GA_EPERM); /* not ours */
    CHECK(write(relock_gate[1], "g", 1) == 1);
    void *r = (void *)9;
    pthread_join(t, &r);
    CHECK(r == NULL);
    ASSERT_EQ(ga_shared_mutex_trylock(heap, &s->m), 0);
    ASSERT_EQ(ga_shared_mutex_unlock(heap, &s->m), 0);
    close(relock_gate[0]), close(relock_gate[1]);
}

/* ---- once-init -------------------------------------------------------------------------- */

typedef struct {
    uint32_t magic;
    char text[60];
} config_t;
static _Atomic int init_runs;
static _Atomic int fail_next;

static int init_config(ga_heap_t *h, void *data, size_t size, void *arg)
{
    (void)arg;
    config_t *c = data;
    if (h != heap || size != sizeof(config_t)) return GA_EINVAL;
    if (c->magic != 0 || c->text[0] != 0) return GA_ECORRUPT; /* handed over zero-filled */
    atomic_fetch_add(&init_runs, 1);
    memcpy(c->text, "half", 4);
    if (atomic_exchange(&fail_next, 0)) return GA_EFULL;
    usleep(2000); /* widen the race window; the result does not depend on it */
    snprintf(c->text, sizeof c->text, "configured");
    c->magic = 0xC0FFEE;
    return 0;
}

static _Atomic int made_count;
static void *once_thread(void *arg)
{
    (void)arg;
    int made = 0;
    config_t *c =
        ga_shared_object_init(heap, "config", sizeof(config_t), 0, init_config, NULL, 20000, &made);
    atomic_fetch_add(&made_count, made);
    return c && c->magic == 0xC0FFEE && strcmp(c->text, "configured") == 0 ? NULL : (void *)1;
}

TEST(once_threads_race)
{
    atomic_store(&init_runs, 0);
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++)
        CHECK(pthread_create(&t[i], NULL, once_thread, NULL) == 0);
    for (int i = 0; i < THREADS; i++) {
        void *r = (void *)3;
        pthread_join(t[i], &r);
        CHECK(r == NULL);
    }
    ASSERT_EQ(atomic_load(&init_runs), 1);
    ASSERT_EQ(atomic_load(&made_count), 1);
    CHECK(once_thread(NULL) == NULL); /* done: returns at once, init not run */
    ASSERT_EQ(atomic_load(&init_runs), 1);
    ASSERT_EQ(ga_shared_object_remove(heap, "config"), 0);
    CHECK(once_thread(NULL) == NULL); /* a new object: init again */
    ASSERT_EQ(atomic_load(&init_runs), 2);
    ASSERT_EQ(ga_shared_object_remove(heap, "config"), 0);
}

TEST(once_init_fails)
{
    atomic_store(&init_runs, 0);
    atomic_store(&fail_next, 1);
    int made = 7;
    void *p =
        ga_shared_object_init(heap, "failing", sizeof(config_t), 0, init_config, NULL, 1000, &made);
    CHECK(p == NULL);
    ASSERT_EQ(ga_last_error(), GA_EFULL); /* init's own result */
    ASSERT_EQ(made, 0);
    config_t *c = ga_shared_object_find(heap, "failing", NULL);
    CHECK(c != NULL && c->magic == 0 && c->text[0] == 0); /* zero-filled again */
    c = ga_shared_object_init(heap, "failing", sizeof(config_t), 0, init_config, NULL, 1000, &made);
    CHECK(c != NULL && c->magic == 0xC0FFEE);
    ASSERT_EQ(made, 1);
    ASSERT_EQ(atomic_load(&init_runs), 2);
    ASSERT_EQ(ga_shared_object_remove(heap, "failing"), 0);
}

static int recursive_rc;
static int init_recursive(ga_heap_t *h, void *data, size_t size, void *arg)
{
    (void)data, (void)size, (void)arg;
    void *p = ga_shared_object_init(h, "rec", 32, 0, init_recursive, NULL, 1000, NULL);
    recursive_rc = p ? 0 : ga_last_error();
    /* init may use the heap freely: allocate, make objects and mutexes */
    shared_t *s = ga_shared_object(h, "made-in-init", sizeof *s, 0, NULL);
    return s && ga_shared_mutex_init(h, &s->m) == 0 ? 0 : GA_ENOMEM;
}

TEST(once_bad_calls)
{
    memset(reports, 0, sizeof reports);
    void *p = ga_shared_object_init(heap, "rec", 32, 0, init_recursive, NULL, 1000, NULL);
    CHECK(p != NULL);
    ASSERT_EQ(recursive_rc, GA_EPERM);
    ASSERT_EQ(reports[-GA_EPERM], 1);
    CHECK(ga_shared_object_init(heap, "x", 32, 0, NULL, NULL, 10, NULL) == NULL);
    ASSERT_EQ(ga_last_error(), GA_EINVAL);
    CHECK(ga_shared_object_init(heap, "bad/name", 32, 0, init_config, NULL, 10, NULL) == NULL);
    ASSERT_EQ(ga_last_error(), GA_ENAME);
    CHECK(ga_shared_object_init(heap, "x", 32, 1, init_config, NULL, 10, NULL) == NULL);
    ASSERT_EQ(ga_last_error(), GA_EINVAL);
    CHECK(ga_shared_object_init(NULL, "x", 32, 0, init_config, NULL, 10, NULL) == NULL);
    ASSERT_EQ(ga_last_error(), GA_EINVAL);
    /* bigger than the existing object */
    CHECK(ga_shared_object_init(heap, "rec", 64, 0, init_recursive, NULL, 10, NULL) == NULL);
    ASSERT_EQ(ga_last_error(), GA_EEXIST);
    ASSERT_EQ(ga_shared_object_remove(heap, "rec"), 0);
    ASSERT_EQ(ga_shared_object_remove(heap, "made-in-init"), 0);
}

/* An init that waits for the main thread: another caller times out meanwhile, and the checker
 * finds nothing wrong with an init running and a mutex held inside an object. */
static int gate[2];
static int init_gated(ga_heap_t *h, void *data, size_t size, void *arg)
{
    (void)h, (void)size, (void)arg;
    char c = 'I';
    if (write(*(int *)arg, &c, 1) != 1) return GA_EINVAL; /* inside init */
    if (read(gate[0], &c, 1) != 1) return GA_EINVAL;
    ((config_t *)data)->magic = 1;
    return 0;
}
static int inside[2];
static void *gated_thread(void *arg)
{
    (void)arg;
    void *p = ga_shared_object_init(heap, "gated", sizeof(config_t), 0, init_gated, &inside[1],
                                    20000, NULL);
    return p ? NULL : (void *)1;
}

TEST(once_timeout_and_check)
{
    CHECK(pipe(gate) == 0 && pipe(inside) == 0);
    shared_t *s = fresh("held");
    ASSERT_EQ(ga_shared_mutex_lock(heap, &s->m, 20000), 0);
    pthread_t t;
    CHECK(pthread_create(&t, NULL, gated_thread, NULL) == 0);
    char c;
    CHECK(read(inside[0], &c, 1) == 1);
    int made = 5;
    config_t *p = ga_shared_object_init(heap, "gated", sizeof(config_t), 0, init_gated, &inside[1],
                                        30, &made);
    CHECK(p == NULL);
    ASSERT_EQ(ga_last_error(), GA_ETIMEDOUT);
    ASSERT_EQ(made, 0);
    ASSERT_EQ(ga_shared_check(heap, 0), 0);
    c = 'G';
    CHECK(write(gate[1], &c, 1) == 1);
    void *r = (void *)3;
    pthread_join(t, &r);
    CHECK(r == NULL);
    p = ga_shared_object_init(heap, "gated", sizeof(config_t), 0, init_gated, &inside[1], 30,
                              &made);
    CHECK(p != NULL && p->magic == 1);
    ASSERT_EQ(made, 0);
    ASSERT_EQ(ga_shared_mutex_unlock(heap, &s->m), 0);
    ASSERT_EQ(ga_shared_check(heap, 0), 0);
    close(gate[0]), close(gate[1]), close(inside[0]), close(inside[1]);
}

/* The named-object entry of the object at obj (in this process's view of the segment). */
static shm_named_t *named_entry(void *obj)
{
    uint64_t off = obj ? ga_shared_offset(heap, obj) : 0;
    shm_header_t *hdr = (shm_header_t *)((char *)obj - off);
    for (unsigned i = 0; off && i < SHM_NAMED_MAX; i++)
        if (atomic_load(&hdr->named[i].state) == NAMED_LIVE && hdr->named[i].data_off == off)
            return &hdr->named[i];
    return NULL;
}

/* A peer rewrites the init word: a live process's pid makes callers wait until their timeout;
 * garbage is a dead holder (init runs again); DONE skips init (the peer's choice). */
TEST(once_word_rewritten_by_a_peer)
{
    atomic_store(&init_runs, 0);
    int made = 0;
    config_t *c =
        ga_shared_object_init(heap, "word", sizeof(config_t), 0, init_config, NULL, 1000, &made);
    CHECK(c != NULL && made == 1);
    shm_named_t *e = named_entry(c);
    CHECK(e != NULL);
    if (!e) return;
    atomic_store(&e->init.word, (uint32_t)getppid()); /* a live process, not ours */
    c = ga_shared_object_init(heap, "word", sizeof(config_t), 0, init_config, NULL, 30, &made);
    CHECK(c == NULL && ga_last_error() == GA_ETIMEDOUT && made == 0);
    atomic_store(&e->init.word, 0x7E7E7E7Eu); /* no such thread */
    c = ga_shared_object_init(heap, "word", sizeof(config_t), 0, init_config, NULL, 20000, &made);
    CHECK(c != NULL && made == 1 && c->magic == 0xC0FFEE);
    ASSERT_EQ(atomic_load(&init_runs), 2);
    memset(c, 0, sizeof *c);
    atomic_store(&e->init.word, 0x7FFFFFFFu); /* "done" */
    c = ga_shared_object_init(heap, "word", sizeof(config_t), 0, init_config, NULL, 30, &made);
    CHECK(c != NULL && made == 0 && c->magic == 0);
    ASSERT_EQ(atomic_load(&init_runs), 2);
    ASSERT_EQ(ga_shared_check(heap, 0), 0);
    ASSERT_EQ(ga_shared_object_remove(heap, "word"), 0);
}

/* A peer rewrites the object's size while a caller waits for the init word: that caller, once
 * it gets the word, refuses (GA_ECORRUPT) instead of zero-filling past the block. */
static int init_gated_fail(ga_heap_t *h, void *data, size_t size, void *arg)
{
    int rc = init_gated(h, data, size, arg);
    return rc ? rc : GA_EFULL;
}
static void *gated_fail_thread(void *arg)
{
    (void)arg;
    void *p = ga_shared_object_init(heap, "hostile", sizeof(config_t), 0, init_gated_fail,
                                    &inside[1], 20000, NULL);
    return p == NULL && ga_last_error() == GA_EFULL ? NULL : (void *)1;
}
static void *plain_init_thread(void *arg)
{
    (void)arg;
    void *p =
        ga_shared_object_init(heap, "hostile", sizeof(config_t), 0, init_config, NULL, 20000, NULL);
    return p == NULL && ga_last_error() == GA_ECORRUPT ? NULL : (void *)1;
}

TEST(once_size_rewritten_by_a_peer)
{
    CHECK(pipe(gate) == 0 && pipe(inside) == 0);
    memset(reports, 0, sizeof reports);
    pthread_t t, u;
    CHECK(pthread_create(&t, NULL, gated_fail_thread, NULL) == 0);
    char c;
    CHECK(read(inside[0], &c, 1) == 1); /* t is inside init */
    shm_named_t *e = named_entry(ga_shared_object_find(heap, "hostile", NULL));
    CHECK(e != NULL);
    if (!e) return;
    CHECK(pthread_create(&u, NULL, plain_init_thread, NULL) == 0);
    /* u sets the waiters bit when it goes to sleep on the word: then it has looked the object
     * up, and the rewrite comes between its lookup and its turn. */
    double end = shm_test_now() + 20;
    while (!(atomic_load(&e->init.word) & 0x80000000u) && shm_test_now() < end)
        sched_yield();
    CHECK(atomic_load(&e->init.word) & 0x80000000u);
    e->size = 1 << 20; /* past its block */
    c = 'G';
    CHECK(write(gate[1], &c, 1) == 1);
    void *r1 = (void *)3, *r2 = (void *)3;
    pthread_join(t, &r1);
    pthread_join(u, &r2);
    CHECK(r1 == NULL && r2 == NULL);
    ASSERT_EQ(reports[-GA_ECORRUPT], 1);
    CHECK(strstr(last_msg, "changed size") != NULL);
    ASSERT_EQ(atomic_load(&e->init.word) & 0x7FFFFFFFu, 0); /* given back */
    e->size = sizeof(config_t);
    ASSERT_EQ(ga_shared_object_remove(heap, "hostile"), 0);
    close(gate[0]), close(gate[1]), close(inside[0]), close(inside[1]);
}

static void setup(void)
{
    const char *name = shm_test_name("sync");
    ga_shared_unlink(name, GA_SHARED_FORCE);
    heap = ga_shared_open(name, 8 * MIB, GA_SHARED_CREATE | GA_SHARED_EXCL, NULL);
    if (!heap) {
        fprintf(stderr, "cannot create heap %s: %s\n", name, ga_err_name(ga_last_error()));
        exit(1);
    }
    ga_set_error_handler(note, NULL);
}

TEST(setup_heap)
{
    setup();
}

TEST(teardown_heap)
{
    ASSERT_EQ(ga_shared_check(heap, 0), 0);
    ASSERT_EQ(ga_shared_close(heap), 0);
}

TEST_MAIN(TEST_ENTRY(setup_heap), TEST_ENTRY(mutex_threads_exclude_each_other),
          TEST_ENTRY(mutex_trylock_timeout_and_non_holder), TEST_ENTRY(mutex_holder_thread_exits),
          TEST_ENTRY(mutex_bad_pointers), TEST_ENTRY(cond_broadcast_wakes_all),
          TEST_ENTRY(cond_signal_producer_consumer), TEST_ENTRY(cond_timeout_and_misuse),
          TEST_ENTRY(cond_relock_times_out), TEST_ENTRY(once_threads_race),
          TEST_ENTRY(once_init_fails), TEST_ENTRY(once_bad_calls),
          TEST_ENTRY(once_timeout_and_check), TEST_ENTRY(once_word_rewritten_by_a_peer),
          TEST_ENTRY(once_size_rewritten_by_a_peer), TEST_ENTRY(teardown_heap))
