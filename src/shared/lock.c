/* SPDX-License-Identifier: MIT */
/*
 * Shared heaps: the robust, process-shared locks inside the segment, named by SHM_LOCK_* ids. A
 * lock whose holder died comes back with EOWNERDEAD: the new holder runs the lock's repair
 * (which finishes or undoes what the intent record beside the lock says was under way), then
 * marks it consistent.
 *
 * Every wait is bounded: a lock not obtained within the lock timeout (ga__shm_lock_timeout:
 * GLOBALALLOC_LOCK_TIMEOUT_MS, default 30 s) gives GA_ETIMEDOUT, reported with the lock's name
 * and its holder, so a stuck or hostile peer never hangs its peers for good.
 *
 * Who holds a lock cannot be read from a robust mutex in the segment, so builds with
 * GA_DEBUG >= 2 keep their own record: one bit per SHM_LOCK_* id, per thread and per attachment
 * index, set and cleared here. GA_ASSERT_SHM_HELD reads it.
 */
#include "shared/shared_internal.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

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
        snprintf(out, cap, "%s", lock == SHM_LOCK_PAGES   ? "pages"
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

int ga__shm_mutex_init(pthread_mutex_t *m)
{
    pthread_mutexattr_t at;
    pthread_mutexattr_init(&at);
    pthread_mutexattr_setpshared(&at, PTHREAD_PROCESS_SHARED);
    pthread_mutexattr_setrobust(&at, PTHREAD_MUTEX_ROBUST);
    int rc = pthread_mutex_init(m, &at);
    pthread_mutexattr_destroy(&at);
    return rc;
}

pthread_mutex_t *ga__shm_mutex(shm_att_t *a, unsigned lock)
{
    shm_header_t *h = a->hdr;
    if (lock < SHM_LOCK_STRIPE(0)) return &h->classes[lock - SHM_LOCK_CLASS(0)].lock;
    if (lock < SHM_LOCK_PAGES) return &h->stripes[lock - SHM_LOCK_STRIPE(0)].lock;
    return lock == SHM_LOCK_PAGES   ? &h->pages_lock
           : lock == SHM_LOCK_NAMED ? &h->named_lock
                                    : &h->slots_lock;
}

/* The holder's thread id as the C library keeps it in the mutex, 0 when unknown. */
static int holder_of(const pthread_mutex_t *m)
{
#ifdef __GLIBC__
    return m->__data.__owner & 0x3fffffff; /* FUTEX_TID_MASK */
#else
    (void)m;
    return 0;
#endif
}

/* pthread_mutex_timedlock until the lock timeout, on CLOCK_REALTIME (what it measures). */
static int timed_lock(pthread_mutex_t *m)
{
    int rc = pthread_mutex_trylock(m);
    if (rc != EBUSY) return rc;
    unsigned ms = ga__shm_lock_timeout();
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    do
        rc = pthread_mutex_timedlock(m, &ts);
    while (rc == EINTR);
    return rc;
}

int ga__shm_lock(shm_att_t *a, unsigned lock, void (*repair)(shm_att_t *, void *), void *arg)
{
    GA_ASSERT_INTERNAL(lock < SHM_NLOCKS && !ga__shm_held(a, lock)); /* relocking: a deadlock */
    pthread_mutex_t *m = ga__shm_mutex(a, lock);
    int rc = timed_lock(m);
    if (GA_LIKELY(rc == 0)) {
        mark_held(a, lock, true);
        return 0;
    }
    if (rc == EOWNERDEAD) {
        mark_held(a, lock, true); /* before the repair, which asserts it */
        atomic_fetch_add(&a->hdr->repairs, 1);
        if (repair) repair(a, arg);
        pthread_mutex_consistent(m);
        return 0;
    }
    char what[32];
    ga__shm_lock_name(lock, what, sizeof what);
    if (rc == ETIMEDOUT) {
        ga__report(GA_ETIMEDOUT, (uintptr_t)m, false,
                   "shared heap %s: gave up waiting for the %s lock after %u ms (held by thread "
                   "%d)",
                   a->name, what, ga__shm_lock_timeout(), holder_of(m));
        return ga__set_error(GA_ETIMEDOUT);
    }
    ga__report(GA_ECORRUPT, (uintptr_t)m, false, "shared heap %s: %s lock unusable (%d)", a->name,
               what, rc);
    return ga__set_error(GA_ECORRUPT);
}

void ga__shm_unlock(shm_att_t *a, unsigned lock)
{
    GA_ASSERT_SHM_HELD(a, lock);
    mark_held(a, lock, false);
    pthread_mutex_unlock(ga__shm_mutex(a, lock));
}
