"""Engine v2 contract: read-only C-contiguous patches, flat loops, initialised ``out``,
``out_channels``, freed callbacks, bounded memory with non-separable windows, and safe
concurrent calls under numba's workqueue layer."""

import gc
import os
import subprocess
import sys
import textwrap
import tracemalloc
import weakref

import numpy as np
import pytest
import reference as ref
from numba import njit

import patchjit


@njit
def flat_scale(patch, out, a):
    # a flat loop over the contiguous patch: impossible on strided views
    p = patch.reshape(patch.size)
    o = out.ravel()
    for q in range(p.size):
        o[q] = a * p[q]


def _np_flat_scale(patch, out, a):
    out[...] = a * patch


flat_scale.reference = _np_flat_scale


@njit
def corner_only(patch, out):
    out.ravel()[0] = patch.ravel()[0]


@njit
def writes_patch(patch, out):
    patch[0, 0] = 1.0


@njit
def returns_value(patch, out):
    return 1.0


@njit
def grey_and_sum(patch, out):
    # RGB (or anything) -> 2 channels: the channel mean and the channel sum
    for i in range(patch.shape[0]):
        for j in range(patch.shape[1]):
            s = 0.0
            for c in range(patch.shape[2]):
                s += patch[i, j, c]
            out[i, j, 0] = s / patch.shape[2]
            out[i, j, 1] = s


def _np_grey_and_sum(patch, out):
    out[..., 0] = patch.mean(axis=-1)
    out[..., 1] = patch.sum(axis=-1)


grey_and_sum.reference = _np_grey_and_sum


@njit
def to_k(patch, out):
    # grey -> K channels: patch * (k + 1)
    p = patch.ravel()
    o = out.reshape((p.size, out.shape[-1]))
    for q in range(p.size):
        for k in range(o.shape[1]):
            o[q, k] = p[q] * (k + 1)


def _np_to_k(patch, out):
    out[...] = patch[..., None] * np.arange(1, out.shape[-1] + 1)


to_k.reference = _np_to_k


@pytest.mark.parametrize(
    "shape, patch, step, kw",
    [
        ((37,), 5, 2, {}),
        ((23, 31), (4, 6), (1, 2), {}),
        ((23, 31), 5, 3, {"edge": "pad", "pad_mode": "symmetric"}),
        ((19, 17, 3), (3, 5), 2, {"window": "hann"}),
        ((11, 12, 13), (3, 4, 2), (2, 1, 2), {"reduce": "max"}),
        ((21, 25), (4, 3), 1, {"reduce": "sum", "edge": "valid"}),
    ],
)
def test_flat_loop_callback(rng, shape, patch, step, kw):
    img = rng.random(shape)
    got = patchjit.process_image(img, flat_scale, patch, step, args=(1.5,), **kw)
    want = ref.process_image(img, flat_scale, patch, step, args=(1.5,), **kw)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_flat_loop_map_patches(rng):
    @njit
    def flat_sum(patch):
        s = 0.0
        for v in patch.reshape(patch.size):
            s += v
        return s

    img = rng.random((20, 17, 3))
    got = patchjit.map_patches(img, flat_sum, (4, 3), (2, 1))
    want = patchjit.patchify(img, (4, 3), (2, 1)).sum(axis=(2, 3, 4))
    np.testing.assert_allclose(got, want, rtol=1e-12)


def test_writing_into_patch_is_a_clear_type_error():
    with pytest.raises(TypeError, match="patch is read-only"):
        patchjit.process_image(np.ones((8, 8)), writes_patch, 3)


def test_returning_a_value_is_a_type_error():
    with pytest.raises(TypeError, match="must fill `out` and return None"):
        patchjit.process_image(np.ones((8, 8)), returns_value, 3)


def test_unwritten_out_is_nan_never_stale(rng):
    img = rng.random((40, 50))
    a = patchjit.process_image(img, corner_only, 3, threads=1)
    b = patchjit.process_image(img, corner_only, 3, threads=2)
    np.testing.assert_array_equal(a, b)  # same bits (NaN == NaN here)
    # only pixel (0, 0) is covered by nothing but its patch's corner
    assert a[0, 0] == img[0, 0]
    assert np.isnan(a.ravel()[1:]).all()


@pytest.mark.parametrize(
    "shape, patch, step, kw, func, k",
    [
        ((21, 19, 3), (4, 5), (2, 1), {}, grey_and_sum, 2),
        ((3, 21, 19), (4, 5), 2, {"channel_axis": 0, "window": "triangle"}, grey_and_sum, 2),
        ((23, 17), (3, 4), 1, {}, to_k, 1),
        ((23, 17), (3, 4), (2, 3), {"edge": "pad"}, to_k, 3),
        ((9, 10, 11), 3, 2, {"reduce": "max"}, to_k, 2),
    ],
)
def test_out_channels(rng, shape, patch, step, kw, func, k):
    img = rng.random(shape)
    got = patchjit.process_image(img, func, patch, step, out_channels=k, **kw)
    want = ref.process_image(img, func, patch, step, out_channels=k, **kw)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_out_channels_bad_values():
    with pytest.raises(ValueError, match="out_channels must be >= 1"):
        patchjit.process_image(np.ones((8, 8)), to_k, 3, out_channels=0)
    with pytest.raises(TypeError, match="out_channels must be an int"):
        patchjit.process_image(np.ones((8, 8)), to_k, 3, out_channels=2.0)


@pytest.mark.slow
def test_plain_python_callback_is_freed():
    def scale(patch, out):
        for i in range(patch.shape[0]):
            for j in range(patch.shape[1]):
                out[i, j] = 2.0 * patch[i, j]

    img = np.ones((12, 12))
    np.testing.assert_array_equal(patchjit.process_image(img, scale, 3), 2 * img)
    dispatcher = scale.__dict__["__patchjit_dispatcher__"]
    n = len(dispatcher.overloads)
    patchjit.process_image(img, scale, 3)  # the same function object compiles once
    assert len(dispatcher.overloads) == n
    patchjit.map_patches(img, lambda p: p[0, 0], 3)
    f_ref, d_ref = weakref.ref(scale), weakref.ref(dispatcher)
    del scale, dispatcher
    gc.collect()
    assert f_ref() is None and d_ref() is None


def test_nonseparable_window_peak_memory(rng):
    # large enough that the engine's fixed per-wave scratch (8 MB) is not the story
    img = rng.random((2048, 2048), dtype=np.float32)
    win = rng.random((5, 7)) + 0.5  # not an outer product
    # warm-up large enough to compile the same (parallel) kernels as the measured call
    patchjit.process_image(img[:512, :1024], flat_scale, (5, 7), window=win, args=(1.0,))
    tracemalloc.start()
    try:
        got = patchjit.process_image(img, flat_scale, (5, 7), window=win, args=(1.0,))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak <= 2 * img.nbytes, f"peak {peak / img.nbytes:.2f}x the image"
    np.testing.assert_allclose(got, img, rtol=1e-5)


@pytest.mark.slow
def test_concurrent_calls_under_workqueue():
    code = textwrap.dedent(
        """
        import threading
        import numpy as np, numba, patchjit
        from patchjit import ops

        rng = np.random.default_rng(0)
        img = rng.random((120, 130))
        patches = patchjit.patchify(img, (6, 5), 2)
        jobs = [
            lambda t: patchjit.process_image(img, ops.mean_remove, (6, 5), 2, threads=t),
            lambda t: patchjit.map_patches(img, ops.local_std, 5, threads=t),
            lambda t: patchjit.unpatchify(patches, img.shape, 2, edge="valid", threads=t),
        ]
        want = [job(1) for job in jobs]  # also compiles
        errors = []

        def work(i):
            try:
                for r in range(3):
                    t = (None, 1, 2)[(i + r) % 3]
                    for job, w in zip(jobs, want):
                        np.testing.assert_array_equal(job(t), w)
            except Exception as exc:
                errors.append(repr(exc))

        threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        work(5)  # the main thread runs the parallel kernels meanwhile
        for t in threads:
            t.join()
        assert not errors, errors
        print("layer", numba.threading_layer())
        """
    )
    env = dict(os.environ, NUMBA_THREADING_LAYER="workqueue")
    proc = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "layer workqueue" in proc.stdout
