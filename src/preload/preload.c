/* SPDX-License-Identifier: MIT */
/*
 * libglobalalloc-preload.so: replaces the C library's malloc family with the process heap, for
 * LD_PRELOAD. Each entry point is a direct call into the ga_ API; misuse (double free, foreign
 * pointer) is reported on stderr and aborts, as glibc does. Errors set errno to what POSIX says.
 */
/* The entry points (src/malloc.c) are compiled into this file so that malloc/free can be exact
 * aliases of ga_malloc/ga_free: no extra call or PLT hop on the hottest path. */
#include "malloc.c"
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define GA_EXPORT __attribute__((visibility("default")))

GA_EXPORT void *malloc(size_t size);
GA_EXPORT void free(void *p);
GA_EXPORT void *calloc(size_t n, size_t size);
GA_EXPORT void *realloc(void *p, size_t size);
GA_EXPORT void *reallocarray(void *p, size_t n, size_t size);
GA_EXPORT int posix_memalign(void **out, size_t alignment, size_t size);
GA_EXPORT void *aligned_alloc(size_t alignment, size_t size);
GA_EXPORT void *memalign(size_t alignment, size_t size);
GA_EXPORT void *valloc(size_t size);
GA_EXPORT void *pvalloc(size_t size);
GA_EXPORT size_t malloc_usable_size(void *p);
GA_EXPORT void cfree(void *p);

void *malloc(size_t size) __attribute__((alias("ga_malloc")));
void free(void *p) __attribute__((alias("ga_free")));
void cfree(void *p) __attribute__((alias("ga_free")));
void *calloc(size_t n, size_t size) __attribute__((alias("ga_calloc")));
void *realloc(void *p, size_t size) __attribute__((alias("ga_realloc")));
size_t malloc_usable_size(void *p) { return ga_usable_size(p); }

void *reallocarray(void *p, size_t n, size_t size)
{
    size_t total;
    if (__builtin_mul_overflow(n, size, &total)) {
        errno = ENOMEM;
        return NULL;
    }
    return ga_realloc(p, total);
}

int posix_memalign(void **out, size_t alignment, size_t size)
{
    if (alignment < sizeof(void *) || (alignment & (alignment - 1)) != 0)
        return EINVAL;
    int saved = errno;
    void *p = ga_aligned_alloc(alignment, size);
    errno = saved;
    if (p == NULL)
        return ENOMEM;
    *out = p;
    return 0;
}

void *aligned_alloc(size_t alignment, size_t size) { return ga_aligned_alloc(alignment, size); }
void *memalign(size_t alignment, size_t size) { return ga_aligned_alloc(alignment, size); }

static size_t os_page(void)
{
    long v = sysconf(_SC_PAGESIZE);
    return v > 0 ? (size_t)v : 4096;
}

void *valloc(size_t size) { return ga_aligned_alloc(os_page(), size); }

void *pvalloc(size_t size)
{
    size_t page = os_page();
    if (size > SIZE_MAX - page) {
        errno = ENOMEM;
        return NULL;
    }
    return ga_aligned_alloc(page, (size + page - 1) & ~(page - 1));
}
