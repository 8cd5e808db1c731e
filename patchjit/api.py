"""Public functions: check and normalise arguments, allocate, dispatch to the engine."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from numpy.typing import ArrayLike, DTypeLike

from . import _engine as E
from . import _kernels as K
from ._bands import check_finalize, run_banded
from ._callback import check_args, resolve
from ._cast import to_dtype
from ._dispatch import is_dask, on_dask
from ._grid import PatchGrid
from ._layout import _patches_layout
from ._plan import Shape, _running, make_plan, run_process, values_dtype
from ._validate import as_image

__all__ = ["map_patches", "patchify", "process_image", "unpatchify"]

# --- public API ---------------------------------------------------------------------


def process_image(
    image: ArrayLike,
    func: Callable,
    patch_shape: Shape,
    step: Shape | None = None,
    *,
    overlap: float | Sequence[float] | None = None,
    args: tuple = (),
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
    out_channels: int | None = None,
    margin: Shape = 0,
    scale: float | Sequence[float] = 1,
    finalize: Callable | None = None,
) -> np.ndarray:
    """Run ``func`` on every patch and merge the results by weighted overlap-add.

    Extraction, the callback and merging happen in one compiled, parallel pass; no
    patch is ever materialised, and extra memory does not grow with the number of
    patches.

    Parameters
    ----------
    image : array_like
        1-D, 2-D or 3-D image, optionally with one channel axis. Any bool, integer or
        real floating dtype; C-, F-ordered, strided or read-only. Never modified.
    func : callable
        ``func(patch, out, *args) -> None``, ideally a ``numba.njit`` function (a plain
        Python function is compiled with ``numba.njit`` on first use and remembered on
        the function object). ``patch`` is a **read-only, C-contiguous** array holding
        the patch's values in the image dtype, channels on its last axis (writing into
        it fails to compile; ``patch.ravel()`` and ``patch.reshape(patch.size)`` are
        free, so flat loops work). ``out`` is a C-contiguous float buffer of the same
        shape (``(*patch_shape, out_channels)`` with ``out_channels``) that ``func``
        fills; it holds NaN on entry, so an element the callback forgets shows up as NaN
        in the result. ``func`` must return None. The callback is compiled once per
        combination of types and reused on later calls.
    patch_shape : int or tuple of int
        Patch size per spatial axis (an int applies to all).
    step : int or tuple of int, optional
        Stride between patches, per spatial axis (default 1).
    overlap : float or tuple of float, optional
        Instead of ``step``: the fraction in ``[0, 1)`` of a patch that neighbours
        share; ``step = max(1, int(patch * (1 - overlap)))`` per axis, MONAI's rule, so
        the same ``overlap`` gives the same windows as MONAI's
        ``sliding_window_inference``. Giving both ``step`` and ``overlap`` is an error.
    args : tuple, optional
        Extra arguments passed to ``func`` unchanged (numbers, arrays, tuples).
    edge : {"cover", "valid", "pad"}, default "cover"
        ``"cover"``: where the regular grid stops short of the far border, one more patch
        flush with that border is added, so every pixel is covered. ``"valid"``: the
        regular grid only; pixels no patch covers are NaN. ``"pad"``: the image is padded
        with :func:`numpy.pad` (``pad_mode``, ``pad_value``) by ``patch - step`` on each
        side (plus what the far side needs to end flush), so border pixels are covered as
        often as interior ones; the result is cropped back to the image's shape.
    dtype : dtype, optional
        Output dtype. Default: float32, or float64 for float64 and 32/64-bit integer
        images (the accumulation dtype). Integer outputs are rounded to nearest and
        clipped to the dtype's range.
    threads : int, optional
        numba threads for this call (the global setting is restored after); default all.
    channel_axis : int, optional
        Axis holding channels; default the last axis when the image has one more axis
        than ``patch_shape``.
    window : None, str or array_like, optional
        Weight of each patch position when merging: ``"boxcar"``, ``"triangle"``,
        ``"hann"``, ``"hamming"``, ``"gaussian"`` (see ``sigma``), or a positive array of
        the patch's spatial shape. Every weight is positive (see :mod:`patchjit._windows`),
        so no covered pixel ever has zero total weight.
    sigma : float or tuple of float, optional
        Standard deviation of the gaussian window in pixels, per axis or one for all
        (default ``patch / 4``). Only valid with ``window="gaussian"``.
    reduce : {"mean", "sum", "max", "min"}, default "mean"
        ``"mean"``: sum of ``w * out`` divided by the sum of ``w`` over covering patches;
        ``"sum"``: sum of ``w * out``; ``"max"``/``"min"``: elementwise extreme (NaN
        propagates), no window.
    pad_mode : str, default "reflect"
        :func:`numpy.pad` mode for ``edge="pad"``.
    pad_value : number, default 0
        Constant for ``pad_mode="constant"``; must be representable in the image dtype.
    out : numpy.ndarray, optional
        Array of the result's shape (the image's, or with ``out_channels`` channels) to
        write the result into (its dtype is the output dtype).
    progress : bool, default False
        Show a tqdm progress bar over patches.
    out_channels : int, optional
        Number of channels the callback writes per pixel (e.g. 1 for RGB to grey, K class
        scores). ``out`` then has shape ``(*patch_shape, out_channels)`` and the result
        has ``out_channels`` channels where the image has its channel axis, or as a new
        last axis when the image has none (also for ``out_channels=1``: giving it always
        yields a channel axis). Default: the image's channels, and the image's shape.
    margin : int or tuple of int, default 0
        ``out`` is the centre of the patch, ``margin`` pixels smaller on each side
        (valid convolutions, "overlap-tile"); see :func:`process_batches`, which has
        the same geometry. ``out`` then has shape ``(patch - 2 * margin) * scale``.
    scale : number or tuple of numbers, default 1
        Output pixels per input pixel (integers or 1/integers), as in
        :func:`process_batches`; the result has the image's spatial shape times
        ``scale``.
    finalize : callable, optional
        ``finalize(block) -> array`` on each finished block of whole rows of the merged
        result, as in :func:`process_batches` (e.g. an argmax over ``out_channels``
        class scores): the full result is never held. ``out`` cannot be combined with
        it.

    Returns
    -------
    numpy.ndarray
        The merged image: the image's shape, or with ``out_channels`` channels.

    Raises
    ------
    TypeError
        ``image`` is not numeric, ``func`` is not a function or fails to compile for the
        patch, ``out`` and ``args`` types (numba's message is included), writes into
        ``patch``, or returns a value.
    ValueError
        Bad geometry (patch larger than the image, non-positive sizes, rank mismatch),
        unknown option names, or ``out`` of the wrong shape or dtype.

    Examples
    --------
    >>> import numpy as np, numba, patchjit
    >>> @numba.njit
    ... def remove_mean(patch, out, gain):
    ...     m = patch.mean()
    ...     for i in range(patch.shape[0]):
    ...         for j in range(patch.shape[1]):
    ...             out[i, j] = gain * (patch[i, j] - m)
    >>> image = np.arange(36, dtype=np.float32).reshape(6, 6)
    >>> result = patchjit.process_image(image, remove_mean, (3, 3), args=(1.0,))
    >>> result.shape, result.dtype
    ((6, 6), dtype('float32'))
    >>> float(abs(result).max())  # a linear ramp has no local detail left
    7.0
    """
    if is_dask(image):
        return on_dask("process_image", locals())
    img = as_image(image)
    plan = make_plan(img.shape, img.dtype, locals(), inputs=(img, image),
                     own=lambda: (resolve(func), check_args(args)))  # fmt: skip
    func, args = plan.own
    src = plan.source(img)
    take, oview = plan.views(out_channels)
    E.prepare_process_callback(func, take, oview, src, plan.acc_dtype, args)
    check_finalize(finalize, out, several=False)
    with _running(plan.threads, progress, plan.grid.n_patches) as bar:
        if finalize is not None and plan.grid.ndim >= 2:

            def accumulate(sub_in, targets):
                (p, band, sub_out, r0), serial = targets[0], plan.serial()
                geometry = None if p.out_geometry is None else (sub_out, p.grid.patch3)
                E.run_accumulate(
                    src, take, oview, func, args, sub_in, p.in_patch3, p.grid_in.n_channels,
                    p.weights3(), p.code, band, r0, bar, nc_out=p.nco, serial=serial,
                    out_geometry=geometry,
                )  # fmt: skip

            return run_banded(plan, [plan], [finalize], accumulate)[0]
        result = run_process(plan, src, take, oview, func, args, bar)
    result = to_dtype(result, plan.out_dtype, out)
    return result if finalize is None else finalize(result)


def map_patches(
    image: ArrayLike,
    func: Callable,
    patch_shape: Shape,
    step: Shape | None = None,
    *,
    overlap: float | Sequence[float] | None = None,
    args: tuple = (),
    edge: str = "valid",
    dtype: DTypeLike | None = None,
    threads: int | None = None,
    channel_axis: int | None = None,
    pad_mode: str = "reflect",
    pad_value: float = 0,
    progress: bool = False,
) -> np.ndarray:
    """Compute one number per patch: ``result[idx] = func(patch, *args)``.

    Parameters
    ----------
    image : array_like
        1-D, 2-D or 3-D image, optionally with channels (see :func:`process_image`).
    func : callable
        ``func(patch, *args) -> number``, a ``numba.njit`` function (plain Python
        functions are compiled with ``numba.njit``).
    patch_shape, step : int or tuple of int
        Patch size and stride per spatial axis (default stride 1).
    overlap : float or tuple of float, optional
        Instead of ``step``, as in :func:`process_image`.
    args : tuple, optional
        Extra arguments passed to ``func`` unchanged.
    edge : {"valid", "cover", "pad"}, default "valid"
        ``"valid"``: the regular grid. ``"cover"``: plus one patch flush with the far
        border where the regular grid stops short of it. ``"pad"``: the image is padded
        by ``p // 2`` before and ``p - 1 - p // 2`` after (``pad_mode``), so that at
        step 1 the result has the image's shape and each value belongs to the patch
        centred on that pixel, as in :func:`scipy.ndimage.generic_filter`. numpy and
        scipy name the same boundary modes differently:

        ============== ======================
        ``pad_mode``   scipy.ndimage ``mode``
        ============== ======================
        "reflect"      "mirror"
        "symmetric"    "reflect"
        "edge"         "nearest"
        "wrap"         "wrap"
        "constant"     "constant" (``cval``)
        ============== ======================
    dtype : dtype, optional
        Result dtype; default float32 (float64 for float64 and 32/64-bit integer images).
    threads : int, optional
        numba threads for this call.
    channel_axis : int, optional
        Axis holding channels (patches then carry all channels, last).
    pad_mode, pad_value
        Padding for ``edge="pad"``, as in :func:`numpy.pad`.
    progress : bool, default False
        Show a tqdm progress bar.

    Returns
    -------
    numpy.ndarray
        One value per patch, of the grid's shape:
        ``PatchGrid(image.shape, patch_shape, step, edge, centered=True).grid_shape``
        (``centered=True`` is the padding ``map_patches`` uses for ``edge="pad"``; at
        step 1 that grid has the image's spatial shape). Without ``centered=True``,
        ``PatchGrid`` describes ``process_image``'s grid, which differs for
        ``edge="pad"``.

    Examples
    --------
    >>> import numpy as np, numba, patchjit
    >>> @numba.njit
    ... def local_range(patch):
    ...     return patch.max() - patch.min()
    >>> image = np.arange(16.0).reshape(4, 4)
    >>> patchjit.map_patches(image, local_range, 2)
    array([[5., 5., 5.],
           [5., 5., 5.],
           [5., 5., 5.]])
    """
    if is_dask(image):
        return on_dask("map_patches", locals())
    img = as_image(image)
    plan = make_plan(img.shape, img.dtype, locals(),
                     own=lambda: (resolve(func), check_args(args)))  # fmt: skip
    func, args = plan.own
    grid = plan.grid
    src = plan.source(img)
    take, _ = plan.views()
    E.prepare_map_callback(func, take, src, args)
    # Store the callback's values at least as precisely as the requested dtype holds
    # them: float64 for float64 and integer outputs (no rounding through float32).
    res = np.empty(E.canonical3(grid.grid_shape, 1), dtype=values_dtype(plan))
    with _running(plan.threads, progress, grid.n_patches) as bar:
        E.run_map(src, take, func, args, grid.origins3, grid.patch3, res, bar)
    return to_dtype(res.reshape(grid.grid_shape), plan.out_dtype)


def patchify(
    image: ArrayLike,
    patch_shape: Shape,
    step: Shape | None = None,
    *,
    overlap: float | Sequence[float] | None = None,
    channel_axis: int | None = None,
) -> np.ndarray:
    """Zero-copy, read-only view of every patch of the regular grid.

    Parameters
    ----------
    image : numpy.ndarray
        1-D, 2-D or 3-D image, optionally with a channel axis.
    patch_shape, step : int or tuple of int
        Patch size and stride per spatial axis (default stride 1).
    overlap : float or tuple of float, optional
        Instead of ``step``, as in :func:`process_image`.
    channel_axis : int, optional
        Axis holding channels (default: the last, when the image has one more axis than
        ``patch_shape``).

    Returns
    -------
    numpy.ndarray
        Read-only strided view of shape ``(*grid_shape, *patch_shape)``, or
        ``(*grid_shape, *patch_shape, C)`` with channels. No data is copied.

    Examples
    --------
    >>> import numpy as np, patchjit
    >>> image = np.arange(20).reshape(4, 5)
    >>> p = patchjit.patchify(image, (2, 3), step=(2, 1))
    >>> p.shape
    (2, 3, 2, 3)
    >>> p[1, 2]
    array([[12, 13, 14],
           [17, 18, 19]])
    >>> np.shares_memory(p, image)
    True
    """
    if not isinstance(image, np.ndarray):
        image = as_image(image)
    elif image.size == 0 or image.ndim == 0:
        as_image(image)  # raises the right error
    grid = PatchGrid(
        image.shape, patch_shape, step, "valid", overlap=overlap, channel_axis=channel_axis
    )
    k = grid.ndim
    v = image if grid.channel_axis is None else np.moveaxis(image, grid.channel_axis, -1)
    win = sliding_window_view(v, grid.patch_shape, axis=tuple(range(k)))
    if grid.channel_axis is not None:
        win = np.moveaxis(win, k, -1)
    return win[tuple(slice(None, None, s) for s in grid.step)]


def unpatchify(
    patches: ArrayLike,
    image_shape: Sequence[int],
    step: Shape | None = None,
    *,
    overlap: float | Sequence[float] | None = None,
    edge: str | None = None,
    channel_axis: int | None = None,
    window: str | ArrayLike | None = None,
    sigma: float | Sequence[float] | None = None,
    reduce: str = "mean",
    dtype: DTypeLike | None = None,
    out: np.ndarray | None = None,
    threads: int | None = None,
    progress: bool = False,
) -> np.ndarray:
    """Merge patches back into an image by (weighted) overlap-add mean.

    The inverse of :func:`patchify`: ``unpatchify(patchify(img, p, s), img.shape, s)``
    returns ``img`` (as float) wherever the grid covers it.

    Parameters
    ----------
    patches : array_like
        Either the grid form ``(*grid_shape, *patch_shape[, C])`` that :func:`patchify`
        returns, or the same patches flattened to ``(n_patches, *patch_shape)`` in C order
        of the grid. Flattened patches with channels need ``channel_axis``.
    image_shape : tuple of int
        Shape of the image to rebuild, channels included.
    step : int or tuple of int, optional
        Stride the patches were taken with (default 1).
    overlap : float or tuple of float, optional
        Instead of ``step``, as in :func:`process_image`.
    edge : {None, "cover", "valid"}, default None
        Grid the patches follow (see :class:`PatchGrid`). :func:`patchify` gives the
        ``"valid"`` grid; both are the same when ``(size - patch) % step == 0``. The
        default takes ``"cover"`` when the number of patches fits it, else ``"valid"``,
        so ``unpatchify(patchify(x, p, s), x.shape, s)`` always rebuilds ``x``. Pixels
        no patch covers are NaN.
    channel_axis : int, optional
        Axis of ``image_shape`` holding channels. Without it, channels are inferred only
        from the grid form (patches with ``2 * len(image_shape) - 1`` axes, channels
        last, as :func:`patchify` returns them); this reading wins over flattened
        patches whenever both fit (a ``(10, 3)`` signal with patches ``(4, 4, 3)``). Give
        ``step`` as a tuple, one entry per spatial axis, to choose the other reading.
    window, sigma, reduce, dtype, out, threads, progress
        As in :func:`process_image`.

    Returns
    -------
    numpy.ndarray
        Array of ``image_shape``.

    Examples
    --------
    >>> import numpy as np, patchjit
    >>> image = np.random.default_rng(0).random((7, 9))
    >>> patches = patchjit.patchify(image, (3, 4), step=(2, 1))
    >>> back = patchjit.unpatchify(patches, image.shape, step=(2, 1))
    >>> bool(np.allclose(back, image))
    True
    >>> patchjit.unpatchify(np.ones((3, 2)), (5,))
    Traceback (most recent call last):
    ...
    ValueError: 3 patches of shape (2,) do not fit the grid of image shape (5,), ...
    """
    if is_dask(patches):
        return on_dask("unpatchify", locals())
    arr = as_image(patches, "patches")
    image_shape = tuple(int(n) for n in image_shape)
    if edge == "pad":
        raise ValueError("unpatchify takes edge='cover' or 'valid'; 'pad' needs the image")
    grid = _patches_layout(arr.shape, image_shape, step, overlap, edge, channel_axis, window, sigma)
    plan = make_plan(arr.shape, arr.dtype, locals(), grid=grid, inputs=(arr, patches))
    stacked = arr.reshape(E.canonical3(grid.grid_shape, 1) + grid.patch3 + (grid.n_channels,))
    stacked = stacked.view()
    stacked.flags.writeable = False
    with _running(plan.threads, progress, grid.n_patches) as bar:
        result = run_process(plan, stacked, K.take_flat, K.oview_flat, K.copy_flat, (), bar)
    return to_dtype(result, plan.out_dtype, out)
