/* SPDX-License-Identifier: MIT */
/*
 * Shared heaps: the robust, process-shared locks inside the segment, named by SHM_LOCK_* ids. A
 * lock whose holder died comes back with EOWNERDEAD: the new holder runs the lock's repair
 * (which finishes or undoes what the intent record beside the lock says was under way), then
 * marks it consistent.
 *
 * Who holds a lock cannot be read from a robust mutex in the segment, so builds with
 * GA_DEBUG >= 2 keep their own record: one bit per SHM_LOCK_* id, per thread and per attachment
 * index, set and cleared here. GA_ASSERT_SHM_HELD reads it.
 */
#include "shared/shared_internal.h"
#include <errno.h>

#if GA_DEBUG >= 2
static GA_TLS uint64_t held_by_me[ATT_MAX];

bool ga__shm_held(const shm_att_t *a, unsigned lock)
{
    return lock < SHM_NLOCKS && (held_by_me[a->index % ATT_MAX] >> lock & 1);
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

int ga__shm_lock(shm_att_t *a, unsigned lock, void (*repair)(shm_att_t *, void *), void *arg)
{
    GA_ASSERT_INTERNAL(lock < SHM_NLOCKS && !ga__shm_held(a, lock)); /* relocking: a deadlock */
    pthread_mutex_t *m = ga__shm_mutex(a, lock);
    int rc = pthread_mutex_lock(m);
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
    ga__report(GA_ECORRUPT, (uintptr_t)m, false, "shared heap %s: lock unusable (%d)", a->name, rc);
    return ga__set_error(GA_ECORRUPT);
}

void ga__shm_unlock(shm_att_t *a, unsigned lock)
{
    GA_ASSERT_SHM_HELD(a, lock);
    mark_held(a, lock, false);
    pthread_mutex_unlock(ga__shm_mutex(a, lock));
}
