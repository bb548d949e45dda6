/* SPDX-License-Identifier: MIT */
/*
 * A heap outlives any number of processes: N processes (GA_TEST_PROCS, default 1000; the long
 * run takes 10000) attach one after the other, allocate blocks and a handle, and leave: a
 * quarter detach cleanly, a quarter exit attached, half are SIGKILLed. The table has 61 slots,
 * so the slots of the dead must be recycled; every 200 rounds the blocks of those that died
 * attached must be exactly 4 each, and ga_shared_reclaim_dead frees them. Afterwards the heap
 * checks clean, the accounting after ga_shared_reclaim_dead is exact (every handle kept, the
 * detached processes' blocks kept, nothing else), the table fills with 60 live children plus us,
 * the next attach fails with GA_EFULL and a message naming the limit, and once they leave a new
 * process attaches again. Every wait is bounded (poll / waitpid with a deadline): a hang fails the
 * test.
 */
#include "test.h"
#include "shared_test_util.h"
#include <errno.h>
#include <stdbool.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MIB       ((size_t)1 << 20)
#define WAIT_MS   20000
#define N_HOLDERS (GA_SHARED_MAX_PROCS - 1) /* with us: a full table */

static const char *heap_name;

static int wait_bounded(pid_t pid)
{
    return shm_test_wait(pid, WAIT_MS);
}

/* Reads one byte from fd within WAIT_MS. true when it came. */
static bool read_bounded(int fd)
{
    struct pollfd p = {fd, POLLIN, 0};
    char c;
    return poll(&p, 1, WAIT_MS) == 1 && read(fd, &c, 1) == 1;
}

/* The child of round i: attach, allocate, tell the parent, then leave as mode says. */
static void child(int mode, int ready_fd, int hold_fd)
{
    ga_heap_t *h = ga_shared_open(heap_name, 0, 0, NULL);
    if (!h) _exit(3);
    void *small[3], *large = ga_shared_alloc(h, 100000);
    for (int k = 0; k < 3; k++)
        small[k] = ga_shared_alloc(h, 40 + 100 * (size_t)k);
    ga_handle_t hd = ga_shared_handle_alloc(h, 100, GA_HZERO);
    if (!large || !small[2] || !hd) _exit(4);
    if (mode == 0) { /* clean detach: two small blocks stay, the detached process's */
        ga_shared_free(h, large);
        ga_shared_free(h, small[0]);
        ga_shared_close(h);
    }
    if (write(ready_fd, "r", 1) != 1) _exit(5);
    if (mode >= 2) { /* wait to be killed (bounded: the parent's end of hold_fd closes) */
        struct pollfd p = {hold_fd, POLLIN, 0};
        poll(&p, 1, WAIT_MS);
    }
    _exit(0);
}

static char limit_msg[512];
static int msg_handler(int err, const char *msg, uintptr_t ptr, void *arg)
{
    (void)ptr, (void)arg;
    if (err == GA_EFULL) snprintf(limit_msg, sizeof limit_msg, "%s", msg);
    return 1;
}

/* A child that tries to attach: exit 0 attached, 10 + the error otherwise (the message to fd). */
static int try_attach(void)
{
    int p[2];
    ASSERT_EQ(pipe(p), 0);
    pid_t pid = fork();
    if (pid == 0) {
        close(p[0]);
        ga_set_error_handler(msg_handler, NULL);
        ga_heap_t *h = ga_shared_open(heap_name, 0, 0, NULL);
        int err = h ? 0 : ga_last_error();
        if (write(p[1], limit_msg, strlen(limit_msg)) < 0) _exit(2);
        if (h) ga_shared_close(h);
        _exit(h ? 0 : 10 + (err < 0 ? -err : err) % 100);
    }
    close(p[1]);
    limit_msg[0] = 0;
    struct pollfd pf = {p[0], POLLIN, 0};
    if (poll(&pf, 1, WAIT_MS) == 1) {
        ssize_t n = read(p[0], limit_msg, sizeof limit_msg - 1);
        limit_msg[n > 0 ? n : 0] = 0;
    }
    close(p[0]);
    int st = wait_bounded(pid);
    return st >= 0 && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* The owners report shows the blocks of recycled slots apart (their pids are gone). */
static void check_report(ga_heap_t *h)
{
    FILE *f = tmpfile();
    CHECK(f != NULL);
    if (!f) return;
    CHECK(ga_shared_leak_report(h, fileno(f), 0) > 0);
    static char text[1 << 16];
    rewind(f);
    size_t n = fread(text, 1, sizeof text - 1, f);
    text[n] = 0;
    fclose(f);
    CHECK(strstr(text, "processes whose slots were reused: ") != NULL);
}

TEST(many_lifetimes)
{
    const char *env = getenv("GA_TEST_PROCS");
    long n = env && *env ? strtol(env, NULL, 10) : 1000;
    if (n < 8) n = 8;
    heap_name = shm_test_name("lifetimes");
    ga_heap_t *h = ga_shared_open(heap_name, 64 * MIB, GA_SHARED_CREATE | GA_SHARED_EXCL, NULL);
    CHECK(h != NULL);
    if (!h) return;
    double start = shm_test_now();
    long closed = 0, exited = 0, killed = 0, failures = 0, died = 0;
    ga_shared_stats_t s;
    for (long i = 0; i < n && failures == 0; i++) {
        if (i % 200 == 199) { /* what died attached is kept until reclaimed: exactly that */
            ASSERT_EQ(ga_shared_stats(h, &s), 0);
            ASSERT_EQ(s.dead_blocks, (size_t)died * 4);
            ASSERT_EQ(ga_shared_leak_report(h, -1, GA_LEAK_QUIET), died * 4);
            if (i == 199) check_report(h);
            CHECK(ga_shared_reclaim_dead(h) >= died * 4);
            died = 0;
        }
        int mode = (int)(i % 4), ready[2], hold[2];
        ASSERT_EQ(pipe(ready), 0);
        ASSERT_EQ(pipe(hold), 0);
        pid_t pid = fork();
        if (pid == 0) {
            close(ready[0]);
            close(hold[1]);
            child(mode, ready[1], hold[0]);
        }
        close(ready[1]);
        close(hold[0]);
        bool up = read_bounded(ready[0]);
        if (mode >= 2) kill(pid, SIGKILL);
        close(hold[1]);
        close(ready[0]);
        int st = wait_bounded(pid);
        bool ok = up && st >= 0 &&
                  (mode >= 2 ? WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL
                             : WIFEXITED(st) && WEXITSTATUS(st) == 0);
        if (!ok) {
            printf("round %ld (mode %d): child up %d, status %#x\n", i, mode, up, st);
            failures++;
        }
        closed += mode == 0;
        exited += mode == 1;
        killed += mode >= 2;
        died += mode >= 1;
    }
    double t = shm_test_now() - start;
    CHECK(failures == 0);
    printf("%ld processes (%ld detached, %ld exited attached, %ld SIGKILLed) in %.2f s: %.0f us "
           "each\n",
           n, closed, exited, killed, t, t * 1e6 / (double)n);

    ASSERT_EQ(ga_shared_check(h, 0), 0);
    ASSERT_EQ(ga_shared_stats(h, &s), 0);
    ASSERT_EQ(s.attached, 1);
    CHECK(s.dead >= 1 && s.dead <= GA_SHARED_MAX_PROCS - 1);
    /* Each process that died attached left 4 blocks (in its slot, or the recycled slots'). */
    ASSERT_EQ(s.dead_blocks, (size_t)died * 4);
    long rec = ga_shared_reclaim_dead(h);
    CHECK(rec >= died * 4);
    ASSERT_EQ(ga_shared_stats(h, &s), 0);
    ASSERT_EQ(s.dead, 0);
    ASSERT_EQ(s.dead_blocks, 0);
    ASSERT_EQ(s.handles_in_use, (size_t)n);
    ASSERT_EQ(s.heap_blocks, (size_t)n);
    ASSERT_EQ(s.orphan_blocks, (size_t)closed * 2);
    ASSERT_EQ(s.blocks_in_use, (size_t)n + (size_t)closed * 2);
    ASSERT_EQ(ga_shared_check(h, 0), 0);

    /* The limit: 60 children hold their slots, with us the table is full. */
    int hold[2];
    ASSERT_EQ(pipe(hold), 0);
    pid_t holders[N_HOLDERS];
    int up = 0;
    for (int k = 0; k < N_HOLDERS; k++) {
        int ready[2];
        ASSERT_EQ(pipe(ready), 0);
        holders[k] = fork();
        if (holders[k] == 0) {
            close(ready[0]);
            close(hold[1]);
            ga_heap_t *x = ga_shared_open(heap_name, 0, 0, NULL);
            if (!x || write(ready[1], "r", 1) != 1) _exit(3);
            struct pollfd p = {hold[0], POLLIN, 0};
            poll(&p, 1, WAIT_MS); /* until the parent closes its end */
            ga_shared_close(x);
            _exit(0);
        }
        close(ready[1]);
        up += read_bounded(ready[0]);
        close(ready[0]);
    }
    ASSERT_EQ(up, N_HOLDERS);
    ASSERT_EQ(try_attach(), 10 + (GA_EFULL < 0 ? -GA_EFULL : GA_EFULL) % 100);
    CHECK(strstr(limit_msg, "61 processes") != NULL);
    close(hold[1]);
    for (int k = 0; k < N_HOLDERS; k++) {
        int st = wait_bounded(holders[k]);
        CHECK(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0);
    }
    close(hold[0]);
    ASSERT_EQ(try_attach(), 0); /* room again */
    ASSERT_EQ(ga_shared_stats(h, &s), 0);
    ASSERT_EQ(s.attached, 1);
    ASSERT_EQ(s.dead, 0);
    ASSERT_EQ(ga_shared_check(h, 0), 0);
    ga_shared_close(h);
    ASSERT_EQ(ga_shared_unlink(heap_name, 0), 0);
}

TEST_MAIN(TEST_ENTRY(many_lifetimes))
