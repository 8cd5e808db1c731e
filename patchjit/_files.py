"""Image files with their metadata: what the command line reads, processes and writes.

A :class:`Picture` is an image file's pixels plus what is needed to write a result
back the way the file's owner expects. Both come from the imaging libraries' own
metadata, never from guessing at array shapes:

- TIFF through :mod:`tifffile`: the first series, its axes (``YX``, ``YXS``, ``ZYX``,
  ``TYX``, ``CYX``, ``QYX``, ...), photometric, planar configuration, extra samples
  (alpha), resolution, ICC profile, description, axes metadata, orientation and the
  descriptive tags (:data:`TIFF_KEPT_TAGS`).
- PNG, JPEG, BMP, GIF, WebP and PNM through Pillow: the mode (``L``, ``LA``, ``RGB``,
  ``RGBA``, ``CMYK``, ``P``, ``1``, ``I;16``, ``I``, ``F``), EXIF (orientation
  included), ICC profile, DPI and the JPEG quantisation tables. 16-bit colour PNG
  (RGB, RGBA, grey+alpha) and 16-bit PNM, which Pillow reads as 8-bit, are read and
  written at full depth by :mod:`patchjit._deep` (modes ``RGB;16``, ``RGBA;16``,
  ``LA;16``, and ``I;16`` for a 16-bit PGM), with Pillow's metadata.

Colour samples and alpha are kept apart: :attr:`Picture.pixels` holds the samples to
process and :attr:`Picture.alpha` the alpha (or other extra) samples, written back
unchanged. Palette images become RGB (RGBA when the palette has transparency).

Writes are atomic and honour the umask: data goes to a hidden temporary file created
like a plain ``open()`` would create it, which is renamed into place once complete.
A temporary file's name says who made it: ``.patchjit-tmp-HOST-PID-TOKEN.suffix``, so
that a later run can tell one left by a killed process (same host, process gone:
:func:`is_stale_temporary`) from one another run is still writing.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import secrets
import socket
from pathlib import Path

import numpy as np

__all__ = [
    "ImageReadError",
    "Picture",
    "atomic_output",
    "is_stale_temporary",
    "load",
    "rescale_alpha",
    "save",
    "stored_size",
    "tiff_info",
    "tiff_write_options",
]

TMP_PREFIX = ".patchjit-tmp-"
# HOST-PID-TOKEN after the prefix; the host is greedy, so it may hold dashes itself.
_TMP_NAME = re.compile(re.escape(TMP_PREFIX) + r"(?P<host>.+)-(?P<pid>[0-9]+)-[0-9a-f]{12}(\.\w+)?")
TIFF_SUFFIXES = (".tif", ".tiff")
PIL_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".ppm", ".pgm", ".pbm", ".pnm")
IMAGE_SUFFIXES = TIFF_SUFFIXES + PIL_SUFFIXES  # what folders are searched for

# Pillow modes: (colour samples, alpha samples); other modes are converted on reading.
_PIL_MODES = {
    "1": (1, 0), "L": (1, 0), "I;16": (1, 0), "I": (1, 0), "F": (1, 0),
    "LA": (1, 1), "RGB": (3, 0), "RGBA": (3, 1), "CMYK": (4, 0),
    "LA;16": (1, 1), "RGB;16": (3, 0), "RGBA;16": (3, 1),  # 16-bit, through _deep
}  # fmt: skip
# 16-bit samples per pixel -> our mode name (Pillow has no 16-bit colour modes)
_DEEP_MODES = {1: "I;16", 2: "LA;16", 3: "RGB;16", 4: "RGBA;16"}
_PIL_CONVERT = {"P": "RGB", "PA": "RGBA", "I;16B": "I;16", "I;16L": "I;16", "I;16N": "I;16"}
# TIFF compressions tifffile writes without imagecodecs; others are written uncompressed.
_TIFF_COMPRESSIONS = {1, 8, 32946}
# Tags copied from the input's first page to the output's, by code: (name, writeonce).
# Orientation goes on every page; the descriptive ones on the first page of the series.
# DateTime is written through tifffile's ``datetime`` and ImageDescription through
# ``description``; Software is not kept (the output is written by other software).
TIFF_KEPT_TAGS = {
    269: ("DocumentName", True), 271: ("Make", True), 272: ("Model", True),
    274: ("Orientation", False), 285: ("PageName", True), 315: ("Artist", True),
    316: ("HostComputer", True), 700: ("XMP", True), 33432: ("Copyright", True),
}  # fmt: skip


class ImageReadError(Exception):
    """An input file could not be read as an image; the message is one line."""


@dataclasses.dataclass
class Picture:
    """An image file's pixels and what is needed to write it back faithfully.

    Attributes
    ----------
    pixels : numpy.ndarray
        The samples to process, in the file's axis order (see :attr:`axes`); alpha
        excluded. A single colour sample has no ``S`` axis (grey+alpha is ``YX``).
    axes : str
        One letter per axis of :attr:`pixels`: ``Y``, ``X`` spatial, ``Z`` depth,
        ``S`` colour samples, and any other letter (``T``, ``C``, ``Q``, ``I`` ...)
        an axis of independent images.
    alpha : numpy.ndarray or None
        Alpha (or other extra) samples, written back unchanged: the stored array's
        axes with ``S`` holding only the extra samples.
    dtype : numpy.dtype
        The stored dtype (``bool`` for 1-bit images).
    kind : {"tiff", "pil"}
        Which library writes the result.
    options : dict
        What the writer needs (mode, format, EXIF, ICC, DPI, quantisation tables,
        photometric, resolution, axes metadata ...).
    """

    pixels: np.ndarray
    axes: str
    alpha: np.ndarray | None
    dtype: np.dtype
    kind: str
    options: dict

    def full(self, result: np.ndarray) -> np.ndarray:
        """``result`` (shaped like :attr:`pixels`, or scaled) with the alpha samples put back.

        The result is in the stored axis order, ready to write; alpha is rescaled to
        ``result``'s dtype by :func:`rescale_alpha` (same opacity, not wrapped).
        """
        if self.alpha is None:
            return result
        s = self.options["sample_axis"]
        if "S" not in self.axes:
            result = np.expand_dims(result, s)
        alpha = rescale_alpha(_resize_nearest(self.alpha, result.shape, s), result.dtype)
        return np.concatenate([result, alpha], axis=s)


def _resize_nearest(a: np.ndarray, shape: tuple, skip: int) -> np.ndarray:
    """``a`` resized to ``shape`` on every axis but ``skip``, nearest-exact: pixel ``i``
    of ``n_out`` takes ``floor((i + 0.5) * n_in / n_out)`` (alpha under ``--scale``)."""
    for axis, (n_in, n_out) in enumerate(zip(a.shape, shape)):
        if axis != skip % a.ndim and n_in != n_out:
            index = ((np.arange(n_out) + 0.5) * n_in / n_out).astype(np.intp)
            a = np.take(a, index, axis=axis)
    return a


def rescale_alpha(alpha: np.ndarray, dtype) -> np.ndarray:
    """``alpha`` in ``dtype`` with the same opacity: full scale maps to full scale.

    Full opacity is an integer dtype's maximum, or 1.0 for floats. Integer to integer:
    ``round(a * max_out / max_in)`` (uint16 to uint8 is ``round(a / 257)``, uint8 to
    uint16 is ``a * 257``); integer to float: ``a / max_in``; float to integer:
    ``round(clip(a, 0, 1) * max_out)``; float to float: unchanged values. Same dtype:
    unchanged.
    """
    src, dst = np.dtype(alpha.dtype), np.dtype(dtype)
    if src == dst:
        return alpha
    if src == np.bool_:
        alpha = alpha.astype(np.uint8)
        src = np.dtype(np.uint8)
    if src.kind == "f" and dst.kind == "f":
        return alpha.astype(dst)
    if src.kind == "f":
        scaled = np.clip(alpha.astype(np.float64), 0.0, 1.0) * np.iinfo(dst).max
        return np.rint(scaled).astype(dst)
    full = float(np.iinfo(src).max)
    if dst.kind == "f":
        return (alpha.astype(np.float64) / full).astype(dst)
    out_max = np.iinfo(dst).max
    scaled = np.clip(alpha.astype(np.float64), 0.0, None) * (out_max / full)
    return np.clip(np.rint(scaled), 0, out_max).astype(dst)


# --- reading -------------------------------------------------------------------------


def load(path: str | os.PathLike) -> Picture:
    """Read an image file with its metadata.

    Raises
    ------
    ImageReadError
        Missing, empty, not an image, corrupt or of an unsupported kind; the message
        is one line naming the reason (the caller adds the file name).
    """
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise ImageReadError(f"cannot open: {exc.strerror or exc}") from None
    if size == 0:
        raise ImageReadError("empty file")
    if path.suffix.lower() in TIFF_SUFFIXES:
        return _load_tiff(path)
    return _load_pil(path)


def _tiff_options(tif, series) -> dict:
    """What writing a result back like ``series`` needs (read from the tags only)."""
    page = series.keyframe
    tags = []
    for code, (_, writeonce) in TIFF_KEPT_TAGS.items():
        tag = page.tags.get(code)
        if tag is not None:
            value = int(tag.value) if code == 274 else tag.value
            tags.append((code, int(tag.dtype), tag.count, value, writeonce))
    datetime = page.tags.get(306)
    return {
        "photometric": int(page.photometric),
        "planarconfig": int(page.planarconfig),
        "compression": int(page.compression)
        if int(page.compression) in _TIFF_COMPRESSIONS
        else None,
        "resolution": page.resolution if "XResolution" in page.tags else None,
        "resolutionunit": int(page.resolutionunit),
        "iccprofile": page.iccprofile,
        "extrasamples": tuple(int(e) for e in page.extrasamples),
        "imagej": tif.imagej_metadata if tif.is_imagej else None,
        "description": None if tif.is_shaped or tif.is_imagej else page.description,
        "colormap": page.colormap,
        "stored_axes": series.axes,
        "tags": tuple(tags),
        "datetime": datetime.value if datetime is not None else None,
    }


def tiff_info(path: str | os.PathLike) -> tuple[tuple[int, ...], np.dtype, dict]:
    """A TIFF's first series: ``(shape, dtype, options)`` from its tags, no pixels read.

    ``options`` are what :func:`tiff_write_options` needs, with ``stored_axes``.
    """
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            return tuple(series.shape), np.dtype(series.dtype), _tiff_options(tif, series)
    except tifffile.TiffFileError as exc:
        raise ImageReadError(f"not an image: {_first_line(exc)}") from None
    except Exception as exc:
        raise ImageReadError(f"cannot read TIFF: {_first_line(exc)}") from None


def stored_size(path: str | os.PathLike) -> tuple[tuple[int, ...], np.dtype]:
    """An image file's stored ``(shape, dtype)`` from its header, without the pixels.

    TIFF: the first series (alpha included); Pillow: ``(H, W[, bands])`` of the mode
    the pixels are read as. Raises :class:`ImageReadError` like :func:`load`.
    """
    path = Path(path)
    if path.suffix.lower() in TIFF_SUFFIXES:
        shape, dtype, _ = tiff_info(path)
        return shape, dtype
    from PIL import Image, UnidentifiedImageError

    deep = _deep_shape(path)
    if deep is not None:
        return deep, np.dtype(np.uint16)
    try:
        with Image.open(path) as im:
            mode = im.mode
            if mode == "P":
                mode = "RGBA" if "transparency" in im.info else "RGB"
            mode = _PIL_CONVERT.get(mode, mode)
            bands = Image.getmodebands(mode)
            w, h = im.size
    except UnidentifiedImageError:
        raise ImageReadError("not an image: Pillow cannot identify its format") from None
    except Exception as exc:
        raise ImageReadError(f"cannot read image: {_first_line(exc)}") from None
    dtype = {"1": np.bool_, "I;16": np.uint16, "I": np.int32, "F": np.float32}.get(mode, np.uint8)
    return ((h, w, bands) if bands > 1 else (h, w)), np.dtype(dtype)


def _deep_shape(path: Path) -> tuple[int, ...] | None:
    """The shape of a 16-bit image Pillow would read as 8-bit (or as ``I``), else None."""
    from . import _deep

    try:
        png = _deep.png_depth(path)
        if png is not None:
            if png[0] != 16 or png[1] < 2:
                return None
            with open(path, "rb") as f:
                w, h = np.frombuffer(f.read(24)[16:24], ">u4")
            return int(h), int(w), png[1]
        pnm = _deep.pnm_header(path)
    except OSError:
        return None
    if pnm is None or pnm[3] < 256:
        return None
    samples, w, h = pnm[:3]
    return (h, w) if samples == 1 else (h, w, samples)


def _load_deep(path: Path, im) -> tuple[np.ndarray, str, dict]:
    """``(data, mode, extra options)`` of a 16-bit colour PNG or 16-bit PNM."""
    from . import _deep

    try:
        if im.format == "PNG":
            data = _deep.read_png(path)
            return data, _DEEP_MODES[data.shape[2]], {}
        data, maxval = _deep.read_pnm(path)
    except _deep.DeepImageError as exc:
        raise ImageReadError(f"cannot read image: {exc}") from None
    samples = 1 if data.ndim == 2 else data.shape[2]
    return data, _DEEP_MODES[samples], {"maxval": maxval}


def _load_tiff(path: Path) -> Picture:
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            data = series.asarray()
            axes = series.axes
            options = _tiff_options(tif, series)
    except tifffile.TiffFileError as exc:
        raise ImageReadError(f"not an image: {_first_line(exc)}") from None
    except Exception as exc:  # corrupt data, unsupported encodings
        raise ImageReadError(f"cannot read TIFF: {_first_line(exc)}") from None
    if options["photometric"] == 3 and options["colormap"] is not None:  # PALETTE
        rgb = np.moveaxis(options["colormap"][:, data], 0, -1)
        data, axes = rgb, axes + "S"
        options.update(photometric=2, planarconfig=1, extrasamples=())
    options.pop("colormap")
    alpha = None
    n_alpha = sum(e in (1, 2) for e in options["extrasamples"])  # associated/unassociated
    if n_alpha and "S" in axes:
        s = axes.index("S")
        n_colour = data.shape[s] - n_alpha
        alpha = np.take(data, range(n_colour, data.shape[s]), axis=s)
        data = np.take(data, range(n_colour), axis=s)
        options["sample_axis"] = s
        if n_colour == 1:
            data, axes = np.squeeze(data, s), axes.replace("S", "")
    return Picture(data, axes, alpha, data.dtype, "tiff", options)


def _load_pil(path: Path) -> Picture:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            n_frames = getattr(im, "n_frames", 1)
            if n_frames > 1:
                raise ImageReadError(
                    f"{im.format} with {n_frames} frames: animated images are not supported"
                )
            info = im.info
            options = {
                "format": im.format,
                "exif": info.get("exif"),
                "icc_profile": info.get("icc_profile"),
                "dpi": info.get("dpi"),
            }
            if im.format == "JPEG":
                from PIL import JpegImagePlugin

                options["qtables"] = im.quantization
                options["subsampling"] = JpegImagePlugin.get_sampling(im)
            mode = im.mode
            if mode == "P" and "transparency" in info:
                mode = "RGBA"
            mode = _PIL_CONVERT.get(mode, mode)
            if mode not in _PIL_MODES:
                raise ImageReadError(f"Pillow mode {im.mode!r} is not supported")
            if im.format in ("PNG", "PPM") and _deep_shape(path) is not None:
                data, mode, extra = _load_deep(path, im)
                options.update(extra)
            else:
                im = im.convert(mode) if mode != im.mode else im
                data = np.asarray(im)
    except ImageReadError:
        raise
    except UnidentifiedImageError:
        raise ImageReadError("not an image: Pillow cannot identify its format") from None
    except Exception as exc:  # truncated or corrupt data
        raise ImageReadError(f"cannot read image: {_first_line(exc)}") from None
    options["mode"] = mode
    n_colour, n_alpha = _PIL_MODES[mode]
    alpha, axes = None, "YXS" if data.ndim == 3 else "YX"
    if n_alpha:
        alpha, data = data[..., n_colour:], data[..., :n_colour]
        options["sample_axis"] = 2
    if n_colour == 1 and data.ndim == 3:
        data, axes = data[..., 0], "YX"
    return Picture(np.ascontiguousarray(data), axes, alpha, data.dtype, "pil", options)


# --- writing -------------------------------------------------------------------------


def save(path: str | os.PathLike, picture: Picture, image: np.ndarray, quality=None) -> None:
    """Write ``image`` (all stored samples, stored axis order) like ``picture``'s file.

    ``quality`` applies to JPEG and WebP: ``None`` keeps a JPEG's own quantisation
    tables (Pillow's ``quality="keep"``) and otherwise means 95.
    """
    path = Path(path)
    with atomic_output(path) as tmp:
        if picture.kind == "tiff":
            _save_tiff(tmp, picture, image)
        else:
            _save_pil(tmp, picture, image, quality)


def tiff_write_options(options: dict, dtype) -> dict:
    """:func:`tifffile.imwrite` keywords that write ``dtype`` pixels like the file read.

    ``options`` come from :func:`load` or :func:`tiff_info`. ImageJ hyperstacks stay
    ImageJ where ImageJ can hold ``dtype`` (uint8, uint16, float32).
    """
    o = options
    kwargs = {
        "photometric": o["photometric"],
        "planarconfig": o["planarconfig"] if "S" in o["stored_axes"] else None,
        "compression": o["compression"],
        "iccprofile": o["iccprofile"],
        "extrasamples": o["extrasamples"] or None,
        "extratags": list(o["tags"]) or None,
        "datetime": o["datetime"],
    }
    if o["resolution"] is not None:
        kwargs.update(resolution=o["resolution"], resolutionunit=o["resolutionunit"])
    if o["imagej"] is not None and np.dtype(dtype) in (np.uint8, np.uint16, np.float32):
        kwargs.update(imagej=True, metadata={**o["imagej"], "axes": o["stored_axes"]})
        kwargs.pop("planarconfig")
    else:
        kwargs["metadata"] = {"axes": o["stored_axes"]}
        if o["description"]:
            kwargs["description"] = o["description"]
    return {k: v for k, v in kwargs.items() if v is not None}


def _save_tiff(tmp: Path, picture: Picture, image: np.ndarray) -> None:
    import tifffile

    kwargs = tiff_write_options(picture.options, image.dtype)
    if image.dtype == np.bool_:
        image = image.astype(np.uint8)
    tifffile.imwrite(tmp, image, **kwargs)


def _save_pil(tmp: Path, picture: Picture, image: np.ndarray, quality) -> None:
    from PIL import Image

    o = picture.options
    fmt = o["format"]
    mode = o["mode"]
    if _save_deep(tmp, fmt, image, o):
        return
    if image.dtype == np.uint8 and mode in ("L", "LA", "RGB", "RGBA", "CMYK"):
        h, w = image.shape[:2]
        im = Image.frombytes(mode, (w, h), np.ascontiguousarray(image).tobytes())
    else:
        im = Image.fromarray(np.ascontiguousarray(image))
    kwargs = {k: o[k] for k in ("exif", "icc_profile", "dpi") if o.get(k)}
    if fmt == "JPEG" and quality is None and o.get("qtables"):
        kwargs["qtables"] = o["qtables"]
        if o["subsampling"] in (0, 1, 2):
            kwargs["subsampling"] = o["subsampling"]
    elif fmt in ("JPEG", "WEBP"):
        kwargs["quality"] = 95 if quality is None else quality
    try:
        im.save(tmp, format=fmt, **kwargs)
    except (OSError, KeyError, ValueError) as exc:
        raise OSError(
            f"cannot write {image.dtype} {im.mode} pixels as {fmt}: {_first_line(exc)}"
        ) from None


def _save_deep(tmp: Path, fmt: str, image: np.ndarray, options: dict) -> bool:
    """Write 16-bit colour PNG or 16-bit PNM (Pillow cannot); False for anything else."""
    from . import _deep

    if image.dtype != np.uint16:
        return False
    if fmt == "PNG" and image.ndim == 3:
        keep = {k: options.get(k) for k in ("icc_profile", "dpi", "exif")}
        _deep.write_png(tmp, image, **keep)
        return True
    if fmt == "PPM" and (image.ndim == 2 or image.shape[2] == 3):
        _deep.write_pnm(tmp, image, options.get("maxval", 65535))
        return True
    return False


@contextlib.contextmanager
def atomic_output(path: Path):
    """Yield a hidden temporary path beside ``path``; rename it into place on success.

    The temporary file is created with mode 0o666 minus the umask, as a plain
    ``open()`` would create the output; on any error (Ctrl-C included) it is removed.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        name = f"{TMP_PREFIX}{_host()}-{os.getpid()}-{secrets.token_hex(6)}"
        tmp = path.parent / (name + path.suffix)
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            break
        except FileExistsError:
            continue
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _host() -> str:
    """This machine's name as it goes into a temporary file's name."""
    return re.sub(r"[^A-Za-z0-9.-]", "_", socket.gethostname()) or "localhost"


def is_stale_temporary(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a temporary file :func:`atomic_output` made in a process gone.

    True only for a regular file named as :func:`atomic_output` names them whose
    process ran on this host and no longer exists: nobody can still be writing it.
    Files of live processes (another run into the same folder), of other hosts (a
    shared network folder) and of other programs are never stale.
    """
    path = Path(path)
    match = _TMP_NAME.fullmatch(path.name)
    if match is None or match["host"] != _host():
        return False
    try:
        if not path.is_file() or path.is_symlink():
            return False
        os.kill(int(match["pid"]), 0)
    except ProcessLookupError:
        return True
    except (OSError, OverflowError, ValueError):  # alive (another user's) or unknowable
        return False
    return False


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
