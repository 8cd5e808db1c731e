"""The tools that run workloads: patchjit and its peers.

To add a peer (empatches, tiler, patchify, skimage's view_as_windows, ...): write a
``_make_<name>(w) -> Runner`` that imports the package inside it, add a ``Tool`` to
``TOOLS`` naming the modules it imports in ``requires`` (a missing one makes the tool
"not installed"), and list the tool's name in the ``tools`` of the workloads it can run.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from workloads import Workload

Runner = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Tool:
    name: str
    label: str  # what exactly runs, for the report
    requires: tuple[str, ...]  # modules imported by ``make``
    make: Callable[[Workload], Runner]  # imports and compiles; returns the timed function
    supports: Callable[[Workload, str], str | None]  # (workload, mode) -> why not, or None
    materialises: Callable[[Workload], bool]  # holds every patch in memory at once

    def missing(self) -> list[str]:
        return [m for m in self.requires if importlib.util.find_spec(m) is None]


# --- patchjit ------------------------------------------------------------------------


def _make_patchjit(w: Workload) -> Runner:
    import ops

    import patchjit

    if w.kind == "process":
        cb = ops.PROCESS_CALLBACKS[w.op]
        return lambda img: patchjit.process_image(img, cb, w.patch, w.step)
    cb = ops.MAP_CALLBACKS[w.op]
    return lambda img: patchjit.map_patches(
        img, cb, w.patch, w.step, edge="pad", pad_mode="symmetric"
    )


# --- numpy: sliding_window_view + offset-loop merge -------------------------------


def _axis_coverage(n: int, p: int, step: int, g: int) -> np.ndarray:
    """How many of the ``g`` patches along an axis of length ``n`` cover each pixel."""
    c = np.zeros(n)
    for d in range(p):
        c[d : d + step * (g - 1) + 1 : step] += 1
    return c


def numpy_overlap_add(img: np.ndarray, op: str, p: int, step: int) -> np.ndarray:
    """Per-patch results on the window view, merged by one slice-add per patch offset."""
    view = sliding_window_view(img, (p, p))[::step, ::step]
    gh, gw = view.shape[:2]
    if op == "identity":
        res = view  # no copy: the identity result is the view itself
    elif op == "mean_removal":
        res = view - view.mean(axis=(2, 3), keepdims=True)  # materialises every patch
    else:
        raise ValueError(f"unknown op {op!r}")
    out = np.zeros(img.shape, dtype=res.dtype)
    for dy in range(p):
        rows = slice(dy, dy + step * (gh - 1) + 1, step)
        for dx in range(p):
            out[rows, dx : dx + step * (gw - 1) + 1 : step] += res[:, :, dy, dx]
    cov_y = _axis_coverage(img.shape[0], p, step, gh)
    cov_x = _axis_coverage(img.shape[1], p, step, gw)
    out /= np.outer(cov_y, cov_x)
    return out


def numpy_local_std(img: np.ndarray, p: int, step: int) -> np.ndarray:
    """``std`` over the window view of the symmetric-padded image (materialises x - mean)."""
    padded = np.pad(img, (p // 2, p - 1 - p // 2), mode="symmetric")
    return sliding_window_view(padded, (p, p))[::step, ::step].std(axis=(2, 3))


def _make_numpy(w: Workload) -> Runner:
    if w.kind == "map":
        return lambda img: numpy_local_std(img, w.patch, w.step)
    return lambda img: numpy_overlap_add(img, w.op, w.patch, w.step)


# --- scikit-learn: extract_patches_2d + reconstruct_from_patches_2d ------------------


def _make_sklearn(w: Workload) -> Runner:
    from sklearn.feature_extraction.image import extract_patches_2d, reconstruct_from_patches_2d

    def run(img: np.ndarray) -> np.ndarray:
        patches = extract_patches_2d(img, (w.patch, w.patch))
        if w.op == "mean_removal":
            patches -= patches.mean(axis=(1, 2), keepdims=True)
        return reconstruct_from_patches_2d(patches, img.shape)

    return run


# --- torch: unfold / fold, divided by the fold of unfolded ones ------------------------


def _make_torch(w: Workload) -> Runner:
    import torch
    from torch.nn import functional

    def run(img: np.ndarray) -> np.ndarray:
        p, s = w.patch, w.step
        with torch.inference_mode():
            x = torch.from_numpy(img)[None, None]
            cols = functional.unfold(x, p, stride=s)  # (1, p*p, n_patches)
            if w.op == "mean_removal":
                cols = cols - cols.mean(dim=1, keepdim=True)
            out = functional.fold(cols, img.shape, p, stride=s)
            ones = functional.unfold(torch.ones_like(x), p, stride=s)
            norm = functional.fold(ones, img.shape, p, stride=s)
            return (out / norm)[0, 0].numpy()

    return run


# --- scipy: generic_filter with a numba LowLevelCallable ---------------------------


def _make_scipy(w: Workload) -> Runner:
    import ops
    from scipy import ndimage

    func = ops.local_std_lowlevel()
    return lambda img: ndimage.generic_filter(img, func, size=w.patch, mode="reflect")


# --- capabilities ----------------------------------------------------------------------


def _any(w: Workload, mode: str) -> str | None:
    return None


def _flush_process(w: Workload, mode: str) -> str | None:
    if w.kind != "process":
        return f"unsupported: no {w.kind} variant implemented"
    if not w.grid_is_flush(mode):
        return "unsupported: needs a patch grid that ends flush with the border"
    return None


def _sklearn_supports(w: Workload, mode: str) -> str | None:
    return "unsupported: stride 1 only" if w.step != 1 else _flush_process(w, mode)


def _numpy_supports(w: Workload, mode: str) -> str | None:
    return None if w.kind == "map" else _flush_process(w, mode)


def _scipy_supports(w: Workload, mode: str) -> str | None:
    if w.kind != "map" or w.op != "local_std" or w.step != 1:
        return "unsupported: generic_filter computes one value per pixel (map, step 1)"
    return None


TOOLS: dict[str, Tool] = {
    t.name: t
    for t in (
        Tool("patchjit", "patchjit.process_image / map_patches, numba callback",
             ("patchjit", "numba"), _make_patchjit, _any, lambda w: False),
        Tool("numpy", "sliding_window_view + offset-loop merge (map: view.std)",
             ("numpy",), _make_numpy, _numpy_supports,
             lambda w: w.kind == "map" or w.op != "identity"),
        Tool("sklearn", "extract_patches_2d + reconstruct_from_patches_2d",
             ("sklearn",), _make_sklearn, _sklearn_supports, lambda w: True),
        Tool("torch", "F.unfold / F.fold divided by fold(unfold(ones))",
             ("torch",), _make_torch, _flush_process, lambda w: True),
        Tool("scipy", "ndimage.generic_filter + numba cfunc LowLevelCallable",
             ("scipy", "numba"), _make_scipy, _scipy_supports, lambda w: False),
    )
}  # fmt: skip
