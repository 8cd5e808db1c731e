"""The compiled kernels, and nothing else.

Canonical layout: every image is seen as a 4-D view ``(D, H, W, C)`` (unit axes for
missing spatial axes, ``C = 1`` without channels); every accumulator as a C-contiguous
3-D array ``(D, H, W * C)``, so that the innermost loops run over contiguous memory for
any channel count.

Race-free, deterministic accumulation: the patch grid is cut into fixed blocks (boxes
of patches, chosen from the geometry only, never from the thread count). A wave of
blocks runs in parallel, each block overlap-adding its patches into a private buffer;
the buffers are then folded into the output in ascending block order, in parallel over
output rows. Every output pixel therefore sums its contributions in the same order
whatever the number of threads.

The per-patch view (``take``), the view of the output buffer handed to the callback
(``oview``) and the callback itself (``func``) are first-class function arguments; the
engine specialises the wave kernel for each combination once per process.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

SUM, MAX, MIN = 0, 1, 2

# Block table columns: patch index ranges, then the block's footprint in the padded frame.
B_I0D, B_I1D, B_I0H, B_I1H, B_I0W, B_I1W, B_Y0D, B_FD, B_Y0H, B_FH, B_X0, B_FW = range(12)


# --- per-patch views ---------------------------------------------------------------
# take(src, id, ih, iw, yd, yh, x, pd, ph, pw) -> the patch as the callback sees it.


@njit(inline="always")
def take_1d(src, id, ih, iw, yd, yh, x, pd, ph, pw):
    return src[0, 0, x : x + pw, 0]


@njit(inline="always")
def take_1dc(src, id, ih, iw, yd, yh, x, pd, ph, pw):
    return src[0, 0, x : x + pw, :]


@njit(inline="always")
def take_2d(src, id, ih, iw, yd, yh, x, pd, ph, pw):
    return src[0, yh : yh + ph, x : x + pw, 0]


@njit(inline="always")
def take_2dc(src, id, ih, iw, yd, yh, x, pd, ph, pw):
    return src[0, yh : yh + ph, x : x + pw, :]


@njit(inline="always")
def take_3d(src, id, ih, iw, yd, yh, x, pd, ph, pw):
    return src[yd : yd + pd, yh : yh + ph, x : x + pw, 0]


@njit(inline="always")
def take_3dc(src, id, ih, iw, yd, yh, x, pd, ph, pw):
    return src[yd : yd + pd, yh : yh + ph, x : x + pw, :]


@njit(inline="always")
def take_stacked(src, id, ih, iw, yd, yh, x, pd, ph, pw):
    """Patch ``(id, ih, iw)`` of a stack of patches ``(gd, gh, gw, pd, ph, pw, C)``."""
    return src[id, ih, iw]


# oview(o3, pw, nc) -> the (pd, ph, pw * nc) scratch buffer in the callback's shape.


@njit(inline="always")
def oview_1d(o3, pw, nc):
    return o3.reshape((pw,))


@njit(inline="always")
def oview_1dc(o3, pw, nc):
    return o3.reshape((pw, nc))


@njit(inline="always")
def oview_2d(o3, pw, nc):
    return o3.reshape((o3.shape[1], pw))


@njit(inline="always")
def oview_2dc(o3, pw, nc):
    return o3.reshape((o3.shape[1], pw, nc))


@njit(inline="always")
def oview_3d(o3, pw, nc):
    return o3.reshape((o3.shape[0], o3.shape[1], pw))


@njit(inline="always")
def oview_3dc(o3, pw, nc):
    return o3.reshape((o3.shape[0], o3.shape[1], pw, nc))


@njit(inline="always")
def oview_flat(o3, pw, nc):
    return o3


@njit
def copy_stacked(patch4, o3):
    """Callback used by ``unpatchify``: copy a ``(pd, ph, pw, C)`` patch into ``o3``."""
    nc = patch4.shape[3]
    for a in range(patch4.shape[0]):
        for b in range(patch4.shape[1]):
            for x in range(patch4.shape[2]):
                for c in range(nc):
                    o3[a, b, x * nc + c] = patch4[a, b, x, c]


VIEWS = {
    (1, False): (take_1d, oview_1d),
    (1, True): (take_1dc, oview_1dc),
    (2, False): (take_2d, oview_2d),
    (2, True): (take_2dc, oview_2dc),
    (3, False): (take_3d, oview_3d),
    (3, True): (take_3dc, oview_3dc),
}


# --- accumulation -------------------------------------------------------------------


@njit(inline="always")
def _nanmax(a, b):
    # NaN-propagating maximum: a NaN on either side wins.
    return a if (a > b or a != a) else b


@njit(inline="always")
def _nanmin(a, b):
    return a if (a < b or a != a) else b


# add(dst, src, wts, t0, row_step, plane_step, pd, ph, n): overlap-add one output patch
# into a block buffer. ``dst`` is the flat C-contiguous buffer, ``src`` (and ``wts``, the
# window) the flat (pd, ph, n) patch output; the patch's first row starts at ``t0`` and
# its rows are ``row_step`` apart (planes ``plane_step``). One function per reduction,
# so that a kernel compiles only the variant it uses. Offsets are unsigned, which spares
# numba's negative-index wraparound in the inner loop; the flat views are made once per
# block, not per patch.


@njit(inline="always")
def add_sum(dst, src, wts, t0, row_step, plane_step, pd, ph, n):
    s = np.uint64(0)
    for a in range(pd):
        t = np.uint64(t0 + a * plane_step)
        for _ in range(ph):
            for k in range(n):
                q = np.uint64(k)
                dst[t + q] += src[s + q]
            t += np.uint64(row_step)
            s += np.uint64(n)


@njit(inline="always")
def add_weighted(dst, src, wts, t0, row_step, plane_step, pd, ph, n):
    s = np.uint64(0)
    for a in range(pd):
        t = np.uint64(t0 + a * plane_step)
        for _ in range(ph):
            for k in range(n):
                q = np.uint64(k)
                dst[t + q] += wts[s + q] * src[s + q]
            t += np.uint64(row_step)
            s += np.uint64(n)


@njit(inline="always")
def add_max(dst, src, wts, t0, row_step, plane_step, pd, ph, n):
    s = np.uint64(0)
    for a in range(pd):
        t = np.uint64(t0 + a * plane_step)
        for _ in range(ph):
            for k in range(n):
                q = np.uint64(k)
                dst[t + q] = _nanmax(dst[t + q], src[s + q])
            t += np.uint64(row_step)
            s += np.uint64(n)


@njit(inline="always")
def add_min(dst, src, wts, t0, row_step, plane_step, pd, ph, n):
    s = np.uint64(0)
    for a in range(pd):
        t = np.uint64(t0 + a * plane_step)
        for _ in range(ph):
            for k in range(n):
                q = np.uint64(k)
                dst[t + q] = _nanmin(dst[t + q], src[s + q])
            t += np.uint64(row_step)
            s += np.uint64(n)


@njit(parallel=True)
def accumulate_blocks(
    src, take, oview, func, args, add, init, od, oh, ow, pd, ph, pw, nc, w3, blocks, bufs,
):  # fmt: skip
    """Run the callback on every patch of each block, overlap-adding into ``bufs[b]``.

    ``add`` is one of the ``add_*`` functions and ``init`` its identity element.
    """
    for b in prange(blocks.shape[0]):
        blk = blocks[b]
        buf = bufs[b]
        for a in range(blk[B_FD]):
            for c in range(blk[B_FH]):
                row = buf[a, c]
                for k in range(blk[B_FW] * nc):
                    row[k] = init
        o3 = np.empty((pd, ph, pw * nc), dtype=bufs.dtype)
        o = oview(o3, pw, nc)
        dst, src3, wts = buf.reshape(buf.size), o3.reshape(o3.size), w3.reshape(w3.size)
        row_step = buf.shape[2]
        plane_step = buf.shape[1] * row_step
        y0d, y0h, x0 = blk[B_Y0D], blk[B_Y0H], blk[B_X0]
        for i in range(blk[B_I0D], blk[B_I1D]):
            yd = od[i]
            for j in range(blk[B_I0H], blk[B_I1H]):
                yh = oh[j]
                t_row = (yd - y0d) * plane_step + (yh - y0h) * row_step
                for k in range(blk[B_I0W], blk[B_I1W]):
                    x = ow[k]
                    func(take(src, i, j, k, yd, yh, x, pd, ph, pw), o, *args)
                    t0 = t_row + (x - x0) * nc
                    add(dst, src3, wts, t0, row_step, plane_step, pd, ph, pw * nc)


@njit(parallel=True, cache=True)
def fold_blocks(blocks, bufs, acc, nc, red, region0, rows):
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


@njit(parallel=True, cache=True)
def finalize(acc, cd, ch, cw, cov, full, nc, divide):
    """Normalise ``acc`` in place: divide by coverage (mean) and mark uncovered pixels NaN.

    Coverage is ``cd[d] * ch[h] * cw[x]`` (separable) or ``cov[d, h, x]`` when ``full``.
    """
    D, H = acc.shape[0], acc.shape[1]
    W = acc.shape[2] // nc
    for r in prange(D * H):
        d = r // H
        h = r - d * H
        cdh = cd[d] * ch[h]
        row = acc[d, h]
        for x in range(W):
            c = cov[d, h, x] if full else cdh * cw[x]
            for q in range(x * nc, x * nc + nc):
                if c == 0:
                    row[q] = np.nan
                elif divide:
                    row[q] = row[q] / c


@njit(parallel=True)
def map_rows(src, take, func, args, od, oh, ow, pd, ph, pw, r0, r1, res):
    """``res[i, j, k] = func(patch(i, j, k), *args)`` for flattened grid rows ``r0:r1``."""
    gh = res.shape[1]
    for r in prange(r0, r1):
        i = r // gh
        j = r - i * gh
        yd, yh = od[i], oh[j]
        for k in range(res.shape[2]):
            res[i, j, k] = func(take(src, i, j, k, yd, yh, ow[k], pd, ph, pw), *args)


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


def _named(py_func, name):
    """A copy of ``py_func`` called ``name``.

    numba's on-disk cache names its files after the function's qualified name and its
    index ignores the compile flags, so a parallel and a serial dispatcher of one
    Python function would load each other's machine code (a "serial" kernel then
    launches parallel regions). Each variant gets its own name, hence its own files.
    """
    import types

    f = types.FunctionType(
        py_func.__code__, py_func.__globals__, name, py_func.__defaults__, py_func.__closure__
    )
    f.__qualname__ = name
    f.__doc__ = py_func.__doc__
    return f


# nogil: the serial variants run beside the user's function, which needs the GIL to
# dispatch its own work (torch, numpy).
gather_batch = njit(parallel=True, nogil=True, cache=True)(_named(_gather_batch, "gather_batch"))
gather_batch_serial = njit(nogil=True, cache=True)(_named(_gather_batch, "gather_batch_serial"))
scatter_batch = njit(parallel=True, nogil=True, cache=True)(_named(_scatter_batch, "scatter_batch"))
scatter_batch_serial = njit(nogil=True, cache=True)(_named(_scatter_batch, "scatter_batch_serial"))
