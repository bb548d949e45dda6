/* SPDX-License-Identifier: MIT */
/*
 * Cross-file declarations (ga__*), assertions and the cheap always-on checks.
 * Never installed. Each section names the file that owns it.
 */
#ifndef GA_INTERNAL_H
#define GA_INTERNAL_H

#include "globalalloc.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GA_LIKELY(x)   __builtin_expect(!!(x), 1)
#define GA_UNLIKELY(x) __builtin_expect(!!(x), 0)
#define GA_NOINLINE    __attribute__((noinline))
#define GA_INLINE      static inline __attribute__((always_inline))
#define GA_TLS         __thread __attribute__((tls_model("initial-exec")))
#define GA_CACHE_LINE  64

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

/* ---- error.c: last error, misuse reports --------------------------------------------- */

/* Sets the thread's ga_last_error(); returns err so callers can `return ga__fail(...)`. */
int ga__set_error(int err);
/* Reports detected misuse or corruption (err, offending value, printf-style message) through
 * the user handler or stderr. If the handler declines and fatal is true, aborts.
 * Never allocates from globalalloc. */
/* Where reports go instead of fd 2 once the program has closed it (programs that close stderr
 * at exit, as coreutils do, would otherwise lose the at-exit leak report). ga__stderr_keep makes
 * the spare copy (debug mode does, when it starts); ga__stderr_fd answers 2 while it is open. */
void ga__stderr_keep(void);
int ga__stderr_fd(void);
void ga__report(int err, uintptr_t value, bool fatal, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* ---- debug.c: the debug heap ---------------------------------------------------------- */

/* For the other layers' misuse checks (GlobalFree of a stale handle, GlobalUnlock of an unlocked
 * block, ...): prints what (one line), the debug block that value points to when it is one
 * (address, size, allocation number, thread, allocation and free stacks), the current stack,
 * then reports err through ga__report (aborting if fatal and the handler declines). Works, with
 * less detail, when debug mode is off. Never allocates from the heap. */
void ga__debug_misuse(int err, const void *value, bool fatal, const char *what);

/* ---- engine (alloc.c, heap.c, page.c, segment.c): raw blocks -------------------------- */

/* Raw block allocation for the other layers: no error reporting, no last error.
 * Every block is GA_MIN_ALIGN aligned. NULL when out of memory or size too large. */
void *ga__alloc(size_t size);
void *ga__zalloc(size_t size);
/* Frees a block known to be live (callers validated it). */
void ga__free(void *p);
/* Usable size of a live block. */
size_t ga__usable_size(const void *p);
/* True when p is the start of a block of the process heap (live or free: the engine cannot
 * tell cheaply). Never dereferences p unless p lies in a mapped segment. */
bool ga__is_block_start(const void *p);
/* True when p lies in memory that the heap has mapped (so reading it cannot fault). */
bool ga__is_heap_memory(const void *p);
/* True when the live block at p has a mapping of its own, which freeing it may unmap. */
bool ga__is_huge_block(const void *p);
/* Engine half of ga_heap_check (segments, pages, free lists). 0 or GA_E*. */
int ga__engine_check(unsigned flags);
/* Engine half of ga_heap_stats. */
void ga__engine_stats(ga_stats_t *out);

/* ---- handle.c: tagged blocks and the handle table ------------------------------------ */

/* Live moveable handles (for statistics). */
size_t ga__handle_count(void);
/* Handle-table half of ga_heap_check. 0 or GA_E*. */
int ga__handle_check(unsigned flags);

/* ---- shared_*.c: shared heaps (dispatch for handle.c and the heap functions) ----------- */

/* True when heap is a shared heap attached by this process. */
bool ga__shared_is_heap(ga_heap_t *heap);
/* The ga_handle_* contract for handles whose heap id (bits 52..62) is nonzero: same results,
 * same errors (GA_EHANDLE for a heap this process has not attached). */
ga_handle_t ga__shared_handle_alloc(ga_heap_t *heap, size_t size, unsigned flags);
int ga__shared_handle_free(ga_handle_t h);
void *ga__shared_handle_lock(ga_handle_t h);
int ga__shared_handle_unlock(ga_handle_t h);
int ga__shared_handle_realloc(ga_handle_t h, size_t size, unsigned flags);
int ga__shared_handle_discard(ga_handle_t h);
int ga__shared_handle_info(ga_handle_t h, ga_handle_info_t *info);
size_t ga__shared_handle_size(ga_handle_t h);
int ga__shared_handle_modify(ga_handle_t h, unsigned set, unsigned clear);
/* The shared handle whose data is p, or 0 when p is in no shared heap of this process (no error
 * set then, so handle.c can go on with its own table). */
ga_handle_t ga__shared_handle_from_ptr(const void *p);
/* ga_heap_check / ga_heap_stats for a shared heap. */
int ga__shared_heap_check(ga_heap_t *heap, unsigned flags);
int ga__shared_heap_stats(ga_heap_t *heap, ga_stats_t *out);

#endif /* GA_INTERNAL_H */
