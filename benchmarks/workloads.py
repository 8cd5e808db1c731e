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
PROCESS_TOOLS = ("patchjit", "numpy", "sklearn", "torch")


@dataclass(frozen=True)
class Workload:
    name: str
    description: str
    kind: str  # "process" or "map"
    op: str  # "identity", "mean_removal" or "local_std"
    shape: tuple[int, int]
    dtype: str
    patch: int
    step: int
    tools: tuple[str, ...]
    atol: float  # max abs error accepted against the float64 reference
    modes: tuple[str, ...] = MODES  # modes that run it when --only is not given
    quick_shape: tuple[int, int] | None = None  # smaller input for --quick
    repeats: int | None = None  # fixed number of timed repeats (overrides --repeats)
    warmup_shape: tuple[int, int] | None = None  # warm up on a small input of this shape
    attempt_peers: bool = True  # False: peers are only reported with their memory need
    timeout_s: int | None = None  # per-measurement limit, instead of the mode's default

    def shape_for(self, mode: str) -> tuple[int, int]:
        return self.quick_shape if mode == "quick" and self.quick_shape else self.shape

    def grid_shape(self, mode: str) -> tuple[int, int]:
        """Patch grid: the valid grid for ``process``, one patch per pixel for ``map``."""
        h, w = self.shape_for(mode)
        if self.kind == "map":  # edge="pad": the image is padded by patch - 1 in all
            return ((h - 1) // self.step + 1, (w - 1) // self.step + 1)
        return ((h - self.patch) // self.step + 1, (w - self.patch) // self.step + 1)

    def grid_is_flush(self, mode: str) -> bool:
        """True when the regular grid ends flush with the far border (no 'cover' patch)."""
        return all((n - self.patch) % self.step == 0 for n in self.shape_for(mode))

    def n_patches(self, mode: str) -> int:
        return math.prod(self.grid_shape(mode))

    def materialised_bytes(self, mode: str) -> int:
        """Memory needed to hold every patch at once: n_patches * patch_size * itemsize."""
        return self.n_patches(mode) * self.patch**2 * np.dtype(self.dtype).itemsize


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
        tools=("patchjit", "scipy", "numpy"), atol=1e-8, quick_shape=(512, 512),
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


def make_input(shape: tuple[int, int], dtype: str, seed: int = 0) -> np.ndarray:
    """Uniform random image in [0, 1)."""
    return np.random.default_rng(seed).random(shape, dtype=np.dtype(dtype).type)
