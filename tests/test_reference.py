"""Validate the reference implementation itself, independently of patchjit.

Hand-computed cases plus peers (scikit-learn, scipy, torch) make sure the
ground truth used by the other test files is right.
"""

import numpy as np
import pytest
import reference as ref
import scipy.ndimage as ndi
import scipy.signal
from hypothesis import given
from hypothesis import strategies as st
from sklearn.feature_extraction.image import extract_patches_2d, reconstruct_from_patches_2d
from strategies import geometry_nd, seeds


def py_identity(patch, out):
    out[...] = patch


def py_add_mean(patch, out):
    out[...] = patch + patch.mean()


def py_scale_add_mean(patch, out, a):
    out[...] = a * patch + patch.mean()


# --------------------------------------------------------------------------
# geometry
# --------------------------------------------------------------------------
@pytest.mark.parametrize(
    "n, p, s, edge, expected",
    [
        (6, 3, 2, "cover", [0, 2, 3]),
        (6, 3, 2, "valid", [0, 2]),
        (7, 3, 2, "cover", [0, 2, 4]),
        (5, 5, 1, "cover", [0]),
        (10, 3, 3, "cover", [0, 3, 6, 7]),
        (10, 3, 3, "valid", [0, 3, 6]),
        (10, 2, 4, "valid", [0, 4, 8]),
        (9, 2, 4, "valid", [0, 4]),
        (1, 1, 1, "cover", [0]),
    ],
)
def test_axis_origins(n, p, s, edge, expected):
    assert ref.axis_origins(n, p, s, edge).tolist() == expected


@pytest.mark.parametrize(
    "n, p, s, centered, expected",
    [
        (6, 3, 2, False, (1, 2)),  # padded 9: origins 0,2,4,6 end flush
        (6, 3, 3, False, (0, 0)),
        (7, 3, 3, False, (0, 2)),
        (5, 4, 1, False, (3, 3)),
        (6, 3, 1, True, (1, 1)),
        (6, 4, 1, True, (2, 1)),
        (6, 1, 1, True, (0, 0)),
    ],
)
def test_pad_width(n, p, s, centered, expected):
    assert ref.axis_pad_width(n, p, s, centered) == expected
    if not centered:
        a, b = expected
        assert (n + a + b - p) % s == 0


@given(g=geometry_nd(ndim=1, edges=("cover", "valid", "pad"), max_size=60))
def test_origins_properties(g):
    (n,), p, s, edge = g["shape"], g["patch"], g["step"], g["edge"]
    p = p if isinstance(p, int) else p[0]
    s = s if isinstance(s, int) else s[0]
    geom = ref.geometry((n,), p, s, edge, check_cover_gaps=False)
    (o,) = geom.origins
    (N,) = geom.padded_shape
    assert o[0] == 0 and np.all(o + p <= N) and np.all(np.diff(o) > 0)
    if edge in ("cover", "pad"):
        assert o[-1] == N - p  # ends flush
    if edge == "pad":
        assert geom.pad_width[0][0] == max(p - s, 0)
        assert np.all(np.diff(o) == s)


def test_channel_axis_inference():
    assert ref.split_axes(3, (2, 2), None) == ((0, 1), 2)
    assert ref.split_axes(3, (2, 2, 2), None) == ((0, 1, 2), None)
    assert ref.split_axes(3, 2, None) == ((0, 1, 2), None)
    assert ref.split_axes(3, 2, 0) == ((1, 2), 0)
    assert ref.split_axes(3, (2, 2), -3) == ((1, 2), 0)
    with pytest.raises(ValueError):
        ref.split_axes(4, (2, 2), None)


def test_dtype_policy():
    f32, f64 = np.dtype(np.float32), np.dtype(np.float64)
    for dt in (np.float32, np.float16, np.bool_, np.uint8, np.int8, np.uint16, np.int16):
        assert ref.accumulation_dtype(dt) == f32, dt
    for dt in (np.float64, np.int32, np.uint32, np.int64, np.uint64):
        assert ref.accumulation_dtype(dt) == f64, dt


def test_cast_result_rounds_and_clips():
    v = np.array([-3.6, 2.5, 3.5, 254.4, 254.6, 300.0, 0.49])
    np.testing.assert_array_equal(ref.cast_result(v, np.uint8), [0, 2, 4, 254, 255, 255, 0])
    np.testing.assert_array_equal(ref.cast_result(v, np.int8), [-4, 2, 4, 127, 127, 127, 0])


# --------------------------------------------------------------------------
# merging: hand-computed
# --------------------------------------------------------------------------
IMG_1x6 = np.array([[1.0, 2, 3, 4, 5, 6]])


@pytest.mark.parametrize(
    "reduce, edge, expected",
    [
        # patches at 0, 2, 3: [1,2,3]+2, [3,4,5]+4, [4,5,6]+5
        ("mean", "cover", [3, 4, 6, 8.5, 9.5, 11]),
        ("sum", "cover", [3, 4, 12, 17, 19, 11]),
        ("max", "cover", [3, 4, 7, 9, 10, 11]),
        ("min", "cover", [3, 4, 5, 8, 9, 11]),
        ("mean", "valid", [3, 4, 6, 8, 9, np.nan]),
        ("sum", "valid", [3, 4, 12, 8, 9, np.nan]),
    ],
)
def test_process_image_hand_computed(reduce, edge, expected):
    res = ref.process_image(IMG_1x6, py_add_mean, (1, 3), (1, 2), edge=edge, reduce=reduce)
    np.testing.assert_array_equal(res, np.array([expected]))
    assert res.dtype == np.float64


def test_process_image_pad_hand_computed():
    # n=6, p=3, s=2: pad (1, 2) with reflect -> [2,1,2,3,4,5,6,5,4]
    # patches at 0,2,4,6 of the padded signal: [2,1,2] [2,3,4] [4,5,6] [6,5,4]
    # with sum reduce and the identity callback, each original pixel counts
    # its own value times its coverage.
    res = ref.process_image(IMG_1x6, py_identity, (1, 3), (1, 2), edge="pad", reduce="sum")
    cover = np.array([1, 2, 1, 2, 1, 2])  # padded positions 1..6 -> counts
    np.testing.assert_array_equal(res, IMG_1x6 * cover)
    res = ref.process_image(IMG_1x6, py_add_mean, (1, 3), (1, 2), edge="pad")
    # pixel 1 (value 1) in patch [2,1,2] (mean 5/3): 1 + 5/3
    # pixel 2 (value 2) in [2,1,2] and [2,3,4]: ((2+5/3) + (2+3)) / 2
    assert res[0, 0] == pytest.approx(1 + 5 / 3)
    assert res[0, 1] == pytest.approx(((2 + 5 / 3) + (2 + 3)) / 2)
    assert res[0, 5] == pytest.approx(((6 + 5) + (6 + 5)) / 2)
    res = ref.process_image(
        IMG_1x6, py_add_mean, (1, 3), (1, 2), edge="pad", pad_mode="constant", pad_value=10
    )
    # [10,1,2] mean 13/3 covers pixel 0 alone
    assert res[0, 0] == pytest.approx(1 + 13 / 3)


def test_window_weighted_mean_hand_computed():
    # triangle window for p=3: [0.5, 1, 0.5]
    np.testing.assert_allclose(ref.window_1d("triangle", 3), [0.5, 1, 0.5])
    res = ref.process_image(IMG_1x6, py_add_mean, (1, 3), (1, 2), edge="cover", window="triangle")
    # pixel 2: from patch0 (last pos, w=.5, value 5) and patch1 (first, w=.5, 7)
    # pixel 3: patch1 middle (w=1, 8), patch2 first (w=.5, 9)
    assert res[0, 2] == pytest.approx(6)
    assert res[0, 3] == pytest.approx((8 + 0.5 * 9) / 1.5)
    res = ref.process_image(
        IMG_1x6, py_add_mean, (1, 3), (1, 2), edge="cover", window="triangle", reduce="sum"
    )
    assert res[0, 3] == pytest.approx(8 + 0.5 * 9)


def test_windows_match_formulas():
    p = 7
    n = np.arange(p)
    np.testing.assert_allclose(ref.window_1d("boxcar", p), np.ones(p))
    np.testing.assert_allclose(
        ref.window_1d("hann", p), 0.5 - 0.5 * np.cos(2 * np.pi * (n + 1) / (p + 1))
    )
    np.testing.assert_allclose(
        ref.window_1d("hamming", p), 0.54 - 0.46 * np.cos(2 * np.pi * n / (p - 1))
    )
    np.testing.assert_allclose(
        ref.window_1d("gaussian", p, 1.5), np.exp(-0.5 * ((n - 3) / 1.5) ** 2)
    )
    for name in ref.WINDOWS:
        for q in (1, 2, 3, 8):
            w = ref.window_1d(name, q, 1.0)
            assert w.shape == (q,) and np.all(w > 0), (name, q, w)
    w2 = ref.window_weights("hann", (3, 4))
    np.testing.assert_allclose(w2, np.outer(ref.window_1d("hann", 3), ref.window_1d("hann", 4)))
    wg = ref.window_weights("gaussian", (3, 5), sigma=(1.0, 2.0))
    np.testing.assert_allclose(
        wg,
        np.outer(
            scipy.signal.windows.gaussian(3, std=1.0), scipy.signal.windows.gaussian(5, std=2.0)
        ),
    )


def test_unpatchify_hand_computed():
    patches = np.array([[[1.0, 1, 1]], [[2, 2, 2]], [[4, 4, 4]]])  # (3, 1, 3) flat
    res = ref.unpatchify(patches, (1, 6), (1, 2))
    np.testing.assert_array_equal(res, [[1, 1, 1.5, 3, 3, 4]])
    grid = patches.reshape(1, 3, 1, 3)
    np.testing.assert_array_equal(ref.unpatchify(grid, (1, 6), (1, 2)), res)
    with pytest.raises(ValueError):
        ref.unpatchify(patches[:2], (1, 6), (1, 2))


def test_patchify_hand_computed():
    img = np.arange(12).reshape(3, 4)
    v = ref.patchify(img, (2, 2), (1, 2))
    assert v.shape == (2, 2, 2, 2)
    np.testing.assert_array_equal(v[1, 1], [[6, 7], [10, 11]])


def test_covering_mask():
    geom = ref.geometry((1, 6), (1, 3), (1, 2), "cover")
    np.testing.assert_array_equal(ref.covering_mask(geom, (0, 3))[0], [0, 0, 1, 1, 1, 1])
    np.testing.assert_array_equal(ref.covering_mask(geom, (0, 0))[0], [1, 1, 1, 0, 0, 0])


def test_patchgrid_coverage_counts():
    g = ref.PatchGrid((1, 6), (1, 3), (1, 2))
    np.testing.assert_array_equal(g.coverage(), [[1, 1, 2, 2, 2, 1]])
    g = ref.PatchGrid((1, 6), (1, 3), (1, 2), "valid")
    np.testing.assert_array_equal(g.coverage(), [[1, 1, 2, 1, 1, 0]])
    g = ref.PatchGrid((1, 6), (1, 3), (1, 2), "pad")
    assert g.pad_width == ((0, 0), (1, 2))
    np.testing.assert_array_equal(g.coverage(), [[1, 2, 1, 2, 1, 2]])
    assert g.origins[1].tolist() == [0, 2, 4, 6]


# --------------------------------------------------------------------------
# peers
# --------------------------------------------------------------------------
@given(seed=seeds, data=st.data())
def test_reference_vs_sklearn_stride1(seed, data):
    rng = np.random.default_rng(seed)
    shape = (data.draw(st.integers(1, 12)), data.draw(st.integers(1, 12)))
    patch = (data.draw(st.integers(1, shape[0])), data.draw(st.integers(1, shape[1])))
    channels = data.draw(st.sampled_from([None, 3]))  # sklearn squeezes C=1
    full = shape if channels is None else (*shape, channels)
    img = rng.random(full)
    sk = extract_patches_2d(img, patch)
    mine = ref.patchify(img, patch)
    np.testing.assert_array_equal(mine.reshape(sk.shape), sk)
    # the contract's callbacks see the same patch data; process a copy
    processed = np.stack([p * 2.5 + p.mean() for p in sk])
    expected = reconstruct_from_patches_2d(processed, full)
    got = ref.process_image(img, py_scale_add_mean, patch, args=(2.5,))
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)
    ca = None if channels is None else -1
    np.testing.assert_allclose(
        ref.unpatchify(processed, full, channel_axis=ca), expected, rtol=1e-12
    )


@pytest.mark.torch
@given(seed=seeds, g=geometry_nd(ndim=2, edge="valid", max_size=15))
def test_reference_vs_torch_fold(seed, g):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    rng = np.random.default_rng(seed)
    img = rng.random(g["shape"])
    geom = ref.geometry(img.shape, g["patch"], g["step"], "valid")
    t = torch.from_numpy(img)[None, None]
    cols = F.unfold(t, geom.patch, stride=geom.step)  # (1, p0*p1, L)
    pt = cols[0].T.reshape(-1, *geom.patch).numpy()
    np.testing.assert_array_equal(ref.patchify(img, g["patch"], g["step"]).reshape(pt.shape), pt)
    out_cols = torch.from_numpy(
        np.stack([p * 0.5 + p.mean() for p in pt]).reshape(len(pt), -1).T.copy()
    )[None]
    num = F.fold(out_cols, img.shape, geom.patch, stride=geom.step)
    den = F.fold(torch.ones_like(out_cols), img.shape, geom.patch, stride=geom.step)
    expected = (num / den)[0, 0].numpy()
    got = ref.process_image(
        img, py_scale_add_mean, g["patch"], g["step"], args=(0.5,), edge="valid"
    )
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12, equal_nan=True)


def py_weighted(patch, w):
    return float(np.sum(patch * w))


@pytest.mark.parametrize("mode", ref.PAD_MODES)
@pytest.mark.parametrize("patch", [(3, 3), (2, 5), (4, 1), (1, 1)])
def test_reference_map_patches_vs_generic_filter(mode, patch, rng):
    img = rng.random((7, 9))
    w = rng.random(patch)

    def f(values):
        return py_weighted(values.reshape(patch), w)

    gf = ndi.generic_filter(img, f, size=patch, mode=ref.NUMPY_TO_SCIPY_MODE[mode], cval=2.5)
    got = ref.map_patches(
        img, py_weighted, patch, args=(w,), edge="pad", pad_mode=mode, pad_value=2.5
    )
    np.testing.assert_allclose(got, gf, rtol=1e-12)
    got2 = ref.map_patches(
        img, py_weighted, patch, (2, 3), args=(w,), edge="pad", pad_mode=mode, pad_value=2.5
    )
    np.testing.assert_allclose(got2, gf[::2, ::3], rtol=1e-12)
    valid = ref.map_patches(img, py_weighted, patch, args=(w,), edge="valid")
    g0, g1 = valid.shape
    np.testing.assert_allclose(
        valid,
        gf[patch[0] // 2 : patch[0] // 2 + g0, patch[1] // 2 : patch[1] // 2 + g1],
        rtol=1e-12,
    )


def test_reference_identity_roundtrip_with_windows(rng):
    img = rng.random((11, 13))
    for window in (None, *ref.WINDOWS):
        res = ref.process_image(img, py_identity, (4, 5), (2, 3), window=window, sigma=1.3)
        np.testing.assert_allclose(res, img, rtol=1e-12)
