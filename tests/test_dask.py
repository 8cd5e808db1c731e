"""Dask arrays through process_image, map_patches and unpatchify (patchjit.dask)."""

import os
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest

da = pytest.importorskip("dask.array")

import reference as ref  # noqa: E402
from callbacks import identity, patch_max, scale_add_mean, weighted_sum  # noqa: E402
from dask_cases import (  # noqa: E402
    PAD_MODES,
    TINY,
    check_equal,
    random_case,
    random_image,
    random_merge_options,
)

import patchjit  # noqa: E402

pdask = pytest.importorskip("patchjit.dask")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_process_image_random_chunkings(rng):
    scheduler = "threads"
    for _ in range(30):
        shape, patch, ca, chunks = random_case(rng)
        step = tuple(int(rng.integers(1, p + 1)) for p in patch)
        kw = random_merge_options(rng, patch)
        image = random_image(rng, shape)
        out_dtype = "int16" if rng.random() < 0.2 and kw["edge"] != "valid" else None
        kw.update(channel_axis=ca, dtype=out_dtype, args=(0.5,))
        want = patchjit.process_image(image, scale_add_mean, patch, step, **kw)
        lazy = patchjit.process_image(da.from_array(image, chunks=chunks), scale_add_mean,
                                      patch, step, **kw)  # fmt: skip
        assert isinstance(lazy, da.Array)
        spatial_chunks = [c for a, c in enumerate(da.from_array(image, chunks=chunks).chunks)
                          if a != ca]  # fmt: skip
        assert [c for a, c in enumerate(lazy.chunks) if a != ca] == spatial_chunks
        check_equal(lazy.compute(scheduler=scheduler), want, kw["reduce"])


def test_bitwise_for_max_min_and_exact_overlap(rng):
    image = rng.random((70, 61)).astype(np.float32)
    x = da.from_array(image, chunks=(23, 17))
    for reduce in ("max", "min"):
        want = patchjit.process_image(image, scale_add_mean, (9, 7), 2, reduce=reduce, args=(2.0,))
        got = patchjit.process_image(x, scale_add_mean, (9, 7), 2, reduce=reduce, args=(2.0,))
        np.testing.assert_array_equal(got.compute(), want)
    # steps equal to the patch: one patch per pixel, so every reduction is bitwise
    want = patchjit.process_image(image, scale_add_mean, (7, 5), (7, 5), args=(2.0,))
    got = patchjit.process_image(x, scale_add_mean, (7, 5), (7, 5), args=(2.0,))
    np.testing.assert_array_equal(got.compute(), want)


def test_overlap_and_reference(rng):
    image = rng.random((33, 29))
    x = da.from_array(image, chunks=(10, 13))
    got = patchjit.process_image(x, scale_add_mean, (8, 6), overlap=0.5, args=(1.5,),
                                 window="hann", edge="pad").compute()  # fmt: skip
    want = ref.process_image(image, scale_add_mean, (8, 6), (4, 3), args=(1.5,),
                             window="hann", edge="pad")  # fmt: skip
    ref.assert_close(got, want, np.float64, n_terms=48)


def test_map_patches_random_chunkings_bitwise(rng):
    for _ in range(20):
        shape, patch, ca, chunks = random_case(rng)
        step = tuple(int(rng.integers(1, p + 3)) for p in patch)
        edge = str(rng.choice(["cover", "valid", "pad"]))
        image = rng.random(shape).astype(np.float32)
        kw = dict(edge=edge, channel_axis=ca, pad_mode="symmetric")
        want = patchjit.map_patches(image, patch_max, patch, step, **kw)
        got = patchjit.map_patches(da.from_array(image, chunks=chunks), patch_max, patch, step,
                                   **kw).compute()  # fmt: skip
        np.testing.assert_array_equal(got, want)
    image = rng.random((40, 30))
    w = rng.random((5, 5))
    want = ref.map_patches(image, weighted_sum, (5, 5), 2, args=(w,))
    got = patchjit.map_patches(da.from_array(image, chunks=9), weighted_sum, 5, 2, args=(w,))
    ref.assert_close(got.compute(), want, np.float64, n_terms=25)


def test_map_patches_pad_step1_keeps_chunks(rng):
    image = da.from_array(rng.random((50, 44)), chunks=(20, 15))
    res = patchjit.map_patches(image, patch_max, 5, edge="pad")
    assert res.chunks == image.chunks


def test_unpatchify_random_chunkings(rng):
    for _ in range(15):
        shape, patch, ca, _ = random_case(rng)
        if ca is not None and ca != len(shape) - 1:
            continue
        step = tuple(int(rng.integers(1, p + 1)) for p in patch)
        image = rng.random(shape)
        patches = patchjit.patchify(image, patch, step)
        chunks = tuple(int(rng.integers(1, n + 1)) for n in patches.shape)
        window = "hann" if rng.random() < 0.5 else None
        kw = dict(edge="valid", window=window, channel_axis=ca)
        want = patchjit.unpatchify(patches, shape, step, **kw)
        got = patchjit.unpatchify(da.from_array(patches, chunks=chunks), shape, step, **kw)
        np.testing.assert_allclose(got.compute(), want, rtol=1e-12, atol=1e-12, equal_nan=True)
        flat = patches.reshape((-1, *patches.shape[len(patch) :]))
        got = patchjit.unpatchify(da.from_array(flat, chunks=7), shape, step, **kw)
        np.testing.assert_allclose(got.compute(), want, rtol=1e-12, atol=1e-12, equal_nan=True)


def test_small_chunks_are_merged_and_split_back(rng):
    image = rng.random((60, 50)).astype(np.float32)
    x = da.from_array(image, chunks=(4, 7))  # every chunk smaller than the patch
    res = patchjit.process_image(x, scale_add_mean, 11, 3, args=(1.0,))
    assert res.chunks == x.chunks
    want = patchjit.process_image(image, scale_add_mean, 11, 3, args=(1.0,))
    np.testing.assert_allclose(res.compute(), want, rtol=1e-5, atol=1e-5)


def test_core_imports_without_dask():
    code = "import sys, patchjit; assert 'dask' not in sys.modules, 'dask imported'"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


# --- bad input -----------------------------------------------------------------------


def test_non_numeric_dask_array():
    x = da.from_array(np.array([["a", "b"], ["c", "d"]]), chunks=1)
    with pytest.raises(TypeError, match="astype"):
        patchjit.process_image(x, identity, 1)
    with pytest.raises(TypeError, match="astype"):
        patchjit.map_patches(x, patch_max, 1)


def test_unknown_chunk_sizes(rng):
    x = da.from_array(rng.random(100), chunks=30)
    y = x[x > 0.5]
    with pytest.raises(ValueError, match=r"compute_chunk_sizes\(\)"):
        patchjit.process_image(y, identity, 3)
    y = y.compute_chunk_sizes()
    want = patchjit.process_image(y.compute(), identity, 3)
    np.testing.assert_allclose(patchjit.process_image(y, identity, 3).compute(), want)


def test_out_and_progress_refused(rng):
    x = da.from_array(rng.random((20, 20)), chunks=10)
    with pytest.raises(TypeError, match="to_zarr"):
        patchjit.process_image(x, identity, 3, out=np.empty((20, 20)))
    with pytest.raises(ValueError, match="ProgressBar"):
        patchjit.process_image(x, identity, 3, progress=True)
    with pytest.raises(ValueError, match="larger than the image"):
        patchjit.process_image(x, identity, 30)


# --- schedulers and threading -------------------------------------------------------


def test_concurrent_calls_threaded(rng):
    images = [rng.random((80, 70)).astype(np.float32) for _ in range(4)]
    wants = [patchjit.process_image(im, scale_add_mean, 9, 2, args=(1.0,)) for im in images]
    results = [None] * 4

    def work(i):
        x = da.from_array(images[i], chunks=25)
        lazy = patchjit.process_image(x, scale_add_mean, 9, 2, args=(1.0,))
        results[i] = lazy.compute(scheduler="threads", num_workers=3)

    ts = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    for got, want in zip(results, wants):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("threads", [None, 2])
def test_threaded_scheduler_under_workqueue(threads):
    code = textwrap.dedent(f"""
        import numpy as np, dask, dask.array as da, numba, patchjit
        from callbacks import scale_add_mean
        image = np.random.default_rng(1).random((120, 90)).astype(np.float32)
        want = patchjit.process_image(image, scale_add_mean, 9, 2, args=(1.0,))
        # large enough (>= 2**24 patch-pixels) to launch parallel kernels on the main thread
        patchjit.process_image(np.zeros((1100, 1100), np.float32), scale_add_mean, 9, 2,
                               args=(1.0,))  # fmt: skip
        x = da.from_array(image, chunks=30)
        lazy = patchjit.process_image(x, scale_add_mean, 9, 2, args=(1.0,), threads={threads})
        for _ in range(3):
            got = lazy.compute(scheduler="threads", num_workers=4)
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
        assert numba.threading_layer() == "workqueue", numba.threading_layer()
        print("ok")
    """)
    env = dict(os.environ, NUMBA_THREADING_LAYER="workqueue")
    env["PYTHONPATH"] = os.pathsep.join([ROOT, os.path.join(ROOT, "tests")])
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                       timeout=300)  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    assert "ok" in r.stdout


@pytest.mark.slow
def test_distributed_local_cluster(rng):
    distributed = pytest.importorskip("distributed")
    image = rng.random((90, 75)).astype(np.float32)
    want = patchjit.process_image(image, scale_add_mean, 9, 3, args=(1.0,), window="hann")
    want_map = patchjit.map_patches(image, patch_max, 5, 2)
    with (
        distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                 dashboard_address=None) as cluster,
        distributed.Client(cluster) as client,
    ):  # fmt: skip
        x = da.from_array(image, chunks=(40, 30))
        lazy = patchjit.process_image(x, scale_add_mean, 9, 3, args=(1.0,), window="hann")
        got = client.compute(lazy).result()
        got_map = client.compute(patchjit.map_patches(x, patch_max, 5, 2)).result()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(got_map, want_map)


@pytest.mark.parametrize("mode", ["median", "mean", "linear_ramp", "maximum", "minimum"])
def test_statistic_pad_modes(rng, mode):
    # numpy.pad's statistic modes; dask computes "mean" in another order (last bits)
    image = (rng.random((12, 40)) * 100).astype(np.float32)
    kw = dict(edge="pad", pad_mode=mode, args=(1.0,))
    want = patchjit.process_image(image, scale_add_mean, (11, 5), (2, 5), **kw)
    x = da.from_array(image, chunks=(5, 9))
    got = patchjit.process_image(x, scale_add_mean, (11, 5), (2, 5), **kw).compute()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)
    img8 = (rng.random((20, 30)) * 250).astype(np.uint8)
    kw["dtype"] = np.uint8
    want = patchjit.process_image(img8, scale_add_mean, 5, 2, **kw)
    got = patchjit.process_image(da.from_array(img8, chunks=7), scale_add_mean, 5, 2, **kw)
    assert np.abs(got.compute().astype(int) - want).max() <= 1


def test_issue_example_pad_wider_than_image():
    from patchjit.ops import mean_remove

    image = np.random.default_rng(0).random((3, 4))
    for mode in ("reflect", "symmetric", "wrap"):
        want = patchjit.process_image(image, mean_remove, 7, edge="pad", pad_mode=mode)
        got = patchjit.process_image(da.from_array(image, chunks=2), mean_remove, 7,
                                     edge="pad", pad_mode=mode)  # fmt: skip
        np.testing.assert_allclose(got.compute(), want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("mode", PAD_MODES)
def test_padding_equals_numpy_pad_for_any_width(rng, mode):
    """The lazy padding against numpy.pad itself, widths up to 3x the axis."""
    from patchjit.dask._padding import pad

    for _ in range(25):
        k = int(rng.integers(1, 4))
        shape = tuple(int(n) for n in rng.integers(1, 8, k))
        widths = [tuple(int(w) for w in rng.integers(0, 3 * n + 2, 2)) for n in shape]
        nc = int(rng.integers(1, 3))
        image = random_image(rng, (*shape, nc), ("float32", "float64", "uint8", "int16", "bool"))
        chunks = (*(int(rng.integers(1, n + 1)) for n in shape), nc)
        kw = {"constant_values": 1} if mode == "constant" else {}
        want = np.pad(image, [*widths, (0, 0)], mode=mode, **kw)
        got = pad(da.from_array(image, chunks=chunks), widths, mode, 1).compute()
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)


def test_edge_pad_any_mode_tiny_images_equals_in_memory(rng):
    """Images of 1-9 pixels per axis, patches up to 9 (their padding wider than the image
    and than its chunks), every pad mode, random chunkings."""
    for i in range(40):
        shape, patch, ca, chunks = random_case(rng, sizes=TINY, patch_over=True, ndims=(1, 2))
        step = tuple(int(rng.integers(1, p + 1)) for p in patch)
        kw = random_merge_options(rng, patch, edges=("pad",))
        kw.update(pad_mode=PAD_MODES[i % len(PAD_MODES)], channel_axis=ca, args=(0.5,))
        image = random_image(rng, shape, ("float64",))  # one dtype: compile once
        x = da.from_array(image, chunks=chunks)
        want = patchjit.process_image(image, scale_add_mean, patch, step, **kw)
        got = patchjit.process_image(x, scale_add_mean, patch, step, **kw)
        check_equal(got.compute(), want, kw["reduce"])
        mkw = dict(edge="pad", pad_mode=kw["pad_mode"], channel_axis=ca)
        want = patchjit.map_patches(image, patch_max, patch, step, **mkw)
        got = patchjit.map_patches(x, patch_max, patch, step, **mkw)
        np.testing.assert_array_equal(got.compute(), want)


def test_distinct_calls_get_distinct_keys(rng):
    image = rng.random((30, 30))
    x = da.from_array(image, chunks=12)
    kw = dict(edge="pad", args=(1.0,))
    a = patchjit.process_image(x, scale_add_mean, 5, 2, pad_mode="reflect", **kw)
    b = patchjit.process_image(x, scale_add_mean, 5, 2, pad_mode="edge", **kw)
    c = patchjit.process_image(x, scale_add_mean, 5, 2, pad_mode="reflect", **kw)
    assert a.name != b.name and a.name == c.name
    both = da.stack([a, b]).compute()
    np.testing.assert_allclose(
        both[1], patchjit.process_image(image, scale_add_mean, 5, 2, pad_mode="edge", **kw)
    )
