/* SPDX-License-Identifier: MIT */
/*
 * ga_shared_object_init across processes: N processes released at once race to initialise one
 * object and init runs exactly once (counted in a separate object); an initialiser SIGKILLed
 * half-way (it says it is inside init, then the test kills it) makes the next caller -- one
 * already waiting, or a later one -- zero-fill the object and run init again, and the object's
 * contents are whole; an init that fails in one process is run again by the next; a caller
 * times out while another process initialises, and gets the object once that one finishes.
 * Processes meet through pipes; every wait is bounded.
 */
#include "test.h"
#include "shared_test_util.h"
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define MIB     ((size_t)1 << 20)
#define WAIT_MS 30000
#define NPROC   6
#define WORDS   1024 /* the object: a pattern that a half-made init leaves incomplete */

typedef struct {
    uint64_t w[WORDS];
} table_t;
typedef struct {
    _Atomic uint32_t runs;     /* init calls, all processes */
    _Atomic uint32_t finished; /* init calls that returned 0 */
} counts_t;

static const char *heap_name;
static ga_heap_t *heap;
static counts_t *C;
static int ready[2], gate[2]; /* children say 'I' from inside init; wait on gate */

static int quiet(int err, const char *msg, uintptr_t ptr, void *arg)
{
    (void)err, (void)msg, (void)ptr, (void)arg;
    return 1;
}

enum { MODE_PLAIN, MODE_DIE, MODE_GATED, MODE_FAIL };

/* init: checks it got zeros, counts itself, fills the table (mode: stop half-way and wait to
 * be killed, wait for the gate, or fail after writing). */
static int fill_table(ga_heap_t *h, void *data, size_t size, void *arg)
{
    counts_t *c = ga_shared_object_find(h, "counts", NULL);
    table_t *t = data;
    int mode = (int)(intptr_t)arg;
    if (!c || size != sizeof *t) return GA_EINVAL;
    for (int i = 0; i < WORDS; i++)
        if (t->w[i]) return GA_ECORRUPT; /* not zero-filled */
    atomic_fetch_add(&c->runs, 1);
    for (int i = 0; i < WORDS / 2; i++)
        t->w[i] = 0x1000 + (uint64_t)i;
    if (mode == MODE_DIE || mode == MODE_GATED) {
        char x = 'I';
        if (write(ready[1], &x, 1) != 1) return GA_EINVAL;
        if (mode == MODE_DIE) pause(); /* until SIGKILLed */
        if (read(gate[0], &x, 1) != 1) return GA_EINVAL;
    }
    if (mode == MODE_FAIL) return GA_EFULL;
    for (int i = WORDS / 2; i < WORDS; i++)
        t->w[i] = 0x1000 + (uint64_t)i;
    atomic_fetch_add(&c->finished, 1);
    return 0;
}

static bool table_whole(const table_t *t)
{
    for (int i = 0; i < WORDS; i++)
        if (t->w[i] != 0x1000 + (uint64_t)i) return false;
    return true;
}

/* A child: waits for the start (EOF on start[0]; start NULL: none), attaches and calls
 * ga_shared_object_init. Exit: 0 (got the table whole, init not run here), 1 (ran init),
 * 20 + -error (NULL), 2 (table not whole), 3 (no heap). */
static pid_t kid(const int *start, int mode, unsigned timeout_ms)
{
    pid_t pid = fork();
    if (pid) return pid;
    char x;
    if (start) close(start[1]); /* EOF once the parent closes its end */
    if (start && read(start[0], &x, 1) != 0) _exit(4);
    ga_heap_t *h = ga_shared_open(heap_name, 0, 0, NULL);
    if (!h) _exit(3);
    int made = 0;
    table_t *t = ga_shared_object_init(h, "table", sizeof *t, 0, fill_table, (void *)(intptr_t)mode,
                                       timeout_ms, &made);
    if (!t) _exit(20 + (-ga_last_error() & 0x3F));
    _exit(!table_whole(t) ? 2 : made);
}

static int reap(pid_t pid)
{
    int st = shm_test_wait(pid, WAIT_MS);
    return st >= 0 && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void fresh(void)
{
    ga_shared_object_remove(heap, "table");
    memset(C, 0, sizeof *C);
}

TEST(racing_processes_init_once)
{
    for (int round = 0; round < 3; round++) {
        fresh();
        int start[2];
        CHECK(pipe(start) == 0);
        pid_t k[NPROC];
        for (int i = 0; i < NPROC; i++)
            k[i] = kid(start, MODE_PLAIN, WAIT_MS);
        close(start[0]);
        close(start[1]); /* all go at once */
        int ran = 0;
        for (int i = 0; i < NPROC; i++) {
            int rc = reap(k[i]);
            CHECK(rc == 0 || rc == 1);
            ran += rc == 1;
        }
        ASSERT_EQ(ran, 1);
        ASSERT_EQ(atomic_load(&C->runs), 1);
        ASSERT_EQ(atomic_load(&C->finished), 1);
        int made = 9;
        table_t *t =
            ga_shared_object_init(heap, "table", sizeof *t, 0, fill_table, NULL, 10, &made);
        CHECK(t != NULL && table_whole(t));
        ASSERT_EQ(made, 0);
    }
}

static char hear(void)
{
    char x = 0;
    CHECK(read(ready[0], &x, 1) == 1);
    return x;
}

TEST(initialiser_killed_half_way)
{
    /* A caller already waiting takes over. */
    fresh();
    pid_t dying = kid(NULL, MODE_DIE, WAIT_MS);
    ASSERT_EQ(hear(), 'I');
    pid_t waiting = kid(NULL, MODE_PLAIN, WAIT_MS);
    kill(dying, SIGKILL);
    int st = shm_test_wait(dying, WAIT_MS);
    CHECK(st >= 0 && WIFSIGNALED(st));
    ASSERT_EQ(reap(waiting), 1); /* it ran init again, on a zero-filled object */
    ASSERT_EQ(atomic_load(&C->runs), 2);
    ASSERT_EQ(atomic_load(&C->finished), 1);
    table_t *t = ga_shared_object_find(heap, "table", NULL);
    CHECK(t != NULL && table_whole(t));
    /* Nobody waiting: the next caller (here, the parent) does it. */
    fresh();
    dying = kid(NULL, MODE_DIE, WAIT_MS);
    ASSERT_EQ(hear(), 'I');
    kill(dying, SIGKILL);
    st = shm_test_wait(dying, WAIT_MS);
    CHECK(st >= 0 && WIFSIGNALED(st));
    t = ga_shared_object_find(heap, "table", NULL);
    CHECK(t != NULL && t->w[0] == 0x1000 && t->w[WORDS - 1] == 0); /* half-made */
    int made = 0;
    t = ga_shared_object_init(heap, "table", sizeof *t, 0, fill_table, NULL, WAIT_MS, &made);
    CHECK(t != NULL && table_whole(t));
    ASSERT_EQ(made, 1);
    ASSERT_EQ(atomic_load(&C->runs), 2);
    ASSERT_EQ(ga_shared_check(heap, 0), 0);
}

TEST(init_fails_in_one_process)
{
    fresh();
    ASSERT_EQ(reap(kid(NULL, MODE_FAIL, WAIT_MS)), 20 + (-GA_EFULL));
    table_t *t = ga_shared_object_find(heap, "table", NULL);
    CHECK(t != NULL && t->w[0] == 0);                   /* zero-filled, uninitialised */
    ASSERT_EQ(reap(kid(NULL, MODE_PLAIN, WAIT_MS)), 1); /* the next one runs it */
    ASSERT_EQ(atomic_load(&C->runs), 2);
    ASSERT_EQ(atomic_load(&C->finished), 1);
}

TEST(timeout_while_another_initialises)
{
    fresh();
    pid_t slow = kid(NULL, MODE_GATED, WAIT_MS);
    ASSERT_EQ(hear(), 'I');
    int made = 7;
    table_t *t = ga_shared_object_init(heap, "table", sizeof *t, 0, fill_table, NULL, 40, &made);
    CHECK(t == NULL);
    ASSERT_EQ(ga_last_error(), GA_ETIMEDOUT);
    ASSERT_EQ(made, 0);
    ASSERT_EQ(reap(kid(NULL, MODE_PLAIN, 40)), 20 + (-GA_ETIMEDOUT)); /* another process too */
    CHECK(write(gate[1], "g", 1) == 1);
    ASSERT_EQ(reap(slow), 1);
    t = ga_shared_object_init(heap, "table", sizeof *t, 0, fill_table, NULL, 40, &made);
    CHECK(t != NULL && table_whole(t));
    ASSERT_EQ(made, 0);
    ASSERT_EQ(atomic_load(&C->runs), 1);
}

TEST(setup_heap)
{
    heap_name = shm_test_name("monce");
    ga_shared_unlink(heap_name, GA_SHARED_FORCE);
    heap = ga_shared_open(heap_name, 8 * MIB, GA_SHARED_CREATE | GA_SHARED_EXCL, NULL);
    C = heap ? ga_shared_object(heap, "counts", sizeof *C, 0, NULL) : NULL;
    if (!C || pipe(ready) || pipe(gate)) {
        fprintf(stderr, "cannot set up heap %s: %s\n", heap_name, ga_err_name(ga_last_error()));
        exit(1);
    }
    ga_set_error_handler(quiet, NULL);
}

TEST(teardown_heap)
{
    ASSERT_EQ(ga_shared_check(heap, 0), 0);
    ASSERT_EQ(ga_shared_close(heap), 0);
}

TEST_MAIN(TEST_ENTRY(setup_heap), TEST_ENTRY(racing_processes_init_once),
          TEST_ENTRY(initialiser_killed_half_way), TEST_ENTRY(init_fails_in_one_process),
          TEST_ENTRY(timeout_while_another_initialises), TEST_ENTRY(teardown_heap))
