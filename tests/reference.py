"""Slow, obviously-correct reference implementation of the patchjit contract.

Everything here is written with explicit Python loops over patches and uses
only numpy/scipy.  It is used by the test-suite as the ground truth the
compiled implementation is compared against; it is itself validated against
independent peers (scikit-learn, torch fold/unfold, scipy generic_filter) and
hand-computed cases in ``tests/test_reference.py``.

Callbacks may be numba dispatchers: the reference calls their pure-Python
``py_func`` so that it does not depend on numba at all.
"""

from __future__ import annotations

import itertools
import math
import numbers
from dataclasses import dataclass

import numpy as np
import scipy.signal

EDGES = ("cover", "valid", "pad")
REDUCES = ("mean", "sum", "max", "min")
WINDOWS = ("boxcar", "triangle", "hann", "hamming", "gaussian")
PAD_MODES = ("constant", "edge", "reflect", "symmetric", "wrap")

# numpy.pad mode -> scipy.ndimage mode giving the same extension
NUMPY_TO_SCIPY_MODE = {
    "reflect": "mirror",
    "symmetric": "reflect",
    "edge": "nearest",
    "wrap": "wrap",
    "constant": "constant",
}


# --------------------------------------------------------------------------
# dtype policy and tolerances
# --------------------------------------------------------------------------
def accumulation_dtype(dtype) -> np.dtype:
    """float32 for float16/float32/bool/<=16-bit ints; float64 otherwise."""
    dtype = np.dtype(dtype)
    if dtype.kind == "b":
        return np.dtype(np.float32)
    if dtype.kind in "iu":
        return np.dtype(np.float32 if dtype.itemsize <= 2 else np.float64)
    if dtype.kind == "f":
        return np.dtype(np.float64 if dtype.itemsize >= 8 else np.float32)
    raise TypeError(f"unsupported image dtype {dtype}")


def _exact_int(v: float, lo: int, hi: int) -> int:
    """One float to an int in [lo, hi]: Python's exact round-half-even, then clip."""
    if v != v:
        raise ValueError("NaN has no integer value")
    if v in (float("inf"), float("-inf")):
        return hi if v > 0 else lo
    return min(max(round(v), lo), hi)  # round() of a float is exact, half to even


def cast_result(values, dtype):
    """Cast reference values to the output dtype.

    Integers: every value rounded half to even and clipped to the dtype's range in
    exact Python integer arithmetic, one value at a time (no float bounds, so nothing
    can wrap); NaN raises ValueError. Floats: a plain conversion.
    """
    dtype = np.dtype(dtype)
    values = np.asarray(values)
    if dtype.kind in "iu":
        lo, hi = int(np.iinfo(dtype).min), int(np.iinfo(dtype).max)
        flat = [_exact_int(float(v), lo, hi) for v in values.ravel().tolist()]
        return np.array(flat, dtype=dtype).reshape(values.shape)
    return values.astype(dtype)


# Base tolerances per accumulation dtype (the one place they are defined).
TOLERANCES = {
    np.dtype(np.float16): dict(rtol=2e-3, atol=2e-3),
    np.dtype(np.float32): dict(rtol=1e-5, atol=1e-5),
    np.dtype(np.float64): dict(rtol=1e-12, atol=1e-12),
}


def tolerance(dtype, n_terms: int = 1, scale: float = 1.0) -> dict:
    """rtol/atol for results computed in ``dtype``.

    ``n_terms`` is the largest number of terms summed into one value (the
    maximum coverage): the rounding error of a float sum grows with it.
    ``atol`` is scaled by the magnitude of the data.
    """
    dtype = np.dtype(dtype)
    if dtype.kind != "f":
        dtype = np.dtype(np.float64)
    base = TOLERANCES[dtype]
    eps = float(np.finfo(dtype).eps)
    rtol = max(base["rtol"], 4 * eps * n_terms)
    scale = float(scale) if np.isfinite(scale) and scale > 0 else 1.0
    atol = max(base["atol"], rtol) * max(scale, 1.0)
    return dict(rtol=rtol, atol=atol)


def assert_close(actual, expected, dtype=None, n_terms: int = 1, err_msg: str = ""):
    """Compare an implementation result with a reference result.

    NaN positions must agree exactly; integer results must be equal except
    where the float reference is within float32 rounding of a .5 boundary.
    """
    actual = np.asarray(actual)
    expected = np.asarray(expected)
    assert actual.shape == expected.shape, (actual.shape, expected.shape, err_msg)
    if dtype is None:
        dtype = expected.dtype
    dtype = np.dtype(dtype)
    if actual.dtype.kind in "iub" and expected.dtype.kind in "iub":
        np.testing.assert_array_equal(actual, expected, err_msg=err_msg)
        return
    finite = np.isfinite(expected)
    scale = float(np.max(np.abs(expected[finite]))) if finite.any() else 1.0
    np.testing.assert_allclose(
        actual.astype(np.float64),
        expected.astype(np.float64),
        equal_nan=True,
        err_msg=err_msg,
        **tolerance(dtype, n_terms, scale),
    )


def assert_int_result(actual, ref_float, dtype, n_terms: int = 1, acc=np.float32):
    """``actual`` (integer) must equal rint/clip of the float reference, except
    for values that sit (within float rounding) on a .5 rounding boundary."""
    dtype = np.dtype(dtype)
    actual = np.asarray(actual)
    assert actual.dtype == dtype, (actual.dtype, dtype)
    ref_float = np.asarray(ref_float, dtype=np.float64)
    expected = cast_result(ref_float, dtype)
    assert actual.shape == expected.shape
    frac = np.abs(ref_float - np.floor(ref_float) - 0.5)
    tol = tolerance(acc, n_terms, float(np.max(np.abs(ref_float))) if ref_float.size else 1.0)
    ambiguous = frac <= tol["atol"] + tol["rtol"] * np.abs(ref_float)
    diff = np.abs(actual.astype(np.int64) - expected.astype(np.int64))
    bad = (diff > 0) & ~ambiguous | (diff > 1)
    assert not bad.any(), (
        f"{bad.sum()} integer values differ; first at {np.argwhere(bad)[0]}: "
        f"got {actual[tuple(np.argwhere(bad)[0])]}, expected {expected[tuple(np.argwhere(bad)[0])]}"
    )


# --------------------------------------------------------------------------
# geometry
# --------------------------------------------------------------------------
def _is_int(x) -> bool:
    return isinstance(x, numbers.Integral) and not isinstance(x, bool)


def _broadcast(value, n: int, what: str) -> tuple[int, ...]:
    if _is_int(value):
        values = (int(value),) * n
    else:
        values = tuple(value)
        if len(values) != n:
            raise ValueError(f"{what} {value!r} has {len(values)} entries, expected {n}")
        if not all(_is_int(v) for v in values):
            raise TypeError(f"{what} {value!r} must contain integers")
        values = tuple(int(v) for v in values)
    if any(v <= 0 for v in values):
        raise ValueError(f"{what} {value!r} must be positive")
    return values


def split_axes(ndim: int, patch_shape, channel_axis=None):
    """Return (spatial_axes, channel_axis or None) for an image of ``ndim`` dims."""
    if channel_axis is not None:
        if not -ndim <= channel_axis < ndim:
            raise ValueError(f"channel_axis {channel_axis} out of range for {ndim}-d image")
        ca = channel_axis % ndim
    elif _is_int(patch_shape):
        ca = None
    else:
        k = len(tuple(patch_shape))
        if k == ndim:
            ca = None
        elif k == ndim - 1:
            ca = ndim - 1
        else:
            raise ValueError(f"patch_shape {tuple(patch_shape)!r} does not fit a {ndim}-d image")
    spatial = tuple(a for a in range(ndim) if a != ca)
    if not spatial:
        raise ValueError("image has no spatial axis")
    return spatial, ca


def axis_origins(n: int, p: int, s: int, edge: str) -> np.ndarray:
    """Origins along one axis of size n (already padded for edge='pad')."""
    origins = list(range(0, n - p + 1, s))
    if edge == "cover" and (n - p) % s != 0:
        origins.append(n - p)
    return np.asarray(origins, dtype=np.int64)


def axis_pad_width(n: int, p: int, s: int, centered: bool) -> tuple[int, int]:
    if centered:
        return (p // 2, p - 1 - p // 2)
    b = max(p - s, 0)
    return (b, b + (-(n + 2 * b - p)) % s)


@dataclass
class Geometry:
    image_shape: tuple
    spatial_axes: tuple
    channel_axis: int | None
    spatial_shape: tuple  # original spatial shape
    patch: tuple
    step: tuple
    edge: str
    pad_width: tuple  # per spatial axis
    padded_shape: tuple  # spatial shape after padding
    origins: tuple  # per spatial axis, padded frame

    @property
    def grid_shape(self):
        return tuple(len(o) for o in self.origins)

    @property
    def n_patches(self):
        return int(np.prod(self.grid_shape, dtype=np.int64))

    @property
    def n_channels(self):
        return None if self.channel_axis is None else self.image_shape[self.channel_axis]

    def origin_tuples(self):
        """All patch origins, C order over the grid."""
        return list(itertools.product(*[o.tolist() for o in self.origins]))

    def max_coverage(self):
        """Upper bound on how many patches overlap one pixel."""
        return int(np.prod([math.ceil(p / s) + 1 for p, s in zip(self.patch, self.step)]))


def geometry(
    image_shape,
    patch_shape,
    step=1,
    edge="cover",
    channel_axis=None,
    centered=False,
    check_cover_gaps=True,
) -> Geometry:
    image_shape = tuple(int(n) for n in image_shape)
    if edge not in EDGES:
        raise ValueError(f"unknown edge {edge!r}; valid: {EDGES}")
    if any(n == 0 for n in image_shape) or not image_shape:
        raise ValueError(f"empty image of shape {image_shape}")
    spatial, ca = split_axes(len(image_shape), patch_shape, channel_axis)
    nsp = len(spatial)
    patch = _broadcast(patch_shape, nsp, "patch_shape")
    step_t = _broadcast(step, nsp, "step")
    sshape = tuple(image_shape[a] for a in spatial)
    for n, p in zip(sshape, patch):
        if p > n:
            raise ValueError(f"patch size {p} larger than image size {n}")
    if edge == "cover" and check_cover_gaps:
        for p, s in zip(patch, step_t):
            if s > p:
                raise ValueError(f"step {s} larger than patch {p} leaves gaps with edge='cover'")
    if edge == "pad":
        pw = tuple(axis_pad_width(n, p, s, centered) for n, p, s in zip(sshape, patch, step_t))
    else:
        pw = tuple((0, 0) for _ in sshape)
    padded = tuple(n + a + b for n, (a, b) in zip(sshape, pw))
    grid_edge = "valid" if edge == "pad" else edge
    origins = tuple(axis_origins(n, p, s, grid_edge) for n, p, s in zip(padded, patch, step_t))
    return Geometry(image_shape, spatial, ca, sshape, patch, step_t, edge, pw, padded, origins)


def to_channels_last(image, geom: Geometry):
    """Spatial axes first (in order), then one channel axis (length 1 if none)."""
    if geom.channel_axis is None:
        return image[..., None]
    return np.moveaxis(image, geom.channel_axis, -1)


def from_channels_last(arr, geom: Geometry):
    if geom.channel_axis is None:
        return arr[..., 0]
    return np.moveaxis(arr, -1, geom.channel_axis)


def pad_image(img_cl, geom: Geometry, pad_mode="reflect", pad_value=0):
    if geom.edge != "pad":
        return img_cl
    if pad_mode not in PAD_MODES:
        raise ValueError(f"unknown pad_mode {pad_mode!r}; valid: {PAD_MODES}")
    widths = [*geom.pad_width, (0, 0)]
    if pad_mode == "constant":
        return np.pad(img_cl, widths, mode="constant", constant_values=pad_value)
    return np.pad(img_cl, widths, mode=pad_mode)


# --------------------------------------------------------------------------
# windows
# --------------------------------------------------------------------------
def window_1d(name: str, p: int, sigma=None) -> np.ndarray:
    if name == "boxcar":
        return np.ones(p)
    if name == "triangle":
        return scipy.signal.windows.triang(p)
    if name == "hann":
        return scipy.signal.windows.hann(p + 2)[1:-1]
    if name == "hamming":
        return scipy.signal.windows.hamming(p)
    if name == "gaussian":
        if sigma is None:
            sigma = p / 4
        return scipy.signal.windows.gaussian(p, std=sigma)
    raise ValueError(f"unknown window {name!r}; valid: {WINDOWS}")


def window_weights(window, patch, sigma=None) -> np.ndarray:
    """Spatial window of shape ``patch`` (float64), all ones for None."""
    patch = tuple(patch)
    if window is None:
        return np.ones(patch)
    if isinstance(window, str):
        if window not in WINDOWS:
            raise ValueError(f"unknown window {window!r}; valid: {WINDOWS}")
        scalar = sigma is None or np.ndim(sigma) == 0
        sigmas = [sigma] * len(patch) if scalar else list(sigma)
        w = np.ones(())
        for p, sg in zip(patch, sigmas):
            w = np.multiply.outer(w, window_1d(window, p, sg))
        return w
    w = np.asarray(window, dtype=np.float64)
    if w.shape != patch:
        raise ValueError(f"window shape {w.shape} does not match patch shape {patch}")
    if not np.all(w > 0):
        raise ValueError("window weights must be positive")
    return w


# --------------------------------------------------------------------------
# merging
# --------------------------------------------------------------------------
def _merge(geom: Geometry, n_channels: int, outputs, weights, reduce):
    """Overlap-add ``outputs`` (one per origin, channels last) in float64.

    Returns the merged array on the padded spatial frame, channels last.
    """
    if reduce not in REDUCES:
        raise ValueError(f"unknown reduce {reduce!r}; valid: {REDUCES}")
    shape = (*geom.padded_shape, n_channels)
    num = np.zeros(shape)
    den = np.zeros(geom.padded_shape)
    best = np.zeros(shape)
    covered = np.zeros(geom.padded_shape, dtype=bool)
    wc = weights[..., None]
    for origin, out in zip(geom.origin_tuples(), outputs, strict=True):
        sl = tuple(slice(o, o + p) for o, p in zip(origin, geom.patch))
        out = np.asarray(out, dtype=np.float64).reshape(*geom.patch, n_channels)
        if reduce in ("mean", "sum"):
            num[sl] += wc * out
            den[sl] += weights
        else:
            cur = best[sl]
            first = ~covered[sl]
            fn = np.maximum if reduce == "max" else np.minimum
            merged = fn(cur, out)
            merged[first] = out[first]
            best[sl] = merged
        covered[sl] = True
    if reduce == "mean":
        with np.errstate(invalid="ignore", divide="ignore"):
            res = num / den[..., None]
    elif reduce == "sum":
        res = num
    else:
        res = best
    res[~covered] = np.nan
    return res


def _crop(arr_cl, geom: Geometry):
    sl = tuple(slice(a, a + n) for (a, _), n in zip(geom.pad_width, geom.spatial_shape))
    return arr_cl[sl]


def _py(func):
    """The pure-Python function to call for ``func``.

    A callback may carry a ``reference`` attribute (an equivalent numpy
    implementation, see tests/callbacks.py); otherwise a numba dispatcher's
    ``py_func`` is used, or ``func`` itself.
    """
    ref_impl = getattr(func, "reference", None)
    if ref_impl is not None:
        return ref_impl
    return getattr(func, "py_func", func)


def process_image_float(
    image,
    func,
    patch_shape,
    step=1,
    *,
    args=(),
    edge="cover",
    channel_axis=None,
    window=None,
    sigma=None,
    reduce="mean",
    pad_mode="reflect",
    pad_value=0,
    out_channels=None,
):
    """Reference ``process_image`` returning float64 values (before the final cast).

    With ``out_channels=K`` the callback fills ``out`` of shape ``(*patch, K)`` and the
    result has K channels where the image's channel axis was, or last without one.
    """
    image = np.asarray(image)
    geom = geometry(image.shape, patch_shape, step, edge, channel_axis)
    if reduce in ("max", "min") and window is not None:
        raise ValueError(f"reduce={reduce!r} does not accept a window")
    acc = accumulation_dtype(image.dtype)
    weights = window_weights(window, geom.patch, sigma)
    img = pad_image(to_channels_last(image, geom), geom, pad_mode, pad_value)
    nc = img.shape[-1]
    f = _py(func)
    outputs = []
    for origin in geom.origin_tuples():
        sl = tuple(slice(o, o + p) for o, p in zip(origin, geom.patch))
        patch = img[sl].copy()
        if geom.channel_axis is None:
            patch = patch[..., 0]
        if out_channels is None:
            out = np.zeros(patch.shape, dtype=acc)
        else:
            out = np.zeros((*geom.patch, out_channels), dtype=acc)
        f(patch, out, *args)
        outputs.append(out)
    if out_channels is None:
        merged = _merge(geom, nc, outputs, weights, reduce)
        return from_channels_last(_crop(merged, geom), geom)
    merged = _crop(_merge(geom, out_channels, outputs, weights, reduce), geom)
    if geom.channel_axis is None:
        return merged  # a new last axis of out_channels entries
    return np.moveaxis(merged, -1, geom.channel_axis)


def process_image(image, func, patch_shape, step=1, *, dtype=None, **kwargs):
    """Reference ``process_image`` (result cast like the contract says)."""
    image = np.asarray(image)
    res = process_image_float(image, func, patch_shape, step, **kwargs)
    return cast_result(res, accumulation_dtype(image.dtype) if dtype is None else dtype)


def process_batches_float(
    image,
    func,
    patch_shape,
    step=1,
    *,
    out_channels=None,
    edge="cover",
    channel_axis=None,
    window=None,
    sigma=None,
    reduce="mean",
    pad_mode="reflect",
    pad_value=0,
):
    """Reference ``process_batches`` in float64: ``func`` sees one patch at a time.

    ``func(batch)`` gets a ``(1, *patch[, C])`` batch in the accumulation dtype and
    returns ``(1, *patch[, K])``; ``K = out_channels`` (a channel axis where the image
    has one, else a new last axis), else the image's channels.
    """
    image = np.asarray(image)
    geom = geometry(image.shape, patch_shape, step, edge, channel_axis)
    if reduce in ("max", "min") and window is not None:
        raise ValueError(f"reduce={reduce!r} does not accept a window")
    acc = accumulation_dtype(image.dtype)
    weights = window_weights(window, geom.patch, sigma)
    img = pad_image(to_channels_last(image, geom), geom, pad_mode, pad_value)
    k = img.shape[-1] if out_channels is None else out_channels
    outputs = []
    for origin in geom.origin_tuples():
        sl = tuple(slice(o, o + p) for o, p in zip(origin, geom.patch))
        patch = img[sl].astype(acc)
        if geom.channel_axis is None:
            patch = patch[..., 0]
        out = np.asarray(func(patch[None].copy()))[0]
        outputs.append(np.asarray(out, dtype=acc).reshape(*geom.patch, k))
    merged = _crop(_merge(geom, k, outputs, weights, reduce), geom)
    if out_channels is None:
        return from_channels_last(merged, geom)
    if geom.channel_axis is None:
        return merged
    return np.moveaxis(merged, -1, geom.channel_axis)


def patchify(image, patch_shape, step=1, *, channel_axis=None):
    """Reference ``patchify``: a *copy* of shape (*grid, *patch[, C]), valid grid."""
    image = np.asarray(image)
    geom = geometry(image.shape, patch_shape, step, "valid", channel_axis)
    img = to_channels_last(image, geom)
    nc = img.shape[-1]
    res = np.empty((*geom.grid_shape, *geom.patch, nc), dtype=image.dtype)
    for g in itertools.product(*[range(k) for k in geom.grid_shape]):
        origin = [geom.origins[d][i] for d, i in enumerate(g)]
        sl = tuple(slice(o, o + p) for o, p in zip(origin, geom.patch))
        res[g] = img[sl]
    if geom.channel_axis is None:
        res = res[..., 0]
    return res


def unpatchify_float(
    patches,
    image_shape,
    step=1,
    *,
    edge="cover",
    channel_axis=None,
    window=None,
    sigma=None,
    reduce="mean",
):
    """Reference ``unpatchify`` (float64 values).

    ``patches`` is grid form (*grid, *patch[, C]) or flat (n, *patch[, C]); the
    patch shape is read from the patches array.
    """
    patches = np.asarray(patches)
    image_shape = tuple(image_shape)
    d = len(image_shape)
    if channel_axis is not None:
        nsp = d - 1
    else:
        # grid form with channels: 2*nsp+1 dims; grid without: 2*d; flat: d+1
        # (a flat array is never read as having channels without channel_axis)
        if patches.ndim in (2 * d, d + 1):
            nsp = d
        elif patches.ndim == 2 * (d - 1) + 1 and d > 1:
            nsp = d - 1
            channel_axis = d - 1
        else:
            raise ValueError(f"patches of shape {patches.shape} do not fit image {image_shape}")
    has_c = channel_axis is not None
    flat_ndim = 1 + nsp + has_c
    grid_ndim = 2 * nsp + has_c
    if patches.ndim == grid_ndim and grid_ndim != flat_ndim:
        patch = patches.shape[nsp : 2 * nsp]
        flat = patches.reshape(-1, *patches.shape[nsp:])
        grid_given = patches.shape[:nsp]
    elif patches.ndim == flat_ndim:
        patch = patches.shape[1 : 1 + nsp]
        flat = patches
        grid_given = None
    else:
        raise ValueError(f"patches of shape {patches.shape} do not fit image {image_shape}")
    geom = geometry(image_shape, tuple(patch), step, edge, channel_axis)
    if grid_given is not None and tuple(grid_given) != geom.grid_shape:
        raise ValueError(f"patch grid {grid_given} != expected {geom.grid_shape}")
    if flat.shape[0] != geom.n_patches:
        raise ValueError(f"{flat.shape[0]} patches given, grid has {geom.n_patches}")
    nc = image_shape[geom.channel_axis] if has_c else 1
    if has_c and flat.shape[-1] != nc:
        raise ValueError(f"patch channels {flat.shape[-1]} != image channels {nc}")
    weights = window_weights(window, geom.patch, sigma)
    if reduce in ("max", "min") and window is not None:
        raise ValueError(f"reduce={reduce!r} does not accept a window")
    acc = accumulation_dtype(patches.dtype)
    outputs = [flat[i].astype(acc) for i in range(flat.shape[0])]
    merged = _merge(geom, nc, outputs, weights, reduce)
    return from_channels_last(merged, geom)


def unpatchify(patches, image_shape, step=1, *, dtype=None, **kwargs):
    patches = np.asarray(patches)
    res = unpatchify_float(patches, image_shape, step, **kwargs)
    return cast_result(res, accumulation_dtype(patches.dtype) if dtype is None else dtype)


def map_patches_float(
    image,
    func,
    patch_shape,
    step=1,
    *,
    args=(),
    edge="valid",
    channel_axis=None,
    pad_mode="reflect",
    pad_value=0,
):
    image = np.asarray(image)
    geom = geometry(
        image.shape, patch_shape, step, edge, channel_axis, centered=True, check_cover_gaps=False
    )
    img = pad_image(to_channels_last(image, geom), geom, pad_mode, pad_value)
    f = _py(func)
    res = np.empty(geom.grid_shape)
    for g in itertools.product(*[range(k) for k in geom.grid_shape]):
        origin = [geom.origins[d][i] for d, i in enumerate(g)]
        sl = tuple(slice(o, o + p) for o, p in zip(origin, geom.patch))
        patch = img[sl].copy()
        if geom.channel_axis is None:
            patch = patch[..., 0]
        res[g] = f(patch, *args)
    return res


def map_patches(image, func, patch_shape, step=1, *, dtype=None, **kwargs):
    image = np.asarray(image)
    res = map_patches_float(image, func, patch_shape, step, **kwargs)
    return cast_result(res, accumulation_dtype(image.dtype) if dtype is None else dtype)


# --------------------------------------------------------------------------
# PatchGrid
# --------------------------------------------------------------------------
class PatchGrid:
    """Reference for ``patchjit.PatchGrid``."""

    def __init__(
        self,
        image_shape,
        patch_shape,
        step=1,
        edge="cover",
        *,
        channel_axis=None,
        window=None,
        sigma=None,
        pad_mode="reflect",
        centered=False,
    ):
        self._geom = geometry(image_shape, patch_shape, step, edge, channel_axis, centered)
        self.grid_shape = self._geom.grid_shape
        self.n_patches = self._geom.n_patches
        self.origins = self._geom.origins
        self.pad_width = self._geom.pad_width
        self.patch_shape = self._geom.patch
        self.step = self._geom.step
        self._weights = window_weights(window, self._geom.patch, sigma)

    def coverage(self):
        geom = self._geom
        cov = np.zeros(geom.padded_shape)
        for origin in geom.origin_tuples():
            sl = tuple(slice(o, o + p) for o, p in zip(origin, geom.patch))
            cov[sl] += self._weights
        sl = tuple(slice(a, a + n) for (a, _), n in zip(geom.pad_width, geom.spatial_shape))
        return cov[sl]


def covering_mask(geom: Geometry, pixel):
    """Spatial mask (original frame) of the union of patches covering ``pixel``."""
    mask = np.zeros(geom.padded_shape, dtype=bool)
    pix = [q + a for q, (a, _) in zip(pixel, geom.pad_width)]
    for origin in geom.origin_tuples():
        if all(o <= q < o + p for o, q, p in zip(origin, pix, geom.patch)):
            sl = tuple(slice(o, o + p) for o, p in zip(origin, geom.patch))
            mask[sl] = True
    sl = tuple(slice(a, a + n) for (a, _), n in zip(geom.pad_width, geom.spatial_shape))
    return mask[sl]
