/* SPDX-License-Identifier: MIT */
/*
 * globalalloc: the command-line tool for shared heaps (ls, stat, check, create, reclaim, owners,
 * rm, map: cli_map.c).
 * `ls` only reads headers (ga_shared_peek: no attach, no side effect); stat/check/reclaim attach
 * the heap like any other process for the duration of the command; rm unlinks the name.
 * Output is plain text, or JSON with --json: one object per command on stdout, failures too,
 * each with "schema": GA_JSON_SCHEMA and one shape per kind of object (docs/json.md).
 * Exit status: 0 success, 1 the operation failed or found a problem, 2 usage error.
 */
#include <globalalloc.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define PREFIX "ga."
/* Sizes of the shared heap's tables, as the public structs and API give them. */
#define MAX_PROCS   (int)(sizeof((ga_shared_stats_t *)0)->procs / sizeof(ga_shared_proc_t))
#define MAX_OBJECTS 1024 /* named objects per heap (ga_shared_object) */

/* --help prints the manual page (docs/man/globalalloc.1.md), made into a C string by the build. */
#include "globalalloc_help.h"
#include "cli.h"

/* The version of the --json shapes (docs/json.md); a change of a key's meaning bumps it. */
#define GA_JSON_SCHEMA 1

int json;
const char *command = ""; /* the command running, for messages and "command" */
static int usage(const char *msg);

/* ---- output helpers --------------------------------------------------------------------- */

void json_str(const char *s)
{
    putchar('"');
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            printf("\\%c", c);
        else if (c < 0x20 || c >= 0x7f)
            printf("\\u%04x", c);
        else
            putchar(c);
    }
    putchar('"');
}

/* Opens a JSON output: every one starts with the schema version and the command (docs/json.md).
 * name is the heap's, or NULL for a command without one. */
void json_begin(const char *name, int ok)
{
    printf("{\"schema\":%d,\"command\":", GA_JSON_SCHEMA);
    json_str(command);
    if (name) {
        printf(",\"name\":");
        json_str(name);
    }
    printf(",\"ok\":%s", ok ? "true" : "false");
}

static const char *human(size_t n, char *buf, size_t cap)
{
    const char *u[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double v = (double)n;
    int i = 0;
    while (v >= 1024 && i < 4) {
        v /= 1024;
        i++;
    }
    snprintf(buf, cap, i ? "%.1f %s" : "%.0f %s", v, u[i]);
    return buf;
}

/* The words for a failure, the same in every command (and in the STATE column of ls). */
static const char *heap_words(int err)
{
    switch (err) {
    case GA_ENOENT: return "no such heap";
    case GA_EEXIST: return "a heap of that name exists";
    case GA_ENAME: return "invalid name (1..200 printable characters, no '/', no '..', no spaces)";
    case GA_EPERM: return "permission denied";
    case GA_EFULL: return "heap is full, or every process slot is taken";
    default: return ga_strerror(err);
    }
}

/* Reports a failure of the command on heap name (NULL: none): text on stderr, or the JSON
 * failure object on stdout. detail (may be NULL) follows the words. Returns exit status 1. */
int fail_words(const char *name, int err, const char *words, const char *detail)
{
    char msg[768];
    snprintf(msg, sizeof msg, "%s%s%s", words, detail ? ": " : "", detail ? detail : "");
    if (json) {
        json_begin(name ? name : "", 0);
        printf(",\"error\":\"%s\",\"message\":", ga_err_name(err));
        json_str(msg);
        printf("}\n");
    } else {
        fprintf(stderr, "globalalloc: %s%s%s: %s\n", command, name ? " " : "", name ? name : "",
                msg);
    }
    return 1;
}

int fail(const char *name, int err, const char *detail)
{
    return fail_words(name, err, heap_words(err), detail);
}

/* The first problem report of a check, kept for the output. */
char last_report[512];
int keep_report(int err, const char *msg, uintptr_t ptr, void *arg)
{
    (void)err, (void)ptr, (void)arg;
    if (!last_report[0]) snprintf(last_report, sizeof last_report, "%s", msg);
    return 1;
}

/* Attaches name, or reports why not. A file that is there but is no heap of this format makes
 * ga_shared_open say GA_ENOENT (nothing it could attach); the header says what it is. */
ga_heap_t *attach(const char *name)
{
    ga_heap_t *h = ga_shared_open(name, 0, 0, NULL);
    if (h) return h;
    int err = ga_last_error();
    ga_shared_info_t info;
    int peek = err == GA_ENOENT ? ga_shared_peek(name, &info) : 0;
    fail(name, peek && peek != GA_ENOENT ? peek : err, last_report[0] ? last_report : NULL);
    return NULL;
}

/* ---- commands --------------------------------------------------------------------------- */

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void ls_json_entry(const char *name, int rc, const ga_shared_info_t *info)
{
    printf("{\"name\":");
    json_str(name);
    if (rc == 0)
        printf(",\"ok\":true,\"heap_id\":%u,\"format\":%u,\"mode\":\"%04o\",\"creator_pid\":%d,"
               "\"created\":%llu,\"reserved\":%zu,\"committed\":%zu,\"attached\":%zu,\"dead\":%zu}",
               info->heap_id, info->version, info->mode, info->creator_pid,
               (unsigned long long)info->created_time, info->reserved, info->committed,
               info->attached, info->dead);
    else
        printf(",\"ok\":false,\"error\":\"%s\",\"message\":\"%s\"}", ga_err_name(rc),
               heap_words(rc));
}

static int cmd_ls(void)
{
    const char *dir = getenv("GLOBALALLOC_SHM_DIR"); /* where the library puts heap files */
    if (dir == NULL || *dir == 0) dir = "/dev/shm";
    DIR *d = opendir(dir);
    if (!d) return fail_words(dir, GA_ENOENT, "cannot read the directory", strerror(errno));
    char *names[4096];
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL && n < 4096)
        if (strncmp(e->d_name, PREFIX, strlen(PREFIX)) == 0 && e->d_name[strlen(PREFIX)])
            names[n++] = strdup(e->d_name + strlen(PREFIX));
    closedir(d);
    qsort(names, n, sizeof names[0], cmp_str);
    if (json) {
        json_begin(NULL, 1);
        printf(",\"heaps\":[");
    } else {
        printf("%-32s %12s %12s %8s %5s %5s  %s\n", "NAME", "RESERVED", "COMMITTED", "ATTACHED",
               "DEAD", "MODE", "STATE");
    }
    for (size_t i = 0; i < n; i++) {
        ga_shared_info_t info;
        int rc = ga_shared_peek(names[i], &info);
        if (json) {
            if (i) putchar(',');
            ls_json_entry(names[i], rc, &info);
        } else if (rc == 0) {
            char b1[32], b2[32];
            printf("%-32s %12s %12s %8zu %5zu  %04o  ok\n", names[i],
                   human(info.reserved, b1, sizeof b1), human(info.committed, b2, sizeof b2),
                   info.attached, info.dead, info.mode);
        } else {
            printf("%-32s %12s %12s %8s %5s %5s  %s\n", names[i], "-", "-", "-", "-", "-",
                   heap_words(rc));
        }
        free(names[i]);
    }
    if (json) printf("]}\n");
    return 0;
}

static void stat_text(const char *name, const ga_shared_stats_t *s, ga_shared_object_info_t *objs,
                      long nobj)
{
    char b[32];
    printf("heap         %s (id %u)\n", name, s->heap_id);
    printf("reserved     %zu (%s)\n", s->reserved, human(s->reserved, b, sizeof b));
    printf("committed    %zu (%s)\n", s->committed, human(s->committed, b, sizeof b));
    printf("in use       %zu bytes in %zu blocks (%s)\n", s->bytes_in_use, s->blocks_in_use,
           human(s->bytes_in_use, b, sizeof b));
    printf("cached       %zu bytes (free, in processes' caches)\n", s->bytes_cached);
    printf("pages        %zu committed, %zu free (64 KiB each)\n", s->pages_total, s->pages_free);
    printf("owners       heap %zu blocks, detached processes %zu, dead processes %zu (%zu bytes)\n",
           s->heap_blocks, s->orphan_blocks, s->dead_blocks, s->dead_bytes);
    printf("handles      %zu\n", s->handles_in_use);
    printf("objects      %zu\n", s->objects);
    printf("repairs      %zu locks taken over from dead processes\n", s->repairs);
    printf("processes    %zu attached, %zu dead\n", s->attached, s->dead);
    for (int i = 0; i < MAX_PROCS; i++)
        if (s->procs[i].pid)
            printf("  slot %-3d pid %-8d %-6s %zu blocks, %zu bytes\n", i, s->procs[i].pid,
                   s->procs[i].alive ? "alive" : "DEAD", s->procs[i].blocks, s->procs[i].bytes);
    printf("size classes (block size: blocks in use / pages)\n");
    for (size_t c = 0; c < s->class_count; c++)
        if (s->classes[c].pages)
            printf("  %6zu: %zu / %zu\n", s->classes[c].block_size, s->classes[c].blocks_used,
                   s->classes[c].pages);
    if (nobj > 0) printf("named objects (name: size @ offset)\n");
    for (long i = 0; i < nobj && i < MAX_OBJECTS; i++)
        printf("  %s: %zu @ %llu\n", objs[i].name, objs[i].size,
               (unsigned long long)objs[i].offset);
}

static void stat_json(const char *name, const ga_shared_stats_t *s, ga_shared_object_info_t *objs,
                      long nobj)
{
    json_begin(name, 1);
    printf(",\"heap_id\":%u,\"reserved\":%zu,\"committed\":%zu,\"bytes_in_use\":%zu,"
           "\"blocks_in_use\":%zu,\"bytes_cached\":%zu,\"pages_total\":%zu,\"pages_free\":%zu,"
           "\"heap_blocks\":%zu,\"detached_blocks\":%zu,\"dead_blocks\":%zu,\"dead_bytes\":%zu,"
           "\"handles\":%zu,\"repairs\":%zu,\"attached\":%zu,\"dead\":%zu",
           s->heap_id, s->reserved, s->committed, s->bytes_in_use, s->blocks_in_use,
           s->bytes_cached, s->pages_total, s->pages_free, s->heap_blocks, s->orphan_blocks,
           s->dead_blocks, s->dead_bytes, s->handles_in_use, s->repairs, s->attached, s->dead);
    printf(",\"processes\":[");
    for (int i = 0, k = 0; i < MAX_PROCS; i++)
        if (s->procs[i].pid)
            printf("%s{\"pid\":%d,\"alive\":%s,\"blocks\":%zu,\"bytes\":%zu,\"list\":[]}",
                   k++ ? "," : "", s->procs[i].pid, s->procs[i].alive ? "true" : "false",
                   s->procs[i].blocks, s->procs[i].bytes);
    printf("],\"classes\":[");
    for (size_t c = 0, k = 0; c < s->class_count; c++)
        if (s->classes[c].pages)
            printf("%s{\"block_size\":%zu,\"blocks_used\":%zu,\"pages\":%zu}", k++ ? "," : "",
                   s->classes[c].block_size, s->classes[c].blocks_used, s->classes[c].pages);
    printf("],\"objects\":[");
    for (long i = 0; i < nobj && i < MAX_OBJECTS; i++) {
        printf("%s{\"name\":", i ? "," : "");
        json_str(objs[i].name);
        printf(",\"size\":%zu,\"offset\":%llu}", objs[i].size, (unsigned long long)objs[i].offset);
    }
    printf("]");
}

static int cmd_stat(const char *name)
{
    ga_heap_t *h = attach(name);
    if (!h) return 1;
    static ga_shared_stats_t s;
    static ga_shared_object_info_t objs[MAX_OBJECTS];
    int rc = ga_shared_stats(h, &s);
    long nobj = rc ? 0 : ga_shared_object_list(h, objs, MAX_OBJECTS);
    if (rc == 0) {
        /* This command's own attachment is not the user's business. */
        s.attached = s.attached ? s.attached - 1 : 0;
        for (int i = 0; i < MAX_PROCS; i++)
            if (s.procs[i].pid == (int)getpid()) s.procs[i].pid = 0;
        if (json)
            stat_json(name, &s, objs, nobj);
        else
            stat_text(name, &s, objs, nobj);
        rc = cli_maps(h, objs, nobj, 0);
        if (json) printf("}\n");
    }
    ga_shared_close(h);
    return rc ? fail(name, rc, "cannot read the statistics") : 0;
}

static int cmd_check(const char *name)
{
    ga_set_error_handler(keep_report, NULL);
    ga_heap_t *h = attach(name);
    if (!h) return 1;
    int rc = ga_shared_check(h, 0);
    static ga_shared_object_info_t objs[MAX_OBJECTS];
    long nobj = rc ? 0 : ga_shared_object_list(h, objs, MAX_OBJECTS);
    if (rc) {
        ga_shared_close(h);
        return fail(name, rc, last_report[0] ? last_report : NULL);
    }
    if (json)
        json_begin(name, 1);
    else
        printf("%s: ok\n", name);
    rc = cli_maps(h, objs, nobj, 1); /* each map checked again, with its counts */
    if (json) printf("}\n");
    ga_shared_close(h);
    return rc;
}

static int cmd_reclaim(const char *name)
{
    ga_heap_t *h = attach(name);
    if (!h) return 1;
    long n = ga_shared_reclaim_dead(h);
    ga_shared_close(h);
    if (n < 0) return fail(name, (int)n, NULL);
    if (json) {
        json_begin(name, 1);
        printf(",\"blocks_freed\":%ld}\n", n);
    } else {
        printf("%s: %ld blocks freed\n", name, n);
    }
    return 0;
}

/* ---- owners --json: the library's report in this tool's schema --------------------------- */
/* ga_shared_leak_report(GA_LEAK_JSON) writes the library's own object; this tool reads it back
 * (objects, arrays, strings, integers: a reader of ~50 lines, no tree) and writes docs/json.md's
 * owners shape: live and exited processes in one "processes" array with "alive", the same key
 * names as stat. */

typedef struct {
    const char *p, *end;
} span_t;

static const char *skip_ws(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\n' || *p == '\t' || *p == '\r'))
        p++;
    return p;
}

/* The end of the JSON value starting at p (after blanks), or NULL if it is not one. */
static const char *skip_value(const char *p, const char *end)
{
    p = skip_ws(p, end);
    if (p >= end) return NULL;
    if (*p == '"') {
        for (p++; p < end && *p != '"'; p++)
            if (*p == '\\') p++;
        return p < end ? p + 1 : NULL;
    }
    if (*p == '{' || *p == '[') {
        char close = *p == '{' ? '}' : ']';
        p = skip_ws(p + 1, end);
        if (p < end && *p == close) return p + 1;
        for (;;) {
            if (close == '}') {
                p = skip_value(p, end); /* the key */
                p = p ? skip_ws(p, end) : NULL;
                if (!p || p >= end || *p != ':') return NULL;
                p++;
            }
            p = skip_value(p, end);
            p = p ? skip_ws(p, end) : NULL;
            if (!p || p >= end) return NULL;
            if (*p == close) return p + 1;
            if (*p++ != ',') return NULL;
        }
    }
    const char *start = p;
    while (p < end && (strchr("-+.eE", *p) || (*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'z')))
        p++;
    return p > start ? p : NULL;
}

/* Steps through the members of object or elements of array *it (a span that starts at its '{'
 * or '[' and is advanced). Sets *key (objects only) and *val; 0 at the end or on bad input. */
static int next_item(span_t *it, span_t *key, span_t *val)
{
    const char *p = skip_ws(it->p, it->end);
    if (p >= it->end) return 0;
    if (*p == '{' || *p == '[' || *p == ',') p = skip_ws(p + 1, it->end);
    if (p >= it->end || *p == '}' || *p == ']') return 0;
    if (key) {
        key->p = p;
        key->end = skip_value(p, it->end);
        p = key->end ? skip_ws(key->end, it->end) : NULL;
        if (!p || p >= it->end || *p != ':') return 0;
        p++;
    }
    val->p = skip_ws(p, it->end);
    val->end = skip_value(val->p, it->end);
    if (!val->end) return 0;
    it->p = val->end;
    return 1;
}

/* The value of member name of object obj; 0 if there is none. */
static int member(span_t obj, const char *name, span_t *val)
{
    span_t key;
    size_t n = strlen(name);
    while (next_item(&obj, &key, val))
        if ((size_t)(key.end - key.p) == n + 2 && memcmp(key.p + 1, name, n) == 0) return 1;
    return 0;
}

static void put_span(span_t s)
{
    fwrite(s.p, 1, (size_t)(s.end - s.p), stdout);
}

/* Writes the processes of array procs with "alive" set; returns 0 if an entry is bad. */
static int owners_procs(span_t procs, int alive, int *first)
{
    span_t proc, pid, blocks, bytes, list;
    while (next_item(&procs, NULL, &proc)) {
        if (!member(proc, "pid", &pid) || !member(proc, "blocks", &blocks) ||
            !member(proc, "bytes", &bytes) || !member(proc, "list", &list))
            return 0;
        printf("%s{\"pid\":", *first ? "" : ",");
        put_span(pid);
        printf(",\"alive\":%s,\"blocks\":", alive ? "true" : "false");
        put_span(blocks);
        printf(",\"bytes\":");
        put_span(bytes);
        printf(",\"list\":");
        put_span(list);
        putchar('}');
        *first = 0;
    }
    return 1;
}

/* The library's report in r (the whole object) as docs/json.md's owners object. */
static int owners_json(const char *name, span_t r)
{
    static const char *const keys[][2] = {
        {"heap_blocks", "heap_blocks"},         {"heap_bytes", "heap_bytes"},
        {"detached_blocks", "detached_blocks"}, {"detached_bytes", "detached_bytes"},
        {"exited_blocks", "dead_blocks"},       {"exited_bytes", "dead_bytes"},
        {"handles", "handles"},                 {"objects", "objects"}};
    span_t live, exited, v[sizeof keys / sizeof keys[0]];
    int good = skip_value(r.p, r.end) != NULL && member(r, "live", &live) &&
               member(r, "exited", &exited);
    for (size_t i = 0; good && i < sizeof keys / sizeof keys[0]; i++)
        good = member(r, keys[i][0], &v[i]);
    if (!good) return fail_words(name, GA_EFORMAT, "cannot read the library's report", NULL);
    json_begin(name, 1);
    printf(",\"processes\":[");
    int first = 1;
    owners_procs(live, 1, &first);
    owners_procs(exited, 0, &first);
    putchar(']');
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        printf(",\"%s\":", keys[i][1]);
        put_span(v[i]);
    }
    printf("}\n");
    return 0;
}

/* The whole content of file f (NUL-terminated; *len without it), or NULL. */
static char *read_all(FILE *f, size_t *len)
{
    if (fseek(f, 0, SEEK_END) != 0) return NULL;
    long n = ftell(f);
    char *buf = n >= 0 ? malloc((size_t)n + 1) : NULL;
    rewind(f);
    if (!buf || fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        return NULL;
    }
    buf[n] = 0;
    *len = (size_t)n;
    return buf;
}

static int cmd_owners(const char *name, int all)
{
    ga_heap_t *h = attach(name);
    if (!h) return 1;
    fflush(stdout);
    /* The report goes to a file first: a failure half-way then prints no partial output. */
    FILE *tmp = tmpfile();
    if (!tmp) {
        ga_shared_close(h);
        return fail_words(name, GA_ENOMEM, "cannot make a temporary file", strerror(errno));
    }
    unsigned flags = (all ? GA_LEAK_ALL : 0) | (json ? GA_LEAK_JSON : 0);
    long n = ga_shared_leak_report(h, fileno(tmp), flags);
    ga_shared_close(h);
    size_t len = 0;
    char *report = n < 0 ? NULL : read_all(tmp, &len);
    fclose(tmp);
    int rc = 0;
    if (n < 0)
        rc = fail(name, (int)n, "cannot read the heap");
    else if (!report)
        rc = fail_words(name, GA_ENOMEM, "cannot read the report back", NULL);
    else if (json)
        rc = owners_json(name, (span_t){report, report + len});
    else
        fwrite(report, 1, len, stdout);
    free(report);
    return rc;
}

/* ---- create ------------------------------------------------------------------------------ */


/* SIZE: a number of bytes, with an optional suffix K, M, G or T (powers of 1024), parsed by the
 * library (ga_shared_parse_size: no overflow). 0 if bad or out of range. */
static size_t parse_size(const char *arg)
{
    size_t v = 0;
    return ga_shared_parse_size(arg, &v) == 0 ? v : 0;
}

/* MODE: the permission bits of a new heap: 0600 (owner), 0660 (and group) or 0666 (everyone),
 * the three that ga_shared_open can create. The ga_shared_open flags, or -1 if bad. */
static int parse_mode(const char *arg)
{
    char *end;
    unsigned long m = strtoul(arg, &end, 8);
    if (end == arg || *end) return -1;
    return m == 0600 ? 0 : m == 0660 ? GA_SHARED_GROUP : m == 0666 ? GA_SHARED_OTHERS : -1;
}

static int cmd_create(const char *name, const char *size_arg, const char *mode_arg)
{
    size_t size = (size_t)64 << 20;
    char msg[256];
    if (size_arg && (size = parse_size(size_arg)) == 0) {
        snprintf(msg, sizeof msg,
                 "create: invalid SIZE '%.40s': a heap reserves 1M to 64G (bytes, or a number "
                 "with suffix K, M, G or T)",
                 size_arg);
        return usage(msg);
    }
    int mode = mode_arg ? parse_mode(mode_arg) : 0;
    if (mode < 0) {
        snprintf(msg, sizeof msg, "create: invalid MODE '%.40s': 0600, 0660 or 0666", mode_arg);
        return usage(msg);
    }
    int created = 0;
    ga_heap_t *h =
        ga_shared_open(name, size, GA_SHARED_CREATE | GA_SHARED_EXCL | (unsigned)mode, &created);
    if (!h) return fail(name, ga_last_error(), NULL);
    ga_shared_stats_t s;
    ga_shared_info_t info;
    int rc = ga_shared_stats(h, &s);
    ga_shared_close(h);
    if (rc == 0) rc = ga_shared_peek(name, &info);
    if (rc) return fail(name, rc, "created, but cannot read it back");
    if (json) {
        json_begin(name, 1);
        printf(",\"heap_id\":%u,\"reserved\":%zu,\"mode\":\"%04o\"}\n", s.heap_id, s.reserved,
               info.mode);
    } else {
        printf("%s: created, %zu bytes reserved, mode %04o\n", name, s.reserved, info.mode);
    }
    return 0;
}

static int cmd_rm(const char *name, int force)
{
    int rc = ga_shared_unlink(name, force ? GA_SHARED_FORCE : 0);
    /* GA_EPERM from unlink: another live process is attached, or no access to the file. */
    ga_shared_info_t info;
    if (rc == GA_EPERM && !force && ga_shared_peek(name, &info) == 0 && info.attached > 0)
        return fail_words(name, rc, "other processes are attached (use --force)", NULL);
    if (rc) return fail(name, rc, NULL);
    if (json) {
        json_begin(name, 1);
        printf("}\n");
    } else {
        printf("%s: removed\n", name);
    }
    return 0;
}

/* ---- leaks: run a program on the debug heap ----------------------------------------------- */

/* The preload library: $GLOBALALLOC_PRELOAD, else beside this executable in a build tree
 * (build/tools/globalalloc -> build/libglobalalloc-preload.so) or an install (bin -> lib). */
static int find_preload(char *out, size_t size)
{
    const char *env = getenv("GLOBALALLOC_PRELOAD");
    if (env && *env) {
        snprintf(out, size, "%s", env);
        return access(out, R_OK) == 0;
    }
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0)
        return 0;
    exe[n] = 0;
    char *slash = strrchr(exe, '/');
    if (slash)
        *slash = 0;
    static const char *const rel[] = {"/../libglobalalloc-preload.so",
                                      "/../lib/libglobalalloc-preload.so",
                                      "/../lib64/libglobalalloc-preload.so",
                                      "/../" GA_INSTALL_LIBDIR "/libglobalalloc-preload.so"};
    for (size_t i = 0; i < sizeof rel / sizeof rel[0]; i++) {
        snprintf(out, size, "%s%s", exe, rel[i]);
        if (access(out, R_OK) == 0)
            return 1;
    }
    return 0;
}

static int cmd_leaks(int argc, char **argv)
{
    const char *status = NULL, *extra = NULL, *file = NULL;
    int i = 0;
    for (; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0) {
            i++;
            break;
        }
        if ((strcmp(argv[i], "-e") == 0 || strcmp(argv[i], "-o") == 0 ||
             strcmp(argv[i], "-f") == 0) && i + 1 < argc) {
            const char **dst = argv[i][1] == 'e' ? &status : argv[i][1] == 'o' ? &extra : &file;
            *dst = argv[++i];
        } else if (argv[i][0] == '-') {
            return usage("leaks: unknown option");
        } else {
            break;
        }
    }
    if (i >= argc)
        return usage("leaks: missing PROGRAM");
    /* Refused here rather than by the debug heap in the program, which would then run without
     * it: the user asked for a leak check and would silently get none. */
    if (status && (strspn(status, "0123456789") != strlen(status) || !*status ||
                   strlen(status) > 3 || atoi(status) > 255))
        return usage("leaks: -e takes an exit status (0..255)");
    if (file) {
        if (!*file || strchr(file, ',')) /* the option list is comma-separated */
            return usage("leaks: -f takes a file name without commas");
        int fd = open(file, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (fd < 0) {
            fprintf(stderr, "globalalloc: leaks: cannot open %s: %s\n", file, strerror(errno));
            return 2;
        }
        close(fd);
    }
    char lib[4200];
    if (!find_preload(lib, sizeof lib)) {
        fprintf(stderr, "globalalloc: leaks: libglobalalloc-preload.so not found (set "
                        "GLOBALALLOC_PRELOAD)\n");
        return 2;
    }
    char opts[1024];
    snprintf(opts, sizeof opts, "leaks=1%s%s%s%s%s%s", status ? ",exitcode=" : "",
             status ? status : "", file ? ",report=" : "", file ? file : "", extra ? "," : "",
             extra ? extra : "");
    if (ga_debug_check_options(opts) != 0) /* the reason was just printed */
        return usage("leaks: -o takes debug options, as GLOBALALLOC_DEBUG (see the manual)");
    char preload[8400];
    const char *old = getenv("LD_PRELOAD");
    snprintf(preload, sizeof preload, "%s%s%s", lib, old && *old ? ":" : "", old ? old : "");
    setenv("GLOBALALLOC_DEBUG", opts, 1);
    setenv("LD_PRELOAD", preload, 1);
    execvp(argv[i], argv + i);
    fprintf(stderr, "globalalloc: leaks: cannot run %s: %s\n", argv[i], strerror(errno));
    return 127;
}

static int usage(const char *msg)
{
    if (json) {
        json_begin("", 0);
        printf(",\"error\":\"GA_EINVAL\",\"message\":");
        json_str(msg);
        printf("}\n");
    }
    fprintf(stderr,
            "globalalloc: %s\nUsage: globalalloc [--json] ls | stat NAME | check NAME |\n"
            "       create [--mode MODE] NAME [SIZE] | reclaim NAME | owners [--all] NAME |\n"
            "       rm [--force] NAME | map NAME MAP |\n"
            "       leaks [-e STATUS] [-o OPTIONS] [-f FILE] -- PROGRAM\n"
            "Try 'globalalloc --help' or 'man globalalloc'.\n",
            msg);
    return 2;
}

/* The command line outside `leaks`: options may come anywhere; at most 3 words. */
typedef struct {
    const char *args[3];
    int nargs, force, all, help, version;
    const char *mode;
} cmdline_t;

/* Fills *c from argv; returns 0, or the exit status of a usage error. */
static int parse_cmdline(int argc, char **argv, cmdline_t *c)
{
    for (int i = 1; i < argc && strcmp(argv[i], "--") != 0; i++) /* first: every message after */
        if (strcmp(argv[i], "--json") == 0) json = 1;                /* is then in the right form */
    int options = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (options && strcmp(a, "--") == 0) {
            options = 0; /* what follows are names, even "-x" */
        } else if (!options) {
            if (c->nargs == 3) return usage("too many arguments");
            c->args[c->nargs++] = a;
        } else if (strcmp(a, "--json") == 0) {
        } else if (strcmp(a, "--force") == 0 || strcmp(a, "-f") == 0) {
            c->force = 1;
        } else if (strcmp(a, "--all") == 0) {
            c->all = 1;
        } else if (strcmp(a, "--mode") == 0 || strncmp(a, "--mode=", 7) == 0) {
            if (a[6] == 0 && i + 1 >= argc) return usage("--mode takes a MODE (0600, 0660, 0666)");
            c->mode = a[6] ? a + 7 : argv[++i];
        } else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            c->help = 1;
        } else if (strcmp(a, "--version") == 0) {
            c->version = 1;
        } else if (a[0] == '-' && a[1]) {
            char msg[160];
            snprintf(msg, sizeof msg, "unknown option '%.100s'", a);
            return usage(msg);
        } else if (c->nargs < 3) {
            c->args[c->nargs++] = a;
        } else {
            return usage("too many arguments");
        }
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "leaks") == 0) {
        command = "leaks";
        return cmd_leaks(argc - 2, argv + 2);
    }
    cmdline_t c = {0};
    int rc = parse_cmdline(argc, argv, &c);
    if (rc) return rc;
    if (c.help) {
        for (const char *const *line = help_lines; *line; line++)
            puts(*line);
        return 0;
    }
    if (c.version) {
        command = "version";
        if (json) {
            json_begin(NULL, 1);
            printf(",\"version\":\"%s\"}\n", ga_version());
        } else {
            printf("globalalloc %s\n", ga_version());
        }
        return 0;
    }
    if (c.nargs == 0) return usage("missing command");
    static const char *const known[] = {"ls",      "list", "create", "owners", "stat",
                                        "check",   "reclaim", "rm", "leaks", "map"};
    size_t k = 0;
    while (k < sizeof known / sizeof known[0] && strcmp(c.args[0], known[k]) != 0)
        k++;
    if (k == sizeof known / sizeof known[0]) {
        char msg[160];
        snprintf(msg, sizeof msg, "unknown command '%.100s'", c.args[0]);
        return usage(msg);
    }
    command = strcmp(c.args[0], "list") == 0 ? "ls" : c.args[0];
    const char *cmd = command, *name = c.nargs > 1 ? c.args[1] : NULL;
    if (strcmp(cmd, "leaks") == 0) return usage("leaks: comes first, and writes no JSON");
    if (c.force && strcmp(cmd, "rm") != 0) return usage("--force goes with rm");
    if (c.all && strcmp(cmd, "owners") != 0) return usage("--all goes with owners");
    if (c.mode && strcmp(cmd, "create") != 0) return usage("--mode goes with create");
    if (strcmp(cmd, "ls") == 0) return c.nargs == 1 ? cmd_ls() : usage("ls takes no argument");
    if (strcmp(cmd, "create") == 0 && c.nargs >= 2)
        return cmd_create(name, c.nargs == 3 ? c.args[2] : NULL, c.mode);
    if (strcmp(cmd, "map") == 0)
        return c.nargs == 3 ? cmd_map(name, c.args[2]) : usage("map takes a heap and a map name");
    if (c.nargs != 2) return usage("expected one heap name");
    if (strcmp(cmd, "owners") == 0) return cmd_owners(name, c.all);
    if (strcmp(cmd, "stat") == 0) return cmd_stat(name);
    if (strcmp(cmd, "check") == 0) return cmd_check(name);
    if (strcmp(cmd, "reclaim") == 0) return cmd_reclaim(name);
    return cmd_rm(name, c.force);
}
