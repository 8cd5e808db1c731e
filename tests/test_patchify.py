"""patchify (zero-copy view) and unpatchify (overlap-add mean) against the reference."""

import numpy as np
import pytest
import reference as ref
from hypothesis import given
from strategies import geometry_nd, random_image, seeds

import patchjit


# --------------------------------------------------------------------------
# patchify
# --------------------------------------------------------------------------
@given(g=geometry_nd(ndim=2, edge="valid"), seed=seeds)
def test_patchify_random_geometry(g, seed):
    img = random_image(np.random.default_rng(seed), g["shape"])
    v = patchjit.patchify(img, g["patch"], g["step"])
    expected = ref.patchify(img, g["patch"], g["step"])
    assert v.shape == expected.shape
    assert v.dtype == img.dtype
    np.testing.assert_array_equal(v, expected)
    assert np.shares_memory(v, img)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int32, np.float32, np.float64, np.bool_])
def test_patchify_dtypes_zero_copy(dtype, rng):
    img = random_image(rng, (9, 12), dtype)
    v = patchjit.patchify(img, (3, 4), (2, 3))
    assert v.dtype == img.dtype
    assert v.shape == (4, 3, 3, 4)
    assert np.shares_memory(v, img)
    np.testing.assert_array_equal(v, ref.patchify(img, (3, 4), (2, 3)))


def test_patchify_is_a_view_of_non_contiguous_input(rng):
    big = random_image(rng, (30, 40))
    fbig = np.asfortranarray(big)
    for base, view in (
        (big, big[::2, 1::3]),
        (fbig, fbig[3:, :17]),
        (big, big[::-1, 5:]),
        (big, big.T),
    ):
        v = patchjit.patchify(view, (4, 3), (1, 2))
        assert np.shares_memory(v, base)
        np.testing.assert_array_equal(v, ref.patchify(np.ascontiguousarray(view), (4, 3), (1, 2)))


def test_patchify_read_only_input(rng):
    img = random_image(rng, (8, 8))
    img.flags.writeable = False
    v = patchjit.patchify(img, 3, 2)
    np.testing.assert_array_equal(v, ref.patchify(img, 3, 2))
    assert not v.flags.writeable


def test_patchify_view_tracks_image(rng):
    img = random_image(rng, (6, 7))
    v = patchjit.patchify(img, (2, 3), (2, 2))
    img[2, 4] = -123.0
    assert v[1, 1, 0, 2] == -123.0
    assert v[1, 2, 0, 0] == -123.0


def test_patchify_step_1_count():
    img = np.arange(35.0).reshape(5, 7)
    v = patchjit.patchify(img, (2, 3))
    assert v.shape == (4, 5, 2, 3)
    np.testing.assert_array_equal(v[3, 4], img[3:5, 4:7])


def test_patchify_int_broadcast(rng):
    img = random_image(rng, (10, 11))
    a = patchjit.patchify(img, 3, 2)
    b = patchjit.patchify(img, (3, 3), (2, 2))
    assert a.shape == b.shape == (4, 5, 3, 3)
    np.testing.assert_array_equal(a, b)


def test_patchify_list_input():
    v = patchjit.patchify([[1, 2, 3], [4, 5, 6]], 2)
    assert v.shape == (1, 2, 2, 2)
    np.testing.assert_array_equal(v[0, 1], [[2, 3], [5, 6]])


# --------------------------------------------------------------------------
# unpatchify
# --------------------------------------------------------------------------
def _check_unpatchify(patches, shape, step, edge, **kw):
    got = patchjit.unpatchify(patches, shape, step, edge=edge, **kw)
    expected = ref.unpatchify(patches, shape, step, edge=edge, **kw)
    assert got.shape == tuple(shape)
    assert got.dtype == expected.dtype
    geom_patch = patches.shape[-2:]
    geom = ref.geometry(shape, geom_patch, step, edge)
    ref.assert_close(got, expected, ref.accumulation_dtype(patches.dtype), geom.max_coverage())
    return got


@given(g=geometry_nd(ndim=2), seed=seeds)
def test_unpatchify_random_geometry(g, seed):
    rng = np.random.default_rng(seed)
    geom = ref.geometry(g["shape"], g["patch"], g["step"], g["edge"])
    grid = rng.standard_normal((*geom.grid_shape, *geom.patch))
    _check_unpatchify(grid, g["shape"], g["step"], g["edge"])
    flat = grid.reshape(-1, *geom.patch)
    _check_unpatchify(flat, g["shape"], g["step"], g["edge"])


@given(g=geometry_nd(ndim=2, edge="valid"), seed=seeds)
def test_roundtrip_valid(g, seed):
    img = random_image(np.random.default_rng(seed), g["shape"])
    v = patchjit.patchify(img, g["patch"], g["step"])
    back = patchjit.unpatchify(v, img.shape, g["step"], edge="valid")
    covered = ref.PatchGrid(img.shape, g["patch"], g["step"], "valid").coverage() > 0
    np.testing.assert_allclose(back[covered], img[covered], rtol=1e-13)
    assert np.isnan(back[~covered]).all()
    assert not np.shares_memory(back, img)


def test_roundtrip_evenly_divided_default_edge(rng):
    img = random_image(rng, (16, 21))
    for patch, step in [((4, 3), (4, 3)), ((4, 5), (2, 4)), ((16, 1), (1, 1))]:
        v = patchjit.patchify(img, patch, step)
        back = patchjit.unpatchify(v, img.shape, step)  # edge="cover" grid == valid grid here
        np.testing.assert_allclose(back, img, rtol=1e-13)


@pytest.mark.parametrize(
    "dtype, expected",
    [
        (np.uint8, np.float32),
        (np.float64, np.float64),
        pytest.param(np.float32, np.float32, marks=pytest.mark.slow),
        pytest.param(np.int64, np.float64, marks=pytest.mark.slow),
    ],
)
def test_unpatchify_dtype_policy(dtype, expected, rng):
    img = random_image(rng, (10, 9), dtype)
    v = patchjit.patchify(img, (4, 3), (2, 3))
    back = _check_unpatchify(v, (10, 9), (2, 3), "cover")
    assert back.dtype == expected
    np.testing.assert_allclose(back, img.astype(expected), rtol=1e-6)
    back = patchjit.unpatchify(v, (10, 9), (2, 3), dtype=dtype)
    assert back.dtype == dtype
    np.testing.assert_array_equal(back, img)


def test_unpatchify_hand_computed():
    patches = np.array([[[1.0, 1, 1]], [[2, 2, 2]], [[4, 4, 4]]])  # 3 patches of (1, 3)
    got = patchjit.unpatchify(patches, (1, 6), (1, 2))
    np.testing.assert_array_equal(got, [[1, 1, 1.5, 3, 3, 4]])
    got = patchjit.unpatchify(patches[:2], (1, 6), (1, 2), edge="valid")
    np.testing.assert_array_equal(got, [[1, 1, 1.5, 2, 2, np.nan]])


def test_unpatchify_does_not_modify_patches(rng):
    patches = rng.standard_normal((5, 3, 4))
    keep = patches.copy()
    patches.flags.writeable = False
    got = patchjit.unpatchify(patches, (7, 4), (1, 1))
    np.testing.assert_array_equal(patches, keep)
    assert not np.shares_memory(got, patches)


def test_unpatchify_non_contiguous_patches(rng):
    big = rng.standard_normal((2, 4, 6, 6))
    patches = big[:, ::2, ::2, 1::2]  # grid (2, 2) of (3, 3) patches, non-contiguous
    _check_unpatchify(patches, (6, 6), 3, "cover")


@pytest.mark.parametrize("threads", [1, 2])
def test_unpatchify_threads(threads, rng):
    patches = rng.standard_normal((6, 7, 4, 3))
    a = patchjit.unpatchify(patches, (13, 15), (2, 2), threads=threads)
    expected = ref.unpatchify(patches, (13, 15), (2, 2))
    ref.assert_close(a, expected, np.float64, 6)
