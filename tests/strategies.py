"""Hypothesis strategies for random patch geometries."""

import numpy as np
from hypothesis import strategies as st


@st.composite
def geometry_nd(draw, ndim=2, edge=None, max_size=40, max_extra_step=3, edges=("cover", "valid")):
    """A random (shape, patch_shape, step, edge) with per-axis patch/step.

    patch_shape/step are sometimes a single int (broadcast to all axes).
    With edge='cover' the step never exceeds the patch (gaps are an error);
    with edge='valid' steps up to patch + max_extra_step are drawn.
    """
    if edge is None:
        edge = draw(st.sampled_from(edges))
    shape = tuple(draw(st.integers(1, max_size)) for _ in range(ndim))
    # An int patch on a shape whose last axis could be channels is refused as
    # ambiguous (the channel rule), so only unambiguous shapes draw one.
    ambiguous = ndim > 1 and shape[-1] <= 4 and shape[-1] < max(shape[:-1])
    if not ambiguous and draw(st.booleans()):
        p = draw(st.integers(1, min(shape)))
        patch = p
        patch_t = (p,) * ndim
    else:
        patch_t = tuple(draw(st.integers(1, n)) for n in shape)
        patch = patch_t
    limit = (lambda p: p) if edge != "valid" else (lambda p: p + max_extra_step)
    if draw(st.booleans()):
        s = draw(st.integers(1, limit(min(patch_t))))
        step = s
    else:
        step = tuple(draw(st.integers(1, limit(p))) for p in patch_t)
    return dict(shape=shape, patch=patch, step=step, edge=edge)


seeds = st.integers(0, 2**32 - 1)


def random_image(rng, shape, dtype=np.float64):
    """Random test image of ``dtype`` (positive for floats)."""
    dtype = np.dtype(dtype)
    if dtype.kind == "b":
        return rng.random(shape) < 0.5
    if dtype.kind == "u":
        hi = min(np.iinfo(dtype).max, 60000)
        return rng.integers(0, hi, size=shape, endpoint=True).astype(dtype)
    if dtype.kind == "i":
        lo, hi = max(np.iinfo(dtype).min, -30000), min(np.iinfo(dtype).max, 30000)
        return rng.integers(lo, hi, size=shape, endpoint=True).astype(dtype)
    return (rng.random(shape) * 4 + 0.5).astype(dtype)
