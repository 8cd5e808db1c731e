"""MONAI-compatible sliding-window inference for PyTorch models: :mod:`patchjit.torch`.

:func:`sliding_window_inference` takes MONAI's arguments, in MONAI's order, and gives
MONAI's numbers; the windows, the padding of short axes, the weights and the merge are
patchjit's own (:func:`patchjit.process_batches`), so the merge is deterministic and
needs memory for the result and a few batches only. :class:`SlidingWindowInferer` is
the callable-object form.

This module imports torch at its top; ``import patchjit`` never imports it (the
``torch`` extra is optional). MONAI itself is not needed.

Layout: the ``N`` images of a 1-D or 2-D batch are stacked on a leading spatial axis
with patch size 1 there, so one :func:`process_batches` call sees every window of
every image in MONAI's order (image by image, C order within an image) and cuts the
same ``sw_batch_size`` batches across image boundaries. 3-D images (patchjit handles
3 spatial axes at most) run one call per image.
"""

from __future__ import annotations

import inspect
import numbers
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from . import batches as _batches_module
from ._grid import PatchGrid
from .batches import process_batches

__all__ = ["SlidingWindowInferer", "importance_map", "sliding_window_inference"]

# MONAI's (torch.nn.functional.pad's) names -> numpy.pad's
_PAD_MODES = {"constant": "constant", "reflect": "reflect", "replicate": "edge", "circular": "wrap"}
_MODES = ("constant", "gaussian")
WEIGHT_FLOOR = 1e-3  # MONAI raises every gaussian weight below this to it


# --- arguments ----------------------------------------------------------------------


def _name(value, what: str, valid) -> str:
    """``value`` (a str or a str enum such as MONAI's BlendMode) checked against ``valid``."""
    name = getattr(value, "value", value)
    if not isinstance(name, str) or name not in valid:
        choices = ", ".join(repr(v) for v in valid)
        raise ValueError(f"{what} must be one of {choices}, got {value!r}")
    return name


def _roi(roi_size, spatial: tuple[int, ...]) -> tuple[int, ...]:
    """Per-axis window size; ``None`` or a non-positive entry means the whole axis."""
    k = len(spatial)
    values = tuple(roi_size) if isinstance(roi_size, Sequence) else (roi_size,) * k
    if len(values) != k:
        raise ValueError(
            f"inputs must have {len(values) + 2} dimensions for a {len(values)}-D roi_size "
            f"(batch, channel, {len(values)} spatial), got inputs of shape {spatial!r} after "
            f"(N, C); roi_size={roi_size!r}"
        )
    out = []
    for v, n in zip(values, spatial):
        if v is None:
            out.append(n)
            continue
        if isinstance(v, bool) or not isinstance(v, numbers.Integral | np.integer):
            raise TypeError(f"roi_size entries must be ints (or None), got {roi_size!r}")
        out.append(int(v) if v > 0 else n)
    return tuple(out)


def _overlaps(overlap, k: int) -> tuple[float, ...]:
    values = tuple(overlap) if isinstance(overlap, Sequence) else (overlap,) * k
    if len(values) != k or not all(
        isinstance(o, numbers.Real) and 0 <= o < 1 for o in values
    ):  # fmt: skip
        raise ValueError(
            f"overlap must be a number in [0, 1) or one per spatial axis ({k}), got {overlap!r}"
        )
    return tuple(float(o) for o in values)


def _short_axis_padding(spatial, roi) -> tuple[tuple[int, int], ...]:
    """MONAI's padding for a window larger than the image: ``roi - size`` on the short
    axes only, half (rounded down) before and the rest after."""
    diffs = (max(p - n, 0) for n, p in zip(spatial, roi))
    return tuple((d // 2, d - d // 2) for d in diffs)


def _check_padding_fits(pads, spatial, mode: str) -> None:
    """torch.nn.functional.pad's limits (numpy would silently pad further)."""
    for a, ((b, e), n) in enumerate(zip(pads, spatial)):
        if mode == "reflect" and max(b, e) >= n:
            raise ValueError(
                f"padding_mode='reflect' needs the padding ({b}, {e}) on spatial axis {a} to "
                f"be smaller than that axis ({n}) (as in torch.nn.functional.pad); use "
                f"'replicate', 'circular' or 'constant', or a smaller roi_size"
            )
        if mode == "circular" and max(b, e) > n:
            raise ValueError(
                f"padding_mode='circular' needs the padding ({b}, {e}) on spatial axis {a} to "
                f"be at most that axis ({n}) (as in torch.nn.functional.pad)"
            )


def importance_map(roi_size, mode="constant", sigma_scale=0.125) -> torch.Tensor:
    """MONAI's per-window weights, float32, of shape ``roi_size``.

    ``"constant"``: ones. ``"gaussian"``: per axis ``exp(-x**2 / (2 sigma**2))`` at
    ``x = i - (p - 1) / 2`` with ``sigma = sigma_scale * p`` (per axis), multiplied
    over the axes in float32; weights below ``1e-3`` are raised to ``1e-3``.

    Examples
    --------
    >>> from patchjit.torch import importance_map
    >>> importance_map((5,), "gaussian", 0.2)
    tensor([0.1353, 0.6065, 1.0000, 0.6065, 0.1353])
    """
    mode = _name(mode, "mode", _MODES)
    roi = tuple(int(p) for p in roi_size)
    if mode == "constant":
        return torch.ones(roi, dtype=torch.float32)
    scales = tuple(sigma_scale) if isinstance(sigma_scale, Sequence) else (sigma_scale,) * len(roi)
    if len(scales) != len(roi) or not all(isinstance(s, numbers.Real) and s > 0 for s in scales):
        raise ValueError(
            f"sigma_scale must be a positive number or one per spatial axis ({len(roi)}), "
            f"got {sigma_scale!r}"
        )
    full = None
    for p, s in zip(roi, scales):
        x = torch.arange(p, dtype=torch.float32) - (p - 1) / 2.0
        g = torch.exp(x**2 / (-2 * (s * p) ** 2))
        full = g if full is None else full.unsqueeze(-1) * g
    return full.clamp(min=max(float(full.min()), WEIGHT_FLOOR))


def _weight_array(w, roi, what: str) -> np.ndarray:
    """A weight map as a float64 array of shape ``roi``, every weight > 0."""
    w = torch.as_tensor(w).detach().to("cpu")
    while w.ndim > len(roi) and w.shape[0] == 1:
        w = w[0]
    if tuple(w.shape) != tuple(roi):
        raise ValueError(
            f"{what} must have the window's shape {tuple(roi)} (or (1, 1, *roi_size)), got "
            f"{tuple(torch.as_tensor(w).shape)}"
        )
    arr = w.to(torch.float64).numpy()
    if not np.all(np.isfinite(arr)) or np.any(arr <= 0):
        raise ValueError(
            f"{what} must hold finite weights > 0 (minimum {arr.min()!r}): patchjit gives "
            f"every window pixel some weight (MONAI accepts zeros and then divides by a zero "
            f"count where no window weighs a pixel)"
        )
    return arr


def _flatten(out):
    """``(keys, tuple of tensors)`` of a predictor's output, as MONAI orders them."""
    if isinstance(out, torch.Tensor):
        return None, (out,), False
    if isinstance(out, Mapping):
        keys = sorted(out.keys())
        return keys, tuple(out[k] for k in keys), True
    if isinstance(out, list | tuple):
        return None, tuple(out), True
    raise TypeError(
        f"predictor must return a tensor, a tuple or a dict of tensors, got {type(out).__name__}"
    )


# --- the run ------------------------------------------------------------------------


class _Windows:
    """Calls the predictor on patchjit's batches, MONAI-style, and converts both ways.

    Batches arrive in C order of the grid, consecutively (``process_batches``'s
    contract), so a counter gives each window's position. The first batch is run ahead
    (:meth:`first`) to learn the outputs' channels and sizes; its result is handed back
    when ``process_batches`` asks for that batch, so the predictor runs once per batch.
    """

    def __init__(self, grid, stacked, image_index, n_in, opts):
        self.grid = grid
        self.stacked = stacked
        self.image_index = image_index  # the image of a per-image (3-D) run
        self.n_in = n_in  # input channels; the rest are the condition's
        self.o = opts
        self.done = 0
        self.cached = None
        self.ratio_needed = False

    def coords(self, g0, n):
        idx = np.unravel_index(np.arange(g0, g0 + n), self.grid.grid_shape)
        starts = [o[i] for o, i in zip(self.grid.origins, idx)]
        roi = self.o["roi"]
        out = []
        for j in range(n):
            if self.stacked:
                b, sp = int(starts[0][j]), [int(s[j]) for s in starts[1:]]
            else:
                b, sp = self.image_index, [int(s[j]) for s in starts]
            out.append([slice(b, b + 1), slice(None)] + [slice(s, s + p) for s, p in zip(sp, roi)])
        return out

    def predict(self, batch: np.ndarray):
        """Run the predictor on ``batch`` (channels last); outputs as torch tensors."""
        o = self.o
        n = batch.shape[0]
        t = torch.from_numpy(batch)
        if self.stacked:
            t = t[:, 0]
        t = t.movedim(-1, 1)  # (n, C, *roi)
        move = {"device": o["sw_device"], "dtype": o["dtype"], "copy": True}
        data = t[:, : self.n_in].to(memory_format=torch.contiguous_format, **move)
        kwargs = dict(o["kwargs"])
        if t.shape[1] > self.n_in:
            kwargs["condition"] = t[:, self.n_in :].to(
                memory_format=torch.contiguous_format, **move
            )
        args = o["args"]
        if o["with_coord"]:
            args = (self.coords(self.done, n), *args)
        keys, outs, multi = _flatten(o["predictor"](data, *args, **kwargs))
        weights = None
        if o["process_fn"] is not None:
            outs, weights = o["process_fn"](outs, data, o["map_t"])
            outs = tuple(outs) if isinstance(outs, list | tuple) else (outs,)
        for y in outs:
            if not isinstance(y, torch.Tensor) or y.ndim != len(o["roi"]) + 2 or y.shape[0] != n:
                shape = tuple(y.shape) if isinstance(y, torch.Tensor) else type(y).__name__
                raise ValueError(
                    f"predictor must return tensors of shape (n, K, *spatial) for a batch of "
                    f"{n} windows, got {shape}"
                )
        return keys, outs, multi, weights

    def to_numpy(self, outs, weights):
        o = self.o
        res = []
        for y in outs:
            y = y.detach()
            if self.ratio_needed and weights is not None:
                # the window merged by patchjit is the first batch's; MONAI weighs each
                # batch by process_fn's weights and divides by the first batch's count
                y = y * (weights.to(y.device, y.dtype) / o["window_t"].to(y.device, y.dtype))
            y = y.to("cpu", o["acc_torch"]).movedim(1, -1).numpy()
            res.append(y[:, None] if self.stacked else y)
        return res

    def first(self, src: np.ndarray):
        """Run the first batch ahead of ``process_batches``; return its raw outputs."""
        n = min(self.o["sw_batch_size"], self.grid.n_patches)
        idx = np.unravel_index(np.arange(n), self.grid.grid_shape)
        starts = [o[i] for o, i in zip(self.grid.origins, idx)]
        tile = self.grid.patch_shape
        batch = np.stack(
            [
                src[tuple(slice(int(s[j]), int(s[j]) + p) for s, p in zip(starts, tile))]
                for j in range(n)
            ]
        ).astype(self.o["acc_dtype"], copy=False)
        got = self.predict(np.ascontiguousarray(batch))
        self.cached = got
        return got

    def __call__(self, batch: np.ndarray):
        if self.done == 0 and self.cached is not None:
            _, outs, _, weights = self.cached
            self.cached = None
        else:
            _, outs, _, weights = self.predict(batch)
        res = self.to_numpy(outs, weights)
        self.done += batch.shape[0]
        return res


def _multi_output_supported() -> bool:
    """process_batches merges tuples of outputs at their own scale (issue 19's
    several outputs; ``scale=`` alone is not enough)."""
    return "scale" in inspect.signature(process_batches).parameters and getattr(
        _batches_module, "MULTI_OUTPUT", False
    )


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
        sorted, as in MONAI). Outputs of another spatial size (another zoom) need
        :func:`process_batches` with multi-resolution outputs (see Notes).
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
        Outputs of another spatial size while :func:`process_batches` cannot merge
        them, or with ``mode="gaussian"``.

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
    roi = _roi(roi_size, spatial)
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
    mode = _name(mode, "mode", _MODES)
    pad_name = _name(padding_mode, "padding_mode", tuple(_PAD_MODES))
    overlaps = _overlaps(overlap, k)
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
        window = _weight_array(map_t, roi, "roi_weight_map")
    else:
        map_t = importance_map(roi, mode, sigma_scale).to(sw_device, dtype)
        window = None if mode == "constant" else _weight_array(map_t, roi, "the gaussian map")

    # the image: channels first as given, the condition as extra channels, padded
    pads = _short_axis_padding(spatial, roi)
    padded = any(b or a for b, a in pads)
    if padded:
        _check_padding_fits(pads, spatial, pad_name)
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
        arr = np.pad(arr, ((0, 0), (0, 0), *pads), mode=_PAD_MODES[pad_name], **extra)

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
        win = _Windows(grid, stacked, i, n_in, opts)
        keys, outs, multi, weights = win.first(np.moveaxis(img, c_axis, -1))
        if i == 0:
            if weights is not None:  # process_fn's first weights make the count map
                window = _weight_array(weights.to(dtype), roi, "process_fn's weights")
            opts["window_t"] = torch.from_numpy(window if window is not None else np.ones(roi))
            sizes = [tuple(y.shape[2:]) for y in outs]
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
    """Outputs at other zooms through process_batches' multi-resolution outputs."""
    if not _multi_output_supported():
        raise NotImplementedError(
            "the predictor returns outputs of another spatial size than roi_size; this "
            "patchjit's process_batches cannot merge outputs at another zoom yet"
        )
    if window is not None:
        raise NotImplementedError(
            "gaussian or roi_weight_map weighting of outputs at another spatial size is not "
            "supported yet (MONAI resizes the weights to each output, nearest-exact)"
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


class SlidingWindowInferer:
    """MONAI's ``SlidingWindowInferer`` over :func:`sliding_window_inference`.

    ``SlidingWindowInferer(roi_size, sw_batch_size, overlap, mode, ...)(inputs, network,
    *args, **kwargs)``; the arguments as in :func:`sliding_window_inference`.
    ``cache_roi_weight_map`` and ``cpu_thresh`` are accepted (the weights are cheap to
    recompute; the merge always runs in CPU memory).

    Examples
    --------
    >>> import torch
    >>> from patchjit.torch import SlidingWindowInferer
    >>> inferer = SlidingWindowInferer((8, 8), sw_batch_size=4, overlap=0.5)
    >>> inferer(torch.ones(1, 1, 20, 20), lambda w: w + 1).unique()
    tensor([2.])
    """

    def __init__(
        self,
        roi_size: Sequence[int] | int,
        sw_batch_size: int = 1,
        overlap: Sequence[float] | float = 0.25,
        mode: str = "constant",
        sigma_scale: Sequence[float] | float = 0.125,
        padding_mode: str = "constant",
        cval: float = 0.0,
        sw_device: torch.device | str | None = None,
        device: torch.device | str | None = None,
        progress: bool = False,
        cache_roi_weight_map: bool = False,
        cpu_thresh: int | None = None,
        buffer_steps: int | None = None,
        buffer_dim: int = -1,
        with_coord: bool = False,
    ) -> None:
        self.roi_size = roi_size
        self.sw_batch_size = sw_batch_size
        self.overlap = overlap
        self.mode = _name(mode, "mode", _MODES)
        self.sigma_scale = sigma_scale
        self.padding_mode = padding_mode
        self.cval = cval
        self.sw_device = sw_device
        self.device = device
        self.progress = progress
        self.buffer_steps = buffer_steps
        self.buffer_dim = buffer_dim
        self.with_coord = with_coord

    def __call__(self, inputs: torch.Tensor, network: Callable[..., Any], *args, **kwargs):
        condition = kwargs.get("condition")
        if condition is not None and condition.shape != inputs.shape:
            raise ValueError(
                f"condition must have inputs' shape {tuple(inputs.shape)}, got "
                f"{tuple(condition.shape)}"
            )
        device = kwargs.pop("device", self.device)
        buffer_steps = kwargs.pop("buffer_steps", self.buffer_steps)
        buffer_dim = kwargs.pop("buffer_dim", self.buffer_dim)
        return sliding_window_inference(
            inputs, self.roi_size, self.sw_batch_size, network, self.overlap, self.mode,
            self.sigma_scale, self.padding_mode, self.cval, self.sw_device, device,
            self.progress, None, None, buffer_steps, buffer_dim, self.with_coord,
            *args, **kwargs,
        )  # fmt: skip
