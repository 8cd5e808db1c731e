"""Python-level drivers: canonical views, block planning, waves, threads.

A long run is a Python loop over short kernel calls (waves), so that Ctrl-C stops it
within a wave and a progress bar can follow it.
"""

from __future__ import annotations

import contextlib
import functools
import math
import threading
import time

import numba
import numpy as np

from . import _kernels as K
from ._callback import array_type, compile_callback, return_type

# Work per block, in patch-pixels: about 1/64 of the job, between 2**16 and 2**23,
# and a footprint of at most 2**20 accumulator elements. Fixed by the geometry alone,
# so the result does not depend on the number of threads.
_MIN_BLOCK_WORK = 1 << 16
_MAX_BLOCK_WORK = 1 << 23
_MAX_FOOTPRINT = 1 << 20
_BLOCKS_PER_THREAD = 4
# Block buffers of one wave may use this many bytes; small jobs then run as one wave
# (few parallel regions), large ones as many short waves (Ctrl-C, progress).
_WAVE_BYTES = 8 << 20
# Waves last about this long once the callback's speed is known, so that Ctrl-C (seen
# between waves) stops a run promptly even with a slow callback. A job of at most
# _ONE_WAVE_WORK patch-pixels runs as one wave; a larger one starts with one block (or
# grid row) per thread and grows from there.
_WAVE_SECONDS = 0.25
_ONE_WAVE_WORK = 1 << 23
# Callback overhead, in patch-pixel units, added to each patch's cost.
_CALL_COST = 16


def accumulation_dtype(dtype) -> np.dtype:
    """float32 for float32, bool and <= 16-bit integers; float64 otherwise."""
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return np.dtype(np.float64 if dtype.itemsize > 4 else np.float32)
    if dtype.kind == "b" or dtype.itemsize <= 2:
        return np.dtype(np.float32)
    return np.dtype(np.float64)


@contextlib.contextmanager
def thread_limit(threads):
    """Use ``threads`` numba threads inside the block; restore the setting after."""
    if threads is None:
        yield
        return
    old = numba.get_num_threads()
    numba.set_num_threads(threads)
    try:
        yield
    finally:
        numba.set_num_threads(old)


def canonical3(values, fill):
    """Left-pad a per-spatial-axis tuple to 3 entries (D, H, W)."""
    values = tuple(values)
    return (fill,) * (3 - len(values)) + values


def plan_blocks(origins3, patch3, nc: int) -> np.ndarray:
    """Cut the patch grid into blocks; return the block table (see ``_kernels.B_*``).

    Plans are cached by geometry (read-only tables), so repeated calls on images of one
    shape skip the planning.
    """
    key = tuple(np.asarray(o, dtype=np.int64).tobytes() for o in origins3)
    return _plan_blocks(key, tuple(int(p) for p in patch3), int(nc))


@functools.lru_cache(maxsize=64)
def _plan_blocks(origin_bytes, patch3, nc: int) -> np.ndarray:
    origins3 = [np.frombuffer(b, dtype=np.int64) for b in origin_bytes]
    grid = [len(o) for o in origins3]
    per_patch = math.prod(patch3) * nc + _CALL_COST
    total = math.prod(grid) * per_patch
    target = min(max(total // 64, _MIN_BLOCK_WORK), _MAX_BLOCK_WORK)
    steps = [int(o[1] - o[0]) if len(o) > 1 else p for o, p in zip(origins3, patch3)]
    sizes = list(grid)

    def extent(a):
        return (sizes[a] - 1) * steps[a] + patch3[a]

    while True:
        work = math.prod(sizes) * per_patch
        foot = extent(0) * extent(1) * extent(2) * nc
        splittable = [a for a in range(3) if sizes[a] > 1]
        if (work <= target and foot <= _MAX_FOOTPRINT) or not splittable:
            break
        a = max(splittable, key=extent)
        sizes[a] = -(-sizes[a] // 2)
    starts = [range(0, g, s) for g, s in zip(grid, sizes)]
    rows = []
    for i0 in starts[0]:
        i1 = min(i0 + sizes[0], grid[0])
        for j0 in starts[1]:
            j1 = min(j0 + sizes[1], grid[1])
            for k0 in starts[2]:
                k1 = min(k0 + sizes[2], grid[2])
                rows.append((i0, i1, j0, j1, k0, k1))
    idx = np.array(rows, dtype=np.int64)
    table = np.empty((len(idx), 12), dtype=np.int64)
    table[:, :6] = idx
    for a, (o, p) in enumerate(zip(origins3, patch3)):
        first = o[idx[:, 2 * a]]
        last = o[idx[:, 2 * a + 1] - 1]
        table[:, 6 + 2 * a] = first
        table[:, 7 + 2 * a] = last + p - first
    table.flags.writeable = False
    return table


_SCRATCH = threading.local()
_SCRATCH_KEEP_BYTES = 2 * _WAVE_BYTES


def scratch(shape, dtype) -> np.ndarray:
    """An uninitialised array, reused by later calls from the same Python thread.

    Saves allocating (and page-faulting) the block buffers on every call, which counts
    for small jobs. Each Python thread has its own, so concurrent calls from several
    threads never share one.
    """
    shape, dtype = tuple(int(n) for n in shape), np.dtype(dtype)
    size = math.prod(shape)
    if size * dtype.itemsize > _SCRATCH_KEEP_BYTES:
        return np.empty(shape, dtype=dtype)  # rare and large: not worth keeping
    buf = getattr(_SCRATCH, "buf", None)
    if buf is None or buf.dtype != dtype or buf.size < size:
        buf = np.empty(size, dtype=dtype)
        _SCRATCH.buf = buf
    return buf[:size].reshape(shape)


def run_accumulate(
    src, take, oview, func, args, origins3, patch3, nc, weights3, red, acc, region0,
    progress=None,
):  # fmt: skip
    """Overlap-add ``func``'s output for every patch into ``acc`` (not normalised).

    ``acc`` must hold the reduction's identity (0, -inf or +inf) on entry.
    """
    blocks = plan_blocks(origins3, patch3, nc)
    n_threads = numba.get_num_threads()
    fshape = blocks[:, [K.B_FD, K.B_FH, K.B_FW]].max(axis=0)
    buf_bytes = int(np.prod(fshape)) * nc * acc.dtype.itemsize
    n_wave = min(len(blocks), max(_BLOCKS_PER_THREAD * n_threads, _WAVE_BYTES // buf_bytes))
    bufs = scratch((n_wave, fshape[0], fshape[1], fshape[2] * nc), acc.dtype)
    if weights3 is not None:
        add = K.add_weighted
    else:
        add = (K.add_sum, K.add_max, K.add_min)[red]
        weights3 = np.ones((1, 1, 1), dtype=acc.dtype)
    init = (0.0, -np.inf, np.inf)[red]
    od, oh, ow = origins3
    pd, ph, pw = patch3
    limits = np.array([acc.shape[0], acc.shape[1]])
    counts = (blocks[:, 1] - blocks[:, 0]) * (blocks[:, 3] - blocks[:, 2])
    counts *= blocks[:, 5] - blocks[:, 4]
    total = int(counts.sum()) * (math.prod(patch3) * nc + _CALL_COST)
    first = len(blocks) if total <= _ONE_WAVE_WORK else n_threads
    pace = WavePacer(first=first, lo=n_threads, hi=n_wave)
    start = 0
    while start < len(blocks):
        wave = blocks[start : start + pace.size]
        t0 = time.perf_counter()
        lo = np.clip(wave[:, [K.B_Y0D, K.B_Y0H]].min(axis=0) - region0[:2], 0, limits)
        hi = (wave[:, [K.B_Y0D, K.B_Y0H]] + wave[:, [K.B_FD, K.B_FH]]).max(axis=0)
        hi = np.clip(hi - region0[:2], 0, limits)
        rows = (int(lo[0]), int(hi[0]), int(lo[1]), int(hi[1]))
        K.accumulate_blocks(
            src, take, oview, func, args, add, init, od, oh, ow, pd, ph, pw, nc,
            weights3, wave, bufs,
        )  # fmt: skip
        K.fold_blocks(wave, bufs, acc, nc, red, region0, rows)
        if progress is not None:
            progress.update(int(counts[start : start + len(wave)].sum()))
        start += len(wave)
        pace.update(len(wave), time.perf_counter() - t0)
    return acc


def run_map(src, take, func, args, origins3, patch3, res, progress=None):
    """``res[i, j, k] = func(patch, *args)`` over the whole grid, in waves of grid rows."""
    od, oh, ow = origins3
    pd, ph, pw = patch3
    n_rows = res.shape[0] * res.shape[1]
    per_row = res.shape[2] * (math.prod(patch3) + _CALL_COST)
    n_threads = numba.get_num_threads()
    first = n_rows if n_rows * per_row <= _ONE_WAVE_WORK else n_threads
    pace = WavePacer(first=first, lo=n_threads, hi=max(n_rows, 1))
    r0 = 0
    while r0 < n_rows:
        r1 = min(r0 + pace.size, n_rows)
        t0 = time.perf_counter()
        K.map_rows(src, take, func, args, od, oh, ow, pd, ph, pw, r0, r1, res)
        if progress is not None:
            progress.update((r1 - r0) * res.shape[2])
        pace.update(r1 - r0, time.perf_counter() - t0)
        r0 = r1
    return res


class WavePacer:
    """Units (blocks or grid rows) per wave, adapted so waves last about _WAVE_SECONDS.

    Wave sizes change only how the work is cut into kernel calls, never the order in
    which contributions are added, so results do not depend on them.
    """

    def __init__(self, first: int, lo: int, hi: int):
        self.lo, self.hi = max(1, min(lo, hi)), max(1, hi)
        self.size = min(max(first, self.lo), self.hi)

    def update(self, done: int, seconds: float) -> None:
        """Size the next wave from the last one's rate."""
        if done <= 0 or seconds <= 0:
            return
        want = int(done * _WAVE_SECONDS / seconds)
        want = min(want, 2 * self.size)  # grow gradually: the first waves may be noisy
        self.size = min(max(want, self.lo), self.hi)


def patch_type(take, src, n_axes: int):
    """The numba type of the patch view that ``take`` produces from ``src``."""
    int_t = numba.typeof(0)
    return return_type(take, (numba.typeof(src),) + (int_t,) * n_axes)


# (callback, view functions, source type, dtype, argument types) already checked.
_PREPARED: set = set()


def prepare_process_callback(func, take, oview, src, acc_dtype, args):
    """Compile the user's ``func(patch, out, *args)`` for the kernel's exact types."""
    key = (func, take, oview, numba.typeof(src), np.dtype(acc_dtype), numba.typeof(args))
    if key in _PREPARED:
        return
    p_t = patch_type(take, src, 9)
    o3_t = array_type(acc_dtype, 3, "C")
    out_t = return_type(oview, (o3_t, numba.typeof(0), numba.typeof(0)))
    compile_callback(func, p_t, out_t, args, scalar=False)
    _PREPARED.add(key)


def prepare_map_callback(func, take, src, args):
    """Compile the user's ``func(patch, *args) -> number`` for the kernel's exact types."""
    key = (func, take, numba.typeof(src), numba.typeof(args))
    if key in _PREPARED:
        return
    compile_callback(func, patch_type(take, src, 9), None, args, scalar=True)
    _PREPARED.add(key)
