"""TIFF and zarr files larger than memory: :func:`from_tiff`, :func:`to_tiff` and
:func:`process_file` (the command line's ``--max-memory``)."""

from __future__ import annotations

import itertools

import dask.array as da
import numpy as np

from ._budget import chunks_for_budget
from ._graph import process_image


def from_tiff(path, chunks=None, *, series=0, level=0):
    """Open a TIFF lazily as a dask array through tifffile's zarr store.

    Nothing is read until the array is computed; each task reads only the tiles (or
    strips) its chunk needs. Equivalent to
    ``da.from_zarr(zarr.open(tifffile.imread(path, aszarr=True), mode="r"))``.

    Parameters
    ----------
    path : str or os.PathLike
        TIFF file (tiled or striped, any compression tifffile reads).
    chunks : int, tuple or "auto", optional
        dask chunks; default the file's tiles (or strips). Use :func:`chunks_for_budget`
        to fit a memory budget.
    series, level : int
        tifffile series and pyramid level.

    Returns
    -------
    dask.array.Array

    Examples
    --------
    >>> import numpy as np, tifffile, tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "image.tif")
    >>> tifffile.imwrite(path, np.arange(64 * 48, dtype=np.uint16).reshape(64, 48), tile=(16, 16))
    >>> from_tiff(path)
    dask.array<..., shape=(64, 48), dtype=uint16, chunksize=(16, 16), chunktype=numpy.ndarray>
    """
    import tifffile
    import zarr

    store = tifffile.imread(path, aszarr=True, series=series, level=level)
    z = zarr.open(store, mode="r")
    return da.from_zarr(z, chunks=z.chunks if chunks is None else chunks)


def to_tiff(arr, path, *, tile=(256, 256), compression=None, scheduler=None, **kwargs):
    """Compute a 2-D (optionally channels-last) dask array into a tiled TIFF, band by band.

    tifffile writes tiles sequentially, so the array is computed one band of rows at a
    time (the band's height is the array's chunk height, rounded to a whole number of
    tiles) and the band's tiles are handed to :func:`tifffile.imwrite` in order. Peak
    memory: one band plus what dask needs to compute it.

    Parameters
    ----------
    arr : dask.array.Array
        Shape ``(H, W)`` or ``(H, W, C)``.
    path : str or os.PathLike
    tile : tuple of int, default (256, 256)
        TIFF tile shape, multiples of 16.
    compression : str, optional
        Passed to :func:`tifffile.imwrite` (e.g. ``"zlib"``; needs imagecodecs for most).
    scheduler : str or Client, optional
        dask scheduler for each band (default: dask's current one).
    **kwargs
        More :func:`tifffile.imwrite` arguments (``photometric``, ``metadata``...).

    Examples
    --------
    >>> import numpy as np, dask.array as da, tifffile, tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "out.tif")
    >>> x = da.from_array(np.arange(100 * 70, dtype=np.float32).reshape(100, 70), chunks=40)
    >>> to_tiff(x, path, tile=(32, 32))
    >>> bool(np.array_equal(tifffile.imread(path), x.compute()))
    True
    """
    import tifffile

    if arr.ndim not in (2, 3):
        raise ValueError(f"to_tiff writes (H, W) or (H, W, C) arrays, got shape {arr.shape}")
    th, tw = tile
    band = max(th, max(arr.chunks[0]) // th * th)

    # Column groups of whole tiles, cut near the chunk borders: each group is (mostly) a
    # view of one computed chunk, so a band is never concatenated into a second copy.
    cuts = {0, arr.shape[1]} | {
        min(round(b / tw) * tw, arr.shape[1]) for b in np.cumsum(arr.chunks[1])
    }
    cuts = sorted(cuts)

    def tiles():
        import dask

        for r0 in range(0, arr.shape[0], band):
            rows = arr[r0 : r0 + band]
            groups = dask.compute(
                *[rows[:, a:b] for a, b in itertools.pairwise(cuts) if b > a],
                scheduler=scheduler,
            )
            starts = [a for a, b in itertools.pairwise(cuts) if b > a]
            for t0 in range(0, rows.shape[0], th):
                for c0 in range(0, arr.shape[1], tw):
                    g = int(np.searchsorted(starts, c0, side="right")) - 1
                    t = groups[g][t0 : t0 + th, c0 - starts[g] : c0 - starts[g] + tw]
                    if t.shape[:2] != (th, tw):  # edge tiles are written full size
                        full = np.zeros((th, tw, *t.shape[2:]), dtype=t.dtype)
                        full[: t.shape[0], : t.shape[1]] = t
                        t = full
                    yield t
            del groups

    tifffile.imwrite(
        path, tiles(), shape=arr.shape, dtype=arr.dtype, tile=tile, compression=compression,
        **kwargs,
    )  # fmt: skip


def process_file(
    src_path, dst_path, func, patch_shape, step=None, *, max_memory, workers=None,
    tile=(256, 256), **kwargs,
):  # fmt: skip
    """Process a TIFF or zarr image chunk-wise within a memory budget; write TIFF or zarr.

    The entry point for the command line's ``--max-memory``: reads ``src_path`` lazily
    (:func:`from_tiff`, or :func:`dask.array.from_zarr` for a ``.zarr`` path), picks
    chunks with :func:`chunks_for_budget`, runs :func:`process_image` on dask's threaded
    scheduler with ``workers`` threads, and writes ``dst_path`` chunk by chunk
    (:func:`to_tiff` for ``.tif``/``.tiff``, :meth:`dask.array.Array.to_zarr` (v3)
    otherwise). The result equals in-memory :func:`patchjit.process_image`.

    Parameters
    ----------
    src_path, dst_path : str or os.PathLike
    func, patch_shape, step
        As in :func:`patchjit.process_image`.
    max_memory : int
        Budget in bytes for image data (see :func:`chunks_for_budget`).
    workers : int, optional
        Threads (default ``os.cpu_count()``).
    tile : tuple of int
        Tile shape of an output TIFF.
    **kwargs
        Any other :func:`patchjit.process_image` keyword (``edge``, ``window``,
        ``dtype``, ``channel_axis``...). Channels must be last.

    Returns
    -------
    tuple of int
        The chunk shape used.

    Examples
    --------
    >>> import numpy as np, tifffile, tempfile, os, patchjit
    >>> from patchjit.ops import mean_remove
    >>> d = tempfile.mkdtemp()
    >>> image = np.random.default_rng(0).random((300, 200), dtype=np.float32)
    >>> tifffile.imwrite(os.path.join(d, "in.tif"), image, tile=(64, 64))
    >>> process_file(os.path.join(d, "in.tif"), os.path.join(d, "out.tif"), mean_remove,
    ...              (9, 9), 4, max_memory=9 * 2**20, workers=1)
    (128, 128)
    >>> ref = patchjit.process_image(image, mean_remove, (9, 9), 4)
    >>> bool(np.allclose(tifffile.imread(os.path.join(d, "out.tif")), ref))
    True
    """
    import os

    import dask

    src_path, dst_path = os.fspath(src_path), os.fspath(dst_path)
    workers = workers or os.cpu_count() or 1
    x = da.from_zarr(src_path) if src_path.rstrip("/").endswith(".zarr") else from_tiff(src_path)
    k = len(patch_shape) if isinstance(patch_shape, tuple) else min(x.ndim, 2)
    pshape = patch_shape if isinstance(patch_shape, tuple) else (patch_shape,) * k
    chunks = chunks_for_budget(x.shape, x.dtype, pshape, max_memory, workers=workers)
    x = x.rechunk(chunks)
    res = process_image(x, func, patch_shape, step, **kwargs)
    with dask.config.set(scheduler="threads", num_workers=workers):
        if dst_path.lower().endswith((".tif", ".tiff")):
            to_tiff(res, dst_path, tile=tile)
        else:
            res.to_zarr(dst_path, overwrite=True)
    return chunks
