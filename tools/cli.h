/* SPDX-License-Identifier: MIT */
/*
 * The globalalloc CLI's shared helpers (globalalloc.c) and the map commands (cli_map.c).
 */
#ifndef GA_CLI_H
#define GA_CLI_H

#include <globalalloc.h>

extern int json;              /* --json */
extern const char *command;   /* the command running */
extern char last_report[512]; /* the first problem reported by the library */

void json_str(const char *s);
/* Opens the command's JSON object (schema, command, name, ok); the caller closes it. */
void json_begin(const char *name, int ok);
/* Reports a failure on heap name: text on stderr, or the JSON failure object. Returns 1. */
int fail_words(const char *name, int err, const char *words, const char *detail);
int fail(const char *name, int err, const char *detail);
/* The error handler that keeps the first report in last_report. */
int keep_report(int err, const char *msg, uintptr_t ptr, void *arg);
/* Attaches heap name, or reports why not (NULL). */
ga_heap_t *attach(const char *name);

/* The maps among heap h's named objects: a "maps" section (text) or member (JSON, inside the
 * open object), each with its counts; check: each one checked too. 0, or 1 when one is bad. */
int cli_maps(ga_heap_t *h, const ga_shared_object_info_t *objs, long nobj, int check);
/* globalalloc map HEAP MAP: every key and value of the map. Exit status. */
int cmd_map(const char *heap, const char *map);

#endif /* GA_CLI_H */
