/* SPDX-License-Identifier: MIT */
/*
 * The settings registry (pattern 3) on the native handle API.
 *
 * State: one struct `reg`, guarded by the read-write lock reg.lock (readers share it, an update
 * takes it exclusively, so a reader never sees half a value). The key table is one ga_calloc
 * block of SETTINGS_MAX_KEYS entries, allocated on the first settings_define(); each value is a
 * moveable block (ga_handle_alloc) holding the NUL-terminated text, locked only while it is
 * read or written and resized in place of the old text with ga_handle_realloc -- the handle in
 * the table never changes, whatever the heap does with the data.
 * Invariants: entries [0, reg.count) have a non-empty key and a live handle; reg.table == NULL
 * <=> reg.count == 0 and nothing is allocated.
 */
#include "settings.h"
#include <globalalloc.h>
#include <pthread.h>
#include <string.h>

typedef struct entry_s {
    char key[SETTINGS_KEY_MAX + 1];
    ga_handle_t value; /* moveable block: the text and its NUL */
} entry_t;

static struct {
    pthread_rwlock_t lock;
    entry_t *table;
    size_t count;
} reg = {PTHREAD_RWLOCK_INITIALIZER, NULL, 0};

/* Caller holds reg.lock (either way). */
static entry_t *find(const char *key)
{
    for (size_t i = 0; i < reg.count; i++)
        if (strcmp(reg.table[i].key, key) == 0) return &reg.table[i];
    return NULL;
}

/* Stores text in the moveable block h (resizing it). Caller holds reg.lock exclusively. */
static int put_text(ga_handle_t h, const char *text)
{
    size_t n = strlen(text) + 1;
    int rc = ga_handle_realloc(h, n, 0);
    if (rc != 0) return rc;
    char *data = ga_handle_lock(h);
    if (!data) return ga_last_error();
    memcpy(data, text, n);
    ga_handle_unlock(h);
    return 0;
}

int settings_define(const char *key, const char *default_value)
{
    if (!key || !*key || strlen(key) > SETTINGS_KEY_MAX) return GA_ENAME;
    if (!default_value) return GA_EINVAL;
    int rc = 0;
    pthread_rwlock_wrlock(&reg.lock);
    if (!reg.table) reg.table = ga_calloc(SETTINGS_MAX_KEYS, sizeof *reg.table);
    if (!reg.table) {
        rc = GA_ENOMEM;
    } else if (find(key)) {
        rc = GA_EEXIST;
    } else if (reg.count == SETTINGS_MAX_KEYS) {
        rc = GA_EFULL;
    } else {
        entry_t *e = &reg.table[reg.count];
        e->value = ga_handle_alloc(NULL, 1, GA_HZERO);
        if (!e->value) {
            rc = ga_last_error();
        } else if ((rc = put_text(e->value, default_value)) != 0) {
            ga_handle_free(e->value);
        } else {
            strcpy(e->key, key);
            reg.count++;
        }
    }
    pthread_rwlock_unlock(&reg.lock);
    return rc;
}

int settings_set(const char *key, const char *value)
{
    if (!key || !value) return GA_EINVAL;
    pthread_rwlock_wrlock(&reg.lock);
    entry_t *e = find(key);
    int rc = e ? put_text(e->value, value) : GA_ENOENT;
    pthread_rwlock_unlock(&reg.lock);
    return rc;
}

int settings_get(const char *key, char *buf, size_t n)
{
    int rc = GA_ENOENT;
    pthread_rwlock_rdlock(&reg.lock);
    entry_t *e = key ? find(key) : NULL;
    if (e) {
        /* Locking the block pins its data; the read lock keeps writers from resizing it. */
        const char *data = ga_handle_lock(e->value);
        if (!data) {
            rc = ga_last_error();
        } else {
            size_t len = strlen(data);
            if (n > 0) {
                size_t c = len < n - 1 ? len : n - 1;
                memcpy(buf, data, c);
                buf[c] = '\0';
            }
            ga_handle_unlock(e->value);
            rc = (int)len;
        }
    }
    pthread_rwlock_unlock(&reg.lock);
    return rc;
}

size_t settings_count(void)
{
    pthread_rwlock_rdlock(&reg.lock);
    size_t n = reg.count;
    pthread_rwlock_unlock(&reg.lock);
    return n;
}

void settings_destroy(void)
{
    pthread_rwlock_wrlock(&reg.lock);
    for (size_t i = 0; i < reg.count; i++)
        ga_handle_free(reg.table[i].value);
    ga_free(reg.table);
    reg.table = NULL;
    reg.count = 0;
    pthread_rwlock_unlock(&reg.lock);
}
