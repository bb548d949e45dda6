#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The architecture, checked: which src/ folders include which. The engine is a leaf (it includes
# only the OS layer), the OS layer includes no folder, the library-wide base (internal.h,
# error.c) includes only the OS layer, no two folders include each other, directly or through
# others, and no file includes another folder's internal header. Prints the folder graph. Env: GA_SOURCE_DIR (set by ctest).
set -u
src=${GA_SOURCE_DIR:?set GA_SOURCE_DIR}/src
exec /usr/bin/python3 - "$src" <<'PY'
import os, re, sys
src = sys.argv[1]
folders = sorted(d for d in os.listdir(src) if os.path.isdir(os.path.join(src, d)))
inc = re.compile(r'^\s*#\s*include\s+"([a-z0-9_]+)/', re.M)
deps, bad = {f: set() for f in folders}, []
def includes(path):
    return {m for m in inc.findall(open(path, encoding="utf-8").read()) if m in folders}
for f in folders:
    for d, _, files in os.walk(os.path.join(src, f)):
        for name in files:
            if name.endswith((".c", ".h")):
                deps[f] |= includes(os.path.join(d, name)) - {f}
# A folder's internal header is for its own files: the others use its interface header.
internal = re.compile(r'^\s*#\s*include\s+"([a-z0-9_]+)/([a-z0-9_]+_internal|types)\.h"', re.M)
for d, _, files in os.walk(src):
    for name in files:
        if not name.endswith((".c", ".h")): continue
        path = os.path.join(d, name)
        here = os.path.relpath(path, src).split(os.sep)[0]
        for folder, hdr in internal.findall(open(path, encoding="utf-8").read()):
            if folder != here:
                bad.append(f"{os.path.relpath(path, src)} includes {folder}/{hdr}.h, internal to {folder}/")
for base in ("internal.h", "error.c"):
    extra = includes(os.path.join(src, base)) - {"os"}
    if extra: bad.append(f"{base} (library-wide base) includes {sorted(extra)}")
if deps.get("engine", set()) - {"os"}:
    bad.append(f"the engine is not a leaf: it includes {sorted(deps['engine'] - {'os'})}")
if deps.get("os"):
    bad.append(f"the OS layer includes {sorted(deps['os'])}")
state = {}
def visit(f, path):
    state[f] = 1
    for g in sorted(deps[f]):
        if state.get(g) == 1: bad.append("include cycle: " + " -> ".join(path + [g]))
        elif g not in state: visit(g, path + [g])
    state[f] = 2
for f in folders:
    if f not in state: visit(f, [f])
for f in folders: print(f"layering: {f} -> {', '.join(sorted(deps[f])) or '(nothing)'}")
for b in bad: print("layering: FAIL:", b)
sys.exit(1 if bad else 0)
PY
