"""Build examples/tour.ipynb from the cells below, execute it and save it with its
outputs (figures visible when browsing the repository). CI executes it again with
nbclient in tests/test_examples.py.

    python scripts/make_tour.py            # needs the test and notebook extras
"""

from pathlib import Path

import nbformat as nbf

CELLS = [
    (
        "md",
        """# A tour of patchjit

Slice an image into overlapping patches, run a jitted function on every patch and merge
the results, in one compiled parallel pass. This notebook shows:

1. denoising before/after with a built-in op,
2. writing your own callback: what it receives, flat loops, extra arguments, errors,
3. the coverage and window-weight maps that merging divides by,
4. timing against a peer that materialises the patches (scikit-learn),
5. any Python function over batches of patches (`process_batches`),
6. a progress bar on a longer run (a widget in Jupyter: `pip install patchjit[notebook]`).""",
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
plt.tight_layout()
plt.show()""",
    ),
    (
        "md",
        """## 2. Writing your own callback

`process_image(image, func, patch_shape, step, args=...)` calls `func(patch, out, *args)`
on every patch:

- `patch` is a **read-only, C-contiguous** array of the patch's values in the image's
  dtype (channels last). Because it is contiguous, `patch.ravel()` is free and a flat
  loop over it is the fastest way to read it.
- `out` is a C-contiguous float buffer of the same shape (float32 for float32 and
  8/16-bit images, float64 otherwise), filled with NaN on entry: write every element.
  An element you forget shows up as NaN in the result instead of a stale value.
- `func` returns nothing; extra arguments come from `args=`.

The first call with a new callback compiles it together with the engine (about 2–3 s
on a laptop-class machine); later calls with the same callback and types reuse it.""",
    ),
    (
        "code",
        """@numba.njit
def soft_threshold(patch, out, t):
    # flat loops: patch and out are contiguous, ravel() is free
    p = patch.ravel()
    o = out.ravel()
    s = 0.0
    for q in range(p.size):
        s += p[q]
    m = s / p.size
    for q in range(p.size):
        d = p[q] - m
        o[q] = m + (d - t if d > t else (d + t if d < -t else 0.0))

t0 = time.perf_counter()
smooth = patchjit.process_image(noisy, soft_threshold, 8, step=2, args=(30.0,))
t_first = time.perf_counter() - t0
t0 = time.perf_counter()
smooth = patchjit.process_image(noisy, soft_threshold, 8, step=2, args=(30.0,))
t_warm = time.perf_counter() - t0
print(f"first call {t_first:.2f} s (compiles), warm call {t_warm * 1e3:.1f} ms, "
      f"PSNR {psnr(clean, smooth):.2f} dB")""",
    ),
    (
        "md",
        """Writing into `patch` is refused when the callback compiles, with a message that
says what to do instead; so is returning a value. `map_patches` takes callbacks that
return one number per patch instead:""",
    ),
    (
        "code",
        """@numba.njit
def bad(patch, out):
    patch[0, 0] = 0.0  # patches are read-only

try:
    patchjit.process_image(noisy, bad, 8)
except TypeError as exc:
    print(str(exc).splitlines()[0][:300])

@numba.njit
def local_range(patch):
    return patch.max() - patch.min()

ranges = patchjit.map_patches(noisy, local_range, 5, edge="pad")  # one value per pixel
plt.imshow(ranges, cmap="magma")
plt.title("local range, 5×5")
plt.axis("off")
plt.show()""",
    ),
    (
        "md",
        """## 3. Coverage and window weights

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
plt.show()
grid""",
    ),
    ("md", "## 4. Timing against scikit-learn (extract_patches_2d + reconstruct_from_patches_2d)"),
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
    (
        "md",
        """## 5. Any Python function: batches of patches

When the per-patch function is not numba code (a PyTorch model, a scikit-image call, a
NumPy expression), `process_batches` hands it stacks of patches `(n, *patch_shape)`
and merges what it returns exactly as `process_image` does, with the same windows,
edges and reductions. Here a NumPy soft threshold over batches of 256 patches gives
the same image as the numba callback above:""",
    ),
    (
        "code",
        """def soft_threshold_batch(batch, t=30.0):
    m = batch.mean(axis=(1, 2), keepdims=True)
    d = batch - m
    return m + np.sign(d) * np.maximum(np.abs(d) - t, 0.0)

patchjit.process_batches(noisy[:64, :64], soft_threshold_batch, 8, step=2)  # compile once
t0 = time.perf_counter()
smooth_np = patchjit.process_batches(noisy, soft_threshold_batch, 8, step=2, batch_size=256)
t_np = time.perf_counter() - t0
print(f"process_batches (NumPy) {t_np * 1e3:.0f} ms, numba callback {t_warm * 1e3:.1f} ms; "
      f"max difference {np.abs(smooth_np - smooth).max():.1e}")""",
    ),
    (
        "md",
        """## 6. A progress bar for long runs (`progress=True`, tqdm)

The bar appears at once; its clock starts after the first wave of work, so the
compilation of a new callback does not distort the time-left estimate.""",
    ),
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
    import nbclient  # execute, so the notebook is committed with its outputs

    nbclient.NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(out.parent)}}
    ).execute()
    nbf.write(nb, out)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
