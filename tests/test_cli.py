"""End-to-end tests of the ``patchjit`` command line on folders of real image files."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from patchjit import cli
from patchjit.demo import psnr, sample_image
from patchjit.io import TMP_PREFIX, read_image, write_image

SIGMA = 20.0


def _noisy(clean, rng, scale=1.0):
    return clean + rng.normal(0.0, SIGMA * scale, clean.shape)


@pytest.fixture(scope="module")
def clean():
    return sample_image()[:96, :128]


@pytest.fixture
def tree(tmp_path, clean):
    """An input tree: grey and RGB PNG, 16-bit and float32 TIFF, nested, one corrupt file."""
    rng = np.random.default_rng(1)
    src = tmp_path / "in"
    rgb_clean = np.stack([clean, clean[::-1], clean[:, ::-1]], axis=-1)
    files = {
        "grey.png": np.clip(np.rint(_noisy(clean, rng)), 0, 255).astype(np.uint8),
        "sub/rgb.png": np.clip(np.rint(_noisy(rgb_clean, rng)), 0, 255).astype(np.uint8),
        "sub/deeper/grey16.tif": np.clip(
            np.rint(_noisy(clean.astype(float) * 256, rng, 256)), 0, 65535
        ).astype(np.uint16),
        "float.tif": _noisy(clean.astype(float) / 255, rng, 1 / 255).astype(np.float32),
    }
    for name, image in files.items():
        write_image(src / name, image)
    (src / "sub" / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\nthis is not an image")
    clean_of = {
        "grey.png": (clean, 255),
        "sub/rgb.png": (rgb_clean, 255),
        "sub/deeper/grey16.tif": (clean.astype(float) * 256, 65535),
        "float.tif": (clean.astype(float) / 255, 1.0),
    }
    return src, files, clean_of


def _run(*argv):
    return cli.main([str(a) for a in argv])


def _denoise(src, out, *extra):
    return _run("run", src, "-o", out, "--op", "dct-denoise", "--param", f"sigma={SIGMA}",
                "-q", *extra)  # fmt: skip


def _outputs(out):
    return sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())


def test_folder_denoise_end_to_end(tree, tmp_path, capsys):
    src, files, clean_of = tree
    out = tmp_path / "out"
    assert _denoise(src, out) == cli.EXIT_FAILED  # the corrupt file fails, the rest go on
    err = capsys.readouterr()
    assert "corrupt.png" in err.err
    assert "done 4, skipped 0, failed 1" in err.out
    assert _outputs(out) == sorted(files)  # tree mirrored, nothing else written
    # sigma is in each image's own units: rerun the 16-bit and float files with theirs
    for name, scale in (("sub/deeper/grey16.tif", 256), ("float.tif", 1 / 255)):
        code = _run("run", src / name, "-o", out / Path(name).parent, "--op", "dct-denoise",
                    "--param", f"sigma={SIGMA * scale}", "-q", "--overwrite")  # fmt: skip
        assert code == 0
    for name, noisy in files.items():
        result = read_image(out / name)
        assert result.shape == noisy.shape and result.dtype == noisy.dtype, name
        reference, peak = clean_of[name]
        before, after = psnr(reference, noisy, peak), psnr(reference, result, peak)
        assert after > before + 3, (name, before, after)
    for name in files:  # the inputs are untouched
        np.testing.assert_array_equal(read_image(src / name), files[name])


def test_resume_overwrite_and_dry_run(tree, tmp_path, capsys):
    src, files, _ = tree
    out = tmp_path / "out"
    assert _run("run", src, "-o", out, "--op", "identity", "--dry-run") == 0
    assert not out.exists()
    assert "5 to process" in capsys.readouterr().out
    _run("run", src, "-o", out, "--op", "identity", "-q")
    stamp = {n: (out / n).stat().st_mtime_ns for n in files}
    capsys.readouterr()
    assert _run("run", src, "-o", out, "--op", "identity", "-q") == cli.EXIT_FAILED
    assert "done 0, skipped 4, failed 1" in capsys.readouterr().out
    assert all((out / n).stat().st_mtime_ns == stamp[n] for n in files)
    time.sleep(0.01)
    _run("run", src, "-o", out, "--op", "identity", "-q", "--overwrite")
    assert "done 4, skipped 0, failed 1" in capsys.readouterr().out
    assert all((out / n).stat().st_mtime_ns > stamp[n] for n in files)
    for name, image in files.items():  # identity keeps every pixel (float: to rounding)
        np.testing.assert_allclose(read_image(out / name), image, rtol=1e-5, atol=0)


def test_single_file_and_glob(tree, tmp_path):
    src, _, _ = tree
    out = tmp_path / "out"
    assert _run("run", src / "grey.png", str(src / "sub" / "*.png"), "-o", out,
                "--op", "mean-remove", "--patch", "5", "-q") == cli.EXIT_FAILED  # fmt: skip
    assert _outputs(out) == ["grey.png", "rgb.png"]


def test_jobs_match_serial(tree, tmp_path):
    src, files, _ = tree
    for name in ("corrupt.png",):
        (src / "sub" / name).unlink()
    serial, parallel = tmp_path / "serial", tmp_path / "parallel"
    assert _denoise(src, serial) == 0
    assert _denoise(src, parallel, "--jobs", "2") == 0
    for name in files:
        np.testing.assert_array_equal(read_image(serial / name), read_image(parallel / name))


@pytest.mark.parametrize("where", ["same", "inside"])
def test_refuses_output_in_input_tree(tree, where, capsys):
    src, _, _ = tree
    out = src if where == "same" else src / "sub" / "results"
    assert _denoise(src, out) == cli.EXIT_USAGE
    assert "inside input folder" in capsys.readouterr().err
    assert not (src / "sub" / "results").exists()


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--op", "nope"], "valid"),
        (["--op", "dct-denoise"], "sigma"),
        (["--op", "dct-denoise", "--param", "sigma=abc"], "sigma"),
        (["--op", "dct-denoise", "--param", "bogus=1"], "bogus"),
        (["--func", "no_such_module_xyz:f", "--patch", "4"], "no_such_module_xyz"),
        (["--func", "numpy:no_such_function", "--patch", "4"], "no_such_function"),
        (["--op", "identity", "--patch", "0"], "--patch"),
        (["--op", "identity", "--threads", "0"], "threads"),
        ([], "exactly one of"),
    ],
)
def test_usage_errors_exit_2(tree, tmp_path, capsys, argv, message):
    src, _, _ = tree
    assert _run("run", src, "-o", tmp_path / "out", *argv) == cli.EXIT_USAGE
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_step_larger_than_patch_is_allowed_with_edge_valid(small_u8, tmp_path):
    src, image = small_u8
    out = tmp_path / "out"
    argv = ["--op", "identity", "--patch", "4", "--step", "5", "--edge", "valid"]
    assert _run("run", src, "-o", out, *argv, "--dtype", "float32", "-q") == cli.EXIT_OK
    got = read_image(out / src.name)
    covered = np.zeros(image.shape, bool)
    for y in range(0, image.shape[0] - 3, 5):
        for x in range(0, image.shape[1] - 3, 5):
            covered[y : y + 4, x : x + 4] = True
    np.testing.assert_array_equal(got[covered], image[covered])
    assert np.isnan(got[~covered]).all()


def test_patch_larger_than_image_names_it(tmp_path, capsys):
    write_image(tmp_path / "in" / "tiny.png", np.zeros((6, 6), np.uint8))
    code = _run("run", tmp_path / "in", "-o", tmp_path / "out", "--op", "identity",
                "--patch", "9", "-q")  # fmt: skip
    assert code == cli.EXIT_FAILED  # a file's problem, not a usage error
    err = capsys.readouterr().err
    assert "tiny.png" in err and "larger" in err


def test_ops_listing_and_version(capsys):
    assert _run("ops") == 0
    listing = capsys.readouterr().out
    for name in ("dct-denoise", "identity", "mean-remove", "local-std", "median"):
        assert name in listing
    assert _run("--version") == 0
    assert "patchjit" in capsys.readouterr().out
    for command in ([], ["run"], ["ops"], ["demo"]):
        assert _run(*command, "--help") == 0


def test_func_from_file(tree, tmp_path):
    src, files, _ = tree
    code = tmp_path / "mycb.py"
    code.write_text(
        textwrap.dedent("""
        import numba

        @numba.njit
        def negate(patch, out):
            out[...] = -patch.astype(out.dtype)
    """)
    )
    out = tmp_path / "out"
    assert _run("run", src / "float.tif", "-o", out, "--func", f"{code}:negate",
                "--patch", "3,4", "-q") == 0  # fmt: skip
    np.testing.assert_allclose(read_image(out / "float.tif"), -files["float.tif"], rtol=1e-6)


def test_demo(tmp_path, capsys):
    assert _run("demo", "-o", tmp_path) == 0
    text = capsys.readouterr().out
    assert "PSNR" in text and str(tmp_path) in text
    clean, noisy = read_image(tmp_path / "clean.png"), read_image(tmp_path / "noisy.png")
    assert psnr(clean, read_image(tmp_path / "denoised.png")) > psnr(clean, noisy) + 5
    assert read_image(tmp_path / "side_by_side.png").shape[1] > 3 * clean.shape[1]


SLOW_CALLBACK = """
import numba

@numba.njit
def slow(patch, out):
    acc = 0.0
    for _ in range(40000):
        acc += patch[0, 0] * 1e-9
    out[...] = patch + acc * 0.0
"""


@pytest.mark.slow
def test_interrupt_leaves_no_partial_files(tmp_path, clean):
    src = tmp_path / "in"
    n_images = 40  # the batch must still be running when the interrupt arrives
    for i in range(n_images):
        write_image(src / f"img{i:02d}.tif", clean.astype(np.float32) + i)
    (tmp_path / "slowcb.py").write_text(SLOW_CALLBACK)
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [sys.executable, "-m", "patchjit.cli", "run", str(src), "-o", str(out),
         "--func", f"{tmp_path / 'slowcb.py'}:slow", "--patch", "8", "-q"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
        # a shell's background job inherits SIGINT ignored: give the child the default
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (out.exists() and any(out.glob("img*.tif"))):
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == cli.EXIT_INTERRUPTED, err.decode()
    written = sorted(out.glob("*"))
    assert not [p for p in written if p.name.startswith(TMP_PREFIX)]
    assert 0 < len(written) < n_images
    for p in written:  # every output present is complete
        i = int(p.stem[3:])
        np.testing.assert_allclose(read_image(p), clean.astype(np.float32) + i, rtol=1e-6)


# --- issue 9: results, failures, callbacks and options --------------------------------


def _mean_remove_ref(x, p, s):
    """Plain loop: every patch minus its mean, averaged where patches overlap (cover grid)."""
    h, w = x.shape
    acc, cnt = np.zeros((h, w)), np.zeros((h, w))

    def starts(n):
        return sorted(set(range(0, n - p + 1, s)) | {n - p})

    for y in starts(h):
        for x0 in starts(w):
            patch = x[y : y + p, x0 : x0 + p].astype(float)
            acc[y : y + p, x0 : x0 + p] += patch - patch.mean()
            cnt[y : y + p, x0 : x0 + p] += 1
    return acc / cnt


@pytest.fixture
def small_u8(tmp_path):
    rng = np.random.default_rng(3)
    image = rng.integers(0, 256, (14, 17)).astype(np.uint8)
    write_image(tmp_path / "in" / "a.tif", image)
    return tmp_path / "in" / "a.tif", image


def test_dtype_float32_keeps_signed_results(small_u8, tmp_path):
    src, image = small_u8
    code = _run("run", src, "-o", tmp_path / "out", "--op", "mean-remove", "--patch", "4",
                "--dtype", "float32", "-q")  # fmt: skip
    assert code == 0
    got = read_image(tmp_path / "out" / "a.tif")
    assert got.dtype == np.float32 and got.min() < -20
    np.testing.assert_allclose(got, _mean_remove_ref(image, 4, 1), rtol=1e-5, atol=1e-4)


def test_clipping_warns_with_file_and_fraction(small_u8, tmp_path, capsys):
    src, image = small_u8
    code = _run("run", src, "-o", tmp_path / "out", "--op", "mean-remove", "--patch", "4", "-q")
    assert code == 0
    err = capsys.readouterr().err
    ref = np.rint(_mean_remove_ref(image, 4, 1))
    fraction = np.mean((ref < 0) | (ref > 255))
    assert fraction > 0.2
    assert f"warning: {src}: {fraction:.1%}" in err
    got = read_image(tmp_path / "out" / "a.tif")
    np.testing.assert_array_equal(got, np.clip(ref, 0, 255))


def test_overlap_gives_monai_step_and_excludes_step(small_u8, tmp_path, capsys):
    src, image = small_u8
    out = tmp_path / "out"
    assert _run("run", src, "-o", out, "--op", "mean-remove", "--patch", "4", "--overlap",
                "0.5", "--dtype", "float64", "-q") == 0  # fmt: skip
    expected = _mean_remove_ref(image, 4, 2)  # step = int(4 * (1 - 0.5))
    np.testing.assert_allclose(read_image(out / "a.tif"), expected, rtol=1e-5, atol=1e-4)
    assert _run("run", src, "-o", out, "--op", "identity", "--step", "2",
                "--overlap", "0.5") == cli.EXIT_USAGE  # fmt: skip
    assert "not both" in capsys.readouterr().err


def test_uncovered_pixels_error_for_integers_nan_for_floats(small_u8, tmp_path, capsys):
    src, _ = small_u8
    base = ("run", src, "--op", "identity", "--patch", "4", "--step", "5", "--edge", "valid")
    assert _run(*base, "-o", tmp_path / "int", "-q") == cli.EXIT_FAILED
    assert "NaN" in capsys.readouterr().err
    assert not (tmp_path / "int" / "a.tif").exists()
    assert _run(*base, "-o", tmp_path / "float", "--dtype", "float32", "-q") == 0
    got = read_image(tmp_path / "float" / "a.tif")
    covered = np.zeros(got.shape, bool)  # patches start at 0, 5, 10 (if they fit)
    for y in range(0, got.shape[0] - 3, 5):
        for x in range(0, got.shape[1] - 3, 5):
            covered[y : y + 4, x : x + 4] = True
    np.testing.assert_array_equal(np.isnan(got), ~covered)


PLANE_CB = """
import numba

@numba.njit
def plane(patch, out):
    for i in range(patch.shape[0]):
        for j in range(patch.shape[1]):
            out[i, j] = float(patch[i, j])  # a scalar: grey patches only
"""


def test_func_compiles_per_image_kind_and_batch_goes_on(tree, tmp_path, capsys):
    src, files, _ = tree
    (src / "sub" / "corrupt.png").unlink()
    (tmp_path / "planecb.py").write_text(PLANE_CB)
    out = tmp_path / "out"
    code = _run("run", src, "-o", out, "--func", f"{tmp_path / 'planecb.py'}:plane",
                "--patch", "4", "-q")  # fmt: skip
    assert code == cli.EXIT_FAILED
    captured = capsys.readouterr()
    failed = [ln for ln in captured.err.splitlines() if ln.startswith("failed:")]
    assert len(failed) == 1 and "rgb.png" in failed[0] and "compile" in failed[0]
    assert "Traceback" not in captured.err and len(captured.err.splitlines()) == 1
    assert "done 3, skipped 0, failed 1" in captured.out
    for name in ("grey.png", "sub/deeper/grey16.tif", "float.tif"):
        np.testing.assert_allclose(read_image(out / name), files[name], rtol=1e-6, atol=0)


def test_func_module_from_current_folder_with_args(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.delitem(sys.modules, "my_affine_cb", raising=False)
    (tmp_path / "my_affine_cb.py").write_text(
        "import numba\n\n@numba.njit\ndef affine(patch, out, a, b):\n    out[...] = patch * a + b\n"
    )
    image = np.random.default_rng(0).random((9, 10)).astype(np.float32)
    write_image(tmp_path / "in" / "x.tif", image)
    code = _run("run", "in", "-o", "out", "--func", "my_affine_cb:affine", "--arg", "2",
                "--arg", "0.5", "--patch", "3", "-q")  # fmt: skip
    assert code == 0
    np.testing.assert_allclose(read_image(tmp_path / "out" / "x.tif"), 2 * image + 0.5,
                               rtol=1e-6)  # fmt: skip


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--op", "dct-denoise", "--param", "sigma=-1"], "sigma"),
        (["--op", "median", "--step", "2"], "map op"),
        (["--op", "identity", "--arg", "1"], "--arg"),
        (["--func", "numpy:add", "--patch", "3", "--arg", "x"], "--arg"),
        (["--op", "identity", "--overlap", "1.5"], "overlap"),
        (["--op", "identity", "--quality", "0"], "quality"),
        (["--op", "identity", "--patch", "8", "--step", "9"], "--step 9,9 is larger than"),
        (["--op", "identity", "--step", "9"], "--patch 8,8"),  # the op's default patch
        (["--op", "identity", "--patch", "8,4", "--step", "2,5"], "--step 2,5 is larger"),
        (["--func", "numpy:add", "--patch", "3,3,3", "--step", "1,1,4"], "larger than"),
        (["--op", "identity", "--patch", "4,4,4", "--step", "1,2"], "1 or 3 values"),
    ],
)
def test_option_errors_are_usage_errors_not_file_errors(tree, tmp_path, capsys, argv, message):
    src, _, _ = tree
    assert _run("run", src, "-o", tmp_path / "out", *argv) == cli.EXIT_USAGE
    err = capsys.readouterr().err
    assert message in err and str(src) not in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_run_help_shows_examples_exit_codes_and_every_choice(capsys):
    assert _run("run", "--help") == 0
    text = capsys.readouterr().out
    assert "examples:" in text and "exit status:" in text
    for word in ("130", "cover", "valid", "pad", "boxcar", "triangle", "hann", "hamming",
                 "gaussian", "--overlap", "--dtype", "--arg", "--quality"):  # fmt: skip
        assert f"\n  {word}" in text or (word.startswith("-") and word in text), word


def test_demo_writes_where_it_runs_and_is_ignored(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert _run("demo") == 0
    assert (tmp_path / "patchjit-demo" / "denoised.png").exists()
    gitignore = Path(__file__).resolve().parents[1] / ".gitignore"
    assert "patchjit-demo/" in gitignore.read_text().split()


@pytest.mark.slow
def test_denoise_folder_example_writes_what_it_says(tmp_path):
    shim = tmp_path / "bin" / "patchjit"  # this checkout's CLI, whatever is installed
    shim.parent.mkdir()
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m patchjit.cli "$@"\n')
    shim.chmod(0o755)
    script = Path(__file__).resolve().parents[1] / "examples" / "denoise_folder.sh"
    env = {**os.environ, "PATH": f"{shim.parent}{os.pathsep}{os.environ['PATH']}"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(script.parents[1]),
                                                      env.get("PYTHONPATH")]))  # fmt: skip
    proc = subprocess.run(["bash", str(script), str(tmp_path / "work")], env=env,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    out = tmp_path / "work" / "denoised"
    assert _outputs(out) == ["colour/rgb.png", "grey.png", "scans/grey16.tif"]
    clean = sample_image().astype(float)
    noisy16 = read_image(tmp_path / "work" / "noisy" / "scans" / "grey16.tif")
    denoised16 = read_image(out / "scans" / "grey16.tif")
    assert denoised16.dtype == np.uint16
    peak = 65535
    assert psnr(clean * 257, denoised16, peak) > psnr(clean * 257, noisy16, peak) + 5


def test_warm_up_compiles_on_a_crop_of_the_first_readable_file(tmp_path):
    """The serial path compiles before the clock starts: on a 64-pixel crop, once."""
    (tmp_path / "bad.png").write_bytes(b"not an image")
    write_image(tmp_path / "a.png", np.zeros((100, 90), np.uint8))
    job = cli._job_from_args(cli.build_parser().parse_args(
        ["run", str(tmp_path), "-o", str(tmp_path / "o"), "--op", "identity"]))  # fmt: skip
    runner = job.runner()
    seen = []
    runner.apply = lambda picture, threads=None: seen.append(picture.pixels.shape)
    todo = [(tmp_path / "bad.png", None), (tmp_path / "a.png", None)]
    cli._warm_up(runner, todo, None)
    assert seen == [(64, 64)]
