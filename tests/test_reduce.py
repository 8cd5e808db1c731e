"""reduce="mean"/"sum"/"max"/"min" in process_image and unpatchify against the reference."""

import numpy as np
import pytest
import reference as ref
from callbacks import affine_arr, scale_add_mean
from checks import check_process_image
from hypothesis import given
from hypothesis import strategies as st
from strategies import geometry_nd, random_image, seeds

import patchjit

# --------------------------------------------------------------------------
# process_image
# --------------------------------------------------------------------------


@pytest.mark.parametrize("reduce", ["max", "min"])
@pytest.mark.parametrize("edge", ["cover", "valid"])
def test_reduce_max_min(reduce, edge, rng):
    img = random_image(rng, (19, 16))
    got = check_process_image(
        img, scale_add_mean, (5, 4), (2, 3), args=(-1.0,), edge=edge, reduce=reduce
    )
    covered = ref.PatchGrid(img.shape, (5, 4), (2, 3), edge).coverage() > 0
    assert np.isnan(got[~covered]).all() and np.isfinite(got[covered]).all()


@pytest.mark.parametrize("reduce", ["max", "min", "sum", "mean"])
def test_reduce_nan_propagates(reduce, rng):
    img = random_image(rng, (12, 12))
    img[5, 6] = np.nan
    geom = ref.geometry(img.shape, (3, 4), (2, 2), "cover")
    got = check_process_image(img, scale_add_mean, (3, 4), (2, 2), args=(1.0,), reduce=reduce)
    np.testing.assert_array_equal(np.isnan(got), ref.covering_mask(geom, (5, 6)))


@given(g=geometry_nd(ndim=2, max_size=20), seed=seeds, reduce=st.sampled_from(ref.REDUCES))
def test_reduce_random_geometry(g, seed, reduce):
    rng = np.random.default_rng(seed)
    img = random_image(rng, g["shape"])
    check_process_image(
        img, scale_add_mean, g["patch"], g["step"], args=(-0.5,), edge=g["edge"], reduce=reduce
    )


def test_reduce_with_integer_dtype(rng):
    img = random_image(rng, (10, 10), np.uint8)
    arr = np.zeros((3, 3))
    got = patchjit.process_image(
        img, affine_arr, 3, 1, args=(1.0, arr), reduce="sum", dtype=np.uint8
    )
    expected = ref.process_image(
        img, affine_arr, 3, 1, args=(1.0, arr), reduce="sum", dtype=np.uint8
    )
    np.testing.assert_array_equal(got, expected)
    assert got.max() == 255


# --------------------------------------------------------------------------
# unpatchify
# --------------------------------------------------------------------------


@pytest.mark.parametrize("reduce", ["max", "min"])
def test_unpatchify_max_min(reduce, rng):
    shape = (11, 9)
    geom = ref.geometry(shape, (3, 3), (2, 2), "cover")
    patches = rng.standard_normal((*geom.grid_shape, 3, 3))
    got = patchjit.unpatchify(patches, shape, 2, reduce=reduce)
    expected = ref.unpatchify(patches, shape, 2, reduce=reduce)
    ref.assert_close(got, expected, np.float64)
