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
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

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

static uint64_t layout_sum(const shm_header_t *h)
{
    return ga__shm_hash(h, offsetof(shm_header_t, layout_sum), 0xcbf29ce484222325ull);
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
    int fd = shm_open(path, O_RDONLY | O_CLOEXEC, 0);
    struct stat s1, s2;
    bool same = fd >= 0 && fstat(fd, &s1) == 0 && fstat(a->fd, &s2) == 0 &&
                s1.st_ino == s2.st_ino && s1.st_dev == s2.st_dev;
    if (fd >= 0) close(fd);
    return same;
}

void ga__shm_segment_close(shm_att_t *a)
{
    if (a->base) munmap(a->base, a->map_size);
    if (a->fd >= 0) close(a->fd);
}

/* ---- creation --------------------------------------------------------------------------- */

static unsigned random_heap_id(void)
{
    uint16_t r = 0;
    if (getrandom(&r, sizeof r, GRND_NONBLOCK) != (ssize_t)sizeof r)
        r = (uint16_t)(time(NULL) ^ getpid() ^ (uintptr_t)&r);
    r &= 0x7FF;
    return r ? r : 1;
}

static int commit_file(int fd, uint64_t from, uint64_t len)
{
    int rc = posix_fallocate(fd, (off_t)from, (off_t)len);
    if (rc == EOPNOTSUPP || rc == EINVAL) rc = ftruncate(fd, (off_t)(from + len)) ? errno : 0;
    return rc ? errno_to_ga(rc) : 0;
}

/* Initializes a fresh (or dead creator's) file; the caller holds flock(LOCK_EX). */
static int create_segment(shm_att_t *a, uint64_t max_size, unsigned flags)
{
    layout_t l;
    int rc = compute_layout(max_size, &l);
    if (rc) return rc;
    mode_t mode = (flags & GA_SHARED_OTHERS) ? 0666 : (flags & GA_SHARED_GROUP) ? 0660 : 0600;
    if (fchmod(a->fd, mode) || ftruncate(a->fd, 0)) return errno_to_ga(errno);
    if ((rc = commit_file(a->fd, 0, l.data_off)) != 0) return rc;
    a->base = mmap(NULL, l.max_size, PROT_READ | PROT_WRITE, MAP_SHARED, a->fd, 0);
    if (a->base == MAP_FAILED) {
        a->base = NULL;
        return GA_ENOMEM;
    }
    att_set_layout(a, &l);
    shm_header_t *h = a->hdr;
    atomic_store(&h->init_state, INIT_BUSY);
    h->creator_pid = getpid();
    h->magic = SHM_MAGIC;
    h->version = SHM_VERSION;
    h->header_size = sizeof(shm_header_t);
    h->max_size = l.max_size;
    h->max_pages = l.max_pages;
    h->page_table_off = l.pt_off;
    h->data_off = l.data_off;
    h->heap_id = random_heap_id();
    h->mode = mode;
    h->layout_sum = layout_sum(h);
    h->created_time = (uint64_t)time(NULL);
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
    if (h->layout_sum != layout_sum(h) || h->heap_id == 0 || h->heap_id > 0x7FF) return GA_ECORRUPT;
    /* A peer grows the file first and publishes npages_top after, so read the top first and
     * then the size: a size read before the top could be older and make a sound heap look
     * corrupt. */
    uint64_t top = atomic_load(&((shm_header_t *)h)->npages_top);
    struct stat st;
    if (a != NULL && fstat(a->fd, &st) == 0 && (uint64_t)st.st_size > file_size)
        file_size = (uint64_t)st.st_size;
    if (top > l->max_pages || l->data_off + top * SHM_PAGE > file_size) return GA_ECORRUPT;
    return 0;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void nap(void)
{
    struct timespec ts = {0, 1000000};
    nanosleep(&ts, NULL);
}

enum { ATTACH_OK = 0, ATTACH_RETRY = 1, ATTACH_DEAD_CREATOR = 2 };

/* Maps an existing initialized segment. Returns ATTACH_*, or GA_E*. */
static int attach_existing(shm_att_t *a, double deadline, double grace_end)
{
    if (flock(a->fd, LOCK_SH | LOCK_NB)) {
        if (errno != EWOULDBLOCK && errno != EINTR) return errno_to_ga(errno);
        return now_s() < deadline ? ATTACH_RETRY : GA_ECORRUPT;
    }
    struct stat st;
    int rc = 0;
    if (fstat(a->fd, &st)) {
        rc = errno_to_ga(errno);
    } else if ((uint64_t)st.st_size < sizeof(shm_header_t)) {
        /* A creator between shm_open and flock, or one that died there. */
        rc = now_s() < grace_end ? ATTACH_RETRY : ATTACH_DEAD_CREATOR;
    } else {
        shm_header_t *h = mmap(NULL, sizeof *h, PROT_READ, MAP_SHARED, a->fd, 0);
        if (h == MAP_FAILED) {
            rc = GA_ENOMEM;
        } else {
            layout_t l;
            if (atomic_load_explicit(&h->init_state, memory_order_acquire) != INIT_READY)
                rc = ATTACH_DEAD_CREATOR; /* we hold LOCK_SH, so the creator is gone */
            else
                rc = validate_header(a, h, (uint64_t)st.st_size, &l);
            munmap(h, sizeof *h);
            if (rc == 0) {
                a->base = mmap(NULL, l.max_size, PROT_READ | PROT_WRITE, MAP_SHARED, a->fd, 0);
                if (a->base == MAP_FAILED) {
                    a->base = NULL;
                    rc = GA_ENOMEM;
                } else {
                    att_set_layout(a, &l);
                }
            }
        }
    }
    flock(a->fd, LOCK_UN);
    return rc;
}

/* Opens the file and maps the segment, creating or re-initializing it as flags allow.
 * Returns 0 or GA_E*; sets *created. */
int ga__shm_segment_open(shm_att_t *a, const char *path, uint64_t max_size, unsigned flags,
                         int *created)
{
    double start = now_s(), deadline = start + 5.0, grace_end = start + 0.25;
    for (;;) {
        if (flags & GA_SHARED_CREATE) {
            a->fd = shm_open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
            if (a->fd >= 0) {
                flock(a->fd, LOCK_EX);
                int rc = create_segment(a, max_size, flags);
                flock(a->fd, LOCK_UN);
                if (rc) {
                    shm_unlink(path);
                    return rc;
                }
                *created = 1;
                return 0;
            }
            if (errno != EEXIST) return errno_to_ga(errno);
            if (flags & GA_SHARED_EXCL) return GA_EEXIST;
        }
        a->fd = shm_open(path, O_RDWR | O_CLOEXEC, 0);
        if (a->fd < 0) {
            if (errno == ENOENT && (flags & GA_SHARED_CREATE) && now_s() < deadline)
                continue; /* removed between our two opens */
            return errno_to_ga(errno);
        }
        int rc = attach_existing(a, deadline, grace_end);
        if (rc == ATTACH_OK) return 0;
        if (rc == ATTACH_DEAD_CREATOR && (flags & GA_SHARED_CREATE)) {
            /* Take over: whoever gets LOCK_EX and still sees no READY state re-initializes. */
            if (flock(a->fd, LOCK_EX | LOCK_NB) == 0) {
                struct stat st;
                bool ready = false;
                if (fstat(a->fd, &st) == 0 && (uint64_t)st.st_size >= sizeof(shm_header_t)) {
                    shm_header_t *h = mmap(NULL, sizeof *h, PROT_READ, MAP_SHARED, a->fd, 0);
                    if (h != MAP_FAILED) {
                        ready = atomic_load(&h->init_state) == INIT_READY;
                        munmap(h, sizeof *h);
                    }
                }
                if (!ready) {
                    rc = create_segment(a, max_size, flags);
                    flock(a->fd, LOCK_UN);
                    if (rc) return rc;
                    *created = 1;
                    return 0;
                }
                flock(a->fd, LOCK_UN);
            }
            rc = ATTACH_RETRY;
        } else if (rc == ATTACH_DEAD_CREATOR) {
            rc = GA_ENOENT; /* never initialized, and we may not create it */
        }
        close(a->fd);
        a->fd = -1;
        if (rc != ATTACH_RETRY) return rc;
        if (now_s() >= deadline) return GA_ECORRUPT;
        nap();
    }
}

int ga_shared_unlink(const char *name, unsigned flags)
{
    char path[SHM_NAME_MAX + 16];
    int rc = ga__shm_path(name, path, sizeof path);
    if (rc) return ga__set_error(rc);
    if (!(flags & GA_SHARED_FORCE)) {
        int fd = shm_open(path, O_RDONLY | O_CLOEXEC, 0);
        if (fd < 0) return ga__set_error(errno_to_ga(errno));
        struct stat st;
        shm_header_t *h = MAP_FAILED;
        if (fstat(fd, &st) == 0 && (uint64_t)st.st_size >= sizeof(shm_header_t))
            h = mmap(NULL, sizeof *h, PROT_READ, MAP_SHARED, fd, 0);
        close(fd);
        /* A file that is no valid heap cannot have attached processes. */
        if (h != MAP_FAILED) {
            if (h->magic == SHM_MAGIC && h->version == SHM_VERSION) {
                shm_att_t tmp = {.hdr = h, .slot = SHM_SLOTS};
                for (unsigned s = 0; s < SHM_PROC_SLOTS && rc == 0; s++) {
                    int pid = atomic_load(&h->slots[s].pid);
                    if (pid != getpid() && ga__shm_slot_alive(&tmp, s) == 1) rc = GA_EPERM;
                }
            }
            munmap(h, sizeof *h);
        }
        if (rc) return ga__set_error(rc);
    }
    if (shm_unlink(path)) return ga__set_error(errno_to_ga(errno));
    return 0;
}

/* ---- committing memory ------------------------------------------------------------------ */

uint64_t ga__shm_top_slow(shm_att_t *a, uint64_t t)
{
    /* Never trust npages_top beyond what the file really covers: touching a page past the end
     * of the file would raise SIGBUS. */
    struct stat st;
    uint64_t file_pages = 0;
    if (fstat(a->fd, &st) == 0 && (uint64_t)st.st_size > a->data_off)
        file_pages = ((uint64_t)st.st_size - a->data_off) / SHM_PAGE;
    if (t > file_pages) t = file_pages;
    if (t > a->max_pages) t = a->max_pages;
    uint64_t k = atomic_load_explicit(&a->known_top, memory_order_relaxed);
    while (t > k && !atomic_compare_exchange_weak(&a->known_top, &k, t))
        ;
    return t;
}

int ga__shm_commit(shm_att_t *a, uint64_t pages)
{
    uint64_t top = ga__shm_top_slow(a, atomic_load(&a->hdr->npages_top));
    if (pages <= top) return 0;
    if (pages > a->max_pages) return GA_EFULL;
    uint64_t want = pages + (top / 8 > 16 ? top / 8 : 16); /* grow by >= 1 MiB, or 1/8 */
    if (want > a->max_pages) want = a->max_pages;
    int rc = commit_file(a->fd, a->data_off + top * SHM_PAGE, (want - top) * SHM_PAGE);
    if (rc) return rc;
    atomic_store_explicit(&a->hdr->npages_top, want, memory_order_release);
    return 0;
}

/* ---- peeking at a header ---------------------------------------------------------------- */

int ga_shared_peek(const char *name, ga_shared_info_t *out)
{
    char path[SHM_NAME_MAX + 16];
    int rc = ga__shm_path(name, path, sizeof path);
    if (rc || !out) return ga__set_error(rc ? rc : GA_EINVAL);
    int fd = shm_open(path, O_RDONLY | O_CLOEXEC, 0);
    if (fd < 0) return ga__set_error(errno_to_ga(errno));
    struct stat st;
    shm_header_t *h = MAP_FAILED;
    if (fstat(fd, &st) == 0 && (uint64_t)st.st_size >= sizeof(shm_header_t))
        h = mmap(NULL, sizeof *h, PROT_READ, MAP_SHARED, fd, 0);
    close(fd);
    if (h == MAP_FAILED) return ga__set_error(GA_EFORMAT);
    layout_t l;
    rc = atomic_load(&h->init_state) == INIT_READY
             ? validate_header(NULL, h, (uint64_t)st.st_size, &l)
             : GA_EFORMAT;
    if (rc == 0) {
        memset(out, 0, sizeof *out);
        out->heap_id = h->heap_id;
        out->version = h->version;
        out->mode = (unsigned)(st.st_mode & 0777);
        out->creator_pid = h->creator_pid;
        out->created_time = h->created_time;
        out->reserved = h->max_size;
        out->committed = (size_t)st.st_size;
        shm_att_t tmp = {.hdr = h, .slot = SHM_SLOTS};
        for (unsigned s = 0; s < SHM_PROC_SLOTS; s++) {
            int alive = ga__shm_slot_alive(&tmp, s);
            out->attached += alive == 1;
            out->dead += alive == 0;
        }
    }
    munmap(h, sizeof *h);
    return rc ? ga__set_error(rc) : 0;
}

