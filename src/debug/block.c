/* SPDX-License-Identifier: MIT */
/*
 * Debug blocks checked and reported: guard bytes and the freed fill verified (ga__dbg_verify),
 * a block's description with its stacks (ga__dbg_block_report, ga__debug_misuse), and the
 * report writer (ga__dbg_printf). The block layout and the inline checks of the hot paths are in
 * debug_internal.h.
 *
 * Nothing here allocates from the heap: reports are formatted into stack buffers and written
 * with write(2).
 */
#include "debug/debug_internal.h"
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

GA_TLS uint32_t ga__dbg_tl_tid;

/* ---- output --------------------------------------------------------------------------------- */

void ga__dbg_printf(int fd, const char *fmt, ...)
{
    if (fd < 0) return;
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n > 0) (void)ga__os_write_all(fd, buf, (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1);
}

/* ---- block checks ------------------------------------------------------------------------- */

/* First byte in [p, p+n) that is not c, or NULL (reports only: locates what ga__dbg_all_are
 * found). */
static const uint8_t *first_not(const uint8_t *p, size_t n, uint8_t c)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != c) return p + i;
    return NULL;
}

bool ga__dbg_freed_fill_ok(ga_dbg_hdr_t *h)
{
    const uint8_t *user = ga__dbg_user_of(h);
    size_t keep = ga__dbg_kept_words(h);
    if (GA_UNLIKELY(keep) && !ga__dbg_all_are(user, 8, GA_FILL_FREED)) return false;
    return ga__dbg_all_are(user + keep, h->size - keep, GA_FILL_FREED);
}

static const uint8_t *freed_fill_broken(ga_dbg_hdr_t *h)
{
    uint8_t *user = ga__dbg_user_of(h);
    size_t keep = ga__dbg_kept_words(h);
    const uint8_t *bad = keep ? first_not(user, 8, GA_FILL_FREED) : NULL;
    return bad ? bad : first_not(user + keep, h->size - keep, GA_FILL_FREED);
}

int ga__dbg_verify(ga_dbg_hdr_t *h, bool freed, unsigned check_flags, const char *when, void *ret)
{
    if (GA_LIKELY(ga__dbg_guards_ok(h)) &&
        (!freed || !ga__dbg_opts.fill || ga__dbg_freed_fill_ok(h)))
        return 0;
    uint8_t *user = ga__dbg_user_of(h);
    const uint8_t *bad = first_not(h->front, GA_DBG_FRONT, GA_FILL_GUARD);
    char what[160];
    int err = GA_EOVERRUN;
    if (bad) {
        snprintf(what, sizeof what, "write before the start of a block (byte %d) found at %s",
                 (int)(bad - user), when);
    } else if ((bad = first_not(user + h->size, h->tail, GA_FILL_GUARD)) != NULL) {
        snprintf(what, sizeof what,
                 "write past the end of a block (byte %zu, size %zu) found at %s",
                 (size_t)(bad - user), (size_t)h->size, when);
    } else if (freed && ga__dbg_opts.fill && (bad = freed_fill_broken(h)) != NULL) {
        err = GA_ECORRUPT;
        snprintf(what, sizeof what, "use after free: freed block written at byte %zu, found at %s",
                 (size_t)(bad - user), when);
    } else {
        return 0;
    }
    if (!(check_flags & GA_CHECK_QUIET))
        ga__dbg_block_report(err, h, user, (check_flags & GA_DBG_FATAL) != 0, what, ret);
    return err;
}

/* ---- reports -------------------------------------------------------------------------------- */

static const char *kind_name(const ga_dbg_hdr_t *h)
{
    return h->kind == GA_DBG_RAW ? "raw/GlobalAlloc block" : "block";
}

void ga__dbg_block_report(int err, ga_dbg_hdr_t *h, const void *p, bool fatal, const char *what,
                          void *ret)
{
    int fd = ga__dbg_report_fd();
    uint32_t now = ga__stack_capture(ret ? ret : __builtin_return_address(0));
    ga__dbg_printf(fd, "globalalloc: ==== %s ====\n", what);
    if (h != NULL) {
        ga__dbg_printf(fd,
                       "globalalloc: %s %p of %zu bytes, allocation #%llu, thread %u\n"
                       "  allocated at:\n",
                       kind_name(h), (void *)ga__dbg_user_of(h), (size_t)h->size,
                       (unsigned long long)h->serial, h->tid);
        ga__stack_print(fd, h->alloc_stack, "    ");
        if (h->free_stack) {
            ga__dbg_printf(fd, "  freed at:\n");
            ga__stack_print(fd, h->free_stack, "    ");
        }
    }
    ga__dbg_printf(fd, "  bad call (pointer %p, thread %u) at:\n", p, ga__dbg_thread_id());
    ga__stack_print(fd, now, "    ");
    if (h != NULL)
        ga__report(err, (uintptr_t)p, fatal, "%s: %s %p (%zu bytes, allocation #%llu, thread %u)",
                   what, kind_name(h), (void *)ga__dbg_user_of(h), (size_t)h->size,
                   (unsigned long long)h->serial, h->tid);
    else
        ga__report(err, (uintptr_t)p, fatal, "%s: pointer %p", what, p);
}

void ga__debug_misuse(int err, const void *value, bool fatal, const char *what)
{
    ga_dbg_hdr_t *h = ga__debug_enabled ? ga__dbg_header(value) : NULL;
    if (h == NULL && ga__debug_enabled) h = ga__dbg_find(value);
    ga__dbg_block_report(err, h, value, fatal, what, __builtin_return_address(0));
}
