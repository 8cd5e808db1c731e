"""Write your own jitted per-patch operation and pass it extra arguments.

A patch-wise transform-domain denoiser in a dozen lines: each patch is transformed
with an orthonormal matrix ``T`` (``T @ patch @ T.T``), small coefficients are set to
zero (a hard threshold), and the patch is transformed back. ``T`` and the threshold
reach the callback through ``args=`` unchanged; patchjit then averages the overlapping
results. Here ``T`` is the DCT-II matrix from ``scipy.fft``; any orthonormal basis works.

Run: python examples/custom_callback.py
"""

import time

import numba
import numpy as np
from scipy.fft import dct

import patchjit
from patchjit.demo import psnr, sample_image


@numba.njit
def threshold_in_basis(patch, out, basis, threshold):
    n = patch.shape[0]
    coef = basis @ patch.astype(np.float64) @ basis.T  # forward transform
    for i in range(n):
        for j in range(n):
            if (i or j) and abs(coef[i, j]) < threshold:  # keep the DC coefficient
                coef[i, j] = 0.0
    back = basis.T @ coef @ basis  # inverse transform
    for i in range(n):
        for j in range(n):
            out[i, j] = back[i, j]


def main() -> None:
    sigma, n = 20.0, 8
    clean = sample_image().astype(np.float32)
    noisy = clean + np.random.default_rng(0).normal(0, sigma, clean.shape).astype(np.float32)
    basis = dct(np.eye(n), norm="ortho", axis=0)  # rows are the DCT-II basis vectors

    args = (basis, 3.0 * sigma)
    t0 = time.perf_counter()
    patchjit.process_image(noisy[:32, :32].copy(), threshold_in_basis, n, args=args)
    compile_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    result = patchjit.process_image(noisy, threshold_in_basis, n, args=args)
    run_s = time.perf_counter() - t0

    print(f"{n}x{n} patches, stride 1, threshold {3 * sigma:g} on a {clean.shape} image")
    print(f"PSNR noisy {psnr(clean, noisy):.2f} dB -> denoised {psnr(clean, result):.2f} dB")
    print(f"first call (compile) {compile_s:.1f} s, warm call {run_s * 1e3:.0f} ms")
    hann = patchjit.process_image(noisy, threshold_in_basis, n, args=args, window="hann")
    print(f"with window='hann': {psnr(clean, hann):.2f} dB")


if __name__ == "__main__":
    main()
