/* SPDX-License-Identifier: MIT */
/*
 * Helpers shared by the Win32 tests: bogus values of both shapes (spec §6), a last-error
 * sentinel, content patterns. Header-only, included after test.h.
 */
#ifndef GA_WIN32_TEST_UTIL_H
#define GA_WIN32_TEST_UTIL_H

#include <globalalloc/win32.h>
#include <stdint.h>
#include <string.h>

/* Windows' own test values: pointer-shaped 0xdeadbee0, handle-shaped 0xdeadbee0 + 8. */
#define BOGUS_PTR    ((HGLOBAL)(uintptr_t)0xdeadbee0u)
#define BOGUS_HANDLE ((HGLOBAL)(uintptr_t)(0xdeadbee0u + sizeof(void *)))
#define SENTINEL     0xdeadbeefu

static inline int is_aligned16(const void *p)
{
    return ((uintptr_t)p & 15) == 0;
}
static inline int is_handle_shaped(const void *p)
{
    return ((uintptr_t)p & 15) == 8;
}

static inline void fill_pattern(void *p, size_t n, unsigned seed)
{
    unsigned char *c = (unsigned char *)p;
    for (size_t i = 0; i < n; i++)
        c[i] = (unsigned char)(seed + i * 7 + (i >> 8));
}

/* 1 when p[0..n) holds the pattern of seed. */
static inline int has_pattern(const void *p, size_t n, unsigned seed)
{
    const unsigned char *c = (const unsigned char *)p;
    for (size_t i = 0; i < n; i++)
        if (c[i] != (unsigned char)(seed + i * 7 + (i >> 8))) return 0;
    return 1;
}

static inline int all_bytes(const void *p, size_t n, unsigned char v)
{
    const unsigned char *c = (const unsigned char *)p;
    for (size_t i = 0; i < n; i++)
        if (c[i] != v) return 0;
    return 1;
}

#endif
