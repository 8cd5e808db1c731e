"""``edge="pad"`` on dask arrays: the padding :func:`numpy.pad` gives, for any width.

The in-memory functions pad with :func:`numpy.pad`, so that is the definition here too.
:func:`dask.array.pad` differs from it where the padding is wider than the axis
(``reflect``, ``symmetric`` and ``wrap`` then return other values or another shape) and
lacks ``median``. So the modes that copy values take numpy's own answer for the
indices, ``numpy.pad(arange(n), widths, mode)``, and assemble the axis from slices of
the array (forward, reversed or repeated runs of that index vector); ``median`` follows
numpy's rule axis by axis; ``constant`` and the other statistics (whose values do not
depend on the width) go through :func:`dask.array.pad`.
"""

from __future__ import annotations

import math

import dask.array as da
import numpy as np

# Modes whose padded values are copies of the array's own: an index map is exact.
_COPY_MODES = ("reflect", "symmetric", "wrap", "edge")


def pad(x, pad_width, pad_mode, pad_value):
    """Pad the leading ``len(pad_width)`` axes of ``x`` as :func:`numpy.pad` does."""
    if not any(b or a for b, a in pad_width):
        return x
    if pad_mode in _COPY_MODES:
        for a, (b, after) in enumerate(pad_width):
            if b or after:
                x = _pad_copies(x, a, b, after, pad_mode)
        return x
    if pad_mode == "constant":
        widths = [*pad_width] + [(0, 0)] * (x.ndim - len(pad_width))
        return da.pad(x, widths, mode="constant", constant_values=pad_value)
    for a, (b, after) in enumerate(pad_width):  # numpy's order: axis by axis
        if b or after:
            x = (_pad_ramp if pad_mode == "linear_ramp" else _pad_stat)(x, a, b, after, pad_mode)
    return x


def _pad_copies(x, axis, before, after, mode):
    """Axis ``axis`` of ``x`` padded by index copies, exactly as :func:`numpy.pad`."""
    idx = np.pad(np.arange(x.shape[axis]), (before, after), mode=mode)
    parts = []
    for lo, hi, step in _runs(idx):
        sel = [slice(None)] * x.ndim
        if step == 1:
            sel[axis] = slice(int(idx[lo]), int(idx[hi - 1]) + 1)
            parts.append(x[tuple(sel)])
        elif step == -1:
            sel[axis] = slice(int(idx[hi - 1]), int(idx[lo]) + 1)
            parts.append(da.flip(x[tuple(sel)], axis))
        else:  # one index repeated
            sel[axis] = slice(int(idx[lo]), int(idx[lo]) + 1)
            parts.append(da.repeat(x[tuple(sel)], hi - lo, axis=axis))
    return da.concatenate(parts, axis=axis)


def _runs(idx):
    """Split ``idx`` into maximal runs ``(lo, hi, step)`` of constant step -1, 0 or 1."""
    runs, lo, n = [], 0, len(idx)
    while lo < n:
        hi, step = lo + 1, 1
        if hi < n and abs(int(idx[hi]) - int(idx[lo])) <= 1:
            step = int(idx[hi]) - int(idx[lo])
            while hi < n and int(idx[hi]) - int(idx[hi - 1]) == step:
                hi += 1
        runs.append((lo, hi, step))
        lo = hi
    return runs


_STATS = {"maximum": np.max, "minimum": np.min, "mean": np.mean, "median": np.median}


def _pad_stat(x, axis, before, after, mode):
    """Axis ``axis`` padded with a statistic of it, as :func:`numpy.pad` computes it.

    numpy takes the statistic over the original extent of the axis in the array padded
    so far (earlier axes padded, later ones not: that is ``x`` here), rounds it for
    integer dtypes and casts it. Each block holds the whole axis; a block whose later
    axes are all of length 1 where the array's are not gets a zero column on its last
    axis while it reduces, so that numpy adds in the order it uses on the whole array
    (row by row, not pairwise) and ``mean`` agrees to the last bit.
    """
    stat, dtype = _STATS[mode], x.dtype
    x1 = x.rechunk({axis: -1})
    widen = math.prod(x.shape[axis + 1 :]) > 1

    def block(v):
        if widen and math.prod(v.shape[axis + 1 :]) == 1 and v.size:
            v = np.concatenate([v, np.zeros_like(v[..., :1])], axis=-1)
            s = stat(v, axis=axis, keepdims=True)[..., :1]
        else:
            s = stat(v, axis=axis, keepdims=True)
        if np.issubdtype(dtype, np.integer):
            s = np.round(s)
        return s.astype(dtype)

    chunks = tuple((1,) if i == axis else c for i, c in enumerate(x1.chunks))
    m = x1.map_blocks(block, chunks=chunks, dtype=dtype)
    parts = [da.repeat(m, before, axis=axis), x, da.repeat(m, after, axis=axis)]
    return da.concatenate([v for v in parts if v.shape[axis]], axis=axis)


def _pad_ramp(x, axis, before, after, mode):
    """Axis ``axis`` padded with linear ramps from 0 to its edges, as :func:`numpy.pad`.

    numpy calls :func:`numpy.linspace` once on the whole edge, which takes another
    formula (divide, then multiply) when any edge value equals the end value 0. The
    ramp is built block by block with the formula numpy picks for the whole edge: a
    block without a zero where the edge has one gets a zero appended on the channel
    axis (never the padded one) for the call.
    """
    n, dtype = x.shape[axis], x.dtype

    def ramp(width, end):
        sel = [slice(None)] * x.ndim
        sel[axis] = slice(0, 1) if end == 0 else slice(n - 1, n)
        e = x[tuple(sel)]

        def block(edge, any_zero):
            dummy = bool(any_zero) and edge.size and not (edge == 0).any()
            if dummy:
                edge = np.concatenate([edge, np.zeros_like(edge[..., :1])], axis=-1)
            # numpy's end value is an int64 scalar: float32 ramps are computed in float64
            r = np.linspace(np.int64(0), edge.squeeze(axis), num=width, endpoint=False,
                            dtype=dtype, axis=axis)  # fmt: skip
            if dummy:
                r = r[..., :-1]
            return r if end == 0 else np.flip(r, axis)

        chunks = tuple((width,) if i == axis else c for i, c in enumerate(e.chunks))
        return e.map_blocks(block, (e == 0).any(), chunks=chunks, dtype=dtype)

    parts = [ramp(before, 0) if before else None, x, ramp(after, 1) if after else None]
    return da.concatenate([v for v in parts if v is not None], axis=axis)
