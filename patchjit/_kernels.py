"""The compiled kernels, and nothing else.

Canonical layout: every image is seen as a C-contiguous 3-D array ``(S, R, W * C)``
(unit axes for missing spatial axes, ``C = 1`` without channels). ``S`` is the *strip
axis*: the first spatial axis of a volume, the rows of a 2-D image (its unit axis is
then ``R``), and a unit axis for 1-D signals. Accumulators have the same layout with the
output channel count.

Strip pipeline: the patch grid is cut into fixed blocks (boxes of patches, chosen from
the geometry only, never from the thread count). For each patch *column* of a block
(all origins fixed but the one on ``S``) the block's span of the column is copied once
into a contiguous strip; every patch of the column is then a C-contiguous slice of the
strip, handed to the callback as a read-only array. Each patch output is added into an
equally shaped output strip as one flat run, and the output strip into the block's
private buffer once per column. The buffers are folded into the output in ascending
block order, in parallel over output rows, so every output pixel sums its contributions
in the same order whatever the number of threads.

Source access is a pair of first-class functions: ``col`` prepares a column (copies the
strip, or nothing) and ``fetch`` returns one patch as a flat read-only C array (a strip
slice, a slice of a 1-D source row, or a copy of a stacked patch for ``unpatchify``).
``view``/``oview`` give the flat patch and output buffer the callback's shape.

Every ``@njit(parallel=True)`` driver has a serial twin (``*_serial``) compiled from the
same source without ``parallel``; the engine uses it for one thread, and from non-main
Python threads under numba's ``workqueue`` layer, which is not thread-safe.
"""

from __future__ import annotations

import functools
import types as pytypes

import numpy as np
from numba import carray, njit, prange
from numba.core import types
from numba.core.imputils import impl_ret_borrowed
from numba.extending import intrinsic

from . import _cache

SUM, MAX, MIN = 0, 1, 2

# Block table columns: patch index ranges, then the block's footprint in the padded frame.
B_I0D, B_I1D, B_I0H, B_I1H, B_I0W, B_I1W, B_Y0D, B_FD, B_Y0H, B_FH, B_X0, B_FW = range(12)


# Helpers that a variant binds (see ``variant``); the plain module never calls them.
_COL = _FETCH = _ADD = _COMB = _OP = None
_RESET = False


def variant(impl, name, bound=None, *, cache=True, **options):
    """Compile ``impl`` as a new numba function called ``name``.

    ``bound`` maps global names of ``impl`` to the helpers this variant uses (bound
    when the variant is defined, so a cached variant's argument types are the same in
    every process: a helper passed at call time would be typed by object identity).
    Each variant has its own name, hence its own files in numba's disk cache, whose
    index ignores the compile flags: a parallel and a serial variant of one function
    would otherwise load each other's machine code. ``cache`` attaches patchjit's disk
    cache (see :mod:`patchjit._cache`); ``options`` go to ``numba.njit``.
    """
    g = impl.__globals__ if not bound else {**impl.__globals__, **bound}
    f = pytypes.FunctionType(impl.__code__, g, name, impl.__defaults__, impl.__closure__)
    f.__qualname__ = name
    f.__doc__ = impl.__doc__
    f.__module__ = impl.__module__
    dispatcher = njit(**options)(f)
    return _cache.attach(dispatcher) if cache else dispatcher


def twins(impl, name, **options):
    """``(parallel, serial)`` variants of ``impl``, named ``name`` and ``name_serial``."""
    return (
        variant(impl, name, parallel=True, **options),
        variant(impl, f"{name}_serial", **options),
    )


@intrinsic
def readonly(typingctx, arr):
    """The same array, typed read-only (a free retype; no copy)."""
    if not isinstance(arr, types.Array):
        return None
    sig = arr.copy(readonly=True)(arr)

    def codegen(context, builder, signature, args):
        return impl_ret_borrowed(context, builder, signature.return_type, args[0])

    return sig, codegen


@intrinsic
def data_at(typingctx, arr, off):
    """Pointer to element ``off`` of a C-contiguous array's data (no bounds check)."""
    if not isinstance(arr, types.Array):
        return None
    sig = types.CPointer(arr.dtype)(arr, off)

    def codegen(context, builder, signature, args):
        ary = context.make_array(signature.args[0])(context, builder, args[0])
        return builder.gep(ary.data, [args[1]])

    return sig, codegen


@njit(inline="always")
def flat_view(arr, off, n):
    """``arr[off:off + n]`` as a read-only C array built on the pointer: no reference
    counting and no slicing machinery per patch (the caller keeps ``arr`` alive)."""
    return readonly(carray(data_at(arr, off), (n,)))


# --- views: flat C array -> the callback's shape -------------------------------------
# Built on the data pointer (carray): a per-patch reshape would call numba's generic
# reshape helper and touch reference counts.
# view(flat, vshape, nc): ``vshape`` is the patch's (D, H, W) in the user's axis order.


@njit(inline="always")
def take_1d(flat, vshape, nc):
    return flat


@njit(inline="always")
def take_1dc(flat, vshape, nc):
    return readonly(carray(data_at(flat, 0), (vshape[2], nc)))


@njit(inline="always")
def take_2d(flat, vshape, nc):
    return readonly(carray(data_at(flat, 0), (vshape[1], vshape[2])))


@njit(inline="always")
def take_2dc(flat, vshape, nc):
    return readonly(carray(data_at(flat, 0), (vshape[1], vshape[2], nc)))


@njit(inline="always")
def take_3d(flat, vshape, nc):
    return readonly(carray(data_at(flat, 0), (vshape[0], vshape[1], vshape[2])))


@njit(inline="always")
def take_3dc(flat, vshape, nc):
    return readonly(carray(data_at(flat, 0), (vshape[0], vshape[1], vshape[2], nc)))


take_flat = take_1d


# oview(o, vshape, nc): the flat ``out`` buffer in the callback's shape (writeable).


@njit(inline="always")
def oview_1d(o, vshape, nc):
    return o


@njit(inline="always")
def oview_1dc(o, vshape, nc):
    return carray(data_at(o, 0), (vshape[2], nc))


@njit(inline="always")
def oview_2d(o, vshape, nc):
    return carray(data_at(o, 0), (vshape[1], vshape[2]))


@njit(inline="always")
def oview_2dc(o, vshape, nc):
    return carray(data_at(o, 0), (vshape[1], vshape[2], nc))


@njit(inline="always")
def oview_3d(o, vshape, nc):
    return carray(data_at(o, 0), (vshape[0], vshape[1], vshape[2]))


@njit(inline="always")
def oview_3dc(o, vshape, nc):
    return carray(data_at(o, 0), (vshape[0], vshape[1], vshape[2], nc))


oview_flat = oview_1d


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


VIEWS = {
    (1, False): (take_1d, oview_1d),
    (1, True): (take_1dc, oview_1dc),
    (2, False): (take_2d, oview_2d),
    (2, True): (take_2dc, oview_2dc),
    (3, False): (take_3d, oview_3d),
    (3, True): (take_3dc, oview_3dc),
}


@njit
def copy_flat(patch, out):
    """Callback used by ``unpatchify``: the patch itself."""
    for q in range(patch.size):
        out[q] = patch[q]


# --- source access ------------------------------------------------------------------
# col(src, strip, s0, s1, yr, x, pr, pw, nc): prepare the column at (yr, x) for S-rows
# s0:s1. fetch(src, strip, i, j, k, s, yr, x, off, n, nc): patch (i, j, k) with origin
# (s, yr, x), ``n`` values, at ``off`` in the strip.


@njit(inline="always")
def col_strip(src, strip, s0, s1, yr, x, pr, pw, nc):
    n = pw * nc
    base = x * nc
    t = np.uint64(0)
    for s in range(s0, s1):
        for b in range(pr):
            row = src[s, yr + b]
            for q in range(n):
                strip[t + np.uint64(q)] = row[base + q]
            t += np.uint64(n)


@njit(inline="always")
def col_none(src, strip, s0, s1, yr, x, pr, pw, nc):
    pass


@njit(inline="always")
def fetch_strip(src, strip, i, j, k, s, yr, x, off, n, nc):
    return flat_view(strip, off, n)


@njit(inline="always")
def fetch_row(src, strip, i, j, k, s, yr, x, off, n, nc):
    # patches of one source row (1-D signals): already contiguous in the source
    return flat_view(src[s, yr], x * nc, n)


@njit(inline="always")
def fetch_stacked(src, strip, i, j, k, s, yr, x, off, n, nc):
    # unpatchify: a stack of patches (gs, gr, gw, ps, pr, pw, C), any layout
    p = src[i, j, k]
    t = 0
    for a in range(p.shape[0]):
        for b in range(p.shape[1]):
            for c in range(p.shape[2]):
                for q in range(p.shape[3]):
                    strip[t] = p[a, b, c, q]
                    t += 1
    return flat_view(strip, 0, n)


# --- accumulation -------------------------------------------------------------------


@njit(inline="always")
def _nanmax(a, b):
    # NaN-propagating maximum: a NaN on either side wins.
    return a if (a > b or a != a) else b


@njit(inline="always")
def _nanmin(a, b):
    return a if (a < b or a != a) else b


# add(dst, src, wts, t, n): dst[t:t+n] (op)= src[:n], one flat run. Unsigned offsets
# spare numba's negative-index wraparound in the inner loop. ``wts`` has at least
# ``n`` entries (ones when unweighted). The ``*_reset`` variants add a patch's output
# and set it back to NaN in the same pass, so ``out`` holds NaN whenever the callback
# is called (no stale values), without a separate fill pass.


@njit(inline="always")
def _op_sum(d, s, w):
    return d + s


@njit(inline="always")
def _op_weighted(d, s, w):
    return d + w * s


@njit(inline="always")
def _op_max(d, s, w):
    return _nanmax(d, s)


@njit(inline="always")
def _op_min(d, s, w):
    return _nanmin(d, s)


def _add_impl(dst, src, wts, t, n):
    t = np.uint64(t)
    for k in range(n):
        q = np.uint64(k)
        dst[t + q] = _OP(dst[t + q], src[q], wts[q])
        if _RESET:
            src[q] = np.nan


def _adder(op, reset, name):
    return variant(_add_impl, name, {"_OP": op, "_RESET": reset}, cache=False, inline="always")


add_sum = _adder(_op_sum, False, "add_sum")
add_weighted = _adder(_op_weighted, False, "add_weighted")
add_max = _adder(_op_max, False, "add_max")
add_min = _adder(_op_min, False, "add_min")
add_sum_reset = _adder(_op_sum, True, "add_sum_reset")
add_weighted_reset = _adder(_op_weighted, True, "add_weighted_reset")
add_max_reset = _adder(_op_max, True, "add_max_reset")
add_min_reset = _adder(_op_min, True, "add_min_reset")

WEIGHTED = 3  # a fourth merge kind beside SUM, MAX, MIN: SUM with window weights
# merge kind -> (add a patch output into the column strip, add the strip into the block)
_ADDS = {
    SUM: (add_sum_reset, add_sum),
    MAX: (add_max_reset, add_max),
    MIN: (add_min_reset, add_min),
    WEIGHTED: (add_weighted_reset, add_sum),
}


@njit(inline="always")
def _run_block(
    blk, buf, strip, ostrip, o, src, col, fetch, cb, args, add, comb, init, os_, or_,
    ow, ps, pr, pw, nc, nco, vshape, wts, stop, err,
):  # fmt: skip
    fs, fr, fw = blk[B_FD], blk[B_FH], blk[B_FW]
    for q in range(o.size):
        o[q] = np.nan  # then reset to NaN by ``add`` after every patch
    for a in range(fs):
        for c in range(fr):
            row = buf[a, c]
            for k in range(fw * nco):
                row[k] = init
    y0s, y0r, x0 = blk[B_Y0D], blk[B_Y0H], blk[B_X0]
    n_in = ps * pr * pw * nc
    n_out = ps * pr * pw * nco
    srow_in = pr * pw * nc
    srow_out = pr * pw * nco
    run = pw * nco
    dst = buf.reshape(buf.size)
    row_step = buf.shape[2]
    plane_step = buf.shape[1] * row_step
    for j in range(blk[B_I0H], blk[B_I1H]):
        yr = or_[j]
        for k in range(blk[B_I0W], blk[B_I1W]):
            if stop[0] != 0:
                return  # a callback raised in another block: stop early
            x = ow[k]
            col(src, strip, y0s, y0s + fs, yr, x, pr, pw, nc)
            for q in range(fs * srow_out):
                ostrip[q] = init
            for i in range(blk[B_I0D], blk[B_I1D]):
                s = os_[i]
                patch = fetch(src, strip, i, j, k, s, yr, x, (s - y0s) * srow_in, n_in, nc)
                if cb(patch, o, vshape, nc, nco, args) == 0:
                    # the callback raised (numba reported it as unraisable): note the
                    # patch and stop; the engine raises the callback's own error
                    stop[0] = 1
                    err[0], err[1], err[2] = i, j, k
                    return
                add(ostrip, o, wts, (s - y0s) * srow_out, n_out)
            # the column's output strip into the block buffer, one run per row
            t_col = (yr - y0r) * row_step + (x - x0) * nco
            for a in range(fs):
                for b in range(pr):
                    t = t_col + a * plane_step + b * row_step
                    comb(dst, flat_view(ostrip, (a * pr + b) * run, run), wts, t, run)


def _accumulate_impl(
    src, cb, args, init, os_, or_, ow, ps, pr, pw, nc, nco, vshape, wts, blocks, bufs,
    dtype_in, stop, err,
):  # fmt: skip
    """Run the callback on every patch of each block, overlap-adding into ``bufs[b]``.

    ``cb`` is the callback's typed function pointer (see :mod:`patchjit._callback`):
    ``cb(flat_patch, flat_out, vshape, nc, nco, args)`` returns 1, or 0 when the user's
    function raised; the first failing patch of block ``b`` is then written to
    ``err[b]`` (its grid index) and ``stop[0]`` set, which stops every block. The
    variant's bound helpers: ``_COL``/``_FETCH`` (source access), ``_ADD`` (a patch
    output into the column's output strip) and ``_COMB`` (the strip into the block
    buffer); ``init`` is the reduction's identity. Scratch (strip, output strip,
    ``out``) is allocated once per block, never per patch.
    """
    fs_max = bufs.shape[1]
    for b in prange(blocks.shape[0]):
        strip = np.empty(max(fs_max * pr * pw * nc, ps * pr * pw * nc), dtype=dtype_in)
        ostrip = np.empty(fs_max * pr * pw * nco, dtype=bufs.dtype)
        o = np.empty(ps * pr * pw * nco, dtype=bufs.dtype)
        _run_block(
            blocks[b], bufs[b], strip, ostrip, o, src, _COL, _FETCH, cb, args, _ADD, _COMB,
            init, os_, or_, ow, ps, pr, pw, nc, nco, vshape, wts, stop, err[b],
        )  # fmt: skip


# source kind -> (col, fetch)
_SOURCES = {
    "strip": (col_strip, fetch_strip),
    "row": (col_none, fetch_row),
    "stacked": (col_none, fetch_stacked),
}
_KIND_NAMES = {SUM: "sum", MAX: "max", MIN: "min", WEIGHTED: "weighted"}


@functools.cache
def accumulate_kernel(source: str, kind: int, parallel: bool):
    """The accumulate driver for a source access (``"strip"``, ``"row"``,
    ``"stacked"``) and a merge kind (``SUM``, ``MAX``, ``MIN``, ``WEIGHTED``)."""
    col, fetch = _SOURCES[source]
    add, comb = _ADDS[kind]
    name = f"accumulate_{source}_{_KIND_NAMES[kind]}" + ("" if parallel else "_serial")
    bound = {"_COL": col, "_FETCH": fetch, "_ADD": add, "_COMB": comb}
    return variant(_accumulate_impl, name, bound, parallel=parallel)


def fold_blocks_impl(blocks, bufs, acc, nc, red, region0, rows):
    """Fold block buffers into ``acc`` in ascending block order, one row per iteration.

    Race-free, and independent of the thread count. ``acc`` holds the output region
    starting at ``region0 = (d0, h0, x0)`` of the padded frame (``x0`` in pixels);
    contributions outside it are dropped. ``rows = (d_lo, d_hi, h_lo, h_hi)`` bounds the
    rows of ``acc`` that these blocks touch.
    """
    nb = blocks.shape[0]
    W = acc.shape[2] // nc
    d0, h0, xr = region0
    d_lo, d_hi, h_lo, h_hi = rows
    nh = h_hi - h_lo
    for r in prange((d_hi - d_lo) * nh):
        d = d_lo + r // nh
        h = h_lo + r % nh
        gd, gh = d + d0, h + h0
        row = acc[d, h]
        for b in range(nb):
            blk = blocks[b]
            ld = gd - blk[B_Y0D]
            lh = gh - blk[B_Y0H]
            if ld < 0 or ld >= blk[B_FD] or lh < 0 or lh >= blk[B_FH]:
                continue
            lo = max(blk[B_X0], xr)
            hi = min(blk[B_X0] + blk[B_FW], xr + W)
            if hi <= lo:
                continue
            brow = bufs[b, ld, lh]
            s = (lo - blk[B_X0]) * nc
            t = (lo - xr) * nc
            n = (hi - lo) * nc
            if red == SUM:
                for q in range(n):
                    row[t + q] += brow[s + q]
            elif red == MAX:
                for q in range(n):
                    row[t + q] = _nanmax(row[t + q], brow[s + q])
            else:
                for q in range(n):
                    row[t + q] = _nanmin(row[t + q], brow[s + q])


fold_blocks, fold_blocks_serial = twins(fold_blocks_impl, "fold_blocks")


def finalize_impl(acc, cd, ch, cw, nc, divide):
    """Normalise ``acc`` in place: divide by the separable coverage ``cd[d] * ch[h] *
    cw[x]`` (mean) and mark uncovered pixels NaN."""
    D, H = acc.shape[0], acc.shape[1]
    W = acc.shape[2] // nc
    for r in prange(D * H):
        d = r // H
        h = r - d * H
        cdh = cd[d] * ch[h]
        row = acc[d, h]
        for x in range(W):
            c = cdh * cw[x]
            for q in range(x * nc, x * nc + nc):
                if c == 0:
                    row[q] = np.nan
                elif divide:
                    row[q] = row[q] / c


finalize, finalize_serial = twins(finalize_impl, "finalize")


def finalize_window_impl(acc, ind_d, ind_h, vecs, pads, nc, divide):
    """Normalise ``acc`` in place by the coverage of a non-separable window.

    The coverage of each output row is computed on the fly (float64, O(W) scratch per
    row, never a full-size map): the sum, over the window's leading positions ``(a, b)``
    whose patch rows cover the row, of ``vecs[a, b]`` (the window's last-axis profile
    convolved with the origin indicator along W). ``ind_d``/``ind_h`` are origin
    indicators in the padded frame, ``pads`` the padding before each axis.
    """
    D, H = acc.shape[0], acc.shape[1]
    W = acc.shape[2] // nc
    pd, ph = vecs.shape[0], vecs.shape[1]
    bd, bh, bw = pads
    for r in prange(D * H):
        d = r // H
        h = r - d * H
        cov = np.zeros(W)
        for a in range(pd):
            sd = d + bd - a
            if sd < 0 or sd >= ind_d.size or ind_d[sd] == 0:
                continue
            for b in range(ph):
                sh = h + bh - b
                if sh < 0 or sh >= ind_h.size or ind_h[sh] == 0:
                    continue
                v = vecs[a, b]
                for x in range(W):
                    cov[x] += v[bw + x]
        row = acc[d, h]
        for x in range(W):
            c = cov[x]
            for q in range(x * nc, x * nc + nc):
                if c == 0:
                    row[q] = np.nan
                elif divide:
                    row[q] = row[q] / c


finalize_window, finalize_window_serial = twins(finalize_window_impl, "finalize_window")


def _map_units_impl(
    src, cb, args, os_, or_, ow, ps, pr, pw, nc, vshape, chunk, kchunk, u0, u1, res,
    dtype_in, stop, err,
):  # fmt: skip
    """``res[i, j, k] = func(patch(i, j, k), *args)`` for work units ``u0:u1``.

    A unit is ``chunk`` consecutive patches along S, one R origin and ``kchunk``
    columns; each column's strip is copied once and every patch is a slice of it.
    ``cb(flat_patch, vshape, nc, args, value)`` stores the callback's value in
    ``value[0]`` and returns 1, or 0 when the user's function raised: the patch's grid
    index goes to ``err[u - u0]`` and ``stop[0]`` stops every unit.
    """
    gs, gr, gw = res.shape
    nk = -(-gw // kchunk)
    srow = pr * pw * nc
    n = ps * srow
    for u in prange(u0, u1):
        c = u // (gr * nk)
        rest = u - c * gr * nk
        j = rest // nk
        kc = rest - j * nk
        i0 = c * chunk
        i1 = min(i0 + chunk, gs)
        s0 = os_[i0]
        s1 = os_[i1 - 1] + ps
        strip = np.empty((s1 - s0) * srow, dtype=dtype_in)
        value = np.empty(1, dtype=np.float64)
        yr = or_[j]
        for k in range(kc * kchunk, min(kc * kchunk + kchunk, gw)):
            if stop[0] != 0:
                break
            x = ow[k]
            _COL(src, strip, s0, s1, yr, x, pr, pw, nc)
            failed = False
            for i in range(i0, i1):
                s = os_[i]
                patch = _FETCH(src, strip, i, j, k, s, yr, x, (s - s0) * srow, n, nc)
                if cb(patch, vshape, nc, args, value) == 0:
                    stop[0] = 1
                    e = err[u - u0]
                    e[0], e[1], e[2] = i, j, k
                    failed = True
                    break
                res[i, j, k] = value[0]
            if failed:
                break


@functools.cache
def map_kernel(source: str, parallel: bool):
    """The map driver for a source access (``"strip"`` or ``"row"``)."""
    col, fetch = _SOURCES[source]
    name = f"map_units_{source}" + ("" if parallel else "_serial")
    return variant(_map_units_impl, name, {"_COL": col, "_FETCH": fetch}, parallel=parallel)


# --- batches (process_batches, map_batches) -----------------------------------------
# Each kernel is written once as a plain function and compiled twice: a parallel
# variant for the calling thread and a serial one for the background thread that
# overlaps with the user's function (two threads launching parallel regions at once can
# abort the process under numba's workqueue threading layer). Both variants give the
# same bits: each output element is written by one iteration, in the same order.


@njit(inline="always")
def _patch_origin(g, od, oh, ow):
    """Origin ``(yd, yh, x)`` of flat patch index ``g`` (C order over the grid)."""
    gw = ow.shape[0]
    ghw = oh.shape[0] * gw
    i = g // ghw
    r = g - i * ghw
    j = r // gw
    return od[i], oh[j], ow[r - j * gw]


def _gather_batch(src, od, oh, ow, g0, n, batch):
    """Copy patches ``g0 .. g0 + n`` of ``src`` (D, H, W, C) into ``batch[:n]``.

    ``batch`` is C-contiguous ``(bs, pd, ph, pw * C)``; values are cast to its dtype.
    One iteration per patch row.
    """
    pd, ph, m = batch.shape[1], batch.shape[2], batch.shape[3]
    nc = src.shape[3]
    width = src.shape[2] * nc
    rows = pd * ph
    for r in prange(n * rows):
        p = r // rows
        q = r - p * rows
        a = q // ph
        b = q - a * ph
        yd, yh, x = _patch_origin(g0 + p, od, oh, ow)
        srow = src[yd + a, yh + b].reshape(width)
        drow = batch[p, a, b]
        s = x * nc
        for t in range(m):
            drow[t] = srow[s + t]


def _scatter_batch(outs, wts, weighted, red, od, oh, ow, g0, pw, nk, region0, rows, acc):
    """Overlap-add ``outs[p]`` (patch ``g0 + p``) into ``acc`` in ascending patch order.

    ``outs`` is C-contiguous ``(n, pd, ph, pw * nk)`` in ``acc``'s dtype, ``wts`` the
    window ``(pd, ph, pw * nk)`` (used when ``weighted``). ``acc`` is
    ``(D, H, W * nk)``, the output region whose first pixel is ``region0`` in the padded
    frame; ``rows = (d_lo, d_hi, h_lo, h_hi)`` bounds the rows of ``acc`` these patches
    touch. Each iteration owns one output row, so the kernel is race-free and every
    pixel adds its contributions in patch order, whatever the thread count.
    """
    n, pd, ph = outs.shape[0], outs.shape[1], outs.shape[2]
    W = acc.shape[2] // nk
    d0, h0, x0 = region0
    d_lo, d_hi, h_lo, h_hi = rows
    nh = h_hi - h_lo
    for r in prange((d_hi - d_lo) * nh):
        d = d_lo + r // nh
        h = h_lo + r % nh
        gd, gh = d + d0, h + h0
        row = acc[d, h]
        for p in range(n):
            yd, yh, x = _patch_origin(g0 + p, od, oh, ow)
            a = gd - yd
            b = gh - yh
            if a < 0 or a >= pd or b < 0 or b >= ph:
                continue
            lo = max(x, x0)
            hi = min(x + pw, x0 + W)
            if hi <= lo:
                continue
            orow = outs[p, a, b]
            wrow = wts[a, b]
            s = (lo - x) * nk
            t = (lo - x0) * nk
            m = (hi - lo) * nk
            if red == SUM:
                if weighted:
                    for q in range(m):
                        row[t + q] += wrow[s + q] * orow[s + q]
                else:
                    for q in range(m):
                        row[t + q] += orow[s + q]
            elif red == MAX:
                for q in range(m):
                    row[t + q] = _nanmax(row[t + q], orow[s + q])
            else:
                for q in range(m):
                    row[t + q] = _nanmin(row[t + q], orow[s + q])


# nogil: the serial variants run beside the user's function, which needs the GIL to
# dispatch its own work (torch, numpy).
gather_batch, gather_batch_serial = twins(_gather_batch, "gather_batch", nogil=True)
scatter_batch, scatter_batch_serial = twins(_scatter_batch, "scatter_batch", nogil=True)
