"""out=: results written into the caller's array (contiguous or not), never read back."""

import numpy as np
import pytest
import reference as ref
from callbacks import affine_arr, identity, scale_add_mean
from strategies import random_image

import patchjit


def test_process_image_out(rng):
    img = random_image(rng, (14, 12), np.float32)
    out = np.full(img.shape, -99.0, np.float32)
    res = patchjit.process_image(img, scale_add_mean, (4, 3), 2, args=(1.0,), out=out)
    assert res is out
    expected = ref.process_image(img, scale_add_mean, (4, 3), 2, args=(1.0,))
    ref.assert_close(out, expected, np.float32, 6)


def test_process_image_out_non_contiguous(rng):
    img = random_image(rng, (10, 9))
    big = np.full((20, 27), -5.0)
    out = big[::2, ::3]
    res = patchjit.process_image(img, scale_add_mean, 3, 2, args=(1.0,), out=out)
    expected = ref.process_image(img, scale_add_mean, 3, 2, args=(1.0,))
    ref.assert_close(out, expected, np.float64, 4)
    assert np.shares_memory(res, big)
    assert (big[1::2] == -5.0).all()


def test_process_image_out_with_dtype(rng):
    img = random_image(rng, (10, 10), np.uint8)
    out = np.zeros(img.shape, np.uint8)
    zeros = np.zeros((3, 3))
    res = patchjit.process_image(img, affine_arr, 3, 1, args=(2.0, zeros), out=out, dtype=np.uint8)
    assert res is out
    np.testing.assert_array_equal(out, np.minimum(2 * img.astype(int), 255))


def test_unpatchify_out(rng):
    patches = rng.standard_normal((4, 5, 3, 3))
    out = np.empty((12, 15))
    res = patchjit.unpatchify(patches, (12, 15), 3, out=out)
    assert res is out
    ref.assert_close(out, ref.unpatchify(patches, (12, 15), 3), np.float64)


@pytest.mark.slow
def test_out_channels(rng):
    img = random_image(rng, (3, 10, 11))
    out = np.empty_like(img)
    patchjit.process_image(img, scale_add_mean, (4, 4), 2, args=(1.0,), channel_axis=0, out=out)
    expected = ref.process_image(img, scale_add_mean, (4, 4), 2, args=(1.0,), channel_axis=0)
    ref.assert_close(out, expected, np.float64, 9)


def test_out_wrong_shape():
    img = np.zeros((10, 10))
    with pytest.raises(ValueError, match="out"):
        patchjit.process_image(img, identity, 3, out=np.zeros((10, 11)))
    with pytest.raises(ValueError, match="out"):
        patchjit.unpatchify(np.zeros((8, 8, 3, 3)), (10, 10), 1, out=np.zeros((9, 10)))


def test_out_must_not_alias_input():
    img = np.random.default_rng(0).random((10, 10))
    keep = img.copy()
    # either refuse or compute as if out were separate; never read overwritten input
    try:
        res = patchjit.process_image(img, scale_add_mean, 3, 1, args=(1.0,), out=img)
    except ValueError:
        return
    expected = ref.process_image(keep, scale_add_mean, 3, 1, args=(1.0,))
    ref.assert_close(res, expected, np.float64, 9)
