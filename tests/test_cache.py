"""patchjit's disk cache: where it lives, how to turn it off, and that it is safe.

Each case runs in fresh processes, because the cache matters across processes.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import patchjit
from patchjit import _cache

PKG = Path(patchjit.__file__).resolve().parent

# A call through the built-in op (cached wrapper) and a user callback (cached driver).
CALL = textwrap.dedent(
    """
    import hashlib, numpy as np, numba, patchjit
    from patchjit import ops

    @numba.njit
    def scaled(patch, out, gain):
        for i in range(patch.shape[0]):
            for j in range(patch.shape[1]):
                out[i, j] = gain * patch[i, j]

    img = np.random.default_rng(3).random((90, 70)).astype(np.float32)
    a = patchjit.process_image(img, scaled, 7, 2, args=(0.5,))
    b = patchjit.process_image(img, ops.mean_remove, 5, window="hann")
    c = patchjit.map_patches(img, ops.median, 3)
    print(hashlib.sha256(a.tobytes() + b.tobytes() + c.tobytes()).hexdigest())
    """
)


def _run(env_extra, code=CALL, cwd=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PATCHJIT_", "XDG_"))}
    env.update(env_extra)
    proc = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600,
        cwd=cwd,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def _files(path):
    return sorted(p for p in Path(path).rglob("*") if p.is_file())


def _package_files():
    return {p for p in PKG.rglob("*") if p.suffix in (".nbi", ".nbc")}


def test_cache_dir_cold_warm_off_give_identical_results(tmp_path):
    before = _package_files()
    cold = _run({"PATCHJIT_CACHE_DIR": str(tmp_path)})
    files = _files(tmp_path)
    assert any(p.suffix == ".nbi" for p in files) and any(p.suffix == ".nbc" for p in files)
    # one folder per version key, named after the versions
    (folder,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    assert folder.name.startswith(f"patchjit-{patchjit.__version__}-numba-")
    warm = _run({"PATCHJIT_CACHE_DIR": str(tmp_path)})
    off = _run({"PATCHJIT_CACHE": "0", "PATCHJIT_CACHE_DIR": str(tmp_path / "off")})
    assert cold.stdout == warm.stdout == off.stdout
    assert not (tmp_path / "off").exists()  # off writes nothing
    assert _package_files() == before  # never into the installed package


def test_default_location_is_the_user_cache_folder(tmp_path):
    _run({"XDG_CACHE_HOME": str(tmp_path), "HOME": str(tmp_path / "home")})
    assert any(p.suffix == ".nbi" for p in _files(tmp_path / "patchjit"))


def test_unwritable_folder_warns_once_and_works(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    proc = _run({"PATCHJIT_CACHE_DIR": str(blocker / "cache")}, code="import warnings\n" + CALL)
    want = _run({"PATCHJIT_CACHE": "0"})
    assert proc.stdout == want.stdout
    assert proc.stderr.count("cannot write its compile cache") == 1, proc.stderr


def test_two_processes_fill_one_cache_at_once(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PATCHJIT_")}
    env["PATCHJIT_CACHE_DIR"] = str(tmp_path)
    cmd = [sys.executable, "-c", CALL]
    pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True}
    procs = [subprocess.Popen(cmd, env=env, **pipes) for _ in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-2000:] for o in outs]
    assert outs[0][0] == outs[1][0]
    again = _run({"PATCHJIT_CACHE_DIR": str(tmp_path)})
    assert again.stdout == outs[0][0]


def test_version_change_uses_another_folder(monkeypatch):
    first = _cache.folder()
    monkeypatch.setattr(patchjit._version, "__version__", "99.0.0")
    _cache._version_key.cache_clear()
    try:
        other = _cache.folder()
    finally:
        monkeypatch.undo()
        _cache._version_key.cache_clear()
    assert other != first and "99.0.0" in other.name
    assert _cache.folder() == first


@pytest.mark.parametrize("value, on", [("0", False), ("off", False), ("1", True), ("", True)])
def test_switch(monkeypatch, value, on):
    monkeypatch.setenv("PATCHJIT_CACHE", value)
    assert _cache.enabled() is on


def test_cli_cache_show_and_clear(tmp_path):
    env = {"PATCHJIT_CACHE_DIR": str(tmp_path)}
    _run(env)
    code = "import sys; from patchjit.cli import main; sys.exit(main(sys.argv[1:]))"
    env_all = {k: v for k, v in os.environ.items() if not k.startswith("PATCHJIT_")}
    env_all.update(env)
    show = subprocess.run([sys.executable, "-c", code, "cache"], env=env_all,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert show.returncode == 0 and str(tmp_path) in show.stdout and "files" in show.stdout
    clear = subprocess.run([sys.executable, "-c", code, "cache", "--clear"], env=env_all,
                           capture_output=True, text=True, timeout=120)  # fmt: skip
    assert clear.returncode == 0, clear.stderr
    assert not any(p.suffix == ".nbi" for p in _files(tmp_path))
