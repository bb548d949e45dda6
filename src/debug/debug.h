/* SPDX-License-Identifier: MIT */
/*
 * The debug heap's interface for the other layers: misuse reports with the debug block's
 * history. The debug heap's own files share debug_internal.h.
 */
#ifndef GA_DEBUG_H
#define GA_DEBUG_H

#include "internal.h"


/* For the other layers' misuse checks (GlobalFree of a stale handle, GlobalUnlock of an unlocked
 * block, ...): prints what (one line), the debug block that value points to when it is one
 * (address, size, allocation number, thread, allocation and free stacks), the current stack,
 * then reports err through ga__report (aborting if fatal and the handler declines). Works, with
 * less detail, when debug mode is off. Never allocates from the heap. */
void ga__debug_misuse(int err, const void *value, bool fatal, const char *what);

#endif /* GA_DEBUG_H */
