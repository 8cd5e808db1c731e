"""The examples and the tour notebook run end to end."""

import runpy
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.mark.parametrize("script", ["quickstart.py", "custom_callback.py"])
def test_example_scripts_run(script, capsys):
    runpy.run_path(str(EXAMPLES / script), run_name="__main__")
    assert "PSNR" in capsys.readouterr().out or script == "quickstart.py"


# margin=, scale=, finalize= examples: (script, the check line it prints, needs torch);
# each script exits 1 when its check fails
MODEL_OUTPUT_EXAMPLES = [
    pytest.param(
        "unet_overlap_tile.py",
        "whole-image forward on the mirrored image",
        True,
        marks=pytest.mark.torch,
    ),
    pytest.param("super_resolution.py", "max |tiled - whole|", True, marks=pytest.mark.torch),
    ("segmentation_finalize.py", "labels == argmax of the full result: True", False),
]


@pytest.mark.parametrize(("script", "check", "needs_torch"), MODEL_OUTPUT_EXAMPLES)
def test_model_output_examples_pass_their_checks(script, check, needs_torch, capsys):
    if needs_torch:
        pytest.importorskip("torch")
    with pytest.raises(SystemExit) as stop:
        runpy.run_path(str(EXAMPLES / script), run_name="__main__")
    captured = capsys.readouterr()
    assert stop.value.code == 0, captured.err
    assert check in captured.out
    assert "MISMATCH" not in captured.err


def test_tour_notebook_executes(tmp_path):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    nb = nbformat.read(EXAMPLES / "tour.ipynb", as_version=4)
    nbclient.NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert any("image/png" in o.get("data", {}) for o in outputs)
    # a figure shows as its picture; a bare "<Figure ...>" text output is a stray repr
    texts = [
        o.get("text", "") + str(o.get("data", {}).get("text/plain", ""))
        for o in outputs
        if "image/png" not in o.get("data", {})
    ]
    assert not [t for t in texts if "<Figure" in t or "IProgress not found" in t]
    # the progress bar is a Jupyter widget (ipywidgets), not text
    assert any("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in outputs)


def test_tour_notebook_is_committed_with_outputs():
    nbformat = pytest.importorskip("nbformat")
    nb = nbformat.read(EXAMPLES / "tour.ipynb", as_version=4)
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    assert all(cell.outputs for cell in code), "run scripts/make_tour.py to refresh it"
    assert any("image/png" in o.get("data", {}) for cell in code for o in cell.outputs)
