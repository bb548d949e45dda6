/* SPDX-License-Identifier: MIT */
/*
 * Shared heaps: this process's attachments. The table ga__shm_atts[] (ATT_MAX entries, written
 * under the process lock, read without it) lists the heaps attached; procs.by_id maps a heap id
 * to its attachment for handles. ga_shared_open finds or makes an attachment, ga_shared_close
 * drops a reference and detaches on the last one. Invariant: an attachment in the table with
 * state ATT_OPEN has a mapped segment and a claimed process slot; after fork the child's
 * attachments are ATT_INHERITED (they belong to the parent) and refuse every use.
 */
#include "shared/shared_internal.h"
#include "os/os.h"
#include <stdio.h>
#include <string.h>

static struct {
    ga_lock_t lock;
    _Atomic(shm_att_t *) by_id[SHM_HEAPID_MAX + 1];
    uint64_t serial;
    pthread_once_t once;
} procs = {.lock = GA_LOCK_INIT, .once = PTHREAD_ONCE_INIT};
/* The attachment table (written under procs.lock, read without it by ga__shm_att and its
 * inline fast path in shared_internal.h), and each thread's last hit in it. */
_Atomic(shm_att_t *) ga__shm_atts[ATT_MAX];
GA_TLS unsigned ga__shm_last_att;

void ga__shm_proc_lock(void)
{
    ga__lock(&procs.lock);
}
void ga__shm_proc_unlock(void)
{
    ga__unlock(&procs.lock);
}
#if GA_DEBUG >= 2
bool ga__shm_proc_held(void)
{
    return ga__lock_held(&procs.lock);
}
#endif

/* ---- fork: a child's attachments belong to its parent --------------------------------- */

/* Both process-local locks are held across fork, so the child gets them in a known state
 * (held by its only thread) and simply releases them. src/init.c registers these. */
void ga__shared_fork_prepare(void)
{
    ga__lock(&procs.lock);
    ga__shm_tcache_fork(0);
}
void ga__shared_fork_parent(void)
{
    ga__shm_tcache_fork(1);
    ga__unlock(&procs.lock);
}
void ga__shared_fork_child(void)
{
    ga__shm_tcache_fork(2);
    ga__shm_my_tid = 0; /* the child's thread has an id of its own */
    for (unsigned i = 0; i < ATT_MAX; i++)
        if (ga__shm_atts[i] && ga__shm_atts[i]->state == ATT_OPEN)
            ga__shm_atts[i]->state = ATT_INHERITED;
    for (unsigned i = 0; i <= SHM_HEAPID_MAX; i++)
        atomic_store(&procs.by_id[i], NULL);
    ga__unlock(&procs.lock);
    ga__share_heap_fork_child(); /* the parent's share heap is not the child's either */
}
GA_TLS unsigned ga__shm_in_lib;

/* SIGBUS handler's test (async-signal-safe: atomic loads and one mmap): a fault inside a guarded
 * call, in an attachment's mapping. */
GA_OS_SIGNAL_SAFE static bool bus_fix(void *addr)
{
    if (!ga__shm_in_lib) return false;
    for (unsigned i = 0; i < ATT_MAX; i++) {
        shm_att_t *a = atomic_load(&ga__shm_atts[i]);
        uintptr_t b = a ? (uintptr_t)a->base : 0, p = (uintptr_t)addr;
        if (a && b && p >= b && p - b < a->map_size) {
            atomic_store(&a->broken, 1);
            return ga__os_zero_page_at(addr) == 0;
        }
    }
    return false;
}

static void init_once(void)
{
    ga__os_bus_trap(bus_fix);
}

/* ---- attachment table ------------------------------------------------------------------- */

shm_att_t *ga__shm_att(ga_heap_t *heap)
{
    /* Compare before dereferencing: heap may be any pointer. The slot of the last hit is
     * tried first. */
    shm_att_t *a = (shm_att_t *)heap;
    unsigned i = ga__shm_last_att % ATT_MAX;
    if (!a || ga__shm_atts[i] != a)
        for (i = 0; a && i < ATT_MAX && ga__shm_atts[i] != a; i++)
            ;
    if (a && i < ATT_MAX) {
        ga__shm_last_att = i;
        if (a->state != ATT_OPEN) return ga__set_error(GA_EINVAL), NULL;
        if (atomic_load(&a->broken)) return ga__set_error(GA_ECORRUPT), NULL;
        return a;
    }
    ga__set_error(GA_EINVAL);
    return NULL;
}

shm_att_t *ga__shm_att_by_id(unsigned heap_id)
{
    shm_att_t *a = heap_id <= SHM_HEAPID_MAX
                       ? atomic_load_explicit(&procs.by_id[heap_id], memory_order_acquire)
                       : NULL;
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
    ga__shm_segment_close(a);
    ga__shm_local_free(a, sizeof *a);
}

static shm_att_t *att_new(const char *name, int fd)
{
    shm_att_t *a = ga__shm_local_alloc(sizeof *a);
    if (!a) return NULL;
    memset(a, 0, sizeof *a);
    a->magic = ATT_MAGIC;
    a->fd = fd;
    snprintf(a->name, sizeof a->name, "%s", name);
    return a;
}

/* ---- public: open, close ---------------------------------------------------------------- */

static shm_att_t *find_open(const char *name, const char *path)
{
    GA_ASSERT_HELD(&procs.lock);
    for (unsigned i = 0; i < ATT_MAX; i++) {
        shm_att_t *a = ga__shm_atts[i];
        if (!a || a->state != ATT_OPEN || strcmp(a->name, name) != 0) continue;
        /* Same name; is it still the same file (not unlinked and made again)? */
        if (ga__shm_segment_is(a, path)) return a;
    }
    return NULL;
}

static int register_att(shm_att_t *a)
{
    GA_ASSERT_HELD(&procs.lock);
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
    char path[SHM_PATH_MAX];
    int dummy, rc = ga__shm_path(name, path, sizeof path);
    if (!created) created = &dummy;
    *created = 0;
    if (rc) {
        ga__set_error(rc);
        return NULL;
    }
    if (flags & ~0x3Fu) {
        ga__set_error(GA_EINVAL);
        return NULL;
    }
    pthread_once(&procs.once, init_once);
    /* The process lock is not held while opening: opening may wait (a busy creator) and takes
     * shared-heap locks, and a thread holding one of those may need the process lock. */
    ga__lock(&procs.lock);
    shm_att_t *a = find_open(name, path);
    if (a && (flags & GA_SHARED_CREATE) && (flags & GA_SHARED_EXCL)) {
        ga__unlock(&procs.lock);
        ga__set_error(GA_EEXIST);
        return NULL;
    }
    if (a) a->refs++;
    ga__unlock(&procs.lock);
    if (a) return (ga_heap_t *)a;
    a = att_new(name, -1);
    if (!a) {
        ga__set_error(GA_ENOMEM);
        return NULL;
    }
    rc = ga__shm_segment_open(a, path, max_size, flags, created);
    bool slot = false;
    if (rc == 0) slot = (rc = ga__shm_slot_claim(a, &a->slot)) == 0;
    shm_att_t *other = NULL;
    if (rc == 0) {
        ga__lock(&procs.lock);
        other = find_open(name, path); /* another thread of ours won the race */
        if (other)
            other->refs++;
        else
            rc = register_att(a);
        ga__unlock(&procs.lock);
    }
    if (rc || other) {
        if (slot) ga__shm_slot_release(a);
        if (rc && *created) ga__os_shm_unlink(path);
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
            _Atomic uint8_t *st = ga__shm_state_bytes(a, p);
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
    ga__lock(&procs.lock);
    bool known = false;
    for (unsigned i = 0; i < ATT_MAX; i++)
        known |= a && ga__shm_atts[i] == a && a->magic == ATT_MAGIC;
    if (!known) {
        ga__unlock(&procs.lock);
        return ga__set_error(GA_EINVAL);
    }
    if (a->state == ATT_OPEN && --a->refs > 0) {
        ga__unlock(&procs.lock);
        return 0;
    }
    bool broken = atomic_load(&a->broken);
    if (a->state == ATT_OPEN) {
        SHM_GUARD_ENTER();
        if (!broken) ga__shm_flush_all(a);
        if (!broken) orphan_blocks(a);
        ga__shm_slot_release(a);
        atomic_fetch_sub(&a->hdr->attach_count, 1);
        broken = SHM_GUARD_LEAVE(a);
        atomic_store(&procs.by_id[a->heap_id], NULL);
    }
    ga__shm_atts[a->index] = NULL;
    a->magic = 0;
    ga__unlock(&procs.lock);
    att_free(a);
    return broken ? ga__set_error(GA_ECORRUPT) : 0;
}
