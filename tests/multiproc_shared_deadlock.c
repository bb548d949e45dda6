/* SPDX-License-Identifier: MIT */
/*
 * A full heap after a peer died must give NULL + GA_ENOMEM, never a hang: handle alloc, handle
 * realloc with GA_HMOVE and named-object creation used to allocate while holding their stripe /
 * named lock, and allocation on a full heap runs dead-peer recovery, which takes every lock. A
 * peer attaches, allocates, frees (a block in its cache) and dies attached; then the heap is
 * filled through each entry point. Every scenario runs in a child under alarm(): if the bug comes
 * back, the child dies of SIGALRM and the test fails instead of hanging.
 *
 * Also: a lock held by a live peer that never lets go gives GA_ETIMEDOUT within the lock
 * timeout, reported with the lock's name and the holder.
 */
#include "test.h"
#include "shared_test_util.h"
#include "shared/shared_internal.h"
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#define MIB ((size_t)1 << 20)
/* Far above the few ms a scenario takes, and below the 30 s lock timeout, which would turn
 * the deadlock into a slow GA_ETIMEDOUT: only a hang reaches it. */
#define ALARM_SEC 20

static const char *heap_name;

static int timeouts; /* GA_ETIMEDOUT reports seen */
static char last_msg[512];
static int note(int err, const char *msg, uintptr_t ptr, void *arg)
{
    (void)ptr, (void)arg;
    timeouts += err == GA_ETIMEDOUT;
    snprintf(last_msg, sizeof last_msg, "%s", msg);
    return 1;
}

/* A peer that attaches, leaves a block in its thread cache and dies attached. */
static void dead_peer(void)
{
    pid_t pid = fork();
    if (pid == 0) {
        ga_heap_t *c = ga_shared_open(heap_name, 0, 0, NULL);
        if (!c) _exit(3);
        void *p = ga_shared_alloc(c, 64);
        ga_shared_free(c, p);
        _exit(0);
    }
    int st = 0;
    CHECK(pid > 0 && waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

enum { SC_HANDLES, SC_OBJECTS, SC_REALLOC };

static void scenario_body(int sc)
{
    ga_shared_unlink(heap_name, GA_SHARED_FORCE);
    ga_heap_t *h = ga_shared_open(heap_name, 2 * MIB, GA_SHARED_CREATE | GA_SHARED_EXCL, NULL);
    CHECK(h != NULL);
    if (!h) return;
    ga__shm_set_lock_timeout(30000);
    ga_set_error_handler(note, NULL);
    dead_peer();
    int i = 0, err = 0;
    ga_handle_t big = 0;
    if (sc == SC_REALLOC) {
        big = ga_shared_handle_alloc(h, 100, 0);
        CHECK(big != 0);
        while (i < 1000 && ga_shared_alloc(h, 16000) != NULL)
            i++;
        ASSERT_EQ(ga_handle_realloc(big, 200000, GA_HMOVE), GA_ENOMEM);
        CHECK(ga_handle_size(big) == 100); /* unchanged */
        err = GA_ENOMEM;
    } else {
        for (; i < 1000; i++) {
            char name[32];
            snprintf(name, sizeof name, "o%d", i);
            void *p = sc == SC_HANDLES ? (void *)(uintptr_t)ga_shared_handle_alloc(h, 60000, 0)
                                       : ga_shared_object(h, name, 60000, 0, NULL);
            if (!p) break;
        }
        err = ga_last_error();
    }
    CHECK(i > 5 && i < 1000);
    ASSERT_EQ(err, sc == SC_OBJECTS ? GA_EFULL : GA_ENOMEM);
    ASSERT_EQ(ga_shared_check(h, 0), 0);
    ga_shared_stats_t s;
    ASSERT_EQ(ga_shared_stats(h, &s), 0);
    ASSERT_EQ(s.attached, 1);
    ASSERT_EQ(timeouts, 0);
    ga_shared_close(h);
    ga_shared_unlink(heap_name, GA_SHARED_FORCE);
}

/* Runs scenario sc in a child under alarm(); fails (not hangs) when it does not finish. */
static void run_bounded(int sc)
{
    pid_t pid = fork();
    if (pid == 0) {
        alarm(ALARM_SEC);
        scenario_body(sc);
        _exit(test_failures_ ? 1 : 0);
    }
    int st = 0;
    CHECK(pid > 0 && waitpid(pid, &st, 0) == pid);
    if (WIFSIGNALED(st))
        fprintf(stderr, "scenario %d: killed by signal %d (%s)\n", sc, WTERMSIG(st),
                WTERMSIG(st) == SIGALRM ? "hung: the deadlock is back" : "crashed");
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

TEST(full_heap_handles)
{
    run_bounded(SC_HANDLES);
}
TEST(full_heap_objects)
{
    run_bounded(SC_OBJECTS);
}
TEST(full_heap_realloc_move)
{
    run_bounded(SC_REALLOC);
}

/* A live peer takes the named-object lock and keeps it until told: our wait gives up. */
TEST(lock_timeout_names_holder)
{
    ga_shared_unlink(heap_name, GA_SHARED_FORCE);
    ga_heap_t *h = ga_shared_open(heap_name, 2 * MIB, GA_SHARED_CREATE | GA_SHARED_EXCL, NULL);
    CHECK(h != NULL);
    if (!h) return;
    int ready[2], go[2];
    CHECK(pipe(ready) == 0 && pipe(go) == 0);
    pid_t pid = fork();
    if (pid == 0) {
        alarm(ALARM_SEC);
        close(ready[0]);
        close(go[1]);
        ga_heap_t *c = ga_shared_open(heap_name, 0, 0, NULL);
        if (!c || ga__shm_lock_named((shm_att_t *)c) != 0) _exit(3);
        char x = 1;
        if (write(ready[1], &x, 1) != 1) _exit(4);
        while (read(go[0], &x, 1) > 0) /* until the parent closes go */
            ;
        ga__shm_unlock((shm_att_t *)c, SHM_LOCK_NAMED);
        ga_shared_close(c);
        _exit(0);
    }
    close(ready[1]);
    close(go[0]);
    char x = 0;
    CHECK(read(ready[0], &x, 1) == 1);
    unsigned saved = ga__shm_lock_timeout();
    ga__shm_set_lock_timeout(200);
    ga_set_error_handler(note, NULL);
    double t0 = ga__os_monotonic();
    CHECK(ga_shared_object(h, "blocked", 100, 0, NULL) == NULL);
    ASSERT_EQ(ga_last_error(), GA_ETIMEDOUT);
    CHECK(ga__os_monotonic() - t0 < 30); /* bounded: the bound itself is 0.2 s */
    CHECK(strstr(last_msg, "named-object lock") != NULL);
    char pidtxt[32];
    snprintf(pidtxt, sizeof pidtxt, "%d)", (int)pid);
    CHECK(strstr(last_msg, pidtxt) != NULL);
    if (!strstr(last_msg, pidtxt)) fprintf(stderr, "message: %s\n", last_msg);
    ga_set_error_handler(NULL, NULL);
    ga__shm_set_lock_timeout(saved);
    close(go[1]); /* the peer lets go, detaches and exits */
    int st = 0;
    CHECK(waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0);
    CHECK(ga_shared_object(h, "blocked", 100, 0, NULL) != NULL);
    ASSERT_EQ(ga_shared_check(h, 0), 0);
    close(ready[0]);
    ga_shared_close(h);
    ga_shared_unlink(heap_name, GA_SHARED_FORCE);
}

int main(int argc, char **argv)
{
    heap_name = shm_test_name("deadlock");
    static const test_entry_t tests[] = {
        TEST_ENTRY(full_heap_handles),
        TEST_ENTRY(full_heap_objects),
        TEST_ENTRY(full_heap_realloc_move),
        TEST_ENTRY(lock_timeout_names_holder),
    };
    return test_main(tests, sizeof tests / sizeof tests[0], argc, argv);
}
