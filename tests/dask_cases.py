"""One random-case generator for the dask tests: shapes, patches, channel layouts,
chunkings and call options, and one way to compare a dask result with the in-memory one.

The in-memory call (which pads with :func:`numpy.pad`) is the reference for every dask
case; ``check_equal`` holds the tolerances.
"""

import itertools

import numpy as np

# every numpy.pad mode patchjit accepts
PAD_MODES = ("constant", "edge", "linear_ramp", "maximum", "mean", "median", "minimum",
             "reflect", "symmetric", "wrap")  # fmt: skip
SIZES = {1: (20, 60), 2: (12, 40), 3: (6, 14)}  # spatial sizes per ndim, [lo, hi)
TINY = {1: (1, 10), 2: (1, 10), 3: (1, 10)}  # images smaller than the patch and its pad


def random_chunks(rng, n, p):
    """Uneven chunks along an axis of length n: some tiny, some non-aligned."""
    kind = rng.integers(4)
    if kind == 0 or n == 1:
        return (n,)
    if kind == 1:  # regular, last one possibly smaller than the patch
        return int(rng.integers(min(max(p - 1, 1), n), n + 1))
    cuts = sorted(set(rng.integers(1, n, size=rng.integers(1, 5)).tolist()))
    edges = [0, *cuts, n]
    return tuple(int(b - a) for a, b in itertools.pairwise(edges))


def random_case(rng, sizes=SIZES, max_patch=9, patch_over=False, ndims=(1, 2, 3)):
    """``(shape, patch, channel_axis, chunks)``: 1-3 spatial axes, channels at a random
    axis (chunked too) 40 % of the time. ``patch_over`` lets the patch exceed the image
    (for ``edge="pad"``)."""
    k = int(rng.choice(ndims))
    spatial = tuple(int(rng.integers(*sizes[k])) for _ in range(k))
    patch = tuple(
        int(rng.integers(1, (max_patch if patch_over else min(n, max_patch)) + 1)) for n in spatial
    )
    channels = int(rng.integers(1, 4)) if rng.random() < 0.4 else None
    shape, channel_axis = spatial, None
    if channels:
        channel_axis = int(rng.integers(0, k + 1))
        shape = (*spatial[:channel_axis], channels, *spatial[channel_axis:])
    chunks = []
    si = 0
    for a in range(len(shape)):
        if a == channel_axis:
            chunks.append(int(rng.integers(1, channels + 1)))  # channels chunked too
        else:
            chunks.append(random_chunks(rng, shape[a], patch[si]))
            si += 1
    return shape, patch, channel_axis, tuple(chunks)


def random_merge_options(rng, patch, edges=("cover", "valid", "pad")):
    """Options of an overlap-add call: edge, reduce, window (mean/sum only), pad_mode."""
    reduce = str(rng.choice(["mean", "sum", "max", "min"]))
    window = None
    if reduce in ("mean", "sum") and rng.random() < 0.5:
        window = str(rng.choice(["hann", "triangle", "gaussian"]))
        if rng.random() < 0.3:  # a non-separable window array
            window = 0.5 + rng.random(patch)
    return dict(edge=str(rng.choice(edges)), reduce=reduce, window=window,
                pad_mode=str(rng.choice(PAD_MODES)))  # fmt: skip


def random_image(rng, shape, dtypes=("float32", "float64", "uint8")):
    return (rng.random(shape) * 200).astype(str(rng.choice(dtypes)))


def check_equal(got, want, reduce):
    """max/min bitwise; mean/sum to float rounding (other addition order); integer
    outputs within one rounding step."""
    assert got.shape == want.shape and got.dtype == want.dtype
    if reduce in ("max", "min") or got.dtype.kind in "iu":
        if got.dtype.kind in "iu":
            assert np.abs(got.astype(np.int64) - want.astype(np.int64)).max() <= 1
        else:
            np.testing.assert_array_equal(got, want)
    else:
        tol = 1e-5 if got.dtype == np.float32 else 1e-12
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol, equal_nan=True)
