/* SPDX-License-Identifier: MIT */
/*
 * Contract between handle.c (tagged blocks, handle table) and win32.c (the Win32 adapters).
 * Not installed.
 *
 * A "tagged block" is a ga__alloc block with a 16-byte header in front of the user data:
 *   word 0: the requested size (Windows reports exact sizes),
 *   word 1: a tag XOR key(header address): GA__TAG_FIXED for a fixed block, the owning handle
 *           value for the data of a moveable block, GA__TAG_FREED after a fixed block is freed.
 * The user pointer is header + 16, so it keeps GA_MIN_ALIGN.
 *
 * Value shapes (as on Windows): a handle value has v % 16 == 8, a data pointer v % 16 == 0.
 */
#ifndef GA_HANDLE_H
#define GA_HANDLE_H

#include "internal.h"

#define GA__HDR_SIZE 16
/* Word index of the tag inside the header (tests corrupt it through this). */
#define GA__HDR_TAG 1

/* Tag values before the XOR with the address key. Neither has handle shape (low nibble 8,
 * bit 63 clear), so a fixed tag never decodes as a handle. */
#define GA__TAG_FIXED UINT64_C(0xF1CED0B10C000001)
#define GA__TAG_FREED UINT64_C(0xF1CED0B10C00000F)

/* What a Win32 argument value turned out to be (ga__classify). */
typedef enum ga__kind_e {
    GA__K_NULL,   /* NULL */
    GA__K_HANDLE, /* live moveable handle (ref->handle) */
    GA__K_STALE,  /* handle-shaped but not a live handle (freed, bogus, foreign heap id) */
    GA__K_FIXED,  /* live fixed block (ref->ptr) */
    GA__K_DATA,   /* the current data pointer of a live moveable block (ref->handle, ref->ptr) */
    GA__K_FREED,  /* a fixed block that was already freed (double free) */
    GA__K_BOGUS,  /* pointer-shaped but not a block of ours */
} ga__kind_t;

typedef struct ga__ref_s {
    ga_handle_t handle;
    void *ptr;
} ga__ref_t;

/* Tells what v is. Never faults, whatever v is. */
ga__kind_t ga__classify(const void *v, ga__ref_t *ref);

/* ---- fixed tagged blocks ---- */

/* A fixed block of size bytes (zeroed if zero). NULL + GA_ENOMEM / GA_EOVERFLOW in *err. */
void *ga__fixed_alloc(size_t size, bool zero, int *err);
/* Frees fixed block p. 0, GA_EDOUBLEFREE (already freed; reported, not fatal) or
 * GA_ENOTOWNED. Safe against two threads freeing the same block: one of them wins. */
int ga__fixed_free(void *p);
/* Requested size of live fixed block p (pre: ga__classify said GA__K_FIXED). */
size_t ga__fixed_size(const void *p);
/* Resizes live fixed block *pp to size. flags: GA_HZERO (zero growth), GA_HMOVE (may move;
 * without it only in place). 0 (and *pp updated), GA_ENOMEM or GA_EOVERFLOW (block intact). */
int ga__fixed_realloc(void **pp, size_t size, unsigned flags);
/* Turns live fixed block p into a new moveable block with the same size and contents and
 * attribute flags hflags (GA_HDISCARDABLE / GA_HSHARE), then frees p. 0 (and *out) or
 * GA_ENOMEM / GA_EFULL (p intact). */
int ga__fixed_to_handle(void *p, unsigned hflags, ga_handle_t *out);

/* ---- handles, with the error code returned instead of put in ga_last_error ---- */

int ga__handle_alloc(size_t size, unsigned flags, ga_handle_t *out);
/* 0 and *out = data, GA_EHANDLE or GA_EDISCARDED. */
int ga__handle_lock(ga_handle_t h, void **out);

#endif /* GA_HANDLE_H */
