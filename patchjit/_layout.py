"""How ``unpatchify`` reads a stack of patches: which grid, which form, which channels."""

from __future__ import annotations

import itertools

import numpy as np

from ._grid import PatchGrid
from ._validate import MAX_CHANNELS_GUESS


def _refuse_flat_channels(shape, image_shape) -> None:
    """Flattened patches spanning a short last axis: channels, or a spatial axis?"""
    last = image_shape[-1]
    m = len(image_shape)
    if m < 2 or shape[-1] != last or last > MAX_CHANNELS_GUESS or last >= max(image_shape[:-1]):
        return
    raise ValueError(
        f"flattened patches of shape {tuple(shape[1:])} for image_shape {image_shape} are "
        f"ambiguous: the last axis ({last} entries) may hold channels of a {m - 1}-D image "
        f"or be a spatial axis. Pass channel_axis=-1 for channels, or step as a tuple of "
        f"{m} entries for {m} spatial axes (or pass the patches in the grid form that "
        f"patchify returns)"
    )


def _patches_layout(shape, image_shape, step, overlap, edge, channel_axis, window, sigma):
    """The :class:`PatchGrid` that ``unpatchify`` reads patches of ``shape`` on.

    The readings, in order of preference (the first that fits the geometry wins):
    the grid form ``(*grid_shape, *patch_shape)``; the grid form with channels last
    ``(*grid_shape, *patch_shape, C)`` (``2 * len(image_shape) - 1`` axes, what
    :func:`patchify` returns for an image with channels); the flattened form
    ``(n_patches, *patch_shape)``. ``channel_axis`` (or ``step``/``overlap`` given as a
    tuple, one entry per spatial axis) narrows the choice. ``edge=None`` takes the
    ``"cover"`` grid if the patches fit it, else the ``"valid"`` one (:func:`patchify`'s).
    """
    m, nd = len(image_shape), len(shape)
    if channel_axis is not None:
        k = m - 1
        readings = [(True, k)] if nd == 2 * k + 1 else [(False, k)] if nd == k + 2 else []
    else:
        readings = [(True, m, None)] if nd == 2 * m else []
        if nd == 2 * m - 1 and m >= 2:
            readings.append((True, m - 1, m - 1))
        if nd == m + 1:
            readings.append((False, m, None))
        readings = [(g, k) for g, k, _ in readings]
    ranks = {len(v) for v in (step, overlap) if isinstance(v, (tuple, list, np.ndarray))}
    readings = [(g, k) for g, k in readings if not ranks or ranks == {k}]
    if not readings:
        with_c = " with channels" if channel_axis is not None else ""
        raise ValueError(
            f"patches with {nd} axes do not match image_shape {image_shape}{with_c}: "
            f"expected the grid form (*grid_shape, *patch_shape[, C]) or the flattened "
            f"form (n_patches, *patch_shape[, C]); for flattened patches with channels "
            f"pass channel_axis"
        )
    error = None
    edges = ("cover", "valid") if edge is None else (edge,)
    for (grid_form, k), edge in itertools.product(readings, edges):
        ch = channel_axis if channel_axis is not None else (m - 1 if k < m else None)
        lead = k if grid_form else 1
        try:
            grid = PatchGrid(
                image_shape, tuple(shape[lead : lead + k]), step, edge, overlap=overlap,
                channel_axis=ch, window=window, sigma=sigma,
            )  # fmt: skip
        except ValueError as exc:
            error = error or exc
            continue
        if (
            len(edges) > 1
            and edge == "cover"
            and any(st > p for st, p in zip(grid.step, grid.patch_shape))
        ):
            continue  # gaps between patches: only the 'valid' grid describes them
        tail = grid.patch_shape + ((grid.n_channels,) if ch is not None else ())
        want = grid.grid_shape if grid_form else (grid.n_patches,)
        if tuple(shape[lead:]) == tail and tuple(shape[:lead]) == want:
            if not grid_form and ch is None and not ranks:
                _refuse_flat_channels(shape, image_shape)
            return grid
        got = f"a {tuple(shape[:lead])} grid of" if lead > 1 else f"{shape[0]}"
        error = error or ValueError(
            f"{got} patches of shape {tuple(shape[lead:])} do not fit "
            f"the grid of image shape {image_shape}, patch {grid.patch_shape}, step "
            f"{grid.step}, edge {edge!r}: it has {grid.n_patches} patches, grid "
            f"{grid.grid_shape}, each of shape {tail}"
        )
    raise error
