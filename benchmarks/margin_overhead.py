"""What ``margin=`` and ``scale=`` cost beside a plain call on the same output pixels
(issue 19's target: <= 1.1x).

Each pair runs the same number of patches and output pixels with a callback that
does the same work per output pixel:

- margin: ``patch + 2m`` input patches, ``margin=m``, the callback copies the centre
  (times 2) -- against patches of the tile's size and a callback that doubles them;
- scale 2: a ``n``-pixel image, ``scale=2``, the callback upsamples (nearest, times
  2) -- against a ``2n``-pixel image with patches and step twice as large;
- scale 1/2: a ``2n``-pixel image, ``scale=0.5``, 2x2 block means -- against an
  ``n``-pixel image with half-size patches and a callback that doubles them.

Both the numba engine (``process_image``) and the batch merge (``process_batches``,
numpy callbacks) are timed; calls alternate, ``REPEATS`` times each after a warm-up,
and the table shows medians and the ratio of medians.
Run: ``python benchmarks/margin_overhead.py [--quick]``.
"""

from __future__ import annotations

import statistics
import sys
import time

import numba
import numpy as np

import patchjit

N, TILE, STEP, M = 2048, 32, 16, 4  # image side, output tile, step, margin
REPEATS = 7


@numba.njit
def double(patch, out):
    for i in range(out.shape[0]):
        for j in range(out.shape[1]):
            out[i, j] = 2 * patch[i, j]


@numba.njit
def centre_double(patch, out):
    m = (patch.shape[0] - out.shape[0]) // 2
    for i in range(out.shape[0]):
        for j in range(out.shape[1]):
            out[i, j] = 2 * patch[i + m, j + m]


@numba.njit
def up_double(patch, out):
    for i in range(out.shape[0]):
        for j in range(out.shape[1]):
            out[i, j] = 2 * patch[i // 2, j // 2]


@numba.njit
def block_mean(patch, out):
    for i in range(out.shape[0]):
        for j in range(out.shape[1]):
            a = patch[2 * i, 2 * j] + patch[2 * i + 1, 2 * j]
            out[i, j] = 0.25 * (a + patch[2 * i, 2 * j + 1] + patch[2 * i + 1, 2 * j + 1])


def b_double(b):
    return 2 * b


def b_centre(b):
    return 2 * b[:, M:-M, M:-M]


def b_up(b):
    return 2 * b.repeat(2, axis=1).repeat(2, axis=2)


def b_mean(b):
    n, h, w = b.shape
    return b.reshape(n, h // 2, 2, w // 2, 2).mean(axis=(2, 4))


def pairs(n):
    rng = np.random.default_rng(0)
    img, big, small = (rng.random((s, s), dtype=np.float32) for s in (n, 2 * n, n // 2))
    pi, pb = patchjit.process_image, patchjit.process_batches
    t, s = TILE, STEP
    return {
        "margin 4, numba": (
            lambda: pi(img, double, t, s, pad_mode="symmetric"),
            lambda: pi(img, centre_double, t + 2 * M, s, margin=M, pad_mode="symmetric"),
        ),
        "scale 2, numba": (
            lambda: pi(big, double, 2 * t, 2 * s),
            lambda: pi(img, up_double, t, s, scale=2),
        ),
        "scale 1/2, numba": (
            lambda: pi(small, double, t // 2, s // 2),
            lambda: pi(img, block_mean, t, s, scale=0.5),
        ),
        "margin 4, batches": (
            lambda: pb(img, b_double, t, s, pad_mode="symmetric"),
            lambda: pb(img, b_centre, t + 2 * M, s, margin=M, pad_mode="symmetric"),
        ),
        "scale 2, batches": (
            lambda: pb(big, b_double, 2 * t, 2 * s),
            lambda: pb(img, b_up, t, s, scale=2),
        ),
        "scale 1/2, batches": (
            lambda: pb(small, b_double, t // 2, s // 2),
            lambda: pb(img, b_mean, t, s, scale=0.5),
        ),
    }


def timed(f):
    t0 = time.perf_counter()
    f()
    return time.perf_counter() - t0


def main():
    quick = "--quick" in sys.argv
    n, repeats = (512, 3) if quick else (N, REPEATS)
    print(f"{n}^2 float32 image, output tile {TILE}, step {STEP}, {repeats} alternating runs;")
    print(f"numba threads {numba.get_num_threads()}; medians in seconds\n")
    print("| case | plain | margin/scale | ratio |\n|---|---|---|---|")
    for name, (plain, other) in pairs(n).items():
        a, b = plain(), other()  # warm-up (compiles), and the two agree in shape
        assert a.shape == b.shape, (name, a.shape, b.shape)
        ta, tb = [], []
        for _ in range(repeats):
            ta.append(timed(plain))
            tb.append(timed(other))
        ma, mb = statistics.median(ta), statistics.median(tb)
        print(f"| {name} | {ma:.3f} | {mb:.3f} | {mb / ma:.2f} |", flush=True)


if __name__ == "__main__":
    main()
