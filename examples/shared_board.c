/* SPDX-License-Identifier: MIT */
/*
 * A board shared by processes: the named object "board.settings" holds the settings, and
 * "board.list" holds a ga_shared_mutex_t, a condition variable and the handle of the list
 * block. Lines are fixed-size records so a reader can copy line i without parsing.
 *
 * "board.list" is set up by ga_shared_object_init: its init runs exactly once, in whichever
 * process comes first, and the others wait for it (bounded), so no process spins on a half-made
 * board, and a creator killed half-way leaves it to the next process to set up again. The mutex
 * is robust: a process that dies holding it hands it over (GA_EOWNERDEAD) instead of blocking
 * the others.
 */
#include "shared_board.h"
#include <globalalloc/win32.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LINE_SIZE  64
#define TIMEOUT_MS 5000 /* no call of the board waits longer for a peer */

typedef struct list_object_s {
    ga_shared_mutex_t lock; /* guards everything below and the settings object */
    ga_shared_cond_t grown; /* broadcast when a line is appended */
    uint64_t handle;        /* GMEM_SHARE moveable block of count * LINE_SIZE bytes */
    uint64_t count;
} list_object_t;

struct board_s {
    ga_heap_t *heap;
    board_settings_t *settings;
    list_object_t *list;
};

static int lock(board_t *b)
{
    int rc = ga_shared_mutex_lock(b->heap, &b->list->lock, TIMEOUT_MS);
    /* A peer died holding it: the data is whole, since every change's last step (count++, a
     * settings field) is one store that either happened or not. */
    return rc == GA_EOWNERDEAD ? 0 : rc;
}
static void unlock(board_t *b) { ga_shared_mutex_unlock(b->heap, &b->list->lock); }

/* Sets the list object up, once for all processes (it comes zero-filled). */
static int init_list(ga_heap_t *heap, void *data, size_t size, void *arg)
{
    (void)size, (void)arg;
    list_object_t *list = data;
    int rc = ga_shared_mutex_init(heap, &list->lock);
    if (rc == 0)
        rc = ga_shared_cond_init(heap, &list->grown);
    if (rc)
        return rc;
    /* GMEM_SHARE blocks come from the process's share heap: this heap (see board_open). */
    HGLOBAL h = GlobalAlloc(GMEM_MOVEABLE | GMEM_SHARE, LINE_SIZE);
    if (h == NULL)
        return GA_ENOMEM;
    list->handle = (uint64_t)(uintptr_t)h;
    return 0;
}

board_t *board_open(ga_heap_t *heap, int *created)
{
    board_t *b = calloc(1, sizeof *b);
    if (b == NULL)
        return NULL;
    b->heap = heap;
    int made_list = 0;
    b->settings = ga_shared_object(heap, "board.settings", sizeof *b->settings, 0, NULL);
    if (b->settings)
        b->list = ga_shared_object_init(heap, BOARD_LIST_OBJECT, sizeof *b->list, 0, init_list,
                                        NULL, TIMEOUT_MS, &made_list);
    if (b->settings == NULL || b->list == NULL) {
        free(b);
        return NULL;
    }
    if (created)
        *created = made_list;
    return b;
}

int board_get_settings(board_t *b, board_settings_t *out)
{
    if (lock(b))
        return GA_EINVAL;
    *out = *b->settings;
    unlock(b);
    return 0;
}

int board_set_settings(board_t *b, const char *theme, int volume)
{
    if (lock(b))
        return GA_EINVAL;
    snprintf(b->settings->theme, sizeof b->settings->theme, "%s", theme);
    b->settings->volume = volume;
    b->settings->version++;
    unlock(b);
    return 0;
}

int board_append(board_t *b, const char *line)
{
    if (lock(b))
        return GA_EINVAL;
    HGLOBAL h = (HGLOBAL)(uintptr_t)b->list->handle;
    size_t need = (size_t)(b->list->count + 1) * LINE_SIZE;
    int rc = 0;
    if (GlobalSize(h) < need) /* double the block: it may move, the handle does not */
        rc = GlobalReAlloc(h, need * 2, GMEM_MOVEABLE) == h ? 0 : GA_ENOMEM;
    if (rc == 0) {
        char *data = GlobalLock(h);
        snprintf(data + b->list->count * LINE_SIZE, LINE_SIZE, "%s", line);
        GlobalUnlock(h);
        b->list->count++;
        ga_shared_cond_broadcast(b->heap, &b->list->grown);
    }
    unlock(b);
    return rc;
}

int board_wait_count(board_t *b, size_t n, unsigned timeout_ms)
{
    int rc = lock(b);
    if (rc)
        return rc;
    while (b->list->count < n) {
        rc = ga_shared_cond_wait(b->heap, &b->list->grown, &b->list->lock, timeout_ms);
        if (rc == GA_EOWNERDEAD) /* taken over on the way back: whole, as in lock() */
            rc = 0;
        if (rc)
            break;
    }
    if (rc != GA_ENOTLOCKED) /* the one result that leaves the mutex unlocked */
        unlock(b);
    return rc;
}

size_t board_count(board_t *b)
{
    if (lock(b))
        return 0;
    size_t n = (size_t)b->list->count;
    unlock(b);
    return n;
}

int board_line(board_t *b, size_t i, char *buf, size_t size)
{
    if (lock(b))
        return GA_EINVAL;
    int rc = GA_ENOENT;
    if (i < b->list->count) {
        HGLOBAL h = (HGLOBAL)(uintptr_t)b->list->handle;
        const char *data = GlobalLock(h);
        snprintf(buf, size, "%s", data + i * LINE_SIZE);
        GlobalUnlock(h);
        rc = 0;
    }
    unlock(b);
    return rc;
}

size_t board_list_object_size(void) { return sizeof(list_object_t); }

uint64_t board_list_handle(board_t *b) { return b->list->handle; }

void board_destroy(board_t *b)
{
    GlobalFree((HGLOBAL)(uintptr_t)b->list->handle);
    ga_shared_object_remove(b->heap, BOARD_LIST_OBJECT);
    ga_shared_object_remove(b->heap, "board.settings");
    free(b);
}

void board_close(board_t *b) { free(b); }
