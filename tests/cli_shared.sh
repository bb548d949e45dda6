#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The globalalloc CLI on shared heaps: help, usage errors, create, ls, stat, check, owners,
# reclaim, rm (refused while another process is attached), --json on each, damaged heaps. Peer
# processes are tests/helpers/shared_peer.c: one dies attached (SIGKILL) holding blocks, one stays
# attached. JSON is parsed with python3. Env: GA_BUILD_DIR (set by ctest).
set -u
BUILD=${GA_BUILD_DIR:?GA_BUILD_DIR must point to the build tree}
CLI="$BUILD/tools/globalalloc"
PEER="$BUILD/tests/ga_shared_peer"
NAME="clitest$$"
NAME2="clibad$$"
NAME3="-clidash$$" # a name that looks like an option: given after --
HOLDER=""
TMP=$(mktemp -d)
pass=0
fail=0

cleanup() {
    [ -n "$HOLDER" ] && kill "$HOLDER" 2>/dev/null
    "$CLI" rm --force "$NAME" >/dev/null 2>&1
    "$CLI" rm --force "$NAME2" >/dev/null 2>&1
    "$CLI" rm --force -- "$NAME3" >/dev/null 2>&1
    rm -f "/dev/shm/ga.$NAME2" # also when the damage made it something the CLI will not remove
    rm -rf "$TMP"
}
trap cleanup EXIT

ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*" >&2; }

# expect STATUS DESCRIPTION -- command...: runs it, output in $TMP/out, checks the exit status.
expect() {
    local want=$1 desc=$2
    shift 3
    "$@" >"$TMP/out" 2>"$TMP/err"
    local got=$?
    if [ "$got" = "$want" ]; then ok; else bad "$desc: exit $got, wanted $want"; cat "$TMP/err" >&2; fi
}
contains() { if grep -q -- "$2" "$TMP/$1"; then ok; else bad "$3: '$2' not in $1"; cat "$TMP/$1" >&2; fi; }
# json EXPR DESCRIPTION: evaluates a python expression on the JSON in $TMP/out (as j).
json() {
    if python3 -c "import json,sys; j=json.load(open('$TMP/out')); sys.exit(0 if ($1) else 1)"; then
        ok
    else
        bad "$2: $1"
        cat "$TMP/out" >&2
    fi
}


# ---- help and usage -----------------------------------------------------------------------
expect 0 "help" -- "$CLI" --help
for section in NAME SYNOPSIS DESCRIPTION COMMANDS OPTIONS "EXIT STATUS" FILES EXAMPLES; do
    contains out "^$section" "help has $section"
done
contains out "^    owners \[--all\] NAME" "help documents owners"
expect 2 "no command" -- "$CLI"
expect 2 "unknown command" -- "$CLI" frobnicate x
contains err "unknown command 'frobnicate'" "unknown command named"
expect 2 "unknown command, one word" -- "$CLI" frobnicate
contains err "unknown command 'frobnicate'" "unknown command named, not a missing name"
expect 2 "leaks: exit status over 255" -- "$CLI" leaks -e 300 -- true
contains err "0..255" "leaks -e range said"
expect 2 "leaks: report file that cannot be opened" -- "$CLI" leaks -f /nonexistent-dir/r -- true
contains err "cannot open /nonexistent-dir/r" "leaks -f failure said"
expect 2 "leaks: report file with a comma" -- "$CLI" leaks -f "a,b" -- true
expect 2 "leaks: bad debug option" -- "$CLI" leaks -o bogus=1 -- true
contains err "bogus=1\": unknown option" "leaks -o names the bad item"
expect 2 "leaks: bad debug option value" -- "$CLI" leaks -o check=abc -- true
contains err "expected a number" "leaks -o says why"
expect 2 "unknown option" -- "$CLI" --frob ls
expect 2 "stat without name" -- "$CLI" stat
expect 0 "version" -- "$CLI" --version
contains out "globalalloc [0-9]" "version printed"

# ---- create, ls ----------------------------------------------------------------------------
expect 0 "create" -- "$CLI" create "$NAME" 4M
expect 1 "create twice" -- "$CLI" create "$NAME" 4M
contains err "exists" "create twice says why"
expect 1 "invalid name" -- "$CLI" stat "a/b"
contains err "invalid name" "invalid name reported"
expect 1 "missing heap" -- "$CLI" stat "nosuch$$"
expect 0 "ls" -- "$CLI" ls
contains out "^$NAME .*4.0 MiB.*0600 *ok" "ls shows the heap"
expect 0 "ls --json" -- "$CLI" --json ls
json "any(h['name']=='$NAME' and h['reserved']==4194304 and h['mode']=='0600' and h['attached']==0 for h in j['heaps'])" "ls --json"
# GLOBALALLOC_SHM_DIR: heaps made there are listed from there, and only there
SHMDIR="$TMP/shmdir"
mkdir -p "$SHMDIR"
expect 0 "create in GLOBALALLOC_SHM_DIR" -- env GLOBALALLOC_SHM_DIR="$SHMDIR" "$CLI" create "$NAME.dir" 4M
if [ -e "$SHMDIR/ga.$NAME.dir" ]; then ok; else bad "GLOBALALLOC_SHM_DIR: no $SHMDIR/ga.$NAME.dir"; fi
expect 0 "ls in GLOBALALLOC_SHM_DIR" -- env GLOBALALLOC_SHM_DIR="$SHMDIR" "$CLI" ls
contains out "^$NAME.dir .*ok" "ls lists the heap of GLOBALALLOC_SHM_DIR"
expect 0 "ls" -- "$CLI" ls
if grep -q "^$NAME.dir " "$TMP/out"; then bad "ls of /dev/shm lists a heap of GLOBALALLOC_SHM_DIR"; else ok; fi
expect 0 "rm in GLOBALALLOC_SHM_DIR" -- env GLOBALALLOC_SHM_DIR="$SHMDIR" "$CLI" rm "$NAME.dir"

# ---- a peer dies attached, holding blocks -------------------------------------------------
st=$( ("$PEER" "$NAME" die) 2>/dev/null; echo $?)
[ "$st" = 137 ] && ok || bad "peer did not die by SIGKILL ($st)"
expect 0 "stat --json after a death" -- "$CLI" --json stat "$NAME"
json "j['dead']==1 and j['dead_blocks']==4 and len(j['objects'])==1 and j['heap_blocks']==1" "dead peer reported"
json "any(p['alive'] is False and p['blocks']==4 for p in j['processes'])" "dead process listed"
json "any(o['name']=='greeting' and o['size']==32 for o in j['objects'])" "object listed"
json "any(c['block_size']==112 and c['blocks_used']==3 for c in j['classes'])" "size classes"
expect 0 "stat text" -- "$CLI" stat "$NAME"
contains out "DEAD" "stat text marks the dead process"
contains out "greeting: 32" "stat text lists the object"
contains out "^reserved *4194304" "stat text reserved"
expect 0 "check" -- "$CLI" check "$NAME"
contains out "$NAME: ok" "check ok"
expect 0 "ls counts the dead" -- "$CLI" --json ls
json "any(h['name']=='$NAME' and h['dead']==1 for h in j['heaps'])" "ls --json dead"
expect 0 "owners" -- "$CLI" owners "$NAME"
contains out "^exited processes" "owners has the exited section"
contains out "^  pid [0-9]*: 4 blocks, 262480 bytes" "owners gives the dead peer its 4 blocks"
contains out "^      offset [0-9]* size 112" "owners lists the dead peer's blocks"
contains out "^  object greeting: 32 bytes" "owners lists the object by name"
expect 0 "owners --json" -- "$CLI" --json owners "$NAME"
json "j['dead_blocks']==4 and len(j['processes'])==1 and not j['processes'][0]['alive'] and j['processes'][0]['blocks']==4 and j['processes'][0]['bytes']==262480 and sorted(b['size'] for b in j['processes'][0]['list'])==[112,112,112,262144]" "owners --json exited"
json "all(not p['alive'] for p in j['processes']) and j['heap_blocks']==1 and j['objects'][0]['name']=='greeting'" "owners --json heap blocks"
expect 2 "--all without owners" -- "$CLI" --all stat "$NAME"
expect 0 "reclaim" -- "$CLI" --json reclaim "$NAME"
json "j['ok'] and j['blocks_freed']>=4" "reclaim frees the dead peer's blocks"
expect 0 "stat after reclaim" -- "$CLI" --json stat "$NAME"
json "j['dead']==0 and j['dead_blocks']==0 and j['blocks_in_use']==1" "only the object is left"
expect 0 "owners after reclaim" -- "$CLI" --json owners "$NAME"
json "j['processes']==[] and j['dead_blocks']==0" "owners: nothing left by exited processes"

# ---- maps: listed by stat and check, dumped by map ------------------------------------------
"$PEER" "$NAME" map && ok || bad "peer could not make a map"
expect 0 "map" -- "$CLI" map "$NAME" settings
contains out '^map settings in heap .*: 3 keys' "map: the count"
contains out '^  "color" = "blue" (4 bytes' "map: a text key and value"
contains out '^  0x00ff = 0x0102 (2 bytes' "map: binary bytes in hex"
expect 0 "map --json" -- "$CLI" --json map "$NAME" settings
json "j['count']==3 and any(e['key']=='00ff' and e['key_format']=='hex' and e['value']=='0102' for e in j['entries']) and any(e['key']=='color' and e['value']=='blue' and e['value_format']=='text' for e in j['entries'])" "map --json entries"
expect 0 "stat lists the map" -- "$CLI" stat "$NAME"
contains out '^  settings: 3 keys' "stat: the map and its keys"
expect 0 "stat --json lists the map" -- "$CLI" --json stat "$NAME"
json "any(m['name']=='settings' and m['count']==3 and m['error']=='' for m in j['maps'])" "stat --json maps"
expect 0 "check checks the map" -- "$CLI" check "$NAME"
contains out '^  settings: 3 keys.*: ok' "check: the map checked"
expect 1 "map: no such map" -- "$CLI" map "$NAME" nosuch
contains err "no such map" "map: absent map"
expect 2 "map without a map name" -- "$CLI" map "$NAME"

# ---- rm refuses while a peer is attached ---------------------------------------------------
"$PEER" "$NAME" hold &
HOLDER=$!
for _ in $(seq 100); do
    "$CLI" --json ls >"$TMP/out" 2>/dev/null
    python3 -c "import json,sys; j=json.load(open('$TMP/out')); sys.exit(0 if any(h['name']=='$NAME' and h['attached']==1 for h in j['heaps']) else 1)" && break
    sleep 0.05
done
json "any(h['name']=='$NAME' and h['attached']==1 for h in j['heaps'])" "peer attached"
expect 1 "rm while attached" -- "$CLI" rm "$NAME"
contains err "attached" "rm says why"
expect 1 "rm --json while attached" -- "$CLI" --json rm "$NAME"
json "j['ok'] is False and j['error']=='GA_EPERM'" "rm --json error"
expect 0 "rm --force" -- "$CLI" rm --force "$NAME"
expect 0 "ls after rm" -- "$CLI" ls
if grep -q "^$NAME " "$TMP/out"; then bad "heap still listed after rm"; else ok; fi
kill "$HOLDER" 2>/dev/null
wait "$HOLDER" 2>/dev/null
HOLDER=""

# ---- damaged heaps -------------------------------------------------------------------------
expect 0 "create second" -- "$CLI" create "$NAME2" 2M
[ -f "/dev/shm/ga.$NAME2" ] || { echo "FAIL: no segment file for $NAME2" >&2; exit 1; }
# heap_id (offset 48) := 0xFFFF, no valid id (1..2047). Writing a fixed valid id, as this test
# did, changed nothing for the one heap in 2047 whose random id it was: the check then passed.
printf '\xff\xff' | dd of="/dev/shm/ga.$NAME2" bs=1 seek=48 conv=notrunc status=none
expect 1 "check a damaged header" -- "$CLI" check "$NAME2"
contains err "corrupt" "check reports corruption"
expect 1 "check --json a damaged header" -- "$CLI" --json check "$NAME2"
json "j['ok'] is False and j['error']=='GA_ECORRUPT'" "check --json error"
printf 'XXXX' | dd of="/dev/shm/ga.$NAME2" bs=1 seek=0 conv=notrunc status=none
expect 0 "ls with a foreign file" -- "$CLI" ls
contains out "^$NAME2 .*incompatible" "ls marks the bad heap"
expect 1 "stat a foreign file" -- "$CLI" --json stat "$NAME2"
json "j['error']=='GA_EFORMAT'" "stat --json error"
expect 0 "rm a damaged heap" -- "$CLI" rm "$NAME2"

# ---- sizes, --, permission ----------------------------------------------------------------
expect 2 "create: size that overflows" -- "$CLI" create "$NAME" 17179869185G
contains err "1M .. 64G" "size range given"
[ -e "/dev/shm/ga.$NAME" ] && bad "an overflowing size made a heap" || ok
expect 2 "create: size not a number" -- "$CLI" create "$NAME" 16MB
expect 2 "a name like an option, without --" -- "$CLI" create "$NAME3" 2M
expect 0 "create -- NAME" -- "$CLI" create -- "$NAME3" 2M
expect 0 "stat -- NAME" -- "$CLI" stat -- "$NAME3"
if [ "$(id -u)" = 0 ] && id nobody >/dev/null 2>&1 && command -v setpriv >/dev/null; then
    expect 1 "rm --force by another user" -- setpriv --reuid=nobody --regid=nogroup --clear-groups \
        "$CLI" rm --force -- "$NAME3"
    contains err "permission denied" "rm --force by another user says so"
else
    echo "skip: rm --force by another user (needs root, user nobody and setpriv)"
fi
expect 0 "rm -- NAME" -- "$CLI" rm -- "$NAME3"

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
