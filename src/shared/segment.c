/* SPDX-License-Identifier: MIT */
/*
 * Shared heaps: the segment file and its lifecycle (create, map, unmap, unlink, peek), and the
 * committed size (the file grows with the heap). The design of shared heaps: the format in
 * src/shared/layout.h, the locking and crash-safety rules in src/shared/shared_internal.h.
 *
 * Initialization: the creator makes the file with O_EXCL, takes flock(LOCK_EX) before it gives
 * the file any size, and sets init_state = READY last. An attacher takes flock(LOCK_SH): when it
 * gets it and the state is not READY, the creator died (flock is released by death); a file of
 * size 0 may belong to a creator not yet at its flock, so that case waits a short grace time.
 */
#include "shared/shared_internal.h"
#include "os/os.h"
#include <errno.h>
#include <string.h>

static int errno_to_ga(int e)
{
    switch (e) {
    case ENOENT:
        return GA_ENOENT;
    case EEXIST:
        return GA_EEXIST;
    case EACCES:
    case EPERM:
        return GA_EPERM;
    case ENAMETOOLONG:
    case EINVAL:
        return GA_ENAME;
    case ENOSPC:
    case ENOMEM:
    case EFBIG:
        return GA_ENOMEM;
    default:
        return GA_EINVAL;
    }
}

/* ---- layout ----------------------------------------------------------------------------- */

typedef struct {
    uint64_t max_size, max_pages, pt_off, data_off;
} layout_t;

static int compute_layout(uint64_t max_size, layout_t *l)
{
    if (max_size < SHM_MIN_SIZE || max_size > SHM_MAX_SIZE) return GA_EINVAL;
    l->max_size = (max_size + SHM_PAGE - 1) & ~(SHM_PAGE - 1);
    l->pt_off = (sizeof(shm_header_t) + SHM_PT_ALIGN - 1) & ~(uint64_t)(SHM_PT_ALIGN - 1);
    uint64_t pages = (l->max_size - l->pt_off) / (SHM_PAGE + sizeof(shm_page_t));
    for (;; pages--) {
        uint64_t d = (l->pt_off + pages * sizeof(shm_page_t) + SHM_PAGE - 1) & ~(SHM_PAGE - 1);
        if (d + pages * SHM_PAGE <= l->max_size) {
            l->data_off = d;
            break;
        }
    }
    l->max_pages = pages;
    return pages >= 4 ? 0 : GA_EINVAL;
}

static void att_set_layout(shm_att_t *a, const layout_t *l)
{
    a->map_size = l->max_size;
    a->max_pages = l->max_pages;
    a->data_off = l->data_off;
    a->pt_off = l->pt_off;
    a->hdr = (shm_header_t *)a->base;
    a->pages = (shm_page_t *)(a->base + l->pt_off);
}

/* ---- the attachment's file and mapping ----------------------------------------------------- */

bool ga__shm_segment_is(shm_att_t *a, const char *path)
{
    int fd = ga__os_shm_open(path, GA_OS_SHM_READ);
    bool same = fd >= 0 && ga__os_file_same(fd, a->fd);
    if (fd >= 0) ga__os_file_close(fd);
    return same;
}

void ga__shm_segment_close(shm_att_t *a)
{
    if (a->base) ga__os_unmap(a->base, a->map_size);
    if (a->fd >= 0) ga__os_file_close(a->fd);
}

/* Maps the header of fd read-only when the file is large enough to hold one, else NULL.
 * *size: the file size; *mode (if not NULL): its permission bits. */
static shm_header_t *header_map(int fd, uint64_t *size, unsigned *mode)
{
    if (ga__os_file_stat(fd, size, mode) != 0 || *size < sizeof(shm_header_t)) return NULL;
    return ga__os_map_shared(fd, sizeof(shm_header_t), false);
}

/* ---- creation --------------------------------------------------------------------------- */

static unsigned random_heap_id(void)
{
    unsigned r = (unsigned)ga__os_random() & SHM_HEAPID_MAX;
    return r ? r : 1;
}

static int commit_file(int fd, uint64_t from, uint64_t len)
{
    int rc = ga__os_file_allocate(fd, from, len);
    return rc ? errno_to_ga(-rc) : 0;
}

/* Initializes a fresh (or dead creator's) file; the caller holds flock(LOCK_EX). */
static int create_segment(shm_att_t *a, uint64_t max_size, unsigned flags)
{
    layout_t l;
    int rc = compute_layout(max_size, &l);
    if (rc) return rc;
    unsigned mode = (flags & GA_SHARED_OTHERS) ? 0666 : (flags & GA_SHARED_GROUP) ? 0660 : 0600;
    if ((rc = ga__os_file_chmod(a->fd, mode)) != 0 || (rc = ga__os_file_resize(a->fd, 0)) != 0)
        return errno_to_ga(-rc);
    if ((rc = commit_file(a->fd, 0, l.data_off)) != 0) return rc;
    a->base = ga__os_map_shared(a->fd, l.max_size, true);
    if (!a->base) return GA_ENOMEM;
    att_set_layout(a, &l);
    shm_header_t *h = a->hdr;
    atomic_store(&h->init_state, INIT_BUSY);
    h->creator_pid = ga__os_pid();
    h->magic = SHM_MAGIC;
    h->version = SHM_VERSION;
    h->header_size = sizeof(shm_header_t);
    h->max_size = l.max_size;
    h->max_pages = l.max_pages;
    h->page_table_off = l.pt_off;
    h->data_off = l.data_off;
    h->heap_id = random_heap_id();
    h->mode = mode;
    h->layout_sum = ga__shm_layout_sum(h);
    h->created_time = ga__os_time();
    if (ga__shm_mutex_init(&h->slots_lock) || ga__shm_mutex_init(&h->pages_lock) ||
        ga__shm_mutex_init(&h->named_lock))
        return GA_ENOMEM;
    for (unsigned c = 0; c < SHM_NCLASS; c++)
        if (ga__shm_mutex_init(&h->classes[c].lock)) return GA_ENOMEM;
    for (unsigned s = 0; s < SHM_NSTRIPES; s++)
        if (ga__shm_mutex_init(&h->stripes[s].lock)) return GA_ENOMEM;
    atomic_store_explicit(&h->init_state, INIT_READY, memory_order_release);
    return 0;
}

/* ---- attaching an existing segment ------------------------------------------------------ */

/* a may be NULL (ga_shared_peek: nothing attached, the size given is all there is). */
static int validate_header(shm_att_t *a, const shm_header_t *h, uint64_t file_size, layout_t *l)
{
    if (h->magic != SHM_MAGIC || h->version != SHM_VERSION ||
        h->header_size != sizeof(shm_header_t))
        return GA_EFORMAT;
    if (compute_layout(h->max_size, l) || l->max_size != h->max_size ||
        l->max_pages != h->max_pages || l->pt_off != h->page_table_off ||
        l->data_off != h->data_off)
        return GA_EFORMAT;
    if (h->layout_sum != ga__shm_layout_sum(h) || h->heap_id == 0 || h->heap_id > SHM_HEAPID_MAX)
        return GA_ECORRUPT;
    /* A peer grows the file first and publishes npages_top after, so read the top first and
     * then the size: a size read before the top could be older and make a sound heap look
     * corrupt. */
    uint64_t top = atomic_load(&((shm_header_t *)h)->npages_top), size;
    if (a != NULL && ga__os_file_stat(a->fd, &size, NULL) == 0 && size > file_size)
        file_size = size;
    if (top > l->max_pages || l->data_off + top * SHM_PAGE > file_size) return GA_ECORRUPT;
    return 0;
}

enum { ATTACH_OK = 0, ATTACH_RETRY = 1, ATTACH_DEAD_CREATOR = 2 };

/* Maps an existing initialized segment. Returns ATTACH_*, or GA_E*. */
static int attach_existing(shm_att_t *a, double deadline, double grace_end)
{
    int rc = ga__os_file_lock(a->fd, GA_OS_FLOCK_SH | GA_OS_FLOCK_NB);
    if (rc) {
        if (rc != -EWOULDBLOCK && rc != -EINTR) return errno_to_ga(-rc);
        return ga__os_monotonic() < deadline ? ATTACH_RETRY : GA_ECORRUPT;
    }
    uint64_t size;
    if ((rc = ga__os_file_stat(a->fd, &size, NULL)) != 0) {
        rc = errno_to_ga(-rc);
    } else if (size < sizeof(shm_header_t)) {
        /* A creator between shm_open and flock, or one that died there. */
        rc = ga__os_monotonic() < grace_end ? ATTACH_RETRY : ATTACH_DEAD_CREATOR;
    } else {
        shm_header_t *h = ga__os_map_shared(a->fd, sizeof *h, false);
        if (!h) {
            rc = GA_ENOMEM;
        } else {
            layout_t l;
            if (atomic_load_explicit(&h->init_state, memory_order_acquire) != INIT_READY)
                rc = ATTACH_DEAD_CREATOR; /* we hold LOCK_SH, so the creator is gone */
            else
                rc = validate_header(a, h, size, &l);
            ga__os_unmap(h, sizeof *h);
            if (rc == 0) {
                a->base = ga__os_map_shared(a->fd, l.max_size, true);
                if (!a->base)
                    rc = GA_ENOMEM;
                else
                    att_set_layout(a, &l);
            }
        }
    }
    ga__os_file_lock(a->fd, GA_OS_FLOCK_UN);
    return rc;
}

/* Opens the file and maps the segment, creating or re-initializing it as flags allow.
 * Returns 0 or GA_E*; sets *created. */
int ga__shm_segment_open(shm_att_t *a, const char *path, uint64_t max_size, unsigned flags,
                         int *created)
{
    double start = ga__os_monotonic(), deadline = start + 5.0, grace_end = start + 0.25;
    for (;;) {
        if (flags & GA_SHARED_CREATE) {
            int fd = ga__os_shm_open(path, GA_OS_SHM_CREATE);
            if (fd >= 0) {
                a->fd = fd;
                ga__os_file_lock(a->fd, GA_OS_FLOCK_EX);
                int rc = create_segment(a, max_size, flags);
                ga__os_file_lock(a->fd, GA_OS_FLOCK_UN);
                if (rc) {
                    ga__os_shm_unlink(path);
                    return rc;
                }
                *created = 1;
                return 0;
            }
            a->fd = -1;
            if (fd != -EEXIST) return errno_to_ga(-fd);
            if (flags & GA_SHARED_EXCL) return GA_EEXIST;
        }
        int fd = ga__os_shm_open(path, GA_OS_SHM_RDWR);
        if (fd < 0) {
            a->fd = -1;
            if (fd == -ENOENT && (flags & GA_SHARED_CREATE) && ga__os_monotonic() < deadline)
                continue; /* removed between our two opens */
            return errno_to_ga(-fd);
        }
        a->fd = fd;
        int rc = attach_existing(a, deadline, grace_end);
        if (rc == ATTACH_OK) return 0;
        if (rc == ATTACH_DEAD_CREATOR && (flags & GA_SHARED_CREATE)) {
            /* Take over: whoever gets LOCK_EX and still sees no READY state re-initializes. */
            if (ga__os_file_lock(a->fd, GA_OS_FLOCK_EX | GA_OS_FLOCK_NB) == 0) {
                uint64_t size;
                bool ready = false;
                shm_header_t *h = header_map(a->fd, &size, NULL);
                if (h) {
                    ready = atomic_load(&h->init_state) == INIT_READY;
                    ga__os_unmap(h, sizeof *h);
                }
                if (!ready) {
                    rc = create_segment(a, max_size, flags);
                    ga__os_file_lock(a->fd, GA_OS_FLOCK_UN);
                    if (rc) return rc;
                    *created = 1;
                    return 0;
                }
                ga__os_file_lock(a->fd, GA_OS_FLOCK_UN);
            }
            rc = ATTACH_RETRY;
        } else if (rc == ATTACH_DEAD_CREATOR) {
            rc = GA_ENOENT; /* never initialized, and we may not create it */
        }
        ga__os_file_close(a->fd);
        a->fd = -1;
        if (rc != ATTACH_RETRY) return rc;
        if (ga__os_monotonic() >= deadline) return GA_ECORRUPT;
        ga__os_sleep_us(1000);
    }
}

int ga_shared_unlink(const char *name, unsigned flags)
{
    char path[SHM_PATH_MAX];
    int rc = ga__shm_path(name, path, sizeof path);
    if (rc) return ga__set_error(rc);
    if (!(flags & GA_SHARED_FORCE)) {
        int fd = ga__os_shm_open(path, GA_OS_SHM_READ);
        if (fd < 0) return ga__set_error(errno_to_ga(-fd));
        uint64_t size;
        shm_header_t *h = header_map(fd, &size, NULL);
        ga__os_file_close(fd);
        /* A file that is no valid heap cannot have attached processes. */
        if (h) {
            if (h->magic == SHM_MAGIC && h->version == SHM_VERSION) {
                shm_att_t tmp = {.hdr = h, .slot = SHM_SLOTS};
                for (unsigned s = 0; s < SHM_PROC_SLOTS && rc == 0; s++) {
                    int pid = atomic_load(&h->slots[s].pid);
                    if (pid != ga__os_pid() && ga__shm_slot_alive(&tmp, s) == 1) rc = GA_EPERM;
                }
            }
            ga__os_unmap(h, sizeof *h);
        }
        if (rc) return ga__set_error(rc);
    }
    if ((rc = ga__os_shm_unlink(path)) != 0) return ga__set_error(errno_to_ga(-rc));
    return 0;
}

/* ---- committing memory ------------------------------------------------------------------ */

uint64_t ga__shm_top_slow(shm_att_t *a, uint64_t t)
{
    /* Never trust npages_top beyond what the file really covers: touching a page past the end
     * of the file would raise SIGBUS. */
    uint64_t size, file_pages = 0;
    if (ga__os_file_stat(a->fd, &size, NULL) == 0 && size > a->data_off)
        file_pages = (size - a->data_off) / SHM_PAGE;
    if (t > file_pages) t = file_pages;
    if (t > a->max_pages) t = a->max_pages;
    uint64_t k = atomic_load_explicit(&a->known_top, memory_order_relaxed);
    while (t > k && !atomic_compare_exchange_weak(&a->known_top, &k, t))
        ;
    return t;
}

int ga__shm_commit(shm_att_t *a, uint64_t pages)
{
    GA_ASSERT_SHM_HELD(a, SHM_LOCK_PAGES);
    uint64_t top = ga__shm_top_slow(a, atomic_load(&a->hdr->npages_top));
    if (pages <= top) return 0;
    if (pages > a->max_pages) return GA_EFULL;
    uint64_t want = pages + (top / 8 > 16 ? top / 8 : 16); /* grow by >= 1 MiB, or 1/8 */
    if (want > a->max_pages) want = a->max_pages;
    /* The file's blocks are allocated (fallocate) before any page past the old top is used, so
     * a full file system fails here (GA_ENOMEM) instead of raising SIGBUS on first touch; when
     * the headroom does not fit, exactly what was asked for may still. */
    int rc = commit_file(a->fd, a->data_off + top * SHM_PAGE, (want - top) * SHM_PAGE);
    if (rc == GA_ENOMEM && want > pages) {
        want = pages;
        rc = commit_file(a->fd, a->data_off + top * SHM_PAGE, (want - top) * SHM_PAGE);
    }
    if (rc) return rc;
    atomic_store_explicit(&a->hdr->npages_top, want, memory_order_release);
    return 0;
}

/* ---- peeking at a header ---------------------------------------------------------------- */

int ga_shared_peek(const char *name, ga_shared_info_t *out)
{
    char path[SHM_PATH_MAX];
    int rc = ga__shm_path(name, path, sizeof path);
    if (rc || !out) return ga__set_error(rc ? rc : GA_EINVAL);
    int fd = ga__os_shm_open(path, GA_OS_SHM_READ);
    if (fd < 0) return ga__set_error(errno_to_ga(-fd));
    uint64_t size;
    unsigned mode;
    shm_header_t *h = header_map(fd, &size, &mode);
    ga__os_file_close(fd);
    if (!h) return ga__set_error(GA_EFORMAT);
    layout_t l;
    rc =
        atomic_load(&h->init_state) == INIT_READY ? validate_header(NULL, h, size, &l) : GA_EFORMAT;
    if (rc == 0) {
        memset(out, 0, sizeof *out);
        out->heap_id = h->heap_id;
        out->version = h->version;
        out->mode = mode;
        out->creator_pid = h->creator_pid;
        out->created_time = h->created_time;
        out->reserved = h->max_size;
        out->committed = (size_t)size;
        shm_att_t tmp = {.hdr = h, .slot = SHM_SLOTS};
        for (unsigned s = 0; s < SHM_PROC_SLOTS; s++) {
            int alive = ga__shm_slot_alive(&tmp, s);
            out->attached += alive == 1;
            out->dead += alive == 0;
        }
    }
    ga__os_unmap(h, sizeof *h);
    return rc ? ga__set_error(rc) : 0;
}
