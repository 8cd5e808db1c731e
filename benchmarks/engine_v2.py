"""This tree's engine against an older commit (default 0.1.0, 88ed818), side by side.

Usage::

    python benchmarks/engine_v2.py [--rounds 3] [--reps 5] [--old COMMIT] [NAME ...]

The old commit is extracted with ``git archive`` into a temporary folder; every round
runs one fresh subprocess per engine (old, new, alternating), with ``PYTHONPATH``
pointing at that engine. Each subprocess compiles every workload once (not timed),
then times ``--reps`` warm calls; the table shows the median over all rounds. The
10^8 rows are timed on a 2048², 39² proxy and scaled to 10^8 patches.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
OLD_COMMIT = "88ed818"


# --- worker (runs inside the engine under test) ----------------------------------------


def _callbacks():
    import numba

    @numba.njit
    def identity2d(patch, out):
        for i in range(patch.shape[0]):
            for j in range(patch.shape[1]):
                out[i, j] = patch[i, j]

    @numba.njit
    def identity_flat(patch, out):
        p = patch.reshape(patch.size)
        o = out.reshape(out.size)
        for q in range(p.size):
            o[q] = p[q]

    @numba.njit
    def noop(patch, out):
        pass

    return identity2d, identity_flat, noop


def _floor(image, p, func):
    """Copy every patch into a contiguous buffer and run ``func``; no merge."""
    import numba

    @numba.njit(parallel=True)
    def run(img, p, func):
        n = img.shape[0] - p + 1
        m = img.shape[1] - p + 1
        for i in numba.prange(n):
            buf = np.empty((p, p), img.dtype)
            out = np.empty((p, p), np.float32)
            for j in range(m):
                for a in range(p):
                    for b in range(p):
                        buf[a, b] = img[i + a, j + b]
                func(buf, out)

    return lambda: run(image, p, func)


def workloads():
    import patchjit
    from patchjit import ops

    identity2d, identity_flat, noop = _callbacks()
    rng = np.random.default_rng(0)
    g512 = rng.random((512, 512), dtype=np.float32)
    g1024 = rng.random((1024, 1024), dtype=np.float32)
    g2048 = rng.random((2048, 2048), dtype=np.float32)
    f1024 = rng.random((1024, 1024))
    rgb = rng.random((512, 512, 3), dtype=np.float32)
    vol = rng.random((96, 96, 96), dtype=np.float32)
    classic = rng.random((100, 100), dtype=np.float32)
    noisy = (g512 * 255).astype(np.float32)
    pi, mp = patchjit.process_image, patchjit.map_patches
    scale = 1e8 / (2048 - 38) ** 2
    return {
        "classic": (lambda: pi(classic, ops.identity, 39), 1),
        "mean512": (lambda: pi(g512, ops.mean_remove, 39), 1),
        "mean512_floor": (_floor(g512, 39, ops.mean_remove), 1),
        "localstd": (lambda: mp(f1024, ops.local_std, 15), 1),
        "rgb": (lambda: pi(rgb, ops.identity, (16, 16), 2), 1),
        "volume": (lambda: pi(vol, ops.identity, 9), 1),
        "dct8": (lambda: pi(noisy, ops.dct_denoise, (8, 8), args=(20.0,)), 1),
        "p3": (lambda: pi(g1024, ops.identity, 3), 1),
        "1e8_identity2d": (lambda: pi(g2048, identity2d, 39), scale),
        "1e8_flat": (lambda: pi(g2048, identity_flat, 39), scale),
        "1e8_noop": (lambda: pi(g2048, noop, 39), scale),
    }


def worker(names, reps):
    table = workloads()
    res = {}
    for name in names:
        call, scale = table[name]
        try:
            call()  # compile
        except Exception as exc:  # e.g. the flat loop on 0.1.0's strided patches
            res[name] = {"error": type(exc).__name__}
            continue
        times = []
        for _ in range(reps):
            t0 = time.perf_counter()
            call()
            times.append((time.perf_counter() - t0) * scale)
        res[name] = {"times": times}
    print(json.dumps(res))


# --- driver -----------------------------------------------------------------------------


def _run(path, names, reps):
    env = dict(os.environ, PYTHONPATH=str(path))
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", "--reps", str(reps), *names]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True, cwd=path)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--old", default=OLD_COMMIT, help=f"commit to compare with ({OLD_COMMIT})")
    ap.add_argument("--worker", action="store_true")
    ap.add_argument("names", nargs="*")
    a = ap.parse_args()
    if a.worker:
        worker(a.names, a.reps)
        return
    names = a.names or [
        "classic", "mean512", "mean512_floor", "localstd", "rgb", "volume", "dct8", "p3",
        "1e8_identity2d", "1e8_flat", "1e8_noop",
    ]  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        old = Path(tmp) / "old"
        old.mkdir()
        arch = subprocess.run(["git", "archive", a.old], cwd=ROOT, capture_output=True, check=True)
        subprocess.run(["tar", "-x", "-C", str(old)], input=arch.stdout, check=True)
        times = {"old": {}, "new": {}}
        for r in range(a.rounds):
            for label, path in (
                (("old", old), ("new", ROOT)) if r % 2 == 0 else (("new", ROOT), ("old", old))
            ):
                got = _run(
                    path,
                    [n for n in names if not (label == "old" and n.endswith("_floor"))],
                    a.reps,
                )
                for n, v in got.items():
                    times[label].setdefault(n, []).extend(v.get("times", []))
                print(f"round {r + 1} {label}: {json.dumps(got)}", file=sys.stderr)
    print(f"| workload | {a.old} (s) | this tree (s) | this / {a.old} |")
    print("|---|---:|---:|---:|")
    for n in names:
        o, w = times["old"].get(n), times["new"].get(n)
        mo = float(np.median(o)) if o else None
        mn = float(np.median(w)) if w else None
        ratio = f"{mn / mo:.2f}" if mo and mn else "–"
        fo = f"{mo:.4f}" if mo else "n/a"
        fn = f"{mn:.4f}" if mn else "n/a"
        print(f"| {n} | {fo} | {fn} | {ratio} |")


if __name__ == "__main__":
    main()
