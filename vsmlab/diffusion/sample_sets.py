"""Sample sets: ``n`` samples of a model drawn in batches under one seed scheme, and the .npz file that holds them.

Seed scheme. Batch k (of ``batch_size`` samples; the last one smaller) is drawn with a fresh
``torch.Generator(device).manual_seed(seed * SEED_STRIDE + k)``, ``SEED_STRIDE = 1000003``; sample i is row
``batch_row[i]`` of the batch whose seed is ``batch_seed[i]``. The same (seed, batch size, sampler options,
device) regenerates every sample exactly, and a batch can be redrawn on its own. Seeds must keep every batch
seed inside int64: ``seed <= (2**63 - 1 - (batches - 1)) // SEED_STRIDE``.

- :func:`draw_samples`: the loop above over :func:`vsmlab.diffusion.samplers.ddpm` / ``ddim`` for any model,
  returning float samples ``[n, ...]`` on the CPU with their seeds and (optionally) trajectories.
- :func:`to_uint8`: model space [-1, 1] -> uint8 pixels, ``round((x + 1) * 127.5)`` in float64, clamped to 0..255.
- :func:`sample_checkpoint`: a checkpoint -> an .npz written atomically (``vsmlab sample`` calls it):

  - ``images`` uint8 [N, H, W] (one channel) or [N, H, W, 3] for a UNet, ``samples`` float32 [N, d] for an MLP;
  - ``batch_seed``, ``batch_row`` int64 [N] (the seed scheme above);
  - with trajectories: ``trajectory_x_t``, ``trajectory_x0_hat`` float16 [R, N, ...] (model space) and
    ``trajectory_steps`` int64 [R]: every ``trajectory_every``-th step counted back from the last, or only the
    last ``trajectory_last`` steps (recorded inside the sampler, so a long run does not hold every step);
  - ``metadata``: a JSON string with the config, checkpoint path and step, weights, sampler options, seed scheme,
    and for a learned-variance model sampled by DDPM ``frac_outside``: how often its own frac = (v + 1) / 2 left
    [0, 1] (:class:`FracSummary`; counted also when ``variance_frac`` overrode it).

  Every option left None takes the checkpoint config's ``[sample]`` value. ``weights``: "ema" | "raw" ("auto":
  EMA when the checkpoint has it); ``variance``: "auto" | "beta" | "beta_tilde" | "learned" (DDPM);
  ``variance_frac`` f in [0, 1] (DDPM, learned-variance models): Sigma_t = exp(f log beta_t + (1 - f) log
  beta_tilde_t) in place of the model's own v; ``eta`` in [0, 1] (DDIM); ``clip_x0`` clips x0_hat to [-1, 1] at
  every step. An existing output is replaced only with ``force`` and only when it is an .npz vsmlab wrote;
  a file that is not a vsmlab checkpoint is refused before it is loaded (:func:`checkpoints.read_checkpoint`).

Errors are ValueErrors (CheckpointError for the checkpoint) whose message starts with the argument's name as
the caller spells it: ``arg_names`` maps parameter names to the caller's spelling (the command line passes its
flags, e.g. ``{"n": "--n"}``); by default the parameter names themselves.
"""

from __future__ import annotations

import io
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from vsmlab.core.schedules import Schedule

__all__ = ["SEED_STRIDE", "FracSummary", "sum_fracs", "DrawnSamples", "draw_samples", "to_uint8", "SampleSetInfo",
           "sample_checkpoint"]

#: batch k of a sample set with seed S draws with generator seed S * SEED_STRIDE + k
SEED_STRIDE = 1_000_003

_NAMES = {**{k: k for k in ("checkpoint", "out", "n", "seed", "sampler", "steps", "variance", "variance_frac", "eta",
                            "weights", "batch_size", "trajectory_every", "trajectory_last", "device")},
          "force": "force=True"}


@dataclass(frozen=True)
class FracSummary:
    """How often a learned-variance model's own frac = (v + 1) / 2 left [0, 1] over a whole sample set
    (:class:`vsmlab.diffusion.samplers.FracCounts` summed over batches): ``below`` (Sigma < beta_tilde_t) and
    ``above`` (Sigma > beta_t) elements out of ``total`` (samples x dimensions x noise-drawing steps);
    ``min_frac`` / ``max_frac`` the extremes."""

    below: int
    above: int
    total: int
    min_frac: float
    max_frac: float

    @property
    def share_outside(self) -> float:
        """(below + above) / total."""
        return (self.below + self.above) / self.total if self.total else 0.0

    def as_dict(self) -> dict[str, float | int]:
        """Plain numbers (JSON and cache friendly), with ``share_outside``."""
        return {"below": self.below, "above": self.above, "total": self.total, "min_frac": self.min_frac,
                "max_frac": self.max_frac, "share_outside": self.share_outside}


def sum_fracs(counts: list) -> FracSummary | None:
    """One :class:`FracSummary` from the :class:`vsmlab.diffusion.samplers.FracCounts` of several batches (None for
    none); reads the device tensors once."""
    if not counts:
        return None
    return FracSummary(sum(int(c.below.sum()) for c in counts), sum(int(c.above.sum()) for c in counts),
                       sum(c.total for c in counts), min(float(c.low.min()) for c in counts),
                       max(float(c.high.max()) for c in counts))


@dataclass
class DrawnSamples:
    """samples: float32 [n, ...] on the CPU (model space); batch_seed, batch_row: int64 [n]; x_t, x0_hat:
    float16 [R, n, ...] or None (the recorded steps, sampling order); recorded_steps: the R steps or None;
    frac: :class:`FracSummary` (DDPM sampling of a model that returns v) or None."""

    samples: torch.Tensor
    batch_seed: torch.Tensor
    batch_row: torch.Tensor
    x_t: torch.Tensor | None = None
    x0_hat: torch.Tensor | None = None
    recorded_steps: list[int] | None = None
    frac: FracSummary | None = None


def draw_samples(model: nn.Module, schedule: Schedule, n: int, seed: int, batch_size: int, shape: tuple[int, ...],
                 sampler: str = "ddpm", num_steps: int | None = None, variance: str = "auto",
                 variance_frac: float | None = None, eta: float = 0.0, clip_x0: bool = False,
                 record_every: int = 0, record_last: int | None = None, device: torch.device | str = "cpu",
                 progress: bool = False) -> DrawnSamples:
    """``n`` samples of ``model`` (one sample: ``shape``) by the module's seed scheme, ``batch_size`` per batch.

    sampler "ddpm" takes ``variance`` / ``variance_frac``, "ddim" takes ``eta``; ``num_steps``: respaced steps
    (None: all T). Trajectories: ``record_last`` = L keeps the last L steps (every ``record_every``-th of them,
    default every one), else ``record_every`` = k > 0 keeps every k-th step; both are moved to the CPU as they
    are recorded. The sampler checks its own options (ValueErrors naming them)."""
    from tqdm.auto import tqdm

    from vsmlab.diffusion.samplers import ddim, ddpm

    options: dict[str, Any] = {"num_steps": num_steps, "clip_x0": bool(clip_x0)}
    if sampler == "ddpm":
        options["variance"] = variance
        if variance_frac is not None:
            options["variance_frac"] = variance_frac
    else:
        options["eta"] = float(eta)
    if record_last is not None:
        options.update(record_last=record_last, record_every=record_every or 1, record_device="cpu")
    elif record_every:
        options.update(record=True, record_every=record_every, record_device="cpu")
    fn = ddpm if sampler == "ddpm" else ddim
    device = torch.device(device)
    samples, traj_x, traj_x0, batch_seed, batch_row, fracs = [], [], [], [], [], []
    recorded = None
    num_batches = -(-n // batch_size)
    for k in tqdm(range(num_batches), desc="sample", unit="batch", disable=not progress, dynamic_ncols=True):
        b = min(batch_size, n - k * batch_size)
        key = seed * SEED_STRIDE + k
        g = torch.Generator(device=device).manual_seed(key)
        res = fn(model, schedule, shape=(b, *shape), generator=g, device=device, **options)
        samples.append(res.samples.float().cpu())
        batch_seed += [key] * b
        batch_row += list(range(b))
        if res.frac is not None and res.frac.steps:
            fracs.append(res.frac)
        if res.x_t is not None:
            traj_x.append(res.x_t.to(torch.float16))
            traj_x0.append(res.x0_hat.to(torch.float16))
            recorded = res.recorded_steps
    return DrawnSamples(torch.cat(samples), torch.tensor(batch_seed, dtype=torch.int64),
                        torch.tensor(batch_row, dtype=torch.int64),
                        torch.cat(traj_x, dim=1) if traj_x else None, torch.cat(traj_x0, dim=1) if traj_x0 else None,
                        recorded, sum_fracs(fracs))


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """Images in model space [-1, 1] -> uint8 pixels ``round((x + 1) * 127.5)`` (in float64), clamped to 0..255."""
    return ((x.double() + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)


@dataclass(frozen=True)
class SampleSetInfo:
    """What :func:`sample_checkpoint` wrote: ``out`` (the .npz), ``n`` and ``metadata`` (the stored JSON, as a dict)."""

    out: Path
    n: int
    metadata: dict[str, Any]


def _option(value: Any, cfg: dict[str, Any], key: str) -> Any:
    return cfg["sample"][key] if value is None else value


def sample_checkpoint(checkpoint: str | os.PathLike, out: str | os.PathLike, *, n: int | None = None,
                      seed: int | None = None, sampler: str | None = None, steps: int | None = None,
                      variance: str | None = None, variance_frac: float | None = None, eta: float | None = None,
                      clip_x0: bool = False, weights: str | None = None, batch_size: int | None = None,
                      trajectory_every: int | None = None, trajectory_last: int | None = None,
                      device: str | None = None, force: bool = False, progress: bool = False,
                      arg_names: Mapping[str, str] | None = None) -> SampleSetInfo:
    """Draw a sample set from ``checkpoint`` (a run's ``latest.pt`` / ``step_NNNNNNN.pt`` or a ``.safetensors``
    weights file) into the .npz ``out``, atomically (module docstring: layout, options, errors)."""
    import numpy as np

    from vsmlab.core.checks import check_int, check_memory, check_range, check_seed, input_errors, resolve_device
    from vsmlab.core.io import atomic_write_bytes
    from vsmlab.core.outputs import NPZ_OUTPUT, prepare_output
    from vsmlab.diffusion import checkpoints as ck
    from vsmlab.diffusion.config import build_schedule, model_from_config, validate_config

    a = {**_NAMES, **(arg_names or {})}
    out = Path(out)
    if out.suffix != ".npz":
        raise ValueError(f"{a['out']}: expected a file name ending in .npz, got {str(out)!r}")
    path = Path(checkpoint)
    payload = ck.read_checkpoint(path, a["checkpoint"])
    try:
        cfg = validate_config(payload["config"], source=f"checkpoint {str(path)!r} config")
    except ValueError as exc:
        raise ck.CheckpointError(str(exc)) from None
    T = cfg["diffusion"]["T"]
    steps_given = steps is not None
    n, seed, sampler = _option(n, cfg, "n"), _option(seed, cfg, "seed"), _option(sampler, cfg, "sampler")
    variance_given, eta_given = variance is not None, eta is not None
    steps, variance, eta = _option(steps, cfg, "steps"), _option(variance, cfg, "variance"), _option(eta, cfg, "eta")
    weights, batch = _option(weights, cfg, "weights"), _option(batch_size, cfg, "batch_size")
    every, last = _option(trajectory_every, cfg, "trajectory_every"), trajectory_last
    check_int(a["n"], n, low=1, hint="number of samples")
    check_int(a["batch_size"], batch, low=1)
    check_int(a["seed"], seed, low=0)
    if sampler not in ("ddpm", "ddim"):
        raise ValueError(f"{a['sampler']}: expected ddpm or ddim, got {sampler!r}")
    if (steps_given or steps) and not 2 <= steps <= T:  # steps 0 / 1 refused; the config's 0 = all
        raise ValueError(f"{a['steps']}: expected an int in 2..{T} (the checkpoint's diffusion.T), got {steps}")
    if variance not in ("auto", "beta", "beta_tilde", "learned"):
        raise ValueError(f"{a['variance']}: expected beta, beta_tilde or learned, got {variance!r}")
    if sampler == "ddim" and variance_given:
        raise ValueError(f"{a['variance']}: applies to {a['sampler']} ddpm only (DDIM's noise is set by {a['eta']}), "
                         f"got {variance!r}")
    check_range(a["eta"], eta, 0, 1, hint="DDIM: 0 deterministic, 1 the DDPM posterior's noise")
    if sampler == "ddpm" and eta_given:
        raise ValueError(f"{a['eta']}: applies to {a['sampler']} ddim only, got {eta}")
    if variance_frac is not None:
        check_range(a["variance_frac"], variance_frac, 0, 1,
                    hint="Sigma_t = exp(f log beta_t + (1 - f) log beta_tilde_t): 0 beta_tilde_t, 1 beta_t")
        if sampler == "ddim":
            raise ValueError(f"{a['variance_frac']}: applies to {a['sampler']} ddpm only, got {variance_frac}")
        if variance in ("beta", "beta_tilde"):
            raise ValueError(f"{a['variance_frac']}: {variance_frac} replaces a learned variance and conflicts with "
                             f"{a['variance']} {variance}; allowed with {a['variance']} learned or auto")
    if every < 0:
        raise ValueError(f"{a['trajectory_every']}: expected an int >= 1 (or 0 for none), got {every}")
    if last is not None and last < 1:
        raise ValueError(f"{a['trajectory_last']}: expected an int >= 1 (the number of final steps kept), got {last}")
    if weights not in ("auto", "ema", "raw"):
        raise ValueError(f"{a['weights']}: expected ema or raw, got {weights!r}")
    if weights == "ema" and payload["ema"] is None:
        raise ValueError(f"{a['weights']}: 'ema' but checkpoint {str(path)!r} has no EMA weights (train.ema = 0); "
                         "allowed: raw")
    if weights == "raw" and payload.get("slim_weights") == "ema":
        raise ValueError(f"{a['weights']}: 'raw' but checkpoint {str(path)!r} keeps only EMA weights (a slim "
                         "checkpoint); allowed: ema")
    if weights == "auto":
        weights = "ema" if payload["ema"] is not None else "raw"
    num_batches = -(-n // batch)
    check_seed(a["seed"], seed, (2**63 - 1 - (num_batches - 1)) // SEED_STRIDE,
               hint=f"batch k draws with seed S * {SEED_STRIDE} + k, which must fit int64")
    device = resolve_device(a["device"], device)
    try:
        model = model_from_config(payload["model_kind"], dict(payload["model_config"]))
        model.load_state_dict(payload["ema"] if weights == "ema" else payload["model"])
    except (ValueError, TypeError, RuntimeError) as exc:
        raise ck.CheckpointError(f"checkpoint {str(path)!r}: its weights do not fit its model "
                                 f"{payload['model_kind']} {payload['model_config']}: {str(exc).splitlines()[0]}") from None
    model = model.to(device).eval()
    learned = bool(getattr(model, "learn_variance", False))
    if variance == "learned" and not learned:
        raise ValueError(f"{a['variance']}: 'learned' needs a model with a variance head; checkpoint {str(path)!r} "
                         "has none; allowed: beta, beta_tilde")
    if variance_frac is not None and not learned:
        raise ValueError(f"{a['variance_frac']}: overrides a learned variance, but checkpoint {str(path)!r} has no "
                         f"variance head (a fixed-variance model); use {a['variance']} beta or beta_tilde instead")
    mc = payload["model_config"]
    shape = (mc["in_channels"], mc["image_size"], mc["image_size"]) if payload["model_kind"] == "unet" else (mc["dim"],)
    if last is not None:
        num = steps or T
        if last > num:
            raise ValueError(f"{a['trajectory_last']}: expected at most the number of sampling steps ({num}), got {last}")
        every = every or 1
    item = math.prod(shape)
    kept = 0
    if every:
        kept = -(-min(last or (steps or T), steps or T) // every) + 1
    check_memory(a["n"], n, item * (4 + 4 + 1 + 1) + kept * item * 2 * 2 * 3 + 16,
                 f"samples of shape {list(shape)}" + (f" with {kept} recorded trajectory steps" if kept else ""))
    out, _ = prepare_output(out, NPZ_OUTPUT, bool(force), flag=a["out"], force_flag=a["force"])
    drawn = draw_samples(model, build_schedule(cfg), n, seed, batch, shape, sampler=sampler, num_steps=steps or None,
                         variance=variance, variance_frac=variance_frac, eta=eta, clip_x0=clip_x0,
                         record_every=every, record_last=last, device=device, progress=progress)
    arrays: dict[str, Any] = {}
    if payload["model_kind"] == "unet":
        img = to_uint8(drawn.samples)
        arrays["images"] = (img[:, 0] if img.shape[1] == 1 else img.permute(0, 2, 3, 1)).numpy()
    else:
        arrays["samples"] = drawn.samples.numpy().astype(np.float32)
    arrays["batch_seed"] = drawn.batch_seed.numpy()
    arrays["batch_row"] = drawn.batch_row.numpy()
    if every:
        arrays["trajectory_x_t"] = drawn.x_t.numpy()
        arrays["trajectory_x0_hat"] = drawn.x0_hat.numpy()
        arrays["trajectory_steps"] = np.asarray(drawn.recorded_steps, dtype=np.int64)
    variance_options = {"variance": variance} if variance_frac is None else {"variance": variance,
                                                                             "variance_frac": float(variance_frac)}
    meta = {
        "checkpoint": str(path), "checkpoint_step": payload["step"], "config": cfg,
        "model_kind": payload["model_kind"], "model_config": ck.plain(payload["model_config"]),
        "weights": weights, "device": str(device),
        "sampler": {"name": sampler, "steps": steps or T, "respaced": bool(steps and steps < T), **(
            variance_options if sampler == "ddpm" else {"eta": float(eta)}), "clip_x0": bool(clip_x0)},
        "n": n, "batch_size": batch, "seed": seed,
        "seed_scheme": f"batch k (size {batch}, last smaller) drawn with torch.Generator(device).manual_seed("
                       f"{seed} * {SEED_STRIDE} + k); sample i = row batch_row[i] of the batch with seed batch_seed[i]",
        "trajectory_every": every, "trajectory_last": last,
    }
    if drawn.frac is not None:
        meta["frac_outside"] = drawn.frac.as_dict()
    arrays["metadata"] = np.asarray(json.dumps(meta))
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    with input_errors(a["out"], out, "cannot write"):
        atomic_write_bytes(out, buffer.getvalue())
    return SampleSetInfo(out, n, meta)
