"""Ctrl-C stops a long run promptly: the engine runs in short waves."""

import _thread
import signal
import threading
import time

import numpy as np
import pytest
from numba import njit

import patchjit


@njit
def slow_identity(patch, out, n):
    # n exact passes (x/2 + x/2 == x), so the result is still the image
    for i in range(patch.shape[0]):
        for j in range(patch.shape[1]):
            out[i, j] = patch[i, j]
    for _ in range(n):
        for i in range(patch.shape[0]):
            for j in range(patch.shape[1]):
                out[i, j] = out[i, j] * 0.5 + patch[i, j] * 0.5


@njit
def slow_mean(patch, n):
    s = 0.0
    for _ in range(n):
        s = 0.0
        for i in range(patch.shape[0]):
            for j in range(patch.shape[1]):
                s += patch[i, j]
    return s / patch.size


def _interrupt_after(seconds, call):
    """Run ``call()`` with a KeyboardInterrupt sent after ``seconds``; return when it stopped."""
    timer = threading.Timer(seconds, _thread.interrupt_main)
    # a shell's background job inherits SIGINT ignored; Python then raises nothing
    old = signal.signal(signal.SIGINT, signal.default_int_handler)
    t0 = time.perf_counter()
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            call()
            time.sleep(30)  # finished before the interrupt arrived: wait for it
    finally:
        timer.cancel()
        signal.signal(signal.SIGINT, old)
    return time.perf_counter() - t0 - seconds


@pytest.mark.parametrize("kind", ["process_image", "map_patches"])
def test_ctrl_c_stops_a_slow_callback_run(kind, rng):
    img = rng.random((600, 600))
    if kind == "process_image":
        run = lambda part, n: patchjit.process_image(part, slow_identity, 8, args=(n,))  # noqa: E731
    else:
        run = lambda part, n: patchjit.map_patches(part, slow_mean, 8, args=(n,))  # noqa: E731
    # calibrate on a corner: choose n so that the whole image would take >= 60 s
    corner = img[:60, :60]
    run(corner, 1)
    t0 = time.perf_counter()
    run(corner, 20)
    per_pass = (time.perf_counter() - t0) / 20 * (img.size / corner.size)
    n = max(20, int(60 / per_pass))
    late = _interrupt_after(1.0, lambda: run(img, n))
    # waves last about 0.25 s; allow a wide margin for a loaded machine
    assert late < 10, f"stopped {late:.1f} s after Ctrl-C"


def test_result_is_exact_after_many_waves(rng):
    # a run cut into many adaptive waves adds every contribution once, in order
    img = rng.random((300, 280))
    got = patchjit.process_image(img, slow_identity, 8, args=(3,))
    np.testing.assert_allclose(got, img, rtol=1e-14, atol=0)


@njit
def spin_identity(patch, out, n):
    # copies the patch after n rounds of busy work (the result is still the image)
    acc = 0.0
    for r in range(n):
        acc += (r % 7) * 1e-300
    p = patch.ravel()
    o = out.ravel()
    for q in range(p.size):
        o[q] = p[q] + acc * 0.0


def test_ctrl_c_stops_a_small_job_promptly(rng):
    # a 330², 8x8 job used to run as one kernel call, deaf to Ctrl-C until the end
    img = rng.random((330, 330))
    patchjit.process_image(img[:40, :40], spin_identity, 8, args=(1,))
    t0 = time.perf_counter()
    patchjit.process_image(img[:40, :40], spin_identity, 8, args=(2000,))
    per_patch = (time.perf_counter() - t0) / 33**2
    n = max(2000, int(2000 * 20 / (per_patch * 323**2)))  # the whole job: >= ~20 s
    late = _interrupt_after(0.5, lambda: patchjit.process_image(img, spin_identity, 8, args=(n,)))
    assert late < 3, f"stopped {late:.1f} s after Ctrl-C"
