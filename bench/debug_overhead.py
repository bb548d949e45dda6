#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""What the debug heap costs, next to AddressSanitizer and valgrind, on the same workloads.

    python3 bench/debug_overhead.py [BUILD_DIR] [--runs N] [--scale S] [--steps N] [--quick]
                                    [--no-asan] [--no-valgrind] [--no-breakdown]

Workloads: bench/debug_overhead.c (alloc-heavy churn on 2 threads, four allocation sites two to
four calls deep; "touch": two bytes of each block are used, "use": every byte) and every
ga-bench workload. Each runs, interleaved, RUNS times under:
  glibc        the plain program
  normal       LD_PRELOAD=libglobalalloc-preload.so
  debug        the same + GLOBALALLOC_DEBUG=1 (the defaults: stacks of 16 frames on malloc and
               free, fill patterns, guards, 1 MiB quarantine per thread checked on release)
  ASan         the program built with clang -fsanitize=address (its own allocator; default
               256 MiB quarantine) and ASAN_OPTIONS=quarantine_size_mb=0
  valgrind     memcheck on the touch churn (a tenth of the steps)
and the table shows medians: debug / normal (the issue's measure) and, for the tools that
replace the allocator, their time / glibc's (what the program costs without them).
Time: debug_overhead's CPU time (all threads, before exit); ga-bench's own measured seconds.
Every run's checksum must match the plain program's: exit status 1 otherwise, or if any run
fails. A run that takes longer than 30 s is stopped and shown as "> N x" (ASan's realloc, which
always moves the block, is quadratic on the realloc workload). Standard library only.
"""

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
GA_BENCH = [  # label, ga-bench arguments
    ("churn", ["churn"]),
    ("larson", ["larson", "-t", "2"]),
    ("prodcons", ["prodcons", "-t", "1"]),
    ("threads-1", ["threads", "-t", "1"]),
    ("threads-2", ["threads", "-t", "2"]),
    ("scratch", ["scratch", "-t", "2"]),
    ("realloc", ["realloc"]),
    ("large", ["large"]),
]
BREAKDOWN = [  # debug options that switch one part off: where the time goes
    ("freestacks=0", "no free stacks"),
    ("stacks=0", "no stacks"),
    ("quarantine=0", "no quarantine"),
    ("fill=0", "no fill patterns"),
    ("stacks=0,fill=0,quarantine=0,guard=0", "nothing checked: headers and hooks only"),
]
FLAGS = ["-O2", "-g", "-fno-omit-frame-pointer", "-fno-builtin-malloc", "-fno-builtin-calloc",
         "-fno-builtin-realloc", "-fno-builtin-free", "-pthread", "-D_GNU_SOURCE"]
TIME_RE = re.compile(r"cpu=([0-9.]+)")
SECONDS_RE = re.compile(r"seconds=([0-9.]+)")
SUM_RE = re.compile(r"checksum=([0-9a-fx]+)")


def compile_(cc, sources, out, extra=()):
    cmd = [cc, *FLAGS, *extra, *sources, "-o", out, "-ldl"]
    return subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE).returncode == 0


TIMEOUT = 30.0  # seconds a run may take (ASan's realloc is quadratic: it always moves)


class TimedOut(Exception):
    pass


def run(cmd, env, use_cpu):
    """(time, checksum) of one run; None if it failed; TimedOut past TIMEOUT."""
    try:
        r = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True, timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        raise TimedOut()
    m = (TIME_RE if use_cpu else SECONDS_RE).search(r.stdout)
    s = SUM_RE.search(r.stdout)
    if r.returncode != 0 or not m or not s:
        sys.stderr.write(f"FAILED: {' '.join(cmd)} (exit {r.returncode})\n{r.stderr[-2000:]}\n")
        return None
    return float(m.group(1)), s.group(1)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("build", nargs="?", default=os.environ.get("GA_BUILD_DIR", "build"))
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--scale", default="0.3", help="ga-bench -s (default 0.3)")
    ap.add_argument("--steps", type=int, default=2000000, help="debug_overhead steps/thread")
    ap.add_argument("--quick", action="store_true", help="tiny sizes, one run: a smoke test")
    ap.add_argument("--no-asan", action="store_true")
    ap.add_argument("--no-valgrind", action="store_true")
    ap.add_argument("--no-breakdown", action="store_true")
    a = ap.parse_args()
    if a.quick:
        a.runs, a.scale, a.steps, a.no_valgrind = 1, "0.01", 20000, True
    build = os.path.abspath(a.build)
    preload = os.path.join(build, "libglobalalloc-preload.so")
    ga_bench = os.path.join(build, "bench", "ga-bench")
    for f in (preload, ga_bench):
        if not os.path.exists(f):
            sys.exit(f"debug_overhead: {f} not found: build the project first (Release)")

    tmp = tempfile.mkdtemp(prefix="ga-dbgov-")
    try:
        cc = shutil.which("cc") or "gcc"
        dbo = os.path.join(tmp, "dbo")
        if not compile_(cc, [os.path.join(HERE, "debug_overhead.c")], dbo):
            sys.exit("debug_overhead: cannot compile debug_overhead.c")
        asan_dbo = asan_bench = None
        clang = shutil.which("clang")
        if clang and not a.no_asan:
            asan_dbo, asan_bench = os.path.join(tmp, "dbo-asan"), os.path.join(tmp, "bench-asan")
            srcs = sorted(os.path.join(HERE, f) for f in os.listdir(HERE)
                          if f.startswith("bench_") and f.endswith(".c"))
            if not (compile_(clang, [os.path.join(HERE, "debug_overhead.c")], asan_dbo,
                             ["-fsanitize=address"]) and
                    compile_(clang, srcs, asan_bench, ["-fsanitize=address"])):
                print("ASan: clang -fsanitize=address failed; ASan columns left out")
                asan_dbo = asan_bench = None

        base_env = {k: v for k, v in os.environ.items()
                    if k not in ("LD_PRELOAD", "GLOBALALLOC_DEBUG", "ASAN_OPTIONS")}
        envs = {
            "glibc": base_env,
            "normal": dict(base_env, LD_PRELOAD=preload),
            "debug": dict(base_env, LD_PRELOAD=preload, GLOBALALLOC_DEBUG="1"),
            "asan": dict(base_env, ASAN_OPTIONS="detect_leaks=1"),
            "asan-q0": dict(base_env, ASAN_OPTIONS="detect_leaks=1:quarantine_size_mb=0"),
        }
        if not a.no_breakdown:
            for opt, _ in BREAKDOWN:
                envs["debug," + opt] = dict(base_env, LD_PRELOAD=preload, GLOBALALLOC_DEBUG=opt)

        # workload label -> (plain command, ASan command or None, measured by cpu time?)
        steps = str(a.steps)
        work = [
            ("alloc churn (touch)", [dbo, steps, "2", "touch"],
             asan_dbo and [asan_dbo, steps, "2", "touch"], True),
            ("alloc churn (use)", [dbo, steps, "2", "use"],
             asan_dbo and [asan_dbo, steps, "2", "use"], True),
        ] + [(label, [ga_bench, *args, "-s", a.scale],
              asan_bench and [asan_bench, *args, "-s", a.scale], False)
             for label, args in GA_BENCH]

        times = {}  # (workload, config) -> [seconds]
        timed_out = set()  # (workload, config) whose run took longer than TIMEOUT
        bad = False
        for _ in range(a.runs):
            for label, cmd, asan_cmd, cpu in work:
                want = None
                for cfg, env in envs.items():
                    if cfg.startswith("asan"):
                        if asan_cmd is None:
                            continue
                        c = asan_cmd
                    else:
                        if cfg.startswith("debug,") and not label.startswith("alloc churn"):
                            continue  # the breakdown: on the churn only
                        c = cmd
                    if (label, cfg) in timed_out:
                        continue
                    try:
                        res = run(c, env, cpu)
                    except TimedOut:
                        timed_out.add((label, cfg))
                        continue
                    if res is None:
                        bad = True
                        continue
                    t, checksum = res
                    if want is None:
                        want = checksum
                    elif checksum != want:
                        sys.stderr.write(f"CHECKSUM MISMATCH: {label} under {cfg}\n")
                        bad = True
                    times.setdefault((label, cfg), []).append(t)

        def med(label, cfg):
            v = times.get((label, cfg))
            return statistics.median(v) if v else None

        def ratio(x, y):
            return f"{x / y:.1f}x" if x is not None and y else "-"

        def asan_ratio(label, cfg, g):
            if (label, cfg) in timed_out and g:
                return f"> {TIMEOUT / g:.0f}x (over {TIMEOUT:.0f} s)"
            return ratio(med(label, cfg), g)

        print(f"runs={a.runs} ga-bench scale={a.scale} churn steps/thread={a.steps}; medians;"
              " ratios: debug / normal, ASan / glibc")
        print()
        print("| workload | glibc s | normal s | debug s | **debug / normal** | ASan / glibc |"
              " ASan, no quarantine / glibc |")
        print("| --- | --- | --- | --- | --- | --- | --- |")
        for label, *_ in work:
            g, n, d = med(label, "glibc"), med(label, "normal"), med(label, "debug")
            s = [f"{x:.4f}" if x is not None else "-" for x in (g, n, d)]
            print(f"| {label} | {s[0]} | {s[1]} | {s[2]} | **{ratio(d, n)}** |"
                  f" {asan_ratio(label, 'asan', g)} | {asan_ratio(label, 'asan-q0', g)} |")
        if not a.no_breakdown:
            print()
            print("Where the debug time goes (alloc churn, debug / normal with parts switched off):")
            print()
            print("| GLOBALALLOC_DEBUG | touch | use |")
            print("| --- | --- | --- |")
            print("| 1 (defaults) | " + " | ".join(
                ratio(med(w, "debug"), med(w, "normal"))
                for w in ("alloc churn (touch)", "alloc churn (use)")) + " |")
            for opt, what in BREAKDOWN:
                print(f"| {opt} ({what}) | " + " | ".join(
                    ratio(med(w, "debug," + opt), med(w, "normal"))
                    for w in ("alloc churn (touch)", "alloc churn (use)")) + " |")
        if shutil.which("valgrind") and not a.no_valgrind:
            vsteps = str(max(a.steps // 10, 1000))
            vn = [run([dbo, vsteps, "2", "touch"], envs["normal"], True) for _ in range(3)]
            vg = run(["valgrind", "-q", "--leak-check=full", dbo, vsteps, "2", "touch"],
                     base_env, True)
            vn = [t for t, _ in (x for x in vn if x)]
            if vg and vn:
                print()
                print(f"valgrind memcheck, alloc churn (touch), {vsteps} steps/thread:"
                      f" {vg[0]:.3f} s CPU = {vg[0] / statistics.median(vn):.0f}x normal mode")
        return 1 if bad else 0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
