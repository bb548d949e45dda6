#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Installs the Debian packages that building, testing and benchmarking need (only the missing
# ones; uses sudo when not root). Usage: scripts/deps.sh [build|test]
set -euo pipefail
want=(cmake make gcc pkg-config python3) # python3: the man pages and the CLI's --help
if [ "${1:-test}" = test ]; then
  want+=(clang man-db git sqlite3 libjemalloc2 libmimalloc2.0 libtcmalloc-minimal4 libboost-dev g++
         gnuplot-nox libsqlite3-dev) # gnuplot: bench/chart.py; libsqlite3: map_bench's comparison
fi
missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "deps: installing ${missing[*]}"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
