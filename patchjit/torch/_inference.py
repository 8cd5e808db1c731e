"""MONAI's ``sliding_window_inference`` over :func:`patchjit.process_batches`."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from .._grid import PatchGrid
from .._plan import resampled_window
from ..batches import process_batches
from ._args import (
    MODES,
    PAD_MODES,
    check_padding_fits,
    checked_name,
    checked_overlaps,
    roi_shape,
    short_axis_padding,
)
from ._weights import importance_map, output_weights, weight_array
from ._windows import Windows


def sliding_window_inference(
    inputs: torch.Tensor,
    roi_size: Sequence[int] | int,
    sw_batch_size: int,
    predictor: Callable[..., Any],
    overlap: Sequence[float] | float = 0.25,
    mode: str = "constant",
    sigma_scale: Sequence[float] | float = 0.125,
    padding_mode: str = "constant",
    cval: float = 0.0,
    sw_device: torch.device | str | None = None,
    device: torch.device | str | None = None,
    progress: bool = False,
    roi_weight_map: torch.Tensor | None = None,
    process_fn: Callable | None = None,
    buffer_steps: int | None = None,
    buffer_dim: int = -1,
    with_coord: bool = False,
    *args: Any,
    **kwargs: Any,
) -> torch.Tensor | tuple[torch.Tensor, ...] | dict[Any, torch.Tensor]:
    """Sliding-window inference with MONAI's signature, over :func:`process_batches`.

    A drop-in for ``monai.inferers.sliding_window_inference``: the same arguments in
    the same order, the same windows (``overlap`` gives the step
    ``max(1, int(roi * (1 - overlap)))``, the last window flush with the border), the
    same padding of axes shorter than the window, the same weights, the same batches of
    ``sw_batch_size`` windows and the same result, to float rounding. The merge is
    patchjit's: deterministic, and its memory is the result plus a few batches.

    Parameters
    ----------
    inputs : torch.Tensor
        ``(N, C, *spatial)`` with 1, 2 or 3 spatial axes, floating point.
    roi_size : int or sequence of int
        Window size per spatial axis; ``None`` or a value ``<= 0`` takes the whole axis.
        An axis shorter than the window is padded (``padding_mode``) by
        ``roi - size``, half before and the rest after, and the result cropped back.
    sw_batch_size : int
        Windows per predictor call (batches run across the ``N`` images for 1-D and
        2-D inputs, as in MONAI; per image for 3-D inputs).
    predictor : callable
        ``predictor(windows, *args, **kwargs)`` with ``windows`` a contiguous
        ``(n, C, *roi_size)`` tensor of ``inputs``' dtype on ``sw_device``; returns a
        tensor ``(n, K, *roi_size)``, or a tuple or dict of such tensors (dict keys are
        sorted, as in MONAI). An output of another spatial size than ``roi_size`` is
        at another zoom (``size / roi`` per axis, as in MONAI; windows must start on
        whole output pixels).
    overlap : float or sequence of float, default 0.25
        Fraction in ``[0, 1)`` shared by neighbouring windows, per axis.
    mode : {"constant", "gaussian"}, default "constant"
        Plain mean, or MONAI's gaussian weights (see :func:`importance_map`).
    sigma_scale : float or sequence of float, default 0.125
        Gaussian sigma as a fraction of the window size, per axis.
    padding_mode : {"constant", "reflect", "replicate", "circular"}, default "constant"
        Padding of axes shorter than the window, with torch.nn.functional.pad's
        meaning; ``cval`` fills ``"constant"``.
    cval : float, default 0.0
    sw_device, device : torch.device or str, optional
        Where the windows go (default: ``inputs``' device) and where the result goes
        (default: ``inputs``' device). The merge itself runs on the CPU.
    progress : bool, default False
        Show a tqdm progress bar.
    roi_weight_map : torch.Tensor, optional
        Weights of a window's pixels, shape ``roi_size``; every weight must be > 0.
    process_fn : callable, optional
        ``process_fn(outputs, windows, weights) -> (outputs, weights)``, called on each
        batch's outputs (a tuple of tensors) as in MONAI. The weights it returns for
        the first batch make the count map, as in MONAI.
    buffer_steps, buffer_dim : optional
        Accepted for compatibility and otherwise ignored: patchjit's merge never holds
        more than the result and a few batches.
    with_coord : bool, default False
        Call ``predictor(windows, coords, *args, **kwargs)`` with MONAI's coordinates:
        per window ``[slice(b, b + 1), slice(None), *spatial slices]`` (padded frame).
    *args, **kwargs
        Passed to ``predictor``. ``condition=`` (a tensor of ``inputs``' batch and
        spatial shape) is padded and cut into windows alongside ``inputs``, as in MONAI.

    Returns
    -------
    torch.Tensor, tuple or dict of torch.Tensor
        ``(N, K, *spatial)`` per output on ``device``, with ``inputs``' dtype (a
        predictor's 1-tuple gives a tensor, as in MONAI).

    Raises
    ------
    TypeError
        ``inputs`` is not a floating-point tensor; ``predictor`` is not callable or
        returns something else than tensors.
    ValueError
        More than 3 spatial axes; ``inputs`` requires grad while autograd is enabled
        (no autograd through the merge); a bad ``roi_size``, ``overlap``, ``mode``,
        ``padding_mode`` or weight map; outputs of the wrong shape.
    NotImplementedError
        Weighted (gaussian or ``roi_weight_map``) outputs at several zooms where MONAI
        resizes the weights from one output to the next and that differs from resizing
        them to each output directly.

    Notes
    -----
    Differences from MONAI, on purpose:

    - No autograd through the merge: the result never requires grad (outputs are
      detached); ``inputs`` that require grad raise ValueError unless autograd is off.
    - 1 to 3 spatial axes.
    - float16/bfloat16: windows reach the predictor in ``inputs``' dtype, but the
      merge accumulates in float32 (MONAI accumulates in float16), so results agree
      to float16 rounding only, and are more accurate.
    - 3-D inputs with ``N > 1``: batches do not cross image boundaries, so a batch can
      hold fewer windows than MONAI's there (the same windows and results unless the
      predictor mixes the windows of a batch, e.g. batch norm in training mode).
    - The result is a plain tensor (a MONAI ``MetaTensor`` input loses its metadata).

    Examples
    --------
    >>> import torch
    >>> from patchjit.torch import sliding_window_inference
    >>> x = torch.rand(2, 1, 40, 50)
    >>> def predictor(w):  # content-dependent: each window's own mean
    ...     return w * w.mean(dim=(2, 3), keepdim=True)
    >>> y = sliding_window_inference(x, (16, 16), 4, predictor, overlap=0.5,
    ...                              mode="gaussian")
    >>> y.shape, y.dtype
    (torch.Size([2, 1, 40, 50]), torch.float32)
    """
    if not isinstance(inputs, torch.Tensor):
        raise TypeError(
            f"inputs must be a torch.Tensor (N, C, *spatial), got {type(inputs).__name__}"
        )
    k = inputs.ndim - 2
    if k < 1:
        raise ValueError(f"inputs must be (N, C, *spatial), got shape {tuple(inputs.shape)}")
    spatial = tuple(int(n) for n in inputs.shape[2:])
    roi = roi_shape(roi_size, spatial)
    if k > 3:
        raise ValueError(
            f"patchjit.torch handles 1 to 3 spatial axes, got {k} (inputs of shape "
            f"{tuple(inputs.shape)}); use monai.inferers.sliding_window_inference"
        )
    if not inputs.is_floating_point():
        raise TypeError(
            f"inputs must be floating point, got {inputs.dtype} (MONAI cannot merge integer "
            f"inputs either); convert with inputs.float()"
        )
    if inputs.requires_grad and torch.is_grad_enabled():
        raise ValueError(
            "inputs requires grad, but patchjit.torch merges without autograd (the result "
            "never requires grad); run under torch.no_grad() / torch.inference_mode(), pass "
            "inputs.detach(), or use MONAI to backpropagate through the merge"
        )
    if not callable(predictor):
        raise TypeError(f"predictor must be callable, got {type(predictor).__name__}")
    mode = checked_name(mode, "mode", MODES)
    pad_name = checked_name(padding_mode, "padding_mode", tuple(PAD_MODES))
    overlaps = checked_overlaps(overlap, k)
    if buffer_steps is not None and buffer_steps > 0 and not -k <= buffer_dim <= k:
        raise ValueError(f"buffer_dim must be in [{-k}, {k}], got {buffer_dim}")
    condition = kwargs.pop("condition", None)
    if condition is not None and (
        not isinstance(condition, torch.Tensor)
        or condition.ndim != inputs.ndim
        or condition.shape[0] != inputs.shape[0]
        or tuple(condition.shape[2:]) != spatial
    ):
        raise ValueError(
            f"condition must be a tensor of inputs' batch and spatial shape "
            f"{tuple(inputs.shape)}, got {getattr(condition, 'shape', type(condition))}"
        )

    dtype = inputs.dtype
    acc_torch = torch.float64 if dtype == torch.float64 else torch.float32
    acc_dtype = np.float64 if dtype == torch.float64 else np.float32
    sw_device = torch.device(sw_device) if sw_device is not None else inputs.device
    device = torch.device(device) if device is not None else inputs.device

    # weights: MONAI computes them in float32 and then rounds to the inputs' dtype
    if roi_weight_map is not None:
        map_t = torch.as_tensor(roi_weight_map).to(sw_device, dtype)
        window = weight_array(map_t, roi, "roi_weight_map")
    else:
        map_t = importance_map(roi, mode, sigma_scale).to(sw_device, dtype)
        window = None if mode == "constant" else weight_array(map_t, roi, "the gaussian map")

    # the image: channels first as given, the condition as extra channels, padded
    pads = short_axis_padding(spatial, roi)
    padded = any(b or a for b, a in pads)
    if padded:
        check_padding_fits(pads, spatial, pad_name)
        if pad_name != "constant" and cval:
            raise ValueError(
                f"cval={cval!r} is only used with padding_mode='constant', got "
                f"padding_mode={pad_name!r} (torch.nn.functional.pad refuses it, and so MONAI)"
            )
    x = inputs.detach().to("cpu", acc_torch)
    n_in = x.shape[1]
    if condition is not None:
        x = torch.cat([x, condition.detach().to("cpu", acc_torch)], dim=1)
    arr = x.numpy()
    if padded:
        extra = {"constant_values": cval} if pad_name == "constant" else {}
        arr = np.pad(arr, ((0, 0), (0, 0), *pads), mode=PAD_MODES[pad_name], **extra)

    stacked = k < 3
    if stacked:  # the N images on a leading spatial axis, patch size 1 there
        images = [arr]
        tile, overlaps = (1, *roi), (0.0, *overlaps)
    else:
        images = list(arr)
        tile = roi
    opts = {
        "roi": roi, "sw_batch_size": sw_batch_size, "sw_device": sw_device, "dtype": dtype,
        "acc_torch": acc_torch, "acc_dtype": acc_dtype, "predictor": predictor,
        "args": args, "kwargs": kwargs, "with_coord": with_coord, "process_fn": process_fn,
        "map_t": map_t,
    }  # fmt: skip
    c_axis = 1 if stacked else 0
    merged, keys, multi = [], None, False
    for i, img in enumerate(images):
        grid = PatchGrid(img.shape, tile, overlap=overlaps, channel_axis=c_axis)
        win = Windows(grid, stacked, i, n_in, opts)
        keys, outs, multi, weights = win.first(np.moveaxis(img, c_axis, -1))
        if i == 0:
            if weights is not None:  # process_fn's first weights make the count map
                window = weight_array(weights.to(dtype), roi, "process_fn's weights")
            opts["window_t"] = torch.from_numpy(window if window is not None else np.ones(roi))
            sizes = [tuple(y.shape[2:]) for y in outs]
            opts["sizes"] = sizes
            zoomed = any(s != roi for s in sizes)
            channels = [int(y.shape[1]) for y in outs]
        # process_fn may weigh later batches differently from the first
        win.ratio_needed = process_fn is not None
        w_tile = None if window is None else (window[None] if stacked else window)
        common = {
            "overlap": overlaps, "batch_size": sw_batch_size, "edge": "cover",
            "window": w_tile, "progress": progress,
        }  # fmt: skip
        if not zoomed:

            def func(batch, win=win):
                res = win(batch)
                return res[0] if len(res) == 1 else np.concatenate(res, axis=-1)

            full = process_batches(
                img, func, tile, channel_axis=c_axis, out_channels=sum(channels), **common
            )
            merged.append(full)
        else:
            merged.append(_merge_zoomed(img, win, tile, c_axis, window, common))
    layout = (stacked, zoomed, channels, pads, spatial, roi)
    return _finish(merged, layout, keys, multi, device, dtype)


def _merge_zoomed(img, win, tile, c_axis, window, common):
    """Outputs at other zooms through process_batches' several outputs, each at its
    own scale (inferred from its shape)."""
    sizes = win.o["sizes"]
    if window is not None:
        # process_batches resizes the window to each output, nearest-exact; MONAI
        # resizes it from one output to the next: refuse where the two differ
        roi = win.o["roi"]
        theirs = output_weights(torch.from_numpy(window), roi, sizes)
        for j, (size, w) in enumerate(zip(sizes, theirs)):
            ours = resampled_window(window, size)
            if not np.array_equal(np.asarray(ours), w.numpy()):
                raise NotImplementedError(
                    f"output {j} ({size} pixels per window of {tuple(roi)}) would be weighted "
                    f"differently from MONAI, which resizes the weights from the previous "
                    f"output's; use mode='constant', or patchjit.process_batches(window=...)"
                )

    def func(batch):
        return tuple(win(batch))

    return process_batches(np.moveaxis(img, c_axis, -1), func, tile, channel_axis=-1, **common)


def _finish(merged, layout, keys, multi, device, dtype):
    """Crop, split and move the merged arrays to torch tensors on ``device``."""
    stacked, zoomed, channels, pads, spatial, roi = layout
    if not zoomed:
        full = merged[0] if stacked else np.stack(merged)  # (N, K_total, *padded)
        crop = tuple(slice(b, b + n) for (b, _), n in zip(pads, spatial))
        full = full[(slice(None), slice(None), *crop)]
        bounds = np.cumsum([0, *channels])
        parts = [full[:, bounds[j] : bounds[j + 1]] for j in range(len(channels))]
        outs = [_to_torch(p, device, dtype) for p in parts]
    else:
        # channels last per output; (N, *padded * zoom, K) once stacked
        per_out = list(zip(*[m if isinstance(m, tuple) else tuple(m) for m in merged]))
        outs = []
        for arrs in per_out:
            a = arrs[0] if stacked else np.stack(arrs)
            a = np.moveaxis(a, -1, 1)  # (N, K, *out)
            # MONAI's crop: on a padded axis (padded size == roi) the zoom is
            # out_size / roi, and the crop rounds; unpadded axes stay whole
            crop = []
            for (b, e), n, p, m in zip(pads, spatial, roi, a.shape[2:]):
                z = m / p
                crop.append(slice(round(b * z), round((b + n) * z)) if b or e else slice(None))
            outs.append(_to_torch(a[(slice(None), slice(None), *crop)], device, dtype))
    if keys is not None:
        return dict(zip(keys, outs))
    if multi and len(outs) > 1:
        return tuple(outs)
    return outs[0]


def _to_torch(a: np.ndarray, device, dtype) -> torch.Tensor:
    t = torch.from_numpy(np.ascontiguousarray(a))
    return t.to(device=device, dtype=dtype)
