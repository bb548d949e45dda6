/* SPDX-License-Identifier: MIT */
/*
 * ga_shared_mutex_t and ga_shared_cond_t across processes: a counter incremented under the
 * mutex by processes x threads comes out exact; a holder process SIGKILLed (the next locker,
 * already waiting or not, gets GA_EOWNERDEAD, then 0); a holder thread that exits in a process
 * that lives on; producer / consumer processes on a condvar while a waiter is SIGKILLed
 * mid-wait (every item is taken exactly once, nobody hangs); broadcast wakes every process; a
 * waiter woken while the mutex's holder is SIGKILLed gets GA_EOWNERDEAD from the wait.
 * Processes meet through pipes and the mutex itself; every wait is bounded.
 */
#include "test.h"
#include "shared_test_util.h"
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define MIB     ((size_t)1 << 20)
#define WAIT_MS 30000 /* far above what a case takes: only a hang reaches it */
#define NPROC   4
#define NTHR    3
#define ROUNDS  3000
#define ITEMS   400

typedef struct board_s {
    ga_shared_mutex_t m;
    ga_shared_cond_t c;
    uint64_t counter;
    uint32_t items, done, waiting, go;
    uint32_t taken[8];
} board_t;

static const char *heap_name;
static ga_heap_t *heap;
static board_t *B;

static int quiet(int err, const char *msg, uintptr_t ptr, void *arg)
{
    (void)err, (void)msg, (void)ptr, (void)arg;
    return 1;
}

/* A fresh board in the parent's heap (mutex and cond initialised). */
static void board_reset(void)
{
    memset(B, 0, sizeof *B);
    ASSERT_EQ(ga_shared_mutex_init(heap, &B->m), 0);
    ASSERT_EQ(ga_shared_cond_init(heap, &B->c), 0);
}

/* In a child: the heap attached anew and the board found; exits 3 when it cannot. */
static board_t *child_board(ga_heap_t **h)
{
    *h = ga_shared_open(heap_name, 0, 0, NULL);
    board_t *b = *h ? ga_shared_object_find(*h, "board", NULL) : NULL;
    if (!b) _exit(3);
    return b;
}

/* Forks a child that runs fn(arg) and exits with its result. */
static pid_t spawn(int (*fn)(int), int arg)
{
    pid_t pid = fork();
    if (pid == 0) _exit(fn(arg));
    CHECK(pid > 0);
    return pid;
}

/* The exit code of pid (bounded wait), or -1 when it hung or died of a signal. */
static int reap(pid_t pid)
{
    int st = shm_test_wait(pid, WAIT_MS);
    return st >= 0 && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void reap_killed(pid_t pid)
{
    int st = shm_test_wait(pid, WAIT_MS);
    CHECK(st >= 0 && WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
}

static int ready[2]; /* children say "I am there" on it */
static int go[2];    /* and wait for the parent's word on this one */
static void say(char c)
{
    if (write(ready[1], &c, 1) != 1) _exit(5);
}
static char hear(void)
{
    char c = 0;
    CHECK(read(ready[0], &c, 1) == 1);
    return c;
}

/* ---- mutual exclusion -------------------------------------------------------------------- */

static ga_heap_t *kid_heap;
static board_t *kid_board;

static void *count_thread(void *arg)
{
    (void)arg;
    for (int i = 0; i < ROUNDS; i++) {
        if (ga_shared_mutex_lock(kid_heap, &kid_board->m, WAIT_MS)) return (void *)1;
        uint64_t v = kid_board->counter;
        kid_board->counter = v + 1;
        if (ga_shared_mutex_unlock(kid_heap, &kid_board->m)) return (void *)2;
    }
    return NULL;
}

static int counter_kid(int arg)
{
    (void)arg;
    kid_board = child_board(&kid_heap);
    pthread_t t[NTHR];
    int bad = 0;
    for (int i = 0; i < NTHR; i++)
        if (pthread_create(&t[i], NULL, count_thread, NULL)) return 4;
    for (int i = 0; i < NTHR; i++) {
        void *r = NULL;
        pthread_join(t[i], &r);
        bad |= r != NULL;
    }
    return bad ? 6 : 0;
}

TEST(counter_processes_times_threads)
{
    board_reset();
    pid_t k[NPROC];
    for (int i = 0; i < NPROC; i++)
        k[i] = spawn(counter_kid, i);
    for (int i = 0; i < ROUNDS; i++) { /* and the parent too */
        ASSERT_EQ(ga_shared_mutex_lock(heap, &B->m, WAIT_MS), 0);
        B->counter++;
        ASSERT_EQ(ga_shared_mutex_unlock(heap, &B->m), 0);
    }
    for (int i = 0; i < NPROC; i++)
        ASSERT_EQ(reap(k[i]), 0);
    ASSERT_EQ(B->counter, (uint64_t)(NPROC * NTHR + 1) * ROUNDS);
}

/* ---- dead holders ------------------------------------------------------------------------ */

static int hold_and_wait(int arg)
{
    (void)arg;
    ga_heap_t *h;
    board_t *b = child_board(&h);
    if (ga_shared_mutex_lock(h, &b->m, WAIT_MS)) return 4;
    b->counter = 0xDEAD; /* "half-updated" */
    say('H');
    pause(); /* until SIGKILLed */
    return 0;
}

static int lock_expecting_dead(int arg)
{
    (void)arg;
    ga_heap_t *h;
    board_t *b = child_board(&h);
    say('W');
    int rc = ga_shared_mutex_lock(h, &b->m, WAIT_MS);
    int code = rc == GA_EOWNERDEAD && b->counter == 0xDEAD ? 0 : 10;
    b->counter = 1; /* repaired */
    return ga_shared_mutex_unlock(h, &b->m) ? 11 : code;
}

TEST(holder_process_killed)
{
    board_reset();
    pid_t holder = spawn(hold_and_wait, 0);
    ASSERT_EQ(hear(), 'H');
    pid_t waiter = spawn(lock_expecting_dead, 0);
    ASSERT_EQ(hear(), 'W');
    ASSERT_EQ(ga_shared_mutex_trylock(heap, &B->m), GA_ELOCKED);
    kill(holder, SIGKILL);
    reap_killed(holder);
    ASSERT_EQ(reap(waiter), 0); /* it got GA_EOWNERDEAD and repaired */
    ASSERT_EQ(ga_shared_mutex_lock(heap, &B->m, WAIT_MS), 0); /* then 0 */
    ASSERT_EQ(B->counter, 1);
    ASSERT_EQ(ga_shared_mutex_unlock(heap, &B->m), 0);
    /* A killed holder and nobody waiting: the next locker is told. */
    holder = spawn(hold_and_wait, 0);
    ASSERT_EQ(hear(), 'H');
    kill(holder, SIGKILL);
    reap_killed(holder);
    ASSERT_EQ(ga_shared_mutex_lock(heap, &B->m, WAIT_MS), GA_EOWNERDEAD);
    ASSERT_EQ(ga_shared_mutex_unlock(heap, &B->m), 0);
    ASSERT_EQ(ga_shared_mutex_trylock(heap, &B->m), 0);
    ASSERT_EQ(ga_shared_mutex_unlock(heap, &B->m), 0);
    ASSERT_EQ(ga_shared_check(heap, 0), 0);
}

static void *lock_and_exit(void *arg)
{
    ga_heap_t *h = arg;
    return (void *)(intptr_t)ga_shared_mutex_lock(h, &kid_board->m, WAIT_MS);
}

/* A thread locks and exits; the process lives on until the parent is done. */
static int thread_exits_holding(int arg)
{
    (void)arg;
    kid_board = child_board(&kid_heap);
    pthread_t t;
    void *r = (void *)1;
    if (pthread_create(&t, NULL, lock_and_exit, kid_heap) || pthread_join(t, &r) || r) return 4;
    say('T');
    char c;
    return read(go[0], &c, 1) == 1 ? 0 : 8; /* the parent's "go" */
}

TEST(holder_thread_exits_in_live_process)
{
    board_reset();
    pid_t kid = spawn(thread_exits_holding, 0);
    ASSERT_EQ(hear(), 'T');
    ASSERT_EQ(ga_shared_mutex_lock(heap, &B->m, WAIT_MS), GA_EOWNERDEAD);
    ASSERT_EQ(ga_shared_mutex_unlock(heap, &B->m), 0);
    CHECK(write(go[1], "g", 1) == 1);
    ASSERT_EQ(reap(kid), 0);
}

/* ---- the condition variable --------------------------------------------------------------- */

static int consumer(int i)
{
    ga_heap_t *h;
    board_t *b = child_board(&h);
    if (ga_shared_mutex_lock(h, &b->m, WAIT_MS)) return 4;
    b->waiting++;
    ga_shared_cond_broadcast(h, &b->c);
    for (;;) {
        int rc = 0;
        while (b->items == 0 && !b->done && rc == 0)
            rc = ga_shared_cond_wait(h, &b->c, &b->m, WAIT_MS);
        if (rc) return 6; /* timed out with work there: a lost wake-up */
        if (b->items == 0) break;
        b->items--;
        b->taken[i]++;
    }
    return ga_shared_mutex_unlock(h, &b->m) ? 7 : 0;
}

/* Waits on the cond until killed (it says 'V' holding the mutex, just before the wait). */
static int victim(int arg)
{
    (void)arg;
    ga_heap_t *h;
    board_t *b = child_board(&h);
    if (ga_shared_mutex_lock(h, &b->m, WAIT_MS)) return 4;
    say('V');
    for (;;)
        ga_shared_cond_wait(h, &b->c, &b->m, WAIT_MS);
}

/* Waits (holding the mutex) until the waiting count reaches n. */
static void await_waiting(uint32_t n)
{
    int rc = 0;
    while (B->waiting < n && rc == 0)
        rc = ga_shared_cond_wait(heap, &B->c, &B->m, WAIT_MS);
    ASSERT_EQ(rc, 0);
}

TEST(cond_producer_consumer_with_killed_waiter)
{
    board_reset();
    enum { NCONS = 3 };
    pid_t k[NCONS];
    for (int i = 0; i < NCONS; i++)
        k[i] = spawn(consumer, i);
    ASSERT_EQ(ga_shared_mutex_lock(heap, &B->m, WAIT_MS), 0);
    await_waiting(NCONS);
    ASSERT_EQ(ga_shared_mutex_unlock(heap, &B->m), 0);
    pid_t v = spawn(victim, 0);
    ASSERT_EQ(hear(), 'V');
    /* Locking succeeds only once the victim's wait has unlocked the mutex: it is waiting. */
    ASSERT_EQ(ga_shared_mutex_lock(heap, &B->m, WAIT_MS), 0);
    ASSERT_EQ(ga_shared_mutex_unlock(heap, &B->m), 0);
    kill(v, SIGKILL);
    reap_killed(v);
    for (int i = 0; i < ITEMS; i++) {
        ASSERT_EQ(ga_shared_mutex_lock(heap, &B->m, WAIT_MS), 0);
        B->items++;
        ASSERT_EQ(ga_shared_cond_signal(heap, &B->c), 0);
        ASSERT_EQ(ga_shared_mutex_unlock(heap, &B->m), 0);
    }
    ASSERT_EQ(ga_shared_mutex_lock(heap, &B->m, WAIT_MS), 0);
    B->done = 1;
    ASSERT_EQ(ga_shared_cond_broadcast(heap, &B->c), 0);
    ASSERT_EQ(ga_shared_mutex_unlock(heap, &B->m), 0);
    uint32_t taken = 0;
    for (int i = 0; i < NCONS; i++) {
        ASSERT_EQ(reap(k[i]), 0);
        taken += B->taken[i];
    }
    ASSERT_EQ(taken, ITEMS);
    ASSERT_EQ(B->items, 0);
}

static int wait_for_go(int arg)
{
    (void)arg;
    ga_heap_t *h;
    board_t *b = child_board(&h);
    if (ga_shared_mutex_lock(h, &b->m, WAIT_MS)) return 4;
    b->waiting++;
    ga_shared_cond_broadcast(h, &b->c);
    int rc = 0;
    while (!b->go && rc == 0)
        rc = ga_shared_cond_wait(h, &b->c, &b->m, WAIT_MS);
    ga_shared_mutex_unlock(h, &b->m);
    return rc ? 6 : 0;
}

TEST(cond_broadcast_wakes_every_process)
{
    board_reset();
    pid_t k[NPROC];
    for (int i = 0; i < NPROC; i++)
        k[i] = spawn(wait_for_go, i);
    ASSERT_EQ(ga_shared_mutex_lock(heap, &B->m, WAIT_MS), 0);
    await_waiting(NPROC);
    B->go = 1;
    ASSERT_EQ(ga_shared_cond_broadcast(heap, &B->c), 0);
    ASSERT_EQ(ga_shared_mutex_unlock(heap, &B->m), 0);
    for (int i = 0; i < NPROC; i++)
        ASSERT_EQ(reap(k[i]), 0);
}

/* Waits on the cond; its wait's relock finds the holder dead. */
static int wait_expecting_dead(int arg)
{
    (void)arg;
    ga_heap_t *h;
    board_t *b = child_board(&h);
    if (ga_shared_mutex_lock(h, &b->m, WAIT_MS)) return 4;
    b->waiting++;
    say('w');
    int rc = 0;
    while (!b->go && rc == 0)
        rc = ga_shared_cond_wait(h, &b->c, &b->m, WAIT_MS);
    int code = rc == GA_EOWNERDEAD ? 0 : 10 + (rc < 0 ? -rc : 0);
    return ga_shared_mutex_unlock(h, &b->m) ? 9 : code;
}

/* Sets go, signals and dies holding the mutex. */
static int signal_and_hold(int arg)
{
    (void)arg;
    ga_heap_t *h;
    board_t *b = child_board(&h);
    if (ga_shared_mutex_lock(h, &b->m, WAIT_MS)) return 4;
    b->go = 1;
    ga_shared_cond_signal(h, &b->c);
    say('S');
    pause();
    return 0;
}

TEST(cond_wait_passes_eownerdead_on)
{
    board_reset();
    pid_t w = spawn(wait_expecting_dead, 0);
    ASSERT_EQ(hear(), 'w');
    ASSERT_EQ(ga_shared_mutex_lock(heap, &B->m, WAIT_MS), 0); /* w is in its wait now */
    ASSERT_EQ(ga_shared_mutex_unlock(heap, &B->m), 0);
    pid_t s = spawn(signal_and_hold, 0);
    ASSERT_EQ(hear(), 'S');
    kill(s, SIGKILL);
    reap_killed(s);
    ASSERT_EQ(reap(w), 0);
    ASSERT_EQ(ga_shared_mutex_lock(heap, &B->m, WAIT_MS), 0);
    ASSERT_EQ(ga_shared_mutex_unlock(heap, &B->m), 0);
    ASSERT_EQ(ga_shared_check(heap, 0), 0);
}

static void setup(void)
{
    heap_name = shm_test_name("msync");
    ga_shared_unlink(heap_name, GA_SHARED_FORCE);
    heap = ga_shared_open(heap_name, 8 * MIB, GA_SHARED_CREATE | GA_SHARED_EXCL, NULL);
    B = heap ? ga_shared_object(heap, "board", sizeof *B, 0, NULL) : NULL;
    if (!B || pipe(ready) || pipe(go)) {
        fprintf(stderr, "cannot set up heap %s: %s\n", heap_name, ga_err_name(ga_last_error()));
        exit(1);
    }
    ga_set_error_handler(quiet, NULL);
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

TEST_MAIN(TEST_ENTRY(setup_heap), TEST_ENTRY(counter_processes_times_threads),
          TEST_ENTRY(holder_process_killed), TEST_ENTRY(holder_thread_exits_in_live_process),
          TEST_ENTRY(cond_producer_consumer_with_killed_waiter),
          TEST_ENTRY(cond_broadcast_wakes_every_process),
          TEST_ENTRY(cond_wait_passes_eownerdead_on), TEST_ENTRY(teardown_heap))
