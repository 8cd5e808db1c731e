"""Argument checks of :func:`patchjit.torch.sliding_window_inference`, MONAI's rules."""

from __future__ import annotations

import numbers
from collections.abc import Sequence

import numpy as np

# MONAI's (torch.nn.functional.pad's) names -> numpy.pad's
PAD_MODES = {"constant": "constant", "reflect": "reflect", "replicate": "edge", "circular": "wrap"}
MODES = ("constant", "gaussian")


def checked_name(value, what: str, valid) -> str:
    """``value`` (a str or a str enum such as MONAI's BlendMode) checked against ``valid``."""
    name = getattr(value, "value", value)
    if not isinstance(name, str) or name not in valid:
        choices = ", ".join(repr(v) for v in valid)
        raise ValueError(f"{what} must be one of {choices}, got {value!r}")
    return name


def roi_shape(roi_size, spatial: tuple[int, ...]) -> tuple[int, ...]:
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


def checked_overlaps(overlap, k: int) -> tuple[float, ...]:
    values = tuple(overlap) if isinstance(overlap, Sequence) else (overlap,) * k
    if len(values) != k or not all(
        isinstance(o, numbers.Real) and 0 <= o < 1 for o in values
    ):  # fmt: skip
        raise ValueError(
            f"overlap must be a number in [0, 1) or one per spatial axis ({k}), got {overlap!r}"
        )
    return tuple(float(o) for o in values)


def short_axis_padding(spatial, roi) -> tuple[tuple[int, int], ...]:
    """MONAI's padding for a window larger than the image: ``roi - size`` on the short
    axes only, half (rounded down) before and the rest after."""
    diffs = (max(p - n, 0) for n, p in zip(spatial, roi))
    return tuple((d // 2, d - d // 2) for d in diffs)


def check_padding_fits(pads, spatial, mode: str) -> None:
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
