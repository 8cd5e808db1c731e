"""The engine runs on one chunk of a larger image: the chunk knows which patches of the
global grid touch the output region it owns, and which input they read (the basis for
scale-out on dask arrays)."""

import numpy as np
import pytest
from callbacks import scale_add_mean

import patchjit
from patchjit import _engine as E
from patchjit import _kernels as K


def _chunk_result(image, grid, region, args):
    """Merge only the patches that touch ``region``, reading only the input they need."""
    (r0, r1), (c0, c1) = ((s.start, s.stop) for s in region)
    (i0, i1), (j0, j1) = grid.subgrid(region)[0]
    ins = grid.subgrid(region)[1]
    src = np.ascontiguousarray(image[ins])  # the chunk plus its halo, nothing else
    src.flags.writeable = False
    oh = grid.origins[0][i0:i1] - ins[0].start
    ow = grid.origins[1][j0:j1] - ins[1].start
    acc = np.zeros((1, r1 - r0, c1 - c0), np.float64)
    origins3 = (np.zeros(1, np.int64), oh, ow)
    region0 = (0, r0 - ins[0].start, c0 - ins[1].start)
    E.run_accumulate(src[None, :, :, None], K.take_2d, K.oview_2d, scale_add_mean, args,
                     origins3, (1, *grid.patch_shape), 1, None, K.SUM, acc, region0)  # fmt: skip
    cov = np.multiply.outer(grid.axis_coverage(0)[r0:r1], grid.axis_coverage(1)[c0:c1])
    return acc[0] / cov


@pytest.mark.parametrize("step", [1, (2, 3)])
def test_chunks_reassemble_the_full_result(rng, step):
    image = rng.standard_normal((41, 53))
    patch = (7, 5)
    full = patchjit.process_image(image, scale_add_mean, patch, step, args=(0.5,))
    grid = patchjit.PatchGrid(image.shape, patch, step)
    out = np.full(image.shape, np.nan)
    for rows in (slice(0, 13), slice(13, 30), slice(30, 41)):
        for cols in (slice(0, 20), slice(20, 53)):
            out[rows, cols] = _chunk_result(image, grid, (rows, cols), (0.5,))
    np.testing.assert_allclose(out, full, rtol=1e-12, atol=1e-12)
