"""Does shipping the weights in float16 change what the models draw? A paired check on notebook 06's primary sets.

For each SimpleShapes 32-px model of seed 0 (fixed with beta and beta_tilde, rho0, vsm, vsm10), draws notebook 06's
primary set (DDPM-250, x0_hat clipped, EMA weights, sampling seed 1000, 128 samples in batches of 64) twice from the
same noise: with the float32 EMA weights of the training checkpoint (read from git at ``--ref``, the commit that
still held the ``latest.pt`` files) and with the shipped float16 ``latest.safetensors``. Prints, per model, how many
images differ at all, the largest pixel difference, and the strict validator's non-valid counts for both with the
paired difference (samples whose verdict flipped).

    OMP_NUM_THREADS=1 python benchmarks/weights_precision.py --ref 1f7813d
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import torch

from vsmlab.data.shapes_validate import validate
from vsmlab.lab.sample_store import sample_set
from vsmlab.lab.study import load_checkpoint_model

ROOT = Path(__file__).resolve().parents[1]
ROWS = (("fixed", "fixed", "beta"), ("fixed~", "fixed", "beta_tilde"), ("rho0", "rho0", "auto"),
        ("vsm", "vsm", "auto"), ("vsm10", "vsm10", "auto"))


def draw(path: Path, variance: str, n: int) -> np.ndarray:
    loaded = load_checkpoint_model(path, None, "ema", image_size=32)
    return sample_set(loaded, n, 1000, steps=250, variance=variance, batch_size=64, clip_x0=True,
                      cache=False)["images"].numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ref", default="1f7813d", help="git commit holding checkpoints/shapes32/*/latest.pt")
    parser.add_argument("--n", type=int, default=128)
    parser.add_argument("--rows", nargs="+", default=[r[0] for r in ROWS], choices=[r[0] for r in ROWS],
                        help="model rows to compare (default: all five)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    total_flips = total = 0
    with tempfile.TemporaryDirectory() as tmp:
        for row, method, variance in (r for r in ROWS if r[0] in args.rows):
            old = Path(tmp) / f"{method}.pt"
            if not old.exists():
                old.write_bytes(subprocess.run(["git", "show", f"{args.ref}:checkpoints/shapes32/{method}-seed0/latest.pt"],
                                               cwd=ROOT, check=True, capture_output=True).stdout)
            a = draw(old, variance, args.n)
            b = draw(ROOT / "checkpoints" / "shapes32" / f"{method}-seed0" / "latest.safetensors", variance, args.n)
            va = np.array([not v.valid for v in validate(a)])
            vb = np.array([not v.valid for v in validate(b)])
            changed = int((a.reshape(len(a), -1) != b.reshape(len(b), -1)).any(1).sum())
            flips = int((va != vb).sum())
            total_flips, total = total_flips + flips, total + len(a)
            print(f"{row:<7} images changed {changed:>3}/{len(a)}, largest pixel difference "
                  f"{int(np.abs(a.astype(int) - b.astype(int)).max()):>3}; non-valid float32 {int(va.sum()):>3}, "
                  f"float16 {int(vb.sum()):>3}; verdicts flipped {flips} ({int((~va & vb).sum())} to non-valid, "
                  f"{int((va & ~vb).sum())} to valid)")
    print(f"all rows: {total_flips} of {total} verdicts flipped")


if __name__ == "__main__":
    main()
