"""SimpleShapes data path: generation, strict-validator calibration, exact-score DDPM sampling.

    python benchmarks/bench_data.py [--threads 1] [--n 20000] [--samples 64] [--steps 250 1000] [--device cpu]

For each size (64, 32): time to generate ``--n`` images (seed 0) and to validate them, and the
calibration count (strictly flagged images among them; the target is 0), next to the VSM rule's count.
Then, per size and per number of cosine steps in ``--steps``, DDPM sampling of ``--samples`` images with
the exact score (:class:`vsmlab.data.shapes_score.ExactShapesScore`, float64) and the strict validator's
verdict on the samples. Wall-clock figures of one run, on whatever machine runs it (printed).
"""

from __future__ import annotations

import argparse
import platform
import time

import torch

from vsmlab.core.schedules import cosine
from vsmlab.data.shapes import generate, to_uint8
from vsmlab.data.shapes_score import ExactShapesScore
from vsmlab.data.shapes_validate import report
from vsmlab.diffusion.samplers import ddpm


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--n", type=int, default=20000)
    parser.add_argument("--samples", type=int, default=64)
    parser.add_argument("--steps", type=int, nargs="*", default=[250, 1000])
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"machine: {platform.processor() or platform.machine()}, torch threads {args.threads}, device {args.device}")
    for size in (64, 32):
        start = time.perf_counter()
        data = generate(args.n, size, seed=0)
        t_gen = time.perf_counter() - start
        start = time.perf_counter()
        res = report(data.images)
        t_val = time.perf_counter() - start
        print(f"{size} px: generate {args.n} in {t_gen:.2f} s; validate in {t_val:.2f} s "
              f"({args.n / t_val:,.0f} img/s); calibration: strict flagged {res['invalid']} / {res['n']} "
              f"{res['categories']}, VSM rule flagged {res['vsm_rule_invalid']}")
    for size in (64, 32):
        for steps in args.steps:
            sched = cosine(steps)
            model = ExactShapesScore(sched, size)
            gen = torch.Generator(device=args.device).manual_seed(0)
            start = time.perf_counter()
            out = ddpm(model, sched, shape=(args.samples, 1, size, size), generator=gen,
                       device=args.device, dtype=torch.float64)
            if args.device != "cpu":
                torch.cuda.synchronize()
            t = time.perf_counter() - start
            res = report(to_uint8(out.samples))
            print(f"{size} px exact-score DDPM, cosine T={steps}, {args.samples} samples: {t:.1f} s; "
                  f"strictly valid {res['categories']['valid']} / {res['n']} {res['categories']}")


if __name__ == "__main__":
    main()
