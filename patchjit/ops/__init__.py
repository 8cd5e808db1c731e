"""Built-in patch operations: ready-made callbacks and a named registry.

Every built-in is a ``numba`` callback that works with :func:`patchjit.process_image`
or :func:`patchjit.map_patches` directly, for example::

    patchjit.process_image(image, ops.dct_denoise, (8, 8), args=(sigma,))

and an :class:`Op` entry (what the command line uses) that knows its parameters,
default patch size and how to handle colour images::

    ops.get("dct-denoise")(image, sigma=25)

==================  ========  =====================================================
op                  kind      callback(s)
==================  ========  =====================================================
``dct-denoise``     process   :func:`dct_denoise`, :func:`dct_denoise_color`,
                              :func:`dct_denoise_channels`
``identity``        process   :func:`identity`
``mean-remove``     process   :func:`mean_remove`
``local-std``       map       :func:`local_std`
``median``          map       :func:`median`
==================  ========  =====================================================
"""

from ._basic import identity, local_std, mean_remove, median
from ._dct import (
    COLOR_MATRIX,
    dct_denoise,
    dct_denoise_channels,
    dct_denoise_color,
    dct_matrix,
)
from ._registry import Op, Param, available, get

__all__ = [
    "COLOR_MATRIX",
    "Op",
    "Param",
    "available",
    "dct_denoise",
    "dct_denoise_channels",
    "dct_denoise_color",
    "dct_matrix",
    "get",
    "identity",
    "local_std",
    "mean_remove",
    "median",
]
