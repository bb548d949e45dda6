/* SPDX-License-Identifier: MIT */
/*
 * The platform contract: every OS call of the engine goes through these functions, so that
 * no other file needs #ifdef. Rules: sizes and addresses passed in are multiples of
 * ga__os_page_size(); functions return true/false or a pointer, never set ga_last_error, and
 * never allocate from globalalloc.
 */
#ifndef GA_OS_H
#define GA_OS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The OS page size (read once). */
size_t ga__os_page_size(void);
/* Maps size bytes of zeroed read/write memory aligned to align (a power of two >= page size).
 * NULL on failure. */
void *ga__os_map_aligned(size_t size, size_t align);
/* Unmaps memory from ga__os_map_aligned. */
void ga__os_unmap(void *p, size_t size);
/* Gives the physical pages of [p, p+size) back to the OS; the range stays mapped and reads as
 * zero afterwards. */
void ga__os_decommit(void *p, size_t size);
/* Tries to grow the mapping at p from old_size to new_size without moving it. */
bool ga__os_try_extend(void *p, size_t old_size, size_t new_size);
/* Tries to shrink the mapping at p from old_size to new_size (frees the tail). */
void ga__os_shrink(void *p, size_t old_size, size_t new_size);
/* 64 bits of OS randomness (falls back to a time/address mix). */
uint64_t ga__os_random(void);
/* Test hook: make the n-th next OS mapping fail (0 = never). */
void ga__os_fail_after(unsigned long n);

#endif
