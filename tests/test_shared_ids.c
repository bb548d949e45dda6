/* SPDX-License-Identifier: MIT */
/*
 * Heap ids and sizes. A new heap takes an id no other heap in the shm directory has, so one
 * process can attach every heap it opens (ids are 11 bits of a handle, one heap per id per
 * process); the id stays in the heap's header, so a handle means the same block in every
 * process. The id search starts where tests say (ga__shm_test_next_id) to make a clash
 * certain. ga_shared_parse_size: suffixes, range, no wrap-around.
 */
#include "test.h"
#include "shared_test_util.h"
#include "shared/shared_internal.h"
#include <sys/wait.h>
#include <unistd.h>

#define MIB ((size_t)1 << 20)

TEST(ids_never_clash)
{
    const char *na = shm_test_name("ida"), *nb = shm_test_name("idb");
    ga__shm_test_next_id = 77;
    ga_heap_t *a = ga_shared_open(na, 2 * MIB, GA_SHARED_CREATE | GA_SHARED_EXCL, NULL);
    ga_heap_t *b = ga_shared_open(nb, 2 * MIB, GA_SHARED_CREATE | GA_SHARED_EXCL, NULL);
    ga__shm_test_next_id = 0;
    CHECK(a != NULL && b != NULL);
    if (!a || !b) return;
    ga_shared_stats_t sa, sb;
    ASSERT_EQ(ga_shared_stats(a, &sa), 0);
    ASSERT_EQ(ga_shared_stats(b, &sb), 0);
    ASSERT_NE(sa.heap_id, sb.heap_id);
    ga_handle_t ha = ga_shared_handle_alloc(a, 10, 0), hb = ga_shared_handle_alloc(b, 20, 0);
    CHECK(ha && hb);
    ASSERT_EQ(ga_handle_size(ha), 10);
    ASSERT_EQ(ga_handle_size(hb), 20);
    /* another process opens both, and the handles mean the same blocks there */
    pid_t pid = fork();
    if (pid == 0) {
        ga_heap_t *x = ga_shared_open(na, 0, 0, NULL), *y = ga_shared_open(nb, 0, 0, NULL);
        _exit(x && y && ga_handle_size(ha) == 10 && ga_handle_size(hb) == 20 ? 0 : 1);
    }
    int st = 0;
    CHECK(waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0);
    ga_handle_free(ha);
    ga_handle_free(hb);
    ga_shared_close(a);
    ga_shared_close(b);
    ga_shared_unlink(na, 0);
    ga_shared_unlink(nb, 0);
}

/* Sixteen heaps (ATT_MAX) open at once: 16 distinct ids, every open succeeds. */
TEST(sixteen_heaps_at_once)
{
    ga_heap_t *h[ATT_MAX];
    char names[ATT_MAX][64];
    const char *base = shm_test_name("ids16-");
    for (int i = 0; i < ATT_MAX; i++) {
        snprintf(names[i], sizeof names[i], "%s-%d", base, i);
        h[i] = ga_shared_open(names[i], MIB, GA_SHARED_CREATE | GA_SHARED_EXCL, NULL);
        CHECK(h[i] != NULL);
    }
    for (int i = 0; i < ATT_MAX; i++) {
        if (h[i]) ga_shared_close(h[i]);
        ga_shared_unlink(names[i], GA_SHARED_FORCE);
    }
}

TEST(parse_size)
{
    size_t v = 0;
    ASSERT_EQ(ga_shared_parse_size("16M", &v), 0);
    ASSERT_EQ(v, 16 * MIB);
    ASSERT_EQ(ga_shared_parse_size("1048576", &v), 0);
    ASSERT_EQ(v, MIB);
    ASSERT_EQ(ga_shared_parse_size("2g", &v), 0);
    ASSERT_EQ(v, (size_t)2 << 30);
    ASSERT_EQ(ga_shared_parse_size("64G", &v), 0);
    ASSERT_EQ(ga_shared_parse_size("1024k", &v), 0);
    ASSERT_EQ(v, MIB);
    v = 12345;
    ASSERT_EQ(ga_shared_parse_size("17179869185G", &v), GA_EOVERFLOW); /* 2^34+1 GiB: wraps */
    ASSERT_EQ(ga_shared_parse_size("65G", &v), GA_EOVERFLOW);
    ASSERT_EQ(ga_shared_parse_size("1T", &v), GA_EOVERFLOW);
    ASSERT_EQ(ga_shared_parse_size("99999999999999999999999999", &v), GA_EOVERFLOW);
    ASSERT_EQ(ga_shared_parse_size("1K", &v), GA_EOVERFLOW); /* below 1 MiB */
    ASSERT_EQ(v, 12345);                                     /* untouched on error */
    ASSERT_EQ(ga_shared_parse_size("", &v), GA_EINVAL);
    ASSERT_EQ(ga_shared_parse_size("M", &v), GA_EINVAL);
    ASSERT_EQ(ga_shared_parse_size("16MB", &v), GA_EINVAL);
    ASSERT_EQ(ga_shared_parse_size("16X", &v), GA_EINVAL);
    ASSERT_EQ(ga_shared_parse_size("-1", &v), GA_EINVAL);
    ASSERT_EQ(ga_shared_parse_size(" 16M", &v), GA_EINVAL);
    ASSERT_EQ(ga_shared_parse_size(NULL, &v), GA_EINVAL);
}

int main(int argc, char **argv)
{
    static const test_entry_t tests[] = {
        TEST_ENTRY(ids_never_clash),
        TEST_ENTRY(sixteen_heaps_at_once),
        TEST_ENTRY(parse_size),
    };
    return test_main(tests, sizeof tests / sizeof tests[0], argc, argv);
}
