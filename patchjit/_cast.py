"""The one conversion of a floating-point result to the requested output dtype.

Used by every public function, the ops, the command line and the demo, so that an
integer output means the same thing everywhere: round half to even, clip to the
dtype's exact range, refuse NaN.
"""

from __future__ import annotations

import numpy as np

__all__ = ["to_dtype"]


def _bounds(dtype: np.dtype, src: np.dtype):
    """Exact clipping bounds for an integer ``dtype``, as values of float ``src``.

    Returns ``(lo, below_hi, hi)``: every float ``x`` with ``lo <= x <= below_hi``
    converts exactly, and ``x >= hi`` must become ``iinfo(dtype).max``. ``hi`` is
    ``2**bits`` (unsigned) or ``2**(bits - 1)`` (signed), a power of two that every
    float type holds exactly; ``float(iinfo.max)`` would round up to it and wrap.
    """
    info = np.iinfo(dtype)
    hi = src.type(float(info.max) + 1.0)  # exact power of two
    below_hi = np.nextafter(hi, src.type(0))
    return src.type(info.min), below_hi, hi


def to_dtype(result, dtype, out=None, *, what: str = "the result") -> np.ndarray:
    """Convert a floating-point ``result`` to ``dtype`` (into ``out`` if given).

    Integer dtypes: values are rounded half to even (:func:`numpy.rint`) and clipped
    to the dtype's exact range (``inf`` saturates; int64 and uint64 included, from
    float32 and float64 alike). NaN cannot be stored in an integer, so NaN raises a
    ValueError. Float dtypes: a plain conversion (NaN kept).

    Parameters
    ----------
    result : numpy.ndarray
        Floating-point (or integer) values. Not modified unless it is a float array
        that the caller no longer needs: it may be rounded in place.
    dtype : numpy dtype
        Target dtype, integer or floating point.
    out : numpy.ndarray, optional
        Array of ``result``'s shape and ``dtype`` to write into.
    what : str
        How an error message names the values (e.g. a file name).

    Returns
    -------
    numpy.ndarray

    Raises
    ------
    ValueError
        NaN in ``result`` and an integer ``dtype``.

    Examples
    --------
    >>> import numpy as np
    >>> to_dtype(np.array([2.5, 3.5, -1.0, 300.0]), np.uint8)
    array([  2,   4,   0, 255], dtype=uint8)
    >>> to_dtype(np.array([3e9, 1e10, -np.inf], np.float32), np.int32)
    array([ 2147483647,  2147483647, -2147483648], dtype=int32)
    >>> to_dtype(np.array([1e30]), np.int64)
    array([9223372036854775807])
    """
    dtype = np.dtype(dtype)
    result = np.asarray(result)
    if dtype.kind in "iu" and result.dtype.kind == "f":
        bad = np.isnan(result)
        if bad.any():
            raise ValueError(
                f"{what} has {int(bad.sum())} NaN values (pixels no patch covers with "
                f"edge='valid', or NaN in the data or the callback's output), which integer "
                f"dtype {dtype} cannot hold; ask for a float dtype"
            )
        lo, below_hi, hi = _bounds(dtype, result.dtype)
        rounded = np.rint(result)
        over = rounded >= hi
        converted = np.clip(rounded, lo, below_hi).astype(dtype)
        converted[over] = np.iinfo(dtype).max
    elif dtype.kind in "iu" and result.dtype.kind in "iu":
        src, dst = np.iinfo(result.dtype), np.iinfo(dtype)
        lo, hi = max(src.min, dst.min), min(src.max, dst.max)
        converted = np.clip(result, result.dtype.type(lo), result.dtype.type(hi)).astype(dtype)
    else:
        converted = result.astype(dtype, copy=False)
    if out is not None:
        np.copyto(out, converted, casting="unsafe")
        return out
    return converted
