/* SPDX-License-Identifier: MIT */
/*
 * The debug heap's process-level OS calls (the "for the debug heap" section of src/os/os.h):
 * thread ids and stack bounds, report files, the executable's path, running a helper program
 * (addr2line) with its output in a pipe, reading memory that may vanish, and the list of the
 * process's mappings. Linux specifics are behind __linux__ here only; elsewhere each call
 * answers "unknown", which the debug heap already copes with.
 *
 * Nothing here allocates from the heap: every buffer is the caller's.
 */
#include "os/os.h"
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/syscall.h>
#include <sys/uio.h>
#endif

uint32_t ga__os_thread_id(void)
{
#ifdef __linux__
    return (uint32_t)syscall(SYS_gettid);
#else
    return (uint32_t)(uintptr_t)pthread_self();
#endif
}

bool ga__os_thread_stack(uintptr_t *lo, uintptr_t *hi)
{
#ifdef __linux__
    pthread_attr_t attr;
    bool known = false;
    if (pthread_getattr_np(pthread_self(), &attr) == 0) {
        void *base;
        size_t size;
        if (pthread_attr_getstack(&attr, &base, &size) == 0) {
            *lo = (uintptr_t)base;
            *hi = (uintptr_t)base + size;
            known = true;
        }
        pthread_attr_destroy(&attr);
    }
    return known;
#else
    (void)lo, (void)hi;
    return false;
#endif
}

int ga__os_open_append(const char *path)
{
    return open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
}

void ga__os_exe_path(char *buf, size_t len)
{
#ifdef __linux__
    ssize_t r = readlink("/proc/self/exe", buf, len - 1);
    buf[r > 0 ? (size_t)r : 0] = 0;
#else
    buf[0] = 0;
#endif
}

bool ga__os_run_read(const char *const paths[], const char *const argv[], const char *const envp[],
                     char *out, size_t cap)
{
    int pfd[2];
    if (pipe(pfd) != 0) return false;
    pid_t pid = fork();
    if (pid == 0) {
        int devnull = open("/dev/null", O_WRONLY);
        dup2(pfd[1], 1);
        if (devnull >= 0) dup2(devnull, 2);
        close(pfd[0]);
        for (size_t i = 0; paths[i] != NULL; i++)
            execve(paths[i], (char *const *)argv, (char *const *)envp);
        _exit(127);
    }
    close(pfd[1]);
    size_t len = 0;
    if (pid > 0) {
        ssize_t r;
        while (len < cap - 1 &&
               ((r = read(pfd[0], out + len, cap - 1 - len)) > 0 || (r < 0 && errno == EINTR)))
            len += r > 0 ? (size_t)r : 0;
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {
        }
    }
    close(pfd[0]);
    out[len] = 0;
    return true;
}

long ga__os_copy_from_self(void *dst, const void *src, size_t n)
{
#ifdef __linux__
    struct iovec local = {dst, n}, remote = {(void *)src, n};
    ssize_t got = process_vm_readv(getpid(), &local, 1, &remote, 1, 0);
    if (got < 0 && (errno == ENOSYS || errno == EPERM)) return GA_OS_COPY_UNSUPPORTED;
    return (long)got;
#else
    (void)dst, (void)src, (void)n;
    return GA_OS_COPY_UNSUPPORTED;
#endif
}

bool ga__os_maps_read(char *buf, size_t cap)
{
#ifdef __linux__
    int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return false;
    size_t len = 0;
    ssize_t r;
    while (len < cap - 1 &&
           ((r = read(fd, buf + len, cap - 1 - len)) > 0 || (r < 0 && errno == EINTR)))
        len += r > 0 ? (size_t)r : 0;
    close(fd);
    buf[len] = 0;
    return true;
#else
    (void)buf, (void)cap;
    return false;
#endif
}

static uintptr_t hexnum(const char **s)
{
    uintptr_t v = 0;
    for (;; (*s)++) {
        char c = **s;
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (d < 0) return v;
        v = v * 16 + (uintptr_t)d;
    }
}

/* A line of /proc/self/maps: "lo-hi perms offset dev inode [path]". */
bool ga__os_maps_next(const char **pos, ga_os_mapping_t *m)
{
    const char *s = *pos;
    if (*s == 0) return false;
    m->lo = hexnum(&s);
    s++;
    m->hi = hexnum(&s);
    s++;
    m->rw_private = s[0] == 'r' && s[1] == 'w' && s[3] == 'p';
    const char *nl = strchr(s, '\n');
    const char *path = strchr(s, '/');
    m->device = path && path < (nl ? nl : s + strlen(s)) && strncmp(path, "/dev/", 5) == 0;
    *pos = nl ? nl + 1 : s + strlen(s);
    return true;
}
