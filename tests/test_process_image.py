"""process_image against the reference (issue 2: 2-D grayscale, cover/valid)."""

import numpy as np
import pytest
import reference as ref
from callbacks import affine_arr, identity, py_scale_add_mean, scale_add_mean
from hypothesis import given
from strategies import geometry_nd, random_image, seeds

import patchjit


def _check(image, func, patch, step, edge, args=(), dtype=None):
    got = patchjit.process_image(image, func, patch, step, args=args, edge=edge, dtype=dtype)
    expected = ref.process_image(image, func, patch, step, args=args, edge=edge, dtype=dtype)
    geom = ref.geometry(image.shape, patch, step, edge)
    assert got.shape == image.shape
    assert got.dtype == expected.dtype
    acc = ref.accumulation_dtype(image.dtype)
    ref.assert_close(got, expected, acc, n_terms=geom.max_coverage())
    return got


# --------------------------------------------------------------------------
# random geometries
# --------------------------------------------------------------------------
@given(g=geometry_nd(ndim=2), seed=seeds)
def test_identity_random_geometry(g, seed):
    img = random_image(np.random.default_rng(seed), g["shape"])
    got = _check(img, identity, g["patch"], g["step"], g["edge"])
    geom = ref.geometry(img.shape, g["patch"], g["step"], g["edge"])
    covered = ref.PatchGrid(img.shape, g["patch"], g["step"], g["edge"]).coverage() > 0
    np.testing.assert_allclose(got[covered], img[covered], rtol=1e-13)
    assert np.all(np.isnan(got[~covered]))
    if g["edge"] == "cover":
        assert covered.all(), geom


@given(g=geometry_nd(ndim=2), seed=seeds)
def test_scale_add_mean_random_geometry(g, seed):
    img = random_image(np.random.default_rng(seed), g["shape"])
    _check(img, scale_add_mean, g["patch"], g["step"], g["edge"], args=(-1.75,))


@given(g=geometry_nd(ndim=2), seed=seeds)
def test_tuple_args_random_geometry(g, seed):
    rng = np.random.default_rng(seed)
    img = random_image(rng, g["shape"])
    patch = ref.geometry(img.shape, g["patch"], g["step"], g["edge"]).patch
    arr = rng.standard_normal(patch)
    _check(img, affine_arr, g["patch"], g["step"], g["edge"], args=(0.5, arr))


@given(g=geometry_nd(ndim=2, max_size=24), seed=seeds)
def test_float32_random_geometry(g, seed):
    img = random_image(np.random.default_rng(seed), g["shape"], np.float32)
    got = _check(img, scale_add_mean, g["patch"], g["step"], g["edge"], args=(2.0,))
    assert got.dtype == np.float32


# --------------------------------------------------------------------------
# fixed cases
# --------------------------------------------------------------------------
def test_small_hand_computed():
    img = np.array([[1.0, 2, 3, 4, 5, 6]])
    got = patchjit.process_image(img, scale_add_mean, (1, 3), (1, 2), args=(1.0,))
    np.testing.assert_allclose(got, [[3, 4, 6, 8.5, 9.5, 11]])
    got = patchjit.process_image(img, scale_add_mean, (1, 3), (1, 2), args=(1.0,), edge="valid")
    np.testing.assert_allclose(got, [[3, 4, 6, 8, 9, np.nan]])


def test_whole_image_single_patch(rng):
    img = random_image(rng, (7, 5))
    got = patchjit.process_image(img, scale_add_mean, (7, 5), args=(2.0,))
    np.testing.assert_allclose(got, 2 * img + img.mean(), rtol=1e-13)


def test_unit_patches(rng):
    img = random_image(rng, (6, 9))
    got = patchjit.process_image(img, scale_add_mean, 1, args=(3.0,))
    np.testing.assert_allclose(got, 4 * img, rtol=1e-13)


def test_int_patch_and_step_broadcast(rng):
    img = random_image(rng, (17, 23))
    a = patchjit.process_image(img, scale_add_mean, 5, 3, args=(0.5,))
    b = patchjit.process_image(img, scale_add_mean, (5, 5), (3, 3), args=(0.5,))
    assert np.array_equal(a, b)
    c = patchjit.process_image(img, scale_add_mean, (5, 5), 3, args=(0.5,))
    assert np.array_equal(a, c)


def test_per_axis_step_matters(rng):
    # guards against swapped axes: steps differ per axis
    img = random_image(rng, (20, 31))
    for patch, step in [((4, 7), (1, 5)), ((7, 4), (5, 1)), ((3, 9), (2, 9))]:
        _check(img, scale_add_mean, patch, step, "cover", args=(1.5,))
        _check(img, scale_add_mean, patch, step, "valid", args=(1.5,))


def test_valid_edge_leaves_nan(rng):
    img = random_image(rng, (10, 10))
    got = patchjit.process_image(img, identity, (3, 4), (3, 3), edge="valid")
    # rows: origins 0,3,6 -> rows 0..8 covered, row 9 not; cols: 0,3,6 -> 0..9 covered
    assert np.isnan(got[9]).all()
    assert np.isfinite(got[:9]).all()
    # steps larger than the patch leave gaps with edge='valid'
    got = patchjit.process_image(img, identity, (2, 2), (3, 3), edge="valid")
    assert np.isnan(got[2]).all() and np.isnan(got[:, 5]).all()
    np.testing.assert_array_equal(got[:2, :2], img[:2, :2])


# --------------------------------------------------------------------------
# dtypes
# --------------------------------------------------------------------------
# every new image dtype costs a numba compilation of the kernels (~4 s): the
# default run covers a few, the slow run all of them
slow = pytest.mark.slow
DTYPES = [
    np.uint8,
    np.float32,
    np.float64,
    np.uint16,
    np.int32,
    pytest.param(np.int16, marks=slow),
    pytest.param(np.int64, marks=slow),
]


@pytest.mark.parametrize("dtype", DTYPES)
def test_dtype_policy_and_values(dtype, rng):
    img = random_image(rng, (13, 11), dtype)
    got = _check(img, scale_add_mean, (4, 3), (2, 2), "cover", args=(0.5,))
    assert got.dtype == ref.accumulation_dtype(dtype)


@pytest.mark.parametrize("dtype", [np.bool_, pytest.param(np.float16, marks=slow)])
def test_bool_and_float16_images(dtype, rng):
    img = random_image(rng, (9, 8), dtype)
    got = _check(img, identity, (3, 3), (2, 1), "cover")
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, img.astype(np.float32))


@pytest.mark.parametrize("out_dtype", [np.uint8, np.int16, np.float64, np.float32, np.int32])
def test_output_dtype_argument(out_dtype, rng):
    img = random_image(rng, (12, 10), np.uint8)
    arr = rng.standard_normal((4, 4)) * 3
    got = patchjit.process_image(img, affine_arr, 4, 2, args=(1.0, arr), dtype=out_dtype)
    assert got.dtype == np.dtype(out_dtype)
    ref_float = ref.process_image_float(img, affine_arr, 4, 2, args=(1.0, arr))
    if np.dtype(out_dtype).kind in "iu":
        ref.assert_int_result(got, ref_float, out_dtype, n_terms=9)
    else:
        # accumulation happens in float32 for uint8 images
        ref.assert_close(got, ref_float.astype(out_dtype), np.float32, n_terms=9)


def test_uint8_doubling_saturates(rng):
    img = rng.integers(0, 256, size=(16, 16), endpoint=False).astype(np.uint8)
    img[0, 0], img[5, 5] = 255, 128
    zeros = np.zeros((4, 4))
    got = patchjit.process_image(img, affine_arr, 4, 2, args=(2.0, zeros), dtype=np.uint8)
    assert got.dtype == np.uint8
    np.testing.assert_array_equal(got, np.minimum(2 * img.astype(np.int64), 255))
    assert got[0, 0] == 255 and got[5, 5] == 255


def test_negative_values_clip_to_zero_for_unsigned(rng):
    img = random_image(rng, (8, 8), np.uint8)
    zeros = np.zeros((3, 3))
    got = patchjit.process_image(img, affine_arr, 3, 1, args=(-1.0, zeros), dtype=np.uint8)
    np.testing.assert_array_equal(got, np.zeros_like(img))
    got = patchjit.process_image(img, affine_arr, 3, 1, args=(-1.0, zeros), dtype=np.int16)
    np.testing.assert_array_equal(got, -img.astype(np.int16))


def test_rounding_to_nearest(rng):
    img = np.zeros((6, 6), np.float64)
    add = np.full((2, 2), 2.75)
    got = patchjit.process_image(img, affine_arr, 2, 2, args=(1.0, add), dtype=np.int32)
    np.testing.assert_array_equal(got, np.full((6, 6), 3, np.int32))
    add = np.full((2, 2), -2.25)
    got = patchjit.process_image(img, affine_arr, 2, 2, args=(1.0, add), dtype=np.int32)
    np.testing.assert_array_equal(got, np.full((6, 6), -2, np.int32))
    # np.rint rounds exact halves to even
    add = np.array([[0.5, 1.5], [2.5, -2.5]])
    got = patchjit.process_image(img, affine_arr, 2, 2, args=(1.0, add), dtype=np.int32)
    np.testing.assert_array_equal(got, np.tile(np.array([[0, 2], [2, -2]], np.int32), (3, 3)))


# --------------------------------------------------------------------------
# input handling
# --------------------------------------------------------------------------
def test_input_not_modified_and_output_fresh(rng):
    img = random_image(rng, (15, 12))
    keep = img.copy()
    got = patchjit.process_image(img, scale_add_mean, (4, 5), (2, 3), args=(2.0,))
    np.testing.assert_array_equal(img, keep)
    assert not np.shares_memory(got, img)
    # identity on float64: same dtype as the input, still a fresh array
    got = patchjit.process_image(img, identity, 1)
    assert not np.shares_memory(got, img)
    np.testing.assert_array_equal(got, img)


def test_read_only_input(rng):
    img = random_image(rng, (14, 9), np.float32)
    img.flags.writeable = False
    got = patchjit.process_image(img, scale_add_mean, 3, 2, args=(1.0,))
    expected = ref.process_image(img, scale_add_mean, 3, 2, args=(1.0,))
    ref.assert_close(got, expected, np.float32, n_terms=9)
    assert got.flags.writeable


def test_fortran_and_strided_views(rng):
    big = random_image(rng, (40, 50))
    expected_views = {
        "fortran": np.asfortranarray(big[:17, :23]),
        "strided": big[::2, 1::3],
        "negative": big[::-1, ::-2],
        "transposed": big[:20, :13].T,
    }
    for name, view in expected_views.items():
        keep = view.copy()
        got = patchjit.process_image(view, scale_add_mean, (4, 3), (3, 2), args=(1.25,))
        expected = ref.process_image(
            np.ascontiguousarray(view), scale_add_mean, (4, 3), (3, 2), args=(1.25,)
        )
        ref.assert_close(got, expected, np.float64, n_terms=4, err_msg=name)
        np.testing.assert_array_equal(view, keep)
        assert not np.shares_memory(got, big)


def test_list_input_is_converted():
    img = [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.5]]
    got = patchjit.process_image(img, scale_add_mean, 2, args=(1.0,))
    expected = ref.process_image(np.array(img), scale_add_mean, 2, args=(1.0,))
    ref.assert_close(got, expected, np.float64)


def test_plain_python_callback_is_jitted(rng):
    img = random_image(rng, (12, 14))
    a = patchjit.process_image(img, py_scale_add_mean, (3, 4), (2, 3), args=(1.5,))
    b = patchjit.process_image(img, scale_add_mean, (3, 4), (2, 3), args=(1.5,))
    np.testing.assert_allclose(a, b, rtol=1e-14, atol=0)


@pytest.mark.parametrize("threads", [1, 2])
def test_threads_argument(threads, rng):
    img = random_image(rng, (21, 19))
    _check(img, scale_add_mean, (5, 4), (2, 3), "cover", args=(0.25,))
    got = patchjit.process_image(img, scale_add_mean, (5, 4), (2, 3), args=(0.25,), threads=threads)
    expected = ref.process_image(img, scale_add_mean, (5, 4), (2, 3), args=(0.25,))
    ref.assert_close(got, expected, np.float64, n_terms=12)


# --------------------------------------------------------------------------
# non-finite values
# --------------------------------------------------------------------------
@pytest.mark.parametrize("edge", ["cover", "valid"])
def test_nan_reaches_only_covering_patches(edge, rng):
    img = random_image(rng, (17, 19))
    pix = (8, 4)
    img[pix] = np.nan
    patch, step = (4, 5), (3, 2)
    geom = ref.geometry(img.shape, patch, step, edge)
    mask = ref.covering_mask(geom, pix)
    covered = ref.PatchGrid(img.shape, patch, step, edge).coverage() > 0
    # patch mean is NaN for every patch that saw the NaN: its whole footprint is NaN
    got = patchjit.process_image(img, scale_add_mean, patch, step, args=(1.0,), edge=edge)
    np.testing.assert_array_equal(np.isnan(got), mask | ~covered)
    # the identity callback only carries the NaN pixel itself
    got = patchjit.process_image(img, identity, patch, step, edge=edge)
    expected_nan = ~covered
    expected_nan[pix] = True
    np.testing.assert_array_equal(np.isnan(got), expected_nan)


def test_inf_reaches_only_covering_patches(rng):
    img = random_image(rng, (12, 13))
    pix = (0, 12)
    img[pix] = np.inf
    geom = ref.geometry(img.shape, (3, 3), (2, 2), "cover")
    mask = ref.covering_mask(geom, pix)
    got = patchjit.process_image(img, scale_add_mean, (3, 3), (2, 2), args=(1.0,))
    assert np.all(np.isposinf(got[mask]))
    assert np.all(np.isfinite(got[~mask]))
    expected = ref.process_image(img, scale_add_mean, (3, 3), (2, 2), args=(1.0,))
    ref.assert_close(got, expected, np.float64, n_terms=4)


# --------------------------------------------------------------------------
# images large enough to be cut into many blocks / waves by the engine
# --------------------------------------------------------------------------
@pytest.mark.parametrize(
    "shape, patch, step, edge",
    [
        ((300, 257), (8, 9), (3, 2), "cover"),
        ((257, 300), (16, 5), (5, 4), "valid"),
        ((120, 700), (3, 40), (1, 7), "cover"),
    ],
)
def test_large_image_matches_reference(shape, patch, step, edge, rng):
    img = random_image(rng, shape)
    _check(img, scale_add_mean, patch, step, edge, args=(0.5,))


def test_large_float32_image(rng):
    img = random_image(rng, (400, 333), np.float32)
    _check(img, scale_add_mean, (12, 12), (4, 4), "cover", args=(2.0,))
