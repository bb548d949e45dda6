/* SPDX-License-Identifier: MIT */
/*
 * Error codes and messages (generated from GA_ERRNO_MAP), the thread-local last error, and the
 * one path that every detected misuse or corruption takes: ga__report() -> user handler ->
 * stderr (and abort for fatal reports). It formats into a stack buffer and writes with write(2)
 * so it never allocates, never touches stdio locks, and is safe inside malloc.
 */
#include "internal.h"
#include "os/os.h"
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static GA_TLS int tl_last_error;

static struct {
    _Atomic(ga_error_handler_t *) handler;
    _Atomic(void *) arg;
} errors;

const char *ga_strerror(int err)
{
    switch (err) {
#define GA__ERRNO_MSG(name, value, msg)                                                        \
    case value:                                                                                \
        return msg;
        GA_ERRNO_MAP(GA__ERRNO_MSG)
#undef GA__ERRNO_MSG
    }
    return "unknown error";
}

const char *ga_err_name(int err)
{
    switch (err) {
#define GA__ERRNO_NAME(name, value, msg)                                                       \
    case value:                                                                                \
        return "GA_" #name;
        GA_ERRNO_MAP(GA__ERRNO_NAME)
#undef GA__ERRNO_NAME
    }
    return "GA_EUNKNOWN";
}

int ga_last_error(void) { return tl_last_error; }
void ga_set_last_error(int err) { tl_last_error = err; }
int ga__set_error(int err)
{
    tl_last_error = err;
    return err;
}

void ga_set_error_handler(ga_error_handler_t *handler, void *arg)
{
    atomic_store(&errors.arg, arg);
    atomic_store(&errors.handler, handler);
}

const char *ga_version(void)
{
#define GA__STR2(x) #x
#define GA__STR(x)  GA__STR2(x)
    return GA__STR(GA_VERSION_MAJOR) "." GA__STR(GA_VERSION_MINOR) "." GA__STR(GA_VERSION_PATCH);
}

int ga_version_number(void) { return GA_VERSION_HEX; }

static _Atomic int stderr_copy = -1;

void ga__stderr_keep(void)
{
    if (atomic_load(&stderr_copy) >= 0) return;
    /* High, so that a program that picks low descriptors itself (a shell's "exec 3>file") does
     * not replace it; close-on-exec, so no program it runs inherits it. */
    int fd = fcntl(2, F_DUPFD_CLOEXEC, 500);
    if (fd < 0) fd = fcntl(2, F_DUPFD_CLOEXEC, 3);
    int none = -1;
    if (fd >= 0 && !atomic_compare_exchange_strong(&stderr_copy, &none, fd)) close(fd);
}

int ga__stderr_fd(void)
{
    int copy = atomic_load_explicit(&stderr_copy, memory_order_relaxed);
    if (copy >= 0 && fcntl(2, F_GETFD) == -1 && errno == EBADF) return copy;
    return 2;
}

void ga__report(int err, uintptr_t value, bool fatal, const char *fmt, ...)
{
    int saved_errno = errno;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);

    ga_error_handler_t *handler = atomic_load(&errors.handler);
    if (handler && handler(err, msg, value, atomic_load(&errors.arg))) {
        errno = saved_errno;
        return;
    }
    char line[640];
    int n = snprintf(line, sizeof line, "globalalloc: error %s: %s (value %#jx)\n",
                     ga_err_name(err), msg, (uintmax_t)value);
    if (n > 0)
        (void)ga__os_write_all(ga__stderr_fd(), line,
                               (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
    if (fatal)
        abort();
    errno = saved_errno;
}

void ga__assert_fail(const char *expr, const char *file, int line)
{
    char buf[512];
    int n = snprintf(buf, sizeof buf, "globalalloc: assertion failed: %s (%s:%d)\n", expr, file,
                     line);
    if (n > 0)
        (void)ga__os_write_all(ga__stderr_fd(), buf,
                               (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1);
    abort();
}
