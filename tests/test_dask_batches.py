"""Dask arrays through process_batches and map_batches (patchjit.dask)."""

import threading

import numpy as np
import pytest

da = pytest.importorskip("dask.array")

from dask_cases import check_equal, random_case, random_image, random_merge_options  # noqa: E402

import patchjit  # noqa: E402

pytest.importorskip("patchjit.dask")


def make_func(n_spatial, has_c, k):
    """A NumPy batch function: scaled patch plus its mean; ``k`` output channels
    (None: the input's layout)."""
    axes = tuple(range(1, n_spatial + 1))

    def func(batch):
        y = 0.5 * batch + batch.mean(axis=axes, keepdims=True)
        if k is None:
            return y
        grey = y.sum(axis=-1, keepdims=True) if has_c else y[..., None]
        return grey * (1.0 + np.arange(k, dtype=batch.dtype))

    return func


def random_batch_case(rng):
    shape, patch, ca, chunks = random_case(rng)
    step = tuple(int(rng.integers(1, p + 1)) for p in patch)
    kw = random_merge_options(rng, patch)
    kw.update(
        channel_axis=ca, batch_size=int(rng.integers(1, 40)),
        out_channels=None if rng.random() < 0.6 else int(rng.integers(1, 4)),
    )  # fmt: skip
    if rng.random() < 0.3:
        kw["overlap"], step = 0.5, None
    image = random_image(rng, shape)
    return image, patch, step, chunks, kw


def run_process_cases(rng, n):
    for _ in range(n):
        image, patch, step, chunks, kw = random_batch_case(rng)
        func = make_func(len(patch), kw["channel_axis"] is not None, kw["out_channels"])
        want = patchjit.process_batches(image, func, patch, step, **kw)
        x = da.from_array(image, chunks=chunks)
        lazy = patchjit.process_batches(x, func, patch, step, **kw)
        assert isinstance(lazy, da.Array)
        ca = kw["channel_axis"]
        spatial = [c for a, c in enumerate(x.chunks) if a != ca]
        assert [c for a, c in enumerate(lazy.chunks) if a != ca][: len(spatial)] == spatial
        got = lazy.compute(scheduler="threads")
        assert got.shape == want.shape and got.dtype == want.dtype
        check_equal(got, want, kw["reduce"])


def test_process_batches_random_chunkings(rng):
    run_process_cases(rng, 12)


@pytest.mark.slow
def test_process_batches_random_chunkings_many(rng):
    run_process_cases(rng, 80)


def run_map_cases(rng, n):
    for _ in range(n):
        shape, patch, ca, chunks = random_case(rng)
        step = tuple(int(rng.integers(1, p + 3)) for p in patch)
        edge = str(rng.choice(["cover", "valid", "pad"]))
        image = rng.random(shape).astype(np.float32)
        axes = tuple(range(1, image.ndim + 1))  # every axis but the batch's

        def func(b, axes=axes):
            return b.max(axis=axes) - 0.5 * b.min(axis=axes)

        kw = dict(edge=edge, channel_axis=ca, pad_mode="symmetric",
                  batch_size=int(rng.integers(1, 20)))  # fmt: skip
        want = patchjit.map_batches(image, func, patch, step, **kw)
        got = patchjit.map_batches(da.from_array(image, chunks=chunks), func, patch, step, **kw)
        assert got.shape == want.shape
        np.testing.assert_array_equal(got.compute(), want)


def test_map_batches_random_chunkings_bitwise(rng):
    run_map_cases(rng, 12)


@pytest.mark.slow
def test_map_batches_random_chunkings_many(rng):
    run_map_cases(rng, 60)


def test_out_channels_and_bitwise_max(rng):
    rgb = rng.random((37, 30, 3))
    x = da.from_array(rgb, chunks=(10, 8, 2))

    def grey(b):
        return b.mean(axis=-1, keepdims=True)

    got = patchjit.process_batches(x, grey, (6, 5), 2, out_channels=1)
    assert got.shape == (37, 30, 1) and got.chunks[:2] == x.chunks[:2]
    np.testing.assert_allclose(got.compute(), rgb.mean(axis=-1, keepdims=True), rtol=1e-12)
    chw = da.moveaxis(x, -1, 0)  # channels first, K=2 outputs at the channel axis
    two = patchjit.process_batches(chw, lambda b: np.concatenate([b[..., :1], b[..., 2:]], -1),
                                   (6, 5), 2, out_channels=2, channel_axis=0)  # fmt: skip
    assert two.shape == (2, 37, 30)
    np.testing.assert_allclose(two.compute(), np.moveaxis(rgb[..., [0, 2]], -1, 0), rtol=1e-12)
    image = rng.random((45, 38)).astype(np.float32)
    for reduce in ("max", "min"):
        want = patchjit.process_batches(image, lambda b: 2 * b + 1, (7, 5), 3, reduce=reduce)
        got = patchjit.process_batches(da.from_array(image, chunks=(11, 9)), lambda b: 2 * b + 1,
                                       (7, 5), 3, reduce=reduce)  # fmt: skip
        np.testing.assert_array_equal(got.compute(), want)


def test_matches_process_image_and_small_chunks(rng):
    image = rng.random((40, 33)).astype(np.float32)
    x = da.from_array(image, chunks=(3, 5))  # every chunk smaller than the patch
    got = patchjit.process_batches(x, lambda b: b, 9, 4, window="hann")
    assert got.chunks == x.chunks
    np.testing.assert_allclose(got.compute(), image, rtol=1e-5, atol=1e-5)


def test_func_runs_in_dask_threads_and_synchronously(rng):
    image = rng.random((60, 50))
    x = da.from_array(image, chunks=15)
    names = set()
    lock = threading.Lock()

    def func(b):
        with lock:
            names.add(threading.current_thread().name)
        return b * 2.0

    want = patchjit.process_batches(image, func, 5, 2)
    lazy = patchjit.process_batches(x, func, 5, 2)
    np.testing.assert_array_equal(lazy.compute(scheduler="synchronous"), want)
    np.testing.assert_array_equal(lazy.compute(scheduler="threads", num_workers=3), want)
    assert not any(n.startswith("patchjit-batches") for n in names)  # no pipeline thread


# --- bad input -----------------------------------------------------------------------


def test_bad_input(rng):
    s = da.from_array(np.array([["a", "b"], ["c", "d"]]), chunks=1)
    x = da.from_array(rng.random((20, 20)), chunks=10)
    for fn in (patchjit.process_batches, patchjit.map_batches):
        with pytest.raises(TypeError, match="astype"):
            fn(s, lambda b: b, 1)
        y = x.ravel()
        with pytest.raises(ValueError, match=r"compute_chunk_sizes\(\)"):
            fn(y[y > 0.5], lambda b: b, 3)
        with pytest.raises(ValueError, match="ProgressBar"):
            fn(x, lambda b: b, 3, progress=True)
        with pytest.raises(TypeError, match="callable"):
            fn(x, 3, 3)
        with pytest.raises(ValueError, match="batch_size"):
            fn(x, lambda b: b, 3, batch_size=0)
        with pytest.raises(ValueError, match="larger than the image"):
            fn(x, lambda b: b, 30)
    with pytest.raises(TypeError, match="to_zarr"):
        patchjit.process_batches(x, lambda b: b, 3, out=np.empty((20, 20)))
    with pytest.raises(ValueError, match="out_channels"):
        patchjit.process_batches(x, lambda b: b, 3, out_channels=0)
    # func's own mistakes surface when the result is computed
    lazy = patchjit.process_batches(x, lambda b: b[:, 0], 3)
    with pytest.raises(ValueError, match="expected"):
        lazy.compute()
    lazy = patchjit.map_batches(x, lambda b: b.sum(axis=1), 3)
    with pytest.raises(ValueError, match="one value per patch"):
        lazy.compute()


@pytest.mark.parametrize(
    "shape, chunks, patch, step, kw, k",
    [
        ((21, 19, 3), (8, 7, 2), (4, 5), (2, 1), {}, 2),
        ((3, 21, 19), (1, 9, 6), (4, 5), 2, {"channel_axis": 0, "window": "triangle"}, 2),
        ((23, 17), (6, 5), (3, 4), (2, 3), {"edge": "pad"}, 3),
        ((9, 10, 11), 4, 3, 2, {"reduce": "max"}, 2),
    ],
)
def test_process_image_out_channels(rng, shape, chunks, patch, step, kw, k):
    from test_strip_engine import grey_and_sum, to_k

    func = grey_and_sum if len(shape) == 3 and 3 in shape else to_k
    img = rng.random(shape)
    want = patchjit.process_image(img, func, patch, step, out_channels=k, **kw)
    got = patchjit.process_image(da.from_array(img, chunks=chunks), func, patch, step,
                                 out_channels=k, **kw)  # fmt: skip
    assert got.shape == want.shape
    check_equal(got.compute(), want, kw.get("reduce", "mean"))
