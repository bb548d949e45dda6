/* SPDX-License-Identifier: MIT */
/*
 * A heap file truncated under an attached process (by a hostile peer, or by hand) makes the
 * process's next access to a page past the new end raise SIGBUS. Every call listed here must
 * answer GA_ECORRUPT instead, and so must every later call on that heap. Each case runs in a
 * child (so a SIGBUS that gets through fails that case, not the whole test): build a heap with
 * cached blocks, handles and objects, truncate its file to `cut` bytes, make the call.
 */
#include "test.h"
#include "shared_test_util.h"
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#define MIB ((size_t)1 << 20)

enum { C_STATS, C_CHECK, C_ALLOC, C_FREE, C_LEAKS, C_HANDLE, C_CLOSE, C_COUNT };
static const char *const case_names[C_COUNT] = {"stats",       "check",        "alloc", "free",
                                                "leak_report", "handle_alloc", "close"};

static int quiet(int err, const char *msg, uintptr_t ptr, void *arg)
{
    (void)err, (void)msg, (void)ptr, (void)arg;
    return 1;
}

static int truncate_file(const char *name, off_t size)
{
    char path[200];
    snprintf(path, sizeof path, "/ga.%s", name);
    int fd = shm_open(path, O_RDWR, 0);
    int rc = fd >= 0 && ftruncate(fd, size) == 0 ? 0 : -1;
    if (fd >= 0) close(fd);
    return rc;
}

/* The child's part: 0 when the call and a later one gave GA_ECORRUPT. */
static int run_case(const char *name, int c, off_t cut)
{
    ga_set_error_handler(quiet, NULL);
    ga_heap_t *h = ga_shared_open(name, 8 * MIB, GA_SHARED_CREATE | GA_SHARED_EXCL, NULL);
    if (!h) return 10;
    void *keep[64];
    for (int i = 0; i < 64; i++)
        keep[i] = ga_shared_alloc(h, i % 2 ? 100 : 70000); /* small and large, committed pages */
    for (int i = 0; i < 8; i++)
        ga_shared_free(h, ga_shared_alloc(h, 100)); /* blocks in this thread's cache */
    ga_handle_t hd = ga_shared_handle_alloc(h, 1000, 0);
    if (!hd || !ga_shared_object(h, "obj", 5000, 0, NULL)) return 11;
    if (truncate_file(name, cut)) return 12;
    int rc = 0;
    ga_shared_stats_t s;
    switch (c) {
    case C_STATS:
        rc = ga_shared_stats(h, &s);
        break;
    case C_CHECK:
        rc = ga_shared_check(h, GA_CHECK_QUIET);
        break;
    case C_ALLOC:
        rc = ga_shared_alloc(h, 100) ? 0 : ga_last_error();
        break;
    case C_FREE:
        rc = ga_shared_free(h, keep[1]);
        break;
    case C_LEAKS:
        rc = (int)ga_shared_leak_report(h, -1, GA_LEAK_QUIET);
        break;
    case C_HANDLE:
        rc = ga_shared_handle_alloc(h, 100, 0) ? 0 : ga_last_error();
        break;
    case C_CLOSE:
        return ga_shared_close(h) == GA_ECORRUPT ? 0 : 13;
    }
    if (rc != GA_ECORRUPT) return 14;
    /* broken for good: the next calls answer at once */
    if (ga_shared_stats(h, &s) != GA_ECORRUPT || ga_shared_alloc(h, 10) != NULL ||
        ga_last_error() != GA_ECORRUPT || ga_shared_check(h, GA_CHECK_QUIET) != GA_ECORRUPT)
        return 15;
    ga_shared_close(h); /* detaches (answers GA_ECORRUPT) and unmaps */
    return 0;
}

static void cases_at(const char *tag, off_t cut)
{
    const char *name = shm_test_name(tag);
    for (int c = 0; c < C_COUNT; c++) {
        char full[96];
        snprintf(full, sizeof full, "%s%d", name, c);
        pid_t pid = fork();
        if (pid == 0) {
            alarm(30);
            _exit(run_case(full, c, cut));
        }
        int st = 0;
        CHECK(pid > 0 && waitpid(pid, &st, 0) == pid);
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
            fprintf(stderr, "truncated to %lld, %s: %s %d\n", (long long)cut, case_names[c],
                    WIFEXITED(st) ? "exit" : "signal",
                    WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
        CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
        ga_shared_unlink(full, GA_SHARED_FORCE);
    }
}

TEST(truncated_to_zero)
{
    cases_at("trunc0-", 0);
}

/* Only the data pages go: the header stays readable. */
TEST(truncated_data_pages)
{
    cases_at("truncd-", 64 * 1024);
}

/* The application's own access past the end is no library call: it still gets SIGBUS. */
TEST(application_access_still_faults)
{
    const char *name = shm_test_name("truncapp");
    pid_t pid = fork();
    if (pid == 0) {
        alarm(30);
        signal(SIGBUS, SIG_DFL);
        ga_heap_t *h = ga_shared_open(name, 8 * MIB, GA_SHARED_CREATE | GA_SHARED_EXCL, NULL);
        volatile char *p = h ? ga_shared_alloc(h, 70000) : NULL;
        if (!p || truncate_file(name, 0)) _exit(2);
        p[0] = 1;
        _exit(3);
    }
    int st = 0;
    CHECK(pid > 0 && waitpid(pid, &st, 0) == pid);
    CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGBUS);
    ga_shared_unlink(name, GA_SHARED_FORCE);
}

int main(int argc, char **argv)
{
    static const test_entry_t tests[] = {
        TEST_ENTRY(truncated_to_zero),
        TEST_ENTRY(truncated_data_pages),
        TEST_ENTRY(application_access_still_faults),
    };
    return test_main(tests, sizeof tests / sizeof tests[0], argc, argv);
}
