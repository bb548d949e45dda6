/* SPDX-License-Identifier: MIT */
/*
 * The Win32 surface: GlobalAlloc & co. and LocalAlloc & co. as thin adapters over handle.c,
 * plus the per-thread Win32 last error (a DWORD of its own, separate from ga_last_error).
 *
 * Behaviour follows docs spec "win32-global-heap" (64-bit Windows 7+). Both families share
 * one handle table; their differences are decided here, by the `local` flag of each common
 * function. Every argument is first classified by ga__classify (handle.h) so that stale
 * handles and bogus pointers give Windows' error codes (spec §6) instead of faulting.
 * Where the spec leaves a question open, Wine's implementation (WI) is followed; each such
 * place says so.
 */
#include "handle/handle.h"
#include "debug/debug.h"
#include "shared/shared.h"
#include "globalalloc/win32.h"
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

static GA_TLS DWORD tl_win32_error;

DWORD GetLastError(void)
{
    return tl_win32_error;
}
void SetLastError(DWORD dwErrCode)
{
    tl_win32_error = dwErrCode;
}
static inline void set_err(long e)
{
    tl_win32_error = (DWORD)e;
}

static inline HANDLE as_handle(ga_handle_t h)
{
    return (HANDLE)(uintptr_t)h;
}
static inline bool handle_shaped(const void *v)
{
    return ((uintptr_t)v & 15) == 8;
}

/* Attribute and zero-fill flags of a Win32 request in ga_handle terms. LMEM_DISCARDABLE is
 * 0x0F00 and any of its bits counts (WI); Local has no DDESHARE attribute. */
static unsigned hflags_of(UINT flags, bool local)
{
    unsigned f = (flags & GMEM_ZEROINIT) ? GA_HZERO : 0;
    if (flags & (local ? LMEM_DISCARDABLE : GMEM_DISCARDABLE)) f |= GA_HDISCARDABLE;
    if (!local && (flags & GMEM_DDESHARE)) f |= GA_HSHARE;
    return f;
}

/* ---- the shared heap behind GMEM_SHARE ------------------------------------------------ */

static struct {
    pthread_mutex_t lock;
    _Atomic(ga_heap_t *) heap;
    _Atomic int state; /* 0: environment not read yet, 1: decided */
    bool atfork;
} share = {.lock = PTHREAD_MUTEX_INITIALIZER};

static void share_fork_child(void)
{
    pthread_mutex_init(&share.lock, NULL);
    atomic_store(&share.heap, NULL); /* the parent's attachment is not ours */
    atomic_store(&share.state, 0);
}

/* pre: share.lock held. */
static void share_open_from_env(void)
{
    if (!share.atfork) {
        pthread_atfork(NULL, NULL, share_fork_child);
        share.atfork = true;
    }
    const char *name = getenv("GLOBALALLOC_HEAP");
    if (name == NULL || *name == 0)
        return;
    size_t size = (size_t)64 << 20;
    const char *sz = getenv("GLOBALALLOC_HEAP_SIZE");
    if (sz && *sz && ga_shared_parse_size(sz, &size) != 0) {
        ga__report(GA_EINVAL, 0, false,
                   "GLOBALALLOC_HEAP_SIZE=%.32s: not a size of 1M .. 64G (digits, then K, M, G "
                   "or T); GMEM_SHARE blocks come from the process heap",
                   sz);
        return;
    }
    ga_heap_t *heap = ga_shared_open(name, size, GA_SHARED_CREATE, NULL);
    if (heap == NULL) {
        int err = ga_last_error();
        ga__report(err, 0, false,
                   "GLOBALALLOC_HEAP=%.64s: cannot open the shared heap (%s); GMEM_SHARE blocks "
                   "come from the process heap",
                   name, ga_strerror(err));
        return;
    }
    atomic_store(&share.heap, heap);
}

ga_heap_t *ga_share_heap(void)
{
    if (GA_UNLIKELY(atomic_load_explicit(&share.state, memory_order_acquire) == 0)) {
        pthread_mutex_lock(&share.lock);
        if (atomic_load(&share.state) == 0) {
            share_open_from_env();
            atomic_store_explicit(&share.state, 1, memory_order_release);
        }
        pthread_mutex_unlock(&share.lock);
    }
    return atomic_load_explicit(&share.heap, memory_order_acquire);
}

int ga_set_share_heap(ga_heap_t *heap)
{
    if (heap != NULL && !ga__shared_is_heap(heap))
        return GA_EINVAL;
    pthread_mutex_lock(&share.lock);
    if (!share.atfork) {
        pthread_atfork(NULL, NULL, share_fork_child);
        share.atfork = true;
    }
    atomic_store(&share.heap, heap);
    atomic_store_explicit(&share.state, 1, memory_order_release);
    pthread_mutex_unlock(&share.lock);
    return 0;
}

/* ---- alloc / free -------------------------------------------------------------------- */

static HANDLE alloc_common(UINT flags, SIZE_T size, bool local)
{
    if (flags & GMEM_MOVEABLE) {
        ga_handle_t h;
        ga_heap_t *shared = (!local && (flags & GMEM_SHARE)) ? ga_share_heap() : NULL;
        if (shared) { /* GMEM_SHARE's 16-bit meaning, back: memory other processes can use */
            h = ga_handle_alloc(shared, size, hflags_of(flags, local));
            if (h == 0) {
                set_err(ERROR_NOT_ENOUGH_MEMORY);
                return NULL;
            }
            return as_handle(h);
        }
        if (ga__handle_alloc(size, hflags_of(flags, local), &h)) {
            set_err(ERROR_NOT_ENOUGH_MEMORY);
            return NULL;
        }
        return as_handle(h);
    }
    /* GlobalAlloc turns a 0-byte fixed request into 1 byte (GlobalSize 1); LocalAlloc does not. */
    if (!local && size == 0) size = 1;
    int err;
    void *p = ga__fixed_alloc(size, flags & GMEM_ZEROINIT, &err);
    if (!p) set_err(ERROR_NOT_ENOUGH_MEMORY); /* WI/RO (spec §10 q5) */
    return p;
}

/* In debug mode, misuse that Windows answers with an error code is also reported on the spot,
 * with the block's allocation stack and the bad call's (the call still returns what Windows
 * returns). */
static void debug_misuse(int err, HANDLE v, const char *what)
{
    if (GA_UNLIKELY(ga_debug_enabled()))
        ga__debug_misuse(err, v, false, what);
}

static HANDLE free_common(HANDLE v)
{
    /* The common case first: a live fixed block, validated once by ga__fixed_free itself. */
    if (((uintptr_t)v & 15) == 0 && v != NULL) {
        int rc = ga__fixed_free(v);
        if (rc == 0)
            return NULL;
        if (rc == GA_EDOUBLEFREE) { /* what 32-bit Windows does (64-bit crashes) */
            set_err(ERROR_INVALID_HANDLE);
            return v;
        }
    }
    ga__ref_t r;
    switch (ga__classify(v, &r)) {
    case GA__K_NULL:
        return NULL;
    case GA__K_HANDLE:
        if (ga_handle_free(r.handle) == 0) return NULL;
        set_err(ERROR_INVALID_HANDLE); /* freed by another thread meanwhile */
        return v;
    case GA__K_FIXED:
    case GA__K_FREED:
        switch (ga__fixed_free(v)) {
        case 0:
            return NULL;
        case GA_EDOUBLEFREE: /* what 32-bit Windows does (64-bit crashes) */
            set_err(ERROR_INVALID_HANDLE);
            return v;
        default:
            set_err(ERROR_NOACCESS);
            return v;
        }
    case GA__K_DATA:
        /* The data of a moveable block belongs to its handle: refuse rather than leave the
         * handle dangling (undefined on Windows). */
    case GA__K_STALE:
        debug_misuse(GA_EHANDLE, v, "free of an invalid or already freed handle");
        set_err(ERROR_INVALID_HANDLE);
        return v;
    case GA__K_BOGUS:
        break;
    }
    debug_misuse(GA_ENOTOWNED, v, "free of a pointer the heap never gave");
    set_err(ERROR_NOACCESS);
    return v;
}

HGLOBAL GlobalAlloc(UINT uFlags, SIZE_T dwBytes)
{
    return alloc_common(uFlags, dwBytes, false);
}
HLOCAL LocalAlloc(UINT uFlags, SIZE_T uBytes)
{
    return alloc_common(uFlags, uBytes, true);
}
HGLOBAL GlobalFree(HGLOBAL hMem)
{
    return free_common(hMem);
}
HLOCAL LocalFree(HLOCAL hMem)
{
    return free_common(hMem);
}

/* ---- lock / unlock ------------------------------------------------------------------- */

static LPVOID lock_common(HANDLE v, bool local)
{
    if (GA_LIKELY(handle_shaped(v))) {
        void *p;
        int rc = ga__handle_lock_inline((uintptr_t)v, &p);
        if (GA_LIKELY(rc == 0)) return p;
        set_err(rc == GA_EDISCARDED ? ERROR_DISCARDED : ERROR_INVALID_HANDLE);
        return NULL;
    }
    ga__ref_t r;
    switch (ga__classify(v, &r)) {
    case GA__K_FIXED:
    case GA__K_DATA: /* a data pointer is "fixed-shaped": returned as is, count unchanged */
        return v;
    case GA__K_NULL: /* WI returns NULL without touching the error (spec §10 q4) */
        return NULL;
    default:
        if (!local) /* Windows: GlobalLock sets it, LocalLock leaves it */
            set_err(ERROR_INVALID_HANDLE);
        return NULL;
    }
}

static BOOL unlock_common(HANDLE v, bool local)
{
    if (!handle_shaped(v)) {
        /* Fixed, data or bogus pointer: Global says TRUE (error untouched), Local refuses. */
        if (!local) return TRUE;
        set_err(ERROR_NOT_LOCKED);
        return FALSE;
    }
    int rc = ga__handle_unlock_inline((uintptr_t)v);
    if (GA_LIKELY(rc > 0)) return TRUE;
    if (rc == 0) {
        set_err(NO_ERROR); /* the count reached 0: Windows clears the error actively */
        return FALSE;
    }
    if (rc == GA_ENOTLOCKED) {
        debug_misuse(GA_ENOTLOCKED, v, local ? "LocalUnlock of a block that is not locked"
                                             : "GlobalUnlock of a block that is not locked");
        set_err(ERROR_NOT_LOCKED);
        return FALSE;
    }
    debug_misuse(GA_EHANDLE, v, "unlock of an invalid or freed handle");
    set_err(ERROR_INVALID_HANDLE);
    return local ? FALSE : TRUE; /* 64-bit Windows: GlobalUnlock(stale) is TRUE */
}

LPVOID GlobalLock(HGLOBAL hMem)
{
    return lock_common(hMem, false);
}
LPVOID LocalLock(HLOCAL hMem)
{
    return lock_common(hMem, true);
}
BOOL GlobalUnlock(HGLOBAL hMem)
{
    return unlock_common(hMem, false);
}
BOOL LocalUnlock(HLOCAL hMem)
{
    return unlock_common(hMem, true);
}

/* ---- queries ------------------------------------------------------------------------- */

static SIZE_T size_common(HANDLE v)
{
    ga__ref_t r;
    ga_handle_info_t info;
    switch (ga__classify(v, &r)) {
    case GA__K_FIXED:
        return ga__fixed_size(v);
    case GA__K_HANDLE:
    case GA__K_DATA: /* GlobalSize(locked data pointer) is the block's size (WT-old, WI) */
        if (ga_handle_info(r.handle, &info) == 0) return info.size;
        break;
    default: /* NULL (WI), stale, freed, bogus */
        break;
    }
    set_err(ERROR_INVALID_HANDLE);
    return 0;
}

static UINT flags_common(HANDLE v, bool local)
{
    ga__ref_t r;
    ga_handle_info_t info;
    switch (ga__classify(v, &r)) {
    case GA__K_FIXED:
    case GA__K_DATA: /* WI returns 0 for every valid pointer (spec §10 q3) */
        return 0;
    case GA__K_HANDLE:
        if (ga_handle_info(r.handle, &info) == 0) {
            UINT f = info.lock_count & GMEM_LOCKCOUNT;
            if (info.flags & GA_HDISCARDABLE) f |= local ? LMEM_DISCARDABLE : GMEM_DISCARDABLE;
            if (info.flags & GA_HSHARE) f |= GMEM_DDESHARE;
            if (info.flags & GA_HDISCARDED) f |= GMEM_DISCARDED;
            return f;
        }
        set_err(ERROR_INVALID_HANDLE); /* freed meanwhile */
        return GMEM_INVALID_HANDLE;
    case GA__K_STALE:
        set_err(ERROR_INVALID_HANDLE);
        return GMEM_INVALID_HANDLE;
    default: /* NULL, freed or bogus pointer */
        set_err(local ? ERROR_NOACCESS : ERROR_INVALID_HANDLE);
        return GMEM_INVALID_HANDLE;
    }
}

static HANDLE handle_common(LPCVOID p, bool local)
{
    ga__ref_t r;
    switch (ga__classify(p, &r)) {
    case GA__K_FIXED:
        return (HANDLE)p;
    case GA__K_DATA:
    case GA__K_HANDLE: /* WI: a valid handle maps to itself */
        return as_handle(r.handle);
    case GA__K_NULL:
        set_err(ERROR_INVALID_PARAMETER); /* WI (inferred) */
        return NULL;
    case GA__K_STALE: /* crashes on 64-bit Windows; undefined */
        set_err(ERROR_INVALID_HANDLE);
        return NULL;
    default:
        set_err(local ? ERROR_NOACCESS : ERROR_INVALID_HANDLE);
        return NULL;
    }
}

SIZE_T GlobalSize(HGLOBAL hMem)
{
    return size_common(hMem);
}
SIZE_T LocalSize(HLOCAL hMem)
{
    return size_common(hMem);
}
UINT GlobalFlags(HGLOBAL hMem)
{
    return flags_common(hMem, false);
}
UINT LocalFlags(HLOCAL hMem)
{
    return flags_common(hMem, true);
}
HGLOBAL GlobalHandle(LPCVOID pMem)
{
    return handle_common(pMem, false);
}
HLOCAL LocalHandle(LPCVOID pMem)
{
    return handle_common(pMem, true);
}

/* ---- realloc ------------------------------------------------------------------------- */

static HANDLE realloc_fixed(void *p, SIZE_T size, UINT flags, bool local)
{
    if (flags & GMEM_MODIFY) {
        if (local || !(flags & GMEM_MOVEABLE))
            return p; /* attributes of a fixed block cannot change */
        /* GlobalReAlloc(MODIFY|MOVEABLE) converts a fixed block: Windows copies the data into
         * a new moveable block and returns its handle. */
        ga_handle_t h;
        if (ga__fixed_to_handle(p, hflags_of(flags, false) & ~(unsigned)GA_HZERO, &h)) {
            set_err(ERROR_NOT_ENOUGH_MEMORY);
            return NULL;
        }
        return as_handle(h);
    }
    if (flags & (local ? LMEM_DISCARDABLE : GMEM_DISCARDABLE)) {
        set_err(ERROR_INVALID_PARAMETER); /* WI (spec §10 q1) */
        return NULL;
    }
    unsigned f =
        ((flags & GMEM_ZEROINIT) ? GA_HZERO : 0) | ((flags & GMEM_MOVEABLE) ? GA_HMOVE : 0);
    if (ga__fixed_realloc(&p, size, f)) {
        set_err(ERROR_NOT_ENOUGH_MEMORY);
        return NULL;
    }
    return p;
}

static HANDLE realloc_moveable(ga_handle_t h, SIZE_T size, UINT flags, bool local)
{
    UINT discardable = local ? LMEM_DISCARDABLE : GMEM_DISCARDABLE;
    int rc;
    if (flags & GMEM_MODIFY) {
        /* Size is ignored; MODIFY can make a block discardable, never undo it (WI). */
        rc = (flags & discardable) ? ga_handle_modify(h, GA_HDISCARDABLE, 0) : 0;
        if (rc) {
            set_err(ERROR_INVALID_HANDLE);
            return NULL;
        }
        return as_handle(h);
    }
    if (!local && (size == 0 || (flags & discardable))) {
        /* WI's GlobalReAlloc refuses a locked block here without touching the error. */
        ga_handle_info_t info;
        if (ga_handle_info(h, &info) == 0 && info.lock_count) return NULL;
    }
    if (flags & discardable) {
        set_err(ERROR_INVALID_PARAMETER); /* WI (spec §10 q1) */
        return NULL;
    }
    if (size == 0) {
        rc = (flags & GMEM_MOVEABLE) ? ga_handle_discard(h) : GA_EINVAL;
    } else {
        unsigned f =
            ((flags & GMEM_ZEROINIT) ? GA_HZERO : 0) | ((flags & GMEM_MOVEABLE) ? GA_HMOVE : 0);
        rc = ga_handle_realloc(h, size, f);
    }
    switch (rc) {
    case 0:
        return as_handle(h);
    case GA_EHANDLE:
        set_err(ERROR_INVALID_HANDLE);
        break;
    case GA_EINVAL:
    case GA_ELOCKED: /* WI (Local): a locked block cannot be discarded */
        set_err(ERROR_INVALID_PARAMETER);
        break;
    default:
        set_err(ERROR_NOT_ENOUGH_MEMORY);
        break;
    }
    return NULL;
}

static HANDLE realloc_common(HANDLE v, SIZE_T size, UINT flags, bool local)
{
    ga__ref_t r;
    switch (ga__classify(v, &r)) {
    case GA__K_HANDLE:
        return realloc_moveable(r.handle, size, flags, local);
    case GA__K_FIXED:
        return realloc_fixed(v, size, flags, local);
    case GA__K_FREED:
    case GA__K_BOGUS:
        set_err(ERROR_NOACCESS);
        return NULL;
    default:
        /* NULL (WI), stale handles, and the data pointer of a moveable block (resizing it
         * behind its handle's back cannot be right). */
        set_err(ERROR_INVALID_HANDLE);
        return NULL;
    }
}

HGLOBAL GlobalReAlloc(HGLOBAL hMem, SIZE_T dwBytes, UINT uFlags)
{
    return realloc_common(hMem, dwBytes, uFlags, false);
}
HLOCAL LocalReAlloc(HLOCAL hMem, SIZE_T uBytes, UINT uFlags)
{
    return realloc_common(hMem, uBytes, uFlags, true);
}
HGLOBAL GlobalDiscard(HGLOBAL hMem)
{
    return GlobalReAlloc(hMem, 0, GMEM_MOVEABLE);
}
HLOCAL LocalDiscard(HLOCAL hMem)
{
    return LocalReAlloc(hMem, 0, LMEM_MOVEABLE);
}
