#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Runs the demo (examples/demo) and checks the lines that carry its claims: the store's counts,
# copy and clear; the singleton built once across threads; the settings registry refusing an
# unknown key; the moveable block moving under a fixed handle; and the exit-time leak report
# naming exactly the one block the demo leaked, of the size it announced.
set -u
demo="${GA_BUILD_DIR:?set GA_BUILD_DIR}/examples/demo"
if [[ ! -x "$demo" ]]; then
    echo "demo.sh: $demo not built (configure with -DGA_BUILD_EXAMPLES=ON)"
    exit 1
fi

out=$("$demo" 2>&1)
rc=$?
fails=0
passes=0

expect() { # expect DESCRIPTION EXTENDED-REGEX
    if grep -Eq -- "$2" <<<"$out"; then
        passes=$((passes + 1))
    else
        fails=$((fails + 1))
        echo "demo.sh: missing: $1 (pattern: $2)"
    fi
}

expect "store count after adds" '^store: the store has 1003 items after the adds \(expected 1003\)$'
expect "store copy matches" '^store: a copy of all items has 1003 items and matches the store$'
expect "store clear empties it" '^store: after clear the store has 0 items \(a copy has 0\)$'
expect "singleton created once" '^singleton: created 1 time\(s\) by 8 threads racing for it; all threads saw the same instance$'
expect "singleton tickets" '^singleton: it issued 800 tickets \(expected 800\)'
expect "settings known update" '^settings: update of log_level: accepted; log_level = "debug"$'
expect "settings unknown key refused" "^settings: update of unknown key 'colour' refused: GA_ENOENT "
expect "settings concurrent access" '^settings: .* 0 torn or failed reads/writes$'
expect "shared child read parent's settings" '^shared: child process attached; it reads theme light, volume 3 \(version 1\)$'
expect "shared settings updated by child" '^shared: after the child exited the settings read theme dark, volume 7 \(version 2\)$'
expect "shared list complete" '^shared: the list has 201 lines, 101 from the parent and 100 from the child, under the same handle 0x[0-9a-f]+ in both processes$'
expect "shared heap check" '^shared: shared heap check: clean$'
expect "moveable handle same" '^moveable: handle unchanged: yes$'
expect "moveable pointer changed" '^moveable: data pointer changed: yes$'
expect "moveable contents kept" '^moveable: contents kept across the move: yes$'
expect "heap check clean" '^heap check: clean$'

# The leak: the size announced when leaking must be the size the exit report finds.
size=$(sed -nE 's/^leak: leaking one block of [0-9]+ bytes on purpose \(block size ([0-9]+) bytes\).*/\1/p' <<<"$out")
if [[ -z "$size" || "$size" -lt 100 ]]; then
    fails=$((fails + 1))
    echo "demo.sh: missing or bad leak announcement (size '$size')"
else
    expect "leak report: 1 block of $size bytes" "^leak report: 1 leaked block\(s\), $size bytes, 0 leaked handle\(s\)$"
    expect "leak report verdict" "^leak report: expected exactly 1 leaked block of $size bytes: found it$"
fi

if grep -q '^FAILED:' <<<"$out"; then
    fails=$((fails + 1))
    echo "demo.sh: the demo reported failed checks:"
    grep '^FAILED:' <<<"$out"
fi
if [[ $rc -ne 0 ]]; then
    fails=$((fails + 1))
    echo "demo.sh: demo exited with status $rc"
fi
if [[ $fails -ne 0 ]]; then
    echo "---- demo output ----"
    echo "$out"
fi
echo "demo.sh: $passes passed, $fails failed"
[[ $fails -eq 0 ]]
