/* SPDX-License-Identifier: MIT */
/*
 * Shared heaps: the locks inside the segment (shm_lock_t, layout.h), named by SHM_LOCK_* ids.
 *
 * A lock is one 32-bit word: the holder's pid, or 0 when free, plus a waiters bit. Taking it is
 * one CAS 0 -> pid; releasing is one exchange to 0, then a futex wake when the waiters bit was
 * set (Drepper's "mutex, take 3" with the pid as the locked value). A waiter sleeps in timed
 * futex waits; each time a wait times out it looks whether the holder's process is still
 * alive (its slot's start time when it has one, so a reused pid is not taken for the holder),
 * and when it is gone, takes the lock over with one CAS from the dead pid to its own and runs
 * the lock's repair (which finishes or undoes what the intent record beside the lock says was
 * under way), as EOWNERDEAD did with the robust pthread mutexes of format 1.
 *
 * Why not pthread robust mutexes: glibc's unlock writes through the robust-list pointers kept
 * inside the mutex, i.e. inside the segment, where any peer can rewrite them (a write anywhere
 * in our memory), and a holder leaves its own thread-local addresses there. This lock stores
 * only a pid, reads nothing from the segment but its own word, and passes only the word's
 * address (in our mapping) to the kernel. A peer that rewrites a word can make us wait (bounded)
 * or let two holders in (damage inside the segment, which the checker reports): nothing more.
 *
 * The same word also serves locks owned by a thread (ga__shm_word_lock_as with
 * ga__shm_thread_owner: ga_shared_mutex_t and once-init store the kernel thread id, so two
 * threads of one process exclude each other and a thread that exits holding one is found dead
 * like a process), and a word with a final value (once-init's "done") that ends every wait.
 *
 * Every wait is bounded: a lock not obtained within the lock timeout (ga__shm_lock_timeout:
 * GLOBALALLOC_LOCK_TIMEOUT_MS, default 30 s) gives GA_ETIMEDOUT, reported with the lock's name
 * and the holder's pid, so a stuck or hostile peer never hangs its peers for good.
 *
 * Builds with GA_DEBUG >= 2 also record, per thread and attachment index, which locks this
 * thread holds (one bit per SHM_LOCK_* id): GA_ASSERT_SHM_HELD reads it.
 */
#include "shared/shared_internal.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#define LOCK_TIMEOUT_DEFAULT_MS 30000u
static _Atomic unsigned lock_timeout_ms; /* 0: not read yet */

unsigned ga__shm_lock_timeout(void)
{
    unsigned ms = atomic_load_explicit(&lock_timeout_ms, memory_order_relaxed);
    if (GA_LIKELY(ms)) return ms;
    const char *env = getenv("GLOBALALLOC_LOCK_TIMEOUT_MS");
    char *end = NULL;
    unsigned long v = env ? strtoul(env, &end, 10) : 0;
    ms = env && *env && end && !*end && v > 0 && v <= 86400000ul ? (unsigned)v
                                                                 : LOCK_TIMEOUT_DEFAULT_MS;
    atomic_store_explicit(&lock_timeout_ms, ms, memory_order_relaxed);
    return ms;
}

void ga__shm_set_lock_timeout(unsigned ms)
{
    atomic_store_explicit(&lock_timeout_ms, ms, memory_order_relaxed);
}

void ga__shm_lock_name(unsigned lock, char *out, size_t cap)
{
    if (lock < SHM_LOCK_STRIPE(0))
        snprintf(out, cap, "class %u", lock - SHM_LOCK_CLASS(0));
    else if (lock < SHM_LOCK_PAGES)
        snprintf(out, cap, "handle stripe %u", lock - SHM_LOCK_STRIPE(0));
    else
        snprintf(out, cap, "%s",
                 lock == SHM_LOCK_PAGES   ? "pages"
                 : lock == SHM_LOCK_NAMED ? "named-object"
                                          : "slots");
}

#if GA_DEBUG >= 2
static GA_TLS uint64_t held_by_me[ATT_MAX];

bool ga__shm_held(const shm_att_t *a, unsigned lock)
{
    return lock < SHM_NLOCKS && (held_by_me[a->index % ATT_MAX] >> lock & 1);
}

bool ga__shm_held_any(const shm_att_t *a)
{
    return held_by_me[a->index % ATT_MAX] != 0;
}
#endif

static void mark_held(shm_att_t *a, unsigned lock, bool held)
{
#if GA_DEBUG >= 2
    uint64_t bit = (uint64_t)1 << lock;
    if (held)
        held_by_me[a->index % ATT_MAX] |= bit;
    else
        held_by_me[a->index % ATT_MAX] &= ~bit;
#else
    (void)a, (void)lock, (void)held;
#endif
}

shm_lock_t *ga__shm_lockp(shm_att_t *a, unsigned lock)
{
    shm_header_t *h = a->hdr;
    if (lock < SHM_LOCK_STRIPE(0)) return &h->classes[lock - SHM_LOCK_CLASS(0)].lock;
    if (lock < SHM_LOCK_PAGES) return &h->stripes[lock - SHM_LOCK_STRIPE(0)].lock;
    return lock == SHM_LOCK_PAGES   ? &h->pages_lock
           : lock == SHM_LOCK_NAMED ? &h->named_lock
                                    : &h->slots_lock;
}

/* Is the process `pid`, which holds a lock (ga__shm_word_lock), alive? A pid of one of the
 * heap's slots is judged by the slot (start time: a reused pid is not the holder); another pid
 * (a process between open and its slot claim) by the pid alone. 0 is no pid: a word damaged by
 * a peer. */
static bool holder_alive(shm_att_t *a, uint32_t pid)
{
    if (pid == 0) return false;
    for (unsigned s = 0; s < SHM_PROC_SLOTS; s++)
        if ((uint32_t)atomic_load(&a->hdr->slots[s].pid) == pid)
            return ga__shm_slot_alive(a, s) != 0;
    if (!ga__os_pid_exists((int)pid)) return false;
    char st;
    uint64_t start;
    return !(ga__os_proc_stat((int)pid, &st, &start) && (st == 'Z' || st == 'X'));
}

/* A thread holder (ga_shared_mutex_t, once-init) is alive while its thread is: a thread that
 * exits holding the word, or whose process dies, leaves it to the next locker. */
static bool thread_alive(shm_att_t *a, uint32_t tid)
{
    (void)a;
    return tid != 0 && ga__os_thread_alive(tid);
}

/* The contended path: SHM_GOT, SHM_GOT_FROM_DEAD, SHM_DONE (the word holds o->done), or
 * GA_ETIMEDOUT (reported, naming `what`, unless o->quiet). */
static GA_NOINLINE int lock_slow(shm_att_t *a, const char *what, shm_lock_t *l,
                                 const shm_owner_t *o, unsigned timeout_ms)
{
    double now = ga__os_monotonic(), deadline = now + timeout_ms / 1000.0;
    unsigned slice_us = 500;
    bool look = false; /* look at the holder's liveness (after a wait that timed out) */
    uint32_t v = 0, me = o->me;
    for (int spin = 0; spin < 100; spin++) {
        v = atomic_load_explicit(&l->word, memory_order_relaxed);
        if (v == 0 && atomic_compare_exchange_weak(&l->word, &v, me)) return SHM_GOT;
        if (o->done && (v & SHM_LOCK_PID) == o->done) break;
    }
    for (;;) {
        v = atomic_load(&l->word);
        uint32_t holder = v & SHM_LOCK_PID;
        if (o->done && holder == o->done) return SHM_DONE;
        now = ga__os_monotonic(); /* checked on every turn: a peer flipping the word cannot
                                   * keep us here either */
        if (now >= deadline) {
            if (!o->quiet)
                ga__report(GA_ETIMEDOUT, (uintptr_t)l, false,
                           "shared heap %s: gave up waiting for the %s lock after %u ms (held "
                           "by %s %u)",
                           a->name, what, timeout_ms, o->alive == thread_alive ? "thread" : "pid",
                           (unsigned)holder);
            return GA_ETIMEDOUT;
        }
        if (v == 0 || (look && holder != me && !o->alive(a, holder))) {
            /* Free, or its holder is gone: the waiters bit stays, others may sleep on it. */
            if (atomic_compare_exchange_strong(&l->word, &v, me | SHM_LOCK_WAITERS))
                return v == 0 ? SHM_GOT : SHM_GOT_FROM_DEAD;
            continue;
        }
        if (!(v & SHM_LOCK_WAITERS) &&
            !atomic_compare_exchange_strong(&l->word, &v, v | SHM_LOCK_WAITERS))
            continue;
        v |= SHM_LOCK_WAITERS;
        unsigned left = (unsigned)((deadline - now) * 1e6) + 1;
        int rc = ga__os_futex_wait(&l->word, v, slice_us < left ? slice_us : left);
        look = rc == -ETIMEDOUT;
        if (look && slice_us < 50000) slice_us *= 2;
    }
}

int ga__shm_word_lock_as(shm_att_t *a, shm_lock_t *l, const shm_owner_t *o, const char *what,
                         unsigned timeout_ms)
{
    uint32_t v = 0;
    if (GA_LIKELY(atomic_compare_exchange_strong(&l->word, &v, o->me))) return SHM_GOT;
    if (o->done && (v & SHM_LOCK_PID) == o->done) return SHM_DONE;
    int rc = lock_slow(a, what, l, o, timeout_ms ? timeout_ms : ga__shm_lock_timeout());
    if (rc == SHM_GOT_FROM_DEAD) {
        atomic_fetch_add(&a->hdr->repairs, 1);
        atomic_fetch_add(&l->takeovers, 1);
    }
    return rc;
}

int ga__shm_word_trylock_as(shm_att_t *a, shm_lock_t *l, const shm_owner_t *o)
{
    uint32_t v = 0;
    if (atomic_compare_exchange_strong(&l->word, &v, o->me)) return SHM_GOT;
    uint32_t holder = v & SHM_LOCK_PID;
    if (o->done && holder == o->done) return SHM_DONE;
    if (holder == o->me || o->alive(a, holder)) return GA_ELOCKED;
    if (!atomic_compare_exchange_strong(&l->word, &v, o->me | (v & SHM_LOCK_WAITERS)))
        return GA_ELOCKED; /* it changed hands meanwhile */
    atomic_fetch_add(&a->hdr->repairs, 1);
    atomic_fetch_add(&l->takeovers, 1);
    return SHM_GOT_FROM_DEAD;
}

int ga__shm_word_lock(shm_att_t *a, shm_lock_t *l, const char *what, unsigned timeout_ms)
{
    shm_owner_t o = {(uint32_t)ga__os_pid() & SHM_LOCK_PID, holder_alive, 0, false};
    return ga__shm_word_lock_as(a, l, &o, what, timeout_ms);
}

GA_TLS uint32_t ga__shm_my_tid;

shm_owner_t ga__shm_thread_owner(void)
{
    uint32_t tid = ga__shm_my_tid; /* the kernel's id of this thread, asked once */
    if (GA_UNLIKELY(!tid)) ga__shm_my_tid = tid = ga__os_thread_id() & SHM_LOCK_PID;
    return (shm_owner_t){tid, thread_alive, 0, true};
}

int ga__shm_word_trylock(shm_att_t *a, shm_lock_t *l)
{
    shm_owner_t o = {(uint32_t)ga__os_pid() & SHM_LOCK_PID, holder_alive, 0, false};
    int rc = ga__shm_word_trylock_as(a, l, &o);
    return rc == GA_ELOCKED ? GA_ETIMEDOUT : rc;
}

bool ga__shm_word_held_by_me(const shm_lock_t *l)
{
    uint32_t me = (uint32_t)ga__os_pid() & SHM_LOCK_PID;
    return (atomic_load(&l->word) & SHM_LOCK_PID) == me;
}

void ga__shm_word_unlock(shm_lock_t *l)
{
    if (atomic_exchange(&l->word, 0) & SHM_LOCK_WAITERS) ga__os_futex_wake(&l->word, 1);
}

int ga__shm_lock(shm_att_t *a, unsigned lock, void (*repair)(shm_att_t *, void *), void *arg)
{
    GA_ASSERT_INTERNAL(lock < SHM_NLOCKS && !ga__shm_held(a, lock)); /* relocking: a deadlock */
    shm_lock_t *l = ga__shm_lockp(a, lock);
    char what[32];
    ga__shm_lock_name(lock, what, sizeof what);
    int rc = ga__shm_word_lock(a, l, what, 0);
    if (rc < 0) return ga__set_error(rc);
    mark_held(a, lock, true); /* before the repair, which asserts it */
    if (rc == SHM_GOT_FROM_DEAD && repair) repair(a, arg);
    return 0;
}

void ga__shm_unlock(shm_att_t *a, unsigned lock)
{
    GA_ASSERT_SHM_HELD(a, lock);
    mark_held(a, lock, false);
    ga__shm_word_unlock(ga__shm_lockp(a, lock));
}
