#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Runs the demo (examples/demo) and checks the lines that carry its claims: the store's counts,
# copy and clear; the singleton built once across threads; the settings registry refusing an
# unknown key; the moveable block moving under a fixed handle; the sections in order; and the
# debug heap's own leak report naming exactly the one block the demo leaked, by function and by
# the line of demo.c that allocated it.
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
expect "shared condvar wait" '^shared: the parent waited on the board.s condition variable for all 201 lines: there$'
expect "shared heap check" '^shared: shared heap check: clean$'
expect "moveable handle same" '^moveable: handle unchanged: yes$'
expect "moveable pointer changed" '^moveable: data pointer changed: yes$'
expect "moveable contents kept" '^moveable: contents kept across the move: yes$'
expect "heap check clean" '^heap check: clean$'

expect "debug heap on" '^globalalloc [0-9.]+ demo: .*\(debug heap: on\)$'

# The sections, each once and in order.
sections=$(sed -nE 's/^== ([0-9]+)\. .*/\1/p' <<<"$out" | tr '\n' ' ')
if [[ "$sections" == "1 2 3 4 5 6 " ]]; then
    passes=$((passes + 1))
else
    fails=$((fails + 1))
    echo "demo.sh: sections out of order or missing: '$sections' (want 1 2 3 4 5 6)"
fi

# The leak, as the debug heap reports it: one 100-byte block, allocated by leak_one_block() on
# the line of demo.c marked "the deliberate leak", called from demo_leak().
src=${GA_SOURCE_DIR:-$(dirname "$0")/..}
line=$(grep -n 'the deliberate leak \*/' "$src/examples/demo.c" | cut -d: -f1)
expect "leak report header" '^globalalloc: ==== LEAKS \(pid [0-9]+\): 100 bytes in 1 block from 1 allocation site ====$'
expect "leak report block" '^globalalloc: 100 bytes in 1 block of 100 bytes \(first: 0x[0-9a-f]+, allocation #[0-9]+, thread [0-9]+\) allocated at:$'
expect "leak site: leak_one_block at demo.c:$line" "^ +#0 0x[0-9a-f]+ leak_one_block .*demo\.c:$line\$"
expect "leak caller: demo_leak" '^ +#1 0x[0-9a-f]+ demo_leak .*demo\.c:[0-9]+'
expect "leak count" '^leak: the report found 1 leaked block\(s\) \(expected 1: the deliberate one\)$'
# The report comes last: after section 6 starts, before the final heap check.
read -r s6 report check_line extra < <(grep -nE '^== 6\. |^globalalloc: ==== LEAKS|^heap check: clean$' <<<"$out" |
    cut -d: -f1 | tr '\n' ' ')
order="$s6 $report $check_line"
if [[ -n "$check_line" && -z "$extra" && $s6 -lt $report && $report -lt $check_line ]]; then
    passes=$((passes + 1))
else
    fails=$((fails + 1))
    echo "demo.sh: the leak report is not at the end of section 6 (lines: $order)"
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
