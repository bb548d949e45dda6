/* SPDX-License-Identifier: MIT */
/*
 * The demo's board (examples/shared_board.c) when its creator dies: a process that starts
 * setting the board's list up and is SIGKILLed half-way (garbage where the mutex goes) used to
 * leave every other process spinning forever; now the next board_open sets it up again, and
 * the board works. Also board_wait_count across processes (a child's lines are waited for on
 * the board's condition variable) and its timeout. Every wait is bounded.
 */
#include "test.h"
#include "shared_test_util.h"
#include "shared_board.h"
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define MIB     ((size_t)1 << 20)
#define WAIT_MS 30000

static const char *heap_name;
static ga_heap_t *heap;
static int ready[2];

static int quiet(int err, const char *msg, uintptr_t ptr, void *arg)
{
    (void)err, (void)msg, (void)ptr, (void)arg;
    return 1;
}

/* A creator that dies half-way: garbage in the object, then SIGKILLed by the parent. */
static int die_half_way(ga_heap_t *h, void *data, size_t size, void *arg)
{
    (void)h, (void)arg;
    memset(data, 0xFF, size / 2);
    char c = 'I';
    if (write(ready[1], &c, 1) != 1) return GA_EINVAL;
    pause();
    return 0;
}

TEST(creator_killed_half_way)
{
    pid_t pid = fork();
    if (pid == 0) {
        ga_heap_t *h = ga_shared_open(heap_name, 0, 0, NULL);
        if (!h) _exit(3);
        ga_shared_object_init(h, BOARD_LIST_OBJECT, board_list_object_size(), 0, die_half_way, NULL,
                              WAIT_MS, NULL);
        _exit(4);
    }
    char c = 0;
    CHECK(read(ready[0], &c, 1) == 1 && c == 'I');
    kill(pid, SIGKILL);
    int st = shm_test_wait(pid, WAIT_MS);
    CHECK(st >= 0 && WIFSIGNALED(st));
    int created = 0;
    board_t *b = board_open(heap, &created); /* not a spin: it sets the board up again */
    CHECK(b != NULL);
    if (!b) return;
    ASSERT_EQ(created, 1);
    ASSERT_EQ(board_append(b, "after the creator died"), 0);
    ASSERT_EQ(board_count(b), 1);
    char line[64];
    ASSERT_EQ(board_line(b, 0, line, sizeof line), 0);
    CHECK(strcmp(line, "after the creator died") == 0);
    board_destroy(b);
}

TEST(wait_for_lines_of_another_process)
{
    board_t *b = board_open(heap, NULL);
    CHECK(b != NULL);
    if (!b) return;
    ASSERT_EQ(board_wait_count(b, 1, 20), GA_ETIMEDOUT); /* nobody appends */
    pid_t pid = fork();
    if (pid == 0) {
        ga_heap_t *h = ga_shared_open(heap_name, 0, 0, NULL);
        if (!h || ga_set_share_heap(h)) _exit(3);
        int made = 1;
        board_t *cb = board_open(h, &made);
        if (!cb || made) _exit(4);
        for (int i = 0; i < 50; i++)
            if (board_append(cb, "child")) _exit(5);
        _exit(0);
    }
    ASSERT_EQ(board_wait_count(b, 50, WAIT_MS), 0);
    ASSERT_EQ(board_count(b), 50);
    int st = shm_test_wait(pid, WAIT_MS);
    CHECK(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0);
    board_destroy(b);
    ASSERT_EQ(ga_shared_check(heap, 0), 0);
}

TEST(setup_heap)
{
    heap_name = shm_test_name("mboard");
    ga_shared_unlink(heap_name, GA_SHARED_FORCE);
    heap = ga_shared_open(heap_name, 8 * MIB, GA_SHARED_CREATE | GA_SHARED_EXCL, NULL);
    if (!heap || ga_set_share_heap(heap) || pipe(ready)) {
        fprintf(stderr, "cannot set up heap %s: %s\n", heap_name, ga_err_name(ga_last_error()));
        exit(1);
    }
    ga_set_error_handler(quiet, NULL);
}

TEST(teardown_heap)
{
    ASSERT_EQ(ga_shared_check(heap, 0), 0);
    ga_set_share_heap(NULL);
    ASSERT_EQ(ga_shared_close(heap), 0);
}

TEST_MAIN(TEST_ENTRY(setup_heap), TEST_ENTRY(creator_killed_half_way),
          TEST_ENTRY(wait_for_lines_of_another_process), TEST_ENTRY(teardown_heap))
