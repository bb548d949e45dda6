/* SPDX-License-Identifier: MIT */
/*
 * Shared heaps: named objects (find-or-create a block by name, look up, list, remove).
 *
 * hdr->named[] is an open-addressing table (linear probing, FNV-1a hash, tombstones) of
 * SHM_NAMED_MAX entries, guarded by the named lock: find-or-create looks up and fills the entry
 * under it, so of processes racing on one name exactly one creates and all get the same block.
 * The new block is allocated before the lock is taken (no shared lock is held across an
 * allocation, which may run dead-peer recovery: it takes every lock).
 * An object's data block belongs to the heap (ALLOC(SHM_SLOT_HEAP)).
 *
 * Logged changes (hdr->named_intent):
 *   create: block allocated as ALLOC(me), intent OCREATE, entry filled, state LIVE (commit),
 *           block handed to the heap, intent cleared.
 *   remove: intent OREMOVE, state TOMB (commit), block freed, intent cleared.
 * repair_named: committed -> finish; not -> undo (free the new block while still ALLOC(dead));
 * then named_count is recounted.
 */
#include "shared/shared_internal.h"
#include <string.h>

static bool objname_ok(const char *name)
{
    return ga__shm_name_ok(name, SHM_OBJNAME_MAX);
}

static void repair_named(shm_att_t *a, void *arg)
{
    (void)arg;
    GA_ASSERT_SHM_HELD(a, SHM_LOCK_NAMED);
    shm_header_t *h = a->hdr;
    shm_intent_t *in = &h->named_intent;
    unsigned op = atomic_load(&in->op);
    shm_named_t *e = in->idx < SHM_NAMED_MAX ? &h->named[in->idx] : NULL;
    unsigned dead = ga__shm_intent_owner(in);
    unsigned heap = ST_ALLOC(SHM_SLOT_HEAP);
    if (e && op == INTENT_OCREATE) {
        if (atomic_load(&e->state) == NAMED_LIVE && e->data_off == in->new_off) {
            ga__shm_block_cas(a, in->new_off, dead, heap);
        } else {
            ga__shm_free_if(a, in->new_off, dead);
            if (atomic_load(&e->state) != NAMED_LIVE) atomic_store(&e->state, NAMED_TOMB);
        }
    } else if (e && op == INTENT_OREMOVE) {
        if (atomic_load(&e->state) != NAMED_LIVE) ga__shm_free_if(a, in->old_off, heap);
    }
    ga__shm_intent_end(in);
    uint32_t n = 0;
    for (unsigned i = 0; i < SHM_NAMED_MAX; i++)
        n += atomic_load(&h->named[i].state) == NAMED_LIVE;
    h->named_count = n;
}

int ga__shm_lock_named(shm_att_t *a)
{
    return ga__shm_lock(a, SHM_LOCK_NAMED, repair_named, NULL);
}

static bool entry_matches(const shm_named_t *e, const char *name, uint32_t hash)
{
    return e->hash == hash && strncmp(e->name, name, sizeof e->name) == 0;
}

/* Probes for name (named lock held). Returns the entry index or -1; *slot receives where an
 * insert should go (-1 if the table is full). */
static int probe(shm_att_t *a, const char *name, uint32_t hash, int *slot)
{
    GA_ASSERT_SHM_HELD(a, SHM_LOCK_NAMED);
    shm_header_t *h = a->hdr;
    *slot = -1;
    for (unsigned i = 0; i < SHM_NAMED_MAX; i++) {
        unsigned k = (hash + i) & (SHM_NAMED_MAX - 1);
        unsigned st = atomic_load_explicit(&h->named[k].state, memory_order_acquire);
        if (st == NAMED_EMPTY) {
            if (*slot < 0) *slot = (int)k;
            return -1;
        }
        if (st == NAMED_TOMB) {
            if (*slot < 0) *slot = (int)k;
        } else if (entry_matches(&h->named[k], name, hash)) {
            return (int)k;
        }
    }
    return -1;
}

/* The block of a live entry, validated; NULL if it is bad. */
static void *entry_data(shm_att_t *a, const shm_named_t *e)
{
    unsigned st = 0;
    size_t u = ga__shm_block_info(a, e->data_off, &st);
    if (!u || st != ST_ALLOC(SHM_SLOT_HEAP) || e->size > u) return NULL;
    return a->base + e->data_off;
}

/* Fills free entry `slot` with a new object whose block off (ALLOC(me)) is already made. pre:
 * named lock held. */
static void create_locked(shm_att_t *a, int slot, const char *name, uint32_t hash, size_t size,
                          uint64_t off)
{
    shm_header_t *h = a->hdr;
    shm_named_t *e = &h->named[slot];
    shm_intent_t *in = ga__shm_intent_begin(a, SHM_LOCK_NAMED, (uint32_t)slot);
    ga__shm_intent_add_blocks(in, off, 0);
    ga__shm_intent_commit(in, INTENT_OCREATE);
    memset(e->name, 0, sizeof e->name);
    memcpy(e->name, name, strlen(name));
    e->hash = hash;
    e->size = size;
    e->data_off = off;
    atomic_store(&e->init.word, 0); /* a new object: not initialised (ga_shared_object_init) */
    atomic_store(&e->init.takeovers, 0);
    atomic_store_explicit(&e->state, NAMED_LIVE, memory_order_release); /* commit */
    ga__shm_block_cas(a, off, ST_ALLOC(a->slot), ST_ALLOC(SHM_SLOT_HEAP));
    h->named_count++;
    ga__shm_intent_end(in);
}

void *ga__shm_object_get(shm_att_t *a, const char *name, size_t size, unsigned flags, int *created,
                         unsigned *entry)
{
    *created = 0;
    if (!objname_ok(name) || flags != 0) {
        ga__set_error(objname_ok(name) ? GA_EINVAL : GA_ENAME);
        return NULL;
    }
    shm_header_t *h = a->hdr;
    uint32_t hash = ga__shm_name_hash(name);
    /* Looked up, then (not found) a block allocated with the lock released, since a full heap
     * runs dead-peer recovery, which takes every lock; then looked up again: a racing creator
     * may have won meanwhile, and our block goes back. */
    uint64_t off = 0;
    void *p = NULL;
    int rc, slot;
    for (;;) {
        if ((rc = ga__shm_lock_named(a)) != 0) break;
        int k = probe(a, name, hash, &slot);
        if (k >= 0) {
            shm_named_t *e = &h->named[k];
            p = entry_data(a, e);
            rc = !p ? GA_ECORRUPT : e->size < size ? GA_EEXIST : 0;
            if (rc == GA_ECORRUPT)
                ga__shm_corrupt(a, false, (uint64_t)k, "named object points to a bad block");
            *entry = (unsigned)k;
        } else if (slot < 0) {
            rc = GA_EFULL;
        } else if (off) {
            create_locked(a, slot, name, hash, size, off);
            p = a->base + off;
            off = 0;
            *created = 1;
            *entry = (unsigned)slot;
        } else {
            ga__shm_unlock(a, SHM_LOCK_NAMED);
            if ((off = ga__shm_alloc_off(a, size, true)) == 0) {
                rc = ga_last_error();
                break;
            }
            continue;
        }
        ga__shm_unlock(a, SHM_LOCK_NAMED);
        break;
    }
    if (off) ga__shm_free_off(a, off, ST_ALLOC(a->slot), false);
    if (rc) {
        ga__set_error(rc);
        return NULL;
    }
    return p;
}

void *ga_shared_object(ga_heap_t *heap, const char *name, size_t size, unsigned flags, int *created)
{
    int dummy;
    unsigned entry;
    if (!created) created = &dummy;
    *created = 0;
    shm_att_t *a = ga__shm_att(heap);
    return a ? ga__shm_object_get(a, name, size, flags, created, &entry) : NULL;
}

void *ga_shared_object_find(ga_heap_t *heap, const char *name, size_t *size)
{
    shm_att_t *a = ga__shm_att(heap);
    if (!a) return NULL;
    if (!objname_ok(name)) {
        ga__set_error(GA_ENAME);
        return NULL;
    }
    shm_header_t *h = a->hdr;
    uint32_t hash = ga__shm_name_hash(name);
    int slot;
    if (ga__shm_lock_named(a)) return NULL;
    int k = probe(a, name, hash, &slot);
    void *p = k >= 0 ? entry_data(a, &h->named[k]) : NULL;
    if (p && size) *size = h->named[k].size;
    ga__shm_unlock(a, SHM_LOCK_NAMED);
    if (!p) ga__set_error(k >= 0 ? GA_ECORRUPT : GA_ENOENT);
    return p;
}

int ga_shared_object_remove(ga_heap_t *heap, const char *name)
{
    shm_att_t *a = ga__shm_att(heap);
    if (!a) return GA_EINVAL;
    if (!objname_ok(name)) return ga__set_error(GA_ENAME);
    shm_header_t *h = a->hdr;
    uint32_t hash = ga__shm_name_hash(name);
    int slot, rc = ga__shm_lock_named(a);
    if (rc) return rc;
    int k = probe(a, name, hash, &slot);
    uint64_t old = 0;
    if (k < 0) {
        rc = GA_ENOENT;
    } else {
        shm_named_t *e = &h->named[k];
        old = entry_data(a, e) ? e->data_off : 0;
        shm_intent_t *in = ga__shm_intent_begin(a, SHM_LOCK_NAMED, (uint32_t)k);
        ga__shm_intent_add_blocks(in, 0, old);
        ga__shm_intent_commit(in, INTENT_OREMOVE);
        atomic_store_explicit(&e->state, NAMED_TOMB, memory_order_release); /* commit */
        if (old) ga__shm_free_off(a, old, ST_ALLOC(SHM_SLOT_HEAP), true);
        if (h->named_count) h->named_count--;
        ga__shm_intent_end(in);
    }
    ga__shm_unlock(a, SHM_LOCK_NAMED);
    ga__shm_after_window(a, old);
    return rc ? ga__set_error(rc) : 0;
}

long ga_shared_object_list(ga_heap_t *heap, ga_shared_object_info_t *out, size_t max)
{
    shm_att_t *a = ga__shm_att(heap);
    if (!a) return GA_EINVAL;
    shm_header_t *h = a->hdr;
    if (ga__shm_lock_named(a)) return GA_ECORRUPT;
    long n = 0;
    for (unsigned i = 0; i < SHM_NAMED_MAX; i++) {
        shm_named_t *e = &h->named[i];
        if (atomic_load(&e->state) != NAMED_LIVE) continue;
        if (out && (size_t)n < max) {
            memcpy(out[n].name, e->name, sizeof out[n].name);
            out[n].name[sizeof out[n].name - 1] = 0;
            out[n].size = e->size;
            out[n].offset = e->data_off;
        }
        n++;
    }
    ga__shm_unlock(a, SHM_LOCK_NAMED);
    return n;
}

int ga__shm_check_named(shm_att_t *a, uint64_t *refs, uint64_t *bytes, uint64_t *nlive, bool quiet)
{
    GA_ASSERT_SHM_HELD(a, SHM_LOCK_NAMED);
    shm_header_t *h = a->hdr;
    if (atomic_load(&h->named_intent.op) != INTENT_NONE)
        return ga__shm_corrupt(a, quiet, 0, "named objects have an unfinished change");
    uint32_t live = 0;
    for (unsigned i = 0; i < SHM_NAMED_MAX; i++) {
        shm_named_t *e = &h->named[i];
        unsigned st = atomic_load(&e->state);
        if (st == NAMED_EMPTY || st == NAMED_TOMB) continue;
        if (st != NAMED_LIVE) return ga__shm_corrupt(a, quiet, i, "named object has a bad state");
        if (memchr(e->name, 0, sizeof e->name) == NULL || !objname_ok(e->name) ||
            e->hash != ga__shm_name_hash(e->name))
            return ga__shm_corrupt(a, quiet, i, "named object has a bad name");
        for (unsigned k = e->hash & (SHM_NAMED_MAX - 1); k != i; k = (k + 1) & (SHM_NAMED_MAX - 1))
            if (atomic_load(&h->named[k].state) == NAMED_EMPTY)
                return ga__shm_corrupt(a, quiet, i, "named object cannot be found by probing");
        if (!entry_data(a, e))
            return ga__shm_corrupt(a, quiet, i, "named object points to a bad block");
        live++;
        (*refs)++;
        *bytes += ga__shm_block_info(a, e->data_off, NULL);
    }
    if (live != h->named_count)
        return ga__shm_corrupt(a, quiet, live, "named object count is wrong");
    *nlive += live;
    return 0;
}
