"""TIFF and zarr files through patchjit.dask: from_tiff, to_tiff, process_file and the
memory budget (chunks_for_budget)."""

import os
import re
import subprocess
import sys

import numpy as np
import pytest

da = pytest.importorskip("dask.array")
tifffile = pytest.importorskip("tifffile")
pytest.importorskip("zarr")

from callbacks import scale_add_mean  # noqa: E402

import patchjit  # noqa: E402
from patchjit.ops import mean_remove  # noqa: E402

pdask = pytest.importorskip("patchjit.dask")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# TIFF layouts a user's files come in: tifffile's default for uncompressed data is one
# strip; compressed data gets strips of ~256 KB
LAYOUTS = {
    "single strip": {},
    "strips": {"rowsperstrip": 16},
    "tiled": {"tile": (64, 64)},
    "deflate strips": {"compression": "zlib"},
    "deflate tiled": {"compression": "zlib", "tile": (32, 32)},
    "big-endian strip": {"byteorder": ">"},
}


def test_tiff_and_zarr_round_trip(tmp_path, rng):
    image = rng.random((150, 130)).astype(np.float32)
    src = tmp_path / "in.tif"
    tifffile.imwrite(src, image, tile=(32, 32))
    x = pdask.from_tiff(src, chunks=50)
    assert x.chunks == ((50, 50, 50), (50, 50, 30))
    lazy = patchjit.process_image(x, scale_add_mean, 7, 2, args=(1.0,))
    want = patchjit.process_image(image, scale_add_mean, 7, 2, args=(1.0,))
    pdask.to_tiff(lazy, tmp_path / "out.tif", tile=(32, 48))
    np.testing.assert_allclose(tifffile.imread(tmp_path / "out.tif"), want, rtol=1e-5, atol=1e-5)
    lazy.to_zarr(str(tmp_path / "out.zarr"))
    np.testing.assert_allclose(da.from_zarr(str(tmp_path / "out.zarr")).compute(), want,
                               rtol=1e-5, atol=1e-5)  # fmt: skip
    rgb = (rng.random((70, 90, 3)) * 255).astype(np.uint8)
    pdask.to_tiff(da.from_array(rgb, chunks=(30, 40, 3)), tmp_path / "rgb.tif", tile=(16, 32))
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "rgb.tif"), rgb)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_from_tiff_every_layout(tmp_path, rng, layout):
    image = rng.random((300, 280)).astype(np.float32)
    path = tmp_path / "in.tif"
    tifffile.imwrite(path, image, **LAYOUTS[layout])
    x = pdask.from_tiff(path)
    assert x.dtype == np.float32 and x.dtype.isnative
    np.testing.assert_array_equal(x.compute(), image)
    np.testing.assert_array_equal(pdask.from_tiff(path, chunks=(70, 90))[100:250].compute(),
                                  image[100:250])  # fmt: skip
    if "deflate" not in layout and "tiled" not in layout:
        # uncompressed contiguous: read region by region, never one whole-image chunk
        assert max(x.chunksize) <= 256
    rgb = (rng.random((90, 70, 3)) * 255).astype(np.uint8)
    tifffile.imwrite(path, rgb, photometric="rgb", **LAYOUTS[layout])
    np.testing.assert_array_equal(pdask.from_tiff(path, chunks=(40, 30, 3)).compute(), rgb)
    stack = rng.random((3, 40, 30)).astype(np.float32)  # pages
    tifffile.imwrite(path, stack, photometric="minisblack", **LAYOUTS[layout])
    np.testing.assert_array_equal(pdask.from_tiff(path).compute(), stack)


def test_chunks_for_budget():
    c = pdask.chunks_for_budget((8000, 8000), "float32", (39, 39), 64 << 20, workers=2)
    assert 78 <= c[0] <= 1024 and c[0] == c[1]
    c3 = pdask.chunks_for_budget((100, 300, 300, 3), "uint8", (9, 9, 9), 64 << 20, workers=2)
    assert len(c3) == 4 and c3[-1] == 3
    with pytest.raises(ValueError, match="max_memory"):
        pdask.chunks_for_budget((8000, 8000), "float32", (39, 39), 1 << 20, workers=2)


def test_chunks_for_budget_counts_the_read_unit():
    shape, args = (4096, 4096), ("float32", (15, 15), 40 << 20)
    free = pdask.chunks_for_budget(shape, *args, workers=2)
    assert pdask.chunks_for_budget(shape, *args, workers=2, read_unit=(16, 4096)) == free
    # one compressed strip of the whole image is decoded whole: 64 MiB > 40 MiB
    with pytest.raises(ValueError, match=r"read unit.*\(4096, 4096\).*tile="):
        pdask.chunks_for_budget(shape, *args, workers=2, read_unit=(4096, 4096))


@pytest.mark.parametrize(
    "kw, error, match",
    [(dict(max_memory="40MB"), TypeError, "max_memory must be an integer, got '40MB'"),
     (dict(max_memory=0), ValueError, "max_memory must be >= 1, got 0"),
     (dict(max_memory=1 << 30, workers=0), ValueError, "workers must be >= 1, got 0"),
     (dict(max_memory=1 << 30, workers=1.5), TypeError, "workers must be an integer")],
)  # fmt: skip
def test_chunks_for_budget_bad_values(kw, error, match):
    with pytest.raises(error, match=re.escape(match)):
        pdask.chunks_for_budget((100, 100), "float32", (5, 5), **kw)


# --- process_file ----------------------------------------------------------------------


def _tif(path, image, **kw):
    tifffile.imwrite(path, image, **kw)
    return path.read_bytes()


@pytest.mark.parametrize("layout", ["single strip", "tiled"])
def test_process_file_refuses_its_own_input_tiff(tmp_path, rng, layout):
    image = rng.random((120, 100)).astype(np.float32)
    src = tmp_path / "in.tif"
    before = _tif(src, image, **LAYOUTS[layout])
    (tmp_path / "link.tif").symlink_to(src)
    os.link(src, tmp_path / "hard.tif")
    for dst in (src, str(src), tmp_path / "link.tif", tmp_path / "hard.tif",
                tmp_path / "sub" / ".." / "in.tif"):  # fmt: skip
        with pytest.raises(ValueError, match="is the input"):
            pdask.process_file(src, dst, mean_remove, 9, 4, max_memory=64 << 20, workers=1)
    assert src.read_bytes() == before
    with tifffile.TiffFile(src) as tif:
        assert len(tif.pages) == 1


def test_process_file_refuses_its_own_input_zarr(tmp_path, rng):
    image = rng.random((80, 60))
    src = str(tmp_path / "in.zarr")
    da.from_array(image, chunks=30).to_zarr(src)
    for dst in (src, src + "/", str(tmp_path / "in.zarr" / "out.zarr")):
        with pytest.raises(ValueError, match=r"is the input|is inside the input"):
            pdask.process_file(src, dst, mean_remove, 9, 4, max_memory=64 << 20, workers=1)
    nested = str(tmp_path / "outer.zarr" / "in.zarr")
    da.from_array(image, chunks=30).to_zarr(nested)
    with pytest.raises(ValueError, match="a folder holding the input"):
        pdask.process_file(nested, str(tmp_path / "outer.zarr"), mean_remove, 9, 4,
                           max_memory=64 << 20, workers=1)  # fmt: skip
    np.testing.assert_array_equal(da.from_zarr(src).compute(), image)
    np.testing.assert_array_equal(da.from_zarr(nested).compute(), image)


def test_process_file_zarr_to_zarr_replaces_an_old_result(tmp_path, rng):
    image = rng.random((80, 60))
    src, dst = str(tmp_path / "in.zarr"), str(tmp_path / "out.zarr")
    da.from_array(image, chunks=30).to_zarr(src)
    da.zeros((5, 5), chunks=5).to_zarr(dst)  # an older result of another shape
    pdask.process_file(src, dst, mean_remove, 9, 4, max_memory=64 << 20, workers=1)
    want = patchjit.process_image(image, mean_remove, 9, 4)
    np.testing.assert_allclose(da.from_zarr(dst).compute(), want, rtol=1e-12, atol=1e-12)
    assert sorted(os.listdir(tmp_path)) == ["in.zarr", "out.zarr"]


@pytest.mark.parametrize("patch", [[9, 9], (9, 9), 9, np.int64(9), [np.int64(9), 9]])
def test_process_file_patch_shape_like_in_memory(tmp_path, rng, patch):
    image = rng.random((130, 110)).astype(np.float32)
    tifffile.imwrite(tmp_path / "in.tif", image)
    chunks = pdask.process_file(tmp_path / "in.tif", tmp_path / "out.tif", mean_remove, patch,
                                [4, 4], max_memory=9 << 20, workers=1)  # fmt: skip
    assert chunks == pdask.chunks_for_budget(image.shape, image.dtype, (9, 9), 9 << 20, workers=1)
    want = patchjit.process_image(image, mean_remove, (9, 9), 4)
    np.testing.assert_allclose(tifffile.imread(tmp_path / "out.tif"), want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("patch", [[9, 0], "9", [9, 9, 9, 9], [9.5, 9], 500])
def test_process_file_bad_patch_shape_as_in_memory(tmp_path, rng, patch):
    image = rng.random((130, 110)).astype(np.float32)
    tifffile.imwrite(tmp_path / "in.tif", image)
    with pytest.raises((TypeError, ValueError)) as want:
        patchjit.process_image(image, mean_remove, patch, 4)
    with pytest.raises(want.type, match=re.escape(str(want.value))):
        pdask.process_file(tmp_path / "in.tif", tmp_path / "out.tif", mean_remove, patch, 4,
                           max_memory=9 << 20, workers=1)  # fmt: skip
    assert not (tmp_path / "out.tif").exists()


def test_process_file_compressed_single_strip_refused_up_front(tmp_path, rng):
    image = rng.random((1024, 1024)).astype(np.float32)  # 4 MiB, one compressed strip
    src, dst = tmp_path / "in.tif", tmp_path / "out.tif"
    tifffile.imwrite(src, image, compression="zlib", rowsperstrip=1024)
    with pytest.raises(ValueError, match=r"read unit.*\(1024, 1024\)"):
        pdask.process_file(src, dst, mean_remove, 9, 4, max_memory=6 << 20, workers=1)
    assert sorted(os.listdir(tmp_path)) == ["in.tif"]


@pytest.mark.parametrize("layout", LAYOUTS)
def test_process_file_every_layout_equals_in_memory(tmp_path, rng, layout):
    image = rng.random((260, 230)).astype(np.float32)
    tifffile.imwrite(tmp_path / "in.tif", image, **LAYOUTS[layout])
    pdask.process_file(tmp_path / "in.tif", tmp_path / "out.tif", mean_remove, 9, 4,
                       max_memory=20 << 20, workers=2)  # fmt: skip
    want = patchjit.process_image(image, mean_remove, 9, 4)
    np.testing.assert_allclose(tifffile.imread(tmp_path / "out.tif"), want, rtol=1e-5, atol=1e-6)


def test_process_file_bad_workers_and_channels(tmp_path, rng):
    tifffile.imwrite(tmp_path / "in.tif", rng.random((40, 30, 3)).astype(np.float32),
                     photometric="rgb")  # fmt: skip
    args = (tmp_path / "in.tif", tmp_path / "out.tif", mean_remove, 5)
    with pytest.raises(ValueError, match=re.escape("workers must be an integer >= 1")):
        pdask.process_file(*args, max_memory=64 << 20, workers=-2)
    with pytest.raises(ValueError, match="channels last"):
        pdask.process_file(*args, max_memory=64 << 20, workers=1, channel_axis=0)


# --- to_tiff: never a truncated file -------------------------------------------------


class _Boom(RuntimeError):
    pass


def _fails_late(block, block_info=None):
    if block_info[0]["chunk-location"][0] == 2:  # the third band of rows
        raise _Boom("a task failed")
    return block


def test_to_tiff_failure_leaves_the_old_file_and_no_partial_one(tmp_path, rng):
    path = tmp_path / "out.tif"
    before = _tif(path, np.zeros((8, 8), np.uint8))
    x = da.from_array(rng.random((200, 90)).astype(np.float32), chunks=(40, 90))
    with pytest.raises(_Boom):
        pdask.to_tiff(x.map_blocks(_fails_late, dtype=x.dtype), path, tile=(32, 32))
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["out.tif"]
    with pytest.raises(_Boom):
        pdask.to_tiff(x.map_blocks(_fails_late, dtype=x.dtype), tmp_path / "new.tif")
    assert os.listdir(tmp_path) == ["out.tif"]


@pytest.mark.parametrize("layout", ["single strip", "tiled", "deflate strips"])
def test_to_tiff_over_its_own_lazy_source(tmp_path, rng, layout):
    """Replacing a file with a result read lazily from it: the old file is read to the
    end, the new one appears complete."""
    image = rng.random((300, 200)).astype(np.float32)
    path = tmp_path / "img.tif"
    tifffile.imwrite(path, image, **LAYOUTS[layout])
    lazy = patchjit.process_image(pdask.from_tiff(path, chunks=64), mean_remove, 9, 4)
    pdask.to_tiff(lazy, path, tile=(32, 32))
    want = patchjit.process_image(image, mean_remove, 9, 4)
    np.testing.assert_allclose(tifffile.imread(path), want, rtol=1e-5, atol=1e-6)
    assert os.listdir(tmp_path) == ["img.tif"]
    if layout == "single strip":  # read by name: a replaced file is refused, not misread
        with pytest.raises(RuntimeError, match="replaced or modified after from_tiff"):
            lazy.compute()


# --- peak memory -----------------------------------------------------------------------


MEMORY_SCRIPT = """
import sys, time
import numpy as np, tifffile
import patchjit, patchjit.dask as pdask
from patchjit.ops import mean_remove
src, dst, budget = sys.argv[1], sys.argv[2], int(sys.argv[3])
# warm up: compile the kernels on a small file first (compilation is not image data)
small = np.zeros((256, 256), np.float32)
tifffile.imwrite(dst + ".warm.tif", small, tile=(64, 64))
pdask.process_file(dst + ".warm.tif", dst + ".warm.out.tif", mean_remove, (15, 15), 4,
                   max_memory=budget, workers=2)
def kib(key):  # ru_maxrss would include the parent's peak at fork (kept across exec)
    with open("/proc/self/status") as f:
        return next(int(v.split()[1]) for v in f if v.startswith(key + ":")) * 1024
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # reset the peak (VmHWM) to the current RSS
base = kib("VmRSS")
t = time.perf_counter()
chunks = pdask.process_file(src, dst, mean_remove, (15, 15), 4, max_memory=budget, workers=2)
peak = kib("VmHWM")
print(base, peak, chunks, time.perf_counter() - t)
"""

MEMORY_LAYOUTS = {
    "tiled": {"tile": (256, 256)},
    "single strip": {},
    "strips": {"rowsperstrip": 64},
    "deflate strips": {"compression": "zlib"},
}


@pytest.mark.slow
@pytest.mark.skipif(not os.path.exists("/proc/self/clear_refs"), reason="needs Linux /proc")
@pytest.mark.parametrize("layout", MEMORY_LAYOUTS)
def test_out_of_core_memory_bound(tmp_path, layout):
    """A 64 MiB float32 TIFF of each layout under a 40 MiB budget: the peak resident size
    above the interpreter's (after imports and compilation) stays within the budget."""
    n = 4096
    src, dst = tmp_path / "big.tif", tmp_path / "big_out.tif"
    image = np.random.default_rng(0).random((n, n), dtype=np.float32)
    tifffile.imwrite(src, image, **MEMORY_LAYOUTS[layout])
    budget = 40 << 20
    env = dict(os.environ, PYTHONPATH=ROOT)
    r = subprocess.run([sys.executable, "-c", MEMORY_SCRIPT, str(src), str(dst), str(budget)],
                       env=env, capture_output=True, text=True, timeout=900)  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    base, peak = (int(v) for v in r.stdout.split()[:2])
    print(f"{layout}: {(peak - base) / 2**20:.0f} MiB above a baseline of {base >> 20} MiB, "
          f"budget {budget >> 20} MiB; {r.stdout.strip()}")  # fmt: skip
    assert peak - base <= budget, (peak - base) / 2**20
    # equality on a band of rows (the band starts on the grid: 3000 - 40 = 4 * 740)
    rows, halo = slice(3000, 3400), slice(2960, 3440)
    band = patchjit.process_image(image[halo], mean_remove, (15, 15), 4)
    np.testing.assert_allclose(tifffile.imread(dst)[rows], band[40:-40], rtol=1e-5, atol=1e-6)
