"""The SimpleShapes study of notebook 06: models from TOML configs, checkpoints by explicit path, sample sets.

A *spec* is one trained model: a method name, the TOML config it trains from (``configs/``), the
``--set`` overrides that make the method and the seed, and the seed. Every model of the study is made by
the same command line::

    OMP_NUM_THREADS=1 python -m vsmlab train CONFIG --out DIR --set train.seed=K [--set loss.rho=R ...]

:func:`ensure_trained` runs exactly that command for every missing model (subprocesses through
:mod:`vsmlab.lab.jobs`, so the notebook's process keeps its threads) or, in this process, the function behind it
(:func:`train_in_process`: :func:`vsmlab.diffusion.runs.train_run`);
:func:`load_checkpoint_model` reads a checkpoint by its path and checks that the checkpoint's config equals
the spec's config (up to the keys a resumed run may change: train.steps, save_every, keep_last,
log_every, [sample]) and that its image size is the one asked for, with errors that name the file and
the differing keys. Shipped checkpoints (``checkpoints/shapes32/<method>-seed<k>/``) are *slim*
(:func:`slim_checkpoint`: raw and EMA weights, config, step; no optimizer state), so they sample and
evaluate but cannot resume training.

Sample sets (:func:`sample_set`) are drawn by :func:`vsmlab.diffusion.sample_sets.draw_samples`, the loop
behind ``vsmlab sample``: batch k (of ``batch_size``) draws with ``torch.Generator().manual_seed(seed *
1000003 + k)``, so ``vsmlab sample CKPT --seed S --batch-size B --steps 250 --device cpu`` regenerates
every sample; ``batch_seed``/``batch_row`` say which batch and row each sample came from. Sets are cached on disk (:mod:`vsmlab.lab.cache`) keyed by the
checkpoint's bytes (SHA-256), the sampler options and the sampling code.

:func:`unet_term_gradient_norms`: the gradient norm of each loss term (eps-MSE, VB, VSM penalty) on the
UNet's shared trunk, eps output rows and variance output rows (the output convolution's channels split).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from vsmlab.diffusion import checkpoints as ck
from vsmlab.diffusion.config import build_schedule, load_config, model_from_config, validate_config
from vsmlab.diffusion.runs import train_run
from vsmlab.diffusion.sample_sets import draw_samples, to_uint8
from vsmlab.diffusion.variance import term_gradient_norms
from vsmlab.lab.jobs import Job, run_jobs

__all__ = [
    "Spec", "LoadedModel", "spec_config", "train_command", "run_dir", "slim_checkpoint",
    "load_checkpoint_model", "file_sha256", "sample_set", "load_npz_samples", "unet_term_gradient_norms",
    "train_in_process", "ensure_trained",
    "CHECK_IGNORED",
]

#: config keys that may differ between a checkpoint and its spec (what a resumed run may change)
CHECK_IGNORED = ck.RESUMABLE_KEYS
_SAMPLING_MODULES = ("core.schedules", "core.prediction", "nets.unet", "diffusion.samplers", "diffusion.sample_sets",
                     "lab.shapes_study")


@dataclass(frozen=True)
class Spec:
    """One model of the study: ``method`` name, ``config`` (TOML path), extra ``overrides``
    (``section.key=value`` strings) and the training ``seed`` (``train.seed``; data.seed stays the config's)."""

    method: str
    config: str
    seed: int = 0
    overrides: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed: expected an int >= 0, got {self.seed!r}")
        if not isinstance(self.method, str) or not self.method or "/" in self.method:
            raise ValueError(f"method: expected a non-empty name without '/', got {self.method!r}")

    @property
    def all_overrides(self) -> list[str]:
        return [*self.overrides, f"train.seed={self.seed}"]

    @property
    def name(self) -> str:
        """``<method>-seed<k>`` (the run folder's name)."""
        return f"{self.method}-seed{self.seed}"


@dataclass
class LoadedModel:
    """A model read from a checkpoint: ``model`` (eval mode, the chosen weights), ``schedule``,
    ``config`` (the checkpoint's), ``step``, ``weights`` ("ema" | "raw"), ``path`` and ``sha256``."""

    model: nn.Module
    schedule: Any
    config: dict[str, Any]
    step: int
    weights: str
    path: Path
    sha256: str


def spec_config(spec: Spec, root: str | os.PathLike = ".") -> dict[str, dict[str, Any]]:
    """The resolved, validated config of ``spec`` (its TOML file under ``root`` plus overrides)."""
    return load_config(Path(root) / spec.config, spec.all_overrides)


def train_command(spec: Spec, out: str | os.PathLike, extra: Sequence[str] = ()) -> list[str]:
    """The exact ``vsmlab train`` command line that makes ``spec`` in ``out`` (without the environment)."""
    cmd = ["python", "-m", "vsmlab", "train", spec.config, "--out", str(out), "--quiet", "--device", "cpu"]
    for o in [*spec.all_overrides, *extra]:
        cmd += ["--set", o]
    return cmd


def run_dir(root: str | os.PathLike, spec: Spec) -> Path:
    """``root/<method>-seed<k>``."""
    return Path(root) / spec.name


def file_sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def slim_checkpoint(src: str | os.PathLike, dst: str | os.PathLike, weights: str = "both") -> int:
    """Write ``src`` without optimizer state (and with empty RNG/timestep-sampler state) to ``dst``
    atomically; returns the size in bytes. The result loads with :func:`load_checkpoint_model` and
    ``vsmlab sample`` but cannot resume training (``optimizer`` is an empty dict).

    weights: "both" keeps the raw and the EMA weights; "ema" keeps only the EMA weights (half the size;
    ``model`` becomes an empty dict and ``slim_weights = "ema"``, so asking for raw weights is an error
    naming the file).
    """
    if weights not in ("both", "ema"):
        raise ValueError(f"weights: expected 'both' or 'ema', got {weights!r}")
    payload = ck.load_checkpoint(src)
    if weights == "ema" and payload["ema"] is None:
        raise ck.CheckpointError(f"checkpoint {str(src)!r} has no EMA weights; it can only be slimmed with weights='both'")
    payload = dict(payload, optimizer={}, timestep_sampler={"name": payload["timestep_sampler"].get("name", "")},
                   rng={"mode": payload["rng"].get("mode", "")}, slim=True, slim_weights=weights)
    if weights == "ema":
        payload["model"] = {}
    Path(dst).parent.mkdir(parents=True, exist_ok=True)
    ck.save_checkpoint(dst, payload)
    return Path(dst).stat().st_size


def load_checkpoint_model(path: str | os.PathLike, expected: dict[str, Any] | None = None, weights: str = "ema",
                          image_size: int | None = None) -> LoadedModel:
    """Read the checkpoint at ``path`` (explicitly; no cache) and build its model with ``weights``.

    expected: a config (e.g. :func:`spec_config`) the checkpoint's must equal up to :data:`CHECK_IGNORED`
    (CheckpointError naming the file and each differing key otherwise). image_size: the size the caller
    works at (CheckpointError naming both sizes if the checkpoint's differs).
    """
    if weights not in ("ema", "raw"):
        raise ValueError(f"weights: expected 'ema' or 'raw', got {weights!r}")
    path = Path(path)
    payload = ck.load_checkpoint(path, map_location="cpu")
    cfg = validate_config(payload["config"], source=f"checkpoint {str(path)!r} config")
    if expected is not None:
        ck.check_config_matches(path, cfg, expected, CHECK_IGNORED)
    mc = payload["model_config"]
    if image_size is not None and mc.get("image_size") != image_size:
        raise ck.CheckpointError(f"checkpoint {str(path)!r}: image size {mc.get('image_size')}, expected {image_size} "
                                 "(a checkpoint trained at another size cannot be used here)")
    if weights == "raw" and payload.get("slim_weights") == "ema":
        raise ck.CheckpointError(f"checkpoint {str(path)!r} keeps only EMA weights (slimmed with weights='ema'); "
                                 "allowed weights: 'ema'")
    state = payload["ema"] if weights == "ema" else payload["model"]
    if state is None:
        raise ck.CheckpointError(f"checkpoint {str(path)!r} has no EMA weights; allowed weights: 'raw'")
    model = model_from_config(payload["model_kind"], dict(mc))
    model.load_state_dict(state)
    model.eval()
    return LoadedModel(model, build_schedule(cfg), cfg, int(payload["step"]), weights, path, file_sha256(path))


def _sample_uncached(model: nn.Module, schedule, n: int, seed: int, sampler: str, steps: int | None,
                     variance: str, eta: float, batch_size: int, record_last: int, shape: tuple[int, ...],
                     clip_x0: bool = False, variance_frac: float | None = None) -> dict:
    drawn = draw_samples(model, schedule, n, seed, batch_size, shape, sampler=sampler, num_steps=steps,
                         variance=variance, variance_frac=variance_frac, eta=eta, clip_x0=clip_x0,
                         record_last=record_last or None, device="cpu")
    out = {"images": to_uint8(drawn.samples)[:, 0], "batch_seed": drawn.batch_seed, "batch_row": drawn.batch_row}
    if drawn.frac is not None:
        out["frac_outside"] = drawn.frac.as_dict()
    if record_last:
        out["x0_hat"] = drawn.x0_hat
        out["recorded_steps"] = torch.tensor(drawn.recorded_steps, dtype=torch.int64)
    return out


def sample_set(loaded: LoadedModel | nn.Module, n: int, seed: int, sampler: str = "ddpm", steps: int | None = 250,
               variance: str = "auto", eta: float = 0.0, batch_size: int = 64, record_last: int = 0,
               schedule=None, cache: bool | None = None, label: str = "", size: int | None = None,
               clip_x0: bool = False, variance_frac: float | None = None) -> dict[str, Any]:
    """``n`` samples as ``vsmlab sample`` draws them: {"images": uint8 [n, H, W], "batch_seed", "batch_row":
    int64 [n]} and with ``record_last`` = k > 0 also "x0_hat" float16 [k, n, 1, H, W] (the last k steps,
    sampling order) and "recorded_steps" [k]. sampler: "ddpm" (variance auto | beta | beta_tilde | learned)
    or "ddim" (eta). A LoadedModel is cached under its checkpoint hash; a bare module (e.g. the exact
    score) needs ``schedule`` and ``label`` (part of the cache key) and is cached only when label is set;
    ``size``: the image side for a bare model that does not say (no ``image_size`` / ``size`` attribute).
    clip_x0: clip x0_hat to [-1, 1] at every step (improved DDPM's ``clip_denoised=True``, the default of its
    and the VSM code's image sampler; ``vsmlab sample --clip-x0``). variance_frac: f in [0, 1] forces a
    learned-variance model's Sigma_t = exp(f log beta_t + (1 - f) log beta_tilde_t) with the same noise as
    without it (``vsmlab sample --variance-frac``). A learned-variance model's set also has "frac_outside"
    (:meth:`vsmlab.diffusion.sample_sets.FracSummary.as_dict`: how often its own v left [-1, 1])."""
    from vsmlab.lab.cache import load_or_compute

    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n: expected an int >= 1 (number of samples), got {n!r}")
    if sampler not in ("ddpm", "ddim"):
        raise ValueError(f"sampler: expected 'ddpm' or 'ddim', got {sampler!r}")
    if isinstance(loaded, LoadedModel):
        model, schedule, key_id = loaded.model, loaded.schedule, f"{loaded.sha256}:{loaded.weights}"
        size = loaded.model.image_size
    else:
        if schedule is None:
            raise ValueError("schedule: required when sampling a bare model (not a LoadedModel)")
        model, key_id = loaded, label
        size = size or getattr(loaded, "image_size", None) or getattr(loaded, "size", None)
        if not isinstance(size, int):
            raise ValueError(f"size: the model {type(loaded).__name__} does not say its image size; pass size=32 or 64")
    shape = (1, size, size)
    key = dict(kind="shapes_study.sample_set", model=key_id, n=n, seed=seed, sampler=sampler, steps=steps,
               variance=variance, eta=float(eta), batch_size=batch_size, record_last=record_last,
               T=schedule.num_steps, clip_x0=bool(clip_x0))
    if variance_frac is not None:
        key["variance_frac"] = float(variance_frac)

    def compute() -> dict:
        with torch.no_grad():
            return _sample_uncached(model, schedule, n, seed, sampler, steps, variance, eta, batch_size,
                                    record_last, shape, bool(clip_x0), variance_frac)

    if not key_id:
        return compute()
    return load_or_compute(key, compute, use_cache=cache, modules=_SAMPLING_MODULES)


def load_npz_samples(path: str | os.PathLike) -> dict[str, Any]:
    """Read a ``vsmlab sample`` npz (full profile): images uint8, batch_seed, batch_row, optional trajectory
    arrays, metadata (dict). FileNotFoundError naming the file and the command that makes it if missing."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"sample file {str(path)!r} is missing: the full profile reads sample sets drawn on a GPU with "
            "`vsmlab sample CHECKPOINT --out FILE.npz ...` (see the notebook's 'full profile' section)")
    with np.load(path, allow_pickle=False) as z:
        out = {k: z[k] for k in z.files}
    out["metadata"] = json.loads(str(out["metadata"])) if "metadata" in out else {}
    if out.get("images") is None or len(out["images"]) == 0:
        raise ValueError(f"sample file {str(path)!r}: holds no images (an empty sample set)")
    return out


def unet_term_gradient_norms(model: nn.Module, x0: torch.Tensor, t: int, eps: torch.Tensor, schedule,
                             rho: float = 0.1, time_weight: bool = True,
                             decoder: str = "discretized") -> dict[str, dict[str, float]]:
    """L2 norm of the gradient of each loss term's batch mean ("mse", "vb", "vsm" with this rho) on the
    UNet's groups "trunk" (every parameter but the output conv), "eps_head" and "var_head" (the output
    conv's eps / v channels): :func:`vsmlab.diffusion.variance.term_gradient_norms` with the image decoder.
    x0, eps: [B, C, H, W]; all examples at step ``t``. Parameters unchanged."""
    return term_gradient_norms(model, x0, t, eps, schedule, rho=rho, time_weight=time_weight, decoder=decoder)


def train_in_process(spec: Spec, out: str | os.PathLike, root: str | os.PathLike = ".", extra: Sequence[str] = ()) -> Path:
    """Train ``spec`` into ``out`` inside this process (:func:`vsmlab.diffusion.runs.train_run`, the function
    ``vsmlab train`` calls, on the CPU); for tiny smoke runs. Errors as :func:`train_run` raises them."""
    return train_run(Path(root) / spec.config, out, overrides=[*spec.all_overrides, *extra], device="cpu",
                     log=None).latest


def ensure_trained(specs: Sequence[Spec], runs_root: str | os.PathLike, root: str | os.PathLike = ".",
                   workers: int = 2, in_process: bool = False, extra: Sequence[str] = ()) -> dict[str, Path]:
    """Train every spec whose ``runs_root/<name>/latest.pt`` is missing (:func:`vsmlab.lab.jobs.run_jobs`:
    ``workers`` CLI subprocesses with one thread each, or in this process); returns {spec.name: latest.pt}. A failed
    run raises RuntimeError naming the spec and the CLI's message; a half-written run folder (no latest.pt) is
    refused by the CLI."""
    out: dict[str, Path] = {}
    jobs = []
    for s in specs:
        folder = run_dir(runs_root, s)
        out[s.name] = ck.latest_path(folder)
        if not out[s.name].exists():
            argv = [sys.executable, *train_command(s, folder, extra)[1:]]
            jobs.append(Job(f"vsmlab train {s.name}", argv,
                            functools.partial(train_in_process, s, folder.resolve(), Path(root).resolve(), extra)))
    run_jobs(jobs, root, 0 if in_process else max(1, workers))
    return out
