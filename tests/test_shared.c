/* SPDX-License-Identifier: MIT */
/*
 * Shared heaps: lifecycle, names, blocks, handles (also across processes), named objects,
 * dead creators and dead peers. Every heap name carries the test's pid and is unlinked at exit,
 * even when a check fails.
 */
#include "test.h"
#include "shared_test_util.h"
#include "internal.h"
#include "shared/shared_internal.h"
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define MIB ((size_t)1 << 20)

static const char *heap_name(const char *tag) { return shm_test_name(tag); }

static int reports;
static int count_reports(int err, const char *msg, uintptr_t ptr, void *arg)
{
    (void)err, (void)msg, (void)ptr, (void)arg;
    reports++;
    return 1;
}

static ga_heap_t *create(const char *name, size_t size)
{
    int created = -1;
    ga_heap_t *h = ga_shared_open(name, size, GA_SHARED_CREATE, &created);
    CHECK(h != NULL);
    ASSERT_EQ(created, 1);
    return h;
}

/* Runs fn in a child process; returns its exit status (or 128 + signal). */
static int in_child(int (*fn)(const char *), const char *name)
{
    pid_t pid = fork();
    if (pid == 0) _exit(fn(name));
    int st = 0;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

TEST(open_create_close)
{
    const char *name = heap_name("open");
    int created = -1;
    CHECK(ga_shared_open(name, 4 * MIB, 0, &created) == NULL);
    ASSERT_EQ(ga_last_error(), GA_ENOENT);
    ga_heap_t *h = create(name, 4 * MIB);
    ga_heap_t *h2 = ga_shared_open(name, 0, GA_SHARED_CREATE, &created);
    CHECK(h2 == h);
    ASSERT_EQ(created, 0);
    CHECK(ga_shared_open(name, 4 * MIB, GA_SHARED_CREATE | GA_SHARED_EXCL, NULL) == NULL);
    ASSERT_EQ(ga_last_error(), GA_EEXIST);
    CHECK(ga_shared_is_shared(h));
    CHECK(!ga_shared_is_shared(ga_heap_default()));
    CHECK(strcmp(ga_shared_name(h), name) == 0);
    char path[200];
    snprintf(path, sizeof path, "/dev/shm/ga.%s", name);
    struct stat st;
    ASSERT_EQ(stat(path, &st), 0);
    ASSERT_EQ(st.st_mode & 0777, 0600);
    ga_shared_stats_t s;
    ASSERT_EQ(ga_shared_stats(h, &s), 0);
    ASSERT_EQ(s.reserved, 4 * MIB);
    CHECK(s.committed < 4 * MIB);
    ASSERT_EQ(s.attached, 1);
    ASSERT_NE(s.heap_id, 0);
    CHECK(s.heap_id < 2048);
    ASSERT_EQ(ga_shared_check(h, 0), 0);
    ASSERT_EQ(ga_shared_close(h2), 0);
    ASSERT_EQ(ga_shared_check(h, 0), 0); /* still open once */
    ASSERT_EQ(ga_shared_close(h), 0);
    ASSERT_EQ(ga_shared_close(h), GA_EINVAL);
    ASSERT_EQ(ga_shared_unlink(name, 0), 0);
    ASSERT_EQ(ga_shared_unlink(name, 0), GA_ENOENT);
    CHECK(ga_shared_open(name, 0, 0, NULL) == NULL);
    ASSERT_EQ(ga_last_error(), GA_ENOENT);

    /* mode flags and size limits */
    h = ga_shared_open(name, 2 * MIB, GA_SHARED_CREATE | GA_SHARED_GROUP, NULL);
    CHECK(h != NULL);
    ASSERT_EQ(stat(path, &st), 0);
    ASSERT_EQ(st.st_mode & 0777, 0660);
    ga_shared_close(h);
    ga_shared_unlink(name, 0);
    CHECK(ga_shared_open(name, 1000, GA_SHARED_CREATE, NULL) == NULL);
    ASSERT_EQ(ga_last_error(), GA_EINVAL);
    ASSERT_EQ(stat(path, &st), -1); /* a failed create leaves nothing behind */
}

TEST(names_are_validated)
{
    const char *bad[] = {"", "a/b", "..", "a..b", "with space", "tab\there", "\x01x", "x\x7f"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK(ga_shared_open(bad[i], 2 * MIB, GA_SHARED_CREATE, NULL) == NULL);
        ASSERT_EQ(ga_last_error(), GA_ENAME);
        ASSERT_EQ(ga_shared_unlink(bad[i], 0), GA_ENAME);
    }
    CHECK(ga_shared_open(NULL, 2 * MIB, GA_SHARED_CREATE, NULL) == NULL);
    ASSERT_EQ(ga_last_error(), GA_ENAME);
    char longname[260];
    memset(longname, 'x', 201);
    longname[201] = 0;
    CHECK(ga_shared_open(longname, 2 * MIB, GA_SHARED_CREATE, NULL) == NULL);
    ASSERT_EQ(ga_last_error(), GA_ENAME);
    const char *name = heap_name("names");
    ga_heap_t *h = create(name, 2 * MIB);
    int created;
    CHECK(ga_shared_object(h, "a/b", 8, 0, &created) == NULL);
    ASSERT_EQ(ga_last_error(), GA_ENAME);
    memset(longname, 'o', 64);
    longname[64] = 0;
    CHECK(ga_shared_object(h, longname, 8, 0, &created) == NULL);
    ASSERT_EQ(ga_last_error(), GA_ENAME);
    longname[63] = 0;
    CHECK(ga_shared_object(h, longname, 8, 0, &created) != NULL);
    ga_shared_close(h);
    ga_shared_unlink(name, 0);
}

TEST(blocks)
{
    const char *name = heap_name("blocks");
    ga_heap_t *h = create(name, 32 * MIB);
    static void *p[2000];
    static size_t sz[2000];
    size_t total = 0;
    for (int i = 0; i < 2000; i++) {
        sz[i] = (size_t)(i * 37 % 3000) + (i % 100 == 0 ? 100000 : 0);
        p[i] = ga_shared_alloc(h, sz[i]);
        CHECK(p[i] != NULL);
        if (!p[i]) continue;
        ASSERT_EQ((uintptr_t)p[i] % 16, 0);
        CHECK(ga_shared_usable_size(h, p[i]) >= sz[i]);
        total += ga_shared_usable_size(h, p[i]);
        memset(p[i], i & 0xFF, sz[i]);
        uint64_t off = ga_shared_offset(h, p[i]);
        CHECK(off != 0);
        CHECK(ga_shared_ptr(h, off) == p[i]);
    }
    ga_shared_stats_t s;
    ASSERT_EQ(ga_shared_stats(h, &s), 0);
    ASSERT_EQ(s.blocks_in_use, 2000);
    ASSERT_EQ(s.bytes_in_use, total);
    ASSERT_EQ(s.procs[0].blocks + s.procs[1].blocks, 2000);
    ASSERT_EQ(ga_shared_check(h, 0), 0);
    int bad = 0;
    for (int i = 0; i < 2000; i++)
        for (size_t k = 0; k < sz[i]; k++)
            bad += ((unsigned char *)p[i])[k] != (i & 0xFF);
    ASSERT_EQ(bad, 0);
    for (int i = 0; i < 2000; i++)
        ASSERT_EQ(ga_shared_free(h, p[i]), 0);
    ASSERT_EQ(ga_shared_stats(h, &s), 0);
    ASSERT_EQ(s.blocks_in_use, 0);
    ASSERT_EQ(s.bytes_in_use, 0);
    ASSERT_EQ(ga_shared_check(h, 0), 0);

    /* misuse is reported and refused */
    ga_set_error_handler(count_reports, NULL);
    reports = 0;
    void *q = ga_shared_alloc(h, 40);
    ASSERT_EQ(ga_shared_free(h, q), 0);
    ASSERT_EQ(ga_shared_free(h, q), GA_EDOUBLEFREE);
    ASSERT_EQ(ga_shared_free(h, (char *)q + 8), GA_ENOTOWNED);
    int local;
    ASSERT_EQ(ga_shared_free(h, &local), GA_ENOTOWNED);
    ASSERT_EQ(reports, 3);
    ASSERT_EQ(ga_shared_free(h, NULL), 0);
    ASSERT_EQ(ga_shared_usable_size(h, q), 0);
    CHECK(ga_shared_ptr(h, 3) == NULL);
    ASSERT_EQ(ga_shared_offset(h, &local), 0);
    ga_set_error_handler(NULL, NULL);
    CHECK(ga_shared_alloc(NULL, 8) == NULL);
    ASSERT_EQ(ga_last_error(), GA_EINVAL);
    CHECK(ga_shared_alloc((ga_heap_t *)&local, 8) == NULL);
    ASSERT_EQ(ga_shared_check(h, 0), 0);
    ga_shared_close(h);
    ga_shared_unlink(name, 0);
}

/* Every 16-byte position of a full page of each class: only block starts are blocks. Pages are
 * 64 KiB-aligned as offsets in the segment (the mapping itself may sit anywhere). */
TEST(block_starts_exact)
{
    const char *name = heap_name("starts");
    ga_heap_t *h = create(name, 64 * MIB);
    static void *p[5000];
    for (unsigned c = 0; c < SHM_NCLASS; c++) {
        uint32_t bs = ga__shm_class_size[c], hdr = ga__shm_class_hdr(c);
        uint32_t count = ga__shm_class_count(c);
        int n = 0;
        uint32_t in_first = 0;
        uint64_t page = 0;
        while (n < 5000 && in_first < count) {
            p[n] = ga_shared_alloc(h, bs);
            if (!p[n]) break;
            uint64_t pg = ga_shared_offset(h, p[n]) & ~(SHM_PAGE - 1);
            if (n == 0) page = pg;
            in_first += pg == page;
            n++;
        }
        ASSERT_EQ(in_first, count);
        int wrong = 0;
        char *base = ga_shared_ptr(h, page);
        for (uint32_t off = 0; base && off < SHM_PAGE; off += 16) {
            bool start = off >= hdr && (off - hdr) % bs == 0 && (off - hdr) / bs < count;
            size_t u = ga_shared_usable_size(h, base + off);
            wrong += start ? u != bs : u != 0;
        }
        ASSERT_EQ(wrong, 0);
        for (int i = 0; i < n; i++)
            ga_shared_free(h, p[i]);
    }
    ASSERT_EQ(ga_shared_check(h, 0), 0);
    ga_shared_close(h);
    ga_shared_unlink(name, 0);
}

TEST(realloc_calloc_large)
{
    const char *name = heap_name("realloc");
    ga_heap_t *h = create(name, 16 * MIB);
    unsigned char *p = ga_shared_alloc(h, 10);
    for (int i = 0; i < 10; i++)
        p[i] = (unsigned char)i;
    size_t sizes[] = {100, 5000, 20000, 300000, 50, 7};
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        p = ga_shared_realloc(h, p, sizes[k]);
        CHECK(p != NULL);
        int bad = 0;
        for (int i = 0; i < 7; i++)
            bad += p[i] != i;
        ASSERT_EQ(bad, 0);
        CHECK(ga_shared_usable_size(h, p) >= sizes[k]);
    }
    ga_shared_free(h, p);
    /* calloc zeroes reused memory */
    unsigned char *q = ga_shared_alloc(h, 1000);
    memset(q, 0xFF, 1000);
    ga_shared_free(h, q);
    q = ga_shared_calloc(h, 10, 100);
    int nz = 0;
    for (int i = 0; i < 1000; i++)
        nz += q[i] != 0;
    ASSERT_EQ(nz, 0);
    ga_shared_free(h, q);
    CHECK(ga_shared_calloc(h, SIZE_MAX / 2, 4) == NULL);
    ASSERT_EQ(ga_last_error(), GA_EOVERFLOW);
    /* large blocks come back to the page pool */
    ga_shared_stats_t s0, s1;
    ga_shared_stats(h, &s0);
    void *big = ga_shared_alloc(h, 3 * MIB);
    CHECK(big != NULL);
    memset(big, 1, 3 * MIB);
    ga_shared_free(h, big);
    ga_shared_stats(h, &s1);
    ASSERT_EQ(s1.pages_total - s1.pages_free, s0.pages_total - s0.pages_free);
    void *big2 = ga_shared_alloc(h, 3 * MIB);
    CHECK(big2 == big); /* first fit finds the same run */
    ga_shared_free(h, big2);
    ASSERT_EQ(ga_shared_check(h, 0), 0);
    ga_shared_close(h);
    ga_shared_unlink(name, 0);
}

TEST(heap_full)
{
    const char *name = heap_name("full");
    ga_heap_t *h = create(name, 2 * MIB);
    static void *p[100000];
    int n = 0;
    while (n < 100000 && (p[n] = ga_shared_alloc(h, 1000)) != NULL)
        n++;
    ASSERT_EQ(ga_last_error(), GA_EFULL);
    CHECK(n > 1000 && n < 2100);
    CHECK(ga_shared_alloc(h, MIB) == NULL);
    ASSERT_EQ(ga_shared_check(h, 0), 0);
    for (int i = 0; i < n; i++)
        ga_shared_free(h, p[i]);
    void *q = ga_shared_alloc(h, 1000);
    CHECK(q != NULL);
    ga_shared_free(h, q);
    /* the pages of the 1024-byte class go back to the pool when a large block needs them */
    q = ga_shared_alloc(h, MIB);
    CHECK(q != NULL);
    ga_shared_free(h, q);
    ASSERT_EQ(ga_shared_check(h, 0), 0);
    n = 0;
    while (n < 100000 && (p[n] = ga_shared_alloc(h, 100)) != NULL)
        n++;
    CHECK(n > 10000); /* and then to another class */
    for (int i = 0; i < n; i++)
        ga_shared_free(h, p[i]);
    ASSERT_EQ(ga_shared_check(h, 0), 0);
    ga_shared_close(h);
    ga_shared_unlink(name, 0);
}

TEST(handles)
{
    const char *name = heap_name("handles");
    ga_heap_t *h = create(name, 8 * MIB);
    ga_handle_t hd = ga_shared_handle_alloc(h, 100, GA_HZERO);
    CHECK(hd != 0);
    ASSERT_EQ(hd % 16, 8);
    ASSERT_EQ(hd >> 63, 0);
    ga_shared_stats_t s;
    ga_shared_stats(h, &s);
    ASSERT_EQ((hd >> 52) & 0x7FF, s.heap_id);
    ASSERT_EQ(s.handles_in_use, 1);
    ASSERT_EQ(ga__shared_handle_size(hd), 100);
    unsigned char *p = ga__shared_handle_lock(hd);
    CHECK(p != NULL);
    int nz = 0;
    for (int i = 0; i < 100; i++)
        nz += p[i];
    ASSERT_EQ(nz, 0);
    memset(p, 0xAB, 100);
    ASSERT_EQ(ga__shared_handle_from_ptr(p), hd);
    ASSERT_EQ(ga__shared_handle_from_ptr(p + 1), 0);
    ASSERT_EQ(ga_last_error(), GA_ENOTOWNED);
    int local;
    ga_set_last_error(0);
    ASSERT_EQ(ga__shared_handle_from_ptr(&local), 0);
    ASSERT_EQ(ga_last_error(), 0); /* not in a shared heap: no error, handle.c goes on */
    ga_handle_info_t info;
    ASSERT_EQ(ga__shared_handle_info(hd, &info), 0);
    ASSERT_EQ(info.lock_count, 1);
    ASSERT_EQ(info.size, 100);
    ASSERT_EQ(info.flags, GA_HSHARE);
    CHECK(info.data == p);
    /* locked: grows in place only, moves with GA_HMOVE */
    ASSERT_EQ(ga__shared_handle_realloc(hd, 100000, 0), GA_ENOMEM);
    ASSERT_EQ(ga__shared_handle_realloc(hd, 10, 0x100), GA_EINVAL);
    ASSERT_EQ(ga__shared_handle_realloc(hd, 0, 0), GA_ELOCKED);
    ASSERT_EQ(ga__shared_handle_realloc(hd, 100000, GA_HMOVE | GA_HZERO), 0);
    ASSERT_EQ(ga__shared_handle_unlock(hd), 0);
    ASSERT_EQ(ga__shared_handle_unlock(hd), GA_ENOTLOCKED);
    p = ga__shared_handle_lock(hd);
    int bad = 0;
    for (int i = 0; i < 100000; i++)
        bad += p[i] != (i < 100 ? 0xAB : 0);
    ASSERT_EQ(bad, 0);
    for (int i = 0; i < 300; i++)
        ga__shared_handle_lock(hd);
    ASSERT_EQ(ga__shared_handle_info(hd, &info), 0);
    ASSERT_EQ(info.lock_count, 255);
    for (int i = 0; i < 255; i++)
        ga__shared_handle_unlock(hd);
    /* shrink moves the unlocked block; discard; revive */
    ASSERT_EQ(ga__shared_handle_realloc(hd, 50, 0), 0);
    p = ga__shared_handle_lock(hd);
    ASSERT_EQ(p[49], 0xAB);
    ga__shared_handle_unlock(hd);
    ASSERT_EQ(ga__shared_handle_modify(hd, GA_HDISCARDABLE, 0), 0);
    ASSERT_EQ(ga__shared_handle_modify(hd, 0x100, 0), GA_EINVAL);
    ASSERT_EQ(ga__shared_handle_discard(hd), 0);
    CHECK(ga__shared_handle_lock(hd) == NULL);
    ASSERT_EQ(ga_last_error(), GA_EDISCARDED);
    ASSERT_EQ(ga__shared_handle_info(hd, &info), 0);
    ASSERT_EQ(info.flags, GA_HSHARE | GA_HDISCARDABLE | GA_HDISCARDED);
    ASSERT_EQ(ga__shared_handle_size(hd), 0);
    ASSERT_EQ(ga__shared_handle_realloc(hd, 20, GA_HZERO), 0);
    p = ga__shared_handle_lock(hd);
    CHECK(p != NULL && p[19] == 0);
    ASSERT_EQ(ga_shared_check(h, 0), 0);
    ASSERT_EQ(ga__shared_handle_free(hd), 0);
    ASSERT_EQ(ga__shared_handle_free(hd), GA_EHANDLE);
    CHECK(ga__shared_handle_lock(hd) == NULL);
    ASSERT_EQ(ga_last_error(), GA_EHANDLE);
    ASSERT_EQ(ga__shared_handle_size(hd), 0);
    ASSERT_EQ(ga_last_error(), GA_EHANDLE);
    /* a size-0 handle is born discarded; entries are reused with a new generation */
    ga_handle_t h0 = ga_shared_handle_alloc(h, 0, 0);
    CHECK(h0 != 0);
    CHECK(ga__shared_handle_lock(h0) == NULL);
    ASSERT_EQ(ga_last_error(), GA_EDISCARDED);
    ASSERT_NE(h0, hd);
    static ga_handle_t many[5000];
    for (int i = 0; i < 5000; i++)
        many[i] = ga_shared_handle_alloc(h, (size_t)i % 300, 0);
    ASSERT_EQ(ga_shared_handle_list(h, NULL, 0), 5001);
    ASSERT_EQ(ga_shared_check(h, 0), 0);
    for (int i = 0; i < 5000; i++)
        ASSERT_EQ(ga__shared_handle_free(many[i]), 0);
    ga__shared_handle_free(h0);
    ASSERT_EQ(ga_shared_handle_list(h, NULL, 0), 0);
    ga_shared_stats(h, &s);
    ASSERT_EQ(s.blocks_in_use, 0);
    ASSERT_EQ(ga_shared_check(h, 0), 0);
    /* garbage handles */
    ASSERT_EQ(ga__shared_handle_free(hd + 16), GA_EHANDLE);
    ASSERT_EQ(ga__shared_handle_free(((ga_handle_t)2047 << 52) | 8), GA_EHANDLE);
    ASSERT_EQ(ga__shared_handle_free(hd | 1), GA_EHANDLE);
    ga_shared_close(h);
    ga_shared_unlink(name, 0);
}

static ga_handle_t xhandle;
static int child_uses_handle(const char *name)
{
    ga_heap_t *h = ga_shared_open(name, 0, 0, NULL);
    if (!h) return 10;
    char *p = ga__shared_handle_lock(xhandle);
    if (!p || strcmp(p, "from parent") != 0) return 11;
    if (ga__shared_handle_realloc(xhandle, 200000, GA_HMOVE) != 0) return 12;
    p = ga__shared_handle_lock(xhandle);
    strcpy(p + 100000, "from child");
    ga__shared_handle_unlock(xhandle);
    ga__shared_handle_unlock(xhandle);
    ga_shared_close(h);
    return 0;
}

TEST(handles_cross_process)
{
    const char *name = heap_name("xhandle");
    ga_heap_t *h = create(name, 8 * MIB);
    xhandle = ga_shared_handle_alloc(h, 64, 0);
    char *p = ga__shared_handle_lock(xhandle);
    strcpy(p, "from parent");
    ga__shared_handle_unlock(xhandle);
    ASSERT_EQ(in_child(child_uses_handle, name), 0);
    ASSERT_EQ(ga__shared_handle_size(xhandle), 200000);
    p = ga__shared_handle_lock(xhandle);
    CHECK(p && strcmp(p, "from parent") == 0 && strcmp(p + 100000, "from child") == 0);
    ASSERT_EQ(ga__shared_handle_unlock(xhandle), 0);
    ASSERT_EQ(ga_shared_check(h, 0), 0);
    ga_shared_stats_t s;
    ga_shared_stats(h, &s);
    ASSERT_EQ(s.dead, 0); /* the child detached cleanly */
    ASSERT_EQ(s.heap_blocks, 1);
    ga__shared_handle_free(xhandle);
    ga_shared_close(h);
    ga_shared_unlink(name, 0);
}

TEST(named_objects)
{
    const char *name = heap_name("named");
    ga_heap_t *h = create(name, 8 * MIB);
    int created = -1;
    char *a = ga_shared_object(h, "config", 100, 0, &created);
    CHECK(a != NULL);
    ASSERT_EQ(created, 1);
    ASSERT_EQ(a[99], 0);
    strcpy(a, "hello");
    char *b = ga_shared_object(h, "config", 50, 0, &created);
    CHECK(a == b);
    ASSERT_EQ(created, 0);
    CHECK(ga_shared_object(h, "config", 1000, 0, &created) == NULL);
    ASSERT_EQ(ga_last_error(), GA_EEXIST);
    size_t sz = 0;
    CHECK(ga_shared_object_find(h, "config", &sz) == a);
    ASSERT_EQ(sz, 100);
    CHECK(ga_shared_object_find(h, "nothing", NULL) == NULL);
    ASSERT_EQ(ga_last_error(), GA_ENOENT);
    for (int i = 0; i < 100; i++) {
        char n[32];
        snprintf(n, sizeof n, "obj%d", i);
        CHECK(ga_shared_object(h, n, (size_t)i * 10, 0, NULL) != NULL);
    }
    ga_shared_object_info_t list[200];
    ASSERT_EQ(ga_shared_object_list(h, list, 200), 101);
    memset(list, 0, sizeof list);
    ASSERT_EQ(ga_shared_object_list(h, list, 3), 101);
    ASSERT_EQ(list[3].name[0], 0);
    int found = 0;
    ga_shared_object_list(h, list, 200);
    for (int i = 0; i < 101; i++)
        found += strcmp(list[i].name, "config") == 0 && list[i].size == 100 &&
                 ga_shared_ptr(h, list[i].offset) == a;
    ASSERT_EQ(found, 1);
    ASSERT_EQ(ga_shared_check(h, 0), 0);
    ASSERT_EQ(ga_shared_object_remove(h, "config"), 0);
    ASSERT_EQ(ga_shared_object_remove(h, "config"), GA_ENOENT);
    CHECK(ga_shared_object_find(h, "config", NULL) == NULL);
    /* removal leaves a tombstone: objects behind it are still found */
    for (int i = 0; i < 100; i += 2) {
        char n[32];
        snprintf(n, sizeof n, "obj%d", i);
        ASSERT_EQ(ga_shared_object_remove(h, n), 0);
    }
    for (int i = 1; i < 100; i += 2) {
        char n[32];
        snprintf(n, sizeof n, "obj%d", i);
        CHECK(ga_shared_object_find(h, n, NULL) != NULL);
    }
    ga_shared_stats_t s;
    ga_shared_stats(h, &s);
    ASSERT_EQ(s.objects, 50);
    ASSERT_EQ(s.heap_blocks, 50);
    ASSERT_EQ(ga_shared_check(h, 0), 0);
    ga_shared_close(h);
    ga_shared_unlink(name, 0);
}

static int race_fd;
static int child_races(const char *name)
{
    ga_heap_t *h = ga_shared_open(name, 0, 0, NULL);
    char c;
    if (!h || read(race_fd, &c, 1) != 0) /* the start signal: the pipe's writer closes */
        return 100;
    int created = 0;
    void *p = ga_shared_object(h, "race", 256, 0, &created);
    if (!p) return 100;
    uint64_t off = ga_shared_offset(h, p);
    ga_shared_close(h);
    return (int)(off >> 4 & 0x3F) | (created ? 0x40 : 0);
}

TEST(named_object_race)
{
    const char *name = heap_name("race");
    ga_heap_t *h = create(name, 8 * MIB);
    for (int round = 0; round < 5; round++) {
        int fds[2];
        ASSERT_EQ(pipe(fds), 0);
        race_fd = fds[0];
        pid_t kids[6];
        for (int i = 0; i < 6; i++) {
            kids[i] = fork();
            if (kids[i] == 0) {
                close(fds[1]);
                _exit(child_races(name));
            }
        }
        close(fds[0]);
        usleep(20000);
        close(fds[1]); /* go */
        int creators = 0, first = -1, same = 1;
        for (int i = 0; i < 6; i++) {
            int st;
            waitpid(kids[i], &st, 0);
            int v = WIFEXITED(st) ? WEXITSTATUS(st) : 100;
            CHECK(v != 100);
            creators += (v & 0x40) != 0;
            if (first < 0) first = v & 0x3F;
            same &= (v & 0x3F) == first;
        }
        ASSERT_EQ(creators, 1);
        ASSERT_EQ(same, 1);
        ASSERT_EQ(ga_shared_object_remove(h, "race"), 0);
    }
    ASSERT_EQ(ga_shared_check(h, 0), 0);
    ga_shared_close(h);
    ga_shared_unlink(name, 0);
}

static int make_raw(const char *name, size_t size)
{
    char path[200];
    snprintf(path, sizeof path, "/ga.%s", name);
    int fd = shm_open(path, O_RDWR | O_CREAT | O_EXCL, 0600);
    if (fd < 0 || ftruncate(fd, (off_t)size)) return -1;
    close(fd);
    return 0;
}

TEST(dead_creator)
{
    /* A creator that died after shm_open, before giving the file a size. */
    const char *name = heap_name("deadcreator");
    ASSERT_EQ(make_raw(name, 0), 0);
    CHECK(ga_shared_open(name, 0, 0, NULL) == NULL);
    ASSERT_EQ(ga_last_error(), GA_ENOENT);
    int created = -1;
    ga_heap_t *h = ga_shared_open(name, 2 * MIB, GA_SHARED_CREATE, &created);
    CHECK(h != NULL);
    ASSERT_EQ(created, 1);
    void *p = ga_shared_alloc(h, 10);
    CHECK(p != NULL);
    ga_shared_free(h, p);
    ASSERT_EQ(ga_shared_check(h, 0), 0);
    ga_shared_close(h);
    ga_shared_unlink(name, 0);
    /* ... and one that died half-way through writing the header (init state not READY) */
    ASSERT_EQ(make_raw(name, 256 * 1024), 0);
    h = ga_shared_open(name, 2 * MIB, GA_SHARED_CREATE, &created);
    CHECK(h != NULL);
    ASSERT_EQ(created, 1);
    ASSERT_EQ(ga_shared_check(h, 0), 0);
    ga_shared_close(h);
    ga_shared_unlink(name, 0);
}

TEST(attach_checks_header)
{
    const char *name = heap_name("format");
    ga_heap_t *h = create(name, 2 * MIB);
    ga_shared_close(h);
    uint32_t v = 99;
    uint64_t big = (uint64_t)1 << 40, magic = 0x1234;
    ASSERT_EQ(shm_test_rewrite(name, 8, &v, 4), 0); /* version */
    CHECK(ga_shared_open(name, 0, 0, NULL) == NULL);
    ASSERT_EQ(ga_last_error(), GA_EFORMAT);
    v = 1; /* format 1 (pthread mutexes in the segment): refused */
    ASSERT_EQ(shm_test_rewrite(name, 8, &v, 4), 0);
    CHECK(ga_shared_open(name, 0, 0, NULL) == NULL);
    ASSERT_EQ(ga_last_error(), GA_EFORMAT);
    v = SHM_VERSION;
    ASSERT_EQ(shm_test_rewrite(name, 8, &v, 4), 0);
    h = ga_shared_open(name, 0, 0, NULL);
    CHECK(h != NULL);
    ga_shared_close(h);
    ASSERT_EQ(shm_test_rewrite(name, 16, &big, 8), 0); /* max_size */
    CHECK(ga_shared_open(name, 0, 0, NULL) == NULL);
    ASSERT_EQ(ga_last_error(), GA_EFORMAT);
    ASSERT_EQ(shm_test_rewrite(name, 0, &magic, 8), 0);
    CHECK(ga_shared_open(name, 0, 0, NULL) == NULL);
    ASSERT_EQ(ga_last_error(), GA_EFORMAT);
    ga_shared_unlink(name, 0);
}

static int wait_fd;
static int child_attaches_and_waits(const char *name)
{
    ga_heap_t *h = ga_shared_open(name, 0, 0, NULL);
    char c;
    if (read(wait_fd, &c, 1) < 0) /* until the parent closes the pipe */
        return 2;
    return h ? ga_shared_close(h) : 1;
}

TEST(unlink_respects_attached)
{
    const char *name = heap_name("unlink");
    ga_heap_t *h = create(name, 2 * MIB);
    ga_shared_close(h);
    int fds[2];
    ASSERT_EQ(pipe(fds), 0);
    wait_fd = fds[0];
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[1]);
        _exit(child_attaches_and_waits(name));
    }
    close(fds[0]);
    /* wait until the child is attached */
    for (int i = 0; i < 2500; i++) {
        ga_heap_t *t = ga_shared_open(name, 0, 0, NULL);
        ga_shared_stats_t s;
        int n = t && ga_shared_stats(t, &s) == 0 ? (int)s.attached : 0;
        if (t) ga_shared_close(t);
        if (n == 2) break;
        usleep(2000);
    }
    ASSERT_EQ(ga_shared_unlink(name, 0), GA_EPERM);
    ASSERT_EQ(ga_shared_unlink(name, GA_SHARED_FORCE), 0);
    close(fds[1]);
    int st;
    waitpid(pid, &st, 0);
    ASSERT_EQ(WEXITSTATUS(st), 0);
}

static int child_allocs_and_dies(const char *name)
{
    ga_heap_t *h = ga_shared_open(name, 0, 0, NULL);
    if (!h) return 1;
    for (int i = 0; i < 10; i++)
        ga_shared_alloc(h, 100);
    void *keep = ga_shared_alloc(h, 300000);
    void *cached = ga_shared_alloc(h, 100);
    ga_shared_free(h, cached); /* stays in this process's cache */
    (void)keep;
    raise(SIGKILL);
    return 0;
}

static int child_allocs_and_detaches(const char *name)
{
    ga_heap_t *h = ga_shared_open(name, 0, 0, NULL);
    if (!h) return 1;
    uint64_t *offs = ga_shared_object(h, "offsets", 5 * sizeof(uint64_t), 0, NULL);
    for (int i = 0; i < 5; i++)
        offs[i] = ga_shared_offset(h, ga_shared_alloc(h, 64));
    return ga_shared_close(h);
}

TEST(dead_and_detached_peers)
{
    const char *name = heap_name("peers");
    ga_heap_t *h = create(name, 8 * MIB);
    ASSERT_EQ(in_child(child_allocs_and_dies, name), 128 + SIGKILL);
    ga_shared_stats_t s;
    ASSERT_EQ(ga_shared_stats(h, &s), 0);
    ASSERT_EQ(s.dead, 1);
    ASSERT_EQ(s.dead_blocks, 11);
    ASSERT_EQ(s.blocks_in_use, 11);
    ASSERT_EQ(ga_shared_check(h, 0), 0);
    size_t cached = s.bytes_cached; /* the dead child's cache, not yet recovered */
    CHECK(cached >= 128);
    long n = ga_shared_reclaim_dead(h);
    CHECK(n >= 12); /* 11 allocated + at least the one freed into its cache */
    ASSERT_EQ(ga_shared_stats(h, &s), 0);
    ASSERT_EQ(s.dead, 0);
    ASSERT_EQ(s.blocks_in_use, 0);
    ASSERT_EQ(s.bytes_cached, 0);
    ASSERT_EQ(ga_shared_check(h, 0), 0);
    ASSERT_EQ(ga_shared_reclaim_dead(h), 0);

    ASSERT_EQ(in_child(child_allocs_and_detaches, name), 0);
    ASSERT_EQ(ga_shared_stats(h, &s), 0);
    ASSERT_EQ(s.orphan_blocks, 5);
    ASSERT_EQ(s.dead, 0);
    uint64_t *offs = ga_shared_object_find(h, "offsets", NULL);
    CHECK(offs != NULL);
    for (int i = 0; offs && i < 5; i++)
        ASSERT_EQ(ga_shared_free(h, ga_shared_ptr(h, offs[i])), 0);
    ga_shared_object_remove(h, "offsets");
    ASSERT_EQ(ga_shared_stats(h, &s), 0);
    ASSERT_EQ(s.blocks_in_use, 0);
    ASSERT_EQ(ga_shared_check(h, 0), 0);
    ga_shared_close(h);
    ga_shared_unlink(name, 0);
}

static ga_heap_t *thr_heap;
static void *thr_ptrs[4][512];
static void *thread_churn(void *arg)
{
    int t = (int)(intptr_t)arg;
    for (int round = 0; round < 200; round++) {
        for (int i = 0; i < 512; i++) {
            /* free what the neighbour thread allocated (cross-thread frees) */
            void *old = __atomic_exchange_n(&thr_ptrs[(t + round) % 4][i], NULL, __ATOMIC_ACQ_REL);
            if (old) ga_shared_free(thr_heap, old);
            void *p = ga_shared_alloc(thr_heap, (size_t)(i * 7 + round) % 700);
            if (p) memset(p, t, 8);
            old = __atomic_exchange_n(&thr_ptrs[t][i], p, __ATOMIC_ACQ_REL);
            if (old) ga_shared_free(thr_heap, old);
        }
    }
    return NULL;
}

TEST(threads)
{
    const char *name = heap_name("threads");
    thr_heap = create(name, 64 * MIB);
    pthread_t th[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&th[i], NULL, thread_churn, (void *)(intptr_t)i);
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    ASSERT_EQ(ga_shared_check(thr_heap, 0), 0);
    for (int t = 0; t < 4; t++)
        for (int i = 0; i < 512; i++)
            if (thr_ptrs[t][i]) ASSERT_EQ(ga_shared_free(thr_heap, thr_ptrs[t][i]), 0);
    ga_shared_stats_t s;
    ga_shared_stats(thr_heap, &s);
    ASSERT_EQ(s.blocks_in_use, 0);
    ASSERT_EQ(ga_shared_check(thr_heap, 0), 0);
    ga_shared_close(thr_heap);
    ga_shared_unlink(name, 0);
}

TEST_MAIN(TEST_ENTRY(open_create_close), TEST_ENTRY(names_are_validated), TEST_ENTRY(blocks),
          TEST_ENTRY(block_starts_exact), TEST_ENTRY(realloc_calloc_large), TEST_ENTRY(heap_full),
          TEST_ENTRY(handles), TEST_ENTRY(handles_cross_process), TEST_ENTRY(named_objects),
          TEST_ENTRY(named_object_race), TEST_ENTRY(dead_creator), TEST_ENTRY(attach_checks_header),
          TEST_ENTRY(unlink_respects_attached), TEST_ENTRY(dead_and_detached_peers),
          TEST_ENTRY(threads))
