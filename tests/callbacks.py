"""Module-level numba callbacks shared by all tests.

Every distinct callback costs a numba compilation (of itself and of the
library kernel specialised on it), so the test-suite reuses this small set
everywhere instead of defining new ones per test.

The callbacks are written as explicit loops over ``np.ndindex``: numba
compiles those for any number of dimensions several times faster than the
equivalent array expressions (``out[...] = a * patch + arr`` on 3-d arrays
takes ~15 s to compile inside a parallel kernel, the loop ~2 s).

Each callback carries a ``reference`` attribute: the same computation written
with numpy array operations, which ``reference.py`` calls instead of the
(slow, element-by-element) pure-Python ``py_func``.
"""

import numpy as np
from numba import njit


def _with_reference(ref_impl):
    def attach(dispatcher):
        dispatcher.reference = ref_impl
        return dispatcher

    return attach


# ---- process_image callbacks: func(patch, out, *args) fills ``out`` --------
def _np_identity(patch, out):
    out[...] = patch


@_with_reference(_np_identity)
@njit
def identity(patch, out):
    for idx in np.ndindex(patch.shape):
        out[idx] = patch[idx]


def _np_scale_add_mean(patch, out, a):
    out[...] = a * patch + patch.mean()


@_with_reference(_np_scale_add_mean)
@njit
def scale_add_mean(patch, out, a):
    # depends on the whole patch: wrong origins give wrong values
    total = 0.0
    for idx in np.ndindex(patch.shape):
        total += patch[idx]
    mean = total / patch.size
    for idx in np.ndindex(patch.shape):
        out[idx] = a * patch[idx] + mean


def _np_affine_arr(patch, out, a, arr):
    out[...] = a * patch + arr


@_with_reference(_np_affine_arr)
@njit
def affine_arr(patch, out, a, arr):
    # tuple args (float, array); ``arr`` has the patch shape (channels last),
    # so the result depends on the position inside the patch
    if arr.shape != patch.shape:
        raise ValueError("arr must have the patch shape")
    for idx in np.ndindex(patch.shape):
        out[idx] = a * patch[idx] + arr[idx]


def _np_const_one(patch, out):
    out[...] = 1.0


@_with_reference(_np_const_one)
@njit
def const_one(patch, out):
    for idx in np.ndindex(out.shape):
        out[idx] = 1.0


# ---- map_patches callbacks: func(patch, *args) -> scalar ---------------------
def _np_patch_mean(patch):
    return patch.mean()


@_with_reference(_np_patch_mean)
@njit
def patch_mean(patch):
    total = 0.0
    for idx in np.ndindex(patch.shape):
        total += patch[idx]
    return total / patch.size


def _np_weighted_sum(patch, w):
    return np.sum(patch * w)


@_with_reference(_np_weighted_sum)
@njit
def weighted_sum(patch, w):
    # position sensitive: w has the patch shape
    if w.shape != patch.shape:
        raise ValueError("w must have the patch shape")
    total = 0.0
    for idx in np.ndindex(patch.shape):
        total += patch[idx] * w[idx]
    return total


def _np_offset_weighted_sum(patch, a, w):
    return a + np.sum(patch * w)


@_with_reference(_np_offset_weighted_sum)
@njit
def offset_weighted_sum(patch, a, w):
    if w.shape != patch.shape:
        raise ValueError("w must have the patch shape")
    total = 0.0
    for idx in np.ndindex(patch.shape):
        total += patch[idx] * w[idx]
    return a + total


def _np_patch_max(patch):
    return patch.max()


@_with_reference(_np_patch_max)
@njit
def patch_max(patch):
    return patch.max()


# ---- plain Python versions (the library must jit them itself) --------------
# same code as the njit versions above, so results are bitwise comparable
def py_scale_add_mean(patch, out, a):
    total = 0.0
    for idx in np.ndindex(patch.shape):
        total += patch[idx]
    mean = total / patch.size
    for idx in np.ndindex(patch.shape):
        out[idx] = a * patch[idx] + mean


def py_patch_mean(patch):
    total = 0.0
    for idx in np.ndindex(patch.shape):
        total += patch[idx]
    return total / patch.size
