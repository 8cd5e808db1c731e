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
    if pad_mode == "median":  # numpy's rule, one axis at a time on the padded-so-far array
        for a, (b, after) in enumerate(pad_width):
            if b or after:
                m = da.median(x, axis=a, keepdims=True)
                if x.dtype.kind in "iub":
                    m = da.round(m)
                m = m.astype(x.dtype)
                parts = [da.repeat(m, b, axis=a), x, da.repeat(m, after, axis=a)]
                x = da.concatenate([v for v in parts if v.shape[a]], axis=a)
        return x
    widths = [*pad_width] + [(0, 0)] * (x.ndim - len(pad_width))
    kw = {"constant_values": pad_value} if pad_mode == "constant" else {}
    return da.pad(x, widths, mode=pad_mode, **kw)


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
