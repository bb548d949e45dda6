/* SPDX-License-Identifier: MIT */
/*
 * The slot table of moveable handles: the chunk directory, the free stacks and the per-thread
 * caches of free slots (with the threads' live-handle counts).
 *
 * The table: a static directory of DIR_SIZE chunk pointers (ga__handle_dir), each chunk
 * CHUNK_SLOTS slots, mapped lazily and never unmapped, so looking up any index is memory-safe
 * without a lock. A slot's state is one 64-bit word (lock count, live, busy, attributes,
 * discarded, a change sequence, generation); its data header pointer and size sit beside it.
 *
 * Free slots sit in per-thread caches (ga__tcaches) backed by NSHARDS Treiber stacks
 * (ABA-tagged heads), one preferred per thread; live counts are per thread too. Only growing
 * the table (grow_lock) and attaching or retiring a thread's cache (ga__tcaches.lock) take a mutex.
 * A chunk's slots start free with generation 1, all on the stack of the thread that mapped it.
 */
#include "handle/handle_internal.h"
#include "os/os.h"
#include <pthread.h>
#include <stdatomic.h>

_Atomic(ga__slot_t *) ga__handle_dir[GA__DIR_SIZE];

ga__table_t ga__handle_table = {.grow_lock = GA_LOCK_INIT};
_Static_assert(CHUNK_SLOTS * sizeof(ga__slot_t) == 128 * 1024, "a chunk is 128 KiB");

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
    ga__lock(&ga__handle_table.grow_lock);
    if (pop_any(shard, idx)) /* another thread grew the table meanwhile */
        goto out;
    uint32_t c = atomic_load_explicit(&ga__handle_table.nchunks, memory_order_relaxed);
    uint32_t limit = atomic_load_explicit(&ga__handle_table.chunk_limit, memory_order_relaxed);
    if (c == (limit ? limit : DIR_SIZE)) {
        rc = GA_EFULL;
        goto out;
    }
    size_t bytes = CHUNK_SLOTS * sizeof(ga__slot_t); /* a multiple of any page size */
    ga__slot_t *chunk = ga__os_map_aligned(bytes, ga__os_page_size());
    if (!chunk) {
        rc = GA_ENOMEM;
        goto out;
    }
    GA_ASSERT_INTERNAL(atomic_load_explicit(&ga__handle_dir[c], memory_order_relaxed) == NULL);
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
    ga__unlock(&ga__handle_table.grow_lock);
    return rc;
}

/* ---- per-thread slot caches and live counts ----------------------------------------- */

ga__tcaches_t ga__tcaches = {.lock = GA_LOCK_INIT, .once = PTHREAD_ONCE_INIT};

GA_TLS ga__tcache_t *ga__tl_cache;

static void tcache_exit(void *arg);

static void tcache_key_create(void) { pthread_key_create(&ga__tcaches.key, tcache_exit); }

void ga__handle_init(void) { pthread_once(&ga__tcaches.once, tcache_key_create); }

GA_NOINLINE ga__tcache_t *ga__tcache_attach(void)
{
    ga__handle_init(); /* src/init.c has done it, unless a handle is made before constructors */
    ga__lock(&ga__tcaches.lock);
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
            ga__unlock(&ga__tcaches.lock);
            return NULL;
        }
        c = ga__tcaches.pool++;
        ga__tcaches.pool_left--;
        c->next_all = ga__tcaches.all;
        ga__tcaches.all = c;
    }
    c->owned = true;
    ga__unlock(&ga__tcaches.lock);
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
    GA_ASSERT_HELD(&ga__tcaches.lock);
    GA_ASSERT_INTERNAL(c->owned); /* else it is on the spare list already */
    tcache_spill(c, 0);
    atomic_fetch_add(&ga__tcaches.retired, atomic_load(&c->live));
    atomic_store(&c->live, 0);
    c->owned = false;
    c->next_spare = ga__tcaches.spare;
    ga__tcaches.spare = c;
}

static void tcache_exit(void *arg)
{
    ga__lock(&ga__tcaches.lock);
    ga__tcache_retire(arg);
    ga__unlock(&ga__tcaches.lock);
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
    GA_ASSERT_INTERNAL(
        !(atomic_load_explicit(&ga__slot_at(idx)->state, memory_order_relaxed) & S_LIVE));
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
