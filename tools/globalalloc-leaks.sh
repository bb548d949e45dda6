#!/bin/sh
# SPDX-License-Identifier: MIT
#
# globalalloc-leaks: runs a program on the globalalloc debug heap (through LD_PRELOAD) and
# prints its leak report when it exits. The CLI's `globalalloc leaks -- PROGRAM ARGS` is this.
#
#   globalalloc-leaks [-e STATUS] [-o OPTIONS] [-f FILE] [--] PROGRAM [ARGS...]
#     -e STATUS   exit with STATUS when leaks are found (default: the program's own status)
#     -o OPTIONS  more GLOBALALLOC_DEBUG options (e.g. stacks=32,leaks=all)
#     -f FILE     write the reports to FILE instead of stderr
#
# The preload library is $GLOBALALLOC_PRELOAD, else libglobalalloc-preload.so next to this
# script's ../lib (installed) or in the build tree it sits in.
set -eu

usage() {
    echo "usage: globalalloc-leaks [-e STATUS] [-o OPTIONS] [-f FILE] [--] PROGRAM [ARGS...]" >&2
    exit 2
}

status=
extra=
file=
while [ $# -gt 0 ]; do
    case $1 in
    -e) [ $# -ge 2 ] || usage; status=$2; shift 2 ;;
    -o) [ $# -ge 2 ] || usage; extra=$2; shift 2 ;;
    -f) [ $# -ge 2 ] || usage; file=$2; shift 2 ;;
    --) shift; break ;;
    -h|--help) usage ;;
    -*) usage ;;
    *) break ;;
    esac
done
[ $# -ge 1 ] || usage

lib=${GLOBALALLOC_PRELOAD:-}
if [ -z "$lib" ]; then
    here=$(cd "$(dirname "$0")" && pwd)
    for c in "$here/../lib/libglobalalloc-preload.so" "$here/../lib64/libglobalalloc-preload.so" \
             "$here/../build/libglobalalloc-preload.so" "$here/libglobalalloc-preload.so" \
             "$here/../libglobalalloc-preload.so"; do
        if [ -f "$c" ]; then lib=$c; break; fi
    done
fi
if [ -z "$lib" ] || [ ! -f "$lib" ]; then
    echo "globalalloc-leaks: libglobalalloc-preload.so not found (set GLOBALALLOC_PRELOAD)" >&2
    exit 2
fi

opts=leaks=1
[ -n "$status" ] && opts="$opts,exitcode=$status"
[ -n "$file" ] && opts="$opts,report=$file"
[ -n "$extra" ] && opts="$opts,$extra"

GLOBALALLOC_DEBUG=$opts
LD_PRELOAD="$lib${LD_PRELOAD:+:$LD_PRELOAD}"
export GLOBALALLOC_DEBUG LD_PRELOAD
exec "$@"
