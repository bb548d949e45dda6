/* SPDX-License-Identifier: MIT */
/*
 * Eight peers churn on one shared heap (blocks, reallocs, handles, named objects) while this
 * process SIGKILLs random ones and starts new ones in their place: GA_TEST_KILLS kills (default
 * 100; the long run takes 1000) within GA_TEST_BUDGET_S seconds (default 20). After each round
 * the heap checks clean while the others go on, and after ga_shared_reclaim_dead no dead
 * process's block is left. Every 25 rounds all peers must show progress (none hangs on a lock a
 * dead one held), then all are killed and the accounting after ga_shared_reclaim (with
 * GA_RECLAIM_HANDLES) and removing the objects is exact: nothing in use at all. Every wait is
 * bounded.
 */
#include "test.h"
#include "shared_test_util.h"
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define NPEERS  8
#define WAIT_MS 20000
#define EPOCH   25
#define MIB     ((size_t)1 << 20)

static const char *heap_name;
static _Atomic uint64_t *progress; /* per peer position: ops done (shared anonymous mapping) */

static uint64_t rnd(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static int wait_bounded(pid_t pid)
{
    return shm_test_wait(pid, WAIT_MS);
}

static size_t rnd_size(uint64_t *s)
{
    uint64_t r = rnd(s) % 100;
    return r < 80 ? rnd(s) % 512 : r < 97 ? rnd(s) % 16384 : 65536 + rnd(s) % 200000;
}

static void peer(int id, uint64_t seed, int ready_fd)
{
    ga_heap_t *h = ga_shared_open(heap_name, 0, 0, NULL);
    if (!h) _exit(3);
    if (write(ready_fd, "r", 1) != 1) _exit(4);
    close(ready_fd);
    static void *p[128];
    static ga_handle_t hs[16];
    char name[16];
    for (uint64_t n = 1;; n++) {
        size_t i = rnd(&seed) % 128, j = rnd(&seed) % 16;
        switch (rnd(&seed) % 8) {
        case 0:
        case 1:
            ga_shared_free(h, p[i]);
            p[i] = ga_shared_alloc(h, rnd_size(&seed));
            if (p[i]) memset(p[i], id, 8);
            break;
        case 2:
            if (p[i]) {
                void *q = ga_shared_realloc(h, p[i], rnd_size(&seed));
                if (q) p[i] = q;
            }
            break;
        case 3:
            if (hs[j]) ga_handle_free(hs[j]);
            hs[j] = ga_shared_handle_alloc(h, rnd_size(&seed), 0);
            break;
        case 4: {
            char *d = hs[j] ? ga_handle_lock(hs[j]) : NULL;
            if (d) {
                d[0] = (char)id;
                ga_handle_realloc(hs[j], rnd_size(&seed) + 1, GA_HMOVE);
                ga_handle_unlock(hs[j]);
            }
            break;
        }
        case 5:
            snprintf(name, sizeof name, "o%d", (int)(rnd(&seed) % 16));
            ga_shared_object(h, name, rnd_size(&seed) + 1, 0, NULL);
            break;
        case 6:
            snprintf(name, sizeof name, "o%d", (int)(rnd(&seed) % 16));
            ga_shared_object_remove(h, name);
            break;
        default:
            for (int k = 0; k < 8; k++) { /* a burst: refills and flushes */
                size_t m = rnd(&seed) % 128;
                ga_shared_free(h, p[m]);
                p[m] = ga_shared_alloc(h, rnd(&seed) % 256);
            }
        }
        atomic_store_explicit(&progress[id], n, memory_order_relaxed);
    }
}

static pid_t spawn(int id, uint64_t seed)
{
    int ready[2];
    if (pipe(ready)) return -1;
    atomic_store(&progress[id], 0);
    pid_t pid = fork();
    if (pid == 0) {
        close(ready[0]);
        peer(id, seed | 1, ready[1]);
    }
    close(ready[1]);
    struct pollfd p = {ready[0], POLLIN, 0};
    char c;
    bool up = poll(&p, 1, WAIT_MS) == 1 && read(ready[0], &c, 1) == 1;
    close(ready[0]);
    if (!up && pid > 0) {
        kill(pid, SIGKILL);
        wait_bounded(pid);
        return -1;
    }
    return pid;
}

/* True when every peer gets on with its work within WAIT_MS (none is stuck). */
static bool all_progress(void)
{
    uint64_t before[NPEERS];
    for (int i = 0; i < NPEERS; i++)
        before[i] = atomic_load(&progress[i]);
    double end = shm_test_now() + WAIT_MS / 1000.0;
    for (int i = 0; i < NPEERS; i++) {
        while (atomic_load(&progress[i]) == before[i]) {
            if (shm_test_now() > end) {
                printf("peer %d made no progress in %d ms\n", i, WAIT_MS);
                return false;
            }
            struct timespec ts = {0, 500000}; /* polling a deadline */
            nanosleep(&ts, NULL);
        }
    }
    return true;
}

static int quiet_handler(int err, const char *msg, uintptr_t ptr, void *arg)
{
    (void)err, (void)msg, (void)ptr, (void)arg;
    return 1;
}

/* Everything the peers left, gone: nothing may be in use after. */
static void exact_accounting(ga_heap_t *h)
{
    CHECK(ga_shared_reclaim(h, GA_RECLAIM_HANDLES) >= 0);
    static ga_shared_object_info_t objs[1024];
    long m = ga_shared_object_list(h, objs, 1024);
    for (long i = 0; i < m && i < 1024; i++)
        ASSERT_EQ(ga_shared_object_remove(h, objs[i].name), 0);
    ga_shared_stats_t s;
    ASSERT_EQ(ga_shared_stats(h, &s), 0);
    ASSERT_EQ(s.dead, 0);
    ASSERT_EQ(s.dead_blocks, 0);
    ASSERT_EQ(s.handles_in_use, 0);
    ASSERT_EQ(s.objects, 0);
    ASSERT_EQ(s.heap_blocks, 0);
    ASSERT_EQ(s.orphan_blocks, 0);
    ASSERT_EQ(s.blocks_in_use, 0);
    ASSERT_EQ(s.attached, 1);
    ASSERT_EQ(ga_shared_check(h, 0), 0);
}

TEST(peers_killed_at_random)
{
    long kills_wanted = getenv("GA_TEST_KILLS") ? strtol(getenv("GA_TEST_KILLS"), NULL, 10) : 100;
    double budget = getenv("GA_TEST_BUDGET_S") ? strtod(getenv("GA_TEST_BUDGET_S"), NULL) : 20.0;
    progress = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    CHECK(progress != MAP_FAILED);
    if (progress == MAP_FAILED) return;
    heap_name = shm_test_name("killers");
    ga_set_error_handler(quiet_handler, NULL);
    ga_heap_t *h = ga_shared_open(heap_name, 128 * MIB, GA_SHARED_CREATE | GA_SHARED_EXCL, NULL);
    CHECK(h != NULL);
    if (!h) return;
    uint64_t seed = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 20);
    printf("seed %llu\n", (unsigned long long)seed);
    pid_t peers[NPEERS];
    for (int i = 0; i < NPEERS; i++) {
        peers[i] = spawn(i, rnd(&seed));
        CHECK(peers[i] > 0);
    }
    double start = shm_test_now(), check_s = 0;
    long kills = 0, rounds = 0, failures_before = test_failures_;
    size_t repairs = 0;
    while (kills < kills_wanted && shm_test_now() - start < budget) {
        /* Let them work a random while, then kill one or two. */
        struct timespec ts = {0, (long)(rnd(&seed) % 3000000)};
        nanosleep(&ts, NULL);
        int victims = 1 + (int)(rnd(&seed) % 2);
        for (int v = 0; v < victims; v++) {
            int i = (int)(rnd(&seed) % NPEERS);
            if (peers[i] <= 0) continue;
            kill(peers[i], SIGKILL);
            int st = wait_bounded(peers[i]);
            CHECK(st >= 0 && WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
            peers[i] = -1;
            kills++;
        }
        double t0 = shm_test_now();
        ASSERT_EQ(ga_shared_check(h, 0), 0); /* while the others go on */
        CHECK(ga_shared_reclaim_dead(h) >= 0);
        check_s += shm_test_now() - t0;
        ga_shared_stats_t s;
        ASSERT_EQ(ga_shared_stats(h, &s), 0);
        ASSERT_EQ(s.dead, 0);
        ASSERT_EQ(s.dead_blocks, 0);
        repairs = s.repairs;
        for (int i = 0; i < NPEERS; i++)
            if (peers[i] <= 0) {
                peers[i] = spawn(i, rnd(&seed));
                CHECK(peers[i] > 0);
            }
        if (++rounds % EPOCH == 0 || kills >= kills_wanted || shm_test_now() - start >= budget) {
            CHECK(all_progress());
            for (int i = 0; i < NPEERS; i++) {
                kill(peers[i], SIGKILL);
                CHECK(wait_bounded(peers[i]) >= 0);
                kills++;
            }
            exact_accounting(h);
            for (int i = 0; i < NPEERS; i++)
                peers[i] = spawn(i, rnd(&seed));
        }
        if (test_failures_ != failures_before) {
            printf("failed in round %ld (seed %llu)\n", rounds, (unsigned long long)seed);
            break;
        }
    }
    for (int i = 0; i < NPEERS; i++) {
        if (peers[i] > 0) kill(peers[i], SIGKILL);
        if (peers[i] > 0) wait_bounded(peers[i]);
    }
    exact_accounting(h);
    double t = shm_test_now() - start;
    printf("%ld kills in %ld rounds, %.1f s (%.1f ms per round; check + reclaim %.1f ms), %zu "
           "locks repaired\n",
           kills, rounds, t, t * 1e3 / (double)(rounds ? rounds : 1),
           check_s * 1e3 / (double)(rounds ? rounds : 1), repairs);
    CHECK(kills >= 20);
    ga_shared_close(h);
    ASSERT_EQ(ga_shared_unlink(heap_name, 0), 0);
    ga_set_error_handler(NULL, NULL);
}

TEST_MAIN(TEST_ENTRY(peers_killed_at_random))
