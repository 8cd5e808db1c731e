"""The call plan's lower layer: checks, layouts and the merge that every entry point shares.

``api`` (process_image, map_patches, unpatchify), ``batches`` (process_batches,
map_batches) and ``dask`` (their twins) all build their calls from these pieces and import
nothing from each other here: this module imports only the engine, the grid and the
validators below it.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Sequence

import numpy as np

from . import _engine as E
from . import _finalize_kernels as F
from . import _kernels as K
from . import _sigint
from ._grid import PatchGrid
from ._progress import Progress
from ._validate import (
    check_choice,
    per_axis,
    resolve_layout,
    resolve_threads,
)
from ._windows import check_representable

REDUCTIONS = ("mean", "sum", "max", "min")
PAD_MODES = ("reflect", "symmetric", "edge", "constant", "wrap", "linear_ramp",
             "maximum", "mean", "median", "minimum")  # fmt: skip
# A size for every spatial axis, or one per axis (the public signatures' hint).
Shape = int | Sequence[int]
Floats = float | Sequence[float]  # a number, or one per axis

_RED_CODES = {"mean": K.SUM, "sum": K.SUM, "max": K.MAX, "min": K.MIN}


def _output_dtype(dtype, default, out):
    if dtype is None:
        dtype = out.dtype if out is not None else default
    try:
        dtype = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"dtype {dtype!r} is not a numpy dtype") from None
    if dtype.kind not in "iuf":
        raise ValueError(f"dtype must be a floating-point or integer dtype, got {dtype}")
    if out is not None and out.dtype != dtype:
        raise ValueError(f"out has dtype {out.dtype} but the requested dtype is {dtype}")
    return dtype


def _check_out(out, shape, *inputs):
    """Check ``out`` against the result's shape and the ``inputs`` (the caller's own
    array as well as any converted copy: a float16 or big-endian input is converted
    first, and ``out`` may still share memory with the original)."""
    if out is None:
        return
    if not isinstance(out, np.ndarray):
        raise TypeError(f"out must be a numpy array, got {type(out).__name__}")
    if out.shape != tuple(shape):
        raise ValueError(f"out has shape {out.shape} but the result has shape {tuple(shape)}")
    if not out.flags.writeable:
        raise ValueError("out is read-only; pass a writeable array")
    for x in inputs:
        if isinstance(x, np.ndarray) and np.shares_memory(out, x):
            raise ValueError("out shares memory with the input; pass a separate array")


def _source4(img: np.ndarray, grid: PatchGrid, pad_mode, pad_value, margin=None) -> np.ndarray:
    """Read-only, C-contiguous 4-D ``(D, H, W, C)`` view of the image.

    A padded copy for edge='pad'. Any other layout (F-ordered, strided, channels not
    last) is copied once into C order: patch rows are then contiguous in memory (an
    F-ordered image otherwise runs about 5x slower) and the kernels compile for one
    layout only. ``margin`` (per spatial axis) pads that much more on each side, for
    any edge (see :func:`model_frame`).
    """
    v = img if grid.channel_axis is None else np.moveaxis(img, grid.channel_axis, -1)
    widths = [(b + m, a + m) for (b, a), m in zip(grid.pad_width, margin or [0] * grid.ndim)]
    if any(b or a for b, a in widths):
        widths += [(0, 0)] if grid.channel_axis is not None else []
        kw = {"constant_values": pad_value} if pad_mode == "constant" else {}
        v = np.pad(v, widths, mode=pad_mode, **kw)
    v = np.ascontiguousarray(v)
    if grid.channel_axis is None:
        v = v[..., None]
    v = v.reshape((1,) * (3 - grid.ndim) + v.shape)
    v = v.view()
    v.flags.writeable = False
    return v


def _check_pad(grid: PatchGrid, img_dtype, pad_mode, pad_value, padded=False):
    """Check ``pad_mode`` and ``pad_value`` (``padded``: the image is padded whatever
    the edge, for a margin)."""
    check_choice(pad_mode, "pad_mode", PAD_MODES)
    if (grid.edge != "pad" and not padded) or pad_mode != "constant":
        return
    if not isinstance(pad_value, (int, float, np.integer, np.floating, bool)):
        raise TypeError(f"pad_value must be a number, got {pad_value!r}")
    if img_dtype.kind in "iub":
        info = np.iinfo(img_dtype) if img_dtype.kind != "b" else None
        if info is None:
            ok = pad_value in (0, 1)
        else:
            ok = float(pad_value).is_integer() and info.min <= pad_value <= info.max
        if not ok:
            rng = "0 or 1" if info is None else f"an integer in [{info.min}, {info.max}]"
            raise ValueError(
                f"pad_value {pad_value!r} is not representable in the image dtype "
                f"{img_dtype}; use {rng}"
            )


def _check_window(grid: PatchGrid, acc_dtype) -> None:
    """Refuse window weights that ``acc_dtype`` accumulation cannot represent."""
    sigma = grid.sigma if isinstance(grid.window, str) and grid.window == "gaussian" else None
    check_representable(grid.window_array, acc_dtype, grid.window, sigma)


def tile_note(margin, patch_shape=None) -> str:
    """What a grid message's "patch_shape" is when the call has a margin: the output
    tile (empty without a margin)."""
    if not any(margin):
        return ""
    m = margin[0] if len(set(margin)) == 1 else tuple(margin)
    given = f"patch_shape {tuple(patch_shape)}" if patch_shape is not None else "patch_shape"
    tile = (
        "" if patch_shape is None else f" = {tuple(a - 2 * b for a, b in zip(patch_shape, margin))}"
    )
    return f" (with margin={m}, the output tile is {given} - 2 * margin{tile})"


def _check_merge_geometry(grid: PatchGrid, reduce, grid_in=None, margin=()):
    """The reduction, checked against the window (``grid``, the result's) and the
    coverage of the output tiles (``grid_in``, on the image; messages name the
    ``patch_shape`` given where the call has a ``margin``)."""
    red = check_choice(reduce, "reduce", REDUCTIONS)
    if red in ("max", "min") and grid.window is not None:
        raise ValueError(
            f"window={grid.window!r} cannot be combined with reduce={red!r}; windows "
            f"weight the 'mean' and 'sum' reductions only"
        )
    tiles = grid if grid_in is None else grid_in
    if tiles.edge != "valid":
        gaps = [a for a, (p, s) in enumerate(zip(tiles.patch_shape, tiles.step)) if s > p]
        if gaps:
            given = tuple(t + 2 * m for t, m in zip(tiles.patch_shape, margin))
            raise ValueError(
                f"step {tiles.step} is larger than patch_shape {tiles.patch_shape} on axis "
                f"{gaps[0]}, so edge={tiles.edge!r} cannot cover every pixel; use "
                f"edge='valid' (uncovered pixels become NaN) or a step <= the patch size"
                f"{tile_note(margin, given)}"
            )
    return red


@dataclasses.dataclass(frozen=True)
class Plan:
    """One call, normalised once by :func:`make_plan`: what every entry point runs.

    ``grid`` is the result's frame: patch origins in the result (its padded frame),
    the window, coverage. ``grid_in`` is the grid of input patches on the image; it is
    ``grid`` itself unless the call has a margin or a scale (see :func:`model_frame`).
    ``red`` is None for a one-value-per-patch call (``map_patches``, ``map_batches``),
    whose ``result_shape`` is the grid's shape. ``own`` holds what the entry point's
    own checks returned (its resolved callback, its batch size).
    """

    grid: PatchGrid
    grid_in: PatchGrid
    margin: tuple
    red: str | None
    threads: int | None
    acc_dtype: np.dtype
    out_dtype: np.dtype
    result_shape: tuple
    nco: int
    keep_c: bool
    pad_mode: str | None
    pad_value: float
    own: object = None

    @property
    def in_patch(self) -> tuple:
        """The input patch: the output tile grown by the margin."""
        return tuple(t + 2 * m for t, m in zip(self.grid_in.patch_shape, self.margin))

    @property
    def scales(self) -> tuple:
        """Output pixels per input pixel, per spatial axis (exact fractions)."""
        from fractions import Fraction

        sizes = zip(self.grid.spatial_shape, self.grid_in.spatial_shape)
        return tuple(Fraction(o, i) for o, i in sizes)

    @property
    def in_patch3(self) -> tuple:
        return E.canonical3(self.in_patch, 1)

    @property
    def out_origins3(self):
        """Output patch origins in the result's padded 3-D frame."""
        return self.grid.origins3

    @property
    def out_geometry(self):
        """``(out_origins3, out_patch3)`` when it differs from the input's, else None."""
        return None if self.grid_in is self.grid else (self.grid.origins3, self.grid.patch3)

    @property
    def init(self) -> float:
        """The reduction's identity, the accumulator's initial value."""
        return 0.0 if self.red in ("mean", "sum") else (-np.inf if self.red == "max" else np.inf)

    @property
    def code(self) -> int:
        return _RED_CODES[self.red]

    def source(self, img: np.ndarray) -> np.ndarray:
        """The engine's read-only ``(D, H, W, C)`` source: ``img`` padded for the edge
        and the margin, channels last."""
        return _source4(img, self.grid_in, self.pad_mode, self.pad_value, self.margin)

    def accumulator(self, spatial3=None) -> np.ndarray:
        """A ``(D, H, W * nco)`` accumulator holding the identity (default: the whole
        result; ``spatial3`` for a band of it)."""
        d, h, w = self.grid.spatial3 if spatial3 is None else spatial3
        return np.full((d, h, w * self.nco), self.init, dtype=self.acc_dtype)

    def weights3(self) -> np.ndarray | None:
        return self.grid.weights3(self.nco, self.acc_dtype)

    def views(self, out_channels=None):
        """The numba callback's patch and output views (``K.VIEWS``)."""
        has_c = self.grid.channel_axis is not None
        take, _ = K.VIEWS[(self.grid.ndim, has_c)]
        _, oview = K.VIEWS[(self.grid.ndim, has_c or out_channels is not None)]
        return take, oview

    def layout(self, block: np.ndarray) -> np.ndarray:
        """Accumulator rows ``(*spatial, nco)`` in the result's layout."""
        if not self.keep_c:
            return block[..., 0]
        if self.grid.channel_axis is not None:
            return np.moveaxis(block, -1, self.grid.channel_axis)
        return block

    def serial(self) -> bool:
        """Whether this call's work is small enough for the serial kernels."""
        nc = max(self.grid_in.n_channels, self.nco)
        return E.serial_wanted(self.grid.n_patches * int(np.prod(self.in_patch3)) * nc)


def make_plan(image_shape, image_dtype, params: dict, *, own=None, own_first=False,
              inputs=(), grid=None, lazy=False) -> Plan:  # fmt: skip
    """Check and normalise one call: the single preamble of every entry point.

    ``params`` holds the entry point's own arguments by name (its ``locals()``):
    ``patch_shape``, ``step``, ``overlap``, ``edge``, ``channel_axis``, ``threads``,
    ``dtype`` and, where the function has them, ``window``, ``sigma``, ``reduce`` (its
    absence marks a one-value-per-patch call on the centred grid), ``pad_mode``,
    ``pad_value``, ``out``, ``out_channels``, ``margin``, ``scale``. ``grid`` is a
    grid already built (``unpatchify`` reads it from the patches). ``own()`` runs the
    entry point's own checks, before the thread count when ``own_first``; its result
    is ``Plan.own``. ``inputs``: the arrays ``out`` must not share memory with.
    ``lazy``: a dask twin (threads default to 1).

    Checks run in this order (the order of the errors a call can raise): geometry
    (grid, margin, scale), ``reduce`` and the window's geometry, ``pad_mode`` and
    ``pad_value``, the entry point's own checks and ``threads``, ``out_channels``,
    the window's representability in the accumulation dtype, ``dtype``, ``out``.
    """
    _sigint.install()  # a Ctrl-C while numba compiles waits for the compile's end
    get = params.get
    red = get("reduce")
    merging = red is not None
    margin = get("margin", 0)
    if grid is None:
        grid_in, grid, margin = model_frame(
            image_shape, get("patch_shape"), get("step"), get("edge"), get("overlap"),
            get("channel_axis"), get("window"), get("sigma"), margin, get("scale", 1),
            centered=not merging,
        )  # fmt: skip
    else:
        grid_in, margin = grid, (0,) * grid.ndim
    if merging:
        red = _check_merge_geometry(grid, red, grid_in, margin)
    pad_mode, pad_value = get("pad_mode"), get("pad_value", 0)
    if pad_mode is not None:
        _check_pad(grid, np.dtype(image_dtype), pad_mode, pad_value, padded=any(margin))
    mine = own() if own is not None and own_first else None
    threads = get("threads")
    threads = resolve_threads(1 if lazy and threads is None else threads)
    if own is not None and not own_first:
        mine = own()
    if merging:
        result_shape, nco, keep_c = _out_layout(grid.image_shape, grid, get("out_channels"))
    else:
        result_shape, nco, keep_c = grid.grid_shape, 1, False
    acc_dtype = E.accumulation_dtype(image_dtype)
    if merging:
        _check_window(grid, acc_dtype)
    out = get("out")
    out_dtype = _output_dtype(get("dtype"), acc_dtype, out)
    _check_out(out, result_shape, *inputs)
    return Plan(grid, grid_in, tuple(margin), red, threads, acc_dtype, out_dtype,
                tuple(result_shape), nco, keep_c, pad_mode, pad_value, mine)  # fmt: skip


def values_dtype(plan: Plan) -> np.dtype:
    """Storage of one value per patch: at least as precise as the output dtype holds
    them (float64 for float64 and integer outputs, no rounding through float32)."""
    out = plan.out_dtype
    return np.dtype(np.float64) if out.kind in "iu" else np.result_type(plan.acc_dtype, out)


def run_process(plan: Plan, src, take, oview, func, args, progress) -> np.ndarray:
    """Accumulate a numba callback over the plan's grid and normalise; return the float
    result in the result's layout (``process_image``, ``unpatchify``)."""
    acc = plan.accumulator()
    serial = plan.serial()
    E.run_accumulate(
        src, take, oview, func, args, plan.grid_in.origins3, plan.in_patch3,
        plan.grid_in.n_channels, plan.weights3(), plan.code, acc, plan.grid.region3,
        progress, nc_out=plan.nco, serial=serial, out_geometry=plan.out_geometry,
    )  # fmt: skip
    _normalise(acc, plan.grid, plan.nco, plan.red, serial)
    return plan.layout(acc.reshape((*plan.grid.spatial_shape, plan.nco)))


def _normalise(acc, grid: PatchGrid, nco: int, red: str, serial: bool, rows=None) -> None:
    """Divide ``acc`` (``(D, H, W * nco)``) by the coverage in place (``red="mean"``),
    and mark pixels no patch covers NaN; the coverage in closed form, never a
    full-size map. ``rows = (axis, start)``: ``acc`` holds only the rows from ``start``
    on along canonical ``axis`` (a band of :func:`finalize` blocks)."""
    axis, start = (0, 0) if rows is None else rows
    if grid.window_array is not None and grid.window_vectors is None:
        ind, vecs, pads = _window_profiles(grid)
        pads = tuple(b + (start if a == axis else 0) for a, b in enumerate(pads))
        fin = F.finalize_window_serial if serial else F.finalize_window
        fin(acc, ind[0], ind[1], vecs, pads, nco, red == "mean")
    else:
        vecs = E.canonical3([grid.axis_coverage(a) for a in range(grid.ndim)], np.ones(1))
        vecs = tuple(
            v[start : start + acc.shape[a]] if a == axis else v for a, v in enumerate(vecs)
        )
        fin = F.finalize_serial if serial else F.finalize
        fin(acc, *vecs, nco, red == "mean")


def _window_profiles(grid: PatchGrid):
    """Inputs of ``finalize_window`` for a non-separable window (all O(patch x axis)).

    Origin indicators on the leading axes (padded frame), and per leading window
    position the window's last-axis profile convolved with the last axis's origin
    indicator: summed over the positions whose patch rows cover an output row, they
    give that row's coverage (as :meth:`PatchGrid.coverage` does for the whole map).
    """
    padded = E.canonical3(grid.padded_shape, 1)
    ind = []
    for n, o in zip(padded, grid.origins3):
        v = np.zeros(n)
        v[o] = 1.0
        ind.append(v)
    w = grid.window_array.reshape(grid.patch3)
    vecs = np.empty((w.shape[0], w.shape[1], padded[2]))
    for a in range(w.shape[0]):
        for b in range(w.shape[1]):
            vecs[a, b] = np.convolve(ind[2], w[a, b])[: padded[2]]
    return ind, vecs, grid.region3


@contextlib.contextmanager
def _running(threads, progress, total):
    """Apply the thread count and show an optional tqdm bar for one call."""
    bar = Progress(total) if progress else None
    try:
        with E.thread_limit(threads):
            yield bar
    finally:
        if bar is not None:
            bar.close()


def _result_shape(shape, grid: PatchGrid, out_channels):
    """The shape of ``process_image``'s result, checking ``out_channels``."""
    if out_channels is None:
        return tuple(shape)
    if isinstance(out_channels, bool) or not isinstance(out_channels, (int, np.integer)):
        raise TypeError(f"out_channels must be an int, got {out_channels!r}")
    if out_channels < 1:
        raise ValueError(f"out_channels must be >= 1, got {out_channels}")
    if grid.channel_axis is None:
        return (*shape, int(out_channels))
    shape = list(shape)
    shape[grid.channel_axis] = int(out_channels)
    return tuple(shape)


def _out_layout(shape, grid: PatchGrid, out_channels):
    """``(result shape, output channel count, channels axis kept)`` for ``out_channels``
    (the result's shape follows :func:`patchjit.process_image`'s rule)."""
    result_shape = _result_shape(shape, grid, out_channels)
    if out_channels is None:
        return result_shape, grid.n_channels, grid.channel_axis is not None
    return result_shape, int(out_channels), True


# --- models whose output differs from their input: margin and scale -------------------


def _scales(scale, k: int) -> tuple:
    """``scale`` (a number or one per spatial axis) as exact fractions: integers and
    1/integer only."""
    from fractions import Fraction

    values = scale if isinstance(scale, (tuple, list, np.ndarray)) else (scale,) * k
    if len(values) != k:
        raise ValueError(f"scale {scale!r} must be a number or one per spatial axis ({k})")
    out = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
            raise TypeError(f"scale must be a number or a tuple of numbers, got {scale!r}")
        f = Fraction(float(v)).limit_denominator(1 << 20)
        if f <= 0 or (f.numerator != 1 and f.denominator != 1):
            raise ValueError(
                f"scale {v!r} is not supported; use an integer (2, 4) or 1/integer (0.5, 0.25)"
            )
        out.append(f)
    return tuple(out)


def model_frame(image_shape, patch_shape, step, edge, overlap, channel_axis, window, sigma,
                margin=0, scale=1, centered=False):  # fmt: skip
    """The input and output grids of a call with ``margin`` and ``scale``.

    Returns ``(grid_in, grid_out, margin)``. ``grid_in`` is the grid of output tiles
    (``patch - 2 * margin``) on the image, by the usual ``edge``/``step``/``overlap``
    rules; each input patch is its tile grown by ``margin`` (read from the image padded
    by ``margin`` more, so the input patch's origin in that source equals the tile's
    origin in ``grid_in``'s padded frame). ``grid_out`` is the same grid in the
    result's frame (every size times ``scale``), holding the window. Without a margin
    and a scale both are one grid, the plain call's.
    """
    k, _ = resolve_layout(len(image_shape), patch_shape, channel_axis, image_shape)
    m = per_axis(margin, k, "margin", minimum=0)
    s = _scales(scale, k)
    if not any(m) and all(f == 1 for f in s):
        grid = PatchGrid(
            image_shape, patch_shape, step, edge, overlap=overlap, channel_axis=channel_axis,
            window=window, sigma=sigma, centered=centered,
        )  # fmt: skip
        return grid, grid, m
    p = per_axis(patch_shape, k, "patch_shape")
    tile = tuple(a - 2 * b for a, b in zip(p, m))
    if any(t < 1 for t in tile):
        raise ValueError(
            f"margin {m} leaves no output of patch_shape {p}: the output tile is "
            f"patch - 2 * margin = {tile}; use a margin below {tuple((a - 1) // 2 for a in p)}"
        )
    try:
        grid_in = PatchGrid(
            image_shape, tile, step, edge, overlap=overlap, channel_axis=channel_axis,
            centered=centered,
        )  # fmt: skip
    except ValueError as exc:  # the grid's messages name the tile: say where it comes from
        raise ValueError(f"{exc}{tile_note(m, p)}") from None
    bad = []  # the scaled sizes must be whole numbers
    for a, f in enumerate(s):
        sizes = (grid_in.spatial_shape[a], tile[a], grid_in.step[a])
        for what, n in zip(("image size", "tile", "step"), sizes):
            if (n * f).denominator != 1:
                bad.append((a, f"{what} {n}", f))
    if bad:
        a, what, f = bad[0]
        d = f.denominator
        raise ValueError(
            f"scale {float(f)} on axis {a} maps {what} to {float(f * int(what.split()[-1]))} "
            f"output pixels; patch origins must map to whole output pixels: use an image "
            f"size, a tile (patch - 2 * margin) and a step that are multiples of {d}"
        )
    shape = list(image_shape)
    spatial = [i for i in range(len(image_shape)) if i != grid_in.channel_axis]
    for a, i in enumerate(spatial):
        shape[i] = int(image_shape[i] * s[a])
    grid_out = PatchGrid(
        shape, tuple(int(t * f) for t, f in zip(tile, s)),
        tuple(int(st * f) for st, f in zip(grid_in.step, s)), edge,
        channel_axis=grid_in.channel_axis, window=window, sigma=sigma, centered=centered,
    )  # fmt: skip
    for a, f in enumerate(s):
        want = grid_in.origins[a] * f.numerator
        if f.denominator != 1:
            if np.any(grid_in.origins[a] % f.denominator):
                raise ValueError(
                    f"scale {float(f)} on axis {a}: the patch origins "
                    f"{grid_in.origins[a][:6].tolist()}... are not multiples of "
                    f"{f.denominator}; use a step and an image size that are"
                )
            want = grid_in.origins[a] // f.denominator
        if not np.array_equal(want, grid_out.origins[a]):  # pragma: no cover - guard
            raise ValueError(f"scale {float(f)} on axis {a} does not map the patch grid")
    return grid_in, grid_out, m


# --- several outputs: one plan per output, read from its shape ----------------------


def resampled_window(window, shape: tuple):
    """A window array resampled to ``shape`` by nearest-exact indexing (each output
    pixel takes the weight at ``floor((i + 0.5) * n_in / n_out)``), for an output at
    another scale; names and None pass through."""
    if window is None or isinstance(window, str):
        return window
    arr = np.asarray(window)
    if arr.shape == tuple(shape) or arr.ndim != len(shape):
        return window
    idx = [np.minimum(((np.arange(m) + 0.5) * n / m).astype(np.int64), n - 1)
           for n, m in zip(arr.shape, shape)]  # fmt: skip
    return arr[np.ix_(*idx)]


def fitting_options(plan: Plan, spatial) -> str:
    """What ``margin=``/``scale=`` would fit an output patch of ``spatial`` pixels (for
    the error naming a wrong output shape); empty when none does."""
    from fractions import Fraction

    fits = []
    p = plan.in_patch
    ms = [(a - b) // 2 for a, b in zip(p, spatial)]
    if all(m >= 0 and a - 2 * m == b for m, a, b in zip(ms, p, spatial)) and any(ms):
        fits.append(f"margin={ms[0] if len(set(ms)) == 1 else tuple(ms)} (with scale=1)")
    tile = plan.grid_in.patch_shape
    fs = [Fraction(int(b), t) for b, t in zip(spatial, tile)]
    if all(f > 0 and (f.numerator == 1 or f.denominator == 1) for f in fs):
        vals = [int(f) if f.denominator == 1 else float(f) for f in fs]
        if any(v != 1 for v in vals):
            s = vals[0] if len(set(vals)) == 1 else tuple(vals)
            kept = f" (with margin={plan.margin})" if any(plan.margin) else ""
            fits.append(f"scale={s}{kept}")
    return f"; {' or '.join(fits)} would fit it" if fits else ""


def output_plan(plan: Plan, params: dict, shape: tuple, name) -> Plan:
    """The plan of one of several outputs, read from its batch shape ``(n, *spatial[,
    K])`` as MONAI does: its scale from ``spatial`` over the output tile, its channels
    from a last axis (none: no channel axis in that result)."""
    from fractions import Fraction

    grid_in, k = plan.grid_in, plan.grid.ndim
    tile = grid_in.patch_shape
    if len(shape) not in (k + 1, k + 2):
        raise ValueError(
            f"output {name!r} has shape {shape}; expected (n, *spatial) or (n, *spatial, K) "
            f"with {k} spatial axes"
        )
    spatial = tuple(shape[1 : k + 1])
    fs = [Fraction(b, t) for b, t in zip(spatial, tile)]
    if not all(f > 0 and (f.numerator == 1 or f.denominator == 1) for f in fs):
        raise ValueError(
            f"output {name!r} has spatial shape {spatial} for output tiles {tile} "
            f"(patch - 2 * margin): each size must be the tile's times an integer or "
            f"1/integer scale{fitting_options(plan, spatial)}"
        )
    get = params.get
    scale = tuple(int(f) if f.denominator == 1 else float(f) for f in fs)
    given = get("scale", 1)
    if not (isinstance(given, (int, float)) and given == 1):
        want = _scales(given, k)
        if tuple(want) != tuple(fs):
            raise ValueError(
                f"output {name!r} has spatial shape {spatial}, scale {scale} for tiles "
                f"{tile}, but scale={given!r} was given; with several outputs each output's "
                f"scale is read from its shape: drop scale="
            )
    out_patch = tuple(int(t * f) for t, f in zip(tile, fs))
    _, grid, _ = model_frame(
        grid_in.image_shape, get("patch_shape"), get("step"), get("edge"), get("overlap"),
        get("channel_axis"), resampled_window(get("window"), out_patch), get("sigma"),
        get("margin", 0), scale,
    )  # fmt: skip
    keep_c = len(shape) == k + 2
    nco = int(shape[-1]) if keep_c else 1
    result_shape = list(grid.spatial_shape)
    if keep_c:
        axis = grid.channel_axis if grid.channel_axis is not None else len(result_shape)
        result_shape.insert(axis, nco)
    _check_window(grid, plan.acc_dtype)
    return dataclasses.replace(
        plan, grid=grid, nco=nco, keep_c=keep_c, result_shape=tuple(result_shape)
    )
