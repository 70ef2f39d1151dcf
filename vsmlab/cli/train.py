"""``vsmlab train CONFIG.toml [--out DIR] [--resume | --force] [--device cpu|cuda] [--steps N] [--set
section.key=value ...] [--print-config]``: parse, call :func:`vsmlab.diffusion.runs.train_run`, report.

The config (:mod:`vsmlab.diffusion.config`) is trained into DIR (default ``runs/<config stem>``), a run
folder with ``config.toml``, ``log.jsonl``, ``latest.pt`` and ``step_NNNNNNN.pt`` (the protocol:
:mod:`vsmlab.diffusion.runs`). ``--steps N`` is ``--set train.steps=N`` (train until global step N).
``--resume`` continues the run in DIR (bit-identical to an uninterrupted run on CPU), ``--force`` starts
it over (only a run folder vsmlab wrote); without either an existing run is never overwritten.
``--print-config`` prints every key with its value and exits. Under ``torchrun --nproc_per_node N -m vsmlab
train CONFIG`` the run is DDP (nccl on CUDA, gloo on CPU); rank 0 writes files, shows progress and reports
errors, the other ranks stay quiet.

Exit codes: 0 done (also when the run is already at ``train.steps``), 2 bad input (one line naming the flag,
key or file), 1 a run whose loss stopped being finite (the last checkpoint is kept).
"""

from __future__ import annotations

import argparse
import os
import sys

__all__ = ["add_parsers", "run_train", "TRAIN_FLAGS"]

#: how the library's arguments are spelled on this command line (in error messages)
TRAIN_FLAGS = {"out": "--out", "resume": "--resume", "force": "--force", "device": "--device"}


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Register ``train`` on the top-level subparsers."""
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
