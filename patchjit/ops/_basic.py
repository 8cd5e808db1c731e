"""Simple per-patch callbacks: identity, mean removal, local standard deviation, median."""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from ._stack import make_stack_array

__all__ = ["identity", "local_std", "mean_remove", "median"]

# Patches up to this many elements are sorted in a stack buffer; larger ones in a heap
# buffer allocated per patch.
_MEDIAN_STACK = 4096
_MEDIAN_BUFFER = make_stack_array((_MEDIAN_STACK,), np.float64)


@njit
def identity(patch, out):
    """Copy the patch to ``out`` (process callback): the merged result is the image.

    Useful to check a geometry or a window: with any step that covers the image,
    ``process_image(image, identity, ...)`` returns the image (as float).

    Parameters
    ----------
    patch : numpy.ndarray
        Patch of any shape.
    out : numpy.ndarray
        Float buffer of the same shape.

    Examples
    --------
    >>> import numpy as np, patchjit
    >>> from patchjit import ops
    >>> image = np.arange(30.0).reshape(5, 6)
    >>> bool(np.array_equal(patchjit.process_image(image, ops.identity, 3), image))
    True
    """
    for idx in np.ndindex(patch.shape):
        out[idx] = patch[idx]


@njit
def mean_remove(patch, out):
    """Subtract the patch's mean (over all its elements) from the patch.

    Overlap-averaged at stride 1 this is a high-pass filter: the image minus a local
    mean.

    Parameters
    ----------
    patch : numpy.ndarray
        Patch of any shape.
    out : numpy.ndarray
        Float buffer of the same shape; receives ``patch - patch.mean()``.

    Examples
    --------
    >>> import numpy as np, patchjit
    >>> from patchjit import ops
    >>> ramp = np.tile(np.arange(8.0), (8, 1))  # a linear ramp has no local detail...
    >>> high = patchjit.process_image(ramp, ops.mean_remove, 3)
    >>> float(np.abs(high[2:-2, 2:-2]).max())  # ...away from the borders
    0.0
    """
    m = patch.mean()
    for idx in np.ndindex(patch.shape):
        out[idx] = patch[idx] - m


@njit
def local_std(patch):
    """Population standard deviation of the patch (map callback).

    Two passes (mean, then squared deviations), as ``numpy.std`` with ``ddof=0``.

    Parameters
    ----------
    patch : numpy.ndarray
        Patch of any shape.

    Returns
    -------
    float
        The standard deviation, in the patch's units.

    Examples
    --------
    >>> import numpy as np, patchjit
    >>> from patchjit import ops
    >>> image = np.array([[0.0, 2.0], [0.0, 2.0]])
    >>> patchjit.map_patches(image, ops.local_std, 2)
    array([[1.]])
    """
    m = patch.mean()
    s = 0.0
    for idx in np.ndindex(patch.shape):
        d = patch[idx] - m
        s += d * d
    return math.sqrt(s / patch.size)


@njit(inline="always")
def _select(a, n, k):
    """The k-th smallest of ``a[:n]`` (Hoare's selection; reorders ``a[:n]``)."""
    lo = 0
    hi = n - 1
    while lo < hi:
        pivot = a[(lo + hi) // 2]
        i = lo
        j = hi
        while i <= j:
            while a[i] < pivot:
                i += 1
            while a[j] > pivot:
                j -= 1
            if i <= j:
                a[i], a[j] = a[j], a[i]
                i += 1
                j -= 1
        if k <= j:
            hi = j
        elif k >= i:
            lo = i
        else:
            break
    return a[k]


@njit
def median(patch):
    """Median of the patch (map callback), as ``numpy.median``.

    For an even number of elements the result is the mean of the two middle values
    (``scipy.ndimage.median_filter`` takes the upper one instead). A patch holding NaN
    gives NaN. Patches of up to 4096 elements are partially sorted in a stack buffer,
    with no allocation.

    Parameters
    ----------
    patch : numpy.ndarray
        Patch of any shape; its values are compared as float64.

    Returns
    -------
    float
        The median, or NaN when the patch holds NaN.

    Examples
    --------
    >>> import numpy as np, patchjit
    >>> from patchjit import ops
    >>> image = np.array([[1.0, 9.0, 2.0], [8.0, 3.0, 7.0], [4.0, 6.0, 5.0]])
    >>> patchjit.map_patches(image, ops.median, 3)
    array([[5.]])
    >>> patchjit.map_patches(image, ops.median, (1, 2))  # even: mean of the middle two
    array([[5. , 5.5],
           [5.5, 5. ],
           [5. , 5.5]])
    """
    n = patch.size
    buf = _MEDIAN_BUFFER() if n <= _MEDIAN_STACK else np.empty(n)
    for k, idx in enumerate(np.ndindex(patch.shape)):
        x = np.float64(patch[idx])
        if x != x:
            return np.nan
        buf[k] = x
    half = n // 2
    upper = _select(buf, n, half)
    if n % 2:
        return upper
    lower = buf[0]
    for i in range(1, half):
        lower = max(lower, buf[i])
    return 0.5 * (lower + upper)
