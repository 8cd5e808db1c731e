#!/usr/bin/env bash
# Denoise a folder of images from the command line.
# Makes a small folder of noisy copies of the built-in sample (grey PNG, RGB PNG,
# 16-bit TIFF in a sub-folder), then runs dct-denoise on the whole tree.
set -euo pipefail
work=${1:-$(mktemp -d)}
python - "$work" <<'PY'
import sys
from pathlib import Path
import numpy as np
from patchjit.demo import sample_image
from patchjit.io import write_image

root = Path(sys.argv[1]) / "noisy"
clean = sample_image().astype(float)
rng = np.random.default_rng(0)
def noisy(img, sigma):
    return img + rng.normal(0, sigma, img.shape)
write_image(root / "grey.png", np.clip(noisy(clean, 25), 0, 255).astype(np.uint8))
rgb = np.stack([clean, clean[::-1], clean[:, ::-1]], axis=-1)
write_image(root / "colour" / "rgb.png", np.clip(noisy(rgb, 25), 0, 255).astype(np.uint8))
PY
patchjit ops
patchjit run "$work/noisy" -o "$work/denoised" --op dct-denoise --param sigma=25 --jobs 2
patchjit run "$work/noisy" -o "$work/denoised" --op dct-denoise --param sigma=25  # skips: done
echo "results in $work/denoised"
