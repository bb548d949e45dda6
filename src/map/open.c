/* SPDX-License-Identifier: MIT */
/*
 * Shared maps: the handle (open, close, remove), the root's creation and validation, bounded
 * access to the segment, the key hash, entry validation, and the lock.
 *
 * A map's root is the named object "map.NAME", made zeroed by ga_shared_object (so of racing
 * creators exactly one makes it); the first process to take the root's lock and find no magic
 * writes the limits and then the magic (a creator killed before that leaves a zeroed root,
 * which the next creator initializes). A map has no table until its first write.
 */
#include "map/map_internal.h"
#include <stdio.h>
#include <string.h>

#define DEFAULT_MAX_KEY   1024u
#define DEFAULT_MAX_VALUE ((uint64_t)64 << 20)
#define DEFAULT_CAPACITY  64u

void (*ga__map_test_hook)(const char *step);

/* ---- hashing, bounds, entries ---------------------------------------------------------- */

static inline uint64_t mix(uint64_t h)
{
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    return h ^ (h >> 33);
}

uint64_t ga__map_hash(const void *key, size_t klen)
{
    const unsigned char *p = key;
    uint64_t h = 0x9e3779b97f4a7c15ull ^ (klen * 0xc2b2ae3d27d4eb4full);
    size_t i = 0;
    for (; i + 8 <= klen; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        h = (h ^ mix(w)) * 0x9e3779b97f4a7c15ull;
        h ^= h >> 29;
    }
    uint64_t w = 0;
    for (size_t k = 0; i + k < klen; k++)
        w |= (uint64_t)p[i + k] << (8 * k);
    return mix(h ^ w);
}

void *ga__map_span_slow(ga_map_t *m, uint64_t off, uint64_t len)
{
    unsigned char *base;
    uint64_t lo, hi;
    if (ga__shared_bounds(m->heap, &base, &lo, &hi)) return NULL;
    atomic_store_explicit(&m->lo, lo, memory_order_relaxed);
    atomic_store_explicit(&m->hi, hi, memory_order_relaxed);
    if (off >= lo && off < hi && len <= hi - off) return base + off;
    return NULL;
}

map_table_t *ga__map_table(ga_map_t *m, uint64_t off, bool *bad)
{
    if (!off) return NULL;
    map_table_t *t = map_span(m, off, sizeof *t);
    uint64_t cap = t ? t->cap : 0;
    if (!t || t->magic != MAP_TABLE_MAGIC || cap < MAP_CAP_MIN || cap > MAP_CAP_MAX ||
        (cap & (cap - 1)) || !map_span(m, off, sizeof *t + cap * 8)) {
        *bad = true;
        return NULL;
    }
    return t;
}

map_entry_t *ga__map_entry(ga_map_t *m, uint64_t off)
{
    map_entry_t *e = map_span(m, off, sizeof *e);
    if (!e || e->magic != MAP_ENTRY_MAGIC || e->klen == 0 || e->klen > m->max_key ||
        !map_span(m, off, sizeof *e + e->klen))
        return NULL;
    return e;
}

const unsigned char *ga__map_value(ga_map_t *m, const map_entry_t *e)
{
    uint64_t n = e->vlen;
    if (n > m->max_value) return NULL;
    if (e->voff) return n > MAP_INLINE_MAX ? map_span(m, e->voff, n) : NULL;
    if (n > MAP_INLINE_MAX) return NULL;
    uint64_t off = (uint64_t)((const unsigned char *)e - m->base) + sizeof *e + e->klen;
    return map_span(m, off, n);
}

bool ga__map_entry_is(const map_entry_t *e, uint64_t hash, const void *key, size_t klen)
{
    return e->hash == hash && e->klen == klen && memcmp(e + 1, key, klen) == 0;
}

int ga__map_corrupt(ga_map_t *m, bool quiet, uint64_t where, const char *what)
{
    if (!quiet)
        ga__report(GA_ECORRUPT, (uintptr_t)where, false, "map %s in shared heap %s: %s (at %llu)",
                   m->name, ga_shared_name(m->heap) ? ga_shared_name(m->heap) : "?", what,
                   (unsigned long long)where);
    return GA_ECORRUPT;
}

ga_map_t *ga__map_handle(ga_map_t *m)
{
    if (!m || m->magic != MAP_HANDLE_MAGIC) {
        ga__set_error(GA_EINVAL);
        return NULL;
    }
    return m;
}

/* ---- the lock --------------------------------------------------------------------------- */

GA_TLS const map_root_t *ga__map_held;

int ga__map_lock(ga_map_t *m)
{
    int rc = ga__shared_lock(m->heap, &m->root->lock, "map", 0);
    if (rc < 0) return rc;
    ga__map_held = m->root;
    /* A record left behind means a writer died inside a change, whoever took the word over. */
    if (rc == GA__SHARED_GOT_FROM_DEAD || atomic_load(&m->root->intent.state) != MI_NONE)
        ga__map_repair(m);
    return 0;
}

void ga__map_unlock(ga_map_t *m)
{
    if (ga__map_held == m->root) ga__map_held = NULL;
    ga__shared_unlock(&m->root->lock);
}

/* ---- open, close, remove ---------------------------------------------------------------- */

static uint64_t root_sum(const map_root_t *r)
{
    /* The magic is stored last, after the sum: not part of it. */
    return ga__map_hash((const char *)r + 8, offsetof(map_root_t, sum) - 8);
}

static int options_ok(const ga_map_options_t *o, uint64_t *max_key, uint64_t *max_value)
{
    *max_key = o && o->max_key ? o->max_key : DEFAULT_MAX_KEY;
    *max_value = o && o->max_value ? o->max_value : DEFAULT_MAX_VALUE;
    if (*max_key > GA_MAP_KEY_MAX || *max_value > GA_MAP_VALUE_MAX) return GA_EINVAL;
    if (o && o->capacity > MAP_CAP_MAX / 2) return GA_EINVAL;
    return 0;
}

bool ga__map_handle_at(ga_map_t *m, ga_heap_t *heap, uint64_t root_off)
{
    memset(m, 0, sizeof *m);
    m->magic = MAP_HANDLE_MAGIC;
    m->heap = heap;
    m->root_off = root_off;
    uint64_t lo, hi;
    if (ga__shared_bounds(heap, &m->base, &lo, &hi)) return false;
    atomic_store(&m->lo, lo);
    atomic_store(&m->hi, hi);
    m->root = map_span(m, root_off, sizeof(map_root_t));
    if (!m->root || (root_off & 7)) return false;
    /* Limits as the root says when they are sane (else the largest: checks stay bounded). */
    map_root_t *r = m->root;
    bool ok = r->max_key && r->max_key <= GA_MAP_KEY_MAX && r->max_value <= GA_MAP_VALUE_MAX;
    m->max_key = ok ? r->max_key : GA_MAP_KEY_MAX;
    m->max_value = ok ? r->max_value : GA_MAP_VALUE_MAX;
    return true;
}

/* Under the lock: makes a zeroed root a map, or validates an existing one. */
static int root_setup(ga_map_t *m, unsigned flags, const ga_map_options_t *o, bool *made)
{
    map_root_t *r = m->root;
    uint64_t magic = atomic_load((_Atomic uint64_t *)&r->magic);
    if (magic == 0) {
        if (!(flags & GA_MAP_CREATE)) return GA_ENOENT;
        uint64_t mk, mv;
        options_ok(o, &mk, &mv);
        r->format = MAP_VERSION;
        r->root_size = sizeof *r;
        r->max_key = mk;
        r->max_value = mv;
        r->sum = root_sum(r);
        atomic_store_explicit((_Atomic uint64_t *)&r->magic, MAP_MAGIC, memory_order_release);
        *made = true;
    } else if (magic != MAP_MAGIC || r->format != MAP_VERSION || r->root_size != sizeof *r) {
        return GA_EFORMAT;
    } else if (r->sum != root_sum(r) || !r->max_key || r->max_key > GA_MAP_KEY_MAX ||
               r->max_value > GA_MAP_VALUE_MAX) {
        return ga__map_corrupt(m, false, m->root_off, "map root is damaged");
    }
    m->max_key = r->max_key;
    m->max_value = r->max_value;
    return 0;
}

static ga_map_t *open_unguarded(ga_heap_t *heap, const char *name, unsigned flags,
                                const ga_map_options_t *o)
{
    char obj[64];
    snprintf(obj, sizeof obj, MAP_PREFIX "%s", name);
    size_t size = 0;
    int created = 0;
    void *p = ga_shared_object_find(heap, obj, &size);
    if (!p && ga_last_error() == GA_ENOENT && (flags & GA_MAP_CREATE))
        p = ga_shared_object(heap, obj, sizeof(map_root_t), 0, &created);
    if (!p) return NULL; /* error set */
    if (!created && size < sizeof(map_root_t)) return ga__set_error(GA_EEXIST), NULL;
    ga_map_t *m = ga_malloc(sizeof *m);
    if (!m) return ga__set_error(GA_ENOMEM), NULL;
    uint64_t off = ga_shared_offset(heap, p);
    int rc = ga__map_handle_at(m, heap, off) ? 0 : GA_ECORRUPT;
    snprintf(m->name, sizeof m->name, "%s", name);
    bool made = false;
    if (rc == 0 && (rc = ga__map_lock(m)) == 0) {
        rc = root_setup(m, flags, o, &made);
        if (o && o->capacity && made && rc == 0) rc = ga__map_reserve(m, o->capacity);
        ga__map_unlock(m);
    }
    if (rc == 0 && (flags & GA_MAP_EXCL) && !made) rc = GA_EEXIST;
    if (rc) {
        m->magic = 0;
        ga_free(m);
        ga__set_error(rc);
        return NULL;
    }
    return m;
}

ga_map_t *ga_map_open(ga_heap_t *heap, const char *name, unsigned flags,
                      const ga_map_options_t *options)
{
    if (!ga_shared_is_shared(heap) || (flags & ~(unsigned)(GA_MAP_CREATE | GA_MAP_EXCL))) {
        ga__set_error(GA_EINVAL);
        return NULL;
    }
    if (!ga__shared_name_ok(name, GA_MAP_NAME_MAX)) {
        ga__set_error(GA_ENAME);
        return NULL;
    }
    uint64_t mk, mv;
    if (options_ok(options, &mk, &mv)) {
        ga__set_error(GA_EINVAL);
        return NULL;
    }
    ga__shared_guard_enter();
    ga_map_t *m = open_unguarded(heap, name, flags, options);
    if (ga__shared_guard_leave(heap)) {
        if (m) ga_map_close(m);
        ga__set_error(GA_ECORRUPT);
        return NULL;
    }
    return m;
}

int ga_map_close(ga_map_t *map)
{
    if (!map) return 0;
    if (!ga__map_handle(map)) return GA_EINVAL;
    map->magic = 0;
    ga_free(map);
    return 0;
}

int ga_map_remove(ga_heap_t *heap, const char *name)
{
    ga_map_t *m = ga_map_open(heap, name, 0, NULL);
    if (!m) return ga_last_error();
    ga__shared_guard_enter();
    int rc = ga__map_lock(m);
    if (rc == 0) {
        rc = ga__map_reset(m, true);
        /* The magic goes with the table: a handle still open elsewhere then fails its
         * checks instead of writing into a freed root (until the block is reused). */
        if (rc == 0) atomic_store((_Atomic uint64_t *)&m->root->magic, 0);
        ga__map_unlock(m);
    }
    if (ga__shared_guard_leave(heap)) rc = GA_ECORRUPT;
    char obj[64];
    snprintf(obj, sizeof obj, MAP_PREFIX "%s", name);
    if (rc == 0) rc = ga_shared_object_remove(heap, obj);
    ga_map_close(m);
    return rc ? ga__set_error(rc) : 0;
}
