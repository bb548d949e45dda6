/* SPDX-License-Identifier: MIT */
/*
 * A tiny test harness. A test file defines TEST(name) functions and a TEST_LIST of them;
 * test_main() runs each one, calls ga_heap_check() after it, and prints
 * "N passed, N failed". CHECK/ASSERT_EQ print both values and file:line; they count a failure
 * and carry on, so one run reports every broken expectation.
 */
#ifndef GA_TEST_H
#define GA_TEST_H

#include <globalalloc.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int test_failures_;
static int test_checks_;

#define CHECK(cond)                                                                            \
    do {                                                                                       \
        test_checks_++;                                                                        \
        if (!(cond)) {                                                                         \
            test_failures_++;                                                                  \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);           \
        }                                                                                      \
    } while (0)

/* Integer equality (any integer or pointer type), both values printed in hex and decimal. */
#define ASSERT_EQ(a, b)                                                                        \
    do {                                                                                       \
        uintmax_t a_ = (uintmax_t)(a), b_ = (uintmax_t)(b);                                    \
        test_checks_++;                                                                        \
        if (a_ != b_) {                                                                        \
            test_failures_++;                                                                  \
            fprintf(stderr, "%s:%d: ASSERT_EQ(%s, %s) failed: 0x%jx (%jd) != 0x%jx (%jd)\n",   \
                    __FILE__, __LINE__, #a, #b, a_, (intmax_t)a_, b_, (intmax_t)b_);           \
        }                                                                                      \
    } while (0)
#define ASSERT_NE(a, b)                                                                        \
    do {                                                                                       \
        uintmax_t a_ = (uintmax_t)(a), b_ = (uintmax_t)(b);                                    \
        test_checks_++;                                                                        \
        if (a_ == b_) {                                                                        \
            test_failures_++;                                                                  \
            fprintf(stderr, "%s:%d: ASSERT_NE(%s, %s) failed: both 0x%jx\n", __FILE__,         \
                    __LINE__, #a, #b, a_);                                                     \
        }                                                                                      \
    } while (0)

/* Heap must check clean right now. */
#define CHECK_HEAP() ASSERT_EQ(ga_heap_check(NULL, 0), 0)

#define TEST(name) static void name(void)

typedef struct {
    const char *name;
    void (*fn)(void);
} test_entry_t;
#define TEST_ENTRY(name) {#name, name}

/* Runs tests (all, or those named on the command line); returns the process exit status. */
static inline int test_main(const test_entry_t *tests, size_t n, int argc, char **argv)
{
    int failed_tests = 0, passed_tests = 0;
    for (size_t i = 0; i < n; i++) {
        if (argc > 1) {
            int wanted = 0;
            for (int a = 1; a < argc; a++)
                wanted |= strcmp(argv[a], tests[i].name) == 0;
            if (!wanted)
                continue;
        }
        int before = test_failures_;
        tests[i].fn();
        int rc = ga_heap_check(NULL, 0);
        if (rc != 0) {
            test_failures_++;
            fprintf(stderr, "%s: ga_heap_check after test: %s\n", tests[i].name, ga_err_name(rc));
        }
        if (test_failures_ != before) {
            failed_tests++;
            printf("FAIL %s\n", tests[i].name);
        } else {
            passed_tests++;
            printf("ok   %s\n", tests[i].name);
        }
    }
    printf("%d checks; %d passed, %d failed\n", test_checks_, passed_tests, failed_tests);
    return failed_tests ? 1 : 0;
}
#define TEST_MAIN(...)                                                                         \
    int main(int argc, char **argv)                                                            \
    {                                                                                          \
        static const test_entry_t tests_[] = {__VA_ARGS__};                                    \
        return test_main(tests_, sizeof tests_ / sizeof tests_[0], argc, argv);                \
    }

#endif
