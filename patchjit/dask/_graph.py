"""The graphs of the dask twins: :func:`process_image`, :func:`map_patches`,
:func:`unpatchify`, :func:`process_batches` and :func:`map_batches` on dask arrays.

Each twin checks its call as the in-memory function does, then builds one of two graphs
(:func:`_merge_graph` for overlap-add, :func:`_map_graph` for one value per patch) of
the per-chunk tasks in :mod:`._tasks`; the scheme is in :mod:`patchjit.dask`.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence

import dask.array as da
import numpy as np
from numpy.typing import ArrayLike, DTypeLike

from .. import _batches as B
from .._bands import check_finalize
from .._callback import check_args, resolve
from .._layout import _patches_layout
from .._plan import Floats, Shape, make_plan
from ._chunking import (
    _axis_range,
    _channels_last,
    _check_array,
    _halo_chunks,
    _merge_small,
    _no_out,
    _overlap_regions,
    _starts,
    _token,
)
from ._padding import pad
from ._tasks import (
    _BatchTask,
    _MapBatchTask,
    _MapTask,
    _Normaliser,
    _ProcessTask,
    _UnpatchifyTask,
)


def _plan(image, params, own=None, own_first=False):
    """The in-memory functions' plan (:func:`patchjit._plan.make_plan`), for a dask
    array: the same checks in the same order, threads defaulting to 1."""
    _no_out(params.get("out"), params.get("progress"))
    _check_array(image)
    return make_plan(image.shape, image.dtype, params, own=own, own_first=own_first, lazy=True)


def process_image(
    image: da.Array, func: Callable, patch_shape: Shape, step: Shape | None = None, *,
    overlap: Floats | None = None, args: tuple = (), edge: str = "cover",
    dtype: DTypeLike | None = None, threads: int | None = None, channel_axis: int | None = None,
    window: str | ArrayLike | None = None, sigma: Floats | None = None, reduce: str = "mean",
    pad_mode: str = "reflect", pad_value: float = 0, out: None = None, progress: bool = False,
    out_channels: int | None = None, margin: Shape = 0, scale: Floats = 1,
    finalize: Callable | None = None,
) -> da.Array:  # fmt: skip
    """Lazy :func:`patchjit.process_image` of a dask array, exact across chunks.

    Called by :func:`patchjit.process_image` when ``image`` is a
    :class:`dask.array.Array`; the parameters mean the same, except:

    - ``threads``: numba threads inside each dask task, default 1 (dask supplies the
      parallelism). More is useful only with the ``tbb`` or ``omp`` threading layer.
    - ``margin`` and ``scale`` as in memory; with ``scale`` the result's chunks are the
      image's times the scale (for a 1/d scale, neighbouring chunks are first merged
      so that every chunk starts at a multiple of d).
    - ``finalize`` runs per output chunk (every chunk is a whole block of the result
      along the channel axis): it must keep each chunk's spatial shape, and may drop
      or resize the channel axis (e.g. an argmax over classes).
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
    plan = _plan(image, locals(), own=lambda: (resolve(func), check_args(args)))
    func, args = plan.own
    take, oview = plan.views(out_channels)

    def make(tables, norm):
        return _ProcessTask(plan, tables, norm, func, args, take, oview)

    check_finalize(finalize, None, several=False)
    name = "patchjit-process-" + _token(image, plan, func, args)
    return _finalized(_merge_graph(image, plan, make, name), plan, finalize)


def _merge_graph(image, plan, make_task, name):
    """The overlap-add graph shared by :func:`process_image` and ``process_batches``.

    ``make_task(tables, norm)`` returns the per-chunk callable (a :class:`_ProcessTask`)
    that gets the padded, channels-last input region (always with a channel axis) and
    returns its core as ``(*core, nco)``; the result has the plan's layout.
    """
    grid, nco, out_dtype = plan.grid, plan.nco, plan.out_dtype
    k, has_c = grid.ndim, grid.channel_axis is not None
    x, user_chunks, depth, cores, regions = _halo_input(image, plan)
    # the cores and chunks in the result's frame (times the scale)
    cores = [tuple(int(n * f) for n in c) for c, f in zip(cores, plan.scales)]
    user_chunks = [tuple(int(n * f) for n in c) for c, f in zip(user_chunks, plan.scales)]

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

    if not plan.keep_c:
        return res[..., 0]
    if has_c:
        res = da.moveaxis(res, -1, grid.channel_axis)
    return res


def map_patches(
    image: da.Array, func: Callable, patch_shape: Shape, step: Shape | None = None, *,
    overlap: Floats | None = None, args: tuple = (), edge: str = "valid",
    dtype: DTypeLike | None = None, threads: int | None = None, channel_axis: int | None = None,
    pad_mode: str = "reflect", pad_value: float = 0, progress: bool = False,
) -> da.Array:  # fmt: skip
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
    plan = _plan(image, locals(), own=lambda: (resolve(func), check_args(args)))
    func, args = plan.own
    take, _ = plan.views()

    def make(tables):
        return _MapTask(plan, tables, func, args, take)

    name = "patchjit-map-" + _token(image, plan, func, args)
    return _map_graph(image, plan, make, name)


def _map_graph(image, plan, make_task, name):
    """The one-value-per-patch graph shared by :func:`map_patches` and ``map_batches``.

    ``make_task(tables)`` returns the per-chunk callable (a :class:`_MapTask`).
    """
    grid, out_dtype = plan.grid, plan.out_dtype
    k = grid.ndim
    x, _, depth, cores, regions = _halo_input(image, plan)
    gchunks, tables = [], []
    for a in range(k):
        # Patch i goes to the chunk holding its origin; with edge="pad" (centred padding)
        # a padded-frame origin is the original-frame pixel the patch is centred on.
        bounds = np.searchsorted(grid.origins[a], _starts(cores[a]), side="left")
        bounds[-1] = grid.grid_shape[a]
        gchunks.append(tuple(int(n) for n in np.diff(bounds)))
        pairs = enumerate(itertools.pairwise(bounds))
        tables.append([((int(i0), int(i1)), regions[a][j][0]) for j, (i0, i1) in pairs])
    return da.map_overlap(
        make_task(tables), x, depth={a: depth[a] for a in range(k)}, boundary="none",
        trim=False, allow_rechunk=False, chunks=tuple(gchunks), drop_axis=[k],
        dtype=out_dtype, meta=np.empty((0,) * k, out_dtype), name=name,
    )  # fmt: skip


def _halo_input(image, plan):
    """The padded, channels-last input (always with a channel axis, in one chunk),
    chunked so that chunk ``i`` holds output chunk ``i`` and no chunk is shorter than
    the halo; with the input's spatial chunks, the halo depth per axis, the cores (the
    input chunks whose outputs the tasks compute) and per chunk the region map_overlap
    hands its task. With a margin the input is padded by that much more and the halo
    is the input patch; with a 1/d scale, chunks are merged so that they start at
    multiples of d."""
    grid = plan.grid_in
    k = grid.ndim
    x = _channels_last(image, grid.channel_axis)
    if grid.channel_axis is None:
        x = x[..., None]
    user_chunks = tuple(
        _multiple_chunks(c, plan.scales[a].denominator) for a, c in enumerate(x.chunks[:k])
    )
    widths = [(b + m, a + m) for (b, a), m in zip(grid.pad_width, plan.margin)]
    x = pad(x.rechunk((*user_chunks, x.chunks[k])), widths, plan.pad_mode, plan.pad_value)
    depth = [p - 1 for p in plan.in_patch]
    padded, cores, regions = [], [], []
    for a in range(k):
        b, after = widths[a]
        pc, cc = _halo_chunks(user_chunks[a], b, after, depth[a])
        padded.append(pc)
        cores.append(cc)
        regions.append(_overlap_regions(pc, depth[a], grid.padded_shape[a] + 2 * plan.margin[a]))
    return x.rechunk((*padded, (grid.n_channels,))), user_chunks, depth, cores, regions


def _multiple_chunks(chunks, d: int):
    """``chunks`` merged so that every chunk but the last starts at a multiple of ``d``."""
    if d == 1:
        return tuple(chunks)
    ends = sorted({int(e) - int(e) % d for e in _starts(chunks)[1:-1]} - {0})
    ends.append(int(sum(chunks)))
    return tuple(int(n) for n in np.diff([0, *ends]))


def process_batches(
    image: da.Array, func: Callable, patch_shape: Shape, step: Shape | None = None, *,
    overlap: Floats | None = None, batch_size: int = B.DEFAULT_BATCH_SIZE,
    out_channels: int | None = None, edge: str = "cover", dtype: DTypeLike | None = None,
    threads: int | None = None, channel_axis: int | None = None,
    window: str | ArrayLike | None = None, sigma: Floats | None = None, reduce: str = "mean",
    pad_mode: str = "reflect", pad_value: float = 0, out: None = None, progress: bool = False,
    margin: Shape = 0, scale: Floats = 1, finalize: Callable | None = None,
) -> da.Array:  # fmt: skip
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
    - ``margin``, ``scale`` and ``finalize`` as in :func:`process_image`'s twin;
      ``func`` returns one array (several outputs need the in-memory function).
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
    plan = _plan(image, locals(), own_first=True,
                 own=lambda: (B._check_func(func), B._check_batch_size(batch_size))[1])  # fmt: skip

    def make(tables, norm):
        return _BatchTask(plan, tables, norm, func)

    check_finalize(finalize, None)
    name = "patchjit-batches-" + _token(image, plan, func)
    return _finalized(_merge_graph(image, plan, make, name), plan, finalize)


def _finalized(res, plan, finalize):
    """``finalize`` on every chunk of the lazy result (see :func:`process_image`)."""
    if finalize is None:
        return res
    if not callable(finalize):
        raise TypeError("finalize on a dask array takes one callable (there is one output)")
    ca = plan.grid.channel_axis if plan.keep_c else None
    if plan.keep_c and ca is None:
        ca = res.ndim - 1
    probe_shape = [1] * res.ndim
    if ca is not None:
        probe_shape[ca] = res.shape[ca]
    probe = np.asarray(finalize(np.zeros(probe_shape, plan.out_dtype)))
    task = _FinalizeChunk(finalize, ca)
    if probe.ndim == res.ndim:
        chunks = list(res.chunks)
        if ca is not None:
            chunks[ca] = (probe.shape[ca],)
        return da.map_blocks(task, res, chunks=tuple(chunks), dtype=probe.dtype,
                             meta=np.empty((0,) * res.ndim, probe.dtype))  # fmt: skip
    if ca is not None and probe.ndim == res.ndim - 1:
        return da.map_blocks(task, res, drop_axis=ca, dtype=probe.dtype,
                             meta=np.empty((0,) * probe.ndim, probe.dtype))  # fmt: skip
    raise ValueError(
        f"finalize returned {probe.ndim} axes for a block of {res.ndim}; on dask arrays it "
        f"runs per chunk and must keep the spatial axes (it may drop the channel axis)"
    )


class _FinalizeChunk:
    """``finalize`` on one chunk, checked to keep the chunk's spatial shape."""

    def __init__(self, finalize, channel_axis):
        self.finalize, self.channel_axis = finalize, channel_axis

    def __call__(self, block):
        out = np.asarray(self.finalize(block))
        ca = self.channel_axis
        keep = [n for a, n in enumerate(block.shape) if a != ca]
        same_rank = out.ndim == block.ndim
        got = [n for a, n in enumerate(out.shape) if a != ca or not same_rank]
        if got != keep:
            raise ValueError(
                f"finalize returned shape {out.shape} for a chunk of shape {block.shape}; "
                f"on dask arrays it must keep each chunk's spatial shape {tuple(keep)}"
            )
        return out


def map_batches(
    image: da.Array, func: Callable, patch_shape: Shape, step: Shape | None = None, *,
    overlap: Floats | None = None, batch_size: int = B.DEFAULT_BATCH_SIZE,
    edge: str = "valid", dtype: DTypeLike | None = None, threads: int | None = None,
    channel_axis: int | None = None, pad_mode: str = "reflect", pad_value: float = 0,
    progress: bool = False,
) -> da.Array:  # fmt: skip
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
    plan = _plan(image, locals(), own_first=True,
                 own=lambda: (B._check_func(func), B._check_batch_size(batch_size))[1])  # fmt: skip

    def make(tables):
        return _MapBatchTask(plan, tables, func)

    name = "patchjit-map-batches-" + _token(image, plan, func)
    return _map_graph(image, plan, make, name)


def unpatchify(
    patches: da.Array, image_shape: Sequence[int], step: Shape | None = None, *,
    overlap: Floats | None = None, edge: str | None = None, channel_axis: int | None = None,
    window: str | ArrayLike | None = None, sigma: Floats | None = None, reduce: str = "mean",
    dtype: DTypeLike | None = None, out: None = None, threads: int | None = None,
    progress: bool = False,
) -> da.Array:  # fmt: skip
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
    _no_out(out, progress)
    _check_array(patches, "patches")
    image_shape = tuple(int(n) for n in image_shape)
    if edge == "pad":
        raise ValueError("unpatchify takes edge='cover' or 'valid'; 'pad' needs the image")
    # the in-memory reading of the patches' layout (edge=None: "cover" if it fits)
    grid = _patches_layout(
        patches.shape, image_shape, step, overlap, edge, channel_axis, window, sigma
    )
    plan = make_plan(patches.shape, patches.dtype, locals(), grid=grid, lazy=True)
    k, nc, has_c = grid.ndim, grid.n_channels, grid.channel_axis is not None
    grid_form = patches.ndim == 2 * k + has_c
    tail = grid.patch_shape + ((nc,) if has_c else ())

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
    task = _UnpatchifyTask(plan, tables)
    res = da.map_overlap(
        task, x, depth={a: depth[a] for a in range(k)}, boundary="none", trim=False,
        allow_rechunk=False, chunks=tuple(cores) + (((nc,),) if has_c else ()),
        drop_axis=list(range(k, k + k)), dtype=plan.out_dtype,
        meta=np.empty((0,) * (k + has_c), plan.out_dtype),
        name="patchjit-unpatchify-" + _token(x, plan),
    )  # fmt: skip
    if has_c:
        res = da.moveaxis(res, -1, grid.channel_axis)
    return res
