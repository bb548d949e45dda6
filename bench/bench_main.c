/* SPDX-License-Identifier: MIT */
/*
 * ga-bench: the driver of the preloadable workloads, and the helpers they share.
 *
 *   ga-bench WORKLOAD [-s SCALE] [-t THREADS]
 *   ga-bench which      prints the shared object that provides malloc (to prove a preload took)
 *   ga-bench list       prints the workload names
 *
 * Each run prints exactly one line that bench/run.py parses:
 *   RESULT workload=NAME threads=T scale=S ops=N seconds=X checksum=C peak_rss_kib=K
 * The program links no allocator of its own: whatever LD_PRELOAD puts first is measured.
 */
#include "bench.h"
#include <dlfcn.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const struct {
    const char *name;
    bench_fn_t *fn;
    int default_threads;
    const char *what;
} workloads[] = {
    {"churn", bench_churn, 1, "single thread, mixed small sizes, live set of 20000 blocks"},
    {"larson", bench_larson, 2, "larson server: threads replace blocks, then hand them on"},
    {"prodcons", bench_prodcons, 1, "producer/consumer pairs: blocks freed by another thread"},
    {"threads", bench_threads, 1, "each thread allocates and frees its own blocks"},
    {"scratch", bench_scratch, 2, "cache-scratch: false sharing of blocks between threads"},
    {"realloc", bench_realloc, 1, "realloc growth of 64 interleaved buffers"},
    {"large", bench_large, 1, "large blocks, 64 KiB to 16 MiB, every page touched"},
};
#define N_WORKLOADS (sizeof workloads / sizeof workloads[0])

double bench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

uint64_t bench_count(const bench_args_t *args, uint64_t n, uint64_t min_n)
{
    double v = (double)n * args->scale;
    return v < (double)min_n ? min_n : (uint64_t)v;
}

void bench_die(const char *msg)
{
    fprintf(stderr, "ga-bench: %s\n", msg);
    exit(2);
}

void bench_run_threads(int n, void *(*fn)(void *), void *args, size_t stride)
{
    pthread_t tids[256];
    if (n < 1 || n > 256) bench_die("thread count must be 1..256");
    for (int i = 0; i < n; i++) {
        if (pthread_create(&tids[i], NULL, fn, (char *)args + (size_t)i * stride) != 0)
            bench_die("pthread_create failed");
    }
    for (int i = 0; i < n; i++)
        pthread_join(tids[i], NULL);
}

/* Peak resident set of this process in KiB (VmHWM), or 0 if unknown. Not wait4's ru_maxrss:
 * Linux carries the parent's peak over exec into it, so a child of a 15 MiB Python reports at
 * least 15 MiB whatever it does. VmHWM belongs to the address space created by exec. */
static long peak_rss_kib(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kib = 0;
    if (!f) return 0;
    while (fgets(line, sizeof line, f)) {
        if (sscanf(line, "VmHWM: %ld kB", &kib) == 1) break;
    }
    fclose(f);
    return kib;
}

static int usage(void)
{
    fprintf(stderr, "usage: ga-bench WORKLOAD [-s SCALE] [-t THREADS] | which | list\n");
    for (size_t i = 0; i < N_WORKLOADS; i++)
        fprintf(stderr, "  %-9s %s\n", workloads[i].name, workloads[i].what);
    return 2;
}

/* Which object defines malloc as this process sees it: the preload proves itself here. */
static int print_which(void)
{
    void *(*volatile fn)(size_t) = malloc;
    Dl_info info;
    if (!dladdr((void *)(uintptr_t)fn, &info) || !info.dli_fname) {
        printf("malloc-from: unknown\n");
        return 1;
    }
    printf("malloc-from: %s\n", info.dli_fname);
    return 0;
}

static int parse_args(int argc, char **argv, bench_args_t *args)
{
    for (int i = 2; i < argc; i++) {
        char *end = NULL;
        if (strcmp(argv[i], "-s") == 0 && i + 1 < argc) {
            errno = 0;
            args->scale = strtod(argv[++i], &end);
            if (errno || *end || !(args->scale > 0)) return -1;
        } else if (strcmp(argv[i], "-t") == 0 && i + 1 < argc) {
            errno = 0;
            long t = strtol(argv[++i], &end, 10);
            if (errno || *end || t < 1 || t > 256) return -1;
            args->threads = (int)t;
        } else {
            return -1;
        }
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) return usage();
    if (strcmp(argv[1], "which") == 0) return print_which();
    if (strcmp(argv[1], "list") == 0) {
        for (size_t i = 0; i < N_WORKLOADS; i++)
            printf("%s\n", workloads[i].name);
        return 0;
    }
    for (size_t i = 0; i < N_WORKLOADS; i++) {
        if (strcmp(argv[1], workloads[i].name) != 0) continue;
        bench_args_t args = {1.0, workloads[i].default_threads};
        if (parse_args(argc, argv, &args) != 0) return usage();
        bench_result_t res = {0, 0, 0.0};
        if (workloads[i].fn(&args, &res) != 0) return 1;
        printf("RESULT workload=%s threads=%d scale=%g ops=%" PRIu64 " seconds=%.6f "
               "checksum=%016" PRIx64 " peak_rss_kib=%ld\n",
               workloads[i].name, args.threads, args.scale, res.ops, res.seconds, res.checksum,
               peak_rss_kib());
        return 0;
    }
    return usage();
}
