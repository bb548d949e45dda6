/* SPDX-License-Identifier: MIT */
/*
 * Orphaned handles: each shared handle records the process that created it. Children make
 * handles and leave (one SIGKILLed, one detached cleanly), one stays; their handles then count
 * as exited in ga_shared_stats and are listed apart by ga_shared_leak_report (text and JSON),
 * even after the dead child's slot is reused by a new process. ga_shared_reclaim_dead keeps
 * them (off by default); ga_shared_reclaim(GA_RECLAIM_HANDLES) frees exactly them, and the
 * accounting after it is exact: the live processes' handles and blocks are untouched.
 * Every wait is bounded.
 */
#include "test.h"
#include "shared_test_util.h"
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define WAIT_MS 20000

static const char *heap_name;

static int wait_bounded(pid_t pid)
{
    return shm_test_wait(pid, WAIT_MS);
}

typedef struct {
    pid_t pid;
    int hold; /* our end: closing it lets the child go on */
} kid_t;

/* Our ends of the hold pipes of the children alive: a new child closes them, or an earlier
 * child would wait for the later one to go. */
static int holds[8], nholds;

/* A child that attaches, makes handles of the given sizes (text "kid N" in each) and one plain
 * block, reports ready, then waits for the parent and leaves: 0 detach, 1 wait to be killed. */
static kid_t spawn(const size_t *sizes, int n, int tag, int how)
{
    int ready[2], hold[2];
    kid_t k = {-1, -1};
    if (pipe(ready) || pipe(hold)) return k;
    k.pid = fork();
    if (k.pid == 0) {
        close(ready[0]);
        close(hold[1]);
        for (int i = 0; i < nholds; i++)
            close(holds[i]);
        ga_heap_t *h = ga_shared_open(heap_name, 0, 0, NULL);
        if (!h || !ga_shared_alloc(h, 300)) _exit(3);
        for (int i = 0; i < n; i++) {
            ga_handle_t x = ga_shared_handle_alloc(h, sizes[i], 0);
            char *p = x && sizes[i] ? ga_handle_lock(x) : NULL;
            if (!x || (sizes[i] && !p)) _exit(4);
            if (p) {
                snprintf(p, sizes[i], "kid %d", tag);
                ga_handle_unlock(x);
            }
        }
        if (write(ready[1], "r", 1) != 1) _exit(5);
        struct pollfd p = {hold[0], POLLIN, 0};
        poll(&p, 1, WAIT_MS);
        if (how == 0) ga_shared_close(h);
        _exit(0);
    }
    close(ready[1]);
    close(hold[0]);
    struct pollfd p = {ready[0], POLLIN, 0};
    char c;
    if (poll(&p, 1, WAIT_MS) != 1 || read(ready[0], &c, 1) != 1) {
        kill(k.pid, SIGKILL);
        wait_bounded(k.pid);
        k.pid = -1;
    }
    close(ready[0]);
    k.hold = hold[1];
    if (nholds < 8) holds[nholds++] = k.hold;
    return k;
}

static bool leave(kid_t k, bool kill_it)
{
    if (kill_it) kill(k.pid, SIGKILL);
    close(k.hold);
    for (int i = 0; i < nholds; i++)
        if (holds[i] == k.hold) holds[i--] = holds[--nholds];
    int st = wait_bounded(k.pid);
    return kill_it ? st >= 0 && WIFSIGNALED(st) : st >= 0 && WIFEXITED(st) && !WEXITSTATUS(st);
}

static char report[16384];
static void leak_report(ga_heap_t *h, unsigned flags)
{
    int p[2];
    report[0] = 0;
    if (pipe(p)) return;
    long rc = ga_shared_leak_report(h, p[1], flags);
    close(p[1]);
    ssize_t n = rc >= 0 ? read(p[0], report, sizeof report - 1) : 0;
    report[n > 0 ? n : 0] = 0;
    close(p[0]);
}

TEST(orphaned_handles_listed_and_reclaimed)
{
    heap_name = shm_test_name("orphans");
    ga_heap_t *h =
        ga_shared_open(heap_name, (size_t)32 << 20, GA_SHARED_CREATE | GA_SHARED_EXCL, NULL);
    CHECK(h != NULL);
    if (!h) return;
    static const size_t a_sizes[] = {100, 5000, 200000, 0}, b_sizes[] = {40, 60},
                        c_sizes[] = {70, 80};
    ga_handle_t mine = ga_shared_handle_alloc(h, 50, 0);
    CHECK(mine != 0);
    kid_t a = spawn(a_sizes, 4, 1, 1), b = spawn(b_sizes, 2, 2, 0), c = spawn(c_sizes, 2, 3, 0);
    CHECK(a.pid > 0 && b.pid > 0 && c.pid > 0);
    if (a.pid <= 0 || b.pid <= 0 || c.pid <= 0) return;
    ga_shared_stats_t s;
    ASSERT_EQ(ga_shared_stats(h, &s), 0);
    ASSERT_EQ(s.handles_in_use, 9);
    ASSERT_EQ(s.exited_handles, 0); /* everyone is alive */
    CHECK(leave(a, true));
    CHECK(leave(b, false));
    ASSERT_EQ(ga_shared_stats(h, &s), 0);
    ASSERT_EQ(s.exited_handles, 6);
    ASSERT_EQ(s.exited_handle_bytes, 100 + 5000 + 200000 + 40 + 60);

    leak_report(h, 0);
    char want[96];
    snprintf(want, sizeof want, "created by pid %d", (int)a.pid);
    CHECK(strstr(report, "handles of exited processes") != NULL);
    CHECK(strstr(report, want) != NULL);
    snprintf(want, sizeof want, "created by pid %d", (int)b.pid);
    CHECK(strstr(report, want) != NULL);
    snprintf(want, sizeof want, "created by pid %d", (int)c.pid);
    CHECK(strstr(report, want) == NULL); /* alive: not listed */
    CHECK(strstr(report, "total: 6 handles, 205200 bytes") != NULL);
    leak_report(h, GA_LEAK_JSON);
    CHECK(strstr(report, "\"exited_handles\":6,\"exited_handle_bytes\":205200") != NULL);

    /* Off by default: reclaiming the dead keeps the handles. */
    ASSERT_EQ(ga_shared_reclaim(h, 0x100), GA_EINVAL);
    ASSERT_EQ(ga_shared_reclaim(NULL, GA_RECLAIM_HANDLES), GA_EINVAL);
    CHECK(ga_shared_reclaim_dead(h) >= 1); /* the killed child's plain block */
    ASSERT_EQ(ga_shared_stats(h, &s), 0);
    ASSERT_EQ(s.handles_in_use, 9);
    ASSERT_EQ(s.dead_blocks, 0);
    /* A new process takes the dead child's slot: its handles stay exited (the generation). */
    static const size_t d_sizes[] = {90};
    kid_t d = spawn(d_sizes, 1, 4, 0);
    CHECK(d.pid > 0);
    ASSERT_EQ(ga_shared_stats(h, &s), 0);
    ASSERT_EQ(s.handles_in_use, 10);
    ASSERT_EQ(s.exited_handles, 6);
    size_t blocks_before = s.blocks_in_use, heap_before = s.heap_blocks;

    ASSERT_EQ(ga_shared_reclaim(h, GA_RECLAIM_HANDLES), 6);
    ASSERT_EQ(ga_shared_stats(h, &s), 0);
    ASSERT_EQ(s.handles_in_use, 4); /* ours, c's two, d's */
    ASSERT_EQ(s.exited_handles, 0);
    ASSERT_EQ(s.heap_blocks, heap_before - 5); /* a's zero-size handle had no block */
    ASSERT_EQ(s.blocks_in_use, blocks_before - 5);
    ASSERT_EQ(s.heap_blocks, 4);
    /* ours + c's + d's handles, c's and d's plain blocks, b's plain block (left detached) */
    ASSERT_EQ(s.blocks_in_use, 4 + 2 + 1);
    ASSERT_EQ(s.orphan_blocks, 1);
    ASSERT_EQ(ga_shared_check(h, 0), 0);
    static ga_handle_t list[16];
    ASSERT_EQ(ga_shared_handle_list(h, list, 16), 4);
    int seen[5] = {0};
    for (int i = 0; i < 4; i++) {
        char *p = ga_handle_lock(list[i]);
        CHECK(p != NULL);
        if (!p) continue;
        int tag = list[i] == mine ? 0 : (p[0] == 'k' ? p[4] - '0' : -1);
        CHECK(tag == 0 || tag == 3 || tag == 4);
        if (tag >= 0 && tag <= 4) seen[tag]++;
        ga_handle_unlock(list[i]);
    }
    CHECK(seen[0] == 1 && seen[3] == 2 && seen[4] == 1);
    CHECK(leave(c, false));
    CHECK(leave(d, false));
    ASSERT_EQ(ga_shared_stats(h, &s), 0);
    ASSERT_EQ(s.exited_handles, 3);
    ASSERT_EQ(ga_shared_reclaim(h, GA_RECLAIM_HANDLES), 3);
    ASSERT_EQ(ga_shared_stats(h, &s), 0);
    ASSERT_EQ(s.handles_in_use, 1);
    ASSERT_EQ(ga_handle_free(mine), 0);
    ASSERT_EQ(ga_shared_check(h, 0), 0);
    ga_shared_close(h);
    ASSERT_EQ(ga_shared_unlink(heap_name, 0), 0);
}

TEST_MAIN(TEST_ENTRY(orphaned_handles_listed_and_reclaimed))
