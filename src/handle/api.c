/* SPDX-License-Identifier: MIT */
/*
 * Tagged blocks, the handle table of moveable blocks, and the native ga_handle_* API.
 *
 * Tagged blocks (layout in handle.h): every Win32 block carries a 16-byte header whose tag is
 * XORed with a key derived from the header address and a per-process random secret, so a
 * random value essentially never validates and a pointer can be checked without faulting:
 * shape (16-aligned) -> ga__is_block_start(header) -> tag.
 *
 * Handle values: bit 3 set and bits 0..2 clear (v % 16 == 8), bits 4..27 the slot index,
 * bits 28..51 the slot generation (never 0 for a live handle), bits 52..62 a heap id (0 = the
 * process heap; others are reserved for shared heaps), bit 63 clear. No pointer is stored in a
 * handle, so handle values are position independent.
 *
 * The table: a static directory of DIR_SIZE chunk pointers, each chunk CHUNK_SLOTS slots,
 * mapped lazily and never unmapped, so looking up any index is memory-safe without a lock.
 * A slot's state is one 64-bit word (lock count, live, busy, attributes, discarded, a change
 * sequence, generation); its data header pointer and size sit beside it.
 *
 * Invariants (checked by ga__handle_check):
 *   - a live slot has a non-zero generation; the handle value is (index, generation);
 *   - live and not discarded: data is a block whose tag decodes to the handle, whose word 0
 *     equals the slot size, and size + 16 <= usable size; discarded: data NULL, size 0,
 *     lock count 0;
 *   - a free slot has no data, no flags, no lock count, and sits on exactly one free stack;
 *   - live slots + free-stack entries = all slots; live slots = ga__handle_count().
 *
 * Concurrency: lock/unlock are one CAS on the state word. Everything that changes the data,
 * size, attributes or liveness first sets BUSY by CAS (lockers wait for it to clear; unlocks
 * do not need to), then releases it with a CAS that bumps the sequence, so readers can take a
 * consistent lock-free snapshot (seqlock style). Free slots sit in per-thread caches backed
 * by NSHARDS Treiber stacks (ABA-tagged heads), one preferred per thread; live counts are
 * per thread too. Only growing the table and attaching a thread's cache take a mutex.
 * The inline lock/unlock fast paths live in handle.h.
 *
 * fork: the child repairs the slots other threads left BUSY (repair_busy_slots) and, if one was
 * inside an alloc or free, rebuilds the free stacks and live count from the slots' states.
 */
#include "handle/handle.h"
#include "debug/debug.h"
#include "engine/engine.h"
#include "shared/shared.h"
#include "os/os.h"
#include <pthread.h>
#include <sched.h>
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

typedef ga__slot_t slot_t;
#define slot_of    ga__slot_of
#define h_gen      ga__h_gen
#define st_matches ga__st_matches

static inline ga_handle_t make_handle(uint32_t index, uint32_t gen)
{
    return ((uint64_t)gen << H_GEN_SHIFT) | ((uint64_t)index << H_INDEX_SHIFT) | H_SHAPE;
}
static inline uint32_t h_index(ga_handle_t h)
{
    return (uint32_t)(h >> H_INDEX_SHIFT) & H_FIELD_MASK;
}
static inline uint32_t st_gen(uint64_t st)
{
    return (uint32_t)(st >> S_GEN_SHIFT) & H_FIELD_MASK;
}
static inline uint64_t attr_to_state(unsigned f)
{
    return ((f & GA_HDISCARDABLE) ? S_DISCARDABLE : 0) | ((f & GA_HSHARE) ? S_SHARE : 0);
}

typedef struct {
    _Alignas(GA_CACHE_LINE) _Atomic uint64_t v;
} padded_t;

_Atomic(ga__slot_t *) ga__handle_dir[GA__DIR_SIZE];

static struct {
    _Atomic uint32_t nchunks;
    _Atomic uint32_t chunk_limit; /* test hook; 0 = DIR_SIZE */
    _Atomic uint64_t secret;
    _Atomic unsigned next_thread;
    pthread_mutex_t grow_lock;
    padded_t free_head[NSHARDS]; /* ABA tag << 32 | (index + 1) */
} tab = {.grow_lock = PTHREAD_MUTEX_INITIALIZER};

static GA_TLS unsigned tl_shard; /* shard + 1; 0 = not yet chosen */

static inline unsigned my_shard(void)
{
    unsigned s = tl_shard;
    if (GA_UNLIKELY(!s))
        tl_shard = s =
            atomic_fetch_add_explicit(&tab.next_thread, 1, memory_order_relaxed) % NSHARDS + 1;
    return s - 1;
}

/* pre: index idx was handed out by the table, so its chunk exists. */
static inline slot_t *slot_at(uint32_t idx)
{
    slot_t *chunk = atomic_load_explicit(&ga__handle_dir[idx >> CHUNK_SHIFT], memory_order_acquire);
    return &chunk[idx & (CHUNK_SLOTS - 1)];
}

static void backoff(unsigned *spins)
{
    if (++*spins < 64) {
        atomic_signal_fence(memory_order_seq_cst);
    } else {
        sched_yield();
    }
}

/* Handles of shared heaps (heap id in the high bits) are served by src/shared/handle.c. */
#define IS_SHARED(h) GA_UNLIKELY(((ga_handle_t)(h) >> GA__H_HIGH_SHIFT) != 0)

/* ---- tags ---------------------------------------------------------------------------- */

static GA_NOINLINE uint64_t secret_init(void)
{
    uint64_t s = ga__os_random() | 1;
    uint64_t expected = 0;
    if (!atomic_compare_exchange_strong(&tab.secret, &expected, s))
        s = expected; /* another thread won: everyone uses its value */
    return s;
}

/* One multiply: the key only has to make a stray value validate with negligible odds and be
 * unpredictable without the secret; it is on every GlobalAlloc/GlobalFree. */
static inline uint64_t tag_key(const uint64_t *hdr)
{
    uint64_t s = atomic_load_explicit(&tab.secret, memory_order_relaxed);
    if (GA_UNLIKELY(!s)) s = secret_init();
    return ((uintptr_t)hdr * UINT64_C(0x9E3779B97F4A7C15)) ^ s;
}

static inline void tag_set(uint64_t *hdr, uint64_t tag)
{
    __atomic_store_n(&hdr[GA__HDR_TAG], tag ^ tag_key(hdr), __ATOMIC_RELAXED);
}

/* Reads the tag of a header that may belong to a freed block (a double free, a stale pointer):
 * the memory is mapped (ga__is_block_start said so) but a sanitizer may consider it poisoned. */
__attribute__((no_sanitize("address"))) static GA_NOINLINE uint64_t tag_get(const uint64_t *hdr)
{
    return __atomic_load_n(&hdr[GA__HDR_TAG], __ATOMIC_RELAXED) ^ tag_key(hdr);
}

/* True when p has pointer shape and header p - 16 is the start of one of our blocks. */
static inline bool header_plausible(const void *p)
{
    uintptr_t x = (uintptr_t)p;
    return x >= GA__HDR_SIZE && (x & 15) == 0 && ga__is_block_start((const char *)p - GA__HDR_SIZE);
}

static inline uint64_t *header_of(const void *p)
{
    return (uint64_t *)((char *)p - GA__HDR_SIZE);
}
static inline void *user_of(uint64_t *hdr)
{
    return (char *)hdr + GA__HDR_SIZE;
}

/* ---- tagged blocks ------------------------------------------------------------------- */

static uint64_t *block_alloc(size_t size, bool zero, uint64_t tag, int *err)
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
    tag_set(hdr, tag);
    return hdr;
}

/* Frees a block whose ownership the caller holds; dead_tag is what stays in the header. */
static void block_free(uint64_t *hdr, uint64_t dead_tag)
{
    tag_set(hdr, dead_tag);
    ga__free(hdr);
}

/* Resizes the block *phdr from osz to nsz bytes. In place when it fits (unless may_move and the
 * block would waste most of its space); else moves if may_move. The new block gets tag and the
 * old one dead_tag; old_out (if not NULL) receives a moved-from block for the caller to free
 * once nothing points to it any more (else it is freed here). 0, GA_ENOMEM or GA_EOVERFLOW
 * (block untouched). */
static int block_resize(uint64_t **phdr, size_t osz, size_t nsz, bool zero, bool may_move,
                        uint64_t tag, uint64_t dead_tag, uint64_t **old_out)
{
    uint64_t *hdr = *phdr;
    if (nsz > MAX_REQUEST) return GA_EOVERFLOW;
    size_t usable = ga__usable_size(hdr);
    bool fits = nsz + GA__HDR_SIZE <= usable;
    bool wasteful = nsz + GA__HDR_SIZE < usable / 4;
    if (!fits || (may_move && wasteful)) {
        int err = 0;
        uint64_t *n = may_move ? block_alloc(nsz, false, tag, &err) : NULL;
        if (n) {
            memcpy(user_of(n), user_of(hdr), osz < nsz ? osz : nsz);
            if (zero && nsz > osz) memset((char *)user_of(n) + osz, 0, nsz - osz);
            if (old_out)
                *old_out = hdr;
            else
                block_free(hdr, dead_tag);
            *phdr = n;
            return 0;
        }
        if (!fits) return may_move ? err : GA_ENOMEM;
    }
    if (zero && nsz > osz) memset((char *)user_of(hdr) + osz, 0, nsz - osz);
    hdr[0] = nsz;
    return 0;
}

void *ga__fixed_alloc(size_t size, bool zero, int *err)
{
    uint64_t *hdr = block_alloc(size, zero, GA__TAG_FIXED, err);
    return hdr ? user_of(hdr) : NULL;
}

/* A fixed block with a mapping of its own is unmapped when freed, and a second free would then
 * find no header: it would look like a bogus pointer (ERROR_NOACCESS) instead of the double
 * free it is (ERROR_INVALID_HANDLE, as for every other fixed block). The last FREED_HUGE of
 * them are remembered; only a pointer with no header is looked up. */
#define FREED_HUGE 64
static _Atomic uintptr_t freed_huge[FREED_HUGE];
static _Atomic unsigned freed_huge_next;

static bool freed_huge_has(const void *p)
{
    for (size_t i = 0; i < FREED_HUGE; i++)
        if (atomic_load_explicit(&freed_huge[i], memory_order_relaxed) == (uintptr_t)p)
            return true;
    return false;
}

static int double_free(void *p)
{
    if (ga_debug_enabled()) /* with the block's stacks */
        ga__debug_misuse(GA_EDOUBLEFREE, p, false, "GlobalFree/LocalFree: block freed twice");
    else
        ga__report(GA_EDOUBLEFREE, (uintptr_t)p, false, "fixed block %p freed twice", p);
    return GA_EDOUBLEFREE;
}

__attribute__((no_sanitize("address"))) int ga__fixed_free(void *p)
{
    if (!header_plausible(p)) return p != NULL && freed_huge_has(p) ? double_free(p) : GA_ENOTOWNED;
    uint64_t *hdr = header_of(p);
    uint64_t key = tag_key(hdr);
    uint64_t expected = GA__TAG_FIXED ^ key;
    /* The CAS makes one of two racing frees win; the loser sees FREED. */
    if (__atomic_compare_exchange_n(&hdr[GA__HDR_TAG], &expected, GA__TAG_FREED ^ key, false,
                                    __ATOMIC_ACQ_REL, __ATOMIC_RELAXED)) {
        if (GA_UNLIKELY(ga__is_huge_block(hdr))) {
            unsigned i = atomic_fetch_add_explicit(&freed_huge_next, 1, memory_order_relaxed);
            atomic_store_explicit(&freed_huge[i % FREED_HUGE], (uintptr_t)p, memory_order_relaxed);
        }
        ga__free(hdr);
        return 0;
    }
    if (expected == (GA__TAG_FREED ^ key)) return double_free(p);
    return GA_ENOTOWNED;
}

size_t ga__fixed_size(const void *p)
{
    return header_of(p)[0];
}

int ga__fixed_realloc(void **pp, size_t size, unsigned flags)
{
    uint64_t *hdr = header_of(*pp);
    int rc = block_resize(&hdr, hdr[0], size, flags & GA_HZERO, flags & GA_HMOVE, GA__TAG_FIXED,
                          GA__TAG_FREED, NULL);
    if (rc == 0) *pp = user_of(hdr);
    return rc;
}

int ga__fixed_to_handle(void *p, unsigned hflags, ga_handle_t *out)
{
    uint64_t *hdr = header_of(p);
    size_t size = hdr[0];
    ga_handle_t h;
    int rc = ga__handle_alloc(size, hflags & (GA_HDISCARDABLE | GA_HSHARE), &h);
    if (rc) return rc;
    if (size) {
        /* Nobody else knows h yet, so its data can be filled without the busy bit. */
        uint64_t *data = atomic_load_explicit(&slot_of(h)->data, memory_order_relaxed);
        memcpy(user_of(data), p, size);
    }
    ga__fixed_free(p);
    *out = h;
    return 0;
}

/* ---- free stacks --------------------------------------------------------------------- */

static bool stack_pop(_Atomic uint64_t *head, uint32_t *idx)
{
    uint64_t hd = atomic_load_explicit(head, memory_order_acquire);
    while ((uint32_t)hd) {
        uint32_t i = (uint32_t)hd - 1;
        /* May read a link that is being rewritten: then the tagged CAS fails. */
        uint32_t next = atomic_load_explicit(&slot_at(i)->next, memory_order_relaxed);
        uint64_t nh = (((hd >> 32) + 1) << 32) | next;
        if (atomic_compare_exchange_weak_explicit(head, &hd, nh, memory_order_acquire,
                                                  memory_order_acquire)) {
            *idx = i;
            return true;
        }
    }
    return false;
}

/* Pushes the chain first..last (already linked through next) onto head. */
static void stack_push(_Atomic uint64_t *head, uint32_t first, uint32_t last)
{
    slot_t *ls = slot_at(last);
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
        if (stack_pop(&tab.free_head[(shard + k) % NSHARDS].v, idx)) return true;
    return false;
}

/* Maps a new chunk: its first slot goes to the caller, the rest onto shard's stack. */
static GA_NOINLINE int grow(unsigned shard, uint32_t *idx)
{
    int rc = 0;
    pthread_mutex_lock(&tab.grow_lock);
    if (pop_any(shard, idx)) /* another thread grew the table meanwhile */
        goto out;
    uint32_t c = atomic_load_explicit(&tab.nchunks, memory_order_relaxed);
    uint32_t limit = atomic_load_explicit(&tab.chunk_limit, memory_order_relaxed);
    if (c == (limit ? limit : DIR_SIZE)) {
        rc = GA_EFULL;
        goto out;
    }
    size_t bytes = CHUNK_SLOTS * sizeof(slot_t); /* 128 KiB: a multiple of any page size */
    slot_t *chunk = ga__os_map_aligned(bytes, ga__os_page_size());
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
    atomic_store_explicit(&tab.nchunks, c + 1, memory_order_release);
    *idx = base;
    stack_push(&tab.free_head[shard].v, base + 1, base + CHUNK_SLOTS - 1);
out:
    pthread_mutex_unlock(&tab.grow_lock);
    return rc;
}

/* ---- per-thread slot caches and live counts ----------------------------------------- */

/* Each thread keeps up to TCACHE_MAX free slots and its own live-handle count, so a handle
 * alloc/free pair touches no shared cache line beyond the slot itself. Only the owner writes
 * a cache; others (ga__handle_check, ga__handle_count) read it with relaxed atomics while the
 * owner is quiet. Caches are never freed: a thread's exit flushes its slots to a stack, folds
 * its count into tcaches.retired and leaves the cache on a spare list for the next thread. */
#define TCACHE_MAX 32

typedef struct tcache_s {
    _Atomic uint32_t n;
    _Atomic uint32_t idx[TCACHE_MAX];
    _Atomic int64_t live; /* handles allocated minus handles freed by this thread */
    _Atomic uint32_t inop; /* inside an alloc or free: a slot may be between places (fork) */
    struct tcache_s *next_all, *next_spare;
    bool owned; /* a thread uses it (not on the spare list); under tcaches.lock */
} tcache_t;

static struct {
    pthread_mutex_t lock;
    pthread_once_t once;
    pthread_key_t key;
    tcache_t *all, *spare, *pool;
    size_t pool_left;
    _Atomic int64_t retired;
} tcaches = {.lock = PTHREAD_MUTEX_INITIALIZER, .once = PTHREAD_ONCE_INIT};

static GA_TLS tcache_t *tl_cache;

static void tcache_exit(void *arg);

/* A fork child must not inherit a mutex held by a thread that does not exist there. */
static void fork_prepare(void)
{
    pthread_mutex_lock(&tab.grow_lock);
    pthread_mutex_lock(&tcaches.lock);
}
static void fork_parent(void)
{
    pthread_mutex_unlock(&tcaches.lock);
    pthread_mutex_unlock(&tab.grow_lock);
}
static void tcache_retire(tcache_t *c);
/* A fork child has only the forking thread, which was in no handle operation: a slot still
 * BUSY belongs to a thread that does not exist there, and every later call on it would wait
 * forever. The operations keep the slot's block valid throughout (realloc frees the old block
 * after publishing the new one; in place, the block's header has the new size first), so the
 * slot is made consistent from its block: a block whose tag is this handle gives the data and
 * size; no block (a free or discard caught half-way) leaves the handle discarded. */
static void repair_busy_slots(void)
{
    uint32_t nch = atomic_load_explicit(&tab.nchunks, memory_order_acquire);
    for (uint32_t c = 0; c < nch; c++) {
        slot_t *chunk = atomic_load_explicit(&ga__handle_dir[c], memory_order_acquire);
        for (uint32_t i = 0; chunk && i < CHUNK_SLOTS; i++) {
            slot_t *s = &chunk[i];
            uint64_t st = atomic_load_explicit(&s->state, memory_order_relaxed);
            if (!(st & S_BUSY)) continue;
            ga_handle_t h = make_handle(c * CHUNK_SLOTS + i, st_gen(st));
            uint64_t *hdr = atomic_load_explicit(&s->data, memory_order_relaxed);
            uint64_t nst = (st & ~(S_BUSY | S_SEQ_MASK)) | ((st + S_SEQ_ONE) & S_SEQ_MASK);
            if (hdr != NULL && ga__is_block_start(hdr) && tag_get(hdr) == h) {
                atomic_store_explicit(&s->size, (size_t)hdr[0], memory_order_relaxed);
                nst &= ~S_DISCARDED;
            } else {
                atomic_store_explicit(&s->data, NULL, memory_order_relaxed);
                atomic_store_explicit(&s->size, 0, memory_order_relaxed);
                nst = (nst & ~S_COUNT) | S_DISCARDED;
            }
            atomic_store_explicit(&s->state, nst, memory_order_release);
        }
    }
}

/* A fork caught another thread inside a handle alloc or free: a slot may be on its way between
 * the slot table, a free stack and that thread's cache (taken and not yet live, freed and not
 * yet cached, or half moved by a refill or spill), and the counts half updated. Its state word
 * says where it really is, so the child rebuilds the free stacks and the live count from the
 * states. A slot caught while being taken may already own the block allocated for it: nobody
 * ever saw that handle, so the block is freed. */
static void rebuild_free_slots(void)
{
    for (unsigned k = 0; k < NSHARDS; k++) {
        uint64_t hd = atomic_load_explicit(&tab.free_head[k].v, memory_order_relaxed);
        atomic_store_explicit(&tab.free_head[k].v, ((hd >> 32) + 1) << 32, memory_order_relaxed);
    }
    int64_t live = 0;
    uint32_t nch = atomic_load_explicit(&tab.nchunks, memory_order_acquire);
    for (uint32_t c = 0; c < nch; c++) {
        slot_t *chunk = atomic_load_explicit(&ga__handle_dir[c], memory_order_acquire);
        uint32_t first = UINT32_MAX, last = 0;
        for (uint32_t i = 0; chunk && i < CHUNK_SLOTS; i++) {
            slot_t *s = &chunk[i];
            uint32_t idx = c * CHUNK_SLOTS + i;
            uint64_t st = atomic_load_explicit(&s->state, memory_order_relaxed);
            if (st & S_LIVE) {
                live++;
                continue;
            }
            uint64_t *hdr = atomic_load_explicit(&s->data, memory_order_relaxed);
            if (hdr != NULL && ga__is_block_start(hdr) &&
                tag_get(hdr) == make_handle(idx, st_gen(st)))
                block_free(hdr, 0);
            atomic_store_explicit(&s->data, NULL, memory_order_relaxed);
            atomic_store_explicit(&s->size, 0, memory_order_relaxed);
            atomic_store_explicit(&s->state, st & (S_GEN_MASK | S_SEQ_MASK), memory_order_relaxed);
            if (first == UINT32_MAX)
                first = idx;
            else
                atomic_store_explicit(&slot_at(last)->next, idx + 1, memory_order_relaxed);
            last = idx;
        }
        if (first != UINT32_MAX) stack_push(&tab.free_head[c % NSHARDS].v, first, last);
    }
    atomic_store(&tcaches.retired, live);
}

/* Only the forking thread lives on in the child: the caches of the others are retired here,
 * as their thread exits would have done, and slots they left BUSY are repaired. If one of them
 * was inside an alloc or free, the free slots are rebuilt from the table instead (their caches
 * and stacks may disagree with it). */
static void fork_child(void)
{
    bool caught = false;
    for (tcache_t *c = tcaches.all; c; c = c->next_all)
        if (c->owned && c != tl_cache && atomic_load_explicit(&c->inop, memory_order_relaxed))
            caught = true;
    for (tcache_t *c = tcaches.all; c; c = c->next_all) {
        if (caught) { /* forget every cache: the rebuild finds their slots */
            atomic_store(&c->n, 0);
            atomic_store(&c->live, 0);
            atomic_store(&c->inop, 0);
        }
        if (c->owned && c != tl_cache) tcache_retire(c); /* nothing to spill if caught */
    }
    repair_busy_slots();
    if (caught) rebuild_free_slots();
    fork_parent();
}

static void tcache_key_create(void)
{
    pthread_key_create(&tcaches.key, tcache_exit);
    pthread_atfork(fork_prepare, fork_parent, fork_child);
}

static GA_NOINLINE tcache_t *tcache_attach(void)
{
    pthread_once(&tcaches.once, tcache_key_create);
    pthread_mutex_lock(&tcaches.lock);
    tcache_t *c = tcaches.spare;
    if (c) {
        tcaches.spare = c->next_spare;
    } else {
        if (!tcaches.pool_left) {
            size_t page = ga__os_page_size();
            tcaches.pool = ga__os_map_aligned(page, page);
            tcaches.pool_left = tcaches.pool ? page / sizeof(tcache_t) : 0;
        }
        if (!tcaches.pool_left) {
            pthread_mutex_unlock(&tcaches.lock);
            return NULL;
        }
        c = tcaches.pool++;
        tcaches.pool_left--;
        c->next_all = tcaches.all;
        tcaches.all = c;
    }
    c->owned = true;
    pthread_mutex_unlock(&tcaches.lock);
    pthread_setspecific(tcaches.key, c);
    tl_cache = c;
    return c;
}

/* Marks c's thread inside a handle alloc or free (see fork_child). The release fence keeps the
 * mark ahead of the operation's stores (a fork child sees a prefix of each thread's stores). */
static inline void op_begin(tcache_t *c)
{
    atomic_store_explicit(&c->inop, 1, memory_order_relaxed);
    atomic_thread_fence(memory_order_release);
}
static inline void op_end(tcache_t *c)
{
    atomic_store_explicit(&c->inop, 0, memory_order_release);
}

static inline void live_add(tcache_t *c, int64_t d)
{
    atomic_store_explicit(&c->live, atomic_load_explicit(&c->live, memory_order_relaxed) + d,
                          memory_order_relaxed);
}

/* Pushes cache entries [from, n) onto this thread's stack as one chain. */
static void tcache_spill(tcache_t *c, uint32_t from)
{
    uint32_t n = atomic_load_explicit(&c->n, memory_order_relaxed);
    if (from >= n) return;
    for (uint32_t i = from; i + 1 < n; i++) {
        uint32_t a = atomic_load_explicit(&c->idx[i], memory_order_relaxed);
        uint32_t b = atomic_load_explicit(&c->idx[i + 1], memory_order_relaxed);
        atomic_store_explicit(&slot_at(a)->next, b + 1, memory_order_relaxed);
    }
    stack_push(&tab.free_head[my_shard()].v,
               atomic_load_explicit(&c->idx[from], memory_order_relaxed),
               atomic_load_explicit(&c->idx[n - 1], memory_order_relaxed));
    atomic_store_explicit(&c->n, from, memory_order_relaxed);
}

/* Flushes c's slots, folds its count into the retired total, puts it on the spare list.
 * pre: tcaches.lock held; c's thread is gone or is the caller. */
static void tcache_retire(tcache_t *c)
{
    tcache_spill(c, 0);
    atomic_fetch_add(&tcaches.retired, atomic_load(&c->live));
    atomic_store(&c->live, 0);
    c->owned = false;
    c->next_spare = tcaches.spare;
    tcaches.spare = c;
}

static void tcache_exit(void *arg)
{
    pthread_mutex_lock(&tcaches.lock);
    tcache_retire(arg);
    pthread_mutex_unlock(&tcaches.lock);
    tl_cache = NULL;
}

void ga__handle_test_limit(uint32_t chunks)
{
    atomic_store(&tab.chunk_limit, chunks > DIR_SIZE ? DIR_SIZE : chunks);
}

uint32_t ga__handle_test_chunks(void)
{
    return atomic_load(&tab.nchunks);
}

static int slot_take(uint32_t *idx, tcache_t *c)
{
    uint32_t n = atomic_load_explicit(&c->n, memory_order_relaxed);
    if (GA_LIKELY(n)) {
        *idx = atomic_load_explicit(&c->idx[n - 1], memory_order_relaxed);
        atomic_store_explicit(&c->n, n - 1, memory_order_relaxed);
        return 0;
    }
    unsigned shard = my_shard();
    if (!pop_any(shard, idx)) return grow(shard, idx);
    /* Refill half the cache while we are at it. */
    uint32_t got = 0, i;
    while (got < TCACHE_MAX / 2 && pop_any(shard, &i))
        atomic_store_explicit(&c->idx[got++], i, memory_order_relaxed);
    atomic_store_explicit(&c->n, got, memory_order_relaxed);
    return 0;
}

static void slot_give(uint32_t idx)
{
    tcache_t *c = tl_cache;
    if (GA_UNLIKELY(!c) && !(c = tcache_attach())) {
        stack_push(&tab.free_head[my_shard()].v, idx, idx);
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

/* ---- busy bit and snapshots ---------------------------------------------------------- */

/* Sets BUSY on h's slot. 0 (and *ps, *pst = the state with BUSY) or GA_EHANDLE. */
static int slot_begin(ga_handle_t h, slot_t **ps, uint64_t *pst)
{
    slot_t *s = slot_of(h);
    if (!s) return GA_EHANDLE;
    uint64_t st = atomic_load_explicit(&s->state, memory_order_relaxed);
    for (unsigned spins = 0;;) {
        if (!st_matches(st, h)) return GA_EHANDLE;
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
static void slot_end(slot_t *s, uint64_t set, uint64_t clear)
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
    slot_t *s = slot_of(h);
    if (!s) return GA_EHANDLE;
    for (unsigned spins = 0;;) {
        uint64_t st = atomic_load_explicit(&s->state, memory_order_acquire);
        if (!st_matches(st, h)) return GA_EHANDLE;
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
    tcache_t *c = tl_cache;
    if (GA_UNLIKELY(!c) && !(c = tcache_attach())) return GA_ENOMEM;
    op_begin(c);
    int rc = slot_take(&idx, c);
    if (rc) {
        op_end(c);
        return rc;
    }
    slot_t *s = slot_at(idx);
    uint64_t st = atomic_load_explicit(&s->state, memory_order_relaxed);
    ga_handle_t h = make_handle(idx, st_gen(st));
    uint64_t *hdr = NULL;
    if (size) {
        hdr = block_alloc(size, flags & GA_HZERO, h, &rc);
        if (!hdr) {
            slot_give(idx); /* its generation was never handed out: reuse it as is */
            op_end(c);
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
    live_add(c, 1);
    op_end(c);
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
    slot_t *s;
    uint64_t st;
    int rc = slot_begin(h, &s, &st);
    if (rc) return rc;
    tcache_t *c = tl_cache ? tl_cache : tcache_attach(); /* NULL: out of memory */
    if (c) op_begin(c);
    uint64_t *hdr = atomic_load_explicit(&s->data, memory_order_relaxed);
    atomic_store_explicit(&s->data, NULL, memory_order_relaxed);
    atomic_store_explicit(&s->size, 0, memory_order_relaxed);
    uint32_t gen = st_gen(st) + 1;
    if (gen > H_FIELD_MASK) gen = 1;
    atomic_store_explicit(&s->state,
                          ((uint64_t)gen << S_GEN_SHIFT) | ((st + S_SEQ_ONE) & S_SEQ_MASK),
                          memory_order_release);
    if (hdr) block_free(hdr, 0);
    slot_give(h_index(h));
    if (GA_LIKELY(c)) {
        live_add(c, -1);
        op_end(c);
    } else {
        atomic_fetch_sub(&tcaches.retired, 1); /* no cache could be made for this thread */
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
    slot_t *s = slot_of(h);
    if (!s) return GA_EHANDLE;
    uint64_t st = atomic_load_explicit(&s->state, memory_order_relaxed);
    for (unsigned spins = 0;;) {
        if (!st_matches(st, h)) return GA_EHANDLE;
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
    slot_t *s = slot_of(h);
    if (!s) return GA_EHANDLE;
    uint64_t st = atomic_load_explicit(&s->state, memory_order_relaxed);
    for (;;) {
        if (!st_matches(st, h)) return GA_EHANDLE;
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
    slot_t *s;
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
    if (hdr) block_free(hdr, 0);
    return 0;
}

int ga_handle_realloc(ga_handle_t h, size_t size, unsigned flags)
{
    if (IS_SHARED(h)) return ga__shared_handle_realloc(h, size, flags);
    if (flags & ~(unsigned)(GA_HZERO | GA_HMOVE)) return GA_EINVAL;
    if (size == 0) return ga_handle_discard(h);
    slot_t *s;
    uint64_t st;
    int rc = slot_begin(h, &s, &st);
    if (rc) return rc;
    uint64_t *hdr = atomic_load_explicit(&s->data, memory_order_relaxed), *old = NULL;
    if (!hdr) {
        /* Discarded blocks are never locked: fresh data. */
        hdr = block_alloc(size, flags & GA_HZERO, h, &rc);
    } else {
        bool locked = (st & S_COUNT) != 0;
        rc = block_resize(&hdr, hdr[0], size, flags & GA_HZERO, !locked || (flags & GA_HMOVE), h,
                          0, &old);
    }
    if (rc == 0) {
        atomic_store_explicit(&s->data, hdr, memory_order_relaxed);
        atomic_store_explicit(&s->size, size, memory_order_relaxed);
    }
    slot_end(s, 0, rc == 0 ? S_DISCARDED : 0);
    /* Freed only now: until data points to the new block, the slot's block is the old one
     * (what a fork child relies on, see repair_busy_slots). */
    if (old) block_free(old, 0);
    return rc;
}

int ga_handle_modify(ga_handle_t h, unsigned set, unsigned clear)
{
    if (IS_SHARED(h)) return ga__shared_handle_modify(h, set, clear);
    if ((set | clear) & ~(unsigned)(GA_HDISCARDABLE | GA_HSHARE)) return GA_EINVAL;
    slot_t *s;
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
    info->data = sn.data ? user_of(sn.data) : NULL;
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

ga__kind_t ga__classify(const void *v, ga__ref_t *ref)
{
    uintptr_t x = (uintptr_t)v;
    if (!x) return GA__K_NULL;
    if ((x & 15) == H_SHAPE) {
        slot_t *s = slot_of(x);
        if (s && st_matches(atomic_load_explicit(&s->state, memory_order_acquire), x)) {
            ref->handle = x;
            return GA__K_HANDLE;
        }
        if (IS_SHARED(x)) {
            ga_handle_info_t info;
            if (ga__shared_handle_info(x, &info) == 0) {
                ref->handle = x;
                return GA__K_HANDLE;
            }
        }
        return GA__K_STALE;
    }
    if (!header_plausible(v)) {
        ga_handle_t sh = ga__shared_handle_from_ptr(v); /* locked data of a shared block? */
        if (sh) {
            ref->handle = sh;
            return GA__K_DATA;
        }
        return GA__K_BOGUS;
    }
    uint64_t *hdr = header_of(v);
    uint64_t tag = tag_get(hdr);
    ref->ptr = (void *)v;
    if (tag == GA__TAG_FIXED) return GA__K_FIXED;
    if (tag == GA__TAG_FREED) return GA__K_FREED;
    slot_t *s = slot_of(tag);
    if (s && st_matches(atomic_load_explicit(&s->state, memory_order_acquire), tag) &&
        atomic_load_explicit(&s->data, memory_order_relaxed) == hdr) {
        ref->handle = tag;
        return GA__K_DATA;
    }
    return GA__K_BOGUS;
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

/* ---- statistics and checks ----------------------------------------------------------- */

size_t ga__handle_count(void)
{
    pthread_mutex_lock(&tcaches.lock);
    int64_t n = atomic_load(&tcaches.retired);
    for (tcache_t *c = tcaches.all; c; c = c->next_all)
        n += atomic_load_explicit(&c->live, memory_order_relaxed);
    pthread_mutex_unlock(&tcaches.lock);
    return n > 0 ? (size_t)n : 0;
}

#define CHECK_FAIL(value, ...)                                                                     \
    do {                                                                                           \
        if (!(flags & GA_CHECK_QUIET))                                                             \
            ga__report(GA_ECORRUPT, (uintptr_t)(value), false, __VA_ARGS__);                       \
        return GA_ECORRUPT;                                                                        \
    } while (0)

/* One slot; adds to *live. pre: no other thread changes the table. */
static int check_slot(uint32_t idx, size_t *live, unsigned flags)
{
    slot_t *s = slot_at(idx);
    uint64_t st = atomic_load_explicit(&s->state, memory_order_acquire);
    uint64_t *hdr = atomic_load_explicit(&s->data, memory_order_relaxed);
    size_t size = atomic_load_explicit(&s->size, memory_order_relaxed);
    ga_handle_t h = make_handle(idx, st_gen(st));
    if (st_gen(st) == 0 || (st & S_BUSY) || (st >> 56))
        CHECK_FAIL(h, "handle slot %u: bad state %#jx", idx, (uintmax_t)st);
    if (!(st & S_LIVE)) {
        if ((st & (S_COUNT | S_ATTR | S_DISCARDED)) || hdr || size)
            CHECK_FAIL(h, "free handle slot %u is not empty (state %#jx)", idx, (uintmax_t)st);
        return 0;
    }
    ++*live;
    if (st & S_DISCARDED) {
        if (hdr || size || (st & S_COUNT))
            CHECK_FAIL(h, "discarded handle %#jx has data or locks", (uintmax_t)h);
        return 0;
    }
    if (!hdr || !ga__is_block_start(hdr))
        CHECK_FAIL(h, "handle %#jx: data %p is not a heap block", (uintmax_t)h, (void *)hdr);
    if (tag_get(hdr) != h)
        CHECK_FAIL(h, "handle %#jx: data header tag does not name the handle", (uintmax_t)h);
    if (hdr[0] != size || size + GA__HDR_SIZE > ga__usable_size(hdr))
        CHECK_FAIL(h, "handle %#jx: size %zu (header %ju) does not fit its block", (uintmax_t)h,
                   size, (uintmax_t)hdr[0]);
    return 0;
}

int ga__handle_check(unsigned flags)
{
    uint32_t nch = atomic_load_explicit(&tab.nchunks, memory_order_acquire);
    size_t total = (size_t)nch * CHUNK_SLOTS, live = 0, free_entries = 0;
    for (uint32_t idx = 0; idx < total; idx++) {
        int rc = check_slot(idx, &live, flags);
        if (rc) return rc;
    }
    for (unsigned sh = 0; sh < NSHARDS; sh++) {
        uint32_t link = (uint32_t)atomic_load_explicit(&tab.free_head[sh].v, memory_order_acquire);
        while (link) {
            uint32_t idx = link - 1;
            if (idx >= total || ++free_entries > total)
                CHECK_FAIL(link, "handle free list %u: bad or cyclic link %u", sh, link);
            slot_t *s = slot_at(idx);
            if (atomic_load_explicit(&s->state, memory_order_relaxed) & S_LIVE)
                CHECK_FAIL(idx, "handle slot %u is live and on a free list", idx);
            link = atomic_load_explicit(&s->next, memory_order_relaxed);
        }
    }
    pthread_mutex_lock(&tcaches.lock);
    for (tcache_t *c = tcaches.all; c; c = c->next_all) {
        uint32_t n = atomic_load_explicit(&c->n, memory_order_relaxed);
        for (uint32_t i = 0; i < n && i < TCACHE_MAX; i++) {
            uint32_t idx = atomic_load_explicit(&c->idx[i], memory_order_relaxed);
            if (idx >= total ||
                (atomic_load_explicit(&slot_at(idx)->state, memory_order_relaxed) & S_LIVE)) {
                pthread_mutex_unlock(&tcaches.lock);
                CHECK_FAIL(idx, "handle slot %u in a thread cache is bad or live", idx);
            }
        }
        free_entries += n;
    }
    pthread_mutex_unlock(&tcaches.lock);
    if (live + free_entries != total)
        CHECK_FAIL(total, "handle table: %zu live + %zu free != %zu slots", live, free_entries,
                   total);
    if (live != ga__handle_count())
        CHECK_FAIL(live, "handle table: %zu live slots but count says %zu", live,
                   ga__handle_count());
    return 0;
}
