"""Window weights (named, gaussian sigma, array) in process_image and unpatchify."""

import numpy as np
import pytest
import reference as ref
from callbacks import affine_arr, identity, scale_add_mean
from checks import WINDOW_CASES, check_process_image, sigma_for
from hypothesis import given
from hypothesis import strategies as st
from strategies import geometry_nd, random_image, seeds

import patchjit

# --------------------------------------------------------------------------
# process_image
# --------------------------------------------------------------------------


@pytest.mark.parametrize("window", WINDOW_CASES)
@pytest.mark.parametrize("reduce", ["mean", "sum"])
def test_named_windows(window, reduce, rng):
    img = random_image(rng, (17, 14))
    check_process_image(
        img,
        scale_add_mean,
        (6, 5),
        (2, 3),
        args=(1.5,),
        window=window,
        sigma=sigma_for(window, 1.7),
        reduce=reduce,
    )


@given(
    g=geometry_nd(ndim=2, max_size=20),
    seed=seeds,
    window=st.sampled_from(WINDOW_CASES),
    reduce=st.sampled_from(["mean", "sum"]),
)
def test_windows_random_geometry(g, seed, window, reduce):
    img = random_image(np.random.default_rng(seed), g["shape"])
    check_process_image(
        img,
        scale_add_mean,
        g["patch"],
        g["step"],
        args=(0.5,),
        edge=g["edge"],
        window=window,
        sigma=sigma_for(window, 2.0),
        reduce=reduce,
    )


def test_gaussian_per_axis_sigma(rng):
    img = random_image(rng, (15, 15))
    check_process_image(
        img, scale_add_mean, (7, 5), (2, 2), args=(1.0,), window="gaussian", sigma=(1.0, 3.0)
    )
    check_process_image(
        img,
        scale_add_mean,
        (7, 5),
        (2, 2),
        args=(1.0,),
        window="gaussian",
        sigma=(1.0, 3.0),
        reduce="sum",
    )


def test_array_window(rng):
    img = random_image(rng, (16, 13))
    w = rng.random((5, 4)) + 0.1
    check_process_image(img, scale_add_mean, (5, 4), (2, 3), args=(1.0,), window=w)
    check_process_image(img, scale_add_mean, (5, 4), (2, 3), args=(1.0,), window=w, reduce="sum")
    # mean is invariant to the scale of the window
    a = patchjit.process_image(img, scale_add_mean, (5, 4), (2, 3), args=(1.0,), window=w)
    b = patchjit.process_image(img, scale_add_mean, (5, 4), (2, 3), args=(1.0,), window=w * 8)
    ref.assert_close(a, b, np.float64, 6)


@pytest.mark.slow
@pytest.mark.parametrize("window", WINDOW_CASES[1:])
def test_window_identity_roundtrip(window, rng):
    img = random_image(rng, (20, 18))
    got = patchjit.process_image(
        img, identity, (7, 6), (3, 2), window=window, sigma=sigma_for(window, 2.0)
    )
    np.testing.assert_allclose(got, img, rtol=1e-12)


@pytest.mark.slow
def test_window_with_channels_and_pad(rng):
    img = random_image(rng, (12, 11, 3))
    check_process_image(
        img,
        scale_add_mean,
        (5, 4),
        (2, 2),
        args=(1.0,),
        window="hann",
        edge="pad",
        pad_mode="symmetric",
    )
    vol = random_image(rng, (8, 9, 7))
    check_process_image(vol, scale_add_mean, (4, 3, 5), (2, 2, 2), args=(1.0,), window="triangle")


def test_large_channels_window(rng):
    img = random_image(rng, (200, 230, 3))
    arr = rng.standard_normal((10, 12, 3))
    check_process_image(img, affine_arr, (10, 12), (3, 4), args=(0.5, arr), window="hann")


# --------------------------------------------------------------------------
# unpatchify
# --------------------------------------------------------------------------


@pytest.mark.parametrize("window", [None, "hann", "gaussian"])
@pytest.mark.parametrize("reduce", ["mean", "sum"])
def test_unpatchify_window_reduce(window, reduce, rng):
    shape = (13, 15)
    geom = ref.geometry(shape, (4, 3), (3, 2), "cover")
    patches = rng.standard_normal((*geom.grid_shape, 4, 3))
    got = patchjit.unpatchify(
        patches, shape, (3, 2), window=window, sigma=sigma_for(window, 1.0), reduce=reduce
    )
    expected = ref.unpatchify(
        patches, shape, (3, 2), window=window, sigma=sigma_for(window, 1.0), reduce=reduce
    )
    ref.assert_close(got, expected, np.float64, geom.max_coverage())
