/* SPDX-License-Identifier: MIT */
/*
 * globalalloc CLI: shared maps. `stat` and `check` list the maps of a heap (named objects
 * "map.NAME") with their counts; `map HEAP MAP` dumps one: every key and value, as text when
 * every byte is printable ASCII, else as hex; values longer than DUMP_MAX bytes are cut there
 * (the size says how long they are). A consistent snapshot (ga_map_iterate).
 */
#include "cli.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DUMP_MAX 4096

static int printable(const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] < 0x20 || p[i] > 0x7e) return 0;
    return 1;
}

/* The bytes as "text" or 0xHEX into a malloc'd string; *fmt "text" or "hex". */
static char *render(const unsigned char *p, size_t n, const char **fmt)
{
    int text = printable(p, n);
    char *s = malloc(text ? n + 1 : 2 * n + 1);
    if (!s) return NULL;
    *fmt = text ? "text" : "hex";
    if (text) {
        memcpy(s, p, n);
        s[n] = 0;
    } else {
        for (size_t i = 0; i < n; i++)
            snprintf(s + 2 * i, 3, "%02x", p[i]);
        s[2 * n] = 0;
    }
    return s;
}

static void print_bytes(const unsigned char *p, size_t n)
{
    const char *fmt;
    char *s = render(p, n, &fmt);
    if (!s) return;
    if (fmt[0] == 't')
        printf("\"%s\"", s);
    else
        printf("0x%s", s);
    free(s);
}

typedef struct dump_s {
    int n;
} dump_t;

static int dump_one(const void *k, size_t kl, const void *v, size_t vl, uint64_t ver, void *arg)
{
    dump_t *d = arg;
    size_t shown = vl > DUMP_MAX ? DUMP_MAX : vl;
    if (json) {
        const char *kf, *vf;
        char *ks = render(k, kl, &kf), *vs = render(v, shown, &vf);
        printf("%s{\"key\":", d->n ? "," : "");
        json_str(ks ? ks : "");
        printf(",\"key_format\":\"%s\",\"value\":", kf);
        json_str(vs ? vs : "");
        printf(",\"value_format\":\"%s\",\"size\":%zu,\"revision\":%llu}", vf, vl,
               (unsigned long long)ver);
        free(ks);
        free(vs);
    } else {
        printf("  ");
        print_bytes(k, kl);
        printf(" = ");
        print_bytes(v, shown);
        printf("%s (%zu bytes, version %llu)\n", shown < vl ? "..." : "", vl,
               (unsigned long long)ver);
    }
    d->n++;
    return 0;
}

static const char *map_words(int err)
{
    switch (err) {
    case GA_ENOENT:
        return "no such map";
    case GA_EEXIST:
        return "a named object of that name is no map";
    case GA_ENAME:
        return "invalid map name (1..59 printable characters, no '/', no spaces)";
    default:
        return ga_strerror(err);
    }
}

int cmd_map(const char *heap, const char *map)
{
    ga_set_error_handler(keep_report, NULL);
    ga_heap_t *h = attach(heap);
    if (!h) return 1;
    ga_map_t *m = ga_map_open(h, map, 0, NULL);
    int rc = m ? 0 : ga_last_error();
    ga_map_info_t info;
    if (rc == 0) rc = ga_map_info(m, &info);
    if (rc) {
        if (m) ga_map_close(m);
        ga_shared_close(h);
        return fail_words(heap, rc, map_words(rc), last_report[0] ? last_report : NULL);
    }
    if (json) {
        json_begin(heap, 1);
        printf(",\"map\":");
        json_str(map);
        printf(",\"count\":%zu,\"entries\":[", info.count);
    } else {
        printf("map %s in heap %s: %zu keys\n", map, heap, info.count);
    }
    dump_t d = {0};
    long n = ga_map_iterate(m, dump_one, &d);
    if (json) printf("]}\n");
    ga_map_close(m);
    ga_shared_close(h);
    if (n < 0) {
        fprintf(stderr, "globalalloc: map %s: %s\n", map, ga_strerror((int)n));
        return 1;
    }
    return 0;
}

int cli_maps(ga_heap_t *h, const ga_shared_object_info_t *objs, long nobj, int check)
{
    int bad = 0, k = 0;
    if (json) printf(",\"maps\":[");
    for (long i = 0; i < nobj && i < 1024; i++) {
        if (strncmp(objs[i].name, "map.", 4) != 0) continue;
        const char *name = objs[i].name + 4;
        ga_map_info_t info = {0};
        ga_map_t *m = ga_map_open(h, name, 0, NULL);
        int rc = m ? ga_map_info(m, &info) : ga_last_error();
        if (rc == 0 && check) rc = ga_map_check(m, GA_CHECK_QUIET);
        if (m) ga_map_close(m);
        bad |= rc != 0;
        if (json) {
            printf("%s{\"name\":", k ? "," : "");
            json_str(name);
            printf(",\"count\":%zu,\"capacity\":%zu,\"blocks\":%zu,\"bytes\":%zu,"
                   "\"max_key\":%zu,\"max_value\":%zu,\"error\":\"%s\"}",
                   info.count, info.capacity, info.blocks, info.bytes, info.max_key, info.max_value,
                   rc ? ga_err_name(rc) : "");
        } else {
            if (k == 0) printf("maps (name: keys, table slots, blocks, bytes)\n");
            if (rc)
                printf("  %s: %s\n", name, map_words(rc));
            else
                printf("  %s: %zu keys, %zu slots, %zu blocks, %zu bytes%s\n", name, info.count,
                       info.capacity, info.blocks, info.bytes, check ? ": ok" : "");
        }
        k++;
    }
    if (json) printf("]");
    return bad;
}
