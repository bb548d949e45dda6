/* SPDX-License-Identifier: MIT */
/*
 * Shared maps: the checker (ga_map_check), and the hooks that make ga_shared_check and dead-peer
 * recovery know maps (registered by ga__map_init at start). The checker verifies the root
 * (magic, format, limits' checksum), that no change is unfinished and no sequence is odd, the
 * table, and every entry: its block is the heap's and big enough, its hash is its key's, its
 * slot tag matches, its value block (if any) is the heap's and big enough, its version is not
 * past the map's, and probing for its key finds it where it is (no duplicate, none lost); then
 * that the counts are right. It counts the map's heap blocks for ga_shared_check.
 */
#include "map/map_internal.h"
#include <string.h>

static int block_ok(ga_map_t *m, uint64_t off, uint64_t need, uint64_t *blocks, uint64_t *bytes)
{
    bool heap = false;
    size_t n = ga__shared_block_size(m->heap, off, &heap);
    if (!n || !heap || n < need) return GA_ECORRUPT;
    (*blocks)++;
    *bytes += n;
    return 0;
}

static int check_entry(ga_map_t *m, map_table_t *t, uint64_t i, uint64_t s, bool quiet,
                       uint64_t *blocks, uint64_t *bytes)
{
    uint64_t off = SLOT_OFF(s);
    map_entry_t *e = ga__map_entry(m, off);
    if (!e) return ga__map_corrupt(m, quiet, off, "map entry is damaged");
    const unsigned char *v = ga__map_value(m, e);
    uint64_t esz = sizeof *e + e->klen + (e->voff ? 0 : e->vlen);
    if (!v || block_ok(m, off, esz, blocks, bytes))
        return ga__map_corrupt(m, quiet, off, "map entry's block is wrong");
    if (e->voff && block_ok(m, e->voff, e->vlen, blocks, bytes))
        return ga__map_corrupt(m, quiet, e->voff, "map value's block is wrong");
    if (ga__map_hash(e + 1, e->klen) != e->hash || SLOT_TAG(s) != (uint32_t)(e->hash >> 32))
        return ga__map_corrupt(m, quiet, off, "map entry's hash is wrong");
    if (e->version > m->root->version)
        return ga__map_corrupt(m, quiet, off, "map entry's version is in the future");
    int64_t ins, at = ga__map_find_locked(m, t, e->hash, e + 1, e->klen, &ins);
    if (at != (int64_t)i) return ga__map_corrupt(m, quiet, off, "map key is not found by probing");
    return 0;
}

int ga__map_check_locked(ga_map_t *m, bool quiet, uint64_t *blocks, uint64_t *bytes)
{
    map_root_t *r = m->root;
    *blocks = 1; /* the root (a named object) */
    *bytes = sizeof *r;
    if (atomic_load((_Atomic uint64_t *)&r->magic) == 0) return 0; /* not made yet */
    if (r->magic != MAP_MAGIC || r->format != MAP_VERSION || r->root_size != sizeof *r ||
        r->max_key != m->max_key || r->max_value != m->max_value)
        return ga__map_corrupt(m, quiet, m->root_off, "map root is damaged");
    if (atomic_load(&r->intent.state) != MI_NONE)
        return ga__map_corrupt(m, quiet, m->root_off, "map has an unfinished change");
    bool odd = atomic_load(&r->table_seq) & 1;
    for (unsigned s = 0; s < MAP_NSTRIPES; s++)
        odd |= atomic_load(&r->seq[s]) & 1;
    if (odd) return ga__map_corrupt(m, quiet, m->root_off, "map sequence left odd");
    bool bad = false;
    map_table_t *t = ga__map_current(m, &bad);
    uint64_t toff = atomic_load(&r->table_off);
    if (bad) return ga__map_corrupt(m, quiet, toff, "map table is damaged");
    if (!t) {
        if (atomic_load(&r->count) || r->tombs || r->capacity)
            return ga__map_corrupt(m, quiet, m->root_off, "empty map has counts");
        return 0;
    }
    if (t->cap != r->capacity || block_ok(m, toff, sizeof *t + t->cap * 8, blocks, bytes))
        return ga__map_corrupt(m, quiet, toff, "map table's block is wrong");
    uint64_t live = 0, tombs = 0;
    for (uint64_t i = 0; i < t->cap; i++) {
        uint64_t s = atomic_load(&t->slots[i]);
        if (s == MAP_SLOT_TOMB) tombs++;
        if (!SLOT_LIVE(s)) continue;
        int rc = check_entry(m, t, i, s, quiet, blocks, bytes);
        if (rc) return rc;
        live++;
    }
    if (live != atomic_load(&r->count) || tombs != r->tombs)
        return ga__map_corrupt(m, quiet, live, "map count is wrong");
    if (live + tombs == t->cap)
        return ga__map_corrupt(m, quiet, toff, "map table has no empty slot");
    return 0;
}

int ga_map_check(ga_map_t *map, unsigned flags)
{
    ga_map_t *m = ga__map_handle(map);
    if (!m) return GA_EINVAL;
    if (flags & ~(unsigned)GA_CHECK_QUIET) return ga__set_error(GA_EINVAL);
    ga__shared_guard_enter();
    int rc = ga__map_lock(m);
    if (rc == 0) {
        uint64_t blocks, bytes;
        rc = ga__map_check_locked(m, flags & GA_CHECK_QUIET, &blocks, &bytes);
        ga__map_unlock(m);
    }
    if (ga__shared_guard_leave(m->heap)) rc = GA_ECORRUPT;
    return rc ? ga__set_error(rc) : 0;
}

/* ---- ga_shared_check's hooks --------------------------------------------------------------
 * begin: every map of the heap locked (before the segment's locks, the writers' order); a map
 * whose lock this thread holds already is skipped (a check from inside a write). refs: each
 * locked map checked and its blocks but the root (a named object, counted already) added. */

typedef struct check_ctx_s {
    size_t n, cap;
    ga_map_t *maps;
    bool *locked;
    int err;
} check_ctx_t;

static void begin_one(ga_heap_t *heap, uint64_t off, const char *name, void *arg)
{
    check_ctx_t *c = arg;
    if (c->n == c->cap) {
        size_t nc = c->cap ? c->cap * 2 : 16;
        ga_map_t *nm = ga_realloc(c->maps, nc * sizeof *nm);
        if (nm) c->maps = nm;
        bool *nl = nm ? ga_realloc(c->locked, nc * sizeof *nl) : NULL;
        if (nl) c->locked = nl;
        if (!nm || !nl) {
            c->err = GA_ENOMEM;
            return;
        }
        c->cap = nc;
    }
    ga_map_t *m = &c->maps[c->n];
    if (!ga__map_handle_at(m, heap, off)) {
        c->err = GA_ECORRUPT;
        return;
    }
    snprintf(m->name, sizeof m->name, "%s", name);
    /* A map this thread is writing (a check from inside the write) is not waited for. */
    const map_root_t *mine = ga__map_held;
    c->locked[c->n] = mine != m->root && ga__map_lock(m) == 0;
    ga__map_held = mine;
    c->n++;
}

static void *check_begin(ga_heap_t *heap)
{
    check_ctx_t *c = ga_malloc(sizeof *c);
    if (!c) return NULL;
    memset(c, 0, sizeof *c);
    long rc = ga__map_each_root(heap, begin_one, c);
    if (rc < 0) c->err = (int)rc;
    return c;
}

static int check_refs(ga_heap_t *heap, void *ctx, uint64_t *refs, bool quiet)
{
    (void)heap;
    check_ctx_t *c = ctx;
    if (!c) return GA_ENOMEM;
    for (size_t i = 0; i < c->n; i++) {
        uint64_t blocks = 0, bytes = 0;
        int rc = ga__map_check_locked(&c->maps[i], quiet, &blocks, &bytes);
        if (rc) return rc;
        *refs += blocks - 1;
    }
    return c->err == GA_ECORRUPT ? GA_ECORRUPT : 0;
}

static void check_end(ga_heap_t *heap, void *ctx)
{
    (void)heap;
    check_ctx_t *c = ctx;
    if (!c) return;
    for (size_t i = 0; i < c->n; i++)
        if (c->locked[i]) ga__map_unlock(&c->maps[i]);
    ga_free(c->maps);
    ga_free(c->locked);
    ga_free(c);
}

static const ga__shared_hooks_t hooks = {ga__map_recover_hook, check_begin, check_refs, check_end};

void ga__map_init(void)
{
    ga__shared_set_hooks(&hooks);
}
