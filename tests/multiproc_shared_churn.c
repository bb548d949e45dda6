/* SPDX-License-Identifier: MIT */
/*
 * Processes and threads on one shared heap at once: 3 processes x 2 threads allocate blocks,
 * stamp them, and trade them through a ring of offsets kept in a named object, so most blocks
 * are freed by another thread or another process than the one that allocated them (each block
 * is verified before it is freed). Each thread also works on handles the parent allocated:
 * lock, verify, rewrite, unlock, resize. At the end the heap checks clean and, once the parent
 * has drained the ring and freed the handles, not one block is in use.
 */
#include "test.h"
#include "shared_test_util.h"
#include "internal.h"
#include "shared/shared.h"
#include <pthread.h>
#include <stdatomic.h>
#include <sys/wait.h>
#include <unistd.h>

/* TSan sees the threads of one process only: when a block travels through another process
 * (freed there, refilled here), the happens-before edge passes outside its view and it would
 * report the stamps as races. Under TSan each process runs one thread; the threaded variant
 * runs in every other build (and test_shared's `threads` covers threads under TSan). */
#if defined(__SANITIZE_THREAD__)
#define GA_TEST_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define GA_TEST_TSAN 1
#endif
#endif
#define NPROC 3
#ifdef GA_TEST_TSAN
#define NTHREAD 1
#else
#define NTHREAD 2
#endif
#define ITERS    100000
#define RING     1024
#define NHANDLES (NPROC * NTHREAD * 2)
#define MIB      ((size_t)1 << 20)

static const char *heap_name;

typedef struct {
    _Atomic uint64_t ring[RING];
    ga_handle_t handles[NHANDLES];
    _Atomic int errors;
} board_t;

static ga_heap_t *heap;
static board_t *board;

/* A block carries its size in its first 8 bytes and a stamp byte in all the others. */
__attribute__((noinline)) static void stamp(unsigned char *p, uint64_t size, unsigned char v)
{
    memcpy(p, &size, 8);
    memset(p + 8, v, size - 8);
}

static int verify(const unsigned char *p)
{
    uint64_t size;
    memcpy(&size, p, 8);
    if (size < 9 || size > 80000) return 0;
    for (uint64_t i = 9; i < size; i++)
        if (p[i] != p[8]) return 0;
    return 1;
}

static void *worker(void *arg)
{
    int id = (int)(intptr_t)arg;
    uint64_t x = 0x9E3779B97F4A7C15ull * (uint64_t)(id + 1);
    for (int it = 0; it < ITERS; it++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        uint64_t size = 9 + (x >> 8) % (x % 50 ? 600 : 70000);
        unsigned char *p = ga_shared_alloc(heap, size);
        if (!p) {
            atomic_fetch_add(&board->errors, 1);
            continue;
        }
        stamp(p, size, (unsigned char)(x >> 40));
        uint64_t old = atomic_exchange(&board->ring[x % RING], ga_shared_offset(heap, p));
        if (old) {
            unsigned char *q = ga_shared_ptr(heap, old);
            if (!q || !verify(q) || ga_shared_free(heap, q) != 0)
                atomic_fetch_add(&board->errors, 1);
        }
        if (it % 16 == 0) {
            ga_handle_t h = board->handles[id * 2 + (int)(x % 2)]; /* only this thread's */
            unsigned char *d = ga__shared_handle_lock(h);
            size_t hs = ga__shared_handle_size(h);
            if (!d || !verify(d) || hs < 9)
                atomic_fetch_add(&board->errors, 1);
            else
                stamp(d, hs, (unsigned char)it);
            ga__shared_handle_unlock(h);
            size_t ns = 9 + (x >> 20) % 5000;
            if (ga__shared_handle_realloc(h, ns, 0) != 0) atomic_fetch_add(&board->errors, 1);
            d = ga__shared_handle_lock(h);
            if (d) { /* the prefix survived the move; restamp at the new size */
                int ok = ns <= hs || d[8] == d[hs - 1];
                stamp(d, ns, d[8]);
                if (!ok) atomic_fetch_add(&board->errors, 1);
            }
            ga__shared_handle_unlock(h);
        }
    }
    return NULL;
}

static int child(int proc)
{
    heap = ga_shared_open(heap_name, 0, 0, NULL);
    if (!heap) return 3;
    board = ga_shared_object_find(heap, "board", NULL);
    if (!board) return 4;
    pthread_t th[NTHREAD];
    for (int t = 0; t < NTHREAD; t++)
        pthread_create(&th[t], NULL, worker, (void *)(intptr_t)(proc * NTHREAD + t));
    for (int t = 0; t < NTHREAD; t++)
        pthread_join(th[t], NULL);
    return ga_shared_close(heap) == 0 ? 0 : 5;
}

TEST(processes_and_threads_trade_blocks)
{
    heap_name = shm_test_name("churn");
    heap = ga_shared_open(heap_name, 128 * MIB, GA_SHARED_CREATE, NULL);
    CHECK(heap != NULL);
    if (!heap) return;
    int created = 0;
    board = ga_shared_object(heap, "board", sizeof(board_t), 0, &created);
    CHECK(board != NULL && created);
    for (int i = 0; i < NHANDLES; i++) {
        board->handles[i] = ga_shared_handle_alloc(heap, 100, 0);
        unsigned char *d = ga__shared_handle_lock(board->handles[i]);
        CHECK(d != NULL);
        stamp(d, 100, 7);
        ga__shared_handle_unlock(board->handles[i]);
    }
    pid_t kids[NPROC];
    for (int i = 0; i < NPROC; i++) {
        kids[i] = fork();
        if (kids[i] == 0) _exit(child(i));
    }
    for (int i = 0; i < NPROC; i++) {
        int st = 0;
        waitpid(kids[i], &st, 0);
        CHECK(WIFEXITED(st));
        ASSERT_EQ(WEXITSTATUS(st), 0);
    }
    ASSERT_EQ(atomic_load(&board->errors), 0);
    ASSERT_EQ(ga_shared_check(heap, 0), 0);
    ga_shared_stats_t s;
    ASSERT_EQ(ga_shared_stats(heap, &s), 0);
    ASSERT_EQ(s.dead, 0);
    ASSERT_EQ(s.attached, 1);
    /* blocks still in the ring were left by workers that detached: the heap keeps them */
    size_t in_ring = 0;
    for (int i = 0; i < RING; i++)
        in_ring += atomic_load(&board->ring[i]) != 0;
    ASSERT_EQ(s.orphan_blocks, in_ring);
    for (int i = 0; i < RING; i++) {
        uint64_t off = atomic_load(&board->ring[i]);
        unsigned char *q = off ? ga_shared_ptr(heap, off) : NULL;
        if (q) {
            CHECK(verify(q));
            ASSERT_EQ(ga_shared_free(heap, q), 0);
        }
    }
    for (int i = 0; i < NHANDLES; i++) {
        unsigned char *d = ga__shared_handle_lock(board->handles[i]);
        CHECK(d != NULL && verify(d));
        ASSERT_EQ(ga__shared_handle_free(board->handles[i]), 0);
    }
    ASSERT_EQ(ga_shared_object_remove(heap, "board"), 0);
    ASSERT_EQ(ga_shared_stats(heap, &s), 0);
    ASSERT_EQ(s.blocks_in_use, 0);
    ASSERT_EQ(s.handles_in_use, 0);
    ASSERT_EQ(ga_shared_check(heap, 0), 0);
    ga_shared_close(heap);
    ASSERT_EQ(ga_shared_unlink(heap_name, 0), 0);
}

TEST_MAIN(TEST_ENTRY(processes_and_threads_trade_blocks))
