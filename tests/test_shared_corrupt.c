/* SPDX-License-Identifier: MIT */
/*
 * A corrupted or hostile segment gives errors, never a crash or a write outside the segment.
 * The parent builds a heap with blocks of several sizes, handles and named objects, detaches,
 * then overwrites metadata bytes through its own raw mapping of the file (as a hostile process
 * could). A child attaches and must see the attach refused (header damage) or get GA_ECORRUPT
 * from ga_shared_check (targeted damage), and then survive a battery of every operation. Random
 * damage (random bytes at random metadata positions) must never crash or hang either, and check
 * must answer 0 or GA_ECORRUPT. Under ASan a stray write would also be flagged.
 */
#include "test.h"
#include "shared_test_util.h"
#include "internal.h"
#include "shared/shared_internal.h"
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define MIB ((size_t)1 << 20)

static const char *name;

static uint64_t rng = 88172645463325252ull;
static uint64_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static int quiet(int err, const char *msg, uintptr_t ptr, void *arg)
{
    (void)err, (void)msg, (void)ptr, (void)arg;
    return 1;
}

/* What the parent built: targets for the damage and for the child's battery. */
static struct {
    uint64_t small_off[8], large_off;
    ga_handle_t h_live, h_disc;
} built;

static void build(void)
{
    ga_shared_unlink(name, GA_SHARED_FORCE);
    ga_heap_t *h = ga_shared_open(name, 8 * MIB, GA_SHARED_CREATE | GA_SHARED_EXCL, NULL);
    CHECK(h != NULL);
    if (!h) exit(1);
    static const size_t sizes[8] = {16, 100, 1000, 5000, 16000, 24, 48, 64};
    for (int i = 0; i < 8; i++)
        built.small_off[i] = ga_shared_offset(h, ga_shared_alloc(h, sizes[i]));
    built.large_off = ga_shared_offset(h, ga_shared_alloc(h, 200000));
    built.h_live = ga_shared_handle_alloc(h, 500, GA_HZERO);
    built.h_disc = ga_shared_handle_alloc(h, 0, 0);
    CHECK(ga_shared_object(h, "obj1", 100, 0, NULL) != NULL);
    CHECK(ga_shared_object(h, "obj2", 70000, 0, NULL) != NULL);
    CHECK(ga_shared_object(h, "obj3", 10, 0, NULL) != NULL);
    ASSERT_EQ(ga_shared_check(h, 0), 0);
    ga_shared_close(h);
}

typedef struct {
    unsigned char *raw;
    size_t len;
    shm_header_t *hdr;
    shm_page_t *pages;
} raw_t;

static raw_t raw_open(void)
{
    raw_t r = {0};
    char path[96];
    snprintf(path, sizeof path, "/ga.%s", name);
    int fd = shm_open(path, O_RDWR, 0);
    struct stat st;
    if (fd < 0 || fstat(fd, &st)) abort();
    r.len = (size_t)st.st_size;
    r.raw = mmap(NULL, r.len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (r.raw == MAP_FAILED) abort();
    r.hdr = (shm_header_t *)r.raw;
    r.pages = (shm_page_t *)(r.raw + r.hdr->page_table_off);
    return r;
}

static uint64_t page_of(raw_t *r, uint64_t off)
{
    return (off - r->hdr->data_off) / SHM_PAGE;
}

static shm_hentry_t *hentry(raw_t *r, ga_handle_t h)
{
    uint32_t idx = H_INDEX(h), pg = r->hdr->hchunk[idx / SHM_HCHUNK_ENTRIES] - 1;
    return (shm_hentry_t *)(r->raw + r->hdr->data_off + (uint64_t)pg * SHM_PAGE) +
           idx % SHM_HCHUNK_ENTRIES;
}

static shm_named_t *named(raw_t *r, const char *n)
{
    for (int i = 0; i < SHM_NAMED_MAX; i++)
        if (r->hdr->named[i].state == NAMED_LIVE && strcmp(r->hdr->named[i].name, n) == 0)
            return &r->hdr->named[i];
    abort();
}

/* Small block i's state byte. */
static unsigned char *state_byte(raw_t *r, int i)
{
    uint64_t off = built.small_off[i], pg = page_of(r, off);
    unsigned c = PD_CLASS(r->pages[pg].desc);
    uint32_t idx = (uint32_t)((off % SHM_PAGE - ga__shm_class_hdr(c)) / ga__shm_class_size[c]);
    return r->raw + r->hdr->data_off + pg * SHM_PAGE + idx;
}

/* ---- the child ---------------------------------------------------------------------------- */

/* Every operation once or more; results may be errors, never crashes. Returns check's answer. */
static int battery(ga_heap_t *h)
{
    ga_handle_info_t info;
    void *d = ga__shared_handle_lock(built.h_live);
    if (d) ga__shared_handle_unlock(built.h_live);
    ga__shared_handle_info(built.h_live, &info);
    ga__shared_handle_size(built.h_disc);
    ga__shared_handle_realloc(built.h_live, 3000, GA_HMOVE | GA_HZERO);
    ga__shared_handle_realloc(built.h_disc, 10, 0);
    ga__shared_handle_from_ptr(d);
    ga__shared_handle_modify(built.h_live, GA_HDISCARDABLE, 0);
    ga__shared_handle_free(built.h_disc);
    ga_shared_object_find(h, "obj1", NULL);
    ga_shared_object_find(h, "obj2", NULL);
    ga_shared_object(h, "obj4", 10, 0, NULL);
    ga_shared_object_remove(h, "obj3");
    ga_shared_object_info_t objs[8];
    ga_shared_object_list(h, objs, 8);
    for (int i = 0; i < 8; i++) {
        void *p = ga_shared_ptr(h, built.small_off[i]);
        ga_shared_usable_size(h, p);
        ga_shared_free(h, p);
    }
    void *big = ga_shared_ptr(h, built.large_off);
    if (big && ga_shared_usable_size(h, big)) big = ga_shared_realloc(h, big, 400000);
    ga_shared_free(h, big);
    static void *p[256];
    static ga_handle_t hs[16];
    for (int i = 0; i < 3000; i++) {
        int k = (int)(rnd() % 256), j = (int)(rnd() % 16);
        ga_shared_free(h, p[k]);
        size_t sz = rnd() % 10 ? rnd() % 2000 : rnd() % 300000;
        p[k] = ga_shared_alloc(h, sz);
        if (p[k]) memset(p[k], 0xEE, sz);
        if (i % 8 == 0) {
            ga__shared_handle_free(hs[j]);
            hs[j] = ga_shared_handle_alloc(h, rnd() % 5000, 0);
            char *q = ga__shared_handle_lock(hs[j]);
            if (q) {
                memset(q, 1, ga__shared_handle_size(hs[j]));
                ga__shared_handle_unlock(hs[j]);
            }
        }
    }
    for (int k = 0; k < 256; k++)
        ga_shared_free(h, p[k]);
    ga_shared_stats_t s;
    ga_shared_stats(h, &s);
    ga_shared_handle_list(h, hs, 16);
    ga_shared_reclaim_dead(h);
    return ga_shared_check(h, GA_CHECK_QUIET);
}

enum { EXPECT_OPEN_FAILS, EXPECT_CORRUPT, EXPECT_ANY };

/* Exit codes: 0 as expected (10 in EXPECT_ANY when damage was seen), 1 open wrong, 2 damage
 * not reported, 3 handle lock gave the wrong answer, 4 check answered something else. */
static int child(int expect, int open_err, int lock_err)
{
    alarm(20);
    ga_set_error_handler(quiet, NULL);
    ga_heap_t *h = ga_shared_open(name, 0, 0, NULL);
    if (expect == EXPECT_OPEN_FAILS) return !h && ga_last_error() == open_err ? 0 : 1;
    if (!h)
        return expect == EXPECT_ANY &&
                       (ga_last_error() == GA_ECORRUPT || ga_last_error() == GA_EFORMAT)
                   ? 10
                   : 1;
    int rc = ga_shared_check(h, GA_CHECK_QUIET);
    if (expect == EXPECT_CORRUPT && rc != GA_ECORRUPT) return 2;
    if (rc != 0 && rc != GA_ECORRUPT) return 4;
    if (lock_err) {
        void *d = ga__shared_handle_lock(built.h_live);
        if (d || ga_last_error() != lock_err) return 3;
    }
    int rc2 = battery(h);
    if (rc2 != 0 && rc2 != GA_ECORRUPT) return 4;
    return expect == EXPECT_ANY && (rc || rc2) ? 10 : 0;
}

static int run_child(int expect, int open_err, int lock_err)
{
    pid_t pid = fork();
    if (pid == 0) _exit(child(expect, open_err, lock_err));
    int st = 0;
    waitpid(pid, &st, 0);
    if (WIFSIGNALED(st)) return 100 + WTERMSIG(st);
    return WEXITSTATUS(st);
}

/* ---- targeted damage ---------------------------------------------------------------------- */

typedef struct {
    const char *what;
    int expect, open_err, lock_err;
    void (*damage)(raw_t *r);
} scenario_t;

static void d_magic(raw_t *r)
{
    r->hdr->magic ^= 1;
}
static void d_version(raw_t *r)
{
    r->hdr->version = 7;
}
static void d_heap_id(raw_t *r)
{
    r->hdr->heap_id ^= 3;
}
static void d_max_pages(raw_t *r)
{
    r->hdr->max_pages += 1;
}
static void d_top(raw_t *r)
{
    r->hdr->npages_top = r->hdr->max_pages;
}
static void d_small_class(raw_t *r)
{
    uint64_t pg = page_of(r, built.small_off[1]);
    r->pages[pg].desc = PD_MAKE(PG_SMALL, 0, 200, 0);
}
static void d_kind(raw_t *r)
{
    r->pages[page_of(r, built.small_off[2])].desc = 9;
}
static void d_stray_bits(raw_t *r)
{
    r->pages[page_of(r, built.small_off[2])].desc |= 1u << 28;
}
static void d_large_n(raw_t *r)
{
    uint64_t pg = page_of(r, built.large_off);
    r->pages[pg].desc = (r->pages[pg].desc & 0xFFFFFFFFu) | ((uint64_t)0xFFFFFF << 32);
}
static void d_tail(raw_t *r)
{
    uint64_t pg = page_of(r, built.large_off) + 1;
    r->pages[pg].desc = PD_MAKE(PG_TAIL, 0, 0, 0x7FFF);
}
static void d_large_owner(raw_t *r)
{
    uint64_t pg = page_of(r, built.large_off);
    r->pages[pg].desc = (r->pages[pg].desc & ~(uint64_t)0xFF00) | ((uint64_t)ST_CACHED(40) << 8);
}
static void d_state_invalid(raw_t *r)
{
    *state_byte(r, 0) = 0x3F;
}
static void d_state_freed(raw_t *r)
{
    *state_byte(r, 3) = ST_FREE;
}
static void d_state_heap(raw_t *r)
{
    *state_byte(r, 4) = ST_ALLOC(SHM_SLOT_HEAP);
}
static void d_partial(raw_t *r)
{
    r->hdr->classes[0].partial_head = 0xFFFFFF;
}
static void d_partial_cycle(raw_t *r)
{
    uint64_t pg = page_of(r, built.small_off[1]);
    unsigned c = PD_CLASS(r->pages[pg].desc);
    r->hdr->classes[c].partial_head = (uint32_t)pg + 1;
    r->pages[pg].in_partial = 1;
    r->pages[pg].next_partial = (uint32_t)pg + 1;
}
static void d_free_count(raw_t *r)
{
    r->pages[page_of(r, built.small_off[5])].free_count += 5;
}
static void d_h_off(raw_t *r)
{
    hentry(r, built.h_live)->data_off = 0x7FFFFFFFFFF0ull;
}
static void d_h_off_meta(raw_t *r)
{
    hentry(r, built.h_live)->data_off = 64;
}
static void d_h_size(raw_t *r)
{
    hentry(r, built.h_live)->size = (uint64_t)1 << 40;
}
static void d_h_flags(raw_t *r)
{
    atomic_fetch_or(&hentry(r, built.h_live)->word, 0xFFull << 40);
}
static void d_h_creator(raw_t *r)
{
    hentry(r, built.h_live)->creator = 0xFFFFFFFFu;
}
static void d_h_prefix(raw_t *r)
{
    *(uint32_t *)(r->raw + hentry(r, built.h_live)->data_off) ^= 0xFF;
}
static void d_hchunk(raw_t *r)
{
    r->hdr->hchunk[0] = 999999;
}
static void d_stripe_free(raw_t *r)
{
    r->hdr->stripes[2].free_head = 123456;
}
static void d_stripe_intent(raw_t *r)
{
    r->hdr->stripes[3].intent.idx = 999999999;
    r->hdr->stripes[3].intent.op = INTENT_HFREE;
}
static void d_named_off(raw_t *r)
{
    named(r, "obj1")->data_off = 8;
}
static void d_named_size(raw_t *r)
{
    named(r, "obj2")->size = (uint64_t)1 << 50;
}
static void d_named_name(raw_t *r)
{
    memset(named(r, "obj1")->name, 'A', SHM_OBJNAME_MAX + 1);
}
static void d_named_count(raw_t *r)
{
    r->hdr->named_count = 77;
}
static void d_named_state(raw_t *r)
{
    named(r, "obj3")->state = 9;
}
static void d_slot_cached(raw_t *r)
{
    *state_byte(r, 6) = ST_CACHED(SHM_SLOT_ORPHAN);
}

static const scenario_t scenarios[] = {
    {"header magic", EXPECT_OPEN_FAILS, GA_EFORMAT, 0, d_magic},
    {"header version", EXPECT_OPEN_FAILS, GA_EFORMAT, 0, d_version},
    {"header heap id", EXPECT_OPEN_FAILS, GA_ECORRUPT, 0, d_heap_id},
    {"header layout", EXPECT_OPEN_FAILS, GA_EFORMAT, 0, d_max_pages},
    {"committed top past the file", EXPECT_OPEN_FAILS, GA_ECORRUPT, 0, d_top},
    {"page class", EXPECT_CORRUPT, 0, 0, d_small_class},
    {"page kind", EXPECT_CORRUPT, 0, 0, d_kind},
    {"page stray bits", EXPECT_CORRUPT, 0, 0, d_stray_bits},
    {"large block length", EXPECT_CORRUPT, 0, 0, d_large_n},
    {"large block tail", EXPECT_CORRUPT, 0, 0, d_tail},
    {"large block owner", EXPECT_CORRUPT, 0, 0, d_large_owner},
    {"state byte invalid", EXPECT_CORRUPT, 0, 0, d_state_invalid},
    {"state byte freed", EXPECT_CORRUPT, 0, 0, d_state_freed},
    {"state byte heap-owned", EXPECT_CORRUPT, 0, 0, d_state_heap},
    {"state byte cached by a non-process", EXPECT_CORRUPT, 0, 0, d_slot_cached},
    {"class list head", EXPECT_CORRUPT, 0, 0, d_partial},
    {"class list cycle", EXPECT_CORRUPT, 0, 0, d_partial_cycle},
    {"page free count", EXPECT_CORRUPT, 0, 0, d_free_count},
    {"handle data offset", EXPECT_CORRUPT, 0, GA_ECORRUPT, d_h_off},
    {"handle data in metadata", EXPECT_CORRUPT, 0, GA_ECORRUPT, d_h_off_meta},
    {"handle size", EXPECT_CORRUPT, 0, GA_ECORRUPT, d_h_size},
    {"handle flags", EXPECT_CORRUPT, 0, 0, d_h_flags},
    {"handle creator", EXPECT_CORRUPT, 0, 0, d_h_creator},
    {"handle block prefix", EXPECT_CORRUPT, 0, GA_ECORRUPT, d_h_prefix},
    {"handle chunk directory", EXPECT_CORRUPT, 0, GA_EHANDLE, d_hchunk},
    {"handle free list", EXPECT_CORRUPT, 0, 0, d_stripe_free},
    {"handle intent record", EXPECT_CORRUPT, 0, 0, d_stripe_intent},
    {"object data offset", EXPECT_CORRUPT, 0, 0, d_named_off},
    {"object size", EXPECT_CORRUPT, 0, 0, d_named_size},
    {"object name", EXPECT_CORRUPT, 0, 0, d_named_name},
    {"object count", EXPECT_CORRUPT, 0, 0, d_named_count},
    {"object state", EXPECT_CORRUPT, 0, 0, d_named_state},
};

TEST(targeted_damage)
{
    for (size_t i = 0; i < sizeof scenarios / sizeof scenarios[0]; i++) {
        const scenario_t *sc = &scenarios[i];
        build();
        raw_t r = raw_open();
        sc->damage(&r);
        munmap(r.raw, r.len);
        int rc = run_child(sc->expect, sc->open_err, sc->lock_err);
        if (rc != 0) fprintf(stderr, "damage '%s': child answered %d\n", sc->what, rc);
        ASSERT_EQ(rc, 0);
    }
}

/* ---- random damage ------------------------------------------------------------------------ */

/* A random byte range of metadata (never the bytes of a mutex: a scribbled lock may block
 * forever, a denial of service the design does not claim to prevent). */
static void random_damage(raw_t *r)
{
    shm_header_t *h = r->hdr;
    uint64_t top = h->npages_top;
    unsigned char *at;
    size_t span;
    switch (rnd() % 7) {
    case 0: /* page descriptors and bookkeeping */
        at = (unsigned char *)&r->pages[rnd() % top];
        span = sizeof(shm_page_t);
        break;
    case 1: { /* state bytes of a small page */
        uint64_t pg = rnd() % top;
        if (PD_KIND(r->pages[pg].desc) != PG_SMALL) pg = page_of(r, built.small_off[rnd() % 8]);
        at = r->raw + h->data_off + pg * SHM_PAGE;
        span = ga__shm_class_hdr(PD_CLASS(r->pages[pg].desc) % SHM_NCLASS);
        break;
    }
    case 2: /* handle entries */
        at = (unsigned char *)hentry(r, built.h_live) - (rnd() % 2) * sizeof(shm_hentry_t);
        span = 2 * sizeof(shm_hentry_t);
        break;
    case 3: /* named entries in use */
        at = (unsigned char *)named(r, rnd() % 2 ? "obj1" : "obj2");
        span = sizeof(shm_named_t);
        break;
    case 4: { /* class bookkeeping */
        shm_class_t *c = &h->classes[rnd() % SHM_NCLASS];
        at = (unsigned char *)&c->partial_head;
        span = 8;
        break;
    }
    case 5: { /* stripes: intent, free list, counter */
        shm_stripe_t *s = &h->stripes[rnd() % SHM_NSTRIPES];
        at = (unsigned char *)&s->intent;
        span = sizeof s->intent + 8;
        break;
    }
    default: /* header fields after the immutable block */
        at = (unsigned char *)&h->npages_top;
        span = 16;
        break;
    }
    int n = 1 + (int)(rnd() % 4);
    for (int i = 0; i < n; i++)
        at[rnd() % span] = (unsigned char)rnd();
}

TEST(random_damage_never_crashes)
{
    int rounds = 0, seen = 0;
    for (int i = 0; i < 150; i++) {
        build();
        raw_t r = raw_open();
        random_damage(&r);
        munmap(r.raw, r.len);
        int rc = run_child(EXPECT_ANY, 0, 0);
        if (rc != 0 && rc != 10)
            fprintf(stderr, "random damage round %d: child answered %d\n", i, rc);
        CHECK(rc == 0 || rc == 10);
        seen += rc == 10;
        rounds++;
    }
    printf("random damage: %d rounds, %d seen by open or check\n", rounds, seen);
    CHECK(seen > rounds / 3);
}

TEST_MAIN(TEST_ENTRY(targeted_damage), TEST_ENTRY(random_damage_never_crashes))

__attribute__((constructor)) static void setup(void)
{
    name = shm_test_name("corrupt");
    const char *seed = getenv("GA_TEST_SEED");
    rng = seed ? strtoull(seed, NULL, 0) : rng ^ ((uint64_t)getpid() << 20);
    printf("seed %llu\n", (unsigned long long)rng);
}
