#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Run globalalloc's benchmarks against other allocators and print a markdown table.

    python3 bench/run.py [BUILD_DIR | --build DIR] [--quick] [--runs N] [--only W,..] [--allocators A,..]
                         [--require A,..] [--json FILE]

Every workload of ga-bench runs under each allocator through LD_PRELOAD (glibc: no preload),
--runs times, interleaved (each round runs every workload under every allocator, the allocator
order rotating per round) so slow drift of the machine spreads evenly over the allocators. Each
run's own measured time (the program's "seconds=") and its peak RSS are kept. Peak RSS is the
VmHWM the child prints itself, not wait4's ru_maxrss: Linux carries the parent's peak (this
Python's) over exec into the child's ru_maxrss. The tables show medians and globalalloc's ratio
to each other allocator (< 1: globalalloc is faster or smaller). The Win32 path
(ga-bench-win32: linked, not preloaded) gets its own table.

BUILD_DIR: the argument, else $GA_BUILD_DIR, else ./build. Allocators whose library is missing
are reported and skipped (fatal only if named in --require). A run that crashes, fails, or whose
checksum differs from the other allocators' makes the exit status 1.
Standard library only.
"""

import argparse
import glob
import json
import os
import platform
import re
import signal
import statistics
import sys
import tempfile
import threading
import time

# name -> library file names searched in the usual library directories (None: no preload).
ALLOCATORS = {
    "globalalloc": None,  # found in the build dir, see find_library()
    "glibc": None,
    "jemalloc": ["libjemalloc.so.2", "libjemalloc.so"],
    "mimalloc": ["libmimalloc.so.2", "libmimalloc.so.2.0", "libmimalloc.so"],
    "tcmalloc": ["libtcmalloc_minimal.so.4", "libtcmalloc_minimal.so", "libtcmalloc.so.4"],
}
LIB_DIRS = ["/usr/lib/*-linux-gnu", "/usr/lib64", "/usr/lib", "/usr/local/lib", "/lib/*-linux-gnu"]

# workload label -> ga-bench arguments. Labels are what --only takes (also a prefix: "threads").
WORKLOADS = [
    ("churn", ["churn"]),
    ("larson", ["larson", "-t", "2"]),
    ("prodcons", ["prodcons", "-t", "1"]),
    ("threads-1", ["threads", "-t", "1"]),
    ("threads-2", ["threads", "-t", "2"]),
    ("threads-4", ["threads", "-t", "4"]),
    ("scratch", ["scratch", "-t", "2"]),
    ("realloc", ["realloc"]),
    ("large", ["large"]),
]
QUICK_SCALE = "0.01"
RESULT_RE = re.compile(r"^RESULT (.*)$", re.M)


def parse_result(text):
    """Every RESULT line of text as a dict of its key=value fields."""
    out = []
    for m in RESULT_RE.finditer(text):
        out.append(dict(kv.split("=", 1) for kv in m.group(1).split()))
    return out


def find_build_dir(arg):
    d = arg or os.environ.get("GA_BUILD_DIR") or "build"
    if not os.path.isfile(os.path.join(d, "bench", "ga-bench")):
        sys.exit(f"run.py: {d}/bench/ga-bench not found: build first "
                 f"(cmake -S . -B {d} -DCMAKE_BUILD_TYPE=Release && cmake --build {d}), "
                 "or pass the build dir (argument or GA_BUILD_DIR)")
    return os.path.abspath(d)


def build_config(build_dir):
    """CMAKE_BUILD_TYPE, GA_SANITIZE and GA_DEBUG of the build, to warn about slow builds."""
    conf = {}
    try:
        with open(os.path.join(build_dir, "CMakeCache.txt")) as f:
            for line in f:
                m = re.match(r"^(CMAKE_BUILD_TYPE|GA_SANITIZE|GA_DEBUG):\w+=(.*)$", line)
                if m:
                    conf[m.group(1)] = m.group(2).strip()
    except OSError:
        pass
    return conf


def find_library(name, build_dir, explicit):
    """Path of the allocator's library, "" for glibc (no preload), None if not found."""
    if explicit:
        return explicit if os.path.isfile(explicit) else None
    env = os.environ.get(f"GA_BENCH_{name.upper()}_LIB")
    if env:
        return env if os.path.isfile(env) else None
    if name == "glibc":
        return ""
    if name == "globalalloc":
        p = os.path.join(build_dir, "libglobalalloc-preload.so")
        return p if os.path.isfile(p) else None
    for d in LIB_DIRS:
        for base in ALLOCATORS[name]:
            hits = sorted(glob.glob(os.path.join(d, base)))
            if hits:
                return hits[0]
    return None


def child_env(lib):
    env = dict(os.environ)
    env.pop("LD_PRELOAD", None)
    if lib:
        env["LD_PRELOAD"] = lib
    return env


def kill_quietly(pid):
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def run_child(argv, lib, timeout):
    """Runs argv under lib; returns (exit status or -signal, stdout, stderr, peak RSS KiB, wall s).

    wait4 gives the rusage of exactly this child (RUSAGE_CHILDREN would give the maximum over
    every child so far). A watchdog kills a child that hangs past timeout seconds."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.monotonic()
        pid = os.posix_spawn(argv[0], argv, child_env(lib),
                             file_actions=[(os.POSIX_SPAWN_DUP2, out.fileno(), 1),
                                           (os.POSIX_SPAWN_DUP2, err.fileno(), 2)])
        timer = threading.Timer(timeout, kill_quietly, (pid,))
        timer.start()
        try:
            _, status, ru = os.wait4(pid, 0)
        finally:
            timer.cancel()
        wall = time.monotonic() - t0
        out.seek(0)
        err.seek(0)
        return (os.waitstatus_to_exitcode(status), out.read().decode(errors="replace"),
                err.read().decode(errors="replace"), ru.ru_maxrss, wall)


def check_preload(bench, name, lib):
    """True if malloc in a child really comes from lib (a preload can fail silently)."""
    rc, out, err, _, _ = run_child([bench, "which"], lib, 30)
    m = re.search(r"^malloc-from: (.*)$", out, re.M)
    if rc != 0 or not m:
        print(f"- {name}: `ga-bench which` failed (status {rc}): {err.strip()[:200]}")
        return False
    got = m.group(1)
    if lib:
        ok = os.path.realpath(got) == os.path.realpath(lib)
    else:
        ok = os.path.basename(got).startswith("libc.so")
    if not ok:
        print(f"- {name}: preload not in effect (malloc comes from {got}); skipped")
    return ok


def fmt_time(s):
    return f"{s:.3f}" if s >= 0.01 else f"{s:.4f}"


def fmt_ratio(r):
    return f"{r:.2f}x"


def geomean(xs):
    xs = [x for x in xs if x > 0]
    return statistics.geometric_mean(xs) if xs else float("nan")


def print_tables(names, labels, med_time, med_rss, runs, failures):
    ga = "globalalloc" if "globalalloc" in names else None
    others = [n for n in names if n != ga]
    order = ([ga] if ga else []) + others
    ratio_note = (" In brackets: globalalloc / that allocator (< 1: globalalloc faster)."
                  if ga and others else "")
    for title, table, fmt, unit in (
            ("Time", med_time, fmt_time, "seconds"),
            ("Peak RSS", med_rss, lambda k: f"{k / 1024:.1f}", "MiB")):
        note = ratio_note.replace("faster", "faster" if title == "Time" else "smaller")
        print(f"\n### {title} (median of {runs} run{'s' if runs > 1 else ''}, {unit})\n")
        if note:
            print(note.strip() + "\n")
        print("| workload | " + " | ".join(order) + " |")
        print("|---|" + "---:|" * len(order))
        ratios = {n: [] for n in others}
        for label in labels:
            cells = []
            for n in order:
                v = table.get((label, n))
                if v is None:
                    cells.append("failed")
                    continue
                # A median over the surviving runs only would hide a crash: say so in the cell.
                bad = f" [{failures[(label, n)]} of {runs} failed]" if (label, n) in failures else ""
                cell = fmt(v)
                gv = table.get((label, ga)) if ga else None
                if n != ga and gv is not None and v > 0:
                    ratios[n].append(gv / v)
                    cell += f" ({fmt_ratio(gv / v)})"
                cells.append(cell + bad)
            print(f"| {label} | " + " | ".join(cells) + " |")
        if ga and others:
            gm = [fmt_ratio(geomean(ratios[n])) if ratios[n] else "-" for n in others]
            print("| geometric mean of ratios | - | " + " | ".join(gm) + " |")


def run_win32(build_dir, args, runs_out):
    """Median ns per op of each ga-bench-win32 case over --runs runs (no preload)."""
    exe = os.path.join(build_dir, "bench", "ga-bench-win32")
    if not os.path.isfile(exe):
        print(f"\n(win32: {exe} not built; skipped)")
        return True
    argv = [exe] + (["-s", QUICK_SCALE] if args.quick else [])
    per_case, ok = {}, True
    for _ in range(args.runs):
        rc, out, err, rss, _ = run_child(argv, "", args.timeout)
        res = parse_result(out)
        if rc != 0 or not res:
            print(f"\nwin32: ga-bench-win32 failed (status {rc}): {err.strip()[:300]}")
            return False
        for r in res:
            per_case.setdefault((r["case"], r["threads"]), []).append(float(r["ns_per_op"]))
        runs_out.append({"workload": "win32", "results": res, "peak_rss_kib": rss})
    print(f"\n### Win32 path (ga-bench-win32, in one process, median of {args.runs}, "
          "ns per op)\n")
    print("An op is an alloc+free pair (fixed-*), an alloc/lock/unlock/realloc/lock/unlock/free "
          "cycle (moveable-*; -malloc: the same with malloc/realloc/free), or a lock+unlock "
          "pair (lock-*: each thread's own handle, or one shared handle). *-malloc is glibc.\n")
    print("| case | threads | ns/op |")
    print("|---|---:|---:|")
    for (case, threads), v in per_case.items():
        print(f"| {case} | {threads} | {statistics.median(v):.1f} |")
    return ok


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("build_dir", nargs="?", help="build directory (default $GA_BUILD_DIR, ./build)")
    ap.add_argument("--build", dest="build_opt", metavar="DIR", help="same as BUILD_DIR")
    ap.add_argument("--quick", action="store_true", help="smoke run: tiny sizes, 1 run")
    ap.add_argument("--runs", type=int, help="runs per workload and allocator (default 5)")
    ap.add_argument("--only", help="comma list of workloads (a prefix matches: threads), or win32")
    ap.add_argument("--allocators", help="comma list of NAME or NAME=/path/lib.so "
                    f"(default: {','.join(ALLOCATORS)})")
    ap.add_argument("--require", default="", help="comma list of allocators that must exist")
    ap.add_argument("--json", help="write every run and the medians to this file")
    ap.add_argument("--timeout", type=float, default=300, help="seconds before a run is killed")
    args = ap.parse_args()
    if args.runs is None:
        args.runs = 1 if args.quick else 5
    if args.runs < 1:
        ap.error("--runs must be >= 1")

    if args.build_dir and args.build_opt and args.build_dir != args.build_opt:
        ap.error("give the build directory once")
    build_dir = find_build_dir(args.build_opt or args.build_dir)
    bench = os.path.join(build_dir, "bench", "ga-bench")
    conf = build_config(build_dir)

    wanted = [w.strip() for w in (args.only or "").split(",") if w.strip()]
    labels = [lab for lab, _ in WORKLOADS
              if not wanted or any(lab == w or lab.startswith(w + "-") for w in wanted)]
    do_win32 = not wanted or "win32" in wanted
    unknown = [w for w in wanted if w != "win32" and not any(
        lab == w or lab.startswith(w + "-") for lab, _ in WORKLOADS)]
    if unknown:
        ap.error(f"unknown workload(s): {', '.join(unknown)}")

    specs = [s.strip() for s in (args.allocators or ",".join(ALLOCATORS)).split(",") if s.strip()]
    required = {r.strip() for r in args.require.split(",") if r.strip()}

    print(f"# globalalloc benchmarks{' (quick smoke run)' if args.quick else ''}\n")
    print(f"- date: {time.strftime('%Y-%m-%d %H:%M:%S %Z')}; host: {platform.machine()}, "
          f"{os.cpu_count()} CPUs, Linux {platform.release()}")
    print(f"- build: {build_dir} (CMAKE_BUILD_TYPE={conf.get('CMAKE_BUILD_TYPE', '?')}, "
          f"GA_DEBUG={conf.get('GA_DEBUG', '?')}, GA_SANITIZE={conf.get('GA_SANITIZE') or 'none'})")
    if conf.get("CMAKE_BUILD_TYPE") not in ("Release", "RelWithDebInfo") or conf.get(
            "GA_SANITIZE") or conf.get("GA_DEBUG", "0") != "0":
        print("- WARNING: not a plain Release build: globalalloc's times mean little")

    names, libs, failed = [], {}, False
    for spec in specs:
        name, _, path = spec.partition("=")
        if name not in ALLOCATORS and not path:
            ap.error(f"unknown allocator {name} (give NAME=/path/lib.so)")
        lib = find_library(name, build_dir, path or None)
        if lib is None:
            print(f"- {name}: library not found; skipped")
            failed |= name in required
            continue
        if not check_preload(bench, name, lib):
            failed |= name in required
            continue
        names.append(name)
        libs[name] = lib
        print(f"- {name}: {lib or '(no preload)'}")
    if failed:
        print("\nrun.py: a required allocator is missing or did not preload", file=sys.stderr)
        return 1

    argv_of = dict(WORKLOADS)
    samples = {}  # (label, name) -> list of (seconds, rss KiB)
    checksums = {}  # label -> {checksum: [names]}
    runs_out = []
    errors = []
    failures = {}  # (label, name) -> failed runs
    for r in range(args.runs if names else 0):
        rot = names[r % len(names):] + names[:r % len(names)]
        for label in labels:
            argv = [bench] + argv_of[label] + (["-s", QUICK_SCALE] if args.quick else [])
            for name in rot:
                rc, out, err, rss, wall = run_child(argv, libs[name], args.timeout)
                res = parse_result(out)
                if rc != 0 or len(res) != 1:
                    errors.append(f"{label} under {name}: status {rc}; stderr: "
                                  f"{err.strip()[-300:]}")
                    failures[(label, name)] = failures.get((label, name), 0) + 1
                    continue
                sec = float(res[0]["seconds"])
                # The program's own VmHWM: wait4's ru_maxrss includes our own peak (see
                # peak_rss_kib() in bench_main.c); keep it only as a fallback.
                rss = int(res[0].get("peak_rss_kib", "0")) or rss
                samples.setdefault((label, name), []).append((sec, rss))
                checksums.setdefault(label, {}).setdefault(res[0]["checksum"], set()).add(name)
                runs_out.append({"workload": label, "allocator": name, "run": r,
                                 "seconds": sec, "wall": wall, "peak_rss_kib": rss,
                                 "ops": int(res[0]["ops"]), "checksum": res[0]["checksum"]})

    for label, by_sum in checksums.items():
        if len(by_sum) > 1:
            errors.append(f"{label}: checksums differ between allocators: "
                          + "; ".join(f"{k}: {','.join(sorted(v))}" for k, v in by_sum.items()))

    med_time = {k: statistics.median(s for s, _ in v) for k, v in samples.items()}
    med_rss = {k: statistics.median(m for _, m in v) for k, v in samples.items()}
    if names and labels:
        print_tables(names, labels, med_time, med_rss, args.runs, failures)
    if do_win32 and not run_win32(build_dir, args, runs_out):
        errors.append("win32 benchmark failed")

    if args.json:
        with open(args.json, "w") as f:
            json.dump({"build_dir": build_dir, "config": conf, "quick": args.quick,
                       "runs": args.runs, "allocators": libs, "samples": runs_out,
                       "median_seconds": {f"{k[0]}/{k[1]}": v for k, v in med_time.items()},
                       "median_peak_rss_kib": {f"{k[0]}/{k[1]}": v for k, v in med_rss.items()},
                       "errors": errors}, f, indent=1)
    if errors:
        print("\n## Failures\n")
        for e in errors:
            print(f"- {e}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
