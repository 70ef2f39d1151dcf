"""``vsmlab train | sample``: TOML-configured training (single process or torchrun DDP) and sampling from
checkpoints.

``vsmlab train CONFIG.toml [--out DIR] [--resume] [--device cpu|cuda] [--steps N] [--set section.key=value ...]
[--print-config]`` trains the config (vsmlab.diffusion.config) into DIR (default ``runs/<config stem>``):
``config.toml`` (the resolved config), ``log.jsonl`` (one line per read step: step, lr, loss terms,
grad_norm), ``latest.pt`` and ``step_NNNNNNN.pt`` (vsmlab.diffusion.checkpoints). ``--steps N`` is
``--set train.steps=N`` (train until global step N). A checkpoint is always written at the end. An
existing run in DIR is never overwritten: pass ``--resume`` to continue it from ``latest.pt`` (exactly: the
resumed run ends bit-identical to an uninterrupted one on CPU), or ``--force`` to start over (replacing the
run; only a run folder vsmlab wrote: config.toml, log.jsonl, checkpoints, weights, sample sets). DIR must be
new, empty or such a run folder: a file, the working folder or a folder holding other files is refused. A
folder with an interrupted run that never wrote a checkpoint is started over. An empty config file, or one
without [section] tables, is refused. Under ``torchrun --nproc_per_node N -m vsmlab
train CONFIG`` the run is DDP (nccl on CUDA, gloo on CPU), each rank takes its slice of the global batch;
rank 0 writes files and shows progress, the other ranks stay quiet.

``vsmlab sample CHECKPOINT --n N --out s.npz [--seed S] [--sampler ddpm|ddim] [--steps K] [--variance
beta|beta_tilde|learned] [--variance-frac F] [--eta E] [--clip-x0] [--weights ema|raw] [--device D] [--batch-size B] [--trajectory-every k] [--trajectory-last L]``
(defaults from the checkpoint's [sample] section) writes, atomically:

- ``images`` uint8 [N, H, W] (one channel) or [N, H, W, 3]; for an MLP (mixture) run ``samples`` float32 [N, d];
- ``batch_seed`` int64 [N] and ``batch_row`` int64 [N]: sample i is row ``batch_row[i]`` of a batch drawn
  with ``torch.Generator(device).manual_seed(batch_seed[i])`` where batch k (of size B, the last one
  smaller) has seed ``S * 1000003 + k``; rerunning with the same S, B, sampler options and device
  regenerates every sample exactly;
- with ``--trajectory-every k``: ``trajectory_x_t`` and ``trajectory_x0_hat`` float16 [R, N, ...] (every
  k-th step counted back from the last, in [-1, 1] model space) and ``trajectory_steps`` int64 [R];
  ``--trajectory-last L`` keeps only the last L steps (every step, or every k-th with ``--trajectory-every k``),
  recorded inside the sampler, so a long run does not hold every step in memory;
- ``metadata``: a JSON string with the config, checkpoint path and step, sampler options, seed scheme.

An existing ``--out`` is replaced only with ``--force`` and only when it is an .npz vsmlab wrote (a sample
set or a data set); a killed run leaves only a recognisable temporary file, removed by the next run. Ranges:
``--steps`` in 2..T, ``--eta`` in [0, 1], ``--variance-frac`` in [0, 1] (DDPM on a checkpoint with a
variance head only: Sigma_t = exp(F log beta_t + (1 - F) log beta_tilde_t) replaces the model's v), ``--seed`` in 0..(2**63 - 1 - (batches - 1)) // 1000003 (every
batch seed fits int64), ``--n`` within the memory available. A file that is not a vsmlab checkpoint is
refused as such and never loaded.
"""

from __future__ import annotations

import argparse
import os
import sys

__all__ = ["add_parsers", "run_train", "run_sample"]

#: how the library's arguments are spelled on this command line (in error messages)
TRAIN_FLAGS = {"out": "--out", "resume": "--resume", "force": "--force", "device": "--device"}
SAMPLE_FLAGS = {"checkpoint": "CHECKPOINT", "out": "--out", "force": "--force", "n": "--n", "seed": "--seed",
                "sampler": "--sampler", "steps": "--steps", "variance": "--variance", "variance_frac": "--variance-frac",
                "eta": "--eta", "weights": "--weights", "batch_size": "--batch-size", "device": "--device",
                "trajectory_every": "--trajectory-every", "trajectory_last": "--trajectory-last"}


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Register ``train | sample`` on the top-level subparsers."""
    tr = sub.add_parser("train", help="train a TOML config (torchrun-aware); checkpoints with exact resume",
                        description="Train a diffusion model from a TOML config (see configs/ and "
                                    "vsmlab.diffusion.config).")
    tr.add_argument("config", metavar="CONFIG", help="TOML config file")
    tr.add_argument("--out", default=None, help="run folder (default: runs/<config stem>)")
    tr.add_argument("--resume", action="store_true", help="continue the run in --out from latest.pt")
    tr.add_argument("--force", action="store_true",
                    help="start over: replace the run in --out (only a run folder vsmlab wrote)")
    tr.add_argument("--device", default=None, help="cpu | cuda (default: cuda when available)")
    tr.add_argument("--steps", type=int, default=None, metavar="N",
                    help="train until global step N >= 1 (= --set train.steps=N)")
    tr.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                    help="override a config key (value parsed as TOML), e.g. --set train.lr=2e-4; repeatable")
    tr.add_argument("--print-config", action="store_true", help="print every key with its value and exit")
    tr.add_argument("--quiet", action="store_true", help="no progress bar")
    tr.set_defaults(func=run_train)

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


# --------------------------------------------------------------------------------------------- train
def run_train(args: argparse.Namespace) -> int:
    """Handler of ``vsmlab train``: :func:`vsmlab.diffusion.runs.train_run`; returns the exit code."""
    from vsmlab.diffusion.checkpoints import CheckpointError
    from vsmlab.diffusion.config import ConfigError
    from vsmlab.diffusion.training import TrainingDiverged

    rank = int(os.environ.get("RANK", "0") or 0)
    try:
        return _train(args)
    except (ConfigError, CheckpointError, ValueError) as exc:
        if rank == 0:
            print(f"vsmlab train: error: {exc}", file=sys.stderr)
        return 2
    except TrainingDiverged as exc:
        if rank == 0:
            print(f"vsmlab train: error: {exc} (the last checkpoint in the run folder is kept)", file=sys.stderr)
        return 1


def _train(args: argparse.Namespace) -> int:
    from vsmlab.core.checks import check_int
    from vsmlab.diffusion.config import format_config, load_config
    from vsmlab.diffusion.runs import train_run

    overrides = list(args.set)
    if args.steps is not None:
        check_int("--steps", args.steps, low=1, hint="train until this global step")
        overrides.append(f"train.steps={args.steps}")
    if args.print_config:
        print(format_config(load_config(args.config, overrides)), end="")
        return 0
    run = train_run(args.config, args.out, overrides=overrides, device=args.device, resume=args.resume,
                    force=bool(getattr(args, "force", False)), progress=not args.quiet, arg_names=TRAIN_FLAGS)
    if run.rank != 0:
        return 0
    if run.start_step >= run.steps:
        print(f"vsmlab train: {str(run.out)!r} is already at step {run.start_step} >= train.steps = {run.steps}; "
              "nothing to do", file=sys.stderr)
    elif not args.quiet:
        print(f"vsmlab train: step {run.step} written to {str(run.latest)!r}", file=sys.stderr)
    return 0


# -------------------------------------------------------------------------------------------- sample
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
