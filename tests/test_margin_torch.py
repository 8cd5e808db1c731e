"""margin= against torch: a valid 5x5 ``conv2d`` tile by tile equals torch's ``conv2d``
over the whole image padded by ``np.pad(..., mode="reflect")``.

The reference shares nothing with patchjit: ``np.pad`` and one ``torch.nn.functional.
conv2d`` call over the whole image. The tiled side is ``process_batches`` with a torch
batch function and ``process_image`` with the same convolution as a numba callback, in
memory and on dask arrays of several chunks.
"""

import numba
import numpy as np
import pytest

import patchjit
import patchjit.dask

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.torch

MARGIN = 2  # a 5x5 valid convolution removes 2 pixels on each side
ATOL = 1e-5  # float32 rounding of sums of 5 * 5 * C products of values below ~3

# (input channels, output channels); None: a grey image / a result without channel axis
CHANNELS = [(None, None), (3, 2), (None, 3)]
# (image shape, patch, step): steps below the 8-pixel tile, equal to it, uneven; patch
# shapes are tuples (an int patch on an (H, W, 3) image is ambiguous by design)
GEOMETRIES = [
    ((37, 53), (12, 12), 3),
    ((37, 53), (12, 12), 8),
    ((64, 48), (12, 12), 5),
    ((29, 30), (14, 10), (4, 6)),
]


def _data(shape, c_in, c_out, seed=0):
    rng = np.random.default_rng(seed)
    img = rng.standard_normal(shape if c_in is None else (*shape, c_in)).astype(np.float32)
    weight = rng.standard_normal((c_out or 1, c_in or 1, 5, 5)).astype(np.float32) / 5
    return img, weight


def _reference(img, weight, pad_mode="reflect"):
    """torch conv2d over the padded whole image (np.pad), channels last: (H, W, K)."""
    x = img if img.ndim == 3 else img[..., None]
    padded = np.pad(x, ((MARGIN, MARGIN), (MARGIN, MARGIN), (0, 0)), mode=pad_mode)
    with torch.inference_mode():
        y = torch.nn.functional.conv2d(
            torch.from_numpy(padded).permute(2, 0, 1)[None], torch.from_numpy(weight)
        )
    return y[0].permute(1, 2, 0).numpy()


def _conv_batches(weight, squeeze):
    """process_batches' func: (n, h, w[, C]) -> (n, h - 4, w - 4[, K]) by torch conv2d."""
    w = torch.from_numpy(weight)

    def run(batch):
        x = torch.from_numpy(batch if batch.ndim == 4 else batch[..., None])
        with torch.inference_mode():
            y = torch.nn.functional.conv2d(x.permute(0, 3, 1, 2), w).permute(0, 2, 3, 1)
        return y[..., 0].numpy() if squeeze else y.numpy()

    return run


@numba.njit
def conv5_valid(patch, out, weight):
    # torch's conv2d (a correlation) of one patch: patch (h, w, C), weight (K, C, 5, 5),
    # out (h - 4, w - 4, K), the patch's centre
    for i in range(out.shape[0]):
        for j in range(out.shape[1]):
            for k in range(out.shape[2]):
                s = 0.0
                for c in range(patch.shape[2]):
                    for a in range(5):
                        for b in range(5):
                            s += patch[i + a, j + b, c] * weight[k, c, a, b]
                out[i, j, k] = s


def _batch_kwargs(c_out):
    kw = {"margin": MARGIN, "pad_mode": "reflect", "batch_size": 7}
    if c_out is not None:
        kw["out_channels"] = c_out
    return kw


def _want(img, weight, c_out, pad_mode="reflect"):
    ref = _reference(img, weight, pad_mode)
    return ref[..., 0] if c_out is None else ref


@pytest.mark.parametrize(("c_in", "c_out"), CHANNELS)
@pytest.mark.parametrize(("shape", "patch", "step"), GEOMETRIES)
def test_batches_valid_conv_equals_torch_on_padded_image(shape, patch, step, c_in, c_out):
    img, weight = _data(shape, c_in, c_out)
    want = _want(img, weight, c_out)
    func = _conv_batches(weight, squeeze=c_out is None)
    got = patchjit.process_batches(img, func, patch, step, **_batch_kwargs(c_out))
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=0, atol=ATOL)


@pytest.mark.parametrize(("c_in", "c_out"), CHANNELS)
@pytest.mark.parametrize(("shape", "patch", "step"), GEOMETRIES[:3])
def test_dask_batches_valid_conv_equals_torch_on_padded_image(shape, patch, step, c_in, c_out):
    da = pytest.importorskip("dask.array")
    img, weight = _data(shape, c_in, c_out, seed=1)
    x = da.from_array(img, chunks=(16, 20) if c_in is None else (16, 20, -1))
    want = _want(img, weight, c_out)
    func = _conv_batches(weight, squeeze=c_out is None)
    got = patchjit.dask.process_batches(x, func, patch, step, **_batch_kwargs(c_out))
    assert got.chunks[:2] == x.chunks[:2]
    assert len(got.chunks[0]) > 1 and len(got.chunks[1]) > 1
    np.testing.assert_allclose(got.compute(), want, rtol=0, atol=ATOL)


@pytest.mark.parametrize(
    ("pad_mode", "edge", "window", "chunks"),
    [
        ("symmetric", "cover", None, None),
        ("edge", "pad", "hann", None),
        ("wrap", "cover", "gaussian", None),
        ("reflect", "cover", "hann", (3, 4)),  # chunks smaller than the tile and the margin
        ("symmetric", "pad", None, (10, 11)),
        ("reflect", "pad", "triangle", (5, 7)),
    ],
)
def test_valid_conv_other_pad_modes_edges_windows(pad_mode, edge, window, chunks):
    # every tile covering a pixel gives the same value there: any window, any edge rule
    img, weight = _data((37, 53), 3, 2, seed=4)
    want = _want(img, weight, 2, pad_mode)
    func = _conv_batches(weight, squeeze=False)
    kw = {**_batch_kwargs(2), "pad_mode": pad_mode, "edge": edge, "window": window}
    if chunks is None:
        got = patchjit.process_batches(img, func, (12, 12), 3, **kw)
    else:
        da = pytest.importorskip("dask.array")
        x = da.from_array(img, chunks=(*chunks, -1))
        got = patchjit.dask.process_batches(x, func, (12, 12), 3, **kw).compute()
    np.testing.assert_allclose(got, want, rtol=0, atol=ATOL)


# the numba callback sees channels last: grey images get a channel axis of 1
NUMBA_CHANNELS = [(1, 1), (3, 2)]


@pytest.mark.parametrize(("c_in", "c_out"), NUMBA_CHANNELS)
@pytest.mark.parametrize(("shape", "patch", "step"), GEOMETRIES)
def test_process_image_valid_conv_callback_equals_torch(shape, patch, step, c_in, c_out):
    img, weight = _data(shape, c_in, c_out, seed=2)
    want = _reference(img, weight)
    got = patchjit.process_image(
        img, conv5_valid, patch, step, args=(weight,), margin=MARGIN, pad_mode="reflect",
        out_channels=c_out,
    )  # fmt: skip
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=0, atol=ATOL)


@pytest.mark.parametrize(("c_in", "c_out"), NUMBA_CHANNELS)
@pytest.mark.parametrize(("shape", "patch", "step"), GEOMETRIES[:3])
def test_dask_process_image_valid_conv_callback_equals_torch(shape, patch, step, c_in, c_out):
    da = pytest.importorskip("dask.array")
    img, weight = _data(shape, c_in, c_out, seed=3)
    x = da.from_array(img, chunks=(16, 20, -1))
    want = _reference(img, weight)
    got = patchjit.dask.process_image(
        x, conv5_valid, patch, step, args=(weight,), margin=MARGIN, pad_mode="reflect",
        out_channels=c_out,
    )  # fmt: skip
    assert got.chunks[:2] == x.chunks[:2]
    np.testing.assert_allclose(got.compute(), want, rtol=0, atol=ATOL)
