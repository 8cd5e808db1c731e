"""Reading and writing image files for the command line.

TIFF goes through :mod:`tifffile` (8/16-bit integer and float32, grey or colour);
PNG, JPEG and BMP through :mod:`imageio` (Pillow underneath). Writes are atomic: the
data goes to a hidden temporary file in the destination folder, which is renamed into
place only once complete, so an interrupted run never leaves a half-written output.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

import numpy as np

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
TMP_PREFIX = ".patchjit-tmp-"
_TIFF = (".tif", ".tiff")


class ImageReadError(Exception):
    """An input file could not be read as an image."""


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image file into an array of its stored dtype.

    Grey images are 2-D ``(H, W)``; colour images ``(H, W, C)``.

    Raises
    ------
    ImageReadError
        The file is missing, unreadable, corrupt or not an image; the message names
        the file and the reason.
    """
    path = Path(path)
    try:
        if path.suffix.lower() in _TIFF:
            import tifffile

            image = tifffile.imread(path)
        else:
            import imageio.v3 as iio

            image = iio.imread(path)
    except Exception as exc:  # every reader raises its own error types
        raise ImageReadError(f"{path}: cannot read image ({type(exc).__name__}: {exc})") from exc
    image = np.asarray(image)
    if image.ndim not in (2, 3) or image.size == 0:
        raise ImageReadError(f"{path}: unsupported image shape {image.shape}")
    return image


def write_image(path: str | os.PathLike, image: np.ndarray) -> None:
    """Write ``image`` to ``path`` atomically, in the format its suffix names."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=TMP_PREFIX, suffix=path.suffix, dir=path.parent)
    os.close(fd)
    try:
        if path.suffix.lower() in _TIFF:
            import tifffile

            tifffile.imwrite(tmp, image)
        else:
            import imageio.v3 as iio

            iio.imwrite(tmp, image, extension=path.suffix.lower())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def remove_stale_temporaries(folder: str | os.PathLike) -> int:
    """Delete temporary files a killed run left under ``folder``; return how many."""
    count = 0
    for tmp in Path(folder).rglob(TMP_PREFIX + "*"):
        with contextlib.suppress(OSError):
            tmp.unlink()
            count += 1
    return count
