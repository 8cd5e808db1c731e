"""Image files through the command line: real files made with tifffile and Pillow.

Every expected result is computed independently (scipy.ndimage, plain numpy, Pillow's
own conversions), never through patchjit's code paths.
"""

from __future__ import annotations

import io
import os
import stat

import numpy as np
import pytest
import tifffile
from PIL import Image, ImageCms
from scipy import ndimage

from patchjit import cli


def _run(*argv):
    return cli.main([str(a) for a in argv])


def _median(src, out, *extra):
    return _run("run", src, "-o", out, "--op", "median", "-q", *extra)


def _median_ref(plane):
    """3x3 median with reflect padding (numpy's reflect is scipy's mirror)."""
    return ndimage.median_filter(plane, size=3, mode="mirror")


@pytest.fixture
def rng():
    return np.random.default_rng(5)


# --- TIFF stacks: axes from the file's metadata ----------------------------------------


@pytest.mark.parametrize("axes", ["ZYX", "TYX", "CYX", "QYX", "IYX"])
def test_tiff_stack_processed_plane_by_plane(tmp_path, rng, axes):
    stack = rng.integers(0, 60000, (3, 14, 17)).astype(np.uint16)
    src = tmp_path / "stack.tif"
    # IYX: plain pages, as other programs write them (no axes metadata)
    metadata = None if axes == "IYX" else {"axes": axes}
    tifffile.imwrite(src, stack, photometric="minisblack", metadata=metadata,
                     resolution=(2.5, 4.0), resolutionunit="CENTIMETER")  # fmt: skip
    with tifffile.TiffFile(src) as tif:
        assert len(tif.pages) == 3 and tif.series[0].axes == axes
    assert _median(src, tmp_path / "out") == 0
    with tifffile.TiffFile(tmp_path / "out" / "stack.tif") as tif:
        series = tif.series[0]
        assert series.axes == axes
        got = series.asarray()
        assert series.keyframe.resolution == (2.5, 4.0)
        assert series.keyframe.resolutionunit == tifffile.RESUNIT.CENTIMETER
    assert got.dtype == np.uint16
    np.testing.assert_array_equal(got, np.stack([_median_ref(p) for p in stack]))


def test_tiff_stack_as_volume_with_three_patch_sizes(tmp_path, rng):
    vol = rng.random((6, 9, 11)).astype(np.float32)
    tifffile.imwrite(tmp_path / "vol.tif", vol, photometric="minisblack", metadata={"axes": "ZYX"})
    assert _median(tmp_path / "vol.tif", tmp_path / "out", "--patch", "3,3,3") == 0
    got = tifffile.imread(tmp_path / "out" / "vol.tif")
    np.testing.assert_array_equal(got, ndimage.median_filter(vol, size=3, mode="mirror"))


def test_three_patch_sizes_need_a_depth_axis(tmp_path, rng, capsys):
    tifffile.imwrite(tmp_path / "flat.tif", rng.random((9, 11)).astype(np.float32))
    tifffile.imwrite(tmp_path / "time.tif", rng.random((4, 9, 11)).astype(np.float32),
                     photometric="minisblack", metadata={"axes": "TYX"})  # fmt: skip
    assert _run("run", tmp_path / "flat.tif", tmp_path / "time.tif", "-o", tmp_path / "out",
                "--op", "median", "--patch", "3,3,3", "-q") == 1  # fmt: skip
    err = capsys.readouterr().err
    assert "flat.tif" in err and "time.tif" in err and "depth" in err
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


def test_rgba_tiff_keeps_alpha_and_photometric(tmp_path, rng):
    rgba = rng.integers(0, 256, (12, 13, 4)).astype(np.uint8)
    rgba[..., 3] = np.where(rng.random((12, 13)) < 0.5, 0, 200)
    tifffile.imwrite(tmp_path / "a.tif", rgba, photometric="rgb", extrasamples=["unassalpha"])
    assert _median(tmp_path / "a.tif", tmp_path / "out") == 0
    with tifffile.TiffFile(tmp_path / "out" / "a.tif") as tif:
        page = tif.pages[0]
        assert page.photometric == tifffile.PHOTOMETRIC.RGB
        assert page.extrasamples == (tifffile.EXTRASAMPLE.UNASSALPHA,)
        got = page.asarray()
    np.testing.assert_array_equal(got[..., 3], rgba[..., 3])
    for c in range(3):
        np.testing.assert_array_equal(got[..., c], _median_ref(rgba[..., c]))


# --- Pillow modes -----------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["RGBA", "LA"])
def test_alpha_carried_through_unchanged(tmp_path, rng, mode):
    n = len(mode)
    data = rng.integers(0, 256, (15, 16, n)).astype(np.uint8)
    data[..., -1] = np.where(rng.random((15, 16)) < 0.5, 0, 200)
    Image.fromarray(data, mode).save(tmp_path / "x.png")
    assert _median(tmp_path / "x.png", tmp_path / "out") == 0
    out = Image.open(tmp_path / "out" / "x.png")
    assert out.mode == mode
    got = np.asarray(out)
    np.testing.assert_array_equal(got[..., -1], data[..., -1])
    for c in range(n - 1):
        np.testing.assert_array_equal(got[..., c], _median_ref(data[..., c]))


def test_palette_png_processed_and_written_as_rgb(tmp_path, rng):
    idx = rng.integers(0, 4, (12, 14)).astype(np.uint8)
    im = Image.fromarray(idx, "P")
    im.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0, 10, 20, 250] + [0] * 756)
    im.save(tmp_path / "p.png")
    rgb = np.asarray(Image.open(tmp_path / "p.png").convert("RGB"))
    assert _median(tmp_path / "p.png", tmp_path / "out") == 0
    out = Image.open(tmp_path / "out" / "p.png")
    assert out.mode == "RGB"
    got = np.asarray(out)
    for c in range(3):
        np.testing.assert_array_equal(got[..., c], _median_ref(rgb[..., c]))


SCALE_CB = """
import numba

@numba.njit
def scale(patch, out, factor):
    for i in range(patch.shape[0]):
        for j in range(patch.shape[1]):
            out[i, j] = patch[i, j] * factor
"""


@pytest.mark.parametrize("factor", [0.3, 0.7])
def test_one_bit_png_thresholded_at_half(tmp_path, rng, factor):
    bits = rng.random((10, 12)) < 0.5
    Image.fromarray(bits).save(tmp_path / "b.png")
    assert Image.open(tmp_path / "b.png").mode == "1"
    (tmp_path / "cb.py").write_text(SCALE_CB)
    code = _run("run", tmp_path / "b.png", "-o", tmp_path / "out", "--func",
                f"{tmp_path / 'cb.py'}:scale", "--arg", factor, "--patch", "3", "-q")  # fmt: skip
    assert code == 0
    out = Image.open(tmp_path / "out" / "b.png")
    assert out.mode == "1"
    np.testing.assert_array_equal(np.asarray(out), bits * factor >= 0.5)


def _jpeg_with_metadata(path, rng):
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 CW to display
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    yy, xx = np.mgrid[0:32, 0:40]
    rgb = np.stack([yy * 6, xx * 5, (yy + xx) * 3], axis=-1).astype(np.uint8)
    Image.fromarray(rgb).save(path, quality=60, exif=exif.tobytes(), icc_profile=icc,
                              dpi=(300, 300))  # fmt: skip
    return icc


def test_jpeg_keeps_exif_icc_dpi_and_quality_tables(tmp_path, rng):
    icc = _jpeg_with_metadata(tmp_path / "photo.jpg", rng)
    assert _run("run", tmp_path / "photo.jpg", "-o", tmp_path / "out", "--op", "identity",
                "-q") == 0  # fmt: skip
    src, out = Image.open(tmp_path / "photo.jpg"), Image.open(tmp_path / "out" / "photo.jpg")
    assert out.getexif()[0x0112] == 6
    assert out.info["icc_profile"] == icc
    assert tuple(round(v) for v in out.info["dpi"]) == (300, 300)
    assert {k: list(v) for k, v in out.quantization.items()} == {
        k: list(v) for k, v in src.quantization.items()
    }
    # identity on the decoded pixels, re-encoded with the same tables: close to the input
    diff = np.abs(np.asarray(out, float) - np.asarray(src, float))
    assert diff.mean() < 2


def test_jpeg_quality_option_replaces_the_tables(tmp_path, rng):
    _jpeg_with_metadata(tmp_path / "photo.jpg", rng)
    assert _run("run", tmp_path / "photo.jpg", "-o", tmp_path / "out", "--op", "identity",
                "--quality", "95", "-q") == 0  # fmt: skip
    src, out = Image.open(tmp_path / "photo.jpg"), Image.open(tmp_path / "out" / "photo.jpg")
    assert list(out.quantization[0]) != list(src.quantization[0])
    assert sum(out.quantization[0]) < sum(src.quantization[0])  # finer tables
    assert out.getexif()[0x0112] == 6


def test_cmyk_jpeg_round_trips_and_batch_goes_on(tmp_path, rng):
    src = tmp_path / "in"
    src.mkdir()
    cmyk = rng.integers(0, 256, (16, 16, 4)).astype(np.uint8)
    Image.frombytes("CMYK", (16, 16), cmyk.tobytes()).save(src / "a_cmyk.jpg", quality=95)
    Image.fromarray(rng.integers(0, 256, (16, 16)).astype(np.uint8)).save(src / "b.png")
    assert _run("run", src, "-o", tmp_path / "out", "--op", "identity", "-q") == 0
    out = Image.open(tmp_path / "out" / "a_cmyk.jpg")
    assert out.mode == "CMYK"
    before = np.asarray(Image.open(src / "a_cmyk.jpg"), float)
    assert np.abs(np.asarray(out, float) - before).mean() < 3
    assert (tmp_path / "out" / "b.png").exists()


def test_unwritable_in_its_format_fails_by_name_and_batch_goes_on(tmp_path, rng, capsys):
    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(rng.integers(0, 256, (16, 16)).astype(np.uint8)).save(src / "a.png")
    tifffile.imwrite(src / "b.tif", rng.integers(0, 256, (16, 16)).astype(np.uint8))
    code = _run("run", src, "-o", tmp_path / "out", "--op", "mean-remove", "--dtype", "float32",
                "-q")  # fmt: skip
    assert code == cli.EXIT_FAILED
    captured = capsys.readouterr()
    failures = [ln for ln in captured.err.splitlines() if ln.startswith("failed:")]
    assert len(failures) == 1 and "a.png" in failures[0] and "PNG" in failures[0]
    assert "Traceback" not in captured.err
    assert "failed files:" in captured.out and "a.png" in captured.out
    assert tifffile.imread(tmp_path / "out" / "b.tif").dtype == np.float32
    assert not (tmp_path / "out" / "a.png").exists()


def test_empty_and_fake_files_get_plain_messages(tmp_path, rng, capsys):
    src = tmp_path / "in"
    src.mkdir()
    (src / "empty.png").write_bytes(b"")
    (src / "fake.png").write_text("hello, I am text")
    (src / "fake.tif").write_text("hello, I am text too")
    Image.fromarray(rng.integers(0, 256, (8, 8)).astype(np.uint8)).save(src / "ok.png")
    assert _run("run", src, "-o", tmp_path / "out", "--op", "identity", "-q") == 1
    err = capsys.readouterr().err
    lines = {ln.split(":")[1].strip(): ln for ln in err.splitlines() if ln.startswith("failed")}
    assert "empty file" in lines[str(src / "empty.png")]
    assert "not an image" in lines[str(src / "fake.png")]
    assert "not an image" in lines[str(src / "fake.tif")]
    assert "`" not in err and "Traceback" not in err
    assert (tmp_path / "out" / "ok.png").exists()


def test_webp_and_gif_processed_and_others_listed(tmp_path, rng, capsys):
    src = tmp_path / "in"
    src.mkdir()
    grey = (np.add.outer(np.arange(16), np.arange(20)) * 6).astype(np.uint8)
    Image.fromarray(grey).save(src / "a.webp", lossless=True)
    Image.fromarray(grey).convert("P").save(src / "b.gif")
    (src / "notes.txt").write_text("not an image")
    Image.fromarray(grey).save(src / "c.ico")
    assert _run("run", src, "-o", tmp_path / "out", "--op", "identity", "-q") == 0
    text = capsys.readouterr().out
    assert "not processed: 2 files" in text and ".ico" in text and ".txt" in text
    webp = np.asarray(Image.open(tmp_path / "out" / "a.webp").convert("L"), float)
    assert np.abs(webp - grey).mean() < 3
    gif = Image.open(tmp_path / "out" / "b.gif")
    expected = np.asarray(Image.open(src / "b.gif").convert("RGB"))
    np.testing.assert_array_equal(np.asarray(gif.convert("RGB")), expected)


@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_outputs_get_umask_permissions(tmp_path, rng, umask):
    Image.fromarray(rng.integers(0, 256, (8, 8)).astype(np.uint8)).save(tmp_path / "a.png")
    old = os.umask(umask)
    try:
        assert _run("run", tmp_path / "a.png", "-o", tmp_path / "out", "--op", "identity",
                    "-q") == 0  # fmt: skip
        with open(tmp_path / "plain", "w"):
            pass
    finally:
        os.umask(old)
    mode = stat.S_IMODE((tmp_path / "out" / "a.png").stat().st_mode)
    assert mode == 0o666 & ~umask == stat.S_IMODE((tmp_path / "plain").stat().st_mode)


def test_read_image_of_a_stack_keeps_its_axes(tmp_path):
    from patchjit.io import read_image

    stack = np.arange(3 * 4 * 5, dtype=np.uint16).reshape(3, 4, 5)
    tifffile.imwrite(tmp_path / "s.tif", stack, photometric="minisblack", metadata={"axes": "ZYX"})
    np.testing.assert_array_equal(read_image(tmp_path / "s.tif"), stack)
    buf = io.BytesIO()
    Image.fromarray(np.zeros((4, 4), bool)).save(buf, format="PNG")
    (tmp_path / "b.png").write_bytes(buf.getvalue())
    assert read_image(tmp_path / "b.png").dtype == np.bool_
