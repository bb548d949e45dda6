/* SPDX-License-Identifier: MIT */
/*
 * debug_overhead: the workload for comparing debug allocators (bench/debug_overhead.py).
 * Alloc-heavy churn on 2 threads: each keeps a live set of 4096 blocks of mixed small sizes
 * (8..1024 bytes, mostly under 64) and replaces a random one per step: read it, free it,
 * allocate another, write it. Allocations come from four call sites two to four calls deep,
 * so stack capture does real work. It links no allocator: LD_PRELOAD, a sanitizer runtime or
 * valgrind chooses what is measured.
 *
 * MODE "touch" (the default) reads and writes two bytes of each block: nearly all the time is
 * the allocator's, the harshest case for a debug allocator. MODE "use" writes every byte of a
 * new block and reads every eighth back before freeing it, as a program that uses what it
 * allocates does.
 *
 *   debug_overhead [STEPS_PER_THREAD] [THREADS] [MODE]   prints "seconds=X cpu=Y checksum=C"
 * (seconds: wall time of the threads; cpu: user+system time of the process so far, which a
 * busy machine disturbs less).
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#define LIVE 4096

static uint64_t steps = 5000000;
static int use_all; /* MODE "use" */

static inline uint64_t rnd(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static inline size_t pick_size(uint64_t x)
{
    unsigned pick = (unsigned)(x & 15);
    x >>= 4;
    if (pick < 10) return 8 + (size_t)(x % 57);
    if (pick < 14) return 65 + (size_t)(x % 192);
    return 257 + (size_t)(x % 768);
}

/* Four allocation sites at different depths (noinline: distinct frames). */
__attribute__((noinline)) static void *site_a(size_t n)
{
    void *p = malloc(n);
    __asm__("" ::: "memory");
    return p;
}
__attribute__((noinline)) static void *site_b(size_t n)
{
    void *p = site_a(n);
    __asm__("" ::: "memory");
    return p;
}
__attribute__((noinline)) static void *site_c(size_t n)
{
    void *p = malloc(n);
    __asm__("" ::: "memory");
    return p;
}
__attribute__((noinline)) static void *site_d(size_t n)
{
    void *p = site_c(n);
    __asm__("" ::: "memory");
    return p;
}
__attribute__((noinline)) static void *make(size_t n, uint64_t x)
{
    void *p;
    switch (x & 3) {
    case 0:
        p = site_a(n);
        break;
    case 1:
        p = site_b(n);
        break;
    case 2:
        p = site_c(n);
        break;
    default:
        p = site_d(n);
        break;
    }
    __asm__("" ::: "memory");
    return p;
}

static void *worker(void *arg)
{
    uint64_t s = 0x9e3779b97f4a7c15ull ^ (uintptr_t)arg, sum = 0;
    static __thread void *slot[LIVE];
    static __thread size_t len[LIVE];
    for (size_t i = 0; i < LIVE; i++) {
        len[i] = pick_size(rnd(&s));
        slot[i] = make(len[i], i);
        memset(slot[i], (int)i, len[i]);
    }
    for (uint64_t k = 0; k < steps; k++) {
        uint64_t x = rnd(&s);
        size_t i = (size_t)(x % LIVE);
        unsigned char *p = slot[i];
        sum += p[0] + p[len[i] - 1];
        if (use_all)
            for (size_t j = 0; j < len[i]; j += 8)
                sum += p[j];
        free(p);
        len[i] = pick_size(x >> 20);
        p = make(len[i], x >> 40);
        if (p == NULL) abort();
        if (use_all) memset(p, (int)k, len[i]);
        p[0] = (unsigned char)k;
        p[len[i] - 1] = (unsigned char)(k >> 8);
        slot[i] = p;
    }
    for (size_t i = 0; i < LIVE; i++)
        free(slot[i]);
    return (void *)(uintptr_t)sum;
}

int main(int argc, char **argv)
{
    int threads = 2;
    if (argc > 1) steps = strtoull(argv[1], NULL, 10);
    if (argc > 2) threads = atoi(argv[2]);
    if (threads < 1 || threads > 64) threads = 2;
    if (argc > 3) use_all = strcmp(argv[3], "use") == 0;
    struct timespec t0, t1;
    pthread_t t[64];
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int i = 0; i < threads; i++)
        pthread_create(&t[i], NULL, worker, (void *)(uintptr_t)(i + 1));
    uint64_t sum = 0;
    for (int i = 0; i < threads; i++) {
        void *r;
        pthread_join(t[i], &r);
        sum += (uintptr_t)r;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("seconds=%.4f cpu=%.4f checksum=%llu\n",
           (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-9,
           (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
               (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1e-6,
           (unsigned long long)sum);
    return 0;
}
