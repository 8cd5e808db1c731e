"""Machine description, the markdown table and the JSON dump of a benchmark run."""

from __future__ import annotations

import datetime
import json
import os
import platform
import statistics
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

from workloads import GREY_REFERENCES, Workload

PACKAGES = (
    "numpy", "numba", "scipy", "scikit-learn", "torch", "scikit-image", "patchify",
    "empatches", "tiler", "tqdm", "patchjit",
)  # fmt: skip
PROGRESS_TARGET_PCT = 2.0
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
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
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


def fmt_rate(row: dict[str, Any]) -> str:
    """Patch-pixels per second: n_patches * pixels per patch / median time."""
    t = row.get("median_s")
    if not t or row["status"] not in ("ok", "wrong", "cannot average"):
        return "—"
    rate = row["patch_pixels"] / t
    for scale, unit in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if rate >= scale:
            return f"{rate / scale:.3g} {unit}/s"
    return f"{rate:.3g} /s"


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
    status, caveat = row["status"], row.get("caveat")
    if status == "ok":
        return f"ok, but {caveat}" if caveat else "ok"
    if status == "wrong":
        wrong = f"**WRONG** (max err {row['max_abs_err']:.3g})"
        return f"{wrong}: {caveat}" if caveat else wrong
    if status == "cannot average":
        err, exact = row["max_abs_err"], row["max_abs_err"] <= row["atol"]
        why = "exact here only because overlapping patches agree" if exact else "**WRONG**"
        return f"**cannot average overlaps**: {caveat} (max err {err:.3g}: {why})"
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
    peers = ", ".join(f"{k} {x}" for k, x in v.items() if k != "patchjit")
    return [
        f"# patchjit benchmarks ({config['mode']})",
        "",
        f"{machine['date']} · {machine['cpu_model']}, {machine['usable_cores']} cores · "
        f"{peers} · patchjit {v['patchjit']} ({machine['git_revision']})",
        "",
        f"- **time**: median of the timed repeats ({config['repeats']} unless noted), after "
        "one warm-up call; **first call** = set-up + warm-up call, JIT compilation included. "
        f"Threads: {config['threads'] or 'all cores'} for patchjit (numba) and torch; numpy, "
        "scikit-learn and scipy run single-threaded."
        + (
            f" Every row was measured in {config['rounds']} rounds, each in a fresh process, "
            "and the round with the median median is shown (tools that loop in Python: one "
            "round)."
            if config.get("rounds", 1) > 1
            else ""
        ),
        "- **vs patchjit**: tool median / patchjit median, measured in the same run "
        "(> 1: patchjit is faster).",
        "- **peak extra MiB**: VmHWM during the timed calls - VmRSS just before them, in a "
        "fresh process per row (glibc mmap threshold fixed at 128 KiB so freed buffers leave "
        "RSS): the input is excluded; the output and all temporaries count.",
        "- **patch-pixels/s**: n_patches x values per patch (channels included) / median "
        "time: the work rate, comparable across patch sizes, channels and dimensions.",
        "- **result**: max abs error against a float64 reference within the workload's "
        "tolerance; a known defect of the tool's merge is named after it even when this "
        "workload does not expose it (an identity callback makes every overlap agree). "
        "**cannot average overlaps**: the merge takes each pixel from one patch and skips "
        "the others, so its time is not comparable.",
        "- **too slow**: tools that loop over the patches in Python (empatches, tiler) are "
        "first timed on a corner of the input; a call estimated (linearly in the number of "
        "patches) to exceed the mode's budget is not run. They run at most 3 timed repeats.",
    ]


def _table(rows: list[dict[str, Any]], repeats: int) -> list[str]:
    lines = [
        "| workload | tool | median time | patch-pixels/s | vs patchjit | peak extra MiB "
        "| first call | result |",
        "|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        n = f" (n={r['repeats']})" if "median_s" in r and r["repeats"] != repeats else ""
        busy = " †" if "median_s" in r and r.get("background_cores", 0) > NOISY_CORES else ""
        lines.append(
            f"| {r['workload']} | {r['tool']} | {fmt_time(r.get('median_s'))}{n}{busy} "
            f"| {fmt_rate(r)} | {fmt_ratio(r)} | {fmt_mib(r.get('peak_extra_mib'))} "
            f"| {fmt_time(r.get('first_call_s'))} | {fmt_result(r)} |"
        )
    return lines


def grey_comparison(rows: list[dict[str, Any]]) -> list[str]:
    """patchjit's patch-pixels/s on channel, volume and window workloads vs grey."""
    rate = {
        r["workload"]: r["patch_pixels"] / r["median_s"]
        for r in rows
        if r["tool"] == "patchjit" and r["status"] == "ok"
    }
    pairs = [(a, b) for a, b in GREY_REFERENCES.items() if a in rate and b in rate]
    if not pairs:
        return []
    lines = [
        "Channels, volumes and windows against grey 2-D (patchjit, same patch-pixels; "
        "cost = grey rate / rate, 1.00 = no extra cost per patch-pixel):",
        "",
        "| workload | patch-pixels/s | grey reference | patch-pixels/s | cost |",
        "|---|---:|---|---:|---:|",
    ]
    for a, b in pairs:
        lines.append(
            f"| {a} | {rate[a] / 1e9:.3g} G/s | {b} | {rate[b] / 1e9:.3g} G/s "
            f"| {rate[b] / rate[a]:.2f}x |"
        )
    return [*lines, ""]


def overhead_notes(rec: dict[str, Any] | None) -> list[str]:
    if rec is None:
        return []
    if rec["status"] != "ok":
        return [f"Progress-bar overhead: {rec['status']}: {rec.get('note', '')}", ""]
    med, low = rec["overhead_median_pct"], rec["overhead_min_pct"]
    verdict = "within" if med <= PROGRESS_TARGET_PCT else "**above**"
    off = statistics.median(rec["off_s"])
    return [
        f"Progress-bar overhead ({rec['workload']}, patchjit.process_image progress=True vs "
        f"False, {rec['pairs']} interleaved pairs in one process, tqdm to /dev/null): "
        f"**{med:+.2f} %** on the medians ({fmt_time(off)} without the bar), {low:+.2f} % "
        f"on the minima; {verdict} the {PROGRESS_TARGET_PCT:g} % target.",
        "",
    ]


def markdown(
    machine: dict[str, Any],
    config: dict[str, Any],
    rows: list[dict[str, Any]],
    workloads: list[Workload],
    overhead: dict[str, Any] | None = None,
) -> str:
    lines = [*_header(machine, config), "", *_table(rows, config["repeats"]), ""]
    lines += [*grey_comparison(rows), *overhead_notes(overhead)]
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
        note += (
            f" **The machine was busy: timings marked † ran while other processes used more "
            f"than {NOISY_CORES:g} cores; they are noisy (patchjit's and torch's two threads "
            "suffer most).**"
        )
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
