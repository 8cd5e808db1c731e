"""The ``patchjit`` command line: batch processing of image files and folders.

Commands: ``patchjit run``, ``patchjit ops``, ``patchjit demo``; ``--help`` on each.
Exit status: 0 all done, 1 some file failed, 2 usage error, 130 interrupted.
"""

from __future__ import annotations

import argparse
import dataclasses
import glob
import importlib
import importlib.util
import os
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from pathlib import Path

import numpy as np

from . import __version__

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class UsageError(Exception):
    """Bad command-line input: reported without a traceback, exit status 2."""


# --- the job: what to run on each image ------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Job:
    """Everything needed to process one image; picklable, so workers can rebuild it."""

    op: str | None
    func: str | None
    params: tuple[tuple[str, object], ...]
    patch: tuple[int, ...] | None
    step: tuple[int, ...]
    edge: str | None
    window: str | None

    def resolve(self):
        """Return ``run(image, threads, progress) -> float array of image's shape``."""
        from . import ops, process_image

        patch = self.patch
        step = self.step if len(self.step) > 1 else self.step[0]
        if self.op is not None:
            op = ops.get(self.op)
            params = dict(self.params)

            def run(image, threads=None, progress=False):
                p = _fit_patch(patch or op.default_patch, image, op.kind)
                return op(image, p, step, edge=self.edge, window=self.window,
                          threads=threads, progress=progress, **params)  # fmt: skip

            return run
        func = load_function(self.func)
        edge = self.edge or "cover"

        def run(image, threads=None, progress=False):
            p = _fit_patch(patch, image, "process")
            return process_image(image, func, p, step, edge=edge, window=self.window,
                                 threads=threads, progress=progress)  # fmt: skip

        return run


def _fit_patch(patch, image, kind):
    """Patch tuple for an image: one entry per spatial axis of a 2-D grey/colour image."""
    patch = tuple(patch) if isinstance(patch, (tuple, list)) else (int(patch),) * 2
    if len(patch) == 1:
        patch = patch * 2
    return patch


def load_function(spec: str):
    """Import ``module:function`` or ``path/to/file.py:function``."""
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
            module = importlib.import_module(module_name)
    except UsageError:
        raise
    except Exception as exc:
        raise UsageError(
            f"--func: cannot import {module_name!r}: {type(exc).__name__}: {exc}"
        ) from exc
    try:
        return getattr(module, name)
    except AttributeError:
        raise UsageError(f"--func: module {module_name!r} has no function {name!r}") from None


def _parse_ints(text: str, flag: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise UsageError(f"{flag} must be N or N,N (positive integers), got {text!r}") from None
    if not values or any(v < 1 for v in values):
        raise UsageError(f"{flag} must be positive integers, got {text!r}")
    return values


def _parse_params(op_name: str, items: Sequence[str]) -> tuple[tuple[str, object], ...]:
    from . import ops

    try:
        op = ops.get(op_name)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    known = {p.name: p for p in op.params}
    parsed = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise UsageError(f"--param must be KEY=VALUE, got {item!r}")
        if key not in known:
            valid = ", ".join(known) or "none"
            raise UsageError(f"op {op_name!r} has no parameter {key!r}; valid: {valid}")
        try:
            parsed[key] = known[key].type(value)
        except (TypeError, ValueError):
            raise UsageError(
                f"--param {key}={value!r}: expected {known[key].type.__name__}"
            ) from None
    missing = [p.name for p in op.params if p.default is None and p.name not in parsed]
    if missing:
        raise UsageError(f"op {op_name!r} needs --param {missing[0]}=VALUE")
    return tuple(parsed.items())


# --- inputs and outputs --------------------------------------------------------------


def collect(inputs: Sequence[str], outdir: Path, pattern: str | None):
    """Return ``[(source, destination)]``, refusing anything that could touch the inputs."""
    from .io import IMAGE_SUFFIXES

    outdir = outdir.resolve()
    pairs = []

    def wanted(p: Path) -> bool:
        if pattern is not None:
            return p.match(pattern)
        return p.suffix.lower() in IMAGE_SUFFIXES

    for text in inputs:
        path = Path(text)
        if path.is_dir():
            root = path.resolve()
            if outdir == root or root in outdir.parents:
                raise UsageError(
                    f"output folder {outdir} is inside input folder {root}; choose an "
                    f"output folder outside the input tree"
                )
            for file in sorted(root.rglob("*")):
                if file.is_file() and wanted(file):
                    pairs.append((file, outdir / file.relative_to(root)))
        elif path.is_file():
            pairs.append((path.resolve(), outdir / path.name))
        else:
            matches = sorted(glob.glob(text, recursive=True))
            if not matches:
                raise UsageError(f"input {text!r} does not exist and matches no file")
            for m in matches:
                if Path(m).is_file():
                    pairs.append((Path(m).resolve(), outdir / Path(m).name))
    sources = {src for src, _ in pairs}
    seen: dict[Path, Path] = {}
    for src, dst in pairs:
        if dst in sources:
            raise UsageError(f"output {dst} would overwrite input {dst}; choose another -o")
        if dst in seen and seen[dst] != src:
            raise UsageError(f"inputs {seen[dst]} and {src} would both be written to {dst}")
        seen[dst] = src
    return list(dict.fromkeys(pairs))


def process_file(
    job_run, src: Path, dst: Path, threads=None, progress=False
) -> tuple[str, str, float]:
    """Read, process, write one file. Returns (status, message, megapixels)."""
    from .io import ImageReadError, read_image, write_image

    try:
        image = read_image(src)
    except ImageReadError as exc:
        return "failed", str(exc).splitlines()[0], 0.0
    try:
        result = job_run(image, threads=threads, progress=progress)
    except (ValueError, TypeError) as exc:
        kind = "usage" if "larger than the image" in str(exc) else "failed"
        return kind, f"{src}: {exc}", 0.0
    out = _to_dtype(result, image.dtype)
    write_image(dst, out)
    return "done", str(dst), image.shape[0] * image.shape[1] / 1e6


def _to_dtype(result: np.ndarray, dtype) -> np.ndarray:
    dtype = np.dtype(dtype)
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return np.clip(np.rint(np.nan_to_num(result, nan=0.0)), info.min, info.max).astype(dtype)
    return result.astype(dtype)


# --- worker processes (--jobs) ---------------------------------------------------------

_WORKER_RUN = None


def _worker_init(job: Job, threads: int) -> None:
    global _WORKER_RUN
    import numba

    numba.set_num_threads(threads)
    _WORKER_RUN = job.resolve()


def _worker_task(src: Path, dst: Path):
    return process_file(_WORKER_RUN, src, dst)


# --- commands ------------------------------------------------------------------------


def cmd_run(args) -> int:
    from tqdm.auto import tqdm

    from .io import remove_stale_temporaries

    if (args.op is None) == (args.func is None):
        raise UsageError("give exactly one of --op NAME or --func MODULE:FUNCTION")
    patch = _parse_ints(args.patch, "--patch") if args.patch else None
    if args.func and patch is None:
        raise UsageError("--func needs --patch N[,N]")
    step = _parse_ints(args.step, "--step")
    params = _parse_params(args.op, args.param) if args.op else ()
    if args.func and args.param:
        raise UsageError("--param applies to --op only")
    job = Job(args.op, args.func, params, patch, step, args.edge, args.window)
    run = job.resolve()
    outdir = Path(args.output)
    pairs = collect(args.inputs, outdir, args.pattern)
    if args.jobs < 1:
        raise UsageError(f"--jobs must be >= 1, got {args.jobs}")
    todo, skipped = [], []
    for src, dst in pairs:
        (skipped if dst.exists() and not args.overwrite else todo).append((src, dst))
    if args.dry_run:
        for src, dst in pairs:
            state = "skip (exists)" if (src, dst) in skipped else "process"
            print(f"{state}: {src} -> {dst}")
        print(f"{len(todo)} to process, {len(skipped)} to skip (dry run: nothing written)")
        return EXIT_OK
    if outdir.exists():
        remove_stale_temporaries(outdir)
    if not todo:
        print(f"nothing to do: {len(skipped)} outputs already exist (use --overwrite)")
        return EXIT_OK
    if args.jobs == 1:
        _warm_up(run, todo, args.threads)  # compile once, before the loop and the clock
    t_start = time.perf_counter()
    done = failed = 0
    usage = False
    mpix = 0.0
    results = []
    if args.jobs == 1:
        single = len(todo) == 1
        bar = tqdm(todo, unit="file", disable=single or args.quiet)
        for src, dst in bar:
            results.append(process_file(run, src, dst, args.threads, single and not args.quiet))
            _report(results[-1], bar)
    else:
        import numba

        per_worker = max(1, (args.threads or numba.config.NUMBA_NUM_THREADS) // args.jobs)
        with ProcessPoolExecutor(
            args.jobs, mp_context=get_context("spawn"), initializer=_worker_init,
            initargs=(job, per_worker),
        ) as pool:  # fmt: skip
            futures = [pool.submit(_worker_task, src, dst) for src, dst in todo]
            bar = tqdm(total=len(futures), unit="file", disable=args.quiet)
            try:
                for fut in as_completed(futures):
                    results.append(fut.result())
                    _report(results[-1], bar)
                    bar.update()
            except KeyboardInterrupt:
                for f in futures:
                    f.cancel()
                raise
            finally:
                bar.close()
    for status, _, mp in results:
        done += status == "done"
        failed += status != "done"
        usage |= status == "usage"
        mpix += mp
    elapsed = time.perf_counter() - t_start
    rate = mpix / elapsed if elapsed > 0 else 0.0
    print(
        f"done {done}, skipped {len(skipped)}, failed {failed} in {elapsed:.1f} s "
        f"({rate:.2f} megapixels/s)"
    )
    if usage:
        return EXIT_USAGE
    return EXIT_FAILED if failed else EXIT_OK


def _warm_up(run, todo, threads) -> None:
    """Compile the job on a small crop of the first readable image."""
    from .io import read_image

    for src, _ in todo:
        try:
            sample = read_image(src)
        except Exception:
            continue
        crop = tuple(slice(0, min(n, 64)) for n in sample.shape[:2])
        try:
            run(np.ascontiguousarray(sample[crop]), threads=threads)
        except (ValueError, TypeError) as exc:
            if "larger than the image" not in str(exc):
                raise UsageError(f"{src}: {exc}") from None
        return


def _report(result, bar) -> None:
    status, message, _ = result
    if status != "done":
        bar.write(f"failed: {message}", file=sys.stderr)


def cmd_ops(args) -> int:
    from . import ops

    for op in ops.available():
        print(f"{op.name}  ({op.kind}, default patch {op.default_patch})")
        print(f"    {op.summary}")
        for p in op.params:
            default = "" if p.default is None else f" (default {p.default!r})"
            print(f"    --param {p.name}={p.type.__name__.upper()}  {p.help}{default}")
    return EXIT_OK


def cmd_demo(args) -> int:
    from .demo import run_demo

    run_demo(Path(args.output), sigma=args.sigma, threads=args.threads)
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="patchjit",
        description="Patch-wise image processing: run an operation on every overlapping "
        "patch of every image and merge the results.",
    )
    parser.add_argument("--version", action="version", version=f"patchjit {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser(
        "run", help="process image files and folders",
        description="Process images patch by patch. Folders are walked recursively and "
        "their tree is mirrored under OUTDIR. Existing outputs are skipped unless "
        "--overwrite; outputs are written atomically; inputs are never modified.",
    )  # fmt: skip
    run.add_argument("inputs", nargs="+", metavar="INPUT", help="files, folders or globs")
    run.add_argument("-o", "--output", required=True, metavar="OUTDIR", help="output folder")
    what = run.add_mutually_exclusive_group()
    what.add_argument("--op", help="built-in operation (see `patchjit ops`)")
    what.add_argument("--func", metavar="MODULE:FUNCTION",
                      help="your own numba callback func(patch, out): module:function or "
                      "path/to/file.py:function")  # fmt: skip
    run.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                     help="parameter of --op (repeatable)")  # fmt: skip
    run.add_argument("--patch", metavar="N[,N]", help="patch size (default: the op's)")
    run.add_argument("--step", default="1", metavar="N[,N]", help="stride (default 1)")
    run.add_argument("--edge", choices=("cover", "valid", "pad"), help="border handling")
    run.add_argument("--window", choices=("boxcar", "triangle", "hann", "hamming", "gaussian"),
                     help="weighted merging window")  # fmt: skip
    run.add_argument("--pattern", metavar="GLOB", help="only files matching GLOB in folders")
    run.add_argument("--jobs", type=int, default=1, metavar="N",
                     help="worker processes for many small images (default 1)")  # fmt: skip
    run.add_argument("--threads", type=int, metavar="N", help="numba threads (default all)")
    run.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    run.add_argument("--dry-run", action="store_true", help="show what would be done")
    run.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    run.set_defaults(handler=cmd_run)

    ops_p = sub.add_parser("ops", help="list the built-in operations and their parameters")
    ops_p.set_defaults(handler=cmd_ops)

    demo = sub.add_parser(
        "demo", help="denoise a built-in sample image and write before/after pictures",
    )  # fmt: skip
    demo.add_argument("-o", "--output", default="patchjit-demo", metavar="OUTDIR",
                      help="where to write the pictures (default ./patchjit-demo)")  # fmt: skip
    demo.add_argument("--sigma", type=float, default=25.0, help="noise level (default 25)")
    demo.add_argument("--threads", type=int, metavar="N", help="numba threads")
    demo.set_defaults(handler=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: --help/--version (0) or usage errors (2)
        return int(exc.code or 0)
    try:
        if getattr(args, "threads", None) is not None:
            from ._validate import resolve_threads

            try:
                resolve_threads(args.threads)
            except (TypeError, ValueError) as exc:
                raise UsageError(f"--threads: {exc}") from None
        return args.handler(args)
    except UsageError as exc:
        print(f"patchjit: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("patchjit: interrupted; no partial output was left behind", file=sys.stderr)
        return EXIT_INTERRUPTED


def console_main() -> None:
    sys.exit(main())


if __name__ == "__main__":
    console_main()
