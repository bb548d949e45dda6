/* SPDX-License-Identifier: MIT */
/*
 * POSIX implementation of the shared-heap part of src/os/os.h: shm_open files (or plain files,
 * for a path with a directory: GLOBALALLOC_SHM_DIR), flock, MAP_SHARED mappings, process
 * liveness and clocks. Every function returns 0 or -errno (or the documented
 * value); nothing here allocates. /proc is read only where it exists (Linux).
 */
#include "os/os.h"
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#ifdef __linux__
#include <linux/futex.h>
#include <sys/syscall.h>
#endif

/* ---- shared-memory files -------------------------------------------------------------- */

/* "/ga.NAME" is a POSIX shm object; a longer path (GLOBALALLOC_SHM_DIR) a plain file, opened
 * without following a symlink planted in its place. */
static bool is_file_path(const char *name)
{
    return strchr(name + 1, '/') != NULL;
}

int ga__os_shm_open(const char *name, int mode)
{
    int how = mode == GA_OS_SHM_CREATE ? O_RDWR | O_CREAT | O_EXCL
              : mode == GA_OS_SHM_RDWR ? O_RDWR
                                       : O_RDONLY;
    int fd = is_file_path(name) ? open(name, how | O_CLOEXEC | O_NOFOLLOW, 0600)
                                : shm_open(name, how | O_CLOEXEC, 0600);
    return fd >= 0 ? fd : -errno;
}

int ga__os_shm_unlink(const char *name)
{
    return (is_file_path(name) ? unlink(name) : shm_unlink(name)) ? -errno : 0;
}

/* Where shm_open keeps its files (glibc and musl on Linux): link and rename need real paths. */
#define SHM_DIR "/dev/shm"

/* The real path of a name: a file path as it is, a shm name under SHM_DIR. */
static int real_path(const char *name, char *out, size_t cap)
{
    int n = is_file_path(name) ? snprintf(out, cap, "%s", name)
                               : snprintf(out, cap, "%s%s", SHM_DIR, name);
    return n < 0 || (size_t)n >= cap ? -ENAMETOOLONG : 0;
}

static int shm_paths(const char *from, const char *to, char *pf, char *pt, size_t cap)
{
    int rc = real_path(from, pf, cap);
    return rc ? rc : real_path(to, pt, cap);
}

int ga__os_shm_link(const char *from, const char *to)
{
    char pf[512], pt[512];
    int rc = shm_paths(from, to, pf, pt, sizeof pf);
    return rc ? rc : link(pf, pt) ? -errno : 0;
}

int ga__os_shm_rename(const char *from, const char *to)
{
    char pf[512], pt[512];
    int rc = shm_paths(from, to, pf, pt, sizeof pf);
    return rc ? rc : rename(pf, pt) ? -errno : 0;
}

int ga__os_shm_each(const char *where, const char *prefix, void (*fn)(const char *name, void *arg),
                    void *arg)
{
    char dir[512];
    const char *slash = strrchr(where, '/');
    int dlen = is_file_path(where) ? (int)(slash - where) : 0; /* "DIR/x": DIR; "/x": shm */
    if (dlen > 0) {
        if ((size_t)dlen >= sizeof dir) return -ENAMETOOLONG;
        memcpy(dir, where, (size_t)dlen);
        dir[dlen] = 0;
    } else {
        snprintf(dir, sizeof dir, "%s", SHM_DIR);
    }
    DIR *d = opendir(dir);
    if (!d) return -errno;
    size_t n = strlen(prefix);
    struct dirent *e;
    char name[800];
    while ((e = readdir(d)) != NULL) {
        if (strncmp(e->d_name, prefix, n) != 0) continue;
        int w = dlen > 0 ? snprintf(name, sizeof name, "%s/%s", dir, e->d_name)
                         : snprintf(name, sizeof name, "/%s", e->d_name);
        if (w > 0 && (size_t)w < sizeof name) fn(name, arg);
    }
    closedir(d);
    return 0;
}

int ga__os_file_owner(int fd, unsigned *uid)
{
    struct stat st;
    if (fstat(fd, &st)) return -errno;
    *uid = (unsigned)st.st_uid;
    return 0;
}

unsigned ga__os_euid(void)
{
    return (unsigned)geteuid();
}

void ga__os_file_close(int fd)
{
    close(fd);
}

int ga__os_file_stat(int fd, uint64_t *size, unsigned *mode)
{
    struct stat st;
    if (fstat(fd, &st)) return -errno;
    *size = (uint64_t)st.st_size;
    if (mode) *mode = (unsigned)(st.st_mode & 0777);
    return 0;
}

bool ga__os_file_same(int a, int b)
{
    struct stat s1, s2;
    return fstat(a, &s1) == 0 && fstat(b, &s2) == 0 && s1.st_ino == s2.st_ino &&
           s1.st_dev == s2.st_dev;
}

int ga__os_file_chmod(int fd, unsigned mode)
{
    return fchmod(fd, (mode_t)mode) ? -errno : 0;
}

int ga__os_file_resize(int fd, uint64_t size)
{
    return ftruncate(fd, (off_t)size) ? -errno : 0;
}

int ga__os_file_allocate(int fd, uint64_t off, uint64_t len)
{
    int rc = posix_fallocate(fd, (off_t)off, (off_t)len); /* returns the error, errno untouched */
    if (rc == EOPNOTSUPP || rc == EINVAL) rc = ftruncate(fd, (off_t)(off + len)) ? errno : 0;
    return -rc;
}

int ga__os_file_lock(int fd, int op)
{
    int how = (op & 3) == GA_OS_FLOCK_SH ? LOCK_SH : (op & 3) == GA_OS_FLOCK_EX ? LOCK_EX : LOCK_UN;
    return flock(fd, how | ((op & GA_OS_FLOCK_NB) ? LOCK_NB : 0)) ? -errno : 0;
}

void *ga__os_map_shared(int fd, size_t size, bool writable)
{
    void *p = mmap(NULL, size, PROT_READ | (writable ? PROT_WRITE : 0), MAP_SHARED, fd, 0);
    return p == MAP_FAILED ? NULL : p;
}

int ga__os_write_all(int fd, const void *p, size_t n)
{
    size_t done = 0;
    while (done < n) {
        ssize_t w = write(fd, (const char *)p + done, n - done);
        if (w <= 0) {
            if (w < 0 && errno == EINTR) continue;
            return w < 0 ? -errno : -EIO;
        }
        done += (size_t)w;
    }
    return 0;
}

/* ---- futex: waits on a word in shared memory ------------------------------------------ */

int ga__os_futex_wait(_Atomic uint32_t *word, uint32_t val, unsigned timeout_us)
{
#ifdef __linux__
    /* FUTEX_WAIT (not _PRIVATE): the word is in a MAP_SHARED file mapping, woken by other
     * processes. The kernel only reads it. */
    struct timespec ts = {(time_t)(timeout_us / 1000000), (long)(timeout_us % 1000000) * 1000};
    long rc = syscall(SYS_futex, (uint32_t *)word, FUTEX_WAIT, val, &ts, NULL, 0);
    if (rc == 0) return 0;
    return errno == ETIMEDOUT ? -ETIMEDOUT : errno == EINTR ? -EINTR : 0;
#else
    (void)word, (void)val;
    ga__os_sleep_us(timeout_us < 1000 ? timeout_us : 1000);
    return 0;
#endif
}

void ga__os_futex_wake(_Atomic uint32_t *word, int n)
{
#ifdef __linux__
    syscall(SYS_futex, (uint32_t *)word, FUTEX_WAKE, n, NULL, NULL, 0);
#else
    (void)word, (void)n;
#endif
}

/* ---- SIGBUS: a shared file truncated under its mapping ---------------------------------- */

static bool (*bus_fix)(void *addr);
static struct sigaction bus_prev;
static uintptr_t bus_page; /* read before the handler is installed: sysconf is not signal-safe */

GA_OS_SIGNAL_SAFE static void on_sigbus(int sig, siginfo_t *si, void *uc)
{
    int saved = errno;
    if (bus_fix && bus_fix(si->si_addr)) {
        errno = saved;
        return; /* the access is retried on the page put there */
    }
    if (bus_prev.sa_flags & SA_SIGINFO) {
        bus_prev.sa_sigaction(sig, si, uc);
    } else if (bus_prev.sa_handler != SIG_DFL && bus_prev.sa_handler != SIG_IGN) {
        bus_prev.sa_handler(sig);
    } else {
        signal(SIGBUS, SIG_DFL); /* the access faults again and the default action runs */
    }
    errno = saved;
}

void ga__os_bus_trap(bool (*fix)(void *addr))
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_sigbus;
    sa.sa_flags = SA_SIGINFO | SA_NODEFER;
    sigemptyset(&sa.sa_mask);
    bus_page = (uintptr_t)sysconf(_SC_PAGESIZE);
    bus_fix = fix;
    sigaction(SIGBUS, &sa, &bus_prev);
}

GA_OS_SIGNAL_SAFE int ga__os_zero_page_at(void *addr)
{
    uintptr_t pg = bus_page;
    void *p = (void *)((uintptr_t)addr & ~(pg - 1));
    int prot = PROT_READ | PROT_WRITE, fl = MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED;
#ifdef __linux__
    /* The system call itself: a sanitizer's mmap wrapper takes locks, not safe in a handler. */
    void *r = (void *)syscall(SYS_mmap, p, (size_t)pg, prot, fl, -1, (off_t)0);
#else
    void *r = mmap(p, pg, prot, fl, -1, 0);
#endif
    return r == MAP_FAILED ? -errno : 0;
}

/* ---- processes ------------------------------------------------------------------------ */

int ga__os_pid(void)
{
    return (int)getpid();
}

bool ga__os_pid_exists(int pid)
{
    return !(kill(pid, 0) != 0 && errno == ESRCH);
}

bool ga__os_thread_alive(uint32_t tid)
{
    if (tid == 0 || tid > (uint32_t)INT32_MAX) return false;
    char st;
    uint64_t start;
    if (ga__os_proc_stat((int)tid, &st, &start)) return st != 'Z' && st != 'X';
    static _Atomic int has_proc = -1; /* /proc mounted? (-1: not asked yet) */
    int hp = atomic_load_explicit(&has_proc, memory_order_relaxed);
    if (hp < 0) {
        hp = ga__os_proc_stat((int)getpid(), &st, &start);
        atomic_store_explicit(&has_proc, hp, memory_order_relaxed);
    }
    return !hp && ga__os_pid_exists((int)tid);
}

bool ga__os_proc_stat(int pid, char *state, uint64_t *start)
{
#ifdef __linux__
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return false;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return false;
    buf[n] = 0;
    char *p = strrchr(buf, ')'); /* the command name may hold spaces and parentheses */
    if (!p || p[1] != ' ') return false;
    p += 2;
    *state = *p;
    for (int field = 3; field < 22; field++) { /* skip to field 22, starttime */
        p = strchr(p, ' ');
        if (!p) return false;
        p++;
    }
    *start = strtoull(p, NULL, 10);
    return true;
#else
    (void)pid, (void)state, (void)start;
    return false;
#endif
}

/* ---- clocks --------------------------------------------------------------------------- */

uint64_t ga__os_time(void)
{
    return (uint64_t)time(NULL);
}

double ga__os_monotonic(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void ga__os_sleep_us(unsigned long us)
{
    struct timespec ts = {(time_t)(us / 1000000), (long)(us % 1000000) * 1000};
    nanosleep(&ts, NULL);
}
