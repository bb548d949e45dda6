/* SPDX-License-Identifier: MIT */
/*
 * A hostile peer rewrites the lock words of a heap while a victim locks and unlocks: the victim
 * must never write outside the segment (with glibc's robust mutexes, format 1, the unlock wrote
 * through list pointers kept in the segment), never hang beyond its bounded waits, and never
 * crash. For ATTACK_SEC seconds the attacker stores values of its choice into every lock word
 * (the victim's own addresses, its pid, 0, random bits); the victim meanwhile takes and
 * releases locks directly and through handle and object calls, with a 20 ms lock timeout. Then
 * the victim's canary global and a canary array on its stack must be unchanged. As root the
 * attacker also runs as `nobody` on a heap made with GA_SHARED_OTHERS (skipped with a message
 * otherwise). The victim prints its figures (lock pairs, timeouts).
 */
#include "test.h"
#include "shared_test_util.h"
#include "shared/shared_internal.h"
#include <fcntl.h>
#include <pwd.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#define MIB        ((size_t)1 << 20)
#define ATTACK_SEC 2.0
#define CANARY     0x5A5A5A5AA5A5A5A5ull

static volatile uint64_t canary_global = CANARY;

static int quiet(int err, const char *msg, uintptr_t ptr, void *arg)
{
    (void)err, (void)msg, (void)ptr, (void)arg;
    return 1;
}

/* Offsets of every lock word in the header. */
static size_t lock_offs[SHM_NLOCKS];
static void find_locks(void)
{
    for (unsigned c = 0; c < SHM_NCLASS; c++)
        lock_offs[SHM_LOCK_CLASS(c)] =
            offsetof(shm_header_t, classes) + c * sizeof(shm_class_t) + offsetof(shm_class_t, lock);
    for (unsigned s = 0; s < SHM_NSTRIPES; s++)
        lock_offs[SHM_LOCK_STRIPE(s)] = offsetof(shm_header_t, stripes) + s * sizeof(shm_stripe_t) +
                                        offsetof(shm_stripe_t, lock);
    lock_offs[SHM_LOCK_PAGES] = offsetof(shm_header_t, pages_lock);
    lock_offs[SHM_LOCK_NAMED] = offsetof(shm_header_t, named_lock);
    lock_offs[SHM_LOCK_SLOTS] = offsetof(shm_header_t, slots_lock);
}

/* The attacker: raw mapping of the header, rewrites lock words until `stop` is closed. */
static int attacker(const char *name, int stop_fd, uint64_t victim_addr, int victim_pid)
{
    char path[200];
    snprintf(path, sizeof path, "/ga.%s", name);
    int fd = shm_open(path, O_RDWR, 0);
    if (fd < 0) return 2;
    unsigned char *m = mmap(NULL, sizeof(shm_header_t), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (m == MAP_FAILED) return 3;
    fcntl(stop_fd, F_SETFL, O_NONBLOCK);
    uint64_t x = 0x9E3779B97F4A7C15ull;
    double end = ga__os_monotonic() + ATTACK_SEC + 5;
    for (unsigned long n = 0;; n++) {
        if ((n & 1023) == 0) {
            char c;
            if (read(stop_fd, &c, 1) == 0 || ga__os_monotonic() > end) break;
        }
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        uint32_t v;
        switch (x % 6) {
        case 0:
            v = (uint32_t)victim_addr;
            break;
        case 1:
            v = (uint32_t)(victim_addr >> 32);
            break;
        case 2:
            v = (uint32_t)victim_pid;
            break;
        case 3:
            v = 0;
            break;
        case 4:
            v = (uint32_t)getpid() | SHM_LOCK_WAITERS;
            break;
        default:
            v = (uint32_t)(x >> 32);
            break;
        }
        _Atomic uint32_t *w = (_Atomic uint32_t *)(m + lock_offs[(x >> 8) % SHM_NLOCKS]);
        atomic_store_explicit(w, v, memory_order_relaxed);
        if ((x >> 20) % 4 == 0)
            atomic_store_explicit(w + 1, (uint32_t)(x >> 40), memory_order_relaxed);
    }
    munmap(m, sizeof(shm_header_t));
    close(fd);
    return 0;
}

typedef struct {
    unsigned long pairs, timeouts, ops;
    int ok;
} victim_result_t;

static void victim(const char *name, int res_fd, int go_fd)
{
    volatile uint64_t stack_canary[64];
    for (int i = 0; i < 64; i++)
        stack_canary[i] = CANARY ^ (uint64_t)i;
    victim_result_t r = {0, 0, 0, 0};
    ga_set_error_handler(quiet, NULL);
    ga_heap_t *h = ga_shared_open(name, 0, 0, NULL); /* before the attack starts */
    char c = 1;
    if (write(res_fd, &c, 1) != 1 || read(go_fd, &c, 1) != 1) _exit(7);
    ga__shm_set_lock_timeout(20);
    if (h) {
        shm_att_t *a = (shm_att_t *)h;
        double end = ga__os_monotonic() + ATTACK_SEC;
        for (unsigned long n = 0; ga__os_monotonic() < end; n++) {
            unsigned lock = (unsigned)(n % SHM_NLOCKS);
            if (ga__shm_lock(a, lock, NULL, NULL) == 0) {
                ga__shm_unlock(a, lock);
                r.pairs++;
            } else {
                r.timeouts++;
            }
            if (n % 16 == 0) { /* the library's own paths over the same locks */
                ga_handle_t hd = ga_shared_handle_alloc(h, 100, 0);
                if (hd) {
                    ga_handle_lock(hd);
                    ga_handle_unlock(hd);
                    ga_handle_free(hd);
                }
                ga_shared_object(h, "obj", 64, 0, NULL);
                r.ops++;
            }
        }
        ga_shared_close(h);
    }
    int same = 1;
    for (int i = 0; i < 64; i++)
        same &= stack_canary[i] == (CANARY ^ (uint64_t)i);
    r.ok = h != NULL && canary_global == CANARY && same;
    if (write(res_fd, &r, sizeof r) != (ssize_t)sizeof r) _exit(5);
}

/* One round: victim and attacker (as uid, if not -1) on heap `name`. */
static void attack_round(const char *name, unsigned flags, int uid, int gid)
{
    ga_heap_t *h = ga_shared_open(name, 4 * MIB, GA_SHARED_CREATE | GA_SHARED_EXCL | flags, NULL);
    CHECK(h != NULL);
    if (!h) return;
    int res[2], stop[2], go[2];
    CHECK(pipe(res) == 0 && pipe(stop) == 0 && pipe(go) == 0);
    pid_t vp = fork();
    if (vp == 0) {
        alarm(30); /* bounded waits of 20 ms over 2 s: only a hang gets here */
        close(res[0]);
        close(stop[0]);
        close(go[1]);
        victim(name, res[1], go[0]);
        _exit(0); /* closes stop[1]: the attacker stops */
    }
    close(res[1]);
    close(go[0]);
    char c = 0;
    CHECK(read(res[0], &c, 1) == 1); /* the victim is attached */
    pid_t ap = fork();
    if (ap == 0) {
        alarm(30);
        close(stop[1]);
        if (uid >= 0 && (setgid((gid_t)gid) || setuid((uid_t)uid))) _exit(6);
        _exit(attacker(name, stop[0], (uint64_t)(uintptr_t)&canary_global, (int)vp));
    }
    close(stop[0]);
    close(stop[1]);
    CHECK(write(go[1], &c, 1) == 1);
    close(go[1]);
    victim_result_t r = {0, 0, 0, 0};
    CHECK(read(res[0], &r, sizeof r) == (ssize_t)sizeof r);
    close(res[0]);
    int vs = 0, as = 0;
    CHECK(waitpid(vp, &vs, 0) == vp && WIFEXITED(vs) && WEXITSTATUS(vs) == 0);
    CHECK(waitpid(ap, &as, 0) == ap && WIFEXITED(as) && WEXITSTATUS(as) == 0);
    CHECK(r.ok == 1);
    CHECK(r.pairs > 0);
    printf("attack%s: %lu lock pairs, %lu timed out (20 ms bound), %lu handle/object rounds; "
           "victim memory unchanged: %s\n",
           uid >= 0 ? " as nobody" : "", r.pairs, r.timeouts, r.ops, r.ok ? "yes" : "NO");
    /* The lock words are garbage now: our own detach must not wait long on them either. */
    unsigned saved = ga__shm_lock_timeout();
    ga__shm_set_lock_timeout(200);
    ga_set_error_handler(quiet, NULL);
    ga_shared_close(h);
    ga_set_error_handler(NULL, NULL);
    ga__shm_set_lock_timeout(saved);
    ga_shared_unlink(name, GA_SHARED_FORCE);
}

TEST(attacker_same_user)
{
    attack_round(shm_test_name("attack"), 0, -1, -1);
}

TEST(attacker_other_user)
{
    struct passwd *pw = getpwnam("nobody");
    if (geteuid() != 0 || !pw) {
        printf("skip attacker_other_user: needs root and a user 'nobody'\n");
        return;
    }
    attack_round(shm_test_name("attackn"), GA_SHARED_OTHERS, (int)pw->pw_uid, (int)pw->pw_gid);
}

int main(int argc, char **argv)
{
    find_locks();
    static const test_entry_t tests[] = {
        TEST_ENTRY(attacker_same_user),
        TEST_ENTRY(attacker_other_user),
    };
    return test_main(tests, sizeof tests / sizeof tests[0], argc, argv);
}
