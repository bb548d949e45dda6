/* SPDX-License-Identifier: MIT */
/* A board that several processes share through a globalalloc shared heap: a settings object
 * and a growing list of text lines. The list lives in a GMEM_MOVEABLE | GMEM_SHARE block, so it
 * grows with GlobalReAlloc and every process reaches it through the same handle value. */
#ifndef SHARED_BOARD_H
#define SHARED_BOARD_H

#include <globalalloc.h>
#include <stddef.h>
#include <stdint.h>

typedef struct board_settings_s {
    uint32_t version; /* bumped on every update */
    char theme[32];
    int volume;
} board_settings_t;

typedef struct board_s board_t;

/* Finds or creates the board's two named objects in heap (which must also be the process's
 * share heap: ga_set_share_heap); the list is set up once, by the first process, while the
 * others wait (at most 5 s). *created is 1 for the process that set it up. NULL + GA_E*. */
board_t *board_open(ga_heap_t *heap, int *created);
/* Copies the settings out / replaces them (version bumped). 0 or GA_E*. */
int board_get_settings(board_t *b, board_settings_t *out);
int board_set_settings(board_t *b, const char *theme, int volume);
/* Appends one line (grows the shared list, which may move). 0 or GA_E*. */
int board_append(board_t *b, const char *line);
/* Waits until the list has at least n lines, at most timeout_ms between two appends: 0, or
 * GA_ETIMEDOUT (a GA_E* code). */
int board_wait_count(board_t *b, size_t n, unsigned timeout_ms);
/* Lines in the list; copies line i into buf. */
size_t board_count(board_t *b);
int board_line(board_t *b, size_t i, char *buf, size_t size);
/* The list's handle value: the same number in every process. */
uint64_t board_list_handle(board_t *b);
/* The named object that holds the list, and its size (tests play a creator that dies). */
#define BOARD_LIST_OBJECT "board.list"
size_t board_list_object_size(void);
/* Frees the list and removes the objects (the last user does this). */
void board_destroy(board_t *b);
/* Forgets this process's view (the board stays in the heap). */
void board_close(board_t *b);

#endif
