/* SPDX-License-Identifier: MIT */
/*
 * Shared heaps: the block allocator's entry points: allocation (a thread cache for small sizes,
 * a run of pages for large ones), block lookup by offset, free, and the public ga_shared_alloc
 * family. A free is one CAS of the block's state byte ALLOC(x) -> CACHED(me); a small block then
 * goes to this thread's cache (src/shared/small.c), a large one back to the page pool
 * (src/shared/page.c).
 */
#include "shared/shared_internal.h"
#include <string.h>

GA_INLINE uint64_t alloc_small(shm_att_t *a, unsigned c, int *err)
{
    shm_tcache_t *tc = ga__shm_tc_get(a);
    if (GA_UNLIKELY(!tc)) {
        *err = GA_ENOMEM;
        return 0;
    }
    if (GA_UNLIKELY(tc->n[c] == 0) && (*err = ga__shm_refill(a, tc, c)) != 0) return 0;
    uint64_t e = tc->off[c][--tc->n[c]];
    uint64_t off = TC_OFF(e);
    _Atomic uint8_t *st = (_Atomic uint8_t *)(a->base + (off & ~(SHM_PAGE - 1))) + TC_IDX(e);
    if (GA_UNLIKELY(atomic_load_explicit(st, memory_order_relaxed) != ST_CACHED(a->slot))) {
        *err = GA_ECORRUPT;
        return 0;
    }
    atomic_store_explicit(st, (uint8_t)ST_ALLOC(a->slot), memory_order_release);
    return off;
}

uint64_t ga__shm_alloc_off(shm_att_t *a, size_t size, bool zero)
{
    int err = 0;
    uint64_t off = 0;
    if (GA_LIKELY(size <= SHM_SMALL_MAX && !zero)) { /* the thread-cache path, inlined */
        off = alloc_small(a, ga__shm_size_class(size), &err);
        if (GA_LIKELY(off)) return off;
        if (err != GA_EFULL) {
            ga__set_error(err ? err : GA_EFULL);
            return 0;
        }
    }
    for (int attempt = 0; attempt < 2; attempt++) {
        if (size <= SHM_SMALL_MAX) {
            unsigned c = ga__shm_size_class(size);
            off = alloc_small(a, c, &err);
            if (off && zero) memset(a->base + off, 0, ga__shm_class_size[c]);
        } else {
            uint64_t n = (size + SHM_PAGE - 1) >> SHM_PAGE_SHIFT;
            uint64_t pg = size > SHM_MAX_SIZE ? UINT64_MAX
                                              : ga__shm_large_alloc(a, n, ST_ALLOC(a->slot), &err);
            if (size > SHM_MAX_SIZE) err = GA_EFULL;
            if (pg != UINT64_MAX) {
                off = a->data_off + pg * SHM_PAGE;
                if (zero) memset(a->base + off, 0, n * SHM_PAGE);
            }
        }
        if (off || err != GA_EFULL || attempt) break;
        /* Full: flush our caches, take back dead peers' caches and give wholly free pages of
         * every class back to the page pool, then try once more. */
        shm_tcache_t *tc = ga__shm_tc_get(a);
        for (unsigned c = 0; tc && c < SHM_NCLASS; c++)
            ga__shm_flush_class(a, tc, c, 0);
        if (ga__shm_recover(a, false) < 0) break;
        ga__shm_trim(a);
    }
    if (!off) ga__set_error(err ? err : GA_EFULL);
    return off;
}

/* ---- block lookup, free ----------------------------------------------------------------- */

typedef struct {
    uint64_t pg;
    uint32_t idx;
    unsigned cls; /* SHM_NCLASS for large */
    size_t usable;
} blockref_t;

/* Resolves off to a block start. 0 or GA_ENOTOWNED. */
GA_INLINE int resolve(shm_att_t *a, uint64_t off, blockref_t *b)
{
    uint64_t top = ga__shm_top_pages(a);
    if (off < a->data_off || off >= a->data_off + top * SHM_PAGE || (off & 15)) return GA_ENOTOWNED;
    b->pg = (off - a->data_off) >> SHM_PAGE_SHIFT;
    uint64_t d = atomic_load_explicit(&a->pages[b->pg].desc, memory_order_acquire);
    uint32_t in = (uint32_t)(off & (SHM_PAGE - 1));
    if (PD_KIND(d) == PG_SMALL) {
        unsigned c = PD_CLASS(d);
        if (c >= SHM_NCLASS || in < ga__shm_geo.hdr[c]) return GA_ENOTOWNED;
        uint32_t bs = ga__shm_class_size[c], rel = in - ga__shm_geo.hdr[c];
        uint32_t idx = (uint32_t)(((uint64_t)rel * ga__shm_geo.recip[c]) >> 32);
        if (idx * bs != rel || idx >= ga__shm_geo.count[c]) return GA_ENOTOWNED;
        b->idx = idx;
        b->cls = c;
        b->usable = bs;
        return 0;
    }
    if (PD_KIND(d) == PG_LARGE && in == 0 && PD_N(d) > 0 && b->pg + PD_N(d) <= top) {
        b->idx = 0;
        b->cls = SHM_NCLASS;
        b->usable = (size_t)PD_N(d) * SHM_PAGE;
        return 0;
    }
    return GA_ENOTOWNED;
}

GA_INLINE unsigned block_state(shm_att_t *a, const blockref_t *b)
{
    if (b->cls < SHM_NCLASS) return atomic_load(&ga__shm_state_bytes(a, b->pg)[b->idx]);
    return PD_OWNER(atomic_load(&a->pages[b->pg].desc));
}

size_t ga__shm_block_info(shm_att_t *a, uint64_t off, unsigned *state)
{
    blockref_t b;
    if (resolve(a, off, &b)) return 0;
    if (state) *state = block_state(a, &b);
    return b.usable;
}

int ga__shm_block_around(shm_att_t *a, uint64_t off, uint64_t len)
{
    uint64_t top = ga__shm_top_pages(a), end = a->data_off + top * SHM_PAGE;
    if (off < a->data_off || off >= end || len > end - off) return GA_ENOTOWNED;
    uint64_t pg = (off - a->data_off) >> SHM_PAGE_SHIFT, start;
    uint64_t d = atomic_load_explicit(&a->pages[pg].desc, memory_order_acquire);
    uint32_t in = (uint32_t)(off & (SHM_PAGE - 1));
    blockref_t b;
    if (PD_KIND(d) == PG_SMALL) {
        unsigned c = PD_CLASS(d);
        if (c >= SHM_NCLASS || in < ga__shm_geo.hdr[c]) return GA_ENOTOWNED;
        uint32_t idx = (in - ga__shm_geo.hdr[c]) / ga__shm_class_size[c];
        start = (off & ~(SHM_PAGE - 1)) + ga__shm_geo.hdr[c] + (uint64_t)idx * ga__shm_class_size[c];
    } else {
        uint64_t head = PD_KIND(d) == PG_TAIL ? PD_N(d) : pg;
        if (head > pg || head >= top) return GA_ENOTOWNED;
        start = a->data_off + head * SHM_PAGE;
    }
    if (resolve(a, start, &b)) return GA_ENOTOWNED;
    if (off + len > start + b.usable || ST_KIND(block_state(a, &b)) != ST_KALLOC)
        return GA_ENOTOWNED;
    return 0;
}

GA_INLINE bool cas_ref(shm_att_t *a, const blockref_t *b, unsigned from, unsigned to)
{
    if (b->cls < SHM_NCLASS) {
        uint8_t e = (uint8_t)from;
        return atomic_compare_exchange_strong(&ga__shm_state_bytes(a, b->pg)[b->idx], &e,
                                              (uint8_t)to);
    }
    _Atomic uint64_t *dp = &a->pages[b->pg].desc;
    uint64_t d = atomic_load(dp);
    if (PD_KIND(d) != PG_LARGE || PD_OWNER(d) != from) return false;
    return atomic_compare_exchange_strong(dp, &d, (d & ~(uint64_t)0xFF00) | ((uint64_t)to << 8));
}

bool ga__shm_block_cas(shm_att_t *a, uint64_t off, unsigned from, unsigned to)
{
    blockref_t b;
    return resolve(a, off, &b) == 0 && cas_ref(a, &b, from, to);
}

int ga__shm_free_off(shm_att_t *a, uint64_t off, unsigned expect, bool in_window)
{
    blockref_t b;
    int rc = resolve(a, off, &b);
    if (rc) return rc;
    unsigned mine = ST_CACHED(a->slot), cur = expect ? expect : ST_ALLOC(a->slot);
    /* A small block's CAS is tried first with the likely state (our own allocation): on a
     * miss it hands back the real state byte, which is then checked as before. So the common
     * free reads the state byte once, inside the CAS. */
    if (b.cls < SHM_NCLASS) {
        uint8_t e = (uint8_t)cur;
        if (GA_LIKELY(atomic_compare_exchange_strong(&ga__shm_state_bytes(a, b.pg)[b.idx], &e,
                                                     (uint8_t)mine)))
            goto small_cached;
    }
    for (;;) {
        cur = block_state(a, &b);
        if (ST_KIND(cur) != ST_KALLOC)
            return (cur == ST_FREE || ST_KIND(cur) == ST_KCACHED) ? GA_EDOUBLEFREE : GA_ECORRUPT;
        if (expect && cur != expect) return GA_ENOTOWNED;
        if (cas_ref(a, &b, cur, mine)) break;
    }
    if (b.cls == SHM_NCLASS) return in_window ? 0 : ga__shm_large_release(a, b.pg, mine);
small_cached:;
    shm_tcache_t *tc = ga__shm_tc_get(a);
    if (!tc) return GA_ENOMEM; /* the block stays CACHED(me): recovered when we go */
    if (tc->n[b.cls] >= TC_CAP) ga__shm_flush_class(a, tc, b.cls, TC_CAP / 2);
    if (tc->n[b.cls] < TC_SLOTS) tc->off[b.cls][tc->n[b.cls]++] = TC_PACK(off, b.idx);
    return 0;
}

void ga__shm_free_if(shm_att_t *a, uint64_t off, unsigned st)
{
    unsigned cur;
    if (off && ga__shm_block_info(a, off, &cur) && cur == st) ga__shm_free_off(a, off, st, false);
}

void ga__shm_after_window(shm_att_t *a, uint64_t off)
{
    blockref_t b;
    if (off && resolve(a, off, &b) == 0 && b.cls == SHM_NCLASS &&
        block_state(a, &b) == ST_CACHED(a->slot))
        ga__shm_large_release(a, b.pg, ST_CACHED(a->slot));
}

/* ---- public ----------------------------------------------------------------------------- */

void *ga_shared_alloc(ga_heap_t *heap, size_t size)
{
    shm_att_t *a = ga__shm_att_fast(heap);
    if (!a) return NULL;
    SHM_GUARD_ENTER();
    uint64_t off = ga__shm_alloc_off(a, size, false);
    if (GA_UNLIKELY(SHM_GUARD_LEAVE(a))) return ga__set_error(GA_ECORRUPT), NULL;
    return off ? a->base + off : NULL;
}

void *ga_shared_calloc(ga_heap_t *heap, size_t n, size_t size)
{
    shm_att_t *a = ga__shm_att(heap);
    if (!a) return NULL;
    if (size && n > SIZE_MAX / size) {
        ga__set_error(GA_EOVERFLOW);
        return NULL;
    }
    uint64_t off = ga__shm_alloc_off(a, n * size, true);
    return off ? a->base + off : NULL;
}

static uint64_t ptr_off(shm_att_t *a, const void *p)
{
    uintptr_t u = (uintptr_t)p, b = (uintptr_t)a->base;
    return u >= b && u - b < a->map_size ? (uint64_t)(u - b) : 0;
}

int ga_shared_free(ga_heap_t *heap, void *p)
{
    shm_att_t *a = ga__shm_att_fast(heap);
    if (!a) return ga_last_error() == GA_ECORRUPT ? GA_ECORRUPT : GA_EINVAL;
    if (!p) return 0;
    uint64_t off = ptr_off(a, p);
    SHM_GUARD_ENTER();
    int rc = off ? ga__shm_free_off(a, off, 0, false) : GA_ENOTOWNED;
    if (GA_UNLIKELY(SHM_GUARD_LEAVE(a))) return ga__set_error(GA_ECORRUPT);
    if (rc) {
        ga__report(rc, (uintptr_t)p, false, "ga_shared_free(%s): %s", a->name, ga_strerror(rc));
        ga__set_error(rc);
    }
    return rc;
}

size_t ga_shared_usable_size(ga_heap_t *heap, const void *p)
{
    shm_att_t *a = ga__shm_att(heap);
    unsigned st = 0;
    size_t n = a && p ? ga__shm_block_info(a, ptr_off(a, p), &st) : 0;
    if (!n || ST_KIND(st) != ST_KALLOC) {
        ga__set_error(GA_ENOTOWNED);
        return 0;
    }
    return n;
}

void *ga_shared_realloc(ga_heap_t *heap, void *p, size_t size)
{
    shm_att_t *a = ga__shm_att(heap);
    if (!a) return NULL;
    if (!p) return ga_shared_alloc(heap, size);
    unsigned st = 0;
    uint64_t off = ptr_off(a, p);
    size_t old = off ? ga__shm_block_info(a, off, &st) : 0;
    if (!old || ST_KIND(st) != ST_KALLOC) {
        int rc = old ? GA_EDOUBLEFREE : GA_ENOTOWNED;
        ga__report(rc, (uintptr_t)p, false, "ga_shared_realloc(%s): %s", a->name, ga_strerror(rc));
        ga__set_error(rc);
        return NULL;
    }
    if (size <= old && (size > old / 2 || old <= 16)) return p;
    uint64_t noff = ga__shm_alloc_off(a, size, false);
    if (!noff) return NULL;
    memcpy(a->base + noff, p, old < size ? old : size);
    ga__shm_free_off(a, off, 0, false);
    return a->base + noff;
}

uint64_t ga_shared_offset(ga_heap_t *heap, const void *p)
{
    shm_att_t *a = ga__shm_att(heap);
    uint64_t off = a ? ptr_off(a, p) : 0;
    if (!a || off < a->data_off || off >= a->data_off + ga__shm_top_pages(a) * SHM_PAGE) {
        ga__set_error(GA_ENOTOWNED);
        return 0;
    }
    return off;
}

void *ga_shared_ptr(ga_heap_t *heap, uint64_t off)
{
    shm_att_t *a = ga__shm_att(heap);
    if (!a) return NULL;
    if (off < a->data_off || off >= a->data_off + ga__shm_top_pages(a) * SHM_PAGE) {
        ga__set_error(GA_EINVAL);
        return NULL;
    }
    return a->base + off;
}
