"""margin= and scale= (models whose output differs from their input), against
independent whole-image computations: scipy.ndimage, numpy.kron and block means."""

import numba
import numpy as np
import pytest
import scipy.ndimage as ndi

import patchjit


@numba.njit
def box3(p, out):
    # a valid 3x3 mean: out is the patch's centre, one pixel smaller on each side
    for i in range(out.shape[0]):
        for j in range(out.shape[1]):
            s = 0.0
            for a in range(3):
                for b in range(3):
                    s += p[i + a, j + b]
            out[i, j] = s / 9


@numba.njit
def nearest2(p, out):
    for i in range(out.shape[0]):
        for j in range(out.shape[1]):
            out[i, j] = p[i // 2, j // 2]


def box3_batch(b):
    _, h, w = b.shape
    return sum(b[:, i : h - 2 + i, j : w - 2 + j] for i in range(3) for j in range(3)) / 9


@pytest.mark.parametrize("shape", [(37, 29), (300, 260)])
@pytest.mark.parametrize("step", [1, 3, 6])
def test_margin_box_filter_equals_uniform_filter(shape, step):
    img = np.random.default_rng(1).random(shape).astype(np.float32)
    ref = ndi.uniform_filter(img.astype(np.float64), 3, mode="reflect")
    got = patchjit.process_image(img, box3, 8, step, margin=1, pad_mode="symmetric")
    np.testing.assert_allclose(got, ref, atol=1e-6)
    got = patchjit.process_batches(img, box3_batch, 8, step, margin=1, pad_mode="symmetric")
    np.testing.assert_allclose(got, ref, atol=1e-6)


@pytest.mark.parametrize("shape", [(37, 29), (300, 260)])
def test_scale2_nearest_equals_kron(shape):
    img = np.random.default_rng(2).random(shape).astype(np.float32)
    ref = np.kron(img, np.ones((2, 2)))
    got = patchjit.process_image(img, nearest2, 6, 3, scale=2)
    assert got.shape == ref.shape
    np.testing.assert_allclose(got, ref, atol=1e-6)
    got = patchjit.process_batches(
        img, lambda b: np.repeat(np.repeat(b, 2, 1), 2, 2), 6, 3, scale=2
    )
    np.testing.assert_allclose(got, ref, atol=1e-6)


def test_scale_half_block_mean():
    img = np.random.default_rng(3).random((36, 28)).astype(np.float32)
    ref = img.reshape(18, 2, 14, 2).mean((1, 3))

    def half(b):
        n, h, w = b.shape
        return b.reshape(n, h // 2, 2, w // 2, 2).mean((2, 4))

    got = patchjit.process_batches(img, half, 8, 4, scale=0.5)
    assert got.shape == (18, 14)
    np.testing.assert_allclose(got, ref, atol=1e-6)


def test_bad_scale_and_margin_name_the_fix():
    img = np.zeros((37, 29), np.float32)
    with pytest.raises(ValueError, match="multiples of 2"):
        patchjit.process_batches(img, lambda b: b, 8, 3, scale=0.5)
    with pytest.raises(ValueError, match="margin below"):
        patchjit.process_batches(img, lambda b: b, 8, margin=4)
    with pytest.raises(ValueError, match=r"scale 0\.3"):
        patchjit.process_batches(img, lambda b: b, 8, scale=0.3)
    with pytest.raises(ValueError, match="margin="):
        patchjit.process_batches(img, lambda b: b[:, 1:-1, 1:-1], 8)


def _scores(k):
    def f(b):  # content-dependent K-class scores, (n, h, w, k)
        m = b.mean(axis=tuple(range(1, b.ndim)), keepdims=True)
        return np.stack([np.sin(b * (j + 1)) + j * m for j in range(k)], -1)

    return f


@pytest.mark.parametrize(
    "shape, patch", [((90, 70), (16, 16)), ((21, 30, 26), (6, 8, 8)), ((64,), (8,))]
)
@pytest.mark.parametrize("window", [None, "hann", "array"])
def test_finalize_equals_applying_it_to_the_full_result(shape, patch, window):
    rng = np.random.default_rng(4)
    img = rng.random(shape).astype(np.float32)
    if window == "array":
        window = rng.random(patch) + 0.5  # not separable
    kw = dict(out_channels=5, window=window, batch_size=7)
    full = patchjit.process_batches(img, _scores(5), patch, 3, **kw)
    labels = patchjit.process_batches(
        img, _scores(5), patch, 3, finalize=lambda b: b.argmax(-1).astype(np.uint8), **kw
    )
    assert labels.dtype == np.uint8
    np.testing.assert_array_equal(labels, full.argmax(-1))
    same = patchjit.process_batches(img, _scores(5), patch, 3, finalize=lambda b: b, **kw)
    np.testing.assert_array_equal(same, full)


def test_finalize_with_margin_and_scale():
    img = np.random.default_rng(5).random((50, 44)).astype(np.float32)
    full = patchjit.process_batches(img, box3_batch, 10, 4, margin=1)
    got = patchjit.process_batches(img, box3_batch, 10, 4, margin=1, finalize=lambda b: b * 2)
    np.testing.assert_array_equal(got, full * 2)


def test_finalize_errors():
    img = np.zeros((40, 40), np.float32)
    with pytest.raises(ValueError, match="length along axis 0"):
        patchjit.process_batches(img, lambda b: b, 8, finalize=lambda b: b[:1])
    with pytest.raises(ValueError, match="out cannot be combined"):
        patchjit.process_batches(img, lambda b: b, 8, finalize=lambda b: b, out=np.empty_like(img))
    with pytest.raises(TypeError, match="finalize must be callable"):
        patchjit.process_batches(img, lambda b: b, 8, finalize=3)


# --- on dask arrays: the same results, chunk by chunk ---------------------------------


@pytest.mark.parametrize(("shape", "chunks"), [((37, 29), 10), ((64, 50), (17, 13))])
@pytest.mark.parametrize("step", [1, 3, 6])
@pytest.mark.parametrize("edge", ["cover", "pad"])
def test_dask_margin_box_filter_equals_uniform_filter(shape, chunks, step, edge):
    da = pytest.importorskip("dask.array")
    img = np.random.default_rng(5).random(shape).astype(np.float32)
    x = da.from_array(img, chunks=chunks)
    ref = ndi.uniform_filter(img.astype(np.float64), 3, mode="reflect")
    kw = {"margin": 1, "pad_mode": "symmetric", "edge": edge}
    got = patchjit.process_image(x, box3, 8, step, **kw)
    assert got.chunks == x.chunks
    np.testing.assert_allclose(got.compute(), ref, atol=1e-6)
    got = patchjit.process_batches(x, box3_batch, 8, step, **kw)
    np.testing.assert_allclose(got.compute(scheduler="synchronous"), ref, atol=1e-6)


def test_dask_scales_equal_kron_and_block_mean():
    da = pytest.importorskip("dask.array")
    img = np.random.default_rng(6).random((64, 48)).astype(np.float32)
    x = da.from_array(img, chunks=(13, 15))
    got = patchjit.process_image(x, nearest2, 6, 3, scale=2)
    assert got.chunks == tuple(tuple(2 * n for n in c) for c in x.chunks)
    np.testing.assert_allclose(got.compute(), np.kron(img, np.ones((2, 2))), atol=1e-6)
    half = patchjit.process_batches(
        x, lambda b: b.reshape(len(b), 4, 2, 4, 2).mean((2, 4)), 8, 4, scale=0.5
    )
    assert all(n % 1 == 0 for c in half.chunks for n in c)
    want = img.reshape(32, 2, 24, 2).mean((1, 3))
    np.testing.assert_allclose(half.compute(), want, atol=1e-6)


def test_dask_finalize_runs_per_chunk():
    da = pytest.importorskip("dask.array")
    rgb = np.random.default_rng(7).random((64, 48, 3)).astype(np.float32)
    x = da.from_array(rgb, chunks=(20, 20, 3))

    def scores(b):
        return b * np.array([1.0, 2.0, 3.0], np.float32)

    full = patchjit.process_batches(rgb, scores, (8, 8), 4, window="hann")
    labels = patchjit.process_batches(
        x, scores, (8, 8), 4, window="hann", finalize=lambda b: b.argmax(-1)
    )
    assert labels.chunks == x.chunks[:2]
    np.testing.assert_array_equal(labels.compute(), full.argmax(-1))
    bad = patchjit.process_batches(x, scores, (8, 8), 4, finalize=lambda b: b[:1].sum(-1))
    with pytest.raises(ValueError, match="must keep each chunk's spatial shape"):
        bad.compute(scheduler="synchronous")


def test_grid_errors_with_a_margin_name_the_patch_shape_and_the_margin():
    # the grid is the output tiles' (patch - 2 * margin); its message says so
    img = np.zeros((9, 7), np.float32)
    with pytest.raises(ValueError, match=r"larger than.*margin=2.*\(12, 12\) - 2 \* margin"):
        patchjit.process_batches(img, lambda b: b[:, 2:-2, 2:-2], (12, 12), 3, margin=2)
    with pytest.raises(ValueError, match=r"step.*margin=\(1, 2\)"):
        patchjit.process_batches(np.zeros((40, 40)), lambda b: b, (12, 12), 11, margin=(1, 2))
