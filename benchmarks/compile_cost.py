"""What compiles, what each compilation costs, and first contact against numba's floor.

Usage::

    python benchmarks/compile_cost.py [--rounds 3] [--skip-busy]

Every figure comes from fresh processes (median over ``--rounds``), measured side by
side in one run:

1. The step table: each step runs once in a new interpreter after the steps before it
   (so "new dtype" is the extra cost of a float64 image after a float32 one with the
   same callback), with a cold cache (an empty ``PATCHJIT_CACHE_DIR``), a warm one
   (the same folder again) and the cache off (``PATCHJIT_CACHE=0``).
2. Ratios against numba's own floor (warm cache): the seed script
   (``benchmarks/seed.py``: the classic 100^2, 39^2, stride-1 case) against a process
   that imports numba and compiles one tiny function; a new callback object in a warm
   process against compiling and calling that callback alone with ``numba.njit``; a
   new dtype likewise; the CLI on one small PNG with a built-in op against
   ``patchjit --help``.
3. A busy machine (``--skip-busy`` to leave out): with every core kept busy by other
   processes, the classic case's per-call time (default threads) against ``threads=1``,
   over several processes.
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


RATIO_WORKER = r"""
import json, time, numpy as np, numba, patchjit

def make():
    @numba.njit
    def scale(patch, out, a):
        for i in range(patch.shape[0]):
            for j in range(patch.shape[1]):
                out[i, j] = a * patch[i, j]
    return scale

g32 = np.random.default_rng(0).random((64, 64), dtype=np.float32)
patchjit.process_image(g32, make(), 8, args=(1.0,))  # the process is warm
f = make()
t = time.perf_counter(); patchjit.process_image(g32, f, 8, args=(1.0,))
new_cb = time.perf_counter() - t
t = time.perf_counter(); patchjit.process_image(g32.astype(np.float64), f, 8, args=(1.0,))
new_dtype = time.perf_counter() - t
def alone(dtype):
    h = make()
    p = np.ones((8, 8), dtype=dtype); p.flags.writeable = False
    o = np.empty((8, 8), dtype=dtype)
    t = time.perf_counter(); h(p, o, 1.0)
    return time.perf_counter() - t
print(json.dumps({"new_cb": new_cb, "alone32": alone(np.float32),
                  "new_dtype": new_dtype, "alone64": alone(np.float64)}))
"""

BUSY_WORKER = r"""
import json, time, numpy as np, numba, patchjit
@numba.njit
def remove_mean(patch, out):
    m = patch.mean()
    for i in range(patch.shape[0]):
        for j in range(patch.shape[1]):
            out[i, j] = patch[i, j] - m
img = np.random.default_rng(0).random((100, 100)).astype(np.float32)
for threads in (None, 1):
    patchjit.process_image(img, remove_mean, 39, 1, threads=threads)
out = {}
for threads in (None, 1):
    ts = []
    for _ in range(30):
        t = time.perf_counter(); patchjit.process_image(img, remove_mean, 39, 1, threads=threads)
        ts.append(time.perf_counter() - t)
    out[str(threads)] = sorted(ts)[len(ts) // 2]
print(json.dumps(out))
"""

HERE = Path(__file__).resolve().parent


def _wall(cmd, env, rounds) -> float:
    times = []
    for _ in range(rounds):
        t = time.perf_counter()
        subprocess.run(cmd, env=env, capture_output=True, check=True)
        times.append(time.perf_counter() - t)
    return median(times)


def floor_ratios(env, rounds) -> dict:
    py = sys.executable
    seed = _wall([py, str(HERE / "seed.py")], env, rounds)
    floor = _wall([py, "-c", "import numba; numba.njit(lambda x: x + 1)(1)"], env, rounds)
    runs = [run_once(env, RATIO_WORKER) for _ in range(rounds)]
    r = {k: median([x[k] for x in runs]) for k in runs[0]}
    with tempfile.TemporaryDirectory() as tmp:
        import numpy as np
        from PIL import Image

        png = Path(tmp) / "one.png"
        Image.fromarray(np.random.default_rng(0).integers(0, 255, (256, 256), np.uint8)).save(png)
        cli = [py, "-m", "patchjit.cli", "run", str(png), "-o", str(Path(tmp) / "out"),
               "--op", "median", "--patch", "5", "--overwrite"]  # fmt: skip
        subprocess.run(cli, env=env, capture_output=True, check=True)  # warm the cache
        t_cli = _wall(cli, env, rounds)
        t_help = _wall([py, "-m", "patchjit.cli", "--help"], env, rounds)
    return {
        "seed script / numba floor": (seed, floor),
        "new callback / that callback alone": (r["new_cb"], r["alone32"]),
        "new dtype / the callback alone for it": (r["new_dtype"], r["alone64"]),
        "CLI median on a 256^2 PNG / patchjit --help": (t_cli, t_help),
    }


def busy(env, rounds) -> tuple[list, list]:
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"])
            for _ in range(os.cpu_count() or 2)]  # fmt: skip
    try:
        runs = [run_once(env, BUSY_WORKER) for _ in range(rounds)]
    finally:
        for h in hogs:
            h.kill()
    return [r["None"] for r in runs], [r["1"] for r in runs]


def run_once(env, code=WORKER) -> dict:
    proc = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])


def median(values):
    values = sorted(values)
    return values[len(values) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--skip-busy", action="store_true")
    args = parser.parse_args()
    base = {k: v for k, v in os.environ.items() if not k.startswith("PATCHJIT_")}
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(base, PATCHJIT_CACHE_DIR=tmp)
        cold = run_once(env)  # the first process fills the cache
        warm = [run_once(env) for _ in range(args.rounds)]
        off = [run_once(dict(base, PATCHJIT_CACHE="0")) for _ in range(args.rounds)]
        ratios = floor_ratios(env, args.rounds)
        busy_runs = None if args.skip_busy else busy(env, args.rounds)
    print(f"| step | cold cache | warm cache (median of {args.rounds}) | cache off |")
    print("|---|---:|---:|---:|")
    for k in cold:
        w = median([r[k] for r in warm])
        o = median([r[k] for r in off])
        print(f"| {k} | {cold[k]:.2f} | {w:.2f} | {o:.2f} |")
    print("\n| ratio (warm cache) | A s | B s | A/B |")
    print("|---|---:|---:|---:|")
    for k, (a, b) in ratios.items():
        print(f"| {k} | {a:.3f} | {b:.3f} | {a / b:.2f} |")
    if busy_runs:
        par, ser = busy_runs
        print("\nBusy machine (every core kept busy), classic case, per-call median (ms):")
        for i, (p, s1) in enumerate(zip(par, ser)):
            print(f"- process {i + 1}: default {p * 1e3:.2f}, threads=1 {s1 * 1e3:.2f}, "
                  f"ratio {p / s1:.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
