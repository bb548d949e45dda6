/* SPDX-License-Identifier: MIT */
/*
 * Shared maps: readers (get, get_copy, len), without the lock. A read samples the table's and
 * its key's stripe sequence (both even: no writer inside), probes the table, copies the value
 * out, and keeps the result only when both sequences and the slot word it came from are
 * unchanged (a seqlock: Lameter, "Effective synchronization on Linux/NUMA systems", 2005).
 * Every block touched may have been freed and reused meanwhile, so every offset and length is
 * bounds-checked first and nothing read is trusted before the validation; after
 * MAP_READ_RETRIES failed rounds the read takes the lock (progress under a stream of writers).
 *
 * Those copies race with writers by design. Under ThreadSanitizer they are made byte by byte
 * in uninstrumented functions (a memcpy would be intercepted and reported).
 */
#include "map/map_internal.h"
#include <string.h>

#if defined(__SANITIZE_THREAD__)
#define MAP_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define MAP_TSAN 1
#endif
#endif

#ifdef MAP_TSAN
static GA_NO_SAN void copy_racy(void *dst, const void *src, size_t n)
{
    volatile const unsigned char *s = src;
    unsigned char *d = dst;
    for (size_t i = 0; i < n; i++)
        d[i] = s[i];
}
static GA_NO_SAN bool same_racy(const void *seg, const void *key, size_t n)
{
    volatile const unsigned char *s = seg;
    const unsigned char *k = key;
    for (size_t i = 0; i < n; i++)
        if (s[i] != k[i]) return false;
    return true;
}
#else
static inline void copy_racy(void *dst, const void *src, size_t n)
{
    memcpy(dst, src, n);
}
static inline bool same_racy(const void *seg, const void *key, size_t n)
{
    return memcmp(seg, key, n) == 0;
}
#endif

enum { R_FOUND = 0, R_ABSENT = 1, R_RETRY = 2, R_BAD = 3 };

typedef struct read_s {
    uint64_t hash;
    const void *key;
    size_t klen;
    void *buf;
    size_t cap;
    uint64_t vlen, version;
    bool copied;
} read_t;

static int validate(map_root_t *r, _Atomic uint64_t *sq, uint64_t ts, uint64_t ss,
                    _Atomic uint64_t *slot, uint64_t s)
{
    atomic_thread_fence(memory_order_acquire);
    if (atomic_load_explicit(&r->table_seq, memory_order_relaxed) != ts ||
        atomic_load_explicit(sq, memory_order_relaxed) != ss ||
        (slot && atomic_load_explicit(slot, memory_order_relaxed) != s))
        return R_RETRY;
    return R_FOUND;
}

/* One round: R_FOUND (rd filled), R_ABSENT, R_RETRY, or R_BAD (validated damage). */
static int read_round(ga_map_t *m, read_t *rd)
{
    map_root_t *r = m->root;
    _Atomic uint64_t *sq = &r->seq[map_stripe(rd->hash)];
    uint64_t ts = atomic_load_explicit(&r->table_seq, memory_order_acquire);
    uint64_t ss = atomic_load_explicit(sq, memory_order_acquire);
    if ((ts | ss) & 1) return R_RETRY;
    uint64_t toff = atomic_load_explicit(&r->table_off, memory_order_acquire);
    int bad = R_BAD;
    if (!toff) goto absent;
    map_table_t th, *t = map_span(m, toff, sizeof th);
    if (!t) goto fail;
    copy_racy(&th, t, sizeof th);
    uint64_t cap = th.cap;
    if (th.magic != MAP_TABLE_MAGIC || cap < MAP_CAP_MIN || cap > MAP_CAP_MAX ||
        (cap & (cap - 1)) || !map_span(m, toff, sizeof th + cap * 8))
        goto fail;
    uint64_t i = rd->hash & (cap - 1);
    for (uint64_t n = 0; n < cap; n++, i = (i + 1) & (cap - 1)) {
        uint64_t s = atomic_load_explicit(&t->slots[i], memory_order_acquire);
        if (s == MAP_SLOT_EMPTY) break;
        if (s == MAP_SLOT_TOMB || SLOT_TAG(s) != (uint32_t)(rd->hash >> 32)) continue;
        uint64_t eoff = SLOT_OFF(s);
        map_entry_t eh, *e = map_span(m, eoff, sizeof eh);
        if (!e) goto fail;
        copy_racy(&eh, e, sizeof eh);
        if (eh.magic != MAP_ENTRY_MAGIC || eh.klen == 0 || eh.klen > m->max_key) goto fail;
        if (eh.hash != rd->hash || eh.klen != rd->klen) continue;
        const void *kp = map_span(m, eoff + sizeof eh, eh.klen);
        if (!kp) goto fail;
        if (!same_racy(kp, rd->key, rd->klen)) continue;
        /* Found: the value, bounds-checked. */
        const void *vp = NULL;
        if (eh.vlen > m->max_value) goto fail;
        if (eh.voff)
            vp = eh.vlen > MAP_INLINE_MAX ? map_span(m, eh.voff, eh.vlen) : NULL;
        else if (eh.vlen <= MAP_INLINE_MAX)
            vp = map_span(m, eoff + sizeof eh + eh.klen, eh.vlen);
        if (!vp) goto fail;
        rd->copied = rd->buf && eh.vlen <= rd->cap;
        if (rd->copied) copy_racy(rd->buf, vp, eh.vlen);
        rd->vlen = eh.vlen;
        rd->version = eh.version;
        return validate(r, sq, ts, ss, &t->slots[i], s);
    }
absent:
    return validate(r, sq, ts, ss, NULL, 0) == R_FOUND ? R_ABSENT : R_RETRY;
fail:
    /* Damage seen in a stable state is real; else a writer changed what we read. */
    return validate(r, sq, ts, ss, NULL, 0) == R_FOUND ? bad : R_RETRY;
}

/* R_FOUND / R_ABSENT, or GA_E*. */
static int map_read(ga_map_t *m, read_t *rd)
{
    for (int round = 0; round < MAP_READ_RETRIES; round++) {
        int rc = read_round(m, rd);
        if (rc == R_FOUND || rc == R_ABSENT) return rc;
        if (rc == R_BAD) return ga__map_corrupt(m, false, m->root_off, "map structure is damaged");
    }
    /* Writers kept changing it: read under the lock (a dead writer is repaired there). */
    int rc = ga__map_lock(m);
    if (rc) return rc;
    rc = read_round(m, rd);
    ga__map_unlock(m);
    if (rc == R_FOUND || rc == R_ABSENT) return rc;
    return ga__map_corrupt(m, false, m->root_off, "map structure is damaged");
}

static int key_ok(ga_map_t *m, const void *key, size_t klen)
{
    if (!key && klen) return GA_EINVAL;
    return klen == 0 || klen > m->max_key ? GA_ERANGE : 0;
}

long ga_map_get_copy(ga_map_t *map, const void *key, size_t klen, void *buf, size_t cap,
                     uint64_t *version)
{
    ga_map_t *m = ga__map_handle(map);
    if (!m) return GA_EINVAL;
    int rc = key_ok(m, key, klen);
    if (rc) return ga__set_error(rc);
    read_t rd = {ga__map_hash(key, klen), key, klen, buf, buf ? cap : 0, 0, 0, false};
    ga__shared_guard_enter();
    rc = map_read(m, &rd);
    if (ga__shared_guard_leave(m->heap)) rc = GA_ECORRUPT;
    if (rc < 0) return ga__set_error(rc);
    if (rc == R_ABSENT) return ga__set_error(GA_ENOENT);
    if (version) *version = rd.version;
    if (buf && !rd.copied) return ga__set_error(GA_ERANGE);
    return (long)rd.vlen;
}

int ga_map_get(ga_map_t *map, const void *key, size_t klen, void **val, size_t *vlen,
               uint64_t *version)
{
    ga_map_t *m = ga__map_handle(map);
    if (!m) return GA_EINVAL;
    if (!val || !vlen) return ga__set_error(GA_EINVAL);
    *val = NULL;
    *vlen = 0;
    unsigned char small[256];
    size_t cap = sizeof small;
    unsigned char *buf = small;
    for (;;) {
        long n = ga_map_get_copy(m, key, klen, buf, cap - 1, version);
        if (n >= 0) {
            unsigned char *out = buf == small ? ga_malloc((size_t)n + 1) : buf;
            if (!out) return ga__set_error(GA_ENOMEM);
            if (buf == small) memcpy(out, small, (size_t)n);
            out[n] = 0;
            *val = out;
            *vlen = (size_t)n;
            return 0;
        }
        if (buf != small) ga_free(buf);
        if (n != GA_ERANGE) return (int)n;
        /* Longer than the buffer: its length now, then again (it may change meanwhile). */
        long want = ga_map_get_copy(m, key, klen, NULL, 0, NULL);
        if (want < 0) return (int)want;
        cap = (size_t)want + 1 + 64;
        if (!(buf = ga_malloc(cap))) return ga__set_error(GA_ENOMEM);
    }
}

long ga_map_len(ga_map_t *map)
{
    ga_map_t *m = ga__map_handle(map);
    if (!m) return GA_EINVAL;
    ga__shared_guard_enter();
    uint64_t n = atomic_load_explicit(&m->root->count, memory_order_relaxed);
    if (ga__shared_guard_leave(m->heap)) return ga__set_error(GA_ECORRUPT);
    return n > (uint64_t)LONG_MAX ? ga__set_error(GA_ECORRUPT) : (long)n;
}
