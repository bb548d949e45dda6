/* SPDX-License-Identifier: MIT */
/*
 * Shared maps: finishing or undoing what a writer killed inside a change left in the intent
 * record (the protocol: map_internal.h), run by the next holder of the map's lock, and by
 * dead-peer recovery for every map of the heap before the dead process's blocks move (the
 * recover hook): the repair frees the blocks the record names that are still the heap's or the
 * dead writer's, which is only safe while nothing else can have reused them.
 */
#include "map/map_internal.h"
#include <string.h>

static void seqs_even(map_root_t *r)
{
    for (unsigned s = 0; s < MAP_NSTRIPES; s++) {
        uint64_t q = atomic_load(&r->seq[s]);
        if (q & 1) atomic_store(&r->seq[s], q + 1);
    }
    uint64_t q = atomic_load(&r->table_seq);
    if (q & 1) atomic_store(&r->table_seq, q + 1);
}

static void repair_write(ga_map_t *m, map_intent_t *in, unsigned state)
{
    map_root_t *r = m->root;
    unsigned dead = in->slot;
    map_op_t *ops = ga__map_ops(m, in);
    if (!ops && state == MI_PREP && !in->log_off) in->nops = 0; /* killed before its log */
    if (!ops && !in->nops) ops = &in->op0;
    if (!ops) {
        ga__map_corrupt(m, false, in->log_off, "map intent record is damaged");
        return;
    }
    if (state == MI_PREP) { /* not committed: undo */
        for (uint32_t k = 0; k < in->nops; k++) {
            ga__shared_free_dead(m->heap, ops[k].new_value, dead);
            ga__shared_free_dead(m->heap, ops[k].new_entry, dead);
        }
    } else { /* committed: redo the slot stores (idempotent), then drop the old blocks */
        bool bad = false;
        map_table_t *t = ga__map_current(m, &bad);
        if (!t || atomic_load(&r->table_off) != in->table_off) {
            ga__map_corrupt(m, false, in->table_off, "map intent names another table");
        } else {
            /* Several ops go in under the table sequence: readers retry meanwhile. */
            ga__map_store_slots(&r->table_seq, t, ops, in->nops);
            r->count = in->count;
            r->tombs = in->tombs;
            r->version = in->version;
        }
        for (uint32_t k = 0; k < in->nops; k++) {
            ga__shared_free_dead(m->heap, ops[k].old_value, dead);
            ga__shared_free_dead(m->heap, ops[k].old_entry, dead);
        }
    }
    ga__shared_free_dead(m->heap, in->log_off, dead);
}

static void repair_table(ga_map_t *m, map_intent_t *in, unsigned state)
{
    unsigned dead = in->slot;
    if (state == MI_PREP) {
        ga__shared_free_dead(m->heap, in->new_table, dead);
        return;
    }
    if (atomic_load(&m->root->table_off) != in->new_table) {
        /* Not published yet: the same stores as the writer's. */
        uint64_t q = atomic_load(&m->root->table_seq);
        atomic_store(&m->root->table_seq, q + 1);
        atomic_store(&m->root->table_off, in->new_table);
        m->root->capacity = in->new_table ? in->new_cap : 0;
        atomic_store(&m->root->table_seq, q + 2);
    }
    m->root->count = in->count;
    m->root->tombs = in->tombs;
    m->root->version = in->version;
    bool bad = false;
    map_table_t *old = ga__map_table(m, in->old_table, &bad);
    if (old && in->drop_entries) {
        for (uint64_t i = 0; i < old->cap; i++) {
            uint64_t s = atomic_load(&old->slots[i]);
            if (!SLOT_LIVE(s)) continue;
            map_entry_t *e = ga__map_entry(m, SLOT_OFF(s));
            if (e && e->voff) ga__shared_free_dead(m->heap, e->voff, dead);
            ga__shared_free_dead(m->heap, SLOT_OFF(s), dead);
            atomic_store(&old->slots[i], MAP_SLOT_EMPTY);
        }
    }
    ga__shared_free_dead(m->heap, in->old_table, dead);
}

void ga__map_repair(ga_map_t *m)
{
    map_root_t *r = m->root;
    map_intent_t *in = &r->intent;
    unsigned state = atomic_load(&in->state);
    if (state == MI_PREP || state == MI_COMMIT) {
        if (in->kind == MK_WRITE)
            repair_write(m, in, state);
        else if (in->kind == MK_TABLE)
            repair_table(m, in, state);
        else
            ga__map_corrupt(m, false, in->kind, "map intent record has a bad kind");
    } else if (state != MI_NONE) {
        ga__map_corrupt(m, false, state, "map intent record has a bad state");
    }
    atomic_store(&in->state, MI_NONE);
    seqs_even(r);
}

/* ---- the recover hook: every map of the heap -------------------------------------------- */

/* Calls fn for each map root of heap (named objects "map.*"); returns how many, or GA_E*. */
long ga__map_each_root(ga_heap_t *heap, void (*fn)(ga_heap_t *, uint64_t, const char *, void *),
                       void *arg)
{
    long n = ga_shared_object_list(heap, NULL, 0);
    if (n <= 0) return n;
    ga_shared_object_info_t *list = ga_malloc((size_t)n * sizeof *list);
    if (!list) return GA_ENOMEM;
    long got = ga_shared_object_list(heap, list, (size_t)n), maps = 0;
    if (got > n) got = n;
    for (long i = 0; i < got; i++) {
        if (strncmp(list[i].name, MAP_PREFIX, sizeof MAP_PREFIX - 1) != 0) continue;
        if (list[i].size < sizeof(map_root_t)) continue;
        fn(heap, list[i].offset, list[i].name + sizeof MAP_PREFIX - 1, arg);
        maps++;
    }
    ga_free(list);
    return maps;
}

static void recover_one(ga_heap_t *heap, uint64_t off, const char *name, void *arg)
{
    (void)arg;
    ga_map_t m;
    if (!ga__map_handle_at(&m, heap, off)) return;
    snprintf(m.name, sizeof m.name, "%s", name);
    int rc = ga__shared_trylock(heap, &m.root->lock);
    if (rc < 0) return; /* free of dead writers: held by a live process */
    if (rc == GA__SHARED_GOT_FROM_DEAD || atomic_load(&m.root->intent.state) != MI_NONE)
        ga__map_repair(&m);
    ga__shared_unlock(&m.root->lock);
}

void ga__map_recover_hook(ga_heap_t *heap)
{
    ga__map_each_root(heap, recover_one, NULL);
}
