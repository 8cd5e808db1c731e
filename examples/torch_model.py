"""A PyTorch model over a large image, patch by patch: patchjit next to MONAI.

A small convolutional network (built here, random weights, CPU torch) runs on
overlapping 64x64 patches of a synthetic image, in batches, through
``patchjit.process_batches`` with a Hann window (no seams), and without a window
next to MONAI's ``sliding_window_inference`` with ``mode="constant"`` (the plain mean
of overlapping windows): same windows (patchjit's ``overlap=`` follows MONAI's rule),
so the two agree to float rounding.

The batch reaches torch without a copy: ``torch.from_numpy`` shares the batch's
memory, and ``tensor.numpy()`` hands the output back.

Run: python examples/torch_model.py [--size 2048] [--patch 64] [--overlap 0.25]
Needs the torch extra: pip install "patchjit[torch]" (torch and monai).
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

import patchjit


def build_model(torch):
    """A three-layer conv net on grey images; fixed random weights."""
    torch.manual_seed(0)
    nn = torch.nn
    model = nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(8, 1, 3, padding=1),
    )
    return model.eval()


def batch_function(torch, model):
    """``func(batch)`` for process_batches: (n, h, w) float32 in, (n, h, w) out, no copies."""

    def run(batch):
        with torch.inference_mode():
            x = torch.from_numpy(batch)[:, None]  # (n, 1, h, w), shares memory
            return model(x)[:, 0].numpy()  # (n, h, w), a view of torch's output

    return run


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512, help="image side (default 512)")
    parser.add_argument("--patch", type=int, default=64)
    parser.add_argument("--overlap", type=float, default=0.25)
    parser.add_argument("--batch", type=int, default=16)
    opts = parser.parse_args(argv)
    try:
        import torch
        from monai.inferers import sliding_window_inference
    except ImportError as exc:
        print(f"skipped: this example needs torch and monai ({exc}); "
              f'pip install "patchjit[torch]"')  # fmt: skip
        return 0

    rng = np.random.default_rng(0)
    n = opts.size
    yy, xx = np.mgrid[0:n, 0:n] / n
    image = (np.sin(12 * xx) * np.cos(9 * yy) + 0.2 * rng.standard_normal((n, n))).astype(
        np.float32
    )
    model = build_model(torch)
    func = batch_function(torch, model)
    p, ov, bs = opts.patch, opts.overlap, opts.batch
    print(f"image {image.shape}, patches {p}x{p}, overlap {ov}, batch {bs}")

    patchjit.process_batches(image[: 2 * p, : 2 * p], func, (p, p), overlap=ov)  # compile
    t0 = time.perf_counter()
    smooth = patchjit.process_batches(image, func, (p, p), overlap=ov, batch_size=bs, window="hann")
    t_hann = time.perf_counter() - t0
    t0 = time.perf_counter()
    plain = patchjit.process_batches(image, func, (p, p), overlap=ov, batch_size=bs)
    t_plain = time.perf_counter() - t0

    with torch.inference_mode():
        t0 = time.perf_counter()
        ref = sliding_window_inference(
            torch.from_numpy(image)[None, None], (p, p), bs, model, overlap=ov, mode="constant"
        )[0, 0].numpy()
        t_monai = time.perf_counter() - t0

    diff = float(np.abs(plain - ref).max())
    print(f"patchjit, Hann window : {t_hann:6.3f} s  (result {smooth.shape} {smooth.dtype})")
    print(f"patchjit, plain mean  : {t_plain:6.3f} s")
    print(f"MONAI, mode='constant': {t_monai:6.3f} s")
    print(f"max |patchjit - MONAI| = {diff:.2e} (plain mean; output range {np.ptp(ref):.2f})")
    if not diff <= 1e-4 * max(1.0, float(np.abs(ref).max())):
        print("MISMATCH between patchjit and MONAI", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
