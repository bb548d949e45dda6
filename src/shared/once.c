/* SPDX-License-Identifier: MIT */
/*
 * Shared heaps: once-only initialisation of a named object (ga_shared_object_init).
 *
 * Each named-object entry has an init word (shm_named_t.init, a segment lock word owned by a
 * thread, src/shared/lock.c): 0 = not initialised, the initialising thread's id while its init
 * runs, SHM_WORD_DONE once init returned 0. A caller takes the word like a lock whose final
 * value ends every wait (SHM_DONE): the first one runs init; the others sleep on the word until
 * it becomes DONE, or 0 again (init failed: the next one runs it), or its holder is found dead
 * (killed half-way: the next one takes the word over, zero-fills the object and runs init
 * again). Every wait is bounded by the caller's timeout. init runs without any of the heap's
 * own locks held, so it may allocate, create objects and use mutexes.
 *
 * A peer that rewrites the word can make callers wait (until their timeout), run init again, or
 * skip it (DONE): damage to the data, never a write outside the object.
 */
#include "shared/shared_internal.h"
#include <limits.h>
#include <string.h>

/* Runs init on the object (n bytes at p) for the caller, who holds the init word. */
static int run_init(ga_heap_t *heap, shm_lock_t *w, void *p, size_t n, ga_shared_init_fn *init,
                    void *arg)
{
    memset(p, 0, n); /* fresh, failed before, or left half-made by a dead initialiser */
    int rc = init(heap, p, n, arg);
    if (rc) memset(p, 0, n); /* uninitialised again, for the next caller */
    uint32_t old = atomic_exchange(&w->word, rc ? 0u : SHM_WORD_DONE);
    /* Done: every waiter returns. Failed: one of them runs init; the others keep waiting, so
     * wake them all and let them take the word in turn. */
    if (old & SHM_LOCK_WAITERS) ga__os_futex_wake(&w->word, INT_MAX);
    return rc;
}

void *ga_shared_object_init(ga_heap_t *heap, const char *name, size_t size, unsigned flags,
                            ga_shared_init_fn *init, void *arg, unsigned timeout_ms, int *created)
{
    int dummy, made;
    unsigned k = 0;
    if (!created) created = &dummy;
    *created = 0;
    shm_att_t *a = ga__shm_att(heap);
    if (!a) return NULL;
    if (!init) {
        ga__report(GA_EINVAL, 0, false, "ga_shared_object_init: no init function");
        ga__set_error(GA_EINVAL);
        return NULL;
    }
    void *p = ga__shm_object_get(a, name, size, flags, &made, &k);
    if (!p) return NULL;
    SHM_GUARD_ENTER();
    shm_lock_t *w = &a->hdr->named[k].init;
    shm_owner_t o = ga__shm_thread_owner();
    o.done = SHM_WORD_DONE;
    int rc = 0;
    uint32_t v = atomic_load_explicit(&w->word, memory_order_acquire);
    if ((v & SHM_LOCK_PID) == o.me) {
        ga__report(GA_EPERM, (uintptr_t)p, false,
                   "ga_shared_object_init: object %s is being initialised by this thread "
                   "(called from its own init)",
                   name);
        rc = GA_EPERM;
    } else if ((v & SHM_LOCK_PID) != SHM_WORD_DONE) {
        rc = ga__shm_word_lock_as(a, w, &o, "once-init", timeout_ms);
        if (rc == SHM_GOT || rc == SHM_GOT_FROM_DEAD) {
            /* The object's size, checked again (a peer may have rewritten the entry). */
            uint64_t off = (uint64_t)((unsigned char *)p - a->base);
            size_t n = a->hdr->named[k].size, u = ga__shm_block_info(a, off, NULL);
            if (n >= size && n <= u) {
                rc = run_init(heap, w, p, n, init, arg);
                *created = rc == 0;
            } else {
                rc = ga__shm_corrupt(a, false, k, "named object changed size during its init");
                if (atomic_exchange(&w->word, 0) & SHM_LOCK_WAITERS)
                    ga__os_futex_wake(&w->word, INT_MAX);
            }
        } else if (rc == SHM_DONE) {
            rc = 0;
        }
    }
    if (GA_UNLIKELY(SHM_GUARD_LEAVE(a))) rc = GA_ECORRUPT;
    if (rc) {
        *created = 0;
        ga__set_error(rc);
        return NULL;
    }
    return p;
}
