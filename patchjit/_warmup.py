"""``patchjit cache --precompile``: fill the disk cache with the common signatures.

Compiles (or loads) the drivers a first call would need for the common image kinds:
grey and RGB 2-D images in uint8, uint16, float32 and float64, callbacks with no extra
argument or one float, the mean merge with and without a window, ``map_patches``, and
the built-in ops, each in its serial and parallel variant. A user's own callback is
never cached (only the drivers it runs in are), so after this a new callback costs about
its own compilation.
"""

from __future__ import annotations

import contextlib
import time

import numpy as np
from numba import njit

from . import _engine as E
from .api import map_patches, process_image

DTYPES = (np.uint8, np.uint16, np.float32, np.float64)


@njit
def _copy(patch, out):
    out[...] = patch


@njit
def _scaled(patch, out, gain):
    out[...] = patch
    out *= gain


@njit
def _first(patch):
    return patch.ravel()[0]


@contextlib.contextmanager
def _parallel_everywhere():
    old = E.SERIAL_WORK
    E.SERIAL_WORK = 0
    try:
        yield
    finally:
        E.SERIAL_WORK = old


def _jobs():
    from . import ops

    for dtype in DTYPES:
        for shape in ((24, 24), (24, 24, 3)):
            img = np.zeros(shape, dtype=dtype)
            name = f"{np.dtype(dtype).name} {'rgb' if len(shape) == 3 else 'grey'}"
            yield name, lambda img=img: process_image(img, _copy, 4)
            yield name, lambda img=img: process_image(img, _scaled, 4, args=(1.0,))
            yield name, lambda img=img: process_image(img, _copy, 4, window="hann")
            yield name, lambda img=img: map_patches(img, _first, 3)
            ch = -1 if len(shape) == 3 else None
            for op in ops.available():
                yield f"{name} {op.name}", lambda img=img, op=op, ch=ch: op(img, channel_axis=ch)


def precompile(echo=print) -> int:
    """Compile the common signatures in both variants; return how many calls ran."""
    n = 0
    t0 = time.perf_counter()
    for parallel in (False, True):
        ctx = _parallel_everywhere() if parallel else contextlib.nullcontext()
        with ctx:
            for _name, job in _jobs():
                try:
                    job()
                except (TypeError, ValueError):
                    continue  # an op that does not take this kind of image
                n += 1
        echo(f"  {'parallel' if parallel else 'serial'} variants done "
             f"({time.perf_counter() - t0:.0f} s)")  # fmt: skip
    return n


def cache_command(args, usage_error) -> int:
    """``patchjit cache``: show the cache, or ``--clear`` / ``--precompile`` it."""
    from . import _cache

    if args.clear:
        n = _cache.clear()
        print(f"removed {n} cache folder(s) under {_cache.base_dir()}")
        return 0
    if args.precompile:
        if not _cache.enabled():
            raise usage_error("the cache is off (PATCHJIT_CACHE=0): nothing to precompile into")
        print(f"precompiling into {_cache.folder()} ...")
        n = precompile()
        print(f"{n} calls compiled or loaded")
    files, nbytes = _cache.size()
    state = "on" if _cache.enabled() else "off (PATCHJIT_CACHE=0)"
    print(f"cache: {state}")
    print(f"folder: {_cache.base_dir()}")
    print(f"this version: {_cache.folder().name}")
    print(f"size: {files} files, {nbytes / 1e6:.1f} MB")
    return 0
