/* SPDX-License-Identifier: MIT */
/*
 * Tagged blocks: the fixed blocks of the Win32 surface and the data blocks of moveable ones,
 * and ga__classify, which tells what a Win32 argument value is.
 *
 * Every Win32 block carries a 16-byte header (layout in handle.h) whose tag is XORed with a key
 * derived from the header address and a per-process random secret (ga__tag_secret), so a
 * random value essentially never validates and a pointer can be checked without faulting:
 * shape (16-aligned) -> ga__is_block_start(header) -> tag.
 *
 * Invariants: a live fixed block's tag is GA__TAG_FIXED, a freed one's GA__TAG_FREED (until
 * the engine reuses the memory); the data block of a live moveable block has the handle as its
 * tag and its requested size in word 0. Freeing a fixed block is one CAS on the tag, so of two
 * racing frees exactly one wins.
 */
#include "handle/handle_internal.h"
#include "debug/debug.h"
#include "os/os.h"
#include <stdatomic.h>
#include <string.h>

/* ---- tags ---------------------------------------------------------------------------- */

_Atomic uint64_t ga__tag_secret;

GA_NOINLINE uint64_t ga__tag_secret_init(void)
{
    uint64_t s = ga__os_random() | 1;
    uint64_t expected = 0;
    if (!atomic_compare_exchange_strong(&ga__tag_secret, &expected, s))
        s = expected; /* another thread won: everyone uses its value */
    return s;
}

/* Reads the tag of a header that may belong to a freed block (a double free, a stale pointer):
 * the memory is mapped (ga__is_block_start said so) but a sanitizer may consider it poisoned. */
__attribute__((no_sanitize("address"))) GA_NOINLINE uint64_t ga__tag_get(const uint64_t *hdr)
{
    return __atomic_load_n(&hdr[GA__HDR_TAG], __ATOMIC_RELAXED) ^ ga__tag_key(hdr);
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

/* ---- tagged blocks ------------------------------------------------------------------- */

void *ga__fixed_alloc(size_t size, bool zero, int *err)
{
    uint64_t *hdr = ga__block_alloc(size, zero, GA__TAG_FIXED, err);
    return hdr ? ga__user_of(hdr) : NULL;
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
        if (atomic_load_explicit(&freed_huge[i], memory_order_relaxed) == (uintptr_t)p) return true;
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
    uint64_t key = ga__tag_key(hdr);
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
    GA_ASSERT_INTERNAL(ga__tag_get(header_of(p)) == GA__TAG_FIXED);
    return header_of(p)[0];
}

int ga__fixed_realloc(void **pp, size_t size, unsigned flags)
{
    uint64_t *hdr = header_of(*pp);
    int rc = ga__block_resize(&hdr, hdr[0], size, flags & GA_HZERO, flags & GA_HMOVE, GA__TAG_FIXED,
                              GA__TAG_FREED, NULL);
    if (rc == 0) *pp = ga__user_of(hdr);
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
        uint64_t *data = atomic_load_explicit(&ga__slot_of(h)->data, memory_order_relaxed);
        memcpy(ga__user_of(data), p, size);
    }
    ga__fixed_free(p);
    *out = h;
    return 0;
}

/* ---- classification ------------------------------------------------------------------ */

ga__kind_t ga__classify(const void *v, ga__ref_t *ref)
{
    uintptr_t x = (uintptr_t)v;
    if (!x) return GA__K_NULL;
    if ((x & 15) == H_SHAPE) {
        ga__slot_t *s = ga__slot_of(x);
        if (s && ga__st_matches(atomic_load_explicit(&s->state, memory_order_acquire), x)) {
            ref->handle = x;
            return GA__K_HANDLE;
        }
        if (IS_SHARED(x)) {
            ga_handle_info_t info;
            if (ga__remote_info(x, &info) == 0) {
                ref->handle = x;
                return GA__K_HANDLE;
            }
        }
        return GA__K_STALE;
    }
    if (!header_plausible(v)) {
        ga_handle_t sh = ga__remote_from_ptr(v); /* locked data of a shared block? */
        if (sh) {
            ref->handle = sh;
            return GA__K_DATA;
        }
        return GA__K_BOGUS;
    }
    uint64_t *hdr = header_of(v);
    uint64_t tag = ga__tag_get(hdr);
    ref->ptr = (void *)v;
    if (tag == GA__TAG_FIXED) return GA__K_FIXED;
    if (tag == GA__TAG_FREED) return GA__K_FREED;
    ga__slot_t *s = ga__slot_of(tag);
    if (s && ga__st_matches(atomic_load_explicit(&s->state, memory_order_acquire), tag) &&
        atomic_load_explicit(&s->data, memory_order_relaxed) == hdr) {
        ref->handle = tag;
        return GA__K_DATA;
    }
    return GA__K_BOGUS;
}
