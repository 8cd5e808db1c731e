"""Generate patchjit/data/sample.png, the demo's built-in test image (run once; committed).

A deterministic synthetic grey scene: smooth shading, sharp-edged shapes, fine stripes
and a textured region, so that denoising has edges, gradients and texture to preserve.
It is generated, not photographed, so it carries no licence restrictions.
"""

from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage


def make(n: int = 384) -> np.ndarray:
    y, x = np.mgrid[0:n, 0:n] / n
    img = 70 + 90 * x + 40 * np.sin(3 * np.pi * y)  # smooth background shading
    disk = (x - 0.3) ** 2 + (y - 0.32) ** 2 < 0.18**2
    img[disk] = 200 - 60 * y[disk]
    square = (np.abs(x - 0.72) < 0.14) & (np.abs(y - 0.3) < 0.14)
    img[square] = 45
    stripes = (y > 0.62) & (y < 0.92) & (x > 0.08) & (x < 0.45)
    img[stripes] = 128 + 80 * np.sign(np.sin(2 * np.pi * 24 * x[stripes] * (1 + y[stripes])))
    rng = np.random.default_rng(20261125)
    texture = ndimage.gaussian_filter(rng.standard_normal((n, n)), 2.0)
    region = (x > 0.55) & (y > 0.58) & (y < 0.95)
    img[region] = 150 + 220 * texture[region]
    ring = np.abs(np.hypot(x - 0.74, y - 0.77) - 0.11) < 0.012
    img[ring] = 20
    img = ndimage.gaussian_filter(img, 0.7)  # anti-alias edges
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


if __name__ == "__main__":
    out = Path(__file__).resolve().parents[1] / "patchjit" / "data" / "sample.png"
    Image.fromarray(make()).save(out)
    print(f"wrote {out} ({out.stat().st_size / 1024:.0f} KiB)")
