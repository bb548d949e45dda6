/* SPDX-License-Identifier: MIT */
/*
 * globalalloc -- the Win32 global heap for POSIX, on a thread-caching allocator.
 *
 * This is the native API (prefix ga_). The Win32 names live in <globalalloc/win32.h>.
 *
 * Conventions (the same for every function below):
 *   - Functions that do not return a pointer return int: 0 (or a non-negative count) on success,
 *     a negative GA_E* code on failure.
 *   - Functions that return a pointer or a handle return NULL / 0 on failure and set the
 *     calling thread's ga_last_error().
 *   - Free-like functions never change errno.
 *   - Detected misuse (double free, a pointer the heap never gave, broken metadata) goes to the
 *     error handler (ga_set_error_handler); without one it is printed on stderr, and the
 *     process aborts if the misuse came through the malloc-style API (as glibc does).
 */
#ifndef GLOBALALLOC_H
#define GLOBALALLOC_H

#include <stddef.h>
#include <stdint.h>
#include "globalalloc/version.h"

#ifdef __cplusplus
extern "C" {
#endif

#if defined(GA_STATIC_DEFINE)
#define GA_API
#elif defined(__GNUC__)
#define GA_API __attribute__((visibility("default")))
#else
#define GA_API
#endif

/* ---- errors ---------------------------------------------------------------------------- */

/* X(name, value, message): every error code, once. */
#define GA_ERRNO_MAP(X)                                                                        \
    X(OK, 0, "success")                                                                        \
    X(ENOMEM, -1, "out of memory")                                                             \
    X(EINVAL, -2, "invalid argument")                                                          \
    X(EHANDLE, -3, "invalid or stale handle")                                                  \
    X(ENOTOWNED, -4, "pointer was not allocated by this heap")                                 \
    X(EDISCARDED, -5, "block is discarded")                                                    \
    X(ENOTLOCKED, -6, "block is not locked")                                                   \
    X(ELOCKED, -7, "block is locked")                                                          \
    X(EOVERFLOW, -8, "size computation overflows")                                             \
    X(ECORRUPT, -9, "heap metadata is corrupted")                                              \
    X(EDOUBLEFREE, -10, "block was already freed")                                             \
    X(ENOENT, -11, "no such heap or object")                                                   \
    X(EEXIST, -12, "already exists")                                                           \
    X(ENAME, -13, "invalid name")                                                              \
    X(EFORMAT, -14, "incompatible heap format or version")                                     \
    X(EFULL, -15, "heap or table is full")                                                     \
    X(EPERM, -16, "operation not permitted")                                                   \
    X(EOVERRUN, -17, "write past the end or before the start of a block")

typedef enum ga_errno_e {
#define GA__ERRNO_ENUM(name, value, msg) GA_##name = (value),
    GA_ERRNO_MAP(GA__ERRNO_ENUM)
#undef GA__ERRNO_ENUM
} ga_errno_t;

/* Human-readable message for a GA_E* code ("unknown error" for anything else). */
GA_API const char *ga_strerror(int err);
/* The code's name, e.g. "GA_EHANDLE" ("GA_EUNKNOWN" for anything else). */
GA_API const char *ga_err_name(int err);
/* The calling thread's last error from a pointer- or handle-returning function (GA_OK if none). */
GA_API int ga_last_error(void);
/* Sets the calling thread's last error. */
GA_API void ga_set_last_error(int err);

/* Called for detected misuse and corruption: err is a GA_E* code, msg a one-line description,
 * ptr the offending pointer or handle value. Return nonzero to continue (the operation then
 * fails with err), zero to let the library apply its default (print, and abort for malloc-style
 * calls). The handler must not allocate from globalalloc. */
typedef int ga_error_handler_t(int err, const char *msg, uintptr_t ptr, void *arg);
/* Installs a process-wide handler (NULL restores the default). */
GA_API void ga_set_error_handler(ga_error_handler_t *handler, void *arg);

/* ---- version --------------------------------------------------------------------------- */

/* "MAJOR.MINOR.PATCH" of the library actually linked. */
GA_API const char *ga_version(void);
/* GA_VERSION_HEX of the library actually linked. */
GA_API int ga_version_number(void);

/* ---- blocks (the process heap, malloc-style) ------------------------------------------- */

/* Every block is aligned to at least GA_MIN_ALIGN bytes; ga_aligned_alloc takes up to
 * GA_MAX_ALIGN. */
#define GA_MIN_ALIGN 16
#define GA_MAX_ALIGN ((size_t)2 << 20)

/* Allocates size bytes (size 0 gives a unique minimal block). NULL + GA_ENOMEM on failure. */
GA_API void *ga_malloc(size_t size);
/* Allocates n*size zeroed bytes. NULL + GA_EOVERFLOW if n*size overflows, GA_ENOMEM if no memory. */
GA_API void *ga_calloc(size_t n, size_t size);
/* Resizes p (NULL acts as ga_malloc). Contents up to the smaller size are kept. On failure
 * returns NULL and p stays valid. size 0 frees p and returns a minimal block. */
GA_API void *ga_realloc(void *p, size_t size);
/* Allocates size bytes aligned to alignment (a power of two up to GA_MAX_ALIGN). NULL +
 * GA_EINVAL if alignment is not a power of two or too large, GA_ENOMEM if no memory. */
GA_API void *ga_aligned_alloc(size_t alignment, size_t size);
/* Frees p (NULL is ignored). A pointer not from this heap or freed twice is reported. */
GA_API void ga_free(void *p);
/* Usable bytes of block p (>= the requested size); 0 for NULL or a foreign pointer. */
GA_API size_t ga_usable_size(const void *p);
/* 1 if p is the start of a block of the process heap that is not known to be free, else 0.
 * Never faults. (A block freed by another thread may still count as live.) */
GA_API int ga_owns(const void *p);

/* ---- heaps ----------------------------------------------------------------------------- */

typedef struct ga_heap_s ga_heap_t;

/* The process heap: every thread's cache, the handle table and the Win32 calls use it. */
GA_API ga_heap_t *ga_heap_default(void);

/* Returns free memory held by the calling thread (force != 0: and by every cache it may touch)
 * to the OS. Returns the number of bytes given back. */
GA_API size_t ga_heap_collect(ga_heap_t *heap, int force);

/* ---- handles (moveable blocks) --------------------------------------------------------- */

/* A handle names a moveable block. It is a plain number, never a pointer, so it stays valid
 * while the block moves, and (for shared heaps) means the same in every process. 0 = none. */
typedef uint64_t ga_handle_t;

/* Flags for ga_handle_alloc / ga_handle_realloc / ga_handle_info. */
enum {
    GA_HZERO = 0x01,        /* zero-fill new bytes (on alloc: all; on growth: the added bytes) */
    GA_HDISCARDABLE = 0x02, /* block may be discarded (recorded; reported by ga_handle_info) */
    GA_HSHARE = 0x04,       /* recorded "DDE share" attribute */
    GA_HMOVE = 0x08,        /* realloc: data may move even if the block is locked */
    GA_HDISCARDED = 0x10,   /* info only: block currently has no data */
};

/* Allocates a moveable block of size bytes in heap (NULL = process heap). size 0 gives a
 * handle that is already discarded. flags: GA_HZERO | GA_HDISCARDABLE | GA_HSHARE.
 * Returns 0 + GA_ENOMEM / GA_EFULL / GA_EOVERFLOW, or GA_EINVAL (other flags, or a heap that
 * cannot hold handles yet). */
GA_API ga_handle_t ga_handle_alloc(ga_heap_t *heap, size_t size, unsigned flags);
/* Frees the block and invalidates h (locked blocks too). 0, or GA_EHANDLE. */
GA_API int ga_handle_free(ga_handle_t h);
/* Pins the block and returns its data; lock count +1 (saturates at 255).
 * NULL + GA_EHANDLE (bad handle) or GA_EDISCARDED (no data). */
GA_API void *ga_handle_lock(ga_handle_t h);
/* Lock count -1. Returns the new count (>= 0), or GA_ENOTLOCKED / GA_EHANDLE. */
GA_API int ga_handle_unlock(ga_handle_t h);
/* Resizes to size bytes; size 0 discards. An unlocked block may move; a locked one only with
 * GA_HMOVE (it must never be discarded while locked: GA_ELOCKED). GA_HZERO zero-fills growth.
 * flags: GA_HZERO | GA_HMOVE, else GA_EINVAL. Returns 0, GA_EHANDLE, GA_ELOCKED, GA_ENOMEM
 * (no memory, or a locked block without GA_HMOVE cannot grow in place; block unchanged) or
 * GA_EOVERFLOW. */
GA_API int ga_handle_realloc(ga_handle_t h, size_t size, unsigned flags);
/* Frees the data but keeps the handle (ga_handle_realloc with size > 0 revives it).
 * 0, GA_EHANDLE, or GA_ELOCKED. */
GA_API int ga_handle_discard(ga_handle_t h);

typedef struct ga_handle_info_s {
    size_t size;         /* requested bytes; 0 when discarded */
    unsigned lock_count; /* 0..255 */
    unsigned flags;      /* GA_HDISCARDABLE | GA_HSHARE | GA_HDISCARDED */
    void *data;          /* current data (NULL when discarded); valid only while locked */
} ga_handle_info_t;
/* Fills *info. 0, GA_EHANDLE, or GA_EINVAL (info NULL). */
GA_API int ga_handle_info(ga_handle_t h, ga_handle_info_t *info);
/* Requested size of the block, 0 when discarded. Returns 0 and sets GA_EHANDLE if invalid. */
GA_API size_t ga_handle_size(ga_handle_t h);
/* The handle whose current data is p (for example from ga_handle_lock), or 0 + GA_ENOTOWNED. */
GA_API ga_handle_t ga_handle_from_ptr(const void *p);
/* Sets (set) and clears (clear) GA_HDISCARDABLE / GA_HSHARE (a bit in both is set). Locked
 * blocks too. 0 or GA_EHANDLE / GA_EINVAL (other bits). */
GA_API int ga_handle_modify(ga_handle_t h, unsigned set, unsigned clear);

/* ---- statistics ------------------------------------------------------------------------ */

#define GA_STATS_MAX_CLASSES 64

typedef struct ga_class_stats_s {
    size_t block_size;  /* bytes per block in this class */
    size_t blocks_used; /* live blocks */
    size_t pages;       /* pages that serve this class */
    size_t bytes_reserved; /* bytes of those pages */
} ga_class_stats_t;

typedef struct ga_stats_s {
    size_t bytes_in_use;    /* bytes of live blocks (block sizes, not requests) */
    size_t blocks_in_use;   /* live blocks, all sizes */
    size_t bytes_mapped;    /* address space taken from the OS right now */
    size_t bytes_committed; /* of that, bytes not given back with madvise */
    size_t peak_mapped;     /* maximum of bytes_mapped so far */
    size_t handles_in_use;  /* live moveable handles */
    size_t huge_blocks;     /* blocks larger than the largest class, mapped one each */
    size_t threads;         /* threads that currently own a cache */
    size_t class_count;     /* entries used in classes[] */
    ga_class_stats_t classes[GA_STATS_MAX_CLASSES];
} ga_stats_t;

/* Fills *out for heap (NULL = process heap). Counts are exact when no other thread allocates
 * meanwhile, and otherwise a consistent-enough snapshot. 0 or GA_EINVAL. */
GA_API int ga_heap_stats(ga_heap_t *heap, ga_stats_t *out);

/* ---- consistency checks ---------------------------------------------------------------- */

enum {
    GA_CHECK_DEFAULT = 0,
    GA_CHECK_QUIET = 1, /* do not report the first problem through the error handler */
};
/* Walks every segment, page, free list and the handle table of heap (NULL = process heap) and
 * returns 0 or the first problem's code (GA_ECORRUPT, GA_EOVERRUN, ...), reported through the
 * error handler unless GA_CHECK_QUIET. Other threads must not allocate during the walk. */
GA_API int ga_heap_check(ga_heap_t *heap, unsigned flags);

/* ---- debug heap ------------------------------------------------------------------------ */

/* Debug mode (same library build): every block records its size, allocation number, thread and
 * call stack; freed blocks are filled with 0xDD and held in a quarantine; guard bytes (0xFD)
 * around each block are checked at free, realloc and ga_heap_check; fresh blocks are filled
 * with 0xCD. Double frees, foreign pointers, overruns and writes after free are reported with
 * both stacks. Switched on by GLOBALALLOC_DEBUG=1 or an option list (see README), or by: */

/* Switches debug mode on with options ("1", or e.g. "stacks=32,quarantine=16m,exitcode=23").
 * Blocks allocated before stay valid (they simply have no debug record). Returns 0, GA_EINVAL
 * (bad option list: nothing changes) or GA_EPERM ("0" once debug mode is on: it cannot be
 * switched off). */
GA_API int ga_debug_enable(const char *options);
/* 1 if debug mode is on, else 0. */
GA_API int ga_debug_enabled(void);

enum {
    GA_LEAK_ALL = 1,   /* every live block, not only those no pointer reaches */
    GA_LEAK_QUIET = 2, /* count only, print nothing */
    GA_LEAK_NOSYM = 4, /* no file:line (no addr2line subprocess) */
    GA_LEAK_SUMMARY = 8, /* after a report of leaks, count the blocks still referenced */
};
/* Writes the leak report to fd: live blocks that no pointer in the process reaches (a
 * conservative scan, as LeakSanitizer), grouped by allocation stack, largest first, with
 * function and file:line. Returns the number of leaked blocks, or GA_EPERM if debug mode is
 * off. Other threads should not allocate meanwhile. */
GA_API long ga_leak_report(int fd, unsigned flags);
/* A mark: ga_leak_report_since(mark, ...) only considers blocks allocated after this call. */
GA_API uint64_t ga_debug_mark(void);
/* ga_leak_report limited to blocks allocated since mark (0: all). */
GA_API long ga_leak_report_since(uint64_t mark, int fd, unsigned flags);
/* Number of leaked blocks right now (ga_leak_report with GA_LEAK_QUIET). */
GA_API long ga_leak_count(void);

#ifdef __cplusplus
}
#endif
#endif /* GLOBALALLOC_H */
