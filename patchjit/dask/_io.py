"""TIFF and zarr files larger than memory: :func:`from_tiff`, :func:`to_tiff` and
:func:`process_file` (the command line's ``--max-memory``)."""

from __future__ import annotations

import contextlib
import itertools
import math
import os
import tempfile
from collections.abc import Callable, Sequence
from typing import Any

import dask.array as da
import numpy as np

from ._budget import chunks_for_budget
from ._graph import process_image


def from_tiff(
    path: str | os.PathLike, chunks: int | Sequence[int] | str | None = None, *,
    series: int = 0, level: int = 0,
) -> da.Array:  # fmt: skip
    """Open a TIFF lazily as a dask array; each task reads only what its chunk needs.

    Nothing is read until the array is computed. Uncompressed data stored contiguously
    (tifffile's default: one strip, or several in order) is read region by region
    straight from the file (each task maps the file, copies its region and unmaps it),
    so any chunking reads only its own pixels. Other layouts (tiled, compressed) go
    through tifffile's zarr store, equivalent to
    ``da.from_zarr(zarr.open(tifffile.imread(path, aszarr=True), mode="r"))``: a task
    decodes every tile or strip its chunk touches, whole.

    Parameters
    ----------
    path : str or os.PathLike
        TIFF file (tiled or striped, any compression tifffile reads).
    chunks : int, tuple or "auto", optional
        dask chunks; default the file's tiles (or strips), or blocks of 256 x 256
        pixels (all channels) for contiguous uncompressed data. Use
        :func:`chunks_for_budget` to fit a memory budget.
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

    path = os.fspath(path)
    with tifffile.TiffFile(path) as tif:
        s = tif.series[series].levels[level]
        offset, shape, dtype = s.dataoffset, tuple(s.shape), np.dtype(s.dtype)
        file_dtype, axes = np.dtype(tif.byteorder + dtype.char), s.axes
    if offset is not None and dtype.itemsize and math.prod(shape):
        data = _ContiguousData(path, offset, shape, file_dtype)
        if chunks is None:  # 256 x 256 in Y and X, one plane of what comes before
            yx = [a for a, c in enumerate(axes) if c in "YX"] or [len(shape) - 1]
            chunks = tuple(
                min(n, 256) if a in yx else (1 if a < yx[0] else n) for a, n in enumerate(shape)
            )
        return da.from_array(data, chunks=chunks, asarray=False, fancy=False,
                             meta=np.empty((0,) * len(shape), data.dtype),
                             name="patchjit-tiff-" + _file_token(path, offset))  # fmt: skip
    store = tifffile.imread(path, aszarr=True, series=series, level=level)
    z = zarr.open(store, mode="r")
    return da.from_zarr(z, chunks=z.chunks if chunks is None else chunks)


def read_unit(path, *, series=0, level=0):
    """The block of a TIFF that a reader must decode whole, or None if any region reads
    on its own (uncompressed contiguous data, see :func:`from_tiff`).

    A tile, a strip (``rows x width``), or for a compressed single-strip file the whole
    image. Pass it to :func:`chunks_for_budget` as ``read_unit``.
    """
    import tifffile
    import zarr

    with tifffile.TiffFile(path) as tif:
        if tif.series[series].levels[level].dataoffset is not None:
            return None
    with tifffile.imread(path, aszarr=True, series=series, level=level) as store:
        return tuple(int(c) for c in zarr.open(store, mode="r").chunks)


class _ContiguousData:
    """Uncompressed image data stored contiguously in a file, read region by region.

    An array-like for :func:`dask.array.from_array`: indexing maps the file, copies the
    region (in native byte order) and unmaps it, so a task holds its region only, and
    nothing stays mapped between tasks. Picklable (path, offset, shape, dtype).
    """

    def __init__(self, path, offset, shape, file_dtype):
        self.path, self.offset, self.shape, self.file_dtype = path, offset, shape, file_dtype
        self.dtype = file_dtype.newbyteorder("=")
        self.ndim = len(shape)
        self.identity = _identity(os.stat(path))

    def __getitem__(self, key):
        with open(self.path, "rb") as f:
            if _identity(os.fstat(f.fileno())) != self.identity:
                raise RuntimeError(
                    f"{self.path} was replaced or modified after from_tiff opened it; "
                    f"open it again with from_tiff"
                )
            mm = np.memmap(f, self.file_dtype, "r", self.offset, self.shape)
            region = np.array(mm[key], dtype=self.dtype)  # a copy: the map is released
            del mm
        return region


def _identity(st):
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns


def _file_token(path, offset):
    from dask.base import tokenize

    st = os.stat(path)
    return tokenize(os.path.realpath(path), offset, st.st_size, st.st_mtime_ns)


def to_tiff(
    arr: da.Array, path: str | os.PathLike, *, tile: Sequence[int] | None = (256, 256),
    compression: Any = None, scheduler: Any = None, **kwargs: Any,
) -> None:  # fmt: skip
    """Compute a 2-D (optionally channels-last) dask array into a tiled TIFF, band by band.

    tifffile writes tiles sequentially, so the array is computed one band of rows at a
    time (the band's height is the array's chunk height, rounded to a whole number of
    tiles) and the band's tiles are handed to :func:`tifffile.imwrite` in order. Peak
    memory: one band plus what dask needs to compute it.

    The file is written under a temporary name in ``path``'s folder and renamed to
    ``path`` once complete: a failure never leaves a truncated ``path`` (an existing file
    there stays as it was), and an array read lazily from ``path`` itself reads the old
    file to the end.

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

    with _replacing(path) as tmp:
        tifffile.imwrite(
            tmp, tiles(), shape=arr.shape, dtype=arr.dtype, tile=tile, compression=compression,
            **kwargs,
        )  # fmt: skip


@contextlib.contextmanager
def _replacing(path):
    """A temporary path in ``path``'s folder, renamed to ``path`` if the block succeeds
    and removed if it fails."""
    path = os.fspath(path)
    folder, name = os.path.split(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".patchjit-", suffix=f"-{name}", dir=folder)
    os.close(fd)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        if os.path.lexists(tmp):
            os.unlink(tmp)
        raise


def process_file(
    src_path: str | os.PathLike, dst_path: str | os.PathLike, func: Callable,
    patch_shape: int | Sequence[int], step: int | Sequence[int] | None = None, *,
    max_memory: int, workers: int | None = None, tile: Sequence[int] | None = (256, 256),
    **kwargs: Any,
) -> tuple[int, ...]:  # fmt: skip
    """Process a TIFF or zarr image chunk-wise within a memory budget; write TIFF or zarr.

    The entry point for the command line's ``--max-memory``: reads ``src_path`` lazily
    (:func:`from_tiff`, or :func:`dask.array.from_zarr` for a ``.zarr`` path), picks
    chunks with :func:`chunks_for_budget`, runs :func:`process_image` on dask's threaded
    scheduler with ``workers`` threads, and writes ``dst_path`` chunk by chunk
    (:func:`to_tiff` for ``.tif``/``.tiff``, :meth:`dask.array.Array.to_zarr` (v3)
    otherwise). The result equals in-memory :func:`patchjit.process_image`.

    The budget holds for every layout: uncompressed contiguous TIFF data (one strip or
    several) is read region by region, tiles and strips are counted whole
    (``read_unit``), and a file whose read unit cannot fit (a compressed single strip
    larger than the budget) is refused before anything is read. The output is written
    under a temporary name next to ``dst_path`` and renamed into place when complete (an
    existing ``dst_path`` is replaced only then); ``dst_path`` may not be ``src_path``
    (also through a link), nor inside it or hold it (zarr stores are folders).

    Parameters
    ----------
    src_path, dst_path : str or os.PathLike
    func, patch_shape, step
        As in :func:`patchjit.process_image` (``patch_shape`` an int or a sequence).
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

    Raises
    ------
    ValueError
        ``dst_path`` is (or holds, or lies inside) ``src_path``; the budget cannot hold
        the chunks or the file's read unit; channels not last; any bad value
        :func:`patchjit.process_image` refuses. All before anything is written.

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
    import dask

    from .._grid import PatchGrid

    src_path, dst_path = os.fspath(src_path), os.fspath(dst_path)
    _check_distinct(src_path, dst_path)
    if workers is None:
        workers = os.cpu_count() or 1
    elif isinstance(workers, bool) or not isinstance(workers, (int, np.integer)) or workers < 1:
        raise ValueError(f"workers must be an integer >= 1 (or None: all cores), got {workers!r}")
    if _is_zarr(src_path):
        x = da.from_zarr(src_path)
        unit = x.chunksize  # the store's chunks, each decoded whole
    else:
        x, unit = from_tiff(src_path), read_unit(src_path)
    # the patch as the in-memory call reads it (int or sequence), checked the same way
    ca = kwargs.get("channel_axis")
    if ca is not None and ca not in (-1, x.ndim - 1):
        raise ValueError(f"process_file takes channels last (channel_axis=-1), got {ca!r}")
    grid = PatchGrid(
        x.shape, patch_shape, step, kwargs.get("edge", "cover"), overlap=kwargs.get("overlap"),
        channel_axis=ca, window=kwargs.get("window"), sigma=kwargs.get("sigma"),
    )  # fmt: skip
    chunks = chunks_for_budget(x.shape, x.dtype, grid.patch_shape, max_memory, workers=workers,
                               read_unit=unit)  # fmt: skip
    x = from_tiff(src_path, chunks=chunks) if unit is None else x.rechunk(chunks)
    res = process_image(x, func, patch_shape, step, **kwargs)
    with dask.config.set(scheduler="threads", num_workers=workers):
        if dst_path.lower().endswith((".tif", ".tiff")):
            to_tiff(res, dst_path, tile=tile)
        else:
            with _replacing_folder(dst_path) as tmp:
                res.to_zarr(tmp, overwrite=True)
    return chunks


def _is_zarr(path):
    return path.rstrip("/\\").endswith(".zarr")


def _check_distinct(src, dst):
    """Refuse a destination that is the source, or holds it, or lies inside it."""
    s, d = os.path.realpath(src), os.path.realpath(dst)
    if s == d or (os.path.exists(s) and os.path.exists(d) and os.path.samefile(s, d)):
        raise ValueError(
            f"dst_path {dst!r} is the input {src!r}; writing it would destroy the input "
            f"while it is read: write to another path"
        )
    inside = os.path.commonpath([s, d])
    if inside in (s, d):
        where = "inside" if inside == s else "a folder holding"
        raise ValueError(
            f"dst_path {dst!r} is {where} the input {src!r}; writing it could destroy "
            f"the input: write outside it"
        )


@contextlib.contextmanager
def _replacing_folder(path):
    """A temporary folder next to ``path`` (a zarr store), put in its place on success
    (the old one removed then) and removed on failure."""
    import shutil

    folder, name = os.path.split(os.path.abspath(path))
    tmp = tempfile.mkdtemp(prefix=".patchjit-", suffix=f"-{name}", dir=folder)
    try:
        yield tmp
        if os.path.lexists(path):
            old = tempfile.mkdtemp(prefix=".patchjit-old-", suffix=f"-{name}", dir=folder)
            os.replace(path, os.path.join(old, name))
            os.replace(tmp, path)
            shutil.rmtree(old)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
