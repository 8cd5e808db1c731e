"""map_patches against the reference (issue 2: 2-D grayscale, valid/cover grids)."""

import numpy as np
import pytest
import reference as ref
import scipy.ndimage as ndi
from callbacks import offset_weighted_sum, patch_max, patch_mean, py_patch_mean, weighted_sum
from hypothesis import given
from strategies import geometry_nd, random_image, seeds

import patchjit


def _check(image, func, patch, step, edge, args=(), dtype=None):
    got = patchjit.map_patches(image, func, patch, step, args=args, edge=edge, dtype=dtype)
    expected = ref.map_patches(image, func, patch, step, args=args, edge=edge, dtype=dtype)
    geom = ref.geometry(image.shape, patch, step, edge, check_cover_gaps=False)
    assert got.shape == geom.grid_shape
    assert got.dtype == expected.dtype
    ref.assert_close(
        got, expected, ref.accumulation_dtype(image.dtype), n_terms=int(np.prod(geom.patch))
    )
    return got


@given(g=geometry_nd(ndim=2), seed=seeds)
def test_mean_random_geometry(g, seed):
    img = random_image(np.random.default_rng(seed), g["shape"])
    _check(img, patch_mean, g["patch"], g["step"], g["edge"])


@given(g=geometry_nd(ndim=2), seed=seeds)
def test_weighted_sum_random_geometry(g, seed):
    rng = np.random.default_rng(seed)
    img = random_image(rng, g["shape"])
    patch = ref.geometry(img.shape, g["patch"], g["step"], g["edge"]).patch
    w = rng.standard_normal(patch)
    _check(img, weighted_sum, g["patch"], g["step"], g["edge"], args=(w,))


@given(g=geometry_nd(ndim=2, max_size=20), seed=seeds)
def test_tuple_args_random_geometry(g, seed):
    rng = np.random.default_rng(seed)
    img = random_image(rng, g["shape"])
    patch = ref.geometry(img.shape, g["patch"], g["step"], g["edge"]).patch
    w = rng.standard_normal(patch)
    _check(img, offset_weighted_sum, g["patch"], g["step"], g["edge"], args=(-3.5, w))


def test_cover_appends_last_origin(rng):
    img = random_image(rng, (10, 7))
    got = _check(img, patch_mean, (3, 3), (3, 2), "cover")
    assert got.shape == (4, 3)  # rows 0,3,6,7; cols 0,2,4
    assert got[3, 2] == pytest.approx(img[7:10, 4:7].mean())
    got = _check(img, patch_mean, (3, 3), (3, 2), "valid")
    assert got.shape == (3, 3)


def test_steps_larger_than_patch(rng):
    img = random_image(rng, (12, 12))
    got = _check(img, patch_mean, (2, 3), (5, 4), "valid")
    assert got.shape == (3, 3)
    assert got[2, 1] == pytest.approx(img[10:12, 4:7].mean())


def test_default_edge_is_valid(rng):
    img = random_image(rng, (9, 8))
    a = patchjit.map_patches(img, patch_mean, (3, 3), (2, 2))
    assert a.shape == (4, 3)
    b = patchjit.map_patches(img, patch_mean, (3, 3), (2, 2), edge="valid")
    assert np.array_equal(a, b)


@pytest.mark.parametrize("patch", [(3, 3), (2, 4), (5, 1), (1, 1)])
def test_valid_equals_cropped_generic_filter(patch, rng):
    img = random_image(rng, (11, 13))
    w = rng.standard_normal(patch)
    got = patchjit.map_patches(img, weighted_sum, patch, args=(w,))
    gf = ndi.generic_filter(img, lambda v: float(np.sum(v * w.ravel())), size=patch)
    g0, g1 = got.shape
    assert (g0, g1) == (11 - patch[0] + 1, 13 - patch[1] + 1)
    c0, c1 = patch[0] // 2, patch[1] // 2
    np.testing.assert_allclose(got, gf[c0 : c0 + g0, c1 : c1 + g1], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    "dtype",
    [
        np.uint8,
        np.float32,
        np.float64,
        *(
            pytest.param(d, marks=pytest.mark.slow)
            for d in (np.uint16, np.int16, np.int32, np.int64)
        ),
    ],
)
def test_dtype_policy(dtype, rng):
    img = random_image(rng, (10, 12), dtype)
    got = _check(img, patch_mean, (3, 4), (2, 3), "cover")
    assert got.dtype == ref.accumulation_dtype(dtype)


@pytest.mark.slow
def test_patch_max_integer_image(rng):
    img = random_image(rng, (10, 12), np.uint16)
    got = _check(img, patch_max, (3, 4), (2, 3), "valid")
    assert got.dtype == np.float32


@pytest.mark.parametrize("out_dtype", [np.uint8, np.int32, np.float64])
def test_output_dtype_argument(out_dtype, rng):
    img = random_image(rng, (10, 12), np.float32) * 100 - 80  # has negatives and > 255
    img[0, 0] = 1000
    got = patchjit.map_patches(img, patch_mean, (3, 4), (2, 3), dtype=out_dtype)
    assert got.dtype == np.dtype(out_dtype)
    ref_float = ref.map_patches_float(img, patch_mean, (3, 4), (2, 3))
    if np.dtype(out_dtype).kind in "iu":
        ref.assert_int_result(got, ref_float, out_dtype, n_terms=12)
    else:
        ref.assert_close(got, ref_float.astype(out_dtype), np.float32, n_terms=12)


def test_input_handling(rng):
    big = random_image(rng, (30, 30))
    for view in (big[::2, 1::3], np.asfortranarray(big)[:, 2:], big.T[::-1]):
        keep = view.copy()
        view_ro = view.view()
        view_ro.flags.writeable = False
        got = patchjit.map_patches(view_ro, patch_mean, (3, 2), (1, 2))
        expected = ref.map_patches(np.ascontiguousarray(view), patch_mean, (3, 2), (1, 2))
        ref.assert_close(got, expected, np.float64, 6)
        np.testing.assert_array_equal(view, keep)
        assert not np.shares_memory(got, big)
    got = patchjit.map_patches([[1.0, 2.0], [3.0, 5.0]], patch_mean, 2)
    np.testing.assert_allclose(got, [[2.75]])


def test_plain_python_callback(rng):
    img = random_image(rng, (9, 10))
    a = patchjit.map_patches(img, py_patch_mean, (3, 2), (2, 1))
    b = patchjit.map_patches(img, patch_mean, (3, 2), (2, 1))
    np.testing.assert_array_equal(a, b)


def test_nan_only_in_patches_that_saw_it(rng):
    img = random_image(rng, (10, 10))
    img[4, 6] = np.nan
    got = patchjit.map_patches(img, patch_mean, (3, 3), (1, 1))
    expected = np.zeros((8, 8), bool)
    expected[2:5, 4:7] = True  # origins whose 3x3 window includes (4, 6)
    np.testing.assert_array_equal(np.isnan(got), expected)


@pytest.mark.parametrize("threads", [1, 2])
def test_threads(threads, rng):
    img = random_image(rng, (25, 17))
    a = patchjit.map_patches(img, patch_mean, (4, 3), (1, 2), threads=threads)
    b = ref.map_patches(img, patch_mean, (4, 3), (1, 2))
    ref.assert_close(a, b, np.float64, 12)


def test_large_image_many_waves(rng):
    # enough grid rows for the engine to run several waves
    img = random_image(rng, (300, 2000))
    w = rng.standard_normal((4, 64))
    _check(img, weighted_sum, (4, 64), (1, 8), "cover", args=(w,))
