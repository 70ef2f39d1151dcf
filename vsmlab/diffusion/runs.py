"""Run folders: a config trained into a folder that can be continued exactly (``vsmlab train`` calls this).

:func:`train_run` trains a resolved config (:mod:`vsmlab.diffusion.config`) into ``out``:

- ``config.toml``: the resolved config; ``log.jsonl``: one JSON line per read step (step, lr, every loss
  term, grad_norm); ``latest.pt`` and ``step_NNNNNNN.pt`` (:mod:`vsmlab.diffusion.checkpoints`): a
  checkpoint every ``train.save_every`` steps (the newest ``train.keep_last`` step files kept) and always one
  at the end.
- A new run needs ``out`` new, empty or a run folder vsmlab wrote (config.toml, log.jsonl, checkpoints,
  weights, vsmlab sample sets: :func:`run_folder_kind`); a file, the working folder or a folder holding
  other files is refused. A folder that already holds a run is never overwritten: ``resume=True``
  continues it from ``latest.pt`` (the config must equal the checkpoint's up to
  :data:`~vsmlab.diffusion.checkpoints.RESUMABLE_KEYS`; on CPU the resumed run ends bit-identical to an
  uninterrupted one), ``force=True`` starts it over. A folder with an interrupted run that wrote no
  checkpoint is started over.
- Resuming keeps the lines of ``log.jsonl`` up to the checkpoint's step and drops the rest (the tail a
  killed run wrote after its last checkpoint), so the log reads as one uninterrupted run.
- Under ``torchrun`` (``WORLD_SIZE`` > 1) the run is DDP: the process group is set up here (nccl on CUDA,
  gloo on CPU) and torn down at the end; each rank takes its slice of the global batch; rank 0 writes files
  and shows progress.

Errors: ConfigError, CheckpointError or ValueError naming the argument as the caller spells it (``arg_names``
maps parameter names to the caller's spelling: the command line passes its flags; by default ``out``,
``resume=True``, ``force=True``, ``device``); :class:`~vsmlab.diffusion.training.TrainingDiverged` when a loss
term stops being finite (the last checkpoint in the folder is kept). Test hook: with ``VSMLAB_TEST_KILL_AT_STEP``
= s in the environment the process SIGKILLs itself right after global step s.
"""

from __future__ import annotations

import json
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import torch

from vsmlab.core.outputs import say

__all__ = ["TrainedRun", "train_run", "run_folder_kind", "check_data_memory", "KILL_ENV"]

#: test hook: SIGKILL the training process right after this global step (e.g. to test exact resume)
KILL_ENV = "VSMLAB_TEST_KILL_AT_STEP"

_NAMES = {"out": "out", "resume": "resume=True", "force": "force=True", "device": "device"}


@dataclass(frozen=True)
class TrainedRun:
    """What :func:`train_run` did: ``out`` (the run folder), ``latest`` (its ``latest.pt``), ``start_step``
    (0 for a new run, else the step resumed from), ``step`` (the global step reached), ``steps``
    (``train.steps``) and ``rank`` (this process's rank; 0 without DDP). ``start_step >= steps``: nothing
    was left to train."""

    out: Path
    latest: Path
    start_step: int
    step: int
    steps: int
    rank: int = 0


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


def run_folder_kind():
    """The :class:`~vsmlab.core.outputs.OutputKind` of a training run folder (what ``force`` may replace)."""
    from vsmlab.core.outputs import OutputKind

    return OutputKind("a training run folder", folder=True, owned=_owned_run)


def check_data_memory(cfg: Mapping[str, Any]) -> None:
    """Refuse a training set that cannot fit in memory, before it is drawn (ValueError naming ``data.n``)."""
    from vsmlab.core.checks import check_memory

    data = cfg["data"]
    if data["kind"] == "mixture":
        check_memory("data.n", data["n"], 2 * 4 * 2, "mixture points")
        return
    channels = {"shapes": 1, "cards": 3 if data.get("rgb") else 1, "chess": 3}[data["kind"]]
    side = data["size"]
    # the uint8 set plus the copies made while drawing it (tiles gathered, then laid out)
    check_memory("data.n", data["n"], 3 * channels * side * side + 400, f"{data['kind']} images of {side}x{side} px")


def train_run(config: str | os.PathLike | Mapping[str, Any], out: str | os.PathLike | None = None, *,
              overrides: Sequence[str] = (), device: str | None = None, resume: bool = False, force: bool = False,
              progress: bool = False, log: Callable[[str], None] | None = say,
              arg_names: Mapping[str, str] | None = None) -> TrainedRun:
    """Train ``config`` (a TOML path plus ``overrides`` such as ``"train.lr=2e-4"``, or a resolved config
    dict) into the run folder ``out`` (default ``runs/<config stem>`` for a path); module docstring for the
    folder protocol. device: "cpu" | "cuda" | "cuda:N" (None: cuda when available). progress: a progress bar
    on rank 0. log: where lines such as "started over in ..." go (None: nowhere)."""
    from vsmlab.core.checks import resolve_device
    from vsmlab.diffusion.config import load_config, validate_config

    a = {**_NAMES, **(arg_names or {})}
    if resume and force:
        raise ValueError(f"{a['resume']}, {a['force']}: choose one ({a['resume']} continues the run in {a['out']}, "
                         f"{a['force']} starts it over)")
    if isinstance(config, Mapping):
        if overrides:
            raise ValueError("overrides: apply them when loading the config (load_config(path, overrides)); "
                             "got a resolved config")
        if out is None:
            raise ValueError(f"{a['out']}: required when the config is a dict (no file stem to name the folder)")
        cfg = validate_config(dict(config))
    else:
        cfg = load_config(config, list(overrides))
    out = Path(out) if out is not None else Path("runs") / Path(config).stem
    check_data_memory(cfg)
    device = resolve_device(a["device"], device)
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
        return _train_in_folder(cfg, out, device, rank, dist, resume, force, progress, log if rank == 0 else None, a)
    finally:
        if dist is not None and dist.is_initialized():
            dist.destroy_process_group()


def _prepare_folder(out: Path, rank: int, dist, resume: bool, force: bool, log, a: dict[str, str]) -> tuple[Path, bool]:
    """Check ``out`` for a new, resumed or restarted run and empty it for a restart; returns (out, existing)."""
    from vsmlab.core.io import remove_stale_temps
    from vsmlab.core.outputs import describe_entry, discard_folder, prepare_output
    from vsmlab.diffusion import checkpoints as ck

    if resume:  # nothing is replaced: the run's own folder is continued, whatever else it holds
        if not str(out).strip():
            raise ValueError(f"{a['out']}: expected a path, got {str(out)!r}")
        if out.exists() and not out.is_dir():
            raise ValueError(f"{a['out']}: {str(out)!r} is {describe_entry(out)}, not a run folder")
        if rank == 0:
            remove_stale_temps(out, log=log)
    else:
        out, _ = prepare_output(out, run_folder_kind(), force=True, flag=a["out"], log=log, clean=rank == 0,
                                force_flag=a["force"])
    latest = ck.latest_path(out)
    existing = latest.exists() or bool(ck.step_checkpoints(out))
    if existing and not resume and not force:
        raise ValueError(f"{a['out']}: {str(out)!r} already holds a run ({'latest.pt' if latest.exists() else 'step_*.pt'}); "
                         f"pass {a['resume']} to continue it, {a['force']} to start it over, or choose another "
                         f"{a['out']} (nothing was overwritten)")
    if resume and not latest.exists():
        raise ValueError(f"{a['resume']}: no checkpoint {str(latest)!r} to continue from; start without {a['resume']}")
    if not existing and not force and not resume and out.is_dir():
        extra = sorted(p.name for p in out.iterdir() if p.name not in ("config.toml", "log.jsonl"))
        if extra:
            raise ValueError(f"{a['out']}: {str(out)!r} holds a run folder without a checkpoint but with "
                             f"{', '.join(extra[:3])}; pass {a['force']} to start it over, or choose another "
                             f"{a['out']} (nothing was overwritten)")
    if dist is not None:
        dist.barrier()  # every rank has checked the folder before rank 0 changes it
    if rank == 0 and out.is_dir() and not resume and any(out.iterdir()):
        what = "the run" if existing else "an interrupted run that wrote no checkpoint"
        discard_folder(out)
        if log is not None:
            log(f"started over in {str(out)!r}: removed {what} it held")
    return out, existing


def _trim_log(log_path: Path, start: int) -> bytes:
    """The lines of ``log.jsonl`` up to step ``start`` (a resumed run drops what a killed run wrote after its
    last checkpoint); nothing for a new run."""
    kept = []
    if start and log_path.exists():
        for line in log_path.read_text(encoding="utf-8").splitlines():
            try:
                if json.loads(line)["step"] <= start:
                    kept.append(line)
            except (ValueError, KeyError, TypeError):
                pass
    return "".join(x + "\n" for x in kept).encode()


def _train_in_folder(cfg, out: Path, device: torch.device, rank: int, dist, resume: bool, force: bool,
                     progress: bool, log, a: dict[str, str]) -> TrainedRun:
    from tqdm.auto import tqdm

    from vsmlab.core.io import atomic_write_bytes
    from vsmlab.diffusion import checkpoints as ck
    from vsmlab.diffusion.config import (build_data, build_loss, build_model, build_schedule, format_config,
                                         trainer_options)
    from vsmlab.diffusion.training import Trainer

    out, _ = _prepare_folder(out, rank, dist, resume, force, log, a)
    latest = ck.latest_path(out)
    data = build_data(cfg)
    model = build_model(cfg, tuple(data.shape))
    schedule = build_schedule(cfg)
    trainer = Trainer(model, data, schedule, loss_fn=build_loss(cfg), device=device, **trainer_options(cfg))
    start = 0
    if resume:
        payload = ck.load_checkpoint(latest, map_location="cpu")  # RNG states must stay CPU byte tensors
        ck.check_config_matches(latest, payload["config"], cfg)
        if payload["model_kind"] != cfg["model"]["kind"] or ck.plain(payload["model_config"]) != ck.plain(model.config):
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
        atomic_write_bytes(log_path, _trim_log(log_path, start))
    if dist is not None:
        dist.barrier()

    def payload_now() -> dict[str, Any]:
        return {"format": ck.FORMAT, "version": ck.VERSION, "config": cfg, "model_kind": cfg["model"]["kind"],
                "model_config": ck.plain(model.config), **trainer.state_dict()}

    if start >= steps:
        return TrainedRun(out, latest, start, start, steps, rank)
    kill_at = int(os.environ.get(KILL_ENV, "0") or 0)
    bar = tqdm(total=steps, initial=start, disable=rank != 0 or not progress, desc=f"train {out.name}",
               unit="step", dynamic_ncols=True)
    log_file = open(log_path, "a", encoding="utf-8") if rank == 0 else None
    last_step, last_time = start, time.perf_counter()
    try:
        for rec in trainer.run():
            if isinstance(rec.terms["total"], float):  # a read step
                now = time.perf_counter()
                rate = cfg["train"]["batch_size"] * (rec.step - last_step) / max(now - last_time, 1e-9)
                if rank == 0:
                    entry = {"step": rec.step, "lr": rec.lr, **rec.terms, "grad_norm": rec.grad_norm}
                    log_file.write(json.dumps(entry) + "\n")
                    log_file.flush()
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
        if log_file is not None:
            log_file.close()
    return TrainedRun(out, latest, start, trainer.step, steps, rank)
