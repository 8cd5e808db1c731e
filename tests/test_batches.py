"""process_batches / map_batches: any Python function over batches of patches."""

import _thread
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest
import reference as ref
from callbacks import identity, patch_mean, scale_add_mean
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import geometry_nd, random_image, seeds

import patchjit

slow = pytest.mark.slow


# Batch equivalents of the numba callbacks in callbacks.py, written with NumPy.
def batch_identity(batch):
    return batch  # a view of the batch itself: merged before its slot is reused


def batch_scale_add_mean(batch, a=0.5):
    return a * batch + batch.mean(axis=tuple(range(1, batch.ndim)), keepdims=True)


def batch_patch_mean(batch):
    return batch.mean(axis=tuple(range(1, batch.ndim)))


def _tol(dtype):
    return dict(rtol=1e-5, atol=1e-5) if np.dtype(dtype) == np.float32 else dict(rtol=1e-11)


# --- equality with process_image / map_patches ---------------------------------------


@settings(max_examples=12, deadline=None)
@given(
    geo=geometry_nd(ndim=2, edges=("cover", "valid", "pad"), max_size=30),
    window=st.sampled_from([None, "hann", "gaussian"]),
    reduce=st.sampled_from(["mean", "sum", "max", "min"]),
    batch_size=st.integers(1, 40),
    seed=seeds,
)
def test_matches_process_image_2d(geo, window, reduce, batch_size, seed):
    if reduce in ("max", "min"):
        window = None
    img = random_image(np.random.default_rng(seed), geo["shape"], np.float32)
    kw = dict(edge=geo["edge"], window=window, reduce=reduce)
    got = patchjit.process_batches(
        img, batch_scale_add_mean, geo["patch"], geo["step"], batch_size=batch_size, **kw
    )
    want = patchjit.process_image(img, scale_add_mean, geo["patch"], geo["step"], args=(0.5,), **kw)
    scale = 1 + np.abs(np.nan_to_num(want)).max()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * scale, equal_nan=True)


@pytest.mark.parametrize(
    ("shape", "patch", "step", "channel_axis"),
    [
        ((37,), (5,), 2, None),
        ((23, 3), (6,), 4, None),  # 1-D with 3 channels
        ((19, 17, 2), (5, 4), (2, 3), None),
        ((2, 19, 17), (5, 4), (2, 3), 0),
        pytest.param((9, 11, 10), (4, 3, 5), (2, 2, 3), None, marks=slow),
        pytest.param((9, 11, 10, 2), (4, 3, 5), 2, None, marks=slow),
    ],
)
@pytest.mark.parametrize("edge", ["cover", "valid", "pad"])
def test_matches_process_image_nd(shape, patch, step, channel_axis, edge, rng):
    img = random_image(rng, shape, np.float64)
    kw = dict(edge=edge, channel_axis=channel_axis, window="triangle")
    got = patchjit.process_batches(img, batch_identity, patch, step, batch_size=3, **kw)
    want = patchjit.process_image(img, identity, patch, step, **kw)
    np.testing.assert_allclose(got, want, rtol=1e-12, equal_nan=True)
    assert got.dtype == want.dtype == np.float64


@pytest.mark.parametrize("dtype", [np.uint8, np.int32, np.bool_, np.float32])
def test_dtypes_and_batch_dtype(dtype, rng):
    img = random_image(rng, (21, 18), dtype)
    acc = np.float64 if np.dtype(dtype) == np.int32 else np.float32
    seen = []

    def func(batch):
        seen.append((batch.dtype, batch.flags.c_contiguous, batch.shape[1:]))
        return batch

    got = patchjit.process_batches(img, func, (5, 4), 3, batch_size=4)
    want = patchjit.process_image(img, identity, (5, 4), 3)
    assert got.dtype == want.dtype
    # same values; the engine adds a pixel's contributions column by column, the batch
    # merge in patch order, so float32 sums may differ in the last bit
    np.testing.assert_allclose(got, want, rtol=4 * np.finfo(got.dtype).eps)
    assert set(seen) == {(np.dtype(acc), True, (5, 4))}


def test_map_batches_matches_map_patches(rng):
    img = random_image(rng, (30, 26), np.float32)
    for edge, step in [("valid", 3), ("cover", (4, 5)), ("pad", 1)]:
        got = patchjit.map_batches(img, batch_patch_mean, (6, 5), step, edge=edge, batch_size=7)
        want = patchjit.map_patches(img, patch_mean, (6, 5), step, edge=edge)
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=1e-5)


def test_map_batches_reference_channels_and_int_dtype(rng):
    img = random_image(rng, (17, 15, 3), np.uint8)
    got = patchjit.map_batches(img, batch_patch_mean, (4, 4), 2, dtype=np.uint8)
    want = ref.map_patches(img, lambda p: p.astype(np.float32).mean(), (4, 4), 2, dtype=np.uint8)
    np.testing.assert_array_equal(got, want)


# --- out_channels against the plain-numpy reference ----------------------------------


def to_grey(batch):
    return batch.mean(axis=-1, keepdims=True) * 2.0


def grey_to_three(batch):
    return np.stack([batch, batch**2, -batch], axis=-1)


@pytest.mark.parametrize(
    ("shape", "func", "k", "channel_axis", "window"),
    [
        ((20, 17, 3), to_grey, 1, None, None),
        ((3, 20, 17), to_grey, 1, 0, "hann"),
        ((20, 17), grey_to_three, 3, None, "gaussian"),
        ((33,), grey_to_three, 3, None, None),
        ((8, 9, 7, 2), to_grey, 1, None, "triangle"),
    ],
)
@pytest.mark.parametrize("edge", ["cover", "valid", "pad"])
def test_out_channels_reference(shape, func, k, channel_axis, window, edge, rng):
    img = random_image(rng, shape, np.float64)
    nsp = len(shape) - (1 if len(shape) in (3, 4) and func is to_grey else 0)
    patch = (5, 4, 3)[:nsp] if nsp > 1 else (5,)
    kw = dict(edge=edge, channel_axis=channel_axis, window=window)
    got = patchjit.process_batches(
        img, func, patch, 2, out_channels=k, batch_size=5, pad_mode="symmetric", **kw
    )
    want = ref.process_batches_float(
        img, func, patch, 2, out_channels=k, pad_mode="symmetric", **kw
    )
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-10, equal_nan=True)


def test_out_channels_result_layout():
    img = np.ones((3, 10, 12))
    got = patchjit.process_batches(img, to_grey, (4, 4), channel_axis=0, out_channels=1)
    assert got.shape == (1, 10, 12)
    got = patchjit.process_batches(np.ones((10, 12)), grey_to_three, 4, out_channels=3)
    assert got.shape == (10, 12, 3)
    np.testing.assert_allclose(got, np.broadcast_to([1.0, 1.0, -1.0], (10, 12, 3)))


# --- determinism ---------------------------------------------------------------------


@pytest.mark.parametrize("window", [None, "hann"])
def test_same_bits_any_batch_size_and_threads(window, rng):
    img = random_image(rng, (53, 61, 2), np.float32)
    kw = dict(window=window, edge="pad", overlap=0.6)
    first = None
    for threads in (1, 2):
        for bs in (1, 3, 16, 97, 10_000):
            got = patchjit.process_batches(
                img, batch_scale_add_mean, (9, 11), batch_size=bs, threads=threads, **kw
            )
            if first is None:
                first = got
            else:
                assert np.array_equal(got, first), (threads, bs)


def test_out_and_progress(rng):
    img = random_image(rng, (40, 30), np.float32)
    out = np.empty((40, 30), dtype=np.int16)
    res = patchjit.process_batches(
        img * 100, batch_identity, 8, overlap=0.5, out=out, progress=True, batch_size=5
    )
    assert res is out
    np.testing.assert_array_equal(out, np.rint(img * 100).astype(np.int16))


# --- bad input -----------------------------------------------------------------------


def test_wrong_shape_names_both_shapes():
    img = np.zeros((20, 20), np.float32)
    with pytest.raises(ValueError, match=r"returned shape \(4, 5, 5\).*expected \(4, 6, 6\)"):
        patchjit.process_batches(img, lambda b: b[:, :5, :5], 6, batch_size=4)
    with pytest.raises(ValueError, match=r"returned shape \(4, 6, 6\).*expected \(4,\)"):
        patchjit.map_batches(img, lambda b: b, 6, batch_size=4)
    with pytest.raises(ValueError, match=r"expected \(4, 6, 6, 2\)"):
        patchjit.process_batches(img, lambda b: b, 6, batch_size=4, out_channels=2)


@pytest.mark.parametrize(
    "value", [None, "text", np.zeros((4, 6, 6), complex), np.array([object()] * 4)]
)
def test_non_numeric_result_is_type_error(value):
    img = np.zeros((20, 20), np.float32)
    with pytest.raises(TypeError, match=r"func must return"):
        patchjit.process_batches(img, lambda b: value, 6, batch_size=4)


def test_func_raises_propagates_and_out_untouched():
    img = np.ones((40, 40), np.float32)
    out = np.full((40, 40), 7.0, np.float32)
    calls = []

    def func(batch):
        calls.append(len(batch))
        if len(calls) == 3:
            raise RuntimeError("boom in func")
        return batch

    with pytest.raises(RuntimeError, match="boom in func"):
        patchjit.process_batches(img, func, 8, overlap=0.5, batch_size=4, out=out)
    assert len(calls) == 3
    assert np.all(out == 7.0)


def test_keyboard_interrupt_between_batches():
    img = np.ones((40, 40), np.float32)
    out = np.full((40, 40), 7.0, np.float32)
    calls = []

    def func(batch):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return batch

    with pytest.raises(KeyboardInterrupt):
        patchjit.process_batches(img, func, 8, overlap=0.5, batch_size=4, out=out)
    assert len(calls) == 2 and np.all(out == 7.0)


def test_ctrl_c_signal_stops_promptly():
    img = np.ones((64, 64), np.float32)
    out = np.full((64, 64), 7.0, np.float32)

    def slow_func(batch):
        time.sleep(0.05)
        return batch

    # compile everything this call uses before the timer starts
    patchjit.process_batches(img, lambda b: b, 8, step=1, batch_size=2, out=out.copy())
    old = signal.signal(signal.SIGINT, signal.default_int_handler)
    timer = threading.Timer(0.3, _thread.interrupt_main)
    t0 = time.perf_counter()
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            patchjit.process_batches(img, slow_func, 8, step=1, batch_size=2, out=out)
            time.sleep(30)
    finally:
        timer.cancel()
        signal.signal(signal.SIGINT, old)
    assert time.perf_counter() - t0 < 5
    assert np.all(out == 7.0)
    assert threading.active_count() == 1 or not any(
        t.name.startswith("patchjit-batches") for t in threading.enumerate()
    )


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        (dict(overlap=1.0), ValueError, r"overlap must be in \[0, 1\)"),
        (dict(overlap=-0.1), ValueError, r"overlap must be in \[0, 1\)"),
        (dict(overlap=0.5, step=2), ValueError, "either step or overlap"),
        (dict(batch_size=0), ValueError, "batch_size must be >= 1"),
        (dict(batch_size=2.5), TypeError, "batch_size must be an int"),
        (dict(out_channels=0), ValueError, "out_channels must be >= 1"),
        (dict(reduce="max", window="hann"), ValueError, "cannot be combined"),
        (dict(out=np.zeros((5, 5))), ValueError, "out has shape"),
    ],
)
def test_bad_arguments(kwargs, exc, match):
    img = np.zeros((20, 20), np.float32)
    step = kwargs.pop("step", None)
    with pytest.raises(exc, match=match):
        patchjit.process_batches(img, batch_identity, 6, step, **kwargs)


def test_reused_output_buffer_is_refused():
    buf = np.empty((4, 6, 6), np.float32)

    def reuses(batch):
        buf[: len(batch)] = batch
        return buf[: len(batch)]

    with pytest.raises(ValueError, match="previous result"):
        patchjit.process_batches(np.ones((20, 20), np.float32), reuses, 6, batch_size=4)


def test_func_not_callable():
    with pytest.raises(TypeError, match="callable"):
        patchjit.process_batches(np.zeros((8, 8)), "identity", 4)
    with pytest.raises(TypeError, match="callable"):
        patchjit.map_batches(np.zeros((8, 8)), None, 4)


# --- memory --------------------------------------------------------------------------

MEMORY_SCRIPT = textwrap.dedent(
    """
    import tracemalloc, numpy as np, patchjit
    img = np.random.default_rng(0).random((2048, 2048), dtype=np.float32)
    f = lambda b: b * 1.5
    patchjit.process_batches(img[:256, :256], f, 64, overlap=0.25, batch_size=16)  # compile
    tracemalloc.start()
    patchjit.process_batches(img, f, 64, overlap=0.25, batch_size=16)
    print(tracemalloc.get_traced_memory()[1])
    """
)


@slow
def test_memory_bound_large_image():
    """Extra memory: the result-sized accumulator plus a few batches, not per patch."""
    res = subprocess.run(
        [sys.executable, "-c", MEMORY_SCRIPT], capture_output=True, text=True, check=True
    )
    peak = int(res.stdout.split()[-1])
    image = 2048 * 2048 * 4
    batch = 16 * 64 * 64 * 4
    # about 2.5k patches: a per-patch copy would need ~40 MB more than this bound
    assert peak <= 1.2 * image + 6 * batch, (peak, image, batch)


# --- the example ---------------------------------------------------------------------


@pytest.mark.torch
@slow
def test_torch_example_agrees_with_monai(capsys):
    pytest.importorskip("torch")
    pytest.importorskip("monai")
    import runpy
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "examples" / "torch_model.py"
    main = runpy.run_path(str(path), run_name="example")["main"]
    assert main(["--size", "192", "--patch", "32", "--batch", "8"]) == 0
    assert "max |patchjit - MONAI|" in capsys.readouterr().out


# --- random geometries against the reference, timing, nested parallel kernels --------


@st.composite
def batch_cases(draw):
    ndim = draw(st.integers(1, 3))
    geo = draw(geometry_nd(ndim=ndim, edges=("cover", "valid", "pad"), max_size=14))
    channels = draw(st.sampled_from([None, 1, 2]))
    out_channels = draw(st.sampled_from([None, 1, 3]))
    reduce = draw(st.sampled_from(["mean", "sum", "max", "min"]))
    window = None if reduce in ("max", "min") else draw(st.sampled_from([None, "hamming"]))
    return geo, channels, out_channels, reduce, window


@settings(max_examples=15, deadline=None)
@given(case=batch_cases(), batch_size=st.integers(1, 9), seed=seeds)
def test_random_geometries_match_reference(case, batch_size, seed):
    geo, channels, k, reduce, window = case
    shape, patch = geo["shape"], geo["patch"]
    if channels is not None:
        shape = (*shape, channels)
        patch = tuple(patch) if not isinstance(patch, int) else (patch,) * len(geo["shape"])
    img = random_image(np.random.default_rng(seed), shape, np.float64)
    has_c = channels is not None

    def func(batch):
        if k is None:
            return 2 * batch - 1
        summed = batch.sum(axis=-1, keepdims=True) if has_c else batch[..., None]
        return summed * np.arange(1, k + 1)

    kw = dict(edge=geo["edge"], window=window, reduce=reduce, out_channels=k)
    got = patchjit.process_batches(img, func, patch, geo["step"], batch_size=batch_size, **kw)
    want = ref.process_batches_float(img, func, patch, geo["step"], **kw)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10, equal_nan=True)


def test_bits_do_not_depend_on_timing(rng):
    img = random_image(rng, (40, 44), np.float32)
    delays = np.random.default_rng(1).random(200) * 0.004

    def jittery(batch, state=[0]):  # noqa: B006 - call counter
        time.sleep(delays[state[0] % 200])
        state[0] += 1
        return batch_scale_add_mean(batch)

    a = patchjit.process_batches(img, jittery, 7, overlap=0.5, batch_size=3, window="hann")
    b = patchjit.process_batches(img, batch_scale_add_mean, 7, overlap=0.5, batch_size=3,
                                 window="hann")  # fmt: skip
    assert np.array_equal(a, b)


def test_func_may_run_numba_parallel_kernels(rng):
    """The background thread runs serial kernels only, so func's own parallel numba
    code never launches at the same time as another parallel region of ours."""
    from numba import njit, prange

    @njit(parallel=True)
    def double(batch):
        out = np.empty_like(batch)
        flat, res = batch.reshape(batch.size), out.reshape(out.size)
        for i in prange(flat.size):
            res[i] = 2 * flat[i]
        return out

    img = random_image(rng, (50, 45), np.float32)
    got = patchjit.process_batches(img, double, 8, overlap=0.5, batch_size=4)
    np.testing.assert_allclose(got, 2 * img, rtol=1e-6)


WORKQUEUE_SCRIPT = textwrap.dedent(
    """
    import numpy as np, numba, patchjit
    from numba import njit, prange

    @njit(parallel=True)
    def double(batch):
        out = np.empty_like(batch)
        f, r = batch.reshape(batch.size), out.reshape(out.size)
        for i in prange(f.size):
            r[i] = 2 * f[i]
        return out

    img = np.random.default_rng(0).random((300, 300), dtype=np.float32)
    for _ in range(3):
        got = patchjit.process_batches(img, double, 16, overlap=0.5, batch_size=4)
    assert numba.threading_layer() == "workqueue"
    print(float(np.abs(got - 2 * img).max()))
    """
)


@slow
def test_workqueue_layer_does_not_abort(tmp_path):
    """Under numba's non-thread-safe workqueue layer, func's parallel kernels run while
    the background thread merges: its kernels must be truly serial (a fresh on-disk
    cache: parallel and serial variants once shared cache files and loaded each
    other's code)."""
    env = dict(os.environ, NUMBA_THREADING_LAYER="workqueue", NUMBA_CACHE_DIR=str(tmp_path))
    res = subprocess.run(
        [sys.executable, "-c", WORKQUEUE_SCRIPT], capture_output=True, text=True, env=env
    )
    assert res.returncode == 0, res.stderr[-2000:]
    assert float(res.stdout.split()[-1]) < 1e-6
