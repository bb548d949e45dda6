/* SPDX-License-Identifier: MIT */
/*
 * The process's share heap (ga_share_heap, ga_set_share_heap): GlobalAlloc(GMEM_MOVEABLE |
 * GMEM_SHARE) takes its blocks from it, so other processes can use them (GMEM_SHARE's 16-bit
 * meaning, back), and a received handle of a heap this process has not opened is looked up in
 * it. Here, not in win32/, because the shared handles use it too. It is the heap set with ga_set_share_heap, else the one named by
 * GLOBALALLOC_HEAP (size GLOBALALLOC_HEAP_SIZE, default 64 MiB), opened on first use; none
 * means the process heap. A configured heap that cannot be opened is no reason to hand out
 * memory no other process can see: GMEM_SHARE then fails (ga__share_heap_get's error), and the
 * next request tries to open it again (the cause, a full table say, may have gone).
 *
 * State: share.state 0 (environment not read), 1 (decided: share.heap, or none), 2 (configured
 * but not open: share.name, share.err). Changes under share.lock; state 1 is read lock-free.
 * A fork child forgets it all: the parent's attachment is not the child's.
 */
#include "shared/shared.h"
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

static struct {
    ga_lock_t lock; /* guards the decision (state 0 -> 1) */
    _Atomic(ga_heap_t *) heap;
    _Atomic int state; /* 0: environment not read yet, 1: decided, 2: configured, not open */
    int err;           /* state 2: why the last open failed */
} share = {.lock = GA_LOCK_INIT};

void ga__share_heap_fork_child(void)
{
    ga__lock_reinit(&share.lock);
    atomic_store(&share.heap, NULL); /* the parent's attachment is not ours */
    atomic_store(&share.state, 0);
}

/* Opens the GLOBALALLOC_HEAP heap; state 1 (opened, or none configured) or 2 (share.err).
 * pre: share.lock held. */
static void share_open_from_env(void)
{
    GA_ASSERT_HELD(&share.lock);
    const char *name = getenv("GLOBALALLOC_HEAP");
    if (name == NULL || *name == 0) {
        atomic_store_explicit(&share.state, 1, memory_order_release);
        return;
    }
    size_t size = (size_t)64 << 20;
    const char *sz = getenv("GLOBALALLOC_HEAP_SIZE");
    if (sz && *sz && ga_shared_parse_size(sz, &size) != 0) {
        share.err = GA_EINVAL; /* a size the user did not mean is no size to create with */
        ga__report(share.err, 0, false,
                   "GLOBALALLOC_HEAP_SIZE=%.32s: not a size of 1M .. 64G (digits, then K, M, G or "
                   "T); GMEM_SHARE allocations fail until it is one",
                   sz);
        atomic_store(&share.state, 2);
        return;
    }
    ga_heap_t *heap = ga_shared_open(name, size, GA_SHARED_CREATE, NULL);
    if (heap == NULL) {
        share.err = ga_last_error();
        ga__report(share.err, 0, false,
                   "GLOBALALLOC_HEAP=%.64s: cannot open the shared heap (%s); GMEM_SHARE "
                   "allocations fail until it opens",
                   name, ga_strerror(share.err));
        atomic_store(&share.state, 2);
        return;
    }
    atomic_store(&share.heap, heap);
    atomic_store_explicit(&share.state, 1, memory_order_release);
}

ga_heap_t *ga__share_heap_get(int *err)
{
    *err = 0;
    if (GA_UNLIKELY(atomic_load_explicit(&share.state, memory_order_acquire) != 1)) {
        ga__lock(&share.lock);
        if (atomic_load(&share.state) != 1) share_open_from_env(); /* state 0, or retry 2 */
        if (atomic_load(&share.state) == 2) *err = share.err;
        ga__unlock(&share.lock);
    }
    return atomic_load_explicit(&share.heap, memory_order_acquire);
}

ga_heap_t *ga_share_heap(void)
{
    int err;
    ga_heap_t *heap = ga__share_heap_get(&err);
    if (err) ga__set_error(err);
    return heap;
}

int ga_set_share_heap(ga_heap_t *heap)
{
    if (heap != NULL && !ga__shared_is_heap(heap))
        return GA_EINVAL;
    ga__lock(&share.lock);
    atomic_store(&share.heap, heap);
    atomic_store_explicit(&share.state, 1, memory_order_release);
    ga__unlock(&share.lock);
    return 0;
}
