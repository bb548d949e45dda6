/* SPDX-License-Identifier: MIT */
/*
 * Shared heaps: the owners report (ga_shared_leak_report): the heap's allocated blocks grouped
 * by owner, live attached processes apart from processes that exited without freeing, and the
 * handles whose creator has gone apart from the others.
 *
 * A snapshot taken without locks, like ga_shared_stats: state bytes and page descriptors are
 * read atomically, so a report made while others allocate is consistent per block, not as a
 * whole. Nothing is allocated from the shared heap (the report must work on a full one), and
 * everything read from the segment is bounds-checked: a descriptor or state byte that cannot be
 * valid gives GA_ECORRUPT. Output goes through a stack buffer straight to the fd.
 */
#include "shared/shared_internal.h"
#include "os/os.h"
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEAD_LIST 8 /* blocks listed per exited process */

typedef struct {
    int fd;
    size_t n;
    char buf[4096];
} out_t;

static void out_flush(out_t *o)
{
    if (o->fd >= 0) ga__os_write_all(o->fd, o->buf, o->n); /* on an error the rest is dropped */
    o->n = 0;
}

__attribute__((format(printf, 2, 3))) static void out(out_t *o, const char *fmt, ...)
{
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (n <= 0) return;
    size_t len = (size_t)n < sizeof line ? (size_t)n : sizeof line - 1;
    if (o->n + len > sizeof o->buf) out_flush(o);
    memcpy(o->buf + o->n, line, len);
    o->n += len;
}

/* A JSON string (object names are printable ASCII, but may hold quotes). */
static void out_jstr(out_t *o, const char *s)
{
    char tmp[2 * (SHM_OBJNAME_MAX + 1) + 3], *d = tmp;
    *d++ = '"';
    for (size_t i = 0; s[i] && i < SHM_OBJNAME_MAX; i++) {
        if (s[i] == '"' || s[i] == '\\') *d++ = '\\';
        *d++ = (s[i] >= 0x20 && s[i] < 0x7f) ? s[i] : '?';
    }
    *d++ = '"';
    *d = 0;
    out(o, "%s", tmp);
}

typedef struct {
    uint64_t blocks[SHM_SLOTS], bytes[SHM_SLOTS];
} tally_t;

typedef struct {
    shm_att_t *a;
    uint64_t top;
} walk_t;

/* Calls fn(arg, state, offset, size) for every allocated block. 0 or GA_ECORRUPT. */
static int walk(walk_t *w, void (*fn)(void *, unsigned, uint64_t, uint64_t), void *arg)
{
    shm_att_t *a = w->a;
    for (uint64_t p = 0; p < w->top; p++) {
        uint64_t d = atomic_load_explicit(&a->pages[p].desc, memory_order_acquire);
        uint64_t base = a->data_off + p * SHM_PAGE;
        switch (PD_KIND(d)) {
        case PG_FREE:
        case PG_TAIL:
        case PG_HTABLE:
            break;
        case PG_SMALL: {
            unsigned c = PD_CLASS(d);
            if (c >= SHM_NCLASS) return ga__shm_corrupt(a, true, p, "page has a bad size class");
            const _Atomic uint8_t *st = ga__shm_state_bytes(a, p);
            uint32_t bs = ga__shm_class_size[c], hdr = ga__shm_class_hdr(c);
            for (uint32_t i = 0; i < ga__shm_class_count(c); i++) {
                unsigned b = atomic_load_explicit(&st[i], memory_order_relaxed);
                if (ST_KIND(b) == 0xC0u || (b && ST_KIND(b) == 0))
                    return ga__shm_corrupt(a, true, p, "bad block state byte");
                if (ST_KIND(b) == ST_KALLOC) fn(arg, b, base + hdr + (uint64_t)i * bs, bs);
            }
            break;
        }
        case PG_LARGE: {
            uint64_t n = PD_N(d);
            unsigned b = PD_OWNER(d);
            if (n > w->top - p) w->top = ga__shm_top_pages(a); /* the heap may have grown since */
            if (n == 0 || w->top <= p || n > w->top - p || ST_KIND(b) == 0xC0u || ST_KIND(b) == 0)
                return ga__shm_corrupt(a, true, p, "bad large block descriptor");
            if (ST_KIND(b) == ST_KALLOC) fn(arg, b, base, n * SHM_PAGE);
            p += n - 1;
            break;
        }
        default:
            return ga__shm_corrupt(a, true, p, "bad page descriptor");
        }
    }
    return 0;
}

static void tally_fn(void *arg, unsigned st, uint64_t off, uint64_t size)
{
    tally_t *t = arg;
    (void)off;
    t->blocks[ST_SLOT(st)]++;
    t->bytes[ST_SLOT(st)] += size;
}

typedef struct {
    out_t *o;
    unsigned slot;
    uint64_t max, n;
    bool json;
} list_t;

static void list_fn(void *arg, unsigned st, uint64_t off, uint64_t size)
{
    list_t *l = arg;
    if (ST_SLOT(st) != l->slot || l->n >= l->max) return;
    if (l->json)
        out(l->o, "%s{\"offset\":%llu,\"size\":%llu}", l->n ? "," : "", (unsigned long long)off,
            (unsigned long long)size);
    else
        out(l->o, "      offset %llu size %llu\n", (unsigned long long)off,
            (unsigned long long)size);
    l->n++;
}

typedef struct {
    out_t *o;
    bool json;
    long n, max;
} hlist_t;

static void handle_fn(void *arg, ga_handle_t h, uint64_t size, int pid)
{
    hlist_t *l = arg;
    if (l->n++ >= l->max) return;
    if (l->json)
        out(l->o, "%s{\"handle\":\"%#llx\",\"size\":%llu,\"creator_pid\":%d}", l->n > 1 ? "," : "",
            (unsigned long long)h, (unsigned long long)size, pid);
    else
        out(l->o, "  handle %#llx: %llu bytes, created by pid %d\n", (unsigned long long)h,
            (unsigned long long)size, pid);
}

/* The handles whose creator has gone, apart: up to DEAD_LIST of them, then the count. */
static void orphan_section(out_t *o, shm_att_t *a, bool json, bool all)
{
    hlist_t l = {.o = o, .json = json, .max = all ? LONG_MAX : DEAD_LIST};
    uint64_t bytes = 0;
    if (json)
        out(o, ",\"exited_handle_list\":[");
    else
        out(o, "handles of exited processes (kept until ga_shared_reclaim with "
               "GA_RECLAIM_HANDLES):\n");
    long n = ga__shm_orphan_handles(a, handle_fn, &l, &bytes);
    if (json) {
        out(o, "],\"exited_handles\":%ld,\"exited_handle_bytes\":%llu", n,
            (unsigned long long)bytes);
    } else {
        if (n > l.max) out(o, "  ... %ld more\n", n - l.max);
        out(o, "  total: %ld handles, %llu bytes\n", n, (unsigned long long)bytes);
    }
}

/* One process's entry: pid, counts and up to max of its blocks. pid 0 with SHM_SLOT_DEAD: the
 * processes whose slots were reused, together (their pids are no longer known). */
static int proc_entry(out_t *o, walk_t *w, bool json, bool first, int pid, unsigned s,
                      const tally_t *t, uint64_t max)
{
    list_t l = {.o = o, .slot = s, .max = max, .json = json};
    if (json) {
        out(o, "%s{\"pid\":%d,\"blocks\":%llu,\"bytes\":%llu,\"list\":[", first ? "" : ",", pid,
            (unsigned long long)t->blocks[s], (unsigned long long)t->bytes[s]);
    } else if (s == SHM_SLOT_DEAD) {
        out(o, "  processes whose slots were reused: %llu blocks, %llu bytes\n",
            (unsigned long long)t->blocks[s], (unsigned long long)t->bytes[s]);
    } else {
        out(o, "  pid %d: %llu blocks, %llu bytes\n", pid, (unsigned long long)t->blocks[s],
            (unsigned long long)t->bytes[s]);
    }
    int rc = max ? walk(w, list_fn, &l) : 0;
    if (!json && t->blocks[s] > l.n && max)
        out(o, "      ... %llu more\n", (unsigned long long)(t->blocks[s] - l.n));
    if (json) out(o, "]}");
    return rc;
}

static long leak_report_unguarded(ga_heap_t *heap, int fd, unsigned flags)
{
    shm_att_t *a = ga__shm_att(heap);
    if (!a) return GA_EINVAL;
    shm_header_t *h = a->hdr;
    bool json = (flags & GA_LEAK_JSON) != 0, quiet = (flags & GA_LEAK_QUIET) != 0;
    walk_t w = {.a = a, .top = ga__shm_top_pages(a)};

    int alive[SHM_PROC_SLOTS], pid[SHM_PROC_SLOTS];
    for (unsigned s = 0; s < SHM_PROC_SLOTS; s++) {
        alive[s] = ga__shm_slot_alive(a, s);
        pid[s] = atomic_load(&h->slots[s].pid);
    }
    tally_t tl;
    memset(&tl, 0, sizeof tl);
    int rc = walk(&w, tally_fn, &tl);
    if (rc) return ga__set_error(rc);
    /* A slot freed (pid 0) after the walk saw its block counts as exited: its blocks are being
     * reclaimed, they are no live process's. */
    long dead_blocks = (long)tl.blocks[SHM_SLOT_DEAD];
    uint64_t dead_bytes = tl.bytes[SHM_SLOT_DEAD];
    for (unsigned s = 0; s < SHM_PROC_SLOTS; s++)
        if (alive[s] != 1) {
            dead_blocks += (long)tl.blocks[s];
            dead_bytes += tl.bytes[s];
        }
    if (quiet || fd < 0) return dead_blocks;

    out_t *o = malloc(sizeof *o);
    if (!o) return ga__set_error(GA_ENOMEM);
    o->fd = fd;
    o->n = 0;
    uint64_t live_max = (flags & GA_LEAK_ALL) ? UINT64_MAX : 0;
    if (json) {
        out(o, "{\"name\":");
        out_jstr(o, a->name);
        out(o, ",\"live\":[");
    } else {
        out(o, "shared heap %s: blocks by owner\nlive processes:\n", a->name);
    }
    bool first = true;
    unsigned ndead = 0;
    for (unsigned s = 0; s < SHM_PROC_SLOTS && rc == 0; s++) {
        if (alive[s] != 1 || !tl.blocks[s]) continue;
        rc = proc_entry(o, &w, json, first, pid[s], s, &tl, live_max);
        first = false;
    }
    if (!json && first) out(o, "  (none holding blocks)\n");
    if (json)
        out(o, "],\"exited\":[");
    else
        out(o, "exited processes (blocks left until ga_shared_reclaim_dead):\n");
    first = true;
    for (unsigned s = 0; s < SHM_PROC_SLOTS && rc == 0; s++) {
        if (alive[s] == 1 || !tl.blocks[s]) continue;
        ndead++;
        rc = proc_entry(o, &w, json, first, pid[s], s, &tl, DEAD_LIST);
        first = false;
    }
    if (rc == 0 && tl.blocks[SHM_SLOT_DEAD]) {
        rc = proc_entry(o, &w, json, first, 0, SHM_SLOT_DEAD, &tl, DEAD_LIST);
        first = false;
    }
    if (!json && first) out(o, "  (none)\n");
    long nh = ga_shared_handle_list(heap, NULL, 0);
    ga_shared_object_info_t *objs = calloc(SHM_NAMED_MAX, sizeof *objs);
    long nobj = objs ? ga_shared_object_list(heap, objs, SHM_NAMED_MAX) : GA_ENOMEM;
    if (nobj > SHM_NAMED_MAX) nobj = SHM_NAMED_MAX;
    if (json) {
        out(o,
            "],\"exited_blocks\":%ld,\"exited_bytes\":%llu,\"heap_blocks\":%llu,\"heap_bytes\":%"
            "llu,"
            "\"detached_blocks\":%llu,\"detached_bytes\":%llu,\"handles\":%ld,\"objects\":[",
            dead_blocks, (unsigned long long)dead_bytes,
            (unsigned long long)tl.blocks[SHM_SLOT_HEAP],
            (unsigned long long)tl.bytes[SHM_SLOT_HEAP],
            (unsigned long long)tl.blocks[SHM_SLOT_ORPHAN],
            (unsigned long long)tl.bytes[SHM_SLOT_ORPHAN], nh > 0 ? nh : 0);
        for (long i = 0; i < nobj; i++) {
            out(o, "%s{\"name\":", i ? "," : "");
            out_jstr(o, objs[i].name);
            out(o, ",\"size\":%zu,\"offset\":%llu}", objs[i].size,
                (unsigned long long)objs[i].offset);
        }
        out(o, "]");
        orphan_section(o, a, true, (flags & GA_LEAK_ALL) != 0);
        out(o, "}\n");
    } else {
        out(o, "  total: %ld blocks, %llu bytes from %u processes\n", dead_blocks,
            (unsigned long long)dead_bytes, ndead);
        out(o, "owned by the heap: %llu blocks, %llu bytes (%ld handles, %ld named objects)\n",
            (unsigned long long)tl.blocks[SHM_SLOT_HEAP],
            (unsigned long long)tl.bytes[SHM_SLOT_HEAP], nh > 0 ? nh : 0, nobj > 0 ? nobj : 0);
        for (long i = 0; i < nobj; i++)
            out(o, "  object %s: %zu bytes at offset %llu\n", objs[i].name, objs[i].size,
                (unsigned long long)objs[i].offset);
        out(o, "left by detached processes: %llu blocks, %llu bytes\n",
            (unsigned long long)tl.blocks[SHM_SLOT_ORPHAN],
            (unsigned long long)tl.bytes[SHM_SLOT_ORPHAN]);
        orphan_section(o, a, false, (flags & GA_LEAK_ALL) != 0);
    }
    out_flush(o);
    free(o);
    free(objs);
    if (rc == 0 && (nh < 0 || nobj < 0)) rc = nh < 0 ? (int)nh : (int)nobj;
    return rc ? ga__set_error(rc) : dead_blocks;
}

/* Guarded: a file truncated underneath gives GA_ECORRUPT, not SIGBUS (shared_internal.h). */
long ga_shared_leak_report(ga_heap_t *heap, int fd, unsigned flags)
{
    shm_att_t *a = ga__shm_att(heap);
    if (!a) return ga_last_error() == GA_ECORRUPT ? GA_ECORRUPT : GA_EINVAL;
    SHM_GUARD_ENTER();
    long n = leak_report_unguarded(heap, fd, flags);
    return SHM_GUARD_LEAVE(a) ? ga__set_error(GA_ECORRUPT) : n;
}
