"""What the command line runs on each image file: the job, and one file's round trip.

:class:`Job` holds the options (picklable, for worker processes); :class:`Runner`
resolves them once per process and runs them on one file's pixels, following the
file's axes; :func:`process_file` is the one place where a file is read, processed,
cast to its output dtype and written, and where every per-file failure becomes a
one-line reason instead of a traceback.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import os
import sys
from pathlib import Path

import numpy as np

from . import _large
from ._budget import ClipTally, fits
from ._cast import to_dtype
from ._files import ImageReadError, Picture, load, save

__all__ = [
    "FileResult",
    "Job",
    "Runner",
    "UsageError",
    "load_function",
    "process_file",
]


class UsageError(Exception):
    """Bad command-line input: reported without a traceback, exit status 2."""


@dataclasses.dataclass(frozen=True)
class Job:
    """Everything needed to process images; picklable, so workers can rebuild it.

    ``patch`` has 2 sizes (each 2-D plane of a file) or 3 (volumes) and ``step`` one
    per patch axis: both resolved once, before any file is read (the op's default
    patch, ``--overlap`` turned into a step). ``batch``: ``func`` is a batch function
    run by :func:`patchjit.process_batches` with this batch size. ``max_memory``:
    bytes; a file whose processing needs more goes out of core (:mod:`patchjit._large`).
    ``margin``, ``scale`` (one per patch axis) and ``pad_mode``: passed to the API for
    ``func``; None for the API's defaults (no margin, scale 1, ``"reflect"``).
    """

    op: str | None
    func: str | None
    params: tuple[tuple[str, object], ...] = ()
    args: tuple = ()
    patch: tuple[int, ...] = (8, 8)
    step: tuple[int, ...] = (1, 1)
    edge: str | None = None
    window: str | None = None
    dtype: str | None = None
    quality: int | None = None
    batch: int | None = None
    max_memory: int | None = None
    margin: tuple[int, ...] | None = None
    scale: tuple[float, ...] | None = None
    pad_mode: str | None = None

    def model_options(self) -> dict:
        """``margin``, ``scale`` and ``pad_mode`` as keywords of the API (given ones only)."""
        given = {"margin": self.margin, "scale": self.scale, "pad_mode": self.pad_mode}
        return {k: v for k, v in given.items() if v is not None}

    @property
    def area_scale(self) -> float:
        """Output pixels per input pixel over a plane or volume (the product of ``scale``)."""
        return float(np.prod(self.scale)) if self.scale is not None else 1.0

    def runner(self) -> Runner:
        """Resolve the op or import the callback (once per process)."""
        return Runner(self)


class Runner:
    """Runs a :class:`Job` on one image file's pixels.

    A file's axes decide what is processed: a 2-size patch runs on each ``YX`` plane
    (every other axis, e.g. ``Z``, ``T``, ``C``, is a stack of independent planes), a
    3-size patch on each ``ZYX`` volume; ``S`` (colour samples) is the channel axis.
    """

    def __init__(self, job: Job):
        from . import ops

        self.job = job
        self.op = ops.get(job.op) if job.op is not None else None
        self.func = load_function(job.func) if job.func is not None else None
        self.n_spatial = len(job.patch)
        self.patch = job.patch

    def apply(self, picture: Picture, threads=None, progress=False) -> np.ndarray:
        """The float result for ``picture.pixels``: same axis order, and same shape but
        for ``--scale`` (the patch axes times the scale)."""
        axes = picture.axes
        spatial = _spatial_axes(axes, self.n_spatial)
        channels = "S" if "S" in axes else ""
        stack = [a for a in axes if a not in spatial + channels]
        order = [axes.index(a) for a in (*stack, *spatial, *channels)]
        x = np.transpose(picture.pixels, order)
        if x.dtype == np.bool_:
            x = x.astype(np.float32)
        planes = list(np.ndindex(x.shape[: len(stack)]))
        out = None
        for index in planes:
            part = np.ascontiguousarray(x[index])
            result = self._run(part, bool(channels), threads, progress and len(planes) == 1)
            if out is None:  # with --scale, each plane's result is its size times the scale
                out = np.empty(x.shape[: len(stack)] + result.shape, result.dtype)
            out[index] = result
        return np.transpose(out, np.argsort(order))

    def _run(self, image, channels: bool, threads, progress) -> np.ndarray:
        """Run the op or callback on one plane or volume (channels last if any)."""
        from . import process_image

        job = self.job
        patch, step = job.patch, job.step
        if job.batch is not None:
            from . import process_batches

            return process_batches(image, self.func, patch, step, batch_size=job.batch,
                                   edge=job.edge or "cover", window=job.window,
                                   threads=threads, channel_axis=-1 if channels else None,
                                   progress=progress, **job.model_options())  # fmt: skip
        if self.op is not None:
            return self.op(image, patch, step, edge=job.edge, window=job.window,
                           threads=threads, progress=progress, **dict(job.params))  # fmt: skip
        return process_image(image, self.func, patch, step, args=job.args,
                             edge=job.edge or "cover", window=job.window, threads=threads,
                             channel_axis=-1 if channels else None, progress=progress,
                             **job.model_options())  # fmt: skip


def _spatial_axes(axes: str, n_spatial: int) -> str:
    """The file's axes a patch runs over: ``YX``, or ``ZYX`` for a 3-size patch."""
    if "Y" not in axes or "X" not in axes:
        raise ValueError(f"the file's axes {axes!r} have no Y and X axes")
    if n_spatial == 2:
        return "".join(a for a in axes if a in "YX")
    depth = "Z" if "Z" in axes else ""
    if not depth:  # plain pages of unknown meaning (Q, I) may be a volume's slices
        pages = [a for a in axes if a in "QI"]
        if len(pages) != 1:
            raise ValueError(
                f"--patch has 3 sizes but the file's axes {axes!r} have no depth axis "
                f"(Z, or a single axis of plain pages); give 2 sizes to process each plane"
            )
        depth = pages[0]
    return "".join(a for a in axes if a in depth + "YX")


def load_function(spec: str):
    """Import ``module:function`` (modules in the current folder too) or ``file.py:function``."""
    module_name, sep, name = spec.rpartition(":")
    if not sep or not module_name or not name:
        raise UsageError(
            f"--func must be MODULE:FUNCTION or path/to/file.py:FUNCTION, got {spec!r}"
        )
    try:
        if module_name.endswith(".py") or os.sep in module_name:
            path = Path(module_name)
            if not path.is_file():
                raise UsageError(f"--func: file {module_name!r} does not exist")
            mod_spec = importlib.util.spec_from_file_location(path.stem, path)
            module = importlib.util.module_from_spec(mod_spec)
            mod_spec.loader.exec_module(module)
        else:
            if os.getcwd() not in sys.path:  # as `python -m` would: modules beside the user
                sys.path.insert(0, os.getcwd())
            module = importlib.import_module(module_name)
    except UsageError:
        raise
    except Exception as exc:
        raise UsageError(
            f"--func: cannot import {module_name!r}: {type(exc).__name__}: {_first_line(exc)}"
        ) from None
    func = getattr(module, name, None)
    if not callable(func):
        raise UsageError(f"--func: module {module_name!r} has no function {name!r}")
    return func


@dataclasses.dataclass(frozen=True)
class FileResult:
    """What happened to one file: ``status`` is ``"done"`` or ``"failed"``."""

    status: str
    src: Path
    message: str
    megapixels: float = 0.0
    warning: str | None = None


def process_file(runner: Runner, src: Path, dst: Path, threads=None, progress=False):
    """Read, process and write one file: the one place where that happens.

    Any failure (unreadable, too small, a callback that does not compile for this
    image, unwritable in its format) is returned as a one-line reason, never raised;
    only Ctrl-C propagates. With ``max_memory``, a file whose estimated need (from its
    header) exceeds it is processed out of core instead (:func:`patchjit._large.process`).
    """
    try:
        job = runner.job
        if not fits(src, job.max_memory, job.dtype, job.area_scale):
            mpix, warning = _large.process(runner, src, dst, threads)
            return FileResult("done", src, str(dst), mpix, warning)
        picture = load(src)
        result = runner.apply(picture, threads=threads, progress=progress)
        out, warning = _finish(result, job.dtype or picture.dtype, src)
        save(dst, picture, picture.full(out), runner.job.quality)
    except Exception as exc:
        return FileResult("failed", src, f"{src}: {_reason(exc)}")
    shape = dict(zip(picture.axes, picture.pixels.shape))
    mpix = picture.pixels.size / shape.get("S", 1) / 1e6
    return FileResult("done", src, str(dst), mpix, warning)


def _finish(result: np.ndarray, dtype, src: Path) -> tuple[np.ndarray, str | None]:
    """Cast a float result to the output dtype; warn when much of it is clipped."""
    dtype = np.dtype(dtype)
    if dtype == np.bool_:  # 1-bit images: threshold at 0.5
        to_dtype(result, np.uint8, what="the result")  # NaN check
        return result >= 0.5, None
    tally = ClipTally(dtype)
    tally.count(result)
    return to_dtype(result, dtype, what="the result"), tally.warning(src)


def _reason(exc: Exception) -> str:
    """One line saying why a file failed (numba's long errors boiled down)."""
    if isinstance(exc, ImageReadError):
        return str(exc)
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    if not lines:
        return type(exc).__name__
    if any(ln.startswith("Failed in") for ln in lines):  # a callback that does not compile
        head = lines[0].split("; the expected signature")[0]
        rest = lines[[ln.startswith("Failed in") for ln in lines].index(True) + 1 :]
        why = rest[:1] + [ln for ln in rest if ln.startswith((">>>", 'File "'))][:2]
        return "; ".join(ln.rstrip(":") for ln in [head, *why])[:400]
    # a callback's error carries a note naming the patch that raised
    note = f" ({exc.__notes__[0]})" if getattr(exc, "__notes__", None) else ""
    if isinstance(exc, (ValueError, TypeError, OSError)):
        return (lines[0][:400] + note)[:600]
    return (f"{type(exc).__name__}: {lines[0]}"[:400] + note)[:600]


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
