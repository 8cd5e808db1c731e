"""The batch kernels of :func:`patchjit.process_batches` and :func:`patchjit.map_batches`:
gather patches into a batch, overlap-add a batch of outputs (see :mod:`patchjit._kernels`
for the strip pipeline's kernels and the variant helper)."""

from __future__ import annotations

from numba import njit, prange

from ._kernels import (
    SUM,
    combine_run,
    combine_run_weighted,
    n_owned_rows,
    owned_row,
    run_overlap,
)
from ._variants import twins

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
    for r in prange(n_owned_rows(rows)):
        row, gd, gh = owned_row(acc, r, rows, region0)
        for p in range(n):
            yd, yh, x = _patch_origin(g0 + p, od, oh, ow)
            a = gd - yd
            b = gh - yh
            if a < 0 or a >= pd or b < 0 or b >= ph:
                continue
            s, t, m = run_overlap(x, pw, region0[2], W, nk)
            if m <= 0:
                continue
            if weighted and red == SUM:
                combine_run_weighted(row, t, outs[p, a, b], wts[a, b], s, m)
            else:
                combine_run(row, t, outs[p, a, b], s, m, red)


# nogil: the serial variants run beside the user's function, which needs the GIL to
# dispatch its own work (torch, numpy).
gather_batch, gather_batch_serial = twins(_gather_batch, "gather_batch", nogil=True)
scatter_batch, scatter_batch_serial = twins(_scatter_batch, "scatter_batch", nogil=True)
