"""``patchjit run --jobs N``: a dying worker fails its own file only; Ctrl-C stops at once.

Workers run a ``--batch`` function from a module written here: identity on every
file, except that it kills its own process (``os._exit``, SIGKILL or a segfault) on
the one image filled with :data:`CRASH`, or sleeps on every file for the interrupt
tests. Outputs are checked against the PNGs Pillow wrote.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from patchjit import cli
from patchjit._files import TMP_PREFIX

ROOT = str(Path(__file__).resolve().parents[1])
CRASH = 77

FUNCS = textwrap.dedent(f"""
    import ctypes, os, signal, time
    from pathlib import Path

    def _crash_on_marker(batch, how):
        if (batch == {CRASH}).all():
            if how == "exit":
                os._exit(3)
            if how == "sigkill":
                os.kill(os.getpid(), signal.SIGKILL)
            ctypes.string_at(0)  # segfault, as a broken C extension would
        return batch

    def crash_exit(batch):
        return _crash_on_marker(batch, "exit")

    def crash_sigkill(batch):
        return _crash_on_marker(batch, "sigkill")

    def crash_segfault(batch):
        return _crash_on_marker(batch, "segfault")

    def sleepy(batch):
        Path(os.environ["MARKERS"], str(os.getpid())).touch()
        time.sleep(60)
        return batch
""")


def _images(folder: Path, n: int, crash_at: int | None) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True)
    images = {}
    for i in range(n):
        image = rng.integers(100, 256, (16, 20)).astype(np.uint8)
        if i == crash_at:
            image[:] = CRASH
        Image.fromarray(image).save(folder / f"img{i}.png")
        images[f"img{i}.png"] = image
    return images


@pytest.mark.parametrize(
    "how, crash_at, jobs, signal_text",
    [("exit", 0, 2, "exit code 3"), ("sigkill", 5, 2, "SIGKILL"),
     ("segfault", 0, 8, "SIGSEGV")],
)  # fmt: skip
def test_a_dying_worker_fails_its_file_only(tmp_path, capsys, how, crash_at, jobs, signal_text):
    (tmp_path / "funcs.py").write_text(FUNCS)
    images = _images(tmp_path / "in", 6, crash_at)
    out = tmp_path / "out"
    argv = ["run", tmp_path / "in", "-o", out, "--func", f"{tmp_path / 'funcs.py'}:crash_{how}",
            "--batch", "8", "--patch", "4", "--step", "4", "--jobs", jobs, "-q"]  # fmt: skip
    assert cli.main([str(a) for a in argv]) == cli.EXIT_FAILED
    captured = capsys.readouterr()
    assert "done 5, skipped 0, failed 1" in captured.out
    crashed = f"img{crash_at}.png"
    assert f"{crashed}: worker process died while processing it" in captured.err
    assert signal_text in captured.err
    assert sorted(p.name for p in out.iterdir()) == sorted(set(images) - {crashed})
    for name in set(images) - {crashed}:
        np.testing.assert_array_equal(np.asarray(Image.open(out / name)), images[name])


def _start_sleepy_run(tmp_path, jobs):
    (tmp_path / "funcs.py").write_text(FUNCS)
    _images(tmp_path / "in", 6, None)
    markers = tmp_path / "markers"
    markers.mkdir()
    env = {**os.environ, "PYTHONPATH": ROOT, "MARKERS": str(markers)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "patchjit.cli", "run", str(tmp_path / "in"), "-o",
         str(tmp_path / "out"), "--func", f"{tmp_path / 'funcs.py'}:sleepy", "--batch", "64",
         "--patch", "4", "--step", "4", "--jobs", str(jobs), "-q"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, start_new_session=True,
        # a shell's background job inherits SIGINT ignored: give the child the default
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip
    deadline = time.monotonic() + 240
    while proc.poll() is None and time.monotonic() < deadline and len(os.listdir(markers)) < jobs:
        time.sleep(0.05)
    assert proc.poll() is None, proc.communicate()
    return proc, [int(name) for name in os.listdir(markers)]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.slow
@pytest.mark.parametrize("to", ["process group", "parent alone"])
def test_ctrl_c_stops_jobs_kills_workers_and_writes_nothing_after(tmp_path, to):
    proc, workers = _start_sleepy_run(tmp_path, jobs=2)
    out = tmp_path / "out"
    try:
        if to == "process group":
            os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
        else:
            proc.send_signal(signal.SIGINT)  # what `timeout -s INT` does
        t0 = time.monotonic()
        _, err = proc.communicate(timeout=120)  # each file sleeps 60 s: waiting would show
        print(f"stopped {time.monotonic() - t0:.2f} s after SIGINT to the {to}")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == cli.EXIT_INTERRUPTED, err.decode()
    assert "interrupted" in err.decode() and "Traceback" not in err.decode()
    assert not [pid for pid in workers if _alive(pid)]  # killed, not left running
    assert not (out.exists() and list(out.iterdir()))  # no output and no temporary file


def test_more_workers_than_files(tmp_path, capsys):
    (tmp_path / "funcs.py").write_text(FUNCS)
    images = _images(tmp_path / "in", 2, None)
    out = tmp_path / "out"
    argv = ["run", tmp_path / "in", "-o", out, "--func", f"{tmp_path / 'funcs.py'}:crash_exit",
            "--batch", "8", "--patch", "4", "--jobs", 5, "-q"]  # fmt: skip
    assert cli.main([str(a) for a in argv]) == cli.EXIT_OK
    assert "done 2, skipped 0, failed 0" in capsys.readouterr().out
    for name, image in images.items():
        np.testing.assert_array_equal(np.asarray(Image.open(out / name)), image)
    assert not list(out.glob(TMP_PREFIX + "*"))
