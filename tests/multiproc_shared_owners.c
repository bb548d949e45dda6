/* SPDX-License-Identifier: MIT */
/*
 * ga_shared_leak_report: blocks grouped by owner. A child attaches, allocates N blocks of known
 * sizes and exits without freeing (once by _exit, once by SIGKILL); another child stays attached
 * holding M blocks (synchronised with pipes). The report must give the dead pid exactly the N
 * blocks (offsets, sizes, bytes) and the live pid exactly the M, return N, and list the heap's
 * own blocks (a named object by name, a handle); after ga_shared_reclaim_dead the exited
 * section is empty. A damaged page descriptor or state byte gives GA_ECORRUPT, not a crash.
 */
#include "test.h"
#include "shared_test_util.h"
#include "shared/shared_internal.h"
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#define N_DEAD 5
#define M_LIVE 3

static const size_t dead_sizes[N_DEAD] = {16, 100, 1000, 16384, 200000};
static const size_t live_sizes[M_LIVE] = {48, 3000, 70000};

static const char *heap_name;

typedef struct {
    uint64_t off, size;
} blk_t;

static bool read_all(int fd, void *p, size_t n)
{
    char *c = p;
    while (n) {
        ssize_t r = read(fd, c, n);
        if (r <= 0) return false;
        c += r;
        n -= (size_t)r;
    }
    return true;
}

/* A child: attaches, allocates the sizes, sends their offsets and usable sizes. Then how:
 * 0 = _exit, 1 = SIGKILL itself, 2 = wait until the parent closes `hold`, detach, exit. */
static pid_t spawn(const size_t *sizes, int n, int how, blk_t *out, int *hold_fd)
{
    int res[2], hold[2];
    if (pipe(res) || pipe(hold)) return -1;
    pid_t pid = fork();
    if (pid == 0) {
        close(res[0]);
        close(hold[1]);
        ga_heap_t *h = ga_shared_open(heap_name, 0, 0, NULL);
        if (!h) _exit(3);
        blk_t b[8];
        for (int i = 0; i < n; i++) {
            void *p = ga_shared_alloc(h, sizes[i]);
            if (!p) _exit(4);
            b[i].off = ga_shared_offset(h, p);
            b[i].size = ga_shared_usable_size(h, p);
        }
        if (write(res[1], b, sizeof b[0] * (size_t)n) != (ssize_t)(sizeof b[0] * (size_t)n))
            _exit(5);
        if (how == 0) _exit(0);
        if (how == 1) raise(SIGKILL);
        char c;
        while (read(hold[0], &c, 1) > 0)
            ;
        ga_shared_close(h);
        _exit(0);
    }
    close(res[1]);
    close(hold[0]);
    bool ok = pid > 0 && read_all(res[0], out, sizeof out[0] * (size_t)n);
    close(res[0]);
    if (hold_fd)
        *hold_fd = hold[1];
    else
        close(hold[1]);
    return ok ? pid : -1;
}

/* The report (flags) as a string in buf; returns the function's result. */
static long report(ga_heap_t *h, unsigned flags, char *buf, size_t cap)
{
    FILE *f = tmpfile();
    if (!f) return -1000;
    long r = ga_shared_leak_report(h, fileno(f), flags);
    rewind(f);
    size_t n = fread(buf, 1, cap - 1, f);
    buf[n] = 0;
    fclose(f);
    return r;
}

static uint64_t sum(const blk_t *b, int n)
{
    uint64_t s = 0;
    for (int i = 0; i < n; i++)
        s += b[i].size;
    return s;
}

/* Checks that text has "pid P: n blocks, bytes bytes" after `after` and before `before`, and
 * each block's "offset O size S" line right after it. */
static void check_section(const char *text, const char *after, const char *before, pid_t pid,
                          const blk_t *b, int n)
{
    char line[128];
    const char *sec = strstr(text, after), *end = before ? strstr(text, before) : NULL;
    CHECK(sec != NULL);
    if (!sec) return;
    snprintf(line, sizeof line, "  pid %d: %d blocks, %llu bytes\n", (int)pid, n,
             (unsigned long long)sum(b, n));
    const char *at = strstr(sec, line);
    CHECK(at != NULL);
    if (!at) {
        fprintf(stderr, "missing '%s' in:\n%s", line, text);
        return;
    }
    if (end) CHECK(at < end);
    for (int i = 0; i < n; i++) {
        snprintf(line, sizeof line, "      offset %llu size %llu\n", (unsigned long long)b[i].off,
                 (unsigned long long)b[i].size);
        const char *l = strstr(at, line);
        CHECK(l != NULL && (!end || l < end));
    }
}

static void run(int how)
{
    static char text[65536];
    heap_name = shm_test_name(how == 0 ? "owners_exit" : how == 1 ? "owners_kill" : "owners_hold");
    ga_heap_t *h = ga_shared_open(heap_name, 8u << 20, GA_SHARED_CREATE | GA_SHARED_EXCL, NULL);
    CHECK(h != NULL);
    if (!h) return;
    int created = 0;
    char *obj = ga_shared_object(h, "owners-object", 40, 0, &created);
    CHECK(obj != NULL && created);
    ga_handle_t hd = ga_shared_handle_alloc(h, 500, 0);
    CHECK(hd != 0);
    void *mine = ga_shared_alloc(h, 64); /* the parent's own: a live process with one block */
    CHECK(mine != NULL);

    blk_t dead[N_DEAD], live[M_LIVE];
    int hold = -1;
    pid_t lp = spawn(live_sizes, M_LIVE, 2, live, &hold);
    pid_t dp = spawn(dead_sizes, N_DEAD, how, dead, NULL);
    CHECK(lp > 0 && dp > 0);
    int st = 0;
    if (dp > 0) waitpid(dp, &st, 0);
    CHECK(how == 0 ? WIFEXITED(st) && WEXITSTATUS(st) == 0 : WIFSIGNALED(st));
    for (int i = 0; i < N_DEAD; i++)
        CHECK(dead[i].size >= dead_sizes[i]);

    ASSERT_EQ(ga_shared_leak_report(h, -1, GA_LEAK_QUIET), N_DEAD);
    ASSERT_EQ(report(h, GA_LEAK_ALL, text, sizeof text), N_DEAD);
    check_section(text, "live processes:", "exited processes", lp, live, M_LIVE);
    check_section(text, "exited processes", "owned by the heap", dp, dead, N_DEAD);
    char line[160];
    snprintf(line, sizeof line, "  total: %d blocks, %llu bytes from 1 processes\n", N_DEAD,
             (unsigned long long)sum(dead, N_DEAD));
    CHECK(strstr(text, line) != NULL);
    CHECK(strstr(text, "owned by the heap: 2 blocks") != NULL);
    CHECK(strstr(text, "(1 handles, 1 named objects)") != NULL);
    CHECK(strstr(text, "  object owners-object: 40 bytes at offset") != NULL);
    CHECK(strstr(text, "left by detached processes: 0 blocks") != NULL);
    snprintf(line, sizeof line, "  pid %d: 1 blocks, 64 bytes\n", (int)getpid());
    CHECK(strstr(text, line) != NULL);

    /* Without GA_LEAK_ALL live processes' blocks are not listed; exited ones' still are. */
    ASSERT_EQ(report(h, 0, text, sizeof text), N_DEAD);
    snprintf(line, sizeof line, "offset %llu size", (unsigned long long)live[0].off);
    CHECK(strstr(text, line) == NULL);
    snprintf(line, sizeof line, "offset %llu size", (unsigned long long)dead[0].off);
    CHECK(strstr(text, line) != NULL);

    ASSERT_EQ(report(h, GA_LEAK_JSON, text, sizeof text), N_DEAD);
    snprintf(line, sizeof line, "\"exited\":[{\"pid\":%d,\"blocks\":%d,\"bytes\":%llu,", (int)dp,
             N_DEAD, (unsigned long long)sum(dead, N_DEAD));
    CHECK(strstr(text, line) != NULL);
    snprintf(line, sizeof line, "{\"pid\":%d,\"blocks\":%d,\"bytes\":%llu,", (int)lp, M_LIVE,
             (unsigned long long)sum(live, M_LIVE));
    CHECK(strstr(text, line) != NULL);
    CHECK(strstr(text, "\"objects\":[{\"name\":\"owners-object\",\"size\":40,") != NULL);

    CHECK(ga_shared_reclaim_dead(h) >= N_DEAD); /* and the blocks its caches held */
    ASSERT_EQ(report(h, GA_LEAK_ALL, text, sizeof text), 0);
    CHECK(
        strstr(text, "exited processes (blocks left until ga_shared_reclaim_dead):\n  (none)\n") !=
        NULL);
    check_section(text, "live processes:", "exited processes", lp, live, M_LIVE);
    snprintf(line, sizeof line, "pid %d:", (int)dp);
    CHECK(strstr(text, line) == NULL);

    /* The live child detaches: its blocks become the heap's (detached processes' blocks). */
    if (hold >= 0) close(hold);
    if (lp > 0) waitpid(lp, &st, 0);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    ASSERT_EQ(report(h, 0, text, sizeof text), 0);
    snprintf(line, sizeof line, "pid %d:", (int)lp);
    CHECK(strstr(text, line) == NULL);
    snprintf(line, sizeof line, "left by detached processes: %d blocks, %llu bytes\n", M_LIVE,
             (unsigned long long)sum(live, M_LIVE));
    CHECK(strstr(text, line) != NULL);
    ASSERT_EQ(ga_shared_check(h, 0), 0);
    ga_shared_free(h, mine);
    ga_shared_close(h);
    ASSERT_EQ(ga_shared_unlink(heap_name, 0), 0);
}

TEST(dead_by_exit)
{
    run(0);
}

TEST(dead_by_sigkill)
{
    run(1);
}

/* Damaged metadata: GA_ECORRUPT, and nothing is read outside the mapping. */
TEST(corrupt_segment)
{
    heap_name = shm_test_name("owners_bad");
    ga_heap_t *h = ga_shared_open(heap_name, 4u << 20, GA_SHARED_CREATE | GA_SHARED_EXCL, NULL);
    CHECK(h != NULL);
    if (!h) return;
    void *p = ga_shared_alloc(h, 32), *big = ga_shared_alloc(h, 100000);
    CHECK(p != NULL && big != NULL);
    shm_att_t *a = (shm_att_t *)h;
    uint64_t pg = (ga_shared_offset(h, p) - a->data_off) >> SHM_PAGE_SHIFT;
    uint64_t bg = (ga_shared_offset(h, big) - a->data_off) >> SHM_PAGE_SHIFT;
    ASSERT_EQ(ga_shared_leak_report(h, -1, GA_LEAK_QUIET), 0);

    uint64_t d = atomic_load(&a->pages[pg].desc);
    atomic_store(&a->pages[pg].desc, (d & ~(uint64_t)0xFF) | 9); /* no such page kind */
    ASSERT_EQ(ga_shared_leak_report(h, -1, GA_LEAK_QUIET), GA_ECORRUPT);
    atomic_store(&a->pages[pg].desc, (d & ~(uint64_t)0xFF0000) | ((uint64_t)200 << 16));
    ASSERT_EQ(ga_shared_leak_report(h, -1, GA_LEAK_QUIET), GA_ECORRUPT);
    atomic_store(&a->pages[pg].desc, d);

    _Atomic uint8_t *stb = (_Atomic uint8_t *)(a->base + a->data_off + pg * SHM_PAGE);
    uint8_t b0 = atomic_load(&stb[0]);
    atomic_store(&stb[0], 0xC7); /* no such state kind */
    ASSERT_EQ(ga_shared_leak_report(h, -1, GA_LEAK_QUIET), GA_ECORRUPT);
    atomic_store(&stb[0], b0);

    uint64_t bd = atomic_load(&a->pages[bg].desc);
    atomic_store(&a->pages[bg].desc, PD_MAKE(PG_LARGE, PD_OWNER(bd), 0, 0xFFFFFFF0u));
    ASSERT_EQ(ga_shared_leak_report(h, -1, GA_LEAK_QUIET), GA_ECORRUPT);
    ASSERT_EQ(ga_shared_leak_report(h, STDERR_FILENO, 0), GA_ECORRUPT);
    atomic_store(&a->pages[bg].desc, bd);

    ASSERT_EQ(ga_shared_leak_report(h, -1, GA_LEAK_QUIET), 0);
    ASSERT_EQ(ga_shared_leak_report(NULL, -1, 0), GA_EINVAL);
    ga_shared_free(h, p);
    ga_shared_free(h, big);
    ASSERT_EQ(ga_shared_check(h, 0), 0);
    ga_shared_close(h);
    ASSERT_EQ(ga_shared_unlink(heap_name, 0), 0);
}

TEST_MAIN(TEST_ENTRY(dead_by_exit), TEST_ENTRY(dead_by_sigkill), TEST_ENTRY(corrupt_segment))
