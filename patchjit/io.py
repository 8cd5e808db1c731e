"""Reading and writing image files: the plain-array face of :mod:`patchjit._files`.

:func:`read_image` returns an image file's samples as an array in the stored dtype;
:func:`write_image` writes an array to a new file in the format its suffix names
(TIFF through :mod:`tifffile`; PNG, JPEG, BMP, GIF, WebP and PNM through Pillow).
The command line goes through :mod:`patchjit._files` instead, which also keeps each
file's axes, alpha, EXIF, ICC profile, DPI and JPEG quality when writing a result.

Writes are atomic: the data goes to a hidden temporary file in the destination folder
(created with the permissions a plain ``open()`` gives under the umask), which is
renamed into place only once complete, so an interrupted run never leaves a
half-written output.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import numpy as np

from ._files import (
    IMAGE_SUFFIXES,
    TIFF_SUFFIXES,
    TMP_PREFIX,
    ImageReadError,
    atomic_output,
    is_stale_temporary,
    load,
)

__all__ = [
    "IMAGE_SUFFIXES",
    "TMP_PREFIX",
    "ImageReadError",
    "read_image",
    "remove_stale_temporaries",
    "write_image",
]


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image file into an array of its stored dtype, alpha included.

    Grey images are ``(H, W)``, colour ``(H, W, C)``; TIFF stacks keep their series'
    axes (e.g. ``(Z, H, W)``). Palette images are returned as RGB (RGBA with
    transparency), 1-bit images as ``bool``.

    Raises
    ------
    ImageReadError
        The file is missing, empty, not an image, corrupt or of an unsupported kind;
        the message names the file and the reason on one line.
    """
    try:
        picture = load(path)
    except ImageReadError as exc:
        raise ImageReadError(f"{path}: {exc}") from None
    return picture.full(picture.pixels)


def write_image(path: str | os.PathLike, image: np.ndarray) -> None:
    """Write ``image`` (``(H, W)`` or ``(H, W, C)``) to ``path`` atomically.

    The format is the one the suffix names. 8-bit images with 1 to 4 channels are
    written as L, LA, RGB or RGBA; uint16 as 16-bit PNG (grey, grey+alpha, RGB, RGBA)
    or PGM/PPM; TIFF takes any dtype and shape tifffile writes.
    """
    path = Path(path)
    image = np.asarray(image)
    with atomic_output(path) as tmp:
        if path.suffix.lower() in TIFF_SUFFIXES:
            import tifffile

            tifffile.imwrite(tmp, image)
        else:
            from PIL import Image

            from ._files import _save_deep

            if not _save_deep(tmp, _pil_format(path), image, {}):
                Image.fromarray(np.ascontiguousarray(image)).save(tmp, format=_pil_format(path))


def _pil_format(path: Path) -> str:
    from PIL import Image

    ext = path.suffix.lower()
    formats = Image.registered_extensions()
    if ext not in formats:
        raise ValueError(f"{path}: no image format for suffix {ext!r}")
    return formats[ext]


def remove_stale_temporaries(folder: str | os.PathLike) -> int:
    """Delete the temporary files a killed run left in ``folder``; return how many.

    Only ``folder`` itself is searched (not its subfolders), and only files that are
    provably stale are deleted: named as patchjit names its temporaries, made on this
    host by a process that no longer exists (:func:`patchjit._files.is_stale_temporary`).
    Another run's files in progress, other hosts' and other programs' files are kept.
    """
    count = 0
    try:
        entries = list(Path(folder).glob(TMP_PREFIX + "*"))
    except OSError:
        return 0
    for tmp in entries:
        if is_stale_temporary(tmp):
            with contextlib.suppress(OSError):  # gone already, or not ours to delete
                tmp.unlink()
                count += 1
    return count
