#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Quick start 1: build globalalloc (everything `cmake --install build` installs: the libraries,
# the preload library, the CLI, the man pages) and run the demo.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh build
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DGA_BUILD_TESTS=OFF -DGA_BUILD_BENCH=OFF >/dev/null
cmake --build build -j"$(nproc)"
./build/examples/demo
