/* SPDX-License-Identifier: MIT */
/*
 * Shared heaps: the segment file and its lifecycle (create, map, unmap, unlink, peek), and the
 * committed size (the file grows with the heap). The design of shared heaps: the format in
 * src/shared/layout.h, the locking and crash-safety rules in src/shared/shared_internal.h.
 *
 * Creation is exclusive and never visible half-way: the creator makes a private file (O_EXCL,
 * /ga~PID~RANDOM, a name no heap can have), initializes it whole (init_state READY last), and
 * only then publishes it under the heap's name with link(), which fails when the name exists:
 * of racing creators exactly one wins, the others attach its heap. A creator that dies leaves
 * at most its private file, never a half-made heap under the name. So a file under the name
 * that is not READY is not being created: it is damaged, hand-made or an older format. It is
 * replaced (rename over it, under flock(LOCK_EX) so that two openers never both replace it)
 * only when no live process is attached to it; otherwise it is GA_ECORRUPT and left alone.
 *
 * Ownership: a file that belongs to neither the caller's euid nor root is refused (GA_EPERM)
 * unless GA_SHARED_ANY_OWNER: its owner can read and rewrite all of it.
 */
#include "shared/shared_internal.h"
#include "os/os.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
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

/* ---- heap ids --------------------------------------------------------------------------
 * A handle carries its heap's 11-bit id, and a process can attach only one heap per id, so a
 * new heap takes an id no heap in the shm directory has: ids stay a property of the heap (in
 * its header), the same in every process. Two creators racing may still pick the same id;
 * create_published looks again just before publishing, which leaves only that instant. */

unsigned ga__shm_test_next_id;

static void note_id(const char *name, void *arg)
{
    uint8_t *used = arg;
    int fd = ga__os_shm_open(name, GA_OS_SHM_READ);
    if (fd < 0) return;
    uint64_t size;
    shm_header_t *h = header_map(fd, &size, NULL);
    ga__os_file_close(fd);
    if (!h) return;
    if (h->magic == SHM_MAGIC && h->heap_id >= 1 && h->heap_id <= SHM_HEAPID_MAX)
        used[h->heap_id / 8] |= (uint8_t)(1u << (h->heap_id % 8));
    ga__os_unmap(h, sizeof *h);
}

#define ID_USED(u, id) ((u)[(id) / 8] >> ((id) % 8) & 1)

/* The first id from start on (cyclically) that used does not mark. */
static unsigned first_free_id(const uint8_t *used, unsigned start)
{
    for (unsigned k = 0; k < SHM_HEAPID_MAX; k++) {
        unsigned id = (start + k - 1) % SHM_HEAPID_MAX + 1;
        if (!ID_USED(used, id)) return id;
    }
    return start % SHM_HEAPID_MAX + 1; /* all 2047 in use: a clash is then unavoidable */
}

/* An id no published heap uses: a random start (ga__shm_test_next_id in tests), the next free. */
static unsigned pick_heap_id(const char *path)
{
    uint8_t used[(SHM_HEAPID_MAX + 1) / 8] = {0};
    ga__os_shm_each(path, SHM_PREFIX, note_id, used);
    return first_free_id(used,
                         ga__shm_test_next_id ? ga__shm_test_next_id : (unsigned)ga__os_random());
}

/* Just before publishing: another heap took our id meanwhile? Then the next free one (the
 * file is still private: its header may change). */
static void recheck_heap_id(shm_header_t *h, const char *path)
{
    uint8_t used[(SHM_HEAPID_MAX + 1) / 8] = {0};
    ga__os_shm_each(path, SHM_PREFIX, note_id, used);
    if (!ID_USED(used, h->heap_id)) return;
    h->heap_id = first_free_id(used, h->heap_id);
    h->layout_sum = ga__shm_layout_sum(h);
}

static int commit_file(int fd, uint64_t from, uint64_t len)
{
    int rc = ga__os_file_allocate(fd, from, len);
    return rc ? errno_to_ga(-rc) : 0;
}

/* Initializes a fresh private file (a->fd), mapping it into a. */
static int create_segment(shm_att_t *a, const char *path, uint64_t max_size, unsigned flags)
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
    h->heap_id = pick_heap_id(path);
    h->mode = mode;
    h->layout_sum = ga__shm_layout_sum(h);
    h->created_time = ga__os_time();
    /* The locks need no set-up: the file is zero-filled, and a zero shm_lock_t is free. */
    atomic_store_explicit(&h->init_state, INIT_READY, memory_order_release);
    return 0;
}

void (*ga__shm_test_hook)(const char *step);

static void test_hook(const char *step)
{
    if (ga__shm_test_hook) ga__shm_test_hook(step);
}

/* A creator killed between making its private file and publishing it leaves the file: private
 * files of processes that no longer exist are removed by the next creator. */
static void remove_if_orphan(const char *name, void *arg)
{
    (void)arg;
    const char *base = strrchr(name, '/') + 1; /* "/ga~PID~..." or "DIR/ga~PID~..." */
    int pid = atoi(base + 3);
    if (pid > 0 && !ga__os_pid_exists(pid)) ga__os_shm_unlink(name);
}

/* Makes a heap in a private file and publishes it under path: link() when the name must be
 * new (-EEXIST when it is not), rename() when it replaces the stale file the caller holds
 * flock(LOCK_EX) on. 0 (a holds the new segment) or GA_E* / -EEXIST. */
static int create_published(shm_att_t *a, const char *path, uint64_t max_size, unsigned flags,
                            bool replace)
{
    char tmp[SHM_PATH_MAX + 64];
    ga__os_shm_each(path, "ga~", remove_if_orphan, NULL);
    unsigned long long r = (unsigned long long)ga__os_random();
    /* in the directory of path (GLOBALALLOC_SHM_DIR's, or shared memory's): link needs that */
    const char *slash = strrchr(path, '/');
    int dlen = slash > path ? (int)(slash - path) : 0;
    snprintf(tmp, sizeof tmp, "%.*s/ga~%d~%016llx", dlen, path, ga__os_pid(), r);
    int fd = ga__os_shm_open(tmp, GA_OS_SHM_CREATE);
    if (fd < 0) return errno_to_ga(-fd);
    a->fd = fd;
    int rc = create_segment(a, path, max_size, flags);
    test_hook("create:before-publish");
    if (rc == 0) recheck_heap_id(a->hdr, path);
    if (rc == 0) {
        rc = replace ? ga__os_shm_rename(tmp, path) : ga__os_shm_link(tmp, path);
        if (rc && rc != -EEXIST) rc = errno_to_ga(-rc);
    }
    ga__os_shm_unlink(tmp); /* the published name keeps the file */
    if (rc) {
        ga__shm_segment_close(a);
        a->base = NULL;
        a->fd = -1;
    }
    return rc;
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

/* Live processes in the slots of a header that is not READY (0 when it cannot be read). */
static unsigned live_attached(const shm_header_t *h, uint64_t size)
{
    if (!h || size < sizeof *h || h->magic != SHM_MAGIC || h->version != SHM_VERSION) return 0;
    shm_att_t tmp = {.hdr = (shm_header_t *)h, .slot = SHM_SLOTS};
    unsigned n = 0;
    for (unsigned s = 0; s < SHM_PROC_SLOTS; s++)
        n += ga__shm_slot_alive(&tmp, s) == 1;
    return n;
}

enum { ATTACH_OK = 0, ATTACH_RETRY = 1, ATTACH_STALE = 2 };

/* Maps the existing segment of a->fd. ATTACH_OK, ATTACH_STALE (not an initialized heap, no live
 * process attached), or GA_E* (GA_ECORRUPT: not initialized but live processes attached). */
static int attach_existing(shm_att_t *a)
{
    uint64_t size;
    int rc = ga__os_file_stat(a->fd, &size, NULL);
    if (rc) return errno_to_ga(-rc);
    shm_header_t *h =
        size >= sizeof(shm_header_t) ? ga__os_map_shared(a->fd, sizeof *h, false) : NULL;
    if (size >= sizeof(shm_header_t) && !h) return GA_ENOMEM;
    layout_t l;
    if (!h || atomic_load_explicit(&h->init_state, memory_order_acquire) != INIT_READY) {
        unsigned live = live_attached(h, size);
        rc = live ? GA_ECORRUPT : ATTACH_STALE;
        if (live)
            ga__report(GA_ECORRUPT, 0, false,
                       "shared heap %s: not initialized, yet %u live processes are attached: "
                       "left as it is (not re-created)",
                       a->name, live);
    } else {
        rc = validate_header(a, h, size, &l);
    }
    if (h) ga__os_unmap(h, sizeof *h);
    if (rc == 0) {
        a->base = ga__os_map_shared(a->fd, l.max_size, true);
        if (!a->base) return GA_ENOMEM;
        att_set_layout(a, &l);
    }
    return rc;
}

/* GA_EPERM (reported) when the file of a->fd belongs to another user than us or root. */
static int check_owner(shm_att_t *a, unsigned flags)
{
    unsigned uid = 0, me = ga__os_euid();
    int rc = ga__os_file_owner(a->fd, &uid);
    if (rc) return errno_to_ga(-rc);
    if (uid == me || uid == 0 || (flags & GA_SHARED_ANY_OWNER)) return 0;
    ga__report(GA_EPERM, 0, false,
               "shared heap %s: its file belongs to uid %u, neither you (uid %u) nor root: "
               "refused, as its owner can read and rewrite it (GA_SHARED_ANY_OWNER to attach)",
               a->name, uid, me);
    return GA_EPERM;
}

/* Replaces the stale file a->fd (not a heap, nobody attached) by a new heap, unless another
 * opener is doing so or did: then ATTACH_RETRY. */
static int replace_stale(shm_att_t *a, const char *path, uint64_t max_size, unsigned flags)
{
    int stale = a->fd, rc = ATTACH_RETRY;
    if (ga__os_file_lock(stale, GA_OS_FLOCK_EX | GA_OS_FLOCK_NB) != 0) return ATTACH_RETRY;
    test_hook("replace:locked");
    /* Still the file under the name, and still stale, now that we hold it? */
    a->fd = stale;
    if (ga__shm_segment_is(a, path) && attach_existing(a) == ATTACH_STALE) {
        rc = create_published(a, path, max_size, flags, true);
        if (rc == -EEXIST) rc = ATTACH_RETRY;
    } else if (a->base) {
        ga__os_unmap(a->base, a->map_size); /* became a heap meanwhile: attach it anew */
        a->base = NULL;
    }
    ga__os_file_lock(stale, GA_OS_FLOCK_UN);
    ga__os_file_close(stale);
    if (rc) a->fd = -1;
    return rc;
}

/* Opens the file and maps the segment, creating or replacing it as flags allow.
 * Returns 0 or GA_E*; sets *created. */
int ga__shm_segment_open(shm_att_t *a, const char *path, uint64_t max_size, unsigned flags,
                         int *created)
{
    double deadline = ga__os_monotonic() + 5.0;
    for (;;) {
        int fd = ga__os_shm_open(path, GA_OS_SHM_RDWR), rc;
        if (fd == -ENOENT && (flags & GA_SHARED_CREATE)) {
            rc = create_published(a, path, max_size, flags, false);
            if (rc == 0) {
                *created = 1;
                return 0;
            }
            if (rc != -EEXIST) return rc;
            if (flags & GA_SHARED_EXCL) return GA_EEXIST;
            continue; /* another creator won: attach its heap */
        }
        if (fd < 0) return errno_to_ga(-fd);
        a->fd = fd;
        test_hook("attach:opened");
        if ((flags & GA_SHARED_CREATE) && (flags & GA_SHARED_EXCL)) {
            rc = GA_EEXIST;
        } else if ((rc = check_owner(a, flags)) == 0) {
            rc = attach_existing(a);
        }
        if (rc == ATTACH_OK) return 0;
        if (rc == ATTACH_STALE) {
            if (!(flags & GA_SHARED_CREATE)) {
                rc = GA_ENOENT; /* never initialized, and we may not create it */
            } else {
                rc = replace_stale(a, path, max_size, flags);
                if (rc == 0) {
                    *created = 1;
                    return 0;
                }
                if (a->fd < 0) fd = -1; /* replace_stale closed it */
            }
        }
        if (fd >= 0) ga__os_file_close(a->fd);
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
