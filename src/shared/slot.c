/* SPDX-License-Identifier: MIT */
/*
 * Shared heaps: process slots (hdr->slots[], written under the slots lock). A slot is claimed by
 * one store of the pid (after its start time), and a process counts as dead only when its pid
 * is gone, is a zombie or names another process (start time): a live process must never be
 * taken for dead.
 *
 * The table limits the processes attached at once (SHM_PROC_SLOTS), not over the heap's life:
 * when no slot is free, the slots of dead processes are recycled (ga__shm_recycle: their
 * caches given back, their allocated blocks handed to SHM_SLOT_DEAD) and the claim retried.
 * Each claim bumps the slot's generation, which handles record as their creator.
 */
#include "shared/shared_internal.h"
#include "os/os.h"

int ga__shm_slot_alive(shm_att_t *a, unsigned s)
{
    if (s >= SHM_PROC_SLOTS) return -1;
    shm_slot_t *sl = &a->hdr->slots[s];
    int pid = atomic_load(&sl->pid);
    if (pid == 0) return -1;
    if (s == a->slot && a->state == ATT_OPEN && pid == ga__os_pid()) return 1;
    if (pid < 0 || !ga__os_pid_exists(pid)) return 0;
    /* The pid exists: is it a zombie, or another process that reuses the pid? Without /proc
     * we cannot tell, and a live process must never be taken for dead: assume alive. */
    char st;
    uint64_t start;
    if (!ga__os_proc_stat(pid, &st, &start)) return 1;
    if (st == 'Z' || st == 'X' || (sl->start_time && start != sl->start_time)) return 0;
    return 1;
}

/* One pass over the table (slots lock held inside). 0, GA_EFULL or a lock error. */
static int claim_free(shm_att_t *a, uint64_t start, unsigned *out)
{
    shm_header_t *h = a->hdr;
    int rc = ga__shm_lock(a, SHM_LOCK_SLOTS, NULL, NULL);
    if (rc) return rc;
    rc = GA_EFULL;
    for (unsigned s = 0; s < SHM_PROC_SLOTS; s++) {
        if (atomic_load(&h->slots[s].pid) == 0) {
            h->slots[s].start_time = start;
            atomic_store(&h->slots[s].recovered, 0);
            atomic_store(&h->slots[s].gen, (uint16_t)(atomic_load(&h->slots[s].gen) + 1));
            atomic_store(&h->slots[s].pid, (int32_t)ga__os_pid()); /* the claim: one store */
            *out = s;
            rc = 0;
            break;
        }
    }
    ga__shm_unlock(a, SHM_LOCK_SLOTS);
    return rc;
}

int ga__shm_slot_claim(shm_att_t *a, unsigned *out)
{
    char st;
    uint64_t start = 0;
    if (!ga__os_proc_stat(ga__os_pid(), &st, &start)) start = 0;
    int rc = claim_free(a, start, out);
    if (rc != GA_EFULL) return rc;
    long n = ga__shm_recycle(a); /* the table is full: are some of its processes gone? */
    if (n < 0) return (int)n;
    rc = claim_free(a, start, out);
    if (rc == GA_EFULL)
        ga__report(GA_EFULL, SHM_PROC_SLOTS, false,
                   "shared heap %s: %d processes are attached, the most a heap takes at once",
                   a->name, SHM_PROC_SLOTS);
    return rc;
}

void ga__shm_slot_release(shm_att_t *a)
{
    shm_header_t *h = a->hdr;
    if (ga__shm_lock(a, SHM_LOCK_SLOTS, NULL, NULL) == 0) {
        atomic_store(&h->slots[a->slot].pid, 0);
        ga__shm_unlock(a, SHM_LOCK_SLOTS);
    }
}
