"""Patch-grid geometry: origins, padding and closed-form coverage.

Everything here is plain numpy on per-axis vectors; nothing scales with the number of
patches times the patch size.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np

from ._validate import check_choice, per_axis, resolve_layout, resolve_step
from ._windows import window_weights

EDGES = ("cover", "valid", "pad")


def canonical3(values, fill):
    """Left-pad a per-spatial-axis tuple to 3 entries (D, H, W): the engine's frame."""
    values = tuple(values)
    return (fill,) * (3 - len(values)) + values


def axis_origins(n: int, p: int, s: int, edge: str) -> np.ndarray:
    """Patch origins along one axis of length ``n`` (already padded for ``edge='pad'``).

    The regular origins are ``0, s, 2s, ...`` while ``origin + p <= n``. With
    ``edge='cover'`` one more origin, ``n - p``, is added when the regular grid stops
    short of the far border.
    """
    regular = np.arange(0, n - p + 1, s, dtype=np.int64)
    if edge == "cover" and regular[-1] != n - p:
        regular = np.append(regular, np.int64(n - p))
    return regular


def axis_padding(n: int, p: int, s: int, centered: bool) -> tuple[int, int]:
    """Padding ``(before, after)`` for ``edge='pad'`` along one axis.

    Full layout (``centered=False``, used when merging): ``p - s`` on both sides, so the
    first and last pixels are covered by as many patches as interior ones, plus what the
    far side needs for the regular grid to end flush with it.
    Centred layout (``map_patches``): ``p // 2`` before and ``p - 1 - p // 2`` after,
    so that at step 1 patch ``i`` is centred on pixel ``i`` (scipy.ndimage's convention).
    """
    if centered:
        return p // 2, p - 1 - p // 2
    halo = max(p - s, 0)
    extra = (-(n + 2 * halo - p)) % s
    return halo, halo + extra


class PatchGrid:
    """The geometry of a patch grid, computed once and reusable.

    Parameters
    ----------
    image_shape : tuple of int
        Shape of the image, channels included.
    patch_shape : int or tuple of int
        Patch size per spatial axis; an int applies to every spatial axis.
    step : int or tuple of int, optional
        Distance between neighbouring patch origins, per spatial axis (default 1).
    overlap : float or tuple of float, optional
        Instead of ``step``: the fraction of a patch that neighbouring patches share,
        in ``[0, 1)``; the step is ``max(1, int(patch * (1 - overlap)))`` per axis
        (MONAI's rule). Giving both ``step`` and ``overlap`` is an error.
    edge : {"cover", "valid", "pad"}, default "cover"
        ``"cover"`` adds one patch flush with the far border where the regular grid
        stops short of it; ``"valid"`` keeps the regular grid only (pixels that no patch
        covers have zero coverage); ``"pad"`` pads the image (see ``pad_width``) so
        that border pixels are covered as often as interior ones.
    channel_axis : int, optional
        Axis of ``image_shape`` that holds channels. By default the last axis is a channel
        axis when ``image_shape`` has one more axis than a tuple ``patch_shape``.
    window : None, str or array_like, optional
        Weighting of each patch when merging, see :func:`patchjit.process_image`.
    sigma : float or tuple of float, optional
        Standard deviation of ``window="gaussian"``, in pixels.
    centered : bool, default False
        With ``edge="pad"``, pad ``p // 2`` before and ``p - 1 - p // 2`` after, so
        that at step 1 patch ``i`` is centred on pixel ``i`` (used by
        :func:`patchjit.map_patches`).

    Attributes
    ----------
    spatial_shape, patch_shape, step : tuple of int
    channel_axis : int or None
    n_channels : int
    pad_width : tuple of (int, int)
        Padding before and after, per spatial axis (zeros unless ``edge="pad"``).
    padded_shape : tuple of int
        Spatial shape after padding.
    origins : tuple of numpy.ndarray
        Patch origins per spatial axis, in the padded frame.
    grid_shape : tuple of int
        Number of patches per spatial axis.
    n_patches : int

    Examples
    --------
    >>> from patchjit import PatchGrid
    >>> g = PatchGrid((100, 100), 39)
    >>> g.grid_shape, g.n_patches
    ((62, 62), 3844)
    >>> g = PatchGrid((10,), 4, step=3)
    >>> g.origins[0]
    array([0, 3, 6])
    >>> g.coverage()
    array([1., 1., 1., 2., 1., 1., 2., 1., 1., 1.])
    >>> PatchGrid((10,), 4, step=4, edge="valid").coverage()
    array([1., 1., 1., 1., 1., 1., 1., 1., 0., 0.])
    """

    def __init__(
        self,
        image_shape: Sequence[int],
        patch_shape: int | Sequence[int],
        step: int | Sequence[int] | None = None,
        edge: str = "cover",
        *,
        overlap: float | Sequence[float] | None = None,
        channel_axis: int | None = None,
        window: str | np.ndarray | None = None,
        sigma: float | Sequence[float] | None = None,
        centered: bool = False,
    ) -> None:
        image_shape = tuple(int(n) for n in image_shape)
        if not image_shape or any(n < 1 for n in image_shape):
            raise ValueError(f"image shape {image_shape} is empty; every axis must be >= 1")
        k, channel_axis = resolve_layout(len(image_shape), patch_shape, channel_axis, image_shape)
        self.image_shape = image_shape
        self.channel_axis = channel_axis
        self.spatial_shape = tuple(n for a, n in enumerate(image_shape) if a != channel_axis)
        self.n_channels = 1 if channel_axis is None else image_shape[channel_axis]
        self.patch_shape = per_axis(patch_shape, k, "patch_shape")
        self.step = resolve_step(step, overlap, self.patch_shape)
        self.edge = check_choice(edge, "edge", EDGES)
        self.centered = bool(centered)
        if edge == "pad":
            self.pad_width = tuple(
                axis_padding(n, p, s, self.centered)
                for n, p, s in zip(self.spatial_shape, self.patch_shape, self.step)
            )
        else:
            self.pad_width = tuple((0, 0) for _ in range(k))
        self.padded_shape = tuple(
            n + b + a for n, (b, a) in zip(self.spatial_shape, self.pad_width)
        )
        # With edge="pad", patches need only fit the padded image, as in scipy.ndimage.
        sizes = zip(self.padded_shape, self.patch_shape)
        too_big = [a for a, (n, p) in enumerate(sizes) if p > n]
        if too_big:
            raise ValueError(
                f"patch_shape {self.patch_shape} is larger than the image's spatial shape "
                f"{self.spatial_shape} on axis {too_big[0]}; patches must fit in the image "
                f"(or use edge='pad', which pads the image to fit)"
            )
        grid_edge = "valid" if edge == "pad" else edge
        self.origins = tuple(
            axis_origins(n, p, s, grid_edge)
            for n, p, s in zip(self.padded_shape, self.patch_shape, self.step)
        )
        self.grid_shape = tuple(len(o) for o in self.origins)
        self.n_patches = int(np.prod(self.grid_shape))
        self.window = window
        self.sigma = sigma
        self.window_vectors, self.window_array = window_weights(window, self.patch_shape, sigma)

    @property
    def ndim(self) -> int:
        """Number of spatial axes."""
        return len(self.patch_shape)

    # --- the engine's 3-D frame: (D, H, W), leading axes of size 1 below 3-D -------

    @property
    def patch3(self) -> tuple[int, int, int]:
        """The patch shape in the 3-D frame."""
        return canonical3(self.patch_shape, 1)

    @property
    def origins3(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Patch origins per axis in the padded 3-D frame (their product is the grid)."""
        return canonical3(self.origins, np.zeros(1, dtype=np.int64))

    @property
    def spatial3(self) -> tuple[int, int, int]:
        """The image's spatial shape in the 3-D frame."""
        return canonical3(self.spatial_shape, 1)

    @property
    def region3(self) -> tuple[int, int, int]:
        """Where the image starts in the padded 3-D frame (the padding before it)."""
        return tuple(int(b) for b, _ in canonical3(self.pad_width, (0, 0)))

    def weights3(self, n_channels: int, dtype) -> np.ndarray | None:
        """The window as ``(pd, ph, pw * n_channels)`` weights in ``dtype`` (each
        position repeated per channel, the accumulator's layout); None without one."""
        if self.window_array is None:
            return None
        w = self.window_array.reshape(self.patch3)
        return np.ascontiguousarray(np.repeat(w, n_channels, axis=2), dtype=dtype)

    def axis_coverage(self, axis: int, weighted: bool = True) -> np.ndarray:
        """Sum over patches of the 1-D window (or 1) along ``axis``, original frame.

        For a separable window the coverage map is the outer product of these vectors.
        """
        p = self.patch_shape[axis]
        if weighted and self.window_vectors is not None:
            w = np.asarray(self.window_vectors[axis], dtype=np.float64)
        else:
            w = np.ones(p)
        starts = np.zeros(self.padded_shape[axis] - p + 1)
        starts[self.origins[axis]] = 1.0
        cov = np.convolve(starts, w)  # sum of the windows placed at every origin
        before = self.pad_width[axis][0]
        return cov[before : before + self.spatial_shape[axis]]

    def coverage(self) -> np.ndarray:
        """Total window weight (patch count when ``window=None``) at every pixel.

        Computed in closed form: the outer product of per-axis vectors for separable
        windows; for a non-separable window array, one shifted outer product per
        window position on all but the last axis. Zero only where no patch covers the
        pixel (possible with ``edge="valid"``).
        """
        if self.window_array is None or self.window_vectors is not None:
            full = self.axis_coverage(0)
            for a in range(1, self.ndim):
                full = np.multiply.outer(full, self.axis_coverage(a))
            return full
        return self._coverage_nonseparable()

    def _coverage_nonseparable(self) -> np.ndarray:
        w = self.window_array
        ind = []
        for a in range(self.ndim):
            v = np.zeros(self.padded_shape[a])
            v[self.origins[a]] = 1.0
            ind.append(v)
        cov = np.zeros(self.padded_shape)
        last = self.ndim - 1
        for lead in itertools.product(*(range(p) for p in self.patch_shape[:-1])):
            vec = np.convolve(ind[last], w[lead])[: self.padded_shape[last]]
            term = None
            for a, j in enumerate(lead):
                shifted = np.zeros_like(ind[a])
                shifted[j:] = ind[a][: len(ind[a]) - j]
                term = shifted if term is None else np.multiply.outer(term, shifted)
            cov += vec if term is None else np.multiply.outer(term, vec)
        crop = tuple(slice(b, b + n) for (b, _), n in zip(self.pad_width, self.spatial_shape))
        return cov[crop]

    def subgrid(self, region):
        """Which patches touch an output region, and which input they read.

        Parameters
        ----------
        region : tuple of slice
            One ``slice(start, stop)`` per spatial axis, in the original (unpadded)
            frame.

        Returns
        -------
        patch_ranges : tuple of (int, int)
            Per axis, the half-open range of patch indices in the global grid whose
            patches overlap ``region``.
        input_region : tuple of slice
            Per axis, the part of the padded image those patches read.

        Examples
        --------
        >>> g = PatchGrid((100,), 10, step=5)
        >>> g.subgrid((slice(40, 60),))
        (((7, 12),), (slice(35, 65, None),))
        """
        ranges, inputs = [], []
        for a, sl in enumerate(region):
            start, stop, _ = sl.indices(self.spatial_shape[a])
            before = self.pad_width[a][0]
            lo, hi = start + before, stop + before
            o = self.origins[a]
            p = self.patch_shape[a]
            i0 = int(np.searchsorted(o + p, lo, side="right"))
            i1 = int(np.searchsorted(o, hi, side="left"))
            ranges.append((i0, i1))
            inputs.append(slice(int(o[i0]), int(o[i1 - 1]) + p) if i1 > i0 else slice(lo, lo))
        return tuple(ranges), tuple(inputs)

    def __repr__(self) -> str:
        return (
            f"PatchGrid(image_shape={self.image_shape}, patch_shape={self.patch_shape}, "
            f"step={self.step}, edge={self.edge!r}, grid_shape={self.grid_shape}, "
            f"n_patches={self.n_patches})"
        )
