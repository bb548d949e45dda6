/* SPDX-License-Identifier: MIT */
/*
 * Shared heaps: the on-segment format (version SHM_VERSION), alone. Every struct, constant and
 * macro here describes bytes that several processes, possibly built at different times, read
 * and write; the static_asserts at the end pin today's sizes and offsets. Changing any of them
 * is a format change: bump SHM_VERSION (an old heap then fails to open with GA_EFORMAT instead
 * of being misread). Process-local state lives in shared_internal.h. Self-contained: includes
 * nothing of the library.
 *
 * A shared heap is the POSIX shared memory object /dev/shm/ga.NAME, mapped MAP_SHARED over its
 * whole max_size by every process that attaches it (the reservation); the file itself only
 * covers what is committed (fallocate as the heap grows), so untouched space costs nothing.
 * Nothing inside refers to memory by pointer: only by offset from the segment base, since each
 * process maps the segment at another address.
 *
 *   offset 0          shm_header_t: immutable layout fields (checked on attach, with a hash),
 *                     init state, process slots, class table, handle stripes, handle-table chunk
 *                     directory, named-object table, locks (shm_lock_t) with their intent records
 *   page_table_off    shm_page_t[max_pages]: one descriptor per data page (the header rounded up
 *                     to SHM_PT_ALIGN)
 *   data_off          data pages of 64 KiB (SHM_PAGE), committed from the bottom up to npages_top
 *                     (the page table's end rounded up to SHM_PAGE; max_pages is the largest
 *                     count for which the data pages still fit in max_size)
 *
 * Data pages are FREE, SMALL (blocks of one size class; the first bytes of the page hold one
 * state byte per block), LARGE head + TAILs (one block of n pages; its state byte lives in the
 * head's descriptor), or HTABLE (a chunk of 2048 handle entries).
 *
 * Ownership is exact: a block's state byte says FREE, CACHED(slot) (free, in the thread caches
 * of the process in that slot) or ALLOC(slot) (allocated by it; slot 63 = the heap: data of a
 * handle or a named object; 62 = left by a process that detached; 61 = left by a process that
 * died and whose slot was reused).
 */
#ifndef GA_SHARED_LAYOUT_H
#define GA_SHARED_LAYOUT_H

#include <assert.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

/* ---- constants ------------------------------------------------------------------------- */

#define SHM_MAGIC       0x3150414548534147ull /* "GASHEAP1" little-endian */
#define SHM_VERSION     2u /* 2: own locks (shm_lock_t) instead of pthread mutexes; slot
                              * generations, handle creators, SHM_SLOT_DEAD */
#define SHM_PAGE_SHIFT  16
#define SHM_PAGE        ((uint64_t)1 << SHM_PAGE_SHIFT) /* 64 KiB: unit of the page table */
#define SHM_PT_ALIGN    4096u                           /* page table offset alignment */
#define SHM_MIN_SIZE    ((uint64_t)1 << 20)             /* smallest max_size: 1 MiB */
#define SHM_MAX_SIZE    ((uint64_t)1 << 36)             /* largest max_size: 64 GiB */
#define SHM_LINE        64     /* alignment of the lock-holding structs (one cache line) */
#define SHM_HEAPID_MAX  0x7FFu /* heap ids are 1..2047 (11 bits of a handle value) */
#define SHM_OBJNAME_MAX 63     /* named object name length */

/* Header checksum (layout_sum) and named-object hash: 64-bit FNV-1a. */
#define SHM_FNV_BASIS 0xcbf29ce484222325ull
#define SHM_FNV_PRIME 0x100000001b3ull

/* Owner slots: 0..60 are attached processes (so at most 61 attached at once; a slot is reused
 * once its process has gone), 61 = left by a dead process whose slot was reused (its blocks
 * wait for ga_shared_reclaim_dead), 62 = left behind by a process that detached cleanly, 63 =
 * the heap itself (blocks referenced by a handle or a named object). */
#define SHM_SLOTS       64
#define SHM_PROC_SLOTS  61
#define SHM_SLOT_DEAD   61
#define SHM_SLOT_ORPHAN 62
#define SHM_SLOT_HEAP   63

/* Block state byte (one per small block, one in each large block's head page descriptor).
 * Every transition is one atomic byte operation:
 *   FREE -> CACHED(s)      only under the class lock (refill), or the pages lock (large)
 *   CACHED(s) -> ALLOC(s)  only by process s (allocation from its cache)
 *   ALLOC(x) -> CACHED(s)  CAS by any process s (free; double frees lose the CAS)
 *   CACHED(s) -> FREE      only under the class / pages lock (flush, recovery of dead s)
 *   ALLOC(s) -> ALLOC(t)   CAS (ownership handover: to the heap, or to ORPHAN on detach)
 * So FREE blocks change hands only under a lock, and a block freed by process s stays in s's
 * hands (CACHED(s)) until s flushes it or s is found dead and recovered. */
#define ST_FREE      0x00u
#define ST_CACHED(s) (0x40u | (unsigned)(s))
#define ST_ALLOC(s)  (0x80u | (unsigned)(s))
#define ST_KIND(b)   ((b)&0xC0u)
#define ST_SLOT(b)   ((b)&0x3Fu)
#define ST_KCACHED   0x40u
#define ST_KALLOC    0x80u

/* Size classes: 16 .. 16384 bytes, 16-byte steps up to 128, then four per doubling. Larger
 * blocks take whole pages. A SMALL page of a class holds the largest count n of blocks for which
 * n state bytes, rounded up to 16, followed by the n blocks fit in SHM_PAGE. */
#define SHM_NCLASS    36
#define SHM_SMALL_MAX 16384u
#define SHM_CLASS_SIZES                                                                            \
    {                                                                                              \
        16, 32, 48, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384, 448, 512, 640, 768, 896,   \
            1024, 1280, 1536, 1792, 2048, 2560, 3072, 3584, 4096, 5120, 6144, 7168, 8192, 10240,   \
            12288, 14336, 16384                                                                    \
    }

/* Page descriptor word (atomic, 64 bits): kind:8 | owner:8 | class:8 | pad:8 | n:32.
 * FREE: unused page. SMALL: blocks of class `class`, their state bytes at the page start.
 * LARGE: head of a run of n pages, owner = the block's state byte. TAIL: n = the head's index.
 * HTABLE: a chunk of the handle table (listed in hdr->hchunk[]). */
enum { PG_FREE = 0, PG_SMALL = 1, PG_LARGE = 2, PG_TAIL = 3, PG_HTABLE = 4 };
#define PD_MAKE(kind, owner, cls, n)                                                               \
    ((uint64_t)(kind) | ((uint64_t)(owner) << 8) | ((uint64_t)(cls) << 16) | ((uint64_t)(n) << 32))
#define PD_KIND(d)  ((unsigned)((d)&0xFF))
#define PD_OWNER(d) ((unsigned)(((d) >> 8) & 0xFF))
#define PD_CLASS(d) ((unsigned)(((d) >> 16) & 0xFF))
#define PD_N(d)     ((uint32_t)((d) >> 32))

/* The handle table: chunks of one page each; entry i is in chunk i / SHM_HCHUNK_ENTRIES and
 * belongs to stripe i % SHM_NSTRIPES. */
#define SHM_HCHUNK_ENTRIES (SHM_PAGE / sizeof(shm_hentry_t))
#define SHM_HCHUNKS_MAX    8192 /* 8192 * 2048 = 2^24 entries, the index field's range */
#define SHM_NSTRIPES       16   /* with the 36 class locks, the checker holds < 64 locks (TSan) */
/* Handle entry word: gen:24 | live:1 | pad:7 | locks:8 | flags:8 | pad:16 */
#define HW_GEN_MASK 0xFFFFFFu
#define HW_GEN(w)   ((uint32_t)((w)&HW_GEN_MASK))
#define HW_LIVE     ((uint64_t)1 << 24)
#define HW_LOCKS(w) ((unsigned)(((w) >> 32) & 0xFF))
#define HW_FLAGS(w) ((unsigned)(((w) >> 40) & 0xFF))
#define HW_MAKE(gen, live, locks, flags)                                                           \
    ((uint64_t)(gen) | ((live) ? HW_LIVE : 0) | ((uint64_t)(locks) << 32) |                        \
     ((uint64_t)(flags) << 40))
/* Handle data blocks start with this prefix (so ga_handle_from_ptr can find the entry). */
#define HPREFIX_MAGIC 0x48414e44u /* "HAND" */
#define HPREFIX       16u

#define SHM_NAMED_MAX 1024 /* named objects per heap (open addressing, power of two) */

/* ---- the segment ----------------------------------------------------------------------- */

/* A lock (src/shared/lock.c): word = the holder's pid (0 = free) | SHM_LOCK_WAITERS. Taken by
 * one CAS 0 -> pid, released by one exchange to 0 (a futex wake when there are waiters). A
 * waiter that finds the holder's process gone takes the lock over with one CAS from the dead
 * pid to its own, and then runs the lock's repair. Nothing else: no pointers, no lists, so a
 * peer that rewrites these bytes can make a lock wrong (a bounded wait, or two holders inside
 * the segment) but never make anyone write outside it. */
typedef struct shm_lock_s {
    _Atomic uint32_t word;
    _Atomic uint32_t takeovers; /* times taken over from a dead holder (statistics) */
} shm_lock_t;
#define SHM_LOCK_WAITERS 0x80000000u
#define SHM_LOCK_PID     0x7FFFFFFFu

/* An intent record: written before a multi-step change made under the lock beside it, and
 * cleared after. The next owner of the lock (after EOWNERDEAD) reads it to finish or undo. */
typedef struct shm_intent_s {
    _Atomic uint32_t op; /* INTENT_* (0 = none) */
    uint32_t idx;        /* entry index or page index */
    uint32_t slot;       /* the process slot doing it */
    uint32_t pad;
    uint64_t new_off, old_off; /* blocks involved (0 = none) */
    uint64_t new_size, old_size;
} shm_intent_t;
enum {
    INTENT_NONE = 0,
    INTENT_HALLOC,   /* handle entry idx gets block new_off */
    INTENT_HREALLOC, /* entry idx moves from old_off/old_size to new_off/new_size */
    INTENT_HFREE,    /* entry idx freed; its block old_off goes too */
    INTENT_OCREATE,  /* named entry idx gets block new_off */
    INTENT_OREMOVE,  /* named entry idx removed; its block old_off goes too */
    INTENT_PALLOC,   /* pages idx .. idx+new_size-1 become a large block / small page */
    INTENT_PFREE,    /* large block at page idx (new_size pages) returns to the free pool */
};

/* A process slot. pid != 0 means taken; the process is alive when pid exists (kill 0), is no
 * zombie and, where /proc can tell, has the recorded start time (pids are reused). Written
 * under hdr->slots_lock. pids are only meaningful within one pid namespace. gen counts the
 * claims of the slot, so a record of "slot s, generation g" (a handle's creator) stays
 * unambiguous after the slot is reused. */
typedef struct shm_slot_s {
    _Atomic int32_t pid;
    _Atomic uint16_t recovered; /* dead slot whose cached blocks were already given back */
    _Atomic uint16_t gen;       /* bumped by every claim */
    uint64_t start_time;        /* /proc/PID/stat field 22 */
} shm_slot_t;

/* Central state of one size class. partial: pages of the class that have free blocks (a
 * hint: rebuilt from the state bytes after a holder died). Protected by lock. */
typedef struct shm_class_s {
    shm_lock_t lock;
    uint32_t partial_head; /* page index + 1, 0 = none */
    uint32_t npages;       /* pages of this class (hint) */
} __attribute__((aligned(SHM_LINE))) shm_class_t;

/* Per page: the atomic descriptor and the class's bookkeeping for it (under the class lock). */
typedef struct shm_page_s {
    _Atomic uint64_t desc;
    uint32_t next_partial; /* page index + 1 */
    uint32_t free_count;   /* FREE blocks in the page (hint, recounted on repair) */
    uint32_t scan;         /* where the next refill scan starts */
    uint32_t in_partial;
    uint32_t owner; /* slot + 1 of the process that refilled from it last (a hint) */
    uint32_t pad_;
} shm_page_t;

/* One handle-table entry. data_off: block start (the data is HPREFIX bytes further), 0 when
 * discarded. Entries of stripe s are s, s+16, s+32, ...; the stripe lock protects them. A live
 * entry names the process that created it: creator = HC_MAKE(slot, the slot's generation then)
 * and creator_pid; the creator has gone when that slot now has another pid or generation, or
 * its process is dead. A free entry uses the same word as its free-list link. */
typedef struct shm_hentry_s {
    _Atomic uint64_t word;
    uint64_t data_off;
    uint64_t size;
    union {
        uint32_t next_free; /* free entry: entry index + 1 */
        int32_t creator_pid; /* live entry */
    };
    uint32_t creator; /* live entry: HC_MAKE(slot, gen); 0 = unknown */
} shm_hentry_t;
#define HC_MAKE(slot, gen) (((uint32_t)(slot) + 1) | ((uint32_t)(gen) << 8))
#define HC_SLOT(c)         (((c)&0xFFu) - 1) /* UINT32_MAX-ish when c == 0 */
#define HC_GEN(c)          ((uint16_t)((c) >> 8))

/* The first HPREFIX bytes of a handle's data block: names its entry. */
typedef struct shm_hprefix_s {
    uint32_t magic; /* HPREFIX_MAGIC */
    uint32_t index; /* entry index */
    uint64_t pad;
} shm_hprefix_t;

typedef struct shm_stripe_s {
    shm_lock_t lock;
    shm_intent_t intent;
    uint32_t free_head; /* entry index + 1 */
    uint32_t next_k;    /* entries s + k*16 for k < next_k have been used */
} __attribute__((aligned(SHM_LINE))) shm_stripe_t;

/* A named object. state LIVE is published last (release), after name, size and data_off. */
typedef struct shm_named_s {
    _Atomic uint32_t state; /* NAMED_EMPTY, NAMED_LIVE, NAMED_TOMB */
    uint32_t hash;          /* low 32 bits of the FNV-1a hash of name */
    uint64_t data_off;
    uint64_t size;
    char name[SHM_OBJNAME_MAX + 1];
    shm_lock_t init; /* once-init (ga_shared_object_init): word 0 = not initialised, the
                      * initialising thread's id while init runs, SHM_WORD_DONE once done;
                      * zeroed when the entry is (re)created */
} shm_named_t;
enum { NAMED_EMPTY = 0, NAMED_LIVE = 1, NAMED_TOMB = 2 };

enum { INIT_NONE = 0, INIT_BUSY = 1, INIT_READY = 2 };

/* ga_shared_mutex_t and ga_shared_cond_t (src/shared/sync.c): placed by the application inside
 * its own blocks. The mutex's lock word holds the holder's kernel thread id (| waiters bit);
 * the cond's seq is bumped by every signal and broadcast (waiters sleep on it). magic marks an
 * initialised one. waiters counts sleepers (a hint: a killed waiter leaves it high, which only
 * costs a wake-up call). */
typedef struct shm_mutex_s {
    shm_lock_t lock;
    _Atomic uint32_t magic; /* SHM_MUTEX_MAGIC */
    uint32_t pad;
} shm_mutex_t;
typedef struct shm_cond_s {
    _Atomic uint32_t seq;
    _Atomic uint32_t magic; /* SHM_COND_MAGIC */
    _Atomic uint32_t waiters;
    uint32_t pad;
} shm_cond_t;
#define SHM_MUTEX_MAGIC 0x5854554du /* "MUTX" */
#define SHM_COND_MAGIC  0x444e4f43u /* "COND" */

/* The header at offset 0. The first block (magic .. layout_sum) never changes after creation
 * and is verified on every attach; every offset used later is recomputed from max_size, never
 * read from the segment. */
typedef struct shm_header_s {
    uint64_t magic;
    uint32_t version;
    uint32_t header_size;
    uint64_t max_size;
    uint64_t max_pages;
    uint64_t page_table_off;
    uint64_t data_off;
    uint32_t heap_id; /* 1..SHM_HEAPID_MAX */
    uint32_t mode;
    uint64_t layout_sum; /* FNV-1a of the fields above */

    _Atomic uint32_t init_state;
    int32_t creator_pid;
    uint64_t created_time;
    _Atomic uint64_t npages_top; /* data pages committed (file covers them) */
    _Atomic uint64_t attach_count;
    _Atomic uint64_t repairs; /* locks taken over from dead holders (EOWNERDEAD) */

    shm_lock_t slots_lock;
    shm_lock_t pages_lock;
    shm_intent_t pages_intent;
    uint32_t pages_hint; /* no free page below this index (hint) */
    shm_lock_t named_lock;
    shm_intent_t named_intent;
    uint32_t named_count;

    shm_slot_t slots[SHM_SLOTS];
    shm_class_t classes[SHM_NCLASS];
    shm_stripe_t stripes[SHM_NSTRIPES];
    _Atomic uint32_t hchunk[SHM_HCHUNKS_MAX]; /* page index + 1 of each handle-table chunk */
    shm_named_t named[SHM_NAMED_MAX];
} shm_header_t;

/* ---- the format, pinned ----------------------------------------------------------------
 * Measured with a throw-away program on the format as it was when this header was written. No
 * C library type is part of the format any more, so these hold on every platform. */

static_assert(sizeof(shm_lock_t) == 8, "shm_lock_t size");
static_assert(offsetof(shm_lock_t, word) == 0, "shm_lock_t.word");
static_assert(offsetof(shm_lock_t, takeovers) == 4, "shm_lock_t.takeovers");
static_assert(sizeof(shm_intent_t) == 48, "shm_intent_t size");
static_assert(offsetof(shm_intent_t, op) == 0, "shm_intent_t.op");
static_assert(offsetof(shm_intent_t, idx) == 4, "shm_intent_t.idx");
static_assert(offsetof(shm_intent_t, slot) == 8, "shm_intent_t.slot");
static_assert(offsetof(shm_intent_t, new_off) == 16, "shm_intent_t.new_off");
static_assert(offsetof(shm_intent_t, old_off) == 24, "shm_intent_t.old_off");
static_assert(offsetof(shm_intent_t, new_size) == 32, "shm_intent_t.new_size");
static_assert(offsetof(shm_intent_t, old_size) == 40, "shm_intent_t.old_size");

static_assert(sizeof(shm_slot_t) == 16, "shm_slot_t size");
static_assert(offsetof(shm_slot_t, pid) == 0, "shm_slot_t.pid");
static_assert(offsetof(shm_slot_t, recovered) == 4, "shm_slot_t.recovered");
static_assert(offsetof(shm_slot_t, gen) == 6, "shm_slot_t.gen");
static_assert(offsetof(shm_slot_t, start_time) == 8, "shm_slot_t.start_time");

static_assert(sizeof(shm_class_t) == 64, "shm_class_t size");
static_assert(offsetof(shm_class_t, lock) == 0, "shm_class_t.lock");
static_assert(offsetof(shm_class_t, partial_head) == 8, "shm_class_t.partial_head");
static_assert(offsetof(shm_class_t, npages) == 12, "shm_class_t.npages");

static_assert(sizeof(shm_page_t) == 32, "shm_page_t size");
static_assert(offsetof(shm_page_t, desc) == 0, "shm_page_t.desc");
static_assert(offsetof(shm_page_t, next_partial) == 8, "shm_page_t.next_partial");
static_assert(offsetof(shm_page_t, free_count) == 12, "shm_page_t.free_count");
static_assert(offsetof(shm_page_t, scan) == 16, "shm_page_t.scan");
static_assert(offsetof(shm_page_t, in_partial) == 20, "shm_page_t.in_partial");
static_assert(offsetof(shm_page_t, owner) == 24, "shm_page_t.owner");

static_assert(sizeof(shm_hentry_t) == 32, "shm_hentry_t size");
static_assert(offsetof(shm_hentry_t, word) == 0, "shm_hentry_t.word");
static_assert(offsetof(shm_hentry_t, data_off) == 8, "shm_hentry_t.data_off");
static_assert(offsetof(shm_hentry_t, size) == 16, "shm_hentry_t.size");
static_assert(offsetof(shm_hentry_t, next_free) == 24, "shm_hentry_t.next_free");
static_assert(offsetof(shm_hentry_t, creator_pid) == 24, "shm_hentry_t.creator_pid");
static_assert(offsetof(shm_hentry_t, creator) == 28, "shm_hentry_t.creator");
static_assert(SHM_HCHUNK_ENTRIES == 2048, "handle entries per chunk");
static_assert(SHM_HCHUNKS_MAX * SHM_HCHUNK_ENTRIES == (uint64_t)1 << 24, "entry index range");

static_assert(sizeof(shm_hprefix_t) == HPREFIX, "shm_hprefix_t size");
static_assert(offsetof(shm_hprefix_t, magic) == 0, "shm_hprefix_t.magic");
static_assert(offsetof(shm_hprefix_t, index) == 4, "shm_hprefix_t.index");

static_assert(sizeof(shm_stripe_t) == 64, "shm_stripe_t size");
static_assert(offsetof(shm_stripe_t, lock) == 0, "shm_stripe_t.lock");
static_assert(offsetof(shm_stripe_t, intent) == 8, "shm_stripe_t.intent");
static_assert(offsetof(shm_stripe_t, free_head) == 56, "shm_stripe_t.free_head");
static_assert(offsetof(shm_stripe_t, next_k) == 60, "shm_stripe_t.next_k");

static_assert(sizeof(shm_named_t) == 96, "shm_named_t size");
static_assert(offsetof(shm_named_t, state) == 0, "shm_named_t.state");
static_assert(offsetof(shm_named_t, hash) == 4, "shm_named_t.hash");
static_assert(offsetof(shm_named_t, data_off) == 8, "shm_named_t.data_off");
static_assert(offsetof(shm_named_t, size) == 16, "shm_named_t.size");
static_assert(offsetof(shm_named_t, name) == 24, "shm_named_t.name");
static_assert(offsetof(shm_named_t, init) == 88, "shm_named_t.init");
static_assert((SHM_NAMED_MAX & (SHM_NAMED_MAX - 1)) == 0, "named table size: a power of two");

static_assert(sizeof(shm_mutex_t) == 16, "shm_mutex_t size");
static_assert(offsetof(shm_mutex_t, lock) == 0, "shm_mutex_t.lock");
static_assert(offsetof(shm_mutex_t, magic) == 8, "shm_mutex_t.magic");
static_assert(sizeof(shm_cond_t) == 16, "shm_cond_t size");
static_assert(offsetof(shm_cond_t, seq) == 0, "shm_cond_t.seq");
static_assert(offsetof(shm_cond_t, magic) == 4, "shm_cond_t.magic");
static_assert(offsetof(shm_cond_t, waiters) == 8, "shm_cond_t.waiters");

/* The immutable first block, then the mutable fields. */
static_assert(offsetof(shm_header_t, magic) == 0, "shm_header_t.magic");
static_assert(offsetof(shm_header_t, version) == 8, "shm_header_t.version");
static_assert(offsetof(shm_header_t, header_size) == 12, "shm_header_t.header_size");
static_assert(offsetof(shm_header_t, max_size) == 16, "shm_header_t.max_size");
static_assert(offsetof(shm_header_t, max_pages) == 24, "shm_header_t.max_pages");
static_assert(offsetof(shm_header_t, page_table_off) == 32, "shm_header_t.page_table_off");
static_assert(offsetof(shm_header_t, data_off) == 40, "shm_header_t.data_off");
static_assert(offsetof(shm_header_t, heap_id) == 48, "shm_header_t.heap_id");
static_assert(offsetof(shm_header_t, mode) == 52, "shm_header_t.mode");
static_assert(offsetof(shm_header_t, layout_sum) == 56, "shm_header_t.layout_sum");
static_assert(offsetof(shm_header_t, init_state) == 64, "shm_header_t.init_state");
static_assert(offsetof(shm_header_t, creator_pid) == 68, "shm_header_t.creator_pid");
static_assert(offsetof(shm_header_t, created_time) == 72, "shm_header_t.created_time");
static_assert(offsetof(shm_header_t, npages_top) == 80, "shm_header_t.npages_top");
static_assert(offsetof(shm_header_t, attach_count) == 88, "shm_header_t.attach_count");
static_assert(offsetof(shm_header_t, repairs) == 96, "shm_header_t.repairs");
static_assert(offsetof(shm_header_t, slots_lock) == 104, "shm_header_t.slots_lock");
static_assert(offsetof(shm_header_t, pages_lock) == 112, "shm_header_t.pages_lock");
static_assert(offsetof(shm_header_t, pages_intent) == 120, "shm_header_t.pages_intent");
static_assert(offsetof(shm_header_t, pages_hint) == 168, "shm_header_t.pages_hint");
static_assert(offsetof(shm_header_t, named_lock) == 172, "shm_header_t.named_lock");
static_assert(offsetof(shm_header_t, named_intent) == 184, "shm_header_t.named_intent");
static_assert(offsetof(shm_header_t, named_count) == 232, "shm_header_t.named_count");
static_assert(offsetof(shm_header_t, slots) == 240, "shm_header_t.slots");
static_assert(offsetof(shm_header_t, classes) == 1280, "shm_header_t.classes");
static_assert(offsetof(shm_header_t, stripes) == 3584, "shm_header_t.stripes");
static_assert(offsetof(shm_header_t, hchunk) == 4608, "shm_header_t.hchunk");
static_assert(offsetof(shm_header_t, named) == 37376, "shm_header_t.named");
static_assert(sizeof(shm_header_t) == 135680, "shm_header_t size");

#endif /* GA_SHARED_LAYOUT_H */
