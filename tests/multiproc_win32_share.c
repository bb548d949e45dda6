/* SPDX-License-Identifier: MIT */
/* GMEM_SHARE with its 16-bit meaning back: GlobalAlloc(GMEM_MOVEABLE | GMEM_SHARE) allocates
 * from the process's shared heap (ga_set_share_heap or GLOBALALLOC_HEAP), and the handle works
 * with every Global* function in another process. */
#include "test.h"
#include <globalalloc/win32.h>
#include <signal.h>
#include <stdint.h>
#include <sys/wait.h>
#include <unistd.h>

static char heap_name[64];

static int wait_child(pid_t pid)
{
    int status = 0;
    if (waitpid(pid, &status, 0) != pid)
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

/* The environment variable path, in a fresh process (exec), which hands its handle back. */
static int run_env_child(const char *self, const char *heap_env, uint64_t *handle_out)
{
    int fds[2];
    if (pipe(fds) != 0)
        return -1;
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fds[1], 1);
        close(fds[0]);
        setenv("GLOBALALLOC_HEAP", heap_env, 1);
        execl(self, self, "--env-child", (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    char buf[64] = {0};
    ssize_t n = read(fds[0], buf, sizeof buf - 1);
    close(fds[0]);
    int rc = wait_child(pid);
    if (n > 0)
        *handle_out = strtoull(buf, NULL, 16);
    return rc;
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

static const char *self_path;

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

    /* A bad name is reported and the process heap is used instead. */
    hv = 0;
    ASSERT_EQ(run_env_child(self_path, "bad/name", &hv), 21);
    ASSERT_EQ(ga_shared_close(heap), 0);
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--env-child") == 0)
        return env_child();
    self_path = argv[0];
    snprintf(heap_name, sizeof heap_name, "ga-test-share-%ld", (long)getpid());
    static const test_entry_t tests[] = {
        TEST_ENTRY(moveable_share_handle_works_in_another_process),
        TEST_ENTRY(set_share_heap_rejects_a_private_heap),
        TEST_ENTRY(environment_names_the_share_heap),
    };
    int rc = test_main(tests, sizeof tests / sizeof tests[0], argc, argv);
    ga_shared_unlink(heap_name, GA_SHARED_FORCE);
    return rc;
}
