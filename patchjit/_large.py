"""Images larger than ``--max-memory``: processed chunk by chunk through patchjit.dask.

The command line's out-of-core path, beside :func:`patchjit._jobs.process_file` (which
sends a file here when its estimated need exceeds the budget). A TIFF is read lazily
through tifffile's zarr store, processed by :func:`patchjit.dask.process_image` (or
:func:`patchjit.dask.map_patches` for map ops) in chunks sized by
:func:`patchjit.dask.chunks_for_budget`, cast chunk by chunk with the same
:func:`patchjit._cast.to_dtype` as in memory, and written as a tiled TIFF band by band
(:func:`patchjit.dask.to_tiff`) with the input's metadata. The result equals the
in-memory one (bit for bit for map ops; to float rounding for overlapping means).

Supported: 2-D TIFFs, grey (``YX``) or with colour samples last (``YXS``), without
alpha, a 2-size patch, ``--func`` or a built-in op (ops on grey images only), without
``--margin`` or ``--scale`` (the chunk budget does not count them yet). Anything else
is a per-file failure that says so.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ._budget import ClipTally, estimate, format_size
from ._cast import to_dtype
from ._files import TIFF_SUFFIXES, atomic_output, tiff_info, tiff_write_options

__all__ = ["process"]

TILE = (256, 256)


def process(runner, src: Path, dst: Path, threads=None) -> tuple[float, str | None]:
    """Process ``src`` into ``dst`` within ``runner.job.max_memory`` bytes.

    Returns ``(megapixels, warning)``; raises ValueError with a one-line reason for
    files this path cannot take.
    """
    import dask

    from . import dask as pdask

    job = runner.job
    budget = job.max_memory
    too_large = (
        f"too large for --max-memory {format_size(budget)} (needs about "
        f"{format_size(estimate(src, job.dtype, job.area_scale))} in memory)"
    )
    if job.margin is not None or job.scale is not None:
        raise ValueError(
            f"{too_large}; --margin and --scale are not run out of core yet (raise "
            f"--max-memory to process it in memory)"
        )
    if Path(src).suffix.lower() not in TIFF_SUFFIXES:
        raise ValueError(f"{too_large}; only TIFF can be processed out of core")
    shape, dtype, options = tiff_info(src)
    axes = options["stored_axes"]
    if axes not in ("YX", "YXS") or options["extrasamples"] or options["photometric"] == 3:
        raise ValueError(
            f"{too_large}; out of core takes 2-D TIFFs (axes YX or YXS, no alpha or "
            f"palette), this one has axes {axes!r}"
            + (" with extra samples" if options["extrasamples"] else "")
        )
    if runner.n_spatial != 2:
        raise ValueError(f"{too_large}; out of core takes a 2-size --patch only")
    if job.batch is not None:
        raise ValueError(f"{too_large}; --batch functions are not run out of core yet")
    channels = axes == "YXS"
    if channels and runner.op is not None:
        raise ValueError(f"{too_large}; out of core runs --op on grey (YX) TIFFs only")

    workers = threads or os.cpu_count() or 1
    patch = runner.patch
    out_dtype = np.dtype(job.dtype or dtype)
    x = pdask.from_tiff(src)
    unit = pdask._io.read_unit(src)  # a tile or strip the reader decodes whole
    try:
        chunks = pdask.chunks_for_budget(
            x.shape, x.dtype, patch, budget, workers=workers, read_unit=unit
        )
    except ValueError as exc:
        raise ValueError(
            f"{too_large}; and --max-memory {format_size(budget)} cannot hold {workers} "
            f"chunks (one per thread) with their halo and the blocks they read: raise it, "
            f"lower --threads, or rewrite the file tiled ({exc})"
        ) from None
    x = x.rechunk(chunks)
    if x.dtype == np.bool_:
        x = x.astype(np.float32)
    lazy = _lazy_result(runner, pdask, x, patch, channels)
    cast = _Cast(out_dtype, src)
    stored = np.dtype(np.uint8) if out_dtype == np.bool_ else out_dtype
    result = lazy.map_blocks(cast, dtype=stored)
    write = tiff_write_options(options, stored)
    write.pop("imagej", None)  # ImageJ hyperstacks are not tiled: keep the axes instead
    write["metadata"] = {"axes": axes}
    compression = write.pop("compression", None)
    with atomic_output(Path(dst)) as tmp, dask.config.set(scheduler="threads", num_workers=workers):
        pdask.to_tiff(result, tmp, tile=TILE, compression=compression, **write)
    return shape[0] * shape[1] / 1e6, cast.tally.warning(src)


def _lazy_result(runner, pdask, x, patch, channels):
    """The lazy float result of the job's op or callback on dask array ``x``."""
    job = runner.job
    edge, window = job.edge or "cover", job.window
    if runner.op is None:
        return pdask.process_image(x, runner.func, patch, job.step, args=job.args,
                                   edge=edge, window=window,
                                   channel_axis=-1 if channels else None,
                                   pad_mode=job.pad_mode or "reflect")  # fmt: skip
    op = runner.op
    if op.callback is None:
        raise ValueError(f"op {op.name!r} cannot run out of core")
    if op.kind == "map":
        return pdask.map_patches(x, op.callback, patch, 1, edge="pad")
    return pdask.process_image(x, op.callback, patch, job.step, args=op.args(dict(job.params)),
                               edge=edge, window=window)  # fmt: skip


class _Cast:
    """Chunk-wise :func:`to_dtype` to the output dtype, tallying clipped values."""

    def __init__(self, dtype: np.dtype, src: Path):
        self.dtype, self.what = dtype, f"the result of {src}"
        self.tally = ClipTally(dtype)

    def __call__(self, block: np.ndarray) -> np.ndarray:
        if self.dtype == np.bool_:  # 1-bit images: threshold at 0.5, as in memory
            to_dtype(block, np.uint8, what=self.what)  # NaN check
            return (block >= 0.5).astype(np.uint8)
        self.tally.count(block)
        return to_dtype(block, self.dtype, what=self.what)
