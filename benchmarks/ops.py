"""Per-patch operations (numba callbacks) and their float64 reference results.

The references use integral images only, so they share no code with any tool.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np
from numba import njit
from workloads import Workload

# --- process_image callbacks: func(patch, out) fills out -----------------------------


@njit
def identity(patch, out):
    # explicit loops: `out[...] = patch` compiles in ~4.5 s and runs slower
    for i in range(patch.shape[0]):
        for j in range(patch.shape[1]):
            out[i, j] = patch[i, j]


@njit
def identity3(patch, out):  # (ph, pw, C) colour patches and (pd, ph, pw) volume patches
    for i in range(patch.shape[0]):
        for j in range(patch.shape[1]):
            for k in range(patch.shape[2]):
                out[i, j, k] = patch[i, j, k]


@njit
def remove_mean(patch, out):
    m = patch.mean()
    for i in range(patch.shape[0]):
        for j in range(patch.shape[1]):
            out[i, j] = patch[i, j] - m


# --- map_patches callbacks: func(patch) -> number -------------------------------------


@njit
def local_std(patch):
    n = patch.shape[0] * patch.shape[1]
    s = 0.0
    for i in range(patch.shape[0]):
        for j in range(patch.shape[1]):
            s += patch[i, j]
    m = s / n
    v = 0.0
    for i in range(patch.shape[0]):
        for j in range(patch.shape[1]):
            d = patch[i, j] - m
            v += d * d
    return math.sqrt(v / n)


PROCESS_CALLBACKS = {"identity": identity, "mean_removal": remove_mean}
MAP_CALLBACKS = {"local_std": local_std}
PROCESS_CALLBACKS_3D = {"identity": identity3}  # patches with 3 axes


def process_callback(w: Workload) -> Any:
    """The callback for the workload's op and patch rank (spatial axes + channels)."""
    rank = w.spatial_ndim + w.channels
    table = PROCESS_CALLBACKS if rank == 2 else PROCESS_CALLBACKS_3D
    if w.op not in table:
        raise ValueError(f"no {rank}-D callback for op {w.op!r}")
    return table[w.op]


@functools.cache
def local_std_lowlevel() -> Any:
    """scipy.ndimage.generic_filter callback: scipy's documented numba ``cfunc`` pattern."""
    from numba import carray, cfunc, types
    from scipy import LowLevelCallable

    sig = types.intc(
        types.CPointer(types.double), types.intp, types.CPointer(types.double), types.voidptr
    )

    @cfunc(sig)
    def std_filter(values_ptr, n, result, user_data):
        values = carray(values_ptr, (n,), dtype=types.double)
        s = 0.0
        for k in range(n):
            s += values[k]
        m = s / n
        v = 0.0
        for k in range(n):
            d = values[k] - m
            v += d * d
        result[0] = math.sqrt(v / n)
        return 1

    return LowLevelCallable(std_filter.ctypes)


# --- float64 references ----------------------------------------------------------------


def box_sum_valid(a: np.ndarray, p: int) -> np.ndarray:
    """Sum of every p x p window of ``a`` (valid positions only), in float64."""
    s = np.zeros((a.shape[0] + 1, a.shape[1] + 1))
    np.cumsum(np.cumsum(a, axis=0, dtype=np.float64), axis=1, out=s[1:, 1:])
    return s[p:, p:] - s[:-p, p:] - s[p:, :-p] + s[:-p, :-p]


def _spread(values: np.ndarray, shape: tuple[int, int], p: int, step: int) -> np.ndarray:
    """For each pixel, the sum of ``values`` over the grid patches that cover it."""
    up = np.zeros((shape[0] + p - 1, shape[1] + p - 1))
    gh, gw = values.shape
    up[p - 1 : p - 1 + step * (gh - 1) + 1 : step, p - 1 : p - 1 + step * (gw - 1) + 1 : step] = (
        values
    )
    return box_sum_valid(up, p)


def reference(w: Workload, img: np.ndarray) -> np.ndarray:
    """Exact (float64) result of the workload's operation on ``img``."""
    p, s = w.patch, w.step
    x = img.astype(np.float64)
    if w.op == "local_std":
        if s != 1:
            raise NotImplementedError("local_std reference is for step 1")
        xp = np.pad(x, (p // 2, p - 1 - p // 2), mode="symmetric")
        mean = box_sum_valid(xp, p) / p**2
        var = box_sum_valid(xp * xp, p) / p**2 - mean**2
        return np.sqrt(np.maximum(var, 0.0))
    if w.op == "identity":  # any positive window: a weighted mean of equal values
        return x
    if w.op == "mean_removal":
        means = box_sum_valid(x, p)[::s, ::s] / p**2
        count = _spread(np.ones_like(means), x.shape, p, s)
        return x - _spread(means, x.shape, p, s) / count
    raise ValueError(f"unknown op {w.op!r}")


def max_abs_error(result: np.ndarray, ref: np.ndarray, rows: int = 512) -> float:
    """max |result - ref| (NaN if either has NaN), in row blocks to bound memory."""
    if result.shape != ref.shape:
        raise ValueError(f"result has shape {result.shape}, expected {ref.shape}")
    err = 0.0
    for i in range(0, ref.shape[0], rows):
        d = np.abs(result[i : i + rows].astype(np.float64) - ref[i : i + rows])
        block = float(d.max())
        if math.isnan(block):
            return block
        err = max(err, block)
    return err
