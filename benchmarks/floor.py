"""Where the time of the fused pass goes: the merge alone, the callback alone, both.

Run: python benchmarks/floor.py [--size N] [--patch P] [--repeats R] [--out DIR]

One process, float32, stride 1, all threads, identity callback. Side by side:

- **bare add**: a numba loop that adds every patch of the input straight into a
  band-owned accumulator: no callback, no per-patch buffer (the lower bound of any
  overlap-add; issue 4's "first figure").
- **callback alone**: the user's identity callback called on every patch view, into a
  per-thread buffer, with no merge at all.
- **straightforward**: per-patch buffer + callback + add, written the obvious way in one
  ``prange`` over bands (issue 4's "second figure").
- **patchjit no-op**: ``process_image`` with a callback that writes nothing: the engine's
  extraction and merge without the callback's work.
- **patchjit**: ``process_image`` with the identity callback.

Every time is the median of ``--repeats`` warm runs, the cases interleaved round by
round. The extrapolation to 10^8 patches (10,038² image) is linear in the number of
patch-pixels, which ``scaling.py`` shows holds.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import numba
import numpy as np
from numba import njit, prange
from ops import identity

import patchjit

BIG_PATCHES = (10038 - 39 + 1) ** 2  # 10^8


@njit
def noop(patch, out):
    pass


@njit(inline="always")
def band(img, p, nb, b):
    """Patch rows ``lo:hi`` of band ``b`` of ``nb``, and the grid's width."""
    g = img.shape[0] - p + 1
    per = -(-g // nb)
    return b * per, min(g, (b + 1) * per), img.shape[1] - p + 1


@njit(parallel=True)
def bare_add(img, p, acc):
    """Add every p x p patch of ``img`` into ``acc`` (bands of patch rows per thread)."""
    for b in prange(acc.shape[0]):
        lo, hi, gw = band(img, p, acc.shape[0], b)
        buf = acc[b]
        buf[:] = 0
        for i in range(lo, hi):
            for j in range(gw):
                for a in range(p):
                    row = buf[i - lo + a, j : j + p]
                    for k in range(p):
                        row[k] += img[i + a, j + k]


@njit(parallel=True)
def callback_alone(img, func, p, outs):
    """Call ``func`` on every patch view; each thread band writes into its own buffer."""
    for b in prange(outs.shape[0]):
        lo, hi, gw = band(img, p, outs.shape[0], b)
        o = outs[b]
        for i in range(lo, hi):
            for j in range(gw):
                func(img[i : i + p, j : j + p], o)


@njit(parallel=True)
def straightforward(img, func, p, acc):
    """Per-patch buffer, callback, add: the obvious fused loop."""
    for b in prange(acc.shape[0]):
        lo, hi, gw = band(img, p, acc.shape[0], b)
        buf = acc[b]
        buf[:] = 0
        o = np.empty((p, p), dtype=img.dtype)
        for i in range(lo, hi):
            for j in range(gw):
                func(img[i : i + p, j : j + p], o)
                for a in range(p):
                    row = buf[i - lo + a, j : j + p]
                    for k in range(p):
                        row[k] += o[a, k]


def interleaved_times(cases: dict, repeats: int) -> dict[str, list[float]]:
    """Warm every case, then time them in ``repeats`` rounds, one run of each per round.

    Interleaving spreads slow phases of a shared machine over all cases alike.
    """
    for fn in cases.values():
        fn()  # compile / warm up
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(repeats):
        for name, fn in cases.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return times


def run(size: int, p: int, repeats: int) -> dict:
    img = np.random.default_rng(0).random((size, size), dtype=np.float32)
    g = size - p + 1
    bands = 8 * numba.get_num_threads()
    per = -(-g // bands)
    acc = np.empty((bands, per + p - 1, size), dtype=np.float32)
    outs = np.empty((bands, p, p), dtype=np.float32)
    cases = {
        "bare add": lambda: bare_add(img, p, acc),
        "callback alone": lambda: callback_alone(img, identity, p, outs),
        "straightforward": lambda: straightforward(img, identity, p, acc),
        "patchjit no-op": lambda: patchjit.process_image(img, noop, p),
        "patchjit": lambda: patchjit.process_image(img, identity, p),
    }
    n_patches = g * g
    rows = {}
    for name, ts in interleaved_times(cases, repeats).items():
        t = statistics.median(ts)
        rows[name] = {
            "median_s": t,
            "times_s": ts,
            "patch_pixels_per_s": n_patches * p * p / t,
            "s_per_1e8_patches": t * BIG_PATCHES / n_patches,
        }
        print(
            f"{name:16s} {t * 1e3:9.1f} ms  {rows[name]['patch_pixels_per_s'] / 1e9:5.2f} G/s  "
            f"-> {rows[name]['s_per_1e8_patches']:5.1f} s for 10^8 patches",
            flush=True,
        )
    return {
        "size": size,
        "patch": p,
        "threads": numba.get_num_threads(),
        "repeats": repeats,
        "n_patches": n_patches,
        "loadavg": os.getloadavg(),
        "cases": rows,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=int, default=1024, help="image side (default 1024)")
    ap.add_argument("--patch", type=int, default=39, help="patch side (default 39)")
    ap.add_argument("--repeats", type=int, default=7, help="timed runs per case (default 7)")
    ap.add_argument("--out", type=Path, help="write floor.json into this directory")
    args = ap.parse_args()
    res = run(args.size, args.patch, args.repeats)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "floor.json").write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
