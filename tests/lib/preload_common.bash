# SPDX-License-Identifier: MIT
# Sourced by the tests that run programs under the preload (tests/preload_*.sh,
# tests/debug_leaks_cli.sh): finds the build, skips sanitizer builds (a sanitizer runtime must
# come first in the process and replaces malloc itself, so the preload cannot take effect
# there: exit 77 = SKIP), checks that the preload was built, and makes a temporary directory
# $tmp that is removed on exit. Sets: build, src (may be empty), preload, tmp.
build=${GA_BUILD_DIR:?GA_BUILD_DIR must name the build directory}
src=${GA_SOURCE_DIR:-}
preload=$build/libglobalalloc-preload.so

if grep -Eq '^GA_SANITIZE:[A-Z]+=.+' "$build/CMakeCache.txt" 2>/dev/null; then
    echo "SKIP: sanitizer build: LD_PRELOAD of the allocator cannot take effect"
    exit 77
fi
if [ ! -f "$preload" ]; then
    echo "FAIL: preload library missing: $preload (target globalalloc-preload not built?)"
    exit 1
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
