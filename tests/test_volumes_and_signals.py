"""3-D volumes and 1-D signals against the reference."""

import numpy as np
import pytest
import reference as ref
from callbacks import affine_arr, patch_mean, scale_add_mean, weighted_sum
from checks import check_map_patches, check_process_image
from hypothesis import given
from strategies import geometry_nd, random_image, seeds

import patchjit

# --------------------------------------------------------------------------
# 3-D volumes
# --------------------------------------------------------------------------


@given(g=geometry_nd(ndim=3, max_size=12), seed=seeds)
def test_volume_random_geometry(g, seed):
    rng = np.random.default_rng(seed)
    img = random_image(rng, g["shape"], np.float32)
    check_process_image(img, scale_add_mean, g["patch"], g["step"], args=(1.5,), edge=g["edge"])
    geom = ref.geometry(img.shape, g["patch"], g["step"], g["edge"])
    check_map_patches(img, patch_mean, g["patch"], g["step"], edge=g["edge"])
    patches = rng.standard_normal((*geom.grid_shape, *geom.patch))
    got = patchjit.unpatchify(patches, img.shape, g["step"], edge=g["edge"])
    expected = ref.unpatchify(patches, img.shape, g["step"], edge=g["edge"])
    ref.assert_close(got, expected, np.float64, geom.max_coverage())


@given(g=geometry_nd(ndim=3, edge="valid", max_size=10), seed=seeds)
def test_volume_patchify(g, seed):
    img = random_image(np.random.default_rng(seed), g["shape"])
    v = patchjit.patchify(img, g["patch"], g["step"])
    np.testing.assert_array_equal(v, ref.patchify(img, g["patch"], g["step"]))
    assert np.shares_memory(v, img)


@pytest.mark.slow
def test_volume_with_channels(rng):
    img = random_image(rng, (7, 8, 6, 2))
    # (affine_arr on 4-d arrays takes numba ~15 s to compile: use scale_add_mean)
    check_process_image(img, scale_add_mean, (3, 4, 2), (2, 3, 1), args=(2.0,))
    check_map_patches(img, patch_mean, (3, 4, 2), (2, 3, 1), edge="cover")


def test_large_volume_many_blocks(rng):
    vol = random_image(rng, (40, 60, 60), np.float32)
    check_process_image(vol, scale_add_mean, (6, 6, 6), (2, 2, 2), args=(1.5,))
    check_process_image(
        vol, scale_add_mean, (6, 5, 7), (3, 2, 4), args=(1.5,), edge="pad", pad_mode="edge"
    )


# --------------------------------------------------------------------------
# 1-D signals
# --------------------------------------------------------------------------


@given(g=geometry_nd(ndim=1, max_size=80), seed=seeds)
def test_signal_random_geometry(g, seed):
    rng = np.random.default_rng(seed)
    img = random_image(rng, g["shape"])
    geom = ref.geometry(img.shape, g["patch"], g["step"], g["edge"])
    arr = rng.standard_normal(geom.patch)
    check_process_image(img, affine_arr, g["patch"], g["step"], args=(-2.0, arr), edge=g["edge"])
    check_map_patches(img, weighted_sum, g["patch"], g["step"], args=(arr,), edge=g["edge"])
    if g["edge"] == "valid":
        v = patchjit.patchify(img, g["patch"], g["step"])
        np.testing.assert_array_equal(v, ref.patchify(img, g["patch"], g["step"]))


@pytest.mark.slow
def test_signal_with_channels(rng):
    sig = random_image(rng, (50, 3))
    arr = rng.standard_normal((7, 3))
    check_process_image(sig, affine_arr, (7,), (3,), args=(1.0, arr))
    check_process_image(sig, affine_arr, 7, 3, args=(1.0, arr), channel_axis=-1)
    got = check_map_patches(sig, patch_mean, (7,), (3,), edge="cover")
    assert got.shape == (16,)
