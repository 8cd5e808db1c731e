"""patchjit.ops: built-in callbacks and the Op registry against independent references.

The references use scipy.fft / scipy.ndimage / plain numpy only. Every distinct
(callback, argument types) pair costs a numba compile of a few seconds, so the tests
reuse a small set of dtypes: float64 images for exact comparisons, float32 where the
float32 kernels are the point.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.fft
import scipy.ndimage as ndi
from numpy.lib.stride_tricks import sliding_window_view

import patchjit
from patchjit import ops

SIGMA = 10.0


# --- references -------------------------------------------------------------------------


def ref_denoise_patch(patch, sigma, keep_dc=True):
    """Hard-threshold the orthonormal 2-D DCT of one patch at 3 sigma (scipy.fft)."""
    c = scipy.fft.dctn(np.asarray(patch, dtype=np.float64), norm="ortho")
    dc = c[0, 0]
    c[np.abs(c) < 3 * sigma] = 0
    if keep_dc:
        c[0, 0] = dc
    return scipy.fft.idctn(c, norm="ortho")


def ref_dct_denoise(image, p, sigma):
    """Sliding-window DCT denoising, every stride-1 patch, plain mean of the overlaps."""
    ph, pw = (p, p) if np.isscalar(p) else p
    x = np.asarray(image, dtype=np.float64)
    windows = sliding_window_view(x, (ph, pw))
    c = scipy.fft.dctn(windows, axes=(-2, -1), norm="ortho")
    dc = c[..., 0, 0].copy()
    c[np.abs(c) < 3 * sigma] = 0
    c[..., 0, 0] = dc
    r = scipy.fft.idctn(c, axes=(-2, -1), norm="ortho")
    acc = np.zeros_like(x)
    cnt = np.zeros_like(x)
    gh, gw = windows.shape[:2]
    for i in range(ph):
        for j in range(pw):
            acc[i : i + gh, j : j + gw] += r[:, :, i, j]
            cnt[i : i + gh, j : j + gw] += 1
    return acc / cnt


def ref_color(image, p, sigma):
    """The paper's colour path: decorrelate, denoise each channel, transform back."""
    s3, s2, s6 = np.sqrt(3), np.sqrt(2), np.sqrt(6)
    m = np.array([[1 / s3, 1 / s3, 1 / s3], [1 / s2, 0, -1 / s2], [1 / s6, -2 / s6, 1 / s6]])
    y = np.asarray(image, dtype=np.float64) @ m.T
    den = np.stack([ref_dct_denoise(y[..., c], p, sigma) for c in range(3)], axis=-1)
    return den @ m


def noisy_image(rng, shape, sigma=SIGMA):
    """A smooth image (gradients and a disc) plus Gaussian noise, values around 0..255."""
    h, w = shape[:2]
    yy, xx = np.mgrid[0:h, 0:w]
    clean = 60 + 2.0 * xx + 1.5 * yy + 80.0 * ((yy - h / 2) ** 2 + (xx - w / 2) ** 2 < (h / 3) ** 2)
    if len(shape) == 3:
        clean = np.stack([clean * (0.6 + 0.2 * c) for c in range(shape[2])], axis=-1)
    return clean + rng.normal(0, sigma, clean.shape)


# --- the DCT callbacks --------------------------------------------------------------------


def test_dct_matrix_is_scipy_dct():
    for n in (1, 5, 8, 16):
        d = ops.dct_matrix(n)
        x = np.random.default_rng(n).standard_normal((n, 3))
        np.testing.assert_allclose(d @ x, scipy.fft.dct(x, axis=0, norm="ortho"), atol=1e-12)
        np.testing.assert_allclose(d @ d.T, np.eye(n), atol=1e-12)


def denoise_one_patch(patch, sigma):
    """The callback on a single patch, through process_image (one patch covers all)."""
    return patchjit.process_image(patch, ops.dct_denoise, patch.shape, args=(sigma,))


@pytest.mark.parametrize("shape", [(8, 8), (16, 16), (5, 5), (6, 10), (32, 32), (1, 3), (40, 35)])
def test_dct_denoise_single_patches(rng, shape):
    """Fast (8, 16), generic (stack) and generic (heap, > 32) kernels against scipy."""
    for sigma in (0.0, 5.0, 20.0, 1e6):
        patch = rng.normal(100, 30, shape)
        np.testing.assert_allclose(
            denoise_one_patch(patch, sigma), ref_denoise_patch(patch, sigma), atol=1e-9
        )


def test_dct_denoise_keeps_dc():
    """A flat patch whose DC is far below 3 sigma survives (OpenCV would zero it)."""
    for n in (8, 16, 5):
        got = denoise_one_patch(np.full((n, n), 2.0), 100.0)
        np.testing.assert_allclose(got, 2.0, atol=1e-12)


def test_dct_denoise_keeps_nan():
    for n in (8, 5):
        patch = np.arange(n * n, dtype=np.float64).reshape(n, n)
        patch[3, 4] = np.nan
        assert np.isnan(denoise_one_patch(patch, 1.0)).all()


@pytest.mark.parametrize("p", [8, 16, 5, (4, 7)])
def test_dct_denoise_image_float64(rng, p):
    img = noisy_image(rng, (40, 37))
    got = patchjit.process_image(img, ops.dct_denoise, p, args=(SIGMA,))
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, ref_dct_denoise(img, p, SIGMA), atol=1e-9)


@pytest.mark.parametrize("dtype", [np.float32, pytest.param(np.uint8, marks=pytest.mark.slow)])
def test_dct_denoise_image_float32_and_uint8(rng, dtype):
    """float32 working precision agrees with the float64 reference to float32 rounding.

    Except where float32 rounding flips the keep/zero decision of a coefficient within
    ~1e-4 of the threshold: such a flip moves a pixel by at most
    ``3 sigma * max|basis| / overlaps`` (< 0.25 here), and is rare. sigma = 10.3 so
    that no coefficient of an integer image (some are multiples of 1/8) can equal
    the threshold exactly.
    """
    sigma = 10.3
    img = noisy_image(rng, (34, 41))
    image = np.clip(np.rint(img), 0, 255).astype(np.uint8) if dtype == np.uint8 else img
    image = image.astype(dtype)
    for p in (8, 16):
        got = patchjit.process_image(image, ops.dct_denoise, p, args=(sigma,))
        assert got.dtype == np.float32
        err = np.abs(got - ref_dct_denoise(image, p, sigma))
        assert err.max() < 0.25
        assert np.mean(err < 2e-3) > 0.99


def test_dct_denoise_channels_is_per_channel(rng):
    img = noisy_image(rng, (24, 20, 2))
    both = patchjit.process_image(img, ops.dct_denoise_channels, (8, 8), args=(SIGMA,))
    for c in range(2):
        np.testing.assert_allclose(both[..., c], ref_dct_denoise(img[..., c], 8, SIGMA),
                                   atol=1e-9)  # fmt: skip


@pytest.mark.parametrize("p", [8, 16, 5])
def test_dct_denoise_color_op(rng, p):
    img = noisy_image(rng, (36, 33, 3))
    got = ops.get("dct-denoise")(img, p, sigma=SIGMA, channel_axis=-1)
    np.testing.assert_allclose(got, ref_color(img, p, SIGMA), atol=1e-9)
    # a tuple patch_shape of the spatial rank says "channels last" too
    np.testing.assert_array_equal(ops.get("dct-denoise")(img, (p, p), sigma=SIGMA), got)


@pytest.mark.slow  # the per-patch colour callback is a big compile (~8 s)
def test_dct_denoise_color_callback(rng):
    img = noisy_image(rng, (36, 33, 3))
    for p in (8, 16, 5):
        got = patchjit.process_image(img, ops.dct_denoise_color, (p, p), args=(SIGMA,))
        np.testing.assert_allclose(got, ref_color(img, p, SIGMA), atol=1e-9)
    # not RGB: each channel on its own
    img2 = img[..., :2]
    got = patchjit.process_image(img2, ops.dct_denoise_color, (8, 8), args=(SIGMA,))
    for c in range(2):
        np.testing.assert_allclose(got[..., c], ref_dct_denoise(img2[..., c], 8, SIGMA),
                                   atol=1e-9)  # fmt: skip


def test_dct_op_grey_options_and_channels(rng):
    op = ops.get("dct-denoise")
    img = noisy_image(rng, (30, 26))
    np.testing.assert_allclose(op(img, sigma=SIGMA), ref_dct_denoise(img, 8, SIGMA), atol=1e-9)
    # options reach process_image: edge, step, window
    kw = {"args": (SIGMA,)}
    for opts in ({"edge": "pad"}, {"step": 2}, {"window": "hann"}):
        step = opts.pop("step", 1)
        expected = patchjit.process_image(img, ops.dct_denoise, 8, step, **opts, **kw)
        np.testing.assert_allclose(op(img, 8, step, sigma=SIGMA, **opts), expected, atol=1e-9)
    # more than 3 channels: each channel on its own
    img4 = noisy_image(rng, (20, 18, 4))
    got = op(img4, 8, sigma=SIGMA, channel_axis=2)
    assert got.shape == img4.shape
    np.testing.assert_allclose(got[..., 3], ref_dct_denoise(img4[..., 3], 8, SIGMA), atol=1e-9)


# --- the other ops ----------------------------------------------------------------------


def test_identity_and_mean_remove(rng):
    img = rng.normal(size=(19, 23))
    np.testing.assert_allclose(ops.get("identity")(img, 5, 2), img, atol=1e-12)
    got = ops.get("mean-remove")(img, 4)
    windows = sliding_window_view(img, (4, 4))
    out = windows - windows.mean(axis=(-2, -1), keepdims=True)
    acc = np.zeros_like(img)
    for i in range(4):
        for j in range(4):
            acc[i : i + 16, j : j + 20] += out[:, :, i, j]
    cnt = np.zeros_like(img)
    for i in range(4):
        for j in range(4):
            cnt[i : i + 16, j : j + 20] += 1
    np.testing.assert_allclose(got, acc / cnt, atol=1e-12)


def test_mean_remove_volume(rng):
    vol = rng.normal(size=(6, 7, 8))
    got = ops.get("mean-remove")(vol, 6)  # 3-D, last axis > 4: a volume
    assert got.shape == vol.shape
    expected = patchjit.process_image(vol, ops.mean_remove, 6)
    np.testing.assert_allclose(got, expected)


@pytest.mark.parametrize("p", [3, 4, (3, 5)])
def test_local_std_is_generic_filter(rng, p):
    img = rng.normal(size=(17, 14))
    size = (p, p) if np.isscalar(p) else p
    expected = ndi.generic_filter(img, np.std, size=size, mode="mirror")
    np.testing.assert_allclose(ops.get("local-std")(img, p), expected, atol=1e-12)


@pytest.mark.parametrize("p", [3, 5, (3, 7)])
def test_median_is_median_filter(rng, p):
    img = rng.integers(0, 50, size=(16, 19)).astype(np.float64)  # many ties
    size = (p, p) if np.isscalar(p) else p
    expected = ndi.median_filter(img, size=size, mode="mirror")
    np.testing.assert_array_equal(ops.get("median")(img, p), expected)


def test_median_even_sizes_and_big_patches(rng):
    img = rng.normal(size=(12, 11))
    for size in ((2, 2), (4, 3)):
        expected = ndi.generic_filter(img, np.median, size=size, mode="mirror")
        np.testing.assert_allclose(ops.get("median")(img, size), expected, atol=1e-12)
    big = rng.normal(size=(70, 70))  # 65 x 65 = 4225 elements: numpy.median fallback
    got = patchjit.map_patches(big, ops.median, 65)
    np.testing.assert_allclose(got, np.median(sliding_window_view(big, (65, 65)), axis=(-2, -1)))


def test_median_nan_patch():
    img = np.arange(25.0).reshape(5, 5)
    img[0, 0] = np.nan
    got = patchjit.map_patches(img, ops.median, 3)
    assert np.isnan(got[0, 0]) and not np.isnan(got[1:, 1:]).any()


def test_map_ops_on_colour_images_are_per_channel(rng):
    img = rng.normal(size=(10, 9, 3))
    got = ops.get("local-std")(img, channel_axis=-1)
    for c in range(3):
        expected = ndi.generic_filter(img[..., c], np.std, size=3, mode="mirror")
        np.testing.assert_allclose(got[..., c], expected, atol=1e-12)
    # channels first: the result keeps the input's axes
    first = ops.get("local-std")(np.moveaxis(img, -1, 0), channel_axis=0)
    np.testing.assert_allclose(first, np.moveaxis(got, -1, 0), atol=1e-12)


def test_ops_follow_the_api_channel_rule():
    rgb = np.zeros((12, 12, 3))
    for name in ("identity", "median"):
        with pytest.raises(ValueError, match=r"ambiguous.*channel_axis=-1"):
            ops.get(name)(rgb)
        with pytest.raises(ValueError, match="ambiguous"):
            ops.get(name)(rgb, 3)
        with pytest.raises(ValueError, match="ambiguous"):
            patchjit.process_image(rgb, ops.identity, 3)
    # a volume of 3 slices is a volume when the patch says so
    assert ops.get("identity")(rgb, (3, 3, 3)).shape == rgb.shape


def test_map_ops_accept_images_smaller_than_the_patch(rng):
    img = rng.normal(size=(2, 3))
    got = ops.get("median")(img, 5)
    np.testing.assert_array_equal(got, ndi.median_filter(img, size=5, mode="mirror"))
    np.testing.assert_allclose(
        ops.get("local-std")(img, 7), ndi.generic_filter(img, np.std, 7, mode="mirror")
    )


# --- registry and validation -------------------------------------------------------------


def test_registry():
    names = [op.name for op in ops.available()]
    assert names[0] == "dct-denoise"
    assert {"dct-denoise", "identity", "mean-remove", "local-std", "median"} <= set(names)
    for op in ops.available():
        assert ops.get(op.name) is op
        assert op.kind in ("process", "map")
        assert isinstance(op.summary, str) and "\n" not in op.summary
        assert isinstance(op.default_patch, int) and op.default_patch > 0
        for p in op.params:
            assert isinstance(p, ops.Param) and isinstance(p.help, str)
    sigma = ops.get("dct-denoise").params[0]
    assert (sigma.name, sigma.type, sigma.default, sigma.required) == ("sigma", float, None, True)
    with pytest.raises(ValueError, match="unknown op 'nope'; valid ops: dct-denoise, identity"):
        ops.get("nope")


def test_param_validation():
    op = ops.get("dct-denoise")
    img = np.zeros((16, 16))
    with pytest.raises(ValueError, match="no parameter 'sigmaa'; valid parameters: sigma"):
        op(img, sigmaa=3)
    with pytest.raises(ValueError, match="needs parameter 'sigma'"):
        op(img)
    for bad in (-1, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="'sigma' must be a finite number >= 0"):
            op(img, sigma=bad)
    for bad in ("abc", True, [1.0], None):
        with pytest.raises(ValueError, match="sigma"):
            op(img, sigma=bad)
    with pytest.raises(ValueError, match="has no parameter 'sigma'; valid parameters: none"):
        ops.get("median")(img, sigma=1)


def test_option_validation():
    img = np.zeros((16, 16))
    med = ops.get("median")
    with pytest.raises(ValueError, match="edge must be 'pad'"):
        med(img, edge="cover")
    with pytest.raises(ValueError, match="step must be 1"):
        med(img, 3, 2)
    with pytest.raises(ValueError, match="window does not apply"):
        med(img, window="hann")
    dct = ops.get("dct-denoise")
    with pytest.raises(ValueError, match="2-D images"):
        dct(np.zeros((10, 10, 10)), sigma=1)
    with pytest.raises(ValueError, match="has 3 axes but the image has only 2"):
        dct(img, (8, 8, 8), sigma=1)


def test_string_params_are_converted():
    """The CLI may pass strings: '0' is a valid sigma (keeps every coefficient)."""
    img = np.arange(100.0).reshape(10, 10)
    np.testing.assert_allclose(ops.get("dct-denoise")(img, sigma="0"), img, atol=1e-9)


# --- quality and OpenCV -------------------------------------------------------------------


def test_camera_psnr():
    """camera + N(0, 25) noise (seed 0, float32, *not* clipped): at least 29.0 dB."""
    data = pytest.importorskip("skimage.data")
    clean = data.camera().astype(np.float64)
    noisy = (clean + np.random.default_rng(0).normal(0, 25, clean.shape)).astype(np.float32)
    out = ops.get("dct-denoise")(noisy, sigma=25)
    psnr = 10 * np.log10(255**2 / np.mean((out - clean) ** 2))
    assert psnr >= 29.0, psnr


@pytest.mark.slow
def test_matches_opencv_variant(rng):
    """OpenCV's dctDenoising = our kernel with the DC thresholded, on its shorter grid."""
    cv2 = pytest.importorskip("cv2")
    if not hasattr(cv2, "xphoto"):
        pytest.skip("needs opencv-contrib (cv2.xphoto); a plain opencv build is installed")
    from numba import njit

    from patchjit.ops._simd import make_gray_kernel

    kernel = make_gray_kernel(ops.dct_matrix(8), keep_dc=False)

    @njit
    def like_opencv(patch, out, sigma):
        kernel(patch, out, 3.0 * sigma)

    img = noisy_image(rng, (48, 40), sigma=20).astype(np.float32)
    cv = np.empty_like(img)
    cv2.xphoto.dctDenoising(img, cv, 20.0, 8)
    assert np.isnan(cv[-1]).all() and np.isnan(cv[:, -1]).all()  # never covered
    ours = patchjit.process_image(img[:-1, :-1], like_opencv, 8, args=(20.0,))
    np.testing.assert_allclose(ours, cv[:-1, :-1], atol=2e-3)
