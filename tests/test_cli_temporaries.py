"""Temporary files belong to the run that made them: two runs into one folder coexist.

A run deletes only provably stale temporaries (named by patchjit, made on this host
by a process that no longer exists), and only in the folders it writes into.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tifffile

from patchjit import cli
from patchjit._files import TMP_PREFIX, _host, atomic_output, is_stale_temporary

ROOT = str(Path(__file__).resolve().parents[1])


def _run(*argv):
    return cli.main([str(a) for a in argv])


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _input(tmp_path) -> Path:
    src = tmp_path / "in" / "a.tif"
    src.parent.mkdir(parents=True)
    tifffile.imwrite(src, np.arange(12 * 14, dtype=np.uint8).reshape(12, 14))
    return src


def test_atomic_output_names_host_and_process(tmp_path):
    with atomic_output(tmp_path / "x.tif") as tmp:
        assert tmp.name.startswith(f"{TMP_PREFIX}{_host()}-{os.getpid()}-")
        assert tmp.suffix == ".tif"
        assert not is_stale_temporary(tmp)  # this process is alive
    assert not tmp.exists() and (tmp_path / "x.tif").exists()


def test_only_provably_stale_temporaries_are_removed(tmp_path):
    src = _input(tmp_path)
    out = tmp_path / "out"
    (out / "elsewhere").mkdir(parents=True)
    host, dead = _host(), _dead_pid()
    stale = out / f"{TMP_PREFIX}{host}-{dead}-0123456789ab.tif"
    kept = {
        "live run": out / f"{TMP_PREFIX}{host}-{os.getpid()}-00000000aaaa.tif",
        "other host": out / f"{TMP_PREFIX}not-{socket.gethostname()}x-{dead}-0123456789ab.tif",
        "0.2.0 name": out / f"{TMP_PREFIX}0123456789ab.tif",
        "a user's file": out / f"{TMP_PREFIX}notes.txt",
        "folder not written": out / "elsewhere" / f"{TMP_PREFIX}{host}-{dead}-0123456789ab.tif",
    }
    for path in (stale, *kept.values()):
        path.write_bytes(b"partial")
    link = out / f"{TMP_PREFIX}{host}-{dead}-fedcba987654.tif"
    link.symlink_to(src)  # never follow or delete what patchjit did not create as a file
    assert _run("run", src, "-o", out, "--op", "identity", "-q") == 0
    assert (out / "a.tif").exists()
    assert not stale.exists()
    for what, path in kept.items():
        assert path.read_bytes() == b"partial", what
    assert link.is_symlink() and src.exists()


SLOW = """
import numba

@numba.njit
def slow(patch, out):
    acc = 0.0
    for _ in range(5000):
        acc += patch[0, 0] * 1e-9
    out[...] = patch + acc * 0.0
"""


@pytest.mark.slow
def test_second_run_into_the_same_folder_leaves_the_first_alone(tmp_path):
    """Run A writes a large TIFF out of core (its temporary lives for seconds); run B,
    started meanwhile into the same folder, must not delete it."""
    pytest.importorskip("dask")
    big = tmp_path / "a" / "big.tif"
    big.parent.mkdir()
    image = np.random.default_rng(0).integers(0, 256, (2000, 1800)).astype(np.uint8)
    tifffile.imwrite(big, image, tile=(256, 256))  # ~22 MB to process in memory
    (tmp_path / "slowcb.py").write_text(SLOW)
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": ROOT}
    first = subprocess.Popen(
        [sys.executable, "-m", "patchjit.cli", "run", str(big), "-o", str(out), "--func",
         f"{tmp_path / 'slowcb.py'}:slow", "--patch", "4", "--step", "4", "--max-memory", "12MB",
         "--threads", "1", "-q"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 240
        while first.poll() is None and time.monotonic() < deadline:
            if out.is_dir() and any(out.glob(TMP_PREFIX + "*")):
                break
            time.sleep(0.05)
        assert first.poll() is None, "the first run ended before writing; make it slower"
        assert _run("run", _input(tmp_path), "-o", out, "--op", "identity", "-q") == 0
        _, err = first.communicate(timeout=600)
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
    assert first.returncode == 0, err.decode()
    np.testing.assert_array_equal(tifffile.imread(out / "big.tif"), image)
    assert (out / "a.tif").exists()
    assert not list(out.glob(TMP_PREFIX + "*"))
