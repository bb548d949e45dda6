/* SPDX-License-Identifier: MIT */
/*
 * GLOBALALLOC_HEAP_SIZE, the size of the GLOBALALLOC_HEAP shared heap that GMEM_SHARE blocks
 * come from, is honoured ("16M" makes a 16 MiB heap; it used to be ignored unless all digits)
 * or refused with a message naming it (a bad or out-of-range size: no heap is made, and
 * GMEM_SHARE allocations fail rather than come from the process heap). Each case
 * runs in a child, as the variables are read once per process.
 */
#include "test.h"
#include "shared_test_util.h"
#include <globalalloc/win32.h>
#include <sys/wait.h>
#include <unistd.h>

static char seen[512];
static int note(int err, const char *msg, uintptr_t ptr, void *arg)
{
    (void)err, (void)ptr, (void)arg;
    if (!seen[0]) snprintf(seen, sizeof seen, "%s", msg);
    return 1;
}

/* Child: GMEM_SHARE allocation with the two variables set. 0 when a good size gives a block
 * and no message, or a bad one gives no block (never a process-heap stand-in), an error code,
 * and a message naming GLOBALALLOC_HEAP_SIZE. */
static int child(const char *name, const char *size, int bad)
{
    setenv("GLOBALALLOC_HEAP", name, 1);
    setenv("GLOBALALLOC_HEAP_SIZE", size, 1);
    ga_set_error_handler(note, NULL);
    HGLOBAL h = GlobalAlloc(GMEM_MOVEABLE | GMEM_SHARE, 100);
    if (bad) {
        if (h) return 2;
        if (GetLastError() != ERROR_NOT_ENOUGH_MEMORY) return 5;
        if (!strstr(seen, "GLOBALALLOC_HEAP_SIZE")) return 3;
        return 0;
    }
    if (!h) return 2;
    GlobalFree(h);
    return seen[0] ? 4 : 0;
}

static int run(const char *name, const char *size, int want_msg)
{
    pid_t pid = fork();
    if (pid == 0) {
        alarm(30);
        _exit(child(name, size, want_msg));
    }
    int st = 0;
    if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st)) return -1;
    return WEXITSTATUS(st);
}

TEST(size_honoured)
{
    const char *name = shm_test_name("envsize");
    ASSERT_EQ(run(name, "16M", 0), 0);
    ga_shared_info_t info;
    ASSERT_EQ(ga_shared_peek(name, &info), 0);
    ASSERT_EQ(info.reserved, (size_t)16 << 20);
    ga_shared_unlink(name, GA_SHARED_FORCE);
}

TEST(bad_size_refused)
{
    const char *name = shm_test_name("envbad");
    ASSERT_EQ(run(name, "16Q", 1), 0);
    ga_shared_info_t info;
    CHECK(ga_shared_peek(name, &info) != 0); /* no heap made */
    ASSERT_EQ(run(name, "17179869185G", 1), 0);
    CHECK(ga_shared_peek(name, &info) != 0);
    ga_shared_unlink(name, GA_SHARED_FORCE);
}

int main(int argc, char **argv)
{
    static const test_entry_t tests[] = {
        TEST_ENTRY(size_honoured),
        TEST_ENTRY(bad_size_refused),
    };
    return test_main(tests, sizeof tests / sizeof tests[0], argc, argv);
}
