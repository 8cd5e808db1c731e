"""Scale-out: lazy dask arrays in, lazy dask arrays out; TIFF and zarr larger than memory.

:func:`patchjit.process_image`, :func:`patchjit.map_patches`,
:func:`patchjit.unpatchify`, :func:`patchjit.process_batches` and
:func:`patchjit.map_batches` hand a :class:`dask.array.Array` to the functions of the
same name here. Scheme (one task per output chunk, built from dask primitives only):

1. Channels are moved last and rechunked to one chunk; ``edge="pad"`` pads the whole
   array once with :func:`dask.array.pad`, and the padding is merged into the first and
   last chunk, so that chunk ``i`` of the padded array holds output chunk ``i``.
2. :func:`dask.array.map_overlap` with ``depth = patch - 1`` (``boundary="none"``,
   ``trim=False``, ``allow_rechunk=False``) hands each task its chunk plus the halo
   that every patch touching it reads.
3. Each task runs the engine on the patches of the **global** grid that touch its core
   (offsets come from the chunks, not from ``block_info`` of the overlapped array),
   accumulates only inside the core, and normalises with the global closed-form
   coverage sliced to the core. Patches that straddle chunks are computed once per
   chunk they touch.

Chunks smaller than the halo are merged with their neighbour for the computation and
the result is split back, so the output always has the input's chunks.
"""

from __future__ import annotations

import itertools
import math
import threading

import numpy as np

from . import _batches as B
from . import _engine as E
from . import _kernels as K
from ._callback import check_args, resolve
from ._cast import to_dtype
from ._grid import PatchGrid
from ._validate import as_image, resolve_threads

try:
    import dask.array as da
except ImportError as exc:  # pragma: no cover - exercised without the extra only
    raise ImportError(
        "patchjit.dask needs dask: pip install 'patchjit[dask]' (dask[array], zarr)"
    ) from exc

__all__ = [
    "chunks_for_budget",
    "from_tiff",
    "map_batches",
    "map_patches",
    "process_batches",
    "process_file",
    "process_image",
    "to_tiff",
    "unpatchify",
]

# Engine scratch per task (one wave of block buffers), counted by chunks_for_budget.
_SCRATCH_BYTES = getattr(E, "_WAVE_BYTES", 8 << 20)

# numba's workqueue layer aborts when two threads launch parallel kernels at once. Tasks
# with threads=1 run the engine's serial kernels and need no lock; others take this lock
# unless the layer is known to be tbb/omp.
_LAUNCH_LOCK = threading.Lock()


class _Launch:
    """Serialise parallel kernel launches unless the threading layer is thread-safe.

    With ``threads=1`` (the default in dask tasks) the engine runs serial kernels, which
    are safe from any thread: no lock, so tasks really run concurrently.
    """

    def __init__(self, threads=None):
        self.threads = threads

    def __enter__(self):
        import numba

        if self.threads == 1:
            self.lock = None
            return
        try:
            safe = numba.threading_layer() in ("tbb", "omp")
        except ValueError:  # no parallel kernel has run yet in this process
            safe = False
        self.lock = None if safe else _LAUNCH_LOCK
        if self.lock is not None:
            self.lock.acquire()

    def __exit__(self, *exc):
        if self.lock is not None:
            self.lock.release()


# --- checks and chunk geometry -------------------------------------------------------


def _check_array(x, name="image"):
    if x.dtype.kind not in "buif":
        raise TypeError(
            f"{name} must hold bool, integer or real floating-point values, got dask array "
            f"of dtype {x.dtype}; convert it with {name}.astype(numpy.float32) first"
        )
    if any(math.isnan(c) for cs in x.chunks for c in cs):
        raise ValueError(
            f"{name} has unknown chunk sizes (NaN), e.g. after boolean indexing; call "
            f"{name}.compute_chunk_sizes() first"
        )
    if x.size == 0:
        raise ValueError(f"{name} is empty, shape {x.shape}")


def _starts(chunks):
    return np.concatenate([[0], np.cumsum(chunks)]).astype(np.int64)


def _merge_small(chunks, minimum):
    """Merge chunks shorter than ``minimum`` into their neighbours (greedy, in order)."""
    out, cur = [], 0
    for c in chunks:
        cur += c
        if cur >= minimum:
            out.append(cur)
            cur = 0
    if cur:
        if out:
            out[-1] += cur
        else:
            out.append(cur)
    return tuple(out)


def _halo_chunks(chunks, before, after, depth):
    """Chunks of the padded axis (padding joins the end chunks), merged to >= depth."""
    pc = list(chunks)
    pc[0] += before
    pc[-1] += after
    merged = _merge_small(pc, max(depth, 1))
    core = list(merged)
    core[0] -= before
    core[-1] -= after
    return merged, tuple(core)


def _overlap_regions(padded_chunks, depth, n):
    """Per chunk, the ``(lo, hi)`` that map_overlap(boundary='none') hands the task."""
    s = _starts(padded_chunks)
    return [(max(0, int(a) - depth), min(n, int(b) + depth)) for a, b in itertools.pairwise(s)]


def _channels_last(x, channel_axis):
    if channel_axis is None:
        return x
    x = da.moveaxis(x, channel_axis, -1)
    return x.rechunk({x.ndim - 1: -1})


def _pad(x, grid, pad_mode, pad_value):
    """Pad the spatial axes like :func:`numpy.pad` (lazily, once for the whole array)."""
    if not any(b or a for b, a in grid.pad_width):
        return x
    if pad_mode == "median":  # dask.array.pad lacks it: numpy's rule, one axis at a time
        for a, (b, after) in enumerate(grid.pad_width):
            m = da.median(x, axis=a, keepdims=True)
            if x.dtype.kind in "iub":
                m = da.round(m)
            m = m.astype(x.dtype)
            parts = [da.repeat(m, b, axis=a), x, da.repeat(m, after, axis=a)]
            x = da.concatenate([v for v in parts if v.shape[a]], axis=a)
        return x
    widths = [*grid.pad_width] + [(0, 0)] * (x.ndim - grid.ndim)
    kw = {"constant_values": pad_value} if pad_mode == "constant" else {}
    return da.pad(x, widths, mode=pad_mode, **kw)


def _read_only(a):
    a = a.view()
    a.flags.writeable = False
    return a


def _src4(region, k):
    """The block's input as the engine's read-only C-contiguous (D, H, W, C) view."""
    v = np.ascontiguousarray(as_image(region, "block"))
    if v.ndim == k:
        v = v[..., None]
    return _read_only(v.reshape((1,) * (3 - k) + v.shape))


def _check_threads(threads):
    threads = 1 if threads is None else threads
    return resolve_threads(threads)


def _no_out(out, progress):
    if out is not None:
        raise TypeError(
            "out= is not supported for dask arrays (the result is lazy); store it with "
            "result.store(target), result.to_zarr(path) or patchjit.dask.to_tiff"
        )
    if progress:
        raise ValueError(
            "progress=True is not supported for dask arrays; use dask's own, e.g. "
            "`with dask.diagnostics.ProgressBar(): result.compute()`"
        )


# --- process_image ---------------------------------------------------------------------


def process_image(
    image, func, patch_shape, step=None, *, overlap=None, args=(), edge="cover", dtype=None,
    threads=None, channel_axis=None, window=None, sigma=None, reduce="mean",
    pad_mode="reflect", pad_value=0, out=None, progress=False, out_channels=None,
):  # fmt: skip
    """Lazy :func:`patchjit.process_image` of a dask array, exact across chunks.

    Called by :func:`patchjit.process_image` when ``image`` is a
    :class:`dask.array.Array`; the parameters mean the same, except:

    - ``threads``: numba threads inside each dask task, default 1 (dask supplies the
      parallelism). More is useful only with the ``tbb`` or ``omp`` threading layer.
    - ``out`` and ``progress`` are not supported (store the result with
      ``result.store``/``to_zarr``/:func:`to_tiff`; use dask's progress bar).

    Returns
    -------
    dask.array.Array
        Lazy result with the image's shape and chunks (the channel axis in one chunk).
        Max and min reductions, and every pixel that one patch alone covers, equal the
        in-memory result bit for bit; ``"mean"`` and ``"sum"`` add the same terms in a
        different order where several patches overlap, so they agree to float rounding.

    Examples
    --------
    >>> import numpy as np, numba, dask.array as da, patchjit
    >>> @numba.njit
    ... def double(patch, out):
    ...     for i in range(patch.shape[0]):
    ...         for j in range(patch.shape[1]):
    ...             out[i, j] = 2 * patch[i, j]
    >>> image = np.random.default_rng(0).random((50, 40), dtype=np.float32)
    >>> lazy = patchjit.process_image(da.from_array(image, chunks=17), double, 5, 2)
    >>> lazy.chunks
    ((17, 17, 16), (17, 17, 6))
    >>> bool(np.allclose(lazy.compute(), patchjit.process_image(image, double, 5, 2)))
    True
    """
    from .api import _check_merge_geometry, _check_pad, _check_window, _output_dtype

    _no_out(out, progress)
    _check_array(image)
    grid = PatchGrid(
        image.shape, patch_shape, step, edge, overlap=overlap, channel_axis=channel_axis,
        window=window, sigma=sigma,
    )  # fmt: skip
    red = _check_merge_geometry(grid, reduce)
    _check_pad(grid, image.dtype, pad_mode, pad_value)
    threads = _check_threads(threads)
    func = resolve(func)
    args = check_args(args)
    _, nco, keep_c = _out_layout(image.shape, grid, out_channels)
    acc_dtype = E.accumulation_dtype(image.dtype)
    _check_window(grid, acc_dtype)
    out_dtype = _output_dtype(dtype, acc_dtype, None)
    has_c = grid.channel_axis is not None
    take, _ = K.VIEWS[(grid.ndim, has_c)]
    _, oview = K.VIEWS[(grid.ndim, has_c or out_channels is not None)]

    def make(tables, norm):
        return _ProcessTask(
            grid, tables, norm, func, args, take, oview, red, nco, acc_dtype, out_dtype, threads
        )

    name = "patchjit-process-" + _token(
        image, grid, func, args, red, nco, out_dtype, threads, pad_mode, pad_value
    )
    return _merge_graph(image, grid, pad_mode, pad_value, make, nco, keep_c, out_dtype, name)


def _out_layout(shape, grid, out_channels):
    """``(result shape, output channels, channel axis kept)`` as in memory."""
    from .api import _result_shape

    result_shape = _result_shape(shape, grid, out_channels)
    if out_channels is None:
        return result_shape, grid.n_channels, grid.channel_axis is not None
    return result_shape, int(out_channels), True


def _merge_graph(image, grid, pad_mode, pad_value, make_task, nco, keep_c, out_dtype, name):
    """The overlap-add graph shared by :func:`process_image` and ``process_batches``.

    ``make_task(tables, norm)`` returns the per-chunk callable (a :class:`_ProcessTask`)
    that gets the padded, channels-last input region (always with a channel axis) and
    returns its core as ``(*core, nco)``. ``keep_c`` False drops the channel axis of
    the result (an image without channels and no ``out_channels``).
    """
    k, nc, has_c = grid.ndim, grid.n_channels, grid.channel_axis is not None
    x = _channels_last(image, grid.channel_axis)
    if not has_c:
        x = x[..., None]
    user_chunks = x.chunks[:k]
    x = _pad(x, grid, pad_mode, pad_value)
    depth = [p - 1 for p in grid.patch_shape]
    padded, cores, regions = [], [], []
    for a in range(k):
        b, after = grid.pad_width[a]
        pc, cc = _halo_chunks(user_chunks[a], b, after, depth[a])
        padded.append(pc)
        cores.append(cc)
        regions.append(_overlap_regions(pc, depth[a], grid.padded_shape[a]))
    x = x.rechunk((*padded, (nc,)))

    # Per axis and chunk index: core (original frame), patch range, region start,
    # coverage slice. Small tables, computed once here and shipped with the task.
    tables = []
    for a in range(k):
        rows = []
        cs = _starts(cores[a])
        cov = grid.axis_coverage(a)
        for i, (c0, c1) in enumerate(itertools.pairwise(cs)):
            rng = _axis_range(grid, a, int(c0), int(c1))
            rows.append((int(c0), int(c1), rng, regions[a][i][0], cov[c0:c1]))
        tables.append(rows)
    task = make_task(tables, _Normaliser(grid))
    res = da.map_overlap(
        task, x, depth={a: depth[a] for a in range(k)}, boundary="none", trim=False,
        allow_rechunk=False, chunks=(*cores, (nco,)), dtype=out_dtype,
        meta=np.empty((0,) * (k + 1), out_dtype), name=name,
    )  # fmt: skip
    if tuple(cores) != tuple(user_chunks):
        res = res.rechunk((*user_chunks, (nco,)))
    if not keep_c:
        return res[..., 0]
    if has_c:
        res = da.moveaxis(res, -1, grid.channel_axis)
    return res


class _Normaliser:
    """Divide a core's accumulator by the global coverage sliced to the core.

    The same kernels and inputs as in memory (``api._normalise``), the separable
    coverage vectors or the non-separable window's profiles shifted to the core's
    start, so the coverage of every pixel is the in-memory one bit for bit.
    """

    def __init__(self, grid):
        from .api import _window_profiles

        self.full = grid.window_array is not None and grid.window_vectors is None
        self.profiles = _window_profiles(grid) if self.full else None

    def __call__(self, acc, rows, nco, divide):
        serial = E.serial_wanted()
        if self.full:
            ind, vecs, pads = self.profiles
            starts = E.canonical3([r[0] for r in rows], 0)
            pads = tuple(int(p + s) for p, s in zip(pads, starts))
            fin = K.finalize_window_serial if serial else K.finalize_window
            fin(acc, ind[0], ind[1], vecs, pads, nco, divide)
        else:
            vecs = E.canonical3([r[4] for r in rows], np.ones(1))
            fin = K.finalize_serial if serial else K.finalize
            fin(acc, *vecs, nco, divide)


def _axis_range(grid, axis, c0, c1):
    """Global patch-index range ``(i0, i1)`` of the patches touching ``[c0, c1)``."""
    region = [slice(None)] * grid.ndim
    region[axis] = slice(c0, c1)
    ranges, _ = grid.subgrid(tuple(region))
    return ranges[axis]


def _token(*parts):
    from dask.base import tokenize

    try:
        return tokenize(*parts)
    except Exception:  # e.g. an object dask cannot hash deterministically
        import uuid

        return uuid.uuid4().hex


class _ProcessTask:
    """One output chunk of :func:`process_image` (picklable for distributed workers).

    Returns the chunk's core as ``(*core, nco)``, or ``(*core)`` when ``squeeze``.
    Subclasses change the source (``_source``) or the accumulation (``_accumulate``).
    """

    squeeze = False

    def __init__(self, grid, tables, norm, func, args, take, oview, red, nco, acc_dt, out_dt,
                 threads):  # fmt: skip
        self.grid, self.tables, self.norm, self.func, self.args = grid, tables, norm, func, args
        self.take, self.oview, self.red, self.nco = take, oview, red, nco
        self.acc_dtype, self.out_dtype, self.threads = acc_dt, out_dt, threads
        self.w3 = None
        if grid.window_array is not None:
            w = grid.window_array.reshape(E.canonical3(grid.patch_shape, 1))
            self.w3 = np.ascontiguousarray(np.repeat(w, nco, axis=2), dtype=acc_dt)

    def __call__(self, region, block_id=None):
        rows = [self.tables[a][block_id[a]] for a in range(self.grid.ndim)]
        core = [r[1] - r[0] for r in rows]
        sp = E.canonical3(core, 1)
        init = 0.0 if self.red in ("mean", "sum") else (-np.inf if self.red == "max" else np.inf)
        acc = np.full((sp[0], sp[1], sp[2] * self.nco), init, dtype=self.acc_dtype)
        if all(r[2][1] > r[2][0] for r in rows):
            src, origins, region0 = self._source(region, rows)
            origins3 = E.canonical3(origins, np.zeros(1, dtype=np.int64))
            region0 = tuple(int(v) for v in E.canonical3(region0, 0))
            self._accumulate(src, origins3, acc, region0)
        with _Launch(self.threads), E.thread_limit(self.threads):
            self.norm(acc, rows, self.nco, self.red == "mean")
        result = acc.reshape((*core, self.nco))
        if self.squeeze:
            result = result[..., 0]
        return to_dtype(result, self.out_dtype)

    def _accumulate(self, src, origins3, acc, region0):
        """Overlap-add the patches at ``origins3`` (``src``'s frame) into ``acc``."""
        g = self.grid
        E.prepare_process_callback(self.func, self.take, self.oview, src, self.acc_dtype, self.args)
        with _Launch(self.threads), E.thread_limit(self.threads):
            E.run_accumulate(
                src, self.take, self.oview, self.func, self.args, origins3,
                E.canonical3(g.patch_shape, 1), g.n_channels, self.w3,
                {"mean": K.SUM, "sum": K.SUM, "max": K.MAX, "min": K.MIN}[self.red],
                acc, region0, nc_out=self.nco,
            )  # fmt: skip

    def _source(self, region, rows):
        """The engine's source, patch origins in its frame and the core's start there."""
        g, k = self.grid, self.grid.ndim
        origins = [g.origins[a][slice(*rows[a][2])] - rows[a][3] for a in range(k)]
        region0 = [rows[a][0] + g.pad_width[a][0] - rows[a][3] for a in range(k)]
        return _src4(region, k), origins, region0


# --- map_patches ---------------------------------------------------------------------


def map_patches(
    image, func, patch_shape, step=None, *, overlap=None, args=(), edge="valid", dtype=None,
    threads=None, channel_axis=None, pad_mode="reflect", pad_value=0, progress=False,
):  # fmt: skip
    """Lazy :func:`patchjit.map_patches` of a dask array; bitwise equal to in memory.

    Called by :func:`patchjit.map_patches` for a :class:`dask.array.Array`. Patch ``i``
    belongs to the output chunk of the input chunk that holds its origin (for
    ``edge="pad"``, its centre), so at step 1 with ``edge="pad"`` the result has the
    image's chunks. ``threads`` as in :func:`process_image` (default 1).

    Examples
    --------
    >>> import numpy as np, numba, dask.array as da, patchjit
    >>> @numba.njit
    ... def local_range(patch):
    ...     return patch.max() - patch.min()
    >>> image = da.from_array(np.arange(64.0).reshape(8, 8), chunks=4)
    >>> lazy = patchjit.map_patches(image, local_range, 3, edge="pad", pad_mode="edge")
    >>> lazy.chunks
    ((4, 4), (4, 4))
    >>> float(lazy[4, 4].compute())
    18.0
    """
    from .api import _check_pad, _output_dtype

    _no_out(None, progress)
    _check_array(image)
    grid = PatchGrid(
        image.shape, patch_shape, step, edge, overlap=overlap, channel_axis=channel_axis,
        centered=True,
    )  # fmt: skip
    _check_pad(grid, image.dtype, pad_mode, pad_value)
    threads = _check_threads(threads)
    func = resolve(func)
    args = check_args(args)
    acc_dtype = E.accumulation_dtype(image.dtype)
    out_dtype = _output_dtype(dtype, acc_dtype, None)
    res_dtype = np.float64 if out_dtype.kind in "iu" else np.result_type(acc_dtype, out_dtype)
    take, _ = K.VIEWS[(grid.ndim, grid.channel_axis is not None)]

    def make(tables):
        return _MapTask(grid, tables, func, args, take, res_dtype, out_dtype, threads)

    name = "patchjit-map-" + _token(
        image, grid, func, args, out_dtype, threads, pad_mode, pad_value
    )
    return _map_graph(image, grid, pad_mode, pad_value, make, out_dtype, name)


def _map_graph(image, grid, pad_mode, pad_value, make_task, out_dtype, name):
    """The one-value-per-patch graph shared by :func:`map_patches` and ``map_batches``.

    ``make_task(tables)`` returns the per-chunk callable (a :class:`_MapTask`).
    """
    k, nc, has_c = grid.ndim, grid.n_channels, grid.channel_axis is not None
    x = _channels_last(image, grid.channel_axis)
    user_chunks = x.chunks[:k]
    x = _pad(x, grid, pad_mode, pad_value)
    depth = [p - 1 for p in grid.patch_shape]
    padded, gchunks, tables = [], [], []
    for a in range(k):
        b, after = grid.pad_width[a]
        pc, cc = _halo_chunks(user_chunks[a], b, after, depth[a])
        padded.append(pc)
        regions = _overlap_regions(pc, depth[a], grid.padded_shape[a])
        # Patch i goes to the chunk holding its origin; with edge="pad" (centred padding)
        # a padded-frame origin is the original-frame pixel the patch is centred on.
        bounds = np.searchsorted(grid.origins[a], _starts(cc), side="left")
        bounds[-1] = grid.grid_shape[a]
        gchunks.append(tuple(int(n) for n in np.diff(bounds)))
        pairs = enumerate(itertools.pairwise(bounds))
        tables.append([((int(i0), int(i1)), regions[j][0]) for j, (i0, i1) in pairs])
    x = x.rechunk(tuple(padded) + ((nc,) if has_c else ()))
    return da.map_overlap(
        make_task(tables), x, depth={a: depth[a] for a in range(k)}, boundary="none",
        trim=False, allow_rechunk=False, chunks=tuple(gchunks),
        drop_axis=[k] if has_c else [], dtype=out_dtype, meta=np.empty((0,) * k, out_dtype),
        name=name,
    )  # fmt: skip


class _MapTask:
    """One output chunk of :func:`map_patches`."""

    def __init__(self, grid, tables, func, args, take, res_dtype, out_dtype, threads):
        self.grid, self.tables, self.func, self.args, self.take = grid, tables, func, args, take
        self.res_dtype, self.out_dtype, self.threads = res_dtype, out_dtype, threads

    def __call__(self, region, block_id=None):
        g, k = self.grid, self.grid.ndim
        rows = [self.tables[a][block_id[a]] for a in range(k)]
        shape = tuple(i1 - i0 for (i0, i1), _ in rows)
        res = np.empty(E.canonical3(shape, 1), dtype=self.res_dtype)
        if res.size:
            src = _src4(region, k)
            origins = [g.origins[a][slice(*rows[a][0])] - rows[a][1] for a in range(k)]
            self._run(src, E.canonical3(origins, np.zeros(1, dtype=np.int64)), res)
        return to_dtype(res.reshape(shape), self.out_dtype)

    def _run(self, src, origins3, res):
        """One value per patch at ``origins3`` (``src``'s frame) into ``res``."""
        E.prepare_map_callback(self.func, self.take, src, self.args)
        with _Launch(self.threads), E.thread_limit(self.threads):
            E.run_map(
                src, self.take, self.func, self.args, origins3,
                E.canonical3(self.grid.patch_shape, 1), res,
            )  # fmt: skip


# --- process_batches and map_batches -------------------------------------------------


def _batch_launch(threads):
    """Serialise launches only when the task may run numba's parallel kernels: with
    ``threads=1`` it runs the serial ones, and ``func`` must not hold a global lock."""
    return _Launch(threads)


def process_batches(
    image, func, patch_shape, step=None, *, overlap=None, batch_size=B.DEFAULT_BATCH_SIZE,
    out_channels=None, edge="cover", dtype=None, threads=None, channel_axis=None,
    window=None, sigma=None, reduce="mean", pad_mode="reflect", pad_value=0, out=None,
    progress=False,
):  # fmt: skip
    """Lazy :func:`patchjit.process_batches` of a dask array, exact across chunks.

    Called by :func:`patchjit.process_batches` when ``image`` is a
    :class:`dask.array.Array`. Same scheme as :func:`process_image`: each task gathers
    the patches of the global grid that touch its chunk into batches, calls ``func``
    on them and merges the outputs into its chunk only. The parameters mean the same,
    except:

    - ``func`` runs inside dask tasks, so under the threaded scheduler (dask's
      default) it is called from several worker threads at once: it must be
      thread-safe (NumPy, scikit-image and a torch model in ``inference_mode`` are).
      Otherwise compute with ``scheduler="synchronous"`` or ``"processes"`` (then
      ``func`` must pickle). A batch never mixes patches of two chunks, so batches are
      smaller near chunk borders, and patches that straddle chunks are computed once
      per chunk they touch.
    - ``threads``: numba threads for the gather and merge inside each task, default 1
      (the serial kernels; dask supplies the parallelism). No background thread: each
      task gathers, calls ``func`` and merges one batch after the other.
    - ``out`` and ``progress`` are not supported.

    Returns
    -------
    dask.array.Array
        Lazy result with the image's chunks (the channel axis in one chunk, and
        ``out_channels`` channels where given). Equal to the in-memory result: ``max``,
        ``min`` and single-patch pixels bit for bit, ``mean``/``sum`` to float rounding
        (each pixel adds the same terms in the same patch order, so in practice they
        agree bit for bit as well, as long as ``func``'s output for a patch does not
        depend on the rest of its batch).

    Examples
    --------
    >>> import numpy as np, dask.array as da, patchjit
    >>> image = np.random.default_rng(0).random((50, 40), dtype=np.float32)
    >>> def remove_mean(batch):
    ...     return batch - batch.mean(axis=(1, 2), keepdims=True)
    >>> lazy = patchjit.process_batches(da.from_array(image, chunks=17), remove_mean, 8, 4)
    >>> lazy.chunks
    ((17, 17, 16), (17, 17, 6))
    >>> want = patchjit.process_batches(image, remove_mean, 8, 4)
    >>> bool(np.allclose(lazy.compute(scheduler="threads"), want))
    True
    """
    from .api import _check_merge_geometry, _check_pad, _check_window, _output_dtype

    _no_out(out, progress)
    _check_array(image)
    grid = PatchGrid(
        image.shape, patch_shape, step, edge, overlap=overlap, channel_axis=channel_axis,
        window=window, sigma=sigma,
    )  # fmt: skip
    red = _check_merge_geometry(grid, reduce)
    _check_pad(grid, image.dtype, pad_mode, pad_value)
    B._check_func(func)
    batch_size = B._check_batch_size(batch_size)
    threads = _check_threads(threads)
    _, nk, k_axis = _out_layout(image.shape, grid, out_channels)
    acc_dtype = E.accumulation_dtype(image.dtype)
    _check_window(grid, acc_dtype)
    out_dtype = _output_dtype(dtype, acc_dtype, None)

    def make(tables, norm):
        return _BatchTask(
            grid, tables, norm, func, red, nk, k_axis, batch_size, acc_dtype, out_dtype, threads
        )

    name = "patchjit-batches-" + _token(
        image, grid, func, red, nk, batch_size, out_dtype, threads, pad_mode, pad_value
    )
    return _merge_graph(image, grid, pad_mode, pad_value, make, nk, k_axis, out_dtype, name)


class _BatchTask(_ProcessTask):
    """One output chunk of :func:`process_batches`: the batch pipeline on its patches."""

    def __init__(self, grid, tables, norm, func, red, nk, k_axis, batch_size, acc_dtype,
                 out_dtype, threads):  # fmt: skip
        super().__init__(
            grid, tables, norm, func, (), None, None, red, nk, acc_dtype, out_dtype, threads
        )
        self.k_axis, self.batch_size = k_axis, batch_size
        self.wts = B.batch_weights(grid, nk, acc_dtype)

    def _accumulate(self, src, origins3, acc, region0):
        with _batch_launch(self.threads), E.thread_limit(self.threads):
            B.accumulate_batches(
                src, self.func, self.grid, origins3, self.nco, self.k_axis, self.wts,
                self.red, acc, region0, self.batch_size, pipelined=False,
            )  # fmt: skip


def map_batches(
    image, func, patch_shape, step=None, *, overlap=None, batch_size=B.DEFAULT_BATCH_SIZE,
    edge="valid", dtype=None, threads=None, channel_axis=None, pad_mode="reflect",
    pad_value=0, progress=False,
):  # fmt: skip
    """Lazy :func:`patchjit.map_batches` of a dask array; bitwise equal to in memory.

    Called by :func:`patchjit.map_batches` for a :class:`dask.array.Array`. Chunks as
    in :func:`map_patches`; ``func`` and ``threads`` as in :func:`process_batches`
    (``func`` must be thread-safe under dask's threaded scheduler).

    Examples
    --------
    >>> import numpy as np, dask.array as da, patchjit
    >>> image = da.from_array(np.arange(64.0).reshape(8, 8), chunks=4)
    >>> lazy = patchjit.map_batches(image, lambda b: b.max(axis=(1, 2)) - b.min(axis=(1, 2)),
    ...                             3, edge="pad", pad_mode="edge")
    >>> lazy.chunks
    ((4, 4), (4, 4))
    >>> float(lazy[4, 4].compute())
    18.0
    """
    from .api import _check_pad, _output_dtype

    _no_out(None, progress)
    _check_array(image)
    grid = PatchGrid(
        image.shape, patch_shape, step, edge, overlap=overlap, channel_axis=channel_axis,
        centered=True,
    )  # fmt: skip
    _check_pad(grid, image.dtype, pad_mode, pad_value)
    B._check_func(func)
    batch_size = B._check_batch_size(batch_size)
    threads = _check_threads(threads)
    acc_dtype = E.accumulation_dtype(image.dtype)
    out_dtype = _output_dtype(dtype, acc_dtype, None)
    res_dtype = B._values_dtype(acc_dtype, out_dtype)

    def make(tables):
        return _MapBatchTask(grid, tables, func, batch_size, acc_dtype, res_dtype, out_dtype,
                             threads)  # fmt: skip

    name = "patchjit-map-batches-" + _token(
        image, grid, func, batch_size, out_dtype, threads, pad_mode, pad_value
    )
    return _map_graph(image, grid, pad_mode, pad_value, make, out_dtype, name)


class _MapBatchTask(_MapTask):
    """One output chunk of :func:`map_batches`."""

    def __init__(self, grid, tables, func, batch_size, acc_dtype, res_dtype, out_dtype, threads):
        super().__init__(grid, tables, func, (), None, res_dtype, out_dtype, threads)
        self.batch_size, self.acc_dtype = batch_size, acc_dtype

    def _run(self, src, origins3, res):
        with _batch_launch(self.threads), E.thread_limit(self.threads):
            B.map_values(
                src, self.func, self.grid, origins3, self.acc_dtype, res.reshape(-1),
                self.batch_size, pipelined=False,
            )  # fmt: skip


# --- unpatchify ----------------------------------------------------------------------


def unpatchify(
    patches, image_shape, step=None, *, overlap=None, edge=None, channel_axis=None,
    window=None, sigma=None, reduce="mean", dtype=None, out=None, threads=None,
    progress=False,
):  # fmt: skip
    """Lazy :func:`patchjit.unpatchify` of a dask array of patches.

    Called by :func:`patchjit.unpatchify` for a :class:`dask.array.Array` (grid or
    flattened form; the patch and channel axes are rechunked to one chunk). Output chunk
    ``i`` along an axis starts at the origin of the first patch of grid chunk ``i``.
    Exactness as in :func:`process_image`. ``threads`` default 1.

    Examples
    --------
    >>> import numpy as np, dask.array as da, patchjit
    >>> image = np.random.default_rng(0).random((30, 26))
    >>> patches = da.from_array(patchjit.patchify(image, (4, 6), step=2), chunks=5)
    >>> lazy = patchjit.unpatchify(patches, image.shape, step=2)
    >>> lazy.chunks
    ((10, 10, 10), (10, 16))
    >>> bool(np.allclose(lazy.compute(), image))
    True
    """
    from .api import _check_merge_geometry, _check_window, _output_dtype, _patches_layout

    _no_out(out, progress)
    _check_array(patches, "patches")
    image_shape = tuple(int(n) for n in image_shape)
    if edge == "pad":
        raise ValueError("unpatchify takes edge='cover' or 'valid'; 'pad' needs the image")
    # the in-memory reading of the patches' layout (edge=None: "cover" if it fits)
    grid = _patches_layout(
        patches.shape, image_shape, step, overlap, edge, channel_axis, window, sigma
    )
    red = _check_merge_geometry(grid, reduce)
    k, nc, has_c = grid.ndim, grid.n_channels, grid.channel_axis is not None
    grid_form = patches.ndim == 2 * k + has_c
    tail = grid.patch_shape + ((nc,) if has_c else ())
    threads = _check_threads(threads)
    acc_dtype = E.accumulation_dtype(patches.dtype)
    _check_window(grid, acc_dtype)
    out_dtype = _output_dtype(dtype, acc_dtype, None)

    x = patches if grid_form else patches.reshape(grid.grid_shape + tail)
    x = x.rechunk({a: -1 for a in range(k, x.ndim)})
    depth, cores, tables, gchunks = [], [], [], []
    for a in range(k):
        o, p = grid.origins[a], grid.patch_shape[a]
        d = min(-(-(p - 1) // grid.step[a]) + 1, grid.grid_shape[a] - 1)
        gc = _merge_small(x.chunks[a], max(d, 1))
        gs = _starts(gc)
        bounds = np.append(o[gs[:-1]], image_shape[a] if not has_c else grid.spatial_shape[a])
        bounds[0] = 0
        cov = grid.axis_coverage(a)
        rows = []
        for j, (c0, c1) in enumerate(itertools.pairwise(bounds)):
            rng = _axis_range(grid, a, int(c0), int(c1))
            rows.append((int(c0), int(c1), rng, max(0, int(gs[j]) - d), cov[c0:c1]))
        depth.append(d)
        gchunks.append(gc)
        cores.append(tuple(int(n) for n in np.diff(bounds)))
        tables.append(rows)
    x = x.rechunk(tuple(gchunks) + x.chunks[k:])
    task = _UnpatchifyTask(grid, tables, red, acc_dtype, out_dtype, threads)
    res = da.map_overlap(
        task, x, depth={a: depth[a] for a in range(k)}, boundary="none", trim=False,
        allow_rechunk=False, chunks=tuple(cores) + (((nc,),) if has_c else ()),
        drop_axis=list(range(k, k + k)), dtype=out_dtype,
        meta=np.empty((0,) * (k + has_c), out_dtype),
        name="patchjit-unpatchify-" + _token(x, grid, red, out_dtype, threads),
    )  # fmt: skip
    if has_c:
        res = da.moveaxis(res, -1, grid.channel_axis)
    return res


class _UnpatchifyTask(_ProcessTask):
    """One output chunk of :func:`unpatchify`: the stacked patches as the source."""

    def __init__(self, grid, tables, red, acc_dtype, out_dtype, threads):
        super().__init__(
            grid, tables, _Normaliser(grid), K.copy_flat, (), K.take_flat, K.oview_flat,
            red, grid.n_channels, acc_dtype, out_dtype, threads,
        )  # fmt: skip
        self.squeeze = grid.channel_axis is None

    def _source(self, region, rows):
        g, k = self.grid, self.grid.ndim
        sel = tuple(slice(r[2][0] - r[3], r[2][1] - r[3]) for r in rows)
        v = as_image(region, "patches")[sel]
        shape = E.canonical3(v.shape[:k], 1) + E.canonical3(g.patch_shape, 1) + (g.n_channels,)
        v = np.ascontiguousarray(v).reshape(shape)
        origins = [g.origins[a][slice(*rows[a][2])] for a in range(k)]
        region0 = [rows[a][0] for a in range(k)]
        return _read_only(v), origins, region0


# --- out of core: TIFF and zarr ------------------------------------------------------


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
