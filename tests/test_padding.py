"""edge="pad": every pad mode against the reference and scipy.ndimage.generic_filter."""

import numpy as np
import pytest
import reference as ref
import scipy.ndimage as ndi
from callbacks import identity, patch_max, patch_mean, scale_add_mean, weighted_sum
from checks import check_map_patches, check_process_image
from hypothesis import given
from hypothesis import strategies as st
from strategies import geometry_nd, random_image, seeds

import patchjit

pad_modes = st.sampled_from(ref.PAD_MODES)


# --------------------------------------------------------------------------
# process_image
# --------------------------------------------------------------------------


@given(g=geometry_nd(ndim=2, edge="pad", max_size=25), mode=pad_modes, seed=seeds)
def test_process_image_pad_random_geometry(g, mode, seed):
    rng = np.random.default_rng(seed)
    img = random_image(rng, g["shape"])
    check_process_image(
        img,
        scale_add_mean,
        g["patch"],
        g["step"],
        args=(0.75,),
        edge="pad",
        pad_mode=mode,
        pad_value=-3.0,
    )


@given(g=geometry_nd(ndim=2, edge="pad", max_size=25), seed=seeds)
def test_pad_covers_uniformly(g, seed):
    # with the default padding every pixel is covered; the identity comes back
    img = random_image(np.random.default_rng(seed), g["shape"])
    got = patchjit.process_image(img, identity, g["patch"], g["step"], edge="pad")
    np.testing.assert_allclose(got, img, rtol=1e-13)


def test_pad_integer_image_constant(rng):
    img = random_image(rng, (11, 7), np.uint8)
    got = check_process_image(
        img,
        scale_add_mean,
        (3, 3),
        (2, 2),
        args=(1.0,),
        edge="pad",
        pad_mode="constant",
        pad_value=255,
    )
    assert got.dtype == np.float32
    got = patchjit.process_image(
        img,
        scale_add_mean,
        (3, 3),
        (2, 2),
        args=(1.0,),
        edge="pad",
        pad_mode="constant",
        pad_value=255,
        dtype=np.uint8,
    )
    ref_float = ref.process_image_float(
        img,
        scale_add_mean,
        (3, 3),
        (2, 2),
        args=(1.0,),
        edge="pad",
        pad_mode="constant",
        pad_value=255,
    )
    ref.assert_int_result(got, ref_float, np.uint8, n_terms=4)


# --------------------------------------------------------------------------
# map_patches
# --------------------------------------------------------------------------


@given(g=geometry_nd(ndim=2, edge="pad", max_size=25), mode=pad_modes, seed=seeds)
def test_map_patches_pad_random_geometry(g, mode, seed):
    rng = np.random.default_rng(seed)
    img = random_image(rng, g["shape"])
    geom = ref.geometry(img.shape, g["patch"], g["step"], "pad", centered=True)
    w = rng.standard_normal(geom.patch)
    got = check_map_patches(
        img,
        weighted_sum,
        g["patch"],
        g["step"],
        args=(w,),
        edge="pad",
        pad_mode=mode,
        pad_value=0.5,
    )
    assert got.shape == tuple(-(-n // s) for n, s in zip(img.shape, geom.step))
    full = patchjit.map_patches(
        img, weighted_sum, g["patch"], 1, args=(w,), edge="pad", pad_mode=mode, pad_value=0.5
    )
    assert full.shape == img.shape
    sl = tuple(slice(None, None, s) for s in geom.step)
    np.testing.assert_allclose(got, full[sl], rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("mode", ref.PAD_MODES)
@pytest.mark.parametrize("patch", [(3, 3), (4, 2), (1, 5)])
def test_generic_filter_pad_modes(mode, patch, rng):
    img = random_image(rng, (13, 11))
    w = rng.standard_normal(patch)
    gf = ndi.generic_filter(
        img,
        lambda v: float(np.sum(v * w.ravel())),
        size=patch,
        mode=ref.NUMPY_TO_SCIPY_MODE[mode],
        cval=-1.25,
    )
    got = patchjit.map_patches(
        img, weighted_sum, patch, args=(w,), edge="pad", pad_mode=mode, pad_value=-1.25
    )
    assert got.shape == img.shape
    np.testing.assert_allclose(got, gf, rtol=1e-12, atol=1e-12)
    got = patchjit.map_patches(
        img, weighted_sum, patch, (2, 3), args=(w,), edge="pad", pad_mode=mode, pad_value=-1.25
    )
    np.testing.assert_allclose(got, gf[::2, ::3], rtol=1e-12, atol=1e-12)


def test_generic_filter_mean_uint8(rng):
    img = random_image(rng, (15, 16), np.uint8)
    gf = ndi.generic_filter(img.astype(np.float64), np.mean, size=(3, 5), mode="nearest")
    got = patchjit.map_patches(img, patch_mean, (3, 5), edge="pad", pad_mode="edge")
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, gf, rtol=1e-6)


def test_map_patches_pad_default_mode_is_reflect(rng):
    img = random_image(rng, (10, 9))
    a = patchjit.map_patches(img, patch_mean, (3, 4), edge="pad")
    b = patchjit.map_patches(img, patch_mean, (3, 4), edge="pad", pad_mode="reflect")
    np.testing.assert_array_equal(a, b)
    gf = ndi.generic_filter(img, np.mean, size=(3, 4), mode="mirror")
    np.testing.assert_allclose(a, gf, rtol=1e-12)


@pytest.mark.slow
def test_pad_patch_max_callback_integer(rng):
    img = random_image(rng, (9, 9), np.uint16)
    check_map_patches(img, patch_max, 3, 2, edge="pad", pad_mode="edge")


# --------------------------------------------------------------------------
# channels, volumes and signals
# --------------------------------------------------------------------------


@pytest.mark.slow
def test_pad_with_channels_does_not_pad_channels(rng):
    img = random_image(rng, (9, 10, 2))
    check_process_image(
        img,
        scale_add_mean,
        (4, 3),
        (2, 2),
        args=(1.0,),
        edge="pad",
        pad_mode="constant",
        pad_value=7.0,
    )
    got = check_map_patches(img, patch_mean, (3, 3), 1, edge="pad", pad_mode="wrap")
    assert got.shape == (9, 10)
    first = np.moveaxis(img, -1, 0)
    got0 = patchjit.map_patches(
        first, patch_mean, (3, 3), 1, edge="pad", pad_mode="wrap", channel_axis=0
    )
    np.testing.assert_allclose(got0, got, rtol=1e-13)


@pytest.mark.slow
def test_pad_volume_and_signal(rng):
    vol = random_image(rng, (6, 7, 5), np.float32)
    check_process_image(
        vol, scale_add_mean, (3, 4, 2), (2, 2, 1), args=(1.0,), edge="pad", pad_mode="symmetric"
    )
    check_map_patches(vol, patch_mean, (3, 2, 3), (1, 2, 2), edge="pad", pad_mode="edge")
    sig = random_image(rng, (31,))
    check_process_image(sig, scale_add_mean, 6, 4, args=(1.0,), edge="pad", pad_mode="wrap")
    check_map_patches(sig, patch_mean, 6, 4, edge="pad", pad_mode="reflect")
