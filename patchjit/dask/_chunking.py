"""Checks and chunk geometry of the dask twins: which chunks, halos and patch ranges.

Small functions of chunk tuples and :class:`~patchjit.PatchGrid` s, shared by the graph
builders in :mod:`._graph`; nothing here computes image data.
"""

from __future__ import annotations

import itertools
import math

import dask.array as da
import numpy as np


def _check_array(x, name="image"):
    if x.dtype.kind not in "buif":
        raise TypeError(
            f"{name} must hold bool, integer or real floating-point values, got dask array "
            f"of dtype {x.dtype}; convert it with {name}.astype(numpy.float32) first"
        )
    if any(math.isnan(c) for cs in x.chunks for c in cs):
        raise ValueError(
            f"{name} has unknown chunk sizes (NaN), e.g. after boolean indexing; call "
            f"{name}.compute_chunk_sizes() first"
        )
    if x.size == 0:
        raise ValueError(f"{name} is empty, shape {x.shape}")


def _starts(chunks):
    return np.concatenate([[0], np.cumsum(chunks)]).astype(np.int64)


def _merge_small(chunks, minimum):
    """Merge chunks shorter than ``minimum`` into their neighbours (greedy, in order)."""
    out, cur = [], 0
    for c in chunks:
        cur += c
        if cur >= minimum:
            out.append(cur)
            cur = 0
    if cur:
        if out:
            out[-1] += cur
        else:
            out.append(cur)
    return tuple(out)


def _halo_chunks(chunks, before, after, depth):
    """Chunks of the padded axis (padding joins the end chunks), merged to >= depth."""
    pc = list(chunks)
    pc[0] += before
    pc[-1] += after
    merged = _merge_small(pc, max(depth, 1))
    core = list(merged)
    core[0] -= before
    core[-1] -= after
    return merged, tuple(core)


def _overlap_regions(padded_chunks, depth, n):
    """Per chunk, the ``(lo, hi)`` that map_overlap(boundary='none') hands the task."""
    s = _starts(padded_chunks)
    return [(max(0, int(a) - depth), min(n, int(b) + depth)) for a, b in itertools.pairwise(s)]


def _channels_last(x, channel_axis):
    if channel_axis is None:
        return x
    x = da.moveaxis(x, channel_axis, -1)
    return x.rechunk({x.ndim - 1: -1})


def _no_out(out, progress):
    if out is not None:
        raise TypeError(
            "out= is not supported for dask arrays (the result is lazy); store it with "
            "result.store(target), result.to_zarr(path) or patchjit.dask.to_tiff"
        )
    if progress:
        raise ValueError(
            "progress=True is not supported for dask arrays; use dask's own, e.g. "
            "`with dask.diagnostics.ProgressBar(): result.compute()`"
        )


def _axis_range(grid, axis, c0, c1):
    """Global patch-index range ``(i0, i1)`` of the patches touching ``[c0, c1)``."""
    region = [slice(None)] * grid.ndim
    region[axis] = slice(c0, c1)
    ranges, _ = grid.subgrid(tuple(region))
    return ranges[axis]


def _token(*parts):
    from dask.base import tokenize

    try:
        return tokenize(*parts)
    except Exception:  # e.g. an object dask cannot hash deterministically
        import uuid

        return uuid.uuid4().hex
