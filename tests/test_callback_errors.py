"""A callback's exception reaches the caller with its own type and message.

The engine calls the user's function through a typed function pointer, which cannot
raise; these tests check that the error still arrives intact from every path (parallel
and serial kernels, process_image, map_patches, the built-in ops' runners, dask tasks,
concurrent calls), under every threading layer numba has here, in fresh processes.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading

import numba
import numpy as np
import pytest

import patchjit

SCRIPT = textwrap.dedent(
    """
    import sys, numpy as np, numba, patchjit

    @numba.njit
    def normalise(patch, out):  # numba's division check: ZeroDivisionError on flat patches
        m = patch.mean()
        s = patch.std()
        for i in range(patch.shape[0]):
            for j in range(patch.shape[1]):
                out[i, j] = (patch[i, j] - m) / s

    @numba.njit
    def too_bright(patch):
        if patch[0, 0] > 1.5:
            raise ValueError("too bright: clip first")
        return patch.sum()

    @numba.njit
    def out_of_range(patch, out, limit):
        for i in range(patch.shape[0]):
            for j in range(patch.shape[1]):
                if patch[i, j] > limit:
                    raise IndexError("value past the lookup table")
                out[i, j] = patch[i, j]

    rng = np.random.default_rng(0)
    cases = []
    for size in (60, 1200):  # below and above the serial-work threshold
        img = rng.random((size, size)).astype(np.float32)
        img[size // 2 : size // 2 + 12, 7:19] = 2.0
        for threads in (None, 1):
            cases += [
                ("process", ZeroDivisionError, "division by zero",
                 lambda img=img, t=threads: patchjit.process_image(img, normalise, 5, threads=t)),
                ("map", ValueError, "too bright: clip first",
                 lambda img=img, t=threads: patchjit.map_patches(img, too_bright, 3, threads=t)),
                ("args", IndexError, "value past the lookup table",
                 lambda img=img, t=threads: patchjit.process_image(
                     img, out_of_range, (4, 6), 2, args=(1.5,), threads=t)),
            ]
    if "dask" in sys.argv:
        import dask.array as da
        img = rng.random((90, 80)).astype(np.float32)
        img[40:50, 30:40] = 2.0
        lazy = da.from_array(img, chunks=(30, 40))
        cases += [
            ("dask process", ZeroDivisionError, "division by zero",
             lambda: patchjit.process_image(lazy, normalise, 5).compute()),
            ("dask map", ValueError, "too bright: clip first",
             lambda: patchjit.map_patches(lazy, too_bright, 3).compute()),
        ]
    for name, kind, message, call in cases:
        try:
            call()
        except kind as exc:
            assert str(exc) == message, (name, str(exc))
            notes = " ".join(getattr(exc, "__notes__", []))
            assert "on patch (" in notes and "origin (" in notes, (name, notes)
        else:
            raise AssertionError(f"{name}: no {kind.__name__}")
    print("layer", numba.threading_layer(), "cases", len(cases))
    """
)


def _layers():
    found = ["workqueue"]
    for layer, module in (("omp", "omppool"), ("tbb", "tbbpool")):
        try:
            __import__(f"numba.np.ufunc.{module}")
        except ImportError:
            continue
        found.append(layer)
    return found


@pytest.mark.parametrize("layer", _layers())
def test_callback_errors_in_fresh_process(layer, tmp_path):
    env = {**os.environ, "NUMBA_THREADING_LAYER": layer, "PATCHJIT_CACHE_DIR": str(tmp_path)}
    try:
        import dask  # noqa: F401

        extra = ["dask"]
    except ImportError:
        extra = []
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, *extra], env=env, capture_output=True, text=True,
        timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"layer {layer}" in proc.stdout
    # numba's "Exception ignored in" reports are kept out of the user's stderr
    assert "Exception ignored" not in proc.stderr, proc.stderr[-3000:]


@numba.njit
def _fails_above(patch, out, limit):
    for i in range(patch.shape[0]):
        for j in range(patch.shape[1]):
            if patch[i, j] > limit:
                raise ValueError("above the limit")
            out[i, j] = patch[i, j]


@numba.njit
def _fails_below(patch, out, limit):
    for i in range(patch.shape[0]):
        for j in range(patch.shape[1]):
            if patch[i, j] < limit:
                raise ZeroDivisionError("below the limit")
            out[i, j] = patch[i, j]


def test_concurrent_calls_get_their_own_error():
    rng = np.random.default_rng(1)
    img = rng.random((300, 300)).astype(np.float32)
    img[200, 100] = 5.0
    img[20, 250] = -5.0
    got = {}

    def run(name, func, limit):
        try:
            for _ in range(3):
                patchjit.process_image(img, func, 7, args=(limit,), threads=1)
        except Exception as exc:
            got[name] = exc

    threads = [
        threading.Thread(target=run, args=("above", _fails_above, 2.0)),
        threading.Thread(target=run, args=("below", _fails_below, -2.0)),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert type(got["above"]) is ValueError and str(got["above"]) == "above the limit"
    assert type(got["below"]) is ZeroDivisionError and str(got["below"]) == "below the limit"


def test_error_names_the_first_failing_patch():
    img = np.zeros((40, 50), dtype=np.float32)
    img[23, 31] = 9.0
    with pytest.raises(ValueError, match="above the limit") as info:
        patchjit.process_image(img, _fails_above, (3, 4), 1, args=(1.0,), threads=1)
    # serial kernels visit patches in order: the first patch holding (23, 31)
    note = " ".join(info.value.__notes__)
    assert "origin (21, 28)" in note, note


def test_results_after_an_error_are_still_right():
    """An error leaves no state behind: the next call on the same callback is exact."""
    img = np.random.default_rng(2).random((64, 64)).astype(np.float32)
    with pytest.raises(ValueError):
        patchjit.process_image(img * 10, _fails_above, 5, args=(1.0,))
    got = patchjit.process_image(img, _fails_above, 5, args=(1.0,))
    np.testing.assert_allclose(got, img, rtol=1e-6)


def test_cli_reports_the_callbacks_own_message(tmp_path):
    from PIL import Image

    (tmp_path / "mycb.py").write_text(
        "import numba\n\n@numba.njit\ndef norm(patch, out):\n"
        "    m = patch.mean()\n    s = patch.std()\n"
        "    for i in range(patch.shape[0]):\n        for j in range(patch.shape[1]):\n"
        "            out[i, j] = (patch[i, j] - m) / s\n"
    )
    img = np.random.default_rng(0).integers(0, 255, (40, 40), np.uint8)
    img[10:30, 10:30] = 7
    Image.fromarray(img).save(tmp_path / "flat.png")
    env = {**os.environ, "PATCHJIT_CACHE_DIR": str(tmp_path / "cache")}
    cmd = [sys.executable, "-m", "patchjit.cli", "run", "flat.png", "-o", "out",
           "--func", "mycb:norm", "--patch", "5"]  # fmt: skip
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300)  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    assert "ZeroDivisionError: division by zero" in proc.stderr
    assert "on patch (" in proc.stderr
    assert "SystemError" not in proc.stderr
    assert not (tmp_path / "out" / "flat.png").exists()
