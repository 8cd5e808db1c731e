"""Scale-out: lazy dask arrays in, lazy dask arrays out; TIFF and zarr larger than memory.

:func:`patchjit.process_image`, :func:`patchjit.map_patches` and
:func:`patchjit.unpatchify` hand a :class:`dask.array.Array` to the functions of the same
name here. Scheme (one task per output chunk, built from dask primitives only):

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

import math
import os
import threading

import numpy as np

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
    "map_patches",
    "process_file",
    "process_image",
    "to_tiff",
    "unpatchify",
]

# numba's workqueue layer aborts when two threads launch parallel kernels at once; until
# the engine runs threads=1 serially, tasks take this lock unless the layer is tbb/omp.
_LAUNCH_LOCK = threading.Lock()


class _Launch:
    """Serialise kernel launches unless the threading layer is known to be thread-safe."""

    def __enter__(self):
        import numba

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
    return [(max(0, int(a) - depth), min(n, int(b) + depth)) for a, b in zip(s[:-1], s[1:])]


def _channels_last(x, channel_axis):
    if channel_axis is None:
        return x
    x = da.moveaxis(x, channel_axis, -1)
    return x.rechunk({x.ndim - 1: -1})


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


def _block_coverage_full(grid, cores):
    """Coverage of a non-separable window on one core box (original frame), closed form.

    The same construction as :meth:`PatchGrid.coverage`, on the core plus the
    ``patch - 1`` pixels before it that reach into it.
    """
    k, w = grid.ndim, grid.window_array
    ind, spans = [], []
    for a, (c0, c1) in enumerate(cores):
        p, b = grid.patch_shape[a], grid.pad_width[a][0]
        lo, hi = c0 + b - (p - 1), c1 + b
        v = np.zeros(hi - lo)
        o = grid.origins[a]
        o = o[(o >= lo) & (o < hi)]
        v[o - lo] = 1.0
        ind.append(v)
        spans.append(hi - lo)
    cov = np.zeros(spans)
    last = k - 1
    for lead in np.ndindex(*grid.patch_shape[:-1]):
        vec = np.convolve(ind[last], w[lead])[: spans[last]]
        term = None
        for a, j in enumerate(lead):
            shifted = np.zeros_like(ind[a])
            shifted[j:] = ind[a][: len(ind[a]) - j]
            term = shifted if term is None else np.multiply.outer(term, shifted)
        cov += vec if term is None else np.multiply.outer(term, vec)
    return cov[tuple(slice(p - 1, None) for p in grid.patch_shape)]


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
    pad_mode="reflect", pad_value=0, out=None, progress=False,
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
    from .api import _check_merge_geometry, _check_pad, _output_dtype

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
    acc_dtype = E.accumulation_dtype(np.float32 if image.dtype == np.float16 else image.dtype)
    out_dtype = _output_dtype(dtype, acc_dtype, None)
    k, nc, has_c = grid.ndim, grid.n_channels, grid.channel_axis is not None

    x = _channels_last(image, grid.channel_axis)
    user_chunks = x.chunks[:k]
    if any(b or a for b, a in grid.pad_width):
        widths = [*grid.pad_width] + ([(0, 0)] if has_c else [])
        kw = {"constant_values": pad_value} if pad_mode == "constant" else {}
        x = da.pad(x, widths, mode=pad_mode, **kw)
    depth = [p - 1 for p in grid.patch_shape]
    padded, cores, regions = [], [], []
    for a in range(k):
        b, after = grid.pad_width[a]
        pc, cc = _halo_chunks(user_chunks[a], b, after, depth[a])
        padded.append(pc)
        cores.append(cc)
        regions.append(_overlap_regions(pc, depth[a], grid.padded_shape[a]))
    x = x.rechunk(tuple(padded) + ((nc,) if has_c else ()))

    # Per axis and chunk index: core (original frame), patch range, region start,
    # coverage slice. Small tables, computed once here and shipped with the task.
    tables = []
    for a in range(k):
        rows = []
        cs = _starts(cores[a])
        cov = grid.axis_coverage(a)
        for i, (c0, c1) in enumerate(zip(cs[:-1], cs[1:])):
            rng = _axis_range(grid, a, int(c0), int(c1))
            rows.append((int(c0), int(c1), rng, regions[a][i][0], cov[c0:c1]))
        tables.append(rows)

    weights3 = None
    if grid.window_array is not None:
        w = grid.window_array.reshape(E.canonical3(grid.patch_shape, 1))
        weights3 = np.ascontiguousarray(np.repeat(w, nc, axis=2), dtype=acc_dtype)
    take, oview = K.VIEWS[(k, has_c)]
    task = _ProcessTask(
        grid, tables, func, args, take, oview, weights3, red, acc_dtype, out_dtype, threads
    )
    out_chunks = tuple(cores) + (((nc,),) if has_c else ())
    depth_map = {a: depth[a] for a in range(k)}
    res = da.map_overlap(
        task, x, depth=depth_map, boundary="none", trim=False, allow_rechunk=False,
        chunks=out_chunks, dtype=out_dtype, meta=np.empty((0,) * x.ndim, out_dtype),
        name="patchjit-process-" + _token(image, grid, func, args, red, out_dtype),
    )  # fmt: skip
    if tuple(cores) != tuple(user_chunks):
        res = res.rechunk(tuple(user_chunks) + (((nc,),) if has_c else ()))
    if has_c:
        res = da.moveaxis(res, -1, grid.channel_axis)
    return res


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
    """One output chunk of :func:`process_image` (picklable for distributed workers)."""

    def __init__(self, grid, tables, func, args, take, oview, w3, red, acc_dt, out_dt, threads):
        self.grid, self.tables, self.func, self.args = grid, tables, func, args
        self.take, self.oview, self.w3, self.red = take, oview, w3, red
        self.acc_dtype, self.out_dtype, self.threads = acc_dt, out_dt, threads

    def __call__(self, region, block_id=None):
        g, k = self.grid, self.grid.ndim
        nc = g.n_channels
        rows = [self.tables[a][block_id[a]] for a in range(k)]
        src = _src4(region, k)
        acc_dtype = self.acc_dtype
        core = [r[1] - r[0] for r in rows]
        sp = E.canonical3(core, 1)
        init = 0.0 if self.red in ("mean", "sum") else (-np.inf if self.red == "max" else np.inf)
        acc = np.full((sp[0], sp[1], sp[2] * nc), init, dtype=acc_dtype)
        if all(r[2][1] > r[2][0] for r in rows):
            origins = [g.origins[a][slice(*rows[a][2])] - rows[a][3] for a in range(k)]
            region0 = [rows[a][0] + g.pad_width[a][0] - rows[a][3] for a in range(k)]
            E.prepare_process_callback(self.func, self.take, self.oview, src, acc_dtype, self.args)
            with _Launch(), E.thread_limit(self.threads):
                E.run_accumulate(
                    src, self.take, self.oview, self.func, self.args,
                    E.canonical3(origins, np.zeros(1, dtype=np.int64)),
                    E.canonical3(g.patch_shape, 1), nc, self.w3,
                    {"mean": K.SUM, "sum": K.SUM, "max": K.MAX, "min": K.MIN}[self.red],
                    acc, tuple(int(v) for v in E.canonical3(region0, 0)),
                )  # fmt: skip
        vecs = E.canonical3([r[4] for r in rows], np.ones(1))
        full = g.window_array is not None and g.window_vectors is None
        if full:
            cov = _block_coverage_full(g, [(r[0], r[1]) for r in rows]).reshape(sp)
        else:
            cov = np.ones((1, 1, 1))
        with _Launch(), E.thread_limit(self.threads):
            K.finalize(acc, *vecs, cov, full, nc, self.red == "mean")
        result = acc.reshape((*core, nc))
        if g.channel_axis is None:
            result = result[..., 0]
        return to_dtype(result, self.out_dtype)
