/* SPDX-License-Identifier: MIT */
/*
 * Shared-map benchmark: set+get of 64-byte values over 1,024 keys (each round one ga_map_put
 * and one ga_map_get_copy, counted as 2 ops), in 1 process and in 2 processes on one map; the
 * latency of a get alone and of a put alone; and, when built with libsqlite3, the same set+get
 * on sqlite3 (a WAL database in /dev/shm, prepared statements, synchronous=OFF), the issue's
 * anchor. Reported: the median of 5 runs (ops per second over all processes, ns per op), in CPU
 * time of each process (2 processes: each one's ops over its own CPU seconds, summed; with
 * lock waits and retries included, as they spin or retry on the CPU).
 * Usage: map_bench [--quick | --put (puts alone, for a profiler)]
 */
#include <globalalloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#ifdef GA_BENCH_SQLITE
#include <sqlite3.h>
#endif

#define KEYS 1024
#define VLEN 64
#define RUNS 5

static char keys[KEYS][16];
static size_t klens[KEYS];
static long rounds = 200000;

/* The process's CPU time, not the wall clock: on a loaded machine (CI's 2 cores shared) the
 * wall clock mostly measures the other jobs. Single-threaded processes, so it is their time. */
static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v)
{
    qsort(v, RUNS, sizeof *v, cmp_d);
    return v[RUNS / 2];
}

/* mode 0: set+get, 1: get only, 2: put only, 3: a lookup under the lock (a cas on a version
 * no entry has: what a read costs when readers lock). Seconds for `rounds` rounds. */
static double map_loop(ga_map_t *m, int mode, unsigned seed)
{
    unsigned char val[VLEN], got[VLEN];
    memset(val, (int)seed, sizeof val);
    double t0 = now_s();
    for (long i = 0; i < rounds; i++) {
        unsigned k = (unsigned)(i * 7 + seed) % KEYS, g = (unsigned)(i * 13 + seed) % KEYS;
        val[0] = (unsigned char)i;
        if ((mode == 0 || mode == 2) && ga_map_put(m, keys[k], klens[k], val, VLEN) != 0) abort();
        if (mode == 3) {
            if (ga_map_cas_version(m, keys[g], klens[g], ~0ull, val, VLEN) != 0) abort();
            continue;
        }
        if (mode != 2 && ga_map_get_copy(m, keys[g], klens[g], got, sizeof got, NULL) != VLEN)
            abort();
    }
    return now_s() - t0;
}

static double wall_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* procs processes doing set+get: ops per CPU second summed (returned), and ops per wall second
 * over all of them (*wall_rate: includes waiting for the lock, and for the machine). */
static double map_procs(const char *heap, int procs, double *wall_rate)
{
    double w0 = wall_s();
    int fds[2];
    if (pipe(fds)) abort();
    for (int p = 0; p < procs; p++) {
        if (fork() == 0) {
            ga_heap_t *h = ga_shared_open(heap, 0, 0, NULL);
            ga_map_t *m = h ? ga_map_open(h, "bench", 0, NULL) : NULL;
            if (!m) _exit(1);
            double s = map_loop(m, 0, (unsigned)p * 101);
            if (write(fds[1], &s, sizeof s) != sizeof s) _exit(1);
            _exit(0);
        }
    }
    double rate = 0, s;
    for (int p = 0; p < procs; p++) {
        if (read(fds[0], &s, sizeof s) != sizeof s) abort();
        rate += 2.0 * rounds / s;
    }
    while (wait(NULL) > 0) {
    }
    *wall_rate = 2.0 * rounds * procs / (wall_s() - w0);
    close(fds[0]);
    close(fds[1]);
    return rate; /* ops per CPU second, summed over the processes */
}

#ifdef GA_BENCH_SQLITE
static double sqlite_run(const char *path)
{
    sqlite3 *db;
    sqlite3_stmt *put, *get;
    if (sqlite3_open(path, &db) != SQLITE_OK) abort();
    sqlite3_exec(db,
                 "PRAGMA journal_mode=WAL; PRAGMA synchronous=OFF;"
                 "CREATE TABLE IF NOT EXISTS kv(k TEXT PRIMARY KEY, v BLOB)",
                 NULL, NULL, NULL);
    sqlite3_prepare_v2(db, "INSERT OR REPLACE INTO kv VALUES(?1, ?2)", -1, &put, NULL);
    sqlite3_prepare_v2(db, "SELECT v FROM kv WHERE k = ?1", -1, &get, NULL);
    unsigned char val[VLEN];
    memset(val, 7, sizeof val);
    for (int k = 0; k < KEYS; k++) { /* every key present, as in the map runs */
        sqlite3_bind_text(put, 1, keys[k], (int)klens[k], SQLITE_STATIC);
        sqlite3_bind_blob(put, 2, val, VLEN, SQLITE_STATIC);
        sqlite3_step(put);
        sqlite3_reset(put);
    }
    long n = rounds / 10;
    double t0 = now_s();
    for (long i = 0; i < n; i++) {
        unsigned k = (unsigned)(i * 7) % KEYS, g = (unsigned)(i * 13) % KEYS;
        val[0] = (unsigned char)i;
        sqlite3_bind_text(put, 1, keys[k], (int)klens[k], SQLITE_STATIC);
        sqlite3_bind_blob(put, 2, val, VLEN, SQLITE_STATIC);
        if (sqlite3_step(put) != SQLITE_DONE) abort();
        sqlite3_reset(put);
        sqlite3_bind_text(get, 1, keys[g], (int)klens[g], SQLITE_STATIC);
        if (sqlite3_step(get) != SQLITE_ROW || sqlite3_column_bytes(get, 0) != VLEN) abort();
        sqlite3_reset(get);
    }
    double s = now_s() - t0;
    sqlite3_finalize(put);
    sqlite3_finalize(get);
    sqlite3_close(db);
    return 2.0 * n / s;
}
#endif

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--quick") == 0) rounds = 20000;
    for (int k = 0; k < KEYS; k++)
        klens[k] = (size_t)snprintf(keys[k], sizeof keys[k], "key%04d", k);
    char heap[64];
    snprintf(heap, sizeof heap, "mapbench%d", (int)getpid());
    ga_heap_t *h = ga_shared_open(heap, 64 << 20, GA_SHARED_CREATE | GA_SHARED_EXCL, NULL);
    ga_map_t *m = h ? ga_map_open(h, "bench", GA_MAP_CREATE, NULL) : NULL;
    if (!m) {
        fprintf(stderr, "map_bench: cannot make the heap: %s\n", ga_strerror(ga_last_error()));
        return 1;
    }
    unsigned char val[VLEN] = {0};
    for (int k = 0; k < KEYS; k++)
        ga_map_put(m, keys[k], klens[k], val, VLEN);
    if (argc > 1 && strcmp(argv[1], "--put") == 0) { /* for a profiler: puts alone */
        rounds = 1000000;
        printf("%.1f ns/put\n", map_loop(m, 2, 0) * 1e9 / rounds);
        return 0;
    }
    double one[RUNS], two[RUNS], two_wall[RUNS], get_ns[RUNS], put_ns[RUNS], lock_ns[RUNS];
    double busy_ns[RUNS];
    for (int r = 0; r < RUNS; r++) {
        one[r] = 2.0 * rounds / map_loop(m, 0, 0);
        get_ns[r] = map_loop(m, 1, 0) * 1e9 / rounds;
        put_ns[r] = map_loop(m, 2, 0) * 1e9 / rounds;
        two[r] = map_procs(heap, 2, &two_wall[r]);
        lock_ns[r] = map_loop(m, 3, 0) * 1e9 / rounds;
        /* gets while another process keeps writing the same keys (readers retry) */
        pid_t w = fork();
        if (w == 0) {
            ga_heap_t *h2 = ga_shared_open(heap, 0, 0, NULL);
            ga_map_t *m2 = h2 ? ga_map_open(h2, "bench", 0, NULL) : NULL;
            for (;;)
                if (!m2 || map_loop(m2, 2, 5) < 0) _exit(1);
        }
        busy_ns[r] = map_loop(m, 1, 0) * 1e9 / rounds;
        kill(w, SIGKILL);
        waitpid(w, NULL, 0);
    }
    printf("map_bench: set+get of %d-byte values over %d keys, median of %d runs\n", VLEN, KEYS,
           RUNS);
    printf("  ga_map, 1 process     %10.0f ops/s\n", median(one));
    printf("  ga_map, 2 processes   %10.0f ops/s (CPU time, summed), %.0f ops/s (wall clock)\n",
           median(two), median(two_wall));
    printf("  ga_map_get_copy       %10.1f ns/op\n", median(get_ns));
    printf("  ga_map_put            %10.1f ns/op\n", median(put_ns));
    printf("  lookup under the lock %10.1f ns/op (what a locking reader would pay)\n",
           median(lock_ns));
    printf("  get, a writer running %10.1f ns/op (seqlock retries included)\n", median(busy_ns));
#ifdef GA_BENCH_SQLITE
    char path[96];
    double sq[RUNS];
    for (int r = 0; r < RUNS; r++) {
        snprintf(path, sizeof path, "/dev/shm/mapbench%d-%d.db", (int)getpid(), r);
        sq[r] = sqlite_run(path);
        char p2[128];
        unlink(path);
        snprintf(p2, sizeof p2, "%s-wal", path);
        unlink(p2);
        snprintf(p2, sizeof p2, "%s-shm", path);
        unlink(p2);
    }
    printf("  sqlite3 (WAL, /dev/shm) %8.0f ops/s: ga_map is %.0fx\n", median(sq),
           median(one) / median(sq));
#endif
    int rc = ga_map_check(m, 0) || ga_shared_check(h, 0);
    ga_map_close(m);
    ga_shared_close(h);
    ga_shared_unlink(heap, GA_SHARED_FORCE);
    return rc;
}
