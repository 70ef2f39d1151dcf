"""``vsmlab sample CHECKPOINT --out s.npz [--n N] [--seed S] [--sampler ddpm|ddim] [--steps K] [--variance
beta|beta_tilde|learned] [--variance-frac F] [--eta E] [--clip-x0] [--weights ema|raw] [--device D]
[--batch-size B] [--trajectory-every k] [--trajectory-last L] [--force]``: parse, call
:func:`vsmlab.diffusion.sample_sets.sample_checkpoint`, report.

Options left out take the checkpoint config's [sample] values. The .npz (written atomically) holds
``images`` uint8 [N, H, W] or [N, H, W, 3] (``samples`` float32 [N, d] for a mixture run), ``batch_seed``
and ``batch_row`` (batch k of B samples is drawn with seed ``S * 1000003 + k``: the same S, B, options and
device regenerate every sample), trajectories when asked and ``metadata`` (JSON); the layout and the
options: :mod:`vsmlab.diffusion.sample_sets`. Ranges: ``--steps`` in 2..T, ``--eta`` in [0, 1] (DDIM),
``--variance-frac`` in [0, 1] (DDPM on a checkpoint with a variance head: Sigma_t = exp(F log beta_t +
(1 - F) log beta_tilde_t) replaces the model's v), ``--seed`` in 0..(2**63 - 1 - (batches - 1)) // 1000003,
``--n`` within the memory available. An existing ``--out`` is replaced only with ``--force`` and only when it
is an .npz vsmlab wrote; a file that is not a vsmlab checkpoint is refused as such and never loaded.

Exit codes: 0 written, 2 bad input (one line naming the flag or the file).
"""

from __future__ import annotations

import argparse
import sys

__all__ = ["add_parsers", "run_sample", "SAMPLE_FLAGS"]

#: how the library's arguments are spelled on this command line (in error messages)
SAMPLE_FLAGS = {"checkpoint": "CHECKPOINT", "out": "--out", "force": "--force", "n": "--n", "seed": "--seed",
                "sampler": "--sampler", "steps": "--steps", "variance": "--variance", "variance_frac": "--variance-frac",
                "eta": "--eta", "weights": "--weights", "batch_size": "--batch-size", "device": "--device",
                "trajectory_every": "--trajectory-every", "trajectory_last": "--trajectory-last"}


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Register ``sample`` on the top-level subparsers."""
    sa = sub.add_parser("sample", help="draw samples from a training checkpoint into an .npz",
                        description="Sample from a checkpoint; defaults come from its config's [sample] section.")
    sa.add_argument("checkpoint", metavar="CHECKPOINT", help="a latest.pt or step_NNNNNNN.pt file")
    sa.add_argument("--out", required=True, help="output .npz file (new; --force replaces a vsmlab .npz)")
    sa.add_argument("--force", action="store_true", help="replace an existing --out that vsmlab wrote")
    sa.add_argument("--n", type=int, default=None, help="number of samples (>= 1)")
    sa.add_argument("--seed", type=int, default=None,
                    help="seed S >= 0 (batch k uses generator seed S*1000003 + k, which must fit int64)")
    sa.add_argument("--sampler", default=None, help="ddpm | ddim")
    sa.add_argument("--steps", type=int, default=None, help="respaced number of steps K in 2..T (default: all T)")
    sa.add_argument("--variance", default=None, help="beta | beta_tilde | learned (DDPM; default: learned if the model has v)")
    sa.add_argument("--variance-frac", type=float, default=None, metavar="F",
                    help="DDPM, learned-variance models: Sigma_t = exp(F log beta_t + (1 - F) log beta_tilde_t) in "
                         "place of the model's own v, F in [0, 1] (0: beta_tilde, 1: beta)")
    sa.add_argument("--eta", type=float, default=None, help="DDIM eta in [0, 1] (default 0)")
    sa.add_argument("--clip-x0", action="store_true",
                    help="clip x0_hat to [-1, 1] at every step (improved DDPM's clip_denoised=True, the default of its "
                         "and the VSM code's image sampler; notebook 06's primary sampler)")
    sa.add_argument("--weights", default=None, help="ema | raw (default: ema when the checkpoint has it)")
    sa.add_argument("--device", default=None, help="cpu | cuda (default: cuda when available)")
    sa.add_argument("--batch-size", type=int, default=None, help="samples per batch")
    sa.add_argument("--trajectory-every", type=int, default=None, metavar="K",
                    help="also store x_t and x0_hat every K steps (float16)")
    sa.add_argument("--trajectory-last", type=int, default=None, metavar="L",
                    help="store x_t and x0_hat of the last L sampling steps only (float16; with --trajectory-every K, "
                         "every K-th of them)")
    sa.add_argument("--quiet", action="store_true", help="no progress bar")
    sa.set_defaults(func=run_sample)


def run_sample(args: argparse.Namespace) -> int:
    """Handler of ``vsmlab sample``: :func:`vsmlab.diffusion.sample_sets.sample_checkpoint`; returns the exit code."""
    from vsmlab.diffusion.checkpoints import CheckpointError
    from vsmlab.diffusion.config import ConfigError
    from vsmlab.diffusion.sample_sets import sample_checkpoint

    try:
        info = sample_checkpoint(
            args.checkpoint, args.out, n=args.n, seed=args.seed, sampler=args.sampler, steps=args.steps,
            variance=args.variance, variance_frac=getattr(args, "variance_frac", None), eta=args.eta,
            clip_x0=bool(getattr(args, "clip_x0", False)), weights=args.weights, batch_size=args.batch_size,
            trajectory_every=args.trajectory_every, trajectory_last=getattr(args, "trajectory_last", None),
            device=args.device, force=bool(getattr(args, "force", False)), progress=not args.quiet,
            arg_names=SAMPLE_FLAGS)
    except (ConfigError, CheckpointError, ValueError) as exc:
        print(f"vsmlab sample: error: {exc}", file=sys.stderr)
        return 2
    if not args.quiet:
        print(f"vsmlab sample: {info.n} samples written to {str(info.out)!r}", file=sys.stderr)
    return 0
