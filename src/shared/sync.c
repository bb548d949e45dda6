/* SPDX-License-Identifier: MIT */
/*
 * Shared heaps: the application's synchronisation objects inside a heap: ga_shared_mutex_t and
 * ga_shared_cond_t (layout: shm_mutex_t, shm_cond_t in layout.h).
 *
 * The mutex is a segment lock word (src/shared/lock.c) owned by a thread: it holds the kernel
 * thread id of its holder, so threads of one process exclude each other and a holder that died
 * (its thread or its whole process) is found by the next locker, which takes it over and gets
 * GA_EOWNERDEAD. No "consistent" step: the taker holds it like any locker.
 *
 * The condition variable is a sequence word (Drepper's "futexes are tricky", the simple
 * version): a waiter reads seq while it holds the mutex, unlocks, and sleeps while seq still
 * has that value; signal and broadcast bump seq, then wake one / all sleepers. A signal made
 * after the waiter read seq changes it, so the waiter's futex wait returns at once: no lost
 * wake-up. A waiter that the kernel woke and that was killed before returning would swallow a
 * signal, so sleepers also wake every COND_SLICE_US and return when seq has moved (a spurious
 * wake-up, allowed): no signal is lost to a dead waiter either. A killed sleeper is simply gone
 * from the kernel's queue; the waiters count it leaves behind is a hint only.
 *
 * Every object is validated before use: the pointer must be 8-byte aligned inside the heap's
 * committed data area (init: inside an allocated block), and carry its magic. Nothing read from
 * it is used as an address. The calls run under the truncation guard (attach.c).
 */
#include "shared/shared_internal.h"
#include <errno.h>
#include <limits.h>

static_assert(sizeof(shm_mutex_t) == sizeof(ga_shared_mutex_t), "ga_shared_mutex_t size");
static_assert(_Alignof(ga_shared_mutex_t) >= _Alignof(shm_mutex_t), "ga_shared_mutex_t align");
static_assert(sizeof(shm_cond_t) == sizeof(ga_shared_cond_t), "ga_shared_cond_t size");
static_assert(_Alignof(ga_shared_cond_t) >= _Alignof(shm_cond_t), "ga_shared_cond_t align");

#define COND_SLICE_US 100000u /* a sleeper looks at seq at least this often (see above) */

/* The attachment of heap and the checked offset of the 16-byte object at p, or GA_E*
 * (reported, naming fn). block: it must lie inside one allocated block. */
static int object_at(ga_heap_t *heap, const void *p, const char *fn, bool block, shm_att_t **out)
{
    shm_att_t *a = ga__shm_att_fast(heap);
    if (!a) {
        ga__report(GA_EINVAL, (uintptr_t)heap, false, "%s: not an open shared heap", fn);
        return GA_EINVAL;
    }
    uintptr_t base = (uintptr_t)a->base, q = (uintptr_t)p;
    uint64_t end = a->data_off + ga__shm_top_pages(a) * SHM_PAGE;
    if (q < base + a->data_off || q - base > end - 16 || (q & 7)) {
        ga__report(GA_EINVAL, q, false,
                   "%s: %p is not an 8-byte aligned address in the data area of shared heap %s", fn,
                   p, a->name);
        return GA_EINVAL;
    }
    if (block && ga__shm_block_around(a, q - base, 16)) {
        ga__report(GA_EINVAL, q, false,
                   "%s: %p is not inside a block allocated from shared heap %s", fn, p, a->name);
        return GA_EINVAL;
    }
    *out = a;
    return 0;
}

/* GA_EINVAL (never initialised: zero) or GA_ECORRUPT (anything else but magic), reported. */
static int bad_magic(shm_att_t *a, const void *p, uint32_t magic, const char *fn, const char *kind)
{
    int rc = magic == 0 ? GA_EINVAL : GA_ECORRUPT;
    ga__report(rc, (uintptr_t)p, false, "%s: %p in shared heap %s is %s %s", fn, p, a->name,
               rc == GA_EINVAL ? "not an initialised" : "a damaged", kind);
    return rc;
}

static int mutex_of(ga_heap_t *heap, ga_shared_mutex_t *m, const char *fn, shm_att_t **a)
{
    int rc = object_at(heap, m, fn, false, a);
    if (rc) return rc;
    uint32_t magic = atomic_load_explicit(&((shm_mutex_t *)m)->magic, memory_order_relaxed);
    return GA_LIKELY(magic == SHM_MUTEX_MAGIC) ? 0 : bad_magic(*a, m, magic, fn, "mutex");
}

static int cond_of(ga_heap_t *heap, ga_shared_cond_t *c, const char *fn, shm_att_t **a)
{
    int rc = object_at(heap, c, fn, false, a);
    if (rc) return rc;
    uint32_t magic = atomic_load_explicit(&((shm_cond_t *)c)->magic, memory_order_relaxed);
    return GA_LIKELY(magic == SHM_COND_MAGIC) ? 0
                                              : bad_magic(*a, c, magic, fn, "condition variable");
}

/* The thread's last error set for a failure. */
static int fail(int rc)
{
    return rc ? ga__set_error(rc) : 0;
}

/* Ends a guarded call: rc (the last error set when it fails), or GA_ECORRUPT when the heap's
 * file was found truncated. */
static int leave(shm_att_t *a, int rc)
{
    return fail(GA_UNLIKELY(SHM_GUARD_LEAVE(a)) ? GA_ECORRUPT : rc);
}

/* ---- the mutex ---------------------------------------------------------------------------- */

int ga_shared_mutex_init(ga_heap_t *heap, ga_shared_mutex_t *mutex)
{
    shm_att_t *a;
    int rc = object_at(heap, mutex, "ga_shared_mutex_init", true, &a);
    if (rc) return fail(rc);
    shm_mutex_t *m = (shm_mutex_t *)mutex;
    SHM_GUARD_ENTER();
    atomic_store_explicit(&m->lock.word, 0, memory_order_relaxed);
    atomic_store_explicit(&m->lock.takeovers, 0, memory_order_relaxed);
    m->pad = 0;
    atomic_store_explicit(&m->magic, SHM_MUTEX_MAGIC, memory_order_release);
    return leave(a, 0);
}

/* Locks m for this thread (wait: timeout_ms; !wait: trylock). 0, GA_EOWNERDEAD, GA_ETIMEDOUT,
 * GA_ELOCKED (trylock), GA_EPERM (already ours: reported). */
static int mutex_take(shm_att_t *a, shm_mutex_t *m, bool wait, unsigned timeout_ms, const char *fn)
{
    shm_owner_t o = ga__shm_thread_owner();
    if ((atomic_load_explicit(&m->lock.word, memory_order_relaxed) & SHM_LOCK_PID) == o.me) {
        ga__report(GA_EPERM, (uintptr_t)m, false,
                   "%s: thread %u already holds the mutex %p (it is not recursive)", fn,
                   (unsigned)o.me, (void *)m);
        return GA_EPERM;
    }
    int rc = wait ? ga__shm_word_lock_as(a, &m->lock, &o, "mutex", timeout_ms)
                  : ga__shm_word_trylock_as(a, &m->lock, &o);
    return rc == SHM_GOT ? 0 : rc == SHM_GOT_FROM_DEAD ? GA_EOWNERDEAD : rc;
}

int ga_shared_mutex_lock(ga_heap_t *heap, ga_shared_mutex_t *m, unsigned timeout_ms)
{
    shm_att_t *a;
    int rc = mutex_of(heap, m, "ga_shared_mutex_lock", &a);
    if (rc) return fail(rc);
    SHM_GUARD_ENTER();
    rc = mutex_take(a, (shm_mutex_t *)m, true, timeout_ms, "ga_shared_mutex_lock");
    return leave(a, rc);
}

int ga_shared_mutex_trylock(ga_heap_t *heap, ga_shared_mutex_t *m)
{
    shm_att_t *a;
    int rc = mutex_of(heap, m, "ga_shared_mutex_trylock", &a);
    if (rc) return fail(rc);
    SHM_GUARD_ENTER();
    rc = mutex_take(a, (shm_mutex_t *)m, false, 0, "ga_shared_mutex_trylock");
    return leave(a, rc);
}

/* Unlocks m if this thread holds it: 0, or GA_EPERM (reported, naming fn). */
static int mutex_give(shm_mutex_t *m, const char *fn)
{
    uint32_t me = ga__shm_thread_owner().me;
    uint32_t holder = atomic_load_explicit(&m->lock.word, memory_order_relaxed) & SHM_LOCK_PID;
    if (holder != me) {
        ga__report(GA_EPERM, (uintptr_t)m, false,
                   "%s: thread %u does not hold the mutex %p (%s %u)", fn, (unsigned)me, (void *)m,
                   holder ? "held by thread" : "unlocked", (unsigned)holder);
        return GA_EPERM;
    }
    ga__shm_word_unlock(&m->lock);
    return 0;
}

int ga_shared_mutex_unlock(ga_heap_t *heap, ga_shared_mutex_t *m)
{
    shm_att_t *a;
    int rc = mutex_of(heap, m, "ga_shared_mutex_unlock", &a);
    if (rc) return fail(rc);
    SHM_GUARD_ENTER();
    rc = mutex_give((shm_mutex_t *)m, "ga_shared_mutex_unlock");
    return leave(a, rc);
}

/* ---- the condition variable ----------------------------------------------------------------- */

int ga_shared_cond_init(ga_heap_t *heap, ga_shared_cond_t *cond)
{
    shm_att_t *a;
    int rc = object_at(heap, cond, "ga_shared_cond_init", true, &a);
    if (rc) return fail(rc);
    shm_cond_t *c = (shm_cond_t *)cond;
    SHM_GUARD_ENTER();
    atomic_store_explicit(&c->seq, 0, memory_order_relaxed);
    atomic_store_explicit(&c->waiters, 0, memory_order_relaxed);
    c->pad = 0;
    atomic_store_explicit(&c->magic, SHM_COND_MAGIC, memory_order_release);
    return leave(a, 0);
}

/* Sleeps while c->seq == seq, until timeout_ms: true when seq moved, false on timeout. */
static bool cond_sleep(shm_cond_t *c, uint32_t seq, unsigned timeout_ms)
{
    double deadline = ga__os_monotonic() + timeout_ms / 1000.0;
    for (;;) {
        if (atomic_load(&c->seq) != seq) return true;
        double left = deadline - ga__os_monotonic();
        if (left <= 0) return false;
        unsigned us = left * 1e6 < COND_SLICE_US ? (unsigned)(left * 1e6) + 1 : COND_SLICE_US;
        ga__os_futex_wait(&c->seq, seq, us); /* woken, changed, timed out or EINTR: look */
    }
}

static int cond_wait(shm_att_t *a, shm_cond_t *c, shm_mutex_t *m, unsigned timeout_ms)
{
    static const char fn[] = "ga_shared_cond_wait";
    uint32_t seq = atomic_load(&c->seq); /* read holding m: a later signal changes it */
    int rc = mutex_give(m, fn);
    if (rc) return rc;
    atomic_fetch_add(&c->waiters, 1);
    bool woken = cond_sleep(c, seq, timeout_ms ? timeout_ms : ga__shm_lock_timeout());
    atomic_fetch_sub(&c->waiters, 1);
    rc = mutex_take(a, m, true, 0, fn);
    if (rc == GA_ETIMEDOUT || rc == GA_EPERM) {
        ga__report(GA_ENOTLOCKED, (uintptr_t)m, false,
                   "%s: could not lock the mutex %p again within the lock timeout (%u ms)", fn,
                   (void *)m, ga__shm_lock_timeout());
        return GA_ENOTLOCKED;
    }
    return rc ? rc : woken ? 0 : GA_ETIMEDOUT;
}

int ga_shared_cond_wait(ga_heap_t *heap, ga_shared_cond_t *c, ga_shared_mutex_t *m,
                        unsigned timeout_ms)
{
    shm_att_t *a;
    int rc = cond_of(heap, c, "ga_shared_cond_wait", &a);
    if (!rc) rc = mutex_of(heap, m, "ga_shared_cond_wait", &a);
    if (rc) return fail(rc);
    SHM_GUARD_ENTER();
    rc = cond_wait(a, (shm_cond_t *)c, (shm_mutex_t *)m, timeout_ms);
    return leave(a, rc);
}

static int cond_wake(ga_heap_t *heap, ga_shared_cond_t *cond, int n, const char *fn)
{
    shm_att_t *a;
    int rc = cond_of(heap, cond, fn, &a);
    if (rc) return fail(rc);
    shm_cond_t *c = (shm_cond_t *)cond;
    SHM_GUARD_ENTER();
    atomic_fetch_add(&c->seq, 1);
    if (atomic_load(&c->waiters)) ga__os_futex_wake(&c->seq, n);
    return leave(a, 0);
}

int ga_shared_cond_signal(ga_heap_t *heap, ga_shared_cond_t *c)
{
    return cond_wake(heap, c, 1, "ga_shared_cond_signal");
}

int ga_shared_cond_broadcast(ga_heap_t *heap, ga_shared_cond_t *c)
{
    return cond_wake(heap, c, INT_MAX, "ga_shared_cond_broadcast");
}
