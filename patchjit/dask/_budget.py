"""Memory budgeting for chunk-wise processing: :func:`chunks_for_budget`."""

from __future__ import annotations

import math

import numpy as np

from .. import _engine as E

_SCRATCH_BYTES = getattr(E, "_WAVE_BYTES", 8 << 20)


def chunks_for_budget(shape, dtype, patch_shape, max_memory, *, workers=None, out_dtype=None):
    """Chunk shape that keeps chunk-wise processing within ``max_memory`` bytes.

    Counts, per task in flight: the chunk with its ``patch - 1`` halo on each side, in
    the image dtype (read, overlap-concatenated and made contiguous: 3 copies), the
    float accumulator and the output chunk; plus the band of rows that :func:`to_tiff`
    holds. Chunks are square-ish in the spatial axes and span all channels; they are
    never smaller than twice the patch (the halo would dominate the work).

    Parameters
    ----------
    shape : tuple of int
        Image shape (channels last when there are channels).
    dtype : numpy dtype
        Image dtype.
    patch_shape : tuple of int
        Patch size per spatial axis (the leading ``len(patch_shape)`` axes).
    max_memory : int
        Budget in bytes for the data (not counting the interpreter and libraries).
    workers : int, optional
        Tasks running at once (default ``os.cpu_count()``).
    out_dtype : numpy dtype, optional
        Output dtype (default float32, float64 for 32/64-bit inputs).

    Returns
    -------
    tuple of int
        A chunk shape for :meth:`dask.array.Array.rechunk` / :func:`from_tiff`.

    Raises
    ------
    ValueError
        The budget cannot hold even one band of minimal chunks.

    Examples
    --------
    >>> chunks_for_budget((20000, 20000), "float32", (39, 39), 256 * 2**20, workers=2)
    (512, 512)
    """
    import os

    k = len(patch_shape)
    workers = workers or os.cpu_count() or 1
    isz = np.dtype(dtype).itemsize
    acc = E.accumulation_dtype(dtype).itemsize
    osz = np.dtype(out_dtype).itemsize if out_dtype is not None else acc
    nc = math.prod(shape[k:])
    width = math.prod(shape[1:k]) if k > 1 else 1  # a to_tiff band spans the other axes
    per_px = (3 * isz + acc + osz) * nc
    lo = max(2 * max(patch_shape), 16)
    c = 1 << 16
    while c > lo:
        halo = [min(c, n) + 2 * (p - 1) for n, p in zip(shape, patch_shape)]
        task = math.prod(halo) * per_px + _SCRATCH_BYTES
        # the output band, and the input rows above, at and below it being read
        band = min(c, shape[0]) * width * nc * (osz + 2 * isz)
        if workers * task + band <= max_memory:
            break
        c //= 2
    c = max(c, lo)
    halo = [min(c, n) + 2 * (p - 1) for n, p in zip(shape, patch_shape)]
    need = workers * (math.prod(halo) * per_px + _SCRATCH_BYTES)
    need += min(c, shape[0]) * width * nc * (osz + 2 * isz)
    if need > max_memory:
        raise ValueError(
            f"max_memory={max_memory} bytes cannot hold {workers} chunks of {c} pixels per "
            f"axis plus one output band (about {need} bytes); raise it or use fewer workers"
        )
    c = 1 << (c.bit_length() - 1) if c & (c - 1) else c
    return tuple(min(c, n) for n in shape[:k]) + tuple(shape[k:])
