"""``patchjit run --margin/--scale/--pad-mode`` on real files, against scipy and numpy.

The callbacks live in a file written into ``tmp_path`` and are named as
``path/to/file.py:function``, as a user would. References are plain numpy/scipy
(``uniform_filter``, ``np.kron``), computed in float64 from the file's pixels.
"""

from __future__ import annotations

import imageio.v3 as iio
import numpy as np
import pytest
import tifffile
from scipy import ndimage

from patchjit import cli

CALLBACKS = """
import numba
import numpy as np


@numba.njit
def box3(patch, out):  # valid 3x3 box mean: out is the patch less 1 pixel each side
    for i in range(out.shape[0]):
        for j in range(out.shape[1]):
            s = 0.0
            for a in range(3):
                for b in range(3):
                    s += patch[i + a, j + b]
            out[i, j] = s / 9.0


@numba.njit
def up2(patch, out):  # nearest upsampling by 2, channels (if any) last
    for i in range(out.shape[0]):
        for j in range(out.shape[1]):
            out[i, j] = patch[i // 2, j // 2]


@numba.njit
def down2(patch, out):  # keep every second pixel
    for i in range(out.shape[0]):
        for j in range(out.shape[1]):
            out[i, j] = patch[2 * i, 2 * j]


def box3_batch(batch):  # the same box mean over a batch (n, p, p) -> (n, p - 2, p - 2)
    p = batch.shape[1]
    return sum(batch[:, a : p - 2 + a, b : p - 2 + b] for a in range(3) for b in range(3)) / 9


def up2_batch(batch):
    return np.repeat(np.repeat(batch, 2, axis=1), 2, axis=2)
"""


@pytest.fixture
def cb(tmp_path):
    """``name -> "path/to/models.py:name"`` for the callbacks above."""
    path = tmp_path / "models.py"
    path.write_text(CALLBACKS)
    return lambda name: f"{path}:{name}"


@pytest.fixture
def images(tmp_path):
    """A 16-bit TIFF and a float32 TIFF (tifffile), a 16-bit PNG (imageio), 45 x 38."""
    rng = np.random.default_rng(7)
    src = tmp_path / "in"
    src.mkdir()
    grey16 = rng.integers(0, 65536, (45, 38), dtype=np.uint16)
    grey32 = rng.random((45, 38), dtype=np.float32) * 100 - 50
    png16 = rng.integers(0, 65536, (45, 38), dtype=np.uint16)
    tifffile.imwrite(src / "grey16.tif", grey16)
    tifffile.imwrite(src / "float.tif", grey32)
    iio.imwrite(src / "grey16.png", png16)
    return src, {"grey16.tif": grey16, "float.tif": grey32, "grey16.png": png16}


def _run(*argv):
    return cli.main([str(a) for a in argv])


def _read(path):
    return tifffile.imread(path) if path.suffix == ".tif" else iio.imread(path)


def _expected(image: np.ndarray, reference: np.ndarray, dtype) -> np.ndarray:
    """The CLI's output dtype rule: the input's dtype, integers rounded and clipped."""
    dtype = np.dtype(dtype)
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return np.clip(np.rint(reference), info.min, info.max).astype(dtype)
    return reference.astype(dtype)


@pytest.mark.parametrize("batch", [False, True])
@pytest.mark.parametrize("step", ["6", "4,3"])
def test_margin_box_mean_equals_uniform_filter(images, cb, tmp_path, batch, step):
    src, originals = images
    out = tmp_path / "out"
    func = ["--func", cb("box3_batch"), "--batch", "16"] if batch else ["--func", cb("box3")]
    code = _run("run", src, "-o", out, *func, "--patch", "8", "--margin", "1",
                "--step", step, "--pad-mode", "symmetric", "-q")  # fmt: skip
    assert code == cli.EXIT_OK
    for name, image in originals.items():
        result = _read(out / name)
        assert result.shape == image.shape and result.dtype == image.dtype
        reference = ndimage.uniform_filter(image.astype(np.float64), 3, mode="reflect")
        if image.dtype.kind == "f":
            np.testing.assert_allclose(result, reference, rtol=1e-5, atol=1e-4)
        else:  # k/9 is never within float32 rounding of a .5: exact after rounding
            np.testing.assert_array_equal(result, _expected(image, reference, image.dtype))


def test_margin_float32_output_of_16_bit_input(images, cb, tmp_path):
    src, originals = images
    out = tmp_path / "out"
    code = _run("run", src / "grey16.tif", "-o", out, "--func", cb("box3"), "--patch", "5,7",
                "--margin", "1", "--pad-mode", "symmetric", "--dtype", "float32", "-q")  # fmt: skip
    assert code == cli.EXIT_OK
    result = tifffile.imread(out / "grey16.tif")
    assert result.dtype == np.float32
    image = originals["grey16.tif"].astype(np.float64)
    reference = ndimage.uniform_filter(image, 3, mode="reflect")
    np.testing.assert_allclose(result, reference, rtol=1e-6, atol=1e-2)


def test_margin_default_pad_mode_is_numpy_reflect(images, cb, tmp_path):
    src, originals = images
    out = tmp_path / "out"
    code = _run("run", src / "float.tif", "-o", out, "--func", cb("box3"), "--patch", "6",
                "--margin", "1", "--step", "4", "-q")  # fmt: skip
    assert code == cli.EXIT_OK
    image = originals["float.tif"].astype(np.float64)
    # numpy's "reflect" is scipy's "mirror"
    reference = ndimage.uniform_filter(image, 3, mode="mirror")
    np.testing.assert_allclose(tifffile.imread(out / "float.tif"), reference, atol=1e-4)


@pytest.mark.parametrize("batch", [False, True])
def test_scale_2_nearest_equals_kron(images, cb, tmp_path, batch):
    src, originals = images
    out = tmp_path / "out"
    func = ["--func", cb("up2_batch"), "--batch", "8"] if batch else ["--func", cb("up2")]
    code = _run("run", src, "-o", out, *func, "--patch", "8", "--step", "5", "--scale", "2",
                "-q")  # fmt: skip
    assert code == cli.EXIT_OK
    for name, image in originals.items():
        result = _read(out / name)
        assert result.shape == (2 * image.shape[0], 2 * image.shape[1])
        assert result.dtype == image.dtype
        reference = np.kron(image.astype(np.float64), np.ones((2, 2)))
        if image.dtype.kind == "f":  # overlapping patches are averaged in float32
            np.testing.assert_allclose(result, reference, rtol=1e-6)
        else:
            np.testing.assert_array_equal(result, _expected(image, reference, image.dtype))


def test_scale_per_axis_and_half(images, cb, tmp_path):
    _, originals = images
    image = originals["float.tif"][:44, :38]  # 0.5 needs even sizes
    tifffile.imwrite(tmp_path / "even.tif", image)
    out = tmp_path / "out"
    code = _run("run", tmp_path / "even.tif", "-o", out, "--func", cb("down2"),
                "--patch", "4", "--step", "2", "--scale", "0.5,0.5", "-q")  # fmt: skip
    assert code == cli.EXIT_OK
    np.testing.assert_array_equal(tifffile.imread(out / "even.tif"), image[::2, ::2])


def test_scale_odd_image_fails_that_file_with_the_reason(images, cb, tmp_path, capsys):
    src, _ = images  # 45 rows: not a multiple of 2
    code = _run("run", src / "float.tif", "-o", tmp_path / "out", "--func", cb("down2"),
                "--patch", "4", "--step", "2", "--scale", "0.5", "-q")  # fmt: skip
    assert code == cli.EXIT_FAILED
    assert "multiples of 2" in capsys.readouterr().err


def test_scale_colour_with_alpha_keeps_alpha_nearest(cb, tmp_path):
    rng = np.random.default_rng(3)
    rgba = rng.integers(0, 256, (20, 17, 4), dtype=np.uint8)
    iio.imwrite(tmp_path / "rgba.png", rgba)
    out = tmp_path / "out"
    code = _run("run", tmp_path / "rgba.png", "-o", out, "--func", cb("up2"), "--patch", "6",
                "--step", "3", "--scale", "2", "-q")  # fmt: skip
    assert code == cli.EXIT_OK
    result = iio.imread(out / "rgba.png")
    np.testing.assert_array_equal(result, np.kron(rgba, np.ones((2, 2, 1), np.uint8)))


def test_margin_and_scale_are_refused_out_of_core(cb, tmp_path, capsys):
    pytest.importorskip("dask")
    image = np.random.default_rng(0).random((512, 512), dtype=np.float32)
    tifffile.imwrite(tmp_path / "big.tif", image)  # needs about 3 MB, over 1 MiB
    for option in (["--margin", "1"], ["--scale", "2"]):
        code = _run("run", tmp_path / "big.tif", "-o", tmp_path / "out", "--func",
                    cb("box3" if option[0] == "--margin" else "up2"), "--patch", "8",
                    *option, "--max-memory", "1MiB", "-q")  # fmt: skip
        assert code == cli.EXIT_FAILED
        assert "--margin and --scale are not run out of core" in capsys.readouterr().err
    assert not (tmp_path / "out" / "big.tif").exists()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--margin", "-1"], "--margin must be integers >= 0, got '-1'"),
        (["--margin", "1.5"], "--margin must be one number or one per axis"),
        (["--margin", "4"], "--margin 4 leaves no output of --patch 8,8"),
        (["--margin", "1,1,1"], "--margin: give 1 or 2 values"),
        (["--scale", "0"], "--scale must be positive integers (2, 4) or 1/integers"),
        (["--scale", "-2"], "got '-2'"),
        (["--scale", "1.5"], "got '1.5'"),
        (["--scale", "two"], "--scale must be one number or one per axis"),
        (["--scale", "0.25", "--step", "2"], "must be multiples of 4"),
        (["--pad-mode", "symmetric"], "--pad-mode symmetric has no effect"),
        (["--margin", "1", "--step", "7"], "larger than the output tile"),
    ],
)
def test_usage_errors_exit_2_naming_the_value(cb, tmp_path, capsys, options, message):
    (tmp_path / "in.tif").write_bytes(b"")  # never read: usage errors come first
    code = _run("run", tmp_path / "in.tif", "-o", tmp_path / "out", "--func", cb("box3"),
                "--patch", "8", *options, "-q")  # fmt: skip
    assert code == cli.EXIT_USAGE
    err = capsys.readouterr().err
    assert message in err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("option", [["--margin", "1"], ["--scale", "2"], ["--pad-mode", "edge"]])
def test_model_options_are_refused_with_an_op(tmp_path, capsys, option):
    (tmp_path / "in.tif").write_bytes(b"")
    code = _run("run", tmp_path / "in.tif", "-o", tmp_path / "out", "--op", "identity",
                *option, "-q")  # fmt: skip
    assert code == cli.EXIT_USAGE
    assert f"{option[0]} applies to --func and --batch only" in capsys.readouterr().err


def test_help_describes_margin_and_scale(capsys):
    assert _run("run", "--help") == 0
    text = capsys.readouterr().out
    for word in ("--margin", "--scale", "--pad-mode", "uniform_filter"):
        assert word in text
