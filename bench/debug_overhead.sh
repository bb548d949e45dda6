#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# Overhead of the debug heap next to the usual debug allocators, on bench/debug_overhead.c
# (alloc-heavy churn, 2 threads, mixed small sizes, allocation sites 2-4 calls deep):
#   glibc                   the plain binary
#   globalalloc             LD_PRELOAD=libglobalalloc-preload.so
#   globalalloc debug       + GLOBALALLOC_DEBUG=1 (stacks, fill, guards, 1 MiB quarantine per thread)
#   globalalloc debug, no quarantine / no stacks (where the time goes)
#   ASan                    clang -fsanitize=address build (default 256 MiB quarantine, leaks)
#   ASan, no quarantine     ASAN_OPTIONS=quarantine_size_mb=0
#   valgrind memcheck       the plain binary, --leak-check=full (fewer steps, same ratio basis)
# Each line: median CPU seconds (user+system, all threads, before exit) of RUNS runs, and the
# ratio to globalalloc's normal mode. CPU time, not wall time: other load on the machine
# disturbs it less.
#
#   bench/debug_overhead.sh [BUILD_DIR] [STEPS_PER_THREAD] [RUNS]
set -u
here=$(cd "$(dirname "$0")" && pwd)
build=${1:-$here/../build}
steps=${2:-2000000}
runs=${3:-5}
preload=$(cd "$build" && pwd)/libglobalalloc-preload.so
[ -f "$preload" ] || { echo "no $preload: build the library first (Release)"; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

flags="-O2 -g -fno-omit-frame-pointer -fno-builtin-malloc -fno-builtin-free -pthread"
cc $flags "$here/debug_overhead.c" -o "$tmp/plain" || exit 1
have_asan=0
if command -v clang >/dev/null &&
    clang $flags -fsanitize=address "$here/debug_overhead.c" -o "$tmp/asan" 2>/dev/null; then
    have_asan=1
fi

# median of the "cpu=" of $runs runs of the command line
median() {
    local n=$1
    shift
    for _ in $(seq "$n"); do
        "$@" 2>/dev/null | sed -n 's/^seconds=[0-9.]* cpu=\([0-9.]*\).*/\1/p'
    done | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'
}

printf '%-38s %10s %8s\n' "allocator (steps/thread=$steps, 2 threads)" "cpu s" ratio
base=$(median "$runs" env LD_PRELOAD="$preload" "$tmp/plain" "$steps" 2)
line() { printf '%-38s %10.4f %7.1fx\n' "$1" "$2" "$(echo "$2 / $base" | bc -l)"; }
line "glibc malloc" "$(median "$runs" "$tmp/plain" "$steps" 2)"
line "globalalloc (normal mode)" "$base"
line "globalalloc debug (GLOBALALLOC_DEBUG=1)" \
    "$(median "$runs" env LD_PRELOAD="$preload" GLOBALALLOC_DEBUG=1 "$tmp/plain" "$steps" 2)"
line "  ... freestacks=0" \
    "$(median "$runs" env LD_PRELOAD="$preload" GLOBALALLOC_DEBUG=freestacks=0 "$tmp/plain" "$steps" 2)"
line "  ... quarantine=0" \
    "$(median "$runs" env LD_PRELOAD="$preload" GLOBALALLOC_DEBUG=quarantine=0 "$tmp/plain" "$steps" 2)"
line "  ... stacks=0" \
    "$(median "$runs" env LD_PRELOAD="$preload" GLOBALALLOC_DEBUG=stacks=0 "$tmp/plain" "$steps" 2)"
if [ $have_asan = 1 ]; then
    line "ASan (default quarantine)" \
        "$(median "$runs" env ASAN_OPTIONS=detect_leaks=1 "$tmp/asan" "$steps" 2)"
    line "ASan, quarantine_size_mb=0" \
        "$(median "$runs" env ASAN_OPTIONS=detect_leaks=1:quarantine_size_mb=0 "$tmp/asan" "$steps" 2)"
else
    echo "ASan: clang with -fsanitize=address not available"
fi
if command -v valgrind >/dev/null; then
    vsteps=$((steps / 10))
    vbase=$(median "$runs" env LD_PRELOAD="$preload" "$tmp/plain" "$vsteps" 2)
    vt=$(median 1 valgrind -q --leak-check=full "$tmp/plain" "$vsteps" 2)
    printf '%-38s %10.4f %7.1fx  (%d steps/thread, vs %.4f s normal)\n' "valgrind memcheck" \
        "$vt" "$(echo "$vt / $vbase" | bc -l)" "$vsteps" "$vbase"
else
    echo "valgrind: not installed"
fi
