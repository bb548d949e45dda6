/* SPDX-License-Identifier: MIT */
/*
 * Walks over the process heap for the debug heap: every carved engine block, every debug block
 * among them, and the debug block that contains an address. A debug block is recognised by its
 * first word (header magic, or REDIRECT and the header's offset) and its header's two magic
 * words, all keyed with the block's address and the secret, so no table is kept.
 *
 * The walks read the engine's segments and pages without its locks: a walk over every block
 * holds the registry lock (no segment is unmapped meanwhile); ga__dbg_find reads racily, and
 * everything it reads is validated before it is trusted.
 */
#include "debug/debug_internal.h"
#include "engine/engine_internal.h"

/* The debug header of engine block raw (NULL if none); *freed tells FREED from LIVE. Keys as
 * ga__dbg_key: the same words the hooks write. */
GA_DBG_NO_SAN ga_dbg_hdr_t *ga__dbg_classify(uint8_t *raw, size_t block_size, bool *freed)
{
    const uint64_t *w = (const uint64_t *)raw;
    ga_dbg_hdr_t *h = (ga_dbg_hdr_t *)raw;
    if (w[0] == ga__dbg_key(GA_DBG_REDIRECT, raw)) {
        if (w[1] % 16 != 0 || w[1] + GA_DBG_HDR > block_size) return NULL;
        h = (ga_dbg_hdr_t *)(raw + w[1]);
    }
    const uint8_t *user = ga__dbg_user_of(h);
    if (h->magic != h->state) return NULL;
    if (h->state == ga__dbg_key(GA_DBG_LIVE, user))
        *freed = false;
    else if (h->state == ga__dbg_key(GA_DBG_FREED, user))
        *freed = true;
    else
        return NULL;
    return h;
}

/* Every carved block of every page in use (live or free). pre: registry lock held. */
GA_DBG_NO_SAN void ga__dbg_walk_blocks(ga_dbg_block_visit_t *visit, void *arg)
{
    for (ga_segment_t *seg = ga__all_segments; seg; seg = seg->all_next) {
        if (seg->kind == GA_SEG_HUGE) {
            ga_page_t *page = &seg->pages[0];
            if (page->in_use)
                visit(page->start, seg->size - (size_t)(page->start - (uint8_t *)seg), arg);
            continue;
        }
        for (uint32_t i = 0; i < seg->page_count; i++) {
            ga_page_t *page = &seg->pages[i];
            if (!page->in_use) continue;
            for (uint32_t k = 0; k < page->capacity; k++)
                visit(page->start + (size_t)k * page->block_size, page->block_size, arg);
        }
    }
}

typedef struct dbg_walk_s {
    ga_dbg_visit_t *visit;
    void *arg;
} dbg_walk_t;

static void dbg_visit(uint8_t *raw, size_t size, void *arg)
{
    dbg_walk_t *w = arg;
    bool freed;
    ga_dbg_hdr_t *h = ga__dbg_classify(raw, size, &freed);
    if (h) w->visit(h, freed, w->arg);
}

void ga__dbg_walk(ga_dbg_visit_t *visit, void *arg)
{
    dbg_walk_t w = {visit, arg};
    ga__dbg_walk_blocks(dbg_visit, &w);
}

/* The engine block containing addr; NULL if none. pre: registry lock held, or racy reads. */
GA_DBG_NO_SAN uint8_t *ga__dbg_block_containing(uintptr_t addr, size_t *size)
{
    ga_segment_t *seg = ga__segment_of((void *)addr);
    if (!ga__segmap_has(seg)) return NULL;
    if (seg->kind == GA_SEG_HUGE) {
        ga_page_t *page = &seg->pages[0];
        if (!page->in_use || addr < (uintptr_t)page->start || addr - (uintptr_t)seg >= seg->size)
            return NULL;
        *size = seg->size - (size_t)(page->start - (uint8_t *)seg);
        return page->start;
    }
    if (addr - (uintptr_t)seg < seg->header_size) return NULL;
    ga_page_t *page = ga__page_of(seg, (void *)addr);
    if (!page->in_use || addr < (uintptr_t)page->start) return NULL;
    size_t idx = ga__page_block_index(page, addr - (uintptr_t)page->start);
    if (idx >= page->capacity) return NULL;
    *size = page->block_size;
    return page->start + idx * page->block_size;
}

ga_dbg_hdr_t *ga__dbg_find(const void *addr)
{
    size_t size;
    bool freed;
    if (!ga__debug_enabled || !ga__is_heap_memory(addr)) return NULL;
    uint8_t *raw = ga__dbg_block_containing((uintptr_t)addr, &size);
    return raw ? ga__dbg_classify(raw, size, &freed) : NULL;
}
