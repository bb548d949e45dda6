/* SPDX-License-Identifier: MIT */
/* GMEM_SHARE with its 16-bit meaning back: GlobalAlloc(GMEM_MOVEABLE | GMEM_SHARE) allocates
 * from the process's shared heap (ga_set_share_heap or GLOBALALLOC_HEAP), and the handle works
 * with every Global* function in another process. */
#include "test.h"
#include "shared_test_util.h"
#include <poll.h>
#include <globalalloc/win32.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char heap_name[64];
static const char *self_path;

/* Bounded (20 s): a hung child fails the test (-1) instead of hanging it. */
static int wait_child(pid_t pid)
{
    int status = shm_test_wait(pid, 20000);
    if (status < 0)
        return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static int child_uses_handle(HGLOBAL h)
{
    ga_heap_t *heap = ga_shared_open(heap_name, 0, 0, NULL); /* a fork child attaches again */
    if (heap == NULL)
        return 10;
    char *p = GlobalLock(h);
    if (p == NULL || strcmp(p, "hello from the parent") != 0)
        return 11;
    if (GlobalHandle(p) != h)
        return 12;
    strcpy(p, "hello from the child");
    if (GlobalUnlock(h) != FALSE || GetLastError() != NO_ERROR)
        return 13;
    if (GlobalReAlloc(h, 5000, GMEM_MOVEABLE | GMEM_ZEROINIT) != h || GlobalSize(h) != 5000)
        return 14;
    p = GlobalLock(h);
    if (p == NULL || strcmp(p, "hello from the child") != 0 || p[4999] != 0)
        return 15;
    GlobalUnlock(h);
    if (ga_heap_check(heap, GA_CHECK_QUIET) != 0)
        return 16;
    ga_shared_close(heap);
    return 0;
}

TEST(moveable_share_handle_works_in_another_process)
{
    ga_heap_t *heap = ga_shared_open(heap_name, (size_t)16 << 20, GA_SHARED_CREATE, NULL);
    CHECK(heap != NULL);
    ASSERT_EQ(ga_set_share_heap(heap), 0);
    CHECK(ga_share_heap() == heap);

    HGLOBAL h = GlobalAlloc(GMEM_MOVEABLE | GMEM_SHARE | GMEM_ZEROINIT, 100);
    CHECK(h != NULL);
    ASSERT_NE((uintptr_t)h >> 52, 0);    /* a shared heap's handle */
    ASSERT_EQ((uintptr_t)h % 16, 8);     /* Windows' handle shape all the same */
    ASSERT_EQ(GlobalFlags(h), GMEM_DDESHARE);
    ASSERT_EQ(GlobalSize(h), 100);
    char *p = GlobalLock(h);
    CHECK(p != NULL);
    ASSERT_EQ(p[99], 0);
    ASSERT_EQ(GlobalFlags(h), GMEM_DDESHARE | 1);
    strcpy(p, "hello from the parent");
    CHECK(GlobalHandle(p) == h);
    SetLastError(12345);
    ASSERT_EQ(GlobalUnlock(h), FALSE);
    ASSERT_EQ(GetLastError(), NO_ERROR);

    pid_t pid = fork();
    if (pid == 0)
        _exit(child_uses_handle(h));
    ASSERT_EQ(wait_child(pid), 0);

    ASSERT_EQ(GlobalSize(h), 5000);
    p = GlobalLock(h);
    CHECK(p != NULL && strcmp(p, "hello from the child") == 0);
    GlobalUnlock(h);
    ASSERT_EQ(GlobalDiscard(h), h);
    ASSERT_EQ(GlobalFlags(h), GMEM_DDESHARE | GMEM_DISCARDED);
    CHECK(GlobalLock(h) == NULL);
    ASSERT_EQ(GetLastError(), ERROR_DISCARDED);
    CHECK(GlobalFree(h) == NULL);
    CHECK(GlobalLock(h) == NULL);
    ASSERT_EQ(GetLastError(), ERROR_INVALID_HANDLE);
    ASSERT_EQ(GlobalFlags(h), GMEM_INVALID_HANDLE);
    CHECK(GlobalFree(h) == h);
    ASSERT_EQ(GetLastError(), ERROR_INVALID_HANDLE);

    /* A fixed block is a pointer, meaningful here only: it stays in the process heap. */
    void *f = GlobalAlloc(GMEM_FIXED | GMEM_SHARE, 64);
    CHECK(f != NULL && ga_owns((char *)f - 16));
    CHECK(GlobalLock(f) == f);
    ASSERT_EQ(GlobalFlags(f), 0);
    CHECK(GlobalFree(f) == NULL);

    ASSERT_EQ(ga_heap_check(heap, 0), 0);
    ASSERT_EQ(ga_set_share_heap(NULL), 0);
    CHECK(ga_share_heap() == NULL);
    /* Without a shared heap the flag is only recorded, as on Win32. */
    h = GlobalAlloc(GMEM_MOVEABLE | GMEM_SHARE, 10);
    ASSERT_EQ((uintptr_t)h >> 52, 0);
    ASSERT_EQ(GlobalFlags(h), GMEM_DDESHARE);
    GlobalFree(h);
    ASSERT_EQ(ga_shared_close(heap), 0);
}

TEST(set_share_heap_rejects_a_private_heap)
{
    ASSERT_EQ(ga_set_share_heap(ga_heap_default()), GA_EINVAL);
}

/* The environment variable path, in a fresh process (exec), which hands its handle back.
 * mode: "--env-child" (allocates) or "--recv-child" (uses handle arg; NULL env: unset). */
static int run_env_child_mode(const char *self, const char *heap_env, const char *mode,
                              const char *arg, uint64_t *handle_out)
{
    int fds[2];
    if (pipe(fds) != 0)
        return -1;
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fds[1], 1);
        close(fds[0]);
        if (heap_env)
            setenv("GLOBALALLOC_HEAP", heap_env, 1);
        else
            unsetenv("GLOBALALLOC_HEAP");
        execl(self, self, mode, arg, (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    char buf[64] = {0};
    struct pollfd pfd = {fds[0], POLLIN, 0};
    ssize_t n = poll(&pfd, 1, 20000) == 1 ? read(fds[0], buf, sizeof buf - 1) : -1;
    close(fds[0]);
    int rc = wait_child(pid);
    if (n > 0 && handle_out)
        *handle_out = strtoull(buf, NULL, 16);
    return rc;
}

static int run_env_child(const char *self, const char *heap_env, uint64_t *handle_out)
{
    return run_env_child_mode(self, heap_env, "--env-child", NULL, handle_out);
}

/* A process that never allocated uses a handle it was given: with want_ok, every Global* and
 * ga_handle_* call works on it (then it frees it); else each fails with ERROR_INVALID_HANDLE /
 * GA_EHANDLE (the handle's heap is out of its reach). */
static int recv_child(const char *hex, bool want_ok)
{
    HGLOBAL h = (HGLOBAL)(uintptr_t)strtoull(hex, NULL, 16);
    ga_handle_t gh = (ga_handle_t)(uintptr_t)h;
    SetLastError(0);
    SIZE_T n = GlobalSize(h);
    if (!want_ok) {
        if (n != 0 || GetLastError() != ERROR_INVALID_HANDLE)
            return 40;
        if (GlobalLock(h) != NULL || GetLastError() != ERROR_INVALID_HANDLE)
            return 41;
        if (ga_handle_size(gh) != 0 || ga_last_error() != GA_EHANDLE)
            return 42;
        return ga_handle_lock(gh) == NULL && ga_last_error() == GA_EHANDLE ? 0 : 43;
    }
    if (n != 32)
        return 44;
    char *p = GlobalLock(h);
    if (p == NULL || strcmp(p, "left by the env child") != 0)
        return 45;
    if (GlobalHandle(p) != h || GlobalFlags(h) != (GMEM_DDESHARE | 1))
        return 46;
    GlobalUnlock(h);
    ga_handle_info_t info;
    if (ga_handle_info(gh, &info) != 0 || info.size != 32 || !(info.flags & GA_HSHARE))
        return 47;
    char *q = ga_handle_lock(gh);
    if (q == NULL || strcmp(q, "left by the env child") != 0 || ga_handle_unlock(gh) != 0)
        return 48;
    if (ga_handle_size(gh) != 32 || ga_share_heap() == NULL)
        return 49;
    if (ga_handle_free(gh) != 0 || GlobalSize(h) != 0 || GetLastError() != ERROR_INVALID_HANDLE)
        return 50;
    return 0;
}

TEST(received_handle_works_in_a_process_that_never_allocated)
{
    char name[80], other[80], hex[32];
    snprintf(name, sizeof name, "ga-test-share-recv-%ld", (long)getpid());
    snprintf(other, sizeof other, "ga-test-share-recv-other-%ld", (long)getpid());
    uint64_t hv = 0;
    ASSERT_EQ(run_env_child(self_path, name, &hv), 0); /* A: allocates, writes, exits */
    ASSERT_NE(hv >> 52, 0);
    snprintf(hex, sizeof hex, "%jx", (uintmax_t)hv);
    /* Out of reach: no share heap, or another heap. */
    ASSERT_EQ(run_env_child_mode(self_path, NULL, "--recv-bad", hex, NULL), 0);
    ASSERT_EQ(run_env_child_mode(self_path, other, "--recv-bad", hex, NULL), 0);
    /* B: the same GLOBALALLOC_HEAP, first call on the received handle. */
    ASSERT_EQ(run_env_child_mode(self_path, name, "--recv-child", hex, NULL), 0);
    ga_shared_unlink(name, GA_SHARED_FORCE);
    ga_shared_unlink(other, GA_SHARED_FORCE);
}

static int env_child(void)
{
    HGLOBAL h = GlobalAlloc(GMEM_MOVEABLE | GMEM_SHARE, 32);
    char *p = GlobalLock(h);
    if (p == NULL)
        return 20;
    strcpy(p, "left by the env child");
    GlobalUnlock(h);
    printf("%jx\n", (uintmax_t)(uintptr_t)h);
    fflush(stdout);
    return ga_share_heap() != NULL ? 0 : 21; /* exits attached: the block stays in the heap */
}

TEST(environment_names_the_share_heap)
{
    ga_heap_t *heap = ga_shared_open(heap_name, (size_t)16 << 20, GA_SHARED_CREATE, NULL);
    CHECK(heap != NULL);
    uint64_t hv = 0;
    ASSERT_EQ(run_env_child(self_path, heap_name, &hv), 0);
    ASSERT_NE(hv >> 52, 0);
    HGLOBAL h = (HGLOBAL)(uintptr_t)hv;
    char *p = GlobalLock(h);
    CHECK(p != NULL && strcmp(p, "left by the env child") == 0);
    GlobalUnlock(h);
    CHECK(GlobalFree(h) == NULL);
    ASSERT_EQ(ga_heap_check(heap, 0), 0);

    ASSERT_EQ(ga_shared_close(heap), 0);
}

/* ---- no silent fallback: a configured heap that cannot be opened fails GMEM_SHARE ------- */

static char reported[512];
static int record_handler(int err, const char *msg, uintptr_t ptr, void *arg)
{
    (void)err, (void)ptr, (void)arg;
    snprintf(reported, sizeof reported, "%s", msg);
    return 1;
}

/* In a fork child (which reads the environment afresh): GLOBALALLOC_HEAP=env (unset if NULL),
 * optionally as uid 65534; GMEM_SHARE must fail with want (0: must succeed, unshared). */
static const char *then_ok; /* share_child: a good heap name to try after the failures */
static int share_child(const char *env, bool as_nobody, DWORD want)
{
    if (env)
        setenv("GLOBALALLOC_HEAP", env, 1);
    else
        unsetenv("GLOBALALLOC_HEAP");
    if (as_nobody && (setgid(65534) != 0 || setuid(65534) != 0))
        return 30;
    ga_set_error_handler(record_handler, NULL);
    SetLastError(0);
    HGLOBAL h = GlobalAlloc(GMEM_MOVEABLE | GMEM_SHARE, 32);
    if (want == 0) { /* none configured: recorded as on Win32, from the process heap */
        if (h == NULL || ((uintptr_t)h >> 52) != 0 || GlobalFlags(h) != GMEM_DDESHARE)
            return 31;
        return GlobalFree(h) == NULL && reported[0] == 0 ? 0 : 32;
    }
    if (h != NULL)
        return 33; /* the silent fallback */
    if (GetLastError() != want)
        return 34;
    if (strstr(reported, "GLOBALALLOC_HEAP") == NULL)
        return 35; /* the reason goes through the error handler */
    if (ga_share_heap() != NULL || ga_last_error() == 0)
        return 36;
    reported[0] = 0;
    SetLastError(0);
    if (GlobalAlloc(GMEM_MOVEABLE | GMEM_SHARE, 32) != NULL || GetLastError() != want ||
        reported[0] == 0)
        return 37; /* tried again, failed again, said so again */
    h = GlobalAlloc(GMEM_MOVEABLE, 32); /* what asks for no sharing still works */
    void *f = GlobalAlloc(GMEM_FIXED | GMEM_SHARE, 32);
    if (h == NULL || f == NULL || GlobalFree(h) != NULL || GlobalFree(f) != NULL)
        return 38;
    if (then_ok) { /* once the cause is gone, the next request opens the heap */
        setenv("GLOBALALLOC_HEAP", then_ok, 1);
        h = GlobalAlloc(GMEM_MOVEABLE | GMEM_SHARE, 32);
        if (h == NULL || ((uintptr_t)h >> 52) == 0 || ga_share_heap() == NULL)
            return 39;
        GlobalFree(h);
    }
    return 0;
}

static int run_share_child(const char *env, bool as_nobody, DWORD want)
{
    pid_t pid = fork();
    if (pid == 0)
        _exit(share_child(env, as_nobody, want));
    return wait_child(pid);
}

TEST(configured_heap_that_cannot_open_fails_gmem_share)
{
    char good[80];
    snprintf(good, sizeof good, "ga-test-share-good-%ld", (long)getpid());
    then_ok = good;
    ASSERT_EQ(run_share_child("bad/name", false, ERROR_INVALID_NAME), 0);
    then_ok = NULL;
    ga_shared_unlink(good, GA_SHARED_FORCE);
    /* A heap of another format version: GA_EFORMAT. */
    char name[80], path[100];
    snprintf(name, sizeof name, "ga-test-share-fmt-%ld", (long)getpid());
    snprintf(path, sizeof path, "/ga.%s", name);
    ga_heap_t *heap = ga_shared_open(name, (size_t)2 << 20, GA_SHARED_CREATE, NULL);
    CHECK(heap != NULL);
    ga_shared_close(heap);
    int fd = shm_open(path, O_RDWR, 0);
    uint32_t version = 99;
    CHECK(fd >= 0 && pwrite(fd, &version, 4, 8) == 4); /* shm_header_t.version */
    ASSERT_EQ(run_share_child(name, false, ERROR_NOT_ENOUGH_MEMORY), 0);
    /* No access: a heap of ours (mode 0600) opened by uid 65534, or mode 000 when not root. */
    if (fd >= 0)
        close(fd);
    shm_unlink(path);
    heap = ga_shared_open(name, (size_t)2 << 20, GA_SHARED_CREATE, NULL);
    CHECK(heap != NULL);
    ga_shared_close(heap);
    if (geteuid() == 0) {
        ASSERT_EQ(run_share_child(name, true, ERROR_ACCESS_DENIED), 0);
    } else {
        fd = shm_open(path, O_RDWR, 0);
        CHECK(fd >= 0 && fchmod(fd, 0) == 0);
        if (fd >= 0)
            close(fd);
        ASSERT_EQ(run_share_child(name, false, ERROR_ACCESS_DENIED), 0);
    }
    shm_unlink(path);
}

TEST(no_configured_heap_records_gmem_share)
{
    ASSERT_EQ(run_share_child(NULL, false, 0), 0);
    ASSERT_EQ(run_share_child("", false, 0), 0);
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--env-child") == 0)
        return env_child();
    if (argc > 2 && strcmp(argv[1], "--recv-child") == 0)
        return recv_child(argv[2], true);
    if (argc > 2 && strcmp(argv[1], "--recv-bad") == 0)
        return recv_child(argv[2], false);
    self_path = argv[0];
    snprintf(heap_name, sizeof heap_name, "ga-test-share-%ld", (long)getpid());
    static const test_entry_t tests[] = {
        TEST_ENTRY(moveable_share_handle_works_in_another_process),
        TEST_ENTRY(set_share_heap_rejects_a_private_heap),
        TEST_ENTRY(environment_names_the_share_heap),
        TEST_ENTRY(configured_heap_that_cannot_open_fails_gmem_share),
        TEST_ENTRY(no_configured_heap_records_gmem_share),
        TEST_ENTRY(received_handle_works_in_a_process_that_never_allocated),
    };
    int rc = test_main(tests, sizeof tests / sizeof tests[0], argc, argv);
    ga_shared_unlink(heap_name, GA_SHARED_FORCE);
    return rc;
}
