/* SPDX-License-Identifier: MIT */
/*
 * A program that uses an *installed* globalalloc, as a downstream project would: built by
 * tests/install.sh with pkg-config and with find_package(globalalloc). It checks that the
 * headers and the library found agree (version), and that both API styles link and work.
 */
#include <globalalloc.h>
#include <globalalloc/win32.h>
#include <stdio.h>
#include <string.h>

int main(void)
{
    int bad = 0;
    if (ga_version_number() != GA_VERSION_HEX) {
        printf("prog: header version %d but library version %d\n", GA_VERSION_HEX,
               ga_version_number());
        bad++;
    }

    char *p = ga_malloc(100);
    if (!p || ga_usable_size(p) < 100 || !ga_owns(p)) {
        printf("prog: ga_malloc/ga_usable_size/ga_owns failed\n");
        bad++;
    } else {
        strcpy(p, "native");
    }
    ga_free(p);

    HGLOBAL h = GlobalAlloc(GHND, 32);
    char *d = h ? GlobalLock(h) : NULL;
    if (!d || d[0] != 0 || d[31] != 0) {
        printf("prog: GlobalAlloc(GHND)/GlobalLock failed\n");
        bad++;
    } else {
        strcpy(d, "win32");
        GlobalUnlock(h);
    }
    if (h && GlobalFree(h) != NULL) {
        printf("prog: GlobalFree failed\n");
        bad++;
    }

    printf("prog: globalalloc %s: %s\n", ga_version(), bad ? "FAILED" : "ok");
    return bad ? 1 : 0;
}
