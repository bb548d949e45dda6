# SPDX-License-Identifier: MIT
# The library's sources, one list per subsystem (folder). Explicit on purpose: a file that is
# not listed here is not built, and a new folder needs its own list. Order: lower layers first.

# Library-wide: error codes and reports (below every layer); start, fork and exit handlers, and
# the heap check composed of every layer's half (above them). malloc.c, the entry points, is
# listed apart: the preload library compiles it inside preload.c.
set(GA_TOP_SOURCES
  src/error.c
  src/init.c
  src/check.c)
set(GA_ENTRY_SOURCE src/malloc.c)

# The platform layer: every OS call.
set(GA_OS_SOURCES
  src/os/posix.c
  src/os/shm.c
  src/os/process.c)

# The engine: segments, pages, size classes, thread heaps, huge blocks (a leaf).
set(GA_ENGINE_SOURCES
  src/engine/size_class.c
  src/engine/segment.c
  src/engine/page.c
  src/engine/heap.c
  src/engine/thread.c
  src/engine/alloc.c
  src/engine/world.c
  src/engine/check.c)

# The debug heap: options, debug blocks, stacks and their symbols, walks, the
# quarantine, the hooks, the leak scan and report, the debug halves of stats and check.
set(GA_DEBUG_SOURCES
  src/debug/options.c
  src/debug/block.c
  src/debug/stack.c
  src/debug/symbolize.c
  src/debug/walk.c
  src/debug/quarantine.c
  src/debug/hooks.c
  src/debug/leak.c
  src/debug/check.c)

# Handles: tagged blocks, the handle table, the ga_handle_* API.
set(GA_HANDLE_SOURCES
  src/handle/block.c
  src/handle/table.c
  src/handle/api.c
  src/handle/fork.c
  src/handle/check.c)

# Shared heaps: named heaps in shared memory.
set(GA_SHARED_SOURCES
  src/shared/name.c
  src/shared/lock.c
  src/shared/slot.c
  src/shared/segment.c
  src/shared/attach.c
  src/shared/size_class.c
  src/shared/page.c
  src/shared/small.c
  src/shared/alloc.c
  src/shared/handle.c
  src/shared/orphan.c
  src/shared/object.c
  src/shared/once.c
  src/shared/sync.c
  src/shared/recover.c
  src/shared/report.c
  src/shared/share_heap.c
  src/shared/access.c)

# Shared maps: a crash-safe hash map inside a shared heap (above shared).
set(GA_MAP_SOURCES
  src/map/open.c
  src/map/read.c
  src/map/write.c
  src/map/repair.c
  src/map/api.c
  src/map/check.c)

# The Win32 surface.
set(GA_WIN32_SOURCES
  src/win32/win32.c)

# The LD_PRELOAD malloc replacement (includes src/malloc.c).
set(GA_PRELOAD_SOURCES_OWN
  src/preload/preload.c)

# Every source but malloc.c (shared by the library and the preload library).
set(GA_COMMON_SOURCES ${GA_TOP_SOURCES} ${GA_OS_SOURCES} ${GA_ENGINE_SOURCES} ${GA_DEBUG_SOURCES}
                      ${GA_HANDLE_SOURCES} ${GA_SHARED_SOURCES} ${GA_MAP_SOURCES}
                      ${GA_WIN32_SOURCES})
