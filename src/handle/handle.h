/* SPDX-License-Identifier: MIT */
/*
 * The handle folder's interface for the other folders (not installed): tagged blocks, value
 * classification and the inline lock/unlock fast paths for win32/; the handle-table halves of
 * ga_heap_check and ga_heap_stats; the header layout and test hooks the tests use. What only
 * the folder's own files share is in handle_internal.h.
 *
 * A "tagged block" is a ga__alloc block with a 16-byte header in front of the user data:
 *   word 0: the requested size (Windows reports exact sizes),
 *   word 1: a tag XOR key(header address): a fixed tag for a fixed block, the owning handle
 *           value for the data of a moveable block, a freed tag after a fixed block is freed
 *           (values in handle_internal.h).
 * The user pointer is header + 16, so it keeps GA_MIN_ALIGN.
 *
 * Value shapes (as on Windows): a handle value has v % 16 == 8, a data pointer v % 16 == 0.
 */
#ifndef GA_HANDLE_H
#define GA_HANDLE_H

#include "internal.h"
#include <stdatomic.h>

/* ---- for ga_heap_check and ga_heap_stats ------------------------------------------------- */

/* Live moveable handles (for statistics). */
size_t ga__handle_count(void);
/* Handle-table half of ga_heap_check. 0 or GA_E*. */
int ga__handle_check(unsigned flags);

#define GA__HDR_SIZE 16
_Static_assert(GA__HDR_SIZE % GA_MIN_ALIGN == 0, "user data keeps the engine's alignment");
/* Word index of the tag inside the header (tests corrupt it through this). */
#define GA__HDR_TAG 1

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

/* Test hooks: cap the table at `chunks` chunks of slots (0 = no cap), and read how many
 * chunks are mapped. */
void ga__handle_test_limit(uint32_t chunks);
uint32_t ga__handle_test_chunks(void);

/* ---- the slot table, published for the inline lock/unlock fast paths ----
 * Handle value: v % 16 == 8; bits 4..27 slot index; bits 28..51 generation (never 0 when
 * live); bits 52..62 heap id (0 = process heap); bit 63 clear. The state word of a slot:
 * bits 0..7 lock count, then LIVE, BUSY, DISCARDABLE, SHARE, DISCARDED, a 19-bit change
 * sequence from bit 13, the generation from bit 32. src/handle/ owns every writer. */
#define GA__H_SHAPE       UINT64_C(8)
#define GA__H_INDEX_SHIFT 4
#define GA__H_GEN_SHIFT   28
#define GA__H_FIELD_MASK  UINT32_C(0xFFFFFF)
#define GA__H_HIGH_SHIFT  52
#define GA__S_COUNT       UINT64_C(0xFF)
#define GA__S_LIVE        (UINT64_C(1) << 8)
#define GA__S_BUSY        (UINT64_C(1) << 9)
#define GA__S_DISCARDABLE (UINT64_C(1) << 10)
#define GA__S_SHARE       (UINT64_C(1) << 11)
#define GA__S_DISCARDED   (UINT64_C(1) << 12)
#define GA__S_SEQ_SHIFT   13
#define GA__S_GEN_SHIFT   32
#define GA__S_GEN_MASK    ((uint64_t)GA__H_FIELD_MASK << GA__S_GEN_SHIFT)
#define GA__CHUNK_SHIFT   12
#define GA__DIR_SIZE      (UINT32_C(1) << (24 - GA__CHUNK_SHIFT))

typedef struct ga__slot_s {
    _Atomic uint64_t state;
    _Atomic(uint64_t *) data; /* header of the data block; NULL when discarded or free */
    _Atomic size_t size;      /* requested size; 0 when discarded or free */
    _Atomic uint32_t next;    /* free-stack link: index + 1, 0 = end */
    uint32_t unused;
} ga__slot_t;
_Static_assert(sizeof(ga__slot_t) == 32, "slot layout");

/* Chunks of 1 << GA__CHUNK_SHIFT slots; an entry never changes once set (never unmapped). */
extern _Atomic(ga__slot_t *) ga__handle_dir[GA__DIR_SIZE];

GA_INLINE uint32_t ga__h_gen(ga_handle_t h)
{
    return (uint32_t)(h >> GA__H_GEN_SHIFT) & GA__H_FIELD_MASK;
}
GA_INLINE bool ga__st_matches(uint64_t st, ga_handle_t h)
{
    return (st & GA__S_LIVE) &&
           ((uint32_t)(st >> GA__S_GEN_SHIFT) & GA__H_FIELD_MASK) == ga__h_gen(h);
}

/* Slot of a handle-shaped value of the process heap, or NULL. Does not check liveness. */
GA_INLINE ga__slot_t *ga__slot_of(ga_handle_t h)
{
    if (GA_UNLIKELY((h & 15) != GA__H_SHAPE || (h >> GA__H_HIGH_SHIFT) != 0)) return NULL;
    uint32_t idx = (uint32_t)(h >> GA__H_INDEX_SHIFT) & GA__H_FIELD_MASK;
    ga__slot_t *chunk =
        atomic_load_explicit(&ga__handle_dir[idx >> GA__CHUNK_SHIFT], memory_order_acquire);
    return chunk ? &chunk[idx & ((UINT32_C(1) << GA__CHUNK_SHIFT) - 1)] : NULL;
}

/* The inline paths' fallbacks (api.c): busy or saturated slots, shared handles, errors. */
int ga__handle_lock_slow(ga_handle_t h, void **out);
int ga__handle_unlock_slow(ga_handle_t h);

/* Lock: one CAS on the state word when the slot is live, idle and has data. */
GA_INLINE int ga__handle_lock_inline(ga_handle_t h, void **out)
{
    ga__slot_t *s = ga__slot_of(h);
    if (GA_LIKELY(s)) {
        const uint64_t want = GA__S_LIVE | ((uint64_t)ga__h_gen(h) << GA__S_GEN_SHIFT);
        const uint64_t mask = GA__S_LIVE | GA__S_GEN_MASK | GA__S_BUSY | GA__S_DISCARDED;
        uint64_t st = atomic_load_explicit(&s->state, memory_order_relaxed);
        if (GA_LIKELY((st & mask) == want && (st & GA__S_COUNT) != GA__S_COUNT &&
                      atomic_compare_exchange_strong_explicit(
                          &s->state, &st, st + 1, memory_order_acquire, memory_order_relaxed))) {
            *out = (char *)atomic_load_explicit(&s->data, memory_order_relaxed) + GA__HDR_SIZE;
            return 0;
        }
    }
    return ga__handle_lock_slow(h, out);
}

/* Unlock: one CAS; returns the new count, GA_ENOTLOCKED or GA_EHANDLE. */
GA_INLINE int ga__handle_unlock_inline(ga_handle_t h)
{
    ga__slot_t *s = ga__slot_of(h);
    if (GA_LIKELY(s)) {
        uint64_t st = atomic_load_explicit(&s->state, memory_order_relaxed);
        if (GA_LIKELY(ga__st_matches(st, h) && (st & GA__S_COUNT) &&
                      atomic_compare_exchange_strong_explicit(
                          &s->state, &st, st - 1, memory_order_release, memory_order_relaxed)))
            return (int)((st - 1) & GA__S_COUNT);
    }
    return ga__handle_unlock_slow(h);
}

/* ---- handles of other heaps -------------------------------------------------------------
 * The handle layer knows no shared heap (that would make the two folders include each other):
 * a handle whose heap id is nonzero, and ga_handle_alloc on a heap other than the process heap,
 * go through these operations, which the shared heaps provide (ga__shared_remote_ops) and
 * src/init.c installs at start. Same contracts as the ga_handle_* call of each name. */
typedef struct ga__remote_ops_s {
    bool (*is_heap)(ga_heap_t *heap); /* a heap these operations serve */
    ga_handle_t (*alloc)(ga_heap_t *heap, size_t size, unsigned flags);
    int (*free)(ga_handle_t h);
    void *(*lock)(ga_handle_t h);
    int (*unlock)(ga_handle_t h);
    int (*realloc)(ga_handle_t h, size_t size, unsigned flags);
    int (*discard)(ga_handle_t h);
    int (*info)(ga_handle_t h, ga_handle_info_t *info);
    size_t (*size)(ga_handle_t h);
    int (*modify)(ga_handle_t h, unsigned set, unsigned clear);
    /* The handle whose data is p, or 0 (no error set) when p is in none of these heaps. */
    ga_handle_t (*from_ptr)(const void *p);
} ga__remote_ops_t;
void ga__handle_set_remote(const ga__remote_ops_t *ops);

/* ---- start and fork (src/init.c calls these) ---------------------------------------------- */

/* Creates the slot caches' thread-exit key (once; also done on first use). */
void ga__handle_init(void);
/* Fork handlers (fork.c): prepare takes the table's locks; the child repairs slots other threads
 * left mid-operation and rebuilds the free slots when it must. */
void ga__handle_fork_prepare(void);
void ga__handle_fork_parent(void);
void ga__handle_fork_child(void);

#endif /* GA_HANDLE_H */
