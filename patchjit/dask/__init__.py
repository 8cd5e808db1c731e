"""Scale-out: lazy dask arrays in, lazy dask arrays out; TIFF and zarr larger than memory.

:func:`patchjit.process_image`, :func:`patchjit.map_patches`,
:func:`patchjit.unpatchify`, :func:`patchjit.process_batches` and
:func:`patchjit.map_batches` hand a :class:`dask.array.Array` to the functions of the
same name here. Scheme (one task per output chunk, built from dask primitives only):

1. Channels are moved last and rechunked to one chunk; ``edge="pad"`` pads the whole
   array once like :func:`numpy.pad` (:mod:`._padding`), and the padding is merged into
   the first and last chunk, so that chunk ``i`` of the padded array holds output chunk
   ``i``.
2. :func:`dask.array.map_overlap` with ``depth = patch - 1`` (``boundary="none"``,
   ``trim=False``, ``allow_rechunk=False``) hands each task its chunk plus the halo
   that every patch touching it reads.
3. Each task runs the engine on the patches of the **global** grid that touch its core
   (offsets come from the chunks, not from ``block_info`` of the overlapped array),
   accumulates only inside the core, and normalises with the global closed-form
   coverage sliced to the core. Patches that straddle chunks are computed once per
   chunk they touch.

Chunks smaller than the halo are merged with their neighbour for the computation and
the result is split back, so the output always has the input's chunks.

The package: the graphs of the five twins (:mod:`._graph`), their per-chunk tasks
(:mod:`._tasks`), chunk geometry and checks (:mod:`._chunking`), padding
(:mod:`._padding`), TIFF and zarr files (:mod:`._io`) and the memory budget
(:mod:`._budget`). dask is imported here, never by ``import patchjit``.
"""

from __future__ import annotations

try:
    import dask.array  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised without the extra only
    raise ImportError(
        "patchjit.dask needs dask: pip install 'patchjit[dask]' (dask[array], zarr)"
    ) from exc

from ._budget import chunks_for_budget
from ._graph import map_batches, map_patches, process_batches, process_image, unpatchify
from ._io import from_tiff, process_file, to_tiff

__all__ = [
    "chunks_for_budget",
    "from_tiff",
    "map_batches",
    "map_patches",
    "process_batches",
    "process_file",
    "process_image",
    "to_tiff",
    "unpatchify",
]

for _f in (chunks_for_budget, from_tiff, map_batches, map_patches, process_batches,
           process_file, process_image, to_tiff, unpatchify):  # fmt: skip
    _f.__module__ = __name__  # help() and pickling name the public face
del _f
