"""Benchmark runner: patchjit against its peers, each measurement in a fresh process.

    python benchmarks/run.py [--quick | --full] [--only NAME ...] [--tools TOOL ...]
                             [--repeats N] [--out DIR]

--quick takes a few minutes, the default ("standard") about ten, --full adds the
10038x10038 workload. The table is printed and written to DIR/latest.md, the raw numbers
(every repeat, machine description) to DIR/latest.json, a bar chart of the times to
DIR/peers.png. The workloads are in workloads.py, the tools in tools.py, the measurement
itself in worker.py, the chart in plot.py.

Tools that loop over the patches in Python are timed on a corner of the input first and
reported "too slow" when one call would exceed the mode's budget (worker.CALL_BUDGET_S);
they run at most PYTHON_LOOP_REPEATS timed repeats. When mean512 is selected, the
overhead of patchjit's progress bar is measured too (interleaved runs, one process).

Exit status: 1 when patchjit's result is wrong or a measurement failed (a peer's wrong
result is a finding, reported in the table, not a failure), else 0.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from plot import plot_times
from report import add_ratios, fmt_time, machine_info, markdown, write_results
from tools import TOOLS
from workloads import BY_NAME, WORKLOADS, Workload

HERE = Path(__file__).resolve().parent
DEFAULT_REPEATS = {"quick": 3, "standard": 5, "full": 5}
PYTHON_LOOP_REPEATS = 3  # at most, for the tools that loop over the patches in Python
OVERHEAD_WORKLOAD = "mean512"
OVERHEAD_PAIRS = {"quick": 6, "standard": 12, "full": 12}
TIMEOUT_S = {"quick": 120, "standard": 600, "full": 1800}
MEMORY_FRACTION = 0.5  # a peer that would need more of MemAvailable than this is not run
RESULT_PREFIX = "@@result "
# Fixed glibc mmap threshold in the workers: freed blocks >= 128 KiB go back to the OS
# instead of staying in the heap, so the warm-up call's output cannot hide the timed
# calls' output from the peak-memory figure (a fixed value disables glibc's adaptive one).
WORKER_ENV = {"MALLOC_MMAP_THRESHOLD_": "131072"}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    size = p.add_mutually_exclusive_group()
    size.add_argument(
        "--quick",
        dest="mode",
        action="store_const",
        const="quick",
        help="small sizes and 3 repeats, under ~2 minutes",
    )
    size.add_argument(
        "--full",
        dest="mode",
        action="store_const",
        const="full",
        help="also the 10038x10038 workload (minutes)",
    )
    p.set_defaults(mode="standard")
    p.add_argument(
        "--only",
        nargs="+",
        metavar="NAME",
        choices=list(BY_NAME),
        help=f"workloads to run, any mode: {', '.join(BY_NAME)}",
    )
    p.add_argument(
        "--tools",
        nargs="+",
        metavar="TOOL",
        choices=list(TOOLS),
        help=f"tools to run: {', '.join(TOOLS)}",
    )
    p.add_argument(
        "--repeats",
        type=int,
        help="timed repeats per measurement "
        f"(default {DEFAULT_REPEATS['quick']} quick, {DEFAULT_REPEATS['standard']} "
        "otherwise; some workloads fix their own)",
    )
    p.add_argument(
        "--threads",
        type=int,
        help="thread pools of the workers (NUMBA_NUM_THREADS, OMP_NUM_THREADS); default: all",
    )
    p.add_argument(
        "--out",
        type=Path,
        default=HERE / "results",
        help="directory for latest.md and latest.json (default: %(default)s)",
    )
    p.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="measure every row this many times, round by round, and report the median "
        "of the rounds' medians (tools that loop in Python: one round); default 1",
    )
    p.add_argument("--no-overhead", action="store_true", help="skip the progress-bar overhead")
    p.add_argument("--worker", nargs=2, metavar=("TOOL", "WORKLOAD"), help=argparse.SUPPRESS)
    p.add_argument("--overhead-worker", metavar="WORKLOAD", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    for name in ("repeats", "threads", "rounds"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            p.error(f"--{name} must be at least 1")
    return args


def select_workloads(args: argparse.Namespace) -> list[Workload]:
    if args.only:
        return [w for w in WORKLOADS if w.name in args.only]
    return [w for w in WORKLOADS if args.mode in w.modes]


def repeats_for(w: Workload, args: argparse.Namespace, tool: str) -> int:
    if w.repeats is not None:
        return w.repeats
    n = args.repeats or DEFAULT_REPEATS[args.mode]
    return min(n, PYTHON_LOOP_REPEATS) if TOOLS[tool].python_loop else n


# --- system accounting --------------------------------------------------------------


def _meminfo_bytes(field: str) -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _busy_cpu_seconds() -> float | None:
    """CPU seconds all processes spent (steal included) since boot, from /proc/stat."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    except OSError:
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(f) for f in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def _children_cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


# --- one row --------------------------------------------------------------------------


def _gb(nbytes: int) -> str:
    gb = nbytes / 1e9
    return f"{gb:,.0f} GB" if gb >= 10 else f"{gb:.2g} GB"


def skip_reason(tool: str, w: Workload, mode: str) -> tuple[str, str] | None:
    """(status, note) when the tool is not run on the workload, else None."""
    t = TOOLS[tool]
    if missing := t.missing():
        return "not installed", ", ".join(missing)
    need = w.materialised_bytes(mode)
    if tool != "patchjit" and not w.attempt_peers:
        if t.materialises(w):
            return "skipped", f"cannot run: would need {_gb(need)} (not attempted)"
        if not t.python_loop:  # Python-loop tools go on: the worker estimates their time
            return "skipped", "not attempted"
    if reason := t.supports(w, mode):
        return "skipped", reason
    available = _meminfo_bytes("MemAvailable")
    if t.materialises(w) and available and need > MEMORY_FRACTION * available:
        return "skipped", f"cannot run: would need {_gb(need)}, {_gb(available)} available"
    return None


def _parse_worker(proc: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(RESULT_PREFIX):
            return json.loads(line[len(RESULT_PREFIX) :])
    if proc.returncode < 0:
        oom = " (out of memory?)" if proc.returncode == -9 else ""
        return {"status": "error", "note": f"killed by signal {-proc.returncode}{oom}"}
    tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
    return {"status": "error", "note": f"exit {proc.returncode}: {tail}"[:300]}


def worker_env(threads: int | None) -> dict[str, str]:
    env = {**os.environ, **WORKER_ENV}
    if threads is not None:
        for var in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            env[var] = str(threads)
    return env


def _worker_cmd(mode: str, repeats: int, *args: str) -> list[str]:
    cmd = [sys.executable, str(Path(__file__).resolve()), *args, "--repeats", str(repeats)]
    return cmd + ([f"--{mode}"] if mode != "standard" else [])


def run_worker(
    tool: str, w: Workload, mode: str, repeats: int, threads: int | None
) -> dict[str, Any]:
    """Measure in a fresh interpreter."""
    cmd = _worker_cmd(mode, repeats, "--worker", tool, w.name)
    return run_measured(cmd, w.timeout_s or TIMEOUT_S[mode], threads)


def run_measured(cmd: list[str], timeout: float, threads: int | None) -> dict[str, Any]:
    """Run a worker command; adds its wall time and the CPU used by other processes."""
    busy0, child0, t0 = _busy_cpu_seconds(), _children_cpu_seconds(), time.perf_counter()
    try:
        proc = subprocess.run(
            cmd, capture_output=True, text=True, timeout=timeout, env=worker_env(threads)
        )
        rec = _parse_worker(proc)
    except subprocess.TimeoutExpired:
        rec = {"status": "error", "note": f"timed out after {timeout} s"}
    wall = time.perf_counter() - t0
    busy1 = _busy_cpu_seconds()
    rec["wall_s"] = wall
    if busy0 is not None and busy1 is not None:
        others = (busy1 - busy0) - (_children_cpu_seconds() - child0)
        rec["background_cores"] = max(others, 0.0) / wall
    return rec


def measure_row(tool: str, w: Workload, args: argparse.Namespace) -> dict[str, Any]:
    repeats = repeats_for(w, args, tool)
    row: dict[str, Any] = {
        "workload": w.name, "tool": tool, "label": TOOLS[tool].label,
        "shape": w.shape_for(args.mode), "dtype": w.dtype, "patch": w.patch, "step": w.step,
        "window": w.window, "n_patches": w.n_patches(args.mode),
        "patch_pixels": w.patch_pixels(args.mode), "repeats": repeats,
        "materialised_bytes": w.materialised_bytes(args.mode), "caveat": TOOLS[tool].caveat(w),
    }  # fmt: skip
    skip = skip_reason(tool, w, args.mode)
    if skip is not None:
        row["status"], row["note"] = skip
        return row
    row.update(run_worker(tool, w, args.mode, repeats, args.threads))
    return row


def measure_overhead(args: argparse.Namespace) -> dict[str, Any] | None:
    """patchjit's progress-bar overhead on OVERHEAD_WORKLOAD, or None if not selected."""
    selected = {w.name for w in select_workloads(args)}
    if args.no_overhead or OVERHEAD_WORKLOAD not in selected:
        return None
    if args.tools and "patchjit" not in args.tools:
        return None
    pairs = args.repeats or OVERHEAD_PAIRS[args.mode]
    cmd = _worker_cmd(args.mode, pairs, "--overhead-worker", OVERHEAD_WORKLOAD)
    rec = run_measured(cmd, TIMEOUT_S[args.mode], args.threads)
    what = f"{rec['overhead_median_pct']:+.2f} %" if rec["status"] == "ok" else rec["note"]
    print(f"progress-bar overhead: {what}", file=sys.stderr, flush=True)
    return rec


# --- main -------------------------------------------------------------------------------


def merge_rounds(recs: list[dict[str, Any]]) -> dict[str, Any]:
    """One row from several rounds: median of the rounds' medians, worst status, max peak."""
    if len(recs) == 1:
        return recs[0]
    timed = sorted((r for r in recs if "median_s" in r), key=lambda r: r["median_s"])
    row = dict(timed[(len(timed) - 1) // 2])  # the round with the median median
    row["round_medians_s"] = [r["median_s"] for r in timed]
    row["times_s"] = [t for r in timed for t in r["times_s"]]
    peaks = [r["peak_extra_mib"] for r in recs if r.get("peak_extra_mib") is not None]
    row["peak_extra_mib"] = max(peaks) if peaks else None
    row["background_cores"] = max(r.get("background_cores", 0.0) for r in recs)
    for status in ("error", "wrong"):
        bad = [r for r in recs if r["status"] == status]
        if bad:
            row.update(status=status, note=bad[0].get("note", ""))
            row["max_abs_err"] = max(r.get("max_abs_err", 0.0) for r in recs)
            break
    return row


def _progress(i: int | str, n: int, row: dict[str, Any]) -> None:
    what = fmt_time(row["median_s"]) if "median_s" in row else row["note"]
    print(
        f"[{i}/{n}] {row['workload']:<13} {row['tool']:<9} {row['status']:<13} {what}",
        file=sys.stderr,
        flush=True,
    )


def run_benchmarks(args: argparse.Namespace) -> int:
    workloads = select_workloads(args)
    plan = [(w, t) for w in workloads for t in w.tools if not args.tools or t in args.tools]
    machine = machine_info(HERE.parent)
    rounds: list[list[dict[str, Any]]] = [[] for _ in plan]
    for r in range(args.rounds):
        for i, (w, tool) in enumerate(plan):
            if r > 0 and (TOOLS[tool].python_loop or "median_s" not in rounds[i][0]):
                continue  # slow or not run: one round is enough
            rounds[i].append(measure_row(tool, w, args))
            step = f"round {r + 1}/{args.rounds} " if args.rounds > 1 else ""
            _progress(f"{step}{i + 1}", len(plan), rounds[i][-1])
    rows = [merge_rounds(recs) for recs in rounds]
    overhead = measure_overhead(args)
    machine["loadavg_end"] = os.getloadavg()
    add_ratios(rows)
    config = {
        "mode": args.mode,
        "repeats": args.repeats or DEFAULT_REPEATS[args.mode],
        "rounds": args.rounds,
        "threads": args.threads,
        "argv": sys.argv[1:],
        "workloads": [vars(w) for w in workloads],
    }
    md = markdown(machine, config, rows, workloads, overhead)
    print(md)
    payload = {"machine": machine, "config": config, "rows": rows, "progress_overhead": overhead}
    paths = [*write_results(args.out, md, payload)]
    paths.append(plot_times(rows, workloads, args.out / "peers.png", machine))
    print("written: " + ", ".join(str(p) for p in paths), file=sys.stderr)
    failed = [
        r
        for r in rows
        if r["status"] == "error" or (r["status"], r["tool"]) == ("wrong", "patchjit")
    ]
    return 1 if failed or (overhead and overhead["status"] != "ok") else 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        from worker import safe_measure

        tool, workload = args.worker
        repeats = args.repeats or DEFAULT_REPEATS[args.mode]
        print(RESULT_PREFIX + json.dumps(safe_measure(tool, workload, args.mode, repeats)))
        return 0
    if args.overhead_worker:
        from worker import progress_overhead, safe

        pairs = args.repeats or OVERHEAD_PAIRS[args.mode]
        rec = safe(progress_overhead, args.overhead_worker, args.mode, pairs)
        print(RESULT_PREFIX + json.dumps(rec))
        return 0
    return run_benchmarks(args)


if __name__ == "__main__":
    sys.exit(main())
