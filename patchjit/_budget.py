"""What a file costs and what its output cast gives up, for the command line.

Shared by the in-memory path (:mod:`patchjit._jobs`) and the out-of-core path
(:mod:`patchjit._large`), so that neither imports the other for it:

- :func:`estimate` and :func:`fits`: the bytes processing a file in memory needs, from
  its header alone, against ``--max-memory``; :func:`format_size` for messages.
- :class:`ClipTally`: how many values the cast to an integer output dtype clipped, and
  the warning when that is more than :data:`CLIP_WARNING` of them.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from ._files import stored_size

__all__ = ["CLIP_WARNING", "ClipTally", "estimate", "fits", "format_size"]

# Warn when more than this fraction of values is clipped to an integer dtype's range.
CLIP_WARNING = 1e-3


def estimate(src: Path, out_dtype=None, area_scale: float = 1.0) -> int:
    """Bytes that processing ``src`` in memory needs: image + float accumulator + output.

    From the file's header only (no pixels read); the in-memory path holds a few more
    temporary copies, so this is a lower bound on its peak. ``out_dtype``: the output
    dtype (default the stored one). ``area_scale``: output pixels per input pixel
    (``--scale`` 2 on both axes of a plane: 4); the accumulator and the output grow by it.
    """
    from ._engine import accumulation_dtype

    shape, dtype = stored_size(src)
    n = int(np.prod(shape, dtype=np.int64))
    acc = accumulation_dtype(np.float32 if dtype == np.bool_ else dtype).itemsize
    out = np.dtype(out_dtype or dtype).itemsize
    return int(n * (dtype.itemsize + (acc + out) * area_scale))


def fits(src: Path, budget: int | None, out_dtype=None, area_scale: float = 1.0) -> bool:
    """Whether ``src`` fits ``budget`` bytes (always, without a budget)."""
    return budget is None or estimate(src, out_dtype, area_scale) <= budget


def format_size(n: int) -> str:
    """``n`` bytes for a message: ``"64MB"``, ``"64MiB"``, ``"1.5GB"``."""
    decimal = (("TB", 10**12), ("GB", 10**9), ("MB", 10**6), ("kB", 10**3))
    binary = (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10))
    for unit, size in decimal + binary:  # an exact multiple reads as typed
        if size <= n < 1000 * size and n % size == 0:
            return f"{n // size}{unit}"
    for unit, size in decimal:
        if n >= size:
            return f"{n / size:.3g}{unit}"
    return f"{n}B"


class ClipTally:
    """Counts the float values that a cast to integer ``dtype`` clips (thread-safe).

    ``count(block)`` adds one block (whole image in memory, a chunk out of core);
    ``warning(src)`` is the one-line warning once more than :data:`CLIP_WARNING` of
    all values counted were clipped, else ``None``.
    """

    def __init__(self, dtype):
        self.dtype = np.dtype(dtype)
        self.clipped = self.total = 0
        self._lock = threading.Lock()

    def count(self, block: np.ndarray) -> None:
        if self.dtype.kind not in "iu" or block.dtype.kind != "f":
            return
        info = np.iinfo(self.dtype)
        rounded = np.rint(block)
        n = int(np.count_nonzero((rounded < info.min) | (rounded > info.max)))
        del rounded
        with self._lock:
            self.clipped += n
            self.total += block.size

    def warning(self, src) -> str | None:
        if not self.total or self.clipped / self.total <= CLIP_WARNING:
            return None
        info = np.iinfo(self.dtype)
        return (
            f"{src}: {self.clipped / self.total:.1%} of the values were clipped to the "
            f"{self.dtype} range [{info.min}, {info.max}]; --dtype float32 keeps them (TIFF)"
        )
