"""patchjit on dask arrays against in memory, and the out-of-core path's peak memory.

Usage::

    python benchmarks/bench_dask.py [--n 8192] [--step 3] [--rounds 3] [--chunks 1024 2048 4096]

Prints a markdown table: in-memory time, dask (threaded scheduler, 1 numba thread per
task) per chunk size, overhead, and the recomputation overhead (patches run by the
chunks / patches of the grid). Then runs :func:`patchjit.dask.process_file` on a TIFF
of the same size in a fresh process under a memory budget and reports its peak RSS
above the interpreter's baseline.
"""

from __future__ import annotations

import argparse
import itertools
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import dask  # noqa: E402
import dask.array as da  # noqa: E402
import numba  # noqa: E402

import patchjit  # noqa: E402
from patchjit import PatchGrid  # noqa: E402
from patchjit.ops import mean_remove  # noqa: E402


def patches_run(grid, chunks):
    """Patch evaluations when every chunk runs the patches touching it."""
    total = 1
    for a in range(grid.ndim):
        starts = np.cumsum((0, *chunks[a]))
        o, p = grid.origins[a], grid.patch_shape[a]
        per_axis = 0
        for c0, c1 in itertools.pairwise(starts):
            per_axis += int(np.sum((o + p > c0) & (o < c1)))
        total *= per_axis
    return total


OOC = """
import sys, time
import numpy as np, tifffile, patchjit.dask as pdask
from patchjit.ops import mean_remove
src, dst = sys.argv[1:3]
budget, p, s = (int(v) for v in sys.argv[3:6])
tifffile.imwrite(dst + ".w.tif", np.zeros((512, 512), np.float32), tile=(64, 64))
pdask.process_file(dst + ".w.tif", dst + ".w.out.tif", mean_remove, (p, p), s,
                   max_memory=budget, workers=2)
def kib(key):  # ru_maxrss would include the parent's peak at fork (kept across exec)
    with open("/proc/self/status") as f:
        return next(int(v.split()[1]) for v in f if v.startswith(key + ":")) * 1024
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # reset the peak (VmHWM) to the current RSS
base = kib("VmRSS")
t = time.perf_counter()
chunks = pdask.process_file(src, dst, mean_remove, (p, p), s, max_memory=budget, workers=2)
dt = time.perf_counter() - t
peak = kib("VmHWM")
print(base, peak, chunks[0], dt)
"""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=8192)
    ap.add_argument("--patch", type=int, default=39)
    ap.add_argument("--step", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--chunks", type=int, nargs="+", default=[1024, 2048, 4096])
    ap.add_argument("--budget-mb", type=int, default=64)
    ap.add_argument("--skip-ooc", action="store_true")
    ap.add_argument("--skip-timing", action="store_true")
    a = ap.parse_args()
    n, p, s = a.n, a.patch, a.step
    workers = numba.config.NUMBA_NUM_THREADS
    image = np.random.default_rng(0).random((n, n), dtype=np.float32)
    grid = PatchGrid(image.shape, p, s)
    print(f"# {n}x{n} float32, {p}x{p} patches, step {s}, mean_remove, {grid.n_patches:,} "
          f"patches, {workers} threads; min of {a.rounds} rounds")  # fmt: skip
    patchjit.process_image(image[:256, :256], mean_remove, p, s)  # compile
    runs = {"mem": lambda: patchjit.process_image(image, mean_remove, p, s)}
    for c in a.chunks:
        lazy = patchjit.process_image(da.from_array(image, chunks=c), mean_remove, p, s)
        lazy[:256, :256].compute(scheduler="threads")
        runs[c] = lazy.compute
    times = {k: [] for k in runs}
    with dask.config.set(scheduler="threads", num_workers=workers):
        for _ in range(a.rounds if not a.skip_timing else 0):  # interleaved: load drifts
            for key, fn in runs.items():
                t = time.perf_counter()
                fn()
                times[key].append(time.perf_counter() - t)
    if not a.skip_timing:
        t_mem = min(times["mem"])
        print("\n| path | chunks | time (s) | vs in memory | patches run / grid |")
        print("|---|---|---:|---:|---:|")
        print(f"| in memory (numba threads: {workers}) | - | {t_mem:.2f} | 1.00 | 1.000 |")
        for c in a.chunks:
            t = min(times[c])
            chunks = da.from_array(image, chunks=c).chunks
            ratio = patches_run(grid, chunks) / grid.n_patches
            print(f"| dask threaded, threads=1 per task | {c}² | {t:.2f} | {t / t_mem:.2f} | "
                  f"{ratio:.3f} |")  # fmt: skip
    if a.skip_ooc:
        return
    import tifffile

    with tempfile.TemporaryDirectory() as d:
        src, dst = os.path.join(d, "in.tif"), os.path.join(d, "out.tif")
        tifffile.imwrite(src, image, tile=(256, 256))
        budget = a.budget_mb << 20
        r = subprocess.run(
            [sys.executable, "-c", OOC, src, dst, str(budget), str(p), str(s)],
            capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=ROOT), check=True,
        )  # fmt: skip
        base, peak, chunk, dt = r.stdout.split()
        extra = (int(peak) - int(base)) / 2**20
        size = os.path.getsize(src) / 2**20
        print(f"\nOut of core (process_file, TIFF {size:.0f} MiB -> tiled TIFF, 2 workers): "
              f"budget {a.budget_mb} MiB, chunks {chunk}², peak RSS above baseline "
              f"{extra:.0f} MiB (baseline {int(base) / 2**20:.0f} MiB), "
              f"{float(dt):.1f} s")  # fmt: skip


if __name__ == "__main__":
    main()
