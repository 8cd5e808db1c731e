"""A U-Net with valid convolutions, tile by tile: the overlap-tile strategy with ``margin=``.

The original U-Net (Ronneberger et al., 2015) uses unpadded ("valid") convolutions, so
its output is smaller than its input, and it segments a large image tile by tile: each
input tile is the output tile grown by the network's halo, read from the image mirrored
at its borders. ``patchjit.process_batches(..., margin=halo, pad_mode="reflect")`` does
exactly that, so the merged result equals one forward pass of the network over the
whole mirrored image (``np.pad(image, halo, mode="reflect")``), to float rounding.

The network here is a one-level U-Net, small enough for a CPU in a second:

    two 3x3 valid convs -> 2x2 max pool -> two 3x3 valid convs -> 2x2 up-conv
    -> crop the skip features to the same size and concatenate -> two 3x3 valid convs
    -> 1x1 conv

Each 3x3 valid conv removes 1 pixel per side; at half resolution 2 pixels count as 4.
Halo: 2 (before the pool) + 2 * 2 (at half resolution) + 2 (after the up-conv) = 8.
The max pool also makes the network equivariant to shifts by 2 pixels only: output tiles
must start at even pixels of the mirrored image, so the tile, the step and the image
size are even here.

Run: python examples/unet_overlap_tile.py   (needs torch: pip install "patchjit[torch]")
"""

from __future__ import annotations

import sys

import numpy as np

import patchjit

HALO = 8  # pixels the network removes on each side: margin=HALO


def build_unet(torch):
    """A one-level U-Net with valid convolutions; fixed random weights, eval mode."""
    nn = torch.nn

    def double_conv(c_in, c_out):  # two 3x3 valid convs: 2 pixels less per side
        return nn.Sequential(
            nn.Conv2d(c_in, c_out, 3), nn.ReLU(), nn.Conv2d(c_out, c_out, 3), nn.ReLU()
        )

    class UNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.down = double_conv(1, 8)
            self.pool = nn.MaxPool2d(2)
            self.bottom = double_conv(8, 16)
            self.up = nn.ConvTranspose2d(16, 8, 2, stride=2)  # "up-conv 2x2"
            self.out = nn.Sequential(double_conv(16, 8), nn.Conv2d(8, 1, 1))

        def forward(self, x):  # (n, 1, h, w), h - 4 even -> (n, 1, h - 16, w - 16)
            skip = self.down(x)
            y = self.up(self.bottom(self.pool(skip)))
            ch, cw = ((a - b) // 2 for a, b in zip(skip.shape[-2:], y.shape[-2:]))
            skip = skip[..., ch : ch + y.shape[-2], cw : cw + y.shape[-1]]  # "copy and crop"
            return self.out(torch.cat([skip, y], dim=1))

    torch.manual_seed(0)
    return UNet().eval()


def main() -> int:
    try:
        import torch
    except ImportError as exc:
        print(f'skipped: this example needs torch ({exc}); pip install "patchjit[torch]"')
        return 0
    torch.set_num_threads(1)  # small tensors: one thread is fastest and deterministic

    model = build_unet(torch)

    def run(batch):  # (n, 36, 36) input tiles -> (n, 20, 20) output tiles
        with torch.inference_mode():
            return model(torch.from_numpy(batch)[:, None])[:, 0].numpy()

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:96, 0:80] / 40
    image = (np.sin(9 * xx) * np.cos(7 * yy) + 0.3 * rng.standard_normal(xx.shape)).astype(
        np.float32
    )

    # input patches 36x36, output tiles 36 - 2 * 8 = 20, on a grid with step 10 (tiles
    # overlap by half; the last tile of each axis ends flush with the border, at an even
    # origin since the image and the tile are even)
    tiled = patchjit.process_batches(
        image, run, (36, 36), 10, margin=HALO, pad_mode="reflect", batch_size=8
    )

    # the reference: one forward pass over the whole image, mirrored by the halo
    mirrored = np.pad(image, HALO, mode="reflect")
    with torch.inference_mode():
        whole = model(torch.from_numpy(mirrored)[None, None])[0, 0].numpy()

    diff = float(np.abs(tiled - whole).max())
    print(f"image {image.shape}, input tiles 36x36, output tiles 20x20, margin {HALO}")
    print(f"max |tiled - whole-image forward on the mirrored image| = {diff:.2e}")
    if not (tiled.shape == whole.shape == image.shape and diff <= 1e-5):
        print("MISMATCH between the tiled and the whole-image result", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
