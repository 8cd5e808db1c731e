"""Several outputs per call (tuples and dicts, each at its own scale and channel count)
and finalize=, against whole-image computations written here (numpy.kron, block means,
argmax of the whole result) and against the single-output calls."""

import numba
import numpy as np
import pytest

import patchjit
import patchjit.ops

RNG = np.random.default_rng(7)
IMG = RNG.random((48, 40)).astype(np.float32)  # multiples of 2 and 4: every scale fits


def up2(b):
    return np.repeat(np.repeat(b, 2, 1), 2, 2)


def down2(b):
    n, h, w = b.shape
    return b.reshape(n, h // 2, 2, w // 2, 2).mean(axis=(2, 4))


def block_mean(img, f):
    h, w = img.shape
    return img.reshape(h // f, f, w // f, f).mean(axis=(1, 3))


@pytest.mark.parametrize("step", [4, 8])
def test_tuple_outputs_at_their_own_scales(step):
    def func(b):
        return b * 2, up2(b), down2(b), (b[..., None] * np.arange(1, 4)).astype(np.float64)

    same, big, small, chans = patchjit.process_batches(IMG, func, 8, step, batch_size=7)
    np.testing.assert_allclose(same, 2 * IMG, atol=1e-6)
    np.testing.assert_allclose(big, np.kron(IMG, np.ones((2, 2))), atol=1e-6)
    np.testing.assert_allclose(small, block_mean(IMG, 2), atol=1e-6)
    assert chans.shape == (*IMG.shape, 3)
    np.testing.assert_allclose(chans, IMG[..., None] * np.arange(1, 4), atol=1e-6)
    assert all(r.dtype == np.float32 for r in (same, big, small, chans))


def test_dict_outputs_keep_keys_and_equal_single_calls():
    def func(b):
        return {"zoom": up2(b), "id": b + 1}

    got = patchjit.process_batches(IMG, func, 8, 4, window="hann")
    assert list(got) == ["zoom", "id"]
    want = patchjit.process_batches(IMG, up2, 8, 4, window="hann", scale=2)
    np.testing.assert_array_equal(got["zoom"], want)
    want = patchjit.process_batches(IMG, lambda b: b + 1, 8, 4, window="hann")
    np.testing.assert_array_equal(got["id"], want)


def test_array_window_resampled_nearest_exact_per_output():
    w = RNG.random((8, 8)) + 0.5
    got = patchjit.process_batches(IMG, lambda b: (b, up2(b * b)), 8, 4, window=w)
    # nearest-exact from 8 to 16 pixels: output pixel i takes weight floor((i + 0.5) / 2)
    w16 = np.repeat(np.repeat(w, 2, 0), 2, 1)
    want = patchjit.process_batches(IMG, lambda b: up2(b * b), 8, 4, window=w16, scale=2)
    np.testing.assert_allclose(got[1], want, rtol=1e-6)
    np.testing.assert_allclose(got[0], IMG, atol=1e-6)


def test_outputs_with_a_margin():
    def func(b):  # the tile's centre, and the tile's centre at x2
        c = b[:, 1:-1, 1:-1]
        return c, up2(c)

    a, b = patchjit.process_batches(IMG, func, 10, 4, margin=1)
    np.testing.assert_allclose(a, IMG, atol=1e-6)
    np.testing.assert_allclose(b, np.kron(IMG, np.ones((2, 2))), atol=1e-6)


def test_rgb_outputs_channels_per_output():
    rgb = RNG.random((32, 24, 3)).astype(np.float32)
    grey, same = patchjit.process_batches(
        rgb, lambda b: (b.mean(-1), b[..., ::-1]), (8, 8), 4, channel_axis=-1
    )
    np.testing.assert_allclose(grey, rgb.mean(-1), atol=1e-6)
    np.testing.assert_allclose(same, rgb[..., ::-1], atol=1e-6)
    chw = np.moveaxis(rgb, -1, 0)
    grey0, same0 = patchjit.process_batches(
        chw, lambda b: (b.mean(-1), b[..., ::-1]), (8, 8), 4, channel_axis=0
    )
    np.testing.assert_allclose(grey0, grey, atol=1e-6)
    np.testing.assert_allclose(same0, np.moveaxis(same, -1, 0), atol=1e-6)


def test_func_is_called_once_per_batch():
    calls = []

    def func(b):
        calls.append(len(b))
        return b, up2(b)

    grid = patchjit.PatchGrid(IMG.shape, 8, 4)
    patchjit.process_batches(IMG, func, 8, 4, batch_size=5)
    assert sum(calls) == grid.n_patches
    assert len(calls) == -(-grid.n_patches // 5)


def test_tuple_of_one_output_per_patch_still_stacks():
    got = patchjit.process_batches(IMG, lambda b: tuple(p * 3 for p in b), 8, 4, batch_size=4)
    np.testing.assert_allclose(got, 3 * IMG, atol=1e-6)


def test_errors_name_the_problem():
    with pytest.raises(ValueError, match=r"margin=1 .with scale=1. would fit"):
        patchjit.process_batches(IMG, lambda b: b[:, 1:-1, 1:-1], 8, 4)
    with pytest.raises(ValueError, match=r"margin=2 .with scale=1. or scale=0.5 would fit"):
        patchjit.process_batches(IMG, down2, 8, 4)
    with pytest.raises(ValueError, match="scale=2 would fit"):
        patchjit.process_batches(IMG, up2, 8, 4)
    with pytest.raises(ValueError, match=r"output 1 has spatial shape .3, 3."):
        patchjit.process_batches(IMG, lambda b: (b, b[:, :3, :3]), 8, 4)
    with pytest.raises(ValueError, match="out cannot be combined with several outputs"):
        patchjit.process_batches(IMG, lambda b: (b, b), 8, 4, out=np.empty_like(IMG))
    with pytest.raises(ValueError, match="scale=2 was given"):
        patchjit.process_batches(IMG, lambda b: (up2(b), b), 8, 4, scale=2)
    state = []

    def flaky(b):  # a tuple first, then a single array
        state.append(1)
        return (b, b) if len(state) == 1 else b

    with pytest.raises(ValueError, match=r"one array was expected|first batch gave 2"):
        patchjit.process_batches(IMG, flaky, 8, 4, batch_size=4)


# --- finalize ------------------------------------------------------------------------

K = 5
MIX = RNG.random((3, K)).astype(np.float32)


def scores(b):  # (n, h, w, 3) -> (n, h, w, K) class scores
    return b @ MIX


@pytest.mark.parametrize("window", [None, "hann"])
def test_finalize_per_output_equals_finalizing_the_whole(window):
    rgb = RNG.random((300, 70, 3)).astype(np.float32)
    kw = {"window": window, "channel_axis": -1}
    full, big = patchjit.process_batches(rgb, lambda b: (scores(b), up2(b[..., 0])), 16, 8, **kw)

    def argmax(x):
        return x.argmax(-1).astype(np.uint8)

    labels, big_f = patchjit.process_batches(
        rgb, lambda b: (scores(b), up2(b[..., 0])), 16, 8, finalize=(argmax, None), **kw
    )
    np.testing.assert_array_equal(labels, argmax(full))
    np.testing.assert_array_equal(big_f, big)
    d = patchjit.process_batches(
        rgb, lambda b: {"s": scores(b), "x": up2(b[..., 0])}, 16, 8,
        finalize={"s": argmax}, **kw,
    )  # fmt: skip
    np.testing.assert_array_equal(d["s"], labels)
    np.testing.assert_array_equal(d["x"], big)
    halves = patchjit.process_batches(
        rgb, lambda b: (scores(b), scores(b)), 16, 8, finalize=argmax, **kw
    )
    np.testing.assert_array_equal(halves[0], labels)
    np.testing.assert_array_equal(halves[1], labels)
    with pytest.raises(ValueError, match="finalize has 1 entries for 2 outputs"):
        patchjit.process_batches(rgb, lambda b: (b, b), 16, 8, finalize=(argmax,), **kw)


@numba.njit
def class_scores(patch, out):
    for i in range(out.shape[0]):
        for j in range(out.shape[1]):
            for k in range(out.shape[2]):
                out[i, j, k] = patch[i + 1, j + 1, k % 3] * (k + 1) - patch[0, 0, 0]


@pytest.mark.parametrize("kw", [{}, {"window": "triangle"}, {"edge": "pad"}])
def test_process_image_finalize_equals_finalizing_the_whole(kw):
    rgb = RNG.random((260, 90, 3)).astype(np.float32)
    args = dict(out_channels=K, margin=1, pad_mode="symmetric", **kw)
    full = patchjit.process_image(rgb, class_scores, (12, 12), 5, **args)
    got = patchjit.process_image(
        rgb, class_scores, (12, 12), 5, finalize=lambda b: b.argmax(-1), **args
    )
    np.testing.assert_array_equal(got, full.argmax(-1))
    with pytest.raises(ValueError, match="out cannot be combined with finalize"):
        patchjit.process_image(
            rgb, class_scores, (12, 12), 5, finalize=np.sum, out=np.empty(full.shape), **args
        )


def test_finalize_with_rows_no_patch_covers():
    # edge="valid": the last rows (and, with step > patch, rows between patches) have
    # no patch; finalize gets them as NaN like the full result has them
    img = np.random.default_rng(0).random((38, 54), dtype=np.float32)
    for patch, step in (((12, 12), (6, 4)), ((4, 4), (6, 6))):
        full = patchjit.process_batches(img, lambda b: b, patch, step, edge="valid")
        got = patchjit.process_batches(
            img, lambda b: b, patch, step, edge="valid", finalize=lambda x: x
        )
        np.testing.assert_array_equal(got, full)
        assert np.isnan(got[-2:]).all()
        full = patchjit.process_image(img, patchjit.ops.identity, patch, step, edge="valid")
        got = patchjit.process_image(
            img, patchjit.ops.identity, patch, step, edge="valid", finalize=lambda x: x
        )
        np.testing.assert_array_equal(got, full)


@pytest.mark.parametrize("height, width", [(60, 12), (48, 40), (72, 12)])
def test_finalize_dropping_a_leading_channel_axis(height, width):
    # channels first: argmax over axis 0 drops the channel axis; blocks join on rows
    img = np.random.default_rng(1).random((3, height, width), dtype=np.float32)

    def f(b):
        return np.concatenate([b, b**2], -1)

    kw = {"channel_axis": 0, "out_channels": 6}
    full = patchjit.process_batches(img, f, 8, 4, **kw)
    got = patchjit.process_batches(img, f, 8, 4, finalize=lambda b: b.argmax(0), **kw)
    np.testing.assert_array_equal(got, full.argmax(0))
    kept = patchjit.process_batches(img, f, 8, 4, finalize=lambda b: b * 2, **kw)
    np.testing.assert_array_equal(kept, full * 2)


def test_finalize_for_several_outputs_refused_where_there_is_one():
    img = np.random.default_rng(2).random((40, 40), dtype=np.float32)
    with pytest.raises(TypeError, match="finalize is a dict"):
        patchjit.process_batches(img, lambda b: b, 8, 4, finalize={"x": lambda t: t})
    with pytest.raises(TypeError, match="finalize must be callable, got tuple"):
        patchjit.process_image(img, patchjit.ops.identity, 8, 4, finalize=(lambda t: t,))
