/* SPDX-License-Identifier: MIT */
/*
 * Shared heaps' interface for the other layers: dispatch of shared handles and of the heap
 * functions (ga_heap_check, ga_heap_stats) for shared heaps. The shared heap's own files share
 * shared_internal.h.
 */
#ifndef GA_SHARED_H
#define GA_SHARED_H

#include "handle/handle.h"

/* True when heap is a shared heap attached by this process. */
bool ga__shared_is_heap(ga_heap_t *heap);
/* The ga_handle_* contract for handles whose heap id (bits 52..62) is nonzero: same results,
 * same errors. The id is resolved to a heap this process has open, else to its share heap
 * (attached on first use); GA_EHANDLE when it is neither. */
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

/* The shared heaps' side of handles of other heaps (see ga__remote_ops_t in handle/handle.h). */
extern const ga__remote_ops_t ga__shared_remote_ops;

/* Start (src/init.c, before any heap can be opened): the size-class geometry tables. */
void ga__shared_init(void);
/* Fork handlers (src/init.c registers them): prepare takes the attachment table's and the thread
 * caches' locks; the child marks every attachment inherited (the parent's, not its own) and
 * forgets the share heap. */
void ga__shared_fork_prepare(void);
void ga__shared_fork_parent(void);
void ga__shared_fork_child(void);
void ga__share_heap_fork_child(void);

/* share_heap.c: the process's share heap (GMEM_SHARE, received handles), or NULL with *err = 0 (none configured) or the
 * GA_E* error that kept the configured heap from opening (reported; retried on the next call). */
ga_heap_t *ga__share_heap_get(int *err);

/* ---- for the layers above (src/map/): the segment by offset, blocks, locks, hooks ----------
 * src/shared/access.c. Offsets are from the segment base, the same in every process. */

/* The committed data area of heap: *base is the mapping, [*lo, *hi) the offsets inside it that
 * may be read and written (it only grows while the heap is attached). 0 or GA_EINVAL. */
int ga__shared_bounds(ga_heap_t *heap, unsigned char **base, uint64_t *lo, uint64_t *hi);
/* A block of at least size bytes owned by this process (ALLOC(me)), or 0 (error set: GA_EFULL,
 * GA_ENOMEM, ...). May run dead-peer recovery: the caller holds none of the segment's locks. */
uint64_t ga__shared_alloc_off(ga_heap_t *heap, size_t size);
/* Ownership handover of block off: to the heap (ALLOC(me) -> ALLOC(heap)) and back. A block
 * owned by the heap is kept when its allocating process dies; it must be referenced by a handle,
 * a named object or a map (ga_shared_check counts them). true when the block had that state. */
bool ga__shared_block_give(ga_heap_t *heap, uint64_t off);
bool ga__shared_block_take(ga_heap_t *heap, uint64_t off);
/* Frees block off owned by this process (ALLOC(me)). 0 or GA_E*. */
int ga__shared_free_off(ga_heap_t *heap, uint64_t off);
/* Repairs: frees block off if it is owned by the heap or by process slot `slot` (the dead
 * writer whose change is being finished or undone). */
void ga__shared_free_dead(ga_heap_t *heap, uint64_t off, unsigned slot);
/* Usable bytes of block off (0: not a block start); *heap_owned (may be NULL): its state is
 * ALLOC(heap). */
size_t ga__shared_block_size(ga_heap_t *heap, uint64_t off, bool *heap_owned);
/* This process's slot in heap (what ga__shared_free_dead takes), or UINT32_MAX. */
unsigned ga__shared_slot(ga_heap_t *heap);
/* The rule for heap and object names: 1..max printable characters, no '/', '\\' or "..". */
bool ga__shared_name_ok(const char *name, size_t max);

/* A lock word of GA__SHARED_LOCK_SIZE bytes (8-aligned) inside the segment, zero = free; the
 * lock of src/shared/lock.c (the holder's pid, taken over from a dead holder). ga__shared_lock:
 * GA__SHARED_GOT, GA__SHARED_GOT_FROM_DEAD (the caller repairs), or GA_ETIMEDOUT (reported,
 * naming what). timeout_ms 0: the lock timeout. ga__shared_trylock: the same, without waiting for a
 * live holder (GA_ETIMEDOUT at once, not reported). */
#define GA__SHARED_LOCK_SIZE 8
enum { GA__SHARED_GOT = 0, GA__SHARED_GOT_FROM_DEAD = 1 };
int ga__shared_lock(ga_heap_t *heap, void *word, const char *what, unsigned timeout_ms);
int ga__shared_trylock(ga_heap_t *heap, void *word);
void ga__shared_unlock(void *word);

/* The truncation guard (shared_internal.h) for calls of the layers above: between enter and
 * leave a SIGBUS from a truncated segment file gives zeros; leave returns true when heap's file
 * was found truncated (the call then answers GA_ECORRUPT). */
void ga__shared_guard_enter(void);
bool ga__shared_guard_leave(ga_heap_t *heap);

/* Blocks owned by the heap that a layer above references (maps), so that recovery and the
 * checker know them. recover: called by dead-peer recovery before the dead processes' blocks
 * move (the slots lock held, no other segment lock): finishes or undoes what a dead process
 * left half-done (it must not wait for a live holder). check_begin / check_refs / check_end:
 * ga_shared_check calls begin before it takes the segment's locks (the layer locks its
 * structures), refs with every segment lock held (count the heap-owned blocks referenced; no
 * allocation or free there; 0 or GA_ECORRUPT) and end after. Set once, at start (src/init.c). */
typedef struct ga__shared_hooks_s {
    void (*recover)(ga_heap_t *heap);
    void *(*check_begin)(ga_heap_t *heap);
    int (*check_refs)(ga_heap_t *heap, void *ctx, uint64_t *refs, bool quiet);
    void (*check_end)(ga_heap_t *heap, void *ctx);
} ga__shared_hooks_t;
void ga__shared_set_hooks(const ga__shared_hooks_t *hooks);
extern const ga__shared_hooks_t *ga__shared_hooks;

#endif /* GA_SHARED_H */
