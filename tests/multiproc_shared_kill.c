/* SPDX-License-Identifier: MIT */
/*
 * A dying peer costs nothing: a child attached to a shared heap allocates, frees, reallocates,
 * locks handles, creates/removes named objects, and now and then detaches and attaches again,
 * in a tight loop, while the parent does its own work on the same heap; the parent SIGKILLs the
 * child at a random instant, hundreds of times. After each kill: the heap checks clean (locks
 * the child held are repaired), the survivor still allocates, the dead child's blocks are
 * reported as owned by a dead process and exactly those come back with ga_shared_reclaim_dead,
 * and once the parent has freed every handle and object, the only blocks in use are its own.
 * Bounded: at most ITERATIONS kills and at most BUDGET_S seconds.
 *
 * Then sixteen peers at once: each runs the same random work, and the parent SIGKILLs one at
 * random and starts another, PEERS_KILLS times (GA_STRESS_KILLS sets a longer run), checking
 * the heap every 16 kills while the others go on. The run is counted in kills, not seconds, so
 * a slow or loaded machine takes longer instead of failing; PEERS_BUDGET_S bounds it. Once the kills stop
 * (every peer killed), reclaim and check: nothing lost, the heap clean.
 */
#include "test.h"
#include "shared_test_util.h"
#include "internal.h"
#include "shared/shared.h"
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define ITERATIONS 400
#define BUDGET_S   120.0
#define PEERS      16
#define PEERS_KILLS 64
#define PEERS_BUDGET_S 300.0
#define MIB        ((size_t)1 << 20)

static const char *heap_name;

static uint64_t rng_state;
static uint64_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static size_t rnd_size(void)
{
    uint64_t r = rnd() % 100;
    return r < 80 ? rnd() % 512 : r < 95 ? rnd() % 16384 : 65536 + rnd() % 300000;
}

/* One random operation on the heap; p/hs are the caller's live blocks and handles. */
static void one_op(ga_heap_t *h, void **p, size_t np, ga_handle_t *hs, size_t nh)
{
    size_t i = rnd() % np, j = rnd() % nh;
    char name[16];
    switch (rnd() % 10) {
    case 0:
    case 1:
        ga_shared_free(h, p[i]);
        p[i] = ga_shared_alloc(h, rnd_size());
        if (p[i]) memset(p[i], 0x5A, 16);
        break;
    case 2:
        if (p[i]) {
            void *q = ga_shared_realloc(h, p[i], rnd_size());
            if (q) p[i] = q;
        }
        break;
    case 3:
        if (hs[j]) ga__shared_handle_free(hs[j]);
        hs[j] = ga_shared_handle_alloc(h, rnd_size(), GA_HZERO);
        break;
    case 4: {
        char *d = hs[j] ? ga__shared_handle_lock(hs[j]) : NULL;
        if (d) {
            d[0] = 1;
            ga__shared_handle_realloc(hs[j], rnd_size() + 1, GA_HMOVE);
            ga__shared_handle_unlock(hs[j]);
        }
        break;
    }
    case 5:
        if (hs[j]) ga__shared_handle_realloc(hs[j], rnd() % 4 ? rnd_size() : 0, 0);
        break;
    case 6:
        snprintf(name, sizeof name, "obj%d", (int)(rnd() % 24));
        ga_shared_object(h, name, rnd_size(), 0, NULL);
        break;
    case 7:
        snprintf(name, sizeof name, "obj%d", (int)(rnd() % 24));
        ga_shared_object_remove(h, name);
        break;
    case 8:
        snprintf(name, sizeof name, "obj%d", (int)(rnd() % 24));
        ga_shared_object_find(h, name, NULL);
        break;
    default:
        for (int k = 0; k < 8; k++) { /* a burst of small blocks: refills and flushes */
            size_t m = rnd() % np;
            ga_shared_free(h, p[m]);
            p[m] = ga_shared_alloc(h, rnd() % 200);
        }
    }
}

static void child(unsigned seed, int ready_fd)
{
    rng_state = seed | 1;
    ga_heap_t *h = ga_shared_open(heap_name, 0, 0, NULL);
    if (!h) _exit(3);
    signal(SIGPIPE, SIG_IGN); /* the parent may not be listening: that is fine */
    ssize_t w = write(ready_fd, "r", 1);
    (void)w;
    close(ready_fd);
    static void *p[256];
    static ga_handle_t hs[32];
    for (;;) {
        one_op(h, p, 256, hs, 32);
        if (rnd() % 3000 == 0) {
            /* Detach and attach again (so kills also land in close and open). Our blocks are
             * freed first: a clean detach would leave them to the heap, which the parent's
             * accounting below does not expect. */
            for (int i = 0; i < 256; i++) {
                ga_shared_free(h, p[i]);
                p[i] = NULL;
            }
            ga_shared_close(h);
            h = ga_shared_open(heap_name, 0, 0, NULL);
            if (!h) _exit(3);
        }
    }
}

static int quiet_handler(int err, const char *msg, uintptr_t ptr, void *arg)
{
    (void)err, (void)msg, (void)ptr, (void)arg;
    return 1;
}

/* Frees every handle and named object (the child's and ours). */
static void free_shared_things(ga_heap_t *h)
{
    static ga_handle_t hs[1 << 16];
    long n = ga_shared_handle_list(h, hs, 1 << 16);
    CHECK(n >= 0 && n <= (1 << 16));
    for (long i = 0; i < n; i++)
        ASSERT_EQ(ga__shared_handle_free(hs[i]), 0);
    static ga_shared_object_info_t objs[1024];
    long m = ga_shared_object_list(h, objs, 1024);
    for (long i = 0; i < m && i < 1024; i++)
        ASSERT_EQ(ga_shared_object_remove(h, objs[i].name), 0);
}

static size_t count_live(void **p, size_t n)
{
    size_t c = 0;
    for (size_t i = 0; i < n; i++)
        c += p[i] != NULL;
    return c;
}

/* Our blocks freed, the heap must be empty and clean; then detach and remove it. */
static void finish(ga_heap_t *h, void **mine, size_t n)
{
    for (size_t i = 0; i < n; i++)
        ga_shared_free(h, mine[i]);
    ga_shared_stats_t s;
    ASSERT_EQ(ga_shared_stats(h, &s), 0);
    ASSERT_EQ(s.blocks_in_use, 0);
    ASSERT_EQ(ga_shared_check(h, 0), 0);
    ga_shared_close(h);
    ASSERT_EQ(ga_shared_unlink(heap_name, 0), 0);
    ga_set_error_handler(NULL, NULL);
}

TEST(kill_children_at_random)
{
    heap_name = shm_test_name("killtest");
    ga_set_error_handler(quiet_handler, NULL);
    int created = 0;
    ga_heap_t *h = ga_shared_open(heap_name, 64 * MIB, GA_SHARED_CREATE, &created);
    CHECK(h != NULL);
    if (!h) return;
    unsigned seed = (unsigned)time(NULL) ^ (unsigned)getpid();
    printf("seed %u\n", seed);
    rng_state = seed | 1;
    static void *mine[128];
    static ga_handle_t my_handles[8];
    double start = now_s();
    int kills = 0, dead_seen = 0, failures_before = test_failures_;
    for (int it = 0; it < ITERATIONS && now_s() - start < BUDGET_S; it++) {
        unsigned cseed = (unsigned)rnd();
        int ready[2];
        ASSERT_EQ(pipe(ready), 0);
        pid_t pid = fork();
        if (pid == 0) {
            close(ready[0]);
            child(cseed, ready[1]);
        }
        close(ready[1]);
        /* Mostly wait until the child is attached (so the kill lands in its work, whatever
         * the machine's load); one time in four not, so kills land in the attach too. */
        if (rnd() % 4) {
            struct pollfd pfd = {ready[0], POLLIN, 0};
            poll(&pfd, 1, 5000);
        }
        close(ready[0]);
        /* work alongside the child for a random while, then kill it */
        double until = now_s() + 0.0005 + (double)(rnd() % 8000) * 1e-6;
        while (now_s() < until)
            one_op(h, mine, 128, my_handles, 8);
        kill(pid, SIGKILL);
        int st = 0;
        waitpid(pid, &st, 0);
        kills += WIFSIGNALED(st);
        CHECK(WIFSIGNALED(st) || (WIFEXITED(st) && WEXITSTATUS(st) == 0));

        ASSERT_EQ(ga_shared_check(h, 0), 0);
        ga_shared_stats_t s;
        ASSERT_EQ(ga_shared_stats(h, &s), 0);
        CHECK(s.dead <= 1);
        dead_seen += s.dead == 1;
        size_t dead_blocks = 0;
        for (int k = 0; k < 64; k++)
            if (s.procs[k].pid && !s.procs[k].alive) dead_blocks += s.procs[k].blocks;
        ASSERT_EQ(s.dead_blocks, dead_blocks);
        /* the survivor goes on */
        void *q = ga_shared_alloc(h, 1000);
        CHECK(q != NULL);
        ga_handle_t t = ga_shared_handle_alloc(h, 100, 0);
        CHECK(t != 0 && ga__shared_handle_lock(t) != NULL);
        ASSERT_EQ(ga__shared_handle_free(t), 0);
        CHECK(ga_shared_object(h, "survivor", 64, 0, NULL) != NULL);
        ga_shared_free(h, q);

        long rec = ga_shared_reclaim_dead(h);
        CHECK(rec >= (long)dead_blocks);
        ASSERT_EQ(ga_shared_stats(h, &s), 0);
        ASSERT_EQ(s.dead, 0);
        ASSERT_EQ(s.dead_blocks, 0);
        /* Nothing lost: once every handle and object is gone, only our blocks are in use. */
        for (int k = 0; k < 8; k++)
            my_handles[k] = 0;
        free_shared_things(h);
        ASSERT_EQ(ga_shared_stats(h, &s), 0);
        ASSERT_EQ(s.blocks_in_use, count_live(mine, 128));
        ASSERT_EQ(s.heap_blocks, 0);
        ASSERT_EQ(s.orphan_blocks, 0);
        ASSERT_EQ(s.handles_in_use, 0);
        ASSERT_EQ(s.objects, 0);
        ASSERT_EQ(ga_shared_check(h, 0), 0);
        if (test_failures_ != failures_before) {
            printf("failed after kill %d (seed %u)\n", it, seed);
            break;
        }
    }
    ga_shared_stats_t s;
    ASSERT_EQ(ga_shared_stats(h, &s), 0);
    printf("%d kills in %.1f s, %d left a dead slot to reclaim, %zu locks repaired\n", kills,
           now_s() - start, dead_seen, s.repairs);
    CHECK(kills >= 100);
    CHECK(dead_seen >= kills / 4);
    finish(h, mine, 128);
}

/* A peer running child(); waits (bounded) until it is attached unless !wait_ready. */
static pid_t spawn_peer(unsigned seed, bool wait_ready)
{
    int ready[2];
    if (pipe(ready)) return -1;
    pid_t pid = fork();
    if (pid == 0) {
        close(ready[0]);
        child(seed, ready[1]);
    }
    close(ready[1]);
    if (wait_ready) {
        struct pollfd pfd = {ready[0], POLLIN, 0};
        poll(&pfd, 1, 5000);
    }
    close(ready[0]);
    return pid;
}

TEST(sixteen_peers_killed)
{
    heap_name = shm_test_name("kill16-");
    ga_set_error_handler(quiet_handler, NULL);
    ga_heap_t *h = ga_shared_open(heap_name, 64 * MIB, GA_SHARED_CREATE | GA_SHARED_EXCL, NULL);
    CHECK(h != NULL);
    if (!h) return;
    const char *env = getenv("GA_STRESS_KILLS");
    int target = env && atoi(env) > 0 ? atoi(env) : PEERS_KILLS;
    unsigned seed = (unsigned)time(NULL) ^ (unsigned)getpid();
    printf("seed %u, %d peers, %d kills\n", seed, PEERS, target);
    rng_state = seed | 1;
    pid_t peers[PEERS];
    for (int i = 0; i < PEERS; i++)
        peers[i] = spawn_peer((unsigned)rnd(), true);
    static void *mine[128];
    static ga_handle_t my_handles[8];
    double start = now_s();
    int kills = 0, checks = 0;
    while (kills < target && now_s() - start < PEERS_BUDGET_S && test_failures_ == 0) {
        double until = now_s() + (double)(rnd() % 3000) * 1e-6;
        while (now_s() < until)
            one_op(h, mine, 128, my_handles, 8);
        int i = (int)(rnd() % PEERS), st = 0;
        kill(peers[i], SIGKILL);
        CHECK(waitpid(peers[i], &st, 0) == peers[i]);
        kills += WIFSIGNALED(st);
        CHECK(WIFSIGNALED(st) || (WIFEXITED(st) && WEXITSTATUS(st) == 0));
        if (WIFEXITED(st) && WEXITSTATUS(st)) printf("peer exited %d\n", WEXITSTATUS(st));
        /* dead peers' slots come back only through reclaim: 62 slots, far more kills */
        if (kills % 8 == 0) CHECK(ga_shared_reclaim_dead(h) >= 0);
        peers[i] = spawn_peer((unsigned)rnd(), rnd() % 4 != 0);
        CHECK(peers[i] > 0);
        if (kills % 16 == 0) {
            ASSERT_EQ(ga_shared_check(h, 0), 0);
            checks++;
        }
    }
    for (int i = 0; i < PEERS; i++) { /* the kills stop: every peer dies */
        kill(peers[i], SIGKILL);
        waitpid(peers[i], NULL, 0);
    }
    double kill_time = now_s() - start;
    ASSERT_EQ(ga_shared_check(h, 0), 0);
    CHECK(ga_shared_reclaim_dead(h) >= 0);
    ga_shared_stats_t s;
    ASSERT_EQ(ga_shared_stats(h, &s), 0);
    ASSERT_EQ(s.dead, 0);
    ASSERT_EQ(s.attached, 1);
    for (int k = 0; k < 8; k++)
        my_handles[k] = 0;
    free_shared_things(h);
    ASSERT_EQ(ga_shared_stats(h, &s), 0);
    ASSERT_EQ(s.blocks_in_use, count_live(mine, 128)); /* nothing lost */
    ASSERT_EQ(s.heap_blocks, 0);
    ASSERT_EQ(s.orphan_blocks, 0);
    ASSERT_EQ(ga_shared_check(h, 0), 0);
    printf("%d peers: %d kills in %.1f s (%d checks under fire), %zu locks taken over from dead "
           "holders; clean after the kills stopped\n",
           PEERS, kills, kill_time, checks, s.repairs);
    CHECK(kills >= target); /* else the budget ran out: something is stuck */
    finish(h, mine, 128);
}

TEST_MAIN(TEST_ENTRY(kill_children_at_random), TEST_ENTRY(sixteen_peers_killed))
