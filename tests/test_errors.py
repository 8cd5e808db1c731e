"""Bad inputs raise clear errors naming the offending value."""

import re

import numba
import numpy as np
import pytest
from callbacks import identity, patch_mean, scale_add_mean

import patchjit
from patchjit import ops

IMG = np.arange(120, dtype=np.float64).reshape(10, 12)


def raises(exc, *fragments):
    """pytest.raises(exc) whose message contains every fragment (case-insensitive).

    A fragment that is a tuple means "any one of these".
    """
    parts = []
    for f in fragments:
        alts = f if isinstance(f, tuple) else (f,)
        parts.append("(?=.*(?:" + "|".join(re.escape(a) for a in alts) + "))")
    return pytest.raises(exc, match=re.compile("(?is)^" + "".join(parts)))


def _calls(patch, step=1, edge="cover"):
    """Every public entry point with the given geometry."""
    return [
        lambda: patchjit.process_image(IMG, identity, patch, step, edge=edge),
        lambda: patchjit.map_patches(IMG, patch_mean, patch, step, edge=edge),
        lambda: patchjit.PatchGrid(IMG.shape, patch, step, edge),
        lambda: patchjit.patchify(IMG, patch, step),
    ]


# --------------------------------------------------------------------------
# geometry
# --------------------------------------------------------------------------
@pytest.mark.parametrize("which", range(4))
def test_patch_larger_than_image(which):
    with raises(ValueError, "13"):
        _calls((4, 13))[which]()
    with raises(ValueError, "11"):
        _calls(11)[which]()


@pytest.mark.parametrize("which", range(4))
@pytest.mark.parametrize("patch", [(3, 0), (0, 3), (-2, 3), 0, -1])
def test_non_positive_patch(which, patch):
    bad = str(patch if isinstance(patch, int) else min(patch))
    with raises(ValueError, "patch", bad):
        _calls(patch)[which]()


@pytest.mark.parametrize("which", range(4))
@pytest.mark.parametrize("step", [(1, 0), (0, 2), (-1, 1), 0, -3])
def test_non_positive_step(which, step):
    bad = str(step if isinstance(step, int) else min(step))
    with raises(ValueError, "step", bad):
        _calls((3, 3), step)[which]()


@pytest.mark.parametrize("which", range(4))
def test_patch_rank_mismatch(which):
    with raises(ValueError, "patch"):
        _calls((2, 2, 2, 2))[which]()


@pytest.mark.parametrize("which", range(4))
def test_step_rank_mismatch(which):
    with raises(ValueError, "step"):
        _calls((2, 2), (1, 1, 1))[which]()


def test_cover_step_larger_than_patch():
    with raises(ValueError, "step", "5"):
        patchjit.process_image(IMG, identity, (3, 3), (1, 5))
    with raises(ValueError, "step", "5"):
        patchjit.unpatchify(np.zeros((8, 3, 3, 3)), IMG.shape, (1, 5))


@pytest.mark.parametrize("shape", [(0, 5), (5, 0), (0, 0)])
def test_empty_image(shape):
    img = np.zeros(shape)
    with raises(ValueError, ("empty", str(shape), "size")):
        patchjit.process_image(img, identity, 1)
    with raises(ValueError, ("empty", str(shape), "size")):
        patchjit.map_patches(img, patch_mean, 1)
    with raises(ValueError, ("empty", str(shape), "size")):
        patchjit.patchify(img, 1)


@pytest.mark.parametrize("edge", ["same", "full"])
def test_unknown_edge(edge):
    for call in _calls(3, 1, edge)[:3]:
        with raises(ValueError, "cover", "valid", edge):
            call()
    with raises(ValueError, "cover", "valid", edge):
        patchjit.unpatchify(np.zeros((8, 10, 3, 3)), IMG.shape, 1, edge=edge)


# --------------------------------------------------------------------------
# image and callback types
# --------------------------------------------------------------------------
def test_string_image():
    with raises(TypeError, ("str", "image")):
        patchjit.process_image("not an image", identity, 2)
    with raises(TypeError, ("str", "image")):
        patchjit.map_patches("not an image", patch_mean, 2)
    with raises(TypeError, ("str", "image")):
        patchjit.patchify("not an image", 2)


@pytest.mark.parametrize("func", [42, None, "identity", np.zeros(3)])
def test_func_not_callable(func):
    with raises(TypeError, ("callable", "func")):
        patchjit.process_image(IMG, func, 3)
    with raises(TypeError, ("callable", "func")):
        patchjit.map_patches(IMG, func, 3)


def undefined_name_callback(patch, out):
    out[...] = patch * undefined_thing_xyz  # noqa: F821


def context_manager_callback(patch, out):
    with open("/dev/null") as fh:  # noqa: F841
        pass
    out[...] = patch


def undefined_name_reducer(patch):
    return patch.sum() * undefined_thing_xyz  # noqa: F821


def test_callback_that_does_not_compile():
    with raises(TypeError, "undefined_name_callback", "undefined_thing_xyz"):
        patchjit.process_image(IMG, undefined_name_callback, 3)
    with raises(TypeError, "undefined_name_reducer", "undefined_thing_xyz"):
        patchjit.map_patches(IMG, undefined_name_reducer, 3)


def test_callback_with_unsupported_feature():
    with raises(TypeError, "context_manager_callback", "context manager"):
        patchjit.process_image(IMG, context_manager_callback, 3)


def test_jitted_callback_that_does_not_compile():
    jitted = numba.njit(undefined_name_callback)
    with raises(TypeError, "undefined_name_callback", "undefined_thing_xyz"):
        patchjit.process_image(IMG, jitted, 3)


def one_arg_callback(patch):
    return patch.sum()


def test_callback_with_wrong_signature():
    with raises(TypeError, "one_arg_callback"):
        patchjit.process_image(IMG, one_arg_callback, 3)
    # map_patches expects func(patch, *args) -> scalar
    with raises(TypeError, "identity"):
        patchjit.map_patches(IMG, identity, 3)
    # args that do not fit the callback
    with raises(TypeError, "scale_add_mean"):
        patchjit.process_image(IMG, scale_add_mean, 3)
    with raises(TypeError, "scale_add_mean"):
        patchjit.process_image(IMG, scale_add_mean, 3, args=(1.0, 2.0))


# --------------------------------------------------------------------------
# unpatchify
# --------------------------------------------------------------------------
def test_unpatchify_wrong_count():
    # (10, 12), patch 3, step 3: grid (4, 4) with cover, (3, 4) with valid
    with raises(ValueError, ("15", "16")):
        patchjit.unpatchify(np.zeros((15, 3, 3)), (10, 12), 3)
    with raises(ValueError, ("16", "12")):
        patchjit.unpatchify(np.zeros((16, 3, 3)), (10, 12), 3, edge="valid")


def test_unpatchify_wrong_grid_shape():
    with raises(ValueError, ("(4, 3)", "(4, 4)", "grid")):
        patchjit.unpatchify(np.zeros((4, 3, 3, 3)), (10, 12), 3)
    with raises(ValueError, ("(2, 4)", "(4, 4)", "grid")):
        patchjit.unpatchify(np.zeros((2, 4, 3, 3)), (10, 12), 3)
    # patchify's 'valid' grid (3, 4) is taken when the 'cover' grid (4, 4) does not fit
    back = patchjit.unpatchify(np.ones((3, 4, 3, 3)), (10, 12), 3)
    assert np.isnan(back[9]).all() and (back[:9] == 1).all()
    with raises(ValueError, ("(3, 4)", "(4, 4)", "grid")):
        patchjit.unpatchify(np.zeros((3, 4, 3, 3)), (10, 12), 3, edge="cover")


def test_unpatchify_wrong_patch_shape():
    # patch taller than the image
    with raises(ValueError, "11"):
        patchjit.unpatchify(np.zeros((1, 11, 3)), (10, 12), 3)
    # rank that fits neither the grid nor the flat form
    with raises(ValueError, "patch"):
        patchjit.unpatchify(np.zeros((2, 2, 2, 2, 2)), (10, 12), 3)
    with raises(ValueError, "patch"):
        patchjit.unpatchify(np.zeros((5, 5)), (10, 12), 3)


# --------------------------------------------------------------------------
# threads
# --------------------------------------------------------------------------
@pytest.mark.parametrize("threads", [0, numba.config.NUMBA_NUM_THREADS + 1, 10**6])
def test_bad_threads(threads):
    with raises(ValueError, "threads", str(threads)):
        patchjit.process_image(IMG, identity, 3, threads=threads)
    with raises(ValueError, "threads", str(threads)):
        patchjit.map_patches(IMG, patch_mean, 3, threads=threads)
    with raises(ValueError, "threads", str(threads)):
        patchjit.unpatchify(np.zeros((16, 3, 3)), (10, 12), 3, threads=threads)


def test_max_threads_ok():
    n = numba.config.NUMBA_NUM_THREADS
    a = patchjit.process_image(IMG, identity, 3, threads=n)
    np.testing.assert_allclose(a, IMG, rtol=1e-14)


@pytest.mark.parametrize("dtype", [np.float16, np.dtype(">f4"), np.dtype(">i2")])
def test_out_sharing_a_converted_input_is_refused(dtype):
    """float16 and big-endian inputs are converted first; ``out`` is still checked
    against the caller's own array (0.2.0 accepted ``out=image`` there)."""
    img = np.arange(64).reshape(8, 8).astype(dtype)
    with pytest.raises(ValueError, match="shares memory with the input"):
        patchjit.process_image(img, ops.identity, 3, out=img, dtype=img.dtype)
    with pytest.raises(ValueError, match="shares memory with the input"):
        patchjit.process_batches(img, lambda b: b, 3, out=img, dtype=img.dtype)


# --------------------------------------------------------------------------
# reduce, window, pad_mode and channel_axis
# --------------------------------------------------------------------------


@pytest.mark.parametrize("reduce", ["median", "avg"])
def test_unknown_reduce(reduce):
    for call in (
        lambda: patchjit.process_image(IMG, identity, 3, reduce=reduce),
        lambda: patchjit.unpatchify(np.zeros((8, 10, 3, 3)), IMG.shape, 1, reduce=reduce),
    ):
        with pytest.raises(ValueError, match=f"(?s)(?=.*{reduce})(?=.*mean)(?=.*max)"):
            call()


@pytest.mark.parametrize("window", ["blackman", "hanning"])
def test_unknown_window(window):
    for call in (
        lambda: patchjit.process_image(IMG, identity, 3, window=window),
        lambda: patchjit.unpatchify(np.zeros((8, 10, 3, 3)), IMG.shape, 1, window=window),
        lambda: patchjit.PatchGrid(IMG.shape, 3, 1, window=window),
    ):
        with pytest.raises(ValueError, match=f"(?s)(?=.*{window})(?=.*hann)(?=.*gaussian)"):
            call()


@pytest.mark.parametrize("mode", ["mirror", "nearest", "zeros"])
def test_unknown_pad_mode(mode):
    for call in (
        lambda: patchjit.process_image(IMG, identity, 3, edge="pad", pad_mode=mode),
        lambda: patchjit.map_patches(IMG, patch_mean, 3, edge="pad", pad_mode=mode),
    ):
        with pytest.raises(ValueError, match=f"(?s)(?=.*{mode})(?=.*reflect)(?=.*constant)"):
            call()


def test_unpatchify_rejects_pad():
    # only process_image and map_patches pad the image; unpatchify has no image
    with pytest.raises(ValueError, match="pad"):
        patchjit.unpatchify(np.zeros((4, 4, 3, 3)), (10, 10), 3, edge="pad")


def test_window_array_wrong_shape():
    with pytest.raises(ValueError, match=r"window"):
        patchjit.process_image(IMG, identity, (3, 4), window=np.ones((4, 3)))
    with pytest.raises(ValueError, match=r"window"):
        patchjit.process_image(IMG, identity, (3, 4), window=np.ones(12))


def test_window_array_not_positive():
    w = np.ones((3, 3))
    w[1, 1] = -1.0
    with pytest.raises(ValueError, match=r"window"):
        patchjit.process_image(IMG, identity, 3, window=w)


@pytest.mark.parametrize("reduce", ["max", "min"])
def test_max_min_reject_window(reduce):
    with pytest.raises(ValueError, match=r"(?s)(?=.*window)(?=.*" + reduce + ")"):
        patchjit.process_image(IMG, identity, 3, reduce=reduce, window="hann")
    with pytest.raises(ValueError, match=r"(?s)(?=.*window)(?=.*" + reduce + ")"):
        patchjit.unpatchify(np.zeros((8, 10, 3, 3)), IMG.shape, 1, reduce=reduce, window="hann")


def test_channel_axis_out_of_range():
    img = np.zeros((4, 5, 3))
    with pytest.raises(ValueError, match=r"channel_axis|3"):
        patchjit.process_image(img, identity, 2, channel_axis=3)
    with pytest.raises(ValueError, match=r"channel_axis|-4"):
        patchjit.patchify(img, 2, channel_axis=-4)
