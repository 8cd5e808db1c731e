"""Build examples/tour.ipynb from the cells below (the notebook is committed unexecuted;
CI executes it with nbclient in tests/test_examples.py)."""

from pathlib import Path

import nbformat as nbf

CELLS = [
    (
        "md",
        """# A tour of patchjit

Slice an image into overlapping patches, run a jitted function on every patch and merge
the results, in one compiled parallel pass. This notebook shows:

1. denoising before/after with a built-in op,
2. the coverage and window-weight maps that merging divides by,
3. timing against a peer that materialises the patches (scikit-learn),
4. a progress bar on a longer run.""",
    ),
    (
        "code",
        """import time

import matplotlib.pyplot as plt
import numba
import numpy as np

import patchjit
from patchjit import ops
from patchjit.demo import psnr, sample_image

clean = sample_image().astype(np.float32)
noisy = clean + np.random.default_rng(0).normal(0, 25, clean.shape).astype(np.float32)
clean.shape, patchjit.__version__""",
    ),
    ("md", "## 1. Before and after: sliding-window DCT denoising (8×8 patches, stride 1)"),
    (
        "code",
        """denoised = ops.get("dct-denoise")(noisy, sigma=25)
fig, axes = plt.subplots(1, 3, figsize=(12, 4.2))
for ax, img, title in zip(axes, (clean, noisy, denoised), ("clean", "noisy", "denoised")):
    ax.imshow(img, cmap="gray", vmin=0, vmax=255)
    ax.set_title(f"{title}: {psnr(clean, img):.2f} dB" if title != "clean" else title)
    ax.axis("off")
plt.tight_layout()""",
    ),
    (
        "md",
        """## 2. Coverage and window weights

Every pixel's result is `Σ w·out / Σ w` over the patches covering it. `PatchGrid` gives
that denominator in closed form. With `step=6` and 16×16 patches, `edge="cover"` adds a
last patch flush with each border; the Hann window used here has no zero weights, so
the image borders keep positive weight.""",
    ),
    (
        "code",
        """fig, axes = plt.subplots(1, 2, figsize=(10, 4.2))
for ax, window in zip(axes, (None, "hann")):
    grid = patchjit.PatchGrid((100, 100), 16, step=6, window=window)
    im = ax.imshow(grid.coverage(), cmap="viridis")
    ax.set_title(f"window={window!r}: min {grid.coverage().min():.3f}")
    plt.colorbar(im, ax=ax)
plt.tight_layout()
grid""",
    ),
    ("md", "## 3. Timing against scikit-learn (extract_patches_2d + reconstruct_from_patches_2d)"),
    (
        "code",
        """from sklearn.feature_extraction.image import extract_patches_2d, reconstruct_from_patches_2d

@numba.njit
def remove_mean(patch, out):
    m = patch.mean()
    for i in range(patch.shape[0]):
        for j in range(patch.shape[1]):
            out[i, j] = patch[i, j] - m

image = noisy[:200, :200].copy()
p = 24
patchjit.process_image(image, remove_mean, p)  # compile once

t0 = time.perf_counter()
ours = patchjit.process_image(image, remove_mean, p)
t_ours = time.perf_counter() - t0

t0 = time.perf_counter()
patches = extract_patches_2d(image, (p, p))
patches = patches - patches.mean(axis=(1, 2), keepdims=True)
theirs = reconstruct_from_patches_2d(patches, image.shape)
t_sklearn = time.perf_counter() - t0

print(f"patchjit {t_ours * 1e3:.1f} ms, scikit-learn {t_sklearn * 1e3:.1f} ms "
      f"({t_sklearn / t_ours:.1f}x), max difference {np.abs(ours - theirs).max():.2e}")
print(f"scikit-learn held {patches.nbytes / 1e6:.0f} MB of patches; patchjit none")""",
    ),
    ("md", "## 4. A progress bar for long runs (`progress=True`, tqdm)"),
    (
        "code",
        """big = np.random.default_rng(1).random((1500, 1500), dtype=np.float32)
result = patchjit.process_image(big, remove_mean, 32, progress=True)
result.shape""",
    ),
]


def main() -> None:
    nb = nbf.v4.new_notebook()
    nb.cells = [
        nbf.v4.new_markdown_cell(src) if kind == "md" else nbf.v4.new_code_cell(src)
        for kind, src in CELLS
    ]
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    out = Path(__file__).resolve().parents[1] / "examples" / "tour.ipynb"
    nbf.write(nb, out)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
