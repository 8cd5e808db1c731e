"""patchjit.torch.sliding_window_inference beside MONAI's, on the same model and inputs.

Every (tool, case) runs in its own subprocess, so that its peak memory is its own:
``peak extra`` is the peak RSS during the timed calls (VmHWM, reset just before them)
minus the RSS before them (after the imports, the model, the input and one warm-up
call, which includes patchjit's compilation or cache load). Time: the median of
``--repeat`` calls. Both tools get the same model (a small random conv net, torch on
one thread), the same input and the same arguments; the parent checks that the two
results agree.

Run: OMP_WAIT_POLICY=passive python benchmarks/bench_monai.py [--repeat 3] [--json out.json]
(without OMP_WAIT_POLICY=passive, spinning OpenMP worker threads made the model run
up to 17x slower inside patchjit runs on the 2-core VM; MONAI runs are unaffected)
Needs the torch extra (torch, monai).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_batches import _peak_rss, _reset_peak_rss, _rss

ROOT = Path(__file__).resolve().parents[1]

# (name, input shape, roi_size, overlap)
CASES = {
    "2d": ((1, 1, 1024, 1024), (96, 96), 0.25),
    "3d": ((1, 1, 128, 128, 128), (48, 48, 48), 0.25),
}
MODES = ("constant", "gaussian")
BATCHES = (4, 16)


def _model(torch, ndim):
    torch.manual_seed(0)
    conv = torch.nn.Conv2d if ndim == 2 else torch.nn.Conv3d
    width = 8 if ndim == 2 else 4
    net = torch.nn.Sequential(
        conv(1, width, 3, padding=1),
        torch.nn.ReLU(),
        conv(width, width, 3, padding=1),
        torch.nn.ReLU(),
        conv(width, 1, 3, padding=1),
    )
    return net.eval()


def worker(tool, case, mode, bs, repeat, out_path):
    import torch

    torch.set_num_threads(1)
    if tool == "monai":
        from monai.inferers import sliding_window_inference
    else:
        from patchjit.torch import sliding_window_inference
    shape, roi, overlap = CASES[case]
    net = _model(torch, len(shape) - 2)
    in_model = [0.0]

    def model(w):
        t0 = time.perf_counter()
        y = net(w)
        in_model[0] += time.perf_counter() - t0
        return y

    x = torch.from_numpy(np.random.default_rng(0).random(shape, dtype=np.float32))

    def run():
        with torch.inference_mode():
            return sliding_window_inference(x, roi, bs, model, overlap, mode)

    run()  # warm-up: compilation / cache load, torch's first-call set-up
    in_model[0] = 0.0
    rss0 = _rss()
    _reset_peak_rss()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        y = run()
        times.append(time.perf_counter() - t0)
        del y  # so each call's peak starts from the same baseline
    peak = _peak_rss() - rss0
    model_s = in_model[0] / repeat
    np.save(out_path, run().numpy())
    return {
        "time_s": statistics.median(times),
        "times": times,
        "peak_extra_mib": peak / 2**20,
        "in_model_s": model_s,
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--json", type=Path)
    p.add_argument("--cases", nargs="*", default=list(CASES), choices=list(CASES))
    p.add_argument("--modes", nargs="*", default=list(MODES), choices=list(MODES))
    p.add_argument("--tools", nargs=2, default=["monai", "patchjit"], help="run order")
    p.add_argument("--worker", nargs=5, help=argparse.SUPPRESS)
    o = p.parse_args(argv)
    if o.worker:
        tool, case, mode, bs, out_path = o.worker
        print(json.dumps(worker(tool, case, mode, int(bs), o.repeat, out_path)))
        return 0
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for case in o.cases:
            for mode in o.modes:
                for bs in BATCHES:
                    row = {"case": case, "mode": mode, "sw_batch_size": bs}
                    for tool in o.tools:
                        out = Path(tmp) / f"{tool}.npy"
                        cmd = [sys.executable, __file__, "--repeat", str(o.repeat), "--worker",
                               tool, case, mode, str(bs), str(out)]  # fmt: skip
                        res = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
                        if res.returncode:
                            print(res.stderr, file=sys.stderr)
                            return 1
                        row[tool] = json.loads(res.stdout.strip().splitlines()[-1])
                    a, b = (np.load(Path(tmp) / f"{t}.npy") for t in ("monai", "patchjit"))
                    row["max_abs_diff"] = float(np.abs(a - b).max())
                    rows.append(row)
                    m, q = row["monai"], row["patchjit"]
                    print(
                        f"| {case} | {mode} | {bs} | {m['time_s']:.2f} | {q['time_s']:.2f} | "
                        f"{m['time_s'] / q['time_s']:.2f} | {m['peak_extra_mib']:.0f} | "
                        f"{q['peak_extra_mib']:.0f} | {row['max_abs_diff']:.1e} | "
                        f"{m['in_model_s']:.2f} | {q['in_model_s']:.2f} |",
                        flush=True,
                    )
    if o.json:
        o.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
