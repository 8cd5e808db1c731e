"""patchjit: fused, parallel patch extraction, per-patch processing and overlap-add.

The main entry point is :func:`process_image`; see also :func:`map_patches`,
:func:`patchify`, :func:`unpatchify` and :class:`PatchGrid`.
"""

from ._grid import PatchGrid
from .api import map_patches, patchify, process_image, unpatchify

__version__ = "0.1.0"

__all__ = ["PatchGrid", "__version__", "map_patches", "patchify", "process_image", "unpatchify"]
