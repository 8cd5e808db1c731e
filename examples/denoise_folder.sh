#!/usr/bin/env bash
# Denoise a folder of images from the command line.
# Makes a small folder of noisy copies of the built-in sample (grey PNG, RGB PNG, and a
# 16-bit TIFF in a sub-folder), then runs dct-denoise on the tree: the PNGs with the
# noise level in 8-bit units, the 16-bit TIFF with its own (25 * 257).
set -euo pipefail
work=${1:-$(mktemp -d)}
python - "$work" <<'PY'
import sys
from pathlib import Path
import numpy as np
from patchjit._cast import to_dtype
from patchjit.demo import sample_image
from patchjit.io import write_image

root = Path(sys.argv[1]) / "noisy"
clean = sample_image().astype(float)
rng = np.random.default_rng(0)
def noisy(img, sigma):
    return img + rng.normal(0, sigma, img.shape)
write_image(root / "grey.png", to_dtype(noisy(clean, 25), np.uint8))
rgb = np.stack([clean, clean[::-1], clean[:, ::-1]], axis=-1)
write_image(root / "colour" / "rgb.png", to_dtype(noisy(rgb, 25), np.uint8))
write_image(root / "scans" / "grey16.tif", to_dtype(noisy(clean * 257, 25 * 257), np.uint16))
PY
patchjit ops
patchjit run "$work/noisy" -o "$work/denoised" --pattern '*.png' --op dct-denoise --param sigma=25 --jobs 2
patchjit run "$work/noisy" -o "$work/denoised" --pattern '*.tif' --op dct-denoise --param sigma=6425
patchjit run "$work/noisy" -o "$work/denoised" --pattern '*.png' --op dct-denoise --param sigma=25  # skips: done
python - "$work" <<'PY'
import sys
import tifffile
out = sys.argv[1] + "/denoised/scans/grey16.tif"
print(f"{out}: {tifffile.imread(out).dtype} TIFF")
PY
echo "results in $work/denoised"
