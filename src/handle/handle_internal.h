/* SPDX-License-Identifier: MIT */
/*
 * What the handle folder's own files share (block.c, table.c, api.c, fork.c, check.c): short
 * names for the slot layout that handle.h publishes, the table and the per-thread slot caches
 * (one struct each), and the inline helpers of the hot paths (handle alloc/free, tags). Nothing
 * outside src/handle/ includes this; the other folders use handle.h.
 *
 * Invariants kept by these files together (checked by ga__handle_check, check.c):
 *   - every slot index below nchunks * CHUNK_SLOTS has its chunk mapped (never unmapped);
 *   - a free slot is in exactly one place: a free stack, or one thread's cache;
 *   - live slots (all threads' live counts + retired) = ga__handle_count().
 */
#ifndef GA_HANDLE_INTERNAL_H
#define GA_HANDLE_INTERNAL_H

#include "handle/handle.h"
#include "engine/engine.h"
#include <stdatomic.h>
#include <string.h>

/* Short names for the layout that handle.h publishes for the inline fast paths. */
#define H_SHAPE       GA__H_SHAPE
#define H_INDEX_SHIFT GA__H_INDEX_SHIFT
#define H_GEN_SHIFT   GA__H_GEN_SHIFT
#define H_FIELD_MASK  GA__H_FIELD_MASK
#define S_COUNT       GA__S_COUNT
#define S_LIVE        GA__S_LIVE
#define S_BUSY        GA__S_BUSY
#define S_DISCARDABLE GA__S_DISCARDABLE
#define S_SHARE       GA__S_SHARE
#define S_DISCARDED   GA__S_DISCARDED
#define S_SEQ_SHIFT   GA__S_SEQ_SHIFT
#define S_SEQ_ONE     (UINT64_C(1) << S_SEQ_SHIFT)
#define S_SEQ_MASK    (((UINT64_C(1) << 19) - 1) << S_SEQ_SHIFT)
#define S_GEN_SHIFT   GA__S_GEN_SHIFT
#define S_GEN_MASK    GA__S_GEN_MASK
#define S_ATTR        (S_DISCARDABLE | S_SHARE)
#define CHUNK_SHIFT   GA__CHUNK_SHIFT
#define CHUNK_SLOTS   (UINT32_C(1) << CHUNK_SHIFT)
#define DIR_SIZE      GA__DIR_SIZE
#define NSHARDS       16
#define MAX_REQUEST   (SIZE_MAX / 2) /* larger requests cannot succeed; no header overflow */

/* Handles of shared heaps (heap id in the high bits) are served by src/shared/handle.c. */
#define IS_SHARED(h) GA_UNLIKELY(((ga_handle_t)(h) >> GA__H_HIGH_SHIFT) != 0)

static inline ga_handle_t ga__make_handle(uint32_t index, uint32_t gen)
{
    GA_ASSERT_INTERNAL(index <= H_FIELD_MASK && gen <= H_FIELD_MASK);
    return ((uint64_t)gen << H_GEN_SHIFT) | ((uint64_t)index << H_INDEX_SHIFT) | H_SHAPE;
}
static inline uint32_t ga__h_index(ga_handle_t h)
{
    return (uint32_t)(h >> H_INDEX_SHIFT) & H_FIELD_MASK;
}
static inline uint32_t ga__st_gen(uint64_t st)
{
    return (uint32_t)(st >> S_GEN_SHIFT) & H_FIELD_MASK;
}

/* ---- block.c: tags and tagged blocks ------------------------------------------------- */

/* Tag values before the XOR with the address key. Neither has handle shape (low nibble 8,
 * bit 63 clear), so a fixed tag never decodes as a handle. */
#define GA__TAG_FIXED UINT64_C(0xF1CED0B10C000001)
#define GA__TAG_FREED UINT64_C(0xF1CED0B10C00000F)
_Static_assert((GA__TAG_FIXED & 15) != H_SHAPE || (GA__TAG_FIXED >> 63), "fixed tag: no handle");
_Static_assert((GA__TAG_FREED & 15) != H_SHAPE || (GA__TAG_FREED >> 63), "freed tag: no handle");

/* Random per process, set on first use (ga__tag_secret_init); never 0 once set. */
extern _Atomic uint64_t ga__tag_secret __attribute__((visibility("hidden"))); /* no GOT load */
/* Sets the secret if no thread did yet; returns the value everyone uses. */
uint64_t ga__tag_secret_init(void);

/* One multiply: the key only has to make a stray value validate with negligible odds and be
 * unpredictable without the secret; it is on every GlobalAlloc/GlobalFree. */
static inline uint64_t ga__tag_key(const uint64_t *hdr)
{
    uint64_t s = atomic_load_explicit(&ga__tag_secret, memory_order_relaxed);
    if (GA_UNLIKELY(!s)) s = ga__tag_secret_init();
    return ((uintptr_t)hdr * UINT64_C(0x9E3779B97F4A7C15)) ^ s;
}

static inline void ga__tag_set(uint64_t *hdr, uint64_t tag)
{
    __atomic_store_n(&hdr[GA__HDR_TAG], tag ^ ga__tag_key(hdr), __ATOMIC_RELAXED);
}

/* The tag of a header that ga__is_block_start accepted, even if its block is freed. */
uint64_t ga__tag_get(const uint64_t *hdr);

static inline void *ga__user_of(uint64_t *hdr)
{
    return (char *)hdr + GA__HDR_SIZE;
}

/* A block of size user bytes (zeroed if zero) whose header has size and tag. NULL and *err =
 * GA_EOVERFLOW or GA_ENOMEM. */
static inline uint64_t *ga__block_alloc(size_t size, bool zero, uint64_t tag, int *err)
{
    if (size > MAX_REQUEST) {
        *err = GA_EOVERFLOW;
        return NULL;
    }
    uint64_t *hdr = zero ? ga__zalloc(size + GA__HDR_SIZE) : ga__alloc(size + GA__HDR_SIZE);
    if (!hdr) {
        *err = GA_ENOMEM;
        return NULL;
    }
    hdr[0] = size;
    ga__tag_set(hdr, tag);
    return hdr;
}

/* Frees a block whose ownership the caller holds; dead_tag is what stays in the header. */
static inline void ga__block_free(uint64_t *hdr, uint64_t dead_tag)
{
    ga__tag_set(hdr, dead_tag);
    ga__free(hdr);
}

/* Resizes the block *phdr from osz to nsz bytes. In place when it fits (unless may_move and the
 * block would waste most of its space); else moves if may_move. The new block gets tag and the
 * old one dead_tag; old_out (if not NULL) receives a moved-from block for the caller to free
 * once nothing points to it any more (else it is freed here). 0, GA_ENOMEM or GA_EOVERFLOW
 * (block untouched). Inline: each caller (fixed and moveable realloc) passes constants that
 * fold away, which a call would cost on GlobalReAlloc. */
static inline int ga__block_resize(uint64_t **phdr, size_t osz, size_t nsz, bool zero,
                                   bool may_move, uint64_t tag, uint64_t dead_tag,
                                   uint64_t **old_out)
{
    uint64_t *hdr = *phdr;
    if (nsz > MAX_REQUEST) return GA_EOVERFLOW;
    size_t usable = ga__usable_size(hdr);
    bool fits = nsz + GA__HDR_SIZE <= usable;
    bool wasteful = nsz + GA__HDR_SIZE < usable / 4;
    if (!fits || (may_move && wasteful)) {
        int err = 0;
        uint64_t *n = may_move ? ga__block_alloc(nsz, false, tag, &err) : NULL;
        if (n) {
            memcpy(ga__user_of(n), ga__user_of(hdr), osz < nsz ? osz : nsz);
            if (zero && nsz > osz) memset((char *)ga__user_of(n) + osz, 0, nsz - osz);
            if (old_out)
                *old_out = hdr;
            else
                ga__block_free(hdr, dead_tag);
            *phdr = n;
            return 0;
        }
        if (!fits) return may_move ? err : GA_ENOMEM;
    }
    if (zero && nsz > osz) memset((char *)ga__user_of(hdr) + osz, 0, nsz - osz);
    hdr[0] = nsz;
    return 0;
}

/* ---- table.c: the slot table and the free stacks -------------------------------------- */

typedef struct {
    _Alignas(GA_CACHE_LINE) _Atomic uint64_t v;
} ga__padded_t;

typedef struct ga__table_s {
    _Atomic uint32_t nchunks;
    _Atomic uint32_t chunk_limit; /* test hook; 0 = DIR_SIZE */
    _Atomic unsigned next_thread;
    ga_lock_t grow_lock;             /* serialises grow: one chunk mapped at a time */
    ga__padded_t free_head[NSHARDS]; /* ABA tag << 32 | (index + 1) */
} ga__table_t;
extern ga__table_t ga__handle_table __attribute__((visibility("hidden")));

/* pre: index idx was handed out by the table, so its chunk exists. */
static inline ga__slot_t *ga__slot_at(uint32_t idx)
{
    ga__slot_t *chunk =
        atomic_load_explicit(&ga__handle_dir[idx >> CHUNK_SHIFT], memory_order_acquire);
    GA_ASSERT_INTERNAL(chunk != NULL);
    return &chunk[idx & (CHUNK_SLOTS - 1)];
}

/* Pushes the chain first..last (already linked through next) onto head. */
void ga__stack_push(_Atomic uint64_t *head, uint32_t first, uint32_t last);

/* ---- table.c: per-thread slot caches and live counts ---------------------------------- */

/* Each thread keeps up to TCACHE_MAX free slots and its own live-handle count, so a handle
 * alloc/free pair touches no shared cache line beyond the slot itself. Only the owner writes
 * a cache; others (ga__handle_check, ga__handle_count) read it with relaxed atomics while the
 * owner is quiet. Caches are never freed: a thread's exit flushes its slots to a stack, folds
 * its count into ga__tcaches.retired and leaves the cache on a spare list for the next thread. */
#define TCACHE_MAX 32

typedef struct ga__tcache_s {
    _Atomic uint32_t n;
    _Atomic uint32_t idx[TCACHE_MAX];
    _Atomic int64_t live;  /* handles allocated minus handles freed by this thread */
    _Atomic uint32_t inop; /* inside an alloc or free: a slot may be between places (fork) */
    struct ga__tcache_s *next_all, *next_spare;
    bool owned; /* a thread uses it (not on the spare list); under ga__tcaches.lock */
} ga__tcache_t;

typedef struct ga__tcaches_s {
    ga_lock_t lock; /* the lists (all, spare), the pool, every cache's owned flag */
    pthread_once_t once;
    pthread_key_t key;
    ga__tcache_t *all, *spare, *pool;
    size_t pool_left;
    _Atomic int64_t retired;
} ga__tcaches_t;
extern ga__tcaches_t ga__tcaches __attribute__((visibility("hidden")));

/* The calling thread's cache; NULL until its first handle alloc or free. */
extern GA_TLS ga__tcache_t *ga__tl_cache __attribute__((visibility("hidden")));

/* Gives the calling thread a cache (registering the thread-exit and fork handlers the first
 * time). NULL when out of memory. */
ga__tcache_t *ga__tcache_attach(void);
/* Flushes c's slots, folds its count into the retired total, puts it on the spare list.
 * pre: ga__tcaches.lock held; c's thread is gone or is the caller. */
void ga__tcache_retire(ga__tcache_t *c);

/* Marks c's thread inside a handle alloc or free (see ga__handle_fork_child). The release fence
 * keeps the mark ahead of the operation's stores (a fork child sees a prefix of each thread's
 * stores). */
static inline void ga__op_begin(ga__tcache_t *c)
{
    atomic_store_explicit(&c->inop, 1, memory_order_relaxed);
    atomic_thread_fence(memory_order_release);
}
static inline void ga__op_end(ga__tcache_t *c)
{
    atomic_store_explicit(&c->inop, 0, memory_order_release);
}

static inline void ga__live_add(ga__tcache_t *c, int64_t d)
{
    atomic_store_explicit(&c->live, atomic_load_explicit(&c->live, memory_order_relaxed) + d,
                          memory_order_relaxed);
}

/* c (the caller's cache) is empty: takes a slot from the stacks, refilling half the cache, or
 * grows the table. 0 (and *idx), GA_EFULL or GA_ENOMEM. */
int ga__slot_refill(uint32_t *idx, ga__tcache_t *c);

/* Takes a free slot for the calling thread, whose cache is c. 0 (and *idx), GA_EFULL or
 * GA_ENOMEM. */
static inline int ga__slot_take(uint32_t *idx, ga__tcache_t *c)
{
    uint32_t n = atomic_load_explicit(&c->n, memory_order_relaxed);
    GA_ASSERT_INTERNAL(c == ga__tl_cache && n <= TCACHE_MAX); /* only the owner writes it */
    if (GA_LIKELY(n)) {
        *idx = atomic_load_explicit(&c->idx[n - 1], memory_order_relaxed);
        atomic_store_explicit(&c->n, n - 1, memory_order_relaxed);
        return 0;
    }
    return ga__slot_refill(idx, c);
}

/* Gives free slot idx back: to the calling thread's cache, or a stack. */
void ga__slot_give(uint32_t idx);

/* ---- api.c: handles of other heaps (see ga__remote_ops_t) -------------------------------
 * Until src/init.c installs the shared heaps' operations (before the program's constructors),
 * there is no other heap: such a handle is GA_EHANDLE, no heap is one of them. */
extern const ga__remote_ops_t *ga__remote __attribute__((visibility("hidden")));
static inline bool ga__remote_is_heap(ga_heap_t *heap)
{
    return ga__remote != NULL && ga__remote->is_heap(heap);
}
static inline ga_handle_t ga__remote_from_ptr(const void *p)
{
    return ga__remote != NULL ? ga__remote->from_ptr(p) : 0;
}
static inline int ga__remote_info(ga_handle_t h, ga_handle_info_t *info)
{
    return ga__remote != NULL ? ga__remote->info(h, info) : ga__set_error(GA_EHANDLE);
}

#endif /* GA_HANDLE_INTERNAL_H */
