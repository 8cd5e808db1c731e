"""Labels from K class scores without holding the K-channel result: ``finalize=``.

A segmentation model returns K scores per pixel; the labels are their argmax. Merging
the scores of overlapping patches needs a K-channel accumulator (a 2048x2048 image with
32 float32 classes: 512 MiB), and the argmax would need all of it at the end. With
``finalize=lambda b: b.argmax(-1).astype(np.uint8)`` patchjit applies the argmax to each
finished block of rows as soon as no later patch touches it, so only a band of rows a
few patches high is ever held in K channels, and the result is the uint8 label image.

The "model" here is NumPy, no torch needed: K = 8 scores per pixel from a fixed random
1x1 convolution of the RGB values (an einsum), plus a term that depends on the patch's
mean, so overlapping patches disagree and the merge matters.

Run: python examples/segmentation_finalize.py
"""

from __future__ import annotations

import sys

import numpy as np

import patchjit

K = 8  # classes


def main() -> int:
    rng = np.random.default_rng(0)
    image = rng.random((300, 260, 3), dtype=np.float32)  # RGB, channels last
    weights = rng.standard_normal((3, K)).astype(np.float32)  # a fixed random 1x1 conv
    bias = rng.standard_normal(K).astype(np.float32)

    def scores(batch):  # (n, 32, 32, 3) -> (n, 32, 32, K) class scores
        per_pixel = np.einsum("nhwc,ck->nhwk", batch, weights) + bias
        context = batch.mean(axis=(1, 2, 3))[:, None, None, None] * np.linspace(
            -0.5, 0.5, K, dtype=np.float32
        )
        return np.tanh(per_pixel + context)

    kw = dict(out_channels=K, window="hann", batch_size=16)
    labels = patchjit.process_batches(
        image, scores, (32, 32), 16, finalize=lambda b: b.argmax(-1).astype(np.uint8), **kw
    )
    print(f"labels {labels.shape} {labels.dtype}, classes used: {np.unique(labels).tolist()}")

    # the check: the full K-channel result, computed without finalize, then its argmax
    full = patchjit.process_batches(image, scores, (32, 32), 16, **kw)
    same = bool(np.array_equal(labels, full.argmax(-1)))
    print(f"full scores {full.shape} {full.dtype}; labels == argmax of the full result: {same}")
    if not (labels.dtype == np.uint8 and labels.shape == image.shape[:2] and same):
        print("MISMATCH between finalize and the full result", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
