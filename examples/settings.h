/* SPDX-License-Identifier: MIT */
/*
 * Pattern 3, the module-level settings registry: a fixed set of named settings, each with a
 * text value, readable and writable from any thread. Keys are declared once (settings_define);
 * updating a key that was never declared is an error, so a typo cannot silently create a
 * setting nobody reads.
 */
#ifndef DEMO_SETTINGS_H
#define DEMO_SETTINGS_H

#include <stddef.h>

#define SETTINGS_MAX_KEYS 16
#define SETTINGS_KEY_MAX  31

/* Declares key with its default value. 0, GA_EEXIST (already declared), GA_EFULL (no room),
 * GA_ENAME (empty or too long), or GA_ENOMEM. */
int settings_define(const char *key, const char *default_value);
/* Updates a declared key. 0, GA_ENOENT (unknown key: refused), GA_EINVAL or GA_ENOMEM. */
int settings_set(const char *key, const char *value);
/* Copies the value of key into buf (truncated to n-1 bytes, always NUL-terminated). Returns the
 * value's full length (>= 0), or GA_ENOENT for an unknown key. */
int settings_get(const char *key, char *buf, size_t n);
/* Number of declared keys. */
size_t settings_count(void);
/* Forgets every key and frees all storage (at exit). */
void settings_destroy(void);

#endif
