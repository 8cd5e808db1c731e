"""The :class:`Op` registry: named, parameterised built-in operations for the CLI.

One table, :data:`_OPS`: each op is one record holding everything known about it: its
name, kind, parameters and defaults, the numba callback it runs, how its parameters
become the callback's arguments, its parameter check, and a special implementation
where it needs one (``dct-denoise`` decorrelates colour). The out-of-core path
(:mod:`patchjit._large`) runs :attr:`Op.callback` with :meth:`Op.args` too.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from numba import njit

from .._engine import accumulation_dtype
from .._validate import as_image, per_axis, resolve_layout, resolve_step
from ..api import map_patches, process_image
from . import _basic, _dct

__all__ = ["Op", "Param", "available", "get"]

KINDS = ("process", "map")


@dataclass(frozen=True)
class Param:
    """One parameter of an :class:`Op`.

    Attributes
    ----------
    name : str
        Keyword name (also the CLI option, ``--name``).
    type : type
        Python type the value is converted to (``float``, ``int``, ``str``).
    default : object
        Default value; ``None`` means the parameter is required (see :attr:`required`).
    help : str
        One-line description.
    """

    name: str
    type: type
    default: object
    help: str

    @property
    def required(self) -> bool:
        """True when the parameter has no default and must be given."""
        return self.default is None


@dataclass(frozen=True)
class Op:
    """A built-in operation: a named patch callback with its parameters and defaults.

    Calling an ``Op`` runs it on an image and returns a float array of the image's
    shape. ``kind="process"`` ops run through :func:`patchjit.process_image` (every
    patch is transformed, results are overlap-averaged); ``kind="map"`` ops through
    :func:`patchjit.map_patches` with ``edge="pad"`` (reflect padding, numpy's
    ``"reflect"`` = scipy's ``"mirror"``) at step 1, so each output pixel is the value of
    the patch centred on it.

    Images: 1-D, 2-D or 3-D, optionally with one channel axis, under the same channel
    rule as :func:`patchjit.process_image`: ``channel_axis=`` names the channel axis; a
    tuple ``patch_shape`` with one entry fewer than the image has axes means channels
    last; an int (or the default) ``patch_shape`` makes every axis spatial, and is
    refused as ambiguous on an image whose last axis could be channels (``<= 4``
    entries) unless ``channel_axis`` is given. Channels are processed independently,
    except by ``dct-denoise``, which decorrelates RGB first.

    Attributes
    ----------
    name : str
        CLI name, e.g. ``"dct-denoise"``.
    summary : str
        One-line description.
    kind : {"process", "map"}
        ``"process"``: image to same-shape image by overlap-averaging patch outputs;
        ``"map"``: one number per pixel from the patch centred on it.
    params : tuple of Param
        The op's parameters (keyword arguments of the call).
    default_patch : int
        Default patch side (square or cubic patch).
    callback : callable
        The numba callback run on each grey plane (``func(patch, out, *args)`` for
        ``process`` ops, ``func(patch) -> float`` for ``map`` ops); ``None`` for an op
        that is not one callback.
    callback_args : callable, optional
        ``callback_args(params) -> tuple``: the callback's extra arguments from the
        checked parameters (default: none).
    check : callable, optional
        ``check(params)`` raises ValueError for parameter values out of range.
    implementation : callable, optional
        Replaces running :attr:`callback` per channel:
        ``implementation(img, patch_shape, step, spatial, has_channels, options, params)``.

    Examples
    --------
    >>> import numpy as np
    >>> from patchjit import ops
    >>> op = ops.get("local-std")
    >>> op.kind, op.default_patch
    ('map', 3)
    >>> op(np.zeros((6, 7))).shape
    (6, 7)
    >>> ops.get("dct-denoise")(np.zeros((16, 16)), colour=1)
    Traceback (most recent call last):
    ...
    ValueError: op 'dct-denoise' has no parameter 'colour'; valid parameters: sigma
    """

    name: str
    summary: str
    kind: str
    params: tuple[Param, ...]
    default_patch: int
    callback: Callable | None = field(default=None, repr=False, compare=False)
    callback_args: Callable | None = field(default=None, repr=False, compare=False)
    check: Callable | None = field(default=None, repr=False, compare=False)
    implementation: Callable | None = field(default=None, repr=False, compare=False)

    def args(self, params: dict) -> tuple:
        """The callback's extra arguments for checked ``params``."""
        return () if self.callback_args is None else tuple(self.callback_args(params))

    def __call__(
        self,
        image,
        patch_shape=None,
        step=None,
        *,
        overlap=None,
        edge=None,
        window=None,
        channel_axis=None,
        threads=None,
        progress=False,
        **params,
    ) -> np.ndarray:
        """Run the op on ``image``; return a float array of the image's shape.

        Parameters
        ----------
        image : array_like
            Image (see the class notes on channels).
        patch_shape : int or tuple of int, optional
            Patch size per spatial axis; default :attr:`default_patch` on every axis.
        step : int or tuple of int, optional
            Stride between patches (``process`` ops only; ``map`` ops need 1).
        overlap : float or tuple of float, optional
            Instead of ``step`` (``process`` ops), as in :func:`patchjit.process_image`.
        edge : str, optional
            ``process`` ops: ``"cover"`` (default), ``"valid"`` or ``"pad"`` (reflect
            padding), as in :func:`patchjit.process_image`. ``map`` ops: only ``"pad"``.
        window : str or array_like, optional
            Merge weights for ``process`` ops (see :func:`patchjit.process_image`).
        channel_axis : int, optional
            Axis holding channels, as in :func:`patchjit.process_image` (the same
            channel rule: an int or default ``patch_shape`` on an image whose last axis
            could be channels is refused as ambiguous unless this is given).
        threads : int, optional
            Number of threads (default: all).
        progress : bool, default False
            Show a progress bar.
        **params
            The op's parameters (:attr:`params`).

        Returns
        -------
        numpy.ndarray
            Float result (float32, or float64 for float64 and 32/64-bit integer
            images), same shape as ``image``.

        Raises
        ------
        ValueError
            Unknown, missing or invalid parameters (the message names the valid ones),
            or options the op does not support.
        """
        values = self._check_params(params)
        img = as_image(image)
        size = self.default_patch if patch_shape is None else patch_shape
        spatial, channel_axis = resolve_layout(img.ndim, size, channel_axis, img.shape)
        patch_shape = per_axis(size, spatial, "patch_shape")
        has_channels = channel_axis is not None
        if has_channels:
            img = np.moveaxis(img, channel_axis, -1)
        if self.kind == "map":
            if edge not in (None, "pad"):
                raise ValueError(
                    f"op {self.name!r} is a map op: it gives one value per pixel from the "
                    f"patch centred on it, so edge must be 'pad' (the default), not {edge!r}"
                )
            if overlap is not None or np.any(np.asarray(1 if step is None else step) != 1):
                raise ValueError(
                    f"op {self.name!r} is a map op: step must be 1 for the result to have "
                    f"the image's shape, got {step!r}"
                )
            if window is not None:
                raise ValueError(f"op {self.name!r} is a map op: window does not apply")
        options = {"threads": threads, "progress": progress}
        if self.kind == "process":
            step = resolve_step(step, overlap, patch_shape)
            options.update(edge="cover" if edge is None else edge, window=window)
        run = self.implementation or self._run_callback
        result = run(img, patch_shape, step, spatial, has_channels, options, values)
        return np.moveaxis(result, -1, channel_axis) if has_channels else result

    def _check_params(self, params: dict) -> dict:
        known = {p.name: p for p in self.params}
        valid = ", ".join(known) or "none"
        for name in params:
            if name not in known:
                raise ValueError(
                    f"op {self.name!r} has no parameter {name!r}; valid parameters: {valid}"
                )
        values = {}
        for p in self.params:
            value = params.get(p.name, p.default)
            if value is None:
                raise ValueError(
                    f"op {self.name!r} needs parameter {p.name!r} ({p.help}); "
                    f"valid parameters: {valid}"
                )
            values[p.name] = _convert(self.name, p, value)
        if self.check is not None:
            self.check(values)
        return values

    def _run_callback(self, img, patch_shape, step, spatial, has_channels, options, params):
        """Run :attr:`callback` on the image, or on each channel and stack the results."""
        args = self.args(params)
        if self.kind == "map":

            def run_one(x):
                return map_patches(x, self.callback, patch_shape, 1, edge="pad", **options)
        else:

            def run_one(x):
                return process_image(x, self.callback, patch_shape, step, args=args, **options)

        if not has_channels:
            return run_one(img)
        results = [run_one(img[..., c]) for c in range(img.shape[-1])]
        return np.stack(results, axis=-1)


def _convert(op_name: str, p: Param, value):
    """``value`` converted to ``p.type`` (numbers, or strings as from a command line)."""
    if isinstance(value, bool) or (p.type is not str and isinstance(value, np.bool_)):
        raise ValueError(f"op {op_name!r}: parameter {p.name!r} must be a {p.type.__name__}, "
                         f"got {value!r}")  # fmt: skip
    if p.type in (int, float) and not isinstance(value, (numbers.Real, str, np.generic)):
        raise ValueError(f"op {op_name!r}: parameter {p.name!r} must be a {p.type.__name__}, "
                         f"got {type(value).__name__} {value!r}")  # fmt: skip
    try:
        converted = p.type(value)
    except (TypeError, ValueError):
        raise ValueError(
            f"op {op_name!r}: parameter {p.name!r} must be a {p.type.__name__}, got {value!r}"
        ) from None
    if p.type is int and isinstance(value, float) and value != converted:
        raise ValueError(f"op {op_name!r}: parameter {p.name!r} must be an integer, got {value!r}")
    return converted


# --- dct-denoise -----------------------------------------------------------------------


# Size-specialised DCT callbacks: compiling one compiles only its own kernel.
@njit
def _dct_gray_8(patch, out, sigma):
    _dct._GRAY8(patch, out, 3.0 * sigma)


@njit
def _dct_gray_16(patch, out, sigma):
    _dct._GRAY16(patch, out, 3.0 * sigma)


_DCT_GRAY = {8: _dct_gray_8, 16: _dct_gray_16}


def _run_dct(img, patch_shape, step, spatial, has_channels, options, params):
    """Grey: one pass. RGB: decorrelate the whole image, denoise each channel, go back.

    The colour transform is per pixel and linear, so transforming the image once gives
    the same result as :func:`dct_denoise_color` (which transforms every patch), with
    less work per patch and a single small compiled kernel shared with grey images.
    """
    if spatial != 2:
        raise ValueError(
            f"op 'dct-denoise' works on 2-D images (H, W) or (H, W, C), got an image of shape "
            f"{img.shape} with {spatial} spatial axes"
        )
    ps = patch_shape
    args = (float(params["sigma"]),)
    func = _DCT_GRAY.get(ps[0], _dct.dct_denoise) if ps[0] == ps[1] else _dct.dct_denoise

    def run_plane(plane):
        return process_image(plane, func, ps, step, args=args, **options)

    if not has_channels:
        return run_plane(img)
    if img.shape[-1] != 3:
        return np.stack([run_plane(img[..., c]) for c in range(img.shape[-1])], axis=-1)
    work = accumulation_dtype(img.dtype)
    cm = _dct.COLOR_MATRIX.astype(work)
    x = img.astype(work, copy=False)
    # Elementwise, not tensordot/matmul: BLAS threads left spinning after a tiny
    # product would compete with numba's threads for the cores.
    planes = [x[..., 0] * cm[c, 0] + x[..., 1] * cm[c, 1] + x[..., 2] * cm[c, 2] for c in range(3)]
    den = [run_plane(p) for p in planes]
    out = np.empty((*den[0].shape, 3), dtype=den[0].dtype)
    for k in range(3):
        out[..., k] = den[0] * cm[0, k] + den[1] * cm[1, k] + den[2] * cm[2, k]
    return out


def _check_sigma(values):
    sigma = values["sigma"]
    if not math.isfinite(sigma) or sigma < 0:
        raise ValueError(
            f"op 'dct-denoise': parameter 'sigma' must be a finite number >= 0 (the noise "
            f"standard deviation in the image's units), got {sigma!r}"
        )


_SIGMA = Param(
    "sigma",
    float,
    None,
    "noise standard deviation in the image's units (e.g. 25 for uint8 data); required",
)

_OPS = (
    Op(
        "dct-denoise",
        "sliding-window DCT denoising (Yu & Sapiro, IPOL 2011); RGB decorrelated first",
        "process",
        (_SIGMA,),
        8,
        callback=_dct.dct_denoise,
        callback_args=lambda params: (float(params["sigma"]),),
        check=_check_sigma,
        implementation=_run_dct,
    ),
    Op("identity", "copy every patch: rebuilds the image (checks geometry)", "process", (), 8,
       callback=_basic.identity),
    Op("mean-remove", "subtract each patch's mean, overlap-averaged (high-pass)", "process", (),
       8, callback=_basic.mean_remove),
    Op("local-std", "standard deviation of the patch centred on each pixel", "map", (), 3,
       callback=_basic.local_std),
    Op("median", "median of the patch centred on each pixel (median filter)", "map", (), 3,
       callback=_basic.median),
)  # fmt: skip
_BY_NAME = {op.name: op for op in _OPS}


def available() -> tuple[Op, ...]:
    """All built-in operations, in a fixed order.

    Returns
    -------
    tuple of Op

    Examples
    --------
    >>> from patchjit import ops
    >>> [op.name for op in ops.available()]
    ['dct-denoise', 'identity', 'mean-remove', 'local-std', 'median']
    """
    return _OPS


def get(name: str) -> Op:
    """The built-in operation called ``name``.

    Parameters
    ----------
    name : str
        CLI name of the op, e.g. ``"dct-denoise"``.

    Returns
    -------
    Op

    Raises
    ------
    ValueError
        No op has that name; the message lists the valid names.

    Examples
    --------
    >>> from patchjit import ops
    >>> ops.get("median").summary
    'median of the patch centred on each pixel (median filter)'
    >>> ops.get("blur")
    Traceback (most recent call last):
    ...
    ValueError: unknown op 'blur'; valid ops: dct-denoise, identity, mean-remove, local-std, median
    """
    try:
        return _BY_NAME[name]
    except (KeyError, TypeError):
        valid = ", ".join(_BY_NAME)
        raise ValueError(f"unknown op {name!r}; valid ops: {valid}") from None
