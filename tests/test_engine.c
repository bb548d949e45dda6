/* SPDX-License-Identifier: MIT */
/* Engine internals: size classes, pages filling up and emptying, full pages revived by frees
 * from other threads, abandoned segments adopted, huge blocks, injected OS failures, and the
 * checker catching corrupted free lists. */
#include "test.h"
#include "engine/engine_internal.h"
#include <pthread.h>
#include <stdatomic.h>
#include <sys/wait.h>
#include <unistd.h>

TEST(size_classes_are_consistent)
{
    for (unsigned c = 0; c < GA_CLASS_COUNT; c++) {
        ASSERT_EQ(ga__class_size[c] % 16, 0);
        if (c > 0)
            CHECK(ga__class_size[c] > ga__class_size[c - 1]);
        ASSERT_EQ(ga__size_class(ga__class_size[c]), c);
        if (c > 0)
            ASSERT_EQ(ga__size_class(ga__class_size[c - 1] + 1), c);
    }
    ASSERT_EQ(ga__class_size[GA_CLASS_COUNT - 1], GA_LARGE_MAX);
    for (size_t w = 0; w < GA_DIRECT_SLOTS; w++)
        ASSERT_EQ(ga__direct_class[w], ga__size_class(w == 0 ? 1 : w * 16));
    /* Worst-case waste above 128 bytes stays under 25%. */
    for (size_t s = 129; s <= GA_LARGE_MAX; s += 97)
        CHECK(ga__class_size[ga__size_class(s)] * 4 < s * 5 + 64);
}

static size_t live_blocks(void)
{
    ga_stats_t st;
    ASSERT_EQ(ga_heap_stats(NULL, &st), 0);
    return st.blocks_in_use;
}

TEST(pages_fill_and_empty)
{
    enum { N = 20000 };
    static void *ptrs[N];
    size_t before = live_blocks();
    for (int i = 0; i < N; i++) {
        ptrs[i] = ga_malloc(48);
        CHECK(ptrs[i] != NULL);
        memset(ptrs[i], i & 0xff, 48);
    }
    ASSERT_EQ(live_blocks(), before + N);
    CHECK_HEAP();
    for (int i = 0; i < N; i += 2)
        ga_free(ptrs[i]);
    CHECK_HEAP();
    for (int i = 1; i < N; i += 2) {
        ASSERT_EQ(((unsigned char *)ptrs[i])[47], i & 0xff);
        ga_free(ptrs[i]);
    }
    ASSERT_EQ(live_blocks(), before);
    CHECK_HEAP();
}

/* ---- cross-thread frees into full pages ---- */

enum { XN = 50000 };
static void *xptrs[XN];

static void *free_all(void *arg)
{
    (void)arg;
    for (int i = 0; i < XN; i++)
        ga_free(xptrs[i]);
    return NULL;
}

TEST(cross_thread_frees_revive_full_pages)
{
    size_t before = live_blocks();
    ga_stats_t st0;
    ga_heap_stats(NULL, &st0);
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < XN; i++)
            xptrs[i] = ga_malloc(100);
        pthread_t t;
        pthread_create(&t, NULL, free_all, NULL);
        pthread_join(t, NULL);
        ASSERT_EQ(live_blocks(), before);
        CHECK_HEAP();
    }
    /* The pages freed by the other thread must be reused, not grown without bound. */
    ga_stats_t st1;
    ga_heap_stats(NULL, &st1);
    CHECK(st1.bytes_mapped <= st0.bytes_mapped + ((size_t)16 << 20));
}

/* ---- thread exit: abandoned segments are adopted ---- */

static void *alloc_and_exit(void *arg)
{
    void **out = arg;
    for (int i = 0; i < 1000; i++)
        out[i] = ga_malloc((size_t)(i % 700) + 1);
    return NULL;
}

TEST(exited_thread_blocks_are_freed_by_others)
{
    static void *held[1000];
    size_t before = live_blocks();
    pthread_t t;
    pthread_create(&t, NULL, alloc_and_exit, held);
    pthread_join(t, NULL);
    ASSERT_EQ(live_blocks(), before + 1000);
    CHECK_HEAP();
    for (int i = 0; i < 1000; i++)
        ga_free(held[i]);
    ASSERT_EQ(live_blocks(), before);
    CHECK_HEAP();
    /* Force adoption and cleanup of the abandoned segments. */
    ga_heap_collect(NULL, 1);
    CHECK_HEAP();
}

TEST(huge_blocks)
{
    ga_stats_t st;
    ga_heap_stats(NULL, &st);
    size_t huge0 = st.huge_blocks;
    size_t sizes[] = {GA_LARGE_MAX + 1, (size_t)1 << 20, (size_t)5 << 20, (size_t)33 << 20};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        unsigned char *p = ga_malloc(sizes[i]);
        CHECK(p != NULL);
        CHECK(ga_usable_size(p) >= sizes[i]);
        p[0] = 1;
        p[sizes[i] - 1] = 2;
        ga_heap_stats(NULL, &st);
        ASSERT_EQ(st.huge_blocks, huge0 + 1);
        p = ga_realloc(p, sizes[i] * 2);
        CHECK(p != NULL);
        ASSERT_EQ(p[0], 1);
        ASSERT_EQ(p[sizes[i] - 1], 2);
        ga_free(p);
        ga_heap_stats(NULL, &st);
        ASSERT_EQ(st.huge_blocks, huge0);
    }
    CHECK(ga_heap_collect(NULL, 1) > 0);
}

TEST(aligned_blocks_free_from_any_offset)
{
    CHECK(ga_aligned_alloc(GA_MAX_ALIGN * 2, 16) == NULL);
    ASSERT_EQ(ga_last_error(), GA_EINVAL);
    for (size_t a = 32; a <= GA_MAX_ALIGN; a *= 2) {
        void *p = ga_aligned_alloc(a, 100);
        CHECK(p != NULL);
        ASSERT_EQ((uintptr_t)p % a, 0);
        CHECK(ga_usable_size(p) >= 100);
        memset(p, 0x5a, 100);
        void *q = ga_aligned_alloc(a, a * 3);
        CHECK(q != NULL);
        ASSERT_EQ((uintptr_t)q % a, 0);
        ga_free(p);
        ga_free(q);
    }
}

static int reports;
static int last_report;
static int count_reports(int err, const char *msg, uintptr_t value, void *arg)
{
    (void)msg, (void)value, (void)arg;
    reports++;
    last_report = err;
    return 1;
}

TEST(double_free_and_foreign_pointers_are_reported)
{
    ga_set_error_handler(count_reports, NULL);
    reports = 0;
    void *p = ga_malloc(64);
    ga_free(p);
    ga_free(p);
    ASSERT_EQ(reports, 1);
    ASSERT_EQ(last_report, GA_EDOUBLEFREE);
    int local;
    ga_free(&local);
    ASSERT_EQ(reports, 2);
    ASSERT_EQ(last_report, GA_ENOTOWNED);
    char *q = ga_malloc(256);
    ga_free(q + 16); /* interior pointer */
    ASSERT_EQ(reports, 3);
    ga_free(q);
    void *h = ga_malloc((size_t)2 << 20);
    ga_free(h);
    ga_free(h);
    ASSERT_EQ(reports, 4);
    ASSERT_EQ(last_report, GA_EDOUBLEFREE);
    ga_set_error_handler(NULL, NULL);
}

TEST(checker_finds_a_broken_free_list)
{
    ga_set_error_handler(count_reports, NULL);
    void *keep = ga_malloc(32); /* keeps the page alive */
    uintptr_t *p = ga_malloc(32);
    ga_free(p);
    uintptr_t saved = p[0];
    p[0] = 0x1234560; /* write after free */
    ASSERT_EQ(ga_heap_check(NULL, GA_CHECK_QUIET), GA_ECORRUPT);
    p[0] = saved;
    ASSERT_EQ(ga_heap_check(NULL, GA_CHECK_QUIET), 0);
    ga_free(keep);
    ga_set_error_handler(NULL, NULL);
}

TEST(os_failures_give_null_not_crashes)
{
    for (unsigned long n = 1; n <= 4; n++) {
        ga_heap_collect(NULL, 1);
        ga__os_fail_after(n);
        void *p = ga_malloc((size_t)3 << 20); /* needs a new mapping */
        if (n == 1) {
            CHECK(p == NULL);
            ASSERT_EQ(ga_last_error(), GA_ENOMEM);
        }
        ga__os_fail_after(0);
        ga_free(p);
        CHECK_HEAP();
    }
    CHECK(ga_malloc(SIZE_MAX) == NULL);
    ASSERT_EQ(ga_last_error(), GA_ENOMEM);
    CHECK(ga_malloc(SIZE_MAX - 4096) == NULL);
    CHECK(ga_calloc(SIZE_MAX / 2, 3) == NULL);
    ASSERT_EQ(ga_last_error(), GA_EOVERFLOW);
}

TEST(memory_goes_back_to_the_os)
{
    ga_heap_collect(NULL, 1);
    ga_stats_t st0, st1, st2;
    ga_heap_stats(NULL, &st0);
    enum { N = 4000 };
    static void *ptrs[N];
    for (int i = 0; i < N; i++)
        ptrs[i] = ga_malloc(8000);
    ga_heap_stats(NULL, &st1);
    CHECK(st1.bytes_mapped >= st0.bytes_mapped + (size_t)N * 8000);
    for (int i = 0; i < N; i++)
        ga_free(ptrs[i]);
    ga_heap_collect(NULL, 1);
    ga_heap_stats(NULL, &st2);
    CHECK(st2.bytes_mapped <= st0.bytes_mapped + ((size_t)4 << 20));
}

/* ---- fork while other threads allocate ---- */

static atomic_int stop_churn;
static void *churn(void *arg)
{
    (void)arg;
    void *keep[64] = {0};
    for (unsigned i = 0; !atomic_load(&stop_churn); i++) {
        ga_free(keep[i % 64]);
        keep[i % 64] = ga_malloc(16 + (i * 37) % 5000);
    }
    for (int i = 0; i < 64; i++)
        ga_free(keep[i]);
    return NULL;
}

TEST(fork_while_threads_allocate)
{
    pthread_t t[2];
    atomic_store(&stop_churn, 0);
    for (int i = 0; i < 2; i++)
        pthread_create(&t[i], NULL, churn, NULL);
    for (int round = 0; round < 20; round++) {
        pid_t pid = fork();
        if (pid == 0) {
            /* The child has only this thread; the heap must be usable and consistent. */
            void *p[1000];
            for (int i = 0; i < 1000; i++)
                p[i] = ga_malloc((size_t)(i % 3000) + 1);
            for (int i = 0; i < 1000; i++)
                ga_free(p[i]);
            _exit(ga_heap_check(NULL, GA_CHECK_QUIET) == 0 ? 0 : 3);
        }
        int status = 0;
        CHECK(pid > 0);
        waitpid(pid, &status, 0);
        CHECK(WIFEXITED(status));
        ASSERT_EQ(WEXITSTATUS(status), 0);
    }
    atomic_store(&stop_churn, 1);
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
}

TEST_MAIN(TEST_ENTRY(size_classes_are_consistent), TEST_ENTRY(pages_fill_and_empty),
          TEST_ENTRY(cross_thread_frees_revive_full_pages),
          TEST_ENTRY(exited_thread_blocks_are_freed_by_others), TEST_ENTRY(huge_blocks),
          TEST_ENTRY(aligned_blocks_free_from_any_offset),
          TEST_ENTRY(double_free_and_foreign_pointers_are_reported),
          TEST_ENTRY(checker_finds_a_broken_free_list), TEST_ENTRY(os_failures_give_null_not_crashes),
          TEST_ENTRY(memory_goes_back_to_the_os), TEST_ENTRY(fork_while_threads_allocate))
