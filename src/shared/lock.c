/* SPDX-License-Identifier: MIT */
/*
 * Shared heaps: the robust, process-shared locks inside the segment. A lock whose holder died
 * comes back with EOWNERDEAD: the new holder runs the lock's repair (which finishes or undoes
 * what the intent record beside the lock says was under way), then marks it consistent.
 */
#include "shared/shared_internal.h"
#include <errno.h>

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

int ga__shm_lock(shm_att_t *a, pthread_mutex_t *m, void (*repair)(shm_att_t *, void *), void *arg)
{
    int rc = pthread_mutex_lock(m);
    if (GA_LIKELY(rc == 0)) return 0;
    if (rc == EOWNERDEAD) {
        atomic_fetch_add(&a->hdr->repairs, 1);
        if (repair) repair(a, arg);
        pthread_mutex_consistent(m);
        return 0;
    }
    ga__report(GA_ECORRUPT, (uintptr_t)m, false, "shared heap %s: lock unusable (%d)", a->name, rc);
    return ga__set_error(GA_ECORRUPT);
}

void ga__shm_unlock(pthread_mutex_t *m)
{
    pthread_mutex_unlock(m);
}
