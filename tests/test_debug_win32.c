/* SPDX-License-Identifier: MIT */
/* The debug heap and the Win32 layer: misuse that Windows answers with an error code
 * (GlobalUnlock of an unlocked block, a second GlobalFree, a stale handle) is also reported on
 * the spot in debug mode, while the calls keep returning exactly what Windows returns. */
#include "test.h"
#include <globalalloc/win32.h>

static int reports, last_err;
static char last_msg[512];
static int record(int err, const char *msg, uintptr_t value, void *arg)
{
    (void)value, (void)arg;
    reports++;
    last_err = err;
    snprintf(last_msg, sizeof last_msg, "%s", msg);
    return 1; /* carry on */
}

TEST(win32_misuse_is_reported_in_debug_mode)
{
    ASSERT_EQ(ga_debug_enable("leaks=0,report=/dev/null"), 0);
    ga_set_error_handler(record, NULL);

    HGLOBAL h = GlobalAlloc(GMEM_MOVEABLE, 64);
    reports = 0;
    ASSERT_EQ(GlobalUnlock(h), FALSE); /* never locked */
    ASSERT_EQ(GetLastError(), ERROR_NOT_LOCKED);
    ASSERT_EQ(reports, 1);
    ASSERT_EQ(last_err, GA_ENOTLOCKED);
    CHECK(strstr(last_msg, "GlobalUnlock") != NULL);

    CHECK(GlobalLock(h) != NULL);
    ASSERT_EQ(GlobalUnlock(h), FALSE); /* a correct unlock: no report */
    ASSERT_EQ(GetLastError(), NO_ERROR);
    ASSERT_EQ(reports, 1);

    CHECK(GlobalFree(h) == NULL);
    CHECK(GlobalFree(h) == h); /* stale handle */
    ASSERT_EQ(GetLastError(), ERROR_INVALID_HANDLE);
    ASSERT_EQ(reports, 2);
    ASSERT_EQ(last_err, GA_EHANDLE);

    void *p = GlobalAlloc(GMEM_FIXED, 32);
    CHECK(GlobalFree(p) == NULL);
    CHECK(GlobalFree(p) == p); /* double free of a fixed block */
    ASSERT_EQ(GetLastError(), ERROR_INVALID_HANDLE);
    ASSERT_EQ(reports, 3);
    ASSERT_EQ(last_err, GA_EDOUBLEFREE);
    ga_set_error_handler(NULL, NULL);
}

TEST_MAIN(TEST_ENTRY(win32_misuse_is_reported_in_debug_mode))
