"""The ``patchjit`` command line: batch processing of image files and folders.

Commands: ``patchjit run``, ``patchjit ops``, ``patchjit demo``; ``--help`` on each.
Exit status: 0 all done, 1 some file failed, 2 usage error (before any file is
processed), 130 interrupted.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import glob
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from . import __version__
from ._budget import fits
from ._cli_options import (
    _check_map_op,
    _check_max_memory,
    _parse_args,
    _parse_params,
    _parse_patch,
    _resolve_margin,
    _resolve_scale,
    _resolve_step,
    parse_size,  # noqa: F401 (public: sizes such as --max-memory's)
)
from ._files import IMAGE_SUFFIXES, TMP_PREFIX, load
from ._jobs import FileResult, Job, Runner, UsageError, process_file
from .io import remove_stale_temporaries

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


# --- inputs and outputs --------------------------------------------------------------


def collect(inputs: Sequence[str], outdir: Path, pattern: str | None):
    """Return ``([(source, destination)], ignored)``, refusing to touch the inputs.

    ``ignored`` lists the files in input folders that are not processed (their suffix
    is not an image suffix, or they do not match ``pattern``).
    """
    outdir = outdir.resolve()
    pairs, ignored = [], []

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
                if file.is_file() and not file.name.startswith(TMP_PREFIX):
                    if wanted(file):
                        pairs.append((file, outdir / file.relative_to(root)))
                    else:
                        ignored.append(file)
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
    return list(dict.fromkeys(pairs)), ignored


# --- commands ------------------------------------------------------------------------


def _job_from_args(args) -> Job:
    """Check every option before any file is read (usage errors: exit status 2)."""
    if (args.op is None) == (args.func is None):
        raise UsageError("give exactly one of --op NAME or --func MODULE:FUNCTION")
    patch = _parse_patch(args.patch)
    if args.func and patch is None:
        raise UsageError("--func needs --patch N[,N[,N]]")
    if args.func and args.param:
        raise UsageError("--param applies to --op only (use --arg for --func)")
    if args.op and args.arg:
        raise UsageError("--arg applies to --func only (use --param for --op)")
    if args.batch is not None:
        if not args.func:
            raise UsageError("--batch applies to --func only (a batch function)")
        if args.batch < 1:
            raise UsageError(f"--batch must be >= 1, got {args.batch}")
        if args.arg:
            raise UsageError(
                "--arg does not apply to --batch: a batch function takes only the batch; "
                "give it its parameters in its module (e.g. functools.partial)"
            )
    params = _parse_params(args.op, args.param) if args.op else ()
    if args.op:
        _check_map_op(args.op, args)
        from . import ops

        patch = patch or (ops.get(args.op).default_patch,) * 2
        for flag, value in (("--margin", args.margin), ("--scale", args.scale),
                            ("--pad-mode", args.pad_mode)):  # fmt: skip
            if value is not None:
                raise UsageError(
                    f"{flag} applies to --func and --batch only; the built-in op "
                    f"{args.op!r} gives one output pixel per input pixel from its own patch"
                )
    margin, tile = _resolve_margin(args, patch)
    step = _resolve_step(args, patch, tile)
    scale = _resolve_scale(args, tile, step)
    if args.pad_mode is not None and args.edge != "pad" and margin is None:
        raise UsageError(
            f"--pad-mode {args.pad_mode} has no effect without --edge pad or --margin "
            f"(nothing is padded)"
        )
    if args.quality is not None and not 1 <= args.quality <= 100:
        raise UsageError(f"--quality must be 1 to 100, got {args.quality}")
    if args.jobs < 1:
        raise UsageError(f"--jobs must be >= 1, got {args.jobs}")
    max_memory = _check_max_memory(args.max_memory)
    if max_memory is not None and args.jobs > 1:
        raise UsageError(
            "--max-memory bounds one process; with --jobs N every worker would use the "
            "whole budget. Use --jobs 1 (the out-of-core path runs chunks in parallel "
            "threads itself) or divide the budget and run fewer jobs"
        )
    return Job(args.op, args.func, params, _parse_args(args.arg), patch, step, args.edge,
               args.window, args.dtype, args.quality, args.batch, max_memory, margin,
               scale, args.pad_mode)  # fmt: skip


def cmd_run(args) -> int:
    from tqdm.auto import tqdm

    job = _job_from_args(args)
    runner = job.runner()
    outdir = Path(args.output)
    pairs, ignored = collect(args.inputs, outdir, args.pattern)
    todo, skipped = [], []
    for src, dst in pairs:
        (skipped if dst.exists() and not args.overwrite else todo).append((src, dst))
    if args.dry_run:
        for src, dst in pairs:
            state = "skip (exists)" if (src, dst) in skipped else "process"
            print(f"{state}: {src} -> {dst}")
        for path in ignored:
            print(f"ignore (not an image suffix or --pattern): {path}")
        print(f"{len(todo)} to process, {len(skipped)} to skip (dry run: nothing written)")
        return EXIT_OK
    for folder in sorted({dst.parent for _, dst in todo}):  # only where this run writes
        if folder.is_dir():
            remove_stale_temporaries(folder)
    _print_ignored(ignored)
    if not todo:
        print(f"nothing to do: {len(skipped)} outputs already exist (use --overwrite)")
        return EXIT_OK
    t_start = time.perf_counter()
    results = []
    if args.jobs == 1:
        _warm_up(runner, todo, args.threads)  # compile once, before the bar and the clock
        t_start = time.perf_counter()
        single = len(todo) == 1
        bar = tqdm(todo, unit="file", disable=single or args.quiet)
        for src, dst in bar:
            results.append(process_file(runner, src, dst, args.threads, single and not args.quiet))
            _report(results[-1], bar)
    else:
        results = _run_pool(job, todo, args)
    return _summary(results, len(skipped), time.perf_counter() - t_start)


def _run_pool(job: Job, todo, args) -> list[FileResult]:
    """Process ``todo`` in ``--jobs`` spawned workers, each with a share of the threads."""
    import numba
    from tqdm.auto import tqdm

    from ._pool import run_pool

    per_worker = max(1, (args.threads or numba.config.NUMBA_NUM_THREADS) // args.jobs)
    bar = tqdm(total=len(todo), unit="file", disable=args.quiet)

    def on_result(result):
        _report(result, bar)
        bar.update()

    try:
        return run_pool(job, todo, args.jobs, per_worker, on_result)
    finally:
        bar.close()


def _summary(results: list[FileResult], skipped: int, elapsed: float) -> int:
    done = [r for r in results if r.status == "done"]
    failed = [r for r in results if r.status != "done"]
    mpix = sum(r.megapixels for r in done)
    rate = mpix / elapsed if elapsed > 0 else 0.0
    print(
        f"done {len(done)}, skipped {skipped}, failed {len(failed)} in {elapsed:.1f} s "
        f"({rate:.2f} megapixels/s)"
    )
    if failed:
        print("failed files:")
        for r in sorted(failed, key=lambda r: r.src):
            print(f"  {r.src}")
    return EXIT_FAILED if failed else EXIT_OK


def _print_ignored(ignored: list[Path]) -> None:
    """Name what the folders held besides the images processed, by suffix."""
    if not ignored:
        return
    counts: dict[str, int] = {}
    for p in ignored:
        key = p.suffix.lower() or "(no suffix)"
        counts[key] = counts.get(key, 0) + 1
    kinds = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
    files = "file" if len(ignored) == 1 else "files"
    print(f"not processed: {len(ignored)} {files} in the input folders ({kinds}); see --dry-run")


def _warm_up(runner: Runner, todo, threads) -> None:
    """Compile the job on a small crop of the first readable image (errors: ignored).

    Images over ``--max-memory`` are not read whole here; their chunks compile in turn.
    """
    for src, _ in todo:
        try:
            if not fits(src, runner.job.max_memory, runner.job.dtype, runner.job.area_scale):
                continue
            picture = load(src)
        except Exception:
            continue
        crop = tuple(slice(None) if a == "S" else slice(0, 64) for a in picture.axes)
        small = dataclasses.replace(picture, pixels=np.ascontiguousarray(picture.pixels[crop]))
        with contextlib.suppress(Exception):
            runner.apply(small, threads=threads)
        return


def _report(result: FileResult, bar) -> None:
    if result.status != "done":
        bar.write(f"failed: {result.message}", file=sys.stderr)
    if result.warning:
        bar.write(f"warning: {result.warning}", file=sys.stderr)


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


RUN_EPILOG = """\
examples:
  patchjit run photos/ -o denoised/ --op dct-denoise --param sigma=25
  patchjit run stack.tif -o out/ --op median --patch 5         # each page (plane)
  patchjit run stack.tif -o out/ --op median --patch 3,5,5     # ZYX volume
  patchjit run scans/ -o out/ --op mean-remove --dtype float32  # signed result
  patchjit run data/ -o out/ --func my_filters:sharpen --arg 0.5 --patch 16 --overlap 0.5
  patchjit run data/ -o out/ --func my_model:predict --batch 64 --patch 128 --overlap 0.25
  patchjit run slides/ -o out/ --op mean-remove --patch 15 --step 4 --max-memory 2GB
  patchjit run data/ -o out/ --func my_model:unet --batch 16 --patch 572 --margin 92 --step 388
  patchjit run data/ -o big/ --func my_model:upsample --batch 64 --patch 64 --step 32 --scale 2

--batch N: --func names a batch function, func(batch) -> array, any Python code. batch
  is a float32 (float64 for float64 and 32/64-bit integer images) array of shape
  (n, *patch) or (n, *patch, C) for colour images, n <= N; return the same shape
  (with --margin M / --scale F: (n, *(patch - 2*M)*F[, C])).
  It is called through patchjit.process_batches: same grid, edges and windows as
  --func. --arg is refused (bind parameters in your module, e.g. functools.partial).

--margin M and --scale F (--func and --batch; one value, or one per patch axis):
  the function's output patch is (patch - 2*M) * F per axis: the centre of its input
  patch, M pixels smaller on each side, at F output pixels per input pixel (F an
  integer or 1/integer). Output tiles (patch - 2*M) cover the image by the --edge and
  --step/--overlap rules, and each input patch reads M more pixels on each side from
  the image extended by --pad-mode, so borders are covered too. The output file has
  the input's size times F (with F = 1/d the image size, the tile and the step must be
  multiples of d). A valid 3x3 box mean with --patch 3 --margin 1 --pad-mode symmetric
  equals scipy.ndimage.uniform_filter(image, 3, mode="reflect"). Not with --op, and
  not out of core (--max-memory): such a file fails with the reason.

--max-memory SIZE (decimal kB/MB/GB/TB or binary KiB/MiB/GiB/TiB): each file's need is
  estimated from its header, without reading the pixels: input + float accumulator +
  output (e.g. a 10000 x 10000 uint8 image: 100 MB + 400 MB + 100 MB = 600 MB). Files
  within the budget are processed in memory as usual (their real peak is somewhat
  higher: a few temporary copies). Larger ones are read lazily, processed chunk by
  chunk with dask (chunks sized to the budget, --threads tasks at once) and written as
  a tiled TIFF band by band, with the same dtype cast and TIFF metadata; the budget
  covers image data, not the interpreter and libraries (about 150-250 MB). Out of core
  takes 2-D TIFFs (grey or colour, no alpha), --func, and --op on grey images; other
  large files fail with the reason. Needs the dask extra: pip install "patchjit[dask]".

--edge:
  cover   patches on a regular grid, plus one flush with the far border where the grid
          stops short, so every pixel is covered (default for process ops)
  valid   the regular grid only; pixels no patch covers are NaN in a float output
          (--dtype float32) and make an integer output fail
  pad     the image is padded (--pad-mode, default reflect) so border pixels are
          covered as often as interior ones (map ops: always, reflect)

--window (weights of each position in a patch when overlapping results are merged;
every weight is positive):
  boxcar    equal weights: the plain mean (the default)
  triangle  linear ramp, highest at the patch centre
  hann      raised cosine (ends above 0)
  hamming   raised cosine on a pedestal (ends at 0.08)
  gaussian  gaussian with sigma = patch / 4

exit status:
  0    every file done (or skipped because its output exists)
  1    some file failed; each is reported by name with the reason, the rest are done
  2    usage error, found before any file is read (unknown op, bad --param,
       --margin or --scale, --step larger than the patch without --edge valid,
       --func that cannot be imported, output folder inside an input folder)
  130  interrupted (Ctrl-C, also with --jobs: workers are stopped at once); no
       partial output file is left behind and nothing is written after it
"""


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
        "--overwrite; outputs are written atomically with the permissions of a plain new "
        "file; inputs are never modified. Outputs keep each input's format, axes, dtype "
        "and bit depth (16-bit PNG/PNM/TIFF included), alpha, EXIF, ICC profile, DPI, "
        "TIFF orientation and descriptive tags and JPEG quality (see the README).",
        epilog=RUN_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    run.add_argument("inputs", nargs="+", metavar="INPUT", help="files, folders or globs")
    run.add_argument("-o", "--output", required=True, metavar="OUTDIR", help="output folder")
    what = run.add_mutually_exclusive_group()
    what.add_argument("--op", help="built-in operation (see: patchjit ops)")
    what.add_argument("--func", metavar="MODULE:FUNCTION",
                      help="your own numba callback func(patch, out, *args): "
                      "module:function (modules in the current folder included) or "
                      "path/to/file.py:function")  # fmt: skip
    run.add_argument("--batch", type=int, metavar="N",
                     help="--func is a batch function func(batch) -> array over up to N "
                     "patches at once, (n, *patch[, C]) float in and out, run by "
                     "patchjit.process_batches: any Python (NumPy, scikit-image, torch); "
                     "no --arg")  # fmt: skip
    run.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                     help="parameter of --op (repeatable)")  # fmt: skip
    run.add_argument("--arg", action="append", default=[], metavar="VALUE",
                     help="number passed to the --func callback after (patch, out) "
                     "(repeatable, in order)")  # fmt: skip
    run.add_argument("--patch", metavar="N[,N[,N]]",
                     help="patch size: 1 or 2 sizes process each 2-D plane (each page of a "
                     "stack), 3 sizes process volumes (ZYX); default: the op's")  # fmt: skip
    run.add_argument("--step", metavar="N[,N]", help="stride between patches (default 1)")
    run.add_argument("--overlap", metavar="F[,F]",
                     help="instead of --step: fraction in [0, 1) of a patch that neighbours "
                     "share; step = max(1, int(patch * (1 - F))), MONAI's rule")  # fmt: skip
    run.add_argument("--edge", choices=("cover", "valid", "pad"),
                     help="border handling (see below; default cover, map ops: pad)")  # fmt: skip
    run.add_argument("--window", choices=("boxcar", "triangle", "hann", "hamming", "gaussian"),
                     help="weights for merging overlapping patches (see below)")  # fmt: skip
    run.add_argument("--margin", metavar="M[,M[,M]]",
                     help="--func/--batch: the function's output is the centre of its patch, "
                     "M pixels smaller on each side (valid convolutions, U-Net "
                     "overlap-tile); the image is extended by --pad-mode so the output "
                     "has the input's size (see below)")  # fmt: skip
    run.add_argument(
        "--scale",
        metavar="F[,F[,F]]",
        help="--func/--batch: output pixels per input pixel, an integer or "
        "1/integer (2, 4, 0.5); the output file is the input's size times F",
    )
    run.add_argument("--pad-mode", choices=("reflect", "symmetric", "edge", "wrap", "constant"),
                     help="--func/--batch: how --edge pad and --margin extend the image "
                     "(numpy.pad modes; constant pads with 0; default reflect)")  # fmt: skip
    run.add_argument("--dtype", choices=("uint8", "uint16", "int16", "int32", "float32",
                     "float64"), help="output dtype (default: the input's), e.g. float32 to "
                     "keep signed or fractional results in a TIFF")  # fmt: skip
    run.add_argument("--quality", type=int, metavar="Q",
                     help="JPEG/WebP quality 1-100 (default: a JPEG keeps its own quantisation "
                     "tables; otherwise 95)")  # fmt: skip
    run.add_argument("--max-memory", metavar="SIZE",
                     help="memory budget for image data, e.g. 2GB, 512MB, 64MiB: an image "
                     "whose input + float accumulator + output would exceed it is processed "
                     "chunk by chunk out of core (TIFF only; needs patchjit[dask]); see "
                     "below")  # fmt: skip
    run.add_argument("--pattern", metavar="GLOB", help="only files matching GLOB in folders")
    run.add_argument("--jobs", type=int, default=1, metavar="N",
                     help="worker processes for many small images (default 1); a worker that "
                     "dies fails only the file it held")  # fmt: skip
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

    cache = sub.add_parser(
        "cache", help="show, clear or fill the compile cache",
        description="Show where patchjit's compile cache is and its size; --clear deletes "
        "it, --precompile compiles the common signatures ahead of time. PATCHJIT_CACHE_DIR "
        "moves the cache, PATCHJIT_CACHE=0 turns it off.",
    )  # fmt: skip
    act = cache.add_mutually_exclusive_group()
    act.add_argument("--clear", action="store_true", help="delete every cached file")
    act.add_argument("--precompile", action="store_true",
                     help="compile the common signatures now (takes a few minutes)")  # fmt: skip
    cache.set_defaults(handler=cmd_cache)
    return parser


def cmd_cache(args) -> int:
    from ._warmup import cache_command

    return cache_command(args, UsageError)


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
