"""MONAI-compatible sliding-window inference for PyTorch models: :mod:`patchjit.torch`.

:func:`sliding_window_inference` takes MONAI's arguments, in MONAI's order, and gives
MONAI's numbers; the windows, the padding of short axes, the weights and the merge are
patchjit's own (:func:`patchjit.process_batches`), so the merge is deterministic and
needs memory for the result and a few batches only. :class:`SlidingWindowInferer` is
the callable-object form.

This package imports torch; ``import patchjit`` never imports it (the ``torch`` extra
is optional). MONAI itself is not needed.

Layout: ``_args`` checks MONAI's arguments, ``_weights`` holds the window weights,
``_windows`` runs the predictor on patchjit's batches, ``_inference`` builds the call
and ``_inferer`` the object. The ``N`` images of a 1-D or 2-D batch are stacked on a
leading spatial axis with patch size 1 there, so one :func:`process_batches` call sees
every window of every image in MONAI's order (image by image, C order within an image)
and cuts the same ``sw_batch_size`` batches across image boundaries. 3-D images
(patchjit handles 3 spatial axes at most) run one call per image.
"""

from ._inference import sliding_window_inference
from ._inferer import SlidingWindowInferer
from ._weights import importance_map

__all__ = ["SlidingWindowInferer", "importance_map", "sliding_window_inference"]
