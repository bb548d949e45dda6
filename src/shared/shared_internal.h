/* SPDX-License-Identifier: MIT */
/*
 * Shared heaps: the segment layout and the declarations shared by the files of src/shared/.
 * Never installed. See the block comment at the top of src/shared/segment.c for the whole design;
 * this header only holds the structs (each with its invariants beside it) and the cross-file
 * helpers (ga__shm_*).
 *
 * Everything inside the segment refers to memory by 64-bit offsets from the segment base (never
 * pointers): the segment is mapped at a different address in each process.
 */
#ifndef GA_SHARED_INTERNAL_H
#define GA_SHARED_INTERNAL_H

#include "shared/shared.h"
#include <pthread.h>
#include <stdatomic.h>
#include <sys/types.h>

/* ---- constants ------------------------------------------------------------------------- */

#define SHM_MAGIC       0x3150414548534147ull /* "GASHEAP1" little-endian */
#define SHM_VERSION     1u
#define SHM_PAGE_SHIFT  16
#define SHM_PAGE        ((uint64_t)1 << SHM_PAGE_SHIFT) /* 64 KiB: unit of the page table */
#define SHM_MIN_SIZE    ((uint64_t)1 << 20)             /* smallest max_size: 1 MiB */
#define SHM_MAX_SIZE    ((uint64_t)1 << 36)             /* largest max_size: 64 GiB */
#define SHM_PREFIX      "ga."                           /* /dev/shm/ga.NAME */
#define SHM_NAME_MAX    200                             /* heap name length */
#define SHM_OBJNAME_MAX 63                              /* named object name length */

/* Owner slots: 0..61 are attached processes, 62 = left behind by a process that detached
 * cleanly, 63 = the heap itself (blocks referenced by a handle or a named object). */
#define SHM_SLOTS       64
#define SHM_PROC_SLOTS  62
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

/* Size classes: 16 .. 16384 bytes, four per doubling. Larger blocks take whole pages. */
#define SHM_NCLASS    36
#define SHM_SMALL_MAX 16384u

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

/* Handles: h % 16 == 8; bits 4..27 entry index, 28..51 generation, 52..62 heap id. */
#define H_INDEX(h)  ((uint32_t)(((h) >> 4) & 0xFFFFFF))
#define H_GEN(h)    ((uint32_t)(((h) >> 28) & 0xFFFFFF))
#define H_HEAPID(h) ((unsigned)(((h) >> 52) & 0x7FF))
#define H_MAKE(idx, gen, id)                                                                       \
    ((ga_handle_t)8 | ((ga_handle_t)(idx) << 4) | ((ga_handle_t)(gen) << 28) |                     \
     ((ga_handle_t)(id) << 52))
#define SHM_HCHUNK_ENTRIES (SHM_PAGE / sizeof(shm_hentry_t))
#define SHM_HCHUNKS_MAX    8192 /* 8192 * 2048 = 2^24 entries, the index field's range */
#define SHM_NSTRIPES       16   /* with the 36 class locks, the checker holds < 64 locks (TSan) */
/* Handle entry word: gen:24 | live:1 | pad:7 | locks:8 | flags:8 | pad:16 */
#define HW_GEN(w)   ((uint32_t)((w)&0xFFFFFF))
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
 * under hdr->slots_lock. pids are only meaningful within one pid namespace. */
typedef struct shm_slot_s {
    _Atomic int32_t pid;
    _Atomic uint32_t recovered; /* dead slot whose cached blocks were already given back */
    uint64_t start_time;        /* /proc/PID/stat field 22 */
} shm_slot_t;

/* Central state of one size class. partial: pages of the class that have free blocks (a
 * hint: rebuilt from the state bytes after a holder died). Protected by lock. */
typedef struct shm_class_s {
    pthread_mutex_t lock;
    uint32_t partial_head; /* page index + 1, 0 = none */
    uint32_t npages;       /* pages of this class (hint) */
} __attribute__((aligned(GA_CACHE_LINE))) shm_class_t;

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
 * discarded. Entries of stripe s are s, s+16, s+32, ...; the stripe lock protects them. */
typedef struct shm_hentry_s {
    _Atomic uint64_t word;
    uint64_t data_off;
    uint64_t size;
    uint32_t next_free; /* entry index + 1 */
    uint32_t pad_;
} shm_hentry_t;

typedef struct shm_stripe_s {
    pthread_mutex_t lock;
    shm_intent_t intent;
    uint32_t free_head; /* entry index + 1 */
    uint32_t next_k;    /* entries s + k*16 for k < next_k have been used */
} __attribute__((aligned(GA_CACHE_LINE))) shm_stripe_t;

/* A named object. state LIVE is published last (release), after name, size and data_off. */
typedef struct shm_named_s {
    _Atomic uint32_t state; /* NAMED_EMPTY, NAMED_LIVE, NAMED_TOMB */
    uint32_t hash;
    uint64_t data_off;
    uint64_t size;
    char name[SHM_OBJNAME_MAX + 1];
    uint64_t pad_;
} shm_named_t;
enum { NAMED_EMPTY = 0, NAMED_LIVE = 1, NAMED_TOMB = 2 };

enum { INIT_NONE = 0, INIT_BUSY = 1, INIT_READY = 2 };

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
    uint32_t heap_id; /* 1..2047 */
    uint32_t mode;
    uint64_t layout_sum; /* hash of the fields above */

    _Atomic uint32_t init_state;
    int32_t creator_pid;
    uint64_t created_time;
    _Atomic uint64_t npages_top; /* data pages committed (file covers them) */
    _Atomic uint64_t attach_count;
    _Atomic uint64_t repairs; /* locks taken over from dead holders (EOWNERDEAD) */

    pthread_mutex_t slots_lock;
    pthread_mutex_t pages_lock;
    shm_intent_t pages_intent;
    uint32_t pages_hint; /* no free page below this index (hint) */
    pthread_mutex_t named_lock;
    shm_intent_t named_intent;
    uint32_t named_count;

    shm_slot_t slots[SHM_SLOTS];
    shm_class_t classes[SHM_NCLASS];
    shm_stripe_t stripes[SHM_NSTRIPES];
    _Atomic uint32_t hchunk[SHM_HCHUNKS_MAX]; /* page index + 1 of each handle-table chunk */
    shm_named_t named[SHM_NAMED_MAX];
} shm_header_t;

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
    char name[SHM_NAME_MAX + 1];
} shm_att_t;
enum { ATT_OPEN = 1, ATT_INHERITED = 2 };

typedef struct shm_tcache_s {
    struct shm_tcache_s *next; /* all caches of the process (att_lock) */
    shm_att_t *att;
    uint64_t serial;
    uint32_t n[SHM_NCLASS];
    uint64_t off[SHM_NCLASS][TC_SLOTS];
} shm_tcache_t;

/* ---- src/shared/segment.c ------------------------------------------------------------------ */

/* Validates heap and returns its attachment, or NULL + ga_last_error GA_EINVAL. */
shm_att_t *ga__shm_att(ga_heap_t *heap);
/* The attachment table and this thread's last hit in it (src/shared/segment.c). */
extern _Atomic(shm_att_t *) ga__shm_atts[ATT_MAX];
extern GA_TLS unsigned ga__shm_last_att;
/* ga__shm_att with its common case inlined: heap is the attachment this thread used last.
 * Same checks, in the same order: the pointer is compared with the table before it is read. */
GA_INLINE shm_att_t *ga__shm_att_fast(ga_heap_t *heap)
{
    shm_att_t *a = (shm_att_t *)heap;
    if (GA_LIKELY(a && ga__shm_atts[ga__shm_last_att % ATT_MAX] == a && a->state == ATT_OPEN))
        return a;
    return ga__shm_att(heap);
}
/* The attachment for a handle's heap id, or NULL (GA_EHANDLE set). */
shm_att_t *ga__shm_att_by_id(unsigned heap_id);
/* The open attachment whose mapping contains p, or NULL. */
shm_att_t *ga__shm_att_by_ptr(const void *p);
/* Robust lock: 0, or GA_ECORRUPT when the lock is unrecoverable. After EOWNERDEAD it calls
 * repair(att, arg) while holding the lock, then marks the lock consistent. */
int ga__shm_lock(shm_att_t *a, pthread_mutex_t *m, void (*repair)(shm_att_t *, void *), void *arg);
void ga__shm_unlock(pthread_mutex_t *m);
/* 1 if the process in slot s is alive, 0 if dead, -1 if the slot is free. */
int ga__shm_slot_alive(shm_att_t *a, unsigned s);
/* Process mutex for the attachment table and the thread-cache list. */
void ga__shm_proc_lock(void);
void ga__shm_proc_unlock(void);
uint64_t ga__shm_hash(const void *p, size_t n, uint64_t h);
/* npages_top clamped to what the file covers (fstat); updates a->known_top. */
uint64_t ga__shm_top_slow(shm_att_t *a, uint64_t t);
/* Grows the committed data pages to at least `pages` (pages lock held). 0 or GA_E*. */
int ga__shm_commit(shm_att_t *a, uint64_t pages);

/* ---- src/shared/alloc.c -------------------------------------------------------------------- */

extern const uint32_t ga__shm_class_size[SHM_NCLASS];
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
/* CAS the state of block off from `from` to `to`. true on success. */
bool ga__shm_block_cas(shm_att_t *a, uint64_t off, unsigned from, unsigned to);
/* Gives wholly free small pages back to the page pool; returns how many. */
uint64_t ga__shm_trim(shm_att_t *a);
/* Flushes every cache of attachment a in this process (detach). */
void ga__shm_flush_all(shm_att_t *a);
/* fork handling of the thread-cache list: 0 prepare (lock), 1 parent (unlock), 2 child (forget
 * every cache: they hold the parent's blocks; unlock). */
void ga__shm_tcache_fork(int phase);
/* Repair callbacks for the class and pages locks (arg: class index / NULL). */
void ga__shm_repair_class(shm_att_t *a, void *arg);
void ga__shm_repair_pages(shm_att_t *a, void *arg);
int ga__shm_lock_class(shm_att_t *a, unsigned c);
int ga__shm_lock_pages(shm_att_t *a);
/* Under the class lock: turns a CACHED/ALLOC small block back to FREE (recovery). */
void ga__shm_small_release_locked(shm_att_t *a, uint64_t page, uint32_t idx);
/* Large block at page (CACHED or ALLOC) back to the page pool. */
int ga__shm_large_release(shm_att_t *a, uint64_t page, unsigned expect);
/* Makes sure handle-table chunk `chunk` exists (a zeroed PG_HTABLE page). 0 or GA_E*. */
int ga__shm_htable_chunk(shm_att_t *a, uint32_t chunk);
/* Validated pointer to page i's record, NULL when i is past the committed top. */
shm_page_t *ga__shm_page(shm_att_t *a, uint64_t i);
/* Per-class geometry (local constants, never read from the segment). */
uint32_t ga__shm_class_hdr(unsigned c);
uint32_t ga__shm_class_count(unsigned c);

/* ---- src/shared/handle.c / src/shared/object.c ------------------------------------------------- */

int ga__shm_lock_stripe(shm_att_t *a, unsigned s);
int ga__shm_lock_named(shm_att_t *a);
shm_hentry_t *ga__shm_hentry(shm_att_t *a, uint32_t idx);
/* Checks the handle table / named objects; counts referenced blocks. 0 or GA_ECORRUPT. */
int ga__shm_check_handles(shm_att_t *a, uint64_t *refs, uint64_t *bytes, uint64_t *nlive,
                          bool quiet);
int ga__shm_check_named(shm_att_t *a, uint64_t *refs, uint64_t *bytes, uint64_t *nlive, bool quiet);

/* ---- src/shared/recover.c ------------------------------------------------------------------ */

/* Takes and releases every robust lock (repairing what dead holders left), then gives back the
 * cached blocks of dead slots; with blocks, also their allocated blocks, and frees the slots.
 * Returns the number of blocks given back, or GA_E*. */
long ga__shm_recover(shm_att_t *a, bool blocks);
/* Reports a corruption (unless quiet) and returns GA_ECORRUPT. */
int ga__shm_corrupt(shm_att_t *a, bool quiet, uint64_t where, const char *what);

#endif /* GA_SHARED_INTERNAL_H */
