/* SPDX-License-Identifier: MIT */
/*
 * The platform contract: every OS call of the library goes through these functions, so that
 * no other file needs #ifdef. posix.c: memory and randomness; shm.c: files, shared memory and
 * other processes; process.c: threads, the process image and child processes. Rules: sizes and addresses passed in are multiples of
 * ga__os_page_size(); functions return true/false or a pointer, never set ga_last_error, and
 * never allocate from globalalloc.
 */
#ifndef GA_OS_H
#define GA_OS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The OS page size (read once). */
size_t ga__os_page_size(void);
/* Maps size bytes of zeroed read/write memory aligned to align (a power of two >= page size).
 * NULL on failure. */
void *ga__os_map_aligned(size_t size, size_t align);
/* Unmaps memory from ga__os_map_aligned. */
void ga__os_unmap(void *p, size_t size);
/* Gives the physical pages of [p, p+size) back to the OS; the range stays mapped and reads as
 * zero afterwards. */
void ga__os_decommit(void *p, size_t size);
/* Tries to grow the mapping at p from old_size to new_size without moving it. */
bool ga__os_try_extend(void *p, size_t old_size, size_t new_size);
/* Tries to shrink the mapping at p from old_size to new_size (frees the tail). */
void ga__os_shrink(void *p, size_t old_size, size_t new_size);
/* 64 bits of OS randomness (falls back to a time/address mix). */
uint64_t ga__os_random(void);
/* Test hook: make the n-th next OS mapping fail (0 = never). */
void ga__os_fail_after(unsigned long n);

/* ---- for shared heaps ---- */
/* Named shared-memory files (the heaps' segments), their MAP_SHARED mappings, and what liveness
 * checks need to know about other processes (src/os/shm.c). Same rules as above, except that
 * sizes need not be page multiples, and failures are a negative errno value (0 = success), so
 * that callers can tell EEXIST from ENOENT; errno itself is left as the call left it. */

/* ga__os_shm_open modes. */
enum { GA_OS_SHM_READ = 0, GA_OS_SHM_RDWR = 1, GA_OS_SHM_CREATE = 2 /* RDWR, new, mode 0600 */ };
/* Opens the shared-memory file name ("/..."), close-on-exec. CREATE fails with -EEXIST when the
 * file exists. The fd, or -errno. */
int ga__os_shm_open(const char *name, int mode);
/* Removes the name (mappings and open fds stay valid). 0 or -errno. */
int ga__os_shm_unlink(const char *name);
/* Publishes the shared-memory file `from` also under `to`, which must not exist (link: atomic,
 * -EEXIST when it does). 0 or -errno. */
int ga__os_shm_link(const char *from, const char *to);
/* Renames `from` to `to`, atomically replacing what `to` names. 0 or -errno. */
int ga__os_shm_rename(const char *from, const char *to);
/* Calls fn(name, arg) for each file whose name starts with prefix in the directory of `where` (a
 * name as ga__os_shm_open takes it: "/NAME" is POSIX shared memory, "DIR/NAME" a file in DIR);
 * fn gets names of the same form. 0 or -errno (the directory cannot be read). */
int ga__os_shm_each(const char *where, const char *prefix, void (*fn)(const char *name, void *arg),
                    void *arg);
/* The file's owner (uid). 0 or -errno. */
int ga__os_file_owner(int fd, unsigned *uid);
/* The calling process's effective uid. */
unsigned ga__os_euid(void);
/* Waits while *word == val, at most timeout_us microseconds, on a word that may live in shared
 * memory (other processes wake it). 0 (woken, or the value differed: look again), -ETIMEDOUT
 * or -EINTR. Where the OS has no such wait it sleeps briefly instead. */
int ga__os_futex_wait(_Atomic uint32_t *word, uint32_t val, unsigned timeout_us);
/* Wakes up to n waiters of word. */
void ga__os_futex_wake(_Atomic uint32_t *word, int n);
/* For code that runs in the SIGBUS handler: no sanitizer instrumentation (TSan's atomics take
 * its internal locks, which the interrupted code may hold). */
#if defined(__has_attribute)
#if __has_attribute(disable_sanitizer_instrumentation)
#define GA_OS_SIGNAL_SAFE __attribute__((disable_sanitizer_instrumentation))
#endif
#endif
#ifndef GA_OS_SIGNAL_SAFE
#define GA_OS_SIGNAL_SAFE __attribute__((no_sanitize_address, no_sanitize_thread))
#endif
/* Installs (once per process) a SIGBUS handler that calls fix(fault address): when fix returns
 * true the faulting access is retried, else the signal goes to the handler that was there
 * before (or the default action). fix runs in a signal handler: async-signal-safe code only. */
void ga__os_bus_trap(bool (*fix)(void *addr));
/* Replaces the page holding addr by a private zero page (MAP_FIXED), so that an access to a
 * shared file page past the file's end can complete. Async-signal-safe. 0 or -errno. */
int ga__os_zero_page_at(void *addr);
/* Closes fd. */
void ga__os_file_close(int fd);
/* The file's size and, when mode is not NULL, its permission bits (fstat). 0 or -errno. */
int ga__os_file_stat(int fd, uint64_t *size, unsigned *mode);
/* True when fds a and b refer to the same file (device and inode). */
bool ga__os_file_same(int a, int b);
/* Sets the file's permission bits (fchmod). 0 or -errno. */
int ga__os_file_chmod(int fd, unsigned mode);
/* Sets the file's size (ftruncate). 0 or -errno. */
int ga__os_file_resize(int fd, uint64_t size);
/* Gives [off, off+len) of the file storage (posix_fallocate; where the file system cannot, the
 * size grows to off+len instead). 0 or -errno (-ENOSPC when the space is not there). */
int ga__os_file_allocate(int fd, uint64_t off, uint64_t len);
/* ga__os_file_lock operations: an advisory whole-file lock (flock). */
enum { GA_OS_FLOCK_UN = 0, GA_OS_FLOCK_SH = 1, GA_OS_FLOCK_EX = 2, GA_OS_FLOCK_NB = 4 };
/* Takes (SH or EX, | NB not to wait) or drops (UN) the lock. 0 or -errno (-EWOULDBLOCK: NB and
 * held elsewhere). */
int ga__os_file_lock(int fd, int op);
/* Maps size bytes of fd from offset 0, MAP_SHARED, read-write or read-only. NULL on failure.
 * ga__os_unmap undoes it. */
void *ga__os_map_shared(int fd, size_t size, bool writable);
/* Writes all n bytes to fd (short writes and EINTR retried). 0 or -errno. */
int ga__os_write_all(int fd, const void *p, size_t n);
/* The calling process's id. */
int ga__os_pid(void);
/* False only when no process has this pid (kill(pid, 0) fails with ESRCH): a process that may
 * not be signalled still exists. */
bool ga__os_pid_exists(int pid);
/* False when the thread with kernel id tid (any process of this pid namespace) has exited: no
 * /proc/TID, or a zombie there (a process whose main thread exited); without /proc, when
 * kill(tid, 0) finds none. */
bool ga__os_thread_alive(uint32_t tid);
/* pid's state letter ('Z' zombie, 'X' dead, ...) and start time (clock ticks after boot, fields
 * 3 and 22 of /proc/PID/stat). False when they cannot be read: no such process, or no /proc. */
bool ga__os_proc_stat(int pid, char *state, uint64_t *start);
/* Wall-clock seconds since the epoch. */
uint64_t ga__os_time(void);
/* Monotonic clock, in seconds. */
double ga__os_monotonic(void);
/* Sleeps for about us microseconds. */
void ga__os_sleep_us(unsigned long us);

/* ---- for the debug heap ---- */
/* Implemented in os/process.c. Reports, stacks and the leak scan use these; none of them is on
 * an allocation path. */

/* The calling thread's id as the kernel knows it (Linux: gettid), for reports. */
uint32_t ga__os_thread_id(void);
/* The calling thread's stack [*lo, *hi); false if unknown. May call malloc (glibc's
 * pthread_getattr_np does): the caller must let a nested allocation through. */
bool ga__os_thread_stack(uintptr_t *lo, uintptr_t *hi);
/* Opens path for appending (created with mode 0644, close-on-exec): a descriptor (closed with
 * ga__os_file_close), or -1. */
int ga__os_open_append(const char *path);
/* The running program's file into buf (NUL-terminated; "" if unknown). */
void ga__os_exe_path(char *buf, size_t len);
/* Runs the first of paths[] (NULL-terminated) that can be executed, with argv and envp, its
 * output into a pipe and its errors to /dev/null; reads the output into out (at most cap - 1
 * bytes, NUL-terminated) and waits for it. False, out untouched, when no pipe could be made.
 * Forks: the process's atfork handlers run. */
bool ga__os_run_read(const char *const paths[], const char *const argv[], const char *const envp[],
                     char *out, size_t cap);
/* Copies n bytes at src, memory of this process that another thread may unmap meanwhile, into
 * dst without faulting (Linux: process_vm_readv): the bytes copied (fewer, or -1, where src is
 * unreadable), or GA_OS_COPY_UNSUPPORTED when such a copy is not possible here (read directly
 * then). */
#define GA_OS_COPY_UNSUPPORTED (-2L)
long ga__os_copy_from_self(void *dst, const void *src, size_t n);
/* One mapping of the process's address space. */
typedef struct ga_os_mapping_s {
    uintptr_t lo, hi;
    bool rw_private; /* readable, writable and private */
    bool device;     /* a mapping of a file under /dev/ */
} ga_os_mapping_t;
/* Reads the list of the process's mappings (Linux: /proc/self/maps) into buf, cap bytes of the
 * caller's memory (nothing is allocated); false if it cannot be read. */
bool ga__os_maps_read(char *buf, size_t cap);
/* The next mapping of a list read by ga__os_maps_read, starting with *pos = buf; false at the
 * end. */
bool ga__os_maps_next(const char **pos, ga_os_mapping_t *m);

#endif
