/* SPDX-License-Identifier: MIT */
/*
 * GlobalAlloc & co. against the spec (win32-global-heap.md): every [T] point of §2-§6 for the
 * Global family, the realloc decision table row by row, §6's invalid-value table, huge sizes,
 * lock saturation, per-thread last error and concurrent lock/unlock.
 */
#include "test.h"
#include "win32_test_util.h"
#include "handle/handle.h"
#include <pthread.h>

/* ---- §1/§2 types and constants ---- */

TEST(test_types_and_constants)
{
    ASSERT_EQ(sizeof(DWORD), 4);
    ASSERT_EQ(sizeof(UINT), 4);
    ASSERT_EQ(sizeof(BOOL), 4);
    ASSERT_EQ(sizeof(SIZE_T), sizeof(void *));
    ASSERT_EQ(sizeof(HGLOBAL), sizeof(void *));
    ASSERT_EQ(TRUE, 1);
    ASSERT_EQ(FALSE, 0);
    ASSERT_EQ(GMEM_FIXED, 0x0000);
    ASSERT_EQ(GMEM_MOVEABLE, 0x0002);
    ASSERT_EQ(GMEM_NOCOMPACT, 0x0010);
    ASSERT_EQ(GMEM_NODISCARD, 0x0020);
    ASSERT_EQ(GMEM_ZEROINIT, 0x0040);
    ASSERT_EQ(GMEM_MODIFY, 0x0080);
    ASSERT_EQ(GMEM_DISCARDABLE, 0x0100);
    ASSERT_EQ(GMEM_NOT_BANKED, 0x1000);
    ASSERT_EQ(GMEM_LOWER, 0x1000);
    ASSERT_EQ(GMEM_SHARE, 0x2000);
    ASSERT_EQ(GMEM_DDESHARE, 0x2000);
    ASSERT_EQ(GMEM_NOTIFY, 0x4000);
    ASSERT_EQ(GMEM_VALID_FLAGS, 0x7F72);
    ASSERT_EQ(GMEM_INVALID_HANDLE, 0x8000);
    ASSERT_EQ(GMEM_DISCARDED, 0x4000);
    ASSERT_EQ(GMEM_LOCKCOUNT, 0x00FF);
    ASSERT_EQ(GHND, 0x0042);
    ASSERT_EQ(GPTR, 0x0040);
    ASSERT_EQ(NO_ERROR, 0);
    ASSERT_EQ(ERROR_SUCCESS, 0);
    ASSERT_EQ(ERROR_INVALID_HANDLE, 6);
    ASSERT_EQ(ERROR_NOT_ENOUGH_MEMORY, 8);
    ASSERT_EQ(ERROR_OUTOFMEMORY, 14);
    ASSERT_EQ(ERROR_INVALID_PARAMETER, 87);
    ASSERT_EQ(ERROR_DISCARDED, 157);
    ASSERT_EQ(ERROR_NOT_LOCKED, 158);
    ASSERT_EQ(ERROR_NOACCESS, 998);
}

/* ---- §3/§4.1 allocation ---- */

TEST(test_fixed_basics)
{
    char *p = GlobalAlloc(GMEM_FIXED, 0x123);
    CHECK(p != NULL);
    CHECK(is_aligned16(p));
    ASSERT_EQ(GlobalSize(p), 0x123);
    memset(p, 0x5a, 0x123);
    SetLastError(SENTINEL);
    ASSERT_EQ(GlobalLock(p), p);
    ASSERT_EQ(GlobalFlags(p), 0);
    ASSERT_EQ(GlobalHandle(p), p);
    ASSERT_EQ(GlobalUnlock(p), TRUE); /* fixed: TRUE, error untouched */
    ASSERT_EQ(GetLastError(), SENTINEL);
    ASSERT_EQ(GlobalFlags(p), 0); /* lock count of a fixed block stays 0 */
    CHECK(all_bytes(p, 0x123, 0x5a));
    ASSERT_EQ(GlobalFree(p), NULL);

    p = GlobalAlloc(0, 10); /* uFlags 0 == GMEM_FIXED */
    CHECK(p != NULL && !is_handle_shaped(p));
    ASSERT_EQ(GlobalSize(p), 10);
    ASSERT_EQ(GlobalFree(p), NULL);
}

TEST(test_fixed_zero_size)
{
    void *p = GlobalAlloc(GMEM_FIXED, 0);
    CHECK(p != NULL);
    ASSERT_EQ(GlobalSize(p), 1);
    ASSERT_EQ(GlobalFree(p), NULL);
    p = GlobalAlloc(GMEM_FIXED | GMEM_DISCARDABLE, 0);
    CHECK(p != NULL);
    ASSERT_EQ(GlobalFlags(p), 0);
    ASSERT_EQ(GlobalFree(p), NULL);
}

TEST(test_zeroinit)
{
    /* Dirty memory first so that zero-fill is not an accident of fresh pages. */
    for (int round = 0; round < 2; round++) {
        void *d = GlobalAlloc(GMEM_FIXED, 100000);
        memset(d, 0xab, 100000);
        GlobalFree(d);
        unsigned char *p = GlobalAlloc(GPTR, 100000);
        CHECK(p != NULL && all_bytes(p, 100000, 0));
        ASSERT_EQ(GlobalSize(p), 100000);
        GlobalFree(p);
        HGLOBAL h = GlobalAlloc(GMEM_MOVEABLE, 100000);
        memset(GlobalLock(h), 0xcd, 100000);
        GlobalUnlock(h);
        GlobalFree(h);
        h = GlobalAlloc(GHND, 100000);
        CHECK(h != NULL);
        p = GlobalLock(h);
        CHECK(p != NULL && all_bytes(p, 100000, 0));
        GlobalUnlock(h);
        GlobalFree(h);
        /* small sizes too */
        p = GlobalAlloc(GPTR, 24);
        CHECK(all_bytes(p, 24, 0));
        GlobalFree(p);
    }
}

TEST(test_moveable_basics)
{
    HGLOBAL h = GlobalAlloc(GMEM_MOVEABLE, 256);
    CHECK(h != NULL);
    CHECK(is_handle_shaped(h));
    ASSERT_EQ(GlobalFlags(h), 0);
    ASSERT_EQ(GlobalSize(h), 256);
    char *p = GlobalLock(h);
    CHECK(p != NULL);
    ASSERT_NE(p, h);
    CHECK(is_aligned16(p));
    ASSERT_EQ(GlobalFlags(h), 1);
    memset(p, 1, 256);
    ASSERT_EQ(GlobalLock(h), p); /* repeated locks: same pointer */
    ASSERT_EQ(GlobalFlags(h), 2);
    ASSERT_EQ(GlobalHandle(p), h);
    ASSERT_EQ(GlobalSize(p), 256); /* size through the data pointer */
    ASSERT_EQ(GlobalUnlock(h), TRUE);
    ASSERT_EQ(GlobalFlags(h), 1);
    SetLastError(SENTINEL);
    ASSERT_EQ(GlobalUnlock(h), FALSE); /* 1 -> 0: FALSE and NO_ERROR */
    ASSERT_EQ(GetLastError(), NO_ERROR);
    ASSERT_EQ(GlobalFlags(h), 0);
    SetLastError(SENTINEL);
    ASSERT_EQ(GlobalUnlock(h), FALSE); /* already 0 */
    ASSERT_EQ(GetLastError(), ERROR_NOT_LOCKED);
    ASSERT_EQ(GlobalFlags(h), 0);
    ASSERT_EQ(GlobalFree(h), NULL);
}

TEST(test_moveable_zero_size)
{
    UINT extra[] = {0, GMEM_ZEROINIT};
    for (int i = 0; i < 2; i++) {
        HGLOBAL h = GlobalAlloc(GMEM_MOVEABLE | extra[i], 0);
        CHECK(h != NULL && is_handle_shaped(h));
        ASSERT_EQ(GlobalSize(h), 0);
        ASSERT_EQ(GlobalFlags(h), GMEM_DISCARDED);
        SetLastError(SENTINEL);
        ASSERT_EQ(GlobalLock(h), NULL);
        ASSERT_EQ(GetLastError(), ERROR_DISCARDED);
        ASSERT_EQ(GlobalFlags(h), GMEM_DISCARDED); /* count unchanged (0) */
        SetLastError(SENTINEL);
        ASSERT_EQ(GlobalUnlock(h), FALSE);
        ASSERT_EQ(GetLastError(), ERROR_NOT_LOCKED);
        ASSERT_EQ(GlobalFree(h), NULL); /* zero-size handles can be freed */
    }
    HGLOBAL h = GlobalAlloc(GMEM_MOVEABLE | GMEM_DISCARDABLE, 0);
    ASSERT_EQ(GlobalFlags(h), GMEM_DISCARDED | GMEM_DISCARDABLE);
    ASSERT_EQ(GlobalFlags(h), 0x4100);
    ASSERT_EQ(GlobalFree(h), NULL);
}

TEST(test_flag_bookkeeping)
{
    struct {
        UINT flags;
        UINT expect;
    } cases[] = {
        {GMEM_MOVEABLE | GMEM_DISCARDABLE, GMEM_DISCARDABLE},
        {GMEM_MOVEABLE | GMEM_DDESHARE, GMEM_DDESHARE},
        {GMEM_MOVEABLE | GMEM_SHARE, 0x2000},
        {GMEM_MOVEABLE | GMEM_DISCARDABLE | GMEM_DDESHARE, 0x2100},
        {GMEM_MOVEABLE | GMEM_NOTIFY, 0},
        {GMEM_MOVEABLE | GMEM_NODISCARD, 0},
        {GMEM_MOVEABLE | GMEM_NOT_BANKED, 0},
        {GMEM_MOVEABLE | GMEM_LOWER, 0},
        {GMEM_MOVEABLE | GMEM_NOCOMPACT, 0},
        {GHND, 0},
        {GMEM_FIXED | GMEM_NOTIFY, 0},
        {GMEM_FIXED | GMEM_DISCARDABLE, 0},
        {GMEM_FIXED | GMEM_DDESHARE, 0},
        {GPTR, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        HGLOBAL h = GlobalAlloc(cases[i].flags, 64);
        CHECK(h != NULL);
        ASSERT_EQ(GlobalFlags(h), cases[i].expect);
        ASSERT_EQ(GlobalSize(h), 64);
        ASSERT_EQ(is_handle_shaped(h), (cases[i].flags & GMEM_MOVEABLE) != 0);
        if (cases[i].flags & GMEM_MOVEABLE) {
            void *p = GlobalLock(h);
            CHECK(p != NULL && is_aligned16(p));
            ASSERT_EQ(GlobalFlags(h), cases[i].expect | 1);
            GlobalUnlock(h);
        }
        ASSERT_EQ(GlobalFree(h), NULL);
    }
}

TEST(test_alignment)
{
    for (SIZE_T n = 0; n < 3000; n += 37) {
        void *p = GlobalAlloc(GMEM_FIXED, n);
        CHECK(is_aligned16(p));
        HGLOBAL h = GlobalAlloc(GMEM_MOVEABLE, n + 1);
        void *d = GlobalLock(h);
        CHECK(d != NULL && is_aligned16(d));
        GlobalUnlock(h);
        GlobalFree(h);
        GlobalFree(p);
    }
}

/* ---- §4.3-4.5 locks ---- */

TEST(test_lock_saturation)
{
    HGLOBAL h = GlobalAlloc(GMEM_MOVEABLE, 32);
    void *p = GlobalLock(h);
    for (int i = 2; i <= 255; i++)
        CHECK(GlobalLock(h) == p);
    ASSERT_EQ(GlobalFlags(h) & GMEM_LOCKCOUNT, 0xFF);
    for (int i = 0; i < 50; i++)
        CHECK(GlobalLock(h) == p); /* still succeeds, count stays 255 */
    ASSERT_EQ(GlobalFlags(h), 0xFF);
    for (int i = 0; i < 254; i++)
        CHECK(GlobalUnlock(h) == TRUE);
    ASSERT_EQ(GlobalFlags(h), 1);
    SetLastError(SENTINEL);
    ASSERT_EQ(GlobalUnlock(h), FALSE);
    ASSERT_EQ(GetLastError(), NO_ERROR);
    ASSERT_EQ(GlobalFree(h), NULL);
}

TEST(test_null_arguments)
{
    SetLastError(SENTINEL);
    ASSERT_EQ(GlobalLock(NULL), NULL);
    ASSERT_EQ(GlobalSize(NULL), 0);
    ASSERT_EQ(GlobalFree(NULL), NULL);
    SetLastError(SENTINEL);
    ASSERT_EQ(GlobalReAlloc(NULL, 10, GMEM_MOVEABLE), NULL);
    ASSERT_EQ(GetLastError(), ERROR_INVALID_HANDLE);
    ASSERT_EQ(GlobalHandle(NULL), NULL);
}

/* ---- §6 invalid values ---- */

static void check_stale_global(HGLOBAL h)
{
    SetLastError(SENTINEL);
    ASSERT_EQ(GlobalFree(h), h);
    ASSERT_EQ(GetLastError(), ERROR_INVALID_HANDLE);
    SetLastError(SENTINEL);
    ASSERT_EQ(GlobalFlags(h), GMEM_INVALID_HANDLE);
    ASSERT_EQ(GetLastError(), ERROR_INVALID_HANDLE);
    SetLastError(SENTINEL);
    ASSERT_EQ(GlobalSize(h), 0);
    ASSERT_EQ(GetLastError(), ERROR_INVALID_HANDLE);
    SetLastError(SENTINEL);
    ASSERT_EQ(GlobalLock(h), NULL);
    ASSERT_EQ(GetLastError(), ERROR_INVALID_HANDLE);
    SetLastError(SENTINEL);
    ASSERT_EQ(GlobalUnlock(h), TRUE);
    ASSERT_EQ(GetLastError(), ERROR_INVALID_HANDLE);
    UINT rflags[] = {0, GMEM_MOVEABLE, GMEM_MODIFY, GMEM_MOVEABLE | GMEM_ZEROINIT,
                     GMEM_DISCARDABLE};
    SIZE_T rsizes[] = {0, 10, 1000};
    for (size_t f = 0; f < sizeof rflags / sizeof rflags[0]; f++) {
        for (size_t s = 0; s < 3; s++) {
            SetLastError(SENTINEL);
            ASSERT_EQ(GlobalReAlloc(h, rsizes[s], rflags[f]), NULL);
            ASSERT_EQ(GetLastError(), ERROR_INVALID_HANDLE);
        }
    }
    SetLastError(SENTINEL);
    ASSERT_EQ(GlobalDiscard(h), NULL);
    ASSERT_EQ(GetLastError(), ERROR_INVALID_HANDLE);
}

TEST(test_invalid_stale_handle)
{
    HGLOBAL h = GlobalAlloc(GMEM_MOVEABLE, 100);
    GlobalLock(h); /* freeing a locked block is allowed */
    ASSERT_EQ(GlobalFree(h), NULL);
    check_stale_global(h);
    HGLOBAL d = GlobalAlloc(GMEM_MOVEABLE, 0);
    ASSERT_EQ(GlobalFree(d), NULL);
    check_stale_global(d);
    /* The slot gets reused: the old value must stay dead. */
    HGLOBAL again[8];
    for (int i = 0; i < 8; i++)
        again[i] = GlobalAlloc(GMEM_MOVEABLE, 8);
    for (int i = 0; i < 8; i++)
        ASSERT_NE(again[i], h);
    check_stale_global(h);
    for (int i = 0; i < 8; i++)
        GlobalFree(again[i]);
}

TEST(test_invalid_handle_shaped)
{
    check_stale_global(BOGUS_HANDLE);
    check_stale_global((HGLOBAL)(uintptr_t)8);
    check_stale_global((HGLOBAL)(~(uintptr_t)0 - 7)); /* high bits set */
    HGLOBAL h = GlobalAlloc(GMEM_MOVEABLE, 16);
    /* same slot, other heap id / generation */
    check_stale_global((HGLOBAL)((uintptr_t)h | ((uintptr_t)1 << 52)));
    check_stale_global((HGLOBAL)((uintptr_t)h ^ ((uintptr_t)1 << 28)));
    GlobalFree(h);
}

static void check_bogus_ptr_global(void *p)
{
    SetLastError(SENTINEL);
    ASSERT_EQ(GlobalFree(p), p);
    ASSERT_EQ(GetLastError(), ERROR_NOACCESS);
    SetLastError(SENTINEL);
    ASSERT_EQ(GlobalFlags(p), GMEM_INVALID_HANDLE);
    ASSERT_EQ(GetLastError(), ERROR_INVALID_HANDLE);
    SetLastError(SENTINEL);
    ASSERT_EQ(GlobalSize(p), 0);
    ASSERT_EQ(GetLastError(), ERROR_INVALID_HANDLE);
    SetLastError(SENTINEL);
    ASSERT_EQ(GlobalLock(p), NULL);
    ASSERT_EQ(GetLastError(), ERROR_INVALID_HANDLE);
    SetLastError(SENTINEL);
    ASSERT_EQ(GlobalUnlock(p), TRUE);
    ASSERT_EQ(GetLastError(), SENTINEL);
    UINT rflags[] = {0, GMEM_MOVEABLE, GMEM_MODIFY | GMEM_MOVEABLE, GMEM_DISCARDABLE};
    for (size_t f = 0; f < sizeof rflags / sizeof rflags[0]; f++) {
        SetLastError(SENTINEL);
        ASSERT_EQ(GlobalReAlloc(p, 10, rflags[f]), NULL);
        ASSERT_EQ(GetLastError(), ERROR_NOACCESS);
    }
    SetLastError(SENTINEL);
    ASSERT_EQ(GlobalHandle(p), NULL);
    ASSERT_EQ(GetLastError(), ERROR_INVALID_HANDLE);
}

TEST(test_invalid_pointer_shaped)
{
    check_bogus_ptr_global(BOGUS_PTR);
    char stack_buf[64] __attribute__((aligned(16)));
    check_bogus_ptr_global(stack_buf);
    /* inside a live fixed block, and a block from the malloc-style API (no tag) */
    char *p = GlobalAlloc(GMEM_FIXED, 256);
    check_bogus_ptr_global(p + 64);
    ASSERT_EQ(GlobalSize(p), 256);
    void *m = ga_malloc(64);
    check_bogus_ptr_global(m);
    ga_free(m);
    /* odd values that are neither shape */
    check_bogus_ptr_global((void *)(uintptr_t)0xc042);
    check_bogus_ptr_global((void *)(uintptr_t)0x1234567);
    ASSERT_EQ(GlobalFree(p), NULL);
}

static int g_reports, g_report_err;
static uintptr_t g_report_ptr;
static int count_reports(int err, const char *msg, uintptr_t ptr, void *arg)
{
    (void)msg;
    (void)arg;
    g_reports++;
    g_report_err = err;
    g_report_ptr = ptr;
    return 1;
}

TEST(test_fixed_double_free)
{
    ga_set_error_handler(count_reports, NULL);
    g_reports = 0;
    void *p = GlobalAlloc(GMEM_FIXED, 48);
    ASSERT_EQ(GlobalFree(p), NULL);
    SetLastError(SENTINEL);
    ASSERT_EQ(GlobalFree(p), p); /* 32-bit Windows' answer; never a crash */
    ASSERT_EQ(GetLastError(), ERROR_INVALID_HANDLE);
    ASSERT_EQ(g_reports, 1);
    ASSERT_EQ(g_report_err, GA_EDOUBLEFREE);
    ASSERT_EQ(g_report_ptr, (uintptr_t)p);
    /* Huge blocks have a mapping of their own: kept for reuse (1 MiB) or unmapped at once
     * (200 MiB, more than the engine keeps). The second free has the same answer either way. */
    size_t sizes[] = {(size_t)1 << 20, (size_t)200 << 20};
    for (size_t i = 0; i < 2; i++) {
        void *big = GlobalAlloc(GMEM_FIXED, sizes[i]);
        ASSERT_NE(big, NULL);
        ASSERT_EQ(GlobalFree(big), NULL);
        SetLastError(SENTINEL);
        int before = g_reports;
        ASSERT_EQ(GlobalFree(big), big);
        ASSERT_EQ(GetLastError(), ERROR_INVALID_HANDLE);
        ASSERT_EQ(g_reports, before + 1);
        ASSERT_EQ(g_report_err, GA_EDOUBLEFREE);
    }
    ga_set_error_handler(NULL, NULL);
}

TEST(test_data_pointer_queries)
{
    HGLOBAL h = GlobalAlloc(GMEM_MOVEABLE | GMEM_DISCARDABLE, 0x123);
    char *p = GlobalLock(h);
    ASSERT_EQ(GlobalSize(p), 0x123);
    ASSERT_EQ(GlobalHandle(p), h);
    ASSERT_EQ(GlobalLock(p), p); /* a data pointer behaves as a fixed pointer */
    ASSERT_EQ(GlobalFlags(h), 0x101);
    ASSERT_EQ(GlobalFlags(p), 0); /* WI: 0 for valid pointers (spec §10 q3) */
    SetLastError(SENTINEL);
    ASSERT_EQ(GlobalUnlock(p), TRUE);
    ASSERT_EQ(GetLastError(), SENTINEL);
    ASSERT_EQ(GlobalFlags(h), 0x101);
    /* freeing or resizing the data behind its handle's back is refused */
    SetLastError(SENTINEL);
    ASSERT_EQ(GlobalFree(p), p);
    ASSERT_EQ(GetLastError(), ERROR_INVALID_HANDLE);
    ASSERT_EQ(GlobalReAlloc(p, 10, GMEM_MOVEABLE), NULL);
    ASSERT_EQ(GlobalSize(h), 0x123);
    /* after unlock + a move the old data pointer is no longer the handle's */
    GlobalUnlock(h);
    ASSERT_EQ(GlobalReAlloc(h, 200000, GMEM_MOVEABLE), h);
    char *q = GlobalLock(h);
    ASSERT_EQ(GlobalHandle(q), h);
    ASSERT_EQ(GlobalSize(q), 200000);
    GlobalUnlock(h);
    ASSERT_EQ(GlobalFree(h), NULL);
}

/* ---- §4.8 realloc decision table ---- */

TEST(test_realloc_discardable_without_modify)
{
    void *p = GlobalAlloc(GMEM_FIXED, 40);
    HGLOBAL h = GlobalAlloc(GMEM_MOVEABLE, 40);
    SIZE_T sizes[] = {0, 40, 100};
    for (int i = 0; i < 3; i++) {
        ASSERT_EQ(GlobalReAlloc(p, sizes[i], GMEM_DISCARDABLE), NULL);
        ASSERT_EQ(GlobalReAlloc(p, sizes[i], GMEM_DISCARDABLE | GMEM_MOVEABLE), NULL);
        ASSERT_EQ(GlobalReAlloc(h, sizes[i], GMEM_DISCARDABLE), NULL);
        ASSERT_EQ(GlobalReAlloc(h, sizes[i], GMEM_DISCARDABLE | GMEM_MOVEABLE), NULL);
    }
    ASSERT_EQ(GlobalSize(p), 40);
    ASSERT_EQ(GlobalSize(h), 40);
    ASSERT_EQ(GlobalFlags(h), 0);
    GlobalFree(p);
    GlobalFree(h);
}

TEST(test_realloc_fixed_modify)
{
    char *p = GlobalAlloc(GMEM_FIXED, 77);
    fill_pattern(p, 77, 3);
    ASSERT_EQ(GlobalReAlloc(p, 1000, GMEM_MODIFY), p);
    ASSERT_EQ(GlobalReAlloc(p, 0, GMEM_MODIFY | GMEM_DISCARDABLE), p);
    ASSERT_EQ(GlobalSize(p), 77);
    ASSERT_EQ(GlobalFlags(p), 0);
    CHECK(has_pattern(p, 77, 3));
    GlobalFree(p);
}

TEST(test_realloc_fixed_convert)
{
    UINT extra[] = {0, GMEM_DISCARDABLE};
    for (int i = 0; i < 2; i++) {
        char *p = GlobalAlloc(GMEM_FIXED, 300);
        fill_pattern(p, 300, 9);
        HGLOBAL h = GlobalReAlloc(p, 5, GMEM_MODIFY | GMEM_MOVEABLE | extra[i]);
        CHECK(h != NULL);
        ASSERT_NE(h, p);
        CHECK(is_handle_shaped(h));
        ASSERT_EQ(GlobalSize(h), 300); /* size unchanged */
        ASSERT_EQ(GlobalFlags(h), i ? GMEM_DISCARDABLE : 0);
        char *d = GlobalLock(h);
        ASSERT_NE(d, h);
        CHECK(d && has_pattern(d, 300, 9));
        ASSERT_EQ(GlobalFlags(h) & GMEM_LOCKCOUNT, 1);
        ASSERT_EQ(GlobalHandle(d), h);
        GlobalUnlock(h);
        /* a converted block behaves as any moveable block */
        ASSERT_EQ(GlobalDiscard(h), h);
        ASSERT_EQ(GlobalFlags(h), GMEM_DISCARDED | (i ? GMEM_DISCARDABLE : 0));
        ASSERT_EQ(GlobalReAlloc(h, 64, GMEM_MOVEABLE | GMEM_ZEROINIT), h);
        ASSERT_EQ(GlobalSize(h), 64);
        ASSERT_EQ(GlobalFree(h), NULL);
    }
}

TEST(test_realloc_fixed_in_place_only)
{
    /* Without GMEM_MOVEABLE a fixed block never moves: same pointer or NULL + 8. */
    SIZE_T sizes[] = {10, 100, 1000, 5000, 100000, 64, 1};
    char *p = GlobalAlloc(GMEM_FIXED, 64);
    SIZE_T cur = 64;
    fill_pattern(p, 64, 1);
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        SetLastError(SENTINEL);
        char *r = GlobalReAlloc(p, sizes[i], 0);
        if (r) {
            ASSERT_EQ(r, p);
            ASSERT_EQ(GlobalSize(p), sizes[i]);
            SIZE_T keep = cur < sizes[i] ? cur : sizes[i];
            CHECK(has_pattern(p, keep < 64 ? keep : 64, 1));
            cur = sizes[i];
            if (cur < 64) fill_pattern(p, cur, 1);
        } else {
            ASSERT_EQ(GetLastError(), ERROR_NOT_ENOUGH_MEMORY);
            ASSERT_EQ(GlobalSize(p), cur);
        }
    }
    /* shrinking always fits in place here */
    ASSERT_EQ(GlobalReAlloc(p, 0, 0), p);
    ASSERT_EQ(GlobalSize(p), 0);
    GlobalFree(p);
}

TEST(test_realloc_fixed_moveable)
{
    char *p = GlobalAlloc(GMEM_FIXED, 12);
    fill_pattern(p, 12, 5);
    char *r = GlobalReAlloc(p, 100000, GMEM_MOVEABLE);
    CHECK(r != NULL && !is_handle_shaped(r));
    ASSERT_EQ(GlobalLock(r), r); /* still a fixed pointer */
    ASSERT_EQ(GlobalHandle(r), r);
    ASSERT_EQ(GlobalFlags(r), 0);
    ASSERT_EQ(GlobalSize(r), 100000);
    CHECK(has_pattern(r, 12, 5));
    memset(r, 7, 100000);
    char *s = GlobalReAlloc(r, 20, GMEM_MOVEABLE);
    CHECK(s != NULL);
    ASSERT_EQ(GlobalSize(s), 20);
    CHECK(all_bytes(s, 20, 7));
    /* size 0 with GMEM_MOVEABLE (GlobalDiscard): still a fixed, non-NULL pointer */
    char *z = GlobalReAlloc(s, 0, GMEM_MOVEABLE);
    CHECK(z != NULL && !is_handle_shaped(z));
    ASSERT_EQ(GlobalSize(z), 0);
    char *z2 = GlobalDiscard(z);
    CHECK(z2 != NULL);
    ASSERT_EQ(GlobalSize(z2), 0);
    ASSERT_EQ(GlobalFree(z2), NULL);
}

TEST(test_realloc_moveable_unlocked)
{
    UINT flags[] = {0, GMEM_MOVEABLE};
    for (int f = 0; f < 2; f++) {
        HGLOBAL h = GlobalAlloc(GMEM_MOVEABLE, 20);
        fill_pattern(GlobalLock(h), 20, 11);
        GlobalUnlock(h);
        ASSERT_EQ(GlobalReAlloc(h, 123456, flags[f]), h); /* may move */
        ASSERT_EQ(GlobalSize(h), 123456);
        ASSERT_EQ(GlobalFlags(h), 0);
        char *p = GlobalLock(h);
        CHECK(has_pattern(p, 20, 11));
        GlobalUnlock(h);
        ASSERT_EQ(GlobalReAlloc(h, 7, flags[f]), h);
        ASSERT_EQ(GlobalSize(h), 7);
        CHECK(has_pattern(GlobalLock(h), 7, 11));
        GlobalUnlock(h);
        /* size 0 without GMEM_MOVEABLE: refused, block intact */
        ASSERT_EQ(GlobalReAlloc(h, 0, 0), NULL);
        ASSERT_EQ(GlobalSize(h), 7);
        ASSERT_EQ(GlobalFlags(h), 0);
        /* discard, then revive */
        ASSERT_EQ(GlobalReAlloc(h, 0, GMEM_MOVEABLE), h);
        ASSERT_EQ(GlobalSize(h), 0);
        ASSERT_EQ(GlobalFlags(h), GMEM_DISCARDED);
        ASSERT_EQ(GlobalReAlloc(h, 50, flags[f]), h);
        ASSERT_EQ(GlobalFlags(h), 0);
        ASSERT_EQ(GlobalSize(h), 50);
        p = GlobalLock(h);
        CHECK(p != NULL);
        memset(p, 0, 50);
        GlobalUnlock(h);
        GlobalFree(h);
    }
}

TEST(test_realloc_moveable_locked)
{
    HGLOBAL h = GlobalAlloc(GMEM_MOVEABLE, 12);
    char *p = GlobalLock(h);
    fill_pattern(p, 12, 2);
    /* grow without MOVEABLE: in place or NULL + 8 */
    SetLastError(SENTINEL);
    HGLOBAL r = GlobalReAlloc(h, 100000, 0);
    if (r) {
        ASSERT_EQ(r, h);
        ASSERT_EQ(GlobalLock(h), p);
        GlobalUnlock(h);
    } else {
        ASSERT_EQ(GetLastError(), ERROR_NOT_ENOUGH_MEMORY);
        ASSERT_EQ(GlobalSize(h), 12);
    }
    ASSERT_EQ(GlobalReAlloc(h, 10, 0), h); /* shrink in place */
    ASSERT_EQ(GlobalSize(h), 10);
    ASSERT_EQ(GlobalLock(h), p);
    ASSERT_EQ(GlobalFlags(h), 2);
    CHECK(has_pattern(p, 10, 2));
    GlobalUnlock(h);
    /* GMEM_MOVEABLE: moves although locked; lock count kept */
    ASSERT_EQ(GlobalReAlloc(h, 512, GMEM_MOVEABLE), h);
    ASSERT_EQ(GlobalFlags(h), 1);
    ASSERT_EQ(GlobalSize(h), 512);
    char *q = GlobalLock(h);
    CHECK(q != NULL && has_pattern(q, 10, 2));
    ASSERT_EQ(GlobalHandle(q), h);
    ASSERT_EQ(GlobalFlags(h), 2);
    GlobalUnlock(h);
    ASSERT_EQ(GlobalReAlloc(h, 300000, GMEM_MOVEABLE), h);
    q = GlobalLock(h);
    CHECK(has_pattern(q, 10, 2));
    ASSERT_EQ(GlobalHandle(q), h);
    ASSERT_EQ(GlobalSize(q), 300000);
    GlobalUnlock(h);
    /* size 0 on a locked block: NULL, unchanged (WI: Global leaves the error alone) */
    SetLastError(SENTINEL);
    ASSERT_EQ(GlobalReAlloc(h, 0, 0), NULL);
    ASSERT_EQ(GlobalReAlloc(h, 0, GMEM_MOVEABLE), NULL);
    ASSERT_EQ(GlobalDiscard(h), NULL);
    ASSERT_EQ(GetLastError(), SENTINEL);
    ASSERT_EQ(GlobalSize(h), 300000);
    ASSERT_EQ(GlobalFlags(h), 1);
    ASSERT_EQ(GlobalLock(h), q);
    GlobalUnlock(h);
    ASSERT_EQ(GlobalFree(h), NULL); /* frees locked blocks */
}

TEST(test_realloc_modify_moveable)
{
    HGLOBAL h = GlobalAlloc(GMEM_MOVEABLE, 33);
    for (int locked = 0; locked < 2; locked++) {
        if (locked) GlobalLock(h);
        ASSERT_EQ(GlobalReAlloc(h, 1000, GMEM_MODIFY), h);
        ASSERT_EQ(GlobalReAlloc(h, 0, GMEM_MODIFY | GMEM_MOVEABLE), h);
        ASSERT_EQ(GlobalSize(h), 33);
        ASSERT_EQ(GlobalFlags(h), (UINT)locked);
    }
    ASSERT_EQ(GlobalReAlloc(h, 5, GMEM_MODIFY | GMEM_DISCARDABLE), h);
    ASSERT_EQ(GlobalFlags(h), GMEM_DISCARDABLE | 1);
    ASSERT_EQ(GlobalSize(h), 33);
    /* MODIFY never clears discardability (WI) */
    ASSERT_EQ(GlobalReAlloc(h, 5, GMEM_MODIFY), h);
    ASSERT_EQ(GlobalFlags(h), GMEM_DISCARDABLE | 1);
    GlobalUnlock(h);
    /* MODIFY | MOVEABLE | DISCARDABLE on a discarded handle */
    HGLOBAL d = GlobalAlloc(GMEM_MOVEABLE, 0);
    ASSERT_EQ(GlobalReAlloc(d, 0, GMEM_MODIFY | GMEM_MOVEABLE | GMEM_DISCARDABLE), d);
    ASSERT_EQ(GlobalFlags(d), GMEM_DISCARDED | GMEM_DISCARDABLE);
    GlobalFree(d);
    GlobalFree(h);
}

TEST(test_realloc_zeroinit_growth)
{
    /* moved growth */
    HGLOBAL h = GlobalAlloc(GMEM_MOVEABLE, 100);
    memset(GlobalLock(h), 0xab, 100);
    GlobalUnlock(h);
    ASSERT_EQ(GlobalReAlloc(h, 50000, GMEM_MOVEABLE | GMEM_ZEROINIT), h);
    unsigned char *p = GlobalLock(h);
    CHECK(all_bytes(p, 100, 0xab));
    CHECK(all_bytes(p + 100, 50000 - 100, 0));
    /* in-place growth while locked: the bytes beyond the old size were dirty */
    memset(p, 0xcd, 50000);
    ASSERT_EQ(GlobalReAlloc(h, 10, 0), h);
    ASSERT_EQ(GlobalLock(h), p);
    ASSERT_EQ(GlobalReAlloc(h, 50000, GMEM_ZEROINIT), h);
    ASSERT_EQ(GlobalLock(h), p); /* in place: it fits */
    CHECK(all_bytes(p, 10, 0xcd));
    CHECK(all_bytes(p + 10, 50000 - 10, 0));
    GlobalUnlock(h);
    GlobalUnlock(h);
    GlobalUnlock(h);
    /* discarded block revived with ZEROINIT */
    memset(GlobalLock(h), 0xee, 50000);
    GlobalUnlock(h);
    ASSERT_EQ(GlobalDiscard(h), h);
    ASSERT_EQ(GlobalReAlloc(h, 4000, GMEM_MOVEABLE | GMEM_ZEROINIT), h);
    CHECK(all_bytes(GlobalLock(h), 4000, 0));
    GlobalUnlock(h);
    GlobalFree(h);
    /* fixed, in place and moved */
    unsigned char *f = GlobalAlloc(GMEM_FIXED, 1000);
    memset(f, 0x11, 1000);
    ASSERT_EQ(GlobalReAlloc(f, 10, 0), f);
    ASSERT_EQ(GlobalReAlloc(f, 1000, GMEM_ZEROINIT), f);
    CHECK(all_bytes(f, 10, 0x11));
    CHECK(all_bytes(f + 10, 990, 0));
    unsigned char *g = GlobalReAlloc(f, 70000, GMEM_MOVEABLE | GMEM_ZEROINIT);
    CHECK(g != NULL);
    CHECK(all_bytes(g, 10, 0x11) && all_bytes(g + 10, 70000 - 10, 0));
    GlobalFree(g);
}

TEST(test_huge_sizes)
{
    SIZE_T huge[] = {~(SIZE_T)0,      SIZE_MAX - 8,     SIZE_MAX - 15,   SIZE_MAX - 16,
                     SIZE_MAX - 4096, SIZE_MAX / 2 + 1, (SIZE_T)1 << 62, (SIZE_T)1 << 48};
    HGLOBAL h = GlobalAlloc(GMEM_MOVEABLE, 64);
    fill_pattern(GlobalLock(h), 64, 4);
    GlobalUnlock(h);
    char *f = GlobalAlloc(GMEM_FIXED, 64);
    fill_pattern(f, 64, 6);
    for (size_t i = 0; i < sizeof huge / sizeof huge[0]; i++) {
        SetLastError(SENTINEL);
        ASSERT_EQ(GlobalAlloc(GMEM_MOVEABLE, huge[i]), NULL);
        ASSERT_EQ(GetLastError(), ERROR_NOT_ENOUGH_MEMORY);
        SetLastError(SENTINEL);
        ASSERT_EQ(GlobalAlloc(GMEM_FIXED, huge[i]), NULL);
        ASSERT_EQ(GetLastError(), ERROR_NOT_ENOUGH_MEMORY);
        ASSERT_EQ(GlobalAlloc(GHND, huge[i]), NULL);
        ASSERT_EQ(GlobalAlloc(GPTR, huge[i]), NULL);
        UINT rf[] = {0, GMEM_MOVEABLE, GMEM_MOVEABLE | GMEM_ZEROINIT};
        for (int k = 0; k < 3; k++) {
            SetLastError(SENTINEL);
            ASSERT_EQ(GlobalReAlloc(h, huge[i], rf[k]), NULL);
            ASSERT_EQ(GetLastError(), ERROR_NOT_ENOUGH_MEMORY);
            SetLastError(SENTINEL);
            ASSERT_EQ(GlobalReAlloc(f, huge[i], rf[k]), NULL);
            ASSERT_EQ(GetLastError(), ERROR_NOT_ENOUGH_MEMORY);
        }
    }
    ASSERT_EQ(GlobalSize(h), 64);
    ASSERT_EQ(GlobalFlags(h), 0);
    CHECK(has_pattern(GlobalLock(h), 64, 4));
    GlobalUnlock(h);
    ASSERT_EQ(GlobalSize(f), 64);
    CHECK(has_pattern(f, 64, 6));
    ASSERT_EQ(GlobalFree(h), NULL);
    ASSERT_EQ(GlobalFree(f), NULL);
}

TEST(test_handle_table_full)
{
    /* Windows fails the next moveable allocation with ERROR_NOT_ENOUGH_MEMORY when its handle
     * table is full, while fixed allocations still work (spec §3). Cap ours to see the same. */
    ga__handle_test_limit(ga__handle_test_chunks() ? ga__handle_test_chunks() : 1);
    size_t cap = (size_t)ga__handle_test_chunks() * 4096 + 1, n = 0;
    HGLOBAL *hs = ga_malloc(cap * sizeof *hs);
    while (n < cap && (hs[n] = GlobalAlloc(GMEM_MOVEABLE, 0)) != NULL)
        n++;
    CHECK(n < cap);
    SetLastError(SENTINEL);
    ASSERT_EQ(GlobalAlloc(GMEM_MOVEABLE, 10), NULL);
    ASSERT_EQ(GetLastError(), ERROR_NOT_ENOUGH_MEMORY);
    SetLastError(SENTINEL);
    ASSERT_EQ(LocalAlloc(LMEM_MOVEABLE, 0), NULL);
    ASSERT_EQ(GetLastError(), ERROR_NOT_ENOUGH_MEMORY);
    void *f = GlobalAlloc(GMEM_FIXED, 10);
    CHECK(f != NULL);
    /* converting a fixed block needs a handle too: refused, block intact */
    ASSERT_EQ(GlobalReAlloc(f, 0, GMEM_MODIFY | GMEM_MOVEABLE), NULL);
    ASSERT_EQ(GetLastError(), ERROR_NOT_ENOUGH_MEMORY);
    ASSERT_EQ(GlobalSize(f), 10);
    ASSERT_EQ(GlobalFree(f), NULL);
    ga__handle_test_limit(0);
    while (n > 0)
        ASSERT_EQ(GlobalFree(hs[--n]), NULL);
    ga_free(hs);
}

/* ---- §4.9 discard ---- */

TEST(test_discard)
{
    HGLOBAL h = GlobalAlloc(GMEM_MOVEABLE | GMEM_DISCARDABLE, 100);
    ASSERT_EQ(GlobalDiscard(h), h);
    ASSERT_EQ(GlobalFlags(h), GMEM_DISCARDED | GMEM_DISCARDABLE);
    ASSERT_EQ(GlobalSize(h), 0);
    SetLastError(SENTINEL);
    ASSERT_EQ(GlobalLock(h), NULL);
    ASSERT_EQ(GetLastError(), ERROR_DISCARDED);
    ASSERT_EQ(GlobalDiscard(h), h); /* discarding twice is fine */
    ASSERT_EQ(GlobalReAlloc(h, 100, GMEM_MOVEABLE), h);
    ASSERT_EQ(GlobalFlags(h), GMEM_DISCARDABLE);
    ASSERT_EQ(GlobalSize(h), 100);
    void *p = GlobalLock(h);
    CHECK(p != NULL);
    ASSERT_EQ(GlobalDiscard(h), NULL); /* locked */
    ASSERT_EQ(GlobalFlags(h), GMEM_DISCARDABLE | 1);
    ASSERT_EQ(GlobalSize(h), 100);
    GlobalUnlock(h);
    GlobalFree(h);
    /* no GMEM_DISCARDABLE needed */
    h = GlobalAlloc(GMEM_MOVEABLE, 100);
    ASSERT_EQ(GlobalDiscard(h), h);
    ASSERT_EQ(GlobalFlags(h), GMEM_DISCARDED);
    ASSERT_EQ(GlobalFree(h), NULL);
    /* DDESHARE survives a discard */
    h = GlobalAlloc(GMEM_MOVEABLE | GMEM_DDESHARE, 10);
    ASSERT_EQ(GlobalDiscard(h), h);
    ASSERT_EQ(GlobalFlags(h), GMEM_DISCARDED | GMEM_DDESHARE);
    ASSERT_EQ(GlobalFree(h), NULL);
}

/* ---- §4.12 last error ---- */

static void *last_error_thread(void *arg)
{
    (void)arg;
    DWORD seen = GetLastError(); /* a new thread starts at 0 */
    SetLastError(0xFFFFFFFFu);
    HGLOBAL h = GlobalAlloc(GMEM_MOVEABLE, 0);
    GlobalLock(h); /* ERROR_DISCARDED, in this thread only */
    GlobalFree(h);
    DWORD after = GetLastError();
    return (void *)(uintptr_t)(seen == 0 && after == ERROR_DISCARDED);
}

TEST(test_last_error_per_thread)
{
    SetLastError(0x12345678u);
    ASSERT_EQ(GetLastError(), 0x12345678u);
    ga_set_last_error(GA_EINVAL);
    ASSERT_EQ(GetLastError(), 0x12345678u); /* separate from ga_last_error */
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        pthread_create(&t[i], NULL, last_error_thread, NULL);
    for (int i = 0; i < 2; i++) {
        void *ok;
        pthread_join(t[i], &ok);
        ASSERT_EQ((uintptr_t)ok, 1);
    }
    ASSERT_EQ(GetLastError(), 0x12345678u);
    ASSERT_EQ(ga_last_error(), GA_EINVAL);
    SetLastError(0);
    ASSERT_EQ(GetLastError(), 0);
    ga_set_last_error(GA_OK);
}

/* ---- concurrency ---- */

#define NTHREADS 4
#define ITERS    20000
#define EXTRA    40 /* net locks each thread leaves behind */

static HGLOBAL g_shared;
static void *g_shared_data;

static void *lock_unlock_thread(void *arg)
{
    (void)arg;
    uintptr_t bad = 0;
    for (int i = 0; i < ITERS; i++) {
        if (GlobalLock(g_shared) != g_shared_data) bad++;
        if ((GlobalFlags(g_shared) & GMEM_LOCKCOUNT) == 0) bad++;
        if (GlobalSize(g_shared) != 1000) bad++;
        if (i % 2 == 0 || i >= 2 * EXTRA)
            if (!GlobalUnlock(g_shared) && GetLastError() != NO_ERROR) bad++;
    }
    return (void *)bad;
}

TEST(test_concurrent_lock_unlock)
{
    g_shared = GlobalAlloc(GMEM_MOVEABLE, 1000);
    g_shared_data = GlobalLock(g_shared);
    GlobalUnlock(g_shared);
    pthread_t t[NTHREADS];
    for (int i = 0; i < NTHREADS; i++)
        pthread_create(&t[i], NULL, lock_unlock_thread, NULL);
    for (int i = 0; i < NTHREADS; i++) {
        void *bad;
        pthread_join(t[i], &bad);
        ASSERT_EQ((uintptr_t)bad, 0);
    }
    ASSERT_EQ(GlobalFlags(g_shared), NTHREADS * EXTRA);
    for (int i = 0; i < NTHREADS * EXTRA - 1; i++)
        CHECK(GlobalUnlock(g_shared));
    ASSERT_EQ(GlobalUnlock(g_shared), FALSE);
    ASSERT_EQ(GetLastError(), NO_ERROR);
    ASSERT_EQ(GlobalFree(g_shared), NULL);
}

/* Lock/unlock (without touching the data) while another thread keeps moving the block. */
static _Atomic int g_stop;
static void *lock_spinner(void *arg)
{
    (void)arg;
    uintptr_t bad = 0;
    while (!g_stop) {
        void *p = GlobalLock(g_shared);
        if (!p || !is_aligned16(p)) bad++;
        SIZE_T s = GlobalSize(g_shared);
        if (s < 16 || s > 20000) bad++;
        GlobalUnlock(g_shared);
    }
    return (void *)bad;
}

TEST(test_concurrent_lock_vs_realloc)
{
    g_shared = GlobalAlloc(GMEM_MOVEABLE, 16);
    g_stop = 0;
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        pthread_create(&t[i], NULL, lock_spinner, NULL);
    unsigned seed = 1;
    for (int i = 0; i < 3000; i++) {
        seed = seed * 1103515245u + 12345u;
        SIZE_T n = 16 + (seed >> 8) % 19000;
        CHECK(GlobalReAlloc(g_shared, n, GMEM_MOVEABLE) == g_shared);
        SIZE_T s = GlobalSize(g_shared);
        CHECK(s == n);
    }
    g_stop = 1;
    for (int i = 0; i < 2; i++) {
        void *bad;
        pthread_join(t[i], &bad);
        ASSERT_EQ((uintptr_t)bad, 0);
    }
    ASSERT_EQ(GlobalFlags(g_shared), 0);
    ASSERT_EQ(GlobalFree(g_shared), NULL);
}

TEST_MAIN(TEST_ENTRY(test_types_and_constants), TEST_ENTRY(test_fixed_basics),
          TEST_ENTRY(test_fixed_zero_size), TEST_ENTRY(test_zeroinit),
          TEST_ENTRY(test_moveable_basics), TEST_ENTRY(test_moveable_zero_size),
          TEST_ENTRY(test_flag_bookkeeping), TEST_ENTRY(test_alignment),
          TEST_ENTRY(test_lock_saturation), TEST_ENTRY(test_null_arguments),
          TEST_ENTRY(test_invalid_stale_handle), TEST_ENTRY(test_invalid_handle_shaped),
          TEST_ENTRY(test_invalid_pointer_shaped), TEST_ENTRY(test_fixed_double_free),
          TEST_ENTRY(test_data_pointer_queries),
          TEST_ENTRY(test_realloc_discardable_without_modify),
          TEST_ENTRY(test_realloc_fixed_modify), TEST_ENTRY(test_realloc_fixed_convert),
          TEST_ENTRY(test_realloc_fixed_in_place_only), TEST_ENTRY(test_realloc_fixed_moveable),
          TEST_ENTRY(test_realloc_moveable_unlocked), TEST_ENTRY(test_realloc_moveable_locked),
          TEST_ENTRY(test_realloc_modify_moveable), TEST_ENTRY(test_realloc_zeroinit_growth),
          TEST_ENTRY(test_huge_sizes), TEST_ENTRY(test_handle_table_full), TEST_ENTRY(test_discard),
          TEST_ENTRY(test_last_error_per_thread), TEST_ENTRY(test_concurrent_lock_unlock),
          TEST_ENTRY(test_concurrent_lock_vs_realloc))
