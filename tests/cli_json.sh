#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Every `globalalloc --json` output checked against docs/json.md: the tables there are the
# schema. Runs each command (on a heap where a peer died holding blocks and a named object, so
# every kind of object appears), failures and usage errors too, then validates each output: one
# line, one object, "schema": 1, every key of its kind with its type, no other key; every kind
# of the document met at least once; and in the document itself a key has one type everywhere.
# Env: GA_BUILD_DIR, GA_SOURCE_DIR (set by ctest).
set -u
build=${GA_BUILD_DIR:?set GA_BUILD_DIR}
src=${GA_SOURCE_DIR:?set GA_SOURCE_DIR}
cli=$build/tools/globalalloc
peer=$build/tests/ga_shared_peer
name="clijson$$"
junk="clijsonjunk$$"
tmp=$(mktemp -d)
cleanup() {
    "$cli" rm --force "$name" >/dev/null 2>&1
    rm -f "/dev/shm/ga.$junk"
    rm -rf "$tmp"
}
trap cleanup EXIT

# run COMMAND-NAME EXPECTED-STATUS ARGS...: one output, saved for the validator as
# "command<TAB>status<TAB>expected status<TAB>json".
n=0
run() {
    local cmd=$1 want=$2
    shift 2
    out=$("$cli" --json "$@" 2>/dev/null)
    local rc=$?
    n=$((n + 1))
    printf '%s\t%s\t%s\t%s\n' "$cmd" "$rc" "$want" "${out//$'\n'/\\n}" >>"$tmp/outputs"
}

run create 0 create --mode 0660 "$name" 4M
st=$( ("$peer" "$name" die) 2>/dev/null; echo $?) # 137: died attached, holding blocks and the object "greeting"
head -c 65536 /dev/zero >"/dev/shm/ga.$junk"
"$peer" "$name" map || echo "cli_json.sh: the peer could not make a map"
run ls 0 ls
run stat 0 stat "$name"
run owners 0 owners "$name"
run owners 0 owners --all "$name"
run check 0 check "$name"
run map 0 map "$name" settings
run reclaim 0 reclaim "$name"
run version 0 --version
# failures: each must be a "failure", in every command
run create 1 create "$name" 4M
run create 2 create "x$name" 1K
run create 2 create --mode 0644 "x$name"
run stat 1 stat "nosuch$$"
run stat 1 stat "$junk"
run check 1 check "$junk"
run owners 1 owners "$junk"
run reclaim 1 reclaim "nosuch$$"
run rm 1 rm "nosuch$$"
run map 1 map "$name" nosuch
run map 2 map "$name"
run stat 1 stat "a/b"
run "" 2 frobnicate
run ls 2 ls extra
run rm 0 rm "$name"

/usr/bin/python3 - "$src/docs/json.md" "$tmp/outputs" <<'EOF'
import json, re, sys

doc, outputs = sys.argv[1], sys.argv[2]

# ---- the schema: every "### `kind`" heading followed by a | key | type | meaning | table ----
kinds, kind = {}, None
for line in open(doc):
    m = re.match(r"^### `([a-z_]+)`", line)
    if m:
        kind = m.group(1)
        kinds[kind] = {}
        continue
    m = re.match(r"^\| `([a-z_]+)` \| ([^|]+) \|", line)
    if m and kind:
        kinds[kind][m.group(1)] = m.group(2).strip()
fails = []
if len(kinds) < 10:
    fails.append(f"docs/json.md: only {len(kinds)} kinds found")

# In the document, a key has one type everywhere (true/false are booleans).
seen = {}
for k, keys in kinds.items():
    for key, t in keys.items():
        t = "boolean" if t in ("true", "false") else t
        if seen.setdefault(key, (t, k))[0] != t:
            fails.append(f"docs/json.md: key {key!r} is {t} in {k} but {seen[key][0]} in {seen[key][1]}")

met = set()

def check(value, t, where):
    """Checks value against type t of the document; returns a list of problems."""
    if t == "integer":
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif t == "string":
        ok = isinstance(value, str)
    elif t == "boolean":
        ok = isinstance(value, bool)
    elif t in ("true", "false"):
        ok = value is (t == "true")
    elif t.startswith("array of "):
        if not isinstance(value, list):
            return [f"{where}: not an array"]
        probs = []
        for i, v in enumerate(value):
            probs += check_any(v, t[len("array of "):].split(" or "), f"{where}[{i}]")
        return probs
    elif t in kinds:
        return check_kind(value, t, where)
    else:
        return [f"{where}: unknown type {t!r} in docs/json.md"]
    return [] if ok else [f"{where}: {value!r} is not {t}"]

def check_any(value, names, where):
    best = None
    for k in names:
        probs = check_kind(value, k, where, record=False)
        if not probs:
            return check_kind(value, k, where)
        best = best or probs
    return best

def check_kind(obj, k, where, record=True):
    if not isinstance(obj, dict):
        return [f"{where}: not an object ({k})"]
    want = kinds[k]
    probs = [f"{where}: {k} has no key {key!r}" for key in want if key not in obj]
    probs += [f"{where}: {k} has a key {key!r} that docs/json.md does not list" for key in obj if key not in want]
    for key, t in want.items():
        if key in obj:
            probs += check(obj[key], t, f"{where}.{key}")
    if record and not probs:
        met.add(k)
    return probs

count = 0
for line in open(outputs):
    cmd, rc, want_rc, out = line.rstrip("\n").split("\t", 3)
    count += 1
    where = f"'globalalloc --json' {cmd or '(usage)'} (exit {rc})"
    if rc != want_rc:
        fails.append(f"{where}: exit status {rc}, want {want_rc}")
    if "\\n" in out:
        fails.append(f"{where}: more than one line: {out}")
        continue
    try:
        j = json.loads(out)
    except ValueError as e:
        fails.append(f"{where}: not JSON ({e}): {out!r}")
        continue
    if not isinstance(j, dict) or j.get("schema") != 1:
        fails.append(f"{where}: no \"schema\": 1: {out}")
        continue
    k = "failure" if j.get("ok") is False else cmd
    if k not in kinds:
        fails.append(f"{where}: kind {k!r} is not documented")
        continue
    if j.get("command") != cmd:
        fails.append(f"{where}: \"command\" is {j.get('command')!r}, want {cmd!r}")
    if (rc == "0") != (j.get("ok") is True):
        fails.append(f"{where}: \"ok\" is {j.get('ok')!r} with exit status {rc}")
    fails += [p + f"\n    in {out}" for p in check_kind(j, k, where)]

missed = sorted(set(kinds) - met)
if missed:
    fails.append(f"kinds of docs/json.md never met in an output: {', '.join(missed)}")
for f in fails:
    print("cli_json.sh: FAILED:", f)
print(f"cli_json.sh: {count} outputs, {len(met)} kinds checked, {len(fails)} problems")
sys.exit(1 if fails else 0)
EOF
