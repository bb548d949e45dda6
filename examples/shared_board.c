/* SPDX-License-Identifier: MIT */
/*
 * A board shared by processes: the named object "board.settings" holds the settings, and
 * "board.list" holds a process-shared robust mutex plus the handle of the list block. Lines
 * are fixed-size records so a reader can copy line i without parsing. The mutex is robust: a
 * process that dies holding it hands it over (EOWNERDEAD) instead of blocking the others.
 */
#include "shared_board.h"
#include <errno.h>
#include <globalalloc/win32.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LINE_SIZE 64

typedef struct list_object_s {
    pthread_mutex_t lock;  /* guards everything below and the settings object */
    uint64_t handle;       /* GMEM_SHARE moveable block of count * LINE_SIZE bytes */
    uint64_t count;
} list_object_t;

struct board_s {
    ga_heap_t *heap;
    board_settings_t *settings;
    list_object_t *list;
};

static int lock(board_t *b)
{
    int rc = pthread_mutex_lock(&b->list->lock);
    if (rc == EOWNERDEAD) /* a peer died holding it: the data is whole, every change is last */
        rc = pthread_mutex_consistent(&b->list->lock);
    return rc == 0 ? 0 : GA_EINVAL;
}
static void unlock(board_t *b) { pthread_mutex_unlock(&b->list->lock); }

board_t *board_open(ga_heap_t *heap, int *created)
{
    board_t *b = calloc(1, sizeof *b);
    if (b == NULL)
        return NULL;
    b->heap = heap;
    int made_settings = 0, made_list = 0;
    b->settings = ga_shared_object(heap, "board.settings", sizeof *b->settings, 0, &made_settings);
    b->list = ga_shared_object(heap, "board.list", sizeof *b->list, 0, &made_list);
    if (b->settings == NULL || b->list == NULL) {
        free(b);
        return NULL;
    }
    if (made_list) {
        /* Objects come zero-filled; the creator sets the mutex up before anyone can use it:
         * others wait for `count` to leave its "initialising" value. */
        pthread_mutexattr_t a;
        pthread_mutexattr_init(&a);
        pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
        pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
        pthread_mutex_init(&b->list->lock, &a);
        pthread_mutexattr_destroy(&a);
        HGLOBAL h = GlobalAlloc(GMEM_MOVEABLE | GMEM_SHARE, LINE_SIZE);
        __atomic_store_n(&b->list->handle, (uint64_t)(uintptr_t)h, __ATOMIC_RELEASE);
    }
    while (__atomic_load_n(&b->list->handle, __ATOMIC_ACQUIRE) == 0) /* creator still busy */
        sched_yield();
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
    }
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

uint64_t board_list_handle(board_t *b) { return b->list->handle; }

void board_destroy(board_t *b)
{
    GlobalFree((HGLOBAL)(uintptr_t)b->list->handle);
    ga_shared_object_remove(b->heap, "board.list");
    ga_shared_object_remove(b->heap, "board.settings");
    free(b);
}

void board_close(board_t *b) { free(b); }
