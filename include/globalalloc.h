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
    X(ENOTLOCKED, -6, "block or mutex is not locked")                                          \
    X(ELOCKED, -7, "block or mutex is locked")                                                 \
    X(EOVERFLOW, -8, "size computation overflows")                                             \
    X(ECORRUPT, -9, "heap metadata is corrupted")                                              \
    X(EDOUBLEFREE, -10, "block was already freed")                                             \
    X(ENOENT, -11, "no such heap or object")                                                   \
    X(EEXIST, -12, "already exists")                                                           \
    X(ENAME, -13, "invalid name")                                                              \
    X(EFORMAT, -14, "incompatible heap format or version")                                     \
    X(EFULL, -15, "heap or table is full")                                                     \
    X(EPERM, -16, "operation not permitted")                                                   \
    X(EOVERRUN, -17, "write past the end or before the start of a block")                      \
    X(ETIMEDOUT, -18, "timed out waiting for a shared-heap lock")                              \
    X(EOWNERDEAD, -19, "lock taken over from a holder that died: the data it guards may be "   \
                       "half-updated")                                                          \
    X(ERANGE, -20, "buffer too small, or a key or value over the map's limits")

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

/* ---- shared heaps ---------------------------------------------------------------------- */
/*
 * A shared heap is a named heap in POSIX shared memory (/dev/shm/ga.NAME) that several
 * processes attach. The environment variable GLOBALALLOC_SHM_DIR=DIR (an absolute directory,
 * e.g. a tmpfs of a chosen size) puts heaps in DIR/ga.NAME instead; every process of a heap
 * needs the same value. Storage is allocated (fallocate) before memory is used, so a full file
 * system makes allocations fail with GA_ENOMEM, never SIGBUS. Its address space (max_size) is reserved when it is created and memory is
 * committed as it grows. Blocks are named inside the heap by offsets (ga_shared_offset), which
 * mean the same in every process; handles from ga_shared_handle_alloc work with every
 * ga_handle_* function in any attached process. A process killed at any instant leaves the heap
 * consistent: its cached blocks are recovered, and the blocks it had allocated are reported as
 * owned by a dead process until ga_shared_reclaim_dead frees them.
 *
 * Limits: at most 61 processes attached to one heap at once (GA_SHARED_MAX_PROCS); a heap
 * serves any number of processes over its life. A process that exits or dies without
 * ga_shared_close keeps its slot until it is needed: an attach that finds the table full
 * recycles the slots of dead processes (their cached blocks are freed, their allocated blocks
 * stay counted as dead_blocks until ga_shared_reclaim_dead). With 61 live processes attached,
 * ga_shared_open fails with GA_EFULL and reports the limit through the error handler.
 *
 * Names: 1..200 printable characters, no '/', no "..", no spaces. Object names: 1..63 of the
 * same. A ga_heap_t * from ga_shared_open is valid until ga_shared_close, in the process that
 * opened it (a fork child must open the heap again).
 */

/* Processes attached to one shared heap at once. */
#define GA_SHARED_MAX_PROCS 61

/* ga_shared_open flags. */
enum {
    GA_SHARED_CREATE = 0x01, /* create the heap if it does not exist */
    GA_SHARED_EXCL = 0x02,   /* with CREATE: fail with GA_EEXIST if it exists */
    GA_SHARED_GROUP = 0x04,  /* create with mode 0660 (default 0600) */
    GA_SHARED_OTHERS = 0x08, /* create with mode 0666 */
    GA_SHARED_FORCE = 0x10,  /* ga_shared_unlink: remove even while others are attached */
    /* ga_shared_open: attach a heap whose file belongs to another user. Without it, a file owned
     * by neither the caller's effective uid nor root is refused with GA_EPERM: its owner can
     * read and rewrite everything in it (a name squatted by another user). */
    GA_SHARED_ANY_OWNER = 0x20,
};

/* Opens (attaches) the shared heap NAME, creating it with room for max_size bytes (rounded up;
 * 1 MiB .. 64 GiB) when GA_SHARED_CREATE is given and it does not exist. max_size is ignored
 * when attaching. *created (may be NULL) is set to 1 if this call created it, else 0. Creation
 * is exclusive: a heap is initialized in a private file and published under NAME only when
 * complete, so of racing openers exactly one creates and none sees a half-made heap. A file
 * under NAME that is not an initialized heap (a hand-made or damaged file, a creator of an
 * older version that died) is replaced with CREATE only when no live process is attached to
 * it; with live attachments it is GA_ECORRUPT and left as it is.
 * NULL + GA_ENAME, GA_ENOENT, GA_EEXIST, GA_EINVAL, GA_EFORMAT (magic, version or layout),
 * GA_ECORRUPT, GA_EPERM (no access, or the file's owner is neither the caller nor root: see
 * GA_SHARED_ANY_OWNER), GA_EFULL (GA_SHARED_MAX_PROCS live processes attached), GA_ENOMEM,
 * GA_ETIMEDOUT. */
GA_API ga_heap_t *ga_shared_open(const char *name, size_t max_size, unsigned flags,
                                 int *created);
/* Detaches: flushes this process's caches; blocks it still owns stay allocated (owned by the
 * heap from now on: any process may free them). Every thread of the process must be done with
 * heap. A process that exits without it counts as dead (see ga_shared_reclaim_dead).
 * 0 or GA_EINVAL. */
GA_API int ga_shared_close(ga_heap_t *heap);
/* Parses a shared-heap size: decimal digits with an optional K, M, G or T suffix (powers of
 * 1024; lower case too), e.g. "16M". 0 with *out set, GA_EINVAL (not a size), or GA_EOVERFLOW
 * (outside 1 MiB .. 64 GiB, the sizes ga_shared_open accepts; no wrap-around, however large). */
GA_API int ga_shared_parse_size(const char *text, size_t *out);
/* Removes the name NAME (attached processes keep their mapping). Refuses with GA_EPERM while
 * another live process is attached, unless flags has GA_SHARED_FORCE. 0, GA_ENAME, GA_ENOENT,
 * GA_EPERM. */
GA_API int ga_shared_unlink(const char *name, unsigned flags);
/* What ga_shared_peek reads from a heap's header without attaching. */
typedef struct ga_shared_info_s {
    unsigned heap_id;
    unsigned version;
    unsigned mode;        /* permission bits of the segment file */
    int creator_pid;
    uint64_t created_time; /* seconds since the epoch */
    size_t reserved;      /* max_size */
    size_t committed;     /* bytes the segment file covers now */
    size_t attached;      /* live attached processes */
    size_t dead;          /* processes that died attached and were not reclaimed yet */
} ga_shared_info_t;
/* Reads NAME's header read-only (no attach, no side effect). 0, GA_ENAME, GA_ENOENT, GA_EPERM,
 * GA_EFORMAT (not a heap of this format, or never initialized), GA_ECORRUPT. */
GA_API int ga_shared_peek(const char *name, ga_shared_info_t *out);
/* The heap's name (as given to ga_shared_open), or NULL for a heap that is not shared. */
GA_API const char *ga_shared_name(ga_heap_t *heap);
/* 1 if heap is a shared heap attached by this process, else 0. */
GA_API int ga_shared_is_shared(ga_heap_t *heap);

/* The shared heap that GlobalAlloc(GMEM_MOVEABLE | GMEM_SHARE) uses in this process: the one
 * set with ga_set_share_heap, else the heap named by the environment variable GLOBALALLOC_HEAP,
 * opened on first use (created if missing, GLOBALALLOC_HEAP_SIZE bytes, default 64 MiB). NULL
 * when there is none: such blocks then come from the process heap, with the GMEM_DDESHARE
 * attribute recorded, as on Win32. (A GMEM_FIXED block is a pointer, meaningful in one process
 * only, so it always comes from the process heap.) After fork the child opens it again.
 * When GLOBALALLOC_HEAP names a heap that cannot be opened: NULL with ga_last_error the open's
 * error (reported through the error handler), and GlobalAlloc(GMEM_MOVEABLE | GMEM_SHARE) fails
 * (NULL; GetLastError ERROR_INVALID_NAME for a bad name, ERROR_ACCESS_DENIED for GA_EPERM,
 * else ERROR_NOT_ENOUGH_MEMORY) rather than return a handle no other process could use; each
 * call tries to open it again. */
GA_API ga_heap_t *ga_share_heap(void);
/* Sets the shared heap for GMEM_SHARE (a heap this process attached), or NULL for none.
 * 0 or GA_EINVAL (not a shared heap). */
GA_API int ga_set_share_heap(ga_heap_t *heap);

/* Allocates size bytes (0 gives a minimal block), 16-byte aligned, owned by this process.
 * NULL + GA_EINVAL, GA_EFULL (heap full), GA_ENOMEM (no memory to commit), GA_ECORRUPT. */
GA_API void *ga_shared_alloc(ga_heap_t *heap, size_t size);
/* Allocates n*size zeroed bytes. NULL + GA_EOVERFLOW or the ga_shared_alloc errors. */
GA_API void *ga_shared_calloc(ga_heap_t *heap, size_t n, size_t size);
/* Frees p (NULL ignored), allocated by any process attached to heap. 0, or GA_ENOTOWNED,
 * GA_EDOUBLEFREE, GA_ECORRUPT (also reported through the error handler). */
GA_API int ga_shared_free(ga_heap_t *heap, void *p);
/* Resizes p (NULL: allocates). On failure returns NULL and p is unchanged. */
GA_API void *ga_shared_realloc(ga_heap_t *heap, void *p, size_t size);
/* Usable bytes of the live block p, or 0 (GA_ENOTOWNED) if p is not one. */
GA_API size_t ga_shared_usable_size(ga_heap_t *heap, const void *p);
/* Offset of p from the start of the segment (the same in every process), or 0 + GA_ENOTOWNED
 * if p is not inside heap's data area. */
GA_API uint64_t ga_shared_offset(ga_heap_t *heap, const void *p);
/* This process's pointer for offset off, or NULL + GA_EINVAL if off is outside the committed
 * data area. */
GA_API void *ga_shared_ptr(ga_heap_t *heap, uint64_t off);

/* Allocates a moveable block in heap (as ga_handle_alloc). Its handle is valid in every
 * attached process; ga_handle_lock gives each its own pointer. Shared handles always report
 * GA_HSHARE. 0 + GA_EINVAL, GA_EFULL, GA_ENOMEM, GA_EOVERFLOW. */
GA_API ga_handle_t ga_shared_handle_alloc(ga_heap_t *heap, size_t size, unsigned flags);
/* Writes up to max live handles of heap into out; returns how many there are (may be > max),
 * or GA_E*. */
GA_API long ga_shared_handle_list(ga_heap_t *heap, ga_handle_t *out, size_t max);

/* Named objects: blocks that any attached process finds by name. */
typedef struct ga_shared_object_info_s {
    char name[64];
    size_t size;     /* requested size */
    uint64_t offset; /* ga_shared_ptr(heap, offset) is the data */
} ga_shared_object_info_t;
/* Finds the object NAME or creates it (size bytes, zero-filled; flags must be 0): atomically,
 * so of processes racing to create it exactly one gets *created = 1 and all get the same
 * block. An existing object smaller than size fails with GA_EEXIST. NULL + GA_ENAME, GA_EINVAL,
 * GA_EFULL (table of 1024 objects or heap full), GA_EEXIST, GA_ECORRUPT. */
GA_API void *ga_shared_object(ga_heap_t *heap, const char *name, size_t size, unsigned flags,
                              int *created);
/* The data of object NAME (its size in *size if not NULL), or NULL + GA_ENOENT / GA_ENAME. */
GA_API void *ga_shared_object_find(ga_heap_t *heap, const char *name, size_t *size);
/* Fills up to max entries of out; returns the number of objects (may be > max), or GA_E*. */
GA_API long ga_shared_object_list(ga_heap_t *heap, ga_shared_object_info_t *out, size_t max);
/* Removes object NAME and frees its data. 0, GA_ENOENT, GA_ENAME. */
GA_API int ga_shared_object_remove(ga_heap_t *heap, const char *name);

/* ---- synchronisation inside shared heaps -------------------------------------------------
 * A mutex, a condition variable and once-only initialisation that survive any peer being
 * killed at any instant. A mutex or cond lives inside the heap (in a named object or a block:
 * the caller places it, as with pthread_mutex_t) and holds no pointer, only the kernel thread
 * id of its holder, so a peer that rewrites it can make a wait last until its timeout (or let
 * two holders in), never make the library write outside the segment.
 *
 * Ownership is per thread: two threads of one process exclude each other, only the holder may
 * unlock, and a holder that dies -- its thread exits, or its process exits or is killed -- is
 * detected by the next locker, which gets the lock with GA_EOWNERDEAD instead of 0: the data
 * the mutex guards may be half-updated. That locker holds the mutex normally (no "consistent"
 * call is needed): it should repair or re-check the data before it unlocks; lockers after it
 * get 0 again. (Thread ids are compared within one pid namespace; a dead holder's id reused by
 * a new thread before anyone looked would be taken for the holder, as with pids.)
 *
 * Timeouts are in milliseconds; GA_TIMEOUT_DEFAULT (0) means the lock timeout
 * (GLOBALALLOC_LOCK_TIMEOUT_MS, default 30 s). Every wait is bounded. Bad pointers (outside the
 * heap's data area, not 8-byte aligned, not initialised) give GA_EINVAL, a damaged object
 * GA_ECORRUPT: reported through the error handler, nothing written. A timeout, GA_ELOCKED from
 * a trylock and GA_EOWNERDEAD are results, not reported. */
#define GA_TIMEOUT_DEFAULT 0u

/* 16 bytes, 8-byte aligned; zero-filled it is not yet usable: ga_shared_mutex_init first. */
typedef struct ga_shared_mutex_s {
    uint64_t opaque_[2];
} ga_shared_mutex_t;
typedef struct ga_shared_cond_s {
    uint64_t opaque_[2];
} ga_shared_cond_t;

/* Initialises an unlocked mutex at m, which must lie inside a block allocated from heap (a
 * named object's data, a ga_shared_alloc block, a locked handle's data). Do it once, before
 * any process uses it (ga_shared_object_init is the place). 0, GA_EINVAL. */
GA_API int ga_shared_mutex_init(ga_heap_t *heap, ga_shared_mutex_t *m);
/* Locks m, waiting at most timeout_ms. 0; GA_EOWNERDEAD (locked: the previous holder died
 * holding it); GA_ETIMEDOUT (not locked); GA_EPERM (this thread holds it already: not
 * recursive); GA_EINVAL, GA_ECORRUPT. */
GA_API int ga_shared_mutex_lock(ga_heap_t *heap, ga_shared_mutex_t *m, unsigned timeout_ms);
/* Locks m if that needs no wait: 0, GA_EOWNERDEAD (taken over from a dead holder), GA_ELOCKED
 * (held by a live thread, not locked), or the ga_shared_mutex_lock errors. */
GA_API int ga_shared_mutex_trylock(ga_heap_t *heap, ga_shared_mutex_t *m);
/* Unlocks m. 0; GA_EPERM (the calling thread does not hold it); GA_EINVAL, GA_ECORRUPT. */
GA_API int ga_shared_mutex_unlock(ga_heap_t *heap, ga_shared_mutex_t *m);

/* Initialises a condition variable at c (inside a block of heap, as for the mutex). 0,
 * GA_EINVAL. */
GA_API int ga_shared_cond_init(ga_heap_t *heap, ga_shared_cond_t *c);
/* Unlocks m (held by the calling thread), waits for a signal or broadcast on c for at most
 * timeout_ms, and locks m again; check the condition again on return: wake-ups may be spurious
 * (a signal may wake more than one waiter: a woken waiter killed before it returned does not
 * swallow the signal, the others see it within 100 ms). No wake-up is lost: a signal made after
 * the waiter's unlock of m ends the wait. Returns, with m locked again: 0 (woken); GA_ETIMEDOUT
 * (timeout_ms passed); GA_EOWNERDEAD (m was taken over from a dead holder on the way back: see
 * ga_shared_mutex_lock). Without m locked: GA_ENOTLOCKED (m could not be locked again within
 * the lock timeout), GA_EPERM (the caller did not hold m). Nothing done, m as it was:
 * GA_EINVAL, GA_ECORRUPT (a bad or damaged c or m). */
GA_API int ga_shared_cond_wait(ga_heap_t *heap, ga_shared_cond_t *c, ga_shared_mutex_t *m,
                               unsigned timeout_ms);
/* Wakes one waiter of c (at least one, when there are any) / every waiter. With or without the
 * mutex held. 0, GA_EINVAL, GA_ECORRUPT. */
GA_API int ga_shared_cond_signal(ga_heap_t *heap, ga_shared_cond_t *c);
GA_API int ga_shared_cond_broadcast(ga_heap_t *heap, ga_shared_cond_t *c);

/* The initialiser of ga_shared_object_init: fills the zero-filled object data (size bytes).
 * Returns 0, or a nonzero code of its choosing (a GA_E* code, say) when it fails. */
typedef int ga_shared_init_fn(ga_heap_t *heap, void *data, size_t size, void *arg);
/* Finds or creates the named object NAME (as ga_shared_object) and makes sure init has run on
 * it exactly once, to completion, across every process: the first caller runs init(heap, data,
 * size, arg) on the zero-filled object; callers meanwhile wait, at most timeout_ms, and return
 * the object once init has returned 0. When an initialiser dies half-way (thread exit, process
 * killed) the next caller zero-fills the object and runs init again; when init fails (nonzero)
 * the object is zero-filled and left uninitialised, the next caller runs init again.
 * *created (may be NULL) is 1 when this call ran init successfully, else 0.
 * Returns the data, or NULL with ga_last_error(): init's own nonzero result when this call ran
 * it and it failed; GA_ETIMEDOUT (another initialiser still running after timeout_ms); GA_EPERM
 * (called from init for its own object); GA_EINVAL (init NULL) and the ga_shared_object errors.
 * ga_shared_object_find does not wait: it may return an object whose init has not finished. */
GA_API void *ga_shared_object_init(ga_heap_t *heap, const char *name, size_t size, unsigned flags,
                                   ga_shared_init_fn *init, void *arg, unsigned timeout_ms,
                                   int *created);

/* Statistics of a shared heap. */
typedef struct ga_shared_proc_s {
    int pid;             /* 0: free slot */
    int alive;           /* 0: the process died without detaching */
    size_t blocks, bytes; /* blocks it allocated and has not freed */
} ga_shared_proc_t;
typedef struct ga_shared_stats_s {
    unsigned heap_id;
    size_t reserved;      /* max_size: address space reserved */
    size_t committed;     /* bytes of the segment backed by memory now */
    size_t bytes_in_use;  /* bytes of allocated blocks (block sizes), every owner */
    size_t blocks_in_use;
    size_t bytes_cached;  /* free blocks held in processes' caches */
    size_t pages_total;   /* data pages committed */
    size_t pages_free;
    size_t handles_in_use;
    size_t objects;       /* named objects */
    size_t heap_blocks;   /* blocks owned by the heap (handles' and objects' data) */
    size_t orphan_blocks; /* blocks left by processes that detached */
    size_t attached;      /* live attached processes */
    size_t dead;          /* slots of processes that died attached */
    size_t dead_blocks, dead_bytes; /* blocks dead processes had allocated (also those whose
                                     * slots were reused since) */
    size_t repairs;       /* locks taken over from processes that died holding them */
    size_t class_count;
    ga_class_stats_t classes[GA_STATS_MAX_CLASSES];
    ga_shared_proc_t procs[64];
    size_t exited_handles;      /* live handles whose creating process has gone */
    size_t exited_handle_bytes; /* their sizes */
} ga_shared_stats_t;
/* Fills *out (walks the heap: cost grows with its size). 0, GA_EINVAL, GA_ECORRUPT. */
GA_API int ga_shared_stats(ga_heap_t *heap, ga_shared_stats_t *out);
/* Verifies the whole shared heap: header, page table, block states, class lists, handle table,
 * named objects, and that every heap-owned block is referenced. Locks left by dead processes are
 * repaired first. 0 or GA_ECORRUPT (reported unless GA_CHECK_QUIET). Needs no quiescence. */
GA_API int ga_shared_check(ga_heap_t *heap, unsigned flags);
/* Frees everything processes that died attached still held (cached and allocated blocks) and
 * frees their slots. Handles are kept, whoever created them. Returns the number of blocks
 * freed, or GA_E*. The same as ga_shared_reclaim(heap, 0). */
GA_API long ga_shared_reclaim_dead(ga_heap_t *heap);
/* ga_shared_reclaim flags. */
enum {
    /* also free the handles whose creating process has gone (detached, exited or died). Off by
     * default: a handle may be meant to outlive its creator (the clipboard's). Only for heaps
     * where no live process still uses such handles: their data goes. */
    GA_RECLAIM_HANDLES = 1,
};
/* ga_shared_reclaim_dead, and with GA_RECLAIM_HANDLES the orphaned handles too (each handle
 * records its creator: slot, the slot's generation, pid). Returns the blocks freed plus the
 * handles freed, or GA_EINVAL (bad heap or flags), GA_ECORRUPT. */
GA_API long ga_shared_reclaim(ga_heap_t *heap, unsigned flags);
/* Writes to fd the heap's allocated blocks by owner: live processes (pid, blocks, bytes; each
 * block with GA_LEAK_ALL), processes that exited attached (pid, blocks, bytes, first blocks),
 * and the heap's own (handles, named objects by name, detached processes' blocks), with the
 * handles whose creator has gone listed apart (value, size, creator pid). Flags:
 * GA_LEAK_ALL, GA_LEAK_QUIET, GA_LEAK_JSON (one JSON object). A snapshot without locks; never
 * allocates from the shared heap. Returns the blocks left by exited processes, or GA_EINVAL,
 * GA_ECORRUPT, GA_ENOMEM. */
GA_API long ga_shared_leak_report(ga_heap_t *heap, int fd, unsigned flags);

/* ---- shared maps ----------------------------------------------------------------------- */
/*
 * A map is a hash map of byte-string keys to byte-string values inside a shared heap, which
 * every process attached to the heap reaches by name (its root is the named object
 * "map.NAME": object names that start with "map." are reserved for maps; ga_shared_check
 * reports one that is no map). Keys of 1..max_key bytes, values of 0..max_value bytes (the limits are chosen at
 * creation: GA_ERANGE past them). Small values live inline in the key's entry, large ones in a
 * block of their own. The table grows while in use.
 *
 * Concurrency: writers (put, delete, cas, incr, clear, a transaction's commit) take the map's
 * lock, one at a time; readers (get, get_copy, len) take no lock: they copy the value out and
 * retry when a writer changed that key's stripe or the table meanwhile (a seqlock), so readers
 * never block one another nor writers. There is no zero-copy get: a value's block may be
 * freed by a writer in another process at any instant, and a pin that outlives a killed
 * reader would leak, so every get is a copy.
 *
 * Crash safety: every update is all-or-nothing. A process killed at any instant (SIGKILL)
 * leaves the map consistent: its half-done update is finished or undone by the next process
 * that takes the lock (or by dead-peer recovery), so every acknowledged write (the call
 * returned 0) is there and no other change is half-visible. A full heap gives GA_EFULL or
 * GA_ENOMEM with the map unchanged. Every offset and length read from the segment is
 * bounds-checked: a corrupted map gives GA_ECORRUPT, never a crash.
 */
typedef struct ga_map_s ga_map_t;

/* ga_map_open flags. */
enum {
    GA_MAP_CREATE = 0x01, /* create the map if it does not exist */
    GA_MAP_EXCL = 0x02,   /* with CREATE: GA_EEXIST if it exists */
};
/* Creation options (ignored when the map exists: its own limits apply). Zero fields take the
 * defaults. */
typedef struct ga_map_options_s {
    size_t max_key;   /* longest key: default 1024, at most GA_MAP_KEY_MAX */
    size_t max_value; /* longest value: default 64 MiB, at most GA_MAP_VALUE_MAX */
    size_t capacity;  /* initial number of keys before the first resize: default 64 */
} ga_map_options_t;
#define GA_MAP_KEY_MAX   65535u
#define GA_MAP_VALUE_MAX ((size_t)1 << 34)
#define GA_MAP_NAME_MAX  59 /* "map." + name fits a named object's 63 characters */

/* Opens the map NAME (1..59 printable characters, no '/', no spaces) in shared heap heap,
 * creating it with GA_MAP_CREATE (options may be NULL). NULL + GA_ENOENT (absent, no CREATE),
 * GA_EEXIST (EXCL, or the name is a named object that is no map), GA_ENAME, GA_EINVAL (bad
 * heap, flags or options), GA_EFULL / GA_ENOMEM, GA_ECORRUPT, GA_EFORMAT (another map format),
 * GA_ETIMEDOUT. The map handle belongs to this process; threads may share it. */
GA_API ga_map_t *ga_map_open(ga_heap_t *heap, const char *name, unsigned flags,
                             const ga_map_options_t *options);
/* Frees the process's handle (the map stays in the heap). NULL is ignored. 0 or GA_EINVAL. */
GA_API int ga_map_close(ga_map_t *map);
/* Removes the map NAME and every block it holds from heap. 0, GA_ENOENT, GA_ENAME, GA_EINVAL,
 * GA_ECORRUPT, GA_ETIMEDOUT. Handles other processes still have open must not be used after. */
GA_API int ga_map_remove(ga_heap_t *heap, const char *name);

/* Sets key to value (vlen 0: an empty value; val may then be NULL). 0, GA_ERANGE (key empty or
 * over max_key, value over max_value), GA_EINVAL, GA_EFULL / GA_ENOMEM (heap full: the map
 * keeps what it had), GA_ECORRUPT, GA_ETIMEDOUT. */
GA_API int ga_map_put(ga_map_t *map, const void *key, size_t klen, const void *val, size_t vlen);
/* A copy of key's value: *val from ga_malloc (free it with ga_free; one byte past the value is
 * a 0, so text can be used as a C string), *vlen its length, *version (may be NULL) its
 * version (a map-wide counter, bumped by every write of that key). 0, GA_ENOENT, GA_ERANGE,
 * GA_EINVAL, GA_ENOMEM, GA_ECORRUPT. */
GA_API int ga_map_get(ga_map_t *map, const void *key, size_t klen, void **val, size_t *vlen,
                      uint64_t *version);
/* Copies key's value into buf (cap bytes) and returns its length. A value longer than cap is
 * not copied: GA_ERANGE (buf NULL: only the length is returned). *version as ga_map_get.
 * GA_ENOENT, GA_EINVAL, GA_ECORRUPT. */
GA_API long ga_map_get_copy(ga_map_t *map, const void *key, size_t klen, void *buf, size_t cap,
                            uint64_t *version);
/* Removes key. 0, GA_ENOENT, GA_ERANGE, GA_EINVAL, GA_ECORRUPT, GA_ETIMEDOUT. */
GA_API int ga_map_delete(ga_map_t *map, const void *key, size_t klen);
/* Compare-and-set on the value bytes: sets key to val when its value now equals expect (elen
 * bytes), or, with expect NULL, when key is absent. 1 when it was set, 0 when the value
 * differed (nothing changed), else the ga_map_put errors. */
GA_API int ga_map_cas(ga_map_t *map, const void *key, size_t klen, const void *expect,
                      size_t elen, const void *val, size_t vlen);
/* Compare-and-set on the version (from ga_map_get): sets key when its version is still
 * version, or, with version 0, when key is absent. 1 set, 0 not (changed), else errors. */
GA_API int ga_map_cas_version(ga_map_t *map, const void *key, size_t klen, uint64_t version,
                              const void *val, size_t vlen);
/* Adds delta to key's 64-bit integer value (8 bytes, host byte order; an absent key counts
 * as 0) and stores the sum in *result (may be NULL). 0, GA_EINVAL (the value is not 8 bytes),
 * else the ga_map_put errors. Wraps around like unsigned arithmetic. */
GA_API int ga_map_incr(ga_map_t *map, const void *key, size_t klen, int64_t delta,
                       int64_t *result);
/* Number of keys, or GA_EINVAL / GA_ECORRUPT. */
GA_API long ga_map_len(ga_map_t *map);
/* Calls fn for every key of one consistent snapshot (taken under the lock, then walked with
 * it released, so fn may use the map). fn returns 0 to go on, nonzero to stop. Returns the
 * number of calls, or GA_EINVAL, GA_ENOMEM, GA_ECORRUPT, GA_ETIMEDOUT. */
typedef int ga_map_fn_t(const void *key, size_t klen, const void *val, size_t vlen,
                        uint64_t version, void *arg);
GA_API long ga_map_iterate(ga_map_t *map, ga_map_fn_t *fn, void *arg);
/* Removes every key (all-or-nothing). 0, GA_EINVAL, GA_EFULL / GA_ENOMEM, GA_ECORRUPT,
 * GA_ETIMEDOUT. */
GA_API int ga_map_clear(ga_map_t *map);

/* Transactions: puts and deletes collected in this process, then applied all-or-nothing by
 * ga_map_txn_commit (readers see all of them or none; a commit killed half-way is finished by
 * the next process). A later operation on a key replaces an earlier one of the same
 * transaction; deleting an absent key is no error. Commit and abort free the transaction. */
typedef struct ga_map_txn_s ga_map_txn_t;
/* NULL + GA_EINVAL / GA_ENOMEM. */
GA_API ga_map_txn_t *ga_map_txn_begin(ga_map_t *map);
/* 0, GA_ERANGE (limits), GA_EINVAL, GA_ENOMEM. */
GA_API int ga_map_txn_put(ga_map_txn_t *txn, const void *key, size_t klen, const void *val,
                          size_t vlen);
GA_API int ga_map_txn_delete(ga_map_txn_t *txn, const void *key, size_t klen);
/* A condition of the commit: key must still have version `version` (from ga_map_get), or with
 * version 0 be absent, when the transaction is applied (optimistic concurrency: read, prepare,
 * commit, retry on 1). 0, GA_ERANGE, GA_EINVAL, GA_ENOMEM. */
GA_API int ga_map_txn_expect(ga_map_txn_t *txn, const void *key, size_t klen, uint64_t version);
/* 0 (all applied), 1 (an expectation failed: nothing applied), or the ga_map_put errors with
 * nothing applied. */
GA_API int ga_map_txn_commit(ga_map_txn_t *txn);
/* Drops the transaction (NULL ignored). */
GA_API void ga_map_txn_abort(ga_map_txn_t *txn);

typedef struct ga_map_info_s {
    size_t count;     /* keys */
    size_t capacity;  /* table slots */
    size_t tombs;     /* deleted slots not reused yet */
    size_t blocks;    /* heap blocks the map holds: root, table, entries, large values */
    size_t bytes;     /* their sizes */
    size_t max_key, max_value;
    uint64_t version; /* the map's write counter */
    size_t takeovers; /* times its lock was taken over from a dead writer */
} ga_map_info_t;
/* Fills *info (under the lock). 0, GA_EINVAL, GA_ECORRUPT, GA_ETIMEDOUT. */
GA_API int ga_map_info(ga_map_t *map, ga_map_info_t *info);
/* Verifies the map: root, limits, table, every entry and value block, counts, that each key
 * is found where it is. Finishes a dead writer's change first. 0 or GA_ECORRUPT (reported
 * unless GA_CHECK_QUIET), GA_EINVAL, GA_ETIMEDOUT. ga_shared_check also checks every map. */
GA_API int ga_map_check(ga_map_t *map, unsigned flags);

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
/* Checks an option list as ga_debug_enable would, without switching anything on: 0, or GA_EINVAL
 * with the bad item and why through the error handler. For tools that hand options to another
 * program (globalalloc leaks -o) and must refuse a bad list instead of running it unchecked. */
GA_API int ga_debug_check_options(const char *options);
/* 1 if debug mode is on, else 0. */
GA_API int ga_debug_enabled(void);

enum {
    GA_LEAK_ALL = 1,   /* every live block, not only those no pointer reaches */
    GA_LEAK_QUIET = 2, /* count only, print nothing */
    GA_LEAK_NOSYM = 4, /* no file:line (no addr2line subprocess) */
    GA_LEAK_SUMMARY = 8, /* after a report of leaks, count the blocks still referenced */
    GA_LEAK_JSON = 16,   /* ga_shared_leak_report only: one JSON object instead of text */
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
