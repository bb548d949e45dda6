/* SPDX-License-Identifier: MIT */
/*
 * Library-wide internals: compiler macros, assertions, and the error/report path (error.c) that
 * every layer uses. Never installed. Each subsystem's interface is its own folder's header:
 * engine/engine.h, debug/debug.h, handle/handle.h, shared/shared.h, os/os.h.
 */
#ifndef GA_INTERNAL_H
#define GA_INTERNAL_H

#include "globalalloc.h"
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GA_LIKELY(x)   __builtin_expect(!!(x), 1)
#define GA_UNLIKELY(x) __builtin_expect(!!(x), 0)
#define GA_NOINLINE    __attribute__((noinline))
#define GA_INLINE      static inline __attribute__((always_inline))
#define GA_TLS         __thread __attribute__((tls_model("initial-exec")))
#define GA_CACHE_LINE  64
/* Racy reads by design (walks over memory other threads change): no sanitizer, never inlined. */
#define GA_NO_SAN      __attribute__((no_sanitize("address", "thread"), noinline))

#ifndef GA_DEBUG
#define GA_DEBUG 0
#endif

void ga__assert_fail(const char *expr, const char *file, int line) __attribute__((noreturn));
#define GA__ASSERT(x) ((x) ? (void)0 : ga__assert_fail(#x, __FILE__, __LINE__))
#if GA_DEBUG >= 1
#define GA_ASSERT(x) GA__ASSERT(x)
#else
#define GA_ASSERT(x) ((void)0)
#endif
#if GA_DEBUG >= 2
#define GA_ASSERT_INTERNAL(x) GA__ASSERT(x)
#else
#define GA_ASSERT_INTERNAL(x) ((void)0)
#endif
#if GA_DEBUG >= 3
#define GA_ASSERT_EXPENSIVE(x) GA__ASSERT(x)
#else
#define GA_ASSERT_EXPENSIVE(x) ((void)0)
#endif

/* src/init.c holds the library's constructors and nothing calls it: this reference from every
 * object keeps it in a static link. */
extern const char ga__init_anchor;
static const char *const ga__init_keep __attribute__((used)) = &ga__init_anchor;

/* ---- process-local locks whose holder is known --------------------------------------------
 * A "pre: lock held" rule is an assert, not prose: ga_lock_t is a pthread mutex that, in builds
 * with GA_DEBUG >= 2, records the thread holding it, so GA_ASSERT_HELD(l) checks "held by the
 * caller" (pthread has no such query). In other builds it is the bare mutex: no cost. */
typedef struct ga_lock_s {
    pthread_mutex_t m;
#if GA_DEBUG >= 2
    pthread_t holder; /* meaningful only while held */
    int held; /* read and written with __atomic builtins */
#endif
} ga_lock_t;
#define GA_LOCK_INIT {.m = PTHREAD_MUTEX_INITIALIZER}

#if GA_DEBUG >= 2
/* True when the calling thread holds l (holder is only ours while we hold it). */
GA_INLINE bool ga__lock_held(ga_lock_t *l)
{
    return __atomic_load_n(&l->held, __ATOMIC_RELAXED) &&
           pthread_equal(__atomic_load_n(&l->holder, __ATOMIC_RELAXED), pthread_self());
}
#define GA_ASSERT_HELD(l) GA__ASSERT(ga__lock_held(l))
#else
#define GA_ASSERT_HELD(l) ((void)0)
#endif
GA_INLINE void ga__lock(ga_lock_t *l)
{
    pthread_mutex_lock(&l->m);
#if GA_DEBUG >= 2
    __atomic_store_n(&l->holder, pthread_self(), __ATOMIC_RELAXED);
    __atomic_store_n(&l->held, 1, __ATOMIC_RELAXED);
#endif
}
GA_INLINE void ga__unlock(ga_lock_t *l)
{
#if GA_DEBUG >= 2
    GA__ASSERT(ga__lock_held(l));
    __atomic_store_n(&l->held, 0, __ATOMIC_RELAXED);
#endif
    pthread_mutex_unlock(&l->m);
}
/* A fork child (only the forking thread left) takes a lock back in a known state: unlocked. */
GA_INLINE void ga__lock_reinit(ga_lock_t *l)
{
    pthread_mutex_init(&l->m, NULL);
#if GA_DEBUG >= 2
    __atomic_store_n(&l->held, 0, __ATOMIC_RELAXED);
#endif
}

/* ---- error.c: last error, misuse reports --------------------------------------------- */

/* Sets the thread's ga_last_error(); returns err so callers can `return ga__fail(...)`. */
int ga__set_error(int err);
/* Where reports go instead of fd 2 once the program has closed it (programs that close stderr
 * at exit, as coreutils do, would otherwise lose the at-exit leak report). ga__stderr_keep makes
 * the spare copy (debug mode does, when it starts); ga__stderr_fd answers 2 while it is open. */
void ga__stderr_keep(void);
int ga__stderr_fd(void);
/* Reports detected misuse or corruption (err, offending value, printf-style message) through
 * the user handler or stderr. If the handler declines and fatal is true, aborts.
 * Never allocates from globalalloc. */
void ga__report(int err, uintptr_t value, bool fatal, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif /* GA_INTERNAL_H */
