/* SPDX-License-Identifier: MIT */
/*
 * Shared maps' interface for the rest of the library: the start-up call that hands the shared
 * heap its recovery and check hooks (src/init.c), and the tests' step hook. The map's own
 * files share map_internal.h.
 */
#ifndef GA_MAP_H
#define GA_MAP_H

#include "shared/shared.h"

/* Start (src/init.c): registers the maps' hooks with the shared heaps (ga__shared_set_hooks),
 * so that dead-peer recovery finishes a killed writer's change and ga_shared_check counts and
 * checks maps, in every process, whether it opened a map or not. */
void ga__map_init(void);

/* Tests: when set, called at each step boundary of a write ("put:prep", "put:commit", ...),
 * so that a test can kill the process at exactly the Nth step. */
extern void (*ga__map_test_hook)(const char *step);

#endif /* GA_MAP_H */
