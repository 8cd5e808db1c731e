"""Argument checking and normalisation shared by every public function.

Every check runs before any kernel, and every message names the bad value and what
would be valid.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence

import numpy as np

__all__ = [
    "as_image",
    "check_choice",
    "per_axis",
    "resolve_layout",
    "resolve_step",
    "resolve_threads",
]


def as_image(image, name: str = "image") -> np.ndarray:
    """Return ``image`` as a numeric ndarray with native byte order, never modifying it.

    Lists and other array-likes are converted; strings, bytes, None and object or
    complex data raise TypeError. Empty arrays raise ValueError.
    """
    if isinstance(image, (str, bytes)) or image is None:
        raise TypeError(
            f"{name} must be a numeric array (numpy.ndarray or array-like), "
            f"got {type(image).__name__}"
        )
    arr = image if isinstance(image, np.ndarray) else np.asarray(image)
    kind = arr.dtype.kind
    if kind not in "buif":
        raise TypeError(
            f"{name} must hold bool, integer or real floating-point values, got dtype "
            f"{arr.dtype} (from {type(image).__name__}); convert it with "
            f".astype(numpy.float32) first"
        )
    if arr.dtype == np.float16:
        arr = arr.astype(np.float32)  # numba has no float16 arithmetic
    elif not arr.dtype.isnative:
        arr = arr.astype(arr.dtype.newbyteorder("="))
    if arr.ndim == 0:
        raise ValueError(f"{name} must have at least one axis, got a 0-d array")
    if arr.size == 0:
        raise ValueError(f"{name} is empty (shape {arr.shape}); every axis must have length >= 1")
    return arr


def per_axis(value, ndim: int, name: str, *, minimum: int = 1) -> tuple[int, ...]:
    """Broadcast an int, or check a sequence of ``ndim`` ints, each ``>= minimum``."""
    if isinstance(value, (numbers.Integral, np.integer)) and not isinstance(value, bool):
        values = (int(value),) * ndim
    elif isinstance(value, Sequence | np.ndarray) and not isinstance(value, (str, bytes)):
        values = tuple(value)
        if not all(
            isinstance(v, (numbers.Integral, np.integer)) and not isinstance(v, bool)
            for v in values
        ):
            raise TypeError(f"{name} must be an int or a tuple of ints, got {value!r}")
        values = tuple(int(v) for v in values)
        if len(values) != ndim:
            raise ValueError(
                f"{name} {value!r} has {len(values)} entries but the image has {ndim} "
                f"spatial axes; give one value per spatial axis or a single int"
            )
    else:
        raise TypeError(f"{name} must be an int or a tuple of ints, got {value!r}")
    if any(v < minimum for v in values):
        raise ValueError(f"{name} must be >= {minimum} on every axis, got {values}")
    return values


def check_choice(value, name: str, choices: Sequence[str]) -> str:
    """Return ``value`` if it is one of ``choices``, else raise ValueError listing them."""
    if not isinstance(value, str) or value not in choices:
        valid = ", ".join(repr(c) for c in choices)
        raise ValueError(f"unknown {name} {value!r}; valid choices are {valid}")
    return value


# A last axis this short may hold channels (grey+alpha, RGB, RGBA) as well as pixels.
MAX_CHANNELS_GUESS = 4


def resolve_layout(ndim: int, patch_shape, channel_axis, shape=None) -> tuple[int, int | None]:
    """Work out how many axes are spatial and which axis (if any) holds channels.

    The one channel rule of patchjit (the API, the ops and the command line), after
    scikit-image's ``channel_axis`` convention:

    - ``channel_axis`` given: that axis holds channels, every other axis is spatial.
    - ``patch_shape`` a tuple: it names the spatial axes; an image with one more axis
      has channels on its last axis.
    - ``patch_shape`` an int and no ``channel_axis``: every axis is spatial. When
      ``shape`` is given and its last axis is short enough to be channels
      (``<= 4`` entries, shorter than another axis) the two readings differ, so a
      ValueError names both and how to choose.

    Returns ``(n_spatial, channel_axis or None)`` with ``channel_axis`` non-negative.
    """
    if channel_axis is not None:
        if not isinstance(channel_axis, (numbers.Integral, np.integer)) or isinstance(
            channel_axis, bool
        ):
            raise TypeError(f"channel_axis must be an int or None, got {channel_axis!r}")
        if not -ndim <= channel_axis < ndim:
            raise ValueError(
                f"channel_axis {channel_axis} is out of range for an image with {ndim} "
                f"axes; valid values are {-ndim} to {ndim - 1}"
            )
        channel_axis = int(channel_axis) % ndim
        n_spatial = ndim - 1
    elif isinstance(patch_shape, (numbers.Integral, np.integer)):
        n_spatial = ndim
        if shape is not None:
            _refuse_ambiguous_channels(tuple(shape), int(patch_shape))
    else:
        try:
            n_patch = len(patch_shape)
        except TypeError:
            raise TypeError(
                f"patch_shape must be an int or a tuple of ints, got {patch_shape!r}"
            ) from None
        if n_patch == ndim:
            n_spatial = ndim
        elif n_patch == ndim - 1:
            n_spatial, channel_axis = ndim - 1, ndim - 1
        elif n_patch > ndim:
            raise ValueError(
                f"patch_shape {tuple(patch_shape)} has {n_patch} axes but the image has "
                f"only {ndim}; a patch cannot have more axes than the image"
            )
        else:
            raise ValueError(
                f"patch_shape {tuple(patch_shape)} has {n_patch} axes but the image has "
                f"{ndim}; give one patch size per spatial axis (an image may have at "
                f"most one extra axis, for channels)"
            )
    if not 1 <= n_spatial <= 3:
        raise ValueError(
            f"patchjit handles 1, 2 or 3 spatial axes, got {n_spatial} "
            f"(image with {ndim} axes, channel_axis={channel_axis})"
        )
    return n_spatial, channel_axis


def _refuse_ambiguous_channels(shape: tuple[int, ...], p: int) -> None:
    if len(shape) < 2:
        return
    last = shape[-1]
    if last <= MAX_CHANNELS_GUESS and last < max(shape[:-1]):
        k = len(shape) - 1
        raise ValueError(
            f"patch_shape={p} on an image of shape {shape} is ambiguous: its last axis "
            f"({last} entries) may be {last} channels of a {k}-D image or a spatial axis "
            f"of a {k + 1}-D image. Pass channel_axis=-1 for {last} channels "
            f"(patches {(p,) * k}), or patch_shape={(p,) * (k + 1)} for {k + 1} spatial axes"
        )


def resolve_step(step, overlap, patch_shape: tuple[int, ...]) -> tuple[int, ...]:
    """Per-axis step from ``step`` or from ``overlap`` (never both).

    ``overlap`` is a fraction in ``[0, 1)``, one for all axes or one per axis; the
    step is then ``max(1, int(patch * (1 - overlap)))`` per axis, MONAI's rule for
    ``sliding_window_inference``, so the same ``overlap`` gives the same windows in
    both tools. With neither, the step is 1.

    Examples
    --------
    >>> resolve_step(None, 0.25, (128, 128))
    (96, 96)
    >>> resolve_step(None, (0.5, 0.0), (10, 3))
    (5, 3)
    >>> resolve_step(2, None, (8, 8))
    (2, 2)
    """
    k = len(patch_shape)
    if overlap is None:
        return per_axis(1 if step is None else step, k, "step")
    if step is not None:
        raise ValueError(
            f"give either step or overlap, not both (got step={step!r}, overlap={overlap!r})"
        )
    values = overlap if isinstance(overlap, Sequence | np.ndarray) else (overlap,) * k
    values = tuple(values)
    if len(values) != k:
        raise ValueError(
            f"overlap {overlap!r} has {len(values)} entries but there are {k} spatial "
            f"axes; give one fraction per spatial axis or a single number"
        )
    for v in values:
        if not isinstance(v, numbers.Real) or isinstance(v, bool):
            raise TypeError(f"overlap must be a number or a tuple of numbers, got {overlap!r}")
        if not 0 <= v < 1:
            raise ValueError(
                f"overlap must be in [0, 1) on every axis (a fraction of the patch), "
                f"got {overlap!r}"
            )
    return tuple(max(1, int(p * (1 - float(v)))) for p, v in zip(patch_shape, values))


def resolve_threads(threads) -> int | None:
    """Check a ``threads`` argument against numba's thread pool size."""
    if threads is None:
        return None
    import numba

    limit = numba.config.NUMBA_NUM_THREADS
    if not isinstance(threads, (numbers.Integral, np.integer)) or isinstance(threads, bool):
        raise TypeError(f"threads must be an int or None, got {threads!r}")
    if not 1 <= threads <= limit:
        raise ValueError(
            f"threads must be between 1 and {limit} (numba.config.NUMBA_NUM_THREADS), got {threads}"
        )
    return int(threads)
