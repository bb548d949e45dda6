/* SPDX-License-Identifier: MIT */
/*
 * The globalalloc demo: the three classic "global state" patterns of C programs, built on the
 * library and exercised from several threads at once --
 *   1. a global data store (global_store.c, Win32 GlobalAlloc/GlobalReAlloc storage),
 *   2. a singleton manager (singleton.c, native ga_calloc),
 *   3. a module-level settings registry (settings.c, native moveable handles);
 * then a Win32 moveable block that moves while locked, two processes sharing settings and a
 * list through a shared heap, and last one block leaked on purpose, which the library's debug
 * heap (switched on first thing in main) finds and reports by function and line.
 *
 * Every claim the demo prints is checked; a failed check prints "FAILED:" and the process
 * exits nonzero (tests/demo.sh reads these lines). Worker threads only record what they saw;
 * main does all the printing.
 */
#include "global_store.h"
#include "settings.h"
#include "singleton.h"
#include "shared_board.h"
#include <globalalloc.h>
#include <globalalloc/win32.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/wait.h>

static int failures;

static void check(int ok, const char *what)
{
    if (!ok) {
        failures++;
        printf("FAILED: %s\n", what);
    }
}

static void start_threads(pthread_t *t, int n, void *(*fn)(void *), void *args, size_t arg_size)
{
    for (int i = 0; i < n; i++)
        if (pthread_create(&t[i], NULL, fn, (char *)args + (size_t)i * arg_size) != 0) {
            perror("pthread_create");
            exit(1);
        }
}

static void join_threads(pthread_t *t, int n)
{
    for (int i = 0; i < n; i++)
        pthread_join(t[i], NULL);
}

/* ---- pattern 1: the global data store ------------------------------------------------- */

#define STORE_THREADS 4
#define STORE_ADDS    250

typedef struct {
    int id;
    pthread_barrier_t *go;
    int failed;
} store_worker_t;

static void *store_adder(void *arg)
{
    store_worker_t *w = arg;
    char label[20];
    pthread_barrier_wait(w->go);
    for (int i = 0; i < STORE_ADDS; i++) {
        snprintf(label, sizeof label, "t%d-item%d", w->id, i);
        if (store_add(w->id, i, label) != 0) w->failed++;
    }
    return NULL;
}

/* Copies the store while the adders run: each copy must be a consistent prefix (ids 1..n in
 * order, because ids are handed out under the same lock that appends). */
static void *store_copier(void *arg)
{
    store_worker_t *w = arg;
    pthread_barrier_wait(w->go);
    for (int round = 0; round < 200; round++) {
        size_t n;
        store_item_t *copy = store_copy(&n);
        if (n == (size_t)-1) {
            w->failed++;
            continue;
        }
        for (size_t i = 0; i < n; i++)
            if (copy[i].id != i + 1) w->failed++;
        ga_free(copy);
    }
    return NULL;
}

/* Every thread's items are present exactly once, in the order that thread added them. */
static int copy_matches(const store_item_t *items, size_t n, int first_owner)
{
    int next[STORE_THREADS + 1] = {0};
    for (size_t i = 0; i < n; i++) {
        int o = items[i].owner;
        char want[20];
        if (o < first_owner || o > STORE_THREADS || items[i].id != i + 1) return 0;
        snprintf(want, sizeof want, "t%d-item%d", o, next[o]);
        if (items[i].value != next[o] || strcmp(items[i].label, want) != 0) return 0;
        next[o]++;
    }
    for (int o = first_owner; o <= STORE_THREADS; o++)
        if (o > 0 && next[o] != STORE_ADDS) return 0;
    return 1;
}

static void demo_store(void)
{
    printf("\n== 1. Global data store (Win32 GlobalAlloc/GlobalReAlloc storage) ==\n");
    store_add(0, 0, "t0-item0");
    store_add(0, 1, "t0-item1");
    store_add(0, 2, "t0-item2");
    printf("store: main added 3 items; the store has %zu items\n", store_count());

    pthread_t t[STORE_THREADS + 1];
    store_worker_t w[STORE_THREADS + 1];
    pthread_barrier_t go;
    pthread_barrier_init(&go, NULL, STORE_THREADS + 1);
    for (int i = 0; i <= STORE_THREADS; i++)
        w[i] = (store_worker_t){i + 1, &go, 0};
    start_threads(t, STORE_THREADS, store_adder, w, sizeof w[0]);
    start_threads(&t[STORE_THREADS], 1, store_copier, &w[STORE_THREADS], sizeof w[0]);
    join_threads(t, STORE_THREADS + 1);
    pthread_barrier_destroy(&go);

    int worker_failures = 0;
    for (int i = 0; i <= STORE_THREADS; i++)
        worker_failures += w[i].failed;
    size_t expected = 3 + STORE_THREADS * STORE_ADDS;
    size_t count = store_count();
    printf("store: %d threads added %d items each while another thread copied the store 200 "
           "times\n",
           STORE_THREADS, STORE_ADDS);
    printf("store: the store has %zu items after the adds (expected %zu)\n", count, expected);
    check(count == expected, "store item count after the adds");
    check(worker_failures == 0, "store adds and concurrent copies all succeeded and were "
                                "consistent");

    size_t n;
    store_item_t *copy = store_copy(&n);
    int matches = copy && n == expected && copy_matches(copy, n, 0);
    printf("store: a copy of all items has %zu items and %s the store\n", n,
           matches ? "matches" : "DOES NOT match");
    check(matches, "store copy matches");
    /* Changing the copy must not change the store. */
    if (copy) copy[0].value = -1;
    ga_free(copy);
    copy = store_copy(&n);
    check(copy && copy[0].value == 0, "store copy is independent of the store");
    ga_free(copy);

    store_clear();
    copy = store_copy(&n);
    printf("store: after clear the store has %zu items (a copy has %zu)\n", store_count(), n);
    check(store_count() == 0 && copy == NULL && n == 0, "store clear empties it");

    /* The store is program state: leave a couple of items in it until exit. */
    store_add(0, 1, "kept-until-exit");
    store_add(0, 2, "kept-until-exit");
}

/* ---- pattern 2: the singleton manager ------------------------------------------------- */

#define SINGLETON_THREADS 8
#define TICKETS_EACH      100

typedef struct {
    int id;
    pthread_barrier_t *go;
    manager_t *seen;
    unsigned long ticket_sum;
} single_worker_t;

static void *singleton_user(void *arg)
{
    single_worker_t *w = arg;
    pthread_barrier_wait(w->go); /* all threads race into the first manager_get() together */
    w->seen = manager_get();
    for (int i = 0; i < TICKETS_EACH && w->seen; i++)
        w->ticket_sum += manager_ticket(w->seen, w->id);
    return NULL;
}

static void demo_singleton(void)
{
    printf("\n== 2. Singleton manager (native ga_calloc, pthread_once) ==\n");
    pthread_t t[SINGLETON_THREADS];
    single_worker_t w[SINGLETON_THREADS];
    pthread_barrier_t go;
    pthread_barrier_init(&go, NULL, SINGLETON_THREADS);
    for (int i = 0; i < SINGLETON_THREADS; i++)
        w[i] = (single_worker_t){i + 1, &go, NULL, 0};
    start_threads(t, SINGLETON_THREADS, singleton_user, w, sizeof w[0]);
    join_threads(t, SINGLETON_THREADS);
    pthread_barrier_destroy(&go);

    int same = w[0].seen != NULL;
    unsigned long sum = 0;
    for (int i = 0; i < SINGLETON_THREADS; i++) {
        same &= w[i].seen == w[0].seen;
        sum += w[i].ticket_sum;
    }
    unsigned long total = (unsigned long)SINGLETON_THREADS * TICKETS_EACH;
    int last = -1;
    unsigned long issued = w[0].seen ? manager_tickets_issued(w[0].seen, &last) : 0;
    printf("singleton: created %u time(s) by %d threads racing for it; all threads %s\n",
           manager_creations(), SINGLETON_THREADS,
           same ? "saw the same instance" : "DID NOT see the same instance");
    check(manager_creations() == 1 && same, "singleton created exactly once and shared");
    printf("singleton: it issued %lu tickets (expected %lu), each number exactly once; the last "
           "went to thread %d\n",
           issued, total, last);
    /* Unique tickets 1..total sum to total*(total+1)/2; a lost update would break the sum. */
    check(issued == total && sum == total * (total + 1) / 2, "singleton tickets unique");
    check(manager_get() == w[0].seen, "singleton is the same on a later call");
}

/* ---- pattern 3: the settings registry ------------------------------------------------- */

#define SETTINGS_WRITERS 3
#define SETTINGS_READERS 3
#define SETTINGS_ROUNDS  300

typedef struct {
    int id;
    pthread_barrier_t *go;
    int failed;
} settings_worker_t;

/* Writers store "w<id>:<len>:" followed by len 'x's, so the value's size (and so its block)
 * keeps changing; readers check that whatever they see is one whole, well-formed value. */
static void *settings_writer(void *arg)
{
    settings_worker_t *w = arg;
    char buf[600];
    pthread_barrier_wait(w->go);
    for (int i = 0; i < SETTINGS_ROUNDS; i++) {
        int len = (i * 37 + w->id * 11) % 500;
        int h = snprintf(buf, sizeof buf, "w%d:%d:", w->id, len);
        memset(buf + h, 'x', (size_t)len);
        buf[h + len] = '\0';
        if (settings_set("greeting", buf) != 0) w->failed++;
    }
    return NULL;
}

static void *settings_reader(void *arg)
{
    settings_worker_t *w = arg;
    char buf[600];
    pthread_barrier_wait(w->go);
    for (int i = 0; i < SETTINGS_ROUNDS; i++) {
        int n = settings_get("greeting", buf, sizeof buf);
        int id, len, h = 0;
        if (n < 0) {
            w->failed++;
        } else if (strcmp(buf, "hello") != 0) {
            if (sscanf(buf, "w%d:%d:%n", &id, &len, &h) != 2 || h == 0 ||
                strspn(buf + h, "x") != (size_t)len || buf[h + len] != '\0')
                w->failed++;
        }
    }
    return NULL;
}

static void demo_settings(void)
{
    printf("\n== 3. Settings registry (native ga_handle_alloc/lock/realloc values) ==\n");
    int rc = settings_define("log_level", "info");
    rc |= settings_define("max_items", "100");
    rc |= settings_define("greeting", "hello");
    check(rc == 0, "settings keys defined");
    check(settings_define("log_level", "x") == GA_EEXIST, "settings key defined twice refused");

    char buf[64];
    settings_get("log_level", buf, sizeof buf);
    printf("settings: %zu keys declared; log_level = \"%s\"\n", settings_count(), buf);
    rc = settings_set("log_level", "debug");
    settings_get("log_level", buf, sizeof buf);
    printf("settings: update of log_level: %s; log_level = \"%s\"\n",
           rc == 0 ? "accepted" : ga_err_name(rc), buf);
    check(rc == 0 && strcmp(buf, "debug") == 0, "settings update of a known key");

    rc = settings_set("colour", "blue");
    printf("settings: update of unknown key 'colour' refused: %s (%s)\n", ga_err_name(rc),
           ga_strerror(rc));
    check(rc == GA_ENOENT, "settings update of an unknown key is refused with GA_ENOENT");
    check(settings_get("colour", buf, sizeof buf) == GA_ENOENT && settings_count() == 3,
          "settings: the refused key was not created");

    pthread_t t[SETTINGS_WRITERS + SETTINGS_READERS];
    settings_worker_t w[SETTINGS_WRITERS + SETTINGS_READERS];
    pthread_barrier_t go;
    int nt = SETTINGS_WRITERS + SETTINGS_READERS;
    pthread_barrier_init(&go, NULL, (unsigned)nt);
    for (int i = 0; i < nt; i++)
        w[i] = (settings_worker_t){i + 1, &go, 0};
    start_threads(t, SETTINGS_WRITERS, settings_writer, w, sizeof w[0]);
    start_threads(&t[SETTINGS_WRITERS], SETTINGS_READERS, settings_reader, &w[SETTINGS_WRITERS],
                  sizeof w[0]);
    join_threads(t, nt);
    pthread_barrier_destroy(&go);
    int bad = 0;
    for (int i = 0; i < nt; i++)
        bad += w[i].failed;
    printf("settings: %d threads rewrote \"greeting\" %d times each (values of 6..505 bytes) "
           "while %d threads read it: %d torn or failed reads/writes\n",
           SETTINGS_WRITERS, SETTINGS_ROUNDS, SETTINGS_READERS, bad);
    check(bad == 0, "settings concurrent updates and reads are whole");
}

/* ---- a moveable block that moves while locked ------------------------------------------- */

static void demo_moveable(void)
{
    printf("\n== 4. A moveable block: locked, moved by GlobalReAlloc, unlocked ==\n");
    const char text[] = "moveable data survives the move";
    HGLOBAL h = GlobalAlloc(GMEM_MOVEABLE, 64);
    char *before = h ? GlobalLock(h) : NULL;
    if (!before) {
        check(0, "moveable block allocated and locked");
        return;
    }
    memcpy(before, text, sizeof text);
    uintptr_t old_data = (uintptr_t)before; /* kept as a number: the pointer dies in the move */
    printf(
        "moveable: GlobalAlloc(GMEM_MOVEABLE, 64) gave handle %p; GlobalLock -> data at %#" PRIxPTR
        "\n",
        h, old_data);

    /* Locked, yet GMEM_MOVEABLE lets the heap move the data; 64 bytes -> 256 KiB cannot stay in
     * place in a size-class heap. The handle is what the program keeps, and it stays valid. */
    HGLOBAL h2 = GlobalReAlloc(h, 256 * 1024, GMEM_MOVEABLE);
    char *after = h2 ? GlobalLock(h2) : NULL;
    uintptr_t new_data = (uintptr_t)after;
    printf("moveable: GlobalReAlloc(h, 262144, GMEM_MOVEABLE) while locked returned handle %p; "
           "GlobalLock -> data at %#" PRIxPTR "\n",
           h2, new_data);
    printf("moveable: handle unchanged: %s\n", h2 == h ? "yes" : "no");
    printf("moveable: data pointer changed: %s\n", after && new_data != old_data ? "yes" : "no");
    int kept = after && memcmp(after, text, sizeof text) == 0;
    printf("moveable: contents kept across the move: %s\n", kept ? "yes" : "no");
    check(h2 == h, "moveable handle unchanged by GlobalReAlloc");
    check(after && new_data != old_data, "moveable data moved by GlobalReAlloc");
    check(kept, "moveable contents kept");

    /* Two locks are held now (one from before the move, one after): unlock both. */
    BOOL still = GlobalUnlock(h);
    SetLastError(ERROR_INVALID_HANDLE);
    BOOL last = GlobalUnlock(h);
    DWORD err = GetLastError();
    printf("moveable: GlobalUnlock twice -> %s, then %s with last error %u (NO_ERROR: unlocked)\n",
           still ? "TRUE" : "FALSE", last ? "TRUE" : "FALSE", (unsigned)err);
    check(still && !last && err == NO_ERROR, "moveable block unlocked after two unlocks");
    check(GlobalFree(h) == NULL, "moveable block freed");
}

/* ---- 5. two processes share settings and a list through a shared heap ------------------- */

static void demo_shared(void)
{
    printf("\n== 5. Two processes share a settings object and a growing list (shared heap) ==\n");
    char name[64];
    snprintf(name, sizeof name, "ga-demo-%ld", (long)getpid());
    int created = 0;
    ga_heap_t *heap = ga_shared_open(name, (size_t)16 << 20, GA_SHARED_CREATE, &created);
    check(heap != NULL && created, "shared heap created");
    if (heap == NULL)
        return;
    ga_set_share_heap(heap); /* GlobalAlloc(GMEM_MOVEABLE | GMEM_SHARE) now lands there */
    board_t *b = board_open(heap, NULL);
    board_set_settings(b, "light", 3);
    board_append(b, "parent: first line");
    unsigned long long h0 = board_list_handle(b);
    printf("shared: parent created heap '%s' with settings (theme light, volume 3) and a list "
           "(handle %#llx)\n",
           name, h0);
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        /* A separate process: it attaches the heap by name and finds the objects by name. */
        ga_heap_t *mine = ga_shared_open(name, 0, 0, NULL);
        if (mine == NULL)
            _exit(2);
        ga_set_share_heap(mine);
        int made = 1;
        board_t *cb = board_open(mine, &made);
        board_settings_t s;
        board_get_settings(cb, &s);
        printf("shared: child process attached; it reads theme %s, volume %d (version %u)\n",
               s.theme, s.volume, s.version);
        board_set_settings(cb, "dark", 7);
        char line[64];
        for (int i = 0; i < 100; i++) {
            snprintf(line, sizeof line, "child: line %d", i);
            board_append(cb, line);
        }
        int ok = made == 0 && board_list_handle(cb) == h0;
        board_close(cb);
        ga_shared_close(mine);
        fflush(stdout);
        _exit(ok ? 0 : 3);
    }
    char line[64];
    for (int i = 0; i < 100; i++) { /* at the same time as the child */
        snprintf(line, sizeof line, "parent: line %d", i);
        board_append(b, line);
    }
    /* The child's lines: waited for on the board's condition variable, not by polling. */
    int waited = board_wait_count(b, 201, 5000);
    printf("shared: the parent waited on the board's condition variable for all 201 lines: %s\n",
           waited == 0 ? "there" : ga_err_name(waited));
    check(waited == 0, "shared condition variable wait");
    int status = 0;
    waitpid(pid, &status, 0);
    check(WIFEXITED(status) && WEXITSTATUS(status) == 0, "shared child found the same objects");
    board_settings_t s;
    board_get_settings(b, &s);
    size_t n = board_count(b), from_parent = 0, from_child = 0;
    for (size_t i = 0; i < n; i++) {
        board_line(b, i, line, sizeof line);
        from_parent += strncmp(line, "parent:", 7) == 0;
        from_child += strncmp(line, "child:", 6) == 0;
    }
    printf("shared: after the child exited the settings read theme %s, volume %d (version %u)\n",
           s.theme, s.volume, s.version);
    printf("shared: the list has %zu lines, %zu from the parent and %zu from the child, under the "
           "same handle %#llx in both processes\n",
           n, from_parent, from_child, (unsigned long long)board_list_handle(b));
    check(strcmp(s.theme, "dark") == 0 && s.volume == 7 && s.version == 2,
          "shared settings updated by the child");
    check(n == 201 && from_parent == 101 && from_child == 100, "shared list has every line");
    int rc = ga_heap_check(heap, 0);
    printf("shared: shared heap check: %s\n", rc == 0 ? "clean" : ga_err_name(rc));
    check(rc == 0, "shared heap check clean");
    board_destroy(b);
    ga_set_share_heap(NULL);
    ga_shared_close(heap);
    ga_shared_unlink(name, 0);
}

/* ---- 6. a deliberate leak, found by the debug heap ---------------------------------------- */

#define LEAK_REQUEST 100

/* The leaked block's address, scrambled: a number, not a pointer, so nothing points to the
 * block (what makes it a leak to the debug heap's scan), yet the demo can free it afterwards. */
static volatile uintptr_t leak_scrambled;

__attribute__((noinline)) static void leak_one_block(void)
{
    char *p = ga_malloc(LEAK_REQUEST); /* the deliberate leak */
    check(p != NULL, "leak block allocated");
    if (!p) return;
    memset(p, 0x5a, LEAK_REQUEST);
    leak_scrambled = ~(uintptr_t)p;
}

/* Overwrites the stack below the caller, where a dead frame may still hold the pointer. */
__attribute__((noinline)) static void clear_dead_stack(void)
{
    volatile char junk[16384];
    memset((char *)junk, 0, sizeof junk);
}

static void demo_leak(void)
{
    printf("\n== 6. A deliberate leak, found by the debug heap ==\n");
    leak_one_block();
    clear_dead_stack();
    printf("leak: leak_one_block() allocated %d bytes and lost the pointer; the debug heap's "
           "report (ga_leak_report):\n",
           LEAK_REQUEST);
    fflush(stdout);
    long leaks = ga_leak_report(STDOUT_FILENO, 0);
    printf("leak: the report found %ld leaked block(s) (expected 1: the deliberate one)\n", leaks);
    check(leaks == 1, "the debug heap reports exactly the deliberate leak");
    /* Shown; now freed, so that the report the debug heap makes at exit finds nothing. */
    ga_free((void *)~leak_scrambled);
    check(ga_leak_count() == 0, "no leak left after freeing the deliberate one");
}

/* ---- main ------------------------------------------------------------------------------ */

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    /* The debug heap from the first allocation on: every block records its allocation stack,
     * so the leak in section 6 is reported by function and line. */
    int rc = ga_debug_enable("1");
    printf("globalalloc %s demo: global state patterns on the Win32 global heap (debug heap: %s)\n",
           ga_version(), rc == 0 ? "on" : ga_err_name(rc));
    check(rc == 0 && ga_debug_enabled(), "debug heap switched on");

    demo_store();
    demo_singleton();
    demo_settings();
    demo_moveable();
    demo_shared();
    demo_leak();

    /* The globals are program state, not leaks (the report above did not list them); torn
     * down here as a program that cleans up at exit would. */
    store_clear();
    manager_destroy();
    settings_destroy();
    rc = ga_heap_check(NULL, 0);
    printf("\nheap check: %s\n", rc == 0 ? "clean" : ga_err_name(rc));
    check(rc == 0, "heap check clean");
    printf("%s: %d failed check(s)\n", failures ? "demo FAILED" : "demo done", failures);
    return failures ? 1 : 0;
}
