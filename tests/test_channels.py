"""Images with a channel axis (last, first or in the middle) against the reference.

The callback always sees channels last; patch and step name only the spatial axes.
"""

import numpy as np
import pytest
import reference as ref
from callbacks import affine_arr, patch_mean, scale_add_mean, weighted_sum
from checks import check_map_patches, check_process_image
from hypothesis import given
from hypothesis import strategies as st
from strategies import geometry_nd, random_image, seeds

import patchjit


@given(g=geometry_nd(ndim=2, max_size=20), nc=st.integers(1, 4), seed=seeds)
def test_channels_last_random_geometry(g, nc, seed):
    rng = np.random.default_rng(seed)
    img = random_image(rng, (*g["shape"], nc))
    geom = ref.geometry(img.shape, g["patch"], g["step"], g["edge"], channel_axis=-1)
    patch = geom.patch  # tuple form: channels inferred as the last axis
    arr = rng.standard_normal((*patch, nc))
    check_process_image(img, affine_arr, patch, g["step"], args=(0.5, arr), edge=g["edge"])


@given(g=geometry_nd(ndim=2, max_size=20), nc=st.integers(1, 4), seed=seeds)
def test_channels_first_random_geometry(g, nc, seed):
    rng = np.random.default_rng(seed)
    img = random_image(rng, (nc, *g["shape"]))
    geom = ref.geometry(img.shape, g["patch"], g["step"], g["edge"], channel_axis=0)
    arr = rng.standard_normal((*geom.patch, nc))  # callback sees channels last
    # arr has shape (*patch, nc): only works if the callback sees channels last
    check_process_image(
        img, affine_arr, g["patch"], g["step"], args=(0.5, arr), edge=g["edge"], channel_axis=0
    )


@pytest.mark.slow
def test_channel_axis_middle(rng):
    img = random_image(rng, (9, 3, 11))
    arr = rng.standard_normal((4, 5, 3))
    check_process_image(img, affine_arr, (4, 5), (2, 3), args=(1.0, arr), channel_axis=1)
    check_process_image(img, affine_arr, (4, 5), (2, 3), args=(1.0, arr), channel_axis=-2)


@pytest.mark.slow
def test_int_patch_with_channel_axis(rng):
    img = random_image(rng, (10, 12, 3))
    a = patchjit.process_image(img, scale_add_mean, 4, 2, args=(1.0,), channel_axis=-1)
    b = patchjit.process_image(img, scale_add_mean, (4, 4), 2, args=(1.0,))
    np.testing.assert_array_equal(a, b)
    # int patch without channel_axis on a possible RGB image: refused as ambiguous
    with pytest.raises(ValueError, match=r"ambiguous.*channel_axis=-1"):
        patchjit.process_image(img, scale_add_mean, 3, 1, args=(1.0,))
    # the volume reading, asked for with one patch size per axis
    c = check_process_image(img, scale_add_mean, (3, 3, 3), 1, args=(1.0,))
    assert c.shape == img.shape


def test_channels_callback_sees_channels_last(rng):
    img = random_image(rng, (3, 8, 9))  # channels first
    got = check_map_patches(img, patch_mean, (2, 3), 1, channel_axis=0)
    assert got.shape == (7, 7)
    # per-channel weights only make sense if channels are last in the patch
    w = np.zeros((2, 3, 3))
    w[..., 1] = 1.0
    got = patchjit.map_patches(img, weighted_sum, (2, 3), 1, args=(w,), channel_axis=0)
    expected = ref.map_patches(img[1], weighted_sum, (2, 3), 1, args=(np.ones((2, 3)),))
    np.testing.assert_allclose(got, expected, rtol=1e-12)


@given(g=geometry_nd(ndim=2, edge="valid", max_size=20), nc=st.integers(1, 3), seed=seeds)
def test_patchify_channels(g, nc, seed):
    rng = np.random.default_rng(seed)
    img = random_image(rng, (*g["shape"], nc))
    geom = ref.geometry(img.shape, g["patch"], g["step"], "valid", channel_axis=-1)
    v = patchjit.patchify(img, geom.patch, g["step"])
    assert v.shape == (*geom.grid_shape, *geom.patch, nc)
    assert np.shares_memory(v, img)
    np.testing.assert_array_equal(v, ref.patchify(img, geom.patch, g["step"]))
    first = np.ascontiguousarray(np.moveaxis(img, -1, 0))
    v0 = patchjit.patchify(first, g["patch"], g["step"], channel_axis=0)
    assert np.shares_memory(v0, first)
    np.testing.assert_array_equal(v0, v)


@pytest.mark.parametrize("nc", [3, pytest.param(1, marks=pytest.mark.slow)])
def test_unpatchify_channels(nc, rng):
    shape, patch, step = (13, 10), (4, 3), (3, 2)
    geom = ref.geometry(shape, patch, step, "cover")
    grid = rng.standard_normal((*geom.grid_shape, *patch, nc))
    expected = ref.unpatchify(grid, (*shape, nc), step, channel_axis=-1)
    # grid form: channels inferred
    got = patchjit.unpatchify(grid, (*shape, nc), step)
    ref.assert_close(got, expected, np.float64, geom.max_coverage())
    # flat form needs channel_axis
    flat = grid.reshape(-1, *patch, nc)
    got = patchjit.unpatchify(flat, (*shape, nc), step, channel_axis=-1)
    ref.assert_close(got, expected, np.float64, geom.max_coverage())
    # channels first image
    got = patchjit.unpatchify(flat, (nc, *shape), step, channel_axis=0)
    ref.assert_close(got, np.moveaxis(expected, -1, 0), np.float64, geom.max_coverage())


@pytest.mark.slow
def test_channels_roundtrip(rng):
    img = random_image(rng, (12, 15, 3), np.uint8)
    v = patchjit.patchify(img, (4, 5), (4, 5))
    back = patchjit.unpatchify(v, img.shape, (4, 5), dtype=np.uint8)
    np.testing.assert_array_equal(back, img)
