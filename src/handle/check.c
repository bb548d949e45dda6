/* SPDX-License-Identifier: MIT */
/*
 * The handle table's half of ga_heap_check and ga_heap_stats: ga__handle_check walks every
 * slot, the free stacks and the thread caches; ga__handle_count adds up the live counts.
 *
 * Invariants checked:
 *   - a live slot has a non-zero generation; the handle value is (index, generation);
 *   - live and not discarded: data is a block whose tag decodes to the handle, whose word 0
 *     equals the slot size, and size + 16 <= usable size; discarded: data NULL, size 0,
 *     lock count 0;
 *   - a free slot has no data, no flags, no lock count, and sits on exactly one free stack
 *     or thread cache;
 *   - live slots + free-stack and cache entries = all slots; live slots = ga__handle_count().
 * The walk is exact only while no other thread changes the table (a test between steps, a
 * fork child).
 */
#include "handle/handle_internal.h"
#include <pthread.h>
#include <stdatomic.h>

size_t ga__handle_count(void)
{
    ga__lock(&ga__tcaches.lock);
    int64_t n = atomic_load(&ga__tcaches.retired);
    for (ga__tcache_t *c = ga__tcaches.all; c; c = c->next_all)
        n += atomic_load_explicit(&c->live, memory_order_relaxed);
    ga__unlock(&ga__tcaches.lock);
    return n > 0 ? (size_t)n : 0;
}

#define CHECK_FAIL(value, ...)                                                                     \
    do {                                                                                           \
        if (!(flags & GA_CHECK_QUIET))                                                             \
            ga__report(GA_ECORRUPT, (uintptr_t)(value), false, __VA_ARGS__);                       \
        return GA_ECORRUPT;                                                                        \
    } while (0)

/* One slot; adds to *live. pre: no other thread changes the table. */
static int check_slot(uint32_t idx, size_t *live, unsigned flags)
{
    ga__slot_t *s = ga__slot_at(idx);
    uint64_t st = atomic_load_explicit(&s->state, memory_order_acquire);
    uint64_t *hdr = atomic_load_explicit(&s->data, memory_order_relaxed);
    size_t size = atomic_load_explicit(&s->size, memory_order_relaxed);
    ga_handle_t h = ga__make_handle(idx, ga__st_gen(st));
    if (ga__st_gen(st) == 0 || (st & S_BUSY) || (st >> 56))
        CHECK_FAIL(h, "handle slot %u: bad state %#jx", idx, (uintmax_t)st);
    if (!(st & S_LIVE)) {
        if ((st & (S_COUNT | S_ATTR | S_DISCARDED)) || hdr || size)
            CHECK_FAIL(h, "free handle slot %u is not empty (state %#jx)", idx, (uintmax_t)st);
        return 0;
    }
    ++*live;
    if (st & S_DISCARDED) {
        if (hdr || size || (st & S_COUNT))
            CHECK_FAIL(h, "discarded handle %#jx has data or locks", (uintmax_t)h);
        return 0;
    }
    if (!hdr || !ga__is_block_start(hdr))
        CHECK_FAIL(h, "handle %#jx: data %p is not a heap block", (uintmax_t)h, (void *)hdr);
    if (ga__tag_get(hdr) != h)
        CHECK_FAIL(h, "handle %#jx: data header tag does not name the handle", (uintmax_t)h);
    if (hdr[0] != size || size + GA__HDR_SIZE > ga__usable_size(hdr))
        CHECK_FAIL(h, "handle %#jx: size %zu (header %ju) does not fit its block", (uintmax_t)h,
                   size, (uintmax_t)hdr[0]);
    return 0;
}

int ga__handle_check(unsigned flags)
{
    uint32_t nch = atomic_load_explicit(&ga__handle_table.nchunks, memory_order_acquire);
    size_t total = (size_t)nch * CHUNK_SLOTS, live = 0, free_entries = 0;
    for (uint32_t idx = 0; idx < total; idx++) {
        int rc = check_slot(idx, &live, flags);
        if (rc) return rc;
    }
    for (unsigned sh = 0; sh < NSHARDS; sh++) {
        uint32_t link =
            (uint32_t)atomic_load_explicit(&ga__handle_table.free_head[sh].v, memory_order_acquire);
        while (link) {
            uint32_t idx = link - 1;
            if (idx >= total || ++free_entries > total)
                CHECK_FAIL(link, "handle free list %u: bad or cyclic link %u", sh, link);
            ga__slot_t *s = ga__slot_at(idx);
            if (atomic_load_explicit(&s->state, memory_order_relaxed) & S_LIVE)
                CHECK_FAIL(idx, "handle slot %u is live and on a free list", idx);
            link = atomic_load_explicit(&s->next, memory_order_relaxed);
        }
    }
    ga__lock(&ga__tcaches.lock);
    for (ga__tcache_t *c = ga__tcaches.all; c; c = c->next_all) {
        uint32_t n = atomic_load_explicit(&c->n, memory_order_relaxed);
        for (uint32_t i = 0; i < n && i < TCACHE_MAX; i++) {
            uint32_t idx = atomic_load_explicit(&c->idx[i], memory_order_relaxed);
            if (idx >= total ||
                (atomic_load_explicit(&ga__slot_at(idx)->state, memory_order_relaxed) & S_LIVE)) {
                ga__unlock(&ga__tcaches.lock);
                CHECK_FAIL(idx, "handle slot %u in a thread cache is bad or live", idx);
            }
        }
        free_entries += n;
    }
    ga__unlock(&ga__tcaches.lock);
    if (live + free_entries != total)
        CHECK_FAIL(total, "handle table: %zu live + %zu free != %zu slots", live, free_entries,
                   total);
    if (live != ga__handle_count())
        CHECK_FAIL(live, "handle table: %zu live slots but count says %zu", live,
                   ga__handle_count());
    return 0;
}
