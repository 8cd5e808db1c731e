"""The predictor's side of a run: patchjit's batches in, MONAI-style windows out."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch

from ._weights import output_weights


def flatten(out):
    """``(keys, tuple of tensors)`` of a predictor's output, as MONAI orders them."""
    if isinstance(out, torch.Tensor):
        return None, (out,), False
    if isinstance(out, Mapping):
        keys = sorted(out.keys())
        return keys, tuple(out[k] for k in keys), True
    if isinstance(out, list | tuple):
        return None, tuple(out), True
    raise TypeError(
        f"predictor must return a tensor, a tuple or a dict of tensors, got {type(out).__name__}"
    )


class Windows:
    """Calls the predictor on patchjit's batches, MONAI-style, and converts both ways.

    Batches arrive in C order of the grid, consecutively (``process_batches``'s
    contract), so a counter gives each window's position. The first batch is run ahead
    (:meth:`first`) to learn the outputs' channels and sizes; its result is handed back
    when ``process_batches`` asks for that batch, so the predictor runs once per batch.
    """

    def __init__(self, grid, stacked, image_index, n_in, opts):
        self.grid = grid
        self.stacked = stacked
        self.image_index = image_index  # the image of a per-image (3-D) run
        self.n_in = n_in  # input channels; the rest are the condition's
        self.o = opts
        self.done = 0
        self.cached = None
        self.ratio_needed = False

    def coords(self, g0, n):
        idx = np.unravel_index(np.arange(g0, g0 + n), self.grid.grid_shape)
        starts = [o[i] for o, i in zip(self.grid.origins, idx)]
        roi = self.o["roi"]
        out = []
        for j in range(n):
            if self.stacked:
                b, sp = int(starts[0][j]), [int(s[j]) for s in starts[1:]]
            else:
                b, sp = self.image_index, [int(s[j]) for s in starts]
            out.append([slice(b, b + 1), slice(None)] + [slice(s, s + p) for s, p in zip(sp, roi)])
        return out

    def predict(self, batch: np.ndarray):
        """Run the predictor on ``batch`` (channels last); outputs as torch tensors."""
        o = self.o
        n = batch.shape[0]
        t = torch.from_numpy(batch)
        if self.stacked:
            t = t[:, 0]
        t = t.movedim(-1, 1)  # (n, C, *roi)
        move = {"device": o["sw_device"], "dtype": o["dtype"], "copy": True}
        data = t[:, : self.n_in].to(memory_format=torch.contiguous_format, **move)
        kwargs = dict(o["kwargs"])
        if t.shape[1] > self.n_in:
            kwargs["condition"] = t[:, self.n_in :].to(
                memory_format=torch.contiguous_format, **move
            )
        args = o["args"]
        if o["with_coord"]:
            args = (self.coords(self.done, n), *args)
        keys, outs, multi = flatten(o["predictor"](data, *args, **kwargs))
        weights = None
        if o["process_fn"] is not None:
            outs, weights = o["process_fn"](outs, data, o["map_t"])
            outs = tuple(outs) if isinstance(outs, list | tuple) else (outs,)
        for y in outs:
            if not isinstance(y, torch.Tensor) or y.ndim != len(o["roi"]) + 2 or y.shape[0] != n:
                shape = tuple(y.shape) if isinstance(y, torch.Tensor) else type(y).__name__
                raise ValueError(
                    f"predictor must return tensors of shape (n, K, *spatial) for a batch of "
                    f"{n} windows, got {shape}"
                )
        return keys, outs, multi, weights

    def to_numpy(self, outs, weights):
        o = self.o
        ratios = [None] * len(outs)
        if self.ratio_needed and weights is not None:
            # the window merged by patchjit is the first batch's; MONAI weighs each
            # batch by process_fn's weights and divides by the first batch's count
            sizes = [tuple(y.shape[2:]) for y in outs]
            if all(s == tuple(o["roi"]) for s in sizes):
                ratios = [weights.detach() / o["window_t"].to(weights.device)] * len(outs)
            else:  # outputs at another zoom: each output's own weights (MONAI's rule)
                now = output_weights(weights.detach().to("cpu", torch.float64), o["roi"], sizes)
                base = output_weights(o["window_t"].to(torch.float64), o["roi"], sizes)
                ratios = [a / b for a, b in zip(now, base)]
        res = []
        for y, ratio in zip(outs, ratios):
            y = y.detach()
            if ratio is not None:
                y = y * ratio.to(y.device, y.dtype)
            y = y.to("cpu", o["acc_torch"]).movedim(1, -1).numpy()
            res.append(y[:, None] if self.stacked else y)
        return res

    def first(self, src: np.ndarray):
        """Run the first batch ahead of ``process_batches``; return its raw outputs."""
        n = min(self.o["sw_batch_size"], self.grid.n_patches)
        idx = np.unravel_index(np.arange(n), self.grid.grid_shape)
        starts = [o[i] for o, i in zip(self.grid.origins, idx)]
        tile = self.grid.patch_shape
        batch = np.stack(
            [
                src[tuple(slice(int(s[j]), int(s[j]) + p) for s, p in zip(starts, tile))]
                for j in range(n)
            ]
        ).astype(self.o["acc_dtype"], copy=False)
        got = self.predict(np.ascontiguousarray(batch))
        self.cached = got
        return got

    def __call__(self, batch: np.ndarray):
        if self.done == 0 and self.cached is not None:
            _, outs, _, weights = self.cached
            self.cached = None
        else:
            _, outs, _, weights = self.predict(batch)
        res = self.to_numpy(outs, weights)
        self.done += batch.shape[0]
        return res
