"""Results are bitwise identical whatever the number of threads."""

import numba
import numpy as np
import pytest
from callbacks import patch_mean, scale_add_mean
from strategies import random_image

import patchjit


def _same(a, b):
    assert a.dtype == b.dtype and a.shape == b.shape
    assert np.array_equal(a, b, equal_nan=True)
    assert a.tobytes() == b.tobytes()


@pytest.fixture
def restore_threads():
    n = numba.get_num_threads()
    yield
    numba.set_num_threads(n)


CASES = [
    # (shape, patch, step, edge)
    ((37, 29), (7, 5), (2, 3), "cover"),
    ((40, 40), (9, 9), (1, 1), "cover"),
    ((33, 31), (4, 6), (5, 2), "valid"),
    ((8, 200), (3, 17), (1, 4), "cover"),
]


@pytest.mark.parametrize("shape, patch, step, edge", CASES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_process_image_threads(shape, patch, step, edge, dtype, rng):
    img = random_image(rng, shape, dtype)
    img[3, 2] = np.nan
    results = [
        patchjit.process_image(img, scale_add_mean, patch, step, args=(0.3,), edge=edge, threads=t)
        for t in (1, 2, 1, 2)
    ]
    for r in results[1:]:
        _same(results[0], r)
    _same(
        results[0], patchjit.process_image(img, scale_add_mean, patch, step, args=(0.3,), edge=edge)
    )


@pytest.mark.parametrize("shape, patch, step, edge", CASES)
def test_map_patches_threads(shape, patch, step, edge, rng):
    img = random_image(rng, shape)
    a = patchjit.map_patches(img, patch_mean, patch, step, edge=edge, threads=1)
    b = patchjit.map_patches(img, patch_mean, patch, step, edge=edge, threads=2)
    _same(a, b)


def test_unpatchify_threads(rng):
    patches = rng.standard_normal((17, 13, 6, 7))
    shape = (16 + 6, 12 * 2 + 7)  # grid (17, 13) with step (1, 2), patch (6, 7)
    a = patchjit.unpatchify(patches, shape, (1, 2), threads=1)
    b = patchjit.unpatchify(patches, shape, (1, 2), threads=2)
    _same(a, b)


def test_numba_set_num_threads(restore_threads, rng):
    img = random_image(rng, (45, 38), np.float32)
    out = []
    for n in (1, min(2, numba.config.NUMBA_NUM_THREADS)):
        numba.set_num_threads(n)
        out.append(patchjit.process_image(img, scale_add_mean, (6, 5), (2, 1), args=(1.5,)))
        out.append(patchjit.map_patches(img, patch_mean, (6, 5), (2, 1)))
    _same(out[0], out[2])
    _same(out[1], out[3])


def test_repeated_calls_identical(rng):
    img = random_image(rng, (30, 30), np.uint8)
    first = patchjit.process_image(img, scale_add_mean, 5, 2, args=(0.5,), threads=2)
    for _ in range(3):
        _same(first, patchjit.process_image(img, scale_add_mean, 5, 2, args=(0.5,), threads=2))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_large_image_threads(dtype, rng):
    # many blocks and waves: the merge order must not depend on the threads
    img = random_image(rng, (420, 390), dtype)
    img[100, 200] = np.nan
    a = patchjit.process_image(img, scale_add_mean, (9, 11), (2, 3), args=(0.3,), threads=1)
    b = patchjit.process_image(img, scale_add_mean, (9, 11), (2, 3), args=(0.3,), threads=2)
    _same(a, b)
    a = patchjit.map_patches(img, patch_mean, (9, 11), (1, 2), threads=1)
    b = patchjit.map_patches(img, patch_mean, (9, 11), (1, 2), threads=2)
    _same(a, b)


def test_concurrent_python_threads(rng):
    # calls from several Python threads at once (each reuses its own scratch buffers)
    # give the same results as the same calls made one after another
    from concurrent.futures import ThreadPoolExecutor

    patchjit.process_image(np.ones((8, 8)), scale_add_mean, 3, args=(1.0,))
    if numba.threading_layer() == "workqueue":
        pytest.skip("the workqueue threading layer does not support concurrent calls")
    jobs = [
        (random_image(rng, (160, 150), np.float32), (9, 7), (2, 1)),
        (random_image(rng, (140, 170), np.float64), (5, 11), (1, 3)),
        (random_image(rng, (150, 160), np.uint8), (12, 12), (3, 2)),
    ] * 2

    def run(job):
        img, patch, step = job
        return patchjit.process_image(img, scale_add_mean, patch, step, args=(0.7,), threads=1)

    expected = [run(job) for job in jobs]
    with ThreadPoolExecutor(3) as pool:
        for _ in range(3):
            for got, want in zip(pool.map(run, jobs), expected):
                _same(got, want)
