/* SPDX-License-Identifier: MIT */
/*
 * Symbolization of depot stacks for reports: dladdr names each frame (symbol + offset, or
 * module + offset), then addr2line, run once per module for up to 64 addresses, gives function,
 * file and line (with inlined frames) where debug information allows. Texts are kept in a table
 * mapped from the OS (sym.tab), so a stack printed twice is symbolized once.
 *
 * Invariants: sym.tab and sym.out are read and written only under sym.lock, one report at a
 * time. The lock is recursive, so not a ga_lock_t: a report made while symbolizing (an
 * allocation made meanwhile that meets a broken block) prints stacks, and takes it again.
 */
#include "debug/debug_internal.h"
#include "os/os.h"
#include <dlfcn.h>
#include <elf.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#define SYM_MAX 2048
#define SYM_LEN 240
typedef struct sym_s {
    uintptr_t addr;
    char text[SYM_LEN];
} sym_t;
static struct {
    pthread_mutex_t lock; /* one report at a time */
    sym_t *tab;           /* SYM_MAX entries, mapped */
    size_t n;
    char *out; /* addr2line output buffer */
} sym = {.lock = PTHREAD_RECURSIVE_MUTEX_INITIALIZER_NP};
#define SYM_OUT ((size_t)1 << 20)
/* How many times this thread holds sym.lock (the asserts' "held": pthread cannot tell). */
static GA_TLS unsigned tl_sym_held;

void ga__sym_lock(void)
{
    pthread_mutex_lock(&sym.lock);
    tl_sym_held++;
}

void ga__sym_unlock(void)
{
    GA_ASSERT_INTERNAL(tl_sym_held > 0);
    tl_sym_held--;
    pthread_mutex_unlock(&sym.lock);
}

static sym_t *sym_find(uintptr_t a)
{
    for (size_t i = 0; i < sym.n; i++)
        if (sym.tab[i].addr == a) return &sym.tab[i];
    return NULL;
}

static const char *base_name(const char *path)
{
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

/* Runs addr2line on module path for n addresses (offsets or absolute), filling texts. */
static void run_addr2line(const char *path, uintptr_t *offs, sym_t **dst, unsigned n)
{
    char hex[64][20];
    const char *argv[64 + 10];
    unsigned a = 0;
    argv[a++] = "addr2line";
    argv[a++] = "-a";
    argv[a++] = "-f";
    argv[a++] = "-i";
    argv[a++] = "-C";
    argv[a++] = "-e";
    argv[a++] = path;
    for (unsigned i = 0; i < n; i++) {
        snprintf(hex[i], sizeof hex[i], "%#jx", (uintmax_t)offs[i]);
        argv[a++] = hex[i];
    }
    argv[a] = NULL;
    static const char *const paths[] = {"/usr/bin/addr2line", "/bin/addr2line", NULL};
    static const char *const envp[] = {"PATH=/usr/bin:/bin", "LC_ALL=C", NULL};
    if (!ga__os_run_read(paths, argv, envp, sym.out, SYM_OUT)) return;
    /* -a -i: per address, its "0x..." line, then (function, file:line) pairs from the
     * innermost inlined function out to the real one. */
    int i = -1;
    size_t used = 0;
    char text[SYM_LEN];
    for (char *line = sym.out, *nl; *line; line = nl + 1) {
        nl = strchr(line, '\n');
        if (!nl) break;
        *nl = 0;
        if (line[0] == '0' && line[1] == 'x') {
            i++;
            used = 0;
            if (i >= (int)n) break;
            continue;
        }
        char *fn = line, *loc = nl + 1;
        if (i < 0 || !(nl = strchr(loc, '\n'))) break;
        *nl = 0;
        bool have_fn = strcmp(fn, "??") != 0, have_loc = strncmp(loc, "??", 2) != 0;
        if (!have_fn && !have_loc) continue;
        char *disc = strstr(loc, " (discriminator");
        if (disc) *disc = 0;
        int w;
        if (used == 0)
            w = snprintf(text, sizeof text, "%s %s%s%s", have_fn ? fn : dst[i]->text,
                         have_loc ? loc : "(", have_loc ? "" : base_name(path),
                         have_loc ? "" : ")");
        else
            w = snprintf(text + used, sizeof text - used, ", inlined in %s %s", fn,
                         have_loc ? loc : "");
        if (w > 0) {
            used = used + (size_t)w < sizeof text ? used + (size_t)w : sizeof text - 1;
            memcpy(dst[i]->text, text, SYM_LEN);
        }
    }
}

/* Gives every address of the depot stacks ids[0..n) a text (dladdr, then addr2line). */
void ga__symbolize(const uint32_t *ids, size_t nids)
{
    GA_ASSERT_INTERNAL(tl_sym_held > 0);
    if (sym.tab == NULL) {
        sym.tab = ga__dbg_map_noscan(SYM_MAX * sizeof(sym_t));
        sym.out = ga__dbg_map_noscan(SYM_OUT);
        if (sym.tab == NULL || sym.out == NULL) return;
    }
    size_t first_new = sym.n;
    for (size_t k = 0; k < nids; k++) {
        const uintptr_t *f;
        unsigned n = ga__stack_frames(ids[k], &f);
        for (unsigned i = 0; i < n && sym.n < SYM_MAX; i++) {
            if (sym_find(f[i])) continue;
            sym_t *s = &sym.tab[sym.n++];
            s->addr = f[i];
            Dl_info info;
            if (dladdr((void *)f[i], &info) && info.dli_fname) {
                if (info.dli_sname)
                    snprintf(s->text, SYM_LEN, "%s+%#tx (%s)", info.dli_sname,
                             (char *)f[i] - (char *)info.dli_saddr, base_name(info.dli_fname));
                else
                    snprintf(s->text, SYM_LEN, "(%s+%#tx)", base_name(info.dli_fname),
                             (char *)f[i] - (char *)info.dli_fbase);
            } else {
                snprintf(s->text, SYM_LEN, "(unknown)");
            }
        }
    }
    if (!ga__dbg_opts.symbolize) return;
    char exe[512], mod[512];
    ga__os_exe_path(exe, sizeof exe);
    /* one addr2line per module and up to 64 addresses */
    static uint8_t done[SYM_MAX];
    memset(done, 0, sizeof done);
    for (size_t i = first_new; i < sym.n; i++) {
        if (done[i]) continue;
        Dl_info info;
        if (!dladdr((void *)sym.tab[i].addr, &info) || info.dli_fname == NULL) {
            done[i] = 1;
            continue;
        }
        void *base = info.dli_fbase;
        const Elf64_Ehdr *eh = base;
        bool absolute = eh && memcmp(eh->e_ident, ELFMAG, SELFMAG) == 0 && eh->e_type == ET_EXEC;
        if (info.dli_fname[0] == 0 || strchr(info.dli_fname, '/') == NULL)
            snprintf(mod, sizeof mod, "%s", exe);
        else
            snprintf(mod, sizeof mod, "%s", info.dli_fname);
        uintptr_t offs[64];
        sym_t *dst[64];
        unsigned n = 0;
        for (size_t j = i; j < sym.n && n < 64; j++) {
            Dl_info o;
            if (done[j] || !dladdr((void *)sym.tab[j].addr, &o) || o.dli_fbase != base) continue;
            done[j] = 1;
            uintptr_t a = sym.tab[j].addr - 1; /* the call, not the return address */
            offs[n] = absolute ? a : a - (uintptr_t)base;
            dst[n++] = &sym.tab[j];
        }
        ga__dbg_busy++;
        run_addr2line(mod, offs, dst, n);
        ga__dbg_busy--;
    }
}

void ga__stack_print_frames(int fd, uint32_t id, const char *indent)
{
    GA_ASSERT_INTERNAL(tl_sym_held > 0);
    const uintptr_t *f;
    unsigned n = ga__stack_frames(id, &f);
    if (n == 0) {
        ga__dbg_printf(fd, "%s(no stack recorded)\n", indent);
        return;
    }
    for (unsigned i = 0; i < n; i++) {
        sym_t *s = sym_find(f[i]);
        ga__dbg_printf(fd, "%s#%u %#jx %s\n", indent, i, (uintmax_t)f[i], s ? s->text : "");
    }
}

void ga__stack_print(int fd, uint32_t id, const char *indent)
{
    ga__sym_lock();
    ga__symbolize(&id, 1);
    ga__stack_print_frames(fd, id, indent);
    ga__sym_unlock();
}
