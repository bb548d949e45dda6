#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The README's Layout tree must match the tree: every file under src/ and include/ has its line,
# and every path the tree names exists. The tree is the first code block after "## Layout":
# one entry a line, two spaces of indent a level, a folder ends in "/", a description follows.
# Env: GA_SOURCE_DIR (set by ctest).
set -u
src=${GA_SOURCE_DIR:?set GA_SOURCE_DIR}
exec /usr/bin/python3 - "$src" <<'PY'
import os, sys
root = sys.argv[1]
text = open(os.path.join(root, "README.md"), encoding="utf-8").read().splitlines()
try:
    start = text.index("## Layout")
except ValueError:
    print("readme_layout: FAIL: README.md has no '## Layout' section"); sys.exit(1)
block, inside = [], False
for line in text[start:]:
    if line.startswith("```"):
        if inside: break
        inside = True; continue
    if inside and line.strip(): block.append(line)
listed, stack, bad = set(), [], []
for line in block:
    indent = len(line) - len(line.lstrip(" "))
    if indent % 2: bad.append("odd indent: " + line); continue
    level, name = indent // 2, line.split()[0]
    if level > len(stack): bad.append("indent jumps a level: " + line); continue
    stack = stack[:level]
    path = "".join(stack) + name
    if name.endswith("/"): stack.append(name)
    listed.add(path.rstrip("/"))
    if not os.path.exists(os.path.join(root, path)): bad.append("names a path that does not exist: " + path)
for top in ("src", "include"):
    for d, _, files in os.walk(os.path.join(root, top)):
        for f in files:
            rel = os.path.relpath(os.path.join(d, f), root)
            if rel not in listed: bad.append("file missing from the tree: " + rel)
for b in bad: print("readme_layout: FAIL:", b)
n = len(listed)
print(f"readme_layout: {n} entries checked, {len(bad)} problems")
sys.exit(1 if bad else 0)
PY
