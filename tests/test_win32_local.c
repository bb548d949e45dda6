/* SPDX-License-Identifier: MIT */
/*
 * LocalAlloc & co. against the spec (win32-global-heap.md): the Local family's [T] points,
 * its differences from Global (§4.2, §4.5, §4.6, §6 Local rows, LMEM_DISCARDABLE 0x0F00,
 * no fixed->moveable conversion), and the shared realloc rules through the Local names.
 */
#include "test.h"
#include "win32_test_util.h"
#include <pthread.h>

TEST(test_constants)
{
    ASSERT_EQ(LMEM_FIXED, 0x0000);
    ASSERT_EQ(LMEM_MOVEABLE, 0x0002);
    ASSERT_EQ(LMEM_NOCOMPACT, 0x0010);
    ASSERT_EQ(LMEM_NODISCARD, 0x0020);
    ASSERT_EQ(LMEM_ZEROINIT, 0x0040);
    ASSERT_EQ(LMEM_MODIFY, 0x0080);
    ASSERT_EQ(LMEM_DISCARDABLE, 0x0F00);
    ASSERT_EQ(LMEM_VALID_FLAGS, 0x0F72);
    ASSERT_EQ(LMEM_INVALID_HANDLE, 0x8000);
    ASSERT_EQ(LMEM_DISCARDED, 0x4000);
    ASSERT_EQ(LMEM_LOCKCOUNT, 0x00FF);
    ASSERT_EQ(LHND, 0x0042);
    ASSERT_EQ(LPTR, 0x0040);
    ASSERT_EQ(NONZEROLHND, 0x0002);
    ASSERT_EQ(NONZEROLPTR, 0x0000);
    ASSERT_EQ(sizeof(HLOCAL), sizeof(void *));
}

TEST(test_fixed)
{
    char *p = LocalAlloc(LMEM_FIXED, 0x123);
    CHECK(p != NULL && is_aligned16(p));
    ASSERT_EQ(LocalSize(p), 0x123);
    ASSERT_EQ(LocalLock(p), p);
    ASSERT_EQ(LocalFlags(p), 0);
    ASSERT_EQ(LocalHandle(p), p);
    SetLastError(SENTINEL);
    ASSERT_EQ(LocalUnlock(p), FALSE); /* fixed: FALSE + ERROR_NOT_LOCKED */
    ASSERT_EQ(GetLastError(), ERROR_NOT_LOCKED);
    ASSERT_EQ(LocalFree(p), NULL);
    /* 0 bytes: LocalSize 0 (GlobalAlloc would say 1) */
    p = LocalAlloc(LMEM_FIXED, 0);
    CHECK(p != NULL);
    ASSERT_EQ(LocalSize(p), 0);
    ASSERT_EQ(LocalFree(p), NULL);
    p = LocalAlloc(LMEM_FIXED | LMEM_DISCARDABLE, 0);
    CHECK(p != NULL);
    ASSERT_EQ(LocalFlags(p), 0);
    ASSERT_EQ(LocalFree(p), NULL);
    /* LPTR zero-fills */
    void *d = LocalAlloc(LMEM_FIXED, 100000);
    memset(d, 0x77, 100000);
    LocalFree(d);
    p = LocalAlloc(LPTR, 100000);
    CHECK(all_bytes(p, 100000, 0));
    LocalFree(p);
}

TEST(test_moveable)
{
    HLOCAL h = LocalAlloc(LMEM_MOVEABLE, 256);
    CHECK(h != NULL && is_handle_shaped(h));
    ASSERT_EQ(LocalFlags(h), 0);
    ASSERT_EQ(LocalSize(h), 256);
    char *p = LocalLock(h);
    CHECK(p != NULL && is_aligned16(p));
    ASSERT_NE(p, h);
    ASSERT_EQ(LocalLock(h), p);
    ASSERT_EQ(LocalFlags(h), 2);
    ASSERT_EQ(LocalHandle(p), h);
    ASSERT_EQ(LocalSize(p), 256);
    ASSERT_EQ(LocalUnlock(h), TRUE);
    SetLastError(SENTINEL);
    ASSERT_EQ(LocalUnlock(h), FALSE);
    ASSERT_EQ(GetLastError(), NO_ERROR);
    SetLastError(SENTINEL);
    ASSERT_EQ(LocalUnlock(h), FALSE);
    ASSERT_EQ(GetLastError(), ERROR_NOT_LOCKED);
    ASSERT_EQ(LocalFree(h), NULL);
    /* LHND zero-fills */
    h = LocalAlloc(LHND, 5000);
    CHECK(all_bytes(LocalLock(h), 5000, 0));
    LocalUnlock(h);
    LocalFree(h);
}

TEST(test_moveable_zero_and_discardable)
{
    HLOCAL h = LocalAlloc(LMEM_MOVEABLE, 0);
    CHECK(h != NULL);
    ASSERT_EQ(LocalSize(h), 0);
    ASSERT_EQ(LocalFlags(h), LMEM_DISCARDED);
    SetLastError(SENTINEL);
    ASSERT_EQ(LocalLock(h), NULL);
    ASSERT_EQ(GetLastError(), ERROR_DISCARDED);
    ASSERT_EQ(LocalFree(h), NULL);
    /* any bit of 0x0F00 makes a block discardable; LocalFlags reports exactly 0x0F00 */
    UINT bits[] = {0x0100, 0x0200, 0x0400, 0x0800, LMEM_DISCARDABLE};
    for (int i = 0; i < 5; i++) {
        h = LocalAlloc(LMEM_MOVEABLE | bits[i], 10);
        UINT f = LocalFlags(h);
        CHECK((f & LMEM_DISCARDABLE) != 0);
        ASSERT_EQ(f & ~(UINT)LMEM_DISCARDABLE, 0);
        ASSERT_EQ(f, 0x0F00);
        ASSERT_EQ(GlobalFlags(h), GMEM_DISCARDABLE); /* the same entry, Global's view */
        LocalLock(h);
        ASSERT_EQ(LocalFlags(h), 0x0F01);
        LocalUnlock(h);
        LocalFree(h);
    }
    h = LocalAlloc(LMEM_MOVEABLE | LMEM_DISCARDABLE, 0);
    ASSERT_EQ(LocalFlags(h), LMEM_DISCARDED | LMEM_DISCARDABLE);
    LocalFree(h);
    /* ignored flags; Local has no DDESHARE attribute */
    UINT ign[] = {LMEM_NOCOMPACT, LMEM_NODISCARD, 0x2000, 0x4000};
    for (int i = 0; i < 4; i++) {
        h = LocalAlloc(LMEM_MOVEABLE | ign[i], 10);
        ASSERT_EQ(LocalFlags(h), 0);
        LocalFree(h);
    }
}

TEST(test_lock_saturation)
{
    HLOCAL h = LocalAlloc(LMEM_MOVEABLE, 8);
    void *p = LocalLock(h);
    for (int i = 0; i < 300; i++)
        CHECK(LocalLock(h) == p);
    ASSERT_EQ(LocalFlags(h), 0xFF);
    for (int i = 0; i < 254; i++)
        CHECK(LocalUnlock(h) == TRUE);
    ASSERT_EQ(LocalUnlock(h), FALSE);
    ASSERT_EQ(GetLastError(), NO_ERROR);
    LocalFree(h);
}

static void check_stale_local(HLOCAL h)
{
    SetLastError(SENTINEL);
    ASSERT_EQ(LocalFree(h), h);
    ASSERT_EQ(GetLastError(), ERROR_INVALID_HANDLE);
    SetLastError(SENTINEL);
    ASSERT_EQ(LocalFlags(h), LMEM_INVALID_HANDLE);
    ASSERT_EQ(GetLastError(), ERROR_INVALID_HANDLE);
    SetLastError(SENTINEL);
    ASSERT_EQ(LocalSize(h), 0);
    ASSERT_EQ(GetLastError(), ERROR_INVALID_HANDLE);
    SetLastError(SENTINEL);
    ASSERT_EQ(LocalLock(h), NULL);
    ASSERT_EQ(GetLastError(), ERROR_INVALID_HANDLE);
    SetLastError(SENTINEL);
    ASSERT_EQ(LocalUnlock(h), FALSE);
    ASSERT_EQ(GetLastError(), ERROR_INVALID_HANDLE);
    UINT rflags[] = {0, LMEM_MOVEABLE, LMEM_MODIFY, LMEM_MODIFY | LMEM_DISCARDABLE, 0x0100};
    for (size_t f = 0; f < sizeof rflags / sizeof rflags[0]; f++) {
        SetLastError(SENTINEL);
        ASSERT_EQ(LocalReAlloc(h, 10, rflags[f]), NULL);
        ASSERT_EQ(GetLastError(), ERROR_INVALID_HANDLE);
        SetLastError(SENTINEL);
        ASSERT_EQ(LocalReAlloc(h, 0, rflags[f]), NULL);
        ASSERT_EQ(GetLastError(), ERROR_INVALID_HANDLE);
    }
    SetLastError(SENTINEL);
    ASSERT_EQ(LocalDiscard(h), NULL);
    ASSERT_EQ(GetLastError(), ERROR_INVALID_HANDLE);
}

TEST(test_invalid_stale)
{
    HLOCAL h = LocalAlloc(LMEM_MOVEABLE, 10);
    LocalLock(h);
    ASSERT_EQ(LocalFree(h), NULL); /* locked blocks are freed too */
    check_stale_local(h);
    h = LocalAlloc(LMEM_MOVEABLE, 0);
    ASSERT_EQ(LocalFree(h), NULL);
    check_stale_local(h);
    check_stale_local(BOGUS_HANDLE);
    check_stale_local((HLOCAL)(uintptr_t)0x18);
}

static void check_bogus_ptr_local(void *p)
{
    SetLastError(SENTINEL);
    ASSERT_EQ(LocalFree(p), p);
    ASSERT_EQ(GetLastError(), ERROR_NOACCESS);
    SetLastError(SENTINEL);
    ASSERT_EQ(LocalFlags(p), LMEM_INVALID_HANDLE);
    ASSERT_EQ(GetLastError(), ERROR_NOACCESS);
    SetLastError(SENTINEL);
    ASSERT_EQ(LocalSize(p), 0);
    ASSERT_EQ(GetLastError(), ERROR_INVALID_HANDLE);
    SetLastError(SENTINEL);
    ASSERT_EQ(LocalLock(p), NULL);
    ASSERT_EQ(GetLastError(), SENTINEL); /* untouched */
    SetLastError(SENTINEL);
    ASSERT_EQ(LocalUnlock(p), FALSE);
    ASSERT_EQ(GetLastError(), ERROR_NOT_LOCKED);
    UINT rflags[] = {0, LMEM_MOVEABLE, LMEM_MODIFY | LMEM_MOVEABLE, LMEM_DISCARDABLE};
    for (size_t f = 0; f < sizeof rflags / sizeof rflags[0]; f++) {
        SetLastError(SENTINEL);
        ASSERT_EQ(LocalReAlloc(p, 10, rflags[f]), NULL);
        ASSERT_EQ(GetLastError(), ERROR_NOACCESS);
    }
    SetLastError(SENTINEL);
    ASSERT_EQ(LocalHandle(p), NULL);
    ASSERT_EQ(GetLastError(), ERROR_NOACCESS);
}

TEST(test_invalid_pointer_shaped)
{
    check_bogus_ptr_local(BOGUS_PTR);
    char buf[32] __attribute__((aligned(16)));
    check_bogus_ptr_local(buf);
    char *p = LocalAlloc(LMEM_FIXED, 100);
    check_bogus_ptr_local(p + 32);
    void *m = ga_malloc(100);
    check_bogus_ptr_local(m);
    ga_free(m);
    check_bogus_ptr_local((void *)(uintptr_t)0xc042);
    ASSERT_EQ(LocalSize(p), 100);
    LocalFree(p);
}

TEST(test_null)
{
    ASSERT_EQ(LocalFree(NULL), NULL);
    ASSERT_EQ(LocalLock(NULL), NULL);
    ASSERT_EQ(LocalSize(NULL), 0);
    SetLastError(SENTINEL);
    ASSERT_EQ(LocalReAlloc(NULL, 10, LMEM_MOVEABLE), NULL);
    ASSERT_EQ(GetLastError(), ERROR_INVALID_HANDLE);
    SetLastError(SENTINEL);
    ASSERT_EQ(LocalHandle(NULL), NULL);
    ASSERT_EQ(GetLastError(), ERROR_INVALID_PARAMETER); /* WI */
}

/* ---- realloc ---- */

TEST(test_realloc_fixed_modify_no_conversion)
{
    UINT fl[] = {LMEM_MODIFY | LMEM_MOVEABLE, LMEM_MODIFY,
                 LMEM_MODIFY | LMEM_MOVEABLE | LMEM_DISCARDABLE};
    for (int i = 0; i < 3; i++) {
        char *p = LocalAlloc(LMEM_FIXED, 40);
        fill_pattern(p, 40, 8);
        ASSERT_EQ(LocalReAlloc(p, 1000, fl[i]), p);
        ASSERT_EQ(LocalSize(p), 40);
        ASSERT_EQ(LocalLock(p), p);
        SetLastError(SENTINEL);
        ASSERT_EQ(LocalUnlock(p), FALSE);
        ASSERT_EQ(GetLastError(), ERROR_NOT_LOCKED);
        ASSERT_EQ(LocalFlags(p), 0);
        CHECK(has_pattern(p, 40, 8));
        LocalFree(p);
    }
}

TEST(test_realloc_fixed)
{
    char *p = LocalAlloc(LMEM_FIXED, 20);
    fill_pattern(p, 20, 12);
    /* any LMEM_DISCARDABLE bit without MODIFY: NULL */
    ASSERT_EQ(LocalReAlloc(p, 30, 0x0100), NULL);
    ASSERT_EQ(LocalReAlloc(p, 30, 0x0800 | LMEM_MOVEABLE), NULL);
    ASSERT_EQ(LocalSize(p), 20);
    /* in place only */
    char *r = LocalReAlloc(p, 100000, 0);
    if (r)
        ASSERT_EQ(r, p);
    else
        ASSERT_EQ(GetLastError(), ERROR_NOT_ENOUGH_MEMORY);
    ASSERT_EQ(LocalReAlloc(p, 10, 0), p);
    ASSERT_EQ(LocalSize(p), 10);
    /* may move */
    r = LocalReAlloc(p, 200000, LMEM_MOVEABLE | LMEM_ZEROINIT);
    CHECK(r != NULL && !is_handle_shaped(r));
    CHECK(has_pattern(r, 10, 12));
    CHECK(all_bytes(r + 10, 200000 - 10, 0));
    ASSERT_EQ(LocalLock(r), r);
    r = LocalReAlloc(r, 0, LMEM_MOVEABLE);
    CHECK(r != NULL);
    ASSERT_EQ(LocalSize(r), 0);
    char *d = LocalDiscard(r);
    CHECK(d != NULL);
    ASSERT_EQ(LocalFree(d), NULL);
}

TEST(test_realloc_moveable)
{
    HLOCAL h = LocalAlloc(LMEM_MOVEABLE, 12);
    fill_pattern(LocalLock(h), 12, 1);
    LocalUnlock(h);
    ASSERT_EQ(LocalReAlloc(h, 40000, 0), h);
    ASSERT_EQ(LocalSize(h), 40000);
    CHECK(has_pattern(LocalLock(h), 12, 1));
    LocalUnlock(h);
    /* size 0: only with LMEM_MOVEABLE, only unlocked; Local sets ERROR_INVALID_PARAMETER */
    SetLastError(SENTINEL);
    ASSERT_EQ(LocalReAlloc(h, 0, 0), NULL);
    ASSERT_EQ(GetLastError(), ERROR_INVALID_PARAMETER);
    char *p = LocalLock(h);
    SetLastError(SENTINEL);
    ASSERT_EQ(LocalReAlloc(h, 0, LMEM_MOVEABLE), NULL);
    ASSERT_EQ(GetLastError(), ERROR_INVALID_PARAMETER);
    ASSERT_EQ(LocalDiscard(h), NULL);
    ASSERT_EQ(LocalSize(h), 40000);
    ASSERT_EQ(LocalFlags(h), 1);
    /* locked: shrink in place; MOVEABLE moves and keeps the count */
    ASSERT_EQ(LocalReAlloc(h, 100, 0), h);
    ASSERT_EQ(LocalLock(h), p);
    ASSERT_EQ(LocalReAlloc(h, 100000, LMEM_MOVEABLE), h);
    ASSERT_EQ(LocalFlags(h), 2);
    char *q = LocalLock(h);
    CHECK(has_pattern(q, 12, 1));
    ASSERT_EQ(LocalHandle(q), h);
    LocalUnlock(h);
    LocalUnlock(h);
    LocalUnlock(h);
    /* DISCARDABLE without MODIFY: NULL; with MODIFY: becomes discardable */
    ASSERT_EQ(LocalReAlloc(h, 10, 0x0200), NULL);
    ASSERT_EQ(LocalFlags(h), 0);
    ASSERT_EQ(LocalReAlloc(h, 10, LMEM_MODIFY), h);
    ASSERT_EQ(LocalFlags(h), 0);
    ASSERT_EQ(LocalReAlloc(h, 10, LMEM_MODIFY | 0x0400), h);
    ASSERT_EQ(LocalFlags(h), LMEM_DISCARDABLE);
    ASSERT_EQ(LocalSize(h), 100000);
    /* discard and revive */
    ASSERT_EQ(LocalDiscard(h), h);
    ASSERT_EQ(LocalFlags(h), LMEM_DISCARDED | LMEM_DISCARDABLE);
    ASSERT_EQ(LocalSize(h), 0);
    SetLastError(SENTINEL);
    ASSERT_EQ(LocalLock(h), NULL);
    ASSERT_EQ(GetLastError(), ERROR_DISCARDED);
    ASSERT_EQ(LocalReAlloc(h, 64, LMEM_MOVEABLE | LMEM_ZEROINIT), h);
    ASSERT_EQ(LocalFlags(h), LMEM_DISCARDABLE);
    CHECK(all_bytes(LocalLock(h), 64, 0));
    LocalUnlock(h);
    ASSERT_EQ(LocalFree(h), NULL);
}

TEST(test_huge)
{
    HLOCAL h = LocalAlloc(LMEM_MOVEABLE, 10);
    SIZE_T huge[] = {~(SIZE_T)0, SIZE_MAX - 8, SIZE_MAX - 16, (SIZE_T)1 << 50};
    for (int i = 0; i < 4; i++) {
        SetLastError(SENTINEL);
        ASSERT_EQ(LocalAlloc(LMEM_MOVEABLE, huge[i]), NULL);
        ASSERT_EQ(GetLastError(), ERROR_NOT_ENOUGH_MEMORY);
        ASSERT_EQ(LocalAlloc(LMEM_FIXED, huge[i]), NULL);
        SetLastError(SENTINEL);
        ASSERT_EQ(LocalReAlloc(h, huge[i], LMEM_MOVEABLE), NULL);
        ASSERT_EQ(GetLastError(), ERROR_NOT_ENOUGH_MEMORY);
    }
    ASSERT_EQ(LocalSize(h), 10);
    LocalFree(h);
}

static void *local_thread(void *arg)
{
    HLOCAL h = arg;
    uintptr_t bad = 0;
    void *p = LocalLock(h);
    for (int i = 0; i < 20000; i++) {
        if (LocalLock(h) != p) bad++;
        if (!LocalUnlock(h)) /* never reaches 0: each thread holds one lock */
            bad++;
    }
    SetLastError(777);
    return (void *)bad;
}

TEST(test_concurrent)
{
    HLOCAL h = LocalAlloc(LMEM_MOVEABLE, 64);
    pthread_t t[4];
    SetLastError(5);
    for (int i = 0; i < 4; i++)
        pthread_create(&t[i], NULL, local_thread, h);
    for (int i = 0; i < 4; i++) {
        void *bad;
        pthread_join(t[i], &bad);
        ASSERT_EQ((uintptr_t)bad, 0);
    }
    ASSERT_EQ(GetLastError(), 5);
    ASSERT_EQ(LocalFlags(h), 4);
    ASSERT_EQ(LocalFree(h), NULL);
}

TEST_MAIN(TEST_ENTRY(test_constants), TEST_ENTRY(test_fixed), TEST_ENTRY(test_moveable),
          TEST_ENTRY(test_moveable_zero_and_discardable), TEST_ENTRY(test_lock_saturation),
          TEST_ENTRY(test_invalid_stale), TEST_ENTRY(test_invalid_pointer_shaped),
          TEST_ENTRY(test_null), TEST_ENTRY(test_realloc_fixed_modify_no_conversion),
          TEST_ENTRY(test_realloc_fixed), TEST_ENTRY(test_realloc_moveable), TEST_ENTRY(test_huge),
          TEST_ENTRY(test_concurrent))
