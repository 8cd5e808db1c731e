"""Sliding-window DCT denoising (Yu & Sapiro, IPOL 2011) as patch callbacks.

Every patch goes through an orthonormal 2-D DCT-II, a hard threshold (coefficients with
``|c| < 3 sigma`` become zero, the DC coefficient is always kept) and the inverse DCT;
:func:`patchjit.process_image` then averages the overlapping results.

Speed
-----
8x8 and 16x16 patches (the paper's sizes) use explicit-SIMD kernels generated as LLVM
IR (:mod:`._simd`): each patch row is one vector register, the separable transforms
are broadcast multiply-adds with constant DCT matrices, and nothing but the patch loads
and the output stores touches memory. Their working precision is the precision of
``out`` (float32 for float32 and <= 16-bit integer images, else float64). Other sizes
(rectangular ones too) use a plain compiled implementation in float64, with its scratch
on the stack (:mod:`._stack`) up to 32 x 32 and allocated per patch beyond. Nothing is
allocated per patch up to 32 x 32, and nothing is shared between threads.

The callbacks never raise: an exception inside numba's parallel loop would reach the
caller only as an opaque SystemError.
"""

from __future__ import annotations

import math

import numpy as np
from numba import carray, njit

from ._simd import make_gray_kernel
from ._stack import make_stack_array, stack_pointer

__all__ = [
    "COLOR_MATRIX",
    "dct_denoise",
    "dct_denoise_channels",
    "dct_denoise_color",
    "dct_matrix",
]

# Generic-size patches up to this side use stack scratch and a precomputed DCT table;
# larger ones allocate per patch (slow, but any size works).
_STACK_SIDE = 32

#: The paper's orthonormal colour transform: rows (1, 1, 1)/sqrt(3), (1, 0, -1)/sqrt(2)
#: and (1, -2, 1)/sqrt(6). ``decorrelated = COLOR_MATRIX @ rgb``; its inverse is its
#: transpose.
COLOR_MATRIX = np.array(
    [
        [1 / math.sqrt(3), 1 / math.sqrt(3), 1 / math.sqrt(3)],
        [1 / math.sqrt(2), 0.0, -1 / math.sqrt(2)],
        [1 / math.sqrt(6), -2 / math.sqrt(6), 1 / math.sqrt(6)],
    ]
)


def dct_matrix(n: int) -> np.ndarray:
    """Orthonormal DCT-II matrix: ``dct_matrix(n) @ x == scipy.fft.dct(x, norm="ortho")``.

    Parameters
    ----------
    n : int
        Transform length.

    Returns
    -------
    numpy.ndarray
        ``(n, n)`` float64 array ``D`` with ``D[k, j] = a_k cos(pi (2j + 1) k / (2n))``,
        ``a_0 = sqrt(1/n)`` and ``a_k = sqrt(2/n)``; ``D.T`` is its inverse.

    Examples
    --------
    >>> import numpy as np, scipy.fft
    >>> from patchjit.ops import dct_matrix
    >>> x = np.arange(8.0)
    >>> bool(np.allclose(dct_matrix(8) @ x, scipy.fft.dct(x, norm="ortho")))
    True
    >>> bool(np.allclose(dct_matrix(8) @ dct_matrix(8).T, np.eye(8)))
    True
    """
    k = np.arange(n)[:, None]
    j = np.arange(n)[None, :]
    d = np.cos(np.pi * (2 * j + 1) * k / (2 * n)) * math.sqrt(2.0 / n)
    d[0] /= math.sqrt(2.0)
    return d


# All DCT matrices up to _STACK_SIDE, flattened, for the generic (run-time size) kernel.
_OFFSETS = np.zeros(_STACK_SIDE + 2, dtype=np.int64)
_OFFSETS[1:] = np.cumsum([n * n for n in range(_STACK_SIDE + 1)])
_TABLE = np.concatenate([np.zeros(0)] + [dct_matrix(n).ravel() for n in range(1, _STACK_SIDE + 1)])


# --- the transform-threshold-inverse core ----------------------------------------------


@njit(inline="always")
def _denoise_plane(p, out, thr, t, dn, dm, n, m):
    """Denoise one ``(n, m)`` plane ``p`` into ``out``, using the scratch ``t``.

    ``dn``/``dm`` are the DCT matrices of sizes n and m. Plain dot products (scalar
    reductions, which LLVM leaves alone without fast-math): this generic path is kept
    small and quick to compile; the 8x8 and 16x16 kernels are in :mod:`._simd`.
    """
    for i in range(n):  # rows: t = p @ dm.T
        for k in range(m):
            s = 0.0
            for j in range(m):
                s += p[i, j] * dm[k, j]
            t[i, k] = s
    for a in range(n):  # columns: out = dn @ t
        for k in range(m):
            s = 0.0
            for i in range(n):
                s += dn[a, i] * t[i, k]
            out[a, k] = s
    dc = out[0, 0]
    for a in range(n):  # hard threshold, DC kept, NaN kept
        for k in range(m):
            if abs(out[a, k]) < thr:
                out[a, k] = 0.0
    out[0, 0] = dc
    for i in range(n):  # inverse columns: t = dn.T @ out
        for k in range(m):
            s = 0.0
            for a in range(n):
                s += dn[a, i] * out[a, k]
            t[i, k] = s
    for i in range(n):  # inverse rows: out = t @ dm
        for j in range(m):
            s = 0.0
            for k in range(m):
                s += t[i, k] * dm[k, j]
            out[i, j] = s


_PLANE = make_stack_array((_STACK_SIDE, _STACK_SIDE), np.float64)
_PLANES3 = make_stack_array((3, _STACK_SIDE, _STACK_SIDE), np.float64)


@njit(inline="always")
def _basis(n):
    """The DCT matrix of size n: from the table, or computed (allocated) beyond it."""
    if n <= _STACK_SIDE:
        return _TABLE[_OFFSETS[n] : _OFFSETS[n + 1]].reshape((n, n))
    d = np.empty((n, n))
    for k in range(n):
        a = math.sqrt((1.0 if k == 0 else 2.0) / n)
        for j in range(n):
            d[k, j] = a * math.cos(math.pi * (2 * j + 1) * k / (2 * n))
    return d


@njit
def _generic_plane(p, r, thr, n, m):
    """Denoise ``p[:n, :m]`` into ``r[:n, :m]`` (float64 planes).

    Compiled once for all image dtypes (the callers copy the patch into ``p``).
    """
    t = _PLANE() if n <= _STACK_SIDE and m <= _STACK_SIDE else np.empty((n, m))
    _denoise_plane(p, r, thr, t, _basis(n), _basis(m), n, m)


@njit(inline="always")
def _generic_gray(patch, out, thr):
    """Any ``(n, m)`` patch, in float64: stack scratch up to 32 x 32, heap beyond."""
    n, m = patch.shape
    small = n <= _STACK_SIDE and m <= _STACK_SIDE
    p = _PLANE() if small else np.empty((n, m))
    r = _PLANE() if small else np.empty((n, m))
    for i in range(n):
        for j in range(m):
            p[i, j] = patch[i, j]
    _generic_plane(p, r, thr, n, m)
    for i in range(n):
        for j in range(m):
            out[i, j] = r[i, j]


@njit(inline="always")
def _decorrelate(patch, q, n, m):
    """``q[:, i, j] = COLOR_MATRIX @ patch[i, j, :]`` over an ``n x m`` RGB patch."""
    cm = COLOR_MATRIX
    for i in range(n):
        for j in range(m):
            x0 = np.float64(patch[i, j, 0])
            x1 = np.float64(patch[i, j, 1])
            x2 = np.float64(patch[i, j, 2])
            for c in range(3):
                q[c, i, j] = cm[c, 0] * x0 + cm[c, 1] * x1 + cm[c, 2] * x2


@njit(inline="always")
def _recorrelate(r, out, n, m):
    """``out[i, j, :] = COLOR_MATRIX.T @ r[:, i, j]``: the inverse of :func:`_decorrelate`."""
    cm = COLOR_MATRIX
    for i in range(n):
        for j in range(m):
            for c in range(3):
                out[i, j, c] = (
                    cm[0, c] * r[0, i, j] + cm[1, c] * r[1, i, j] + (cm[2, c] * r[2, i, j])
                )


@njit(inline="always")
def _generic_color(patch, out, thr):
    n, m, _ = patch.shape
    small = n <= _STACK_SIDE and m <= _STACK_SIDE
    q = _PLANES3() if small else np.empty((3, n, m))
    r = _PLANES3() if small else np.empty((3, n, m))
    _decorrelate(patch, q, n, m)
    for c in range(3):
        _generic_plane(q[c], r[c], thr, n, m)
    _recorrelate(r, out, n, m)


_GRAY8 = make_gray_kernel(dct_matrix(8))
_GRAY16 = make_gray_kernel(dct_matrix(16))


def _fast_color(n: int, gray):
    """RGB kernel for ``n x n`` patches: decorrelate into stack planes, ``gray`` each."""
    size = 3 * n * n
    shape = (3, n, n)

    @njit
    def color(patch, out, thr):
        # planes in the working precision (out's dtype), contiguous: vector stores
        q = carray(stack_pointer(size, out), shape)
        r = carray(stack_pointer(size, out), shape)
        _decorrelate(patch, q, n, n)
        for c in range(3):
            gray(q[c], r[c], thr)
        _recorrelate(r, out, n, n)

    return color


_COLOR8 = _fast_color(8, _GRAY8)
_COLOR16 = _fast_color(16, _GRAY16)


def _by_size(kernel8, kernel16, generic):
    """One kernel ``(patch, out, thr)``: the fast one for 8x8 and 16x16 patches (the
    first two axes), else ``generic``."""

    @njit(inline="always")
    def by_size(patch, out, thr):
        n, m = patch.shape[0], patch.shape[1]
        if n == 8 and m == 8:
            kernel8(patch, out, thr)
        elif n == 16 and m == 16:
            kernel16(patch, out, thr)
        else:
            generic(patch, out, thr)

    return by_size


_gray = _by_size(_GRAY8, _GRAY16, _generic_gray)
_color = _by_size(_COLOR8, _COLOR16, _generic_color)


# --- public callbacks -----------------------------------------------------------------


@njit
def dct_denoise(patch, out, sigma):
    """DCT-denoise one grey patch (callback for :func:`patchjit.process_image`).

    Orthonormal 2-D DCT-II of the patch, coefficients with ``|c| < 3 * sigma`` set to
    zero (the DC coefficient is always kept), inverse DCT into ``out``. Overlap-averaged
    by ``process_image`` at stride 1 this is the sliding-window DCT denoising of Yu and
    Sapiro, "DCT image denoising: a simple and effective image denoising algorithm",
    IPOL 2011.

    Parameters
    ----------
    patch : numpy.ndarray
        ``(n, m)`` patch of any size; 8x8 (the paper's choice) and 16x16 have fast
        specialised kernels.
    out : numpy.ndarray
        ``(n, m)`` float32 or float64 buffer that receives the denoised patch; its dtype
        is the working precision.
    sigma : float
        Standard deviation of the noise, in the image's units (e.g. 25 for uint8 data).

    Examples
    --------
    >>> import numpy as np, patchjit
    >>> from patchjit import ops
    >>> rng = np.random.default_rng(0)
    >>> clean = np.add.outer(np.arange(64.0), np.arange(64.0))  # a smooth ramp
    >>> noisy = clean + rng.normal(0, 5, clean.shape)
    >>> denoised = patchjit.process_image(noisy, ops.dct_denoise, (8, 8), args=(5.0,))
    >>> def rmse(a):
    ...     return float(np.sqrt(np.mean((a - clean) ** 2)))
    >>> round(rmse(noisy), 1), rmse(denoised) < 1.5
    (5.0, True)
    """
    _gray(patch, out, 3.0 * sigma)


@njit
def dct_denoise_channels(patch, out, sigma):
    """DCT-denoise each channel of a ``(n, m, C)`` patch independently.

    The grey algorithm of :func:`dct_denoise` on every channel, for channels-last
    patches (``process_image`` on an ``(H, W, C)`` image). For RGB images
    :func:`dct_denoise_color` decorrelates the channels first and denoises better.

    Parameters
    ----------
    patch : numpy.ndarray
        ``(n, m, C)`` patch, any number of channels.
    out : numpy.ndarray
        ``(n, m, C)`` float32 or float64 buffer that receives the result.
    sigma : float
        Noise standard deviation in the image's units (the same for every channel).

    Examples
    --------
    >>> import numpy as np, patchjit
    >>> from patchjit import ops
    >>> rng = np.random.default_rng(0)
    >>> clean = np.stack([np.full((32, 32), 50.0), np.full((32, 32), 150.0)], axis=-1)
    >>> noisy = clean + rng.normal(0, 10, clean.shape)
    >>> out = patchjit.process_image(noisy, ops.dct_denoise_channels, (8, 8), args=(10.0,))
    >>> out.shape, bool(np.abs(out - clean).std() < np.abs(noisy - clean).std() / 3)
    ((32, 32, 2), True)
    """
    thr = 3.0 * sigma
    for c in range(patch.shape[2]):
        _gray(patch[:, :, c], out[:, :, c], thr)


@njit
def dct_denoise_color(patch, out, sigma):
    """DCT-denoise an RGB patch ``(n, m, 3)`` the way the paper does colour images.

    The three channels are first decorrelated with the orthonormal transform
    :data:`COLOR_MATRIX` (rows ``(1, 1, 1)/sqrt 3``, ``(1, 0, -1)/sqrt 2``,
    ``(1, -2, 1)/sqrt 6``), each transformed channel is denoised as in
    :func:`dct_denoise` with the same ``sigma`` (the transform is orthonormal, so
    white noise keeps its level), and the result is transformed back. The colour
    transform is per pixel and linear, so doing it per patch gives exactly the result
    of transforming the whole image first.

    Parameters
    ----------
    patch : numpy.ndarray
        ``(n, m, 3)`` patch. Patches with another number of channels are denoised
        channel by channel, as :func:`dct_denoise_channels` does.
    out : numpy.ndarray
        ``(n, m, 3)`` float32 or float64 buffer that receives the result.
    sigma : float
        Noise standard deviation per channel, in the image's units.

    Examples
    --------
    >>> import numpy as np, patchjit
    >>> from patchjit import ops
    >>> rng = np.random.default_rng(1)
    >>> clean = np.full((32, 32, 3), 120.0)
    >>> noisy = clean + rng.normal(0, 10, clean.shape)
    >>> out = patchjit.process_image(noisy, ops.dct_denoise_color, (8, 8), args=(10.0,))
    >>> out.shape, bool(np.abs(out - clean).std() < np.abs(noisy - clean).std() / 3)
    ((32, 32, 3), True)
    """
    nc = patch.shape[2]
    thr = 3.0 * sigma
    if nc != 3:  # not RGB: each channel alone (generic kernel: quick to compile)
        for c in range(nc):
            _generic_gray(patch[:, :, c], out[:, :, c], thr)
    else:
        _color(patch, out, thr)
