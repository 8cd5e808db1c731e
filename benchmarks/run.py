"""Benchmark runner: patchjit against its peers, each measurement in a fresh process.

    python benchmarks/run.py [--quick | --full] [--only NAME ...] [--tools TOOL ...]
                             [--repeats N] [--out DIR]

--quick takes under ~2 minutes, the default ("standard") a few minutes, --full adds the
10038x10038 workload. The table is printed and written to DIR/latest.md, the raw numbers
(every repeat, machine description) to DIR/latest.json. The workloads are in
workloads.py, the tools in tools.py, the measurement itself in worker.py.
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

from report import add_ratios, fmt_time, machine_info, markdown, write_results
from tools import TOOLS
from workloads import BY_NAME, WORKLOADS, Workload

HERE = Path(__file__).resolve().parent
DEFAULT_REPEATS = {"quick": 3, "standard": 5, "full": 5}
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
    p.add_argument("--worker", nargs=2, metavar=("TOOL", "WORKLOAD"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    for name in ("repeats", "threads"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            p.error(f"--{name} must be at least 1")
    return args


def select_workloads(args: argparse.Namespace) -> list[Workload]:
    if args.only:
        return [w for w in WORKLOADS if w.name in args.only]
    return [w for w in WORKLOADS if args.mode in w.modes]


def repeats_for(w: Workload, args: argparse.Namespace) -> int:
    if w.repeats is not None:
        return w.repeats
    return args.repeats or DEFAULT_REPEATS[args.mode]


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
        return "skipped", f"cannot run: would need {_gb(need)} (not attempted)"
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


def run_worker(
    tool: str, w: Workload, mode: str, repeats: int, threads: int | None
) -> dict[str, Any]:
    """Measure in a fresh interpreter; adds wall time and CPU used by other processes."""
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--worker",
        tool,
        w.name,
        "--repeats",
        str(repeats),
    ] + ([f"--{mode}"] if mode != "standard" else [])
    busy0, child0, t0 = _busy_cpu_seconds(), _children_cpu_seconds(), time.perf_counter()
    timeout = w.timeout_s or TIMEOUT_S[mode]
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
    repeats = repeats_for(w, args)
    row: dict[str, Any] = {
        "workload": w.name, "tool": tool, "label": TOOLS[tool].label,
        "shape": w.shape_for(args.mode), "dtype": w.dtype, "patch": w.patch, "step": w.step,
        "n_patches": w.n_patches(args.mode), "repeats": repeats,
        "materialised_bytes": w.materialised_bytes(args.mode),
    }  # fmt: skip
    skip = skip_reason(tool, w, args.mode)
    if skip is not None:
        row["status"], row["note"] = skip
        return row
    row.update(run_worker(tool, w, args.mode, repeats, args.threads))
    return row


# --- main -------------------------------------------------------------------------------


def _progress(i: int, n: int, row: dict[str, Any]) -> None:
    what = fmt_time(row.get("median_s")) if row["status"] in ("ok", "wrong") else row["note"]
    print(
        f"[{i}/{n}] {row['workload']:<9} {row['tool']:<9} {row['status']:<13} {what}",
        file=sys.stderr,
        flush=True,
    )


def run_benchmarks(args: argparse.Namespace) -> int:
    workloads = select_workloads(args)
    plan = [(w, t) for w in workloads for t in w.tools if not args.tools or t in args.tools]
    machine = machine_info(HERE.parent)
    rows = []
    for i, (w, tool) in enumerate(plan, 1):
        rows.append(measure_row(tool, w, args))
        _progress(i, len(plan), rows[-1])
    machine["loadavg_end"] = os.getloadavg()
    add_ratios(rows)
    config = {
        "mode": args.mode,
        "repeats": args.repeats or DEFAULT_REPEATS[args.mode],
        "threads": args.threads,
        "argv": sys.argv[1:],
        "workloads": [vars(w) for w in workloads],
    }
    md = markdown(machine, config, rows, workloads)
    print(md)
    paths = write_results(args.out, md, {"machine": machine, "config": config, "rows": rows})
    print("written: " + ", ".join(str(p) for p in paths), file=sys.stderr)
    return 1 if any(r["status"] in ("wrong", "error") for r in rows) else 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        from worker import safe_measure

        tool, workload = args.worker
        repeats = args.repeats or DEFAULT_REPEATS[args.mode]
        print(RESULT_PREFIX + json.dumps(safe_measure(tool, workload, args.mode, repeats)))
        return 0
    return run_benchmarks(args)


if __name__ == "__main__":
    sys.exit(main())
