#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Quick start 2: the whole test suite. Builds and runs every test in four configurations:
#   release (gcc, warnings as errors), debug (clang, GA_DEBUG=3: every internal assertion),
#   ASan+UBSan, and TSan (clang); then a smoke run of the benchmarks.
# Set GA_TEST_CONFIGS to a subset ("release asan") to run fewer.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh test
jobs=$(nproc)
configs=${GA_TEST_CONFIGS:-"release debug asan tsan"}
status=0
passed=0
failed=0

run_config() {
  local name=$1; shift
  local dir=build-ci-$name
  echo "=== [$name] configure + build"
  if ! cmake -S . -B "$dir" -DGA_WERROR=ON "$@" >/dev/null ||
     ! cmake --build "$dir" -j"$jobs" >"$dir/build.log" 2>&1; then
    grep -E "warning:|error:" "$dir/build.log" | head -50
    echo "=== [$name] BUILD FAILED"
    status=1; failed=$((failed + 1)); return
  fi
  echo "=== [$name] ctest"
  if (cd "$dir" && ctest -j"$jobs" --output-on-failure ${GA_CTEST_ARGS:-}); then
    passed=$((passed + 1))
  else
    status=1; failed=$((failed + 1))
  fi
}

for c in $configs; do
  case $c in
    release) run_config release -DCMAKE_BUILD_TYPE=Release ;;
    debug)   run_config debug -DCMAKE_BUILD_TYPE=Debug -DGA_DEBUG=3 -DCMAKE_C_COMPILER=clang ;;
    asan)    run_config asan -DCMAKE_BUILD_TYPE=Debug \
               "-DGA_SANITIZE=address;undefined" -DCMAKE_C_COMPILER=clang ;;
    tsan)    GA_CTEST_ARGS="-LE script" run_config tsan -DCMAKE_BUILD_TYPE=RelWithDebInfo \
               -DGA_SANITIZE=thread -DCMAKE_C_COMPILER=clang ;;
    *) echo "unknown config $c"; exit 2 ;;
  esac
done

if [ -f bench/run.py ] && [[ " $configs " == *" release "* ]]; then
  echo "=== benchmark smoke run"
  # run.py: every allocator on every workload; debug_overhead.py: the debug heap (and ASan) on
  # the same workloads, checksums compared with glibc's
  if python3 bench/run.py --quick --require globalalloc --build build-ci-release &&
    python3 bench/debug_overhead.py build-ci-release --quick; then
    passed=$((passed + 1))
  else
    status=1; failed=$((failed + 1))
  fi
fi
if [ $status -eq 0 ]; then echo "ALL TEST CONFIGURATIONS PASSED"; else echo "SOME TESTS FAILED"; fi
echo "configurations: $passed passed, $failed failed"
exit $status
