"""Super-resolution patch by patch: ``scale=2`` (and ``margin=`` for a valid conv).

A x2 model returns output patches twice the size of its input patches; with
``scale=2`` patchjit merges them into a result twice the image's size. Two models:

1. Nearest-neighbour upsampling (``torch.nn.functional.interpolate``): the merged
   result equals ``np.kron(image, ones((2, 2)))`` (to float rounding: overlapping
   patches are averaged).
2. A tiny ESPCN-like network (Shi et al., 2016): one 3x3 *valid* conv to 4 channels,
   then ``PixelShuffle(2)`` turns them into a 2x larger image. The conv removes one
   pixel per side, so ``margin=1``: the output patch is ``(patch - 2) * 2``. The merged
   result equals one forward pass over the whole image mirrored by one pixel.

Run: python examples/super_resolution.py   (needs torch: pip install "patchjit[torch]")
"""

from __future__ import annotations

import sys

import numpy as np

import patchjit


def main() -> int:
    try:
        import torch
    except ImportError as exc:
        print(f'skipped: this example needs torch ({exc}); pip install "patchjit[torch]"')
        return 0
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    image = rng.random((75, 61), dtype=np.float32)  # odd sizes are fine with scale=2

    # 1. nearest-neighbour x2: (n, 16, 16) -> (n, 32, 32)
    def nearest(batch):
        with torch.inference_mode():
            x = torch.from_numpy(batch)[:, None]
            return torch.nn.functional.interpolate(x, scale_factor=2, mode="nearest")[:, 0].numpy()

    up = patchjit.process_batches(image, nearest, (16, 16), 8, scale=2)
    diff_nearest = float(np.abs(up - np.kron(image, np.ones((2, 2), np.float32))).max())
    print(f"nearest x2: {image.shape} -> {up.shape}, max |result - np.kron| = {diff_nearest:.1e}")

    # 2. valid 3x3 conv to 4 channels + pixel shuffle: (n, 18, 18) -> (n, 32, 32)
    torch.manual_seed(0)
    espcn = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.PixelShuffle(2)).eval()

    def model(batch):
        with torch.inference_mode():
            return espcn(torch.from_numpy(batch)[:, None])[:, 0].numpy()

    sr = patchjit.process_batches(image, model, (18, 18), 8, margin=1, scale=2, pad_mode="reflect")
    with torch.inference_mode():  # the reference: the whole image, mirrored by the margin
        whole = model(np.pad(image, 1, mode="reflect")[None])[0]
    diff_espcn = float(np.abs(sr - whole).max())
    print(f"conv + pixel shuffle x2, margin 1: {sr.shape}, max |tiled - whole| = {diff_espcn:.1e}")

    if not (diff_nearest <= 1e-6 and sr.shape == whole.shape and diff_espcn <= 1e-5):
        print("MISMATCH with the whole-image result", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
