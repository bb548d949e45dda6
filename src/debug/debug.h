/* SPDX-License-Identifier: MIT */
/*
 * The debug heap's interface for the other folders: the switch and the hooks the engine's entry
 * points hand over to, the debug halves of ga_heap_stats and ga_heap_check, and misuse reports
 * with the debug block's history. The debug heap's own files share debug_internal.h.
 */
#ifndef GA_DEBUG_H
#define GA_DEBUG_H

#include "internal.h"

/* Set once when debug mode starts (environment at load time, or ga_debug_enable), never
 * cleared. Plain bool: the hooks read it on every call, and it only ever goes false -> true. */
extern bool ga__debug_enabled __attribute__((visibility("hidden"))); /* no GOT load */
/* Reads GLOBALALLOC_DEBUG once (constructor, or first engine use). */
void ga__debug_init(void);
/* Start (src/init.c): notes the main thread, whose stack the leak scan tells from the others'. */
void ga__debug_note_main_thread(void);
/* Fork handlers (src/init.c registers them): prepare takes the stack depot's and stack table's
 * locks; after (parent and child) releases them. */
void ga__debug_fork_prepare(void);
void ga__debug_fork_after(void);
/* At exit (src/init.c's destructor): the exit check of every block and the leak report, as the
 * options say. */
void ga__debug_at_exit(void);

/* Block kinds (for reports): the malloc-style API, or raw blocks of the other layers. */
enum { GA_DBG_MALLOC = 1, GA_DBG_RAW = 2 };

/* The hooks: each engine entry point calls its twin while ga__debug_enabled is set. ret is the
 * entry point's caller's return address (the first frame of the recorded stack); errors as the
 * entry point's (ga_last_error, errno), except that kind GA_DBG_RAW reports none. */
void *ga__debug_malloc(size_t size, bool zero, int kind, void *ret);
void *ga__debug_calloc(size_t n, size_t size, void *ret);
void *ga__debug_realloc(void *p, size_t size, void *ret);
void *ga__debug_aligned_alloc(size_t alignment, size_t size, void *ret);
void ga__debug_free(void *p, void *ret);
size_t ga__debug_usable_size(const void *p);
bool ga__debug_is_block_start(const void *p);
int ga__debug_owns(const void *p);

/* ga_heap_stats in debug mode: corrects the engine's numbers to the program's view (blocks and
 * requested bytes; quarantined blocks are free). */
void ga__debug_stats(ga_stats_t *out);
/* Debug half of ga_heap_check: every debug block's guards (and quarantined fill). 0 or GA_E*. */
int ga__debug_check(unsigned flags);

/* For the other layers' misuse checks (GlobalFree of a stale handle, GlobalUnlock of an unlocked
 * block, ...): prints what (one line), the debug block that value points to when it is one
 * (address, size, allocation number, thread, allocation and free stacks), the current stack,
 * then reports err through ga__report (aborting if fatal and the handler declines). Works, with
 * less detail, when debug mode is off. Never allocates from the heap. */
void ga__debug_misuse(int err, const void *value, bool fatal, const char *what);

#endif /* GA_DEBUG_H */
