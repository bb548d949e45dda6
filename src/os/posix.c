/* SPDX-License-Identifier: MIT */
/*
 * POSIX implementation of src/os/os.h (mmap based; Linux extras behind __linux__ here only).
 * Aligned mappings over-map by `align` and trim both ends, so the result is aligned without
 * wasting address space.
 */
#include "os/os.h"
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/random.h>
#endif

static _Atomic unsigned long fail_countdown;

size_t ga__os_page_size(void)
{
    static size_t page;
    if (page == 0) {
        long v = sysconf(_SC_PAGESIZE);
        page = v > 0 ? (size_t)v : 4096;
    }
    return page;
}

void ga__os_fail_after(unsigned long n) { atomic_store(&fail_countdown, n); }

static bool injected_failure(void)
{
    unsigned long n = atomic_load_explicit(&fail_countdown, memory_order_relaxed);
    while (n > 0) {
        if (atomic_compare_exchange_weak(&fail_countdown, &n, n - 1))
            return n == 1;
    }
    return false;
}

static void *map(size_t size)
{
    if (injected_failure())
        return NULL;
    int saved = errno;
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    errno = saved;
    return p == MAP_FAILED ? NULL : p;
}

void ga__os_unmap(void *p, size_t size)
{
    if (p && size) {
        int saved = errno;
        munmap(p, size);
        errno = saved;
    }
}

void *ga__os_map_aligned(size_t size, size_t align)
{
    if (size == 0 || size > SIZE_MAX - align)
        return NULL;
    /* First try an exact mapping: the kernel often hands out aligned addresses in sequence. */
    void *p = map(size);
    if (p == NULL)
        return NULL;
    if (((uintptr_t)p & (align - 1)) == 0)
        return p;
    ga__os_unmap(p, size);
    uint8_t *raw = map(size + align);
    if (raw == NULL)
        return NULL;
    uint8_t *aligned = (uint8_t *)(((uintptr_t)raw + align - 1) & ~(uintptr_t)(align - 1));
    size_t head = (size_t)(aligned - raw);
    size_t tail = align - head;
    if (head)
        ga__os_unmap(raw, head);
    if (tail)
        ga__os_unmap(aligned + size, tail);
    return aligned;
}

void ga__os_decommit(void *p, size_t size)
{
    int saved = errno;
    madvise(p, size, MADV_DONTNEED);
    errno = saved;
}

bool ga__os_try_extend(void *p, size_t old_size, size_t new_size)
{
#ifdef __linux__
    int saved = errno;
    void *q = mremap(p, old_size, new_size, 0);
    errno = saved;
    return q == p;
#else
    (void)p, (void)old_size, (void)new_size;
    return false;
#endif
}

void ga__os_shrink(void *p, size_t old_size, size_t new_size)
{
    if (new_size < old_size)
        ga__os_unmap((uint8_t *)p + new_size, old_size - new_size);
}

uint64_t ga__os_random(void)
{
    uint64_t v = 0;
#ifdef __linux__
    int saved = errno;
    ssize_t n = getrandom(&v, sizeof v, GRND_NONBLOCK);
    errno = saved;
    if (n == (ssize_t)sizeof v && v != 0)
        return v;
#endif
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    v = (uint64_t)ts.tv_nsec * 0x9E3779B97F4A7C15ull ^ (uint64_t)(uintptr_t)&v ^
        ((uint64_t)getpid() << 32);
    return v ? v : 0x2545F4914F6CDD1Dull;
}
