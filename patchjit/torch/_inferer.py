"""MONAI's ``SlidingWindowInferer``: :func:`sliding_window_inference` as an object."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import torch

from ._args import MODES, checked_name
from ._inference import sliding_window_inference


def _init_signature() -> inspect.Signature:
    """MONAI's ``SlidingWindowInferer(roi_size, sw_batch_size=1, ...)``: the options of
    :func:`sliding_window_inference` from ``overlap`` to ``with_coord``, in its order,
    less ``roi_weight_map``/``process_fn``, plus ``cache_roi_weight_map``/``cpu_thresh``
    after ``progress``."""
    params = inspect.signature(sliding_window_inference).parameters
    skip = {"inputs", "predictor", "roi_weight_map", "process_fn", "args", "kwargs"}
    kind = inspect.Parameter.POSITIONAL_OR_KEYWORD
    out = [inspect.Parameter("self", kind)]
    for p in params.values():
        if p.name in skip:
            continue
        if p.name == "sw_batch_size":
            p = p.replace(default=1)
        out.append(p)
        if p.name == "progress":
            out.append(
                inspect.Parameter("cache_roi_weight_map", kind, default=False, annotation="bool")
            )
            out.append(inspect.Parameter("cpu_thresh", kind, default=None, annotation="int | None"))
    return inspect.Signature(out, return_annotation=None)


class SlidingWindowInferer:
    """MONAI's ``SlidingWindowInferer`` over :func:`sliding_window_inference`.

    ``SlidingWindowInferer(roi_size, sw_batch_size=1, overlap=0.25, mode="constant",
    sigma_scale=0.125, padding_mode="constant", cval=0.0, sw_device=None, device=None,
    progress=False, cache_roi_weight_map=False, cpu_thresh=None, buffer_steps=None,
    buffer_dim=-1, with_coord=False)(inputs, network, *args, **kwargs)``: MONAI's
    arguments in MONAI's order, with the meaning and defaults of
    :func:`sliding_window_inference` (one source for both). ``cache_roi_weight_map``
    and ``cpu_thresh`` are accepted (the weights are cheap to recompute; the merge
    always runs in CPU memory). Each option is an attribute of the same name.

    Examples
    --------
    >>> import torch
    >>> from patchjit.torch import SlidingWindowInferer
    >>> inferer = SlidingWindowInferer((8, 8), sw_batch_size=4, overlap=0.5)
    >>> inferer(torch.ones(1, 1, 20, 20), lambda w: w + 1).unique()
    tensor([2.])
    """

    __signature_init__ = _init_signature()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        bound = self.__signature_init__.bind(self, *args, **kwargs)
        bound.apply_defaults()
        options = dict(bound.arguments)
        del options["self"]
        options["mode"] = checked_name(options["mode"], "mode", MODES)
        self.__dict__.update(options)

    def __call__(
        self, inputs: torch.Tensor, network: Callable[..., Any], *args: Any, **kwargs: Any
    ) -> torch.Tensor | tuple[torch.Tensor, ...] | dict[Any, torch.Tensor]:
        condition = kwargs.get("condition")
        if condition is not None and condition.shape != inputs.shape:
            raise ValueError(
                f"condition must have inputs' shape {tuple(inputs.shape)}, got "
                f"{tuple(condition.shape)}"
            )
        device = kwargs.pop("device", self.device)
        buffer_steps = kwargs.pop("buffer_steps", self.buffer_steps)
        buffer_dim = kwargs.pop("buffer_dim", self.buffer_dim)
        return sliding_window_inference(
            inputs, self.roi_size, self.sw_batch_size, network, self.overlap, self.mode,
            self.sigma_scale, self.padding_mode, self.cval, self.sw_device, device,
            self.progress, None, None, buffer_steps, buffer_dim, self.with_coord,
            *args, **kwargs,
        )  # fmt: skip


SlidingWindowInferer.__init__.__signature__ = SlidingWindowInferer.__signature_init__
