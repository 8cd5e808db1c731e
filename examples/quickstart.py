"""The classic case: a 100x100 image, 39x39 patches, stride 1 (3,844 patches).

Every patch goes through a jitted callback and the results are merged back by
averaging overlaps. With the identity callback the merged image equals the input.

Run: python examples/quickstart.py
"""

import time

import numba
import numpy as np

import patchjit


@numba.njit
def identity(patch, out):
    for i in range(patch.shape[0]):
        for j in range(patch.shape[1]):
            out[i, j] = patch[i, j]


@numba.njit
def remove_mean(patch, out, gain):
    m = patch.mean()
    for i in range(patch.shape[0]):
        for j in range(patch.shape[1]):
            out[i, j] = gain * (patch[i, j] - m)


def main() -> None:
    rng = np.random.default_rng(0)
    image = rng.random((100, 100), dtype=np.float32)
    grid = patchjit.PatchGrid(image.shape, 39)
    print(f"image {image.shape}, patches 39x39, stride 1: {grid.n_patches} patches")

    t0 = time.perf_counter()
    merged = patchjit.process_image(image, identity, 39)
    first = time.perf_counter() - t0
    runs = []
    for _ in range(20):
        t0 = time.perf_counter()
        merged = patchjit.process_image(image, identity, 39)
        runs.append(time.perf_counter() - t0)
    err = float(np.abs(merged - image).max())
    print(f"identity round trip: max abs error {err:.2e}")
    print(f"first call (includes compiling the callback): {first:.2f} s")
    print(f"warm call, median of {len(runs)}: {np.median(runs) * 1e3:.2f} ms")

    detail = patchjit.process_image(image, remove_mean, 39, args=(1.0,))
    print(f"mean-removal callback with args=(1.0,): output std {detail.std():.4f}")


if __name__ == "__main__":
    main()
