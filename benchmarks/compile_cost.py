"""What compiles, and what each compilation costs: every row in a fresh process.

Usage::

    python benchmarks/compile_cost.py [--rounds 3]

Each step runs once in a new interpreter after the steps before it (so "new dtype"
is the extra cost of a float64 image after a float32 one with the same callback).
Reported: the median over ``--rounds`` processes, in seconds. With ``--cache`` the
whole sequence runs twice with ``PATCHJIT_CACHE=1`` and a temporary
``NUMBA_CACHE_DIR``; the second run shows what the opt-in on-disk cache saves.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

WORKER = r"""
import json, sys, time
t0 = time.perf_counter()
import numpy as np
import numba
import patchjit
t_import = time.perf_counter() - t0

@numba.njit
def scale(patch, out, a):
    p = patch.ravel()
    o = out.ravel()
    for q in range(p.size):
        o[q] = a * p[q]

@numba.njit
def mean(patch):
    return patch.mean()

rng = np.random.default_rng(0)
g32 = rng.random((64, 64), dtype=np.float32)
steps = [
    ("first process_image call (new callback, float32 2-D)",
     lambda: patchjit.process_image(g32, scale, 8, args=(1.0,))),
    ("same callback and types again", lambda: patchjit.process_image(g32, scale, 8, args=(1.0,))),
    ("new image dtype (float64)",
     lambda: patchjit.process_image(g32.astype(np.float64), scale, 8, args=(1.0,))),
    ("new number of axes (3-D volume)",
     lambda: patchjit.process_image(rng.random((16, 16, 16), dtype=np.float32), scale, 4,
                                    args=(1.0,))),
    ("channels (RGB)",
     lambda: patchjit.process_image(rng.random((32, 32, 3), dtype=np.float32), scale, (8, 8),
                                    args=(1.0,))),
    ("new args types (int instead of float)",
     lambda: patchjit.process_image(g32, scale, 8, args=(2,))),
    ("window='hann' (same types)",
     lambda: patchjit.process_image(g32, scale, 8, args=(1.0,), window="hann")),
    ("reduce='max'", lambda: patchjit.process_image(g32, scale, 8, args=(1.0,), reduce="max")),
    ("first map_patches call (new callback)", lambda: patchjit.map_patches(g32, mean, 8)),
    ("first process_batches call",
     lambda: patchjit.process_batches(g32, lambda b: b * 2.0, 8)),
]
out = {"import": t_import}
for name, fn in steps:
    t = time.perf_counter()
    fn()
    out[name] = time.perf_counter() - t
print(json.dumps(out))
"""


def run_once(env) -> dict:
    proc = subprocess.run(
        [sys.executable, "-c", WORKER], env=env, capture_output=True, text=True, check=True
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])


def median(values):
    values = sorted(values)
    return values[len(values) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--cache", action="store_true", help="also measure the disk cache")
    args = parser.parse_args()
    env = dict(os.environ)
    env.pop("PATCHJIT_CACHE", None)
    runs = [run_once(env) for _ in range(args.rounds)]
    rows = {k: median([r[k] for r in runs]) for k in runs[0]}
    cached = None
    if args.cache:
        with tempfile.TemporaryDirectory() as tmp:
            cenv = dict(env, PATCHJIT_CACHE="1", NUMBA_CACHE_DIR=tmp)
            run_once(cenv)  # fills the cache
            cruns = [run_once(cenv) for _ in range(args.rounds)]
        cached = {k: median([r[k] for r in cruns]) for k in cruns[0]}
    print(
        f"| step | seconds (median of {args.rounds} processes) |"
        + (" with PATCHJIT_CACHE=1 (warm cache) |" if cached else "")
    )
    print("|---|---:|" + ("---:|" if cached else ""))
    for k, v in rows.items():
        extra = f" {cached[k]:.2f} |" if cached else ""
        print(f"| {k} | {v:.2f} |{extra}")


if __name__ == "__main__":
    main()
