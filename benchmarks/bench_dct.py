"""DCT denoising: patchjit's ``dct-denoise`` against OpenCV's ``xphoto.dctDenoising``.

    python benchmarks/bench_dct.py [--repeats N] [--threads T [T ...]] [--sizes P [P ...]]

Both implement Yu & Sapiro, "DCT image denoising: a simple and effective image
denoising algorithm" (IPOL 2011): stride-1 square patches, orthonormal 2-D DCT, hard
threshold at 3 sigma, inverse DCT, overlap averaging; RGB images are decorrelated with
the paper's orthonormal 3x3 transform first. Images: scikit-image's ``camera`` (512x512
grey) and ``astronaut`` (512x512 RGB), float32, plus Gaussian noise of sigma 25 (seed 0,
not clipped).

OpenCV differs from the paper in two details, both measured here:

* its patch grid stops one pixel short: patches start at rows/columns ``0 .. H-p-1``
  (not ``H-p``), so the last row and column are covered by no patch and come out NaN
  (0 for integer images), and pixels near the far borders average one patch fewer;
* it thresholds the DC coefficient like every other one (the paper keeps it), which
  zeroes the local mean of dark patches and, in colour, of the weak chroma channels.

So the table shows, for every image and patch size:

``patchjit``          the ``dct-denoise`` op as shipped (the paper: DC kept, every pixel
                      covered), on the full image;
``patchjit-opencv``   the same kernels made to match OpenCV: DC thresholded, on the
                      image without its last row and column (OpenCV's grid);
``opencv``            ``cv2.xphoto.dctDenoising``.

PSNR is measured on the pixels OpenCV computes (all but the last row and column) for
every row, so the numbers compare like with like; "max |diff|" is the largest pixel
difference to OpenCV's output there. Times are warm medians of interleaved runs, so a
machine-load drift hits every tool alike. The load average is printed: on a shared
machine, compare the 1-thread rows, which other processes disturb least.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time

import numba
import numpy as np
from numba import njit

import patchjit
from patchjit import ops
from patchjit.ops._simd import make_gray_kernel

SIGMA = 25.0
SEED = 0


def psnr(result, clean) -> float:
    err = np.asarray(result, dtype=np.float64) - clean
    return float(10 * np.log10(255.0**2 / np.mean(err**2)))


def _opencv_like_kernels(sizes):
    """Grey callbacks that threshold the DC coefficient too, as OpenCV does."""

    def make(p):
        kernel = make_gray_kernel(ops.dct_matrix(p), keep_dc=False)

        @njit
        def callback(patch, out, sigma):
            kernel(patch, out, 3.0 * sigma)

        return callback

    return {p: make(p) for p in sizes}


def patchjit_opencv_like(noisy, p, threads, kernels):
    """OpenCV's variant with patchjit: its patch grid, its DC handling, its colour path."""
    x = noisy[:-1, :-1]
    func = kernels[p]

    def plane(a):
        return patchjit.process_image(a, func, (p, p), args=(SIGMA,), threads=threads)

    if x.ndim == 2:
        out = plane(x)
    else:  # elementwise colour transform (no BLAS threads competing with numba's)
        cm = ops.COLOR_MATRIX.astype(np.float32)
        den = [plane(x[..., 0] * cm[c, 0] + x[..., 1] * cm[c, 1] + x[..., 2] * cm[c, 2])
               for c in range(3)]  # fmt: skip
        out = np.stack([sum(den[c] * cm[c, k] for c in range(3)) for k in range(3)], axis=-1)
    full = np.full(noisy.shape, np.nan, dtype=np.float32)
    full[:-1, :-1] = out
    return full


def timed(fn):
    t0 = time.perf_counter()
    result = fn()
    return time.perf_counter() - t0, result


def run(args) -> int:
    import cv2
    import skimage.data

    images = {
        "camera (512x512 grey)": skimage.data.camera(),
        "astronaut (512x512 RGB)": skimage.data.astronaut(),
    }
    kernels = _opencv_like_kernels(args.sizes)
    op = ops.get("dct-denoise")
    print(f"python {platform.python_version()}, numpy {np.__version__}, numba {numba.__version__}")
    print(f"opencv {cv2.__version__}, patchjit {patchjit.__version__}, {platform.machine()}")
    print(
        f"numba threads available: {numba.config.NUMBA_NUM_THREADS}; sigma {SIGMA}, noise "
        f"seed {SEED}, not clipped, float32 images"
    )
    print(f"load average before: {_load()}")
    ratios = []
    for threads in args.threads:
        cv2.setNumThreads(threads)
        print(f"\n## {threads} thread(s): numba threads {threads}, cv2.getNumThreads() "
              f"{cv2.getNumThreads()}")  # fmt: skip
        header = (
            f"{'image':<24} {'p':>3} {'tool':<16} {'median ms':>10} {'PSNR dB':>8} "
            f"{'max |diff|':>11} {'vs opencv':>10}"
        )
        print(header)
        print("-" * len(header))
        for name, clean_u8 in images.items():
            clean = clean_u8.astype(np.float64)
            rng = np.random.default_rng(SEED)
            noisy = (clean + rng.normal(0.0, SIGMA, clean.shape)).astype(np.float32)
            for p in args.sizes:
                tools = {
                    "patchjit": lambda n=noisy, p=p, t=threads: op(n, p, sigma=SIGMA, threads=t),
                    "patchjit-opencv": lambda n=noisy, p=p, t=threads: patchjit_opencv_like(
                        n, p, t, kernels
                    ),
                    "opencv": lambda n=noisy, p=p: _opencv(cv2, n, p),
                }
                first = {k: timed(f)[0] for k, f in tools.items()}  # warm-up (compiles)
                times = {k: [] for k in tools}
                results = {}
                for _ in range(args.repeats):
                    for k, f in tools.items():
                        dt, results[k] = timed(f)
                        times[k].append(dt)
                med = {k: statistics.median(v) for k, v in times.items()}
                inner = (slice(0, -1), slice(0, -1))
                ref = results["opencv"][inner]
                for k in tools:
                    res = results[k][inner]
                    diff = float(np.max(np.abs(res - ref)))
                    ratio = med["opencv"] / med[k]
                    if k != "opencv":
                        ratios.append((name, p, threads, k, ratio))
                    print(
                        f"{name:<24} {p:>3} {k:<16} {med[k] * 1e3:>10.1f} "
                        f"{psnr(res, clean[inner]):>8.3f} {diff:>11.2e} {ratio:>9.1f}x"
                    )
                print(
                    f"{'':<28} patchjit: whole-image PSNR {psnr(results['patchjit'], clean):.3f}"
                    f" dB, first call {first['patchjit']:.2f} s (compiling)"
                )
        print(f"numba threading layer: {numba.threading_layer()}; load average: {_load()}")
    worst = min(ratios, key=lambda r: r[-1])
    print(
        f"\nslowest patchjit speed-up over OpenCV: {worst[-1]:.1f}x ({worst[3]}, {worst[0]}, "
        f"p={worst[1]}, {worst[2]} thread(s))"
    )
    return 0


def _load() -> str:
    """1/5/15-minute load averages: other processes competing for the cores."""
    try:
        return ", ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def _opencv(cv2, noisy, p):
    dst = np.empty_like(noisy)
    cv2.xphoto.dctDenoising(noisy, dst, SIGMA, p)
    return dst


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=7, help="timed runs per tool (default 7)")
    p.add_argument(
        "--threads",
        type=int,
        nargs="+",
        default=None,
        help="thread counts to measure, for both tools (default: 1 and all)",
    )
    p.add_argument("--sizes", type=int, nargs="+", default=[8, 16], choices=[8, 16])
    args = p.parse_args(argv)
    if args.threads is None:
        n = numba.config.NUMBA_NUM_THREADS
        args.threads = [1, n] if n > 1 else [1]
    try:
        import cv2  # noqa: F401
        import skimage  # noqa: F401
    except ImportError as exc:
        print(f"needs opencv-contrib-python-headless and scikit-image: {exc}", file=sys.stderr)
        return 2
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
