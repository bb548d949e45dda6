/* SPDX-License-Identifier: MIT */
/*
 * The world lock: while it is on (ga__world_on; the debug heap's check=N turns it on), every
 * allocator entry holds it shared, outermost call only, and a whole-heap check holds it
 * exclusively, so that the check sees every thread's pages and blocks at rest. While it is off
 * (the default) the inline enter/leave in engine.h never call here.
 *
 * Invariant: a thread holds the lock shared exactly while its ga__world_depth is > 0, except
 * between ga__world_stop and ga__world_resume (held exclusively, depth 1).
 */
#include "engine/engine.h"
#include <pthread.h>

bool ga__world_on;

/* Writers first: a stream of allocations must not keep the check
 * waiting forever (so no thread may take it shared twice: the depth counts nested calls). */
#ifdef PTHREAD_RWLOCK_WRITER_NONRECURSIVE_INITIALIZER_NP
#define WORLD_LOCK_INIT PTHREAD_RWLOCK_WRITER_NONRECURSIVE_INITIALIZER_NP
#else
#define WORLD_LOCK_INIT PTHREAD_RWLOCK_INITIALIZER
#endif
static pthread_rwlock_t world_lock = WORLD_LOCK_INIT;
GA_TLS unsigned ga__world_depth;

void ga__world_enter_slow(void)
{
    if (ga__world_depth++ == 0) pthread_rwlock_rdlock(&world_lock);
}

void ga__world_leave_slow(void)
{
    if (--ga__world_depth == 0) pthread_rwlock_unlock(&world_lock);
}

/* fork child: only the forking thread is left, and it held no part of the lock (fork is not
 * called from inside the allocator); threads that did are gone. */
void ga__world_reset(void)
{
    world_lock = (pthread_rwlock_t)WORLD_LOCK_INIT;
}

/* The exclusive side, for the periodic check: taken while no other thread is inside the
 * allocator; this thread's own allocations meanwhile must not wait (depth 1). */
void ga__world_stop(void)
{
    pthread_rwlock_wrlock(&world_lock);
    ga__world_depth = 1;
}

void ga__world_resume(void)
{
    ga__world_depth = 0;
    pthread_rwlock_unlock(&world_lock);
}
