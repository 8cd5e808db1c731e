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
import weakref

import numba
import numpy as np

from . import _kernels as K
from ._callback import (
    array_type,
    builtin,
    capturing,
    compile_callback,
    map_pointer,
    process_pointer,
    raise_callback_error,
)
from ._grid import canonical3  # noqa: F401 - re-exported: the engine's 3-D frame

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
# between waves) and progress updates come promptly even with a slow callback. Every
# job starts with a one-block wave whose measured time sizes the next ones.
_WAVE_SECONDS = 0.25
# Callback overhead, in patch-pixel units, added to each patch's cost.
_CALL_COST = 16
# Jobs below this much work (patch-pixels, channels included) run the serial kernels:
# launching parallel regions costs more than it saves there, and on a busy machine
# each launch may wait for a descheduled thread (see benchmarks/compile_cost.py).
SERIAL_WORK = 1 << 24


def accumulation_dtype(dtype) -> np.dtype:
    """float32 for float32, bool and <= 16-bit integers; float64 otherwise."""
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return np.dtype(np.float64 if dtype.itemsize > 4 else np.float32)
    if dtype.kind == "b" or dtype.itemsize <= 2:
        return np.dtype(np.float32)
    return np.dtype(np.float64)


def plan_blocks(origins3, patch3, nc: int, out=None) -> np.ndarray:
    """Cut the patch grid into blocks; return the block table (see ``_kernels.B_*``).

    ``out = (out_origins3, out_patch3)``: the output geometry (margin, scale), in which
    the footprints are given; default the input's. Plans are cached by geometry
    (read-only tables), so repeated calls on images of one shape skip the planning.
    """
    key = tuple(np.asarray(o, dtype=np.int64).tobytes() for o in origins3)
    okey = None
    if out is not None:
        okey = tuple(np.asarray(o, dtype=np.int64).tobytes() for o in out[0])
        okey = (okey, tuple(int(p) for p in out[1]))
    return _plan_blocks(key, tuple(int(p) for p in patch3), int(nc), okey)


@functools.lru_cache(maxsize=64)
def _plan_blocks(origin_bytes, patch3, nc: int, out_key=None) -> np.ndarray:
    origins3 = [np.frombuffer(b, dtype=np.int64) for b in origin_bytes]
    if out_key is not None:
        out_origins3 = [np.frombuffer(b, dtype=np.int64) for b in out_key[0]]
        out_patch3 = out_key[1]
    else:
        out_origins3, out_patch3 = origins3, patch3
    grid = [len(o) for o in origins3]
    per_patch = math.prod(patch3) * nc + _CALL_COST
    total = math.prod(grid) * per_patch
    target = min(max(total // 64, _MIN_BLOCK_WORK), _MAX_BLOCK_WORK)
    steps = [int(o[1] - o[0]) if len(o) > 1 else p for o, p in zip(origins3, patch3)]
    sizes = list(grid)

    ratio = [q / p for q, p in zip(out_patch3, patch3)]

    def extent(a):  # of the block's output footprint
        return int(((sizes[a] - 1) * steps[a] + patch3[a]) * ratio[a]) + 1

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
    for a, (o, p) in enumerate(zip(out_origins3, out_patch3)):
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


# --- threading layers -----------------------------------------------------------------

_LOCAL = threading.local()


def _predicted_layer() -> str:
    """numba's threading layer: the active one, or the one it will pick at first launch."""
    try:
        return numba.threading_layer()
    except ValueError:  # no parallel kernel has run yet
        pass
    chosen = str(numba.config.THREADING_LAYER).lower()
    if chosen in ("tbb", "omp", "workqueue"):
        return chosen
    try:
        from numba.np.ufunc import tbbpool  # noqa: F401

        return "tbb"
    except ImportError:
        pass
    if chosen != "safe":
        try:
            from numba.np.ufunc import omppool  # noqa: F401

            return "omp"
        except ImportError:
            pass
    return "workqueue"


def serial_wanted(work=None) -> bool:
    """True when this call must run the serial kernels.

    For ``threads=1``; for small jobs (``work`` patch-pixels below
    :data:`SERIAL_WORK`); and under numba's ``workqueue`` layer (not thread-safe: two
    Python threads launching parallel kernels at once abort the process) whenever the
    caller is not the main thread. numba's parallel kernels are never entered then.
    """
    if getattr(_LOCAL, "serial", False):
        return True
    if work is not None and work < SERIAL_WORK:
        return True
    off_main = threading.current_thread() is not threading.main_thread()
    if off_main and _predicted_layer() == "workqueue":
        return True
    return numba.get_num_threads() == 1


@contextlib.contextmanager
def thread_limit(threads):
    """Use ``threads`` numba threads inside the block; restore the setting after.

    ``threads=1`` selects the serial kernels and leaves numba's thread pool alone, so it
    is safe from any Python thread under any threading layer.
    """
    if threads is None:
        yield
        return
    if threads == 1:
        old = getattr(_LOCAL, "serial", False)
        _LOCAL.serial = True
        try:
            yield
        finally:
            _LOCAL.serial = old
        return
    old = numba.get_num_threads()
    numba.set_num_threads(threads)
    try:
        yield
    finally:
        numba.set_num_threads(old)


def _n_threads(serial: bool) -> int:
    return 1 if serial else numba.get_num_threads()


# --- strip-first canonical frame --------------------------------------------------------


def _strip_first(src, origins3, patch3, acc, region0, weights3, out):
    """Move a 2-D job's rows to the strip axis: ``(1, H, W)`` -> ``(H, 1, W)``.

    Pure reshapes of C-contiguous arrays (a unit axis moves), no copies. ``out`` is the
    output geometry ``(out_origins3, out_patch3)``.
    """
    keep = src, origins3, patch3, acc, region0, weights3, out
    if not (len(origins3[0]) == 1 and patch3[0] == 1 and acc.shape[0] == 1):
        return keep
    if out[1][0] != 1:
        return keep
    if src.ndim == 4 and src.shape[0] == 1:
        src = src.reshape(src.shape[1], 1, *src.shape[2:])
    elif src.ndim == 7:
        g, p = src.shape[:3], src.shape[3:6]
        src = src.reshape(g[1], g[0], g[2], p[1], p[0], p[2], src.shape[6])
    else:
        return keep
    origins3 = (origins3[1], origins3[0], origins3[2])
    out = ((out[0][1], out[0][0], out[0][2]), (out[1][1], out[1][0], out[1][2]))
    patch3 = (patch3[1], patch3[0], patch3[2])
    acc = acc.reshape(acc.shape[1], 1, acc.shape[2])
    region0 = (region0[1], region0[0], region0[2])
    if weights3 is not None:
        weights3 = weights3.reshape(weights3.shape[1], 1, weights3.shape[2])
    return src, origins3, patch3, acc, region0, weights3, out


def _source_access(src, patch3, nc):
    """(source array for the kernel, source kind) for an image or a stack of patches."""
    if src.ndim == 7:
        return src, "stacked"
    src3 = src.reshape(src.shape[0], src.shape[1], src.shape[2] * nc)
    if patch3[0] == 1 and patch3[1] == 1:
        return src3, "row"
    return src3, "strip"


def _launch(kernel, inline, explain, *args):
    """Run ``kernel``; a built-in op inlined into a driver that fails to compile for
    these types gets the same TypeError as any callback (``explain``)."""
    try:
        kernel(*args)
    except numba.core.errors.TypingError:
        if inline is not None:
            explain()
        raise


def _work(origins3, patch3, nc) -> int:
    return math.prod(len(o) for o in origins3) * math.prod(int(p) for p in patch3) * nc


def _failed_patch(func, err, ksrc, source, origins3, patch3, swapped, view, oview, vshape,
                  nc, nco, acc_dtype, args, region0=(0, 0, 0), ovshape=None):  # fmt: skip
    """Raise the callback's own error for the first patch the kernel saw fail."""
    rows = err[err[:, 0] >= 0]
    i, j, k = (int(v) for v in rows[0])
    o = [int(origins3[0][i]), int(origins3[1][j]), int(origins3[2][k])]
    ps, pr, pw = (int(p) for p in patch3)
    if source == "stacked":
        flat = np.array(ksrc[i, j, k]).reshape(-1)
    else:
        s, r, x = o
        flat = np.array(ksrc[s : s + ps, r : r + pr, x * nc : (x + pw) * nc]).reshape(-1)
    patch = flat.reshape(view_shape(view, vshape, nc, flat.size))
    patch.flags.writeable = False
    index, origin = [i, j, k], [a - b for a, b in zip(o, region0)]
    if swapped:
        index[0], index[1] = index[1], index[0]
        origin[0], origin[1] = origin[1], origin[0]
    keep = 3 - sum(1 for a in range(2) if all(n == 1 for n in vshape[: a + 1]))
    index, origin = tuple(index[3 - keep :]), tuple(origin[3 - keep :])
    if oview is None:
        where = f"patch {index} (origin {origin})"
        raise_callback_error(func, lambda: func(patch, *args), where)
    ovshape = vshape if ovshape is None else ovshape
    n_out = math.prod(ovshape) * nco
    out = np.full(view_shape(oview, ovshape, nco, n_out), np.nan, dtype=acc_dtype)
    where = f"patch {index} (origin {origin})"
    raise_callback_error(func, lambda: func(patch, out, *args), where)


def run_accumulate(
    src, take, oview, func, args, origins3, patch3, nc, weights3, red, acc, region0,
    progress=None, *, nc_out=None, serial=None, out_geometry=None,
):  # fmt: skip
    """Overlap-add ``func``'s output for every patch into ``acc`` (not normalised).

    Parameters: ``src`` is the read-only, C-contiguous 4-D ``(D, H, W, nc)`` image (or
    a 7-D stack of patches ``(gd, gh, gw, pd, ph, pw, nc)`` for ``unpatchify``);
    ``take``/``oview`` shape the flat patch and output buffer for the callback (see
    ``_kernels.VIEWS``); ``origins3`` the patch origins per axis in ``src``'s frame;
    ``patch3`` the patch shape; ``weights3`` None or the window as a C-contiguous
    ``(pd, ph, pw * nc_out)`` array in ``acc``'s dtype; ``red`` one of ``_kernels.SUM``,
    ``MAX``, ``MIN``. ``acc``, C-contiguous ``(D, H, W * nc_out)``, covers the region
    starting at ``region0 = (d0, h0, x0)`` of ``src``'s frame; contributions outside it
    are dropped. ``acc`` must hold the reduction's identity (0, -inf or +inf) on entry.
    ``nc_out`` (default ``nc``) is the callback's output channel count. ``serial``
    forces (True) or forbids (False) the serial kernels; default :func:`serial_wanted`.
    ``out_geometry = (out_origins3, out_patch3)``: where each patch's output goes and
    its shape (a margin or a scale), in the frame of ``acc`` and ``region0``; default
    ``(origins3, patch3)``. ``weights3`` then has the output patch's shape.
    """
    nco = nc if nc_out is None else int(nc_out)
    if out_geometry is None:
        out_geometry = (origins3, patch3)
    out_geometry = (
        tuple(np.asarray(o, dtype=np.int64) for o in out_geometry[0]),
        tuple(int(p) for p in out_geometry[1]),
    )
    if serial is None:
        serial = serial_wanted(_work(origins3, patch3, nco))
    vshape = tuple(int(p) for p in patch3)
    ovshape = out_geometry[1]  # the callback's axis order
    if not acc.flags.c_contiguous:
        raise ValueError("acc must be C-contiguous")
    swapped_in = origins3
    src, origins3, patch3, acc3, region0, weights3, out_geometry = _strip_first(
        src, origins3, patch3, acc, region0, weights3, out_geometry
    )
    swapped = origins3 is not swapped_in
    ksrc, source = _source_access(src, patch3, nc)
    inline = (func, take, oview) if builtin(func) else None
    cb = 0 if inline else process_pointer(func, take, oview, src.dtype, acc.dtype, args)
    (qos, qor, qow), qshape = out_geometry
    same = qshape == tuple(int(p) for p in patch3) and all(
        np.array_equal(a, b) for a, b in zip(out_geometry[0], origins3)
    )
    blocks = plan_blocks(origins3, patch3, nco, None if same else out_geometry)
    n_threads = _n_threads(serial)
    fshape = blocks[:, [K.B_FD, K.B_FH, K.B_FW]].max(axis=0)
    buf_bytes = int(np.prod(fshape)) * nco * acc.dtype.itemsize
    n_wave = min(len(blocks), max(_BLOCKS_PER_THREAD * n_threads, _WAVE_BYTES // buf_bytes))
    bufs = scratch((n_wave, fshape[0], fshape[1], fshape[2] * nco), acc.dtype)
    n_out = math.prod(ovshape) * nco
    if weights3 is not None:
        kind = K.WEIGHTED
        wts = np.ascontiguousarray(weights3, dtype=acc.dtype).reshape(-1)
    else:
        kind = red
        wts = np.ones(n_out, dtype=acc.dtype)
    init = (0.0, -np.inf, np.inf)[red]
    os_, or_, ow = origins3
    ps, pr, pw = (int(p) for p in patch3)
    limits = np.array([acc3.shape[0], acc3.shape[1]])
    counts = (blocks[:, 1] - blocks[:, 0]) * (blocks[:, 3] - blocks[:, 2])
    counts *= blocks[:, 5] - blocks[:, 4]
    kernel = K.accumulate_kernel(source, kind, not serial, inline)
    fold = K.fold_blocks_serial if serial else K.fold_blocks
    stop = np.zeros(1, dtype=np.int64)
    err = np.full((n_wave, 3), -1, dtype=np.int64)
    # the first wave is one block: its time sizes the next waves (Ctrl-C, progress;
    # a small job is small in pixels, not necessarily in time: its callback may be slow)
    pace = WavePacer(first=1, lo=n_threads, hi=n_wave)
    start = 0
    with capturing():
        while start < len(blocks):
            wave = blocks[start : start + pace.size]
            t0 = time.perf_counter()
            lo = np.clip(wave[:, [K.B_Y0D, K.B_Y0H]].min(axis=0) - region0[:2], 0, limits)
            hi = (wave[:, [K.B_Y0D, K.B_Y0H]] + wave[:, [K.B_FD, K.B_FH]]).max(axis=0)
            hi = np.clip(hi - region0[:2], 0, limits)
            rows = (int(lo[0]), int(hi[0]), int(lo[1]), int(hi[1]))
            _launch(
                kernel, inline, lambda: compile_callback(
                    func, patch_type(take, src.dtype), out_type(oview, acc.dtype), args,
                    scalar=False),
                ksrc, cb, args, init, os_, or_, ow, ps, pr, pw, nc, nco, vshape, wts, wave,
                bufs, src.dtype, stop, err, qos, qor, qow, *qshape, ovshape,
            )  # fmt: skip
            if stop[0]:
                break
            fold(wave, bufs, acc3, nco, red, region0, rows)
            if progress is not None:
                progress.update(int(counts[start : start + len(wave)].sum()))
            start += len(wave)
            pace.update(len(wave), time.perf_counter() - t0)
    if stop[0]:
        _failed_patch(
            func, err, ksrc, source, origins3, patch3, swapped, take, oview, vshape, nc, nco,
            acc.dtype, args, region0, ovshape,
        )  # fmt: skip
    return acc


# patches per map unit along the strip axis
_MAP_CHUNK = 64


def run_map(src, take, func, args, origins3, patch3, res, progress=None, *, serial=None):
    """``res[i, j, k] = func(patch, *args)`` over the whole grid, in waves of units.

    ``src`` is the read-only C-contiguous ``(D, H, W, C)`` image, ``res`` the
    C-contiguous ``(gd, gh, gw)`` result.
    """
    nc = src.shape[3]
    if serial is None:
        serial = serial_wanted(_work(origins3, patch3, nc))
    vshape = tuple(int(p) for p in patch3)
    swap = len(origins3[0]) == 1 and patch3[0] == 1 and src.shape[0] == 1 and res.shape[0] == 1
    if swap:
        src = src.reshape(src.shape[1], 1, *src.shape[2:])
        origins3 = (origins3[1], origins3[0], origins3[2])
        patch3 = (patch3[1], patch3[0], patch3[2])
        res = res.reshape(res.shape[1], 1, res.shape[2])
    ksrc, source = _source_access(src, patch3, nc)
    inline = (func, take, None) if builtin(func) else None
    cb = 0 if inline else map_pointer(func, take, src.dtype, args)
    os_, or_, ow = origins3
    ps, pr, pw = (int(p) for p in patch3)
    gs, gr, gw = res.shape
    n_threads = _n_threads(serial)
    chunk = max(1, min(_MAP_CHUNK, gs))
    ns = -(-gs // chunk)
    want_units = 16 * max(n_threads, 4)
    nk = max(1, min(gw, -(-want_units // (ns * gr))))
    kchunk = -(-gw // nk)
    nk = -(-gw // kchunk)
    n_units = ns * gr * nk
    per_unit = max(1, (gs * gr * gw) // n_units)
    kernel = K.map_kernel(source, not serial, inline)
    pace = WavePacer(first=1, lo=n_threads, hi=max(n_units, 1))
    stop = np.zeros(1, dtype=np.int64)
    err = np.full((max(n_units, 1), 3), -1, dtype=np.int64)
    u0 = 0
    with capturing():
        while u0 < n_units:
            u1 = min(u0 + pace.size, n_units)
            t0 = time.perf_counter()
            _launch(
                kernel, inline, lambda: compile_callback(
                    func, patch_type(take, src.dtype), None, args, scalar=True),
                ksrc, cb, args, os_, or_, ow, ps, pr, pw, nc, vshape, chunk, kchunk, u0, u1,
                res, src.dtype, stop, err,
            )  # fmt: skip
            if stop[0]:
                break
            if progress is not None:
                # units hold about per_unit patches; the last wave completes the count
                left = progress.total - progress.n
                progress.update(left if u1 == n_units else min((u1 - u0) * per_unit, left))
            pace.update(u1 - u0, time.perf_counter() - t0)
            u0 = u1
    if stop[0]:
        _failed_patch(
            func, err, ksrc, source, origins3, patch3, swap, take, None, vshape, nc, nc,
            None, args,
        )  # fmt: skip
    return res


class WavePacer:
    """Units (blocks or grid units) per wave, adapted so waves last about _WAVE_SECONDS.

    The first wave is ``first`` units (one block: its measured time sizes the next
    waves, so even a small job with a slow callback sees Ctrl-C and progress within a
    wave). Wave sizes change only how the work is cut into kernel calls, never the
    order in which contributions are added, so results do not depend on them.
    """

    def __init__(self, first: int, lo: int, hi: int):
        self.lo, self.hi = max(1, min(lo, hi)), max(1, hi)
        self.size = min(max(first, 1), self.hi)

    def update(self, done: int, seconds: float) -> None:
        """Size the next wave from the last one's rate."""
        if done <= 0 or seconds <= 0:
            return
        want = int(done * _WAVE_SECONDS / seconds)
        want = min(want, 16 * self.size)  # grow gradually: the first waves may be noisy
        self.size = min(max(want, self.lo), self.hi)


def view_ndim(view) -> int:
    """Number of axes of the arrays ``view`` (a ``take_*``/``oview_*``) returns."""
    name = view.py_func.__name__.split("_")[1]
    return int(name[0]) + (name[-1] == "c")


def view_shape(view, vshape, nc, n):
    """The shape ``view`` gives a flat patch of ``n`` values (``take_*``/``oview_*``)."""
    d, h, w = vshape
    name = view.py_func.__name__.split("_")[1]
    return {
        "1d": (n,), "1dc": (w, nc), "2d": (h, w), "2dc": (h, w, nc), "3d": (d, h, w),
        "3dc": (d, h, w, nc),
    }[name]  # fmt: skip


def patch_type(take, src_dtype):
    """The numba type of the patch the callback gets: read-only and C-contiguous."""
    return array_type(src_dtype, view_ndim(take), "C", readonly=True)


def out_type(oview, acc_dtype):
    """The numba type of the callback's ``out``: C-contiguous, in ``acc_dtype``."""
    return array_type(acc_dtype, view_ndim(oview), "C")


# Per callback dispatcher: the (view functions, dtypes, argument types) already checked.
# Weak keys, and nothing in the values refers to the callback, so a dropped callback is
# freed.
_PREPARED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _seen(func, key) -> bool:
    keys = _PREPARED.get(func)
    if keys is None:
        keys = _PREPARED[func] = set()
    if key in keys:
        return True
    keys.add(key)
    return False


def prepare_process_callback(func, take, oview, src, acc_dtype, args):
    """Compile the user's ``func(patch, out, *args)`` for the kernel's exact types."""
    if builtin(func):
        return  # patchjit's own ops compile inside their (disk-cached) drivers
    key = (take, oview, np.dtype(src.dtype), np.dtype(acc_dtype), numba.typeof(args))
    if key in _PREPARED.get(func, ()):
        return
    compile_callback(
        func, patch_type(take, src.dtype), out_type(oview, acc_dtype), args, scalar=False
    )
    _seen(func, key)


def prepare_map_callback(func, take, src, args):
    """Compile the user's ``func(patch, *args) -> number`` for the kernel's exact types."""
    if builtin(func):
        return
    key = (take, np.dtype(src.dtype), numba.typeof(args))
    if key in _PREPARED.get(func, ()):
        return
    compile_callback(func, patch_type(take, src.dtype), None, args, scalar=True)
    _seen(func, key)
