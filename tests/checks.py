"""Compare one patchjit call with the reference, and the window table several test files share.

This module calls patchjit, so it stays apart from ``reference.py``, which imports nothing
from the library.
"""

import numpy as np
import reference as ref

import patchjit

WINDOW_CASES = [None, *ref.WINDOWS]


def sigma_for(window, sigma):
    """sigma only goes with the gaussian window."""
    return sigma if window == "gaussian" else None


def check_process_image(image, func, patch, step, **kw):
    """process_image equals the reference (shape, dtype, values within the dtype's tolerance)."""
    got = patchjit.process_image(image, func, patch, step, **kw)
    expected = ref.process_image(image, func, patch, step, **kw)
    geom = ref.geometry(
        np.shape(image), patch, step, kw.get("edge", "cover"), kw.get("channel_axis")
    )
    assert got.shape == np.shape(image)
    assert got.dtype == expected.dtype
    ref.assert_close(
        got, expected, ref.accumulation_dtype(np.asarray(image).dtype), geom.max_coverage()
    )
    return got


def check_map_patches(image, func, patch, step, **kw):
    """map_patches equals the reference (shape, dtype, values within the dtype's tolerance)."""
    got = patchjit.map_patches(image, func, patch, step, **kw)
    expected = ref.map_patches(image, func, patch, step, **kw)
    assert got.shape == expected.shape
    assert got.dtype == expected.dtype
    geom = ref.geometry(
        np.shape(image),
        patch,
        step,
        kw.get("edge", "valid"),
        kw.get("channel_axis"),
        centered=True,
        check_cover_gaps=False,
    )
    n = int(np.prod(geom.patch))
    ref.assert_close(got, expected, ref.accumulation_dtype(np.asarray(image).dtype), n_terms=n)
    return got
