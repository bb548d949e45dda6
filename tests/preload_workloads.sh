#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# The benchmark workloads (bench/ga-bench) as a correctness test of the preload: each runs at a
# small scale under LD_PRELOAD=libglobalalloc-preload.so and must exit cleanly and print the
# same checksum (data read back from its blocks) as the same run on glibc. The threaded ones
# (thread exit with live blocks, frees from other threads, false sharing) run several times,
# as their failures depend on scheduling.
# Env: GA_BUILD_DIR (set by ctest). Exit 0 = all passed, 1 = a failure, 77 = sanitizer build.
set -u

source "$(dirname "${BASH_SOURCE[0]}")/lib/preload_common.bash"
bench=$build/bench/ga-bench
if [ ! -x "$bench" ]; then
    echo "FAIL: $bench missing (configure with GA_BUILD_BENCH=ON)"
    exit 1
fi

passed=0
failed=0
scale=0.02

# checksum_of FILE: the checksum field of the RESULT line.
checksum_of() { sed -n 's/^RESULT .*checksum=\([0-9a-f]*\).*/\1/p' "$1"; }

# workload, threads, repetitions under the preload
for spec in "churn 1 1" "larson 2 8" "larson 4 4" "prodcons 1 4" "prodcons 2 2" "threads 4 4" \
    "scratch 2 4" "realloc 1 1" "large 1 1"; do
    set -- $spec
    name="$1 -t $2"
    env -u LD_PRELOAD "$bench" "$1" -s $scale -t "$2" >"$tmp/ref" 2>&1
    want=$(checksum_of "$tmp/ref")
    if [ -z "$want" ]; then
        failed=$((failed + 1))
        echo "FAIL $name: no result even without the preload"
        sed 's/^/     /' "$tmp/ref" | head -5
        continue
    fi
    bad=0
    for r in $(seq 1 "$3"); do
        { LD_PRELOAD=$preload "$bench" "$1" -s $scale -t "$2" >"$tmp/out" 2>"$tmp/err"; } \
            2>/dev/null
        rc=$?
        got=$(checksum_of "$tmp/out")
        if [ $rc -ne 0 ] || [ "$got" != "$want" ]; then
            bad=$((bad + 1))
            [ $bad -eq 1 ] && echo "     $name run $r: status $rc, checksum ${got:-none} (want $want)" &&
                sed 's/^/     stderr: /' "$tmp/err" | head -5
        fi
    done
    if [ $bad -eq 0 ]; then
        passed=$((passed + 1))
        echo "ok   $name: $3 run(s), checksum $want as on glibc"
    else
        failed=$((failed + 1))
        echo "FAIL $name: $bad of $3 runs crashed or read back wrong data"
    fi
done

echo "$passed passed, $failed failed"
[ $failed -eq 0 ]
