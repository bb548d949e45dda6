/* SPDX-License-Identifier: MIT */
/*
 * Walks over the process heap for the debug heap: every carved engine block, every debug block
 * among them, and the debug block that contains an address. A debug block is recognised by its
 * first word (header magic, or REDIRECT and the header's offset) and its header's two magic
 * words, all keyed with the block's address and the secret, so no table is kept.
 *
 * The engine walks its blocks for us (ga__engine_each_block, under the registry lock: no segment
 * is unmapped meanwhile; ga__engine_block_containing, racily); everything read from a block is
 * validated before it is trusted.
 */
#include "debug/debug_internal.h"

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
    ga__engine_each_block(dbg_visit, &w);
}

ga_dbg_hdr_t *ga__dbg_find(const void *addr)
{
    size_t size;
    bool freed;
    if (!ga__debug_enabled || !ga__is_heap_memory(addr)) return NULL;
    uint8_t *raw = ga__engine_block_containing((uintptr_t)addr, &size);
    return raw ? ga__dbg_classify(raw, size, &freed) : NULL;
}
