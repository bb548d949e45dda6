/* SPDX-License-Identifier: MIT */
/*
 * Shared maps: the writers' engine (lock held): a batch of key changes logged in the intent
 * record and applied all-or-nothing, and the table changes (resize, reset). The protocol and
 * what a repair does at each state are in map_internal.h; each function below marks its step
 * boundaries with map_step() (tests kill the process there).
 */
#include "map/map_internal.h"
#include <string.h>

map_table_t *ga__map_current(ga_map_t *m, bool *bad)
{
    return ga__map_table(m, atomic_load(&m->root->table_off), bad);
}

int64_t ga__map_find_locked(ga_map_t *m, map_table_t *t, uint64_t hash, const void *key,
                            size_t klen, int64_t *insert)
{
    uint64_t cap = t->cap, i = hash & (cap - 1);
    *insert = -1;
    for (uint64_t n = 0; n < cap; n++, i = (i + 1) & (cap - 1)) {
        uint64_t s = atomic_load_explicit(&t->slots[i], memory_order_relaxed);
        if (s == MAP_SLOT_EMPTY) {
            if (*insert < 0) *insert = (int64_t)i;
            return -1;
        }
        if (s == MAP_SLOT_TOMB) {
            if (*insert < 0) *insert = (int64_t)i;
            continue;
        }
        if (SLOT_TAG(s) != (uint32_t)(hash >> 32)) continue;
        map_entry_t *e = ga__map_entry(m, SLOT_OFF(s));
        if (!e) return -2;
        if (ga__map_entry_is(e, hash, key, klen)) return (int64_t)i;
    }
    return -1;
}

/* ---- tables ---------------------------------------------------------------------------- */

/* Publishes in->new_table (COMMIT state; also the repair's redo). */
static void table_publish(map_root_t *r, const map_intent_t *in)
{
    uint64_t q = atomic_load(&r->table_seq);
    atomic_store_explicit(&r->table_seq, q + 1, memory_order_relaxed);
    atomic_thread_fence(memory_order_release);
    atomic_store_explicit(&r->table_off, in->new_table, memory_order_release);
    r->capacity = in->new_table ? in->new_cap : 0;
    r->count = in->count;
    r->tombs = in->tombs;
    r->version = in->version;
    atomic_store_explicit(&r->table_seq, q + 2, memory_order_release);
}

static void intent_start(ga_map_t *m, unsigned kind)
{
    map_intent_t *in = &m->root->intent;
    map_root_t *r = m->root;
    memset((char *)in + sizeof in->state, 0, sizeof *in - sizeof in->state);
    in->kind = kind;
    in->slot = ga__shared_slot(m->heap);
    in->count = r->count;
    in->tombs = r->tombs;
    in->version = r->version;
    atomic_store(&in->state, MI_PREP);
}

/* Builds a table of cap slots holding old's live slots (old may be NULL). Its offset or 0. */
static uint64_t table_build(ga_map_t *m, map_table_t *old, uint64_t cap, int *err)
{
    uint64_t off = ga__shared_alloc_off(m->heap, sizeof(map_table_t) + cap * 8);
    if (!off) {
        *err = ga_last_error();
        return 0;
    }
    m->root->intent.new_table = off; /* recorded first: a repair frees it */
    map_table_t *t = map_span(m, off, sizeof(map_table_t) + cap * 8);
    if (!t) {
        *err = GA_ECORRUPT;
        return off;
    }
    memset(t, 0, sizeof(map_table_t) + cap * 8);
    t->magic = MAP_TABLE_MAGIC;
    t->cap = cap;
    for (uint64_t i = 0; old && i < old->cap; i++) {
        uint64_t s = atomic_load(&old->slots[i]);
        if (!SLOT_LIVE(s)) continue;
        map_entry_t *e = ga__map_entry(m, SLOT_OFF(s));
        if (!e) {
            *err = ga__map_corrupt(m, false, SLOT_OFF(s), "map entry is damaged");
            return off;
        }
        uint64_t j = e->hash & (cap - 1);
        while (atomic_load(&t->slots[j]) != MAP_SLOT_EMPTY)
            j = (j + 1) & (cap - 1);
        atomic_store_explicit(&t->slots[j], s, memory_order_relaxed);
    }
    ga__shared_block_give(m->heap, off);
    return off;
}

/* Drops the entries of an unpublished table (reset with drop_entries; also the repair). Each
 * one goes back to ALLOC(me) and leaves the table before it is freed. */
static void table_drop_entries(ga_map_t *m, map_table_t *t, bool repair, unsigned dead)
{
    for (uint64_t i = 0; i < t->cap; i++) {
        uint64_t s = atomic_load(&t->slots[i]);
        if (!SLOT_LIVE(s)) continue;
        map_entry_t *e = ga__map_entry(m, SLOT_OFF(s));
        uint64_t voff = e ? e->voff : 0;
        if (repair) {
            ga__shared_free_dead(m->heap, voff, dead);
            ga__shared_free_dead(m->heap, SLOT_OFF(s), dead);
            atomic_store(&t->slots[i], MAP_SLOT_EMPTY);
            continue;
        }
        if (voff) ga__shared_block_take(m->heap, voff);
        ga__shared_block_take(m->heap, SLOT_OFF(s));
        atomic_store(&t->slots[i], MAP_SLOT_EMPTY);
        map_step("drop:entry");
        if (voff) ga__shared_free_off(m->heap, voff);
        ga__shared_free_off(m->heap, SLOT_OFF(s));
    }
}

/* Replaces the table: a copy of size cap (resize), or none (reset). */
static int table_change(ga_map_t *m, uint64_t cap, bool drop_entries)
{
    GA_ASSERT_INTERNAL(ga__map_held == m->root);
    map_root_t *r = m->root;
    map_intent_t *in = &r->intent;
    bool bad = false;
    map_table_t *old = ga__map_current(m, &bad);
    if (bad) return ga__map_corrupt(m, false, atomic_load(&r->table_off), "map table is damaged");
    intent_start(m, MK_TABLE);
    in->old_table = old ? atomic_load(&r->table_off) : 0;
    in->drop_entries = drop_entries;
    in->new_cap = cap;
    map_step(cap ? "resize:prep" : "reset:prep");
    int err = 0;
    if (cap) {
        uint64_t off = table_build(m, old, cap, &err);
        if (err) {
            ga__shared_free_dead(m->heap, off, in->slot);
            atomic_store(&in->state, MI_NONE);
            return ga__set_error(err);
        }
        in->tombs = 0;
    } else {
        in->count = in->tombs = 0;
    }
    map_step(cap ? "resize:built" : "reset:built");
    atomic_store_explicit(&in->state, MI_COMMIT, memory_order_release);
    map_step(cap ? "resize:commit" : "reset:commit");
    table_publish(r, in);
    map_step(cap ? "resize:published" : "reset:published");
    if (old && drop_entries) table_drop_entries(m, old, false, 0);
    if (old) ga__shared_block_take(m->heap, in->old_table);
    map_step(cap ? "resize:dropped" : "reset:dropped");
    atomic_store(&in->state, MI_NONE);
    map_step(cap ? "resize:done" : "reset:done");
    if (old) ga__shared_free_off(m->heap, in->old_table);
    return 0;
}

int ga__map_reserve(ga_map_t *m, uint64_t more)
{
    map_root_t *r = m->root;
    bool bad = false;
    map_table_t *t = ga__map_current(m, &bad);
    if (bad) return ga__map_corrupt(m, false, atomic_load(&r->table_off), "map table is damaged");
    uint64_t cap = t ? t->cap : 0;
    if (cap && (r->count + r->tombs + more) * 4 <= cap * 3) return 0;
    uint64_t want = (r->count + more) * 2, ncap = MAP_CAP_MIN;
    while (ncap < want && ncap < MAP_CAP_MAX)
        ncap *= 2;
    if (want > MAP_CAP_MAX) return ga__set_error(GA_EFULL);
    return table_change(m, ncap, false);
}

int ga__map_reset(ga_map_t *m, bool drop_entries)
{
    return table_change(m, 0, drop_entries);
}

/* ---- key changes ----------------------------------------------------------------------- */

/* Where change c goes: its slot and the op without blocks. false: skip (delete of an absent
 * key). Slots already taken by earlier ops of the batch count as occupied. */
static int plan(ga_map_t *m, map_table_t *t, map_change_t *c, map_op_t *ops, size_t nops,
                map_op_t *op, uint64_t *counts)
{
    int64_t ins = -1, at = t ? ga__map_find_locked(m, t, c->hash, c->key, c->klen, &ins) : -1;
    if (at == -2) return ga__map_corrupt(m, false, 0, "map entry is damaged");
    memset(op, 0, sizeof *op);
    if (at >= 0) {
        uint64_t s = atomic_load(&t->slots[at]);
        map_entry_t *e = ga__map_entry(m, SLOT_OFF(s));
        op->slot = (uint64_t)at;
        op->old_entry = SLOT_OFF(s);
        op->old_value = e->voff;
        if (c->del) {
            op->new_slot = MAP_SLOT_TOMB;
            counts[0]--, counts[1]++;
        }
        return 1;
    }
    if (c->del) return 0;
    if (!t) return ga__set_error(GA_ECORRUPT);
    /* The first free slot along the probe sequence not taken by this batch. */
    uint64_t cap = t->cap, i = c->hash & (cap - 1);
    for (uint64_t n = 0; n < cap; n++, i = (i + 1) & (cap - 1)) {
        uint64_t s = atomic_load(&t->slots[i]);
        if (SLOT_LIVE(s)) continue;
        bool taken = false;
        for (size_t k = 0; k < nops && !taken; k++)
            taken = ops[k].slot == i;
        if (taken) continue;
        op->slot = i;
        counts[0]++;
        if (s == MAP_SLOT_TOMB) counts[1]--;
        return 1;
    }
    return ga__set_error(GA_EFULL);
}

/* Makes the blocks of put c into op (recorded before they go to the heap). 0 or GA_E*. */
static int build(ga_map_t *m, const map_change_t *c, map_op_t *op, uint64_t version)
{
    bool inl = c->vlen <= MAP_INLINE_MAX;
    if (!inl) {
        uint64_t v = ga__shared_alloc_off(m->heap, c->vlen);
        if (!v) return ga_last_error();
        op->new_value = v;
        unsigned char *p = map_span(m, v, c->vlen);
        if (!p) return GA_ECORRUPT;
        memcpy(p, c->val, c->vlen);
        ga__shared_block_give(m->heap, v);
    }
    size_t esz = sizeof(map_entry_t) + c->klen + (inl ? c->vlen : 0);
    uint64_t off = ga__shared_alloc_off(m->heap, esz);
    if (!off) return ga_last_error();
    op->new_entry = off;
    map_entry_t *e = map_span(m, off, esz);
    if (!e || off >= MAP_OFF_LIMIT) return GA_ECORRUPT;
    e->hash = c->hash;
    e->version = version;
    e->vlen = c->vlen;
    e->voff = inl ? 0 : op->new_value;
    e->klen = (uint32_t)c->klen;
    e->magic = MAP_ENTRY_MAGIC;
    memcpy(e + 1, c->key, c->klen);
    if (inl && c->vlen) memcpy((unsigned char *)(e + 1) + c->klen, c->val, c->vlen);
    ga__shared_block_give(m->heap, off);
    op->new_slot = SLOT_MAKE(c->hash, off);
    return 0;
}

/* The ops of the record: op0, or the log block's (validated; NULL when bad). */
map_op_t *ga__map_ops(ga_map_t *m, map_intent_t *in)
{
    if (in->nops == 0) return &in->op0; /* none recorded yet */
    if (!in->log_off) return in->nops == 1 ? &in->op0 : NULL;
    uint64_t *log = map_span(m, in->log_off, 16 + (uint64_t)in->nops * sizeof(map_op_t));
    if (!log || log[0] != MAP_LOG_MAGIC || log[1] != in->nops) return NULL;
    return (map_op_t *)(log + 2);
}

void ga__map_store_slots(_Atomic uint64_t *seq, map_table_t *t, const map_op_t *ops, uint32_t n)
{
    uint64_t q = atomic_load(seq);
    atomic_store_explicit(seq, q + 1, memory_order_relaxed);
    atomic_thread_fence(memory_order_release);
    for (uint32_t k = 0; k < n; k++)
        if (ops[k].slot < t->cap)
            atomic_store_explicit(&t->slots[ops[k].slot], ops[k].new_slot, memory_order_release);
    atomic_store_explicit(seq, q + 2, memory_order_release);
}

/* Undoes a PREP record of this process (an allocation failed): frees its new blocks. */
static void undo(ga_map_t *m, map_intent_t *in, map_op_t *ops, size_t n)
{
    for (size_t k = 0; k < n; k++) {
        ga__shared_free_dead(m->heap, ops[k].new_value, in->slot);
        ga__shared_free_dead(m->heap, ops[k].new_entry, in->slot);
    }
    ga__shared_free_dead(m->heap, in->log_off, in->slot);
    atomic_store(&in->state, MI_NONE);
}

/* The log block for n > 1 ops (zeroed, recorded), or op0. */
static map_op_t *ops_area(ga_map_t *m, map_intent_t *in, size_t n, int *err)
{
    if (n == 1) {
        in->nops = 1;
        return &in->op0;
    }
    uint64_t sz = 16 + (uint64_t)n * sizeof(map_op_t);
    uint64_t off = ga__shared_alloc_off(m->heap, sz);
    uint64_t *log = off ? map_span(m, off, sz) : NULL;
    if (!log) {
        *err = off ? GA_ECORRUPT : ga_last_error();
        if (off) ga__shared_free_off(m->heap, off);
        return NULL;
    }
    memset(log, 0, sz);
    log[0] = MAP_LOG_MAGIC;
    log[1] = n;
    in->log_off = off; /* recorded before nops: a repair sees no ops, or the whole log */
    atomic_thread_fence(memory_order_release);
    in->nops = (uint32_t)n;
    ga__shared_block_give(m->heap, off);
    return (map_op_t *)(log + 2);
}

int ga__map_apply(ga_map_t *m, map_change_t *ch, size_t n)
{
    GA_ASSERT_INTERNAL(ga__map_held == m->root);
    map_root_t *r = m->root;
    map_intent_t *in = &r->intent;
    size_t puts = 0;
    for (size_t k = 0; k < n; k++)
        puts += !ch[k].del;
    int rc = puts ? ga__map_reserve(m, puts) : 0;
    if (rc) return rc;
    bool bad = false;
    map_table_t *t = ga__map_current(m, &bad);
    if (bad) return ga__map_corrupt(m, false, atomic_load(&r->table_off), "map table is damaged");
    /* Plan in process memory first: which keys change, and where. */
    map_op_t one, *plan_ops = n == 1 ? &one : ga_malloc(n * sizeof *plan_ops);
    size_t *idx = n == 1 ? NULL : ga_malloc(n * sizeof *idx);
    if (!plan_ops || (n > 1 && !idx)) {
        if (n > 1) ga_free(plan_ops), ga_free(idx);
        return ga__set_error(GA_ENOMEM);
    }
    uint64_t counts[2] = {r->count, r->tombs};
    size_t nops = 0;
    for (size_t k = 0; k < n && rc >= 0; k++) {
        rc = plan(m, t, &ch[k], plan_ops, nops, &plan_ops[nops], counts);
        if (rc == 1) {
            if (idx) idx[nops] = k;
            nops++;
        }
    }
    if (rc >= 0) rc = 0;
    if (rc || nops == 0) goto out;
    intent_start(m, MK_WRITE);
    in->table_off = atomic_load(&r->table_off);
    map_op_t *ops = ops_area(m, in, nops, &rc);
    if (!ops) {
        atomic_store(&in->state, MI_NONE);
        goto out;
    }
    map_step("write:prep");
    uint64_t v = r->version;
    for (size_t k = 0; k < nops && rc == 0; k++) {
        map_change_t *c = &ch[idx ? idx[k] : 0];
        ops[k].slot = plan_ops[k].slot;
        ops[k].old_entry = plan_ops[k].old_entry;
        ops[k].old_value = plan_ops[k].old_value;
        ops[k].new_slot = plan_ops[k].new_slot;
        if (!c->del) rc = build(m, c, &ops[k], ++v);
        map_step("write:built");
    }
    if (rc) {
        undo(m, in, ops, nops);
        ga__set_error(rc);
        goto out;
    }
    in->count = counts[0];
    in->tombs = counts[1];
    in->version = v;
    atomic_store_explicit(&in->state, MI_COMMIT, memory_order_release);
    map_step("write:commit");
    uint64_t h0 = ch[idx ? idx[0] : 0].hash;
    ga__map_store_slots(nops == 1 ? &r->seq[map_stripe(h0)] : &r->table_seq, t, ops,
                        (uint32_t)nops);
    r->count = in->count;
    r->tombs = in->tombs;
    r->version = in->version;
    map_step("write:applied");
    for (size_t k = 0; k < nops; k++) {
        if (ops[k].old_value) ga__shared_block_take(m->heap, ops[k].old_value);
        if (ops[k].old_entry) ga__shared_block_take(m->heap, ops[k].old_entry);
    }
    uint64_t log = in->log_off;
    if (log) ga__shared_block_take(m->heap, log);
    map_step("write:dropped");
    /* The dropped blocks, copied out: the log goes with them. */
    for (size_t k = 0; k < nops; k++)
        plan_ops[k] = ops[k];
    atomic_store(&in->state, MI_NONE);
    map_step("write:done");
    for (size_t k = 0; k < nops; k++) {
        if (plan_ops[k].old_value) ga__shared_free_off(m->heap, plan_ops[k].old_value);
        if (plan_ops[k].old_entry) ga__shared_free_off(m->heap, plan_ops[k].old_entry);
    }
    if (log) ga__shared_free_off(m->heap, log);
out:
    if (n > 1) ga_free(plan_ops), ga_free(idx);
    return rc;
}
