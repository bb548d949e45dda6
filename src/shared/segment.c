/* SPDX-License-Identifier: MIT */
/*
 * Shared heaps: the segment and its lifecycle (create, attach, detach, unlink), the process's
 * table of attachments, process slots, robust locks. The design of shared heaps: the format in
 * src/shared/layout.h, the locking and crash-safety rules in src/shared/shared_internal.h.
 *
 * Attachments live in a small process table (proc_lock), indexed by heap id for handles.
 * Initialization: the creator makes the file with O_EXCL, takes flock(LOCK_EX) before it gives
 * the file any size, and sets init_state = READY last. An attacher takes flock(LOCK_SH): when it
 * gets it and the state is not READY, the creator died (flock is released by death); a file of
 * size 0 may belong to a creator not yet at its flock, so that case waits a short grace time.
 */
#include "shared/shared_internal.h"
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static struct {
    pthread_mutex_t lock;
    _Atomic(shm_att_t *) by_id[2048];
    uint64_t serial;
    pthread_once_t once;
} procs = {.lock = PTHREAD_MUTEX_INITIALIZER, .once = PTHREAD_ONCE_INIT};
/* The attachment table (written under procs.lock, read without it by ga__shm_att and its
 * inline fast path in shared_internal.h), and each thread's last hit in it. */
_Atomic(shm_att_t *) ga__shm_atts[ATT_MAX];
GA_TLS unsigned ga__shm_last_att;

void ga__shm_proc_lock(void)
{
    pthread_mutex_lock(&procs.lock);
}
void ga__shm_proc_unlock(void)
{
    pthread_mutex_unlock(&procs.lock);
}

uint64_t ga__shm_hash(const void *p, size_t n, uint64_t h)
{
    const unsigned char *s = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ s[i]) * 0x100000001b3ull;
    return h;
}

/* ---- fork: a child's attachments belong to its parent --------------------------------- */

/* Both process-local locks are held across fork, so the child gets them in a known state
 * (held by its only thread) and simply releases them. */
static void fork_prepare(void)
{
    pthread_mutex_lock(&procs.lock);
    ga__shm_tcache_fork(0);
}
static void fork_parent(void)
{
    ga__shm_tcache_fork(1);
    pthread_mutex_unlock(&procs.lock);
}
static void fork_child(void)
{
    ga__shm_tcache_fork(2);
    for (unsigned i = 0; i < ATT_MAX; i++)
        if (ga__shm_atts[i] && ga__shm_atts[i]->state == ATT_OPEN)
            ga__shm_atts[i]->state = ATT_INHERITED;
    for (unsigned i = 0; i < 2048; i++)
        atomic_store(&procs.by_id[i], NULL);
    pthread_mutex_unlock(&procs.lock);
}
static void init_once(void)
{
    pthread_atfork(fork_prepare, fork_parent, fork_child);
}

/* ---- names ------------------------------------------------------------------------------ */

static bool name_ok(const char *name, size_t max)
{
    if (!name) return false;
    size_t n = strnlen(name, max + 1);
    if (n == 0 || n > max || strstr(name, "..")) return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)name[i];
        if (c < 0x21 || c > 0x7e || c == '/' || c == '\\') return false;
    }
    return true;
}

static int shm_path(const char *name, char *out, size_t cap)
{
    if (!name_ok(name, SHM_NAME_MAX)) return GA_ENAME;
    snprintf(out, cap, "/%s%s", SHM_PREFIX, name);
    return 0;
}

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

/* ---- robust locks ----------------------------------------------------------------------- */

static int init_mutex(pthread_mutex_t *m)
{
    pthread_mutexattr_t at;
    pthread_mutexattr_init(&at);
    pthread_mutexattr_setpshared(&at, PTHREAD_PROCESS_SHARED);
    pthread_mutexattr_setrobust(&at, PTHREAD_MUTEX_ROBUST);
    int rc = pthread_mutex_init(m, &at);
    pthread_mutexattr_destroy(&at);
    return rc;
}

int ga__shm_lock(shm_att_t *a, pthread_mutex_t *m, void (*repair)(shm_att_t *, void *), void *arg)
{
    int rc = pthread_mutex_lock(m);
    if (GA_LIKELY(rc == 0)) return 0;
    if (rc == EOWNERDEAD) {
        atomic_fetch_add(&a->hdr->repairs, 1);
        if (repair) repair(a, arg);
        pthread_mutex_consistent(m);
        return 0;
    }
    ga__report(GA_ECORRUPT, (uintptr_t)m, false, "shared heap %s: lock unusable (%d)", a->name, rc);
    return ga__set_error(GA_ECORRUPT);
}

void ga__shm_unlock(pthread_mutex_t *m)
{
    pthread_mutex_unlock(m);
}

/* ---- process slots ---------------------------------------------------------------------- */

/* Reads state and start time of pid from /proc. false if there is no such process. */
static bool proc_stat(int pid, char *state, uint64_t *start)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return false;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return false;
    buf[n] = 0;
    char *p = strrchr(buf, ')');
    if (!p || p[1] != ' ') return false;
    p += 2;
    *state = *p;
    for (int field = 3; field < 22; field++) { /* skip to field 22, starttime */
        p = strchr(p, ' ');
        if (!p) return false;
        p++;
    }
    *start = strtoull(p, NULL, 10);
    return true;
}

int ga__shm_slot_alive(shm_att_t *a, unsigned s)
{
    if (s >= SHM_PROC_SLOTS) return -1;
    shm_slot_t *sl = &a->hdr->slots[s];
    int pid = atomic_load(&sl->pid);
    if (pid == 0) return -1;
    if (s == a->slot && a->state == ATT_OPEN && pid == getpid()) return 1;
    if (pid < 0 || (kill(pid, 0) != 0 && errno == ESRCH)) return 0;
    /* The pid exists: is it a zombie, or another process that reuses the pid? Without /proc
     * we cannot tell, and a live process must never be taken for dead: assume alive. */
    char st;
    uint64_t start;
    if (!proc_stat(pid, &st, &start)) return 1;
    if (st == 'Z' || st == 'X' || (sl->start_time && start != sl->start_time)) return 0;
    return 1;
}

static int claim_slot(shm_att_t *a, unsigned *out)
{
    char st;
    uint64_t start = 0;
    if (!proc_stat(getpid(), &st, &start)) start = 0;
    shm_header_t *h = a->hdr;
    int rc = ga__shm_lock(a, &h->slots_lock, NULL, NULL);
    if (rc) return rc;
    rc = GA_EFULL;
    for (unsigned s = 0; s < SHM_PROC_SLOTS; s++) {
        if (atomic_load(&h->slots[s].pid) == 0) {
            h->slots[s].start_time = start;
            atomic_store(&h->slots[s].recovered, 0);
            atomic_store(&h->slots[s].pid, (int32_t)getpid()); /* the claim: one store */
            *out = s;
            rc = 0;
            break;
        }
    }
    ga__shm_unlock(&h->slots_lock);
    return rc;
}

static void release_slot(shm_att_t *a)
{
    shm_header_t *h = a->hdr;
    if (ga__shm_lock(a, &h->slots_lock, NULL, NULL) == 0) {
        atomic_store(&h->slots[a->slot].pid, 0);
        ga__shm_unlock(&h->slots_lock);
    }
}

/* ---- attachment table ------------------------------------------------------------------- */

shm_att_t *ga__shm_att(ga_heap_t *heap)
{
    /* Compare before dereferencing: heap may be any pointer. The slot of the last hit is
     * tried first. */
    shm_att_t *a = (shm_att_t *)heap;
    if (GA_LIKELY(a && ga__shm_atts[ga__shm_last_att % ATT_MAX] == a))
        return a->state == ATT_OPEN ? a : (ga__set_error(GA_EINVAL), NULL);
    for (unsigned i = 0; a && i < ATT_MAX; i++) {
        if (ga__shm_atts[i] == a) {
            ga__shm_last_att = i;
            return a->state == ATT_OPEN ? a : (ga__set_error(GA_EINVAL), NULL);
        }
    }
    ga__set_error(GA_EINVAL);
    return NULL;
}

shm_att_t *ga__shm_att_by_id(unsigned heap_id)
{
    shm_att_t *a =
        heap_id < 2048 ? atomic_load_explicit(&procs.by_id[heap_id], memory_order_acquire) : NULL;
    if (!a || a->state != ATT_OPEN) ga__set_error(GA_EHANDLE);
    return a && a->state == ATT_OPEN ? a : NULL;
}

shm_att_t *ga__shm_att_by_ptr(const void *p)
{
    uintptr_t u = (uintptr_t)p;
    for (unsigned i = 0; i < ATT_MAX; i++) {
        shm_att_t *a = ga__shm_atts[i];
        if (a && a->state == ATT_OPEN && u >= (uintptr_t)a->base &&
            u - (uintptr_t)a->base < a->map_size)
            return a;
    }
    return NULL;
}

bool ga__shared_is_heap(ga_heap_t *heap)
{
    shm_att_t *a = (shm_att_t *)heap;
    if (!a) return false;
    for (unsigned i = 0; i < ATT_MAX; i++)
        if (ga__shm_atts[i] == a) return a->state == ATT_OPEN;
    return false;
}

int ga_shared_is_shared(ga_heap_t *heap)
{
    return ga__shared_is_heap(heap) ? 1 : 0;
}

const char *ga_shared_name(ga_heap_t *heap)
{
    return ga__shared_is_heap(heap) ? ((shm_att_t *)heap)->name : NULL;
}

static void att_free(shm_att_t *a)
{
    if (a->base) munmap(a->base, a->map_size);
    if (a->fd >= 0) close(a->fd);
    munmap(a, sizeof *a);
}

static shm_att_t *att_new(const char *name, int fd)
{
    shm_att_t *a =
        mmap(NULL, sizeof *a, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (a == MAP_FAILED) return NULL;
    memset(a, 0, sizeof *a);
    a->magic = ATT_MAGIC;
    a->fd = fd;
    snprintf(a->name, sizeof a->name, "%s", name);
    return a;
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
    if (init_mutex(&h->slots_lock) || init_mutex(&h->pages_lock) || init_mutex(&h->named_lock))
        return GA_ENOMEM;
    for (unsigned c = 0; c < SHM_NCLASS; c++)
        if (init_mutex(&h->classes[c].lock)) return GA_ENOMEM;
    for (unsigned s = 0; s < SHM_NSTRIPES; s++)
        if (init_mutex(&h->stripes[s].lock)) return GA_ENOMEM;
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
static int open_segment(shm_att_t *a, const char *path, uint64_t max_size, unsigned flags,
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

/* ---- public: open, close, unlink -------------------------------------------------------- */

static shm_att_t *find_open(const char *name, const char *path)
{
    for (unsigned i = 0; i < ATT_MAX; i++) {
        shm_att_t *a = ga__shm_atts[i];
        if (!a || a->state != ATT_OPEN || strcmp(a->name, name) != 0) continue;
        /* Same name; is it still the same file (not unlinked and made again)? */
        int fd = shm_open(path, O_RDONLY | O_CLOEXEC, 0);
        struct stat s1, s2;
        bool same = fd >= 0 && fstat(fd, &s1) == 0 && fstat(a->fd, &s2) == 0 &&
                    s1.st_ino == s2.st_ino && s1.st_dev == s2.st_dev;
        if (fd >= 0) close(fd);
        if (same) return a;
    }
    return NULL;
}

static int register_att(shm_att_t *a)
{
    unsigned id = a->hdr->heap_id;
    if (atomic_load(&procs.by_id[id]))
        return GA_EEXIST; /* another attached heap has the same random id */
    for (unsigned i = 0; i < ATT_MAX; i++) {
        if (!ga__shm_atts[i]) {
            a->index = i;
            a->heap_id = id;
            a->serial = ++procs.serial;
            a->refs = 1;
            a->state = ATT_OPEN;
            ga__shm_atts[i] = a;
            atomic_store_explicit(&procs.by_id[id], a, memory_order_release);
            return 0;
        }
    }
    return GA_EFULL;
}

ga_heap_t *ga_shared_open(const char *name, size_t max_size, unsigned flags, int *created)
{
    char path[SHM_NAME_MAX + 16];
    int dummy, rc = shm_path(name, path, sizeof path);
    if (!created) created = &dummy;
    *created = 0;
    if (rc) {
        ga__set_error(rc);
        return NULL;
    }
    if (flags & ~0x1Fu) {
        ga__set_error(GA_EINVAL);
        return NULL;
    }
    pthread_once(&procs.once, init_once);
    /* The process lock is not held while opening: opening may wait (a busy creator) and takes
     * shared-heap locks, and a thread holding one of those may need the process lock. */
    pthread_mutex_lock(&procs.lock);
    shm_att_t *a = find_open(name, path);
    if (a && (flags & GA_SHARED_CREATE) && (flags & GA_SHARED_EXCL)) {
        pthread_mutex_unlock(&procs.lock);
        ga__set_error(GA_EEXIST);
        return NULL;
    }
    if (a) a->refs++;
    pthread_mutex_unlock(&procs.lock);
    if (a) return (ga_heap_t *)a;
    a = att_new(name, -1);
    if (!a) {
        ga__set_error(GA_ENOMEM);
        return NULL;
    }
    rc = open_segment(a, path, max_size, flags, created);
    bool slot = false;
    if (rc == 0) slot = (rc = claim_slot(a, &a->slot)) == 0;
    shm_att_t *other = NULL;
    if (rc == 0) {
        pthread_mutex_lock(&procs.lock);
        other = find_open(name, path); /* another thread of ours won the race */
        if (other)
            other->refs++;
        else
            rc = register_att(a);
        pthread_mutex_unlock(&procs.lock);
    }
    if (rc || other) {
        if (slot) release_slot(a);
        if (rc && *created) shm_unlink(path);
        if (rc) *created = 0;
        att_free(a);
        if (rc) ga__set_error(rc);
        return rc ? NULL : (ga_heap_t *)other;
    }
    atomic_fetch_add(&a->hdr->attach_count, 1);
    ga__shm_recover(a, false); /* give back what dead peers held in their caches */
    return (ga_heap_t *)a;
}

/* Blocks this process still owns become the ORPHAN slot's (kept, owned by no process). */
static void orphan_blocks(shm_att_t *a)
{
    uint64_t top = ga__shm_top_slow(a, atomic_load(&a->hdr->npages_top));
    unsigned me = ST_ALLOC(a->slot), to = ST_ALLOC(SHM_SLOT_ORPHAN);
    for (uint64_t p = 0; p < top && p < a->max_pages; p++) {
        uint64_t d = atomic_load(&a->pages[p].desc);
        if (PD_KIND(d) == PG_LARGE && PD_OWNER(d) == me) {
            ga__shm_block_cas(a, a->data_off + p * SHM_PAGE, me, to);
        } else if (PD_KIND(d) == PG_SMALL && PD_CLASS(d) < SHM_NCLASS) {
            unsigned c = PD_CLASS(d);
            uint64_t pbase = a->data_off + p * SHM_PAGE;
            _Atomic uint8_t *st = (_Atomic uint8_t *)(a->base + pbase);
            for (uint32_t i = 0; i < ga__shm_class_count(c); i++) {
                uint8_t e = (uint8_t)me;
                if (atomic_load_explicit(&st[i], memory_order_relaxed) == me)
                    atomic_compare_exchange_strong(&st[i], &e, (uint8_t)to);
            }
        }
    }
}

int ga_shared_close(ga_heap_t *heap)
{
    shm_att_t *a = (shm_att_t *)heap;
    pthread_mutex_lock(&procs.lock);
    bool known = false;
    for (unsigned i = 0; i < ATT_MAX; i++)
        known |= a && ga__shm_atts[i] == a && a->magic == ATT_MAGIC;
    if (!known) {
        pthread_mutex_unlock(&procs.lock);
        return ga__set_error(GA_EINVAL);
    }
    if (a->state == ATT_OPEN && --a->refs > 0) {
        pthread_mutex_unlock(&procs.lock);
        return 0;
    }
    if (a->state == ATT_OPEN) {
        ga__shm_flush_all(a);
        orphan_blocks(a);
        release_slot(a);
        atomic_fetch_sub(&a->hdr->attach_count, 1);
        atomic_store(&procs.by_id[a->heap_id], NULL);
    }
    ga__shm_atts[a->index] = NULL;
    a->magic = 0;
    pthread_mutex_unlock(&procs.lock);
    att_free(a);
    return 0;
}

int ga_shared_unlink(const char *name, unsigned flags)
{
    char path[SHM_NAME_MAX + 16];
    int rc = shm_path(name, path, sizeof path);
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
    int rc = shm_path(name, path, sizeof path);
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
