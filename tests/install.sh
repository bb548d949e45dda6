#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The install as a new user gets it. Configures the library from GA_SOURCE_DIR with the default
# prefix, builds it, installs it with `cmake --install --prefix` into a directory made only
# afterwards, then moves that tree elsewhere (nothing may remember where it was), and checks:
# the layout (headers, versioned shared library, static library, preload library, CLI, docs,
# man pages, bash completion),
# the exported symbols (exactly the headers' GA_API names, each at GLOBALALLOC_0.1), then
# builds and runs examples/install_test from the moved tree: with pkg-config, through
# find_package(globalalloc 0.1) (shared and static; 0.0 must be refused), and a program run with
# the preload library that pkg-config and the CMake package name, and `globalalloc leaks`.
set -u
src="${GA_SOURCE_DIR:?set GA_SOURCE_DIR}"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/ga-install.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
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
check() { # check DESCRIPTION COMMAND...: ok if the command succeeds
    if "${@:2}"; then ok; else bad "$1"; fi
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
unset CFLAGS LDFLAGS LD_PRELOAD

# ---- build with the default prefix, install where the configure step never heard of --------
if run configure cmake -S "$src" -B "$tmp/build" -DCMAKE_BUILD_TYPE=Release \
    -DGA_BUILD_TESTS=OFF -DGA_BUILD_BENCH=OFF -DGA_BUILD_EXAMPLES=OFF -DGA_BUILD_TOOLS=ON &&
    run build cmake --build "$tmp/build" -j2 &&
    run install cmake --install "$tmp/build" --prefix "$tmp/first"; then
    ok
else
    bad "library build/install"
    finish
fi
prefix="$tmp/moved/here"
mkdir -p "$tmp/moved" && mv "$tmp/first" "$prefix"
# Nothing installed may name the configure-time prefix, the first install or the build tree.
for f in $(find "$prefix" -name '*.pc' -o -name '*.cmake'); do
    if grep -Eq "/usr/local|$tmp/first|$tmp/build" "$f"; then bad "$f names an absolute path"; else ok; fi
done

# ---- the installed layout ----------------------------------------------------------------
for f in include/globalalloc.h include/globalalloc/win32.h include/globalalloc/version.h \
    bin/globalalloc share/doc/globalalloc/LICENSE share/doc/globalalloc/CHANGELOG.md \
    share/doc/globalalloc/README.md share/doc/globalalloc/json.md share/man/man1/globalalloc.1 \
    share/man/man3/globalalloc.3 share/bash-completion/completions/globalalloc; do
    check "missing $f" test -f "$prefix/$f"
done
# `man globalalloc` and `man 3 globalalloc` find the pages through the prefix's share/man.
if command -v man >/dev/null; then
    for page in "1 globalalloc" "3 globalalloc"; do
        # shellcheck disable=SC2086
        found=$(MANPATH="$prefix/share/man" man -w $page 2>/dev/null)
        check "man $page: not found under $prefix/share/man ('$found')" \
            test "$found" = "$prefix/share/man/man${page%% *}/globalalloc.${page%% *}"
    done
fi
# The library directory is lib, lib64 or lib/<multiarch> depending on the platform.
so=$(find "$prefix" -path "$prefix/lib*/libglobalalloc.so" | head -n 1)
if [[ -z "$so" ]]; then
    bad "no lib*/libglobalalloc.so under $prefix"
    finish
fi
ok
libdir=$(dirname "$so")
soname=$(readelf -d "$so" | sed -nE 's/.*\(SONAME\).*\[(.*)\].*/\1/p')
check "SONAME '$soname' is not versioned" grep -Eqx 'libglobalalloc\.so\.0\.[0-9]+|libglobalalloc\.so\.[1-9][0-9]*' <<<"$soname"
check "no $soname file beside $so" test -n "$soname" -a -e "$libdir/$soname"
for f in libglobalalloc.a libglobalalloc-preload.so pkgconfig/globalalloc.pc \
    cmake/globalalloc/globalallocConfig.cmake cmake/globalalloc/globalallocConfigVersion.cmake; do
    check "missing $libdir/$f" test -f "$libdir/$f"
done
# Only the public headers are installed, never the internal ones.
check "internal headers were installed" test -z "$(find "$prefix" -name '*internal.h')"

# ---- the exported symbols: the headers' GA_API names, all at GLOBALALLOC_0.1 ----------------
api=$(sed -nE 's/^GA_API [^(]*[ *]([A-Za-z_][A-Za-z_0-9]*)\(.*/\1/p' \
    "$src/include/globalalloc.h" "$src/include/globalalloc/win32.h" | sort)
exported=$(nm -D --defined-only "$so" | awk '$2 != "A" {print $3}')
names=$(sed 's/@.*//' <<<"$exported" | sort)
if [[ $(wc -l <<<"$api") -gt 50 && "$api" == "$names" ]]; then ok; else
    bad "exported names differ from the headers' GA_API names:"
    diff <(echo "$api") <(echo "$names") | head -20
fi
unversioned=$(grep -v '@@GLOBALALLOC_0\.1$' <<<"$exported")
check "symbols without the version GLOBALALLOC_0.1: $(head -3 <<<"$unversioned" | tr '\n' ' ')" \
    test -z "$unversioned"

# ---- pkg-config consumer -------------------------------------------------------------------
prog="$src/examples/install_test"
export PKG_CONFIG_PATH="$libdir/pkgconfig"
if flags=$(pkg-config --cflags --libs globalalloc) &&
    pc_libdir=$(pkg-config --variable=libdir globalalloc); then ok; else bad "pkg-config globalalloc"; fi
# shellcheck disable=SC2086
if run cc-pkgconfig cc -std=c11 -Wall -Wextra -Wpedantic -Werror "$prog/prog.c" $flags \
    -Wl,-rpath,"$pc_libdir" -o "$tmp/prog_pc" &&
    run prog-pkgconfig "$tmp/prog_pc"; then
    ok
    # The program must have run against the installed library, not another copy.
    loaded=$(ldd "$tmp/prog_pc" | awk -v so="$soname" '$1 == so {print $3}')
    if [[ -n "$loaded" && "$(realpath "$loaded")" == "$(realpath "$libdir/$soname")" ]]; then ok; else
        bad "prog_pc loaded '$loaded', not $libdir/$soname"
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
# While on 0.x a minor version may break the API: asking for 0.0 must not find 0.1.
if cmake -S "$prog" -B "$tmp/consumer-0.0" -DCMAKE_PREFIX_PATH="$prefix" -DGA_WANT_VERSION=0.0 \
    >"$tmp/consumer-0.0.log" 2>&1; then
    bad "find_package(globalalloc 0.0) accepted version 0.1"
else
    check "find_package(globalalloc 0.0) refused, but not for the version" \
        grep -q 'not compatible\|version' "$tmp/consumer-0.0.log"
fi

# ---- the preload library, found through pkg-config and through the CMake package -----------
if run cc-preloaded cc -std=c11 -Wall -Werror "$prog/preloaded.c" -o "$tmp/preloaded" -ldl; then
    pc_preload=$(pkg-config --variable=preload globalalloc)
    cm_preload=$(sed -n 1p "$tmp/consumer/preload_path.txt" 2>/dev/null)
    cm_target=$(sed -n 2p "$tmp/consumer/preload_path.txt" 2>/dev/null)
    for p in "$pc_preload" "$cm_preload" "$cm_target"; do
        want=$(realpath "$libdir/libglobalalloc-preload.so")
        if [[ -n "$p" && "$(realpath "$p" 2>/dev/null)" == "$want" ]]; then ok; else
            bad "preload path '$p' is not $want"
            continue
        fi
        out=$(LD_PRELOAD="$p" "$tmp/preloaded" 2>&1)
        if grep -q '^malloc from .*libglobalalloc-preload\.so$' <<<"$out" &&
            grep -q '^free from .*libglobalalloc-preload\.so$' <<<"$out"; then ok; else
            bad "LD_PRELOAD=$p: malloc/free not from the preload: $out"
        fi
    done
else
    bad "cannot build preloaded.c"
fi

# ---- the installed CLI finds the installed preload library ---------------------------------
check "installed globalalloc --version" grep -q '^globalalloc 0\.' <<<"$("$prefix/bin/globalalloc" --version)"
cat >"$tmp/leaky.c" <<'EOF'
#include <stdlib.h>
#include <string.h>
static volatile unsigned long hidden;
int main(void)
{
    char *p = malloc(321);
    memset(p, 1, 321);
    hidden = ~(unsigned long)p;
    return 0;
}
EOF
if run cc-leaky cc -O1 -o "$tmp/leaky" "$tmp/leaky.c"; then
    env -u GLOBALALLOC_PRELOAD "$prefix/bin/globalalloc" leaks -e 3 -- "$tmp/leaky" \
        >"$tmp/leaks.out" 2>&1
    rc=$?
    if [[ $rc -eq 3 ]] && grep -q '321 bytes in 1 block' "$tmp/leaks.out"; then ok; else
        bad "installed 'globalalloc leaks': status $rc (want 3), report: $(head -5 "$tmp/leaks.out")"
    fi
fi
finish
