/* SPDX-License-Identifier: MIT */
/*
 * ga_heap_check() and ga_heap_stats(): one call that composes every layer's half, top-down.
 * For a shared heap, the shared heap answers alone. For the process heap: the engine (segments,
 * pages, free lists), then the debug heap when it is on (every debug block's guards; statistics
 * as the program sees them), then the handle table.
 *
 * check=N (debug heap): a periodic check runs alone, so these enter the world lock around the
 * parts that read other threads' pages; their own reports must not wait on one either.
 */
#include "debug/debug.h"
#include "engine/engine.h"
#include "handle/handle.h"
#include "shared/shared.h"

int ga_heap_stats(ga_heap_t *heap, ga_stats_t *out)
{
    if (heap != NULL && out != NULL && ga__shared_is_heap(heap))
        return ga__shared_heap_stats(heap, out);
    if (out == NULL || (heap != NULL && heap != ga_heap_default()))
        return ga__set_error(GA_EINVAL);
    ga__engine_stats(out);
    if (GA_UNLIKELY(ga__debug_enabled)) {
        ga__world_enter(); /* not during a periodic check */
        ga__debug_stats(out);
        ga__world_leave();
    }
    out->handles_in_use = ga__handle_count();
    return 0;
}

int ga_heap_check(ga_heap_t *heap, unsigned flags)
{
    if (heap != NULL && ga__shared_is_heap(heap))
        return ga__shared_heap_check(heap, flags);
    if (heap != NULL && heap != ga_heap_default())
        return GA_EINVAL;
    ga__world_enter(); /* check=N: its reports must not wait on a periodic check */
    int rc = ga__engine_check(flags);
    if (rc == 0 && GA_UNLIKELY(ga__debug_enabled))
        rc = ga__debug_check(flags); /* guards of every debug block */
    ga__world_leave();
    return rc ? rc : ga__handle_check(flags);
}
