/* SPDX-License-Identifier: MIT */
/*
 * ga_shared_peer: a test helper (not installed) that plays another process attached to a shared
 * heap, for tests/cli_shared.sh.
 *   ga_shared_peer NAME die    attach, create object "greeting" (32 bytes, "hello"), allocate
 *                              three 100-byte blocks and one of 200000 bytes, then SIGKILL itself
 *   ga_shared_peer NAME hold   attach and stay attached until killed (at most 60 s)
 *   ga_shared_peer NAME map    attach, create map "settings" with a text key ("color" =
 *                              "blue"), a binary one (00 ff = 01 02) and an 8-byte counter
 *                              ("hits" = 42), then detach
 * Exit status 3 when the heap cannot be attached, 2 on a usage error.
 */
#include <globalalloc.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    if (argc != 3) return 2;
    ga_heap_t *h = ga_shared_open(argv[1], 0, 0, NULL);
    if (!h) return 3;
    if (strcmp(argv[2], "die") == 0) {
        char *p = ga_shared_object(h, "greeting", 32, 0, NULL);
        if (p) memcpy(p, "hello", 5);
        for (int i = 0; i < 3; i++)
            ga_shared_alloc(h, 100);
        ga_shared_alloc(h, 200000);
        raise(SIGKILL);
    }
    if (strcmp(argv[2], "map") == 0) {
        ga_map_t *m = ga_map_open(h, "settings", GA_MAP_CREATE, NULL);
        if (!m || ga_map_put(m, "color", 5, "blue", 4) || ga_map_put(m, "\0\xff", 2, "\1\2", 2) ||
            ga_map_incr(m, "hits", 4, 42, NULL))
            return 4;
        ga_map_close(m);
        return ga_shared_close(h);
    }
    if (strcmp(argv[2], "hold") != 0) return 2;
    sleep(60);
    return ga_shared_close(h);
}
