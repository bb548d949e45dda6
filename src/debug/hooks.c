/* SPDX-License-Identifier: MIT */
/*
 * The hooks: in debug mode every entry point of the engine hands over to its twin here
 * (ga__debug_malloc, _calloc, _aligned_alloc, _free, _realloc, _usable_size, _is_block_start,
 * _owns), which makes, frees, resizes and measures debug blocks (layout in debug_internal.h).
 *
 * Invariants:
 *  - Blocks allocated before debug mode started have no header and are still freed, resized
 *    and measured correctly: a pointer whose header magic (keyed with the pointer and a
 *    secret) does not match is handed to the engine unchanged.
 *  - A freed debug block is FREED (both magic words), filled with GA_FILL_FREED and pushed into
 *    the thread's quarantine (quarantine.c). RELEASED survives in the second header word (the
 *    engine only writes the first), which is how a late double free is still recognised. A
 *    block bigger than the whole budget is RELEASED at once, unfilled (it could only pass
 *    straight through).
 *  - realloc gives blocks of up to REALLOC_MOVE_MAX bytes a new block (a stale pointer then
 *    hits the quarantine) and resizes bigger ones in place when their engine block allows.
 *  - Nothing here allocates from the heap.
 *
 * Speed: every hook inlines the engine's fast paths (alloc_fast.h) and captures its stacks
 * itself, at a fixed depth (the skip over our own frames is then one straight check); a free
 * releases the oldest quarantined block before it reads the freed block's header, so the two
 * overlap.
 */
#include "debug/debug_internal.h"
#include "engine/alloc_fast.h"
#include "os/os.h"
#include <errno.h>
#include <stdio.h>
#include <string.h>

GA_TLS int ga__dbg_busy;

static GA_TLS unsigned tl_ops;
/* Allocation serials: the next unreserved one; threads take them 64 at a time. */
static _Atomic uint64_t serials = 1;
static GA_TLS uint64_t tl_serial, tl_serial_end; /* serials reserved by this thread */

static inline uint64_t next_serial(void)
{
    if (GA_UNLIKELY(tl_serial == tl_serial_end)) {
        tl_serial = atomic_fetch_add_explicit(&serials, 64, memory_order_relaxed);
        tl_serial_end = tl_serial + 64;
    }
    return tl_serial++;
}

/* ---- the hooks ------------------------------------------------------------------------------ */

/* Called by each hook after its work, outside the world lock. A call nested in another (libc
 * called from inside the allocator) leaves the check to the next outermost call. */
static inline void maybe_check(void)
{
    if (GA_UNLIKELY(ga__dbg_opts.check != 0) && ++tl_ops >= ga__dbg_opts.check &&
        ga__world_depth == 0) {
        tl_ops = 0;
        ga__dbg_periodic_check();
    }
}

/* Inlined into each hook (as free_block): every hook then captures stacks itself, so that
 * ga__stack_capture finds the caller's frame right above its own (one straight check). */
#define HOOK_PART static inline __attribute__((always_inline))

/* A debug block of size bytes aligned to alignment (16 or more). */
HOOK_PART void *block_new(size_t size, size_t alignment, bool zero, int kind, void *ret)
{
    size_t guard = ga__dbg_opts.guard;
    size_t extra = GA_DBG_HDR + guard + (alignment > GA_MIN_ALIGN ? alignment : 0);
    if (size > SIZE_MAX / 2 - extra) return NULL;
    uint8_t *raw = ga__alloc_fast(size + extra, false);
    if (raw == NULL) return NULL;
    /* The next block of this class: the engine reads its link on the next allocation, and this
     * layer then writes all of it; its quarantine stay took it out of the cache. */
    uintptr_t next = (uintptr_t)ga__engine_next_free(raw); /* may be NULL */
    __builtin_prefetch((const void *)next);
    __builtin_prefetch((const void *)(next + 64));
    uint8_t *user = raw + GA_DBG_HDR;
    if (GA_UNLIKELY(alignment > GA_MIN_ALIGN))
        user = (uint8_t *)(((uintptr_t)user + alignment - 1) & ~(uintptr_t)(alignment - 1));
    ga_dbg_hdr_t *h = (ga_dbg_hdr_t *)(user - GA_DBG_HDR);
    size_t pad = (size_t)((uint8_t *)h - raw);
    if (GA_UNLIKELY(pad != 0)) {
        ((uint64_t *)raw)[0] = ga__dbg_key(GA_DBG_REDIRECT, raw);
        ((uint64_t *)raw)[1] = pad;
    }
    /* The guard rounded up to 8 bytes, if the engine block has room (it has when the guard is
     * a multiple of 8, the default: no need to ask the engine). */
    size_t tail = (guard + 7) & ~(size_t)7;
    if (GA_UNLIKELY(tail != guard)) {
        size_t slack = ga__engine_usable(raw) - pad - GA_DBG_HDR - size;
        tail = slack < tail ? slack : tail;
    }
    GA_ASSERT_INTERNAL(((uintptr_t)user & (alignment - 1)) == 0 && (pad == 0 || pad >= 16));
    GA_ASSERT_INTERNAL(tail <= UINT16_MAX);
    GA_ASSERT_INTERNAL(pad + GA_DBG_HDR + size + tail <= ga__engine_usable(raw));
    h->size = size;
    h->serial = next_serial();
    h->alloc_stack = ga__dbg_busy || !ga__dbg_opts.stacks ? 0 : ga__stack_capture(ret);
    h->free_stack = 0;
    h->tid = ga__dbg_thread_id();
    h->epoch = atomic_load_explicit(&ga__dbg_epoch, memory_order_relaxed);
    h->pad = (uint32_t)pad;
    h->tail = (uint16_t)tail;
    h->kind = (uint8_t)kind;
    h->mark = 0;
    memset(h->front, GA_FILL_GUARD, GA_DBG_FRONT);
    if (zero)
        memset(user, 0, size);
    else if (ga__dbg_opts.fill)
        memset(user, GA_FILL_FRESH, size);
    if (GA_LIKELY(tail == 16)) { /* the default: two stores, not a call */
        const uint64_t w = 0x0101010101010101ull * GA_FILL_GUARD;
        memcpy(user + size, &w, 8);
        memcpy(user + size + 8, &w, 8);
    } else {
        memset(user + size, GA_FILL_GUARD, tail);
    }
    h->magic = h->state = ga__dbg_key(GA_DBG_LIVE, user);
    GA_ASSERT_EXPENSIVE(ga__dbg_find(user) == h); /* what the walks and the leak scan rely on */
    return user;
}

void *ga__debug_malloc(size_t size, bool zero, int kind, void *ret)
{
    ga__world_enter();
    void *p = block_new(size, GA_MIN_ALIGN, zero, kind, ret);
    ga__world_leave();
    maybe_check();
    return p != NULL || kind == GA_DBG_RAW ? p : ga__engine_fail_alloc(GA_ENOMEM);
}

void *ga__debug_calloc(size_t n, size_t size, void *ret)
{
    size_t total;
    if (__builtin_mul_overflow(n, size, &total)) return ga__engine_fail_alloc(GA_EOVERFLOW);
    ga__world_enter();
    void *p = block_new(total, GA_MIN_ALIGN, true, GA_DBG_MALLOC, ret);
    ga__world_leave();
    maybe_check();
    return p ? p : ga__engine_fail_alloc(GA_ENOMEM);
}

void *ga__debug_aligned_alloc(size_t alignment, size_t size, void *ret)
{
    if (alignment == 0 || (alignment & (alignment - 1)) != 0 || alignment > GA_MAX_ALIGN) {
        ga__set_error(GA_EINVAL);
        errno = alignment > GA_MAX_ALIGN ? ENOMEM : EINVAL;
        return NULL;
    }
    ga__world_enter();
    void *p = block_new(size, alignment, false, GA_DBG_MALLOC, ret);
    ga__world_leave();
    maybe_check();
    return p ? p : ga__engine_fail_alloc(GA_ENOMEM);
}

/* True when p is a pointer the engine handed out before debug mode: not in or at a debug
 * block, and accepted by the engine's own checks. */
static bool pre_debug_block(const void *p)
{
    return p != NULL && ga__dbg_find(p) == NULL && ga__engine_usable(p) != 0;
}

/* True when p is the user pointer of a debug block that left the quarantine and whose engine
 * block is still free. */
__attribute__((no_sanitize("address", "thread"))) static bool is_released(const void *p)
{
    if (p == NULL || ((uintptr_t)p & 15) != 0 || ((uintptr_t)p & GA_SEGMENT_MASK) < GA_DBG_HDR ||
        !ga__is_heap_memory(p))
        return false;
    return ((const ga_dbg_hdr_t *)((const uint8_t *)p - GA_DBG_HDR))->state ==
           ga__dbg_key(GA_DBG_RELEASED, p);
}

/* p is not a live or quarantined debug block: a raw block from before debug mode (freed by the
 * engine), or misuse (reported). */
static void free_other(void *p, void *ret, const char *call)
{
    char what[96];
    if (is_released(p)) {
        snprintf(what, sizeof what, "%s: double free (block already left the quarantine)", call);
        ga__dbg_block_report(GA_EDOUBLEFREE, NULL, p, true, what, ret);
        return;
    }
    ga_dbg_hdr_t *h = ga__dbg_find(p);
    if (h == NULL && ga__is_heap_memory(p)) {
        ga__engine_free(p); /* from before debug mode (the engine validates it) */
        return;
    }
    if (h != NULL)
        snprintf(what, sizeof what, "%s: pointer %+td bytes into a block (not its start)", call,
                 (const uint8_t *)p - ga__dbg_user_of(h));
    else
        snprintf(what, sizeof what, "%s: pointer was not allocated by globalalloc", call);
    ga__dbg_block_report(GA_ENOTOWNED, h, p, true, what, ret);
}
HOOK_PART void free_block(ga_dbg_hdr_t *h, void *ret, const char *call)
{
    if (GA_UNLIKELY(!ga__dbg_guards_ok(h)) &&
        ga__dbg_verify(h, false, GA_DBG_FATAL, call, ret) != 0) {
        /* reported, and the handler chose to go on: repair, so it is reported once */
        memset(h->front, GA_FILL_GUARD, GA_DBG_FRONT);
        memset(ga__dbg_user_of(h) + h->size, GA_FILL_GUARD, h->tail);
    }
    h->free_stack = ga__dbg_opts.free_stacks && ga__dbg_opts.stacks && !ga__dbg_busy
                        ? ga__stack_capture(ret)
                        : 0;
    if (GA_UNLIKELY(h->size + GA_DBG_HDR > ga__dbg_opts.quarantine)) {
        /* Bigger than the whole quarantine: it could only pass straight through (flushing the
         * rest on its way), so it goes back at once, unfilled and unchecked. */
        ga__dbg_release(h, false);
        return;
    }
    if (ga__dbg_opts.fill) {
        size_t keep = ga__dbg_kept_words(h);
        if (GA_UNLIKELY(keep)) memset(ga__dbg_user_of(h), GA_FILL_FREED, 8);
        memset(ga__dbg_user_of(h) + keep, GA_FILL_FREED, h->size - keep);
    }
    h->magic = h->state = ga__dbg_key(GA_DBG_FREED, ga__dbg_user_of(h));
    ga__dbg_quarantine_push(h);
}

void ga__debug_free(void *p, void *ret)
{
    if (p == NULL) return;
    __builtin_prefetch((const void *)((uintptr_t)p - GA_DBG_HDR)); /* never faults, any p */
    ga__world_enter();
    ga__dbg_quarantine_make_room();
    ga_dbg_hdr_t *h = ga__dbg_header(p);
    if (h == NULL) {
        free_other(p, ret, "free");
    } else if (h->state == ga__dbg_key(GA_DBG_FREED, p)) {
        ga__dbg_block_report(GA_EDOUBLEFREE, h, p, true, "free: double free", ret);
    } else {
        free_block(h, ret, "free");
    }
    ga__world_leave();
    maybe_check();
}

/* realloc moves blocks of up to this many bytes, so that a stale pointer to the old block hits
 * the quarantine. Bigger blocks are resized in place when the engine block has room (or, huge,
 * can grow): moving them on every call would make a program that grows a buffer by small
 * appends quadratic (valgrind and ASan, which always move, are). */
#define REALLOC_MOVE_MAX ((size_t)4096)

/* Resizes a live block (no alignment padding) inside its engine block; false if it cannot. */
HOOK_PART bool resize_in_place(ga_dbg_hdr_t *h, size_t size, void *ret)
{
    size_t tail = (ga__dbg_opts.guard + 7) & ~(size_t)7;
    if (h->pad != 0 || size > SIZE_MAX / 2 - GA_DBG_HDR - tail ||
        !ga__engine_resize_in_place(ga__dbg_raw_of(h), GA_DBG_HDR + size + tail))
        return false;
    uint8_t *user = ga__dbg_user_of(h);
    if (size > h->size && ga__dbg_opts.fill) memset(user + h->size, GA_FILL_FRESH, size - h->size);
    memset(user + size, GA_FILL_GUARD, tail);
    h->size = size;
    h->tail = (uint16_t)tail;
    /* where it got this size */
    h->alloc_stack = ga__dbg_busy || !ga__dbg_opts.stacks ? 0 : ga__stack_capture(ret);
    return true;
}

HOOK_PART void *realloc_block(void *p, size_t size, void *ret)
{
    if (p == NULL) {
        void *q = block_new(size, GA_MIN_ALIGN, false, GA_DBG_MALLOC, ret);
        return q ? q : ga__engine_fail_alloc(GA_ENOMEM);
    }
    ga_dbg_hdr_t *h = ga__dbg_header(p);
    size_t old;
    if (h == NULL) {
        if (!pre_debug_block(p)) {
            free_other(p, ret, "realloc");
            return ga__engine_fail_alloc(GA_ENOTOWNED);
        }
        old = ga__engine_usable(p); /* a block from before debug mode */
    } else if (h->state == ga__dbg_key(GA_DBG_FREED, p)) {
        ga__dbg_block_report(GA_EDOUBLEFREE, h, p, true, "realloc: block was freed", ret);
        return ga__engine_fail_alloc(GA_EDOUBLEFREE);
    } else {
        ga__dbg_verify(h, false, GA_DBG_FATAL, "realloc", ret);
        old = h->size;
        if (old > REALLOC_MOVE_MAX && resize_in_place(h, size, ret)) return p;
    }
    /* Move: a stale pointer to the old block then hits the quarantine. */
    void *q = block_new(size, GA_MIN_ALIGN, false, h ? h->kind : GA_DBG_MALLOC, ret);
    if (q == NULL) return ga__engine_fail_alloc(GA_ENOMEM);
    memcpy(q, p, old < size ? old : size);
    if (h)
        free_block(h, ret, "realloc");
    else
        ga__engine_free(p);
    return q;
}

void *ga__debug_realloc(void *p, size_t size, void *ret)
{
    ga__world_enter();
    void *q = realloc_block(p, size, ret);
    ga__world_leave();
    maybe_check();
    return q;
}

size_t ga__debug_usable_size(const void *p)
{
    ga_dbg_hdr_t *h = ga__dbg_header(p);
    if (h != NULL) return h->state == ga__dbg_key(GA_DBG_LIVE, p) ? h->size : 0;
    return pre_debug_block(p) ? ga__engine_usable(p) : 0;
}

bool ga__debug_is_block_start(const void *p)
{
    if (ga__dbg_header(p) != NULL || is_released(p))
        return true; /* live, quarantined, or freed to the engine (and not reused yet) */
    return ga__engine_is_block_start(p) && ga__dbg_find(p) == NULL;
}

int ga__debug_owns(const void *p)
{
    ga_dbg_hdr_t *h = ga__dbg_header(p);
    if (h != NULL) return h->state == ga__dbg_key(GA_DBG_LIVE, p);
    return pre_debug_block(p) ? ga__engine_owns(p) : 0;
}

__attribute__((no_sanitize("address", "thread"))) ga_dbg_hdr_t *ga__dbg_header(const void *p)
{
    if (p == NULL || ((uintptr_t)p & 15) != 0 || !ga__engine_has_range(p, GA_DBG_HDR))
        return NULL; /* not in (or before the first block of) a segment of ours: not a block */
    ga_dbg_hdr_t *h = (ga_dbg_hdr_t *)((uintptr_t)p - GA_DBG_HDR);
    uint64_t s = h->state;
    if ((s == ga__dbg_key(GA_DBG_LIVE, p) || s == ga__dbg_key(GA_DBG_FREED, p)) && h->magic == s)
        return h;
    return NULL;
}
