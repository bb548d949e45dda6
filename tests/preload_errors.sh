#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# Misuse and impossible requests through LD_PRELOAD=libglobalalloc-preload.so, using the helper
# program tests/helpers/preload_victim.c (built by tests/CMakeLists.txt, links nothing of globalalloc):
#   - the helper's malloc really is the preload's (dladdr), and every replaced function works;
#   - malloc(SIZE_MAX), calloc overflow, realloc/memalign/posix_memalign of impossible sizes
#     fail with NULL (or ENOMEM) and errno ENOMEM;
#   - a double free, a free of a stack address, of an mmap'd page and of an interior pointer
#     each abort (SIGABRT, as glibc does) with a message naming globalalloc on stderr.
# Control: the same double free without the preload must NOT mention globalalloc, so the
# message check can tell the preload from glibc.
# Env: GA_BUILD_DIR (set by ctest). Exit 0 = all passed, 1 = a failure, 77 = sanitizer build.
set -u

source "$(dirname "${BASH_SOURCE[0]}")/lib/preload_common.bash"
victim=$build/tests/preload_victim
if [ ! -x "$victim" ]; then
    echo "FAIL: helper missing: $victim (configure with GA_BUILD_BENCH=ON)"
    exit 1
fi

ulimit -c 0 # the abort cases must not leave core files behind
passed=0
failed=0

pass() {
    passed=$((passed + 1))
    echo "ok   $1"
}
fail() {
    failed=$((failed + 1))
    echo "FAIL $1"
    [ -s "$tmp/out" ] && sed 's/^/     stdout: /' "$tmp/out" | head -20
    [ -s "$tmp/err" ] && sed 's/^/     stderr: /' "$tmp/err" | head -20
}

# run_victim MODE [preload|none]: sets $rc, output in $tmp/out and $tmp/err. The braces'
# redirection silences bash's own "Aborted" job report: the aborts are expected.
run_victim() {
    if [ "${2:-preload}" = none ]; then
        { env -u LD_PRELOAD "$victim" "$1" >"$tmp/out" 2>"$tmp/err"; } 2>/dev/null
    else
        { LD_PRELOAD=$preload "$victim" "$1" >"$tmp/out" 2>"$tmp/err"; } 2>/dev/null
    fi
    rc=$?
}

# 1. The preload is in effect: malloc is resolved to it, not to libc.
run_victim which
got=$(sed -n 's/^malloc-from: //p' "$tmp/out")
if [ $rc -eq 0 ] && [ -n "$got" ] &&
    [ "$(readlink -f "$got")" = "$(readlink -f "$preload")" ]; then
    pass "malloc comes from the preload ($got)"
else
    fail "malloc does not come from the preload (status $rc, malloc-from: ${got:-?})"
fi
if grep -q "cannot be preloaded" "$tmp/err"; then
    fail "the dynamic loader refused the preload"
fi

# 2. Every replaced function behaves.
run_victim api
if [ $rc -eq 0 ] && grep -qx "api: ok" "$tmp/out"; then
    pass "malloc/calloc/realloc/reallocarray/memalign family/malloc_usable_size"
else
    fail "api checks (status $rc)"
fi

# 3. Impossible sizes: NULL + ENOMEM, never a crash or a bogus block.
run_victim enomem
if [ $rc -eq 0 ] && grep -qx "enomem: ok" "$tmp/out"; then
    pass "malloc(SIZE_MAX), calloc overflow etc. give NULL/ENOMEM"
else
    fail "ENOMEM checks (status $rc)"
fi

# 4. Misuse: abort with globalalloc's report.
for mode in double-free foreign-stack foreign-mmap interior; do
    run_victim "$mode"
    if grep -q "^survived" "$tmp/out"; then
        fail "$mode: not detected (free returned)"
    elif [ $rc -ne 134 ]; then
        fail "$mode: expected SIGABRT (status 134), got status $rc"
    elif ! grep -qi "globalalloc" "$tmp/err"; then
        fail "$mode: aborted without a globalalloc message on stderr"
    else
        pass "$mode: aborts with: $(grep -i -m1 globalalloc "$tmp/err")"
    fi
done

# 5. Control: glibc's own report must not pass for globalalloc's.
run_victim double-free none
if [ $rc -ne 0 ] && ! grep -qi "globalalloc" "$tmp/err"; then
    pass "control: without the preload the double free is not reported by globalalloc"
else
    fail "control: without the preload: status $rc, stderr mentions globalalloc?"
fi

echo "$passed passed, $failed failed"
[ $failed -eq 0 ]
