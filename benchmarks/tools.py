"""The tools that run workloads: patchjit and its peers.

To add a peer: write a ``_make_<name>(w) -> Runner`` that imports the package inside it,
add a ``Tool`` to ``TOOLS`` naming the modules it imports in ``requires`` (a missing one
makes the tool "not installed"), and list the tool's name in the ``tools`` of the
workloads it can run. A tool that loops over the patches in Python sets ``python_loop``:
the worker then times it on a corner of the input first and reports "too slow" instead
of running a call estimated to exceed the mode's budget. A known defect of a tool's
merge goes into ``caveat``; the result column shows it next to ok / WRONG.
"""

from __future__ import annotations

import importlib.util
import itertools
import math
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
    python_loop: bool = False  # loops over the patches in Python: estimate the time first
    caveat: Callable[[Workload], str | None] = lambda w: None  # known merge defect
    averages_overlaps: bool = True  # False: result is "cannot average" where patches overlap

    def missing(self) -> list[str]:
        return [m for m in self.requires if importlib.util.find_spec(m) is None]


# --- patchjit ------------------------------------------------------------------------


def _make_patchjit(w: Workload) -> Runner:
    import ops

    import patchjit

    if w.kind == "process":
        cb = ops.process_callback(w)
        channel_axis = -1 if w.channels else None
        return lambda img: patchjit.process_image(
            img, cb, w.patch, w.step, channel_axis=channel_axis, window=w.window
        )
    cb = ops.MAP_CALLBACKS[w.op]
    return lambda img: patchjit.map_patches(
        img, cb, w.patch, w.step, edge="pad", pad_mode="symmetric"
    )


# --- numpy / scikit-image: a window view + offset-loop merge -------------------------

WindowView = Callable[[np.ndarray, Workload], np.ndarray]  # (*grid, *patch[, C])


def numpy_windows(img: np.ndarray, w: Workload) -> np.ndarray:
    view = sliding_window_view(img, w.patch_shape, axis=tuple(range(w.spatial_ndim)))
    view = view[tuple(slice(None, None, s) for s in w.step_shape)]
    return np.moveaxis(view, w.spatial_ndim, -1) if w.channels else view


def skimage_windows(img: np.ndarray, w: Workload) -> np.ndarray:
    from skimage.util import view_as_windows

    window = w.patch_shape + img.shape[w.spatial_ndim :]
    step = w.step_shape + (1,) * w.channels
    view = view_as_windows(img, window, step)  # (*grid[, 1], *patch[, C])
    return view[(slice(None),) * w.spatial_ndim + (0,)] if w.channels else view


def _axis_coverage(n: int, p: int, step: int, g: int) -> np.ndarray:
    """How many of the ``g`` patches along an axis of length ``n`` cover each pixel."""
    c = np.zeros(n)
    for d in range(p):
        c[d : d + step * (g - 1) + 1 : step] += 1
    return c


def _coverage(w: Workload, shape: tuple[int, ...], grid: tuple[int, ...]) -> np.ndarray:
    """Patches covering each pixel (outer product of the per-axis counts)."""
    axes = zip(shape, w.patch_shape, w.step_shape, grid)
    cov = math.prod(
        np.expand_dims(_axis_coverage(*a), [d for d in range(len(shape)) if d != i])
        for i, a in enumerate(axes)
    )
    return cov[..., None] if w.channels else cov


def overlap_add(res: np.ndarray, shape: tuple[int, ...], w: Workload) -> np.ndarray:
    """Mean merge of per-patch results ``res`` (*grid, *patch[, C]): one strided
    slice-add per offset inside the patch, then a division by the coverage."""
    nd = w.spatial_ndim
    grid = res.shape[:nd]
    out = np.zeros(shape, dtype=res.dtype)
    for offset in itertools.product(*(range(p) for p in w.patch_shape)):
        target = tuple(
            slice(o, o + s * (g - 1) + 1, s) for o, s, g in zip(offset, w.step_shape, grid)
        )
        out[target] += res[(slice(None),) * nd + offset]
    out /= _coverage(w, shape[:nd], grid)
    return out


def offset_loop(img: np.ndarray, w: Workload, windows: WindowView) -> np.ndarray:
    """Per-patch results on the window view, merged by ``overlap_add``."""
    view = windows(img, w)
    if w.op == "identity":
        res = view  # no copy: the identity result is the view itself
    elif w.op == "mean_removal":
        axes = tuple(range(w.spatial_ndim, view.ndim))
        res = view - view.mean(axis=axes, keepdims=True)  # materialises every patch
    else:
        raise ValueError(f"unknown op {w.op!r}")
    return overlap_add(res, img.shape, w)


def local_std(img: np.ndarray, w: Workload, windows: WindowView) -> np.ndarray:
    """``std`` over the window view of the symmetric-padded image (materialises x - mean)."""
    p = w.patch
    padded = np.pad(img, (p // 2, p - 1 - p // 2), mode="symmetric")
    return windows(padded, w).std(axis=(2, 3))


def _view_tool(windows: WindowView) -> Callable[[Workload], Runner]:
    def make(w: Workload) -> Runner:
        if w.kind == "map":
            return lambda img: local_std(img, w, windows)
        return lambda img: offset_loop(img, w, windows)

    return make


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


# --- per-patch Python ops for the tools that hand out one patch at a time -------------


def _patch_op(op: str) -> Callable[[np.ndarray], np.ndarray]:
    if op == "identity":
        return lambda patch: patch
    if op == "mean_removal":
        return lambda patch: patch - patch.mean()
    raise ValueError(f"unknown op {op!r}")


# --- patchify: patchify (a view) + unpatchify ----------------------------------------


def _make_patchify(w: Workload) -> Runner:
    from patchify import patchify, unpatchify

    def run(img: np.ndarray) -> np.ndarray:
        view = patchify(img, (w.patch, w.patch), step=w.step)  # (gh, gw, p, p)
        if w.op == "mean_removal":
            view = view - view.mean(axis=(2, 3), keepdims=True)
        elif w.op != "identity":
            raise ValueError(f"unknown op {w.op!r}")
        return unpatchify(view, img.shape)

    return run


# --- empatches: EMPatches.extract_patches + merge_patches(mode="avg") ----------------


def _make_empatches(w: Workload) -> Runner:
    from empatches import EMPatches

    op = _patch_op(w.op)

    def run(img: np.ndarray) -> np.ndarray:
        emp = EMPatches()
        patches, indices = emp.extract_patches(img, patchsize=w.patch, stride=w.step)
        return emp.merge_patches([op(q) for q in patches], indices, mode="avg")

    return run


# --- tiler: Tiler + Merger, one tile at a time -------------------------------------


def _make_tiler(w: Workload) -> Runner:
    from tiler import Merger, Tiler

    op = _patch_op(w.op)
    channel = w.shape[-1:] if w.channels else ()

    def run(img: np.ndarray) -> np.ndarray:
        tiler = Tiler(
            data_shape=img.shape,
            tile_shape=w.patch_shape + channel,
            overlap=tuple(p - s for p, s in zip(w.patch_shape, w.step_shape)) + (0,) * w.channels,
            channel_dimension=img.ndim - 1 if w.channels else None,
        )
        merger = Merger(tiler, window=w.window)  # None: boxcar, the plain mean
        for tile_id, tile in tiler(img, copy_data=False):
            merger.add(tile_id, op(tile))
        return merger.merge(unpad=True)

    return run


# --- capabilities ----------------------------------------------------------------------


def _any(w: Workload, mode: str) -> str | None:
    return None


def _flush(w: Workload, mode: str) -> str | None:
    if not w.grid_is_flush(mode):
        return "unsupported: needs a patch grid that ends flush with the border"
    return None


def _flush_process(w: Workload, mode: str) -> str | None:
    if w.kind != "process":
        return f"unsupported: no {w.kind} variant implemented"
    return _flush(w, mode)


def _square_2d_process(w: Workload, mode: str) -> str | None:
    if not w.is_square_2d:
        return "unsupported: grey 2-D images, square patches, no window only"
    return _flush_process(w, mode)


def _sklearn_supports(w: Workload, mode: str) -> str | None:
    return "unsupported: stride 1 only" if w.step != 1 else _square_2d_process(w, mode)


def _view_supports(w: Workload, mode: str) -> str | None:
    if w.window is not None:
        return "unsupported: no window implemented (plain mean only)"
    if w.kind == "map":
        return None if w.is_square_2d else "unsupported: 2-D map only"
    return _flush_process(w, mode)


def _scipy_supports(w: Workload, mode: str) -> str | None:
    if w.kind != "map" or w.op != "local_std" or w.step != 1:
        return "unsupported: generic_filter computes one value per pixel (map, step 1)"
    return None


def _merges_by_overwriting(w: Workload) -> str:
    return "unpatchify pastes each pixel from one patch and skips the patches that overlap it"


def _empatches_avg(w: Workload) -> str:
    return 'merge mode="avg" is a running (old + new) / 2 that treats 0 as empty, not a mean'


def _tiler_window(w: Workload) -> str | None:
    if w.window in ("hann", "bartlett", "blackman", "bohman", "barthann"):
        return f"tiler's {w.window} window is 0 at the tile edges: image borders get weight 0"
    return None


TOOLS: dict[str, Tool] = {
    t.name: t
    for t in (
        Tool("patchjit", "patchjit.process_image / map_patches, numba callback",
             ("patchjit", "numba"), _make_patchjit, _any, lambda w: False),
        Tool("numpy", "sliding_window_view + offset-loop merge (map: view.std)",
             ("numpy",), _view_tool(numpy_windows), _view_supports,
             lambda w: w.kind == "map" or w.op != "identity"),
        Tool("sklearn", "extract_patches_2d + reconstruct_from_patches_2d",
             ("sklearn",), _make_sklearn, _sklearn_supports, lambda w: True),
        Tool("torch", "F.unfold / F.fold divided by fold(unfold(ones))",
             ("torch",), _make_torch, _square_2d_process, lambda w: True),
        Tool("scipy", "ndimage.generic_filter + numba cfunc LowLevelCallable",
             ("scipy", "numba"), _make_scipy, _scipy_supports, lambda w: False),
        Tool("skimage", "skimage.util.view_as_windows + the numpy offset-loop merge",
             ("skimage",), _view_tool(skimage_windows), _view_supports,
             lambda w: w.kind == "map" or w.op != "identity"),
        Tool("patchify", "patchify.patchify (a view) + patchify.unpatchify",
             ("patchify",), _make_patchify, _square_2d_process,
             lambda w: w.op != "identity", caveat=_merges_by_overwriting,
             averages_overlaps=False),
        Tool("empatches", 'EMPatches.extract_patches + merge_patches(mode="avg")',
             ("empatches",), _make_empatches, _square_2d_process, lambda w: True,
             python_loop=True, caveat=_empatches_avg),
        Tool("tiler", "tiler.Tiler + Merger (window=None: boxcar), one tile at a time",
             ("tiler",), _make_tiler, _flush_process, lambda w: False,
             python_loop=True, caveat=_tiler_window),
    )
}  # fmt: skip
