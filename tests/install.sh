#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Builds the library from GA_SOURCE_DIR into a temporary directory, installs it into a temporary
# prefix, checks the installed layout (headers, shared library with a versioned SONAME, static
# library, pkg-config file, CMake package), then builds and runs examples/install_test/prog.c
# twice: with pkg-config and through find_package(globalalloc) (shared and static).
set -u
src="${GA_SOURCE_DIR:?set GA_SOURCE_DIR}"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/ga-install.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
prefix="$tmp/prefix"
passes=0
fails=0
ok() { passes=$((passes + 1)); }
bad() {
    fails=$((fails + 1))
    echo "install.sh: FAILED: $*"
}
finish() {
    echo "install.sh: $passes passed, $fails failed"
    [[ $fails -eq 0 ]]
    exit
}
run() { # run LOGNAME COMMAND...: quiet unless it fails
    if "${@:2}" >"$tmp/$1.log" 2>&1; then
        return 0
    fi
    echo "---- $1 ----"
    tail -n 40 "$tmp/$1.log"
    return 1
}
# The sanitizer runtime of an outer sanitizer build must not leak into these plain builds.
unset CFLAGS LDFLAGS

if run configure cmake -S "$src" -B "$tmp/build" -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_INSTALL_PREFIX="$prefix" -DGA_BUILD_TESTS=OFF -DGA_BUILD_BENCH=OFF \
    -DGA_BUILD_EXAMPLES=OFF -DGA_BUILD_TOOLS=OFF &&
    run build cmake --build "$tmp/build" -j2 &&
    run install cmake --install "$tmp/build"; then
    ok
else
    bad "library build/install"
    finish
fi

# ---- the installed layout ----------------------------------------------------------------
for f in include/globalalloc.h include/globalalloc/win32.h include/globalalloc/version.h; do
    if [[ -f "$prefix/$f" ]]; then ok; else bad "missing $f"; fi
done
# The library directory is lib, lib64 or lib/<multiarch> depending on the platform.
so=$(find "$prefix" -path "$prefix/lib*/libglobalalloc.so" | head -n 1)
if [[ -z "$so" ]]; then
    bad "no lib*/libglobalalloc.so under $prefix"
    finish
fi
ok
libdir=$(dirname "$so")
soname=$(readelf -d "$so" | sed -nE 's/.*\(SONAME\).*\[(.*)\].*/\1/p')
if [[ "$soname" =~ ^libglobalalloc\.so\.[0-9]+$ ]]; then ok; else bad "SONAME '$soname' is not versioned"; fi
if [[ -n "$soname" && -e "$libdir/$soname" ]]; then ok; else bad "no $soname file beside $so"; fi
if [[ -f "$libdir/libglobalalloc.a" ]]; then ok; else bad "missing $libdir/libglobalalloc.a"; fi
if [[ -f "$libdir/pkgconfig/globalalloc.pc" ]]; then ok; else bad "missing pkgconfig/globalalloc.pc"; fi
if [[ -f "$libdir/cmake/globalalloc/globalallocConfig.cmake" ]]; then ok; else
    bad "missing cmake/globalalloc/globalallocConfig.cmake"
fi
# Only the public headers are installed, never the internal ones.
if [[ -z "$(find "$prefix" -name internal.h)" ]]; then ok; else bad "internal.h was installed"; fi
# The shared library exports the API and hides the internals.
syms=$(nm -D --defined-only "$so" | awk '{print $3}')
for s in ga_malloc ga_free ga_heap_stats GlobalAlloc GlobalReAlloc GlobalLock; do
    if grep -qx "$s" <<<"$syms"; then ok; else bad "$s not exported by $so"; fi
done
if grep -q '^ga__' <<<"$syms"; then bad "internal ga__ symbols exported: $(grep '^ga__' <<<"$syms" | head -3 | tr '\n' ' ')"; else ok; fi

# ---- pkg-config consumer -------------------------------------------------------------------
prog="$src/examples/install_test"
export PKG_CONFIG_PATH="$libdir/pkgconfig"
if flags=$(pkg-config --cflags --libs globalalloc); then ok; else bad "pkg-config globalalloc"; fi
# shellcheck disable=SC2086
if run cc-pkgconfig cc -std=c11 -Wall -Wextra -Wpedantic -Werror "$prog/prog.c" $flags -o "$tmp/prog_pc" &&
    run prog-pkgconfig env LD_LIBRARY_PATH="$libdir" "$tmp/prog_pc"; then
    ok
    # The program must have run against the installed library, not another copy.
    if LD_LIBRARY_PATH="$libdir" ldd "$tmp/prog_pc" | grep -q "$libdir/$soname"; then ok; else
        bad "prog_pc did not load $libdir/$soname"
    fi
else
    bad "pkg-config consumer build/run"
fi

# ---- find_package consumer -----------------------------------------------------------------
if run configure-consumer cmake -S "$prog" -B "$tmp/consumer" -DCMAKE_PREFIX_PATH="$prefix" &&
    run build-consumer cmake --build "$tmp/consumer" -j2 &&
    run prog-cmake env LD_LIBRARY_PATH="$libdir" "$tmp/consumer/prog" &&
    run prog-cmake-static "$tmp/consumer/prog_static"; then
    ok
else
    bad "find_package consumer build/run"
fi
finish
