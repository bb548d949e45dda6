/* SPDX-License-Identifier: MIT */
/* The debug heap in-process: leak reports (site, size, count, reachability, marks), fill
 * patterns and guards, ga_heap_check finding overruns and writes after free, misuse reported to
 * the error handler with the block's details, blocks from before debug mode, raw blocks of the
 * other layers, threads. (Bugs that abort are in death_debug.c.) */
#include "test.h"
#include "internal.h"
#include "debug/debug.h"
#include "engine/engine.h"
#include <fcntl.h>
#include <pthread.h>
#include <sys/mman.h>
#include <unistd.h>

/* The report text of ga_leak_report_since(mark, fd, flags), and its return value. */
static char report_buf[1 << 16];
static long report(uint64_t mark, unsigned flags)
{
    int fd = memfd_create("leaks", 0);
    long n = ga_leak_report_since(mark, fd, flags);
    off_t len = lseek(fd, 0, SEEK_CUR);
    if (len < 0 || len >= (off_t)sizeof report_buf) len = sizeof report_buf - 1;
    ssize_t r = pread(fd, report_buf, (size_t)len, 0);
    report_buf[r > 0 ? r : 0] = 0;
    close(fd);
    return n;
}

/* Overwrites dead stack below the caller, so stale copies of pointers do not keep blocks alive. */
static __attribute__((noinline, no_sanitize("address"))) void clobber_stack(void)
{
    volatile char junk[16384];
    for (size_t i = 0; i < sizeof junk; i++)
        junk[i] = 0;
}

static void *before_debug, *before_aligned; /* allocated before debug mode: no header */
static volatile uintptr_t hidden; /* pointers the leak scan cannot see (stored inverted) */

static int seen_err, seen_count;
static uintptr_t seen_ptr;
static char seen_msg[512];
static int record_handler(int err, const char *msg, uintptr_t ptr, void *arg)
{
    (void)arg;
    seen_err = err;
    seen_ptr = ptr;
    seen_count++;
    snprintf(seen_msg, sizeof seen_msg, "%s", msg);
    return 1; /* continue */
}

TEST(enable_and_options)
{
    before_debug = ga_malloc(100);
    before_aligned = ga_aligned_alloc(256, 100);
    CHECK(before_debug != NULL && before_aligned != NULL);
    ASSERT_EQ(ga_debug_enabled(), 0);
    ASSERT_EQ(ga_leak_count(), GA_EPERM);
    ASSERT_EQ(ga_debug_enable("stacks=32,bogus=1"), GA_EINVAL);
    ASSERT_EQ(ga_debug_enabled(), 0);
    /* every refusal names the item and why, through the error handler */
    static const char *const bad[][2] = {
        {"stacks=32,bogus=1", "\"bogus=1\": unknown option"},
        {"check=abc", "\"check=abc\": expected a number"},
        {"quarantine=1t", "\"quarantine=1t\": expected a number"},
        {"guard=-5", "\"guard=-5\": expected a number"},
        {"leaks=7", "\"leaks=7\": expected 0, 1 or all"},
        {"exitcode=300", "\"exitcode=300\": an exit status is 0..255"},
        {"report=/nonexistent-dir/x", "cannot open the file"},
        {"report=", "expected a file name"},
        {"on=3", "\"on=3\": takes no value"},
    };
    ga_set_error_handler(record_handler, NULL);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        seen_msg[0] = 0;
        ASSERT_EQ(ga_debug_enable(bad[i][0]), GA_EINVAL);
        CHECK(strstr(seen_msg, bad[i][1]) != NULL);
        if (!strstr(seen_msg, bad[i][1])) fprintf(stderr, "%s -> %s\n", bad[i][0], seen_msg);
        /* the same list checked without enabling: the same refusal */
        seen_msg[0] = 0;
        ASSERT_EQ(ga_debug_check_options(bad[i][0]), GA_EINVAL);
        CHECK(strstr(seen_msg, bad[i][1]) != NULL);
    }
    ga_set_error_handler(NULL, NULL);
    ASSERT_EQ(ga_debug_check_options("stacks=32,guard=24,quarantine=64k,fill,leaks=all"), 0);
    ASSERT_EQ(ga_debug_check_options(NULL), 0);
    ASSERT_EQ(ga_debug_check_options("0"), 0);
    ASSERT_EQ(ga_debug_enabled(), 0); /* checking switched nothing on */
    ASSERT_EQ(ga_debug_enable("stacks=32,guard=24,quarantine=64k,fill,leaks=0"), 0);
    ASSERT_EQ(ga_debug_enabled(), 1);
    ASSERT_EQ(ga_debug_enable("0"), GA_EPERM);
    ASSERT_EQ(ga_debug_enabled(), 1);
}

TEST(blocks_from_before_debug_mode_still_work)
{
    ASSERT_EQ(ga_owns(before_debug), 1);
    CHECK(ga_usable_size(before_debug) >= 100);
    memset(before_debug, 7, 100);
    char *q = ga_realloc(before_debug, 300); /* becomes a debug block */
    CHECK(q != NULL);
    ASSERT_EQ(q[99], 7);
    ASSERT_EQ(ga_usable_size(q), 300);
    ga_free(q);
    void *old = ga_malloc(10); /* now a debug block */
    ga_free(old);
    ASSERT_EQ(ga_owns(before_aligned), 1);
    CHECK(ga_usable_size(before_aligned) >= 100);
    ga_free(before_aligned); /* an aligned pointer inside its engine block: still fine */
    CHECK_HEAP();
}

static __attribute__((noinline)) void leak_three_blocks(void)
{
    for (int i = 0; i < 3; i++) {
        void *p = ga_malloc(40);
        hidden ^= ~(uintptr_t)p; /* lose the pointer */
    }
}
static __attribute__((noinline)) void leak_one_big(void)
{
    hidden ^= ~(uintptr_t)ga_malloc(5000);
}

TEST(leaks_are_grouped_by_site_largest_first)
{
    uint64_t mark = ga_debug_mark();
    leak_three_blocks();
    leak_one_big();
    clobber_stack();
    ASSERT_EQ(report(mark, 0), 4);
    CHECK(strstr(report_buf, "5120 bytes in 4 blocks from 2 allocation sites") != NULL);
    char *big = strstr(report_buf, "5000 bytes in 1 block of 5000 bytes");
    char *small = strstr(report_buf, "120 bytes in 3 blocks of 40 bytes");
    CHECK(big != NULL && small != NULL && big < small);
    char *big_fn = strstr(report_buf, "leak_one_big");
    char *small_fn = strstr(report_buf, "leak_three_blocks");
    CHECK(big_fn != NULL && small_fn != NULL && big_fn < small && small < small_fn);
    CHECK(strstr(report_buf, "test_debug_heap.c:") != NULL);
    /* the caller shows up as the next frame (frame pointers) */
    CHECK(strstr(small_fn, "leaks_are_grouped_by_site_largest_first") != NULL);
    if (test_failures_) fputs(report_buf, stderr);
    ASSERT_EQ(report(ga_debug_mark(), 0), 0); /* nothing since a fresh mark */
    ASSERT_EQ(report_buf[0], 0);
}

static void *volatile keep_alive; /* volatile: stores to it must stay */
struct node {
    struct node *next;
    char pad[24];
};

static __attribute__((noinline)) void build_list(int n)
{
    struct node *head = NULL;
    for (int i = 0; i < n; i++) {
        struct node *x = ga_malloc(sizeof *x);
        x->next = head;
        head = x;
    }
    keep_alive = (char *)head + 8; /* an interior pointer still counts */
}

TEST(reachable_blocks_are_not_leaks)
{
    uint64_t mark = ga_debug_mark();
    build_list(5);
    clobber_stack();
    ASSERT_EQ(report(mark, 0), 0);
    ASSERT_EQ(report(mark, GA_LEAK_ALL | GA_LEAK_NOSYM), 5);
    CHECK(strstr(report_buf, "160 bytes in 5 blocks of 32 bytes") != NULL);
    /* dropping the root leaks the whole list */
    keep_alive = NULL;
    ASSERT_EQ(report(mark, GA_LEAK_QUIET), 5);
    ASSERT_EQ(report_buf[0], 0);
}

TEST(freed_blocks_are_not_leaks)
{
    uint64_t mark = ga_debug_mark();
    for (int i = 0; i < 1000; i++) {
        void *p = ga_malloc((size_t)i);
        void *q = ga_calloc(3, (size_t)i);
        p = ga_realloc(p, (size_t)i * 2 + 1);
        ga_free(q);
        ga_free(p);
    }
    void *a = ga_aligned_alloc(4096, 100);
    ga_free(a);
    clobber_stack();
    ASSERT_EQ(report(mark, GA_LEAK_ALL), 0);
}

TEST(fill_patterns_and_guards)
{
    unsigned char *p = ga_malloc(24);
    for (int i = 0; i < 24; i++)
        ASSERT_EQ(p[i], 0xCD);
    ASSERT_EQ(ga_usable_size(p), 24);
    for (int i = 1; i <= 8; i++)
        ASSERT_EQ(p[-i], 0xFD); /* front guard */
    for (int i = 24; i < 48; i++)
        ASSERT_EQ(p[i], 0xFD); /* tail guard (guard=24) */
    unsigned char *z = ga_calloc(5, 5);
    for (int i = 0; i < 25; i++)
        ASSERT_EQ(z[i], 0);
    memset(p, 1, 24);
    ga_free(p);
    for (int i = 0; i < 24; i++) /* still in the quarantine: freed pattern */
        ASSERT_EQ(p[i], 0xDD);
    ASSERT_EQ(ga_owns(p), 0);
    ASSERT_EQ(ga_usable_size(p), 0);
    ga_free(z);
    unsigned char *a = ga_aligned_alloc(256, 40);
    ASSERT_EQ((uintptr_t)a % 256, 0);
    ASSERT_EQ(a[39], 0xCD);
    ga_free(a);
    CHECK_HEAP();
}

TEST(heap_check_finds_overruns_and_writes_after_free)
{
    unsigned char *p = ga_malloc(33);
    CHECK_HEAP();
    p[33] = 0; /* one past the end */
    ASSERT_EQ(ga_heap_check(NULL, GA_CHECK_QUIET), GA_EOVERRUN);
    p[33] = 0xFD;
    p[-3] = 0;
    ASSERT_EQ(ga_heap_check(NULL, GA_CHECK_QUIET), GA_EOVERRUN);
    p[-3] = 0xFD;
    CHECK_HEAP();
    ga_free(p);
    p[5] = 'x'; /* write after free, while the block is in the quarantine */
    ASSERT_EQ(ga_heap_check(NULL, GA_CHECK_QUIET), GA_ECORRUPT);
    p[5] = 0xDD;
    CHECK_HEAP();
}

static __attribute__((noinline)) void *alloc_for_handler(void)
{
    return ga_malloc(24);
}

TEST(misuse_goes_to_the_error_handler)
{
    /* the stacks go to the report fd: keep the test output quiet */
    int saved = dup(2), null = open("/dev/null", O_WRONLY);
    dup2(null, 2);
    ga_set_error_handler(record_handler, NULL);
    unsigned char *p = alloc_for_handler();
    ga_free(p);
    ga_free(p);
    ASSERT_EQ(seen_err, GA_EDOUBLEFREE);
    ASSERT_EQ(seen_ptr, (uintptr_t)p);
    CHECK(strstr(seen_msg, "double free") && strstr(seen_msg, "24 bytes") &&
          strstr(seen_msg, "allocation #"));

    static char not_heap[64];
    ga_free(not_heap + 16);
    ASSERT_EQ(seen_err, GA_ENOTOWNED);
    ASSERT_EQ(seen_ptr, (uintptr_t)(not_heap + 16));

    unsigned char *q = ga_malloc(100);
    ga_free(q + 32);
    ASSERT_EQ(seen_err, GA_ENOTOWNED);
    CHECK(strstr(seen_msg, "32 bytes into a block") && strstr(seen_msg, "100 bytes"));
    q[100] = 'x';
    ga_free(q); /* reported, then freed anyway */
    ASSERT_EQ(seen_err, GA_EOVERRUN);
    CHECK(strstr(seen_msg, "past the end") && strstr(seen_msg, "100 bytes"));

    unsigned char *r = ga_malloc(8);
    int before = seen_count;
    ga__debug_misuse(GA_ENOTLOCKED, r, false, "GlobalUnlock: block is not locked");
    ASSERT_EQ(seen_count, before + 1);
    ASSERT_EQ(seen_err, GA_ENOTLOCKED);
    CHECK(strstr(seen_msg, "GlobalUnlock") && strstr(seen_msg, "8 bytes"));
    ga_free(r);
    ga_set_error_handler(NULL, NULL);
    dup2(saved, 2);
    close(saved);
    close(null);
}

static __attribute__((noinline)) void leak_raw(void)
{
    hidden ^= ~(uintptr_t)ga__alloc(72);
}

TEST(raw_blocks_of_other_layers)
{
    uint64_t mark = ga_debug_mark();
    unsigned char *p = ga__alloc(50);
    CHECK(ga__is_block_start(p)); /* the contract the Win32 layer relies on */
    CHECK(!ga__is_block_start(p + 16));
    ASSERT_EQ(ga__usable_size(p), 50);
    unsigned char *z = ga__zalloc(20);
    ASSERT_EQ(z[19], 0);
    ga__free(z);
    ga__free(p);
    leak_raw();
    clobber_stack();
    ASSERT_EQ(report(mark, 0), 1);
    CHECK(strstr(report_buf, "raw/GlobalAlloc block of 72 bytes") &&
          strstr(report_buf, "leak_raw"));
}

static __attribute__((noinline)) void *alloc_8000(void)
{
    return ga_malloc(8000);
}
static __attribute__((noinline)) void *grow_to_8100(void *p)
{
    return ga_realloc(p, 8100);
}

TEST(realloc_moves_small_blocks_and_resizes_big_ones_in_place)
{
    /* up to 4 KiB: always a new block, the old one goes to the quarantine */
    unsigned char *p = ga_malloc(100);
    memset(p, 'a', 100);
    unsigned char *q = ga_realloc(p, 120);
    CHECK(q != NULL && q != p);
    ASSERT_EQ(ga_owns(p), 0);
    ASSERT_EQ(p[0], 0xDD);
    for (int i = 0; i < 100; i++)
        ASSERT_EQ(q[i], 'a');
    for (int i = 100; i < 120; i++)
        ASSERT_EQ(q[i], 0xCD);
    ga_free(q);

    /* bigger: in place while the engine block has room (10000 + 80 -> a 10240-byte block) */
    unsigned char *b = ga_malloc(10000);
    memset(b, 'b', 10000);
    unsigned char *b2 = ga_realloc(b, 10050);
    ASSERT_EQ(b2, b);
    ASSERT_EQ(ga_usable_size(b2), 10050);
    ASSERT_EQ(b2[9999], 'b');
    for (int i = 10000; i < 10050; i++)
        ASSERT_EQ(b2[i], 0xCD);
    for (int i = 10050; i < 10050 + 24; i++) /* the tail guard moved (guard=24) */
        ASSERT_EQ(b2[i], 0xFD);
    CHECK_HEAP();
    unsigned char *b3 = ga_realloc(b2, 6000); /* shrinking stays too, down to half */
    ASSERT_EQ(b3, b);
    ASSERT_EQ(ga_usable_size(b3), 6000);
    ASSERT_EQ(b3[6000], 0xFD);
    CHECK_HEAP();
    b3[6000] = 0; /* one past the new end */
    ASSERT_EQ(ga_heap_check(NULL, GA_CHECK_QUIET), GA_EOVERRUN);
    b3[6000] = 0xFD;
    unsigned char *b4 = ga_realloc(b3, 300000); /* no room: moves */
    CHECK(b4 != NULL && b4 != b3);
    ASSERT_EQ(b4[4999], 'b');
    ASSERT_EQ(b4[299999], 0xCD);
    unsigned char *b5 = ga_realloc(b4, 3u << 20); /* huge: grows in place or moves, intact */
    CHECK(b5 != NULL);
    ASSERT_EQ(b5[4999], 'b');
    ASSERT_EQ(b5[(3u << 20) - 1], 0xCD);
    ASSERT_EQ(ga_usable_size(b5), 3u << 20);
    CHECK_HEAP();
    unsigned char *b6 = ga_realloc(b5, 6000); /* to less than half: a new, smaller block */
    CHECK(b6 != NULL && b6 != b5);
    ASSERT_EQ(b6[4999], 'b');
    ASSERT_EQ(ga_usable_size(b6), 6000);
    CHECK_HEAP();
    ga_free(b6);

    /* the block's allocation site becomes the realloc that gave it its size */
    uint64_t mark = ga_debug_mark();
    static volatile uintptr_t grown; /* hidden from the scan, as `hidden` */
    void *x = grow_to_8100(alloc_8000());
    grown = ~(uintptr_t)x;
    x = NULL;
    clobber_stack();
    ASSERT_EQ(report(mark, 0), 1);
    CHECK(strstr(report_buf, "8100 bytes") && strstr(report_buf, "grow_to_8100"));
    ga_free((void *)~grown);
}

TEST(blocks_bigger_than_the_quarantine_bypass_it)
{
    unsigned char *small = ga_malloc(40);
    ga_free(small); /* quarantined (64 KiB each thread here) */
    unsigned char *big = ga_malloc(100000);
    memset(big, 1, 100000);
    ga_free(big); /* straight back: it would have flushed the quarantine */
    ASSERT_EQ(ga_owns(big), 0);
    small[3] = 'x'; /* so the small block is still checked: it did not leave */
    ASSERT_EQ(ga_heap_check(NULL, GA_CHECK_QUIET), GA_ECORRUPT);
    small[3] = 0xDD;
    CHECK_HEAP();
    /* a second free of the big block is still a double free */
    int saved = dup(2), null = open("/dev/null", O_WRONLY);
    dup2(null, 2);
    ga_set_error_handler(record_handler, NULL);
    seen_err = 0;
    ga_free(big);
    ASSERT_EQ(seen_err, GA_EDOUBLEFREE);
    CHECK(strstr(seen_msg, "left the quarantine") != NULL);
    ga_set_error_handler(NULL, NULL);
    dup2(saved, 2);
    close(saved);
    close(null);
}

/* Short threads: each frees into its quarantine, which its exit hands on to a later thread
 * (blocks and all) or empties (checking every block). One thread writes after a free: found
 * when a later thread releases that block. */
static void *short_thread(void *arg)
{
    unsigned char *keep[100];
    for (int i = 0; i < 100; i++)
        keep[i] = ga_malloc(16 + (size_t)i);
    for (int i = 0; i < 100; i++)
        ga_free(keep[i]);
    if (arg != NULL) keep[50][7] = 'u'; /* use after free */
    return NULL;
}

TEST(short_threads_hand_their_quarantine_on)
{
    int saved = dup(2), null = open("/dev/null", O_WRONLY);
    dup2(null, 2);
    ga_set_error_handler(record_handler, NULL);
    seen_count = 0;
    for (int i = 0; i < 40; i++) {
        pthread_t t;
        pthread_create(&t, NULL, short_thread, i == 30 ? (void *)1 : NULL);
        pthread_join(t, NULL);
    }
    ASSERT_EQ(seen_count, 1);
    ASSERT_EQ(seen_err, GA_ECORRUPT);
    CHECK(strstr(seen_msg, "use after free") && strstr(seen_msg, "66 bytes"));
    ga_set_error_handler(NULL, NULL);
    dup2(saved, 2);
    close(saved);
    close(null);
    CHECK_HEAP();
}

enum { TN = 2, TITER = 20000 };
static void *thread_churn(void *arg)
{
    void *slots[64] = {0};
    unsigned s = (unsigned)(uintptr_t)arg;
    for (int i = 0; i < TITER; i++) {
        s = s * 1103515245u + 12345u;
        unsigned k = (s >> 8) % 64;
        ga_free(slots[k]);
        slots[k] = ga_malloc(8 + (s >> 20) % 300);
    }
    for (int k = 0; k < 64; k++)
        ga_free(slots[k]);
    if (arg == (void *)1) hidden ^= ~(uintptr_t)ga_malloc(777); /* one leak, from a thread */
    return NULL;
}

TEST(threads)
{
    uint64_t mark = ga_debug_mark();
    pthread_t t[TN];
    for (uintptr_t i = 0; i < TN; i++)
        pthread_create(&t[i], NULL, thread_churn, (void *)(i + 1));
    for (int i = 0; i < TN; i++)
        pthread_join(t[i], NULL);
    CHECK_HEAP();
    clobber_stack();
    ASSERT_EQ(report(mark, 0), 1);
    CHECK(strstr(report_buf, "777 bytes") && strstr(report_buf, "thread_churn"));
}

TEST_MAIN(TEST_ENTRY(enable_and_options), TEST_ENTRY(blocks_from_before_debug_mode_still_work),
          TEST_ENTRY(leaks_are_grouped_by_site_largest_first),
          TEST_ENTRY(reachable_blocks_are_not_leaks), TEST_ENTRY(freed_blocks_are_not_leaks),
          TEST_ENTRY(fill_patterns_and_guards),
          TEST_ENTRY(heap_check_finds_overruns_and_writes_after_free),
          TEST_ENTRY(misuse_goes_to_the_error_handler), TEST_ENTRY(raw_blocks_of_other_layers),
          TEST_ENTRY(realloc_moves_small_blocks_and_resizes_big_ones_in_place),
          TEST_ENTRY(blocks_bigger_than_the_quarantine_bypass_it),
          TEST_ENTRY(short_threads_hand_their_quarantine_on), TEST_ENTRY(threads))
