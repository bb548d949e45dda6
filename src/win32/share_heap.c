/* SPDX-License-Identifier: MIT */
/*
 * The shared heap behind GMEM_SHARE (ga_share_heap, ga_set_share_heap): GlobalAlloc(GMEM_MOVEABLE
 * | GMEM_SHARE) takes its blocks from it, so other processes can use them (GMEM_SHARE's 16-bit
 * meaning, back). It is the heap set with ga_set_share_heap, else the one named by
 * GLOBALALLOC_HEAP (size GLOBALALLOC_HEAP_SIZE, default 64 MiB), opened on first use; none
 * means the process heap.
 *
 * State: share.heap is decided once (share.state 0 -> 1) under share.lock and read lock-free
 * after. A fork child forgets it: the parent's attachment is not the child's.
 */
#include "shared/shared.h"
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

static struct {
    ga_lock_t lock; /* guards the decision (state 0 -> 1) and atfork */
    _Atomic(ga_heap_t *) heap;
    _Atomic int state; /* 0: environment not read yet, 1: decided */
    bool atfork;
} share = {.lock = GA_LOCK_INIT};

static void share_fork_child(void)
{
    ga__lock_reinit(&share.lock);
    atomic_store(&share.heap, NULL); /* the parent's attachment is not ours */
    atomic_store(&share.state, 0);
}

/* pre: share.lock held. */
static void share_open_from_env(void)
{
    GA_ASSERT_HELD(&share.lock);
    if (!share.atfork) {
        pthread_atfork(NULL, NULL, share_fork_child);
        share.atfork = true;
    }
    const char *name = getenv("GLOBALALLOC_HEAP");
    if (name == NULL || *name == 0)
        return;
    size_t size = (size_t)64 << 20;
    const char *sz = getenv("GLOBALALLOC_HEAP_SIZE");
    if (sz && *sz) {
        char *end;
        unsigned long long v = strtoull(sz, &end, 0);
        if (*end == 0 && v > 0)
            size = (size_t)v;
    }
    ga_heap_t *heap = ga_shared_open(name, size, GA_SHARED_CREATE, NULL);
    if (heap == NULL) {
        int err = ga_last_error();
        ga__report(err, 0, false,
                   "GLOBALALLOC_HEAP=%.64s: cannot open the shared heap (%s); GMEM_SHARE blocks "
                   "come from the process heap",
                   name, ga_strerror(err));
        return;
    }
    atomic_store(&share.heap, heap);
}

ga_heap_t *ga_share_heap(void)
{
    if (GA_UNLIKELY(atomic_load_explicit(&share.state, memory_order_acquire) == 0)) {
        ga__lock(&share.lock);
        if (atomic_load(&share.state) == 0) {
            share_open_from_env();
            atomic_store_explicit(&share.state, 1, memory_order_release);
        }
        ga__unlock(&share.lock);
    }
    return atomic_load_explicit(&share.heap, memory_order_acquire);
}

int ga_set_share_heap(ga_heap_t *heap)
{
    if (heap != NULL && !ga__shared_is_heap(heap))
        return GA_EINVAL;
    ga__lock(&share.lock);
    if (!share.atfork) {
        pthread_atfork(NULL, NULL, share_fork_child);
        share.atfork = true;
    }
    atomic_store(&share.heap, heap);
    atomic_store_explicit(&share.state, 1, memory_order_release);
    ga__unlock(&share.lock);
    return 0;
}
