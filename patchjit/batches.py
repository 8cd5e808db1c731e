"""Public batch functions: :func:`process_batches` and :func:`map_batches`.

Any Python function over a stack of patches (a PyTorch model, NumPy, scikit-image): the
checks and the plan are here, the pipelined gather/merge core is in
:mod:`patchjit._batches`, and dask arrays go to :mod:`patchjit.dask`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from numpy.typing import ArrayLike, DTypeLike

from . import _engine as E
from ._bands import check_finalize, finalizer_for, rows_per_group, run_banded
from ._batches import (
    DEFAULT_BATCH_SIZE,
    _check_batch_size,
    _check_func,
    accumulate_batches,
    first_batch,
    is_multi,
    map_values,
    output_keys,
)
from ._cast import to_dtype
from ._dispatch import is_dask, on_dask
from ._plan import Shape, _normalise, _running, make_plan, output_plan, values_dtype
from ._validate import as_image

__all__ = ["map_batches", "process_batches"]


def process_batches(
    image: ArrayLike,
    func: Callable,
    patch_shape: Shape,
    step: Shape | None = None,
    *,
    overlap: float | Sequence[float] | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    out_channels: int | None = None,
    edge: str = "cover",
    dtype: DTypeLike | None = None,
    threads: int | None = None,
    channel_axis: int | None = None,
    window: str | ArrayLike | None = None,
    sigma: float | Sequence[float] | None = None,
    reduce: str = "mean",
    pad_mode: str = "reflect",
    pad_value: float = 0,
    out: np.ndarray | None = None,
    progress: bool = False,
    margin: Shape = 0,
    scale: float | Sequence[float] = 1,
    finalize: Callable | None = None,
) -> np.ndarray:
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
    margin : int or tuple of int, default 0
        Valid convolutions (U-Net "overlap-tile"): ``func``'s output patch is the centre
        of its input patch, ``margin`` pixels smaller on each side. The output tiles
        (``patch - 2 * margin``) cover the image by the usual ``edge``/``step``/
        ``overlap`` rules; each input patch is its tile grown by ``margin``, read from
        the image extended by ``pad_mode``/``pad_value``, so the result has the image's
        shape and every pixel is covered, borders included.
    scale : number or tuple of numbers, default 1
        The output patch is ``(patch - 2 * margin) * scale`` (super-resolution: 2, 4; a
        head at half resolution: 0.5) and the result has the image's spatial shape times
        ``scale``. Integers and 1/integers; patch origins must map to whole output
        pixels, else a ValueError names the multiple that works.
    finalize : callable, optional
        ``finalize(block) -> array``, applied to each finished block of whole rows
        along the first spatial axis of the merged, normalised result (in the output
        dtype and the result's layout), in order; it returns an array with the same
        length along that axis (e.g. ``lambda b: b.argmax(-1).astype(np.uint8)``).
        The blocks are concatenated into the result, so a K-channel result is never
        held whole: the accumulator is a band of rows a few patches high (1-D images
        are finalized whole). ``out`` cannot be combined with it.

        ======================= ==========================================
        input patch             ``patch_shape``
        output tile (input px)  ``patch_shape - 2 * margin``, on the grid
        output patch            ``(patch_shape - 2 * margin) * scale``
        result                  ``image spatial shape * scale``
        ======================= ==========================================

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
    if is_dask(image):
        return on_dask("process_batches", locals())
    img = as_image(image)
    params = locals()
    plan = make_plan(img.shape, img.dtype, params, inputs=(img, image), own_first=True,
                     own=lambda: (_check_func(func), _check_batch_size(batch_size))[1])  # fmt: skip
    check_finalize(finalize, out)
    src = plan.source(img)
    grid, c = plan.grid, 3 - plan.grid.ndim
    origins3 = plan.grid_in.origins3
    banded = finalize is not None and grid.ndim >= 2
    n0 = grid.n_patches  # the first accumulate call's patches (a band's, when banded)
    if banded:
        n0 = min(n0, rows_per_group(plan) * (n0 // len(origins3[c])))
    n0 = min(plan.own, n0)
    first = first_batch(plan, src, func, origins3, n0)
    keys, outputs = None, [plan]
    if is_multi(first, n0, plan):
        if out is not None:
            raise ValueError("out cannot be combined with several outputs; drop out=")
        keys = output_keys(first)
        outputs = [output_plan(plan, params, np.shape(first[k]), k) for k in keys]
    fins = [finalizer_for(finalize, k, len(outputs)) for k in keys or (0,)]
    with _running(plan.threads, progress, grid.n_patches) as bar:
        pending = [first]

        def accumulate(sub_in, targets):  # the first call takes the first batch's result
            accumulate_batches(plan, src, func, sub_in, targets, plan.own, bar,
                               first=pending.pop() if pending else None, keys=keys)  # fmt: skip

        if banded:
            results = run_banded(plan, outputs, fins, accumulate)
        else:
            targets = [(p, p.accumulator(), p.out_origins3, p.grid.region3) for p in outputs]
            accumulate(origins3, targets)
            results = []
            for p, acc, _, _ in targets:
                _normalise(acc, p.grid, p.nco, p.red, E.serial_wanted())
                r = p.layout(acc.reshape((*p.grid.spatial_shape, p.nco)))
                results.append(to_dtype(r, p.out_dtype, out))
    if not banded:  # 1-D images are finalized whole
        results = [r if f is None else f(r) for r, f in zip(results, fins)]
    if keys is None:
        return results[0]
    return dict(zip(keys, results)) if isinstance(first, dict) else tuple(results)


def map_batches(
    image: ArrayLike,
    func: Callable,
    patch_shape: Shape,
    step: Shape | None = None,
    *,
    overlap: float | Sequence[float] | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    edge: str = "valid",
    dtype: DTypeLike | None = None,
    threads: int | None = None,
    channel_axis: int | None = None,
    pad_mode: str = "reflect",
    pad_value: float = 0,
    progress: bool = False,
) -> np.ndarray:
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
    if is_dask(image):
        return on_dask("map_batches", locals())
    img = as_image(image)
    plan = make_plan(img.shape, img.dtype, locals(), own_first=True,
                     own=lambda: (_check_func(func), _check_batch_size(batch_size))[1])  # fmt: skip
    grid = plan.grid
    src = plan.source(img)
    res = np.empty(grid.n_patches, dtype=values_dtype(plan))
    with _running(plan.threads, progress, grid.n_patches) as bar:
        map_values(src, func, grid, grid.origins3, plan.acc_dtype, res, plan.own, bar)
    return to_dtype(res.reshape(grid.grid_shape), plan.out_dtype)


# process_batches merges several outputs per call (tuples and dicts, each at its own
# scale); patchjit.torch checks this to merge MONAI outputs at other zooms.
MULTI_OUTPUT = True
