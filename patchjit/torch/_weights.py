"""MONAI's window weights: the importance map, user maps, and the weights of outputs
at another zoom."""

from __future__ import annotations

import numbers
from collections.abc import Sequence

import numpy as np
import torch

from ._args import MODES, checked_name

WEIGHT_FLOOR = 1e-3  # MONAI raises every gaussian weight below this to it


def importance_map(
    roi_size: Sequence[int], mode: str = "constant", sigma_scale: float | Sequence[float] = 0.125
) -> torch.Tensor:
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
    mode = checked_name(mode, "mode", MODES)
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


def weight_array(w, roi, what: str) -> np.ndarray:
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


def output_weights(w: torch.Tensor, roi, sizes) -> list[torch.Tensor]:
    """Each output's weights, as MONAI derives them from one window's weights ``w``.

    MONAI resizes the weights (nearest-exact) to every output whose size differs from
    ``roi_size``, starting from the previous output's weights, not from the window's;
    an output of the window's size takes the window's weights (where MONAI would fail
    to broadcast the previous output's).
    """
    w = w.reshape(1, 1, *roi)
    current, out = w, []
    for size in sizes:
        if tuple(size) == tuple(roi):
            out.append(w[0, 0])
            continue
        current = torch.nn.functional.interpolate(current, tuple(size), mode="nearest-exact")
        out.append(current[0, 0])
    return out
