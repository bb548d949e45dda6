/* SPDX-License-Identifier: MIT */
/*
 * For the shared-heap tests: unique heap names that are unlinked when the test process exits,
 * and also when a check crashes it (SIGABRT/SIGSEGV/SIGBUS: atexit does not run then). Only
 * the process that made a name unlinks it, so forked children may exit freely.
 */
#ifndef GA_SHARED_TEST_UTIL_H
#define GA_SHARED_TEST_UTIL_H

#include <globalalloc.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char shm_test_names[32][96];
static int shm_test_count;
static pid_t shm_test_owner;

static inline void shm_test_cleanup(void)
{
    if (getpid() != shm_test_owner)
        return;
    for (int i = 0; i < shm_test_count; i++)
        ga_shared_unlink(shm_test_names[i], GA_SHARED_FORCE);
}

static inline void shm_test_on_fatal(int sig)
{
    shm_test_cleanup();
    signal(sig, SIG_DFL);
    raise(sig);
}

/* A heap name unique to this process ("<tag><pid>"), unlinked at exit or crash. */
static inline const char *shm_test_name(const char *tag)
{
    if (shm_test_count == 0) {
        shm_test_owner = getpid();
        atexit(shm_test_cleanup);
        signal(SIGABRT, shm_test_on_fatal);
        signal(SIGSEGV, shm_test_on_fatal);
        signal(SIGBUS, shm_test_on_fatal);
    }
    if (shm_test_count == (int)(sizeof shm_test_names / sizeof shm_test_names[0]))
        abort(); /* a test needs more names than this helper holds */
    char *n = shm_test_names[shm_test_count++];
    snprintf(n, sizeof shm_test_names[0], "%s%d", tag, (int)getpid());
    return n;
}

/* Seconds on the monotonic clock. */
static inline double shm_test_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* waitpid with a deadline of ms: the status, or -1 when the child took longer (it is then
 * SIGKILLed and reaped) or cannot be waited for. A test fails instead of hanging. */
static inline int shm_test_wait(pid_t pid, int ms)
{
    double end = shm_test_now() + ms / 1000.0;
    for (;;) {
        int st = 0;
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid) return st;
        if (r < 0 && errno != EINTR) return -1;
        if (shm_test_now() > end) {
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
            return -1;
        }
        struct timespec ts = {0, 200000}; /* polling a deadline, not synchronising */
        nanosleep(&ts, NULL);
    }
}

/* Writes n bytes at offset `at` of heap NAME's file, as a hostile process could. 0 or -1. */
static inline int shm_test_rewrite(const char *name, size_t at, const void *bytes, size_t n)
{
    char path[200];
    snprintf(path, sizeof path, "/ga.%s", name);
    int fd = shm_open(path, O_RDWR, 0);
    int rc = fd >= 0 && pwrite(fd, bytes, n, (off_t)at) == (ssize_t)n ? 0 : -1;
    if (fd >= 0) close(fd);
    return rc;
}

#endif
