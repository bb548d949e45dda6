/* SPDX-License-Identifier: MIT */
/*
 * Shared heaps: what the layers above (src/map/) use, declared in shared.h: the committed data
 * area, blocks by offset (allocation, ownership handover to the heap, frees), the lock word at
 * any address, the truncation guard, and the hooks by which recovery and the checker reach the
 * blocks those layers reference. Thin wrappers: every check is the one the shared heap's own
 * code makes.
 */
#include "shared/shared_internal.h"

static_assert(GA__SHARED_LOCK_SIZE == sizeof(shm_lock_t), "the exported lock size");
static_assert((int)GA__SHARED_GOT == (int)SHM_GOT &&
                  (int)GA__SHARED_GOT_FROM_DEAD == (int)SHM_GOT_FROM_DEAD,
              "the exported lock results");

const ga__shared_hooks_t *ga__shared_hooks;

void ga__shared_set_hooks(const ga__shared_hooks_t *hooks)
{
    ga__shared_hooks = hooks;
}

int ga__shared_bounds(ga_heap_t *heap, unsigned char **base, uint64_t *lo, uint64_t *hi)
{
    shm_att_t *a = ga__shm_att_fast(heap);
    if (!a) return GA_EINVAL;
    *base = a->base;
    *lo = a->data_off;
    *hi = a->data_off + ga__shm_top_pages(a) * SHM_PAGE;
    return 0;
}

uint64_t ga__shared_alloc_off(ga_heap_t *heap, size_t size)
{
    shm_att_t *a = ga__shm_att_fast(heap);
    return a ? ga__shm_alloc_off(a, size, false) : 0;
}

bool ga__shared_block_give(ga_heap_t *heap, uint64_t off)
{
    shm_att_t *a = ga__shm_att_fast(heap);
    return a && ga__shm_block_cas(a, off, ST_ALLOC(a->slot), ST_ALLOC(SHM_SLOT_HEAP));
}

bool ga__shared_block_take(ga_heap_t *heap, uint64_t off)
{
    shm_att_t *a = ga__shm_att_fast(heap);
    return a && ga__shm_block_cas(a, off, ST_ALLOC(SHM_SLOT_HEAP), ST_ALLOC(a->slot));
}

int ga__shared_free_off(ga_heap_t *heap, uint64_t off)
{
    shm_att_t *a = ga__shm_att_fast(heap);
    return a ? ga__shm_free_off(a, off, ST_ALLOC(a->slot), false) : GA_EINVAL;
}

void ga__shared_free_dead(ga_heap_t *heap, uint64_t off, unsigned slot)
{
    shm_att_t *a = ga__shm_att_fast(heap);
    if (!a || !off) return;
    ga__shm_free_if(a, off, ST_ALLOC(SHM_SLOT_HEAP));
    if (slot < SHM_PROC_SLOTS) ga__shm_free_if(a, off, ST_ALLOC(slot));
}

size_t ga__shared_block_size(ga_heap_t *heap, uint64_t off, bool *heap_owned)
{
    shm_att_t *a = ga__shm_att_fast(heap);
    unsigned st = 0;
    size_t n = a ? ga__shm_block_info(a, off, &st) : 0;
    if (heap_owned) *heap_owned = n && st == ST_ALLOC(SHM_SLOT_HEAP);
    return n;
}

unsigned ga__shared_slot(ga_heap_t *heap)
{
    shm_att_t *a = ga__shm_att_fast(heap);
    return a ? a->slot : UINT32_MAX;
}

bool ga__shared_name_ok(const char *name, size_t max)
{
    return ga__shm_name_ok(name, max);
}

int ga__shared_lock(ga_heap_t *heap, void *word, const char *what, unsigned timeout_ms)
{
    shm_att_t *a = ga__shm_att_fast(heap);
    return a ? ga__shm_word_lock(a, (shm_lock_t *)word, what, timeout_ms) : GA_EINVAL;
}

int ga__shared_trylock(ga_heap_t *heap, void *word)
{
    shm_att_t *a = ga__shm_att_fast(heap);
    return a ? ga__shm_word_trylock(a, (shm_lock_t *)word) : GA_EINVAL;
}

void ga__shared_unlock(void *word)
{
    ga__shm_word_unlock((shm_lock_t *)word);
}

void ga__shared_guard_enter(void)
{
    SHM_GUARD_ENTER();
}

bool ga__shared_guard_leave(ga_heap_t *heap)
{
    shm_att_t *a = (shm_att_t *)heap;
    ga__shm_in_lib--;
    return a && atomic_load_explicit(&a->broken, memory_order_relaxed) != 0;
}
