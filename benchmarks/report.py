"""Machine description, the markdown table and the JSON dump of a benchmark run."""

from __future__ import annotations

import datetime
import json
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

from workloads import Workload

PACKAGES = ("numpy", "numba", "scipy", "scikit-learn", "torch", "patchjit")
NOISY_CORES = 0.25  # other processes using more CPU than this (in cores) make timings noisy


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _mem_total_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return None


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def _git_revision(repo: Path) -> str:
    def git(*args: str) -> str:
        cmd = ["git", "-C", str(repo), *args]
        return subprocess.run(cmd, capture_output=True, text=True, check=False).stdout.strip()

    rev = git("rev-parse", "--short", "HEAD") or "unknown"
    return rev + ("+dirty" if git("status", "--porcelain", "--", "patchjit") else "")


def machine_info(repo: Path) -> dict[str, Any]:
    affinity = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "usable_cores": len(affinity) if affinity is not None else os.cpu_count(),
        "mem_total_gib": _mem_total_gib(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": {p: _version(p) for p in PACKAGES},
        "git_revision": _git_revision(repo),
        "loadavg_start": os.getloadavg(),
    }


# --- formatting ---------------------------------------------------------------------


def fmt_time(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    return f"{seconds * 1e3:.3g} ms" if seconds < 1 else f"{seconds:.3g} s"


def fmt_mib(mib: float | None) -> str:
    if mib is None:
        return "—"
    return f"{mib:.2f}" if mib < 10 else f"{mib:,.0f}"


def fmt_ratio(row: dict[str, Any]) -> str:
    ratio = row.get("ratio_vs_patchjit")
    if ratio is None:
        return "—"
    return "1 (ref)" if row["tool"] == "patchjit" else f"{ratio:.3g}x"


def fmt_result(row: dict[str, Any]) -> str:
    status = row["status"]
    if status == "ok":
        return "ok"
    if status == "wrong":
        return f"WRONG (max err {row['max_abs_err']:.3g})"
    note = row.get("note", "")
    if status in ("not installed", "error"):
        return f"{status}: {note}" if status == "error" else status
    return note  # skipped: "cannot run: ...", "unsupported: ..."


def add_ratios(rows: list[dict[str, Any]]) -> None:
    """ratio_vs_patchjit = tool median / patchjit median of the same workload, same run."""
    base = {r["workload"]: r.get("median_s") for r in rows if r["tool"] == "patchjit"}
    for r in rows:
        ref, t = base.get(r["workload"]), r.get("median_s")
        r["ratio_vs_patchjit"] = t / ref if t is not None and ref else None


def _header(machine: dict[str, Any], config: dict[str, Any]) -> list[str]:
    v = machine["versions"]
    return [
        f"# patchjit benchmarks ({config['mode']})",
        "",
        f"{machine['date']} · {machine['cpu_model']}, {machine['usable_cores']} cores · "
        f"numpy {v['numpy']}, numba {v['numba']}, scipy {v['scipy']}, "
        f"scikit-learn {v['scikit-learn']}, torch {v['torch']} · patchjit "
        f"{v['patchjit']} ({machine['git_revision']})",
        "",
        f"- **time**: median of the timed repeats ({config['repeats']} unless noted), after "
        "one warm-up call; **first call** = set-up + warm-up call, JIT compilation included. "
        f"Threads: {config['threads'] or 'all cores'} for patchjit (numba) and torch; numpy, "
        "scikit-learn and scipy run single-threaded.",
        "- **vs patchjit**: tool median / patchjit median, measured in the same run "
        "(> 1: patchjit is faster).",
        "- **peak extra MiB**: VmHWM during the timed calls - VmRSS just before them, in a "
        "fresh process per row (glibc mmap threshold fixed at 128 KiB so freed buffers leave "
        "RSS): the input is excluded; the output and all temporaries count.",
        "- **result**: max abs error against a float64 reference within the workload's tolerance.",
    ]


def _table(rows: list[dict[str, Any]], repeats: int) -> list[str]:
    lines = [
        "| workload | tool | median time | vs patchjit | peak extra MiB | first call | result |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        n = f" (n={r['repeats']})" if "median_s" in r and r["repeats"] != repeats else ""
        lines.append(
            f"| {r['workload']} | {r['tool']} | {fmt_time(r.get('median_s'))}{n} "
            f"| {fmt_ratio(r)} | {fmt_mib(r.get('peak_extra_mib'))} "
            f"| {fmt_time(r.get('first_call_s'))} | {fmt_result(r)} |"
        )
    return lines


def markdown(
    machine: dict[str, Any],
    config: dict[str, Any],
    rows: list[dict[str, Any]],
    workloads: list[Workload],
) -> str:
    lines = [*_header(machine, config), "", *_table(rows, config["repeats"]), ""]
    lines += ["Workloads:", "", *(f"- **{w.name}**: {w.description}" for w in workloads), ""]
    lines += noise_notes(machine, rows)
    return "\n".join(lines) + "\n"


def noise_notes(machine: dict[str, Any], rows: list[dict[str, Any]]) -> list[str]:
    busy = [r["background_cores"] for r in rows if r.get("background_cores") is not None]
    worst = max(busy, default=0.0)
    note = (
        f"Load from other processes during the measurements: up to {worst:.2f} cores "
        f"(load average {machine['loadavg_start'][0]:.2f} at start, "
        f"{machine.get('loadavg_end', (0.0,))[0]:.2f} at end)."
    )
    if worst > NOISY_CORES:
        note += " **The machine was busy: timings are noisy.**"
    return [note]


def write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def write_results(out_dir: Path, md: str, payload: dict[str, Any]) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    md_path, json_path = out_dir / "latest.md", out_dir / "latest.json"
    write_atomic(md_path, md)
    write_atomic(json_path, json.dumps(payload, indent=2, default=str) + "\n")
    return md_path, json_path
