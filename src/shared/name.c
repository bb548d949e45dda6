/* SPDX-License-Identifier: MIT */
/*
 * Shared heaps: names and hashes. A heap name is one path component of printable ASCII (no '/',
 * '\\' or ".."), the file /dev/shm/ga.NAME (the POSIX shm object "/ga.NAME"), or DIR/ga.NAME
 * when GLOBALALLOC_SHM_DIR=DIR (an absolute path: a tmpfs of chosen size, say); named objects
 * follow the same rule with a shorter limit. The FNV-1a hash (SHM_FNV_* in layout.h) checks the
 * header and keys the named objects. Sizes as text ("16M") are parsed here too, for the CLI and
 * GLOBALALLOC_HEAP_SIZE.
 */
#include "shared/shared_internal.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

uint64_t ga__shm_hash(const void *p, size_t n, uint64_t h)
{
    const unsigned char *s = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ s[i]) * SHM_FNV_PRIME;
    return h;
}

uint64_t ga__shm_layout_sum(const shm_header_t *h)
{
    return ga__shm_hash(h, offsetof(shm_header_t, layout_sum), SHM_FNV_BASIS);
}

uint32_t ga__shm_name_hash(const char *name)
{
    return (uint32_t)ga__shm_hash(name, strlen(name), SHM_FNV_BASIS);
}

bool ga__shm_name_ok(const char *name, size_t max)
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

int ga__shm_path(const char *name, char *out, size_t cap)
{
    if (!ga__shm_name_ok(name, SHM_NAME_MAX)) return GA_ENAME;
    const char *dir = getenv("GLOBALALLOC_SHM_DIR");
    if (dir == NULL || *dir == 0) {
        snprintf(out, cap, "/%s%s", SHM_PREFIX, name);
        return 0;
    }
    size_t n = strlen(dir);
    while (n > 1 && dir[n - 1] == '/')
        n--;
    /* Relative: it would name another file whenever the working directory changes. */
    if (dir[0] != '/' || n == 1 || n + strlen(SHM_PREFIX) + strlen(name) + 2 > cap) {
        ga__report(GA_ENAME, 0, false,
                   "GLOBALALLOC_SHM_DIR=%.64s: not an absolute directory path of at most %zu bytes",
                   dir, cap - SHM_NAME_MAX - strlen(SHM_PREFIX) - 2);
        return GA_ENAME;
    }
    snprintf(out, cap, "%.*s/%s%s", (int)n, dir, SHM_PREFIX, name);
    return 0;
}

int ga_shared_parse_size(const char *text, size_t *out)
{
    if (!text || !out || *text < '0' || *text > '9') return GA_EINVAL;
    uint64_t v = 0;
    bool big = false; /* past SHM_MAX_SIZE already: keep reading, never wrap */
    const char *p = text;
    for (; *p >= '0' && *p <= '9'; p++) {
        if (!big) v = v * 10 + (uint64_t)(*p - '0');
        big |= v > SHM_MAX_SIZE;
    }
    static const char units[] = "KMGT";
    unsigned shift = 0;
    if (*p) {
        const char *u = strchr(units, *p & ~0x20); /* upper case */
        if (!u || !*u || p[1]) return GA_EINVAL;
        shift = 10 * (unsigned)(u - units + 1);
    }
    if (big || v > SHM_MAX_SIZE >> shift || (v << shift) < SHM_MIN_SIZE) return GA_EOVERFLOW;
    *out = (size_t)(v << shift);
    return 0;
}
