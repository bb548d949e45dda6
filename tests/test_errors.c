/* SPDX-License-Identifier: MIT */
/*
 * Error codes and the misuse-report path: ga_strerror / ga_err_name for every GA_E* and for
 * unknown codes, the per-thread ga_last_error, the error handler (it receives reports, and its
 * return value decides between "continue quietly" and the default print/abort), and the
 * version functions.
 */
#include "test.h"
#include <globalalloc/win32.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

TEST(test_every_code_has_name_and_message)
{
    struct {
        int value;
        const char *name, *msg;
    } all[] = {
#define X(name, value, msg) {value, "GA_" #name, msg},
        GA_ERRNO_MAP(X)
#undef X
    };
    size_t n = sizeof all / sizeof all[0];
    ASSERT_EQ(n, 21);
    for (size_t i = 0; i < n; i++) {
        const char *name = ga_err_name(all[i].value);
        const char *msg = ga_strerror(all[i].value);
        CHECK(name != NULL && strcmp(name, all[i].name) == 0);
        CHECK(msg != NULL && strcmp(msg, all[i].msg) == 0);
        CHECK(msg[0] != '\0');
        CHECK(strcmp(msg, "unknown error") != 0);
        CHECK(strcmp(name, "GA_EUNKNOWN") != 0);
        ASSERT_EQ(all[i].value, -(int)i); /* dense, 0 down to -20 */
        for (size_t j = 0; j < i; j++) {
            CHECK(strcmp(ga_err_name(all[j].value), name) != 0);
            CHECK(strcmp(ga_strerror(all[j].value), msg) != 0);
        }
    }
    /* spot checks against the enum */
    CHECK(strcmp(ga_err_name(GA_OK), "GA_OK") == 0);
    CHECK(strcmp(ga_err_name(GA_EHANDLE), "GA_EHANDLE") == 0);
    CHECK(strcmp(ga_err_name(GA_EOVERRUN), "GA_EOVERRUN") == 0);
    CHECK(strcmp(ga_err_name(GA_ETIMEDOUT), "GA_ETIMEDOUT") == 0);
    CHECK(strcmp(ga_err_name(GA_EOWNERDEAD), "GA_EOWNERDEAD") == 0);
    CHECK(strstr(ga_strerror(GA_EOWNERDEAD), "died") != NULL);
    CHECK(strcmp(ga_err_name(GA_ERANGE), "GA_ERANGE") == 0);
    CHECK(strcmp(ga_strerror(GA_ENOMEM), "out of memory") == 0);
    CHECK(strcmp(ga_strerror(GA_EDOUBLEFREE), "block was already freed") == 0);
}

TEST(test_unknown_codes)
{
    int unknown[] = {1, 2, 100, -21, -100, INT_MIN, INT_MAX};
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
        CHECK(strcmp(ga_strerror(unknown[i]), "unknown error") == 0);
        CHECK(strcmp(ga_err_name(unknown[i]), "GA_EUNKNOWN") == 0);
    }
}

static void *last_error_thread(void *arg)
{
    (void)arg;
    int initial = ga_last_error();
    ga_set_last_error(GA_EFULL);
    ga_handle_lock(0); /* sets GA_EHANDLE in this thread */
    return (void *)(uintptr_t)(initial == GA_OK && ga_last_error() == GA_EHANDLE);
}

TEST(test_last_error)
{
    ga_set_last_error(GA_EPERM);
    ASSERT_EQ(ga_last_error(), GA_EPERM);
    pthread_t t;
    void *ok;
    pthread_create(&t, NULL, last_error_thread, NULL);
    pthread_join(t, &ok);
    ASSERT_EQ((uintptr_t)ok, 1);
    ASSERT_EQ(ga_last_error(), GA_EPERM); /* other threads do not touch ours */
    ASSERT_EQ(ga_handle_alloc(NULL, SIZE_MAX, 0), 0);
    ASSERT_EQ(ga_last_error(), GA_EOVERFLOW);
    /* the Win32 last error is a different variable */
    SetLastError(42);
    ga_set_last_error(GA_OK);
    ASSERT_EQ(GetLastError(), 42);
    ASSERT_EQ(ga_last_error(), GA_OK);
}

static struct {
    int calls, err;
    uintptr_t ptr;
    char msg[200];
    void *arg;
    int answer;
} rep;

static int handler(int err, const char *msg, uintptr_t ptr, void *arg)
{
    rep.calls++;
    rep.err = err;
    rep.ptr = ptr;
    rep.arg = arg;
    snprintf(rep.msg, sizeof rep.msg, "%s", msg);
    return rep.answer;
}

/* Runs fn with stderr redirected to a pipe; returns the number of bytes it wrote there. */
static size_t stderr_bytes_during(void (*fn)(void))
{
    int fds[2];
    if (pipe(fds) != 0) return (size_t)-1;
    fcntl(fds[0], F_SETFL, O_NONBLOCK);
    int saved = dup(2);
    dup2(fds[1], 2);
    fn();
    dup2(saved, 2);
    close(saved);
    close(fds[1]);
    char buf[4096];
    size_t total = 0;
    ssize_t r;
    while ((r = read(fds[0], buf, sizeof buf)) > 0)
        total += (size_t)r;
    close(fds[0]);
    return total;
}

static void *g_freed;
static void double_free_fixed(void)
{
    GlobalFree(g_freed);
}

TEST(test_handler_receives_double_free)
{
    int cookie;
    rep.calls = 0;
    rep.answer = 1;
    ga_set_error_handler(handler, &cookie);
    g_freed = GlobalAlloc(GMEM_FIXED, 32);
    ASSERT_EQ(GlobalFree(g_freed), NULL);
    ASSERT_EQ(stderr_bytes_during(double_free_fixed), 0); /* handler said "continue": quiet */
    ASSERT_EQ(rep.calls, 1);
    ASSERT_EQ(rep.err, GA_EDOUBLEFREE);
    ASSERT_EQ(rep.ptr, (uintptr_t)g_freed);
    ASSERT_EQ(rep.arg, &cookie);
    CHECK(strstr(rep.msg, "twice") != NULL);
    /* handler declines: the library prints (this report is not fatal) */
    rep.answer = 0;
    CHECK(stderr_bytes_during(double_free_fixed) > 0);
    ASSERT_EQ(rep.calls, 2);
    /* no handler: printed too */
    ga_set_error_handler(NULL, NULL);
    CHECK(stderr_bytes_during(double_free_fixed) > 0);
    ASSERT_EQ(rep.calls, 2);
}

static void check_quiet_then_loud(void)
{
    ga_heap_check(NULL, 0);
}

TEST(test_handler_receives_corruption)
{
    HGLOBAL h = GlobalAlloc(GMEM_MOVEABLE, 64);
    uint64_t *tag = (uint64_t *)GlobalLock(h) - 1;
    GlobalUnlock(h);
    rep.calls = 0;
    rep.answer = 1;
    ga_set_error_handler(handler, NULL);
    *tag ^= 1;
    ASSERT_EQ(ga_heap_check(NULL, GA_CHECK_QUIET), GA_ECORRUPT);
    ASSERT_EQ(rep.calls, 0);
    ASSERT_EQ(stderr_bytes_during(check_quiet_then_loud), 0);
    ASSERT_EQ(rep.calls, 1);
    ASSERT_EQ(rep.err, GA_ECORRUPT);
    *tag ^= 1;
    ASSERT_EQ(ga_heap_check(NULL, 0), 0);
    ASSERT_EQ(rep.calls, 1);
    ga_set_error_handler(NULL, NULL);
    GlobalFree(h);
}

/* A fatal report (ga_free of a foreign pointer) in a child: the handler's nonzero answer lets
 * it continue; zero lets the default abort happen. */
static int fatal_child(int answer)
{
    pid_t pid = fork();
    if (pid == 0) {
        int devnull = open("/dev/null", O_WRONLY);
        dup2(devnull, 2);
        rep.answer = answer;
        rep.calls = 0;
        ga_set_error_handler(handler, NULL);
        static char not_ours[64] __attribute__((aligned(16)));
        ga_free(not_ours);
        _exit(rep.calls == 1 && rep.err != GA_OK ? 7 : 8);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    return status;
}

TEST(test_handler_answer_honoured_for_fatal)
{
    int st = fatal_child(1);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 7);
    st = fatal_child(0);
    CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT);
}

TEST(test_version)
{
    char expect[32];
    snprintf(expect, sizeof expect, "%d.%d.%d", GA_VERSION_MAJOR, GA_VERSION_MINOR,
             GA_VERSION_PATCH);
    CHECK(strcmp(ga_version(), expect) == 0);
    ASSERT_EQ(ga_version_number(), GA_VERSION_HEX);
    ASSERT_EQ(GA_VERSION_HEX, GA_VERSION_MAJOR * 10000 + GA_VERSION_MINOR * 100 + GA_VERSION_PATCH);
}

TEST_MAIN(TEST_ENTRY(test_every_code_has_name_and_message), TEST_ENTRY(test_unknown_codes),
          TEST_ENTRY(test_last_error), TEST_ENTRY(test_handler_receives_double_free),
          TEST_ENTRY(test_handler_receives_corruption),
          TEST_ENTRY(test_handler_answer_honoured_for_fatal), TEST_ENTRY(test_version))
