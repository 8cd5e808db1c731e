"""Scaling of patchjit's fused pass: patch size, threads, image size; writes a PNG.

Run: python benchmarks/scaling.py [--quick] [--out benchmarks/results]

Every point is the median of several warm runs of ``process_image`` with an identity
callback on float32 data at stride 1, reported as patch-pixels per second
(n_patches * patch_size / time). The load average at start and end goes into the JSON,
the printout and the figure's title: other processes on the machine slow the points down.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numba
import numpy as np
from ops import identity

import patchjit


def _median_time(fn, repeats: int) -> float:
    fn()  # warm-up (compilation)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def _throughput(n: int, p: int, threads: int, repeats: int) -> tuple[float, float]:
    img = np.random.default_rng(0).random((n, n), dtype=np.float32)
    t = _median_time(lambda: patchjit.process_image(img, identity, p, threads=threads), repeats)
    return t, (n - p + 1) ** 2 * p * p / t


def run(quick: bool, out: Path) -> dict:
    repeats = 3 if quick else 5
    max_threads = numba.config.NUMBA_NUM_THREADS
    n_patch = 512 if quick else 1024
    sizes = [3, 5, 8, 12, 16, 24, 32, 39, 48, 64]
    threads = sorted({1, max_threads})
    images = [256, 512, 1024, 2048] if quick else [256, 512, 1024, 2048, 4096]
    res: dict = {"patch_size": [], "threads": [], "image_size": []}
    res["loadavg_start"] = os.getloadavg()
    for p in sizes:
        t, tp = _throughput(n_patch, p, max_threads, repeats)
        res["patch_size"].append({"patch": p, "image": n_patch, "time_s": t, "pp_per_s": tp})
        print(f"patch {p:3d} on {n_patch}^2: {t * 1e3:8.1f} ms  {tp / 1e9:6.2f} Gpp/s")
    for th in threads:
        t, tp = _throughput(n_patch, 39, th, repeats)
        res["threads"].append({"threads": th, "time_s": t, "pp_per_s": tp})
        print(f"threads {th}: {t * 1e3:8.1f} ms  {tp / 1e9:6.2f} Gpp/s")
    for n in images:
        t, tp = _throughput(n, 39, max_threads, repeats)
        res["image_size"].append({"image": n, "pixels": n * n, "time_s": t, "pp_per_s": tp})
        print(f"image {n:5d}^2: {t * 1e3:8.1f} ms  {tp / 1e9:6.2f} Gpp/s")
    res["loadavg_end"] = os.getloadavg()
    print(f"load average (1 min): {res['loadavg_start'][0]:.2f} at start, "
          f"{res['loadavg_end'][0]:.2f} at end")  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    (out / "scaling.json").write_text(json.dumps(res, indent=2))
    _plot(res, out / "scaling.png")
    return res


def _plot(res: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    ps = res["patch_size"]
    axes[0].plot([r["patch"] for r in ps], [r["pp_per_s"] / 1e9 for r in ps], "o-")
    axes[0].set(xlabel="patch size p (p x p)", ylabel="Gpatch-pixels/s", title="vs patch size")
    th = res["threads"]
    axes[1].bar([str(r["threads"]) for r in th], [r["pp_per_s"] / 1e9 for r in th])
    axes[1].set(xlabel="threads", ylabel="Gpatch-pixels/s", title="vs threads (39x39)")
    im = res["image_size"]
    axes[2].loglog([r["pixels"] for r in im], [r["time_s"] for r in im], "o-", label="patchjit")
    x0, t0 = im[0]["pixels"], im[0]["time_s"]
    axes[2].loglog(
        [r["pixels"] for r in im], [t0 * r["pixels"] / x0 for r in im], "k--", label="linear"
    )
    axes[2].set(xlabel="image pixels", ylabel="time (s)", title="vs image size (39x39)")
    axes[2].legend()
    for ax in axes:
        ax.grid(alpha=0.3)
    load = f"load avg {res['loadavg_start'][0]:.2f} -> {res['loadavg_end'][0]:.2f}"
    fig.suptitle(f"patchjit process_image, identity callback, float32, stride 1 ({load})")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = ap.parse_args()
    run(args.quick, args.out)


if __name__ == "__main__":
    main()
