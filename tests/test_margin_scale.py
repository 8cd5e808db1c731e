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
