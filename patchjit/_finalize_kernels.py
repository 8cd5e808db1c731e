"""The finalize kernels: normalise a merged output by its coverage, in place.

The last step after the strip pipeline (:mod:`patchjit._kernels`) or the batch merge
(:mod:`patchjit._batch_kernels`) has summed every patch's output into the
accumulator: each output pixel is divided by the weight of the patches that cover it
(a mean), or only marked NaN where none does (a sum, max or min). The coverage comes
from per-axis vectors (separable windows) or is rebuilt row by row from a window's
profiles (:func:`finalize_window`), never from a full-size map. Each iteration owns
one output row, so the result is the same for any thread count. Both kernels are
compiled twice (parallel and serial, see :func:`patchjit._variants.twins`) and cached
on disk.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ._variants import twins


@njit(inline="always")
def normalise_row(row, cov, scale, nc, divide):
    """Normalise one output row (``W`` pixels of ``nc`` values) in place by the coverage
    ``scale * cov[x]``: NaN where it is 0, else divided by it when ``divide`` (mean).
    The per-row tail of :func:`finalize` and :func:`finalize_window`."""
    for x in range(row.shape[0] // nc):
        c = scale * cov[x]
        for q in range(x * nc, x * nc + nc):
            if c == 0:
                row[q] = np.nan
            elif divide:
                row[q] = row[q] / c


def finalize_impl(acc, cd, ch, cw, nc, divide):
    """Normalise ``acc`` in place: divide by the separable coverage ``cd[d] * ch[h] *
    cw[x]`` (mean) and mark uncovered pixels NaN."""
    D, H = acc.shape[0], acc.shape[1]
    for r in prange(D * H):
        d = r // H
        h = r - d * H
        normalise_row(acc[d, h], cw, cd[d] * ch[h], nc, divide)


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
        normalise_row(acc[d, h], cov, 1.0, nc, divide)


finalize_window, finalize_window_serial = twins(finalize_window_impl, "finalize_window")
