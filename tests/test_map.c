/* SPDX-License-Identifier: MIT */
/*
 * Shared maps, in one process: every function of the ga_map_* API and its error paths, large
 * values, resizes, transactions, limits, a full heap (the map keeps what it had), and that the
 * map and the heap check clean after every test (ga_map_check, ga_shared_check).
 */
#include "test.h"
#include "shared_test_util.h"
#include <stdint.h>

static ga_heap_t *heap_new(const char *tag, size_t size)
{
    ga_heap_t *h =
        ga_shared_open(shm_test_name(tag), size, GA_SHARED_CREATE | GA_SHARED_EXCL, NULL);
    CHECK(h != NULL);
    return h;
}

static void heap_done(ga_heap_t *h)
{
    ASSERT_EQ(ga_shared_check(h, 0), 0);
    const char *name = ga_shared_name(h);
    char copy[128];
    snprintf(copy, sizeof copy, "%s", name);
    ga_shared_close(h);
    ga_shared_unlink(copy, GA_SHARED_FORCE);
}

static int quiet_handler(int err, const char *msg, uintptr_t p, void *arg)
{
    (void)err, (void)msg, (void)p;
    (*(int *)arg)++;
    return 1;
}

TEST(open_close_errors)
{
    ga_heap_t *h = heap_new("mapoc", 4 << 20);
    ga_set_last_error(0);
    CHECK(ga_map_open(h, "m", 0, NULL) == NULL);
    ASSERT_EQ(ga_last_error(), GA_ENOENT);
    CHECK(ga_map_open(NULL, "m", GA_MAP_CREATE, NULL) == NULL);
    ASSERT_EQ(ga_last_error(), GA_EINVAL);
    CHECK(ga_map_open(ga_heap_default(), "m", GA_MAP_CREATE, NULL) == NULL);
    ASSERT_EQ(ga_last_error(), GA_EINVAL);
    CHECK(ga_map_open(h, "m", 0x100, NULL) == NULL);
    ASSERT_EQ(ga_last_error(), GA_EINVAL);
    CHECK(ga_map_open(h, "a b", GA_MAP_CREATE, NULL) == NULL);
    ASSERT_EQ(ga_last_error(), GA_ENAME);
    CHECK(ga_map_open(h, "", GA_MAP_CREATE, NULL) == NULL);
    ASSERT_EQ(ga_last_error(), GA_ENAME);
    CHECK(ga_map_open(h, NULL, GA_MAP_CREATE, NULL) == NULL);
    ASSERT_EQ(ga_last_error(), GA_ENAME);
    char longname[80];
    memset(longname, 'x', sizeof longname - 1);
    longname[GA_MAP_NAME_MAX + 1] = 0;
    CHECK(ga_map_open(h, longname, GA_MAP_CREATE, NULL) == NULL);
    ASSERT_EQ(ga_last_error(), GA_ENAME);
    longname[GA_MAP_NAME_MAX] = 0;
    ga_map_t *lm = ga_map_open(h, longname, GA_MAP_CREATE, NULL);
    CHECK(lm != NULL);
    ga_map_close(lm);
    ga_map_options_t bad = {GA_MAP_KEY_MAX + 1, 0, 0};
    CHECK(ga_map_open(h, "m", GA_MAP_CREATE, &bad) == NULL);
    ASSERT_EQ(ga_last_error(), GA_EINVAL);
    bad = (ga_map_options_t){0, GA_MAP_VALUE_MAX + 1, 0};
    CHECK(ga_map_open(h, "m", GA_MAP_CREATE, &bad) == NULL);
    ASSERT_EQ(ga_last_error(), GA_EINVAL);

    ga_map_t *m = ga_map_open(h, "m", GA_MAP_CREATE | GA_MAP_EXCL, NULL);
    CHECK(m != NULL);
    CHECK(ga_map_open(h, "m", GA_MAP_CREATE | GA_MAP_EXCL, NULL) == NULL);
    ASSERT_EQ(ga_last_error(), GA_EEXIST);
    ga_map_t *m2 = ga_map_open(h, "m", 0, NULL);
    CHECK(m2 != NULL);
    ASSERT_EQ(ga_map_put(m, "k", 1, "v", 1), 0);
    char buf[8];
    ASSERT_EQ(ga_map_get_copy(m2, "k", 1, buf, sizeof buf, NULL), 1);
    ASSERT_EQ(ga_map_close(m2), 0);
    ASSERT_EQ(ga_map_close(NULL), 0);
    /* A named object that is no map. */
    CHECK(ga_shared_object(h, "map.notmap", 16, 0, NULL) != NULL);
    CHECK(ga_map_open(h, "notmap", 0, NULL) == NULL);
    ASSERT_EQ(ga_last_error(), GA_EEXIST);
    ASSERT_EQ(ga_map_check(m, 0), 0);
    ASSERT_EQ(ga_map_check(m, 0x80), GA_EINVAL);
    ASSERT_EQ(ga_map_check(NULL, 0), GA_EINVAL);
    ASSERT_EQ(ga_map_close(m), 0);
    ASSERT_EQ(ga_map_remove(h, "m"), 0);
    ASSERT_EQ(ga_map_remove(h, "m"), GA_ENOENT);
    ASSERT_EQ(ga_map_remove(h, "bad name"), GA_ENAME);
    CHECK(ga_map_open(h, "m", 0, NULL) == NULL);
    ASSERT_EQ(ga_last_error(), GA_ENOENT);
    ASSERT_EQ(ga_shared_object_remove(h, "map.notmap"), 0);
    heap_done(h);
}

TEST(put_get_delete)
{
    ga_heap_t *h = heap_new("mappg", 8 << 20);
    ga_map_t *m = ga_map_open(h, "pg", GA_MAP_CREATE, NULL);
    char buf[64];
    uint64_t v1 = 0, v2 = 0;
    ASSERT_EQ(ga_map_len(m), 0);
    ASSERT_EQ(ga_map_get_copy(m, "a", 1, buf, sizeof buf, NULL), GA_ENOENT);
    ASSERT_EQ(ga_map_delete(m, "a", 1), GA_ENOENT);
    ASSERT_EQ(ga_map_put(m, "a", 1, "hello", 5), 0);
    ASSERT_EQ(ga_map_get_copy(m, "a", 1, buf, sizeof buf, &v1), 5);
    CHECK(memcmp(buf, "hello", 5) == 0);
    ASSERT_EQ(ga_map_get_copy(m, "a", 1, NULL, 0, NULL), 5);
    ASSERT_EQ(ga_map_get_copy(m, "a", 1, buf, 4, NULL), GA_ERANGE);
    ASSERT_EQ(ga_map_put(m, "a", 1, "", 0), 0);
    ASSERT_EQ(ga_map_get_copy(m, "a", 1, buf, sizeof buf, &v2), 0);
    CHECK(v2 > v1);
    ASSERT_EQ(ga_map_put(m, "a", 1, NULL, 0), 0);
    ASSERT_EQ(ga_map_len(m), 1);
    void *val = NULL;
    size_t vlen = 99;
    ASSERT_EQ(ga_map_put(m, "b", 1, "world", 5), 0);
    ASSERT_EQ(ga_map_get(m, "b", 1, &val, &vlen, NULL), 0);
    ASSERT_EQ(vlen, 5);
    CHECK(val && strcmp(val, "world") == 0);
    ga_free(val);
    ASSERT_EQ(ga_map_get(m, "zz", 2, &val, &vlen, NULL), GA_ENOENT);
    CHECK(val == NULL);
    ASSERT_EQ(ga_map_get(m, "b", 1, NULL, &vlen, NULL), GA_EINVAL);
    ASSERT_EQ(ga_map_delete(m, "b", 1), 0);
    ASSERT_EQ(ga_map_get_copy(m, "b", 1, buf, sizeof buf, NULL), GA_ENOENT);
    ASSERT_EQ(ga_map_len(m), 1);
    /* binary keys with NULs */
    ASSERT_EQ(ga_map_put(m, "\0\1\0", 3, "x", 1), 0);
    ASSERT_EQ(ga_map_get_copy(m, "\0\1\0", 3, buf, sizeof buf, NULL), 1);
    ASSERT_EQ(ga_map_get_copy(m, "\0\1", 2, buf, sizeof buf, NULL), GA_ENOENT);
    /* bad arguments */
    ASSERT_EQ(ga_map_put(NULL, "a", 1, "v", 1), GA_EINVAL);
    ASSERT_EQ(ga_map_put(m, NULL, 1, "v", 1), GA_EINVAL);
    ASSERT_EQ(ga_map_put(m, "a", 1, NULL, 1), GA_EINVAL);
    ASSERT_EQ(ga_map_put(m, "a", 0, "v", 1), GA_ERANGE);
    ASSERT_EQ(ga_map_get_copy(m, "a", 0, buf, 1, NULL), GA_ERANGE);
    ASSERT_EQ(ga_map_get_copy(NULL, "a", 1, buf, 1, NULL), GA_EINVAL);
    ASSERT_EQ(ga_map_get_copy(m, NULL, 1, buf, 1, NULL), GA_EINVAL);
    ASSERT_EQ(ga_map_delete(m, "a", 0), GA_ERANGE);
    ASSERT_EQ(ga_map_delete(NULL, "a", 1), GA_EINVAL);
    ASSERT_EQ(ga_map_len(NULL), GA_EINVAL);
    ASSERT_EQ(ga_map_check(m, 0), 0);
    ga_map_close(m);
    heap_done(h);
}

TEST(large_values_and_resize)
{
    ga_heap_t *h = heap_new("mapbig", 64 << 20);
    ga_map_t *m = ga_map_open(h, "big", GA_MAP_CREATE, NULL);
    enum { N = 3000 };
    char key[32], val[64];
    for (int i = 0; i < N; i++) {
        int kl = snprintf(key, sizeof key, "key-%d", i);
        int vl = snprintf(val, sizeof val, "value-%d", i * 7);
        ASSERT_EQ(ga_map_put(m, key, (size_t)kl, val, (size_t)vl), 0);
    }
    ASSERT_EQ(ga_map_len(m), N);
    ga_map_info_t info;
    ASSERT_EQ(ga_map_info(m, &info), 0);
    ASSERT_EQ(info.count, N);
    CHECK(info.capacity >= N);
    ASSERT_EQ(info.blocks, 2 + N); /* root, table, entries */
    ASSERT_EQ(ga_map_info(m, NULL), GA_EINVAL);
    for (int i = 0; i < N; i += 2) {
        int kl = snprintf(key, sizeof key, "key-%d", i);
        ASSERT_EQ(ga_map_delete(m, key, (size_t)kl), 0);
    }
    ASSERT_EQ(ga_map_len(m), N / 2);
    for (int i = 0; i < N; i++) {
        int kl = snprintf(key, sizeof key, "key-%d", i);
        int vl = snprintf(val, sizeof val, "value-%d", i * 7);
        char got[64];
        long n = ga_map_get_copy(m, key, (size_t)kl, got, sizeof got, NULL);
        if (i % 2 == 0) {
            ASSERT_EQ(n, GA_ENOENT);
        } else {
            ASSERT_EQ(n, vl);
            CHECK(memcmp(got, val, (size_t)vl) == 0);
        }
    }
    /* Values in their own blocks: 1 KiB .. 1 MiB, replaced and deleted. */
    size_t sizes[] = {257, 1024, 70000, 1 << 20};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        unsigned char *b = malloc(sizes[s]), *g = malloc(sizes[s]);
        for (size_t i = 0; i < sizes[s]; i++)
            b[i] = (unsigned char)(i * 31 + s);
        ASSERT_EQ(ga_map_put(m, "large", 5, b, sizes[s]), 0);
        ASSERT_EQ(ga_map_get_copy(m, "large", 5, g, sizes[s], NULL), (long)sizes[s]);
        CHECK(memcmp(b, g, sizes[s]) == 0);
        void *v;
        size_t vl;
        ASSERT_EQ(ga_map_get(m, "large", 5, &v, &vl, NULL), 0);
        ASSERT_EQ(vl, sizes[s]);
        CHECK(memcmp(v, b, vl) == 0);
        ga_free(v);
        free(b), free(g);
        ASSERT_EQ(ga_map_check(m, 0), 0);
        ASSERT_EQ(ga_shared_check(h, 0), 0);
    }
    ASSERT_EQ(ga_map_delete(m, "large", 5), 0);
    ASSERT_EQ(ga_map_clear(m), 0);
    ASSERT_EQ(ga_map_len(m), 0);
    ASSERT_EQ(ga_map_get_copy(m, "key-1", 5, val, sizeof val, NULL), GA_ENOENT);
    ASSERT_EQ(ga_map_put(m, "again", 5, "1", 1), 0);
    ASSERT_EQ(ga_map_len(m), 1);
    ASSERT_EQ(ga_map_clear(NULL), GA_EINVAL);
    ASSERT_EQ(ga_map_check(m, 0), 0);
    ga_map_close(m);
    ASSERT_EQ(ga_map_remove(h, "big"), 0);
    /* Everything the map held went back. */
    ga_shared_stats_t st;
    ASSERT_EQ(ga_shared_stats(h, &st), 0);
    ASSERT_EQ(st.heap_blocks, 0);
    heap_done(h);
}

TEST(cas_incr)
{
    ga_heap_t *h = heap_new("mapcas", 4 << 20);
    ga_map_t *m = ga_map_open(h, "c", GA_MAP_CREATE, NULL);
    ASSERT_EQ(ga_map_cas(m, "k", 1, NULL, 0, "one", 3), 1);
    ASSERT_EQ(ga_map_cas(m, "k", 1, NULL, 0, "two", 3), 0);
    ASSERT_EQ(ga_map_cas(m, "k", 1, "two", 3, "three", 5), 0);
    ASSERT_EQ(ga_map_cas(m, "k", 1, "one", 3, "three", 5), 1);
    ASSERT_EQ(ga_map_cas(m, "k", 1, NULL, 3, "x", 1), GA_EINVAL);
    char buf[16];
    uint64_t ver = 0;
    ASSERT_EQ(ga_map_get_copy(m, "k", 1, buf, sizeof buf, &ver), 5);
    ASSERT_EQ(ga_map_cas_version(m, "k", 1, ver + 1, "x", 1), 0);
    ASSERT_EQ(ga_map_cas_version(m, "k", 1, ver, "four", 4), 1);
    ASSERT_EQ(ga_map_cas_version(m, "k", 1, ver, "five", 4), 0);
    ASSERT_EQ(ga_map_cas_version(m, "new", 3, 0, "n", 1), 1);
    ASSERT_EQ(ga_map_cas_version(m, "new", 3, 0, "n", 1), 0);
    ASSERT_EQ(ga_map_get_copy(m, "k", 1, buf, sizeof buf, NULL), 4);
    CHECK(memcmp(buf, "four", 4) == 0);
    int64_t r = 0;
    ASSERT_EQ(ga_map_incr(m, "n", 1, 5, &r), 0);
    ASSERT_EQ(r, 5);
    ASSERT_EQ(ga_map_incr(m, "n", 1, -7, &r), 0);
    ASSERT_EQ(r, -2);
    ASSERT_EQ(ga_map_incr(m, "n", 1, 2, NULL), 0);
    int64_t raw = 1;
    ASSERT_EQ(ga_map_get_copy(m, "n", 1, &raw, sizeof raw, NULL), 8);
    ASSERT_EQ(raw, 0);
    ASSERT_EQ(ga_map_incr(m, "k", 1, 1, &r), GA_EINVAL); /* "four" is no integer */
    ASSERT_EQ(ga_map_incr(NULL, "k", 1, 1, &r), GA_EINVAL);
    ASSERT_EQ(ga_map_check(m, 0), 0);
    ga_map_close(m);
    heap_done(h);
}

static int count_fn(const void *k, size_t kl, const void *v, size_t vl, uint64_t ver, void *arg)
{
    (void)ver;
    long *sum = arg;
    CHECK(kl >= 2 && vl == 8);
    int64_t x;
    memcpy(&x, v, 8);
    sum[0]++;
    sum[1] += x;
    CHECK(((const char *)k)[0] == 'k');
    return 0;
}

static int stop_fn(const void *k, size_t kl, const void *v, size_t vl, uint64_t ver, void *arg)
{
    (void)k, (void)kl, (void)v, (void)vl, (void)ver, (void)arg;
    return 1;
}

/* Writes inside the callback: the snapshot is not disturbed. */
static int mutate_fn(const void *k, size_t kl, const void *v, size_t vl, uint64_t ver, void *arg)
{
    (void)v, (void)vl, (void)ver;
    ga_map_t *m = arg;
    CHECK(ga_map_delete(m, k, kl) == 0);
    CHECK(ga_map_put(m, "new", 3, "x", 1) == 0);
    return 0;
}

TEST(iterate_txn)
{
    ga_heap_t *h = heap_new("mapit", 8 << 20);
    ga_map_t *m = ga_map_open(h, "it", GA_MAP_CREATE, NULL);
    char key[16];
    for (int64_t i = 0; i < 100; i++) {
        int kl = snprintf(key, sizeof key, "k%d", (int)i);
        ASSERT_EQ(ga_map_put(m, key, (size_t)kl, &i, 8), 0);
    }
    long sum[2] = {0, 0};
    ASSERT_EQ(ga_map_iterate(m, count_fn, sum), 100);
    ASSERT_EQ(sum[0], 100);
    ASSERT_EQ(sum[1], 4950);
    ASSERT_EQ(ga_map_iterate(m, stop_fn, NULL), 1);
    ASSERT_EQ(ga_map_iterate(m, NULL, NULL), GA_EINVAL);
    ASSERT_EQ(ga_map_iterate(NULL, stop_fn, NULL), GA_EINVAL);

    ga_map_txn_t *t = ga_map_txn_begin(m);
    CHECK(t != NULL);
    for (int64_t i = 0; i < 50; i++) {
        int kl = snprintf(key, sizeof key, "k%d", (int)i);
        ASSERT_EQ(ga_map_txn_delete(t, key, (size_t)kl), 0);
    }
    int64_t big = 1000;
    ASSERT_EQ(ga_map_txn_put(t, "k0", 2, &big, 8), 0); /* replaces the delete of k0 */
    ASSERT_EQ(ga_map_txn_put(t, "kx", 2, &big, 8), 0);
    ASSERT_EQ(ga_map_txn_delete(t, "absent", 6), 0);
    ASSERT_EQ(ga_map_txn_put(t, "", 0, &big, 8), GA_ERANGE);
    ASSERT_EQ(ga_map_txn_put(NULL, "a", 1, &big, 8), GA_EINVAL);
    ASSERT_EQ(ga_map_len(m), 100); /* nothing applied yet */
    ASSERT_EQ(ga_map_txn_commit(t), 0);
    ASSERT_EQ(ga_map_len(m), 52);
    sum[0] = sum[1] = 0;
    ASSERT_EQ(ga_map_iterate(m, count_fn, sum), 52);
    ASSERT_EQ(sum[1], 4950 - 1225 + 2000);
    t = ga_map_txn_begin(m);
    ASSERT_EQ(ga_map_txn_put(t, "k99", 3, &big, 8), 0);
    ga_map_txn_abort(t);
    ga_map_txn_abort(NULL);
    int64_t got = 0;
    ASSERT_EQ(ga_map_get_copy(m, "k99", 3, &got, 8, NULL), 8);
    ASSERT_EQ(got, 99);
    t = ga_map_txn_begin(m);
    ASSERT_EQ(ga_map_txn_commit(t), 0); /* empty */
    ASSERT_EQ(ga_map_txn_commit(NULL), GA_EINVAL);
    CHECK(ga_map_txn_begin(NULL) == NULL);
    /* Expectations: applied only while the versions read still hold. */
    uint64_t v99 = 0;
    ASSERT_EQ(ga_map_get_copy(m, "k99", 3, &got, 8, &v99), 8);
    t = ga_map_txn_begin(m);
    ASSERT_EQ(ga_map_txn_expect(t, "k99", 3, v99), 0);
    ASSERT_EQ(ga_map_txn_expect(t, "nokey", 5, 0), 0);
    ASSERT_EQ(ga_map_txn_put(t, "k99", 3, &big, 8), 0);
    ASSERT_EQ(ga_map_txn_commit(t), 0);
    ASSERT_EQ(ga_map_get_copy(m, "k99", 3, &got, 8, NULL), 8);
    ASSERT_EQ(got, 1000);
    t = ga_map_txn_begin(m); /* v99 is stale now */
    ASSERT_EQ(ga_map_txn_expect(t, "k99", 3, v99), 0);
    ASSERT_EQ(ga_map_txn_put(t, "k98", 3, &big, 8), 0);
    ASSERT_EQ(ga_map_txn_commit(t), 1);
    ASSERT_EQ(ga_map_get_copy(m, "k98", 3, &got, 8, NULL), 8);
    ASSERT_EQ(got, 98); /* nothing applied */
    t = ga_map_txn_begin(m);
    ASSERT_EQ(ga_map_txn_expect(t, "k98", 3, 0), 0); /* present: "absent" fails */
    ASSERT_EQ(ga_map_txn_commit(t), 1);
    t = ga_map_txn_begin(m);
    ASSERT_EQ(ga_map_txn_expect(t, "", 0, 0), GA_ERANGE);
    ASSERT_EQ(ga_map_txn_expect(NULL, "a", 1, 0), GA_EINVAL);
    ga_map_txn_abort(t);
    /* A transaction big enough to resize the table. */
    t = ga_map_txn_begin(m);
    for (int64_t i = 0; i < 500; i++) {
        int kl = snprintf(key, sizeof key, "kt%d", (int)i);
        ASSERT_EQ(ga_map_txn_put(t, key, (size_t)kl, &i, 8), 0);
    }
    ASSERT_EQ(ga_map_txn_commit(t), 0);
    ASSERT_EQ(ga_map_len(m), 552);
    ASSERT_EQ(ga_map_check(m, 0), 0);
    ASSERT_EQ(ga_map_iterate(m, mutate_fn, m), 552);
    ASSERT_EQ(ga_map_len(m), 1);
    ga_map_close(m);
    heap_done(h);
}

TEST(limits_and_full_heap)
{
    ga_heap_t *h = heap_new("mapfull", 2 << 20);
    ga_map_options_t o = {8, 100, 0};
    ga_map_t *m = ga_map_open(h, "lim", GA_MAP_CREATE, &o);
    ASSERT_EQ(ga_map_put(m, "123456789", 9, "v", 1), GA_ERANGE);
    ASSERT_EQ(ga_map_put(m, "12345678", 8, "v", 1), 0);
    char v[101] = {0};
    ASSERT_EQ(ga_map_put(m, "k", 1, v, 101), GA_ERANGE);
    ASSERT_EQ(ga_map_put(m, "k", 1, v, 100), 0);
    ga_map_txn_t *t = ga_map_txn_begin(m);
    ASSERT_EQ(ga_map_txn_put(t, "k", 1, v, 101), GA_ERANGE);
    ga_map_txn_abort(t);
    ga_map_close(m);
    /* The existing map keeps its limits whatever the options. */
    ga_map_options_t o2 = {1000, 1000, 0};
    m = ga_map_open(h, "lim", GA_MAP_CREATE, &o2);
    ga_map_info_t info;
    ASSERT_EQ(ga_map_info(m, &info), 0);
    ASSERT_EQ(info.max_key, 8);
    ASSERT_EQ(info.max_value, 100);
    ga_map_close(m);

    /* A full heap: GA_EFULL / GA_ENOMEM, and every value already there stays. */
    ga_map_options_t o3 = {0, 1 << 20, 0};
    m = ga_map_open(h, "full", GA_MAP_CREATE, &o3);
    static unsigned char blob[200000];
    int n = 0, rc = 0;
    char key[16];
    for (; n < 1000; n++) {
        memset(blob, n & 0xFF, sizeof blob);
        int kl = snprintf(key, sizeof key, "b%d", n);
        if ((rc = ga_map_put(m, key, (size_t)kl, blob, sizeof blob)) != 0) break;
    }
    CHECK(rc == GA_EFULL || rc == GA_ENOMEM);
    CHECK(n > 2);
    ASSERT_EQ(ga_map_len(m), n);
    for (int i = 0; i < n; i++) {
        int kl = snprintf(key, sizeof key, "b%d", i);
        static unsigned char got[200000];
        ASSERT_EQ(ga_map_get_copy(m, key, (size_t)kl, got, sizeof got, NULL), sizeof blob);
        CHECK(got[0] == (unsigned char)i && got[sizeof got - 1] == (unsigned char)i);
    }
    /* A transaction that cannot fit applies nothing. */
    t = ga_map_txn_begin(m);
    for (int i = 0; i < 20; i++) {
        int kl = snprintf(key, sizeof key, "t%d", i);
        ga_map_txn_put(t, key, (size_t)kl, blob, sizeof blob);
    }
    ga_map_txn_put(t, "b0", 2, "small", 5);
    rc = ga_map_txn_commit(t);
    CHECK(rc == GA_EFULL || rc == GA_ENOMEM);
    ASSERT_EQ(ga_map_len(m), n);
    ASSERT_EQ(ga_map_get_copy(m, "b0", 2, NULL, 0, NULL), sizeof blob);
    ASSERT_EQ(ga_map_check(m, 0), 0);
    ASSERT_EQ(ga_shared_check(h, 0), 0);
    ASSERT_EQ(ga_map_clear(m), 0);
    ASSERT_EQ(ga_map_put(m, "b0", 2, blob, sizeof blob), 0); /* room again */
    ga_map_close(m);
    heap_done(h);
}

/* Damage in the segment is GA_ECORRUPT, reported, never a crash. */
TEST(corrupt_map)
{
    ga_heap_t *h = heap_new("mapbad", 8 << 20);
    ga_map_t *m = ga_map_open(h, "bad", GA_MAP_CREATE, NULL);
    char key[16];
    for (int i = 0; i < 40; i++) {
        int kl = snprintf(key, sizeof key, "k%d", i);
        ASSERT_EQ(ga_map_put(m, key, (size_t)kl, key, (size_t)kl), 0);
    }
    static char zeros[4000];
    ASSERT_EQ(ga_map_put(m, "large", 5, zeros, sizeof zeros), 0);
    size_t size = 0;
    unsigned char *root = ga_shared_object_find(h, "map.bad", &size);
    CHECK(root != NULL && size >= 744);
    int reports = 0;
    ga_set_error_handler(quiet_handler, &reports);
    uint64_t toff;
    memcpy(&toff, root + 56, 8); /* table_off */
    unsigned char *table = ga_shared_ptr(h, toff);
    uint64_t cap;
    memcpy(&cap, table + 8, 8);
    /* 1: a slot pointing outside the segment, 2: at a random place, 3: a table offset far
     * away, 4: a huge value length, 5: a wrong count. Each restored after. */
    unsigned char save[8];
    uint64_t bogus[] = {0xFFFFFFFFull, 0x12345ull, 0};
    for (int b = 0; b < 2; b++) {
        for (uint64_t i = 0; i < cap; i++) {
            uint64_t s;
            memcpy(&s, table + 16 + i * 8, 8);
            if (s <= 1) continue;
            memcpy(save, table + 16 + i * 8, 8);
            uint64_t ns = (s & 0xFFFFFFFF00000000ull) | bogus[b];
            memcpy(table + 16 + i * 8, &ns, 8);
            ASSERT_EQ(ga_map_check(m, 0), GA_ECORRUPT);
            ASSERT_EQ(ga_shared_check(h, GA_CHECK_QUIET), GA_ECORRUPT);
            /* Readers of any key: an answer or GA_ECORRUPT, never a crash. */
            for (int k = 0; k < 40; k++) {
                int kl = snprintf(key, sizeof key, "k%d", k);
                char got[16];
                long n = ga_map_get_copy(m, key, (size_t)kl, got, sizeof got, NULL);
                CHECK(n == kl || n == 1 || n == GA_ECORRUPT || n == GA_ENOENT);
                int pr = ga_map_put(m, key, (size_t)kl, "x", 1);
                CHECK(pr == 0 || pr == GA_ECORRUPT);
            }
            memcpy(table + 16 + i * 8, save, 8);
            break;
        }
    }
    ga_map_check(m, GA_CHECK_QUIET);
    uint64_t far = (uint64_t)1 << 40;
    memcpy(save, root + 56, 8);
    memcpy(root + 56, &far, 8);
    ASSERT_EQ(ga_map_check(m, 0), GA_ECORRUPT);
    ASSERT_EQ(ga_map_get_copy(m, "k1", 2, key, sizeof key, NULL), GA_ECORRUPT);
    ASSERT_EQ(ga_map_put(m, "k1", 2, "v", 1), GA_ECORRUPT);
    ASSERT_EQ(ga_map_len(m) >= 0, 1);
    CHECK(ga_map_iterate(m, stop_fn, NULL) == GA_ECORRUPT);
    ga_map_info_t info;
    ASSERT_EQ(ga_map_info(m, &info), GA_ECORRUPT);
    memcpy(root + 56, save, 8);
    /* Root limits changed: the checksum. */
    memcpy(save, root + 16, 8);
    root[16] ^= 1;
    ga_map_t *m2 = ga_map_open(h, "bad", 0, NULL);
    CHECK(m2 == NULL);
    ASSERT_EQ(ga_last_error(), GA_ECORRUPT);
    memcpy(root + 16, save, 8);
    root[8] = 99; /* format version */
    CHECK(ga_map_open(h, "bad", 0, NULL) == NULL);
    ASSERT_EQ(ga_last_error(), GA_EFORMAT);
    root[8] = 1;
    CHECK(reports > 0);
    ga_set_error_handler(NULL, NULL);
    /* Restored: clean again, and the writes made meanwhile are all there. */
    ASSERT_EQ(ga_map_check(m, 0), 0);
    for (int k = 0; k < 40; k++) {
        int kl = snprintf(key, sizeof key, "k%d", k);
        char got[16];
        long n = ga_map_get_copy(m, key, (size_t)kl, got, sizeof got, NULL);
        CHECK(n == 1 || n == kl);
    }
    ga_map_close(m);
    heap_done(h);
}

static const test_entry_t tests[] = {
    TEST_ENTRY(open_close_errors), TEST_ENTRY(put_get_delete), TEST_ENTRY(large_values_and_resize),
    TEST_ENTRY(cas_incr),          TEST_ENTRY(iterate_txn),    TEST_ENTRY(limits_and_full_heap),
    TEST_ENTRY(corrupt_map),
};

int main(int argc, char **argv)
{
    return test_main(tests, sizeof tests / sizeof tests[0], argc, argv);
}
