/* SPDX-License-Identifier: MIT */
/*
 * The library's start, fork and exit handlers, in one place and one order. Every constructor,
 * destructor and pthread_atfork registration of the library is here but one (the engine's, see
 * below); the layers export what runs (ga__<layer>_init, _fork_*, _at_exit) and register nothing
 * themselves.
 *
 * Start (constructor, priority 101: before the program's own constructors; once):
 *   1. the engine: secret, thread-exit key, and its own fork handlers. The engine also starts
 *      itself on its first allocation, because under LD_PRELOAD the dynamic loader and libc
 *      allocate before any constructor runs; registering first, its prepare handler runs last.
 *      Then the handle layer learns the shared heaps' operations (handles of other heaps).
 *   2. the debug heap: GLOBALALLOC_DEBUG is read before the program allocates, then the main
 *      thread is noted (the leak scan tells its stack from the other threads').
 *   3. handles: the slot caches' thread-exit key.
 *   4. shared heaps: the size-class geometry.
 *   5. the fork handlers of the layers above the engine, in one registration.
 * Fork: prepare runs top-down (shared heaps, handles, the debug heap; the engine's own handler
 * runs after these), so a layer that allocates while holding its locks has them before a lower
 * layer's lock is taken; parent and child run bottom-up (the engine first), so the layers' child
 * handlers may allocate.
 * Exit (destructor 101): the debug heap's exit check and leak report.
 * Thread exit: each layer's key destructor (engine, handles, debug stacks, shared caches) runs
 * in the order of the keys; each is independent of the others.
 *
 * A static link keeps this file though nothing calls it: internal.h makes every object of the
 * library refer to ga__init_anchor.
 */
#include "debug/debug.h"
#include "engine/engine.h"
#include "handle/handle.h"
#include "shared/shared.h"
#include "map/map.h"
#include <pthread.h>

const char ga__init_anchor = 0;

static void fork_prepare(void)
{
    ga__shared_fork_prepare();
    ga__handle_fork_prepare();
    ga__debug_fork_prepare();
}

static void fork_parent(void)
{
    ga__debug_fork_after();
    ga__handle_fork_parent();
    ga__shared_fork_parent();
}

static void fork_child(void)
{
    ga__debug_fork_after();
    ga__handle_fork_child();
    ga__shared_fork_child();
}

__attribute__((constructor(101))) static void library_start(void)
{
    ga__engine_init();
    ga__handle_set_remote(&ga__shared_remote_ops);
    ga__debug_init();
    ga__debug_note_main_thread();
    ga__handle_init();
    ga__shared_init();
    ga__map_init();
    pthread_atfork(fork_prepare, fork_parent, fork_child);
}

__attribute__((destructor(101))) static void library_exit(void)
{
    ga__debug_at_exit();
}
