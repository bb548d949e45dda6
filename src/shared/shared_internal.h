/* SPDX-License-Identifier: MIT */
/*
 * Shared heaps: process-local state (attachments, thread caches) and the declarations shared by
 * the files of src/shared/ (ga__shm_*). Never installed. The bytes in the segment are described
 * by shared/layout.h alone; this header says how the code keeps them consistent.
 *
 * Locks are the library's own (src/shared/lock.c: a pid in a futex word, taken over from a dead
 * holder by the next locker): one per size class, the pages lock, one per
 * handle stripe (16), the named-object lock and the slots lock; the common path (alloc/free from
 * a thread cache) takes none. Allocation from a cache is the single store CACHED(me) ->
 * ALLOC(me); a free is the single CAS ALLOC(x) -> CACHED(me). FREE blocks change state only under
 * the class lock (refill, flush) or the pages lock (large). Lock order: slots > named > stripe >
 * class > pages.
 *
 * Crash safety: every change of shared metadata is one atomic step (state bytes, page
 * descriptors, handle words, named-object states), or a hint derived from those (partial-page
 * lists, free counts, stripe free lists: rebuilt from the truth when a lock is taken over from
 * a dead holder), or a logged change: the lock's intent record is written before and cleared
 * after, and the repair run by the next owner finishes or undoes it (src/shared/handle.c,
 * src/shared/object.c, src/shared/page.c say how for each op; every record is written through
 * the ga__shm_intent_* helpers below). Inside a logged change a freed block stays CACHED(me), so
 * no one else can reuse it before the repair has looked at it. When a process is found dead
 * (ga__shm_recover), every lock is taken once (running the repairs), then its CACHED blocks go
 * back to the free pool; its ALLOC blocks stay, reported, until ga_shared_reclaim_dead (or its
 * slot is recycled when the table is full: then they are SHM_SLOT_DEAD's, still reported).
 *
 * Trust: the segment may be corrupted or hostile. Offsets are recomputed locally from max_size;
 * every offset, index, class and size read from the segment is bounds-checked before use, so
 * bad metadata gives GA_ECORRUPT, never an access outside the mapping. Nothing read from the
 * segment is ever used as a pointer, and no process-local address is ever stored in it (the
 * locks hold a pid). A lock word overwritten by a peer can make a wait last until the lock
 * timeout (GA_ETIMEDOUT), never forever.
 */
#ifndef GA_SHARED_INTERNAL_H
#define GA_SHARED_INTERNAL_H

#include "shared/shared.h"
#include "shared/layout.h"
#include "handle/handle.h"
#include "os/os.h"
#include <pthread.h>
#include <stdatomic.h>

/* ---- process-local constants ---------------------------------------------------------- */

#define SHM_PREFIX   "ga." /* /dev/shm/ga.NAME */
#define SHM_NAME_MAX 200   /* heap name length */
#define SHM_PATH_MAX 1024  /* GLOBALALLOC_SHM_DIR + "/ga." + name + NUL */

/* Shared handles have the handle value format of handle/handle.h (h % 16 == 8; bits 4..27 entry
 * index, 28..51 generation) with a nonzero heap id in bits 52..62. */
#define H_INDEX(h)  ((uint32_t)((h) >> GA__H_INDEX_SHIFT) & GA__H_FIELD_MASK)
#define H_GEN(h)    ga__h_gen(h)
#define H_HEAPID(h) ((unsigned)((h) >> GA__H_HIGH_SHIFT) & SHM_HEAPID_MAX)
#define H_MAKE(idx, gen, id)                                                                       \
    (GA__H_SHAPE | ((ga_handle_t)(idx) << GA__H_INDEX_SHIFT) |                                     \
     ((ga_handle_t)(gen) << GA__H_GEN_SHIFT) | ((ga_handle_t)(id) << GA__H_HIGH_SHIFT))
static_assert(HW_GEN_MASK == GA__H_FIELD_MASK, "an entry's generation fills a handle's field");
static_assert(SHM_HEAPID_MAX == (UINT64_MAX >> 1) >> GA__H_HIGH_SHIFT, "heap ids: bits 52..62");
static_assert(SHM_PROC_SLOTS == GA_SHARED_MAX_PROCS, "the documented limit is the table's");

/* ---- process-local state --------------------------------------------------------------- */

#define ATT_MAX   16 /* shared heaps attached at once by one process */
#define ATT_MAGIC 0x47415454u
#define TC_CAP    32 /* blocks a thread cache keeps per class before flushing half */
#define TC_SLOTS  48 /* room for frees made inside a logged window (never flushed there) */

/* One attachment: this process's view of a heap. Also what ga_heap_t * points to. */
typedef struct shm_att_s {
    uint32_t magic;
    int state;      /* ATT_OPEN, ATT_INHERITED (fork child: belongs to the parent) */
    unsigned index; /* in the process's attachment table */
    unsigned slot;
    unsigned heap_id;
    int refs;
    int fd;
    uint64_t serial;
    unsigned char *base;
    uint64_t map_size; /* = max_size */
    uint64_t max_pages, data_off, pt_off;
    _Atomic uint64_t known_top; /* data pages known to be covered by the file */
    shm_header_t *hdr;
    shm_page_t *pages;
    _Atomic int broken; /* the file was truncated under the mapping: every call GA_ECORRUPT */
    char name[SHM_NAME_MAX + 1];
} shm_att_t;
enum { ATT_OPEN = 1, ATT_INHERITED = 2 };

typedef struct shm_tcache_s {
    struct shm_tcache_s *next; /* all caches of the process (tc_list_lock, small.c) */
    shm_att_t *att;
    uint64_t serial;
    uint32_t n[SHM_NCLASS];
    uint64_t off[SHM_NCLASS][TC_SLOTS];
} shm_tcache_t;

/* Process-local memory (attachments, thread caches): zeroed pages straight from the OS, never
 * from a globalalloc heap. */
static inline void *ga__shm_local_alloc(size_t size)
{
    size_t page = ga__os_page_size();
    return ga__os_map_aligned((size + page - 1) & ~(page - 1), page);
}
static inline void ga__shm_local_free(void *p, size_t size)
{
    size_t page = ga__os_page_size();
    ga__os_unmap(p, (size + page - 1) & ~(page - 1));
}

/* ---- src/shared/attach.c: the attachment table ------------------------------------------ */

/* Validates heap and returns its attachment, or NULL + ga_last_error GA_EINVAL. */
shm_att_t *ga__shm_att(ga_heap_t *heap);
/* The attachment table and this thread's last hit in it. */
extern _Atomic(shm_att_t *) ga__shm_atts[ATT_MAX];
extern GA_TLS unsigned ga__shm_last_att;
/* ga__shm_att with its common case inlined: heap is the attachment this thread used last.
 * Same checks, in the same order: the pointer is compared with the table before it is read. */
GA_INLINE shm_att_t *ga__shm_att_fast(ga_heap_t *heap)
{
    shm_att_t *a = (shm_att_t *)heap;
    if (GA_LIKELY(a && ga__shm_atts[ga__shm_last_att % ATT_MAX] == a && a->state == ATT_OPEN &&
                  !atomic_load_explicit(&a->broken, memory_order_relaxed)))
        return a;
    return ga__shm_att(heap);
}
/* Truncation guard. A file truncated under an attached process makes its next access to a page
 * past the new end raise SIGBUS. The calls that walk or touch the segment run between
 * SHM_GUARD_ENTER and SHM_GUARD_LEAVE: a SIGBUS inside them, at an address in an attachment's
 * mapping, has its page replaced by a private zero page and marks the attachment broken, so
 * the call finishes on zeros and answers GA_ECORRUPT, as does every later call. A fault outside
 * these calls (the application's own access) gets the signal as before. */
extern GA_TLS unsigned ga__shm_in_lib;
#define SHM_GUARD_ENTER() (ga__shm_in_lib++)
/* Leaves the guard: true when a's file was found truncated. */
#define SHM_GUARD_LEAVE(a)                                                                         \
    (ga__shm_in_lib--, atomic_load_explicit(&(a)->broken, memory_order_relaxed) != 0)
/* The attachment for a handle's heap id, or NULL (GA_EHANDLE set). */
shm_att_t *ga__shm_att_by_id(unsigned heap_id);
/* The open attachment whose mapping contains p, or NULL. */
shm_att_t *ga__shm_att_by_ptr(const void *p);
/* The process lock: the attachment table's writers hold it, and so do detach and thread exit,
 * so that no attachment closes under a flush of its caches. */
void ga__shm_proc_lock(void);
void ga__shm_proc_unlock(void);
#if GA_DEBUG >= 2
bool ga__shm_proc_held(void);
#endif
#define GA_ASSERT_PROC_HELD() GA_ASSERT_INTERNAL(ga__shm_proc_held())

/* ---- src/shared/segment.c: the file and its mapping -------------------------------------- */

/* Opens the file at path and maps the segment into a, creating or re-initializing it as flags
 * allow (GA_SHARED_*). 0 or GA_E*; *created = 1 when this call made the heap. */
int ga__shm_segment_open(shm_att_t *a, const char *path, uint64_t max_size, unsigned flags,
                         int *created);
/* Test builds' delay hook: called (when set) at the named steps of an open ("create:before-
 * publish", "attach:opened", "replace:locked") so that a test can stop an opener there. */
extern void (*ga__shm_test_hook)(const char *step);
/* Tests: where the search for a free heap id starts (0: at random). */
extern unsigned ga__shm_test_next_id;
/* True when path still names the file a has open (not unlinked and made again). */
bool ga__shm_segment_is(shm_att_t *a, const char *path);
/* Unmaps a's segment and closes its file (either may be absent). */
void ga__shm_segment_close(shm_att_t *a);
/* npages_top clamped to what the file covers (fstat); updates a->known_top. */
uint64_t ga__shm_top_slow(shm_att_t *a, uint64_t t);
/* Grows the committed data pages to at least `pages` (pages lock held). 0 or GA_E*. */
int ga__shm_commit(shm_att_t *a, uint64_t pages);

/* ---- src/shared/name.c ------------------------------------------------------------------- */

/* True when name is 1..max printable ASCII characters without '/', '\\' or "..". */
bool ga__shm_name_ok(const char *name, size_t max);
/* The path of heap `name` into out (cap >= SHM_PATH_MAX): the shm_open name "/ga.NAME", or the
 * file DIR/ga.NAME with GLOBALALLOC_SHM_DIR=DIR. 0 or GA_ENAME (bad name; bad DIR, reported). */
int ga__shm_path(const char *name, char *out, size_t cap);
/* FNV-1a of n bytes at p, continuing from h (SHM_FNV_BASIS to start). */
uint64_t ga__shm_hash(const void *p, size_t n, uint64_t h);
/* The header's layout_sum: the hash of its immutable first block. */
uint64_t ga__shm_layout_sum(const shm_header_t *h);
/* A named object's hash (shm_named_t.hash). */
uint32_t ga__shm_name_hash(const char *name);

/* ---- src/shared/lock.c: locks ----------------------------------------------------------- */

/* Lock ids: one per lock of the segment (the bit numbers of the debug record). */
enum {
    SHM_LOCK_PAGES = SHM_NCLASS + SHM_NSTRIPES, /* after the class and stripe locks */
    SHM_LOCK_NAMED,
    SHM_LOCK_SLOTS,
    SHM_NLOCKS
};
#define SHM_LOCK_CLASS(c)  (0u + (unsigned)(c))
#define SHM_LOCK_STRIPE(s) (SHM_NCLASS + (unsigned)(s))
static_assert(SHM_NLOCKS <= 64, "the debug record has one bit per lock");

/* The lock in the segment for lock id `lock` (a zeroed shm_lock_t is a free lock). */
shm_lock_t *ga__shm_lockp(shm_att_t *a, unsigned lock);
/* The lock timeout in ms (GLOBALALLOC_LOCK_TIMEOUT_MS, read once; default 30 s); tests set it. */
unsigned ga__shm_lock_timeout(void);
void ga__shm_set_lock_timeout(unsigned ms);
/* "class 3", "handle stripe 5", "pages", "named-object", "slots". */
void ga__shm_lock_name(unsigned lock, char *out, size_t cap);
/* A lock word anywhere in the segment (the segment's own locks, ga_shared_mutex_t, maps): takes
 * it within timeout_ms (0: the lock timeout). SHM_GOT, SHM_GOT_FROM_DEAD (its holder's process
 * had gone: the caller repairs what it guards), or GA_ETIMEDOUT (reported, naming `what`; the
 * error code is not set). Counts takeovers. */
enum { SHM_GOT = 0, SHM_GOT_FROM_DEAD = 1, SHM_DONE = 2 };
int ga__shm_word_lock(shm_att_t *a, shm_lock_t *l, const char *what, unsigned timeout_ms);
/* Who takes a word, for ga__shm_word_lock_as: the value it stores while holding (a pid, or a
 * thread id), how a holder's liveness is judged, an optional final value `done` (nonzero, not a
 * possible holder: SHM_WORD_DONE) that ends the wait with SHM_DONE, and whether a timeout is
 * reported. */
typedef struct shm_owner_s {
    uint32_t me;
    bool (*alive)(shm_att_t *a, uint32_t holder);
    uint32_t done;
    bool quiet;
} shm_owner_t;
#define SHM_WORD_DONE SHM_LOCK_PID /* 0x7FFFFFFF: above every pid and thread id (2^22) */
/* ga__shm_word_lock for owner o: SHM_GOT, SHM_GOT_FROM_DEAD, SHM_DONE or GA_ETIMEDOUT. */
int ga__shm_word_lock_as(shm_att_t *a, shm_lock_t *l, const shm_owner_t *o, const char *what,
                         unsigned timeout_ms);
/* Without waiting: SHM_GOT, SHM_GOT_FROM_DEAD (the holder was found dead), SHM_DONE, or
 * GA_ELOCKED (held by a live holder). */
int ga__shm_word_trylock_as(shm_att_t *a, shm_lock_t *l, const shm_owner_t *o);
/* This thread as a holder (its kernel thread id; a dead thread's word is taken over; quiet). */
shm_owner_t ga__shm_thread_owner(void);
/* Its cache (0: not asked yet; a fork child forgets its parent's). */
extern GA_TLS uint32_t ga__shm_my_tid;
void ga__shm_word_unlock(shm_lock_t *l);
/* ga__shm_word_lock without waiting for a live holder: SHM_GOT, SHM_GOT_FROM_DEAD, or
 * GA_ETIMEDOUT at once (not reported) when the word is held by a live process. */
int ga__shm_word_trylock(shm_att_t *a, shm_lock_t *l);
/* True when the word's holder is this process (any of its threads). */
bool ga__shm_word_held_by_me(const shm_lock_t *l);
/* Takes a lock: 0, or GA_ETIMEDOUT when not obtained within the lock timeout (reported with
 * the lock's name and holder pid). When it was taken over from a dead holder it first calls
 * repair(att, arg), holding the lock. pre: the caller does not hold it already. */
int ga__shm_lock(shm_att_t *a, unsigned lock, void (*repair)(shm_att_t *, void *), void *arg);
/* pre: the caller holds lock. */
void ga__shm_unlock(shm_att_t *a, unsigned lock);
#if GA_DEBUG >= 2
/* True when this thread holds lock of attachment a (taken through ga__shm_lock). */
bool ga__shm_held(const shm_att_t *a, unsigned lock);
/* True when this thread holds any lock of attachment a. */
bool ga__shm_held_any(const shm_att_t *a);
#define GA_ASSERT_SHM_HELD(a, lock) GA__ASSERT(ga__shm_held((a), (lock)))
#else
#define GA_ASSERT_SHM_HELD(a, lock) ((void)0)
#endif

/* ---- intent records: begin, add, commit, end --------------------------------------------
 * One logged change under the pages, named or a stripe lock, in the record beside that lock:
 *   in = ga__shm_intent_begin(a, lock, idx)   the entry or page changed, and our slot
 *   ga__shm_intent_add_blocks / _sizes / _run  what the repair needs to finish or undo it
 *   ga__shm_intent_commit(in, INTENT_*)       the op, stored after every field (seq_cst): from
 *                                             here on, a repair finishes or undoes the change
 *   ... the change, whose own commit point is one atomic store ...
 *   ga__shm_intent_end(in)                    the op cleared (seq_cst), after the last step
 * Fields are plain stores: no one reads them before seeing the op, so "fields, then op, then
 * change, then clear" is the only order, and recovery depends on it (the idea of pmdk's
 * operation/ulog, written for one record per lock). */
static inline shm_intent_t *ga__shm_intent_of(shm_att_t *a, unsigned lock)
{
    shm_header_t *h = a->hdr;
    if (lock == SHM_LOCK_PAGES) return &h->pages_intent;
    if (lock == SHM_LOCK_NAMED) return &h->named_intent;
    return &h->stripes[lock - SHM_LOCK_STRIPE(0)].intent;
}
/* pre: lock (pages, named or a stripe) held. */
static inline shm_intent_t *ga__shm_intent_begin(shm_att_t *a, unsigned lock, uint32_t idx)
{
    GA_ASSERT_SHM_HELD(a, lock);
    GA_ASSERT_INTERNAL(lock >= SHM_LOCK_STRIPE(0) && lock <= SHM_LOCK_NAMED);
    shm_intent_t *in = ga__shm_intent_of(a, lock);
    in->idx = idx;
    in->slot = a->slot;
    return in;
}
/* The blocks involved: new_off is given to the entry, old_off leaves it (0 = none). */
static inline void ga__shm_intent_add_blocks(shm_intent_t *in, uint64_t new_off, uint64_t old_off)
{
    in->new_off = new_off;
    in->old_off = old_off;
}
static inline void ga__shm_intent_add_sizes(shm_intent_t *in, uint64_t new_size, uint64_t old_size)
{
    in->new_size = new_size;
    in->old_size = old_size;
}
/* Page ops: the run is pages idx .. idx + n - 1. */
static inline void ga__shm_intent_add_run(shm_intent_t *in, uint64_t n)
{
    in->new_size = n;
}
static inline void ga__shm_intent_commit(shm_intent_t *in, unsigned op)
{
    atomic_store(&in->op, op);
}
/* Also what a repair does once it has finished or undone the change. */
static inline void ga__shm_intent_end(shm_intent_t *in)
{
    atomic_store(&in->op, INTENT_NONE);
}
/* For repairs: the state the record's process gave its new block, ALLOC(slot) (slot 0 when the
 * recorded slot is out of range). */
static inline unsigned ga__shm_intent_owner(const shm_intent_t *in)
{
    return ST_ALLOC(in->slot < SHM_PROC_SLOTS ? in->slot : 0);
}

/* ---- src/shared/slot.c: process slots ---------------------------------------------------- */

/* 1 if the process in slot s is alive, 0 if dead, -1 if the slot is free. */
int ga__shm_slot_alive(shm_att_t *a, unsigned s);
/* Claims a free slot for this process into *out, recycling dead processes' slots when none is
 * free. 0, GA_EFULL (SHM_PROC_SLOTS live processes attached; reported) or GA_ECORRUPT. */
int ga__shm_slot_claim(shm_att_t *a, unsigned *out);
/* Frees a's slot (detach, or an open that failed after its claim). */
void ga__shm_slot_release(shm_att_t *a);

/* ---- src/shared/size_class.c: size classes, SMALL page geometry -------------------------- */

extern const uint32_t ga__shm_class_size[SHM_NCLASS];
/* Per-class geometry (computed at load time from the class sizes, never read from the segment). */
typedef struct shm_geometry_s {
    uint32_t hdr[SHM_NCLASS];   /* bytes of state area (block 0 starts here) */
    uint32_t count[SHM_NCLASS]; /* blocks per page */
    uint64_t recip[SHM_NCLASS]; /* floor(2^32 / size) + 1: rel / size == rel * recip >> 32,
                                 * exact for rel < 2^16 and size <= 2^16 */
} shm_geometry_t;
extern shm_geometry_t ga__shm_geo;
static inline uint32_t ga__shm_class_hdr(unsigned c)
{
    return ga__shm_geo.hdr[c];
}
static inline uint32_t ga__shm_class_count(unsigned c)
{
    return ga__shm_geo.count[c];
}
/* The class of a small request (s <= SHM_SMALL_MAX). */
static inline unsigned ga__shm_size_class(size_t s)
{
    if (s <= 128) return s ? (unsigned)((s - 1) >> 4) : 0;
    unsigned lg = 63u - (unsigned)__builtin_clzll((unsigned long long)(s - 1));
    unsigned k = (unsigned)((s - 1) >> (lg - 2)); /* 4..7 */
    return 8 + (lg - 7) * 4 + (k - 4);
}

/* ---- src/shared/page.c: the page table and the page pool -------------------------------- */

/* Data pages committed: npages_top, never past what the file covers nor max_pages. */
static inline uint64_t ga__shm_top_pages(shm_att_t *a)
{
    uint64_t t = atomic_load_explicit(&a->hdr->npages_top, memory_order_acquire);
    return GA_LIKELY(t <= a->known_top) ? t : ga__shm_top_slow(a, t);
}
/* The state bytes at the start of SMALL page `page`. */
static inline _Atomic uint8_t *ga__shm_state_bytes(shm_att_t *a, uint64_t page)
{
    return (_Atomic uint8_t *)(a->base + a->data_off + page * SHM_PAGE);
}
/* Validated pointer to page i's record, NULL when i is past the committed top. */
shm_page_t *ga__shm_page(shm_att_t *a, uint64_t i);
int ga__shm_lock_pages(shm_att_t *a);
/* Repair callback of the pages lock (arg unused). */
void ga__shm_repair_pages(shm_att_t *a, void *arg);
/* Allocates a run of n pages: a large block owned by `owner` (state byte), n >= 1.
 * The page index or UINT64_MAX (*err set). */
uint64_t ga__shm_large_alloc(shm_att_t *a, uint64_t n, unsigned owner, int *err);
/* Large block at page (CACHED or ALLOC) back to the page pool. */
int ga__shm_large_release(shm_att_t *a, uint64_t page, unsigned expect);
/* A fresh SMALL page for class c (class lock held). Its index or UINT64_MAX (*err set). */
uint64_t ga__shm_page_new_small(shm_att_t *a, unsigned c, int *err);
/* Makes sure handle-table chunk `chunk` exists (a zeroed PG_HTABLE page). 0 or GA_E*. */
int ga__shm_htable_chunk(shm_att_t *a, uint32_t chunk);

/* ---- src/shared/small.c: small blocks, thread caches ------------------------------------ */

/* Thread-cache entries pack the block offset (< 2^40) with its index in the page. */
#define TC_OFF(e)         ((e) & (((uint64_t)1 << 40) - 1))
#define TC_IDX(e)         ((uint32_t)((e) >> 48))
#define TC_PACK(off, idx) ((off) | ((uint64_t)(idx) << 48))
/* This thread's cache per attachment index (NULL until first use). */
extern GA_TLS shm_tcache_t *ga__shm_tl_tc[ATT_MAX];
/* Makes or resets this thread's cache for a. NULL when it cannot be mapped. */
shm_tcache_t *ga__shm_tc_slow(shm_att_t *a);
/* This thread's cache for a: the common case inline. */
static inline shm_tcache_t *ga__shm_tc_get(shm_att_t *a)
{
    shm_tcache_t *tc = ga__shm_tl_tc[a->index];
    if (GA_LIKELY(tc && tc->att == a && tc->serial == a->serial)) return tc;
    return ga__shm_tc_slow(a);
}
/* Fills tc's empty-ish list of class c from the class's pages (takes the class lock). 0 or
 * GA_E* (GA_EFULL: no page left). */
int ga__shm_refill(shm_att_t *a, shm_tcache_t *tc, unsigned c);
/* Moves all but `keep` (the newest) cached blocks of class c back to the free pool. */
void ga__shm_flush_class(shm_att_t *a, shm_tcache_t *tc, unsigned c, uint32_t keep);
/* Flushes every cache of attachment a in this process (detach). */
void ga__shm_flush_all(shm_att_t *a);
/* fork handling of the thread-cache list: 0 prepare (lock), 1 parent (unlock), 2 child (forget
 * every cache: they hold the parent's blocks; unlock). */
void ga__shm_tcache_fork(int phase);
int ga__shm_lock_class(shm_att_t *a, unsigned c);
/* Repair callback of class lock (unsigned)(uintptr_t)arg. */
void ga__shm_repair_class(shm_att_t *a, void *arg);
/* Under the class lock: turns a CACHED/ALLOC small block back to FREE (recovery). */
void ga__shm_small_release_locked(shm_att_t *a, uint64_t page, uint32_t idx);
/* Gives wholly free small pages back to the page pool; returns how many. */
uint64_t ga__shm_trim(shm_att_t *a);

/* ---- src/shared/alloc.c: allocation, lookup, free --------------------------------------- */

/* Allocates a block owned by this process's slot: its offset, or 0 (error set). */
uint64_t ga__shm_alloc_off(shm_att_t *a, size_t size, bool zero);
/* Frees block off. in_window: inside a logged change (the block stays CACHED(me) and is not
 * handed to the free pool until ga__shm_after_window). 0 or GA_E*. expect: the owner state the
 * block must have (ST_ALLOC(slot)), or 0 for any ALLOC state. */
int ga__shm_free_off(shm_att_t *a, uint64_t off, unsigned expect, bool in_window);
/* Completes frees made inside a window (large blocks go back to the page pool; caches flush). */
void ga__shm_after_window(shm_att_t *a, uint64_t off);
/* Usable bytes of the block at off, or 0 if off is not a block start. If state is not NULL,
 * *state receives its state byte. */
size_t ga__shm_block_info(shm_att_t *a, uint64_t off, unsigned *state);
/* 0 when [off, off + len) lies inside one allocated block, else GA_ENOTOWNED. */
int ga__shm_block_around(shm_att_t *a, uint64_t off, uint64_t len);
/* CAS the state of block off from `from` to `to`. true on success. */
bool ga__shm_block_cas(shm_att_t *a, uint64_t off, unsigned from, unsigned to);
/* Frees block off if it still has state `st` (repairs: a dead process's half-done change). */
void ga__shm_free_if(shm_att_t *a, uint64_t off, unsigned st);

/* ---- src/shared/handle.c, src/shared/object.c: handles, named objects --------------------- */

int ga__shm_lock_stripe(shm_att_t *a, unsigned s);
int ga__shm_lock_named(shm_att_t *a);
shm_hentry_t *ga__shm_hentry(shm_att_t *a, uint32_t idx);
/* Calls fn (NULL: none) for each live entry, a lock-free snapshot; returns how many entries it
 * accepted (all, without fn). */
typedef bool ga__shm_entry_fn(void *arg, uint32_t idx, shm_hentry_t *e, uint64_t word);
long ga__shm_each_handle(shm_att_t *a, ga__shm_entry_fn *fn, void *arg);
/* Frees live entry idx of stripe s (word w; stripe lock held): the logged HFREE. Returns its old
 * block, to pass to ga__shm_after_window once the stripe is unlocked. */
uint64_t ga__shm_entry_free(shm_att_t *a, unsigned s, uint32_t idx, shm_hentry_t *e, uint64_t w);
/* Checks the handle table / named objects; counts referenced blocks. 0 or GA_ECORRUPT. */
int ga__shm_check_handles(shm_att_t *a, uint64_t *refs, uint64_t *bytes, uint64_t *nlive,
                          bool quiet);
int ga__shm_check_named(shm_att_t *a, uint64_t *refs, uint64_t *bytes, uint64_t *nlive, bool quiet);

/* ga_shared_object for attachment a; *entry receives the object's index in hdr->named. */
void *ga__shm_object_get(shm_att_t *a, const char *name, size_t size, unsigned flags, int *created,
                         unsigned *entry);

/* ---- src/shared/orphan.c: handles whose creator has gone --------------------------------- */

/* ga__shm_slot_alive of every process slot. */
void ga__shm_alive_snapshot(shm_att_t *a, int alive[SHM_PROC_SLOTS]);
/* True when the creator of live entry e has gone (detached, exited, died); alive: a snapshot
 * (may be NULL), confirmed afresh before answering "gone". */
bool ga__shm_creator_gone(shm_att_t *a, const shm_hentry_t *e, const int alive[SHM_PROC_SLOTS]);
typedef void ga__shm_handle_fn(void *arg, ga_handle_t h, uint64_t size, int creator_pid);
/* Counts the live handles whose creator has gone (their sizes into *bytes, may be NULL),
 * calling fn (may be NULL) for each. Lock-free snapshot. */
long ga__shm_orphan_handles(shm_att_t *a, ga__shm_handle_fn *fn, void *arg, uint64_t *bytes);

/* ---- src/shared/recover.c ------------------------------------------------------------------ */

/* Takes and releases every lock (repairing what dead holders left), then gives back the
 * cached blocks of dead slots; with blocks, also their allocated blocks, and frees the slots.
 * Returns the number of blocks given back, or GA_E*. */
long ga__shm_recover(shm_att_t *a, bool blocks);
/* Frees the slots of dead processes for reuse: their cached blocks given back, their allocated
 * blocks handed to SHM_SLOT_DEAD (kept for ga_shared_reclaim_dead). Blocks moved, or GA_E*. */
long ga__shm_recycle(shm_att_t *a);
/* Reports a corruption (unless quiet) and returns GA_ECORRUPT. */
int ga__shm_corrupt(shm_att_t *a, bool quiet, uint64_t where, const char *what);

#endif /* GA_SHARED_INTERNAL_H */
