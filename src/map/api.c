/* SPDX-License-Identifier: MIT */
/*
 * Shared maps: the writers' public calls (put, delete, cas, incr, clear), transactions (changes
 * collected in process memory, then one ga__map_apply), the snapshot iteration and info.
 * Each takes the map's lock around the engine of write.c, under the truncation guard.
 */
#include "map/map_internal.h"
#include <string.h>

static int limits_ok(ga_map_t *m, const void *key, size_t klen, const void *val, size_t vlen)
{
    if ((!key && klen) || (!val && vlen)) return GA_EINVAL;
    if (klen == 0 || klen > m->max_key || vlen > m->max_value) return GA_ERANGE;
    return 0;
}

/* Condition of a conditional put, checked under the lock against the current entry. */
typedef struct cond_s {
    int kind; /* 0 none, 1 value bytes (expect NULL: absent), 2 version (0: absent) */
    const void *expect;
    size_t elen;
    uint64_t version;
    int64_t delta; /* kind 3: incr */
    int64_t *result;
} cond_t;

/* The current entry of key under the lock (NULL: absent; *bad on damage). */
static map_entry_t *locked_entry(ga_map_t *m, uint64_t hash, const void *key, size_t klen,
                                 bool *bad)
{
    map_table_t *t = ga__map_current(m, bad);
    if (!t) return NULL;
    int64_t ins, at = ga__map_find_locked(m, t, hash, key, klen, &ins);
    if (at == -2) *bad = true;
    if (at < 0) return NULL;
    return ga__map_entry(m, SLOT_OFF(atomic_load(&t->slots[at])));
}

/* 1 when the condition holds, 0 not, GA_E*. For incr, fills *sum. */
static int cond_holds(ga_map_t *m, const cond_t *c, map_change_t *ch, int64_t *sum)
{
    if (c->kind == 0) return 1;
    bool bad = false;
    map_entry_t *e = locked_entry(m, ch->hash, ch->key, ch->klen, &bad);
    const unsigned char *v = e ? ga__map_value(m, e) : NULL;
    if (bad || (e && !v)) return ga__map_corrupt(m, false, m->root_off, "map entry is damaged");
    switch (c->kind) {
    case 1:
        if (!c->expect) return e == NULL;
        return e && e->vlen == c->elen && memcmp(v, c->expect, c->elen) == 0;
    case 2:
        return c->version == 0 ? e == NULL : e != NULL && e->version == c->version;
    default: { /* incr */
        uint64_t cur = 0;
        if (e && e->vlen != 8) return GA_EINVAL;
        if (e) memcpy(&cur, v, 8);
        *sum = (int64_t)(cur + (uint64_t)c->delta);
        return 1;
    }
    }
}

static int write_one(ga_map_t *map, const void *key, size_t klen, const void *val, size_t vlen,
                     bool del, const cond_t *c)
{
    ga_map_t *m = ga__map_handle(map);
    if (!m) return GA_EINVAL;
    int rc = del ? (!key && klen                     ? GA_EINVAL
                    : klen == 0 || klen > m->max_key ? GA_ERANGE
                                                     : 0)
                 : limits_ok(m, key, klen, val, vlen);
    if (rc) return ga__set_error(rc);
    map_change_t ch = {key, klen, val, vlen, del, ga__map_hash(key, klen)};
    int64_t sum = 0;
    ga__shared_guard_enter();
    if ((rc = ga__map_lock(m)) == 0) {
        rc = cond_holds(m, c, &ch, &sum);
        if (rc == 1) {
            if (c->kind == 3) ch.val = &sum, ch.vlen = 8;
            bool absent = false;
            if (del) { /* deleting an absent key is GA_ENOENT here (not in a transaction) */
                bool bad = false;
                absent = !locked_entry(m, ch.hash, key, klen, &bad) && !bad;
            }
            rc = absent ? GA_ENOENT : ga__map_apply(m, &ch, 1);
            if (rc == 0) rc = 1;
        }
        ga__map_unlock(m);
    }
    if (ga__shared_guard_leave(m->heap)) rc = GA_ECORRUPT;
    if (rc < 0) return ga__set_error(rc);
    if (c->kind == 3 && c->result) *c->result = sum;
    return c->kind == 1 || c->kind == 2 ? rc : 0;
}

int ga_map_put(ga_map_t *map, const void *key, size_t klen, const void *val, size_t vlen)
{
    cond_t c = {0};
    return write_one(map, key, klen, val, vlen, false, &c);
}

int ga_map_delete(ga_map_t *map, const void *key, size_t klen)
{
    cond_t c = {0};
    return write_one(map, key, klen, NULL, 0, true, &c);
}

int ga_map_cas(ga_map_t *map, const void *key, size_t klen, const void *expect, size_t elen,
               const void *val, size_t vlen)
{
    if (!expect && elen) return ga__set_error(GA_EINVAL);
    cond_t c = {1, expect, elen, 0, 0, NULL};
    return write_one(map, key, klen, val, vlen, false, &c);
}

int ga_map_cas_version(ga_map_t *map, const void *key, size_t klen, uint64_t version,
                       const void *val, size_t vlen)
{
    cond_t c = {2, NULL, 0, version, 0, NULL};
    return write_one(map, key, klen, val, vlen, false, &c);
}

int ga_map_incr(ga_map_t *map, const void *key, size_t klen, int64_t delta, int64_t *result)
{
    static const int64_t zero = 0;
    cond_t c = {3, NULL, 0, 0, delta, result};
    return write_one(map, key, klen, &zero, 8, false, &c);
}

int ga_map_clear(ga_map_t *map)
{
    ga_map_t *m = ga__map_handle(map);
    if (!m) return GA_EINVAL;
    ga__shared_guard_enter();
    int rc = ga__map_lock(m);
    if (rc == 0) {
        rc = ga__map_reset(m, true);
        ga__map_unlock(m);
    }
    if (ga__shared_guard_leave(m->heap)) rc = GA_ECORRUPT;
    return rc ? ga__set_error(rc) : 0;
}

/* ---- transactions ----------------------------------------------------------------------- */

enum { TX_PUT, TX_DEL, TX_EXPECT };

typedef struct txn_op_s {
    unsigned char *key; /* key then value, one ga_malloc block */
    size_t klen, vlen;
    int kind; /* TX_* */
    uint64_t hash;
    uint64_t version; /* TX_EXPECT: the version the key must have at commit (0: absent) */
} txn_op_t;

struct ga_map_txn_s {
    uint32_t magic;
    ga_map_t *map;
    txn_op_t *ops;
    size_t n, cap, changes; /* changes: the ops that are no TX_EXPECT */
};
#define TXN_MAGIC 0x54584e31u

ga_map_txn_t *ga_map_txn_begin(ga_map_t *map)
{
    ga_map_t *m = ga__map_handle(map);
    if (!m) return NULL;
    ga_map_txn_t *t = ga_malloc(sizeof *t);
    if (!t) return ga__set_error(GA_ENOMEM), NULL;
    memset(t, 0, sizeof *t);
    t->magic = TXN_MAGIC;
    t->map = m;
    return t;
}

static int txn_add(ga_map_txn_t *t, const void *key, size_t klen, const void *val, size_t vlen,
                   int kind, uint64_t version)
{
    if (!t || t->magic != TXN_MAGIC) return ga__set_error(GA_EINVAL);
    int rc = limits_ok(t->map, key, klen, kind == TX_PUT ? val : NULL, kind == TX_PUT ? vlen : 0);
    if (rc) return ga__set_error(rc);
    if (kind != TX_PUT) vlen = 0;
    uint64_t h = ga__map_hash(key, klen);
    unsigned char *kv = ga_malloc(klen + vlen + 1);
    if (!kv) return ga__set_error(GA_ENOMEM);
    memcpy(kv, key, klen);
    if (vlen) memcpy(kv + klen, val, vlen);
    txn_op_t op = {kv, klen, vlen, kind, h, version};
    for (size_t i = 0; i < t->n; i++) { /* a later change of a key replaces the earlier */
        txn_op_t *o = &t->ops[i];
        if ((o->kind == TX_EXPECT) == (kind == TX_EXPECT) && o->hash == h && o->klen == klen &&
            memcmp(o->key, key, klen) == 0) {
            ga_free(o->key);
            *o = op;
            return 0;
        }
    }
    if (t->n == t->cap) {
        size_t nc = t->cap ? t->cap * 2 : 8;
        txn_op_t *no = ga_realloc(t->ops, nc * sizeof *no);
        if (!no) {
            ga_free(kv);
            return ga__set_error(GA_ENOMEM);
        }
        t->ops = no;
        t->cap = nc;
    }
    t->ops[t->n++] = op;
    t->changes += kind != TX_EXPECT;
    return 0;
}

int ga_map_txn_put(ga_map_txn_t *txn, const void *key, size_t klen, const void *val, size_t vlen)
{
    return txn_add(txn, key, klen, val, vlen, TX_PUT, 0);
}

int ga_map_txn_delete(ga_map_txn_t *txn, const void *key, size_t klen)
{
    return txn_add(txn, key, klen, NULL, 0, TX_DEL, 0);
}

int ga_map_txn_expect(ga_map_txn_t *txn, const void *key, size_t klen, uint64_t version)
{
    return txn_add(txn, key, klen, NULL, 0, TX_EXPECT, version);
}

void ga_map_txn_abort(ga_map_txn_t *txn)
{
    if (!txn || txn->magic != TXN_MAGIC) return;
    for (size_t i = 0; i < txn->n; i++)
        ga_free(txn->ops[i].key);
    ga_free(txn->ops);
    txn->magic = 0;
    ga_free(txn);
}

/* Under the lock: 1 when every expectation holds, 0 when one does not, GA_E*. */
static int expectations_hold(ga_map_t *m, ga_map_txn_t *txn)
{
    for (size_t i = 0; i < txn->n; i++) {
        txn_op_t *o = &txn->ops[i];
        if (o->kind != TX_EXPECT) continue;
        bool bad = false;
        map_entry_t *e = locked_entry(m, o->hash, o->key, o->klen, &bad);
        if (bad) return ga__map_corrupt(m, false, m->root_off, "map entry is damaged");
        if (o->version == 0 ? e != NULL : e == NULL || e->version != o->version) return 0;
    }
    return 1;
}

int ga_map_txn_commit(ga_map_txn_t *txn)
{
    if (!txn || txn->magic != TXN_MAGIC) return ga__set_error(GA_EINVAL);
    ga_map_t *m = txn->map;
    int rc = 0;
    size_t n = 0;
    map_change_t *ch = txn->changes ? ga_malloc(txn->changes * sizeof *ch) : NULL;
    if (txn->changes && !ch) rc = GA_ENOMEM;
    for (size_t i = 0; i < txn->n && ch; i++) {
        txn_op_t *o = &txn->ops[i];
        if (o->kind != TX_EXPECT)
            ch[n++] = (map_change_t){o->key,  o->klen,           o->key + o->klen,
                                     o->vlen, o->kind == TX_DEL, o->hash};
    }
    if (rc == 0 && txn->n) {
        ga__shared_guard_enter();
        if ((rc = ga__map_lock(m)) == 0) {
            rc = expectations_hold(m, txn);
            rc = rc == 1 ? (n ? ga__map_apply(m, ch, n) : 0) : rc == 0 ? 1 : rc;
            ga__map_unlock(m);
        }
        if (ga__shared_guard_leave(m->heap)) rc = GA_ECORRUPT;
    }
    ga_free(ch);
    ga_map_txn_abort(txn);
    return rc < 0 ? ga__set_error(rc) : rc;
}

/* ---- iteration, info ---------------------------------------------------------------------- */

typedef struct snap_s {
    unsigned char *buf; /* records: klen, vlen, version (uint64 each), key, value, padded */
    size_t len, cap;
    long n;
} snap_t;

static int snap_add(snap_t *s, const map_entry_t *e, const unsigned char *v)
{
    size_t need = 24 + ((e->klen + e->vlen + 7) & ~(size_t)7);
    if (s->len + need > s->cap) {
        size_t nc = s->cap ? s->cap * 2 : 4096;
        while (nc < s->len + need)
            nc *= 2;
        unsigned char *nb = ga_realloc(s->buf, nc);
        if (!nb) return GA_ENOMEM;
        s->buf = nb;
        s->cap = nc;
    }
    uint64_t hdr[3] = {e->klen, e->vlen, e->version};
    memcpy(s->buf + s->len, hdr, 24);
    memcpy(s->buf + s->len + 24, e + 1, e->klen);
    if (e->vlen) memcpy(s->buf + s->len + 24 + e->klen, v, e->vlen);
    s->len += need;
    s->n++;
    return 0;
}

/* Copies every entry into s (lock held). */
static int snapshot(ga_map_t *m, snap_t *s)
{
    bool bad = false;
    map_table_t *t = ga__map_current(m, &bad);
    if (bad) return ga__map_corrupt(m, false, m->root_off, "map table is damaged");
    for (uint64_t i = 0; t && i < t->cap; i++) {
        uint64_t sl = atomic_load(&t->slots[i]);
        if (!SLOT_LIVE(sl)) continue;
        map_entry_t *e = ga__map_entry(m, SLOT_OFF(sl));
        const unsigned char *v = e ? ga__map_value(m, e) : NULL;
        if (!v) return ga__map_corrupt(m, false, SLOT_OFF(sl), "map entry is damaged");
        int rc = snap_add(s, e, v);
        if (rc) return rc;
    }
    return 0;
}

long ga_map_iterate(ga_map_t *map, ga_map_fn_t *fn, void *arg)
{
    ga_map_t *m = ga__map_handle(map);
    if (!m) return GA_EINVAL;
    if (!fn) return ga__set_error(GA_EINVAL);
    snap_t s = {0};
    ga__shared_guard_enter();
    int rc = ga__map_lock(m);
    if (rc == 0) {
        rc = snapshot(m, &s);
        ga__map_unlock(m);
    }
    if (ga__shared_guard_leave(m->heap)) rc = GA_ECORRUPT;
    long calls = 0;
    for (size_t off = 0; rc == 0 && off < s.len; calls++) {
        uint64_t hdr[3];
        memcpy(hdr, s.buf + off, 24);
        const unsigned char *k = s.buf + off + 24;
        off += 24 + ((hdr[0] + hdr[1] + 7) & ~(uint64_t)7);
        if (fn(k, hdr[0], k + hdr[0], hdr[1], hdr[2], arg)) {
            calls++;
            break;
        }
    }
    ga_free(s.buf);
    return rc ? ga__set_error(rc) : calls;
}

int ga_map_info(ga_map_t *map, ga_map_info_t *info)
{
    ga_map_t *m = ga__map_handle(map);
    if (!m) return GA_EINVAL;
    if (!info) return ga__set_error(GA_EINVAL);
    memset(info, 0, sizeof *info);
    ga__shared_guard_enter();
    int rc = ga__map_lock(m);
    if (rc == 0) {
        uint64_t blocks = 0, bytes = 0;
        rc = ga__map_check_locked(m, false, &blocks, &bytes);
        map_root_t *r = m->root;
        info->count = (size_t)atomic_load(&r->count);
        info->capacity = (size_t)r->capacity;
        info->tombs = (size_t)r->tombs;
        info->blocks = (size_t)blocks;
        info->bytes = (size_t)bytes;
        info->max_key = (size_t)m->max_key;
        info->max_value = (size_t)m->max_value;
        info->version = r->version;
        info->takeovers = atomic_load(&r->lock.takeovers);
        ga__map_unlock(m);
    }
    if (ga__shared_guard_leave(m->heap)) rc = GA_ECORRUPT;
    return rc ? ga__set_error(rc) : 0;
}
