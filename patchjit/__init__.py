"""patchjit: fused, parallel patch extraction, per-patch processing and overlap-add.

The main entry point is :func:`process_image`; see also :func:`map_patches`,
:func:`patchify`, :func:`unpatchify` and :class:`PatchGrid`. Functions numba cannot
compile (a PyTorch model, NumPy over a stack of patches) run through
:func:`process_batches` and :func:`map_batches`.
"""

from ._grid import PatchGrid
from ._version import __version__
from .api import map_patches, patchify, process_image, unpatchify
from .batches import map_batches, process_batches

__all__ = [
    "PatchGrid",
    "__version__",
    "map_batches",
    "map_patches",
    "patchify",
    "process_batches",
    "process_image",
    "unpatchify",
]
