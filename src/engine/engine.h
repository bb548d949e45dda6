/* SPDX-License-Identifier: MIT */
/*
 * The engine's interface: what the other folders may use (raw blocks, pointer validation, the
 * engine halves of ga_heap_check and ga_heap_stats). The engine's own files share
 * engine_internal.h; nothing above the engine includes that.
 */
#ifndef GA_ENGINE_H
#define GA_ENGINE_H

#include "internal.h"


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
/* ---- the engine's block calls (src/malloc.c's entry points and the debug heap call these;
 * nothing here goes through the debug heap) ---- */
/* Sets ga_last_error to err and errno to ENOMEM; returns NULL. */
void *ga__engine_fail_alloc(int err);
/* Usable size of a block known to be live (no validation). */
size_t ga__engine_block_usable(const void *p);
/* ga_realloc / ga_aligned_alloc / ga_usable_size / ga_owns of the engine. Errors as those. */
void *ga__engine_realloc(void *p, size_t size);
void *ga__engine_aligned_alloc(size_t alignment, size_t size);
size_t ga__engine_usable(const void *p);
int ga__engine_owns(const void *p);
void ga__engine_free(void *p);
bool ga__engine_is_block_start(const void *p);
/* Makes the engine block p (a block start) hold size bytes without moving: true if it already
 * does without wasting more than half of it, or if it is a huge block that could be resized in
 * place. */
bool ga__engine_resize_in_place(void *p, size_t size);
/* Gives the calling thread's free memory back (ga_heap_collect). Returns bytes released. */
size_t ga__engine_collect(bool force);

/* Starts the engine (once; its first allocation does it too): secret, thread-exit key, its own
 * fork handlers. */
void ga__engine_init(void);

/* ---- world.c: the world lock ---------------------------------------------------------------
 * A whole-heap check made while other threads allocate (the debug heap's check=N) must run
 * alone: while ga__world_on, every allocator entry (the debug hooks; thread exit and
 * ga_heap_collect) holds the world lock shared, outermost call only, and the check takes it
 * exclusively. While it is off (the default), enter is one load and a branch. */
extern bool ga__world_on __attribute__((visibility("hidden")));
extern __thread unsigned ga__world_depth __attribute__((tls_model("initial-exec")));
void ga__world_enter_slow(void);
void ga__world_leave_slow(void);
void ga__world_reset(void); /* fork child */
/* The exclusive side (the check): every other thread waits outside the allocator. */
void ga__world_stop(void);
void ga__world_resume(void);
static inline void ga__world_enter(void)
{
    if (__builtin_expect(ga__world_on || ga__world_depth != 0, 0))
        ga__world_enter_slow();
}
static inline void ga__world_leave(void)
{
    if (__builtin_expect(ga__world_depth != 0, 0)) ga__world_leave_slow();
}

/* ---- for the debug heap's walks and scans ---------------------------------------------------
 * The registry lock: while it is held no segment is mapped or unmapped. */
void ga__registry_lock(void);
void ga__registry_unlock(void);
/* Every carved block of every page in use, live or free (pre: registry lock held). */
typedef void ga_block_visit_t(uint8_t *raw, size_t size, void *arg);
void ga__engine_each_block(ga_block_visit_t *visit, void *arg);
/* The engine block containing addr (its size in *size); NULL if none. Reads racily without the
 * registry lock; never faults. */
uint8_t *ga__engine_block_containing(uintptr_t addr, size_t *size);

/* Calls visit(lo', hi') for every part of [lo, hi) that lies in no segment of the heap. */
void ga__engine_outside_heap(uintptr_t lo, uintptr_t hi, void (*visit)(uintptr_t, uintptr_t));

/* The size class (index of ga_stats_t.classes) of engine blocks of block_size bytes, or -1 for
 * a huge block. */
int ga__engine_class_of(size_t block_size);

/* Engine half of ga_heap_check (segments, pages, free lists). 0 or GA_E*. */
int ga__engine_check(unsigned flags);
/* Engine half of ga_heap_stats. */
void ga__engine_stats(ga_stats_t *out);

#endif /* GA_ENGINE_H */
