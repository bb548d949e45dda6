/* SPDX-License-Identifier: MIT */
/* Death tests of the debug heap: a child process switches debug mode on, commits one classic
 * heap bug with the default handler, and must die of SIGABRT with a report on stderr naming the
 * block (address, size), its allocation site (this file's function) and the bad call's site.
 * One test per class of bug: double free, late double free (after the quarantine), foreign
 * pointer, interior pointer, write past the end, write before the start, write after free,
 * realloc of a freed block; plus the at-exit leak report with exitcode= and the at-exit check
 * (overrun of a block never freed, write into a block still in the quarantine). */
#include "test.h"
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

static char out[1 << 16];
static char addr[32]; /* the block address the child printed before the bug */

/* Runs fn in a child with stderr captured into out; returns the wait status. */
static int run_child(void (*fn)(void), const char *options)
{
    int pfd[2];
    if (pipe(pfd) != 0) return -1;
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(pfd[1], 2);
        close(pfd[0]);
        if (ga_debug_enable(options) != 0) _exit(99);
        fn();
        _exit(0);
    }
    close(pfd[1]);
    size_t len = 0;
    ssize_t r;
    while (len < sizeof out - 1 && (r = read(pfd[0], out + len, sizeof out - 1 - len)) > 0)
        len += (size_t)r;
    out[len] = 0;
    close(pfd[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    addr[0] = 0;
    const char *a = strstr(out, "ADDR=");
    if (a) sscanf(a + 5, "%31s", addr);
    return status;
}

static void tell(const void *p)
{
    fprintf(stderr, "ADDR=%p\n", p);
}

/* The text between "allocated at:" and the next section must name the allocating function. */
static bool site_named(const char *section, const char *fn)
{
    const char *s = strstr(out, section);
    if (s == NULL) return false;
    const char *end = strstr(s + 1, "  bad call");
    const char *hit = strstr(s, fn);
    return hit != NULL && (end == NULL || hit < end || strcmp(section, "  bad call") == 0);
}

#define EXPECT_ABORT(status)                                                                       \
    do {                                                                                           \
        CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT);                                 \
        if (!(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT))                                 \
            fprintf(stderr, "child status %#x, stderr:\n%s\n", status, out);                       \
    } while (0)

/* Checks the usual report: what, block address and size, allocation and bad-call sites. */
static void expect_report(const char *what, const char *size, const char *alloc_fn,
                          const char *bad_fn)
{
    CHECK(strstr(out, what) != NULL);
    CHECK(addr[0] != 0);
    char block[64];
    snprintf(block, sizeof block, "block %s of %s bytes", addr, size);
    CHECK(strstr(out, block) != NULL);
    CHECK(strstr(out, "allocation #") != NULL);
    if (alloc_fn) CHECK(site_named("  allocated at:", alloc_fn));
    CHECK(site_named("  bad call", bad_fn));
    CHECK(strstr(out, "death_debug.c:") != NULL);
    if (test_failures_) fprintf(stderr, "---- child stderr:\n%s\n----\n", out);
}

/* ---- double free ---- */
static __attribute__((noinline)) char *make_block_24(void)
{
    return ga_malloc(24);
}
static __attribute__((noinline)) void free_it_again(char *p)
{
    ga_free(p);
}
static void double_free_child(void)
{
    char *p = make_block_24();
    tell(p);
    ga_free(p);
    free_it_again(p);
}
TEST(double_free)
{
    int st = run_child(double_free_child, "1");
    EXPECT_ABORT(st);
    expect_report("double free", "24", "make_block_24", "free_it_again");
    CHECK(strstr(out, "  freed at:") != NULL);
    CHECK(strstr(out, "error GA_EDOUBLEFREE") != NULL);
}

/* ---- double free after the block left the quarantine ---- */
static void late_double_free_child(void)
{
    char *p = make_block_24();
    tell(p);
    ga_free(p);
    for (int i = 0; i < 100; i++) /* push it out of a 1 KiB quarantine */
        ga_free(ga_malloc(100));
    free_it_again(p);
}
TEST(late_double_free)
{
    int st = run_child(late_double_free_child, "quarantine=1k");
    EXPECT_ABORT(st);
    CHECK(strstr(out, "double free (block already left the quarantine)") != NULL);
    CHECK(site_named("  bad call", "free_it_again"));
    CHECK(strstr(out, addr) != NULL);
}

/* ---- foreign pointer ---- */
static __attribute__((noinline)) void free_foreign(void)
{
    static char not_ours[64];
    tell(not_ours + 16);
    ga_free(not_ours + 16);
}
TEST(foreign_pointer)
{
    int st = run_child(free_foreign, "1");
    EXPECT_ABORT(st);
    CHECK(strstr(out, "pointer was not allocated by globalalloc") != NULL);
    CHECK(strstr(out, addr) != NULL);
    CHECK(site_named("  bad call", "free_foreign"));
    CHECK(strstr(out, "error GA_ENOTOWNED") != NULL);
}

/* ---- interior pointer ---- */
static __attribute__((noinline)) char *make_block_200(void)
{
    return ga_malloc(200);
}
static __attribute__((noinline)) void free_middle(char *p)
{
    ga_free(p + 48);
}
static void interior_child(void)
{
    char *p = make_block_200();
    tell(p);
    free_middle(p);
}
TEST(interior_pointer)
{
    int st = run_child(interior_child, "1");
    EXPECT_ABORT(st);
    expect_report("pointer +48 bytes into a block", "200", "make_block_200", "free_middle");
}

/* ---- overrun / underrun ---- */
static __attribute__((noinline)) char *make_block_13(void)
{
    return ga_malloc(13);
}
static void overrun_child(void)
{
    char *p = make_block_13();
    tell(p);
    p[13] = 'x'; /* one byte past the end */
    free_it_again(p);
}
static void underrun_child(void)
{
    char *p = make_block_13();
    tell(p);
    p[-1] = 'x';
    free_it_again(p);
}
TEST(write_past_the_end)
{
    int st = run_child(overrun_child, "1");
    EXPECT_ABORT(st);
    expect_report("write past the end of a block (byte 13, size 13)", "13", "make_block_13",
                  "free_it_again");
    CHECK(strstr(out, "error GA_EOVERRUN") != NULL);
}
TEST(write_before_the_start)
{
    int st = run_child(underrun_child, "1");
    EXPECT_ABORT(st);
    expect_report("write before the start of a block (byte -1)", "13", "make_block_13",
                  "free_it_again");
}

/* ---- realloc checks guards too ---- */
static __attribute__((noinline)) void grow(char *p)
{
    ga_realloc(p, 1000);
}
static void realloc_overrun_child(void)
{
    char *p = make_block_13();
    tell(p);
    p[20] = 'x';
    grow(p);
}
TEST(realloc_finds_overrun)
{
    int st = run_child(realloc_overrun_child, "1");
    EXPECT_ABORT(st);
    expect_report("write past the end of a block (byte 20, size 13) found at realloc", "13",
                  "make_block_13", "grow");
}

/* ---- check=N finds an overrun before the block is freed ---- */
static __attribute__((noinline)) void next_call(void)
{
    ga_free(ga_malloc(8));
}
static void periodic_check_child(void)
{
    char *p = make_block_13();
    tell(p);
    p[15] = 'x';
    next_call(); /* check=1: every call checks the whole heap */
    fprintf(stderr, "NOT DETECTED\n");
}
TEST(periodic_check_finds_overrun)
{
    int st = run_child(periodic_check_child, "check=1");
    EXPECT_ABORT(st);
    CHECK(strstr(out, "NOT DETECTED") == NULL);
    char block[64];
    snprintf(block, sizeof block, "block %s of 13 bytes", addr);
    CHECK(strstr(out, "write past the end of a block (byte 15, size 13) found at ga_heap_check") &&
          strstr(out, block) && site_named("  allocated at:", "make_block_13"));
    if (test_failures_) fprintf(stderr, "---- child stderr:\n%s\n----\n", out);
}

/* ---- check=N while other threads allocate: no false alarm, and a real overrun found ---- */
enum { CT_THREADS = 3, CT_SLOTS = 256, CT_STEPS = 30000 };
static _Atomic(unsigned char *) ct_slot[CT_SLOTS];
static _Atomic int ct_bad; /* a block whose contents changed under its owner */

/* Blocks travel between threads through ct_slot (most frees are cross-thread); each is
 * stamped with its size and checked before it is freed. Some threads live short lives (their
 * heaps are abandoned while checks run), and realloc, aligned blocks and collect take part. */
static void *ct_worker(void *arg)
{
    unsigned s = (unsigned)(uintptr_t)arg * 2654435761u + 1;
    int steps = (uintptr_t)arg >= 100 ? CT_STEPS / 20 : CT_STEPS;
    for (int i = 0; i < steps; i++) {
        s = s * 1103515245u + 12345u;
        size_t n = 1 + (s >> 8) % 600;
        unsigned char *p = (s >> 28) == 3 ? ga_aligned_alloc(64, n) : ga_malloc(n);
        if (p == NULL) abort();
        memset(p, (int)(n & 0xff), n);
        if ((s >> 27) == 7) {
            unsigned char *q = ga_realloc(p, n + 5000); /* over 4 KiB: may stay in place */
            if (q == NULL) abort();
            p = ga_realloc(q, n);
            if (p == NULL) abort();
        }
        p = atomic_exchange(&ct_slot[(s >> 12) % CT_SLOTS], p);
        if (p != NULL) {
            size_t m = ga_usable_size(p);
            for (size_t j = 0; j < m; j++)
                if (p[j] != (unsigned char)(m & 0xff)) atomic_store(&ct_bad, 1);
            ga_free(p);
        }
        if (i % 5000 == 0) ga_heap_collect(NULL, 0);
    }
    return NULL;
}

static void run_ct_threads(void)
{
    pthread_t t[CT_THREADS];
    for (uintptr_t i = 0; i < CT_THREADS; i++)
        pthread_create(&t[i], NULL, ct_worker, (void *)(i + 1));
    /* statistics may be asked for meanwhile (the leak report may not: see its contract) */
    for (int i = 0; i < 20; i++) {
        ga_stats_t st;
        if (ga_heap_stats(NULL, &st) != 0) abort();
    }
    for (uintptr_t i = 0; i < 40; i++) { /* short-lived threads */
        pthread_t u;
        pthread_create(&u, NULL, ct_worker, (void *)(100 + i));
        pthread_join(u, NULL);
    }
    for (int i = 0; i < CT_THREADS; i++)
        pthread_join(t[i], NULL);
}

static void threads_check_child(void)
{
    run_ct_threads();
    for (int i = 0; i < CT_SLOTS; i++)
        ga_free(atomic_exchange(&ct_slot[i], NULL));
    /* alone again: a leak report (its symbolization allocates) with check=N on */
    int null = open("/dev/null", O_WRONLY);
    if (ga_leak_report(null, GA_LEAK_ALL) < 0) abort();
    close(null);
    fprintf(stderr, atomic_load(&ct_bad) ? "CONTENTS CHANGED\n" : "CLEAN\n");
}
TEST(periodic_check_while_threads_allocate)
{
    /* check=N walks every thread's pages and blocks: before it held the other threads off, it
     * read them mid-update and aborted a correct program ("free list is broken"). */
    int st = run_child(threads_check_child, "check=64,leaks=0");
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    CHECK(strstr(out, "CLEAN") != NULL && strstr(out, "error") == NULL);
    if (test_failures_) fprintf(stderr, "child status %#x, stderr:\n%s\n", st, out);
}

static void threads_overrun_child(void)
{
    char *p = make_block_13();
    tell(p);
    p[14] = 'x';
    run_ct_threads(); /* some thread's periodic check finds it */
    fprintf(stderr, "NOT DETECTED\n");
}
TEST(periodic_check_while_threads_allocate_finds_overrun)
{
    int st = run_child(threads_overrun_child, "check=64,leaks=0");
    EXPECT_ABORT(st);
    CHECK(strstr(out, "NOT DETECTED") == NULL);
    CHECK(strstr(out, "write past the end of a block (byte 14, size 13) found at ga_heap_check") &&
          site_named("  allocated at:", "make_block_13"));
    if (test_failures_) fprintf(stderr, "---- child stderr:\n%s\n----\n", out);
}

/* ---- use after free ---- */
static __attribute__((noinline)) void write_after_free(char *p)
{
    p[5] = 'x';
}
static void uaf_child(void)
{
    char *p = make_block_24();
    tell(p);
    ga_free(p);
    write_after_free(p);
    for (int i = 0; i < 200; i++) /* the block leaves a 1 KiB quarantine: checked */
        ga_free(ga_malloc(64));
}
TEST(use_after_free)
{
    int st = run_child(uaf_child, "quarantine=1k");
    EXPECT_ABORT(st);
    expect_report("use after free: freed block written at byte 5", "24", "make_block_24",
                  "uaf_child");
    CHECK(strstr(out, "  freed at:") != NULL && site_named("  freed at:", "uaf_child"));
}

static __attribute__((noinline)) void realloc_freed(char *p)
{
    ga_realloc(p, 50);
}
static void realloc_freed_child(void)
{
    char *p = make_block_24();
    tell(p);
    ga_free(p);
    realloc_freed(p);
}
TEST(realloc_of_freed_block)
{
    int st = run_child(realloc_freed_child, "1");
    EXPECT_ABORT(st);
    expect_report("realloc: block was freed", "24", "make_block_24", "realloc_freed");
}

/* ---- the at-exit report and exitcode ---- */
static uintptr_t lost;
static __attribute__((noinline)) void leak_at_exit_site(void)
{
    for (int i = 0; i < 2; i++)
        lost ^= ~(uintptr_t)ga_malloc(300);
}
static void leak_child(void)
{
    leak_at_exit_site();
    exit(0); /* the report runs at exit */
}
static void clean_child(void)
{
    void *p = ga_malloc(300);
    ga_free(p);
    exit(0);
}
TEST(exit_report_and_status)
{
    int st = run_child(leak_child, "exitcode=23");
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 23);
    CHECK(strstr(out, "LEAKS") && strstr(out, ": 600 bytes in 2 blocks from"));
    CHECK(strstr(out, "leak_at_exit_site") != NULL);
    if (test_failures_) fprintf(stderr, "---- child stderr:\n%s\n----\n", out);
    st = run_child(clean_child, "exitcode=23");
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    CHECK(strstr(out, "LEAKS") == NULL);
    st = run_child(leak_child, "leaks=0,exitcode=23");
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    CHECK(out[0] == 0);
    if (test_failures_) fprintf(stderr, "---- child stderr:\n%s\n----\n", out);
}

/* ---- found only at exit: an overrun of a block never freed, a write into a block still in
 * the quarantine ---- */
static char *kept_block;
static __attribute__((noinline)) void overrun_kept(char *p)
{
    p[40] = 'x'; /* one past the end of 40 bytes */
}
static void overrun_at_exit_child(void)
{
    kept_block = ga_malloc(40); /* still referenced at exit: not a leak */
    tell(kept_block);
    overrun_kept(kept_block);
    exit(0);
}
static void write_after_free_at_exit_child(void)
{
    char *p = make_block_24();
    tell(p);
    ga_free(p);
    write_after_free(p); /* the quarantine never releases it: only the exit check finds it */
    exit(0);
}
TEST(exit_check_finds_what_nothing_else_would)
{
    int st = run_child(overrun_at_exit_child, "exitcode=23");
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 23);
    CHECK(strstr(out, "write past the end of a block (byte 40, size 40) found at exit") != NULL);
    char block[64];
    snprintf(block, sizeof block, "block %s of 40 bytes", addr);
    CHECK(addr[0] != 0 && strstr(out, block) != NULL);
    CHECK(site_named("  allocated at:", "overrun_at_exit_child"));
    CHECK(strstr(out, "LEAKS") == NULL);
    if (test_failures_) fprintf(stderr, "---- child stderr:\n%s\n----\n", out);
    st = run_child(write_after_free_at_exit_child, "1");
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0); /* reported; the status is the program's */
    expect_report("use after free: freed block written at byte 5, found at exit", "24",
                  "make_block_24", "ga__debug_at_exit");
    CHECK(site_named("  freed at:", "write_after_free_at_exit_child"));
}

TEST_MAIN(TEST_ENTRY(double_free), TEST_ENTRY(late_double_free), TEST_ENTRY(foreign_pointer),
          TEST_ENTRY(interior_pointer), TEST_ENTRY(write_past_the_end),
          TEST_ENTRY(write_before_the_start), TEST_ENTRY(realloc_finds_overrun),
          TEST_ENTRY(periodic_check_finds_overrun),
          TEST_ENTRY(periodic_check_while_threads_allocate),
          TEST_ENTRY(periodic_check_while_threads_allocate_finds_overrun), TEST_ENTRY(use_after_free),
          TEST_ENTRY(realloc_of_freed_block), TEST_ENTRY(exit_report_and_status),
          TEST_ENTRY(exit_check_finds_what_nothing_else_would))
