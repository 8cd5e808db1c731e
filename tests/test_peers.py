"""Cross-checks against independent peers: scikit-learn, torch fold/unfold, scipy."""

import numpy as np
import pytest
import reference as ref
import scipy.ndimage as ndi
from callbacks import scale_add_mean, weighted_sum
from hypothesis import given
from hypothesis import strategies as st
from sklearn.feature_extraction.image import extract_patches_2d, reconstruct_from_patches_2d
from strategies import geometry_nd, random_image, seeds

import patchjit


# --------------------------------------------------------------------------
# scikit-learn (stride 1)
# --------------------------------------------------------------------------
@given(seed=seeds, data=st.data())
def test_sklearn_extract_and_reconstruct(seed, data):
    rng = np.random.default_rng(seed)
    shape = (data.draw(st.integers(1, 25)), data.draw(st.integers(1, 25)))
    patch = (data.draw(st.integers(1, shape[0])), data.draw(st.integers(1, shape[1])))
    img = random_image(rng, shape)
    sk = extract_patches_2d(img, patch)
    view = patchjit.patchify(img, patch)
    np.testing.assert_array_equal(view.reshape(sk.shape), sk)
    # unpatchify == reconstruct_from_patches_2d on arbitrary patches
    patches = rng.standard_normal(sk.shape)
    np.testing.assert_allclose(
        patchjit.unpatchify(patches, shape),
        reconstruct_from_patches_2d(patches, shape),
        rtol=1e-12,
        atol=1e-12,
    )
    np.testing.assert_allclose(
        patchjit.unpatchify(patches.reshape(view.shape), shape),
        reconstruct_from_patches_2d(patches, shape),
        rtol=1e-12,
        atol=1e-12,
    )
    # process_image == extract -> transform -> reconstruct
    processed = np.stack([1.5 * p + p.mean() for p in sk])
    np.testing.assert_allclose(
        patchjit.process_image(img, scale_add_mean, patch, args=(1.5,)),
        reconstruct_from_patches_2d(processed, shape),
        rtol=1e-12,
        atol=1e-12,
    )


def test_sklearn_uint8_image(rng):
    img = random_image(rng, (20, 17), np.uint8)
    sk = extract_patches_2d(img, (5, 4))
    np.testing.assert_array_equal(patchjit.patchify(img, (5, 4)).reshape(sk.shape), sk)
    processed = np.stack([p + p.mean() for p in sk.astype(np.float64)])
    expected = reconstruct_from_patches_2d(processed, img.shape)
    got = patchjit.process_image(img, scale_add_mean, (5, 4), args=(1.0,))
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, expected, rtol=1e-6)


# --------------------------------------------------------------------------
# torch fold / unfold (any stride, valid grid)
# --------------------------------------------------------------------------
def _torch_unfold(img, patch, step):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    t = torch.from_numpy(np.ascontiguousarray(img, dtype=np.float64))[None, None]
    cols = F.unfold(t, patch, stride=step)  # (1, p0 * p1, L)
    return cols[0].T.reshape(-1, *patch).numpy()


def _torch_fold_mean(patches, shape, patch, step):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    cols = torch.from_numpy(patches.reshape(len(patches), -1).T.copy())[None]
    num = F.fold(cols, shape, patch, stride=step)
    den = F.fold(torch.ones_like(cols), shape, patch, stride=step)
    return (num / den)[0, 0].numpy()  # 0/0 = NaN where uncovered


@pytest.mark.torch
@given(g=geometry_nd(ndim=2, edge="valid", max_size=30), seed=seeds)
def test_torch_unfold_fold(g, seed):
    pytest.importorskip("torch")
    rng = np.random.default_rng(seed)
    img = random_image(rng, g["shape"])
    geom = ref.geometry(img.shape, g["patch"], g["step"], "valid")
    patch, step = geom.patch, geom.step
    cols = _torch_unfold(img, patch, step)
    view = patchjit.patchify(img, g["patch"], g["step"])
    np.testing.assert_array_equal(view.reshape(cols.shape), cols)
    # overlap-add mean of arbitrary patches
    patches = rng.standard_normal(cols.shape)
    expected = _torch_fold_mean(patches, img.shape, patch, step)
    got = patchjit.unpatchify(patches, img.shape, g["step"], edge="valid")
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12, equal_nan=True)
    # fused process_image
    processed = np.stack([-0.5 * p + p.mean() for p in cols])
    expected = _torch_fold_mean(processed, img.shape, patch, step)
    got = patchjit.process_image(
        img, scale_add_mean, g["patch"], g["step"], args=(-0.5,), edge="valid"
    )
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12, equal_nan=True)


@pytest.mark.torch
def test_torch_fold_float32(rng):
    pytest.importorskip("torch")
    img = random_image(rng, (33, 47), np.float32)
    patch, step = (8, 6), (4, 5)
    cols = _torch_unfold(img, patch, step)
    expected = _torch_fold_mean(np.stack([2 * p + p.mean() for p in cols]), img.shape, patch, step)
    got = patchjit.process_image(img, scale_add_mean, patch, step, args=(2.0,), edge="valid")
    assert got.dtype == np.float32
    ref.assert_close(got, expected, np.float32, n_terms=4)


# --------------------------------------------------------------------------
# scipy.ndimage.generic_filter
# --------------------------------------------------------------------------
@given(seed=seeds, data=st.data())
def test_generic_filter_valid_region(seed, data):
    rng = np.random.default_rng(seed)
    shape = (data.draw(st.integers(1, 20)), data.draw(st.integers(1, 20)))
    patch = (data.draw(st.integers(1, shape[0])), data.draw(st.integers(1, shape[1])))
    img = random_image(rng, shape)
    w = rng.standard_normal(patch)
    gf = ndi.generic_filter(img, lambda v: float(np.sum(v * w.ravel())), size=patch, mode="mirror")
    got = patchjit.map_patches(img, weighted_sum, patch, args=(w,), edge="valid")
    g0, g1 = got.shape
    c0, c1 = patch[0] // 2, patch[1] // 2
    np.testing.assert_allclose(got, gf[c0 : c0 + g0, c1 : c1 + g1], rtol=1e-12, atol=1e-12)
    got_cover = patchjit.map_patches(img, weighted_sum, patch, args=(w,), edge="cover")
    np.testing.assert_allclose(got_cover, got, rtol=1e-15)  # step 1: cover == valid
