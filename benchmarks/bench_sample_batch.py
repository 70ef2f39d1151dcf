"""Model-call time per image by batch size for the shipped image checkpoints, on one CPU thread.

    python benchmarks/bench_sample_batch.py [--threads 1] [--batches 4 8 10 16 32 50] [--images 100]

For each shipped checkpoint set (``checkpoints/cards64`` rho0 and ``checkpoints/chess128`` VSM: a 64-px grayscale
and a 128-px RGB UNet of base width 16) it loads the EMA weights and times one model call at a mid-range t
(t = 500) on about ``--images`` images per batch size (``ceil(images / batch)`` calls, after a warm-up call,
best of ``--repeats``), under torch.inference_mode. It prints milliseconds per image and the speed-up of each batch
size over the largest, measured side by side in one run. A DDPM sampler calls the model once per step, so the
ratio carries over to sampling (``vsmlab sample --batch-size``; note that the batch size is part of the seed
scheme, so a different batch size draws different samples).

Why it exists: at 128 px a batch of 32-50 images costs 1.5-2x more per image on one core than a batch of 8 (the
activations outgrow the CPU caches, presumably); notebook 07 samples the chess models in batches of 8 for that reason.
At 64 px the batch size makes no difference.
"""

from __future__ import annotations

import argparse
import math
import platform
import time
from pathlib import Path

import torch

from vsmlab.diffusion import checkpoints as ck
from vsmlab.diffusion.config import model_from_config

ROOT = Path(__file__).resolve().parents[1]
SETS = {"cards64 rho0": ROOT / "checkpoints/cards64/rho0-seed0/latest.pt",
        "chess128 vsm": ROOT / "checkpoints/chess128/vsm-seed0/latest.pt"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1: notebook 07 samples one model "
                        "per core)")
    parser.add_argument("--batches", type=int, nargs="+", default=[4, 8, 10, 16, 32, 50])
    parser.add_argument("--images", type=int, default=100, help="images timed per batch size (default 100)")
    parser.add_argument("--repeats", type=int, default=2, help="timed runs per batch size; the best counts (default 2)")
    args = parser.parse_args()
    if args.threads < 1 or args.images < 1 or args.repeats < 1 or min(args.batches) < 1:
        parser.error("--threads, --images, --repeats and every --batches value must be >= 1")
    torch.set_num_threads(args.threads)
    print(f"# torch {torch.__version__}, {args.threads} thread(s), {platform.machine()}; ms per image of one model "
          f"call at t = 500 (best of {args.repeats}); speed-up = ms at batch {max(args.batches)} / ms")
    for name, path in SETS.items():
        if not path.is_file():
            print(f"{name}: {path} missing, skipped")
            continue
        payload = ck.load_checkpoint(path, map_location="cpu")
        model = model_from_config(payload["model_kind"], dict(payload["model_config"]))
        model.load_state_dict(payload["ema"])
        model.eval()
        mc = payload["model_config"]
        shape = (mc["in_channels"], mc["image_size"], mc["image_size"])
        g = torch.Generator().manual_seed(0)
        per_image = {}
        with torch.inference_mode():
            for b in args.batches:
                x = torch.randn(b, *shape, generator=g)
                t = torch.full((b,), 500, dtype=torch.long)
                model(x, t)  # warm-up
                calls = math.ceil(args.images / b)
                best = float("inf")
                for _ in range(args.repeats):
                    start = time.perf_counter()
                    for _ in range(calls):
                        model(x, t)
                    best = min(best, time.perf_counter() - start)
                per_image[b] = 1000 * best / (calls * b)
        ref = per_image[max(args.batches)]
        print(f"{name} ({shape[1]} px, {shape[0]} channel(s)): " + "; ".join(
            f"batch {b}: {ms:.1f} ms ({ref / ms:.2f}x)" for b, ms in per_image.items()))


if __name__ == "__main__":
    main()
