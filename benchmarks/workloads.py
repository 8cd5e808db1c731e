"""The benchmark table: what is measured, on which input, and which tools can run it.

A workload is either a ``process`` workload (per-patch output merged by overlap-add mean,
as :func:`patchjit.process_image`) or a ``map`` workload (one number per patch, as
:func:`patchjit.map_patches`). ``op`` names the per-patch operation (see ``ops.py``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

MODES = ("quick", "standard", "full")
PYTHON_LOOP_TOOLS = ("empatches", "tiler")  # a Python loop over the patches
PROCESS_TOOLS = ("patchjit", "numpy", "sklearn", "torch", "skimage", "patchify",
                 *PYTHON_LOOP_TOOLS)  # fmt: skip
ND_TOOLS = ("patchjit", "numpy", "skimage", "tiler")  # channels, volumes, non-square patches


def _per_axis(value: int | tuple[int, ...], n: int) -> tuple[int, ...]:
    return value if isinstance(value, tuple) else (value,) * n


@dataclass(frozen=True)
class Workload:
    name: str
    description: str
    kind: str  # "process" or "map"
    op: str  # "identity", "mean_removal" or "local_std"
    shape: tuple[int, ...]  # spatial axes, then the channel axis if ``channels``
    dtype: str
    patch: int | tuple[int, ...]  # per spatial axis (an int applies to all)
    step: int | tuple[int, ...]
    tools: tuple[str, ...]
    atol: float  # max abs error accepted against the float64 reference
    modes: tuple[str, ...] = MODES  # modes that run it when --only is not given
    quick_shape: tuple[int, ...] | None = None  # smaller input for --quick
    repeats: int | None = None  # fixed number of timed repeats (overrides --repeats)
    warmup_shape: tuple[int, ...] | None = None  # warm up on a small input of this shape
    attempt_peers: bool = True  # False: peers are only reported with their memory need
    timeout_s: int | None = None  # per-measurement limit, instead of the mode's default
    channels: bool = False  # the last axis of ``shape`` holds channels (not patched)
    window: str | None = None  # merge window (process workloads), None = plain mean

    @property
    def spatial_ndim(self) -> int:
        return len(self.shape) - self.channels

    @property
    def patch_shape(self) -> tuple[int, ...]:
        return _per_axis(self.patch, self.spatial_ndim)

    @property
    def step_shape(self) -> tuple[int, ...]:
        return _per_axis(self.step, self.spatial_ndim)

    @property
    def overlaps(self) -> bool:
        """Patches overlap (some pixel is covered by several patches)."""
        return any(p > s for p, s in zip(self.patch_shape, self.step_shape))

    @property
    def is_square_2d(self) -> bool:
        """Grey 2-D image, square patch, one step, no window: what every peer can run."""
        return (
            self.spatial_ndim == 2 and not self.channels and self.window is None
            and isinstance(self.patch, int) and isinstance(self.step, int)
        )  # fmt: skip

    def shape_for(self, mode: str) -> tuple[int, ...]:
        return self.quick_shape if mode == "quick" and self.quick_shape else self.shape

    def grid_for(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        """Patch grid on an input of ``shape``: the valid grid for ``process``, one patch
        per pixel for ``map`` (edge="pad")."""
        spatial = shape[: self.spatial_ndim]
        if self.kind == "map":
            return tuple((n - 1) // s + 1 for n, s in zip(spatial, self.step_shape))
        return tuple(
            (n - p) // s + 1 for n, p, s in zip(spatial, self.patch_shape, self.step_shape)
        )

    def grid_shape(self, mode: str) -> tuple[int, ...]:
        return self.grid_for(self.shape_for(mode))

    def grid_is_flush(self, mode: str) -> bool:
        """True when the regular grid ends flush with the far border (no 'cover' patch)."""
        spatial = self.shape_for(mode)[: self.spatial_ndim]
        return all((n - p) % s == 0 for n, p, s in zip(spatial, self.patch_shape, self.step_shape))

    def n_patches(self, mode: str) -> int:
        return math.prod(self.grid_shape(mode))

    @property
    def pixels_per_patch(self) -> int:
        return math.prod(self.patch_shape) * (self.shape[-1] if self.channels else 1)

    def patch_pixels(self, mode: str) -> int:
        """Values the per-patch operation reads: n_patches * pixels per patch (channels
        included), the work measure of the "patch-pixels/s" column."""
        return self.n_patches(mode) * self.pixels_per_patch

    def materialised_bytes(self, mode: str) -> int:
        """Memory needed to hold every patch at once: patch-pixels * itemsize."""
        return self.patch_pixels(mode) * np.dtype(self.dtype).itemsize

    def crop_shape(self, mode: str, n_patches: int) -> tuple[int, ...]:
        """A corner of the input holding about ``n_patches`` patches (cost estimates)."""
        shape = self.shape_for(mode)
        k = max(2, round(n_patches ** (1 / self.spatial_ndim)))
        spatial = tuple(
            min(n, (p if self.kind == "process" else 1) + s * (k - 1))
            for n, p, s in zip(shape, self.patch_shape, self.step_shape)
        )
        return spatial + shape[self.spatial_ndim :]


# Grey references for the channel and volume workloads: the same patch-pixels, so that
# "patch-pixels/s" shows what a channel axis or a third dimension costs by itself.
# rgb-grey is the rgb input's memory seen as a 512x1536 grey image: 16x48 patches at
# step (2, 6) read exactly the values of the 16x16x3 patches at step 2.
WORKLOADS: tuple[Workload, ...] = (
    Workload(
        name="classic",
        description="100x100 float32, patch 39, stride 1, identity callback, mean merge",
        kind="process", op="identity", shape=(100, 100), dtype="float32", patch=39, step=1,
        tools=PROCESS_TOOLS, atol=1e-4,
    ),
    Workload(
        name="mean512",
        description="512x512 float32, patch 39, stride 1, per-patch mean removal "
        "(out = patch - mean(patch)), mean merge",
        kind="process", op="mean_removal", shape=(512, 512), dtype="float32", patch=39, step=1,
        tools=PROCESS_TOOLS, atol=1e-4,
    ),
    Workload(
        name="localstd",
        description="local standard deviation over 15x15 windows, one value per pixel, "
        "1024x1024 float64 (512x512 with --quick); symmetric border "
        "(map_patches edge='pad', pad_mode='symmetric' = scipy mode='reflect')",
        kind="map", op="local_std", shape=(1024, 1024), dtype="float64", patch=15, step=1,
        tools=("patchjit", "scipy", "numpy", "skimage"), atol=1e-8, quick_shape=(512, 512),
    ),
    Workload(
        name="rgb",
        description="512x512x3 float32 (channel axis last), 16x16 patches, stride 2, "
        "identity callback on (16, 16, 3) patches, mean merge",
        kind="process", op="identity", shape=(512, 512, 3), dtype="float32", patch=16, step=2,
        tools=ND_TOOLS, atol=1e-4, channels=True,
    ),
    Workload(
        name="rgb-grey",
        description="grey reference for rgb: the same values as a 512x1536 float32 image, "
        "16x48 patches, step (2, 6): the same 62,001 patches of 768 values",
        kind="process", op="identity", shape=(512, 1536), dtype="float32", patch=(16, 48),
        step=(2, 6), tools=ND_TOOLS, atol=1e-4,
    ),
    Workload(
        name="rgb-grey-hann",
        description="rgb-grey merged with window='hann' (weighted mean; identity callback, "
        "so the exact result is the input wherever the weights are positive)",
        kind="process", op="identity", shape=(512, 1536), dtype="float32", patch=(16, 48),
        step=(2, 6), tools=("patchjit", "tiler"), atol=1e-4, window="hann",
    ),
    Workload(
        name="volume",
        description="96x96x96 float32 volume, 9x9x9 patches, stride 1, identity callback, "
        "mean merge (681,472 patches of 729 values)",
        kind="process", op="identity", shape=(96, 96, 96), dtype="float32", patch=9, step=1,
        tools=ND_TOOLS, atol=1e-4,
    ),
    Workload(
        name="volume-grey",
        description="grey reference for volume: 852x852 float32, 27x27 patches (729 "
        "values), stride 1: 682,276 patches, 0.1% more patch-pixels than volume",
        kind="process", op="identity", shape=(852, 852), dtype="float32", patch=27, step=1,
        tools=ND_TOOLS, atol=1e-4,
    ),
    Workload(
        name="big",
        description="10038x10038 float32, patch 39, stride 1, identity callback, mean merge "
        "(--full only; warm-up on 100x100; peers not attempted)",
        kind="process", op="identity", shape=(10038, 10038), dtype="float32", patch=39, step=1,
        tools=PROCESS_TOOLS, atol=1e-4, modes=("full",), repeats=1, warmup_shape=(100, 100),
        attempt_peers=False, timeout_s=1800,
    ),
)  # fmt: skip

BY_NAME = {w.name: w for w in WORKLOADS}
# workload -> its grey reference (same patch-pixels): the report compares patch-pixels/s
GREY_REFERENCES = {"rgb": "rgb-grey", "rgb-grey-hann": "rgb-grey", "volume": "volume-grey"}


def make_input(shape: tuple[int, ...], dtype: str, seed: int = 0) -> np.ndarray:
    """Uniform random image in [0, 1)."""
    return np.random.default_rng(seed).random(shape, dtype=np.dtype(dtype).type)
