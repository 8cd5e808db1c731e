"""One (tool, workload) measurement, run in a fresh process so that peak memory is honest.

Sequence: import the tool's modules (untimed); build the input; set up the tool and make
one warm-up call (timed together as "first call": it includes JIT compilation); reset the
kernel's peak-RSS counter; run the timed repeats; read the peak; check the last result
against the float64 reference.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from tools import TOOLS
from workloads import BY_NAME, make_input

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


def measure(tool_name: str, workload_name: str, mode: str, repeats: int) -> dict[str, Any]:
    tool, w = TOOLS[tool_name], BY_NAME[workload_name]
    try:
        for module in tool.requires:
            importlib.import_module(module)
    except ImportError as exc:
        return {"status": "not installed", "note": f"{type(exc).__name__}: {exc}"}
    import ops

    img = make_input(w.shape_for(mode), w.dtype)
    warm = img if w.warmup_shape is None else make_input(w.warmup_shape, w.dtype, seed=1)
    t0 = time.perf_counter()
    fn = tool.make(w)
    fn(warm)
    first_call = time.perf_counter() - t0
    del warm
    gc.collect()

    reset_ok = reset_peak_rss()
    rss_before = proc_status_kib("VmRSS")
    times, result = _timed_repeats(fn, img, repeats)
    hwm = proc_status_kib("VmHWM")

    err = ops.max_abs_error(np.asarray(result), ops.reference(w, img))
    ok = err <= w.atol  # False for NaN
    peak = (hwm - rss_before) / 1024 if reset_ok and hwm and rss_before else None
    return {
        "status": "ok" if ok else "wrong",
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
    }


def safe_measure(tool_name: str, workload_name: str, mode: str, repeats: int) -> dict[str, Any]:
    """``measure``, with any exception turned into an "error" record."""
    try:
        return measure(tool_name, workload_name, mode, repeats)
    except Exception as exc:  # reported in the table, not raised
        return {"status": "error", "note": f"{type(exc).__name__}: {exc}"[:300]}
