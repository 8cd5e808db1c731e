"""``patchjit run --max-memory`` (out of core through patchjit.dask) and ``--batch``."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import patchjit
from patchjit import cli

ROOT = str(Path(__file__).resolve().parents[1])
tifffile = pytest.importorskip("tifffile")


def _run(*argv):
    return cli.main(["run", *(str(a) for a in argv)])


# --- --max-memory: parsing and refusals ---------------------------------------------


@pytest.mark.parametrize(
    "text, size",
    [("2GB", 2 * 10**9), ("512MB", 512 * 10**6), ("64MiB", 64 << 20), ("1.5GiB", 3 << 29),
     ("3 gb", 3 * 10**9), ("2000000", 2 * 10**6), ("4096kB", 4096 * 1000)],
)  # fmt: skip
def test_parse_size_decimal_and_binary(text, size):
    assert cli.parse_size(text) == size


@pytest.mark.parametrize("text", ["", "abc", "12XB", "-5MB", "0", "1e9", "GB", "100"])
def test_bad_max_memory_is_a_usage_error(tmp_path, capsys, text):
    assert _run(tmp_path, "-o", tmp_path / "o", "--op", "identity", "--max-memory", text) == 2
    assert "--max-memory" in capsys.readouterr().err


def test_max_memory_without_dask_names_the_extra(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "patchjit.dask", None)  # import fails like no dask
    monkeypatch.delattr(patchjit, "dask", raising=False)  # imported by an earlier test
    assert _run(tmp_path, "-o", tmp_path / "o", "--op", "identity", "--max-memory", "1GB") == 2
    assert 'pip install "patchjit[dask]"' in capsys.readouterr().err


def _uint8(shape, seed=0):
    return (np.random.default_rng(seed).random(shape) * 255).astype(np.uint8)


def test_large_non_tiff_fails_with_reason_small_files_go_in_memory(tmp_path, capsys):
    pytest.importorskip("dask")
    from PIL import Image

    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(_uint8((1200, 1000))).save(src / "big.png")  # ~7 MB needed
    Image.fromarray(_uint8((60, 50))).save(src / "small.png")
    rc = _run(src, "-o", tmp_path / "out", "--op", "mean-remove", "--max-memory", "4MB", "-q")
    err = capsys.readouterr().err
    assert rc == 1
    assert "big.png: too large for --max-memory 4MB" in err
    assert "only TIFF can be processed out of core" in err
    assert (tmp_path / "out" / "small.png").exists()
    assert not (tmp_path / "out" / "big.png").exists()


# --- --max-memory: out of core equals in memory ----------------------------------------


@pytest.mark.parametrize(
    "image, argv",
    [(_uint8((3000, 2600)), ["--op", "mean-remove", "--patch", "15", "--step", "4"]),
     (_uint8((1800, 1300, 3), 1), ["--func", "patchjit.ops:mean_remove", "--patch", "9,13",
                                   "--step", "3,5", "--window", "hann"])],
)  # fmt: skip
def test_out_of_core_equals_in_memory(tmp_path, image, argv):
    pytest.importorskip("dask")
    src = tmp_path / "in.tif"
    photometric = "rgb" if image.ndim == 3 else "minisblack"
    tifffile.imwrite(src, image, photometric=photometric, resolution=(7, 7))
    assert _run(src, "-o", tmp_path / "mem", *argv, "-q") == 0
    # 24MB is well under the ~42-47MB these images need in memory: out of core
    assert _run(src, "-o", tmp_path / "ooc", *argv, "--max-memory", "24MB", "--threads", 2,
                "-q") == 0  # fmt: skip
    mem = tifffile.imread(tmp_path / "mem" / "in.tif")
    with tifffile.TiffFile(tmp_path / "ooc" / "in.tif") as tif:
        page = tif.pages[0]
        assert page.is_tiled  # written chunk by chunk
        assert page.resolution == (7.0, 7.0) and tif.series[0].axes == tif.series[0].axes
        assert int(page.photometric) == (2 if image.ndim == 3 else 1)
        ooc = tif.asarray()
    assert ooc.dtype == mem.dtype == np.uint8 and ooc.shape == image.shape
    # overlapping means add the same terms in another order: rounding may differ by 1
    diff = np.abs(ooc.astype(int) - mem)
    assert diff.max() <= 1 and np.mean(diff) < 1e-3


def test_out_of_core_float_dtype_and_map_op(tmp_path):
    pytest.importorskip("dask")
    image = _uint8((2400, 2000), 2)
    src = tmp_path / "in.tif"
    tifffile.imwrite(src, image)
    for argv in (["--op", "mean-remove", "--dtype", "float32"], ["--op", "local-std"]):
        assert _run(src, "-o", tmp_path / "mem", *argv, "-q", "--overwrite") == 0
        assert _run(src, "-o", tmp_path / "ooc", *argv, "--max-memory", "24MB", "--threads",
                    1, "-q", "--overwrite") == 0  # fmt: skip
        mem = tifffile.imread(tmp_path / "mem" / "in.tif")
        ooc = tifffile.imread(tmp_path / "ooc" / "in.tif")
        assert ooc.dtype == mem.dtype
        np.testing.assert_allclose(ooc, mem, rtol=1e-5, atol=1e-3)


MEMORY_SCRIPT = """
import sys
import numpy as np, tifffile
from patchjit import cli
src, out, budget = sys.argv[1:4]
argv = ["--op", "mean-remove", "--patch", "15", "--step", "4", "--threads", "2", "-q"]
# warm up: compile the kernels out of core on a small file (compilation is not image
# data); small, so that the allocator keeps little of it resident in the baseline
tifffile.imwrite(out + ".warm.tif", np.zeros((1100, 1100), np.float32))
warm = [*argv[:-3], "--threads", "1", "-q", "--max-memory", "12MB"]
assert cli.main(["run", out + ".warm.tif", "-o", out + ".warm", *warm]) == 0
def status(key):  # ru_maxrss would include the parent's peak at fork (kept across exec)
    with open("/proc/self/status") as f:
        return next(int(v.split()[1]) for v in f if v.startswith(key + ":")) * 1024
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # reset the peak (VmHWM) to the current resident size
base = status("VmRSS")
assert cli.main(["run", src, "-o", out, *argv, "--max-memory", budget]) == 0
print(base, status("VmHWM"))
"""


@pytest.mark.slow
@pytest.mark.skipif(not os.path.exists("/proc/self/clear_refs"), reason="needs Linux /proc")
def test_out_of_core_peak_memory_within_budget(tmp_path):
    """A 151 MB float32 TIFF (~450 MB to process in memory) under --max-memory 48MiB.

    The budget covers image data: the peak is measured above the interpreter's own
    resident size after imports and compilation (the baseline, ~200 MB here).
    """
    pytest.importorskip("dask")
    n = 6144
    src = tmp_path / "big.tif"

    def tiles():  # written tile by tile, so this process stays small too
        for i in range(0, n, 256):
            for j in range(0, n, 256):
                yield np.random.default_rng(i * n + j).random((256, 256), dtype=np.float32)

    tifffile.imwrite(src, tiles(), shape=(n, n), dtype=np.float32, tile=(256, 256))
    budget = 48 << 20
    assert os.path.getsize(src) > 3 * budget
    out = tmp_path / "out"
    env = dict(os.environ, PYTHONPATH=ROOT)
    r = subprocess.run([sys.executable, "-c", MEMORY_SCRIPT, str(src), str(out), "48MiB"],
                       env=env, capture_output=True, text=True, timeout=900)  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    base, peak = (int(v) for v in r.stdout.split()[-2:])
    print(f"--max-memory 48MiB: peak {(peak - base) / 2**20:.0f} MiB above {base >> 20} MiB")
    assert peak - base <= budget, (peak - base) / 2**20
    # equality on a band of rows against the in-memory API (the band starts on the grid)
    import patchjit
    from patchjit.ops import mean_remove

    rows, halo = slice(3000, 3400), slice(2960, 3440)
    got = tifffile.imread(out / "big.tif")[rows]
    band = patchjit.process_image(tifffile.imread(src)[halo], mean_remove, (15, 15), 4)
    np.testing.assert_allclose(got, band[40:-40], rtol=1e-5, atol=1e-6)


# --- --batch ------------------------------------------------------------------------


BATCH_MODULE = '''
import numpy as np

calls = []

def centre(batch):
    """Subtract each patch's mean (per channel): plain NumPy over the whole batch."""
    assert batch.ndim in (3, 4) and batch.flags.c_contiguous
    return batch - batch.mean(axis=(1, 2), keepdims=True)
'''


def _block_centre(image, p):
    """Independent reference: patches tile the image (step = patch), each centred."""
    h, w = image.shape[:2]
    x = image.astype(np.float64).reshape(h // p, p, w // p, p, -1)
    return (x - x.mean(axis=(1, 3), keepdims=True)).reshape(image.shape)


def test_batch_function_per_image_kind(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "batchmod.py").write_text(textwrap.dedent(BATCH_MODULE))
    rng = np.random.default_rng(3)
    src = tmp_path / "in"
    src.mkdir()
    grey = (rng.random((64, 48)) * 100).astype(np.float32)
    rgb = _uint8((32, 40, 3), 4)
    tifffile.imwrite(src / "grey.tif", grey)
    from PIL import Image

    Image.fromarray(rgb).save(src / "rgb.png")
    rc = _run(src, "-o", tmp_path / "out", "--func", "batchmod:centre", "--batch", 5,
              "--patch", 8, "--step", 8, "-q")  # fmt: skip
    assert rc == 0
    got = tifffile.imread(tmp_path / "out" / "grey.tif")
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, _block_centre(grey, 8), rtol=1e-5, atol=1e-4)
    got = np.asarray(Image.open(tmp_path / "out" / "rgb.png"))
    want = np.clip(np.rint(_block_centre(rgb, 8)), 0, 255)
    assert got.dtype == np.uint8 and np.abs(got.astype(int) - want).max() <= 1


def test_batch_equals_numba_callback_with_overlap(tmp_path, monkeypatch):
    """--batch 3 with overlapping patches = the same function as a --func callback."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "batchmod.py").write_text(textwrap.dedent(BATCH_MODULE))
    image = (np.random.default_rng(5).random((50, 37)) * 10).astype(np.float32)
    tifffile.imwrite(tmp_path / "a.tif", image)
    common = ["--patch", "7,5", "--overlap", "0.5", "--window", "triangle", "-q"]
    assert _run(tmp_path / "a.tif", "-o", tmp_path / "b", "--func", "batchmod:centre",
                "--batch", 3, *common) == 0  # fmt: skip
    assert _run(tmp_path / "a.tif", "-o", tmp_path / "c", "--func", "patchjit.ops:mean_remove",
                *common) == 0  # fmt: skip
    np.testing.assert_allclose(tifffile.imread(tmp_path / "b" / "a.tif"),
                               tifffile.imread(tmp_path / "c" / "a.tif"), atol=1e-5)  # fmt: skip


@pytest.mark.parametrize(
    "argv, message",
    [(["--op", "identity", "--batch", "4"], "--batch applies to --func only"),
     (["--func", "numpy:negative", "--patch", "4", "--batch", "0"], "--batch must be >= 1"),
     (["--func", "numpy:negative", "--patch", "4", "--batch", "4", "--arg", "1"],
      "--arg does not apply to --batch")],
)  # fmt: skip
def test_batch_usage_errors(tmp_path, capsys, argv, message):
    assert _run(tmp_path, "-o", tmp_path / "o", *argv) == 2
    assert message in capsys.readouterr().err
