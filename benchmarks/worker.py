"""One (tool, workload) measurement, run in a fresh process so that peak memory is honest.

Sequence: import the tool's modules (untimed); set up the tool; for a tool that loops over
the patches in Python, time it on a corner of the input and stop with "too slow" when the
extrapolated time of one call exceeds the mode's budget; build the input; make one warm-up
call (set-up + warm-up = "first call": it includes JIT compilation); reset the kernel's
peak-RSS counter; run the timed repeats; read the peak; check the last result against the
float64 reference.

``progress_overhead`` times patchjit with and without its progress bar, interleaved.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import math
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from tools import TOOLS
from workloads import BY_NAME, Workload, make_input

CALL_BUDGET_S = {"quick": 5.0, "standard": 30.0, "full": 60.0}  # Python-loop tools, per call
PROBE_PATCHES = 2000  # patches in the corner that a Python-loop tool is timed on first

STATUS = Path("/proc/self/status")


def proc_status_kib(field: str) -> int | None:
    """A ``kB`` field of /proc/self/status (VmRSS, VmHWM), or None off Linux."""
    try:
        for line in STATUS.read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def reset_peak_rss() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0); False if not possible."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def thread_counts(modules: tuple[str, ...]) -> dict[str, int | str]:
    """Thread pools of those of ``modules`` that have one (numba, torch)."""
    counts: dict[str, int | str] = {}
    if "numba" in modules:
        numba = sys.modules["numba"]
        counts["numba"] = numba.get_num_threads()
        with contextlib.suppress(ValueError):  # raised before any parallel region ran
            counts["numba_layer"] = numba.threading_layer()
    if "torch" in modules:
        counts["torch"] = sys.modules["torch"].get_num_threads()
    return counts


def _timed_repeats(fn, img: np.ndarray, repeats: int) -> tuple[list[float], Any]:
    times, result = [], None
    for _ in range(repeats):
        result = None  # free the previous output so it does not count in the peak
        t0 = time.perf_counter()
        result = fn(img)
        times.append(time.perf_counter() - t0)
    return times, result


def estimate_call(fn, w: Workload, mode: str) -> dict[str, Any]:
    """Time ``fn`` on a corner of about PROBE_PATCHES patches (best of 2); extrapolate
    linearly in the number of patches to one call on the full input."""
    shape = w.crop_shape(mode, PROBE_PATCHES)
    small = make_input(shape, w.dtype, seed=2)
    t = []
    for _ in range(2):
        t0 = time.perf_counter()
        fn(small)
        t.append(time.perf_counter() - t0)
    n_small = math.prod(w.grid_for(shape))
    return {
        "estimate_s": min(t) * w.n_patches(mode) / n_small,
        "probe_shape": shape,
        "probe_patches": n_small,
        "probe_s": min(t),
    }


def too_slow(est: dict[str, Any], budget: float) -> dict[str, Any]:
    crop = "x".join(map(str, est["probe_shape"]))
    note = (
        f"too slow: > {budget:g} s per call (estimated {est['estimate_s']:.3g} s from a "
        f"{crop} crop, {est['probe_patches']:,} patches)"
    )
    return {"status": "too slow", "note": note, **est}


def measure(tool_name: str, workload_name: str, mode: str, repeats: int) -> dict[str, Any]:
    tool, w = TOOLS[tool_name], BY_NAME[workload_name]
    try:
        for module in tool.requires:
            importlib.import_module(module)
    except ImportError as exc:
        return {"status": "not installed", "note": f"{type(exc).__name__}: {exc}"}
    import ops

    t0 = time.perf_counter()
    fn = tool.make(w)
    setup = time.perf_counter() - t0
    est: dict[str, Any] = {}
    if tool.python_loop:
        est = estimate_call(fn, w, mode)
        if est["estimate_s"] > CALL_BUDGET_S[mode]:
            return too_slow(est, CALL_BUDGET_S[mode])

    img = make_input(w.shape_for(mode), w.dtype)
    warm = img if w.warmup_shape is None else make_input(w.warmup_shape, w.dtype, seed=1)
    t0 = time.perf_counter()
    fn(warm)
    first_call = setup + time.perf_counter() - t0
    del warm
    gc.collect()

    reset_ok = reset_peak_rss()
    rss_before = proc_status_kib("VmRSS")
    times, result = _timed_repeats(fn, img, repeats)
    hwm = proc_status_kib("VmHWM")

    err = ops.max_abs_error(np.asarray(result), ops.reference(w, img))
    ok = err <= w.atol  # False for NaN
    peak = (hwm - rss_before) / 1024 if reset_ok and hwm and rss_before else None
    status = "ok" if ok else "wrong"
    if w.overlaps and not tool.averages_overlaps:
        status = "cannot average"  # even where identical patches make the result exact
    return {
        "status": status,
        "note": "" if ok else f"max err {err:.3g} > atol {w.atol:g}",
        "times_s": times,
        "median_s": statistics.median(times),
        "min_s": min(times),
        "first_call_s": first_call,
        "peak_extra_mib": peak,
        "rss_before_mib": rss_before / 1024 if rss_before else None,
        "vm_hwm_mib": hwm / 1024 if hwm else None,
        "peak_reset": reset_ok,
        "max_abs_err": err,
        "atol": w.atol,
        "result_dtype": str(np.asarray(result).dtype),
        "threads": thread_counts(tool.requires),
        **est,
    }


def safe(fn, *args: Any) -> dict[str, Any]:
    """``fn(*args)``, with any exception turned into an "error" record."""
    try:
        return fn(*args)
    except Exception as exc:  # reported in the table, not raised
        return {"status": "error", "note": f"{type(exc).__name__}: {exc}"[:300]}


def safe_measure(tool_name: str, workload_name: str, mode: str, repeats: int) -> dict[str, Any]:
    """``measure``, with any exception turned into an "error" record."""
    return safe(measure, tool_name, workload_name, mode, repeats)


# --- progress-bar overhead ---------------------------------------------------------


def _time_call(fn, *args: Any, **kwargs: Any) -> float:
    t0 = time.perf_counter()
    fn(*args, **kwargs)
    return time.perf_counter() - t0


def progress_overhead(workload_name: str, mode: str, pairs: int) -> dict[str, Any]:
    """patchjit with progress=True vs False on the same input, interleaved (ABBA) so that
    a drift in machine load hits both alike; tqdm's output goes to /dev/null."""
    import ops

    import patchjit

    w = BY_NAME[workload_name]
    img = make_input(w.shape_for(mode), w.dtype)
    cb = ops.process_callback(w)
    times: dict[bool, list[float]] = {False: [], True: []}
    with open(os.devnull, "w") as sink, contextlib.redirect_stderr(sink):
        for flag in (False, True):  # compile; import tqdm
            patchjit.process_image(img, cb, w.patch, w.step, progress=flag)
        for i in range(pairs):
            for flag in (False, True) if i % 2 == 0 else (True, False):
                t = _time_call(patchjit.process_image, img, cb, w.patch, w.step, progress=flag)
                times[flag].append(t)
    off, on = times[False], times[True]
    return {
        "status": "ok",
        "workload": workload_name,
        "pairs": pairs,
        "off_s": off,
        "on_s": on,
        "overhead_median_pct": 100 * (statistics.median(on) / statistics.median(off) - 1),
        "overhead_min_pct": 100 * (min(on) / min(off) - 1),
    }
