"""What files keep through the command line: TIFF tags and alpha at another depth.

Inputs are written by tifffile (tags through ``extratags`` and ``datetime``) and
Pillow; outputs are read back with the same libraries. Expected values are computed
here from the definitions (full opacity maps to full opacity), not through patchjit.
"""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
from PIL import Image

from patchjit import cli

# Descriptive tags a viewer or catalogue reads, as tifffile's extratags.
DESCRIPTIVE = {
    269: "document.tif",
    271: "Acme Camera Co",
    272: "Model 7",
    285: "page one",
    315: "Ann Author",
    316: "lab-host-3",
    33432: "(c) 2026 Ann Author",
}
DATETIME = "2024:05:06 07:08:09"


def _run(*argv):
    return cli.main([str(a) for a in argv])


def _tagged_tiff(path, image, orientation=6, **kwargs):
    extratags = [(code, "s", 0, value, True) for code, value in DESCRIPTIVE.items()]
    extratags.append((274, "H", 1, orientation, False))
    extratags.append((700, "B", 11, b"<x:xmpmeta>", True))
    tifffile.imwrite(path, image, extratags=extratags, datetime=DATETIME, **kwargs)


def _tags(path, page=0):
    with tifffile.TiffFile(path) as tif:
        return {t.code: t.value for t in tif.pages[page].tags}


def _check_tags(tags, orientation=6):
    for code, value in DESCRIPTIVE.items():
        assert tags.get(code) == value, (code, tags.get(code))
    assert int(tags[274]) == orientation
    assert tags[306] == DATETIME
    assert tags[700] == b"<x:xmpmeta>"


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_tiff_keeps_orientation_and_descriptive_tags(tmp_path, orientation):
    image = np.random.default_rng(0).integers(0, 60000, (20, 24)).astype(np.uint16)
    _tagged_tiff(tmp_path / "a.tif", image, orientation)
    assert _run("run", tmp_path / "a.tif", "-o", tmp_path / "out", "--op", "identity", "-q") == 0
    _check_tags(_tags(tmp_path / "out" / "a.tif"), orientation)
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "out" / "a.tif"), image)


def test_tiff_stack_keeps_orientation_on_every_page(tmp_path):
    stack = np.random.default_rng(1).integers(0, 255, (3, 16, 18)).astype(np.uint8)
    _tagged_tiff(tmp_path / "s.tif", stack, 8, photometric="minisblack")
    assert _run("run", tmp_path / "s.tif", "-o", tmp_path / "out", "--op", "median", "-q") == 0
    out = tmp_path / "out" / "s.tif"
    _check_tags(_tags(out), 8)
    assert all(int(_tags(out, page)[274]) == 8 for page in range(3))
    assert tifffile.imread(out).shape == stack.shape


def test_tiff_out_of_core_keeps_tags(tmp_path):
    pytest.importorskip("dask")
    image = np.random.default_rng(2).integers(0, 256, (2000, 1800)).astype(np.uint8)
    _tagged_tiff(tmp_path / "big.tif", image, 6)  # needs ~22 MB in memory
    argv = ["--op", "identity", "--max-memory", "12MB", "--threads", "1", "-q"]
    assert _run("run", tmp_path / "big.tif", "-o", tmp_path / "out", *argv) == 0
    out = tmp_path / "out" / "big.tif"
    with tifffile.TiffFile(out) as tif:
        assert tif.pages[0].is_tiled  # it did go out of core
    _check_tags(_tags(out), 6)
    np.testing.assert_array_equal(tifffile.imread(out), image)


# --- alpha at another depth: rescaled, never wrapped ----------------------------------


def _rgba16(path, alpha):
    rgb = np.random.default_rng(3).integers(0, 65536, (*alpha.shape, 3)).astype(np.uint16)
    data = np.concatenate([rgb, alpha[..., None]], axis=-1)
    tifffile.imwrite(path, data, photometric="rgb", extrasamples=["unassalpha"])
    return data


ALPHA16 = np.array([[0, 1, 128, 257], [32767, 32768, 65280, 65535]], np.uint16)


@pytest.mark.parametrize(
    "dtype, expected",
    [
        # round(a / 257): 32768 is half opaque (128), not 0 as a wrapping cast gives
        ("uint8", np.array([[0, 0, 0, 1], [127, 128, 254, 255]])),
        ("float32", ALPHA16 / 65535.0),
        ("uint16", ALPHA16),
        ("int16", np.rint(ALPHA16 * (32767 / 65535))),
    ],
)
def test_16bit_alpha_rescaled_to_the_output_dtype(tmp_path, dtype, expected):
    patch = ["--patch", "2"]
    alpha = np.tile(ALPHA16, (2, 2))
    expected = np.tile(expected, (2, 2))
    _rgba16(tmp_path / "a.tif", alpha)
    argv = ["--op", "identity", *patch, "--dtype", dtype, "-q"]
    assert _run("run", tmp_path / "a.tif", "-o", tmp_path / "out", *argv) == 0
    got = tifffile.imread(tmp_path / "out" / "a.tif")
    assert got.dtype == np.dtype(dtype)
    np.testing.assert_allclose(got[..., 3], expected.astype(got.dtype), rtol=1e-7)


def test_8bit_alpha_widened_to_16_bits(tmp_path):
    rgba = np.random.default_rng(4).integers(0, 256, (8, 9, 4)).astype(np.uint8)
    rgba[0, :4, 3] = [0, 1, 128, 255]
    tifffile.imwrite(tmp_path / "a.tif", rgba, photometric="rgb", extrasamples=["unassalpha"])
    argv = ["--op", "identity", "--patch", "2", "--dtype", "uint16", "-q"]
    assert _run("run", tmp_path / "a.tif", "-o", tmp_path / "out", *argv) == 0
    got = tifffile.imread(tmp_path / "out" / "a.tif")
    np.testing.assert_array_equal(got[..., 3], rgba[..., 3].astype(np.uint16) * 257)
    np.testing.assert_array_equal(got[..., :3], rgba[..., :3].astype(np.uint16))


def test_float_alpha_to_uint8(tmp_path):
    rgba = np.random.default_rng(5).random((8, 9, 4)).astype(np.float32)
    rgba[0, :4, 3] = [0.0, 0.5, 1.0, 0.25]
    tifffile.imwrite(tmp_path / "a.tif", rgba, photometric="rgb", extrasamples=["unassalpha"])
    argv = ["--op", "identity", "--patch", "2", "--dtype", "uint8", "-q"]
    assert _run("run", tmp_path / "a.tif", "-o", tmp_path / "out", *argv) == 0
    got = tifffile.imread(tmp_path / "out" / "a.tif")
    np.testing.assert_array_equal(got[..., 3], np.rint(rgba[..., 3].astype(np.float64) * 255))


def test_8bit_rgba_png_alpha_unchanged_with_float_output_refused_by_png(tmp_path, capsys):
    """A float result cannot be a PNG: the file fails by name, nothing half-written."""
    data = np.random.default_rng(6).integers(0, 256, (8, 9, 4)).astype(np.uint8)
    Image.fromarray(data, "RGBA").save(tmp_path / "a.png")
    argv = ["--op", "identity", "--dtype", "float32", "-q"]
    assert _run("run", tmp_path / "a.png", "-o", tmp_path / "out", *argv) == 1
    assert "a.png" in capsys.readouterr().err
    assert not list((tmp_path / "out").glob("*"))
