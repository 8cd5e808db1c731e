"""Peak memory of a K-class segmentation: the full K-channel result vs ``finalize``
(argmax labels streamed out), and MONAI's ``sliding_window_inference`` on the same
model (issue 19's target: growth <= 1/4 of the 512 MiB full-size accumulator).

Each case runs in its own process; peak growth is ``ru_maxrss`` after minus before the
call (the image and the model are made, and the call warmed up on a crop, first).
Run: ``python benchmarks/model_outputs.py``.
"""

import json
import resource
import subprocess
import sys

import numpy as np

SIZE, K, PATCH, STEP, BATCH = 2048, 32, 64, 32, 16


def _rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def case(mode):
    rng = np.random.default_rng(0)
    img = rng.random((SIZE, SIZE), dtype=np.float32)
    w = rng.random(K).astype(np.float32)

    def scores(b):  # (n, h, w) -> (n, h, w, K), content-dependent
        return np.sin(b[..., None] * w + b.mean(axis=(1, 2))[:, None, None, None])

    import patchjit

    ref = None
    if mode == "labels-check":
        sub = img[:256, :256]
        full = patchjit.process_batches(sub, scores, PATCH, STEP, out_channels=K)
        lab = patchjit.process_batches(
            sub, scores, PATCH, STEP, out_channels=K,
            finalize=lambda b: b.argmax(-1).astype(np.uint8),
        )  # fmt: skip
        return {"labels_exact": bool((lab == full.argmax(-1)).all())}
    if mode == "monai":
        import torch
        from monai.inferers import sliding_window_inference

        def model(x):  # (n, 1, h, w) -> (n, K, h, w)
            b = x[:, 0].numpy()
            return torch.from_numpy(np.ascontiguousarray(np.moveaxis(scores(b), -1, 1)))

        x = torch.from_numpy(img)[None, None]
        with torch.inference_mode():
            sliding_window_inference(x[..., :200, :200], (PATCH, PATCH), BATCH, model)
        before = _rss_mib()
        with torch.inference_mode():
            y = sliding_window_inference(x, (PATCH, PATCH), BATCH, model, overlap=0.5)
        ref = y.argmax(1)[0].numpy().astype(np.uint8)
    else:
        # warm-up on a crop: compilation's memory is not the merge's
        patchjit.process_batches(img[:200, :200], scores, PATCH, STEP, out_channels=K,
                                 batch_size=BATCH, finalize=lambda b: b.argmax(-1))  # fmt: skip
        patchjit.process_batches(img[:200, :200], scores, PATCH, STEP, out_channels=K,
                                 batch_size=BATCH)  # fmt: skip
        before = _rss_mib()
        if mode == "full":
            res = patchjit.process_batches(img, scores, PATCH, STEP, out_channels=K,
                                           batch_size=BATCH)  # fmt: skip
            ref = res.argmax(-1).astype(np.uint8)
        else:
            ref = patchjit.process_batches(
                img, scores, PATCH, STEP, out_channels=K, batch_size=BATCH,
                finalize=lambda b: b.argmax(-1).astype(np.uint8),
            )  # fmt: skip
    return {"growth_mib": _rss_mib() - before, "labels_sum": int(ref.sum())}


def main():
    if len(sys.argv) > 1:
        print(json.dumps(case(sys.argv[1])))
        return
    full = SIZE * SIZE * K * 4 / 2**20
    print(f"{SIZE}^2 image, K={K} float32 classes, {PATCH}^2 patches, step {STEP}, "
          f"batch {BATCH}; full-size accumulator {full:.0f} MiB")  # fmt: skip
    for mode in ("labels-check", "full", "finalize", "monai"):
        try:
            out = subprocess.run([sys.executable, __file__, mode], capture_output=True,
                                 text=True, check=True).stdout  # fmt: skip
            print(f"{mode:13s} {out.strip().splitlines()[-1]}")
        except subprocess.CalledProcessError as exc:
            print(f"{mode:13s} failed: {exc.stderr.strip().splitlines()[-1:]}")


if __name__ == "__main__":
    main()
