/* SPDX-License-Identifier: MIT */
/*
 * Where a shared heap's file lives, and what happens when its file system is full.
 * GLOBALALLOC_SHM_DIR puts heaps in a directory of one's choice (absolute paths only; a bad one
 * is a clear GA_ENAME / GA_ENOENT). On a full file system (a 2 MiB tmpfs, mounted when running
 * as root; skipped with a message otherwise) allocations fail with GA_ENOMEM, every block
 * handed out can be written whole, nothing dies of SIGBUS (in this process or a peer), the heap
 * checks clean, and freeing makes room again.
 */
#include "test.h"
#include "shared_test_util.h"
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define MIB ((size_t)1 << 20)

static char last_msg[512];
static int record_handler(int err, const char *msg, uintptr_t ptr, void *arg)
{
    (void)err, (void)ptr, (void)arg;
    snprintf(last_msg, sizeof last_msg, "%s", msg);
    return 1;
}

static bool exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

TEST(shm_dir_relocates_heaps)
{
    char dir[] = "/tmp/ga-shmdir-XXXXXX", file[256], dev[256];
    CHECK(mkdtemp(dir) != NULL);
    const char *name = shm_test_name("shmdir");
    snprintf(file, sizeof file, "%s/ga.%s", dir, name);
    snprintf(dev, sizeof dev, "/dev/shm/ga.%s", name);
    char with_slash[64];
    snprintf(with_slash, sizeof with_slash, "%s//", dir); /* trailing slashes are fine */
    setenv("GLOBALALLOC_SHM_DIR", with_slash, 1);
    ga_heap_t *h = ga_shared_open(name, 4 * MIB, GA_SHARED_CREATE | GA_SHARED_EXCL, NULL);
    CHECK(h != NULL);
    CHECK(exists(file));
    CHECK(!exists(dev));
    ga_shared_info_t info;
    ASSERT_EQ(ga_shared_peek(name, &info), 0);
    ASSERT_EQ(info.attached, 1);
    char *obj = h ? ga_shared_object(h, "greeting", 64, 0, NULL) : NULL;
    CHECK(obj != NULL);
    if (obj) strcpy(obj, "from the directory");
    pid_t pid = fork();
    if (pid == 0) { /* a peer with the same environment finds it there */
        ga_heap_t *x = ga_shared_open(name, 0, 0, NULL);
        char *o = x ? ga_shared_object_find(x, "greeting", NULL) : NULL;
        _exit(o && strcmp(o, "from the directory") == 0 ? 0 : 1);
    }
    int st = 0;
    ASSERT_EQ(waitpid(pid, &st, 0), pid);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    if (h) ga_shared_close(h);
    ASSERT_EQ(ga_shared_unlink(name, 0), 0);
    CHECK(!exists(file));

    /* Bad directories: a clear error, nothing created anywhere. */
    ga_set_error_handler(record_handler, NULL);
    setenv("GLOBALALLOC_SHM_DIR", "relative/dir", 1);
    last_msg[0] = 0;
    CHECK(ga_shared_open(name, 4 * MIB, GA_SHARED_CREATE, NULL) == NULL);
    ASSERT_EQ(ga_last_error(), GA_ENAME);
    CHECK(strstr(last_msg, "GLOBALALLOC_SHM_DIR") != NULL);
    static char longdir[2048];
    memset(longdir, 'd', sizeof longdir - 1);
    longdir[0] = '/';
    setenv("GLOBALALLOC_SHM_DIR", longdir, 1);
    CHECK(ga_shared_open(name, 4 * MIB, GA_SHARED_CREATE, NULL) == NULL);
    ASSERT_EQ(ga_last_error(), GA_ENAME);
    setenv("GLOBALALLOC_SHM_DIR", "/nonexistent-ga-shm-dir/sub", 1);
    CHECK(ga_shared_open(name, 4 * MIB, GA_SHARED_CREATE, NULL) == NULL);
    ASSERT_EQ(ga_last_error(), GA_ENOENT);
    ga_set_error_handler(NULL, NULL);
    unsetenv("GLOBALALLOC_SHM_DIR");
    CHECK(!exists(dev));
    rmdir(dir);
}

/* Fills h with 100 KB blocks (each written whole) until an allocation fails; returns how many. */
static int fill(ga_heap_t *h, void **blocks, int max, int *err)
{
    int n = 0;
    *err = 0;
    while (n < max) {
        void *p = ga_shared_alloc(h, 100000);
        if (!p) {
            *err = ga_last_error();
            break;
        }
        memset(p, 0xAB, 100000); /* would be SIGBUS if the page were not backed */
        blocks[n++] = p;
    }
    return n;
}

TEST(full_file_system_gives_enomem)
{
    if (geteuid() != 0) {
        printf("skipped: mounting a small tmpfs needs root\n");
        return;
    }
    char dir[] = "/tmp/ga-tmpfs-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    if (mount("tmpfs", dir, "tmpfs", 0, "size=2m") != 0) {
        printf("skipped: cannot mount a tmpfs here (%s)\n", strerror(errno));
        rmdir(dir);
        return;
    }
    setenv("GLOBALALLOC_SHM_DIR", dir, 1);
    const char *name = shm_test_name("tmpfsfull");
    /* 64 MiB of address space on 2 MiB of storage. */
    ga_heap_t *h = ga_shared_open(name, 64 * MIB, GA_SHARED_CREATE | GA_SHARED_EXCL, NULL);
    CHECK(h != NULL);
    if (h) {
        static void *blocks[64];
        int err, n = fill(h, blocks, 64, &err);
        printf("%d blocks of 100 KB fit, then %s\n", n, ga_err_name(err));
        CHECK(n >= 4 && n < 20);
        ASSERT_EQ(err, GA_ENOMEM);
        CHECK(ga_shared_handle_alloc(h, 200000, 0) == 0);
        ASSERT_EQ(ga_last_error(), GA_ENOMEM);
        ASSERT_EQ(ga_shared_check(h, 0), 0);
        /* A peer hits the same wall the same way: an error, not a signal. */
        pid_t pid = fork();
        if (pid == 0) {
            ga_heap_t *x = ga_shared_open(name, 0, 0, NULL);
            void *more[8];
            int e, m = x ? fill(x, more, 8, &e) : -1;
            _exit(m == 0 && e == GA_ENOMEM ? 0 : 1);
        }
        int st = 0;
        ASSERT_EQ(waitpid(pid, &st, 0), pid);
        CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
        ASSERT_EQ(ga_shared_reclaim_dead(h) >= 0, 1);
        /* Freeing makes room again: as many fit as before. */
        for (int i = 0; i < n; i++)
            ASSERT_EQ(ga_shared_free(h, blocks[i]), 0);
        int n2 = fill(h, blocks, 64, &err);
        ASSERT_EQ(n2, n);
        ASSERT_EQ(err, GA_ENOMEM);
        for (int i = 0; i < n2; i++)
            ga_shared_free(h, blocks[i]);
        ASSERT_EQ(ga_shared_check(h, 0), 0);
        ga_shared_close(h);
        ASSERT_EQ(ga_shared_unlink(name, 0), 0);
    }
    unsetenv("GLOBALALLOC_SHM_DIR");
    CHECK(umount2(dir, MNT_DETACH) == 0);
    rmdir(dir);
}

TEST_MAIN(TEST_ENTRY(shm_dir_relocates_heaps), TEST_ENTRY(full_file_system_gives_enomem))
