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

#endif /* GA_SHARED_H */
