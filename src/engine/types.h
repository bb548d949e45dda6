/* SPDX-License-Identifier: MIT */
/*
 * The engine's data structures, each with the invariants it keeps.
 *
 * Memory comes from the OS in segments of GA_SEGMENT_SIZE bytes, aligned to their size, so the
 * segment of any block is `p & ~GA_SEGMENT_MASK`. A segment starts with its header (this
 * ga_segment_t plus its page descriptors) and is cut into pages of one size: small (64 KiB),
 * medium (512 KiB) or large (the whole segment). A page serves one size class; its blocks are
 * handed out from an encoded singly linked free list. Blocks larger than the largest class get a
 * "huge" segment of their own (a multiple of the OS page, still segment-aligned).
 *
 * Ownership: all pages of a segment belong to one thread heap (segment->owner). Only the owner
 * touches a page's free list and counters; other threads free into page->xfree, a lock-free
 * stack the owner takes whole. A thread that exits abandons its segments (owner = NULL) to a
 * global list; another thread adopts them when it needs pages.
 *
 * Private heap metadata uses native pointers (fastest); shared heaps (src/shared/) use
 * offsets from the segment base instead, since they are mapped at different addresses.
 */
#ifndef GA_TYPES_H
#define GA_TYPES_H

#include "internal.h"
#include <assert.h>
#include <pthread.h>
#include <stdatomic.h>

#define GA_SEGMENT_SHIFT     22 /* 4 MiB */
#define GA_SEGMENT_SIZE      ((size_t)1 << GA_SEGMENT_SHIFT)
#define GA_SEGMENT_MASK      (GA_SEGMENT_SIZE - 1)
#define GA_SMALL_PAGE_SHIFT  16 /* 64 KiB */
#define GA_MEDIUM_PAGE_SHIFT 19 /* 512 KiB */
#define GA_LARGE_PAGE_SHIFT  GA_SEGMENT_SHIFT
#define GA_MAX_PAGES         (GA_SEGMENT_SIZE >> GA_SMALL_PAGE_SHIFT)

#define GA_SMALL_MAX  ((size_t)8 << 10)   /* blocks up to this size live in small pages */
#define GA_MEDIUM_MAX ((size_t)64 << 10)  /* ... medium pages */
#define GA_LARGE_MAX  ((size_t)512 << 10) /* ... large pages; above: huge segments */
#define GA_DIRECT_MAX 1024                /* sizes served by heap->direct[] */
#define GA_DIRECT_SLOTS (GA_DIRECT_MAX / 16 + 1)
#define GA_CLASS_COUNT 56

/* Address space covered by the segment map (x86-64 / AArch64 user space: 47-48 bits). */
#define GA_ADDRESS_BITS 48
#define GA_SEGMAP_WORDS ((size_t)1 << (GA_ADDRESS_BITS - GA_SEGMENT_SHIFT - 6))

static_assert(GA_DIRECT_MAX <= GA_SMALL_MAX, "direct sizes are small");
static_assert((GA_SEGMENT_SIZE & (GA_SEGMENT_SIZE - 1)) == 0, "segment size is a power of 2");

typedef enum ga_segment_kind_e {
    GA_SEG_SMALL = 0,
    GA_SEG_MEDIUM = 1,
    GA_SEG_LARGE = 2,
    GA_SEG_HUGE = 3,
} ga_segment_kind_t;
#define GA_SEG_KINDS 3 /* kinds that hold pages of classes */

typedef struct ga_block_s {
    uintptr_t next; /* encoded: (next pointer) ^ page->key; 0 in blocks handed out */
} ga_block_t;

typedef struct ga_theap_s ga_theap_t;
typedef struct ga_segment_s ga_segment_t;

/* Low bit of page->xfree: the page sits on its owner's full list, so the next freer must wake
 * the owner. Set by the owner only while xfree is empty; cleared by whichever thread changes
 * xfree next, in the same atomic step, so exactly one freer notifies per full episode. */
#define GA_XFREE_FULL ((uintptr_t)1)

/* page->flags bits; flags == 0 is the fast free path. Only the owner writes them. */
enum {
    GA_PAGE_FULL = 1,    /* in heap->full, not in its class queue */
    GA_PAGE_ALIGNED = 2, /* some block was handed out at an offset (aligned allocation) */
};

/* 128 bytes, so that finding a page from a pointer is a shift, not a multiply. */
typedef struct __attribute__((aligned(128))) ga_page_s {
    /* --- owner only --- */
    ga_block_t *free;      /* head of the free list (links inside blocks are encoded) */
    uint32_t capacity;     /* blocks carved so far; free list + used == capacity */
    uint32_t reserved;     /* blocks that fit in the page */
    uint32_t block_size;   /* bytes per block; multiple of 16 */
    _Atomic uint8_t class_idx; /* size class; block_size == ga__class_size[class_idx] */
    _Atomic uint8_t in_use;    /* page serves a class (else a free slot of the segment) */
    _Atomic uint8_t flags; /* GA_PAGE_* */
    _Atomic uint32_t used; /* blocks handed out and not yet collected back (incl. xfree ones) */
    uintptr_t key;         /* free-list encoding key (random per page) */
    uint64_t div_mul;      /* 2^42 / block_size + 1: offset / block_size as multiply + shift */
    uint32_t decommitted;  /* bytes of this page given back to the OS (ga__page_decommit) */
    uint8_t *start;        /* first block */
    struct ga_page_s *next, *prev; /* class queue or full list of the owning heap */
    /* --- shared with other threads --- */
    _Atomic uintptr_t xfree; /* blocks freed by other threads (keyed links) | GA_XFREE_FULL */
    _Atomic uint32_t xfree_count;        /* >= length of xfree (counted before the push) */
} ga_page_t;
static_assert(sizeof(ga_page_t) == 128, "page descriptors are 128 bytes");

struct ga_segment_s {
    uint64_t magic;                  /* GA_SEGMENT_MAGIC ^ address: checked by ga_heap_check */
    ga_segment_kind_t kind;
    uint32_t page_shift;             /* log2 of the page size */
    uint32_t page_count;             /* pages in this segment */
    uint32_t used_pages;             /* owner only: pages with in_use set */
    size_t size;                     /* mapped bytes */
    size_t header_size;              /* bytes before the first page's blocks */
    _Atomic(ga_theap_t *) owner;     /* owning heap; NULL when abandoned or huge */
    ga_segment_t *next, *prev;       /* owner's list of segments with free pages, or abandoned */
    ga_segment_t *all_next, *all_prev; /* registry of all segments (registry lock) */
    uint8_t in_free_list;            /* owner: on heap->seg_free[kind] */
    uint8_t abandoning;              /* owner: collected for abandonment (heap_abandon only) */
    ga_page_t pages[];               /* page_count descriptors */
};
#define GA_SEGMENT_MAGIC 0x67616c6c6f635347ull /* "GSeglloc"-ish */

typedef struct ga_page_queue_s {
    ga_page_t *first, *last;
} ga_page_queue_t;

struct ga_theap_s {
    ga_page_t *direct[GA_DIRECT_SLOTS]; /* (size+15)/16 -> a page of the class with free blocks */
    ga_page_queue_t queues[GA_CLASS_COUNT];
    ga_page_queue_t full;
    ga_segment_t *seg_free[GA_SEG_KINDS]; /* segments with at least one free page slot */
    ga_segment_t *cached[GA_SEG_KINDS];   /* one empty segment per kind kept for reuse */
    _Atomic uint32_t delayed;             /* another thread freed into one of our full pages */
    bool live;
    ga_theap_t *reg_next, *reg_prev; /* registry of live heaps (registry lock) */
};

#endif /* GA_TYPES_H */
