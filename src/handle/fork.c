/* SPDX-License-Identifier: MIT */
/*
 * fork: the table's pthread_atfork handlers. Prepare takes the table's locks so that no other
 * thread holds them across the fork; the child, where only the forking thread lives on, makes
 * the table whole again.
 *
 * The child retires the other threads' caches (as their thread exits would have), repairs the
 * slots they left BUSY (repair_busy_slots) and, if one of them was inside an alloc or free,
 * rebuilds the free stacks and live count from the slots' states (rebuild_free_slots). After
 * that the table passes ga__handle_check.
 */
#include "handle/handle_internal.h"
#include <stdatomic.h>

/* A fork child must not inherit a mutex held by a thread that does not exist there. */
void ga__handle_fork_prepare(void)
{
    ga__lock(&ga__handle_table.grow_lock);
    ga__lock(&ga__tcaches.lock);
}
void ga__handle_fork_parent(void)
{
    ga__unlock(&ga__tcaches.lock);
    ga__unlock(&ga__handle_table.grow_lock);
}
/* A fork child has only the forking thread, which was in no handle operation: a slot still
 * BUSY belongs to a thread that does not exist there, and every later call on it would wait
 * forever. The operations keep the slot's block valid throughout (realloc frees the old block
 * after publishing the new one; in place, the block's header has the new size first), so the
 * slot is made consistent from its block: a block whose tag is this handle gives the data and
 * size; no block (a free or discard caught half-way) leaves the handle discarded. */
static void repair_busy_slots(void)
{
    uint32_t nch = atomic_load_explicit(&ga__handle_table.nchunks, memory_order_acquire);
    for (uint32_t c = 0; c < nch; c++) {
        ga__slot_t *chunk = atomic_load_explicit(&ga__handle_dir[c], memory_order_acquire);
        for (uint32_t i = 0; chunk && i < CHUNK_SLOTS; i++) {
            ga__slot_t *s = &chunk[i];
            uint64_t st = atomic_load_explicit(&s->state, memory_order_relaxed);
            if (!(st & S_BUSY)) continue;
            ga_handle_t h = ga__make_handle(c * CHUNK_SLOTS + i, ga__st_gen(st));
            uint64_t *hdr = atomic_load_explicit(&s->data, memory_order_relaxed);
            uint64_t nst = (st & ~(S_BUSY | S_SEQ_MASK)) | ((st + S_SEQ_ONE) & S_SEQ_MASK);
            if (hdr != NULL && ga__is_block_start(hdr) && ga__tag_get(hdr) == h) {
                atomic_store_explicit(&s->size, (size_t)hdr[0], memory_order_relaxed);
                nst &= ~S_DISCARDED;
            } else {
                atomic_store_explicit(&s->data, NULL, memory_order_relaxed);
                atomic_store_explicit(&s->size, 0, memory_order_relaxed);
                nst = (nst & ~S_COUNT) | S_DISCARDED;
            }
            atomic_store_explicit(&s->state, nst, memory_order_release);
        }
    }
}

/* A fork caught another thread inside a handle alloc or free: a slot may be on its way between
 * the slot table, a free stack and that thread's cache (taken and not yet live, freed and not
 * yet cached, or half moved by a refill or spill), and the counts half updated. Its state word
 * says where it really is, so the child rebuilds the free stacks and the live count from the
 * states. A slot caught while being taken may already own the block allocated for it: nobody
 * ever saw that handle, so the block is freed. */
static void rebuild_free_slots(void)
{
    for (unsigned k = 0; k < NSHARDS; k++) {
        uint64_t hd = atomic_load_explicit(&ga__handle_table.free_head[k].v, memory_order_relaxed);
        atomic_store_explicit(&ga__handle_table.free_head[k].v, ((hd >> 32) + 1) << 32,
                              memory_order_relaxed);
    }
    int64_t live = 0;
    uint32_t nch = atomic_load_explicit(&ga__handle_table.nchunks, memory_order_acquire);
    for (uint32_t c = 0; c < nch; c++) {
        ga__slot_t *chunk = atomic_load_explicit(&ga__handle_dir[c], memory_order_acquire);
        uint32_t first = UINT32_MAX, last = 0;
        for (uint32_t i = 0; chunk && i < CHUNK_SLOTS; i++) {
            ga__slot_t *s = &chunk[i];
            uint32_t idx = c * CHUNK_SLOTS + i;
            uint64_t st = atomic_load_explicit(&s->state, memory_order_relaxed);
            if (st & S_LIVE) {
                live++;
                continue;
            }
            uint64_t *hdr = atomic_load_explicit(&s->data, memory_order_relaxed);
            if (hdr != NULL && ga__is_block_start(hdr) &&
                ga__tag_get(hdr) == ga__make_handle(idx, ga__st_gen(st)))
                ga__block_free(hdr, 0);
            atomic_store_explicit(&s->data, NULL, memory_order_relaxed);
            atomic_store_explicit(&s->size, 0, memory_order_relaxed);
            atomic_store_explicit(&s->state, st & (S_GEN_MASK | S_SEQ_MASK), memory_order_relaxed);
            if (first == UINT32_MAX)
                first = idx;
            else
                atomic_store_explicit(&ga__slot_at(last)->next, idx + 1, memory_order_relaxed);
            last = idx;
        }
        if (first != UINT32_MAX)
            ga__stack_push(&ga__handle_table.free_head[c % NSHARDS].v, first, last);
    }
    atomic_store(&ga__tcaches.retired, live);
}

/* Only the forking thread lives on in the child: the caches of the others are retired here,
 * as their thread exits would have done, and slots they left BUSY are repaired. If one of them
 * was inside an alloc or free, the free slots are rebuilt from the table instead (their caches
 * and stacks may disagree with it). */
void ga__handle_fork_child(void)
{
    GA_ASSERT_HELD(&ga__handle_table.grow_lock); /* since ga__handle_fork_prepare */
    GA_ASSERT_HELD(&ga__tcaches.lock);
    /* The forking thread itself was in no handle operation. */
    GA_ASSERT_INTERNAL(!ga__tl_cache ||
                       !atomic_load_explicit(&ga__tl_cache->inop, memory_order_relaxed));
    bool caught = false;
    for (ga__tcache_t *c = ga__tcaches.all; c; c = c->next_all)
        if (c->owned && c != ga__tl_cache && atomic_load_explicit(&c->inop, memory_order_relaxed))
            caught = true;
    for (ga__tcache_t *c = ga__tcaches.all; c; c = c->next_all) {
        if (caught) { /* forget every cache: the rebuild finds their slots */
            atomic_store(&c->n, 0);
            atomic_store(&c->live, 0);
            atomic_store(&c->inop, 0);
        }
        if (c->owned && c != ga__tl_cache) ga__tcache_retire(c); /* nothing to spill if caught */
    }
    repair_busy_slots();
    if (caught) rebuild_free_slots();
    ga__handle_fork_parent();
    /* Rare, and the one moment no other thread can change the table: check all of it. */
    GA_ASSERT_EXPENSIVE(ga__handle_check(0) == 0);
}
