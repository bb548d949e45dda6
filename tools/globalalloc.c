/* SPDX-License-Identifier: MIT */
/*
 * globalalloc: the command-line tool for shared heaps (ls, stat, check, create, reclaim, owners,
 * rm).
 * `ls` only reads headers (ga_shared_peek: no attach, no side effect); stat/check/reclaim attach
 * the heap like any other process for the duration of the command; rm unlinks the name.
 * Output is plain text, or JSON with --json (one object per command, on stdout).
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

static const char *help_text =
    "NAME\n"
    "    globalalloc - inspect shared heaps; run programs on the debug heap\n"
    "\n"
    "SYNOPSIS\n"
    "    globalalloc [--json] ls\n"
    "    globalalloc [--json] stat NAME\n"
    "    globalalloc [--json] check NAME\n"
    "    globalalloc [--json] create NAME [SIZE]\n"
    "    globalalloc [--json] reclaim NAME\n"
    "    globalalloc [--json] owners [--all] NAME\n"
    "    globalalloc [--json] rm [--force] NAME\n"
    "    globalalloc leaks [-e STATUS] [-o OPTIONS] [-f FILE] -- PROGRAM [ARGS...]\n"
    "    globalalloc --help | --version\n"
    "\n"
    "DESCRIPTION\n"
    "    A globalalloc shared heap is a named heap in POSIX shared memory that several\n"
    "    processes attach (ga_shared_open). Heap NAME lives in /dev/shm/" PREFIX "NAME.\n"
    "\n"
    "COMMANDS\n"
    "    ls          List the shared heaps on this machine: name, reserved and committed\n"
    "                bytes, attached and dead processes, mode. Reads headers only: nothing\n"
    "                is attached or changed.\n"
    "    stat NAME   Attach NAME and show reserved, committed and in-use bytes, blocks per\n"
    "                size class, attached processes (with the blocks each one owns), named\n"
    "                objects, handles and lock repairs.\n"
    "    check NAME  Attach NAME and verify all of its metadata (ga_shared_check). Locks\n"
    "                left by processes that died are repaired first. Exit status 1 and the\n"
    "                first problem found when the heap is corrupt.\n"
    "    create NAME [SIZE]\n"
    "                Create heap NAME (mode 0600) reserving SIZE bytes (suffix K, M or G;\n"
    "                default 64M). Fails if it exists.\n"
    "    reclaim NAME\n"
    "                Free every block still owned by processes that died attached, and\n"
    "                their process slots (ga_shared_reclaim_dead).\n"
    "    owners [--all] NAME\n"
    "                Show the allocated blocks of NAME by owner: live attached processes\n"
    "                (pid, blocks, bytes; with --all each block's offset and size), processes\n"
    "                that exited attached (pid, blocks, bytes and their first blocks: kept\n"
    "                until reclaim), and the heap's own (handles, named objects by name,\n"
    "                blocks of processes that detached). ga_shared_leak_report.\n"
    "    rm NAME     Remove the name. Refused while another live process is attached,\n"
    "                unless --force is given. Attached processes keep their mapping.\n"
    "    leaks [-e STATUS] [-o OPTIONS] [-f FILE] -- PROGRAM [ARGS...]\n"
    "                Run PROGRAM with globalalloc as its malloc (LD_PRELOAD of\n"
    "                libglobalalloc-preload.so) and the debug heap on: misuse is reported on\n"
    "                the spot, and at exit the blocks nothing points to any more are listed\n"
    "                by allocation stack. -e: exit with STATUS when leaks are found (default:\n"
    "                the program's status); -o: more GLOBALALLOC_DEBUG options (stacks=32,\n"
    "                leaks=all, quarantine=4m, ...); -f: write the reports to FILE. The\n"
    "                preload is $GLOBALALLOC_PRELOAD, else found next to this program.\n"
    "\n"
    "OPTIONS\n"
    "    --json      Print one JSON object instead of text.\n"
    "    --force     With rm: remove even while other processes are attached.\n"
    "    --all       With owners: list every block of live processes too.\n"
    "    -h, --help  Print this help.\n"
    "    --version   Print the library version.\n"
    "\n"
    "EXIT STATUS\n"
    "    0 on success; 1 when the heap does not exist, cannot be attached, is corrupt, or the\n"
    "    removal was refused; 2 on a usage error.\n"
    "\n"
    "FILES\n"
    "    /dev/shm/" PREFIX "*    the shared heaps.\n"
    "\n"
    "EXAMPLES\n"
    "    globalalloc ls\n"
    "    globalalloc --json stat mycache\n"
    "    globalalloc check mycache && globalalloc rm mycache\n"
    "    globalalloc owners mycache\n"
    "    globalalloc leaks -e 23 -- python3 script.py\n";

static int json;
static int usage(const char *msg);

/* ---- output helpers --------------------------------------------------------------------- */

static void json_str(const char *s)
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

static int fail(const char *name, const char *what, int err)
{
    if (json) {
        printf("{\"name\":");
        json_str(name ? name : "");
        printf(",\"ok\":false,\"error\":\"%s\",\"message\":", ga_err_name(err));
        json_str(what);
        printf("}\n");
    } else {
        fprintf(stderr, "globalalloc: %s%s%s: %s\n", name ? name : "", name ? ": " : "", what,
                ga_strerror(err));
    }
    return 1;
}

/* The first problem report of a check, kept for the output. */
static char last_report[512];
static int keep_report(int err, const char *msg, uintptr_t ptr, void *arg)
{
    (void)err, (void)ptr, (void)arg;
    if (!last_report[0]) snprintf(last_report, sizeof last_report, "%s", msg);
    return 1;
}

/* ---- commands --------------------------------------------------------------------------- */

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int cmd_ls(void)
{
    DIR *d = opendir("/dev/shm");
    if (!d) return fail("/dev/shm", "cannot read", GA_ENOENT);
    char *names[4096];
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL && n < 4096)
        if (strncmp(e->d_name, PREFIX, strlen(PREFIX)) == 0 && e->d_name[strlen(PREFIX)])
            names[n++] = strdup(e->d_name + strlen(PREFIX));
    closedir(d);
    qsort(names, n, sizeof names[0], cmp_str);
    if (json)
        printf("{\"heaps\":[");
    else
        printf("%-32s %12s %12s %8s %5s %5s  %s\n", "NAME", "RESERVED", "COMMITTED", "ATTACHED",
               "DEAD", "MODE", "STATE");
    for (size_t i = 0; i < n; i++) {
        ga_shared_info_t info;
        int rc = ga_shared_peek(names[i], &info);
        if (json) {
            printf("%s{\"name\":", i ? "," : "");
            json_str(names[i]);
            if (rc == 0)
                printf(",\"ok\":true,\"heap_id\":%u,\"reserved\":%zu,\"committed\":%zu,"
                       "\"attached\":%zu,\"dead\":%zu,\"mode\":\"%04o\",\"creator_pid\":%d,"
                       "\"created\":%llu}",
                       info.heap_id, info.reserved, info.committed, info.attached, info.dead,
                       info.mode, info.creator_pid, (unsigned long long)info.created_time);
            else
                printf(",\"ok\":false,\"error\":\"%s\"}", ga_err_name(rc));
        } else if (rc == 0) {
            char b1[32], b2[32];
            printf("%-32s %12s %12s %8zu %5zu  %04o  ok\n", names[i],
                   human(info.reserved, b1, sizeof b1), human(info.committed, b2, sizeof b2),
                   info.attached, info.dead, info.mode);
        } else {
            printf("%-32s %12s %12s %8s %5s %5s  %s\n", names[i], "-", "-", "-", "-", "-",
                   ga_strerror(rc));
        }
        free(names[i]);
    }
    if (json) printf("]}\n");
    return 0;
}

static ga_heap_t *attach(const char *name)
{
    ga_heap_t *h = ga_shared_open(name, 0, 0, NULL);
    if (!h) fail(name, "cannot attach", ga_last_error());
    return h;
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
    printf("{\"name\":");
    json_str(name);
    printf(",\"ok\":true,\"heap_id\":%u,\"reserved\":%zu,\"committed\":%zu,\"bytes_in_use\":%zu,"
           "\"blocks_in_use\":%zu,\"bytes_cached\":%zu,\"pages_total\":%zu,\"pages_free\":%zu,"
           "\"heap_blocks\":%zu,\"orphan_blocks\":%zu,\"dead_blocks\":%zu,\"dead_bytes\":%zu,"
           "\"handles\":%zu,\"objects\":%zu,\"repairs\":%zu,\"attached\":%zu,\"dead\":%zu",
           s->heap_id, s->reserved, s->committed, s->bytes_in_use, s->blocks_in_use,
           s->bytes_cached, s->pages_total, s->pages_free, s->heap_blocks, s->orphan_blocks,
           s->dead_blocks, s->dead_bytes, s->handles_in_use, s->objects, s->repairs, s->attached,
           s->dead);
    printf(",\"processes\":[");
    for (int i = 0, k = 0; i < MAX_PROCS; i++)
        if (s->procs[i].pid)
            printf("%s{\"slot\":%d,\"pid\":%d,\"alive\":%s,\"blocks\":%zu,\"bytes\":%zu}",
                   k++ ? "," : "", i, s->procs[i].pid, s->procs[i].alive ? "true" : "false",
                   s->procs[i].blocks, s->procs[i].bytes);
    printf("],\"classes\":[");
    for (size_t c = 0, k = 0; c < s->class_count; c++)
        if (s->classes[c].pages)
            printf("%s{\"block_size\":%zu,\"blocks_used\":%zu,\"pages\":%zu}", k++ ? "," : "",
                   s->classes[c].block_size, s->classes[c].blocks_used, s->classes[c].pages);
    printf("],\"named_objects\":[");
    for (long i = 0; i < nobj && i < MAX_OBJECTS; i++) {
        printf("%s{\"name\":", i ? "," : "");
        json_str(objs[i].name);
        printf(",\"size\":%zu,\"offset\":%llu}", objs[i].size, (unsigned long long)objs[i].offset);
    }
    printf("]}\n");
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
    }
    ga_shared_close(h);
    return rc ? fail(name, "cannot read statistics", rc) : 0;
}

static int cmd_check(const char *name)
{
    ga_set_error_handler(keep_report, NULL);
    ga_heap_t *h = ga_shared_open(name, 0, 0, NULL);
    if (!h) {
        int err = ga_last_error();
        return fail(name, err == GA_ENOENT ? "no such heap" : "cannot attach", err);
    }
    int rc = ga_shared_check(h, 0);
    ga_shared_close(h);
    if (rc) return fail(name, last_report[0] ? last_report : "check failed", rc);
    if (json) {
        printf("{\"name\":");
        json_str(name);
        printf(",\"ok\":true}\n");
    } else {
        printf("%s: ok\n", name);
    }
    return 0;
}

static int cmd_reclaim(const char *name)
{
    ga_heap_t *h = attach(name);
    if (!h) return 1;
    long n = ga_shared_reclaim_dead(h);
    ga_shared_close(h);
    if (n < 0) return fail(name, "reclaim failed", (int)n);
    if (json) {
        printf("{\"name\":");
        json_str(name);
        printf(",\"ok\":true,\"blocks_freed\":%ld}\n", n);
    } else {
        printf("%s: %ld blocks freed\n", name, n);
    }
    return 0;
}

static int cmd_owners(const char *name, int all)
{
    ga_heap_t *h = attach(name);
    if (!h) return 1;
    fflush(stdout);
    unsigned flags = (all ? GA_LEAK_ALL : 0) | (json ? GA_LEAK_JSON : 0);
    long n = ga_shared_leak_report(h, STDOUT_FILENO, flags);
    ga_shared_close(h);
    return n < 0 ? fail(name, "cannot read the heap", (int)n) : 0;
}

static int cmd_create(const char *name, const char *size_arg)
{
    size_t size = (size_t)64 << 20;
    if (size_arg) {
        int rc = ga_shared_parse_size(size_arg, &size);
        if (rc == GA_EOVERFLOW) return usage("SIZE out of range: 1M .. 64G");
        if (rc) return usage("bad SIZE (digits, then K, M, G or T)");
    }
    int created = 0;
    ga_heap_t *h = ga_shared_open(name, size, GA_SHARED_CREATE | GA_SHARED_EXCL, &created);
    if (!h) return fail(name, "cannot create", ga_last_error());
    ga_shared_stats_t s;
    ga_shared_stats(h, &s);
    ga_shared_close(h);
    if (json) {
        printf("{\"name\":");
        json_str(name);
        printf(",\"ok\":true,\"reserved\":%zu,\"heap_id\":%u}\n", s.reserved, s.heap_id);
    } else {
        printf("%s: created, %zu bytes reserved\n", name, s.reserved);
    }
    return 0;
}

static int cmd_rm(const char *name, int force)
{
    int rc = ga_shared_unlink(name, force ? GA_SHARED_FORCE : 0);
    if (rc == GA_EPERM && force) return fail(name, "permission denied", rc);
    if (rc == GA_EPERM) return fail(name, "other processes are attached, or permission denied", rc);
    if (rc) return fail(name, "cannot remove", rc);
    if (json) {
        printf("{\"name\":");
        json_str(name);
        printf(",\"ok\":true}\n");
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
    fprintf(stderr,
            "globalalloc: %s\nUsage: globalalloc [--json] ls | stat NAME | check NAME | "
            "create NAME [SIZE] | reclaim NAME | owners [--all] NAME |\n"
            "       rm [--force] NAME | leaks [-e STATUS] [-o OPTIONS] [-f FILE] -- PROGRAM\n"
            "Try 'globalalloc --help'.\n",
            msg);
    return 2;
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "leaks") == 0)
        return cmd_leaks(argc - 2, argv + 2);
    const char *args[8];
    int nargs = 0, force = 0, all = 0, options = 1;
    for (int i = 1; i < argc; i++) {
        if (options && strcmp(argv[i], "--") == 0) {
            options = 0; /* what follows are names, even "-x" */
        } else if (!options) {
            if (nargs == 8) return usage("too many arguments");
            args[nargs++] = argv[i];
        } else if (strcmp(argv[i], "--json") == 0) {
            json = 1;
        } else if (strcmp(argv[i], "--force") == 0 || strcmp(argv[i], "-f") == 0) {
            force = 1;
        } else if (strcmp(argv[i], "--all") == 0) {
            all = 1;
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(help_text, stdout);
            return 0;
        } else if (strcmp(argv[i], "--version") == 0) {
            printf("globalalloc %s\n", ga_version());
            return 0;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            return usage("unknown option");
        } else if (nargs < 8) {
            args[nargs++] = argv[i];
        } else {
            return usage("too many arguments");
        }
    }
    if (nargs == 0) return usage("missing command");
    const char *cmd = args[0];
    static const char *const known[] = {"ls", "list", "create", "owners", "stat",
                                        "check", "reclaim", "rm"};
    size_t k = 0;
    while (k < sizeof known / sizeof known[0] && strcmp(cmd, known[k]) != 0)
        k++;
    if (k == sizeof known / sizeof known[0]) {
        char msg[160];
        snprintf(msg, sizeof msg, "unknown command '%.100s'", cmd);
        return usage(msg);
    }
    if (strcmp(cmd, "ls") == 0 || strcmp(cmd, "list") == 0)
        return nargs == 1 ? cmd_ls() : usage("ls takes no argument");
    if (strcmp(cmd, "create") == 0 && (nargs == 2 || nargs == 3) && !force)
        return cmd_create(args[1], nargs == 3 ? args[2] : NULL);
    if (nargs != 2) return usage("expected one heap name");
    if (force && strcmp(cmd, "rm") != 0) return usage("--force goes with rm");
    if (all && strcmp(cmd, "owners") != 0) return usage("--all goes with owners");
    if (strcmp(cmd, "owners") == 0) return cmd_owners(args[1], all);
    if (strcmp(cmd, "stat") == 0) return cmd_stat(args[1]);
    if (strcmp(cmd, "check") == 0) return cmd_check(args[1]);
    if (strcmp(cmd, "reclaim") == 0) return cmd_reclaim(args[1]);
    if (strcmp(cmd, "rm") == 0) return cmd_rm(args[1], force);
    return usage("unknown command");
}
