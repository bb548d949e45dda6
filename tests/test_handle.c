/* SPDX-License-Identifier: MIT */
/*
 * The native handle API (ga_handle_*): every function and each of its error codes, the handle
 * value encoding, table growth, statistics, and ga_heap_check's handle-table half (including
 * deliberately corrupted data headers).
 */
#include "test.h"
#include "handle/handle.h"
#include "os/os.h"
#include <pthread.h>
#include <stdatomic.h>
#include <sys/wait.h>
#include <unistd.h>

#define HUGE_NOMEM ((size_t)1 << 47) /* no overflow, but no memory either */

TEST(test_alloc_free)
{
    ga_handle_t h = ga_handle_alloc(NULL, 100, 0);
    CHECK(h != 0);
    ASSERT_EQ(h % 16, 8);
    ASSERT_EQ(h >> 52, 0); /* process heap id 0, bit 63 clear */
    ASSERT_EQ(ga_handle_size(h), 100);
    ASSERT_EQ(ga_handle_free(h), 0);
    ASSERT_EQ(ga_handle_free(h), GA_EHANDLE);
    ASSERT_EQ(ga_handle_free(0), GA_EHANDLE);
    ASSERT_EQ(ga_handle_free(0xdeadbee8), GA_EHANDLE);
    ASSERT_EQ(ga_handle_free(0xdeadbee0), GA_EHANDLE);
    /* explicit default heap */
    h = ga_handle_alloc(ga_heap_default(), 1, GA_HZERO | GA_HDISCARDABLE | GA_HSHARE);
    CHECK(h != 0);
    ASSERT_EQ(ga_handle_free(h), 0);
}

TEST(test_alloc_errors)
{
    int other_heap;
    ga_set_last_error(GA_OK);
    ASSERT_EQ(ga_handle_alloc((ga_heap_t *)&other_heap, 10, 0), 0);
    ASSERT_EQ(ga_last_error(), GA_EINVAL);
    ga_set_last_error(GA_OK);
    ASSERT_EQ(ga_handle_alloc(NULL, 10, GA_HMOVE), 0);
    ASSERT_EQ(ga_last_error(), GA_EINVAL);
    ASSERT_EQ(ga_handle_alloc(NULL, 10, GA_HDISCARDED), 0);
    ASSERT_EQ(ga_handle_alloc(NULL, 10, 0x100), 0);
    ga_set_last_error(GA_OK);
    ASSERT_EQ(ga_handle_alloc(NULL, SIZE_MAX, 0), 0);
    ASSERT_EQ(ga_last_error(), GA_EOVERFLOW);
    ga_set_last_error(GA_OK);
    ASSERT_EQ(ga_handle_alloc(NULL, SIZE_MAX - 15, GA_HZERO), 0);
    ASSERT_EQ(ga_last_error(), GA_EOVERFLOW);
    ga_set_last_error(GA_OK);
    ASSERT_EQ(ga_handle_alloc(NULL, HUGE_NOMEM, 0), 0);
    ASSERT_EQ(ga_last_error(), GA_ENOMEM);
    ASSERT_EQ(ga__handle_count(), 0); /* failed allocations leave no handle behind */
}

TEST(test_zero_size_is_discarded)
{
    ga_handle_t h = ga_handle_alloc(NULL, 0, GA_HDISCARDABLE);
    CHECK(h != 0);
    ga_handle_info_t info;
    ASSERT_EQ(ga_handle_info(h, &info), 0);
    ASSERT_EQ(info.size, 0);
    ASSERT_EQ(info.lock_count, 0);
    ASSERT_EQ(info.flags, GA_HDISCARDABLE | GA_HDISCARDED);
    ASSERT_EQ(info.data, NULL);
    ga_set_last_error(GA_OK);
    ASSERT_EQ(ga_handle_lock(h), NULL);
    ASSERT_EQ(ga_last_error(), GA_EDISCARDED);
    ga_set_last_error(GA_OK);
    ASSERT_EQ(ga_handle_size(h), 0);
    ASSERT_EQ(ga_last_error(), GA_OK); /* 0 is the size here, not an error */
    ASSERT_EQ(ga_handle_free(h), 0);
}

TEST(test_lock_unlock)
{
    ga_handle_t h = ga_handle_alloc(NULL, 64, GA_HZERO);
    unsigned char *p = ga_handle_lock(h);
    CHECK(p != NULL && ((uintptr_t)p & 15) == 0);
    for (int i = 0; i < 64; i++)
        CHECK(p[i] == 0);
    ASSERT_EQ(ga_handle_lock(h), p);
    ASSERT_EQ(ga_handle_unlock(h), 1);
    ASSERT_EQ(ga_handle_unlock(h), 0);
    ASSERT_EQ(ga_handle_unlock(h), GA_ENOTLOCKED);
    for (int i = 0; i < 300; i++)
        ga_handle_lock(h);
    ga_handle_info_t info;
    ga_handle_info(h, &info);
    ASSERT_EQ(info.lock_count, 255);
    ASSERT_EQ(info.data, p);
    ASSERT_EQ(ga_handle_unlock(h), 254);
    ga_set_last_error(GA_OK);
    ASSERT_EQ(ga_handle_lock(0), NULL);
    ASSERT_EQ(ga_last_error(), GA_EHANDLE);
    ASSERT_EQ(ga_handle_lock(h | ((uint64_t)1 << 52)), NULL); /* other heap id */
    ASSERT_EQ(ga_handle_lock(h | ((uint64_t)1 << 63)), NULL);
    ASSERT_EQ(ga_handle_lock(h ^ ((uint64_t)1 << 28)), NULL); /* other generation */
    ASSERT_EQ(ga_handle_lock(h + 8), NULL);                   /* not handle-shaped */
    ASSERT_EQ(ga_handle_unlock(h ^ ((uint64_t)1 << 28)), GA_EHANDLE);
    ASSERT_EQ(ga_handle_free(h), 0);
    ga_set_last_error(GA_OK);
    ASSERT_EQ(ga_handle_lock(h), NULL);
    ASSERT_EQ(ga_last_error(), GA_EHANDLE);
    ASSERT_EQ(ga_handle_unlock(h), GA_EHANDLE);
}

TEST(test_realloc)
{
    ga_handle_t h = ga_handle_alloc(NULL, 10, 0);
    memset(ga_handle_lock(h), 0x3c, 10);
    ga_handle_unlock(h);
    ASSERT_EQ(ga_handle_realloc(h, 100000, GA_HZERO), 0);
    unsigned char *p = ga_handle_lock(h);
    for (int i = 0; i < 10; i++)
        CHECK(p[i] == 0x3c);
    for (int i = 10; i < 100000; i += 997)
        CHECK(p[i] == 0);
    /* locked: shrink in place; growth past the block without GA_HMOVE: GA_ENOMEM */
    ASSERT_EQ(ga_handle_realloc(h, 50, 0), 0);
    ASSERT_EQ(ga_handle_lock(h), p);
    ga_handle_unlock(h);
    size_t usable = ga_usable_size((char *)p - GA__HDR_SIZE);
    CHECK(usable >= 50 + GA__HDR_SIZE);
    ASSERT_EQ(ga_handle_realloc(h, usable * 2, 0), GA_ENOMEM);
    ASSERT_EQ(ga_handle_size(h), 50);
    ASSERT_EQ(ga_handle_realloc(h, HUGE_NOMEM, GA_HMOVE), GA_ENOMEM);
    ASSERT_EQ(ga_handle_realloc(h, SIZE_MAX, GA_HMOVE), GA_EOVERFLOW);
    ASSERT_EQ(ga_handle_size(h), 50);
    /* GA_HMOVE moves a locked block; the lock count survives */
    ASSERT_EQ(ga_handle_realloc(h, usable * 2, GA_HMOVE), 0);
    ga_handle_info_t info;
    ga_handle_info(h, &info);
    ASSERT_EQ(info.lock_count, 1);
    ASSERT_EQ(info.size, usable * 2);
    ASSERT_EQ(ga_handle_from_ptr(info.data), h);
    for (int i = 0; i < 10; i++)
        CHECK(((unsigned char *)info.data)[i] == 0x3c);
    /* size 0 discards, but never a locked block */
    ASSERT_EQ(ga_handle_realloc(h, 0, 0), GA_ELOCKED);
    ASSERT_EQ(ga_handle_unlock(h), 0);
    ASSERT_EQ(ga_handle_realloc(h, 0, 0), 0);
    ga_handle_info(h, &info);
    ASSERT_EQ(info.flags, GA_HDISCARDED);
    /* revive */
    ASSERT_EQ(ga_handle_realloc(h, 20, GA_HZERO), 0);
    ga_handle_info(h, &info);
    ASSERT_EQ(info.flags, 0);
    ASSERT_EQ(info.size, 20);
    /* bad flags, bad handles */
    ASSERT_EQ(ga_handle_realloc(h, 20, GA_HDISCARDABLE), GA_EINVAL);
    ASSERT_EQ(ga_handle_realloc(h, 20, 0x80), GA_EINVAL);
    ASSERT_EQ(ga_handle_realloc(0, 20, 0), GA_EHANDLE);
    ASSERT_EQ(ga_handle_free(h), 0);
    ASSERT_EQ(ga_handle_realloc(h, 20, 0), GA_EHANDLE);
    ASSERT_EQ(ga_handle_realloc(h, 0, 0), GA_EHANDLE);
}

TEST(test_discard)
{
    ga_handle_t h = ga_handle_alloc(NULL, 100, GA_HSHARE);
    void *p = ga_handle_lock(h);
    ASSERT_EQ(ga_handle_discard(h), GA_ELOCKED);
    ASSERT_EQ(ga_handle_size(h), 100);
    ASSERT_EQ(ga_handle_from_ptr(p), h);
    ga_handle_unlock(h);
    ASSERT_EQ(ga_handle_discard(h), 0);
    ASSERT_EQ(ga_handle_discard(h), 0);
    ga_handle_info_t info;
    ga_handle_info(h, &info);
    ASSERT_EQ(info.flags, GA_HSHARE | GA_HDISCARDED);
    ASSERT_EQ(info.size, 0);
    ASSERT_EQ(info.data, NULL);
    ASSERT_EQ(ga_handle_free(h), 0);
    ASSERT_EQ(ga_handle_discard(h), GA_EHANDLE);
    ASSERT_EQ(ga_handle_discard(8), GA_EHANDLE);
}

TEST(test_info_size)
{
    ga_handle_t h = ga_handle_alloc(NULL, 0x123, GA_HDISCARDABLE);
    ga_handle_info_t info;
    memset(&info, 0xff, sizeof info);
    ASSERT_EQ(ga_handle_info(h, &info), 0);
    ASSERT_EQ(info.size, 0x123);
    ASSERT_EQ(info.lock_count, 0);
    ASSERT_EQ(info.flags, GA_HDISCARDABLE);
    CHECK(info.data != NULL);
    ASSERT_EQ(ga_handle_info(h, NULL), GA_EINVAL);
    ASSERT_EQ(ga_handle_size(h), 0x123);
    ASSERT_EQ(ga_handle_free(h), 0);
    ASSERT_EQ(ga_handle_info(h, &info), GA_EHANDLE);
    ga_set_last_error(GA_OK);
    ASSERT_EQ(ga_handle_size(h), 0);
    ASSERT_EQ(ga_last_error(), GA_EHANDLE);
}

TEST(test_from_ptr)
{
    ga_handle_t h = ga_handle_alloc(NULL, 40, 0);
    char *p = ga_handle_lock(h);
    ASSERT_EQ(ga_handle_from_ptr(p), h);
    ga_handle_unlock(h);
    ASSERT_EQ(ga_handle_from_ptr(p), h); /* still its current data, unlocked or not */
    void *m = ga_malloc(40);
    int dummy;
    const void *bad[] = {NULL, p + 16, m, &dummy, (void *)(uintptr_t)0xdeadbee0, (void *)h};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ga_set_last_error(GA_OK);
        ASSERT_EQ(ga_handle_from_ptr(bad[i]), 0);
        ASSERT_EQ(ga_last_error(), GA_ENOTOWNED);
    }
    ga_free(m);
    int err;
    void *f = ga__fixed_alloc(40, false, &err);
    ASSERT_EQ(ga_handle_from_ptr(f), 0); /* fixed blocks have no handle */
    ASSERT_EQ(ga__fixed_free(f), 0);
    /* after a move the old pointer no longer names the handle */
    ASSERT_EQ(ga_handle_realloc(h, 500000, 0), 0);
    char *q = ga_handle_lock(h);
    ASSERT_EQ(ga_handle_from_ptr(q), h);
    ga_handle_unlock(h);
    ASSERT_EQ(ga_handle_free(h), 0);
    ASSERT_EQ(ga_handle_from_ptr(q), 0);
}

TEST(test_modify)
{
    ga_handle_t h = ga_handle_alloc(NULL, 8, 0);
    ga_handle_info_t info;
    ASSERT_EQ(ga_handle_modify(h, GA_HDISCARDABLE, 0), 0);
    ga_handle_info(h, &info);
    ASSERT_EQ(info.flags, GA_HDISCARDABLE);
    ASSERT_EQ(ga_handle_modify(h, GA_HSHARE, GA_HDISCARDABLE), 0);
    ga_handle_info(h, &info);
    ASSERT_EQ(info.flags, GA_HSHARE);
    ASSERT_EQ(ga_handle_modify(h, 0, GA_HSHARE), 0);
    ga_handle_info(h, &info);
    ASSERT_EQ(info.flags, 0);
    ga_handle_lock(h);
    ASSERT_EQ(ga_handle_modify(h, GA_HDISCARDABLE | GA_HSHARE, 0), 0); /* locked is fine */
    ga_handle_info(h, &info);
    ASSERT_EQ(info.flags, GA_HDISCARDABLE | GA_HSHARE);
    ASSERT_EQ(info.lock_count, 1);
    ASSERT_EQ(ga_handle_modify(h, GA_HZERO, 0), GA_EINVAL);
    ASSERT_EQ(ga_handle_modify(h, 0, GA_HDISCARDED), GA_EINVAL);
    ASSERT_EQ(ga_handle_modify(h, GA_HMOVE, 0), GA_EINVAL);
    ASSERT_EQ(ga_handle_free(h), 0);
    ASSERT_EQ(ga_handle_modify(h, GA_HDISCARDABLE, 0), GA_EHANDLE);
}

TEST(test_generations)
{
    /* Free and reallocate many times: each value is new, the old ones stay dead. */
    ga_handle_t old[64];
    for (int i = 0; i < 64; i++) {
        old[i] = ga_handle_alloc(NULL, 4, 0);
        ASSERT_EQ(ga_handle_free(old[i]), 0);
    }
    for (int i = 0; i < 64; i++) {
        for (int j = 0; j < i; j++)
            CHECK(old[i] != old[j]);
        ASSERT_EQ(ga_handle_size(old[i]), 0);
        ASSERT_EQ(ga_handle_lock(old[i]), NULL);
    }
}

TEST(test_many_handles_and_stats)
{
    enum { N = 10000 }; /* more than one chunk of slots */
    static ga_handle_t hs[N];
    size_t before = ga__handle_count();
    for (int i = 0; i < N; i++) {
        hs[i] = ga_handle_alloc(NULL, (size_t)(i % 5) * 8, 0);
        CHECK(hs[i] != 0);
    }
    ASSERT_EQ(ga__handle_count(), before + N);
    ga_stats_t st;
    ASSERT_EQ(ga_heap_stats(NULL, &st), 0);
    ASSERT_EQ(st.handles_in_use, before + N);
    CHECK_HEAP();
    for (int i = 0; i < N; i += 2)
        ASSERT_EQ(ga_handle_free(hs[i]), 0);
    ASSERT_EQ(ga__handle_count(), before + N / 2);
    CHECK_HEAP();
    for (int i = 1; i < N; i += 2)
        ASSERT_EQ(ga_handle_free(hs[i]), 0);
    ASSERT_EQ(ga__handle_count(), before);
}

/* Uses up every free slot of the mapped chunks (zero-size handles: no data blocks). Returns
 * how many handles it made; they are in *out (caller frees). */
static size_t exhaust(ga_handle_t **out, int *last_err)
{
    size_t cap = (size_t)ga__handle_test_chunks() * 4096 + 1;
    ga_handle_t *hs = ga_malloc(cap * sizeof *hs);
    size_t n = 0;
    while (n < cap) {
        ga_set_last_error(GA_OK);
        ga_handle_t h = ga_handle_alloc(NULL, 0, 0);
        if (!h) break;
        hs[n++] = h;
    }
    *last_err = ga_last_error();
    *out = hs;
    return n;
}

TEST(test_table_full_and_growth_failure)
{
    /* GA_EFULL: the table may not grow past its current chunks. */
    ga_handle_t *hs;
    int err;
    ga__handle_test_limit(ga__handle_test_chunks() ? ga__handle_test_chunks() : 1);
    size_t n = exhaust(&hs, &err);
    ASSERT_EQ(err, GA_EFULL);
    CHECK(n >= 1 && n < (size_t)ga__handle_test_chunks() * 4096 + 1);
    ASSERT_EQ(ga_handle_alloc(NULL, 64, GA_HZERO), 0);
    ASSERT_EQ(ga_last_error(), GA_EFULL);
    int e2;
    void *f = ga__fixed_alloc(64, true, &e2); /* fixed blocks need no slot */
    CHECK(f != NULL);
    ga__fixed_free(f);
    CHECK_HEAP();
    /* freeing one slot makes room again */
    ASSERT_EQ(ga_handle_free(hs[--n]), 0);
    hs[n] = ga_handle_alloc(NULL, 8, 0);
    CHECK(hs[n] != 0);
    n++;
    /* GA_ENOMEM: growth allowed but the OS refuses the mapping */
    ga__handle_test_limit(0);
    ga__os_fail_after(1);
    ga_set_last_error(GA_OK);
    ASSERT_EQ(ga_handle_alloc(NULL, 0, 0), 0);
    ASSERT_EQ(ga_last_error(), GA_ENOMEM);
    ga__os_fail_after(0);
    ga_handle_t grown = ga_handle_alloc(NULL, 0, 0); /* now it grows */
    CHECK(grown != 0);
    ga_handle_free(grown);
    for (size_t i = 0; i < n; i++)
        ASSERT_EQ(ga_handle_free(hs[i]), 0);
    ga_free(hs);
}

/* In a fork child: the handle table checks clean, and every free slot is usable exactly once
 * (filling the table up to its current size makes total - live handles, then GA_EFULL). */
static bool child_table_sound(void)
{
    bool ok = ga_heap_check(NULL, GA_CHECK_QUIET) == 0;
    size_t live = ga__handle_count();
    ga__handle_test_limit(ga__handle_test_chunks());
    size_t total = (size_t)ga__handle_test_chunks() * 4096, made = 0;
    while (ga_handle_alloc(NULL, 0, 0))
        made++;
    ok = ok && ga_last_error() == GA_EFULL && made == total - live;
    return ok && ga_heap_check(NULL, GA_CHECK_QUIET) == 0;
}

static pthread_barrier_t g_fork_barrier;
static void *fork_helper(void *arg)
{
    (void)arg;
    ga_handle_t hs[20];
    for (int i = 0; i < 20; i++)
        hs[i] = ga_handle_alloc(NULL, 16, 0);
    for (int i = 0; i < 10; i++)
        ga_handle_free(hs[i]); /* their slots wait in this thread's cache */
    pthread_barrier_wait(&g_fork_barrier);
    pthread_barrier_wait(&g_fork_barrier); /* the child has run */
    for (int i = 10; i < 20; i++)
        ga_handle_free(hs[i]);
    return NULL;
}

/* In a fork child only the forking thread survives: the other threads' cached free slots must
 * become usable there, and the table must check clean. */
TEST(test_fork_child_adopts_caches)
{
    pthread_t t[2];
    pthread_barrier_init(&g_fork_barrier, NULL, 3);
    for (int i = 0; i < 2; i++)
        pthread_create(&t[i], NULL, fork_helper, NULL);
    pthread_barrier_wait(&g_fork_barrier);
    size_t live = ga__handle_count();
    pid_t pid = fork();
    if (pid == 0) {
        _exit(ga__handle_count() == live && child_table_sound() ? 0 : 1);
    }
    int status = -1;
    waitpid(pid, &status, 0);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    pthread_barrier_wait(&g_fork_barrier);
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    pthread_barrier_destroy(&g_fork_barrier);
    ASSERT_EQ(ga__handle_count(), live - 20);
}

enum { FH = 8 };
static ga_handle_t g_fork_handles[FH];
static atomic_int g_fork_stop;
static void *busy_worker(void *arg)
{
    unsigned w = (unsigned)(uintptr_t)arg, k = 0; /* worker w owns handles w*4 .. w*4+3 */
    while (!atomic_load(&g_fork_stop)) {
        ga_handle_t h = g_fork_handles[w * 4 + k++ % 4];
        size_t size = (k & 1) ? 100000 : 100; /* moving and in place */
        ga_handle_realloc(h, size, GA_HMOVE);
        char *p = ga_handle_lock(h);
        if (p) p[0] = 'w';
        ga_handle_unlock(h);
        if (k % 7 == 0) ga_handle_discard(h);
        if (k % 11 == 0) ga_handle_modify(h, GA_HDISCARDABLE, 0);
    }
    return NULL;
}

/* Forks while two threads resize, discard and modify handles: in the child, every handle must
 * answer (a slot left BUSY by a thread that does not exist there would make it wait forever)
 * and work, and the heap must check clean. */
TEST(test_fork_during_handle_operations)
{
    for (int i = 0; i < FH; i++)
        g_fork_handles[i] = ga_handle_alloc(NULL, 64, 0);
    atomic_store(&g_fork_stop, 0);
    pthread_t t[2];
    for (uintptr_t i = 0; i < 2; i++)
        pthread_create(&t[i], NULL, busy_worker, (void *)i);
    int bad = 0;
    for (int round = 0; round < 100; round++) {
        pid_t pid = fork();
        if (pid == 0) {
            /* Bounds a deadlock; a TSan child filling the table on a loaded 2-core machine has
             * taken more than 5 s, so the bound is generous. */
            alarm(60); /* a hang is a failure (SIGALRM) */
            int ok = 1;
            for (int i = 0; i < FH; i++) {
                ga_handle_t h = g_fork_handles[i];
                ga_handle_info_t info;
                ok = ok && ga_handle_info(h, &info) == 0;
                ok = ok && ga_handle_realloc(h, 300, GA_HMOVE) == 0;
                char *p = ga_handle_lock(h);
                ok = ok && p != NULL;
                if (p) memset(p, 'c', 300);
                /* still locked if the fork came between a worker's lock and unlock */
                ok = ok && ga_handle_unlock(h) == (info.lock_count > 0);
                ok = ok && ga_handle_size(h) == 300 && ga_handle_free(h) == 0;
            }
            ok = ok && ga_heap_check(NULL, GA_CHECK_QUIET) == 0;
            _exit(ok ? 0 : 1);
        }
        int status = -1;
        waitpid(pid, &status, 0);
        if (!(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
            bad++;
            fprintf(stderr, "round %d: child status %#x\n", round, status);
        }
    }
    ASSERT_EQ(bad, 0);
    atomic_store(&g_fork_stop, 1);
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    for (int i = 0; i < FH; i++)
        ASSERT_EQ(ga_handle_free(g_fork_handles[i]), 0);
}

static void *churn_worker(void *arg)
{
    unsigned seed = (unsigned)(uintptr_t)arg * 2654435761u + 7;
    ga_handle_t mine[100] = {0}; /* more than a slot cache holds: refills and spills happen */
    while (!atomic_load(&g_fork_stop)) {
        seed = seed * 1103515245u + 12345u;
        int burst = 1 + (int)((seed >> 20) % 60);
        for (int i = 0; i < 100 && burst > 0; i++, burst--) {
            int k = (int)((seed >> 8) + (unsigned)i) % 100;
            if (mine[k]) {
                ga_handle_free(mine[k]);
                mine[k] = 0;
            } else {
                mine[k] = ga_handle_alloc(NULL, (seed & 1) ? 0 : 24, 0);
            }
        }
    }
    for (int k = 0; k < 100; k++)
        if (mine[k]) ga_handle_free(mine[k]);
    return NULL;
}

/* Forks while two threads allocate and free handles (slots moving between the free stacks and
 * the threads' caches): in the child, the table must check clean (every slot either live or
 * on exactly one free stack, the live count right) and every free slot must be usable once. */
TEST(test_fork_during_handle_alloc_and_free)
{
    atomic_store(&g_fork_stop, 0);
    pthread_t t[2];
    for (uintptr_t i = 0; i < 2; i++)
        pthread_create(&t[i], NULL, churn_worker, (void *)(i + 1));
    int bad = 0;
    for (int round = 0; round < 200; round++) {
        pid_t pid = fork();
        if (pid == 0) {
            /* Bounds a deadlock; a TSan child filling the table on a loaded 2-core machine has
             * taken more than 5 s, so the bound is generous. */
            alarm(60);
            _exit(child_table_sound() ? 0 : 1);
        }
        int status = -1;
        waitpid(pid, &status, 0);
        if (!(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
            bad++;
            fprintf(stderr, "round %d: child status %#x\n", round, status);
        }
    }
    atomic_store(&g_fork_stop, 1);
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    ASSERT_EQ(bad, 0);
}

static int g_reports;
static int g_last_err;
static int count_handler(int err, const char *msg, uintptr_t ptr, void *arg)
{
    (void)msg;
    (void)ptr;
    (void)arg;
    g_reports++;
    g_last_err = err;
    return 1;
}

TEST(test_check_detects_corruption)
{
    ga_handle_t h = ga_handle_alloc(NULL, 100, 0);
    uint64_t *hdr = (uint64_t *)((char *)ga_handle_lock(h) - GA__HDR_SIZE);
    ga_handle_unlock(h);
    ga_set_error_handler(count_handler, NULL);
    g_reports = 0;
    ASSERT_EQ(ga_heap_check(NULL, GA_CHECK_QUIET), 0);

    hdr[GA__HDR_TAG] ^= 0x10; /* tag no longer names the handle */
    ASSERT_EQ(ga_heap_check(NULL, GA_CHECK_QUIET), GA_ECORRUPT);
    ASSERT_EQ(g_reports, 0); /* quiet */
    ASSERT_EQ(ga_heap_check(NULL, 0), GA_ECORRUPT);
    ASSERT_EQ(g_reports, 1);
    ASSERT_EQ(g_last_err, GA_ECORRUPT);
    hdr[GA__HDR_TAG] ^= 0x10;
    ASSERT_EQ(ga_heap_check(NULL, GA_CHECK_QUIET), 0);

    hdr[0] = 101; /* size word disagrees with the slot */
    ASSERT_EQ(ga_heap_check(NULL, GA_CHECK_QUIET), GA_ECORRUPT);
    hdr[0] = 100;
    ASSERT_EQ(ga_heap_check(NULL, GA_CHECK_QUIET), 0);
    ga_set_error_handler(NULL, NULL);
    ASSERT_EQ(ga_handle_free(h), 0);
}

/* ---- threads: alloc/free from several threads, shared handles ---- */

static ga_handle_t g_shared;
static void *alloc_free_thread(void *arg)
{
    unsigned seed = (unsigned)(uintptr_t)arg;
    ga_handle_t mine[32] = {0};
    uintptr_t bad = 0;
    for (int i = 0; i < 20000; i++) {
        seed = seed * 1103515245u + 12345u;
        int k = (int)((seed >> 16) % 32);
        if (mine[k]) {
            unsigned char *p = ga_handle_lock(mine[k]);
            if (!p || p[0] != (unsigned char)k) bad++;
            ga_handle_unlock(mine[k]);
            if (ga_handle_free(mine[k]) != 0) bad++;
            mine[k] = 0;
        } else {
            mine[k] = ga_handle_alloc(NULL, 1 + (seed >> 8) % 300, 0);
            unsigned char *p = ga_handle_lock(mine[k]);
            if (!p)
                bad++;
            else
                p[0] = (unsigned char)k;
            ga_handle_unlock(mine[k]);
        }
        if (ga_handle_lock(g_shared) == NULL || ga_handle_unlock(g_shared) < 0) bad++;
    }
    for (int k = 0; k < 32; k++)
        if (mine[k]) ga_handle_free(mine[k]);
    return (void *)bad;
}

TEST(test_threads)
{
    size_t before = ga__handle_count();
    g_shared = ga_handle_alloc(NULL, 16, 0);
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&t[i], NULL, alloc_free_thread, (void *)(uintptr_t)(i + 1));
    for (int i = 0; i < 4; i++) {
        void *bad;
        pthread_join(t[i], &bad);
        ASSERT_EQ((uintptr_t)bad, 0);
    }
    ga_handle_info_t info;
    ASSERT_EQ(ga_handle_info(g_shared, &info), 0);
    ASSERT_EQ(info.lock_count, 0);
    ASSERT_EQ(ga_handle_free(g_shared), 0);
    ASSERT_EQ(ga__handle_count(), before);
}

TEST_MAIN(TEST_ENTRY(test_alloc_free), TEST_ENTRY(test_alloc_errors),
          TEST_ENTRY(test_zero_size_is_discarded), TEST_ENTRY(test_lock_unlock),
          TEST_ENTRY(test_realloc), TEST_ENTRY(test_discard), TEST_ENTRY(test_info_size),
          TEST_ENTRY(test_from_ptr), TEST_ENTRY(test_modify), TEST_ENTRY(test_generations),
          TEST_ENTRY(test_many_handles_and_stats), TEST_ENTRY(test_check_detects_corruption),
          TEST_ENTRY(test_threads), TEST_ENTRY(test_table_full_and_growth_failure),
          TEST_ENTRY(test_fork_child_adopts_caches),
          TEST_ENTRY(test_fork_during_handle_operations),
          TEST_ENTRY(test_fork_during_handle_alloc_and_free))
