#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# Real programs under LD_PRELOAD=libglobalalloc-preload.so, each compared with the same run
# without the preload (glibc), so the expected output is whatever the program really prints:
#   1. python3 on a script: big dicts, lists, strings, bytearrays, a json round trip, threads;
#      it also proves the preload is in use (mapped in /proc/self/maps, and glibc's mallinfo2
#      does not see a 64 MiB buffer, which it does without the preload);
#   2. git init/add/commit/log/gc/fsck on a small repository (fixed dates, so equal hashes);
#   3. cmake configuring and building a small C project, and the result running;
#   4. sqlite3 on a few thousand rows: create, insert, index, aggregate and join queries.
# Env: GA_BUILD_DIR (set by ctest). Exit 0 = all passed, 1 = a failure, 77 = sanitizer build.
set -u

source "$(dirname "${BASH_SOURCE[0]}")/lib/preload_common.bash"
for tool in git cmake sqlite3; do
    if ! command -v $tool >/dev/null; then
        echo "FAIL: $tool not installed (Debian package $tool)"
        exit 1
    fi
done
# Debian's interpreter, not a version manager's shim script.
py=$(command -v /usr/bin/python3 || command -v python3) || {
    echo "FAIL: python3 not installed"
    exit 1
}

passed=0
failed=0

pass() {
    passed=$((passed + 1))
    echo "ok   $1"
}
fail() {
    failed=$((failed + 1))
    echo "FAIL $1"
    shift
    for f in "$@"; do
        [ -s "$f" ] && tail -n 15 "$f" | sed "s|^|     $(basename "$f"): |"
    done
}

# under MODE CMD...: runs CMD with the preload (MODE=ga) or without it (MODE=ref).
under() {
    local mode=$1
    shift
    if [ "$mode" = ga ]; then
        LD_PRELOAD=$preload "$@"
    else
        env -u LD_PRELOAD "$@"
    fi
}

# no_loader_complaint FILE: the dynamic loader did not refuse the preload.
no_loader_complaint() { ! grep -q "cannot be preloaded" "$1"; }

# ---- 1. python3 -------------------------------------------------------------------------
cat >"$tmp/work.py" <<'EOF'
import ctypes, gc, hashlib, json, sys, threading

def preload_report():
    # Printed on stderr, as it differs between the two runs by design.
    with open("/proc/self/maps") as f:
        mapped = "libglobalalloc-preload.so" in f.read()
    # glibc's own statistics: a 64 MiB buffer would show in its mmapped bytes if glibc's
    # malloc served Python, and cannot if the preload replaced it.
    class MallInfo2(ctypes.Structure):
        _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks",
                    "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]
    glibc = ctypes.CDLL("libc.so.6")
    glibc.mallinfo2.restype = MallInfo2
    big = bytearray(64 << 20)
    mi = glibc.mallinfo2()
    used = mi.hblkhd + mi.uordblks >= len(big)
    del big
    print(f"maps-preload: {'yes' if mapped else 'no'}", file=sys.stderr)
    print(f"glibc-malloc-used: {'yes' if used else 'no'}", file=sys.stderr)

def digest(obj):
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:16]

preload_report()
d = {f"key{i}": [i, str(i) * 3, {"n": i, "sq": i * i}] for i in range(150000)}
print("dict", len(d), digest(d))
lst = sorted(d.items(), key=lambda kv: (kv[1][0] % 977, kv[0]))
print("sorted", lst[0][0], lst[-1][0])
text = json.dumps(d)
back = json.loads(text)
assert back == d
print("json", len(text), back == d)
del d, back, lst
gc.collect()
s = "".join(chr(97 + (i * 7) % 26) for i in range(500000))
words = s.split("q")
print("words", len(words), max(map(len, words)), digest(words[:100]))
buf = bytearray()
for i in range(20000):
    buf += bytes([i % 251]) * (i % 97)
print("bytearray", len(buf), hashlib.sha256(buf).hexdigest()[:16])
results = [None] * 4
def worker(k):
    acc = []
    for i in range(30000):
        acc.append({"k": k, "i": i, "s": f"{k}-{i}"})
        if len(acc) > 500:
            acc = acc[250:]  # frees half the blocks while the other threads allocate
    results[k] = digest(acc)
ts = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
for t in ts:
    t.start()
for t in ts:
    t.join()
print("threads", results)
EOF
for mode in ref ga; do
    (cd "$tmp" && under $mode "$py" work.py >"$tmp/py.$mode.out" 2>"$tmp/py.$mode.err")
    echo $? >"$tmp/py.$mode.rc"
done
if [ "$(cat "$tmp/py.ga.rc")" != 0 ]; then
    fail "python3: exit status $(cat "$tmp/py.ga.rc")" "$tmp/py.ga.out" "$tmp/py.ga.err"
elif [ "$(cat "$tmp/py.ref.rc")" != 0 ]; then
    fail "python3 without the preload failed: the test script is broken" "$tmp/py.ref.err"
elif ! grep -qx "maps-preload: yes" "$tmp/py.ga.err"; then
    fail "python3: libglobalalloc-preload.so is not mapped in the process" "$tmp/py.ga.err"
elif ! grep -qx "glibc-malloc-used: no" "$tmp/py.ga.err"; then
    fail "python3: glibc's malloc still serves the process" "$tmp/py.ga.err"
elif ! grep -qx "glibc-malloc-used: yes" "$tmp/py.ref.err"; then
    fail "python3: the glibc-malloc probe does not see glibc even without the preload" \
        "$tmp/py.ref.err"
elif ! cmp -s "$tmp/py.ref.out" "$tmp/py.ga.out"; then
    fail "python3: output differs from the run without the preload" "$tmp/py.ga.out"
    diff "$tmp/py.ref.out" "$tmp/py.ga.out" | head -10
elif [ "$(wc -l <"$tmp/py.ga.out")" -ne 6 ]; then
    fail "python3: expected 6 lines of output" "$tmp/py.ga.out"
else
    pass "python3: same output as without the preload; preload mapped, glibc malloc unused"
fi

# ---- 2. git -----------------------------------------------------------------------------
git_session() { # DIR: a small repository with three commits, then log, gc, fsck
    local dir=$1
    mkdir -p "$dir" && cd "$dir" || return 1
    export GIT_AUTHOR_NAME=ga GIT_AUTHOR_EMAIL=ga@example.invalid
    export GIT_COMMITTER_NAME=ga GIT_COMMITTER_EMAIL=ga@example.invalid
    export GIT_CONFIG_NOSYSTEM=1 HOME=$dir
    git init -q -b main . || return 1
    for c in 1 2 3; do
        export GIT_AUTHOR_DATE="2024-01-0$c 12:00:00 +0000" GIT_COMMITTER_DATE="2024-01-0$c 12:00:00 +0000"
        for f in $(seq 1 40); do
            seq 1 $((f * c * 20)) | sed "s/^/line $c $f /" >"file$f.txt"
        done
        mkdir -p "sub$c" && echo "commit $c" >"sub$c/readme"
        git add -A && git commit -q -m "commit number $c" || return 1
    done
    git log --format='%H %s' && git gc -q && git fsck --full --strict 2>&1 &&
        git count-objects -v | grep -E '^(count|in-pack|packs):'
}
for mode in ref ga; do
    (under $mode bash -c "$(declare -f git_session); git_session $tmp/git.$mode" \
        >"$tmp/git.$mode.out" 2>"$tmp/git.$mode.err")
    echo $? >"$tmp/git.$mode.rc"
done
subjects=$(sed -n 's/^[0-9a-f]\{40\} //p' "$tmp/git.ga.out" | tr '\n' ,)
if [ "$(cat "$tmp/git.ga.rc")" != 0 ] || ! no_loader_complaint "$tmp/git.ga.err"; then
    fail "git: exit status $(cat "$tmp/git.ga.rc")" "$tmp/git.ga.out" "$tmp/git.ga.err"
elif [ "$subjects" != "commit number 3,commit number 2,commit number 1," ]; then
    fail "git: log does not list the three commits (got: $subjects)" "$tmp/git.ga.out"
elif ! cmp -s "$tmp/git.ref.out" "$tmp/git.ga.out"; then
    fail "git: output (hashes, fsck, pack) differs from the run without the preload" \
        "$tmp/git.ref.out" "$tmp/git.ga.out"
else
    pass "git: init/add/commit/log/gc/fsck, same hashes as without the preload"
fi

# ---- 3. cmake ---------------------------------------------------------------------------
mkdir -p "$tmp/proj"
cat >"$tmp/proj/CMakeLists.txt" <<'EOF'
cmake_minimum_required(VERSION 3.16)
project(preload_probe C)
include(CheckIncludeFile)
check_include_file(stdatomic.h HAVE_STDATOMIC)
add_executable(probe main.c)
EOF
cat >"$tmp/proj/main.c" <<'EOF'
#include <stdio.h>
#include <stdlib.h>
int main(void)
{
    unsigned long sum = 0;
    for (int i = 1; i <= 1000; i++) {
        int *p = malloc(sizeof *p * (size_t)i);
        p[i - 1] = i;
        sum += (unsigned long)p[i - 1];
        free(p);
    }
    printf("probe %lu\n", sum);
    return 0;
}
EOF
LD_PRELOAD=$preload cmake -S "$tmp/proj" -B "$tmp/proj/build" >"$tmp/cmake.out" 2>"$tmp/cmake.err"
rc=$?
LD_PRELOAD=$preload cmake --build "$tmp/proj/build" >>"$tmp/cmake.out" 2>>"$tmp/cmake.err"
brc=$?
probe=$("$tmp/proj/build/probe" 2>&1)
if [ $rc -ne 0 ] || ! no_loader_complaint "$tmp/cmake.err"; then
    fail "cmake: configure exit status $rc" "$tmp/cmake.out" "$tmp/cmake.err"
elif ! grep -q '^CMAKE_PROJECT_NAME:STATIC=preload_probe$' "$tmp/proj/build/CMakeCache.txt" ||
    ! grep -q '^HAVE_STDATOMIC:INTERNAL=1$' "$tmp/proj/build/CMakeCache.txt"; then
    fail "cmake: CMakeCache.txt lacks the project name or the include check" "$tmp/cmake.out"
elif [ $brc -ne 0 ]; then
    fail "cmake --build: exit status $brc" "$tmp/cmake.out" "$tmp/cmake.err"
elif [ "$probe" != "probe $((1000 * 1001 / 2))" ]; then
    fail "cmake: the built program printed '$probe'"
else
    pass "cmake: configured (cache written, include check ran) and built a working program"
fi

# ---- 4. sqlite3 -------------------------------------------------------------------------
rows=5000
cat >"$tmp/work.sql" <<EOF
CREATE TABLE item(id INTEGER PRIMARY KEY, grp INTEGER, name TEXT, val REAL, blob BLOB);
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $rows)
INSERT INTO item SELECT i, i % 37, 'name-' || i, i * 0.5, zeroblob(i % 300) FROM n;
CREATE INDEX item_grp ON item(grp, name);
CREATE TABLE grp(id INTEGER PRIMARY KEY, label TEXT);
WITH RECURSIVE g(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM g WHERE i < 36)
INSERT INTO grp SELECT i, printf('group %02d', i) FROM g;
UPDATE item SET name = upper(name) WHERE id % 3 = 0;
DELETE FROM item WHERE id % 101 = 0;
SELECT 'count', count(*) FROM item;
SELECT 'sum', sum(id) FROM item;
SELECT 'bytes', sum(length(blob)), sum(length(name)) FROM item;
SELECT g.label, count(*), sum(i.val), min(i.name), max(i.name)
  FROM item i JOIN grp g ON g.id = i.grp GROUP BY g.label ORDER BY g.label LIMIT 5;
SELECT 'integrity', * FROM pragma_integrity_check;
EOF
for mode in ref ga; do
    rm -f "$tmp/db.$mode"
    under $mode sqlite3 -batch "$tmp/db.$mode" <"$tmp/work.sql" >"$tmp/sql.$mode.out" \
        2>"$tmp/sql.$mode.err"
    echo $? >"$tmp/sql.$mode.rc"
done
# Expected aggregates, computed here independently of sqlite.
deleted=$((rows / 101))
want_count=$((rows - deleted))
want_sum=$((rows * (rows + 1) / 2 - 101 * deleted * (deleted + 1) / 2))
if [ "$(cat "$tmp/sql.ga.rc")" != 0 ] || [ -s "$tmp/sql.ga.err" ]; then
    fail "sqlite3: exit status $(cat "$tmp/sql.ga.rc")" "$tmp/sql.ga.out" "$tmp/sql.ga.err"
elif ! grep -qx "count|$want_count" "$tmp/sql.ga.out" ||
    ! grep -qx "sum|$want_sum" "$tmp/sql.ga.out" ||
    ! grep -qx "integrity|ok" "$tmp/sql.ga.out"; then
    fail "sqlite3: wrong count/sum/integrity (want $want_count, $want_sum, ok)" "$tmp/sql.ga.out"
elif ! cmp -s "$tmp/sql.ref.out" "$tmp/sql.ga.out"; then
    fail "sqlite3: output differs from the run without the preload" "$tmp/sql.ga.out"
else
    pass "sqlite3: $rows rows, index, aggregates and join as without the preload"
fi

echo "$passed passed, $failed failed"
[ $failed -eq 0 ]
