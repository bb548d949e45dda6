/* SPDX-License-Identifier: MIT */
/*
 * The native ga_handle_* API over the slot table (table.c) and tagged blocks (block.c), and the
 * slow paths of the inline lock/unlock in handle.h. Handles of shared heaps are passed on to
 * src/shared/.
 *
 * Handle values: bit 3 set and bits 0..2 clear (v % 16 == 8), bits 4..27 the slot index,
 * bits 28..51 the slot generation (never 0 for a live handle), bits 52..62 a heap id (0 = the
 * process heap; others are reserved for shared heaps), bit 63 clear. No pointer is stored in a
 * handle, so handle values are position independent.
 *
 * Concurrency: lock/unlock are one CAS on the state word. Everything that changes the data,
 * size, attributes or liveness first sets BUSY by CAS (lockers wait for it to clear; unlocks
 * do not need to), then releases it with a CAS that bumps the sequence, so readers can take a
 * consistent lock-free snapshot (seqlock style). An alloc or free marks its thread's cache
 * (ga__op_begin/ga__op_end) so that a fork child knows a slot may be between places.
 */
#include "handle/handle_internal.h"
#include "shared/shared.h"
#include "os/os.h"
#include <sched.h>
#include <stdatomic.h>
#include <pthread.h>

static inline uint64_t attr_to_state(unsigned f)
{
    return ((f & GA_HDISCARDABLE) ? S_DISCARDABLE : 0) | ((f & GA_HSHARE) ? S_SHARE : 0);
}

static void backoff(unsigned *spins)
{
    if (++*spins < 64) {
        atomic_signal_fence(memory_order_seq_cst);
    } else {
        sched_yield();
    }
}

/* ---- busy bit and snapshots ---------------------------------------------------------- */

/* Sets BUSY on h's slot. 0 (and *ps, *pst = the state with BUSY) or GA_EHANDLE. */
static int slot_begin(ga_handle_t h, ga__slot_t **ps, uint64_t *pst)
{
    ga__slot_t *s = ga__slot_of(h);
    if (!s) return GA_EHANDLE;
    uint64_t st = atomic_load_explicit(&s->state, memory_order_relaxed);
    for (unsigned spins = 0;;) {
        if (!ga__st_matches(st, h)) return GA_EHANDLE;
        if (st & S_BUSY) {
            backoff(&spins);
            st = atomic_load_explicit(&s->state, memory_order_relaxed);
            continue;
        }
        if (atomic_compare_exchange_weak_explicit(&s->state, &st, st | S_BUSY, memory_order_acquire,
                                                  memory_order_relaxed))
            break;
    }
    /* Seqlock writer: the data/size stores below must not become visible before BUSY. */
    atomic_thread_fence(memory_order_release);
    *ps = s;
    *pst = st | S_BUSY;
    return 0;
}

/* Clears BUSY, applies set/clear to the flag bits, bumps the sequence. Unlocks may have changed
 * the count meanwhile, hence the CAS loop. */
static void slot_end(ga__slot_t *s, uint64_t set, uint64_t clear)
{
    uint64_t st = atomic_load_explicit(&s->state, memory_order_relaxed);
    uint64_t nst;
    do {
        nst = (st & ~(clear | S_BUSY | S_SEQ_MASK)) | set | ((st + S_SEQ_ONE) & S_SEQ_MASK);
    } while (!atomic_compare_exchange_weak_explicit(&s->state, &st, nst, memory_order_release,
                                                    memory_order_relaxed));
}

typedef struct {
    uint64_t state;
    uint64_t *data;
    size_t size;
} snap_t;

/* A consistent view of a live slot without taking BUSY. 0 or GA_EHANDLE. */
static int slot_snapshot(ga_handle_t h, snap_t *out)
{
    ga__slot_t *s = ga__slot_of(h);
    if (!s) return GA_EHANDLE;
    for (unsigned spins = 0;;) {
        uint64_t st = atomic_load_explicit(&s->state, memory_order_acquire);
        if (!ga__st_matches(st, h)) return GA_EHANDLE;
        if (!(st & S_BUSY)) {
            out->data = atomic_load_explicit(&s->data, memory_order_relaxed);
            out->size = atomic_load_explicit(&s->size, memory_order_relaxed);
            atomic_thread_fence(memory_order_acquire);
            uint64_t st2 = atomic_load_explicit(&s->state, memory_order_relaxed);
            if (((st ^ st2) & ~S_COUNT) == 0) {
                out->state = st2;
                return 0;
            }
        }
        backoff(&spins);
    }
}

/* ---- handle operations --------------------------------------------------------------- */

int ga__handle_alloc(size_t size, unsigned flags, ga_handle_t *out)
{
    if (flags & ~(unsigned)(GA_HZERO | GA_HDISCARDABLE | GA_HSHARE)) return GA_EINVAL;
    if (size > MAX_REQUEST) return GA_EOVERFLOW;
    uint32_t idx;
    ga__tcache_t *c = ga__tl_cache;
    if (GA_UNLIKELY(!c) && !(c = ga__tcache_attach())) return GA_ENOMEM;
    ga__op_begin(c);
    int rc = ga__slot_take(&idx, c);
    if (rc) {
        ga__op_end(c);
        return rc;
    }
    ga__slot_t *s = ga__slot_at(idx);
    uint64_t st = atomic_load_explicit(&s->state, memory_order_relaxed);
    ga_handle_t h = ga__make_handle(idx, ga__st_gen(st));
    uint64_t *hdr = NULL;
    if (size) {
        hdr = ga__block_alloc(size, flags & GA_HZERO, h, &rc);
        if (!hdr) {
            ga__slot_give(idx); /* its generation was never handed out: reuse it as is */
            ga__op_end(c);
            return rc;
        }
    }
    atomic_store_explicit(&s->data, hdr, memory_order_relaxed);
    atomic_store_explicit(&s->size, size, memory_order_relaxed);
    /* A free slot is never CASed by anyone (every CAS expects LIVE), so a store is enough. */
    atomic_store_explicit(&s->state,
                          (st & (S_GEN_MASK | S_SEQ_MASK)) | S_LIVE | attr_to_state(flags) |
                              (size ? 0 : S_DISCARDED),
                          memory_order_release);
    ga__live_add(c, 1);
    ga__op_end(c);
    *out = h;
    return 0;
}

ga_handle_t ga_handle_alloc(ga_heap_t *heap, size_t size, unsigned flags)
{
    ga_handle_t h = 0;
    if (heap && ga__shared_is_heap(heap)) return ga__shared_handle_alloc(heap, size, flags);
    int rc = (heap && heap != ga_heap_default()) ? GA_EINVAL : ga__handle_alloc(size, flags, &h);
    if (rc) {
        ga__set_error(rc);
        return 0;
    }
    return h;
}

int ga_handle_free(ga_handle_t h)
{
    if (IS_SHARED(h)) return ga__shared_handle_free(h);
    ga__slot_t *s;
    uint64_t st;
    int rc = slot_begin(h, &s, &st);
    if (rc) return rc;
    ga__tcache_t *c = ga__tl_cache ? ga__tl_cache : ga__tcache_attach(); /* NULL: out of memory */
    if (c) ga__op_begin(c);
    uint64_t *hdr = atomic_load_explicit(&s->data, memory_order_relaxed);
    atomic_store_explicit(&s->data, NULL, memory_order_relaxed);
    atomic_store_explicit(&s->size, 0, memory_order_relaxed);
    uint32_t gen = ga__st_gen(st) + 1;
    if (gen > H_FIELD_MASK) gen = 1;
    atomic_store_explicit(&s->state,
                          ((uint64_t)gen << S_GEN_SHIFT) | ((st + S_SEQ_ONE) & S_SEQ_MASK),
                          memory_order_release);
    if (hdr) ga__block_free(hdr, 0);
    ga__slot_give(ga__h_index(h));
    if (GA_LIKELY(c)) {
        ga__live_add(c, -1);
        ga__op_end(c);
    } else {
        atomic_fetch_sub(&ga__tcaches.retired, 1); /* no cache could be made for this thread */
    }
    return 0;
}

int ga__handle_lock_slow(ga_handle_t h, void **out)
{
    if (IS_SHARED(h)) {
        void *p = ga__shared_handle_lock(h);
        if (!p) return ga_last_error();
        *out = p;
        return 0;
    }
    ga__slot_t *s = ga__slot_of(h);
    if (!s) return GA_EHANDLE;
    uint64_t st = atomic_load_explicit(&s->state, memory_order_relaxed);
    for (unsigned spins = 0;;) {
        if (!ga__st_matches(st, h)) return GA_EHANDLE;
        if (st & S_BUSY) { /* a resize or free is under way: wait for it */
            backoff(&spins);
            st = atomic_load_explicit(&s->state, memory_order_relaxed);
            continue;
        }
        if (st & S_DISCARDED) return GA_EDISCARDED;
        uint64_t nst = (st & S_COUNT) == S_COUNT ? st : st + 1; /* saturates at 255 */
        if (atomic_compare_exchange_weak_explicit(&s->state, &st, nst, memory_order_acquire,
                                                  memory_order_relaxed))
            break;
    }
    *out = (char *)atomic_load_explicit(&s->data, memory_order_relaxed) + GA__HDR_SIZE;
    return 0;
}

int ga__handle_lock(ga_handle_t h, void **out)
{
    return ga__handle_lock_inline(h, out);
}

void *ga_handle_lock(ga_handle_t h)
{
    void *p;
    int rc = ga__handle_lock(h, &p);
    if (GA_UNLIKELY(rc)) {
        ga__set_error(rc);
        return NULL;
    }
    return p;
}

int ga__handle_unlock_slow(ga_handle_t h)
{
    if (IS_SHARED(h)) return ga__shared_handle_unlock(h);
    ga__slot_t *s = ga__slot_of(h);
    if (!s) return GA_EHANDLE;
    uint64_t st = atomic_load_explicit(&s->state, memory_order_relaxed);
    for (;;) {
        if (!ga__st_matches(st, h)) return GA_EHANDLE;
        if (!(st & S_COUNT)) return GA_ENOTLOCKED;
        /* Release: the caller's writes to the data happen before a later move copies them. */
        if (atomic_compare_exchange_weak_explicit(&s->state, &st, st - 1, memory_order_release,
                                                  memory_order_relaxed))
            return (int)((st - 1) & S_COUNT);
    }
}

int ga_handle_unlock(ga_handle_t h)
{
    return ga__handle_unlock_inline(h);
}

int ga_handle_discard(ga_handle_t h)
{
    if (IS_SHARED(h)) return ga__shared_handle_discard(h);
    ga__slot_t *s;
    uint64_t st;
    int rc = slot_begin(h, &s, &st);
    if (rc) return rc;
    if (st & S_COUNT) {
        slot_end(s, 0, 0);
        return GA_ELOCKED;
    }
    uint64_t *hdr = atomic_load_explicit(&s->data, memory_order_relaxed);
    atomic_store_explicit(&s->data, NULL, memory_order_relaxed);
    atomic_store_explicit(&s->size, 0, memory_order_relaxed);
    slot_end(s, S_DISCARDED, 0);
    if (hdr) ga__block_free(hdr, 0);
    return 0;
}

int ga_handle_realloc(ga_handle_t h, size_t size, unsigned flags)
{
    if (IS_SHARED(h)) return ga__shared_handle_realloc(h, size, flags);
    if (flags & ~(unsigned)(GA_HZERO | GA_HMOVE)) return GA_EINVAL;
    if (size == 0) return ga_handle_discard(h);
    ga__slot_t *s;
    uint64_t st;
    int rc = slot_begin(h, &s, &st);
    if (rc) return rc;
    uint64_t *hdr = atomic_load_explicit(&s->data, memory_order_relaxed), *old = NULL;
    if (!hdr) {
        /* Discarded blocks are never locked: fresh data. */
        hdr = ga__block_alloc(size, flags & GA_HZERO, h, &rc);
    } else {
        bool locked = (st & S_COUNT) != 0;
        rc = ga__block_resize(&hdr, hdr[0], size, flags & GA_HZERO, !locked || (flags & GA_HMOVE),
                              h, 0, &old);
    }
    if (rc == 0) {
        atomic_store_explicit(&s->data, hdr, memory_order_relaxed);
        atomic_store_explicit(&s->size, size, memory_order_relaxed);
    }
    slot_end(s, 0, rc == 0 ? S_DISCARDED : 0);
    /* Freed only now: until data points to the new block, the slot's block is the old one
     * (what a fork child relies on, see repair_busy_slots). */
    if (old) ga__block_free(old, 0);
    return rc;
}

int ga_handle_modify(ga_handle_t h, unsigned set, unsigned clear)
{
    if (IS_SHARED(h)) return ga__shared_handle_modify(h, set, clear);
    if ((set | clear) & ~(unsigned)(GA_HDISCARDABLE | GA_HSHARE)) return GA_EINVAL;
    ga__slot_t *s;
    uint64_t st;
    int rc = slot_begin(h, &s, &st);
    if (rc) return rc;
    slot_end(s, attr_to_state(set), attr_to_state(clear) & ~attr_to_state(set));
    return 0;
}

int ga_handle_info(ga_handle_t h, ga_handle_info_t *info)
{
    if (IS_SHARED(h)) return ga__shared_handle_info(h, info);
    if (!info) return GA_EINVAL;
    snap_t sn;
    int rc = slot_snapshot(h, &sn);
    if (rc) return rc;
    info->size = sn.size;
    info->lock_count = (unsigned)(sn.state & S_COUNT);
    info->flags = ((sn.state & S_DISCARDABLE) ? GA_HDISCARDABLE : 0u) |
                  ((sn.state & S_SHARE) ? GA_HSHARE : 0u) |
                  ((sn.state & S_DISCARDED) ? GA_HDISCARDED : 0u);
    info->data = sn.data ? ga__user_of(sn.data) : NULL;
    return 0;
}

size_t ga_handle_size(ga_handle_t h)
{
    if (IS_SHARED(h)) return ga__shared_handle_size(h);
    snap_t sn;
    int rc = slot_snapshot(h, &sn);
    if (rc) {
        ga__set_error(rc);
        return 0;
    }
    return sn.size;
}

ga_handle_t ga_handle_from_ptr(const void *p)
{
    ga__set_error(GA_OK);
    ga_handle_t sh = ga__shared_handle_from_ptr(p); /* 0 and no error: not in a shared heap */
    if (sh || ga_last_error() == GA_ENOTOWNED) return sh;
    ga__ref_t ref;
    if (ga__classify(p, &ref) != GA__K_DATA) {
        ga__set_error(GA_ENOTOWNED);
        return 0;
    }
    return ref.handle;
}

_Atomic(ga__slot_t *) ga__handle_dir[GA__DIR_SIZE];

ga__table_t ga__handle_table = {.grow_lock = PTHREAD_MUTEX_INITIALIZER};

static GA_TLS unsigned tl_shard; /* shard + 1; 0 = not yet chosen */

static inline unsigned my_shard(void)
{
    unsigned s = tl_shard;
    if (GA_UNLIKELY(!s))
        tl_shard = s =
            atomic_fetch_add_explicit(&ga__handle_table.next_thread, 1, memory_order_relaxed) %
                NSHARDS +
            1;
    return s - 1;
}

/* ---- free stacks --------------------------------------------------------------------- */

static bool stack_pop(_Atomic uint64_t *head, uint32_t *idx)
{
    uint64_t hd = atomic_load_explicit(head, memory_order_acquire);
    while ((uint32_t)hd) {
        uint32_t i = (uint32_t)hd - 1;
        /* May read a link that is being rewritten: then the tagged CAS fails. */
        uint32_t next = atomic_load_explicit(&ga__slot_at(i)->next, memory_order_relaxed);
        uint64_t nh = (((hd >> 32) + 1) << 32) | next;
        if (atomic_compare_exchange_weak_explicit(head, &hd, nh, memory_order_acquire,
                                                  memory_order_acquire)) {
            *idx = i;
            return true;
        }
    }
    return false;
}

void ga__stack_push(_Atomic uint64_t *head, uint32_t first, uint32_t last)
{
    ga__slot_t *ls = ga__slot_at(last);
    uint64_t hd = atomic_load_explicit(head, memory_order_relaxed);
    uint64_t nh;
    do {
        atomic_store_explicit(&ls->next, (uint32_t)hd, memory_order_relaxed);
        nh = (((hd >> 32) + 1) << 32) | (first + 1);
    } while (!atomic_compare_exchange_weak_explicit(head, &hd, nh, memory_order_release,
                                                    memory_order_relaxed));
}

static bool pop_any(unsigned shard, uint32_t *idx)
{
    for (unsigned k = 0; k < NSHARDS; k++)
        if (stack_pop(&ga__handle_table.free_head[(shard + k) % NSHARDS].v, idx)) return true;
    return false;
}

/* Maps a new chunk: its first slot goes to the caller, the rest onto shard's stack. */
static GA_NOINLINE int grow(unsigned shard, uint32_t *idx)
{
    int rc = 0;
    pthread_mutex_lock(&ga__handle_table.grow_lock);
    if (pop_any(shard, idx)) /* another thread grew the table meanwhile */
        goto out;
    uint32_t c = atomic_load_explicit(&ga__handle_table.nchunks, memory_order_relaxed);
    uint32_t limit = atomic_load_explicit(&ga__handle_table.chunk_limit, memory_order_relaxed);
    if (c == (limit ? limit : DIR_SIZE)) {
        rc = GA_EFULL;
        goto out;
    }
    size_t bytes = CHUNK_SLOTS * sizeof(ga__slot_t); /* 128 KiB: a multiple of any page size */
    ga__slot_t *chunk = ga__os_map_aligned(bytes, ga__os_page_size());
    if (!chunk) {
        rc = GA_ENOMEM;
        goto out;
    }
    uint32_t base = c * CHUNK_SLOTS;
    for (uint32_t i = 0; i < CHUNK_SLOTS; i++) {
        atomic_init(&chunk[i].state, (uint64_t)1 << S_GEN_SHIFT);
        atomic_init(&chunk[i].next, base + i + 2);
    }
    atomic_store_explicit(&ga__handle_dir[c], chunk, memory_order_release);
    atomic_store_explicit(&ga__handle_table.nchunks, c + 1, memory_order_release);
    *idx = base;
    ga__stack_push(&ga__handle_table.free_head[shard].v, base + 1, base + CHUNK_SLOTS - 1);
out:
    pthread_mutex_unlock(&ga__handle_table.grow_lock);
    return rc;
}

/* ---- per-thread slot caches and live counts ----------------------------------------- */

ga__tcaches_t ga__tcaches = {.lock = PTHREAD_MUTEX_INITIALIZER, .once = PTHREAD_ONCE_INIT};

GA_TLS ga__tcache_t *ga__tl_cache;

static void tcache_exit(void *arg);

static void tcache_key_create(void)
{
    pthread_key_create(&ga__tcaches.key, tcache_exit);
    pthread_atfork(ga__handle_fork_prepare, ga__handle_fork_parent, ga__handle_fork_child);
}

GA_NOINLINE ga__tcache_t *ga__tcache_attach(void)
{
    pthread_once(&ga__tcaches.once, tcache_key_create);
    pthread_mutex_lock(&ga__tcaches.lock);
    ga__tcache_t *c = ga__tcaches.spare;
    if (c) {
        ga__tcaches.spare = c->next_spare;
    } else {
        if (!ga__tcaches.pool_left) {
            size_t page = ga__os_page_size();
            ga__tcaches.pool = ga__os_map_aligned(page, page);
            ga__tcaches.pool_left = ga__tcaches.pool ? page / sizeof(ga__tcache_t) : 0;
        }
        if (!ga__tcaches.pool_left) {
            pthread_mutex_unlock(&ga__tcaches.lock);
            return NULL;
        }
        c = ga__tcaches.pool++;
        ga__tcaches.pool_left--;
        c->next_all = ga__tcaches.all;
        ga__tcaches.all = c;
    }
    c->owned = true;
    pthread_mutex_unlock(&ga__tcaches.lock);
    pthread_setspecific(ga__tcaches.key, c);
    ga__tl_cache = c;
    return c;
}

/* Pushes cache entries [from, n) onto this thread's stack as one chain. */
static void tcache_spill(ga__tcache_t *c, uint32_t from)
{
    uint32_t n = atomic_load_explicit(&c->n, memory_order_relaxed);
    if (from >= n) return;
    for (uint32_t i = from; i + 1 < n; i++) {
        uint32_t a = atomic_load_explicit(&c->idx[i], memory_order_relaxed);
        uint32_t b = atomic_load_explicit(&c->idx[i + 1], memory_order_relaxed);
        atomic_store_explicit(&ga__slot_at(a)->next, b + 1, memory_order_relaxed);
    }
    ga__stack_push(&ga__handle_table.free_head[my_shard()].v,
                   atomic_load_explicit(&c->idx[from], memory_order_relaxed),
                   atomic_load_explicit(&c->idx[n - 1], memory_order_relaxed));
    atomic_store_explicit(&c->n, from, memory_order_relaxed);
}

void ga__tcache_retire(ga__tcache_t *c)
{
    tcache_spill(c, 0);
    atomic_fetch_add(&ga__tcaches.retired, atomic_load(&c->live));
    atomic_store(&c->live, 0);
    c->owned = false;
    c->next_spare = ga__tcaches.spare;
    ga__tcaches.spare = c;
}

static void tcache_exit(void *arg)
{
    pthread_mutex_lock(&ga__tcaches.lock);
    ga__tcache_retire(arg);
    pthread_mutex_unlock(&ga__tcaches.lock);
    ga__tl_cache = NULL;
}

void ga__handle_test_limit(uint32_t chunks)
{
    atomic_store(&ga__handle_table.chunk_limit, chunks > DIR_SIZE ? DIR_SIZE : chunks);
}

uint32_t ga__handle_test_chunks(void)
{
    return atomic_load(&ga__handle_table.nchunks);
}

/* ---- taking and giving slots -------------------------------------------------------- */

/* The slow half of ga__slot_take. */
int ga__slot_refill(uint32_t *idx, ga__tcache_t *c)
{
    unsigned shard = my_shard();
    if (!pop_any(shard, idx)) return grow(shard, idx);
    /* Refill half the cache while we are at it. */
    uint32_t got = 0, i;
    while (got < TCACHE_MAX / 2 && pop_any(shard, &i))
        atomic_store_explicit(&c->idx[got++], i, memory_order_relaxed);
    atomic_store_explicit(&c->n, got, memory_order_relaxed);
    return 0;
}

void ga__slot_give(uint32_t idx)
{
    ga__tcache_t *c = ga__tl_cache;
    if (GA_UNLIKELY(!c) && !(c = ga__tcache_attach())) {
        ga__stack_push(&ga__handle_table.free_head[my_shard()].v, idx, idx);
        return;
    }
    uint32_t n = atomic_load_explicit(&c->n, memory_order_relaxed);
    if (GA_UNLIKELY(n == TCACHE_MAX)) {
        tcache_spill(c, TCACHE_MAX / 2);
        n = TCACHE_MAX / 2;
    }
    atomic_store_explicit(&c->idx[n], idx, memory_order_relaxed);
    atomic_store_explicit(&c->n, n + 1, memory_order_relaxed);
}
