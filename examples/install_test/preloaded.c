/* SPDX-License-Identifier: MIT */
/*
 * A program that knows nothing of globalalloc, run by tests/install.sh with the installed
 * preload library in LD_PRELOAD: it prints which file its malloc and free come from, and
 * checks that blocks of many sizes work.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The file that defines the symbol NAME the program's calls resolve to. */
static const char *origin(const char *name)
{
    Dl_info info;
    void *fn = dlsym(RTLD_DEFAULT, name);
    return fn && dladdr(fn, &info) && info.dli_fname ? info.dli_fname : "?";
}

int main(void)
{
    char *blocks[256];
    for (int i = 0; i < 256; i++) {
        blocks[i] = malloc((size_t)i * 97 + 1);
        if (!blocks[i]) return 1;
        memset(blocks[i], i, (size_t)i * 97 + 1);
    }
    for (int i = 0; i < 256; i++)
        free(blocks[i]);
    printf("malloc from %s\n", origin("malloc"));
    printf("free from %s\n", origin("free"));
    return 0;
}
