"""API semantics from the trustworthiness review: casts, precision, windows, channels.

Each test compares against an independent computation (``tests/reference.py``, exact
Python integers, scipy.ndimage, or values written out by hand).
"""

import numba
import numpy as np
import pytest
import reference as ref
import scipy.ndimage as ndi
from hypothesis import given
from hypothesis import strategies as st

import patchjit
from patchjit import ops


@numba.njit
def _ident(patch, out):
    for idx in np.ndindex(patch.shape):
        out[idx] = patch[idx]


@numba.njit
def _value(patch):
    for idx in np.ndindex(patch.shape):
        return patch[idx]
    return 0.0


BIG = np.array([3e9, 5.0, -3e9, 1e10, np.inf, -np.inf, 1e30, -1e30, 2.5, 3.5, -2.5])


# --- one cast, exact for every integer dtype -------------------------------------------


@pytest.mark.parametrize("out", ["int8", "uint8", "int16", "uint16", "int32", "uint32",
                                 "int64", "uint64"])  # fmt: skip
@pytest.mark.parametrize("src", [np.float32, np.float64, np.float16])
def test_integer_outputs_clip_exactly(src, out):
    with np.errstate(over="ignore"):  # float16: the large values become inf
        img = BIG.astype(src)
    expected = ref.cast_result(img.astype(np.float64), out)
    got = patchjit.process_image(img, _ident, 1, dtype=out)
    np.testing.assert_array_equal(got, expected)
    assert got.dtype == np.dtype(out)
    np.testing.assert_array_equal(patchjit.map_patches(img, _value, 1, dtype=out), expected)
    back = patchjit.unpatchify(img[:, None], img.shape, 1, dtype=out)
    np.testing.assert_array_equal(back, expected)


def test_issue_examples_int32_uint32():
    img = np.array([3e9, 5.0, -3e9, 1e10, np.inf], np.float32)
    got = patchjit.process_image(img, _ident, 1, dtype=np.int32)
    np.testing.assert_array_equal(got, [2147483647, 5, -2147483648, 2147483647, 2147483647])
    got = patchjit.process_image(np.array([3e9, 1e10], np.float32), _ident, 1, dtype=np.uint32)
    np.testing.assert_array_equal(got, [3000000000, 4294967295])
    got = patchjit.process_image(np.array([1e30, -1e30]), _ident, 1, dtype=np.int64)
    np.testing.assert_array_equal(got, [np.iinfo(np.int64).max, np.iinfo(np.int64).min])
    got = patchjit.process_image(np.array([1e30, -1.0]), _ident, 1, dtype=np.uint64)
    np.testing.assert_array_equal(got, [np.iinfo(np.uint64).max, 0])


def test_integer_output_rounds_half_to_even_and_refuses_nan():
    img = np.array([0.5, 1.5, 2.5, -0.5, -1.5])
    got = patchjit.process_image(img, _ident, 1, dtype=np.int16)
    np.testing.assert_array_equal(got, [0, 2, 2, 0, -2])
    with pytest.raises(ValueError, match=r"NaN.*float dtype"):
        patchjit.process_image(np.array([1.0, np.nan]), _ident, 1, dtype=np.uint8)


def test_out_receives_the_exact_cast():
    out = np.zeros(5, np.int64)
    res = patchjit.process_image(BIG[:5], _ident, 1, out=out)
    assert res is out
    np.testing.assert_array_equal(out, ref.cast_result(BIG[:5], np.int64))


def test_reference_cast_is_exact():
    v = np.array([2.0**63, 2.0**64, -(2.0**63), 1e300, -1e300, 2.0**53 + 2])
    got = ref.cast_result(v, np.int64)
    assert got.tolist() == [2**63 - 1, 2**63 - 1, -(2**63), 2**63 - 1, -(2**63), 2**53 + 2]
    assert ref.cast_result(v, np.uint64).tolist() == [2**63, 2**64 - 1, 0, 2**64 - 1, 0,
                                                      2**53 + 2]  # fmt: skip


# --- map_patches keeps the requested precision -------------------------------------------


def test_map_patches_integer_callback_not_rounded_through_float32():
    @numba.njit
    def big(patch):
        return 16777217

    got = patchjit.map_patches(np.zeros((3, 3), np.uint8), big, (2, 2), dtype=np.int64)
    assert (got == 16777217).all()


def test_map_patches_float64_results_bit_exact():
    @numba.njit
    def third(patch):
        return 1.0 / 3.0 + patch[0, 0]

    img = np.zeros((4, 4), np.float32)
    got = patchjit.map_patches(img, third, (2, 2), dtype=np.float64)
    assert got.dtype == np.float64 and (got == 1.0 / 3.0).all()


# --- windows: positive total weight for any sigma, or a clear error -------------------


def test_gaussian_small_sigma_identity_or_error():
    img = np.arange(1.0, 33.0, dtype=np.float32).reshape(2, 16)
    with pytest.raises(ValueError, match=r"sigma=\(1.0, 0.5\).*too small.*use sigma >="):
        patchjit.process_image(img, _ident, (2, 16), window="gaussian", sigma=(1.0, 0.5))
    with pytest.raises(ValueError, match=r"sigma=0\.05"):
        patchjit.process_image(img.astype(np.float64), _ident, (2, 16), window="gaussian",
                               sigma=0.05)  # fmt: skip
    # float64 accumulation represents sigma 0.5 over 16 pixels: the image comes back
    got = patchjit.process_image(img.astype(np.float64), _ident, (2, 16), window="gaussian",
                                 sigma=(1.0, 0.5))  # fmt: skip
    np.testing.assert_allclose(got, img, rtol=1e-12)


@given(sigma=st.floats(0.02, 20.0), p=st.integers(2, 24), f64=st.booleans())
def test_any_sigma_identity_returns_image(sigma, p, f64):
    dtype = np.float64 if f64 else np.float32
    img = np.linspace(1.0, 2.0, 3 * p, dtype=dtype)
    try:
        got = patchjit.process_image(img, _ident, p, window="gaussian", sigma=sigma)
    except ValueError as exc:
        assert "too small to represent" in str(exc)
        return
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(got, img, rtol=tol)


# --- one channel rule ----------------------------------------------------------------------


def test_int_patch_on_possible_channels_is_refused():
    rgb = np.zeros((16, 16, 3), np.float32)
    with pytest.raises(ValueError, match=r"ambiguous.*channel_axis=-1.*patch_shape=\(2, 2, 2\)"):
        patchjit.process_image(rgb, _ident, 2)
    with pytest.raises(ValueError, match="ambiguous"):
        patchjit.map_patches(rgb, _value, 2)
    with pytest.raises(ValueError, match="ambiguous"):
        patchjit.patchify(rgb, 2)
    # both readings on request
    assert patchjit.patchify(rgb, 2, channel_axis=-1).shape == (15, 15, 2, 2, 3)
    assert patchjit.patchify(rgb, (2, 2, 2)).shape == (15, 15, 2, 2, 2, 2)
    # a grey image with a short last axis that is not shorter than the others is fine
    assert patchjit.process_image(np.ones((4, 4)), _ident, 2).shape == (4, 4)


# --- map_patches with edge='pad' on small images ------------------------------------------


@pytest.mark.parametrize("shape", [(2, 3), (1, 1), (3, 9)])
def test_map_patches_pad_image_smaller_than_patch(shape):
    img = np.arange(np.prod(shape), dtype=np.float64).reshape(shape) ** 1.5
    got = patchjit.map_patches(img, ops.local_std, 5, edge="pad", pad_mode="symmetric")
    expected = ndi.generic_filter(img, np.std, size=5, mode="reflect")
    np.testing.assert_allclose(got, expected, atol=1e-12)


# --- unpatchify: 1-D signals with channels and the round trip ------------------------------


def test_unpatchify_1d_signal_with_channels():
    img = np.random.default_rng(0).random((10, 3))
    p = patchjit.patchify(img, (4,), 2)
    assert p.shape == (4, 4, 3)
    np.testing.assert_allclose(patchjit.unpatchify(p, img.shape, 2), img)
    np.testing.assert_allclose(patchjit.unpatchify(p, img.shape, (2,)), img)
    got = patchjit.unpatchify(p, img.shape, 2, window="hann", reduce="sum")
    w = np.sin(np.pi * np.arange(1, 5) / 5) ** 2  # hann(6)[1:-1], written out
    expected = np.zeros_like(img)
    for o in range(0, 7, 2):
        expected[o : o + 4] += w[:, None] * img[o : o + 4]
    np.testing.assert_allclose(got, expected)


_WINDOWS = [None, "boxcar", "triangle", "hann", "hamming", "gaussian"]


@given(
    data=st.data(),
    ndim=st.integers(1, 3),
    channels=st.sampled_from([None, 1, 2, 3]),
    window=st.sampled_from(_WINDOWS),
    reduce=st.sampled_from(["mean", "sum", "max", "min"]),
    tuple_step=st.booleans(),
)
def test_unpatchify_patchify_round_trip(data, ndim, channels, window, reduce, tuple_step):
    if reduce in ("max", "min"):
        window = None
    shape = tuple(data.draw(st.integers(1, 9)) for _ in range(ndim))
    patch = tuple(data.draw(st.integers(1, n)) for n in shape)
    step = tuple(data.draw(st.integers(1, p)) for p in patch)
    ca = None
    if channels is not None:
        ca = data.draw(st.integers(0, ndim))
        shape = (*shape[:ca], channels, *shape[ca:])
    img = np.random.default_rng(ndim).random(shape) + 0.5
    s = step if tuple_step else step[0]
    if not tuple_step:
        step = (s,) * ndim
    p = patchjit.patchify(img, patch, s, channel_axis=ca)
    # channels last are read from the grid form; any other position is named
    lib_ca = None if ca == ndim else ca
    back = patchjit.unpatchify(p, img.shape, s, channel_axis=lib_ca, window=window,
                               reduce=reduce)  # fmt: skip
    # independent: the reference merge of the same patches on the 'valid' grid
    expected = ref.unpatchify(
        np.asarray(p), img.shape, step, edge="valid", channel_axis=ca, window=window,
        reduce=reduce,
    )  # fmt: skip
    ref.assert_close(back, expected, n_terms=int(np.prod(patch)))
    if (reduce != "sum" and window is None) or reduce == "mean":
        covered = ~np.isnan(back)
        np.testing.assert_allclose(back[covered], img[covered], rtol=1e-12)


def test_unpatchify_explicit_channel_axis_not_last():
    img = np.random.default_rng(1).random((2, 7, 6))
    p = patchjit.patchify(img, (3, 2), 1, channel_axis=0)
    np.testing.assert_allclose(patchjit.unpatchify(p, img.shape, 1, channel_axis=0), img)


@pytest.mark.parametrize("edge", ["valid", "cover", "pad"])
def test_map_patches_shape_is_the_documented_grid(edge):
    img = np.zeros((11, 13))
    got = patchjit.map_patches(img, ops.local_std, (4, 5), (2, 3), edge=edge)
    grid = patchjit.PatchGrid(img.shape, (4, 5), (2, 3), edge, centered=True)
    assert got.shape == grid.grid_shape
    # the pad grid of map_patches is the centred one, not process_image's
    expected_pad = ((11 + 4 - 1 - 4) // 2 + 1, (13 + 5 - 1 - 5) // 3 + 1)
    if edge == "pad":
        assert got.shape == expected_pad


def test_median_even_size_is_mean_of_middle_values_as_documented():
    img = np.array([[1.0, 2.0, 10.0, 20.0]])
    got = patchjit.map_patches(img, ops.median, (1, 2))
    np.testing.assert_array_equal(got, [[1.5, 6.0, 15.0]])  # numpy.median, not scipy's pick


def test_window_array_with_tiny_weights_is_refused():
    img = np.ones((6, 6), np.float32)
    win = np.ones((3, 3))
    win[0, 0] = 1e-30  # below float32's safe range, fine for float64
    with pytest.raises(ValueError, match=r"window array of shape \(3, 3\)"):
        patchjit.process_image(img, _ident, (3, 3), window=win)
    got = patchjit.process_image(img.astype(np.float64), _ident, (3, 3), window=win)
    np.testing.assert_allclose(got, 1.0)
