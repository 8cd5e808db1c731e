"""Every format that stores 16 bits keeps them: PNG and PNM, grey and colour, with alpha.

Inputs are written by OpenCV (16-bit colour PNG, PPM/PGM) and Pillow; grey+alpha,
interlaced and metadata-carrying 16-bit PNGs, which neither writes, by
:func:`_spec_png` below: a plain transcription of the PNG specification (filter type
0, zlib), itself checked against Pillow on 8-bit files. Outputs are read back with
OpenCV and Pillow.
"""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest
from PIL import Image, ImageCms
from scipy import ndimage

from patchjit import cli
from patchjit.io import read_image

cv2 = pytest.importorskip("cv2")

ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2),
         (0, 1, 1, 2))  # fmt: skip
COLOUR_TYPE = {1: 0, 2: 4, 3: 2, 4: 6}


def _spec_png(path, image, interlace=False, chunks=()):
    """A PNG of ``image`` (uint8 or uint16, (H, W) or (H, W, S)) from the specification."""
    image = image[..., None] if image.ndim == 2 else image
    h, w, s = image.shape
    depth = 8 * image.dtype.itemsize
    data = image.astype(">u2" if depth == 16 else np.uint8)
    raw = b""
    for x0, y0, dx, dy in ADAM7 if interlace else ((0, 0, 1, 1),):
        sub = data[y0::dy, x0::dx]
        if sub.size:
            raw += b"".join(b"\0" + row.tobytes() for row in sub)

    def chunk(kind, body):
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    ihdr = struct.pack(">IIBBBBB", w, h, depth, COLOUR_TYPE[s], 0, 0, int(interlace))
    body = [chunk(b"IHDR", ihdr), *(chunk(k, v) for k, v in chunks)]
    body += [chunk(b"IDAT", zlib.compress(raw)), chunk(b"IEND", b"")]
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + b"".join(body))


@pytest.mark.parametrize("interlace", [False, True])
@pytest.mark.parametrize("samples", [1, 2, 3, 4])
def test_spec_png_writer_agrees_with_pillow_on_8_bits(tmp_path, samples, interlace):
    image = np.random.default_rng(samples).integers(0, 256, (13, 19, samples)).astype(np.uint8)
    _spec_png(tmp_path / "a.png", image, interlace)
    got = np.asarray(Image.open(tmp_path / "a.png"))
    np.testing.assert_array_equal(got.reshape(image.shape), image)


def _run(*argv):
    return cli.main([str(a) for a in argv])


def _identity(src, out, *extra):
    return _run("run", src, "-o", out, "--op", "identity", "--patch", "4", "-q", *extra)


def _image16(shape, seed=0):
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 65536, shape).astype(np.uint16)
    values = np.array([0, 255, 256, 65535])  # what a >> 8 would merge or wrap
    image[0, :4] = values if image.ndim == 2 else values[:, None]
    return image


def _cv2_read(path):
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    return image[..., [2, 1, 0, 3][: image.shape[2]]] if image.ndim == 3 else image


@pytest.mark.parametrize("samples", [3, 4])
def test_16bit_colour_png_from_opencv_keeps_16_bits(tmp_path, samples):
    image = _image16((21, 23, samples))
    cv2.imwrite(str(tmp_path / "a.png"), image[..., [2, 1, 0, 3][:samples]])
    assert _identity(tmp_path / "a.png", tmp_path / "out") == 0
    got = _cv2_read(tmp_path / "out" / "a.png")
    assert got.dtype == np.uint16
    np.testing.assert_array_equal(got, image)


def test_16bit_rgb_png_median_matches_scipy(tmp_path):
    image = _image16((20, 22, 3), 1)
    cv2.imwrite(str(tmp_path / "a.png"), image[..., ::-1])
    assert _run("run", tmp_path / "a.png", "-o", tmp_path / "out", "--op", "median", "-q") == 0
    got = _cv2_read(tmp_path / "out" / "a.png")
    for c in range(3):
        ref = ndimage.median_filter(image[..., c], size=3, mode="mirror")
        np.testing.assert_array_equal(got[..., c], ref)


@pytest.mark.parametrize("samples, interlace", [(2, False), (2, True), (3, True), (4, True)])
def test_16bit_grey_alpha_and_interlaced_png_keep_16_bits(tmp_path, samples, interlace):
    image = _image16((17, 19, samples), samples)
    _spec_png(tmp_path / "a.png", image, interlace)
    assert _identity(tmp_path / "a.png", tmp_path / "out") == 0
    got = read_image(tmp_path / "out" / "a.png")
    assert got.dtype == np.uint16
    np.testing.assert_array_equal(got, image)
    if samples > 2:
        np.testing.assert_array_equal(_cv2_read(tmp_path / "out" / "a.png"), image)


def test_16bit_grey_png_from_pillow_and_8bit_colour_keep_their_depth(tmp_path):
    grey = _image16((18, 20))
    Image.fromarray(grey).save(tmp_path / "g.png")  # Pillow's I;16
    rgb = np.random.default_rng(2).integers(0, 256, (18, 20, 3)).astype(np.uint8)
    cv2.imwrite(str(tmp_path / "c.png"), rgb[..., ::-1])
    assert _identity(tmp_path / "g.png", tmp_path / "out") == 0
    assert _identity(tmp_path / "c.png", tmp_path / "out") == 0
    np.testing.assert_array_equal(_cv2_read(tmp_path / "out" / "g.png"), grey)
    assert Image.open(tmp_path / "out" / "c.png").mode == "RGB"
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "out" / "c.png")), rgb)


def test_16bit_png_keeps_icc_profile_dpi_and_exif(tmp_path):
    image = _image16((16, 18, 3), 3)
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation
    exif[0x013B] = "Ann Author"
    raw_exif = exif.tobytes()
    raw_exif = raw_exif[6:] if raw_exif.startswith(b"Exif\0\0") else raw_exif
    chunks = [(b"iCCP", b"sRGB\0\0" + zlib.compress(icc)),
              (b"pHYs", struct.pack(">IIB", 11811, 11811, 1)),  # 300 dpi
              (b"eXIf", raw_exif)]  # fmt: skip
    _spec_png(tmp_path / "a.png", image, chunks=chunks)
    src = Image.open(tmp_path / "a.png")
    assert src.info["icc_profile"] == icc and src.getexif()[0x0112] == 6  # the file is right
    assert _identity(tmp_path / "a.png", tmp_path / "out") == 0
    out = Image.open(tmp_path / "out" / "a.png")
    assert out.info["icc_profile"] == icc
    assert out.info["dpi"] == pytest.approx((300, 300), abs=0.01)
    assert out.getexif()[0x0112] == 6 and out.getexif()[0x013B] == "Ann Author"
    np.testing.assert_array_equal(_cv2_read(tmp_path / "out" / "a.png"), image)


def test_16bit_ppm_and_pgm_from_opencv_keep_16_bits(tmp_path):
    rgb, grey = _image16((15, 17, 3), 4), _image16((15, 17), 5)
    cv2.imwrite(str(tmp_path / "c.ppm"), rgb[..., ::-1])
    cv2.imwrite(str(tmp_path / "g.pgm"), grey)
    for name in ("c.ppm", "g.pgm"):
        assert _identity(tmp_path / name, tmp_path / "out") == 0
    np.testing.assert_array_equal(_cv2_read(tmp_path / "out" / "c.ppm"), rgb)
    got = cv2.imread(str(tmp_path / "out" / "g.pgm"), cv2.IMREAD_UNCHANGED)
    assert got.dtype == np.uint16
    np.testing.assert_array_equal(got, grey)


def test_dtype_uint16_writes_16bit_colour_png_with_alpha_widened(tmp_path):
    rgba = np.random.default_rng(6).integers(0, 256, (12, 14, 4)).astype(np.uint8)
    rgba[0, :3, 3] = [0, 128, 255]
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    assert _identity(tmp_path / "a.png", tmp_path / "out", "--dtype", "uint16") == 0
    got = _cv2_read(tmp_path / "out" / "a.png")
    assert got.dtype == np.uint16
    np.testing.assert_array_equal(got[..., :3], rgba[..., :3])  # values, not rescaled
    np.testing.assert_array_equal(got[..., 3], rgba[..., 3].astype(np.uint16) * 257)


def test_16bit_alpha_png_to_uint8_is_rescaled_not_wrapped(tmp_path):
    rgba = _image16((12, 14, 4), 7)
    rgba[..., :3] //= 257  # colour values that fit uint8
    rgba[0, :4, 3] = [0, 32768, 65280, 65535]
    cv2.imwrite(str(tmp_path / "a.png"), rgba[..., [2, 1, 0, 3]])
    assert _identity(tmp_path / "a.png", tmp_path / "out", "--dtype", "uint8") == 0
    out = Image.open(tmp_path / "out" / "a.png")
    assert out.mode == "RGBA"
    got = np.asarray(out)
    np.testing.assert_array_equal(got[0, :4, 3], [0, 128, 254, 255])
    np.testing.assert_array_equal(got[..., 3], np.rint(rgba[..., 3] / 257))


def test_truncated_16bit_png_fails_by_name_and_the_batch_goes_on(tmp_path, capsys):
    image = _image16((30, 30, 3), 8)
    (tmp_path / "in").mkdir()
    cv2.imwrite(str(tmp_path / "in" / "a.png"), image)
    data = (tmp_path / "in" / "a.png").read_bytes()
    (tmp_path / "in" / "bad.png").write_bytes(data[: len(data) // 2])
    assert _identity(tmp_path / "in", tmp_path / "out") == cli.EXIT_FAILED
    err = capsys.readouterr().err
    assert "bad.png" in err and "a.png" not in err.replace("bad.png", "")
    np.testing.assert_array_equal(_cv2_read(tmp_path / "out" / "a.png"), image[..., ::-1])
