"""Memory budgeting for chunk-wise processing: :func:`chunks_for_budget`."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from numpy.typing import DTypeLike

from .. import _engine as E

_SCRATCH_BYTES = getattr(E, "_WAVE_BYTES", 8 << 20)


def chunks_for_budget(
    shape: Sequence[int], dtype: DTypeLike, patch_shape: int | Sequence[int],
    max_memory: int, *, workers: int | None = None, out_dtype: DTypeLike | None = None,
    read_unit: Sequence[int] | None = None,
) -> tuple[int, ...]:  # fmt: skip
    """Chunk shape that keeps chunk-wise processing within ``max_memory`` bytes.

    Counts, per task in flight: the chunk with its ``patch - 1`` halo on each side, in
    the image dtype (read, overlap-concatenated and made contiguous: 3 copies), the
    float accumulator and the output chunk; plus the band of rows that :func:`to_tiff`
    holds, and the input rows it is computed from (whole read units where the source
    must decode a tile or strip whole: ``read_unit``). Chunks are square-ish in the
    spatial axes and span all channels; they are never smaller than twice the patch (the
    halo would dominate the work).

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
    read_unit : tuple of int, optional
        The block the source decodes whole (a compressed TIFF's tile or strip, a zarr
        store's chunk; ``patchjit.dask._io.read_unit`` gives a TIFF's). None: any
        region reads on its own (uncompressed contiguous TIFF data through
        :func:`from_tiff`, a numpy array).

    Returns
    -------
    tuple of int
        A chunk shape for :meth:`dask.array.Array.rechunk` / :func:`from_tiff`.

    Raises
    ------
    ValueError
        The budget cannot hold even one band of minimal chunks, or the source's read
        unit (e.g. a compressed TIFF stored as one strip, decoded whole) does not fit.
    TypeError
        ``max_memory`` or ``workers`` is not an integer.

    Examples
    --------
    >>> chunks_for_budget((20000, 20000), "float32", (39, 39), 256 * 2**20, workers=2)
    (512, 512)
    """
    import os

    for name, v in (("max_memory", max_memory), ("workers", workers)):
        if v is None and name == "workers":
            continue
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
            raise TypeError(f"{name} must be an integer, got {v!r}")
        if v < 1:
            raise ValueError(f"{name} must be >= 1, got {v!r}")
    k = len(patch_shape)
    workers = workers or os.cpu_count() or 1
    isz = np.dtype(dtype).itemsize
    acc = E.accumulation_dtype(dtype).itemsize
    osz = np.dtype(out_dtype).itemsize if out_dtype is not None else acc
    nc = math.prod(shape[k:])
    width = math.prod(shape[1:k]) if k > 1 else 1  # a to_tiff band spans the other axes
    unit_rows = min(int(read_unit[0]), shape[0]) if read_unit is not None else 1
    per_px = (3 * isz + acc + osz) * nc
    lo = max(2 * max(patch_shape), 16)

    def need(c):
        halo = [min(c, n) + 2 * (p - 1) for n, p in zip(shape, patch_shape)]
        task = math.prod(halo) * per_px + _SCRATCH_BYTES
        # the output band, and the input rows (whole read units) above, at and below it
        rows = min(c, shape[0])
        band = rows * width * nc * osz + 2 * max(rows, unit_rows) * width * nc * isz
        return workers * task + band

    c = 1 << 16
    while c > lo and need(c) > max_memory:
        c //= 2
    c = max(c, lo)
    if need(c) > max_memory:
        unit = 2 * unit_rows * width * nc * isz
        if read_unit is not None and unit_rows > min(c, shape[0]) and unit > max_memory // 2:
            raise ValueError(
                f"max_memory={max_memory} bytes cannot hold the source's read unit: it "
                f"stores {tuple(read_unit)} pixels as one compressed block (a strip or "
                f"tile), decoded whole (about {unit} bytes for the rows being read); raise "
                f"max_memory, or rewrite the file tiled or uncompressed, e.g. "
                f"tifffile.imwrite(path, data, tile=(256, 256))"
            )
        raise ValueError(
            f"max_memory={max_memory} bytes cannot hold {workers} chunks of {c} pixels per "
            f"axis plus one output band (about {need(c)} bytes); raise it or use fewer workers"
        )
    c = 1 << (c.bit_length() - 1) if c & (c - 1) else c
    return tuple(min(c, n) for n in shape[:k]) + tuple(shape[k:])
