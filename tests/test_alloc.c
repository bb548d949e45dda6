/* SPDX-License-Identifier: MIT */
/*
 * The malloc-style API (ga_malloc, ga_calloc, ga_realloc, ga_aligned_alloc, ga_free,
 * ga_usable_size, ga_owns) against its contract in globalalloc.h, across every size class
 * boundary: each size 0..4096, then powers of two and their neighbours up to 64 MiB. Also the
 * misuse reports (foreign pointer, double free, also across threads) through an error handler
 * that lets the test go on, the statistics (exact deltas, per-class sums, mapped >= committed >= in use, huge
 * blocks), ga_heap_collect giving memory back, and ga_heap_check staying clean throughout.
 * Block contents are checked with per-block fill bytes so a write past a block's usable size
 * shows up as a changed neighbour.
 */
#include "test.h"
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <sys/mman.h>

#define MiB ((size_t)1 << 20)

/* ---- helpers ---------------------------------------------------------------------------- */

static bool aligned(const void *p, size_t a)
{
    return ((uintptr_t)p & (a - 1)) == 0;
}

static unsigned char fill_byte(size_t i)
{
    return (unsigned char)(0x11 + i * 0x3d) | 1;
}

/* True when all n bytes at p equal c (word-wise: the big blocks are tens of MiB). */
static bool all_bytes(const void *p, unsigned char c, size_t n)
{
    const unsigned char *b = p;
    uint64_t w = 0x0101010101010101ull * c;
    size_t i = 0;
    for (; i < n && ((uintptr_t)(b + i) & 7); i++)
        if (b[i] != c) return false;
    for (; i + 8 <= n; i += 8) {
        uint64_t v;
        memcpy(&v, b + i, 8);
        if (v != w) return false;
    }
    for (; i < n; i++)
        if (b[i] != c) return false;
    return true;
}

/* Position-dependent contents, so a realloc that copies from the wrong offset is caught. */
static unsigned char pos_byte(size_t i)
{
    return (unsigned char)((i * 7 + 3) ^ (i >> 8));
}
static void fill_pos(unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        p[i] = pos_byte(i);
}
static bool check_pos(const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != pos_byte(i)) return false;
    return true;
}

static ga_stats_t stats(void)
{
    ga_stats_t s;
    memset(&s, 0, sizeof s);
    ASSERT_EQ(ga_heap_stats(NULL, &s), 0);
    return s;
}

/* Largest size-class block size (blocks above it are "huge"); 0 if stats report no classes. */
static size_t largest_class(void)
{
    ga_stats_t s = stats();
    return s.class_count ? s.classes[s.class_count - 1].block_size : 0;
}

/* Checks one live block of a malloc-like call: aligned, owned, usable >= size. */
static void check_block(void *p, size_t size, size_t align)
{
    CHECK(p != NULL);
    if (!p) return;
    CHECK(aligned(p, align));
    CHECK(ga_owns(p));
    size_t u = ga_usable_size(p);
    CHECK(u >= size);
    if (u < size) fprintf(stderr, "  size %zu: usable %zu\n", size, u);
}

/* ---- the error handler ------------------------------------------------------------------ */

static struct {
    int calls;
    int err;
    uintptr_t ptr;
} reported;

static int record_error(int err, const char *msg, uintptr_t ptr, void *arg)
{
    (void)msg;
    (void)arg;
    reported.calls++;
    reported.err = err;
    reported.ptr = ptr;
    return 1; /* continue: the call fails with err instead of aborting */
}

static void handler_on(void)
{
    memset(&reported, 0, sizeof reported);
    ga_set_error_handler(record_error, NULL);
}
static void handler_off(void)
{
    ga_set_error_handler(NULL, NULL);
}

/* ---- sizes ------------------------------------------------------------------------------ */

/* Every size 0..4096 live at once, each filled over its whole usable size with its own byte,
 * then all checked: an overlap or an overrun into a neighbour changes someone's bytes. */
TEST(every_small_size)
{
    enum { N = 4097 };
    static void *blocks[N];
    for (size_t s = 0; s < N; s++) {
        blocks[s] = ga_malloc(s);
        check_block(blocks[s], s, GA_MIN_ALIGN);
        if (blocks[s]) memset(blocks[s], fill_byte(s), ga_usable_size(blocks[s]));
    }
    size_t bad = 0;
    for (size_t s = 0; s < N; s++)
        if (blocks[s] && !all_bytes(blocks[s], fill_byte(s), ga_usable_size(blocks[s]))) bad++;
    ASSERT_EQ(bad, 0);
    /* size 0 gives a unique block each time */
    ASSERT_NE(blocks[0], NULL);
    void *z = ga_malloc(0);
    ASSERT_NE(z, NULL);
    ASSERT_NE(z, blocks[0]);
    ga_free(z);
    CHECK_HEAP();
    for (size_t s = 0; s < N; s++)
        ga_free(blocks[s]);
}

/* 2^k - 1, 2^k, 2^k + 1 up to 64 MiB, the three live together (neighbours in one class or
 * across a class boundary) and a few of each size so blocks share pages. */
TEST(powers_of_two_and_neighbours)
{
    for (int k = 0; k <= 26; k++) {
        size_t base = (size_t)1 << k;
        enum { PER = 3 };
        void *b[3][PER];
        size_t sz[3] = {base - 1, base, base + 1};
        int copies = base > 4 * MiB ? 1 : PER;
        for (int i = 0; i < 3; i++)
            for (int c = 0; c < copies; c++) {
                b[i][c] = ga_malloc(sz[i]);
                check_block(b[i][c], sz[i], GA_MIN_ALIGN);
                if (b[i][c])
                    memset(b[i][c], fill_byte((size_t)(k * 9 + i * 3 + c)),
                           ga_usable_size(b[i][c]));
            }
        for (int i = 0; i < 3; i++)
            for (int c = 0; c < copies; c++) {
                if (!b[i][c]) continue;
                bool ok = all_bytes(b[i][c], fill_byte((size_t)(k * 9 + i * 3 + c)),
                                    ga_usable_size(b[i][c]));
                CHECK(ok);
                if (!ok) fprintf(stderr, "  block of %zu bytes corrupted\n", sz[i]);
            }
        for (int i = 0; i < 3; i++)
            for (int c = 0; c < copies; c++)
                ga_free(b[i][c]);
    }
}

/* ---- realloc ---------------------------------------------------------------------------- */

/* One block walks up through small, medium, large and huge sizes and back down; after every
 * step the kept prefix must be intact, then the whole new size is refilled. */
TEST(realloc_keeps_contents)
{
    size_t big = largest_class();
    size_t steps[] = {1,         8,       24,       100,      1000,     4096,     10000,
                      70000,     300000,  MiB,      5 * MiB,  big + 1,  40 * MiB, big + 1,
                      big - 100, 3 * MiB, 200000,   5000,     4097,     64,       1,
                      0,         33,      30 * MiB, 31 * MiB, 29 * MiB, 17};
    unsigned char *p = ga_realloc(NULL, 0); /* NULL acts as ga_malloc */
    check_block(p, 0, GA_MIN_ALIGN);
    size_t cur = 0;
    for (size_t i = 0; i < sizeof steps / sizeof steps[0] && p; i++) {
        size_t n = steps[i];
        unsigned char *q = ga_realloc(p, n);
        check_block(q, n, GA_MIN_ALIGN);
        if (!q) {
            ga_free(p);
            p = NULL;
            break;
        }
        size_t keep = cur < n ? cur : n;
        bool ok = check_pos(q, keep);
        CHECK(ok);
        if (!ok) fprintf(stderr, "  realloc %zu -> %zu lost contents\n", cur, n);
        fill_pos(q, n);
        p = q;
        cur = n;
    }
    ga_free(p);
}

/* realloc to 0 frees and returns a minimal block; a failed realloc leaves the block alone. */
TEST(realloc_edges)
{
    unsigned char *p = ga_malloc(100);
    ASSERT_NE(p, NULL);
    unsigned char *z = ga_realloc(p, 0);
    check_block(z, 0, GA_MIN_ALIGN);

    p = ga_malloc(300);
    ASSERT_NE(p, NULL);
    fill_pos(p, 300);
    size_t huge_sizes[] = {SIZE_MAX, SIZE_MAX - 16, (size_t)PTRDIFF_MAX + 1};
    for (size_t i = 0; i < 3; i++) {
        ga_set_last_error(GA_OK);
        unsigned char *q = ga_realloc(p, huge_sizes[i]);
        CHECK(q == NULL);
        int e = ga_last_error();
        CHECK(e == GA_ENOMEM || e == GA_EOVERFLOW);
        CHECK(ga_owns(p));
        CHECK(check_pos(p, 300));
    }
    /* shrinking in place or not, the prefix stays */
    unsigned char *q = ga_realloc(p, 10);
    check_block(q, 10, GA_MIN_ALIGN);
    if (q) CHECK(check_pos(q, 10));
    ga_free(q);
    ga_free(z);
}

/* ---- calloc ----------------------------------------------------------------------------- */

TEST(calloc_zeroes_fresh_and_reused_blocks)
{
    size_t sizes[] = {1, 16, 100, 1000, 8000, 33000, 100000, 2 * MiB, 9 * MiB};
    enum { COUNT = 16 };
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t s = sizes[i];
        int copies = s > MiB ? 2 : COUNT;
        void *b[COUNT];
        /* Dirty a batch of blocks of this size and free them, so calloc reuses them. */
        for (int c = 0; c < copies; c++) {
            b[c] = ga_malloc(s);
            if (b[c]) memset(b[c], 0xA5, ga_usable_size(b[c]));
        }
        for (int c = copies - 1; c >= 0; c--)
            ga_free(b[c]);
        size_t nonzero = 0;
        for (int c = 0; c < copies; c++) {
            b[c] = ga_calloc(1, s);
            check_block(b[c], s, GA_MIN_ALIGN);
            if (b[c] && !all_bytes(b[c], 0, s)) nonzero++;
        }
        ASSERT_EQ(nonzero, 0);
        for (int c = 0; c < copies; c++)
            ga_free(b[c]);
    }
    /* n*size split both ways */
    unsigned char *p = ga_calloc(1000, 24);
    check_block(p, 24000, GA_MIN_ALIGN);
    if (p) CHECK(all_bytes(p, 0, 24000));
    ga_free(p);
    void *z1 = ga_calloc(0, 100), *z2 = ga_calloc(100, 0);
    CHECK(z1 != NULL && z2 != NULL && z1 != z2);
    ga_free(z1);
    ga_free(z2);
}

TEST(calloc_overflow)
{
    struct {
        size_t n, size;
    } cases[] = {
        {SIZE_MAX / 2 + 1, 2}, {2, SIZE_MAX / 2 + 1}, {(size_t)1 << 33, (size_t)1 << 33},
        {SIZE_MAX, SIZE_MAX},  {SIZE_MAX / 3 + 1, 3},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ga_set_last_error(GA_OK);
        void *p = ga_calloc(cases[i].n, cases[i].size);
        CHECK(p == NULL);
        ASSERT_EQ(ga_last_error(), GA_EOVERFLOW);
        ga_free(p);
    }
}

TEST(huge_requests_fail)
{
    size_t sizes[] = {SIZE_MAX,        SIZE_MAX - 1, SIZE_MAX - 15,           SIZE_MAX - 16,
                      SIZE_MAX - 4096, SIZE_MAX / 2, (size_t)PTRDIFF_MAX + 1, (size_t)PTRDIFF_MAX};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        ga_set_last_error(GA_OK);
        void *p = ga_malloc(sizes[i]);
        CHECK(p == NULL);
        int e = ga_last_error();
        CHECK(e == GA_ENOMEM || e == GA_EOVERFLOW);
        if (e != GA_ENOMEM && e != GA_EOVERFLOW)
            fprintf(stderr, "  malloc(%#zx): last error %s\n", sizes[i], ga_err_name(e));
        ga_set_last_error(GA_OK);
        p = ga_aligned_alloc(4096, sizes[i]);
        CHECK(p == NULL);
        e = ga_last_error();
        CHECK(e == GA_ENOMEM || e == GA_EOVERFLOW);
    }
    /* The heap still works afterwards. */
    void *p = ga_malloc(64);
    check_block(p, 64, GA_MIN_ALIGN);
    ga_free(p);
}

/* ---- aligned_alloc ---------------------------------------------------------------------- */

TEST(aligned_alloc_every_power_of_two)
{
    for (size_t a = 1; a <= MiB; a *= 2) {
        size_t sizes[] = {1, 24, a, 3 * a + 5};
        void *b[4];
        for (int i = 0; i < 4; i++) {
            b[i] = ga_aligned_alloc(a, sizes[i]);
            check_block(b[i], sizes[i], a > GA_MIN_ALIGN ? a : GA_MIN_ALIGN);
            if (b[i]) memset(b[i], fill_byte((size_t)i), ga_usable_size(b[i]));
        }
        for (int i = 0; i < 4; i++)
            if (b[i]) CHECK(all_bytes(b[i], fill_byte((size_t)i), ga_usable_size(b[i])));
        for (int i = 0; i < 4; i++)
            ga_free(b[i]);
    }
    /* aligned blocks realloc like any other */
    unsigned char *p = ga_aligned_alloc(4096, 100);
    ASSERT_NE(p, NULL);
    if (p) {
        fill_pos(p, 100);
        unsigned char *q = ga_realloc(p, 50000);
        check_block(q, 50000, GA_MIN_ALIGN);
        if (q) CHECK(check_pos(q, 100));
        ga_free(q);
    }
}

TEST(aligned_alloc_rejects_non_powers_of_two)
{
    size_t bad[] = {0, 3, 24, 48, 1000, 4095, MiB + 1, SIZE_MAX};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ga_set_last_error(GA_OK);
        void *p = ga_aligned_alloc(bad[i], 64);
        CHECK(p == NULL);
        ASSERT_EQ(ga_last_error(), GA_EINVAL);
        ga_free(p);
    }
}

/* ---- ownership -------------------------------------------------------------------------- */

static int a_global;

TEST(owns_and_usable_size)
{
    int on_stack = 0;
    void *small = ga_malloc(256), *huge = ga_malloc(largest_class() + 4096);
    ASSERT_NE(small, NULL);
    ASSERT_NE(huge, NULL);
    CHECK(ga_owns(small));
    CHECK(ga_owns(huge));
    CHECK(!ga_owns(NULL));
    CHECK(!ga_owns(&on_stack));
    CHECK(!ga_owns(&a_global));
    CHECK(!ga_owns("a string literal"));
    CHECK(!ga_owns((void *)(uintptr_t)record_error));
    void *map = mmap(NULL, 1 << 16, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(map != MAP_FAILED);
    if (map != MAP_FAILED) {
        CHECK(!ga_owns(map));
        CHECK(!ga_owns((char *)map + 4096));
        ASSERT_EQ(ga_usable_size(map), 0);
    }
    /* Interior pointers, aligned and misaligned, are not block starts. */
    if (small) {
        CHECK(!ga_owns((char *)small + 1));
        CHECK(!ga_owns((char *)small + 8));
        CHECK(!ga_owns((char *)small + 16));
        CHECK(!ga_owns((char *)small + 128));
        ASSERT_EQ(ga_usable_size((char *)small + 1), 0);
    }
    if (huge) {
        CHECK(!ga_owns((char *)huge + 16));
        CHECK(!ga_owns((char *)huge + 4096));
        CHECK(ga_usable_size(huge) >= largest_class() + 4096);
    }
    ASSERT_EQ(ga_usable_size(NULL), 0);
    ASSERT_EQ(ga_usable_size(&on_stack), 0);
    ga_free(small);
    ga_free(huge);
    if (map != MAP_FAILED) munmap(map, 1 << 16);
}

/* ---- free and misuse -------------------------------------------------------------------- */

TEST(free_null_and_errno)
{
    errno = 4321;
    ga_free(NULL);
    ASSERT_EQ(errno, 4321);
    size_t sizes[] = {8, 5000, 200000, 3 * MiB, 70 * MiB};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        void *p = ga_malloc(sizes[i]);
        ASSERT_NE(p, NULL);
        errno = 4321;
        ga_free(p);
        ASSERT_EQ(errno, 4321);
    }
}

TEST(free_foreign_pointer_reported)
{
    int on_stack = 0;
    void *map = mmap(NULL, 1 << 16, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    char *live = ga_malloc(256);
    ASSERT_NE(live, NULL);
    void *foreign[] = {&on_stack, &a_global, map, (char *)map + 4096, live + 16, live + 1};
    size_t n = sizeof foreign / sizeof foreign[0];
    handler_on();
    for (size_t i = 0; i < n; i++) {
        if (foreign[i] == MAP_FAILED) continue;
        int before = reported.calls;
        errno = 777;
        ga_free(foreign[i]);
        ASSERT_EQ(reported.calls, before + 1);
        ASSERT_EQ(reported.err, GA_ENOTOWNED);
        ASSERT_EQ(reported.ptr, (uintptr_t)foreign[i]);
        ASSERT_EQ(errno, 777);
    }
    /* The refused frees touched nothing: the live block is intact and frees normally. */
    CHECK(ga_owns(live));
    int before = reported.calls;
    ga_free(live);
    ASSERT_EQ(reported.calls, before);
    handler_off();
    if (map != MAP_FAILED) munmap(map, 1 << 16);
}

/* A block freed twice while it is still free is reported as GA_EDOUBLEFREE and the second free
 * changes nothing (the heap checks clean and keeps working). */
TEST(double_free_reported)
{
    size_t sizes[] = {16, 100, 1024, 20000, 200000};
    handler_on();
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        /* Immediately: the block sits at the head of this thread's free list. */
        void *p = ga_malloc(sizes[i]);
        ASSERT_NE(p, NULL);
        ga_free(p);
        int before = reported.calls;
        errno = 555;
        ga_free(p);
        ASSERT_EQ(reported.calls, before + 1);
        ASSERT_EQ(reported.err, GA_EDOUBLEFREE);
        ASSERT_EQ(reported.ptr, (uintptr_t)p);
        ASSERT_EQ(errno, 555);

        /* After other frees of the same size: the block is deeper in the free list. */
        void *a = ga_malloc(sizes[i]), *b = ga_malloc(sizes[i]), *c = ga_malloc(sizes[i]);
        ga_free(a);
        ga_free(b);
        ga_free(c);
        before = reported.calls;
        ga_free(a);
        ASSERT_EQ(reported.calls, before + 1);
        ASSERT_EQ(reported.err, GA_EDOUBLEFREE);
        ASSERT_EQ(reported.ptr, (uintptr_t)a);
        CHECK_HEAP();

        /* The free list was not corrupted: three fresh blocks are distinct. */
        void *x = ga_malloc(sizes[i]), *y = ga_malloc(sizes[i]), *z = ga_malloc(sizes[i]);
        CHECK(x && y && z && x != y && y != z && x != z);
        ga_free(x);
        ga_free(y);
        ga_free(z);
    }
    /* A huge block is unmapped on free, so its second free may look foreign: reported either way.
     */
    void *h = ga_malloc(largest_class() + MiB);
    ASSERT_NE(h, NULL);
    ga_free(h);
    int before = reported.calls;
    ga_free(h);
    ASSERT_EQ(reported.calls, before + 1);
    CHECK(reported.err == GA_EDOUBLEFREE || reported.err == GA_ENOTOWNED);
    handler_off();
}

/* ---- statistics ------------------------------------------------------------------------- */

static void check_stats_consistent(const ga_stats_t *s)
{
    CHECK(s->bytes_mapped >= s->bytes_committed);
    CHECK(s->bytes_committed >= s->bytes_in_use);
    CHECK(s->peak_mapped >= s->bytes_mapped);
    CHECK(s->threads >= 1);
    CHECK(s->class_count > 0 && s->class_count <= GA_STATS_MAX_CLASSES);
    size_t blocks = 0, bytes = 0, n = s->class_count;
    if (n > GA_STATS_MAX_CLASSES) n = GA_STATS_MAX_CLASSES;
    for (size_t i = 0; i < n; i++) {
        const ga_class_stats_t *c = &s->classes[i];
        if (i > 0) CHECK(c->block_size > s->classes[i - 1].block_size);
        CHECK(c->block_size % GA_MIN_ALIGN == 0 || c->block_size < GA_MIN_ALIGN);
        CHECK(c->blocks_used * c->block_size <= c->bytes_reserved);
        blocks += c->blocks_used;
        bytes += c->blocks_used * c->block_size;
    }
    /* Classes and huge blocks together are every live block. */
    ASSERT_EQ(blocks + s->huge_blocks, s->blocks_in_use);
    CHECK(bytes <= s->bytes_in_use);
    if (s->huge_blocks == 0) ASSERT_EQ(bytes, s->bytes_in_use);
}

/* Index of the class whose blocks have exactly this size, or -1. */
static int class_of(const ga_stats_t *s, size_t block_size)
{
    for (size_t i = 0; i < s->class_count && i < GA_STATS_MAX_CLASSES; i++)
        if (s->classes[i].block_size == block_size) return (int)i;
    return -1;
}

TEST(stats_follow_allocations_exactly)
{
    ga_stats_t s0 = stats();
    check_stats_consistent(&s0);
    size_t big = largest_class();
    CHECK(big > 0);
    size_t sizes[] = {1, 16, 48, 100, 1000, 4000, 10000, 100000, MiB, big, big + 1, 10 * MiB};
    enum { NS = sizeof sizes / sizeof sizes[0], PER = 10 };
    void *b[NS][PER];
    size_t bytes = 0, huge = 0;
    for (size_t i = 0; i < NS; i++) {
        ga_stats_t before = stats();
        size_t class_bytes = 0;
        for (int c = 0; c < PER; c++) {
            b[i][c] = ga_malloc(sizes[i]);
            ASSERT_NE(b[i][c], NULL);
            class_bytes += ga_usable_size(b[i][c]);
        }
        ga_stats_t after = stats();
        ASSERT_EQ(after.blocks_in_use - before.blocks_in_use, PER);
        ASSERT_EQ(after.bytes_in_use - before.bytes_in_use, class_bytes);
        bytes += class_bytes;
        if (sizes[i] > big) {
            huge += PER;
            ASSERT_EQ(after.huge_blocks - before.huge_blocks, PER);
        } else {
            ASSERT_EQ(after.huge_blocks, before.huge_blocks);
            /* The ten blocks show up in the class of their size. */
            int k = class_of(&after, ga_usable_size(b[i][0]));
            CHECK(k >= 0);
            if (k >= 0)
                ASSERT_EQ(after.classes[k].blocks_used - before.classes[k].blocks_used, PER);
        }
        check_stats_consistent(&after);
    }
    ga_stats_t full = stats();
    ASSERT_EQ(full.blocks_in_use - s0.blocks_in_use, NS * PER);
    ASSERT_EQ(full.bytes_in_use - s0.bytes_in_use, bytes);
    ASSERT_EQ(full.huge_blocks - s0.huge_blocks, huge);
    /* Every byte in use is mapped (a delta would not do: freed huge blocks are cached, so
     * new ones may come from memory that was mapped before s0). */
    CHECK(full.bytes_mapped >= full.bytes_in_use);
    CHECK(full.bytes_mapped >= bytes);

    /* Free half, then the rest: the counts fall exactly. */
    size_t freed_bytes = 0;
    for (size_t i = 0; i < NS; i++)
        for (int c = 0; c < PER; c += 2) {
            freed_bytes += ga_usable_size(b[i][c]);
            ga_free(b[i][c]);
        }
    ga_stats_t half = stats();
    ASSERT_EQ(full.blocks_in_use - half.blocks_in_use, NS * PER / 2);
    ASSERT_EQ(full.bytes_in_use - half.bytes_in_use, freed_bytes);
    check_stats_consistent(&half);
    for (size_t i = 0; i < NS; i++)
        for (int c = 1; c < PER; c += 2)
            ga_free(b[i][c]);
    ga_stats_t end = stats();
    ASSERT_EQ(end.blocks_in_use, s0.blocks_in_use);
    ASSERT_EQ(end.bytes_in_use, s0.bytes_in_use);
    ASSERT_EQ(end.huge_blocks, s0.huge_blocks);
    check_stats_consistent(&end);

    /* realloc, calloc and aligned_alloc count like malloc. */
    void *p = ga_calloc(10, 10), *q = ga_aligned_alloc(4096, 100);
    p = ga_realloc(p, 5000);
    ga_stats_t mixed = stats();
    ASSERT_EQ(mixed.blocks_in_use - s0.blocks_in_use, 2);
    /* An aligned block may sit inside a larger (padded) block: bytes_in_use counts the block,
     * usable size counts from the aligned start, so they differ by less than the alignment. */
    size_t delta = mixed.bytes_in_use - s0.bytes_in_use,
           use = ga_usable_size(p) + ga_usable_size(q);
    CHECK(delta >= use && delta < use + 4096);
    ga_free(p);
    ga_free(q);
    ASSERT_EQ(stats().blocks_in_use, s0.blocks_in_use);
    ASSERT_EQ(ga_heap_stats(NULL, NULL), GA_EINVAL);
}

/* ---- collect ---------------------------------------------------------------------------- */

/* Free 64 MiB of small, medium and large blocks and collect: committed memory must drop by
 * most of it, and collect's return value must account for what it gave back itself. */
TEST(collect_returns_memory)
{
    ga_heap_collect(NULL, 1);
    ga_stats_t s0 = stats();
    enum { N = 4096 };
    static void *b[N];
    size_t total = 0;
    for (int i = 0; i < N; i++) {
        size_t size = i % 4 == 3 ? 48 * 1024 : (size_t)(i % 3 + 1) * 4000; /* ~64 MiB in all */
        b[i] = ga_malloc(size);
        ASSERT_NE(b[i], NULL);
        if (b[i]) memset(b[i], 1, size); /* touch it: committed for real */
        total += size;
    }
    ga_stats_t full = stats();
    CHECK(full.bytes_committed >= s0.bytes_committed + total);
    for (int i = 0; i < N; i++)
        ga_free(b[i]);
    ga_stats_t freed = stats();
    size_t given = ga_heap_collect(NULL, 1);
    ga_stats_t after = stats();
    CHECK(after.bytes_committed + total / 2 <= full.bytes_committed);
    if (after.bytes_committed + total / 2 > full.bytes_committed)
        fprintf(stderr, "  committed: %zu before, %zu full, %zu after free, %zu after collect\n",
                s0.bytes_committed, full.bytes_committed, freed.bytes_committed,
                after.bytes_committed);
    if (freed.bytes_committed > after.bytes_committed) CHECK(given > 0);
    CHECK(after.bytes_mapped >= after.bytes_committed);
    ASSERT_EQ(after.blocks_in_use, s0.blocks_in_use);
    /* The heap serves allocations again after giving its memory back. */
    void *p = ga_malloc(4000);
    check_block(p, 4000, GA_MIN_ALIGN);
    ga_free(p);
}

TEST(heap_check_clean_after_everything)
{
    ASSERT_EQ(ga_heap_check(NULL, 0), 0);
    ASSERT_EQ(ga_heap_check(NULL, GA_CHECK_QUIET), 0);
    ASSERT_EQ(ga_heap_check(ga_heap_default(), 0), 0);
}

static void *free_it(void *p)
{
    ga_free(p);
    return NULL;
}
static void *free_it_twice(void *p)
{
    ga_free(p);
    ga_free(p);
    return NULL;
}
static void free_in_thread(void *(*fn)(void *), void *p)
{
    pthread_t t;
    pthread_create(&t, NULL, fn, p);
    pthread_join(t, NULL);
}

/* The three ways two threads can free one block twice; each second free is refused with
 * GA_EDOUBLEFREE before it links the block into a second list, and the heap stays sound. */
TEST(double_free_across_threads_reported)
{
    size_t sizes[] = {16, 100, 1024, 20000, 200000};
    handler_on();
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        void *keep = ga_malloc(sizes[i]); /* the page stays in use throughout */

        /* another thread frees it twice */
        void *p = ga_malloc(sizes[i]);
        int before = reported.calls;
        free_in_thread(free_it_twice, p);
        ASSERT_EQ(reported.calls, before + 1);
        ASSERT_EQ(reported.err, GA_EDOUBLEFREE);
        ASSERT_EQ(reported.ptr, (uintptr_t)p);
        CHECK_HEAP();

        /* the owner frees it, then another thread */
        p = ga_malloc(sizes[i]);
        ga_free(p);
        before = reported.calls;
        free_in_thread(free_it, p);
        ASSERT_EQ(reported.calls, before + 1);
        ASSERT_EQ(reported.err, GA_EDOUBLEFREE);
        CHECK_HEAP();

        /* another thread frees it, then the owner */
        p = ga_malloc(sizes[i]);
        free_in_thread(free_it, p);
        before = reported.calls;
        ga_free(p);
        ASSERT_EQ(reported.calls, before + 1);
        ASSERT_EQ(reported.err, GA_EDOUBLEFREE);
        CHECK_HEAP();

        /* nothing was linked twice: fresh blocks are distinct and writable */
        void *x = ga_malloc(sizes[i]), *y = ga_malloc(sizes[i]), *z = ga_malloc(sizes[i]);
        CHECK(x && y && z && x != y && y != z && x != z);
        memset(x, 1, sizes[i]);
        memset(y, 2, sizes[i]);
        memset(z, 3, sizes[i]);
        ga_free(x);
        ga_free(y);
        ga_free(z);
        ga_free(keep);
        CHECK_HEAP();
    }
    handler_off();
}

TEST_MAIN(TEST_ENTRY(every_small_size), TEST_ENTRY(powers_of_two_and_neighbours),
          TEST_ENTRY(realloc_keeps_contents), TEST_ENTRY(realloc_edges),
          TEST_ENTRY(calloc_zeroes_fresh_and_reused_blocks), TEST_ENTRY(calloc_overflow),
          TEST_ENTRY(huge_requests_fail), TEST_ENTRY(aligned_alloc_every_power_of_two),
          TEST_ENTRY(aligned_alloc_rejects_non_powers_of_two), TEST_ENTRY(owns_and_usable_size),
          TEST_ENTRY(free_null_and_errno), TEST_ENTRY(free_foreign_pointer_reported),
          TEST_ENTRY(double_free_reported), TEST_ENTRY(double_free_across_threads_reported),
          TEST_ENTRY(stats_follow_allocations_exactly),
          TEST_ENTRY(collect_returns_memory), TEST_ENTRY(heap_check_clean_after_everything))
