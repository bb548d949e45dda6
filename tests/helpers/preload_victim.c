/* SPDX-License-Identifier: MIT */
/*
 * preload_victim: a plain program (it links nothing of globalalloc) that tests/preload_errors.sh
 * runs under LD_PRELOAD=libglobalalloc-preload.so, one mode per run:
 *
 *   which        prints the object that defines malloc (the script checks it is the preload)
 *   api          exercises every replaced function once; prints "api: ok" or each failure
 *   enomem       impossible sizes: NULL (or ENOMEM) with errno ENOMEM; prints "enomem: ok"
 *   double-free  frees a block twice          -> must abort with a report on stderr
 *   foreign-stack frees a stack address + 16  -> must abort with a report on stderr
 *   foreign-mmap  frees an mmap'd page         -> must abort with a report on stderr
 *   interior     frees a block's address + 16 -> must abort with a report on stderr
 *
 * A misuse mode that comes back from free prints "survived" and exits 3, so the script can tell
 * "not detected" from "detected but did not abort". Pointers pass through launder() so the
 * compiler can neither warn about nor fold away the deliberate misuse: clang, for one, folds
 * "aligned_alloc(...) == NULL" to false when the block is not otherwise used.
 */
#include <dlfcn.h>
#include <errno.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static int failures;

#define EXPECT(cond)                                                                               \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            failures++;                                                                            \
            printf("FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond);                                 \
        }                                                                                          \
    } while (0)

static void *volatile launder_slot;
static void *launder(void *p)
{
    launder_slot = p;
    return launder_slot;
}

static volatile size_t huge = SIZE_MAX;

static int mode_which(void)
{
    void *(*volatile fn)(size_t) = malloc;
    Dl_info info;
    if (!dladdr((void *)(uintptr_t)fn, &info) || !info.dli_fname) {
        printf("malloc-from: unknown\n");
        return 1;
    }
    printf("malloc-from: %s\n", info.dli_fname);
    return 0;
}

static int is_aligned(const void *p, size_t a)
{
    return ((uintptr_t)p & (a - 1)) == 0;
}

static void check_aligned_family(void)
{
    long page = sysconf(_SC_PAGESIZE);
    for (size_t a = sizeof(void *); a <= ((size_t)1 << 21); a <<= 1) {
        void *p = NULL;
        EXPECT(posix_memalign(&p, a, 100) == 0 && p && is_aligned(p, a));
        if (p) memset(p, 0x5a, 100);
        free(p);
        void *q = aligned_alloc(a, a * 2);
        EXPECT(q && is_aligned(q, a));
        free(q);
        void *r = memalign(a, 24);
        EXPECT(r && is_aligned(r, a));
        free(r);
    }
    void *p = NULL;
    EXPECT(posix_memalign(&p, 24, 100) == EINVAL); /* not a power of two */
    void *v = valloc(10);
    EXPECT(v && is_aligned(v, (size_t)page));
    free(v);
    void *pv = pvalloc(10);
    EXPECT(pv && is_aligned(pv, (size_t)page) && malloc_usable_size(pv) >= (size_t)page);
    free(pv);
}

static int mode_api(void)
{
    /* malloc / usable size / free */
    for (size_t n = 0; n < 70000; n = n * 3 + 1) {
        unsigned char *p = malloc(n);
        EXPECT(p != NULL && is_aligned(p, 16));
        if (!p) continue;
        EXPECT(malloc_usable_size(p) >= n);
        memset(p, 0xa5, n);
        free(p);
    }
    void *z1 = malloc(0), *z2 = malloc(0);
    EXPECT(z1 && z2 && z1 != z2);
    free(z1);
    free(z2);
    free(NULL);
    EXPECT(malloc_usable_size(NULL) == 0);

    /* calloc zeroes even recycled memory */
    for (int round = 0; round < 50; round++) {
        unsigned char *d = malloc(4000);
        EXPECT(d != NULL);
        if (d) memset(d, 0xff, 4000);
        free(d);
        unsigned char *c = calloc(40, 100);
        EXPECT(c != NULL);
        for (size_t i = 0; c && i < 4000; i++) {
            if (c[i]) {
                EXPECT(c[i] == 0);
                break;
            }
        }
        free(c);
    }

    /* realloc keeps contents through growth, shrink, and a move to a large block */
    unsigned char *r = realloc(NULL, 10);
    EXPECT(r != NULL);
    for (int i = 0; r && i < 10; i++)
        r[i] = (unsigned char)i;
    size_t sizes[] = {20, 1000, 100000, 5000000, 64, 7};
    for (size_t k = 0; r && k < sizeof sizes / sizeof sizes[0]; k++) {
        r = realloc(r, sizes[k]);
        EXPECT(r != NULL);
        for (int i = 0; r && i < 7; i++)
            EXPECT(r[i] == (unsigned char)i);
    }
    free(r);

    /* reallocarray: normal use and overflow */
    int *a = reallocarray(NULL, 100, sizeof(int));
    EXPECT(a != NULL);
    if (a) {
        a[99] = 42;
        errno = 0;
        EXPECT(reallocarray(launder(a), huge / 2, 4) == NULL && errno == ENOMEM);
        EXPECT(a[99] == 42); /* unchanged on failure */
    }
    free(a);

    check_aligned_family();
    if (failures) return 1;
    printf("api: ok\n");
    return 0;
}

static int mode_enomem(void)
{
    errno = 0;
    EXPECT(launder(malloc(huge)) == NULL && errno == ENOMEM);
    errno = 0;
    EXPECT(launder(malloc(huge / 2 + 1)) == NULL && errno == ENOMEM); /* > PTRDIFF_MAX */
    errno = 0;
    EXPECT(launder(calloc(huge / 2, 4)) == NULL && errno == ENOMEM); /* n*size overflows */
    errno = 0;
    EXPECT(launder(calloc(4, huge / 2)) == NULL && errno == ENOMEM);
    errno = 0;
    EXPECT(launder(calloc(1, huge)) == NULL && errno == ENOMEM); /* no overflow, just too big */

    char *p = malloc(32);
    EXPECT(p != NULL);
    if (p) {
        strcpy(p, "still here");
        errno = 0;
        EXPECT(launder(realloc(launder(p), huge)) == NULL && errno == ENOMEM);
        EXPECT(strcmp(p, "still here") == 0);
    }
    free(p);

    void *q = (void *)1;
    EXPECT(posix_memalign(&q, 64, huge) == ENOMEM);
    errno = 0;
    EXPECT(launder(aligned_alloc(64, huge)) == NULL && errno == ENOMEM);
    errno = 0;
    EXPECT(launder(memalign(4096, huge)) == NULL && errno == ENOMEM);
    errno = 0;
    EXPECT(launder(valloc(huge)) == NULL && errno == ENOMEM);
    if (failures) return 1;
    printf("enomem: ok\n");
    return 0;
}

static int survived(const char *what)
{
    printf("survived: %s returned\n", what);
    fflush(stdout);
    return 3;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    const char *mode = argc > 1 ? argv[1] : "";
    if (strcmp(mode, "which") == 0) return mode_which();
    if (strcmp(mode, "api") == 0) return mode_api();
    if (strcmp(mode, "enomem") == 0) return mode_enomem();
    if (strcmp(mode, "double-free") == 0) {
        char *p = malloc(64);
        if (!p) return 1;
        p[0] = 1;
        free(p);
        free(launder(p));
        return survived("double free");
    }
    if (strcmp(mode, "foreign-stack") == 0) {
        char buf[256];
        memset(buf, 0, sizeof buf);
        free(launder(buf + 16));
        return survived("free of a stack address");
    }
    if (strcmp(mode, "foreign-mmap") == 0) {
        char *m = mmap(NULL, 65536, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (m == MAP_FAILED) return 1;
        free(launder(m + 4096));
        return survived("free of an mmap'd page");
    }
    if (strcmp(mode, "interior") == 0) {
        char *p = malloc(64);
        if (!p) return 1;
        free(launder(p + 16));
        return survived("free of an interior pointer");
    }
    fprintf(stderr, "usage: preload_victim which|api|enomem|double-free|foreign-stack|"
                    "foreign-mmap|interior\n");
    return 2;
}
