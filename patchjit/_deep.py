"""16-bit images that Pillow cannot hold: colour PNG and PNM, read and written at depth.

Pillow has no 16-bit colour mode: it opens a 16-bit RGB, RGBA or grey+alpha PNG, and a
16-bit PPM, as 8-bit (``value >> 8``), and cannot write them. The libraries that can
(OpenCV, imagecodecs) are large binary dependencies, so this module holds the small
part of the two formats that is needed, from their specifications:

- PNG (ISO/IEC 15948): the ``IHDR``/``IDAT`` chunks, zlib (the standard library), the
  five scanline filters undone by one small numba kernel, Adam7 interlacing; written
  with filter "Up" per row and zlib level 1, and the ``iCCP``, ``pHYs`` and ``eXIf``
  chunks (ICC profile, DPI, EXIF) the 8-bit path keeps through Pillow.
- PNM (netpbm): binary ``P5`` (grey) and ``P6`` (RGB) with a maximum value above 255,
  big-endian 16-bit samples; written with the input's maximum value.

Everything else (8-bit files, 16-bit grey PNG, which Pillow reads as ``I;16``) goes
through Pillow as before.
"""

from __future__ import annotations

import re
import struct
import zlib
from pathlib import Path

import numpy as np
from numba import njit

from . import _sigint

__all__ = ["png_depth", "pnm_header", "read_png", "read_pnm", "write_png", "write_pnm"]

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# PNG colour type -> samples per pixel (0 grey, 2 RGB, 4 grey+alpha, 6 RGBA)
_PNG_SAMPLES = {0: 1, 2: 3, 4: 2, 6: 4}
_PNG_COLOUR_TYPE = {v: k for k, v in _PNG_SAMPLES.items()}
# Adam7 passes: (x0, y0, dx, dy)
_ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2),
          (0, 1, 1, 2))  # fmt: skip


class DeepImageError(ValueError):
    """A 16-bit file whose structure is broken; the message is one line."""


# --- PNG ---------------------------------------------------------------------------------


def png_depth(path: str | Path) -> tuple[int, int] | None:
    """``(bit depth, samples per pixel)`` from a PNG's header, or ``None`` if not a PNG."""
    with open(path, "rb") as f:
        head = f.read(33)
    if len(head) < 33 or head[:8] != PNG_SIGNATURE or head[12:16] != b"IHDR":
        return None
    return head[24], _PNG_SAMPLES.get(head[25], 0)


def _chunks(data: bytes):
    pos = 8
    while pos + 12 <= len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        body = data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length] or b"\0" * 4)
        if len(body) != length or zlib.crc32(kind + body) != crc:
            raise DeepImageError(f"PNG chunk {kind.decode('latin-1')!r} is truncated or corrupt")
        yield kind, body
        if kind == b"IEND":
            return
        pos += 12 + length
    raise DeepImageError("PNG ends before its IEND chunk (truncated)")


def read_png(path: str | Path) -> np.ndarray:
    """A 16-bit PNG's samples: ``(H, W)`` grey or ``(H, W, S)``, native ``uint16``."""
    data = Path(path).read_bytes()
    if data[:8] != PNG_SIGNATURE:
        raise DeepImageError("not a PNG file")
    header, idat = None, []
    for kind, body in _chunks(data):
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
    if header is None:
        raise DeepImageError("PNG without an IHDR chunk")
    width, height, depth, colour, _, _, interlace = header
    if depth != 16 or colour not in _PNG_SAMPLES:
        raise DeepImageError(f"not a 16-bit grey or colour PNG (depth {depth}, type {colour})")
    samples = _PNG_SAMPLES[colour]
    try:
        raw = np.frombuffer(zlib.decompress(b"".join(idat)), np.uint8)
    except zlib.error as exc:
        raise DeepImageError(f"PNG pixel data is corrupt: {exc}") from None
    bpp = 2 * samples
    _sigint.install()  # _unfilter compiles on first use
    out = np.empty((height, width * bpp), np.uint8)
    passes = _ADAM7 if interlace else ((0, 0, 1, 1),)
    pos = 0
    for x0, y0, dx, dy in passes:
        w, h = -(-(width - x0) // dx), -(-(height - y0) // dy)
        if w <= 0 or h <= 0:
            continue
        n = h * (1 + w * bpp)
        if pos + n > raw.size:
            raise DeepImageError("PNG pixel data is truncated")
        rows = np.empty((h, w * bpp), np.uint8)
        if not _unfilter(raw[pos : pos + n], rows, bpp):
            raise DeepImageError("PNG pixel data has an unknown filter type (corrupt)")
        pos += n
        view = out.reshape(height, width, bpp)[y0::dy, x0::dx]
        view[...] = rows.reshape(h, w, bpp)
    image = out.view(">u2").reshape(height, width, samples).astype(np.uint16)
    return image[..., 0] if samples == 1 else image


@njit(cache=False, nogil=True)
def _unfilter(raw, rows, bpp):  # pragma: no cover - compiled
    """Undo the PNG scanline filters of ``raw`` into ``rows``; False on a bad filter."""
    h, stride = rows.shape
    pos = 0
    for y in range(h):
        kind = raw[pos]
        pos += 1
        for x in range(stride):
            a = np.int32(rows[y, x - bpp]) if x >= bpp else np.int32(0)
            b = np.int32(rows[y - 1, x]) if y > 0 else np.int32(0)
            c = np.int32(rows[y - 1, x - bpp]) if x >= bpp and y > 0 else np.int32(0)
            v = np.int32(raw[pos + x])
            if kind == 0:
                pred = np.int32(0)
            elif kind == 1:
                pred = a
            elif kind == 2:
                pred = b
            elif kind == 3:
                pred = (a + b) // 2
            elif kind == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
            else:
                return False
            rows[y, x] = (v + pred) & 255
        pos += stride
    return True


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def write_png(path: str | Path, image: np.ndarray, icc_profile=None, dpi=None, exif=None):
    """Write ``uint16`` ``(H, W)`` or ``(H, W, S)`` (S = 2, 3, 4) as a 16-bit PNG."""
    image = np.asarray(image)
    if image.dtype != np.uint16:
        raise TypeError(f"write_png writes uint16 images, got {image.dtype}")
    samples = 1 if image.ndim == 2 else image.shape[2]
    if image.ndim not in (2, 3) or samples not in _PNG_COLOUR_TYPE:
        raise ValueError(f"a PNG holds 1 to 4 samples per pixel, got shape {image.shape}")
    height, width = image.shape[:2]
    rows = np.ascontiguousarray(image, ">u2").view(np.uint8).reshape(height, -1)
    up = rows.copy()
    up[1:] -= rows[:-1]  # filter "Up": the byte above is subtracted (mod 256)
    filtered = np.concatenate([np.full((height, 1), 2, np.uint8), up], axis=1)
    ihdr = struct.pack(">IIBBBBB", width, height, 16, _PNG_COLOUR_TYPE[samples], 0, 0, 0)
    parts = [PNG_SIGNATURE, _chunk(b"IHDR", ihdr)]
    if icc_profile:
        parts.append(_chunk(b"iCCP", b"ICC Profile\0\0" + zlib.compress(icc_profile)))
    if dpi:
        ppm = [max(1, round(float(d) / 0.0254)) for d in dpi]
        parts.append(_chunk(b"pHYs", struct.pack(">IIB", ppm[0], ppm[1], 1)))
    if exif:
        exif = exif[6:] if exif.startswith(b"Exif\0\0") else exif
        parts.append(_chunk(b"eXIf", exif))
    # zlib level 1, as OpenCV writes PNG: 16-bit samples' noisy low bytes gain little from
    # more effort (a 4096 x 4096 RGB photo: 34 MB in 5 s at level 1, 29 MB in 26 s at 6).
    parts += [_chunk(b"IDAT", zlib.compress(filtered.tobytes(), 1)), _chunk(b"IEND", b"")]
    with open(path, "wb") as f:
        f.write(b"".join(parts))


# --- PNM ---------------------------------------------------------------------------------

_PNM_HEADER = re.compile(rb"(P[56])(?:\s+|#[^\n]*\n)+(\d+)(?:\s+|#[^\n]*\n)+(\d+)"
                         rb"(?:\s+|#[^\n]*\n)+(\d+)\s")  # fmt: skip


def pnm_header(path: str | Path) -> tuple[int, int, int, int, int] | None:
    """``(samples, width, height, maxval, offset)`` of a binary PGM/PPM, else ``None``."""
    with open(path, "rb") as f:
        head = f.read(1024)
    match = _PNM_HEADER.match(head)
    if match is None:
        return None
    magic, width, height, maxval = match.groups()
    return (1 if magic == b"P5" else 3), int(width), int(height), int(maxval), match.end()


def read_pnm(path: str | Path) -> tuple[np.ndarray, int]:
    """A 16-bit binary PGM/PPM's samples (native ``uint16``) and its maximum value."""
    header = pnm_header(path)
    if header is None or header[3] < 256:
        raise DeepImageError("not a 16-bit binary PGM/PPM")
    samples, width, height, maxval, offset = header
    n = width * height * samples
    data = np.fromfile(path, ">u2", count=n, offset=offset)
    if data.size != n:
        raise DeepImageError(f"PNM pixel data is truncated ({data.size} of {n} samples)")
    image = data.astype(np.uint16).reshape(height, width, samples)
    return (image[..., 0] if samples == 1 else image), maxval


def write_pnm(path: str | Path, image: np.ndarray, maxval: int = 65535) -> None:
    """Write ``uint16`` grey ``(H, W)`` (P5) or RGB ``(H, W, 3)`` (P6), values clipped
    to ``maxval``."""
    image = np.asarray(image)
    if image.dtype != np.uint16 or not (image.ndim == 2 or image.shape[-1] == 3):
        raise ValueError(f"PNM holds uint16 grey or RGB, got {image.dtype} {image.shape}")
    magic = b"P5" if image.ndim == 2 else b"P6"
    height, width = image.shape[:2]
    body = np.minimum(image, maxval).astype(">u2").tobytes()
    with open(path, "wb") as f:
        f.write(b"%s\n%d %d\n%d\n" % (magic, width, height, maxval) + body)
