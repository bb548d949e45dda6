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
/* Engine half of ga_heap_check (segments, pages, free lists). 0 or GA_E*. */
int ga__engine_check(unsigned flags);
/* Engine half of ga_heap_stats. */
void ga__engine_stats(ga_stats_t *out);

#endif /* GA_ENGINE_H */
