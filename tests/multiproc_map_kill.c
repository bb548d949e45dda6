/* SPDX-License-Identifier: MIT */
/*
 * Shared maps killed at every step: a child runs a fixed script of writes (small and large
 * puts, deletes, resizes, transactions, incr, cas, clear) and is SIGKILLed at exactly its Nth
 * step boundary (ga__map_test_hook), for every N. After each death the parent checks that the
 * map is consistent (ga_map_check, ga_shared_check), that it holds the state after the last
 * acknowledged write or after the one in flight (nothing in between: transactions are whole),
 * and that after ga_shared_reclaim_dead no block is left but the map's. Even N: the dead
 * writer's change is repaired by dead-peer recovery (reclaim first); odd N: by the next lock
 * holder. Deterministic: the kill point is a step count, not a time.
 *
 * Then kills at random instants (inside the allocator, the lock, recovery, anywhere): a child
 * puts sequence numbers into keys (alone and in transactions) and counts with incr, reporting
 * each acknowledged write; after each kill every key holds its last acknowledged number or the
 * next one, and the map and the heap check clean. Any kill time is a valid test, so the random
 * delays make no flakiness: only where the kills land varies (the seed is printed).
 */
#include "test.h"
#include "shared_test_util.h"
#include "map/map.h"
#include <stdint.h>

/* ---- the script, applied to a map or to a model ------------------------------------------ */

#define MODEL_MAX 256
typedef struct model_s {
    int n;
    char key[MODEL_MAX][16];
    unsigned char *val[MODEL_MAX];
    size_t vlen[MODEL_MAX];
} model_t;

static int model_find(model_t *mo, const char *k)
{
    for (int i = 0; i < mo->n; i++)
        if (strcmp(mo->key[i], k) == 0) return i;
    return -1;
}

static void model_put(model_t *mo, const char *k, const void *v, size_t vl)
{
    int i = model_find(mo, k);
    if (i < 0) {
        i = mo->n++;
        snprintf(mo->key[i], sizeof mo->key[i], "%s", k);
    } else {
        free(mo->val[i]);
    }
    mo->val[i] = malloc(vl ? vl : 1);
    memcpy(mo->val[i], v, vl);
    mo->vlen[i] = vl;
}

static void model_del(model_t *mo, const char *k)
{
    int i = model_find(mo, k);
    if (i < 0) return;
    free(mo->val[i]);
    mo->n--;
    if (i != mo->n) {
        memcpy(mo->key[i], mo->key[mo->n], sizeof mo->key[i]);
        mo->val[i] = mo->val[mo->n];
        mo->vlen[i] = mo->vlen[mo->n];
    }
}

static void model_free(model_t *mo)
{
    for (int i = 0; i < mo->n; i++)
        free(mo->val[i]);
    mo->n = 0;
}

static void model_copy(model_t *dst, const model_t *src)
{
    memset(dst, 0, sizeof *dst);
    for (int i = 0; i < src->n; i++)
        model_put(dst, src->key[i], src->val[i], src->vlen[i]);
}

static size_t value_of(int op, int j, unsigned char *buf)
{
    size_t n = (op % 3 == 0) ? 600 + (size_t)op * 10 : 8 + (size_t)(op + j) % 40;
    for (size_t i = 0; i < n; i++)
        buf[i] = (unsigned char)(op * 13 + j * 7 + i);
    return n;
}

#define SCRIPT_OPS 34

/* Op i on the map (m) or the model (mo). Returns 0 or the map's error. */
static int script_op(int i, ga_map_t *m, model_t *mo)
{
    static unsigned char buf[2000];
    char k[16];
    int rc = 0;
    if (i < 20) { /* puts: the first ones grow the table (resizes); every third is large */
        snprintf(k, sizeof k, "k%d", i % 14);
        size_t n = value_of(i, 0, buf);
        if (m) rc = ga_map_put(m, k, strlen(k), buf, n);
        if (mo) model_put(mo, k, buf, n);
    } else if (i < 24) { /* deletes */
        snprintf(k, sizeof k, "k%d", i - 18);
        if (m) rc = ga_map_delete(m, k, strlen(k));
        if (mo) model_del(mo, k);
    } else if (i < 27) { /* transactions of puts and deletes */
        ga_map_txn_t *t = m ? ga_map_txn_begin(m) : NULL;
        for (int j = 0; j < 5; j++) {
            snprintf(k, sizeof k, "t%d", (i * 3 + j) % 9);
            size_t n = value_of(i, j, buf);
            if (j == 3) {
                if (t) ga_map_txn_delete(t, "k1", 2);
                if (mo) model_del(mo, "k1");
                continue;
            }
            if (t) ga_map_txn_put(t, k, strlen(k), buf, n);
            if (mo) model_put(mo, k, buf, n);
        }
        if (t) rc = ga_map_txn_commit(t);
    } else if (i < 30) { /* incr and cas */
        int64_t cur = 0;
        if (mo) {
            int at = model_find(mo, "ctr");
            if (at >= 0) memcpy(&cur, mo->val[at], 8);
            cur += 5;
            model_put(mo, "ctr", &cur, 8);
        }
        if (m) rc = ga_map_incr(m, "ctr", 3, 5, NULL);
    } else if (i == 30) {
        if (m) rc = ga_map_cas(m, "k2", 2, NULL, 0, "new", 3) == 1 ? 0 : -1;
        if (mo) model_put(mo, "k2", "new", 3);
    } else if (i == 31) {
        if (m) rc = ga_map_clear(m);
        if (mo) model_free(mo);
    } else {
        snprintf(k, sizeof k, "after%d", i);
        if (m) rc = ga_map_put(m, k, strlen(k), "z", 1);
        if (mo) model_put(mo, k, "z", 1);
    }
    return rc;
}

/* ---- the map against a model ---------------------------------------------------------------- */

typedef struct cmp_s {
    const model_t *mo;
    int seen, bad;
} cmp_t;

static int cmp_fn(const void *k, size_t kl, const void *v, size_t vl, uint64_t ver, void *arg)
{
    (void)ver;
    cmp_t *c = arg;
    char key[32];
    snprintf(key, sizeof key, "%.*s", (int)kl, (const char *)k);
    int i = model_find((model_t *)c->mo, key);
    c->seen++;
    if (i < 0 || c->mo->vlen[i] != vl || memcmp(c->mo->val[i], v, vl) != 0) c->bad++;
    return 0;
}

static bool map_is(ga_map_t *m, const model_t *mo)
{
    cmp_t c = {mo, 0, 0};
    long n = ga_map_iterate(m, cmp_fn, &c);
    return n == mo->n && c.seen == mo->n && c.bad == 0;
}

/* ---- the child ------------------------------------------------------------------------------ */

static long kill_at, steps;
static void kill_hook(const char *step)
{
    (void)step;
    if (++steps == kill_at) raise(SIGKILL);
}

/* Runs the script, writing each acknowledged op's number to fd. */
static void child(const char *heap, const char *map, int fd, long at)
{
    ga_heap_t *h = ga_shared_open(heap, 0, 0, NULL);
    ga_map_t *m = h ? ga_map_open(h, map, 0, NULL) : NULL;
    if (!m) _exit(3);
    kill_at = at;
    steps = 0;
    ga__map_test_hook = kill_hook;
    for (int i = 0; i < SCRIPT_OPS; i++) {
        if (script_op(i, m, NULL) != 0) _exit(4);
        unsigned char b = (unsigned char)i;
        if (write(fd, &b, 1) != 1) _exit(5);
    }
    _exit(0);
}

/* Steps the whole script takes on a fresh map (run here, counting). */
static long count_steps(ga_heap_t *h)
{
    ga_map_t *m = ga_map_open(h, "count", GA_MAP_CREATE, NULL);
    steps = 0;
    kill_at = -1;
    ga__map_test_hook = kill_hook;
    for (int i = 0; i < SCRIPT_OPS; i++)
        CHECK(script_op(i, m, NULL) == 0);
    ga__map_test_hook = NULL;
    ga_map_close(m);
    CHECK(ga_map_remove(h, "count") == 0);
    return steps;
}

TEST(kill_at_every_step)
{
    const char *hn = shm_test_name("mapkill");
    ga_heap_t *h = ga_shared_open(hn, 16 << 20, GA_SHARED_CREATE | GA_SHARED_EXCL, NULL);
    CHECK(h != NULL);
    if (!h) return;
    model_t states[SCRIPT_OPS + 1];
    memset(&states[0], 0, sizeof states[0]);
    for (int i = 0; i < SCRIPT_OPS; i++) {
        model_copy(&states[i + 1], &states[i]);
        script_op(i, NULL, &states[i + 1]);
    }
    long total = count_steps(h);
    CHECK(total > 100);
    int repaired = 0;
    for (long at = 1; at <= total + 1; at++) {
        char mn[32];
        snprintf(mn, sizeof mn, "m%ld", at);
        ga_map_t *m = ga_map_open(h, mn, GA_MAP_CREATE | GA_MAP_EXCL, NULL);
        int fds[2];
        CHECK(m != NULL && pipe(fds) == 0);
        pid_t pid = fork();
        if (pid == 0) {
            close(fds[0]);
            child(hn, mn, fds[1], at);
        }
        close(fds[1]);
        int st = shm_test_wait(pid, 20000);
        int acked = 0;
        unsigned char b;
        while (read(fds[0], &b, 1) == 1)
            acked = b + 1;
        close(fds[0]);
        bool killed = WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL;
        if (!(at > total ? WIFEXITED(st) && WEXITSTATUS(st) == 0 : killed))
            fprintf(stderr, "step %ld: child status 0x%x\n", at, st);
        CHECK(at > total ? WIFEXITED(st) && WEXITSTATUS(st) == 0 : killed);
        if (at % 2 == 0) CHECK(ga_shared_reclaim_dead(h) >= 0);
        int rc = ga_map_check(m, 0);
        ASSERT_EQ(rc, 0);
        ASSERT_EQ(ga_shared_check(h, 0), 0);
        bool old = map_is(m, &states[acked]);
        bool new = acked < SCRIPT_OPS &&map_is(m, &states[acked + 1]);
        if (!old && !new)
            fprintf(stderr, "kill at step %ld (after op %d): wrong contents\n", at, acked);
        CHECK(old || new);
        CHECK(ga_shared_reclaim_dead(h) >= 0);
        ga_map_info_t info;
        ga_shared_stats_t s;
        ASSERT_EQ(ga_map_info(m, &info), 0);
        ASSERT_EQ(ga_shared_stats(h, &s), 0);
        ASSERT_EQ(s.heap_blocks, info.blocks);     /* nothing the heap owns is unreferenced */
        ASSERT_EQ(s.blocks_in_use, s.heap_blocks); /* nothing left by the dead writer */
        repaired += info.takeovers > 0;
        /* The map goes on working after the repair. */
        ASSERT_EQ(ga_map_put(m, "post", 4, "p", 1), 0);
        ga_map_close(m);
        ASSERT_EQ(ga_map_remove(h, mn), 0);
        ga_shared_stats(h, &s);
        ASSERT_EQ(s.heap_blocks, 0);
    }
    fprintf(stderr, "%ld step boundaries, each killed once; %d locks taken over\n", total,
            repaired);
    CHECK(repaired > 0);
    for (int i = 0; i <= SCRIPT_OPS; i++)
        model_free(&states[i]);
    ASSERT_EQ(ga_shared_check(h, 0), 0);
    ga_shared_close(h);
}

/* ---- random instants ------------------------------------------------------------------------ */

#define RKEYS  24
#define RKILLS 120 /* GA_TEST_KILLS=N: N kills instead */

/* An ack: key index (RKEYS: the counter) and the number it now holds. */
typedef struct ack_s {
    uint32_t key;
    uint32_t seq;
} ack_t;

static void random_child(const char *heap, const char *map, int fd, uint64_t seed)
{
    ga_heap_t *h = ga_shared_open(heap, 0, 0, NULL);
    ga_map_t *m = h ? ga_map_open(h, map, 0, NULL) : NULL;
    if (!m) _exit(3);
    uint32_t seq[RKEYS] = {0};
    int64_t ctr = 0;
    for (int i = 0; i < RKEYS; i++) { /* continue from what the map holds */
        char k[8];
        uint32_t v[300];
        snprintf(k, sizeof k, "r%d", i);
        long n = ga_map_get_copy(m, k, strlen(k), v, sizeof v, NULL);
        if (n > 0) seq[i] = v[0];
        if (n < 0 && n != GA_ENOENT) _exit(8);
    }
    ga_map_get_copy(m, "ctr", 3, &ctr, 8, NULL);
    for (;;) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        unsigned op = (unsigned)(seed >> 60), key = (unsigned)(seed >> 33) % RKEYS;
        uint32_t v[300]; /* a large value now and then */
        size_t n = op == 0 ? sizeof v : 8 + (seed >> 20) % 64;
        ack_t acks[3];
        int nack = 0;
        if (op < 10) {
            char k[8];
            snprintf(k, sizeof k, "r%u", key);
            for (size_t j = 0; j < n / 4; j++)
                v[j] = seq[key] + 1;
            if (ga_map_put(m, k, strlen(k), v, n & ~(size_t)3) != 0) _exit(4);
            acks[nack++] = (ack_t){key, ++seq[key]};
        } else if (op < 14) {
            ga_map_txn_t *t = ga_map_txn_begin(m);
            for (unsigned j = 0; j < 3; j++) {
                unsigned kk = (key + j * 5) % RKEYS;
                char k[8];
                snprintf(k, sizeof k, "r%u", kk);
                uint32_t w[2] = {seq[kk] + 1, seq[kk] + 1};
                ga_map_txn_put(t, k, strlen(k), w, sizeof w);
                acks[nack++] = (ack_t){kk, seq[kk] + 1};
            }
            if (ga_map_txn_commit(t) != 0) _exit(5);
            for (int j = 0; j < nack; j++)
                seq[acks[j].key]++;
        } else {
            if (ga_map_incr(m, "ctr", 3, 1, &ctr) != 0) _exit(6);
            acks[nack++] = (ack_t){RKEYS, (uint32_t)ctr};
        }
        if (write(fd, acks, (size_t)nack * sizeof acks[0]) < 0) _exit(7);
    }
}

TEST(kill_at_random_instants)
{
    const char *hn = shm_test_name("maprkill");
    ga_heap_t *h = ga_shared_open(hn, 16 << 20, GA_SHARED_CREATE | GA_SHARED_EXCL, NULL);
    ga_map_t *m = h ? ga_map_open(h, "r", GA_MAP_CREATE, NULL) : NULL;
    CHECK(m != NULL);
    if (!m) return;
    uint64_t seed = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 20);
    fprintf(stderr, "random kills: seed %llu\n", (unsigned long long)seed);
    uint32_t acked[RKEYS + 1] = {0};
    int checked = 0, kills = getenv("GA_TEST_KILLS") ? atoi(getenv("GA_TEST_KILLS")) : RKILLS;
    double t0 = shm_test_now();
    for (int kill_no = 0; kill_no < kills; kill_no++) {
        int fds[2];
        CHECK(pipe(fds) == 0);
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        pid_t pid = fork();
        if (pid == 0) {
            close(fds[0]);
            random_child(hn, "r", fds[1], seed);
        }
        close(fds[1]);
        struct timespec d = {0, (long)((seed >> 40) % 3000000)}; /* 0..3 ms */
        nanosleep(&d, NULL);
        kill(pid, SIGKILL);
        int st = shm_test_wait(pid, 20000);
        CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL); /* not an early exit on an error */
        ack_t a;
        while (read(fds[0], &a, sizeof a) == sizeof a)
            if (a.key <= RKEYS && a.seq > acked[a.key]) acked[a.key] = a.seq;
        close(fds[0]);
        if (kill_no % 2) ga_shared_reclaim_dead(h);
        ASSERT_EQ(ga_map_check(m, 0), 0);
        for (unsigned k = 0; k <= RKEYS; k++) {
            char key[8];
            uint32_t v[300] = {0};
            int64_t c = 0;
            long n;
            if (k == RKEYS) {
                n = ga_map_get_copy(m, "ctr", 3, &c, 8, NULL);
                v[0] = (uint32_t)c;
            } else {
                snprintf(key, sizeof key, "r%u", k);
                n = ga_map_get_copy(m, key, strlen(key), v, sizeof v, NULL);
            }
            uint32_t got = n > 0 ? v[0] : 0;
            /* the last acknowledged number, or the one in flight */
            if (got != acked[k] && got != acked[k] + 1)
                fprintf(stderr, "kill %d: key %u holds %u, acknowledged %u\n", kill_no, k, got,
                        acked[k]);
            CHECK(got == acked[k] || got == acked[k] + 1);
            for (long j = 1; k < RKEYS && j < n / 4; j++)
                CHECK(v[j] == v[0]); /* whole values */
            acked[k] = got;
            checked++;
        }
    }
    ga_shared_reclaim_dead(h);
    ASSERT_EQ(ga_shared_check(h, 0), 0);
    ga_map_info_t info;
    ga_shared_stats_t s;
    ASSERT_EQ(ga_map_info(m, &info), 0);
    ASSERT_EQ(ga_shared_stats(h, &s), 0);
    ASSERT_EQ(s.heap_blocks, info.blocks);
    ASSERT_EQ(s.blocks_in_use, s.heap_blocks);
    fprintf(stderr,
            "%d kills at random instants in %.1f s, %d keys checked, %zu lock takeovers, "
            "counter at %u\n",
            kills, shm_test_now() - t0, checked, info.takeovers, acked[RKEYS]);
    ga_map_close(m);
    ga_shared_close(h);
}

static const test_entry_t tests[] = {TEST_ENTRY(kill_at_every_step),
                                     TEST_ENTRY(kill_at_random_instants)};

int main(int argc, char **argv)
{
    return test_main(tests, sizeof tests / sizeof tests[0], argc, argv);
}
