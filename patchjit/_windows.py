"""Window weights for weighted overlap-add merging.

Named windows are separable: the weight of a patch pixel is the product of one 1-D
window per spatial axis, taken from :mod:`scipy.signal.windows`. Every weight is
strictly positive, so every pixel that a patch covers receives weight, borders included:

========== ====================================================================
name       1-D window of length ``p``
========== ====================================================================
boxcar     ``ones(p)`` (the plain mean; the same as ``window=None``)
triangle   ``scipy.signal.windows.triang(p)`` (its end points are ``> 0``)
hann       ``scipy.signal.windows.hann(p + 2)[1:-1]``: the interior of a window two
           samples longer, so the end points are ``> 0``; the usual ``hann(p)`` has
           zeros at both ends and would leave the image borders with zero weight
hamming    ``scipy.signal.windows.hamming(p)`` (ends at 0.08)
gaussian   ``scipy.signal.windows.gaussian(p, std=sigma)``; ``sigma`` per axis,
           default ``p / 4``
========== ====================================================================
"""

from __future__ import annotations

import numbers

import numpy as np

WINDOW_NAMES = ("boxcar", "triangle", "hann", "hamming", "gaussian")


def _one_axis(name: str, p: int, sigma: float) -> np.ndarray:
    from scipy.signal import windows as _sw  # imported on first use: scipy.signal is slow

    if name == "boxcar":
        return np.ones(p)
    if name == "triangle":
        return _sw.triang(p)
    if name == "hann":
        return _sw.hann(p + 2)[1:-1]
    if name == "hamming":
        return _sw.hamming(p)
    return _sw.gaussian(p, std=sigma)


def window_weights(window, patch_shape: tuple[int, ...], sigma=None):
    """Return ``(per_axis, full)`` for a window specification.

    ``per_axis`` is a tuple of 1-D float64 weight vectors when the window is separable
    (every named window, and arrays that are an outer product), else None. ``full`` is
    the float64 weight array of ``patch_shape``, or None for ``window=None``.
    """
    if window is None:
        if sigma is not None:
            raise ValueError("sigma is only used with window='gaussian'; got window=None")
        return None, None
    if isinstance(window, str):
        if window not in WINDOW_NAMES:
            valid = ", ".join(repr(n) for n in WINDOW_NAMES)
            raise ValueError(
                f"unknown window {window!r}; valid choices are None, {valid} "
                f"or a positive array of the patch's shape {patch_shape}"
            )
        sigmas = _sigmas(window, sigma, patch_shape)
        vecs = tuple(_one_axis(window, p, s) for p, s in zip(patch_shape, sigmas))
        return vecs, _outer(vecs)
    if sigma is not None:
        raise ValueError("sigma is only used with window='gaussian'")
    arr = np.asarray(window)
    if arr.dtype.kind not in "buif":
        raise TypeError(f"window must be a name or a real array, got dtype {arr.dtype}")
    arr = arr.astype(np.float64)
    if arr.shape != tuple(patch_shape):
        raise ValueError(
            f"window array has shape {arr.shape}, but it must have the patch's spatial "
            f"shape {tuple(patch_shape)}"
        )
    if not np.all(np.isfinite(arr)):
        raise ValueError("window array holds NaN or inf; every weight must be finite and > 0")
    if np.any(arr <= 0):
        bad = "all zeros" if not np.any(arr) else f"minimum {arr.min()!r}"
        raise ValueError(
            f"window weights must all be > 0 so that every covered pixel gets weight; got {bad}"
        )
    return _separate(arr), arr


def check_representable(full, dtype, window, sigma) -> None:
    """Refuse window weights too small for accumulation in ``dtype``.

    Merging computes ``sum(w * out) / sum(w)``; it returns the image exactly for the
    identity callback only while every ``w * value`` is a normal number of ``dtype``.
    A narrow gaussian's tails underflow instead (``sigma=0.5`` over 16 pixels reaches
    ``1e-49``, below float32's range; ``sigma=0.05`` reaches 0 in float64), which would
    give border pixels zero or garbled weight. Weights below ``sqrt(finfo.tiny)`` are
    therefore refused, with the smallest sigma that works.
    """
    if full is None:
        return
    dtype = np.dtype(dtype)
    floor = float(np.sqrt(np.finfo(dtype).tiny))
    smallest = float(full.min())
    if smallest >= floor:
        return
    hint = ""
    named = isinstance(window, str)
    if named and window == "gaussian":
        # each axis' edge weight is exp(-d^2 / (2 s^2)), d = (p - 1) / 2; the product
        # over axes must stay >= floor, so each axis gets floor ** (1 / ndim).
        per_axis = np.log(1 / floor) / full.ndim
        need = tuple(
            round(float((p - 1) / 2 / np.sqrt(2 * per_axis)) + 0.005, 2) for p in full.shape
        )
        hint = f"; use sigma >= {need[0] if len(set(need)) == 1 else need} for this patch"
    what = f"window {window!r}" if named else f"window array of shape {full.shape}"
    what += f" with sigma={sigma!r}" if sigma is not None else ""
    wider = ", or pass a float64 image (float64 accumulation)" if dtype.itemsize < 8 else ""
    raise ValueError(
        f"{what} has weights down to {smallest:.3g}, too small to represent "
        f"in {dtype} accumulation (minimum {floor:.3g}): border pixels would lose their "
        f"weight{hint}{wider}"
    )


def _sigmas(window, sigma, patch_shape):
    if window != "gaussian":
        if sigma is not None:
            raise ValueError(f"sigma is only used with window='gaussian', got window={window!r}")
        return (None,) * len(patch_shape)
    if sigma is None:
        return tuple(p / 4 for p in patch_shape)
    if isinstance(sigma, numbers.Real):
        sigma = (sigma,) * len(patch_shape)
    sigma = tuple(sigma)
    if len(sigma) != len(patch_shape) or not all(
        isinstance(s, numbers.Real) and np.isfinite(s) and s > 0 for s in sigma
    ):
        raise ValueError(
            f"sigma must be a positive number or one per spatial axis "
            f"({len(patch_shape)}), got {sigma!r}"
        )
    return tuple(float(s) for s in sigma)


def _outer(vecs):
    full = vecs[0]
    for v in vecs[1:]:
        full = np.multiply.outer(full, v)
    return full


def _separate(arr: np.ndarray):
    """Per-axis factors of a positive array if it is an outer product, else None."""
    total = arr.sum()
    vecs = []
    for axis in range(arr.ndim):
        other = tuple(a for a in range(arr.ndim) if a != axis)
        vecs.append(arr.sum(axis=other) if other else arr.copy())
    vecs = [v / total for v in vecs[:-1]] + [vecs[-1]]
    if np.allclose(_outer(vecs), arr, rtol=1e-12, atol=0):
        return tuple(vecs)
    return None
