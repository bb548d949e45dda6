/* SPDX-License-Identifier: MIT */
/*
 * Shared maps: the bytes in the segment (map format version MAP_VERSION) and what the files of
 * src/map/ share. Never installed. Nothing here is a pointer: blocks are named by offsets from
 * the segment base, and every offset and length read from the segment is checked against the
 * committed data area (map_span) before use, so a corrupted map gives GA_ECORRUPT.
 *
 *   root  (the named object "map.NAME"): immutable limits, the lock word, the intent record,
 *         the current table's offset, counts, the table and stripe sequence counters
 *   table (one block): capacity (a power of two) slot words, open addressing, linear probing;
 *         a slot is 0 (empty), 1 (deleted) or tag:32 | entry offset / 16 (offsets < 2^36)
 *   entry (one block per key): hash, version, lengths, value offset (0: the value follows the
 *         key inline), then the key bytes (and an inline value)
 *   value (one block, for values over MAP_INLINE_MAX bytes)
 *
 * Every block the map references is owned by the heap (ALLOC(heap)), so it survives the death
 * of the process that wrote it; ga_shared_check counts them through the hooks (check.c).
 *
 * Writers hold the map lock (the shared heap's lock word, in the root). A write is one or more
 * slot changes, logged in the intent record (or, for a transaction, a log block it names):
 *   PREP    new blocks are allocated as ALLOC(me), recorded, then given to the heap
 *   COMMIT  (one atomic store) the record is complete: the change will happen
 *   apply   each slot word is stored (one atomic store each, inside its stripe's sequence
 *           bump), then the counts; then each dropped block goes back to ALLOC(me)
 *   NONE    the record is cleared; the dropped blocks are freed
 * A resize or clear is the same with one table word: the new table is built (PREP), published
 * by one store of table_off (COMMIT/apply), and the old one dropped. The next lock holder after
 * a dead writer (repair.c), or dead-peer recovery (which runs before a dead process's blocks
 * move), undoes a PREP (frees the recorded new blocks) or redoes a COMMIT (stores the slots
 * again: idempotent, then frees the dropped blocks), and makes every sequence counter even.
 *
 * Readers take no lock: stripe = hash % MAP_NSTRIPES; a reader reads the table sequence and
 * its stripe's sequence (even: no writer inside), probes, copies the value out, then checks
 * both sequences and the slot word again, and retries on any change (after MAP_READ_RETRIES,
 * it takes the lock). Any block a reader touches may have been freed and reused meanwhile: its
 * reads are bounds-checked and their result is used only once validated.
 */
#ifndef GA_MAP_INTERNAL_H
#define GA_MAP_INTERNAL_H

#include "map/map.h"
#include "internal.h"
#include <assert.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <limits.h>
#include <stdio.h>

/* ---- the format ------------------------------------------------------------------------ */

#define MAP_MAGIC        0x3130504d41504147ull /* "GAPAMP01" */
#define MAP_VERSION      1u
#define MAP_TABLE_MAGIC  0x4c42544d41504147ull /* "GAPAMTBL" */
#define MAP_LOG_MAGIC    0x474f4c4d41504147ull /* "GAPAMLOG" */
#define MAP_ENTRY_MAGIC  0x454du               /* "ME" */
#define MAP_NSTRIPES     64
#define MAP_INLINE_MAX   256u /* values up to this size live in their entry */
#define MAP_CAP_MIN      16u
#define MAP_CAP_MAX      ((uint64_t)1 << 28)
#define MAP_SLOT_EMPTY   0u
#define MAP_SLOT_TOMB    1u
#define MAP_OFF_LIMIT    ((uint64_t)1 << 36) /* offsets of entries fit 32 bits / 16 */
#define MAP_PREFIX       "map."
#define MAP_READ_RETRIES 64

#define SLOT_MAKE(hash, off) (((uint64_t)(uint32_t)((hash) >> 32) << 32) | ((off) >> 4))
#define SLOT_OFF(s)          (((s)&0xFFFFFFFFull) << 4)
#define SLOT_TAG(s)          ((uint32_t)((s) >> 32))
#define SLOT_LIVE(s)         ((s) > MAP_SLOT_TOMB)

typedef struct map_lock_s {
    _Atomic uint32_t word;
    _Atomic uint32_t takeovers;
} map_lock_t;

/* One logged slot change. */
typedef struct map_op_s {
    uint64_t slot;                 /* index in the table */
    uint64_t new_slot;             /* the slot word after (MAP_SLOT_TOMB: deleted) */
    uint64_t new_entry, new_value; /* blocks it adds (0: none) */
    uint64_t old_entry, old_value; /* blocks it drops */
} map_op_t;

enum { MI_NONE = 0, MI_PREP = 1, MI_COMMIT = 2 };
enum { MK_WRITE = 1, MK_TABLE = 2 }; /* slot changes; a new table (resize, clear, drop) */

typedef struct map_intent_s {
    _Atomic uint32_t state; /* MI_* */
    uint32_t kind;          /* MK_* */
    uint32_t slot;          /* the writer's process slot */
    uint32_t nops;          /* MK_WRITE: changes, in op0 (1) or in the log block */
    uint64_t log_off;       /* block: uint64 magic, uint64 n, map_op_t[n] (0: op0) */
    uint64_t table_off;     /* MK_WRITE: the table the slots are in */
    uint64_t new_table;     /* MK_TABLE: the table to publish (0: none, an empty map) */
    uint64_t new_cap;
    uint64_t old_table;             /* MK_TABLE: the table dropped */
    uint64_t drop_entries;          /* MK_TABLE: 1 when the old table's entries go too (clear) */
    uint64_t count, tombs, version; /* after the change */
    map_op_t op0;
} map_intent_t;

typedef struct map_root_s {
    /* immutable after creation (sum covers them) */
    uint64_t magic;
    uint32_t format; /* MAP_VERSION */
    uint32_t root_size;
    uint64_t max_key, max_value;
    uint64_t sum;
    /* mutable, under the lock */
    map_lock_t lock;
    _Atomic uint64_t table_seq; /* odd while the table word changes */
    _Atomic uint64_t table_off; /* 0: no table yet (empty) */
    uint64_t capacity;
    _Atomic uint64_t count; /* read without the lock by ga_map_len */
    uint64_t tombs;
    uint64_t version; /* last version given */
    map_intent_t intent;
    _Atomic uint64_t seq[MAP_NSTRIPES]; /* odd while a slot of the stripe changes */
} map_root_t;

typedef struct map_entry_s {
    uint64_t hash;
    uint64_t version;
    uint64_t vlen;
    uint64_t voff; /* 0: inline after the key */
    uint32_t klen;
    uint32_t magic; /* MAP_ENTRY_MAGIC */
} map_entry_t;

typedef struct map_table_s {
    uint64_t magic;
    uint64_t cap;
    _Atomic uint64_t slots[];
} map_table_t;

static_assert(sizeof(map_lock_t) == GA__SHARED_LOCK_SIZE, "map lock = the shared lock word");
static_assert(sizeof(map_op_t) == 48, "map_op_t size");
static_assert(sizeof(map_intent_t) == 136, "map_intent_t size");
static_assert(offsetof(map_root_t, lock) == 40, "map_root_t.lock");
static_assert(offsetof(map_root_t, intent) == 96, "map_root_t.intent");
static_assert(sizeof(map_root_t) == 744, "map_root_t size");
static_assert(sizeof(map_entry_t) == 40, "map_entry_t size");
static_assert(sizeof(map_table_t) == 16, "map_table_t size");

/* ---- process-local ----------------------------------------------------------------------- */

#define MAP_HANDLE_MAGIC 0x4d415048u

struct ga_map_s {
    uint32_t magic;
    ga_heap_t *heap;
    map_root_t *root;
    uint64_t root_off;
    uint64_t max_key, max_value; /* validated copies of the root's */
    /* the committed data area, refreshed when an offset falls past hi */
    unsigned char *base;
    _Atomic uint64_t lo, hi;
    char name[GA_MAP_NAME_MAX + 1];
};

/* The hash of a key (stable: part of the format). */
uint64_t ga__map_hash(const void *key, size_t klen);
/* Pointer to [off, off + len) when inside the committed data area (refreshed on a miss), else
 * NULL. */
void *ga__map_span_slow(ga_map_t *m, uint64_t off, uint64_t len);
static inline void *map_span(ga_map_t *m, uint64_t off, uint64_t len)
{
    uint64_t lo = atomic_load_explicit(&m->lo, memory_order_relaxed);
    uint64_t hi = atomic_load_explicit(&m->hi, memory_order_relaxed);
    if (GA_LIKELY(off >= lo && off < hi && len <= hi - off)) return m->base + off;
    return ga__map_span_slow(m, off, len);
}
/* Validated table at off (NULL when off is 0 or bad: *bad set for bad). */
map_table_t *ga__map_table(ga_map_t *m, uint64_t off, bool *bad);
/* Validated entry at off with its key bytes (NULL when bad). */
map_entry_t *ga__map_entry(ga_map_t *m, uint64_t off);
/* The value bytes of a validated entry (NULL when bad). */
const unsigned char *ga__map_value(ga_map_t *m, const map_entry_t *e);
/* True when the entry holds key. */
bool ga__map_entry_is(const map_entry_t *e, uint64_t hash, const void *key, size_t klen);
/* A validated map handle (NULL + GA_EINVAL). */
ga_map_t *ga__map_handle(ga_map_t *m);
/* Reports a corruption of map m (unless quiet): GA_ECORRUPT. */
int ga__map_corrupt(ga_map_t *m, bool quiet, uint64_t where, const char *what);
/* Step hook (tests). */
static inline void map_step(const char *step)
{
    if (GA_UNLIKELY(ga__map_test_hook != NULL)) ga__map_test_hook(step);
}

/* ---- lock.c / repair.c ----------------------------------------------------------------- */

/* Takes m's lock, repairing a dead writer's change. 0, GA_ETIMEDOUT or GA_ECORRUPT. */
int ga__map_lock(ga_map_t *m);
void ga__map_unlock(ga_map_t *m);
/* The root whose lock this thread took last with ga__map_lock (the word lock holds a pid, so
 * it cannot tell this thread from the process's others; the checker needs to). */
extern GA_TLS const map_root_t *ga__map_held;
/* Finishes or undoes the intent record's change (lock held). */
void ga__map_repair(ga_map_t *m);
/* Calls fn(heap, root offset, map name, arg) for each map root of heap; how many, or GA_E*. */
long ga__map_each_root(ga_heap_t *heap, void (*fn)(ga_heap_t *, uint64_t, const char *, void *),
                       void *arg);
/* The shared heaps' recover hook: repairs every map whose lock a dead process holds. */
void ga__map_recover_hook(ga_heap_t *heap);
/* A handle on the root at root_off for recovery and the checker (no limits needed). */
bool ga__map_handle_at(ga_map_t *m, ga_heap_t *heap, uint64_t root_off);

/* ---- write.c --------------------------------------------------------------------------- */

/* One change of a key for ga__map_apply: put (val, vlen) or delete (del). */
typedef struct map_change_s {
    const void *key;
    size_t klen;
    const void *val;
    size_t vlen;
    bool del;
    uint64_t hash;
} map_change_t;
/* Applies n changes all-or-nothing (lock held). Deleting an absent key is skipped; keys are
 * distinct. 0 or GA_E*. */
int ga__map_apply(ga_map_t *m, map_change_t *ch, size_t n);
/* Makes room for `more` new keys (lock held): a resize when needed. 0 or GA_E*. */
int ga__map_reserve(ga_map_t *m, uint64_t more);
/* Publishes a new empty table, dropping the old one and (drop_entries) its entries. */
int ga__map_reset(ga_map_t *m, bool drop_entries);
/* Probes table t for key: the slot index holding it, or -1 (*insert: where it would go, -1 if
 * none). Lock held (no retries). */
int64_t ga__map_find_locked(ga_map_t *m, map_table_t *t, uint64_t hash, const void *key,
                            size_t klen, int64_t *insert);
/* The record's ops: op0, or the validated log block's (NULL when bad). */
map_op_t *ga__map_ops(ga_map_t *m, map_intent_t *in);
/* Stores the ops' slot words inside a bump of seq (one op: its key's stripe; several, or a
 * repair: the table's, so that a reader sees all of them or none). */
void ga__map_store_slots(_Atomic uint64_t *seq, map_table_t *t, const map_op_t *ops, uint32_t n);
/* A key's stripe: (hash >> 32) % MAP_NSTRIPES (the slot tag's low bits). */
static inline unsigned map_stripe(uint64_t hash)
{
    return (unsigned)(hash >> 32) % MAP_NSTRIPES;
}
/* The current table (lock held): NULL when none or bad (*bad). */
map_table_t *ga__map_current(ga_map_t *m, bool *bad);

/* ---- check.c --------------------------------------------------------------------------- */

/* Checks m (lock held); counts its heap blocks. 0 or GA_ECORRUPT. */
int ga__map_check_locked(ga_map_t *m, bool quiet, uint64_t *blocks, uint64_t *bytes);

#endif /* GA_MAP_INTERNAL_H */
