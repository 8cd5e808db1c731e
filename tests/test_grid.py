"""PatchGrid geometry against the reference: origins, pad widths and coverage weights."""

import numpy as np
import pytest
import reference as ref
from callbacks import const_one, patch_mean
from checks import WINDOW_CASES, sigma_for
from hypothesis import given
from hypothesis import strategies as st
from strategies import geometry_nd

import patchjit


def _assert_same_grid(got, expected):
    assert isinstance(got.grid_shape, tuple)
    assert got.grid_shape == expected.grid_shape
    assert all(isinstance(k, int) for k in got.grid_shape)
    assert isinstance(got.n_patches, int)
    assert got.n_patches == expected.n_patches
    assert isinstance(got.origins, tuple)
    assert len(got.origins) == len(expected.origins)
    for o_got, o_exp in zip(got.origins, expected.origins):
        o_got = np.asarray(o_got)
        assert o_got.ndim == 1
        assert o_got.dtype.kind in "iu"
        np.testing.assert_array_equal(o_got, o_exp)
    assert tuple(tuple(int(v) for v in pw) for pw in got.pad_width) == expected.pad_width


@given(g=geometry_nd(ndim=2, max_size=60))
def test_grid_random_geometry(g):
    got = patchjit.PatchGrid(g["shape"], g["patch"], g["step"], g["edge"])
    expected = ref.PatchGrid(g["shape"], g["patch"], g["step"], g["edge"])
    _assert_same_grid(got, expected)
    assert got.pad_width == ((0, 0), (0, 0))
    cov = np.asarray(got.coverage())
    assert cov.shape == tuple(g["shape"])
    assert cov.dtype.kind == "f"
    np.testing.assert_array_equal(cov, expected.coverage())


def test_grid_hand_computed():
    g = patchjit.PatchGrid((10, 7), (3, 3), (3, 2))
    assert g.grid_shape == (4, 3)
    assert g.n_patches == 12
    assert np.asarray(g.origins[0]).tolist() == [0, 3, 6, 7]
    assert np.asarray(g.origins[1]).tolist() == [0, 2, 4]
    g = patchjit.PatchGrid((10, 7), (3, 3), (3, 2), "valid")
    assert g.grid_shape == (3, 3)
    assert np.asarray(g.origins[0]).tolist() == [0, 3, 6]
    cov = g.coverage()
    assert cov[9].sum() == 0 and cov[0, 0] == 1 and cov[0, 2] == 2


def test_grid_positional_and_keyword_forms():
    a = patchjit.PatchGrid((20, 30), 4, 3)
    b = patchjit.PatchGrid((20, 30), (4, 4), (3, 3), edge="cover")
    _assert_same_grid(a, ref.PatchGrid((20, 30), 4, 3))
    _assert_same_grid(b, ref.PatchGrid((20, 30), 4, 3))


def test_grid_default_is_cover_step_1():
    g = patchjit.PatchGrid((5, 6), (2, 3))
    assert g.grid_shape == (4, 4)
    np.testing.assert_array_equal(g.coverage(), ref.PatchGrid((5, 6), (2, 3)).coverage())


@pytest.mark.parametrize("edge", ["cover", "valid"])
def test_grid_agrees_with_functions(edge, rng):
    img = rng.random((19, 14))
    g = patchjit.PatchGrid(img.shape, (5, 4), (3, 3), edge)
    res = patchjit.map_patches(img, patch_mean, (5, 4), (3, 3), edge=edge)
    assert res.shape == g.grid_shape
    for i in range(g.grid_shape[0]):
        for j in range(g.grid_shape[1]):
            y, x = int(g.origins[0][i]), int(g.origins[1][j])
            assert res[i, j] == pytest.approx(img[y : y + 5, x : x + 4].mean(), rel=1e-12)
    if edge == "valid":
        assert patchjit.patchify(img, (5, 4), (3, 3)).shape[:2] == g.grid_shape


# --------------------------------------------------------------------------
# edge="pad", centered, windows, channels, volumes and signals
# --------------------------------------------------------------------------


def _assert_grid(got, exp):
    assert got.grid_shape == exp.grid_shape
    assert got.n_patches == exp.n_patches
    for a, b in zip(got.origins, exp.origins):
        np.testing.assert_array_equal(np.asarray(a), b)
    assert tuple(tuple(int(v) for v in pw) for pw in got.pad_width) == exp.pad_width
    cov = got.coverage()
    np.testing.assert_allclose(cov, exp.coverage(), rtol=1e-12)


@given(g=geometry_nd(ndim=2, edges=("cover", "valid", "pad"), max_size=30), centered=st.booleans())
def test_grid_pad_random_geometry(g, centered):
    if centered and g["edge"] != "pad":
        centered = False
    got = patchjit.PatchGrid(g["shape"], g["patch"], g["step"], g["edge"], centered=centered)
    exp = ref.PatchGrid(g["shape"], g["patch"], g["step"], g["edge"], centered=centered)
    _assert_grid(got, exp)


def test_grid_pad_hand_computed():
    g = patchjit.PatchGrid((1, 6), (1, 3), (1, 2), "pad")
    assert g.pad_width == ((0, 0), (1, 2))
    assert np.asarray(g.origins[1]).tolist() == [0, 2, 4, 6]
    np.testing.assert_array_equal(g.coverage(), [[1, 2, 1, 2, 1, 2]])
    g = patchjit.PatchGrid((5, 6), (3, 4), 1, "pad", centered=True)
    assert g.pad_width == ((1, 1), (2, 1))
    assert g.grid_shape == (5, 6)


@pytest.mark.parametrize("window", WINDOW_CASES)
def test_grid_window_coverage(window, rng):
    got = patchjit.PatchGrid((15, 17), (5, 6), (2, 3), window=window, sigma=sigma_for(window, 1.5))
    exp = ref.PatchGrid((15, 17), (5, 6), (2, 3), window=window, sigma=sigma_for(window, 1.5))
    _assert_grid(got, exp)
    # coverage == process_image(ones, reduce="sum") with the same window
    img = rng.random((15, 17))
    summed = patchjit.process_image(
        img, const_one, (5, 6), (2, 3), window=window, sigma=sigma_for(window, 1.5), reduce="sum"
    )
    np.testing.assert_allclose(summed, got.coverage(), rtol=1e-12)


def test_grid_array_window_and_channels():
    w = np.arange(1.0, 13.0).reshape(3, 4)
    got = patchjit.PatchGrid((3, 10, 9), (3, 4), (1, 2), channel_axis=0, window=w)
    exp = ref.PatchGrid((3, 10, 9), (3, 4), (1, 2), channel_axis=0, window=w)
    _assert_grid(got, exp)
    assert got.coverage().shape == (10, 9)
    got = patchjit.PatchGrid((10, 9, 3), (3, 4), (1, 2))
    assert got.coverage().shape == (10, 9)


def test_grid_volume_and_signal():
    _assert_grid(
        patchjit.PatchGrid((7, 8, 9), (2, 3, 4), (1, 2, 3), "pad"),
        ref.PatchGrid((7, 8, 9), (2, 3, 4), (1, 2, 3), "pad"),
    )
    _assert_grid(patchjit.PatchGrid((40,), 7, 3, "cover"), ref.PatchGrid((40,), 7, 3, "cover"))
