"""patchjit.torch.sliding_window_inference against MONAI's own sliding_window_inference.

Random inputs and content-dependent predictors (a window's result depends on the whole
window, so a wrong window position, padding or batch shows), 1-D to 3-D, every
overlap, both modes, every padding mode, windows larger than the image, several images
per batch, tuple and dict outputs. Tolerances per dtype in ``TOL``.
"""

import subprocess
import sys

import pytest

torch = pytest.importorskip("torch")
monai_inferers = pytest.importorskip("monai.inferers")
pjt = pytest.importorskip("patchjit.torch")

pytestmark = pytest.mark.torch

MONAI = monai_inferers.sliding_window_inference
OURS = pjt.sliding_window_inference

# float rounding: MONAI and patchjit add the same weighted windows in other orders
TOL = {torch.float32: 2e-6, torch.float64: 1e-13, torch.float16: 2e-3}


def close(ours, theirs, dtype):
    assert ours.dtype == theirs.dtype == dtype
    assert ours.shape == theirs.shape
    diff = (ours.double() - theirs.double()).abs().max().item()
    assert diff <= TOL[dtype] * max(1.0, theirs.double().abs().max().item()), diff


def mean_scaled(w):
    """Nonlinear in the window: each window times its own mean, plus a channel max."""
    axes = tuple(range(2, w.ndim))
    return w * w.mean(dim=axes, keepdim=True) + w.amax(dim=1, keepdim=True)


def conv_net(ndim, c_in, c_out, seed=0):
    """A small random conv net (zero padding: border pixels see the window's edge)."""
    torch.manual_seed(seed)
    conv = {1: torch.nn.Conv1d, 2: torch.nn.Conv2d, 3: torch.nn.Conv3d}[ndim]
    net = torch.nn.Sequential(
        conv(c_in, 4, 3, padding=1), torch.nn.Tanh(), conv(4, c_out, 3, padding=1)
    )
    net.eval()

    def run(w):
        with torch.no_grad():
            return net(w.float()).to(w.dtype)

    return run


def random(shape, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(shape, generator=g, dtype=torch.float64).to(dtype)


# (input shape, roi_size, overlap, sw_batch_size)
CASES = [
    ((2, 2, 37), (8,), 0.25, 3),
    ((1, 1, 50), 12, 0.8, 7),
    ((3, 2, 41, 33), (16, 12), 0.5, 4),
    ((1, 3, 30, 25), (10, -1), 0.0, 1),
    ((2, 1, 29, 31), (9, 9), 0.8, 16),
    ((1, 2, 13, 17, 11), (6, 8, 5), 0.25, 3),
    ((2, 1, 12, 10, 9), (5, 5, 5), (0.5, 0.2, 0.0), 5),
]


@pytest.mark.parametrize("mode", ["constant", "gaussian"])
@pytest.mark.parametrize(("shape", "roi", "overlap", "bs"), CASES)
def test_matches_monai_content_dependent(shape, roi, overlap, bs, mode):
    x = random(shape)
    for predictor in (mean_scaled, conv_net(len(shape) - 2, shape[1], 2)):
        theirs = MONAI(x, roi, bs, predictor, overlap, mode)
        ours = OURS(x, roi, bs, predictor, overlap, mode)
        close(ours, theirs, torch.float32)


@pytest.mark.parametrize("overlap", [0.0, 0.1, 0.25, 0.5, 0.75, 0.9])
@pytest.mark.parametrize("sigma_scale", [0.125, (0.3, 0.05)])
def test_every_overlap_and_sigma(overlap, sigma_scale):
    x = random((2, 1, 33, 27), seed=1)
    kw = {"mode": "gaussian", "sigma_scale": sigma_scale}
    close(
        OURS(x, (10, 8), 6, mean_scaled, overlap, **kw),
        MONAI(x, (10, 8), 6, mean_scaled, overlap, **kw),
        torch.float32,
    )


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("ndim", [1, 2, 3])
def test_dtypes(dtype, ndim):
    shape = (2, 2, *(15, 13, 9)[:ndim])
    x = random(shape, dtype, seed=2)
    roi = (6, 5, 4)[:ndim]
    for mode in ("constant", "gaussian"):
        close(
            OURS(x, roi, 4, mean_scaled, 0.4, mode), MONAI(x, roi, 4, mean_scaled, 0.4, mode), dtype
        )


def test_float16_keeps_dtype_and_agrees_to_half_rounding():
    x = random((1, 1, 20, 20), torch.float16, seed=3)
    seen = []

    def pred(w):
        seen.append(w.dtype)
        return w * 2

    ours = OURS(x, (8, 8), 3, pred, 0.5, "gaussian")
    close(ours, MONAI(x, (8, 8), 3, lambda w: w * 2, 0.5, "gaussian"), torch.float16)
    assert set(seen) == {torch.float16}


@pytest.mark.parametrize("padding_mode", ["constant", "reflect", "replicate", "circular"])
@pytest.mark.parametrize(
    ("shape", "roi"),
    [((2, 2, 7), (11,)), ((2, 1, 9, 20), (14, 8)), ((1, 2, 6, 9, 7), (9, 4, 10))],
)
def test_roi_larger_than_image(shape, roi, padding_mode):
    x = random(shape, seed=4)
    cval = 0.7 if padding_mode == "constant" else 0.0
    for mode in ("constant", "gaussian"):
        kw = {"mode": mode, "padding_mode": padding_mode, "cval": cval}
        close(
            OURS(x, roi, 3, mean_scaled, 0.5, **kw),
            MONAI(x, roi, 3, mean_scaled, 0.5, **kw),
            torch.float32,
        )


def test_stateful_predictor_sees_monai_batches():
    """Batches run across the images of a 2-D batch, cut where MONAI cuts them."""

    class Counter:
        calls = 0

        def __call__(self, w):
            self.calls += 1
            return w + self.calls

    x = random((3, 1, 11, 9), seed=5)
    for bs in (1, 4, 10, 64):
        close(
            OURS(x, (4, 4), bs, Counter(), 0.5), MONAI(x, (4, 4), bs, Counter(), 0.5), torch.float32
        )


def test_with_coord_gives_monai_slices():
    x = random((2, 1, 10, 9), seed=6)
    got = {"ours": [], "monai": []}

    def recorder(key):
        def pred(w, coords):
            got[key].append([[(s.start, s.stop) for s in c] for c in coords])
            return mean_scaled(w)

        return pred

    ours = OURS(x, (4, 15), 3, recorder("ours"), 0.5, with_coord=True)
    theirs = MONAI(x, (4, 15), 3, recorder("monai"), 0.5, with_coord=True)
    close(ours, theirs, torch.float32)
    norm = [[[(int(a) if a is not None else None, int(b) if b is not None else None)
              for a, b in c] for c in batch] for batch in got["monai"]]  # fmt: skip
    assert got["ours"] == norm


def test_args_kwargs_and_condition():
    x = random((2, 2, 12, 10), seed=7)
    cond = random((2, 3, 12, 10), seed=8)
    t1 = torch.tensor(0.5)

    def pred(w, a, b=None, condition=None):
        return mean_scaled(w) * a + b + condition.mean(dim=1, keepdim=True) ** 2

    args = (
        0.25,
        "gaussian",
        0.125,
        "constant",
        0.0,
        None,
        None,
        False,
        None,
        None,
        None,
        -1,
        False,
    )
    ours = OURS(x, (5, 6), 3, pred, *args, t1, b=1.0, condition=cond)
    theirs = MONAI(x, (5, 6), 3, pred, *args, t1, b=1.0, condition=cond)
    close(ours, theirs, torch.float32)


def test_roi_weight_map():
    x = random((2, 1, 19, 16), seed=9)
    w = random((7, 6), seed=10) + 0.05
    kw = {"roi_weight_map": w}
    close(
        OURS(x, (7, 6), 4, mean_scaled, 0.5, **kw),
        MONAI(x, (7, 6), 4, mean_scaled, 0.5, **kw),
        torch.float32,
    )


def test_process_fn():
    x = random((2, 2, 15, 14), seed=11)

    def process(outs, windows, weights):
        # content-dependent output change, and weights that differ from the map
        return [o * windows.std() for o in outs], weights * 2 + 0.5

    kw = {"mode": "gaussian", "process_fn": process}
    close(
        OURS(x, (6, 6), 3, mean_scaled, 0.5, **kw),
        MONAI(x, (6, 6), 3, mean_scaled, 0.5, **kw),
        torch.float32,
    )


def test_tuple_and_dict_outputs_at_window_size():
    x = random((2, 3, 14, 12), seed=12)

    def pair(w):
        return mean_scaled(w), w[:, :1] ** 2

    def mapping(w):
        return {"b": w.sum(dim=1, keepdim=True), "a": mean_scaled(w)}

    for mode in ("constant", "gaussian"):
        ours, theirs = OURS(x, (5, 5), 4, pair, 0.5, mode), MONAI(x, (5, 5), 4, pair, 0.5, mode)
        assert isinstance(ours, tuple) and len(ours) == 2
        for o, t in zip(ours, theirs):
            close(o, t, torch.float32)
        ours, theirs = (
            OURS(x, (5, 5), 4, mapping, 0.5, mode),
            MONAI(x, (5, 5), 4, mapping, 0.5, mode),
        )
        assert list(ours) == list(theirs) == ["a", "b"]
        for key in ours:
            close(ours[key], theirs[key], torch.float32)
    one = OURS(x, (5, 5), 4, lambda w: (w * 2,), 0.5)
    assert isinstance(one, torch.Tensor)


def test_zoomed_tuple_and_dict_outputs():
    x = random((1, 6, 20, 20), seed=13)

    def pred(w):
        return mean_scaled(w), w[:, ::3, ::2, ::2] * 3, (w[:, ::2, ::4, ::4] + 1) ** 2

    ours = OURS(x, (8, 8), 5, pred, 0.5)
    theirs = MONAI(x, (8, 8), 5, pred, 0.5)
    assert [o.shape for o in ours] == [t.shape for t in theirs]
    for o, t in zip(ours, theirs):
        close(o, t, torch.float32)
    ours = OURS(x, (8, 8), 5, lambda w: dict(zip("xyz", pred(w))), 0.5)
    theirs = MONAI(x, (8, 8), 5, lambda w: dict(zip("xyz", pred(w))), 0.5)
    for key in theirs:
        close(ours[key], theirs[key], torch.float32)


def test_zoomed_up_output_and_padding():
    x = random((2, 1, 6, 16), seed=14)

    def up(w):
        return torch.nn.functional.interpolate(mean_scaled(w), scale_factor=2, mode="nearest")

    close(OURS(x, (8, 8), 3, up, 0.5), MONAI(x, (8, 8), 3, up, 0.5), torch.float32)


def _zoomed_pair(w):
    """A content-dependent output at x2 and one at x0.5 (two zooms per call)."""
    up = torch.nn.functional.interpolate(mean_scaled(w), scale_factor=2, mode="nearest")
    pooled = {1: torch.nn.functional.avg_pool1d, 2: torch.nn.functional.avg_pool2d}
    pooled[3] = torch.nn.functional.avg_pool3d
    return up, pooled[w.ndim - 2](mean_scaled(w) ** 2, 2)


@pytest.mark.parametrize(
    "shape, roi",
    [((2, 2, 20, 24), (8, 8)), ((1, 1, 12, 10, 16), (4, 4, 8)), ((3, 1, 32), (8,))],
)
def test_zoomed_outputs_gaussian_match_monai(shape, roi):
    x = random(shape, seed=17)
    kw = {"overlap": 0.5, "mode": "gaussian", "sigma_scale": 0.2}
    ours = OURS(x, roi, 3, _zoomed_pair, **kw)
    theirs = MONAI(x, roi, 3, _zoomed_pair, **kw)
    assert [o.shape for o in ours] == [t.shape for t in theirs]
    for o, t in zip(ours, theirs):
        close(o, t, torch.float32)


def test_zoomed_outputs_with_process_fn_weights_match_monai():
    x = random((2, 1, 16, 20), seed=18)

    def process(outs, windows, weights):  # weights that change from batch to batch
        return list(outs), weights * (1.0 + windows.mean())

    kw = {"overlap": 0.5, "mode": "gaussian", "process_fn": process}
    ours = OURS(x, (8, 8), 2, _zoomed_pair, **kw)
    theirs = MONAI(x, (8, 8), 2, _zoomed_pair, **kw)
    for o, t in zip(ours, theirs):
        close(o, t, torch.float32)


def test_zoom_weights_that_would_differ_from_monai_are_refused():
    # MONAI resizes the weights 8 -> 4 -> 16 (window pixels 1, 1, 1, 1, 3, ...);
    # resizing the window straight to 16 takes 0, 0, 1, 1, ...: a silent difference
    x = random((1, 1, 16, 16), seed=19)

    def pred(w):
        down = torch.nn.functional.avg_pool2d(w, 2)
        return down, torch.nn.functional.interpolate(w, scale_factor=2, mode="nearest")

    with pytest.raises(NotImplementedError, match="MONAI, which resizes the weights"):
        OURS(x, (8, 8), 2, pred, 0.5, "gaussian")
    # constant weights are ones at every size: nothing to refuse
    close(OURS(x, (8, 8), 2, pred, 0.5)[1], MONAI(x, (8, 8), 2, pred, 0.5)[1], torch.float32)


def test_inferer_takes_monai_positional_arguments():
    import inspect

    x = random((1, 2, 17, 15), seed=20)
    # MONAI's order: roi_size, sw_batch_size, overlap, mode, sigma_scale, padding_mode
    ours = pjt.SlidingWindowInferer((8, 6), 3, 0.4, "gaussian", 0.3, "replicate")
    theirs = monai_inferers.SlidingWindowInferer((8, 6), 3, 0.4, "gaussian", 0.3, "replicate")
    close(ours(x, mean_scaled), theirs(x, mean_scaled), torch.float32)
    assert ours.sw_batch_size == 3 and ours.sigma_scale == 0.3 and ours.cpu_thresh is None
    names = list(inspect.signature(pjt.SlidingWindowInferer).parameters)
    assert names[:4] == ["roi_size", "sw_batch_size", "overlap", "mode"]
    assert names[9:12] == ["progress", "cache_roi_weight_map", "cpu_thresh"]
    with pytest.raises(TypeError, match="bogus"):
        pjt.SlidingWindowInferer((8, 8), bogus=1)
    with pytest.raises(ValueError, match="mode must be one of"):
        pjt.SlidingWindowInferer((8, 8), 1, 0.25, "triangle")


def test_inferer_object_matches_monai():
    x = random((2, 1, 21, 18), seed=15)
    kw = {"sw_batch_size": 4, "overlap": 0.5, "mode": "gaussian"}
    ours = pjt.SlidingWindowInferer((8, 7), **kw)(x, mean_scaled)
    theirs = monai_inferers.SlidingWindowInferer((8, 7), **kw)(x, mean_scaled)
    close(ours, theirs, torch.float32)


def test_monai_enums_buffers_and_devices():
    from monai.utils import BlendMode, PytorchPadMode

    x = random((1, 1, 12, 13), seed=16)
    seen = []

    def pred(w):
        seen.append(w.device.type)
        return mean_scaled(w)

    kw = {
        "mode": BlendMode.GAUSSIAN, "padding_mode": PytorchPadMode.REPLICATE,
        "sw_device": "cpu", "device": torch.device("cpu"), "buffer_steps": 2, "buffer_dim": 0,
    }  # fmt: skip
    ours = OURS(x, (15, 5), 2, pred, 0.25, **kw)
    close(ours, MONAI(x, (15, 5), 2, mean_scaled, 0.25, **kw), torch.float32)
    assert ours.device.type == "cpu" and set(seen) == {"cpu"}


def test_result_never_requires_grad_and_inputs_with_grad_raise():
    x = random((1, 1, 10, 10), seed=17)
    w = torch.nn.Parameter(torch.tensor(2.0))
    out = OURS(x, (4, 4), 2, lambda b: b * w)  # the output requires grad: detached
    assert not out.requires_grad
    x.requires_grad_(True)
    with pytest.raises(ValueError, match="autograd"):
        OURS(x, (4, 4), 2, lambda b: b)
    with torch.no_grad():
        assert OURS(x, (4, 4), 2, lambda b: b).shape == x.shape


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "match"),
    [
        (((1, 1, 4, 4, 4, 4), 2), {}, ValueError, "1 to 3 spatial axes"),
        (((1, 1, 8, 8), (4, 4, 4)), {}, ValueError, "inputs must have 5 dimensions"),
        (((1, 1, 8, 8), (4.0, 4)), {}, TypeError, "roi_size entries must be ints"),
        (((1, 1, 8, 8), 4), {"mode": "hann"}, ValueError, "mode must be one of"),
        (((1, 1, 8, 8), 4), {"overlap": 1.0}, ValueError, "overlap must be"),
        (((1, 1, 8, 8), 4), {"padding_mode": "edge"}, ValueError, "padding_mode must be"),
        (((1, 1, 3, 8), 8), {"padding_mode": "reflect"}, ValueError, "smaller than that axis"),
        (((1, 1, 3, 8), 8), {"padding_mode": "replicate", "cval": 1}, ValueError, "cval"),
        (((1, 1, 8, 8), 4), {"roi_weight_map": torch.zeros(4, 4)}, ValueError, "> 0"),
        (((1, 1, 8, 8), 4), {"roi_weight_map": torch.ones(3, 4)}, ValueError, "shape"),
    ],
)
def test_errors(args, kwargs, error, match):
    shape, roi = args
    with pytest.raises(error, match=match):
        OURS(torch.ones(shape), roi, 2, lambda w: w, **kwargs)


def test_integer_inputs_and_bad_outputs_raise():
    with pytest.raises(TypeError, match="floating point"):
        OURS(torch.ones((1, 1, 8, 8), dtype=torch.int64), 4, 2, lambda w: w)
    with pytest.raises(TypeError, match="must return a tensor"):
        OURS(torch.ones((1, 1, 8, 8)), 4, 2, lambda w: w.numpy())
    with pytest.raises(ValueError, match=r"\(n, K, \*spatial\)"):
        OURS(torch.ones((1, 1, 8, 8)), 4, 2, lambda w: w[:, 0])


def test_import_patchjit_does_not_import_torch():
    code = "import sys, patchjit; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("roi", [(1,), (8,), (7, 10), (6, 5, 9), (96,)])
@pytest.mark.parametrize("sigma_scale", [0.125, 0.5, 0.01])
def test_importance_map_is_monais_bitwise(roi, sigma_scale):
    from monai.data.utils import compute_importance_map

    theirs = compute_importance_map(roi, "gaussian", sigma_scale, dtype=torch.float32)
    assert torch.equal(pjt.importance_map(roi, "gaussian", sigma_scale), theirs)
    assert torch.equal(pjt.importance_map(roi), torch.ones(roi))
