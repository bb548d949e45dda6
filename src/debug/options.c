/* SPDX-License-Identifier: MIT */
/*
 * Debug mode's start: the options (GLOBALALLOC_DEBUG at load time, or ga_debug_enable), parsed
 * in place into ga__dbg_opts, and the switch ga__debug_enabled.
 *
 * Invariants: ga__debug_enabled only goes false -> true, after ga__dbg_secret is set (non-zero)
 * and the fork handlers are registered; the options change only while debug mode starts (a
 * later ga_debug_enable replaces them whole). Nothing here allocates from the heap.
 */
#include "debug/debug_internal.h"
#include "os/os.h"
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

bool ga__debug_enabled;
uint64_t ga__dbg_secret;
ga_dbg_opts_t ga__dbg_opts = {
    .stacks = 16,
    .guard = 16,
    .quarantine = (size_t)1 << 20, /* per thread; small enough to stay mostly in cache */
    .fill = true,
    .free_stacks = true,
    .symbolize = true,
    .leaks = 1,
    .exitcode = 0,
    .check = 0,
    .report_fd = 2,
};

int ga__dbg_report_fd(void)
{
    int fd = ga__dbg_opts.report_fd;
    return fd == 2 ? ga__stderr_fd() : fd;
}

/* ---- options ------------------------------------------------------------------------------ */

static bool parse_size(const char *s, size_t len, size_t *out)
{
    size_t v = 0, i = 0;
    if (len == 0) return false;
    for (; i < len && s[i] >= '0' && s[i] <= '9'; i++) {
        if (v > SIZE_MAX / 10) return false;
        v = v * 10 + (size_t)(s[i] - '0');
    }
    if (i == 0) return false;
    if (i < len) {
        unsigned shift = s[i] == 'k' || s[i] == 'K'   ? 10
                         : s[i] == 'm' || s[i] == 'M' ? 20
                         : s[i] == 'g' || s[i] == 'G' ? 30
                                                      : 0;
        if (shift == 0 || i + 1 != len || v > (SIZE_MAX >> shift)) return false;
        v <<= shift;
    }
    *out = v;
    return true;
}

static bool word_is(const char *s, size_t len, const char *w)
{
    return strlen(w) == len && memcmp(s, w, len) == 0;
}

/* One "name" or "name=value" item into *o: NULL, or why it is refused. */
static const char *parse_item(ga_dbg_opts_t *o, const char *s, size_t len, int *report_fd)
{
    const char *eq = memchr(s, '=', len);
    size_t nlen = eq ? (size_t)(eq - s) : len;
    const char *v = eq ? eq + 1 : "1";
    size_t vlen = eq ? len - nlen - 1 : 1;
    size_t n = 0;
    bool is_num = parse_size(v, vlen, &n);
    if (word_is(s, nlen, "1") || word_is(s, nlen, "on") || word_is(s, nlen, "all"))
        return eq == NULL ? NULL : "takes no value";
    if (word_is(s, nlen, "leaks")) {
        if (word_is(v, vlen, "all"))
            o->leaks = 2;
        else if (is_num && n <= 1)
            o->leaks = (int)n;
        else
            return "expected 0, 1 or all";
        return NULL;
    }
    if (word_is(s, nlen, "report")) {
        if (word_is(v, vlen, "stderr")) {
            *report_fd = 2;
            return NULL;
        }
        char path[512];
        if (!eq || vlen == 0 || vlen >= sizeof path) return "expected a file name or stderr";
        memcpy(path, v, vlen);
        path[vlen] = 0;
        int fd = ga__os_open_append(path);
        if (fd < 0) return "cannot open the file";
        *report_fd = fd;
        return NULL;
    }
    static const char *const numeric[] = {"stacks", "guard", "quarantine", "fill", "freestacks",
                                          "symbolize", "exitcode", "check"};
    size_t k = 0;
    while (k < sizeof numeric / sizeof numeric[0] && !word_is(s, nlen, numeric[k]))
        k++;
    if (k == sizeof numeric / sizeof numeric[0]) return "unknown option";
    if (!is_num) return "expected a number (k, m, g suffixes allowed)";
    switch (k) {
    case 0: o->stacks = n > 64 ? 64 : (unsigned)n; break;
    case 1: o->guard = n > 1024 ? 1024 : (unsigned)n; break;
    case 2: o->quarantine = n; break;
    case 3: o->fill = n != 0; break;
    case 4: o->free_stacks = n != 0; break;
    case 5: o->symbolize = n != 0; break;
    case 6:
        if (n > 255) return "an exit status is 0..255";
        o->exitcode = (int)n;
        break;
    default: o->check = n > UINT32_MAX ? UINT32_MAX : (unsigned)n; break;
    }
    return NULL;
}

/* Parses a comma list into *out (starting from the defaults). "0"/"off"/"" mean off. A bad item
 * leaves *bad, *bad_len and *why saying which and why. */
static int parse_options(const char *s, ga_dbg_opts_t *out, bool *on, const char **bad,
                         size_t *bad_len, const char **why)
{
    ga_dbg_opts_t o = ga__dbg_opts;
    int fd = o.report_fd;
    *on = !(s[0] == 0 || strcmp(s, "0") == 0 || strcmp(s, "off") == 0);
    if (!*on) return 0;
    while (*s) {
        const char *end = strchr(s, ',');
        size_t len = end ? (size_t)(end - s) : strlen(s);
        if (len > 0 && (*why = parse_item(&o, s, len, &fd)) != NULL) {
            if (fd != o.report_fd && fd != 2) ga__os_file_close(fd);
            *bad = s;
            *bad_len = len;
            return GA_EINVAL;
        }
        s += len + (end != NULL);
    }
    o.report_fd = fd;
    *out = o;
    return 0;
}

static int start(const char *options, bool from_env)
{
    ga_dbg_opts_t o;
    bool on;
    const char *bad = "", *why = "";
    size_t bad_len = 0;
    int rc = parse_options(options, &o, &on, &bad, &bad_len, &why);
    if (rc != 0) {
        if (from_env) /* no handler can be installed yet: straight to stderr */
            ga__dbg_printf(2, "globalalloc: GLOBALALLOC_DEBUG: bad option \"%.*s\": %s (debug "
                              "mode stays off)\n", (int)(bad_len > 200 ? 200 : bad_len), bad, why);
        else
            ga__report(GA_EINVAL, 0, false, "ga_debug_enable: bad option \"%.*s\": %s",
                       (int)(bad_len > 200 ? 200 : bad_len), bad, why);
        return rc;
    }
    if (!on) return ga__debug_enabled ? GA_EPERM : 0;
    if (!ga__debug_enabled) {
        while (ga__dbg_secret == 0)
            ga__dbg_secret = ga__os_random();
        ga__stderr_keep();
    }
    GA_ASSERT_INTERNAL(ga__dbg_secret != 0); /* every header is keyed with it */
    ga__dbg_opts = o;
    ga__world_on = o.check != 0; /* check=N needs the world lock (engine/world.c) */
    ga__debug_enabled = true;
    return 0;
}

static pthread_once_t env_once = PTHREAD_ONCE_INIT;
static void env_init(void)
{
    const char *s = getenv("GLOBALALLOC_DEBUG");
    if (s != NULL) (void)start(s, true);
}

void ga__debug_init(void)
{
    pthread_once(&env_once, env_init);
}

int ga_debug_check_options(const char *options)
{
    ga_dbg_opts_t o;
    bool on;
    const char *bad = "", *why = "";
    size_t bad_len = 0;
    int rc = parse_options(options ? options : "1", &o, &on, &bad, &bad_len, &why);
    if (rc != 0) {
        ga__report(GA_EINVAL, 0, false, "debug options: bad option \"%.*s\": %s",
                   (int)(bad_len > 200 ? 200 : bad_len), bad, why);
        return rc;
    }
    if (on && o.report_fd != ga__dbg_opts.report_fd && o.report_fd != 2)
        ga__os_file_close(o.report_fd); /* report=FILE was opened to check it */
    return 0;
}

int ga_debug_enable(const char *options)
{
    ga__debug_init();
    return start(options ? options : "1", false);
}

int ga_debug_enabled(void)
{
    return ga__debug_enabled;
}
