"""Issue-3 features: channels, 3-D volumes, 1-D signals, edge="pad", windows,
reduce, out=, and their bad inputs.  Everything is compared with the reference.
"""

import numpy as np
import pytest
import reference as ref
import scipy.ndimage as ndi
from callbacks import (
    affine_arr,
    const_one,
    identity,
    patch_max,
    patch_mean,
    scale_add_mean,
    weighted_sum,
)
from hypothesis import given
from hypothesis import strategies as st
from strategies import geometry_nd, random_image, seeds

import patchjit

pad_modes = st.sampled_from(ref.PAD_MODES)


def _check(image, func, patch, step, **kw):
    got = patchjit.process_image(image, func, patch, step, **kw)
    expected = ref.process_image(image, func, patch, step, **kw)
    geom = ref.geometry(
        np.shape(image), patch, step, kw.get("edge", "cover"), kw.get("channel_axis")
    )
    assert got.shape == np.shape(image)
    assert got.dtype == expected.dtype
    ref.assert_close(
        got, expected, ref.accumulation_dtype(np.asarray(image).dtype), geom.max_coverage()
    )
    return got


def _check_map(image, func, patch, step, **kw):
    got = patchjit.map_patches(image, func, patch, step, **kw)
    expected = ref.map_patches(image, func, patch, step, **kw)
    assert got.shape == expected.shape
    assert got.dtype == expected.dtype
    geom = ref.geometry(
        np.shape(image),
        patch,
        step,
        kw.get("edge", "valid"),
        kw.get("channel_axis"),
        centered=True,
        check_cover_gaps=False,
    )
    n = int(np.prod(geom.patch))
    ref.assert_close(got, expected, ref.accumulation_dtype(np.asarray(image).dtype), n_terms=n)
    return got


# ==========================================================================
# channels
# ==========================================================================
@given(g=geometry_nd(ndim=2, max_size=20), nc=st.integers(1, 4), seed=seeds)
def test_channels_last_random_geometry(g, nc, seed):
    rng = np.random.default_rng(seed)
    img = random_image(rng, (*g["shape"], nc))
    geom = ref.geometry(img.shape, g["patch"], g["step"], g["edge"], channel_axis=-1)
    patch = geom.patch  # tuple form: channels inferred as the last axis
    arr = rng.standard_normal((*patch, nc))
    _check(img, affine_arr, patch, g["step"], args=(0.5, arr), edge=g["edge"])


@given(g=geometry_nd(ndim=2, max_size=20), nc=st.integers(1, 4), seed=seeds)
def test_channels_first_random_geometry(g, nc, seed):
    rng = np.random.default_rng(seed)
    img = random_image(rng, (nc, *g["shape"]))
    geom = ref.geometry(img.shape, g["patch"], g["step"], g["edge"], channel_axis=0)
    arr = rng.standard_normal((*geom.patch, nc))  # callback sees channels last
    # arr has shape (*patch, nc): only works if the callback sees channels last
    _check(img, affine_arr, g["patch"], g["step"], args=(0.5, arr), edge=g["edge"], channel_axis=0)


@pytest.mark.slow
def test_channel_axis_middle(rng):
    img = random_image(rng, (9, 3, 11))
    arr = rng.standard_normal((4, 5, 3))
    _check(img, affine_arr, (4, 5), (2, 3), args=(1.0, arr), channel_axis=1)
    _check(img, affine_arr, (4, 5), (2, 3), args=(1.0, arr), channel_axis=-2)


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
    c = _check(img, scale_add_mean, (3, 3, 3), 1, args=(1.0,))
    assert c.shape == img.shape


def test_channels_callback_sees_channels_last(rng):
    img = random_image(rng, (3, 8, 9))  # channels first
    got = _check_map(img, patch_mean, (2, 3), 1, channel_axis=0)
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


# ==========================================================================
# 3-D volumes and 1-D signals
# ==========================================================================
@given(g=geometry_nd(ndim=3, max_size=12), seed=seeds)
def test_volume_random_geometry(g, seed):
    rng = np.random.default_rng(seed)
    img = random_image(rng, g["shape"], np.float32)
    _check(img, scale_add_mean, g["patch"], g["step"], args=(1.5,), edge=g["edge"])
    geom = ref.geometry(img.shape, g["patch"], g["step"], g["edge"])
    _check_map(img, patch_mean, g["patch"], g["step"], edge=g["edge"])
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
    _check(img, scale_add_mean, (3, 4, 2), (2, 3, 1), args=(2.0,))
    _check_map(img, patch_mean, (3, 4, 2), (2, 3, 1), edge="cover")


@given(g=geometry_nd(ndim=1, max_size=80), seed=seeds)
def test_signal_random_geometry(g, seed):
    rng = np.random.default_rng(seed)
    img = random_image(rng, g["shape"])
    geom = ref.geometry(img.shape, g["patch"], g["step"], g["edge"])
    arr = rng.standard_normal(geom.patch)
    _check(img, affine_arr, g["patch"], g["step"], args=(-2.0, arr), edge=g["edge"])
    _check_map(img, weighted_sum, g["patch"], g["step"], args=(arr,), edge=g["edge"])
    if g["edge"] == "valid":
        v = patchjit.patchify(img, g["patch"], g["step"])
        np.testing.assert_array_equal(v, ref.patchify(img, g["patch"], g["step"]))


@pytest.mark.slow
def test_signal_with_channels(rng):
    sig = random_image(rng, (50, 3))
    arr = rng.standard_normal((7, 3))
    _check(sig, affine_arr, (7,), (3,), args=(1.0, arr))
    _check(sig, affine_arr, 7, 3, args=(1.0, arr), channel_axis=-1)
    got = _check_map(sig, patch_mean, (7,), (3,), edge="cover")
    assert got.shape == (16,)


# ==========================================================================
# edge="pad"
# ==========================================================================
@given(g=geometry_nd(ndim=2, edge="pad", max_size=25), mode=pad_modes, seed=seeds)
def test_process_image_pad_random_geometry(g, mode, seed):
    rng = np.random.default_rng(seed)
    img = random_image(rng, g["shape"])
    _check(
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


@given(g=geometry_nd(ndim=2, edge="pad", max_size=25), mode=pad_modes, seed=seeds)
def test_map_patches_pad_random_geometry(g, mode, seed):
    rng = np.random.default_rng(seed)
    img = random_image(rng, g["shape"])
    geom = ref.geometry(img.shape, g["patch"], g["step"], "pad", centered=True)
    w = rng.standard_normal(geom.patch)
    got = _check_map(
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
def test_pad_with_channels_does_not_pad_channels(rng):
    img = random_image(rng, (9, 10, 2))
    _check(
        img,
        scale_add_mean,
        (4, 3),
        (2, 2),
        args=(1.0,),
        edge="pad",
        pad_mode="constant",
        pad_value=7.0,
    )
    got = _check_map(img, patch_mean, (3, 3), 1, edge="pad", pad_mode="wrap")
    assert got.shape == (9, 10)
    first = np.moveaxis(img, -1, 0)
    got0 = patchjit.map_patches(
        first, patch_mean, (3, 3), 1, edge="pad", pad_mode="wrap", channel_axis=0
    )
    np.testing.assert_allclose(got0, got, rtol=1e-13)


def test_pad_integer_image_constant(rng):
    img = random_image(rng, (11, 7), np.uint8)
    got = _check(
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


@pytest.mark.slow
def test_pad_volume_and_signal(rng):
    vol = random_image(rng, (6, 7, 5), np.float32)
    _check(vol, scale_add_mean, (3, 4, 2), (2, 2, 1), args=(1.0,), edge="pad", pad_mode="symmetric")
    _check_map(vol, patch_mean, (3, 2, 3), (1, 2, 2), edge="pad", pad_mode="edge")
    sig = random_image(rng, (31,))
    _check(sig, scale_add_mean, 6, 4, args=(1.0,), edge="pad", pad_mode="wrap")
    _check_map(sig, patch_mean, 6, 4, edge="pad", pad_mode="reflect")


# ==========================================================================
# windows and reduce
# ==========================================================================
WINDOW_CASES = [None, "boxcar", "triangle", "hann", "hamming", "gaussian"]


def _sigma(window, sigma):
    """sigma only goes with the gaussian window."""
    return sigma if window == "gaussian" else None


@pytest.mark.parametrize("window", WINDOW_CASES)
@pytest.mark.parametrize("reduce", ["mean", "sum"])
def test_named_windows(window, reduce, rng):
    img = random_image(rng, (17, 14))
    _check(
        img,
        scale_add_mean,
        (6, 5),
        (2, 3),
        args=(1.5,),
        window=window,
        sigma=_sigma(window, 1.7),
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
    _check(
        img,
        scale_add_mean,
        g["patch"],
        g["step"],
        args=(0.5,),
        edge=g["edge"],
        window=window,
        sigma=_sigma(window, 2.0),
        reduce=reduce,
    )


def test_gaussian_per_axis_sigma(rng):
    img = random_image(rng, (15, 15))
    _check(img, scale_add_mean, (7, 5), (2, 2), args=(1.0,), window="gaussian", sigma=(1.0, 3.0))
    _check(
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
    _check(img, scale_add_mean, (5, 4), (2, 3), args=(1.0,), window=w)
    _check(img, scale_add_mean, (5, 4), (2, 3), args=(1.0,), window=w, reduce="sum")
    # mean is invariant to the scale of the window
    a = patchjit.process_image(img, scale_add_mean, (5, 4), (2, 3), args=(1.0,), window=w)
    b = patchjit.process_image(img, scale_add_mean, (5, 4), (2, 3), args=(1.0,), window=w * 8)
    ref.assert_close(a, b, np.float64, 6)


@pytest.mark.slow
@pytest.mark.parametrize("window", WINDOW_CASES[1:])
def test_window_identity_roundtrip(window, rng):
    img = random_image(rng, (20, 18))
    got = patchjit.process_image(
        img, identity, (7, 6), (3, 2), window=window, sigma=_sigma(window, 2.0)
    )
    np.testing.assert_allclose(got, img, rtol=1e-12)


@pytest.mark.slow
def test_window_with_channels_and_pad(rng):
    img = random_image(rng, (12, 11, 3))
    _check(
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
    _check(vol, scale_add_mean, (4, 3, 5), (2, 2, 2), args=(1.0,), window="triangle")


@pytest.mark.parametrize("reduce", ["max", "min"])
@pytest.mark.parametrize("edge", ["cover", "valid"])
def test_reduce_max_min(reduce, edge, rng):
    img = random_image(rng, (19, 16))
    got = _check(img, scale_add_mean, (5, 4), (2, 3), args=(-1.0,), edge=edge, reduce=reduce)
    covered = ref.PatchGrid(img.shape, (5, 4), (2, 3), edge).coverage() > 0
    assert np.isnan(got[~covered]).all() and np.isfinite(got[covered]).all()


@pytest.mark.parametrize("reduce", ["max", "min", "sum", "mean"])
def test_reduce_nan_propagates(reduce, rng):
    img = random_image(rng, (12, 12))
    img[5, 6] = np.nan
    geom = ref.geometry(img.shape, (3, 4), (2, 2), "cover")
    got = _check(img, scale_add_mean, (3, 4), (2, 2), args=(1.0,), reduce=reduce)
    np.testing.assert_array_equal(np.isnan(got), ref.covering_mask(geom, (5, 6)))


@given(g=geometry_nd(ndim=2, max_size=20), seed=seeds, reduce=st.sampled_from(ref.REDUCES))
def test_reduce_random_geometry(g, seed, reduce):
    rng = np.random.default_rng(seed)
    img = random_image(rng, g["shape"])
    _check(img, scale_add_mean, g["patch"], g["step"], args=(-0.5,), edge=g["edge"], reduce=reduce)


def test_reduce_with_integer_dtype(rng):
    img = random_image(rng, (10, 10), np.uint8)
    arr = np.zeros((3, 3))
    got = patchjit.process_image(
        img, affine_arr, 3, 1, args=(1.0, arr), reduce="sum", dtype=np.uint8
    )
    expected = ref.process_image(
        img, affine_arr, 3, 1, args=(1.0, arr), reduce="sum", dtype=np.uint8
    )
    np.testing.assert_array_equal(got, expected)
    assert got.max() == 255


@pytest.mark.parametrize("window", [None, "hann", "gaussian"])
@pytest.mark.parametrize("reduce", ["mean", "sum"])
def test_unpatchify_window_reduce(window, reduce, rng):
    shape = (13, 15)
    geom = ref.geometry(shape, (4, 3), (3, 2), "cover")
    patches = rng.standard_normal((*geom.grid_shape, 4, 3))
    got = patchjit.unpatchify(
        patches, shape, (3, 2), window=window, sigma=_sigma(window, 1.0), reduce=reduce
    )
    expected = ref.unpatchify(
        patches, shape, (3, 2), window=window, sigma=_sigma(window, 1.0), reduce=reduce
    )
    ref.assert_close(got, expected, np.float64, geom.max_coverage())


@pytest.mark.parametrize("reduce", ["max", "min"])
def test_unpatchify_max_min(reduce, rng):
    shape = (11, 9)
    geom = ref.geometry(shape, (3, 3), (2, 2), "cover")
    patches = rng.standard_normal((*geom.grid_shape, 3, 3))
    got = patchjit.unpatchify(patches, shape, 2, reduce=reduce)
    expected = ref.unpatchify(patches, shape, 2, reduce=reduce)
    ref.assert_close(got, expected, np.float64)


# ==========================================================================
# out=
# ==========================================================================
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


# ==========================================================================
# PatchGrid: pad / windows / centered / channels
# ==========================================================================
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
    got = patchjit.PatchGrid((15, 17), (5, 6), (2, 3), window=window, sigma=_sigma(window, 1.5))
    exp = ref.PatchGrid((15, 17), (5, 6), (2, 3), window=window, sigma=_sigma(window, 1.5))
    _assert_grid(got, exp)
    # coverage == process_image(ones, reduce="sum") with the same window
    img = rng.random((15, 17))
    summed = patchjit.process_image(
        img, const_one, (5, 6), (2, 3), window=window, sigma=_sigma(window, 1.5), reduce="sum"
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


# ==========================================================================
# bad inputs for issue-3 parameters
# ==========================================================================
IMG = np.arange(120, dtype=np.float64).reshape(10, 12)


@pytest.mark.parametrize("reduce", ["median", "avg"])
def test_unknown_reduce(reduce):
    for call in (
        lambda: patchjit.process_image(IMG, identity, 3, reduce=reduce),
        lambda: patchjit.unpatchify(np.zeros((8, 10, 3, 3)), IMG.shape, 1, reduce=reduce),
    ):
        with pytest.raises(ValueError, match=f"(?s)(?=.*{reduce})(?=.*mean)(?=.*max)"):
            call()


@pytest.mark.parametrize("window", ["blackman", "hanning"])
def test_unknown_window(window):
    for call in (
        lambda: patchjit.process_image(IMG, identity, 3, window=window),
        lambda: patchjit.unpatchify(np.zeros((8, 10, 3, 3)), IMG.shape, 1, window=window),
        lambda: patchjit.PatchGrid(IMG.shape, 3, 1, window=window),
    ):
        with pytest.raises(ValueError, match=f"(?s)(?=.*{window})(?=.*hann)(?=.*gaussian)"):
            call()


@pytest.mark.parametrize("mode", ["mirror", "nearest", "zeros"])
def test_unknown_pad_mode(mode):
    for call in (
        lambda: patchjit.process_image(IMG, identity, 3, edge="pad", pad_mode=mode),
        lambda: patchjit.map_patches(IMG, patch_mean, 3, edge="pad", pad_mode=mode),
    ):
        with pytest.raises(ValueError, match=f"(?s)(?=.*{mode})(?=.*reflect)(?=.*constant)"):
            call()


def test_unpatchify_rejects_pad():
    # only process_image and map_patches pad the image; unpatchify has no image
    with pytest.raises(ValueError, match="pad"):
        patchjit.unpatchify(np.zeros((4, 4, 3, 3)), (10, 10), 3, edge="pad")


def test_window_array_wrong_shape():
    with pytest.raises(ValueError, match=r"window"):
        patchjit.process_image(IMG, identity, (3, 4), window=np.ones((4, 3)))
    with pytest.raises(ValueError, match=r"window"):
        patchjit.process_image(IMG, identity, (3, 4), window=np.ones(12))


def test_window_array_not_positive():
    w = np.ones((3, 3))
    w[1, 1] = -1.0
    with pytest.raises(ValueError, match=r"window"):
        patchjit.process_image(IMG, identity, 3, window=w)


@pytest.mark.parametrize("reduce", ["max", "min"])
def test_max_min_reject_window(reduce):
    with pytest.raises(ValueError, match=r"(?s)(?=.*window)(?=.*" + reduce + ")"):
        patchjit.process_image(IMG, identity, 3, reduce=reduce, window="hann")
    with pytest.raises(ValueError, match=r"(?s)(?=.*window)(?=.*" + reduce + ")"):
        patchjit.unpatchify(np.zeros((8, 10, 3, 3)), IMG.shape, 1, reduce=reduce, window="hann")


def test_channel_axis_out_of_range():
    img = np.zeros((4, 5, 3))
    with pytest.raises(ValueError, match=r"channel_axis|3"):
        patchjit.process_image(img, identity, 2, channel_axis=3)
    with pytest.raises(ValueError, match=r"channel_axis|-4"):
        patchjit.patchify(img, 2, channel_axis=-4)


@pytest.mark.slow
def test_pad_patch_max_callback_integer(rng):
    img = random_image(rng, (9, 9), np.uint16)
    _check_map(img, patch_max, 3, 2, edge="pad", pad_mode="edge")


def test_large_volume_many_blocks(rng):
    vol = random_image(rng, (40, 60, 60), np.float32)
    _check(vol, scale_add_mean, (6, 6, 6), (2, 2, 2), args=(1.5,))
    _check(vol, scale_add_mean, (6, 5, 7), (3, 2, 4), args=(1.5,), edge="pad", pad_mode="edge")


def test_large_channels_window(rng):
    img = random_image(rng, (200, 230, 3))
    arr = rng.standard_normal((10, 12, 3))
    _check(img, affine_arr, (10, 12), (3, 4), args=(0.5, arr), window="hann")
