"""Any Python function over batches of patches: :func:`process_batches`, :func:`map_batches`.

The user's function runs in the calling thread on one batch while a single background
thread merges the previous batch's output and gathers the next batch (pipelining).
The background thread runs the serial variants of the batch kernels, never parallel
ones: two threads that launch numba parallel regions at the same time can abort the
process under numba's ``workqueue`` threading layer, and the user's function may well
launch its own. The calling thread runs the parallel variants, only while the
background thread is idle (the first gather, the last merge), and only when
:func:`_engine.serial_wanted` says no (``threads=1``, or off the main thread under
``workqueue``).

:func:`accumulate_batches` and :func:`map_values` are the core for any list of patch
origins and any output region (the meaning of ``_engine.run_accumulate`` and
``run_map``); :mod:`patchjit.dask` runs them per chunk, unpipelined, on the patches of
the global grid that touch the chunk.

Determinism: outputs are merged batch after batch, in patch order, by a kernel in
which each iteration owns one output row, so every pixel adds its contributions in
global patch order whatever the batch size, the thread count or the timing.
"""

from __future__ import annotations

import numbers
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import wait as _wait

import numpy as np

from . import _batch_kernels as BK
from . import _engine as E
from ._grid import PatchGrid
from ._plan import Plan, fitting_options

__all__ = ["DEFAULT_BATCH_SIZE", "accumulate_batches", "map_values"]

DEFAULT_BATCH_SIZE = 32


# --- checks -------------------------------------------------------------------------


def _check_func(func):
    if not callable(func):
        raise TypeError(f"func must be callable, got {type(func).__name__}")


def _check_batch_size(batch_size) -> int:
    if not isinstance(batch_size, (numbers.Integral, np.integer)) or isinstance(batch_size, bool):
        raise TypeError(f"batch_size must be an int, got {batch_size!r}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    return int(batch_size)


def _as_result(res, expected: tuple, hint: str, plan=None) -> np.ndarray:
    """``numpy.asarray(res)``, checked to hold real numbers of shape ``expected``
    (``plan``: name the ``margin=``/``scale=`` that would fit a wrong shape)."""
    try:
        arr = res if isinstance(res, np.ndarray) else np.asarray(res)
    except Exception as exc:  # e.g. a torch tensor that requires grad
        raise TypeError(
            f"func must return an array of shape {expected} ({hint}); got a "
            f"{type(res).__name__} that numpy.asarray cannot convert: {exc} (for a torch "
            f"tensor return tensor.detach().numpy())"
        ) from exc
    if arr.dtype.kind not in "buif":
        raise TypeError(
            f"func must return real numbers of shape {expected} ({hint}); got a "
            f"{type(res).__name__} with dtype {arr.dtype} and shape {arr.shape}"
        )
    if arr.shape != expected:
        k = plan.grid.ndim if plan is not None else 0
        fits = ""
        if plan is not None and arr.ndim > k:
            fits = fitting_options(plan, arr.shape[1 : k + 1])
        raise ValueError(
            f"func returned shape {arr.shape} for a batch of {expected[0]} patches; "
            f"expected {expected} ({hint}){fits}"
        )
    return arr


# --- the pipeline -------------------------------------------------------------------


def _pipeline(n_total: int, batch_size: int, gather, call, consume, bar, pipelined=True) -> None:
    """Run ``call`` on every batch while the background thread consumes and gathers.

    ``gather(g0, n, slot, serial)`` fills input slot ``slot`` (0 or 1) with patches
    ``g0 .. g0 + n``; ``call(n, slot)`` runs the user's function on it and returns the
    checked result; ``consume(g0, n, result, serial)`` merges it. Batch ``b`` uses slot
    ``b % 2``; the background task consumes batch ``b - 1`` before it gathers batch
    ``b + 1`` into that batch's slot, so a result that is a view of its own input is
    merged before the slot is overwritten. Batches are consumed strictly in order.
    On any exception (KeyboardInterrupt included) the background task is waited for
    and the exception propagates. The calling thread's own gather and merge run the
    parallel kernels unless :func:`_engine.serial_wanted`. ``pipelined=False`` runs
    everything in the calling thread, one batch after the other (inside a dask task,
    where dask supplies the parallelism).
    """
    starts = range(0, n_total, batch_size)
    serial = E.serial_wanted()

    def size(b):
        return min(batch_size, n_total - starts[b])

    if not pipelined:
        for b in range(len(starts)):
            gather(starts[b], size(b), 0, serial)
            consume(starts[b], size(b), call(size(b), 0), serial)
            if bar is not None:
                bar.update(size(b))
        return
    gather(0, size(0), 0, serial)
    pending = None
    with ThreadPoolExecutor(1, thread_name_prefix="patchjit-batches") as pool:

        def background(prev, b_next):
            if prev is not None:
                consume(*prev, True)
            if b_next < len(starts):
                gather(starts[b_next], size(b_next), b_next % 2, True)

        for b in range(len(starts)):
            fut = pool.submit(background, pending, b + 1)
            try:
                result = call(size(b), b % 2)
                if pending is not None and _shares(result, pending[2]):
                    raise ValueError(
                        "func returned memory that its previous result also uses (a "
                        "reused output buffer?); the previous batch is merged while func "
                        "runs, so return a new array each call (e.g. buffer.copy())"
                    )
            except BaseException:
                _wait([fut])
                raise
            fut.result()
            pending = (starts[b], size(b), result)
            if bar is not None:
                bar.update(size(b))
    consume(*pending, serial)


def _shares(a, b) -> bool:
    """Whether two results (an array, or a list of one per output) share memory."""
    a, b = (x if isinstance(x, list) else [x] for x in (a, b))
    return any(np.may_share_memory(x, y) for x in a for y in b)


def _tails(plan: Plan):
    """Batch shapes after ``n``: func's input, its output, and the output's description."""
    grid, in_patch = plan.grid, plan.in_patch
    nc = grid.n_channels
    in_tail = in_patch + ((nc,) if grid.channel_axis is not None else ())
    out_tail = grid.patch_shape + ((plan.nco,) if plan.keep_c else ())
    hint = "(n, *patch_shape, K) with K output channels" if plan.keep_c else "(n, *patch_shape)"
    if in_patch != grid.patch_shape:
        hint += (
            f"; the output patch is (patch - 2 * margin) * scale = {grid.patch_shape} for "
            f"an input patch {in_patch}"
        )
    return in_tail, out_tail, hint


def is_multi(res, n: int, plan: Plan) -> bool:
    """Whether ``func``'s result holds several outputs: a dict, or a tuple that is not
    ``n`` single-patch outputs (those stack into one array, as numpy.asarray does)."""
    if isinstance(res, dict):
        return True
    if not isinstance(res, tuple):
        return False
    _, out_tail, _ = _tails(plan)
    return not (len(res) == n and all(np.shape(r) == out_tail for r in res))


def output_keys(res) -> tuple:
    """The outputs' keys: the dict's keys in order, or tuple indices."""
    return tuple(res) if isinstance(res, dict) else tuple(range(len(res)))


def _split(res, keys):
    """The outputs of one call in ``keys`` order (``keys`` None: one output)."""
    if keys is None:
        return [res]
    if isinstance(keys[0], int) and not isinstance(res, dict):
        if not isinstance(res, tuple) or len(res) != len(keys):
            got = f"{len(res)} outputs" if isinstance(res, tuple) else type(res).__name__
            raise ValueError(f"func returned {got}; its first batch gave {len(keys)} outputs")
        return list(res)
    if not isinstance(res, dict) or set(res) != set(keys):
        got = sorted(map(str, res)) if isinstance(res, dict) else type(res).__name__
        raise ValueError(f"func returned {got}; its first batch gave the keys {list(keys)}")
    return [res[k] for k in keys]


def first_batch(plan: Plan, src, func, origins3, n: int):
    """``func`` on the first ``n`` patches at ``origins3`` (gathered into a buffer of
    its own), unchecked: its outputs' shapes tell how many outputs there are and their
    scales. :func:`accumulate_batches` takes it as its first batch's result."""
    in_tail, _, _ = _tails(plan)
    pd, ph, pw = plan.in_patch3
    buf = np.empty((n, pd, ph, pw * src.shape[3]), dtype=plan.acc_dtype)
    BK.gather_batch_serial(src, *origins3, 0, n, buf)
    return func(buf.reshape((n, *in_tail)))


def accumulate_batches(plan: Plan, src, func, origins3, targets, batch_size, bar=None,
                       pipelined=True, *, first=None, keys=None):  # fmt: skip
    """Overlap-add ``func``'s outputs for the patches at ``origins3`` into accumulators.

    The batch counterpart of :func:`_engine.run_accumulate`, with its meaning: ``src``
    is the read-only C-contiguous ``(D, H, W, C)`` source, ``origins3`` the input patch
    origins per axis in ``src``'s frame (their product, in C order, is the patch list).
    ``targets`` holds per output ``(plan, acc, out_origins3, region0)``: its plan (the
    output patch, channels, window, reduction), its accumulator (``(D, H, W * nco)``,
    holding the reduction's identity) covering the region from ``region0`` of the
    output's padded frame (contributions outside it are dropped), and the output
    patches' origins in that frame. ``keys``: the outputs' keys when ``func`` returns
    several (see :func:`_split`), None for one array. ``first``: ``func``'s result on
    the first batch when already computed (:func:`first_batch`). Not normalised.
    """
    in_tail, _, _ = _tails(plan)
    pd, ph, pw = plan.in_patch3
    od, oh, ow = origins3
    n_total = len(od) * len(oh) * len(ow)
    nc = src.shape[3]
    bs = min(batch_size, n_total)
    slots = np.empty((2 if pipelined else 1, bs, pd, ph, pw * nc), dtype=plan.acc_dtype)
    outs = []
    for p, acc, xo, r0 in targets:
        _, tail, hint = _tails(p)
        if keys is None and p.grid_in is p.grid:
            hint += "; for a smaller output pass margin=, for another size scale="
        w = p.weights3()
        weights = (w, True) if w is not None else (np.ones((1, 1, 1), acc.dtype), False)
        outs.append((p, acc, xo, r0, tail, hint, weights))
    pending = [first]

    def gather(g0, n, slot, serial):
        kern = BK.gather_batch_serial if serial else BK.gather_batch
        kern(src, od, oh, ow, g0, n, slots[slot])

    def call(n, slot):
        res, pending[0] = pending[0], None
        if res is None:
            res = func(slots[slot, :n].reshape((n, *in_tail)))
        if keys is None and is_multi(res, n, plan):
            raise ValueError(
                f"func returned a {type(res).__name__} of several outputs where one array "
                f"was expected (several outputs need the in-memory process_batches, and "
                f"the same structure from every batch)"
            )
        parts = _split(res, keys)
        return [_as_result(r, (n, *o[4]), o[5], o[0]) for r, o in zip(parts, outs)]

    def consume(g0, n, results, serial):
        for r, (p, acc, xo, r0, _, _, (wts, weighted)) in zip(results, outs):
            qd, qh, qw = p.grid.patch3
            out = np.ascontiguousarray(r, dtype=acc.dtype).reshape((n, qd, qh, qw * p.nco))
            rows = _rows(g0, n, xo[0], xo[1], len(xo[2]), qd, qh, r0, acc.shape[:2])
            kern = BK.scatter_batch_serial if serial else BK.scatter_batch
            kern(out, wts, weighted, p.code, *xo, g0, qw, p.nco, r0, rows, acc)

    _pipeline(n_total, bs, gather, call, consume, bar, pipelined)


def map_values(
    src, func, grid: PatchGrid, origins3, acc_dtype, res, batch_size, bar=None, pipelined=True
):  # fmt: skip
    """Fill the flat ``res`` with ``func``'s value for each patch at ``origins3``
    (``src``'s frame, C order), batches in ``acc_dtype``. The batch counterpart of
    :func:`_engine.run_map`."""
    nc = grid.n_channels
    in_tail = grid.patch_shape + ((nc,) if grid.channel_axis is not None else ())
    pd, ph, pw = grid.patch3
    od, oh, ow = origins3
    bs = min(batch_size, res.size)
    slots = np.empty((2 if pipelined else 1, bs, pd, ph, pw * src.shape[3]), dtype=acc_dtype)

    def gather(g0, n, slot, serial):
        kern = BK.gather_batch_serial if serial else BK.gather_batch
        kern(src, od, oh, ow, g0, n, slots[slot])

    def call(n, slot):
        batch = slots[slot, :n].reshape((n, *in_tail))
        return _as_result(func(batch), (n,), "one value per patch")

    def consume(g0, n, values, serial):
        res[g0 : g0 + n] = values

    _pipeline(res.size, bs, gather, call, consume, bar, pipelined)


def _rows(g0, n, od, oh, gw, pd, ph, region0, limits):
    """Rows ``(d_lo, d_hi, h_lo, h_hi)`` of the accumulator that patches ``g0 .. g0 + n``
    touch: their bounding box (patches run in C order of the grid), clipped to it."""
    ghw = len(oh) * gw
    (i0, r0), (i1, r1) = divmod(g0, ghw), divmod(g0 + n - 1, ghw)
    j0, j1 = (r0 // gw, r1 // gw) if i0 == i1 else (0, len(oh) - 1)
    d = np.clip([od[i0] - region0[0], od[i1] + pd - region0[0]], 0, limits[0])
    h = np.clip([oh[j0] - region0[1], oh[j1] + ph - region0[1]], 0, limits[1])
    return int(d[0]), int(d[1]), int(h[0]), int(h[1])
