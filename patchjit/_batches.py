"""Any Python function over batches of patches: :func:`process_batches`, :func:`map_batches`.

The user's function runs in the calling thread on one batch while a single background
thread merges the previous batch's output and gathers the next batch (pipelining).
The background thread runs the serial variants of the batch kernels, never parallel
ones: two threads that launch numba parallel regions at the same time can abort the
process under numba's ``workqueue`` threading layer, and the user's function may well
launch its own. The calling thread runs the parallel variants, only while the
background thread is idle (the first gather, the last merge), and only when
:func:`_engine.serial_wanted` says no (``threads=1``, or off the main thread under
``workqueue``).

:func:`accumulate_batches` and :func:`map_values` are the core for any list of patch
origins and any output region (the meaning of ``_engine.run_accumulate`` and
``run_map``); :mod:`patchjit.dask` runs them per chunk, unpipelined, on the patches of
the global grid that touch the chunk.

Determinism: outputs are merged batch after batch, in patch order, by a kernel in
which each iteration owns one output row, so every pixel adds its contributions in
global patch order whatever the batch size, the thread count or the timing.
"""

from __future__ import annotations

import numbers
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import wait as _wait

import numpy as np

from . import _engine as E
from . import _kernels as K
from ._cast import to_dtype
from ._grid import PatchGrid
from ._validate import as_image, resolve_threads
from .api import (
    _RED_CODES,
    _check_merge_geometry,
    _check_out,
    _check_pad,
    _check_window,
    _is_dask,
    _normalise,
    _on_dask,
    _output_dtype,
    _result_shape,
    _running,
    _source4,
)

__all__ = ["DEFAULT_BATCH_SIZE", "map_batches", "process_batches"]

DEFAULT_BATCH_SIZE = 32


# --- checks -------------------------------------------------------------------------


def _check_func(func):
    if not callable(func):
        raise TypeError(f"func must be callable, got {type(func).__name__}")


def _check_batch_size(batch_size) -> int:
    if not isinstance(batch_size, (numbers.Integral, np.integer)) or isinstance(batch_size, bool):
        raise TypeError(f"batch_size must be an int, got {batch_size!r}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    return int(batch_size)


def _out_layout(shape, grid: PatchGrid, out_channels):
    """``(result shape, output channel count, channels axis kept)`` for ``out_channels``
    (the result's shape follows :func:`patchjit.process_image`'s rule)."""
    result_shape = _result_shape(shape, grid, out_channels)
    if out_channels is None:
        return result_shape, grid.n_channels, grid.channel_axis is not None
    return result_shape, int(out_channels), True


def _as_result(res, expected: tuple, hint: str) -> np.ndarray:
    """``numpy.asarray(res)``, checked to hold real numbers of shape ``expected``."""
    try:
        arr = res if isinstance(res, np.ndarray) else np.asarray(res)
    except Exception as exc:  # e.g. a torch tensor that requires grad
        raise TypeError(
            f"func must return an array of shape {expected} ({hint}); got a "
            f"{type(res).__name__} that numpy.asarray cannot convert: {exc} (for a torch "
            f"tensor return tensor.detach().numpy())"
        ) from exc
    if arr.dtype.kind not in "buif":
        raise TypeError(
            f"func must return real numbers of shape {expected} ({hint}); got a "
            f"{type(res).__name__} with dtype {arr.dtype} and shape {arr.shape}"
        )
    if arr.shape != expected:
        raise ValueError(
            f"func returned shape {arr.shape} for a batch of {expected[0]} patches; "
            f"expected {expected} ({hint})"
        )
    return arr


# --- the pipeline -------------------------------------------------------------------


def _pipeline(n_total: int, batch_size: int, gather, call, consume, bar, pipelined=True) -> None:
    """Run ``call`` on every batch while the background thread consumes and gathers.

    ``gather(g0, n, slot, serial)`` fills input slot ``slot`` (0 or 1) with patches
    ``g0 .. g0 + n``; ``call(n, slot)`` runs the user's function on it and returns the
    checked result; ``consume(g0, n, result, serial)`` merges it. Batch ``b`` uses slot
    ``b % 2``; the background task consumes batch ``b - 1`` before it gathers batch
    ``b + 1`` into that batch's slot, so a result that is a view of its own input is
    merged before the slot is overwritten. Batches are consumed strictly in order.
    On any exception (KeyboardInterrupt included) the background task is waited for
    and the exception propagates. The calling thread's own gather and merge run the
    parallel kernels unless :func:`_engine.serial_wanted`. ``pipelined=False`` runs
    everything in the calling thread, one batch after the other (inside a dask task,
    where dask supplies the parallelism).
    """
    starts = range(0, n_total, batch_size)
    serial = E.serial_wanted()

    def size(b):
        return min(batch_size, n_total - starts[b])

    if not pipelined:
        for b in range(len(starts)):
            gather(starts[b], size(b), 0, serial)
            consume(starts[b], size(b), call(size(b), 0), serial)
            if bar is not None:
                bar.update(size(b))
        return
    gather(0, size(0), 0, serial)
    pending = None
    with ThreadPoolExecutor(1, thread_name_prefix="patchjit-batches") as pool:

        def background(prev, b_next):
            if prev is not None:
                consume(*prev, True)
            if b_next < len(starts):
                gather(starts[b_next], size(b_next), b_next % 2, True)

        for b in range(len(starts)):
            fut = pool.submit(background, pending, b + 1)
            try:
                result = call(size(b), b % 2)
                if pending is not None and np.may_share_memory(result, pending[2]):
                    raise ValueError(
                        "func returned memory that its previous result also uses (a "
                        "reused output buffer?); the previous batch is merged while func "
                        "runs, so return a new array each call (e.g. buffer.copy())"
                    )
            except BaseException:
                _wait([fut])
                raise
            fut.result()
            pending = (starts[b], size(b), result)
            if bar is not None:
                bar.update(size(b))
    consume(*pending, serial)


def _tails(grid: PatchGrid, nk: int, k_axis: bool):
    """Batch shapes after ``n``: func's input, its output, and the output's description."""
    nc = grid.n_channels
    in_tail = grid.patch_shape + ((nc,) if grid.channel_axis is not None else ())
    out_tail = grid.patch_shape + ((nk,) if k_axis else ())
    hint = "(n, *patch_shape, K) with K output channels" if k_axis else "(n, *patch_shape)"
    return in_tail, out_tail, hint


def batch_weights(grid: PatchGrid, nk: int, acc_dtype):
    """The window as the scatter kernel's ``(pd, ph, pw * nk)`` weights, or ones."""
    if grid.window_array is None:
        return np.ones((1, 1, 1), dtype=acc_dtype)
    w = grid.window_array.reshape(E.canonical3(grid.patch_shape, 1))
    return np.ascontiguousarray(np.repeat(w, nk, axis=2), dtype=acc_dtype)


def accumulate_batches(
    src, func, grid: PatchGrid, origins3, nk, k_axis, wts, red, acc, region0, batch_size,
    bar=None, pipelined=True,
):  # fmt: skip
    """Overlap-add ``func``'s outputs for the patches at ``origins3`` into ``acc``.

    The batch counterpart of :func:`_engine.run_accumulate`, with its meaning: ``src``
    is the read-only C-contiguous ``(D, H, W, C)`` source, ``origins3`` the patch
    origins per axis in ``src``'s frame (their product, in C order, is the patch list);
    ``acc`` (``(D, H, W * nk)``, holding the reduction's identity) covers the region
    starting at ``region0`` of that frame and contributions outside it are dropped.
    ``grid`` gives the patch shape, channels and window; ``wts`` is
    :func:`batch_weights`; ``red`` a reduction name. Not normalised.
    """
    in_tail, out_tail, hint = _tails(grid, nk, k_axis)
    pd, ph, pw = E.canonical3(grid.patch_shape, 1)
    od, oh, ow = origins3
    n_total = len(od) * len(oh) * len(ow)
    nc = src.shape[3]
    weighted = grid.window_array is not None
    code = _RED_CODES[red]
    bs = min(batch_size, n_total)
    slots = np.empty((2 if pipelined else 1, bs, pd, ph, pw * nc), dtype=acc.dtype)
    limits = (acc.shape[0], acc.shape[1])

    def gather(g0, n, slot, serial):
        kern = K.gather_batch_serial if serial else K.gather_batch
        kern(src, od, oh, ow, g0, n, slots[slot])

    def call(n, slot):
        batch = slots[slot, :n].reshape((n, *in_tail))
        return _as_result(func(batch), (n, *out_tail), hint)

    def consume(g0, n, result, serial):
        outs = np.ascontiguousarray(result, dtype=acc.dtype).reshape((n, pd, ph, pw * nk))
        rows = _rows(g0, n, od, oh, len(ow), pd, ph, region0, limits)
        kern = K.scatter_batch_serial if serial else K.scatter_batch
        kern(outs, wts, weighted, code, od, oh, ow, g0, pw, nk, region0, rows, acc)

    _pipeline(n_total, bs, gather, call, consume, bar, pipelined)


def map_values(
    src, func, grid: PatchGrid, origins3, acc_dtype, res, batch_size, bar=None, pipelined=True
):  # fmt: skip
    """Fill the flat ``res`` with ``func``'s value for each patch at ``origins3``
    (``src``'s frame, C order), batches in ``acc_dtype``. The batch counterpart of
    :func:`_engine.run_map`."""
    nc = grid.n_channels
    in_tail = grid.patch_shape + ((nc,) if grid.channel_axis is not None else ())
    pd, ph, pw = E.canonical3(grid.patch_shape, 1)
    od, oh, ow = origins3
    bs = min(batch_size, res.size)
    slots = np.empty((2 if pipelined else 1, bs, pd, ph, pw * src.shape[3]), dtype=acc_dtype)

    def gather(g0, n, slot, serial):
        kern = K.gather_batch_serial if serial else K.gather_batch
        kern(src, od, oh, ow, g0, n, slots[slot])

    def call(n, slot):
        batch = slots[slot, :n].reshape((n, *in_tail))
        return _as_result(func(batch), (n,), "one value per patch")

    def consume(g0, n, values, serial):
        res[g0 : g0 + n] = values

    _pipeline(res.size, bs, gather, call, consume, bar, pipelined)


# --- public API ---------------------------------------------------------------------


def process_batches(
    image,
    func,
    patch_shape,
    step=None,
    *,
    overlap=None,
    batch_size=DEFAULT_BATCH_SIZE,
    out_channels=None,
    edge="cover",
    dtype=None,
    threads=None,
    channel_axis=None,
    window=None,
    sigma=None,
    reduce="mean",
    pad_mode="reflect",
    pad_value=0,
    out=None,
    progress=False,
):
    """Run any Python function on batches of patches; merge by weighted overlap-add.

    The batch counterpart of :func:`process_image` for functions numba cannot compile:
    a PyTorch model, a scikit-image call, a NumPy expression over a stack of patches.
    Same geometry, edges, windows, reductions, dtypes and result as
    :func:`process_image` with an equivalent callback (to float rounding), and the same
    bits for any ``batch_size`` and any ``threads``. Gathering patches and merging
    outputs are compiled; they run in a background thread while ``func`` works on the
    current batch, so a function that releases the GIL (torch, most NumPy) hides them.
    Extra memory: the accumulator (the result's size, in the accumulation dtype) and a
    few batches, never a copy per patch.

    Parameters
    ----------
    image : array_like or dask.array.Array
        1-D, 2-D or 3-D image, optionally with one channel axis (see
        :func:`process_image`). Never modified. A dask array gives a lazy dask array
        (see :func:`patchjit.dask.process_batches`): ``func`` then runs in dask's worker
        threads, several at once under the threaded scheduler, so it must be
        thread-safe (or compute with ``scheduler="synchronous"``).
    func : callable
        ``func(batch) -> array``. ``batch`` is a C-contiguous float array of shape
        ``(n, *patch_shape)``, or ``(n, *patch_shape, C)`` with channels (channels
        last whatever the image's channel axis), ``n <= batch_size``, patches in C
        order of the grid. Its dtype is the accumulation dtype: float32, or float64
        for float64 and 32/64-bit integer images. It is reused for a later batch once
        ``func`` returns: copy what you keep. ``func`` returns anything
        :func:`numpy.asarray` takes, of real numbers, with shape
        ``(n, *patch_shape[, K])``: ``K = out_channels``, else the image's channel
        count; no channel axis when the image has none and ``out_channels`` is not
        given. Values are converted to the accumulation dtype. Return a new array (or
        a view of ``batch``) on each call, never a buffer you reuse: the previous
        batch's output is merged while ``func`` runs (a reused buffer raises
        ValueError).
    patch_shape, step, overlap, edge, threads, channel_axis, window, sigma, reduce
        As in :func:`process_image`. ``threads`` sets numba's threads for the
        compiled gather and merge; ``func`` uses whatever threads it uses.
    batch_size : int, default 32
        Most patches per call of ``func``.
    out_channels : int, optional
        Channels of ``func``'s output when it differs from the image's (RGB to grey,
        ``K`` class scores). The result then has ``out_channels`` channels at the
        image's channel axis, or on a new last axis when the image has none.
    dtype, pad_mode, pad_value, out, progress
        As in :func:`process_image`; ``out`` has the result's shape. ``out`` is
        written only once every batch has been merged: if ``func`` raises (or Ctrl-C
        stops the run between batches), ``out`` is left untouched and the exception
        propagates.

    Returns
    -------
    numpy.ndarray or dask.array.Array
        The merged image: the image's shape, or with ``out_channels`` channels. Lazy,
        with the image's chunks, for a dask array (``out`` and ``progress`` are then
        refused).

    Raises
    ------
    TypeError
        ``func`` is not callable or returns something that is not an array of real
        numbers; a wrong kind of argument.
    ValueError
        ``func`` returns the wrong shape (the message names the expected and received
        shapes); bad geometry or options, as in :func:`process_image`.

    Notes
    -----
    A PyTorch model without copies: ``torch.from_numpy(batch)`` shares the batch's
    memory, and ``tensor.numpy()`` (``tensor.detach().numpy()`` for a tensor that
    requires grad; better, run under ``torch.inference_mode()``) hands the output back
    without a copy. torch wants channels first (``NCHW``) and patchjit gives channels
    last (``NHWC``); ``permute`` makes views both ways, and torch's convolutions accept
    the non-contiguous input::

        def run(batch):                       # (n, h, w, C) float32
            with torch.inference_mode():
                x = torch.from_numpy(batch).permute(0, 3, 1, 2)   # (n, C, h, w) view
                y = model(x)                                      # (n, K, h, w)
                return y.permute(0, 2, 3, 1).numpy()              # (n, h, w, K) view

    For a grey image without a channel axis use ``x = torch.from_numpy(batch)[:, None]``
    and ``y[:, 0].numpy()``. torch releases the GIL while it computes, so patchjit's
    gathering and merging overlap with the model.

    Examples
    --------
    >>> import numpy as np, patchjit
    >>> image = np.random.default_rng(0).random((64, 64), dtype=np.float32)
    >>> def remove_mean(batch):  # (n, 16, 16): one NumPy call per batch
    ...     return batch - batch.mean(axis=(1, 2), keepdims=True)
    >>> result = patchjit.process_batches(image, remove_mean, (16, 16), overlap=0.5,
    ...                                   window="hann", batch_size=8)
    >>> result.shape, result.dtype
    ((64, 64), dtype('float32'))
    >>> rgb = np.random.default_rng(0).random((32, 32, 3))
    >>> grey = patchjit.process_batches(rgb, lambda b: b.mean(axis=-1, keepdims=True),
    ...                                 (8, 8), out_channels=1)
    >>> grey.shape, bool(np.allclose(grey[..., 0], rgb.mean(axis=-1)))
    ((32, 32, 1), True)
    """
    if _is_dask(image):
        return _on_dask("process_batches", locals())
    img = as_image(image)
    grid = PatchGrid(
        img.shape, patch_shape, step, edge, overlap=overlap, channel_axis=channel_axis,
        window=window, sigma=sigma,
    )  # fmt: skip
    red = _check_merge_geometry(grid, reduce)
    _check_pad(grid, img.dtype, pad_mode, pad_value)
    _check_func(func)
    batch_size = _check_batch_size(batch_size)
    threads = resolve_threads(threads)
    result_shape, nk, k_axis = _out_layout(img.shape, grid, out_channels)
    acc_dtype = E.accumulation_dtype(img.dtype)
    _check_window(grid, acc_dtype)
    out_dtype = _output_dtype(dtype, acc_dtype, out)
    _check_out(out, result_shape, img)
    src = _source4(img, grid, pad_mode, pad_value)
    sp = E.canonical3(grid.spatial_shape, 1)
    init = 0.0 if red in ("mean", "sum") else (-np.inf if red == "max" else np.inf)
    acc = np.full((sp[0], sp[1], sp[2] * nk), init, dtype=acc_dtype)
    origins3 = E.canonical3(grid.origins, np.zeros(1, dtype=np.int64))
    region0 = tuple(int(b) for b, _ in E.canonical3(grid.pad_width, (0, 0)))
    wts = batch_weights(grid, nk, acc_dtype)
    with _running(threads, progress, grid.n_patches) as bar:
        accumulate_batches(
            src, func, grid, origins3, nk, k_axis, wts, red, acc, region0, batch_size, bar
        )
        _normalise(acc, grid, nk, red, E.serial_wanted())
    result = acc.reshape((*grid.spatial_shape, nk))
    if not k_axis:
        result = result[..., 0]
    elif grid.channel_axis is not None:
        result = np.moveaxis(result, -1, grid.channel_axis)
    return to_dtype(result, out_dtype, out)


def _values_dtype(acc_dtype, out_dtype):
    """As map_patches: float64 storage for integer and float64 outputs."""
    return np.float64 if out_dtype.kind in "iu" else np.result_type(acc_dtype, out_dtype)


def _rows(g0, n, od, oh, gw, pd, ph, region0, limits):
    """Rows ``(d_lo, d_hi, h_lo, h_hi)`` of the accumulator that patches ``g0 .. g0 + n``
    touch: their bounding box (patches run in C order of the grid), clipped to it."""
    ghw = len(oh) * gw
    (i0, r0), (i1, r1) = divmod(g0, ghw), divmod(g0 + n - 1, ghw)
    j0, j1 = (r0 // gw, r1 // gw) if i0 == i1 else (0, len(oh) - 1)
    d = np.clip([od[i0] - region0[0], od[i1] + pd - region0[0]], 0, limits[0])
    h = np.clip([oh[j0] - region0[1], oh[j1] + ph - region0[1]], 0, limits[1])
    return int(d[0]), int(d[1]), int(h[0]), int(h[1])


def map_batches(
    image,
    func,
    patch_shape,
    step=None,
    *,
    overlap=None,
    batch_size=DEFAULT_BATCH_SIZE,
    edge="valid",
    dtype=None,
    threads=None,
    channel_axis=None,
    pad_mode="reflect",
    pad_value=0,
    progress=False,
):
    """Compute one number per patch with any Python function over batches of patches.

    The batch counterpart of :func:`map_patches`: ``func(batch)`` returns ``n`` values,
    one per patch of ``batch``; the result has the grid's shape and equals
    :func:`map_patches` with an equivalent callback. Gathering the next batch runs in a
    background thread while ``func`` works.

    Parameters
    ----------
    image : array_like or dask.array.Array
        1-D, 2-D or 3-D image, optionally with channels (see :func:`map_patches`). A
        dask array gives a lazy dask array, bitwise equal to the in-memory result (see
        :func:`patchjit.dask.map_batches`); ``func`` must then be thread-safe under
        dask's threaded scheduler.
    func : callable
        ``func(batch) -> values``: ``batch`` as in :func:`process_batches` (a reused,
        C-contiguous float array ``(n, *patch_shape[, C])``); ``values`` anything
        :func:`numpy.asarray` takes, of real numbers, with shape ``(n,)``.
    patch_shape, step, overlap, edge, dtype, threads, channel_axis, pad_mode, pad_value
        As in :func:`map_patches` (``edge`` defaults to ``"valid"``; ``"pad"`` centres
        patches on pixels).
    batch_size : int, default 32
        Most patches per call of ``func``.
    progress : bool, default False
        Show a tqdm progress bar over patches.

    Returns
    -------
    numpy.ndarray or dask.array.Array
        Array of the grid's shape (``PatchGrid(...).grid_shape``); lazy for a dask
        array.

    Raises
    ------
    TypeError, ValueError
        As in :func:`process_batches`.

    Examples
    --------
    >>> import numpy as np, patchjit
    >>> image = np.arange(16.0).reshape(4, 4)
    >>> patchjit.map_batches(image, lambda b: b.max(axis=(1, 2)) - b.min(axis=(1, 2)), 2)
    array([[5., 5., 5.],
           [5., 5., 5.],
           [5., 5., 5.]])
    """
    if _is_dask(image):
        return _on_dask("map_batches", locals())
    img = as_image(image)
    grid = PatchGrid(
        img.shape, patch_shape, step, edge, overlap=overlap, channel_axis=channel_axis,
        centered=True,
    )  # fmt: skip
    _check_pad(grid, img.dtype, pad_mode, pad_value)
    _check_func(func)
    batch_size = _check_batch_size(batch_size)
    threads = resolve_threads(threads)
    acc_dtype = E.accumulation_dtype(img.dtype)
    out_dtype = _output_dtype(dtype, acc_dtype, None)
    src = _source4(img, grid, pad_mode, pad_value)
    origins3 = E.canonical3(grid.origins, np.zeros(1, dtype=np.int64))
    res = np.empty(grid.n_patches, dtype=_values_dtype(acc_dtype, out_dtype))
    with _running(threads, progress, grid.n_patches) as bar:
        map_values(src, func, grid, origins3, acc_dtype, res, batch_size, bar)
    return to_dtype(res.reshape(grid.grid_shape), out_dtype)
