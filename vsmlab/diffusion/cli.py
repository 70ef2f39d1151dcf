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
beta|beta_tilde|learned] [--eta E] [--clip-x0] [--weights ema|raw] [--device D] [--batch-size B] [--trajectory-every k] [--trajectory-last L]``
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
``--steps`` in 2..T, ``--eta`` in [0, 1], ``--seed`` in 0..(2**63 - 1 - (batches - 1)) // 1000003 (every
batch seed fits int64), ``--n`` within the memory available. A file that is not a vsmlab checkpoint is
refused as such and never loaded.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

__all__ = ["add_parsers", "run_train", "run_sample", "SEED_STRIDE"]

#: batch k of ``vsmlab sample --seed S`` draws with generator seed S * SEED_STRIDE + k
SEED_STRIDE = 1_000_003
#: test hook: SIGKILL the training process right after this global step (e.g. to test exact resume)
KILL_ENV = "VSMLAB_TEST_KILL_AT_STEP"


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


class _Usage(ValueError):
    """A bad command-line value (exit code 2)."""


def _device(value: str | None):
    import torch

    if value is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if value not in ("cpu", "cuda") and not value.startswith("cuda:"):
        raise _Usage(f"--device: expected cpu or cuda, got {value!r}")
    if value.startswith("cuda") and not torch.cuda.is_available():
        raise _Usage(f"--device: {value!r} requested but CUDA is not available on this machine; allowed: cpu")
    return torch.device(value)


# --------------------------------------------------------------------------------------------- train
def run_train(args: argparse.Namespace) -> int:
    """Handler of ``vsmlab train``; returns the exit code."""
    from vsmlab.diffusion.checkpoints import CheckpointError
    from vsmlab.diffusion.config import ConfigError
    from vsmlab.diffusion.training import TrainingDiverged

    rank = int(os.environ.get("RANK", "0") or 0)
    try:
        return _train(args)
    except (ConfigError, CheckpointError, _Usage, ValueError) as exc:
        if rank == 0:
            print(f"vsmlab train: error: {exc}", file=sys.stderr)
        return 2
    except TrainingDiverged as exc:
        if rank == 0:
            print(f"vsmlab train: error: {exc} (the last checkpoint in the run folder is kept)", file=sys.stderr)
        return 1


def _train(args: argparse.Namespace) -> int:
    import torch

    from vsmlab.core.checks import check_int
    from vsmlab.core.io import atomic_write_bytes
    from vsmlab.diffusion import checkpoints as ck
    from vsmlab.diffusion.config import (build_data, build_loss, build_model, build_schedule, format_config,
                                         load_config, trainer_options)
    from vsmlab.diffusion.training import Trainer

    overrides = list(args.set)
    if args.steps is not None:
        check_int("--steps", args.steps, low=1, hint="train until this global step")
        overrides.append(f"train.steps={args.steps}")
    if args.resume and getattr(args, "force", False):
        raise _Usage("--resume, --force: choose one (--resume continues the run in --out, --force starts it over)")
    cfg = load_config(args.config, overrides)
    if args.print_config:
        print(format_config(cfg), end="")
        return 0
    _check_data_memory(cfg)
    device = _device(args.device)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    dist = None
    if world > 1:
        import torch.distributed as dist

        if device.type == "cuda":
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
            torch.cuda.set_device(device)
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    try:
        rank = dist.get_rank() if dist is not None else 0
        return _train_run(args, cfg, device, rank, dist)
    finally:
        if dist is not None and dist.is_initialized():
            dist.destroy_process_group()


def _train_run(args, cfg, device, rank, dist) -> int:
    import torch

    from vsmlab.core.io import atomic_write_bytes
    from vsmlab.core.io import remove_stale_temps
    from vsmlab.core.outputs import describe_entry, discard_folder, prepare_output, say
    from vsmlab.diffusion import checkpoints as ck
    from vsmlab.diffusion.config import (build_data, build_loss, build_model, build_schedule, format_config,
                                         trainer_options)
    from vsmlab.diffusion.training import Trainer

    force = bool(getattr(args, "force", False))
    out = Path(args.out) if args.out is not None else Path("runs") / Path(args.config).stem
    log = say if rank == 0 else None
    if args.resume:  # nothing is replaced: the run's own folder is continued, whatever else it holds
        if not str(out).strip():
            raise _Usage(f"--out: expected a path, got {str(out)!r}")
        if out.exists() and not out.is_dir():
            raise _Usage(f"--out: {str(out)!r} is {describe_entry(out)}, not a run folder")
        if rank == 0:
            remove_stale_temps(out, log=log)
    else:
        out, _ = prepare_output(out, _run_folder_kind(), force=True, flag="--out", log=log, clean=rank == 0)
    latest = ck.latest_path(out)
    existing = latest.exists() or bool(ck.step_checkpoints(out))
    if existing and not args.resume and not force:
        raise _Usage(f"--out: {str(out)!r} already holds a run ({'latest.pt' if latest.exists() else 'step_*.pt'}); "
                     "pass --resume to continue it, --force to start it over, or choose another --out "
                     "(nothing was overwritten)")
    if args.resume and not latest.exists():
        raise _Usage(f"--resume: no checkpoint {str(latest)!r} to continue from; start without --resume")
    if not existing and not force and not args.resume and out.is_dir():
        extra = sorted(p.name for p in out.iterdir() if p.name not in ("config.toml", "log.jsonl"))
        if extra:
            raise _Usage(f"--out: {str(out)!r} holds a run folder without a checkpoint but with {', '.join(extra[:3])}; "
                         "pass --force to start it over, or choose another --out (nothing was overwritten)")
    if dist is not None:
        dist.barrier()  # every rank has checked --out before rank 0 changes it
    if rank == 0 and out.is_dir() and not args.resume and any(out.iterdir()):
        what = "the run" if existing else "an interrupted run that wrote no checkpoint"
        discard_folder(out)
        say(f"started over in {str(out)!r}: removed {what} it held")
    data = build_data(cfg)
    model = build_model(cfg, tuple(data.shape))
    schedule = build_schedule(cfg)
    trainer = Trainer(model, data, schedule, loss_fn=build_loss(cfg), device=device, **trainer_options(cfg))
    start = 0
    if args.resume:
        payload = ck.load_checkpoint(latest, map_location="cpu")  # RNG states must stay CPU byte tensors
        ck.check_config_matches(latest, payload["config"], cfg)
        if payload["model_kind"] != cfg["model"]["kind"] or _plain(payload["model_config"]) != _plain(model.config):
            raise ck.CheckpointError(f"checkpoint {str(latest)!r}: its model {payload['model_kind']} "
                                     f"{payload['model_config']} does not match the config's {model.config}")
        try:
            trainer.load_state_dict(payload)
        except (ValueError, KeyError, RuntimeError) as exc:
            raise ck.CheckpointError(f"checkpoint {str(latest)!r} does not fit this run: {exc}") from None
        start = trainer.step
    steps, save_every, keep_last = cfg["train"]["steps"], cfg["train"]["save_every"], cfg["train"]["keep_last"]
    log_path = out / "log.jsonl"
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(out / "config.toml", format_config(cfg, comments=False).encode())
        kept = []
        if start and log_path.exists():  # drop lines written after the checkpoint (a killed run's tail)
            for line in log_path.read_text(encoding="utf-8").splitlines():
                try:
                    if json.loads(line)["step"] <= start:
                        kept.append(line)
                except (ValueError, KeyError, TypeError):
                    pass
        atomic_write_bytes(log_path, "".join(x + "\n" for x in kept).encode())
    if dist is not None:
        dist.barrier()

    def payload_now() -> dict[str, Any]:
        return {"format": ck.FORMAT, "version": ck.VERSION, "config": cfg, "model_kind": cfg["model"]["kind"],
                "model_config": _plain(model.config), **trainer.state_dict()}

    if start >= steps:
        if rank == 0:
            print(f"vsmlab train: {str(out)!r} is already at step {start} >= train.steps = {steps}; nothing to do",
                  file=sys.stderr)
        return 0
    kill_at = int(os.environ.get(KILL_ENV, "0") or 0)
    from tqdm.auto import tqdm

    bar = tqdm(total=steps, initial=start, disable=rank != 0 or args.quiet, desc=f"train {out.name}",
               unit="step", dynamic_ncols=True)
    log = open(log_path, "a", encoding="utf-8") if rank == 0 else None
    last_step, last_time = start, time.perf_counter()
    try:
        for rec in trainer.run():
            if isinstance(rec.terms["total"], float):  # a read step
                now = time.perf_counter()
                rate = cfg["train"]["batch_size"] * (rec.step - last_step) / max(now - last_time, 1e-9)
                if rank == 0:
                    entry = {"step": rec.step, "lr": rec.lr, **rec.terms, "grad_norm": rec.grad_norm}
                    log.write(json.dumps(entry) + "\n")
                    log.flush()
                    bar.set_postfix(loss=f"{rec.terms['total']:.4g}", img_s=f"{rate:.1f}")
                bar.update(rec.step - bar.n)
                last_step, last_time = rec.step, now
            if rank == 0 and save_every and rec.step % save_every == 0 and rec.step < steps:
                ck.write_run_checkpoint(out, payload_now(), keep_step=True, keep_last=keep_last)
            if kill_at and rec.step == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)
        if rank == 0:
            ck.write_run_checkpoint(out, payload_now(), keep_step=True, keep_last=keep_last)
            bar.update(steps - bar.n)
    finally:
        bar.close()
        if log is not None:
            log.close()
    if rank == 0 and not args.quiet:
        print(f"vsmlab train: step {trainer.step} written to {str(latest)!r}", file=sys.stderr)
    return 0


def _owned_run(path: Path) -> str | None:
    """A run folder vsmlab wrote: config.toml, log.jsonl, checkpoints, weights files and vsmlab sample sets
    (.npz files recognised by their arrays), plus the temporaries of its own atomic writes."""
    from vsmlab.core.outputs import NPZ_OUTPUT, NotOwned, is_owned, owned_folder

    legacy_tmp = r"\.(latest\.pt|step_\d+\.pt|config\.toml|log\.jsonl)\.[a-z0-9_]{8}\.tmp"
    mine = owned_folder(path, (r"config\.toml", r"log\.jsonl", r"latest\.pt", r"step_\d+\.pt", r"[^/]+\.safetensors",
                               r"[^/]+\.npz", legacy_tmp),
                        (r"config\.toml", r"latest\.pt", r"step_\d+\.pt"), "a vsmlab run folder")
    if is_owned(mine):
        for npz in path.glob("*.npz"):
            if not is_owned(NPZ_OUTPUT.owned(npz)):
                return NotOwned(f"{npz.name} is not a vsmlab .npz")
    return mine


def _run_folder_kind():
    from vsmlab.core.outputs import OutputKind

    return OutputKind("a training run folder", folder=True, owned=_owned_run)


def _check_data_memory(cfg: dict[str, Any]) -> None:
    """Refuse a training set that cannot fit in memory, before it is drawn (names ``data.n``)."""
    from vsmlab.core.checks import check_memory

    data = cfg["data"]
    if data["kind"] == "mixture":
        check_memory("data.n", data["n"], 2 * 4 * 2, "mixture points")
        return
    channels = {"shapes": 1, "cards": 3 if data.get("rgb") else 1, "chess": 3}[data["kind"]]
    side = data["size"]
    # the uint8 set plus the copies made while drawing it (tiles gathered, then laid out)
    check_memory("data.n", data["n"], 3 * channels * side * side + 400, f"{data['kind']} images of {side}x{side} px")


def _plain(value: Any) -> Any:
    """Tuples -> lists, recursively (configs compare equal after a TOML / checkpoint round trip)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


# -------------------------------------------------------------------------------------------- sample
def run_sample(args: argparse.Namespace) -> int:
    """Handler of ``vsmlab sample``; returns the exit code."""
    from vsmlab.diffusion.checkpoints import CheckpointError
    from vsmlab.diffusion.config import ConfigError

    try:
        return _sample(args)
    except (ConfigError, CheckpointError, _Usage, ValueError) as exc:
        print(f"vsmlab sample: error: {exc}", file=sys.stderr)
        return 2


_UNSAFE_ADVICE = ("weights_only", "Weights only", "arbitrary code")


def _load_sample_checkpoint(path: Path) -> dict[str, Any]:
    """The checkpoint at ``path`` (a training checkpoint or a weights file), refusing with "not a vsmlab
    checkpoint" anything that is not one before torch reads it, and never passing on advice to load a file
    unsafely."""
    import zipfile

    from vsmlab.core.checks import input_errors
    from vsmlab.diffusion import checkpoints as ck

    what = "expected a vsmlab checkpoint: a run's latest.pt / step_NNNNNNN.pt, or a .safetensors weights file"
    if path.is_dir():
        hint = f"; did you mean {str(path / 'latest.pt')!r}?" if (path / "latest.pt").is_file() else ""
        raise _Usage(f"CHECKPOINT: {str(path)!r} is a folder; {what}{hint}")
    if path.is_file() and path.suffix == ck.WEIGHTS_SUFFIX:
        with input_errors("CHECKPOINT", path):
            with open(path, "rb") as fh:
                head = fh.read(9)
        if len(head) < 9 or head[8:9] != b"{":  # safetensors: 8-byte header length, then the JSON header
            raise ck.CheckpointError(f"checkpoint {str(path)!r}: not a vsmlab checkpoint (not a safetensors file); {what}")
    elif path.is_file():
        with input_errors("CHECKPOINT", path):
            with open(path, "rb") as fh:
                head = fh.read(4)
        if head != b"PK\x03\x04":
            kind = "an empty file" if not head else "not a zip archive as torch.save writes"
            raise ck.CheckpointError(f"checkpoint {str(path)!r}: not a vsmlab checkpoint ({kind}); {what}")
        try:
            with zipfile.ZipFile(path) as zf:
                names = zf.namelist()
        except (zipfile.BadZipFile, OSError, EOFError, ValueError):
            names = None  # truncated: the loader says so, naming the file
        if names is not None and not any(n.endswith("/data.pkl") for n in names):
            shown = ", ".join(sorted(names)[:3]) or "nothing"
            raise ck.CheckpointError(f"checkpoint {str(path)!r}: not a vsmlab checkpoint (a zip archive holding "
                                     f"{shown}, not one torch.save wrote); {what}")
    try:
        with input_errors("CHECKPOINT", path):
            return ck.load_checkpoint(path, map_location="cpu")
    except ck.CheckpointError as exc:
        if any(a in str(exc) for a in _UNSAFE_ADVICE):
            raise ck.CheckpointError(f"checkpoint {str(path)!r}: not a vsmlab checkpoint (it holds Python objects "
                                     "that vsmlab never writes; it was not loaded)") from None
        raise


def _option(args, cfg, name: str, attr: str | None = None):
    value = getattr(args, attr or name)
    return cfg["sample"][name] if value is None else value


def _sample(args: argparse.Namespace) -> int:
    import numpy as np
    import torch

    from vsmlab.core.checks import check_int, check_memory, check_range, check_seed, input_errors
    from vsmlab.core.io import atomic_write_bytes
    from vsmlab.core.outputs import NPZ_OUTPUT, prepare_output
    from vsmlab.diffusion import checkpoints as ck
    from vsmlab.diffusion.config import build_schedule, model_from_config, validate_config
    from vsmlab.diffusion.samplers import ddim, ddpm

    out = Path(args.out)
    if out.suffix != ".npz":
        raise _Usage(f"--out: expected a file name ending in .npz, got {str(out)!r}")
    path = Path(args.checkpoint)
    payload = _load_sample_checkpoint(path)
    try:
        cfg = validate_config(payload["config"], source=f"checkpoint {str(path)!r} config")
    except ValueError as exc:
        raise ck.CheckpointError(str(exc)) from None
    T = cfg["diffusion"]["T"]
    n, seed, sampler = _option(args, cfg, "n"), _option(args, cfg, "seed"), _option(args, cfg, "sampler")
    steps, variance, eta = _option(args, cfg, "steps"), _option(args, cfg, "variance"), _option(args, cfg, "eta")
    weights, batch = _option(args, cfg, "weights"), _option(args, cfg, "batch_size")
    every = _option(args, cfg, "trajectory_every")
    check_int("--n", n, low=1, hint="number of samples")
    check_int("--batch-size", batch, low=1)
    check_int("--seed", seed, low=0)
    if sampler not in ("ddpm", "ddim"):
        raise _Usage(f"--sampler: expected ddpm or ddim, got {sampler!r}")
    if (args.steps is not None or steps) and not 2 <= steps <= T:  # --steps 0 / 1 refused; the config's 0 = all
        raise _Usage(f"--steps: expected an int in 2..{T} (the checkpoint's diffusion.T), got {steps}")
    if variance not in ("auto", "beta", "beta_tilde", "learned"):
        raise _Usage(f"--variance: expected beta, beta_tilde or learned, got {variance!r}")
    if sampler == "ddim" and args.variance is not None:
        raise _Usage(f"--variance: applies to --sampler ddpm only (DDIM's noise is set by --eta), got {variance!r}")
    check_range("--eta", eta, 0, 1, hint="DDIM: 0 deterministic, 1 the DDPM posterior's noise")
    if sampler == "ddpm" and args.eta is not None:
        raise _Usage(f"--eta: applies to --sampler ddim only, got {eta}")
    if every < 0:
        raise _Usage(f"--trajectory-every: expected an int >= 1 (or 0 for none), got {every}")
    last = getattr(args, "trajectory_last", None)
    if last is not None and last < 1:
        raise _Usage(f"--trajectory-last: expected an int >= 1 (the number of final steps kept), got {last}")
    if weights not in ("auto", "ema", "raw"):
        raise _Usage(f"--weights: expected ema or raw, got {weights!r}")
    if weights == "ema" and payload["ema"] is None:
        raise _Usage(f"--weights: 'ema' but checkpoint {str(path)!r} has no EMA weights (train.ema = 0); allowed: raw")
    if weights == "raw" and payload.get("slim_weights") == "ema":
        raise _Usage(f"--weights: 'raw' but checkpoint {str(path)!r} keeps only EMA weights (a slim checkpoint); allowed: ema")
    if weights == "auto":
        weights = "ema" if payload["ema"] is not None else "raw"
    num_batches = -(-n // batch)
    check_seed("--seed", seed, (2**63 - 1 - (num_batches - 1)) // SEED_STRIDE,
               hint=f"batch k draws with seed S * {SEED_STRIDE} + k, which must fit int64")
    device = _device(args.device)
    try:
        model = model_from_config(payload["model_kind"], dict(payload["model_config"]))
        model.load_state_dict(payload["ema"] if weights == "ema" else payload["model"])
    except (ValueError, TypeError, RuntimeError) as exc:
        raise ck.CheckpointError(f"checkpoint {str(path)!r}: its weights do not fit its model "
                                 f"{payload['model_kind']} {payload['model_config']}: {str(exc).splitlines()[0]}") from None
    model = model.to(device).eval()
    learned = bool(getattr(model, "learn_variance", False))
    if variance == "learned" and not learned:
        raise _Usage(f"--variance: 'learned' needs a model with a variance head; checkpoint {str(path)!r} has "
                     "none; allowed: beta, beta_tilde")
    mc = payload["model_config"]
    if payload["model_kind"] == "unet":
        shape = (mc["in_channels"], mc["image_size"], mc["image_size"])
    else:
        shape = (mc["dim"],)
    schedule = build_schedule(cfg)
    options: dict[str, Any] = {"num_steps": steps or None, "clip_x0": bool(getattr(args, "clip_x0", False))}
    if sampler == "ddpm":
        options["variance"] = variance
    else:
        options["eta"] = float(eta)
    if last is not None:
        num = steps or T
        if last > num:
            raise _Usage(f"--trajectory-last: expected at most the number of sampling steps ({num}), got {last}")
        every = every or 1
        options.update(record_last=last, record_every=every, record_device="cpu")
    elif every:
        options.update(record=True, record_every=every, record_device="cpu")
    fn = ddpm if sampler == "ddpm" else ddim
    item = math.prod(shape)
    kept = 0
    if every:
        kept = -(-min(last or (steps or T), steps or T) // every) + 1
    check_memory("--n", n, item * (4 + 4 + 1 + 1) + kept * item * 2 * 2 * 3 + 16,
                 f"samples of shape {list(shape)}" + (f" with {kept} recorded trajectory steps" if kept else ""))
    out, _ = prepare_output(out, NPZ_OUTPUT, bool(getattr(args, "force", False)))
    from tqdm.auto import tqdm

    samples, traj_x, traj_x0, batch_seed, batch_row = [], [], [], [], []
    recorded = None
    num_batches = -(-n // batch)
    for k in tqdm(range(num_batches), desc="sample", unit="batch", disable=args.quiet, dynamic_ncols=True):
        b = min(batch, n - k * batch)
        key = seed * SEED_STRIDE + k
        g = torch.Generator(device=device).manual_seed(key)
        res = fn(model, schedule, shape=(b, *shape), generator=g, device=device, **options)
        samples.append(res.samples.float().cpu())
        batch_seed += [key] * b
        batch_row += list(range(b))
        if every:
            traj_x.append(res.x_t.to(torch.float16))
            traj_x0.append(res.x0_hat.to(torch.float16))
            recorded = res.recorded_steps
    x = torch.cat(samples)
    arrays: dict[str, Any] = {}
    if payload["model_kind"] == "unet":
        img = ((x.double() + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)
        arrays["images"] = (img[:, 0] if img.shape[1] == 1 else img.permute(0, 2, 3, 1)).numpy()
    else:
        arrays["samples"] = x.numpy().astype(np.float32)
    arrays["batch_seed"] = np.asarray(batch_seed, dtype=np.int64)
    arrays["batch_row"] = np.asarray(batch_row, dtype=np.int64)
    if every:
        arrays["trajectory_x_t"] = torch.cat(traj_x, dim=1).numpy()
        arrays["trajectory_x0_hat"] = torch.cat(traj_x0, dim=1).numpy()
        arrays["trajectory_steps"] = np.asarray(recorded, dtype=np.int64)
    meta = {
        "checkpoint": str(path), "checkpoint_step": payload["step"], "config": cfg,
        "model_kind": payload["model_kind"], "model_config": _plain(payload["model_config"]),
        "weights": weights, "device": str(device),
        "sampler": {"name": sampler, "steps": steps or T, "respaced": bool(steps and steps < T), **(
            {"variance": variance} if sampler == "ddpm" else {"eta": float(eta)}), "clip_x0": options["clip_x0"]},
        "n": n, "batch_size": batch, "seed": seed,
        "seed_scheme": f"batch k (size {batch}, last smaller) drawn with torch.Generator(device).manual_seed("
                       f"{seed} * {SEED_STRIDE} + k); sample i = row batch_row[i] of the batch with seed batch_seed[i]",
        "trajectory_every": every, "trajectory_last": last,
    }
    arrays["metadata"] = np.asarray(json.dumps(meta))
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    with input_errors("--out", out, "cannot write"):
        atomic_write_bytes(out, buffer.getvalue())
    if not args.quiet:
        print(f"vsmlab sample: {n} samples written to {str(out)!r}", file=sys.stderr)
    return 0
