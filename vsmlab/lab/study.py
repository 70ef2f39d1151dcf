"""The study engine of the image benchmarks (SimpleShapes, Cards, chess): which models, where their weights come
from, and how the missing ones are trained.

A :class:`Model` is one trained model (the run spec): a ``method`` name, the training ``seed``, the TOML
``config`` it trains from and the ``--set`` overrides that make the method. Every model is made by the same
command line (:meth:`Study.train_command`)::

    OMP_NUM_THREADS=1 python -m vsmlab train CONFIG --out FOLDER --set ... --set train.seed=K

**One folder scheme.** A model trained here lives in ``runs/<method>-seed<k>-<12 hex>``, the hex being the
SHA-256 of its resolved config (:meth:`Study.folder`): changing a config trains a new model, re-running a
notebook reuses the old one.

**One rule for the weights** (:meth:`Study.checkpoint`), the first that applies:

1. ``gpu`` given (a notebook's full profile): the weights a GPU run brought back, ``gpu[model.name]``;
2. ``use_shipped`` and a shipped file ``<shipped>/<method>-seed<k>/latest.safetensors`` (or
   ``step_<S>.safetensors``) exists: that file, read by explicit path;
3. otherwise the trained run's ``latest.pt`` (``step_<S>.pt``), trained by :meth:`Study.ensure` when missing.

Shipped and GPU checkpoints are checked against the model's config key by key (:func:`load_checkpoint_model`,
:func:`check_shipped`: CheckpointError naming the file and every differing key), so a file is never used for a
config it was not trained with. Sample sets are kept by :mod:`vsmlab.lab.sample_store`.
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

from torch import nn

from vsmlab.core.checks import check_int
from vsmlab.diffusion import checkpoints as ck
from vsmlab.diffusion.config import build_schedule, format_config, load_config, model_from_config, validate_config
from vsmlab.diffusion.runs import train_run
from vsmlab.lab.jobs import Job, check_workers, run_jobs

__all__ = ["Model", "Study", "LoadedModel", "load_checkpoint_model", "check_shipped", "file_sha256",
           "slim_checkpoint", "CHECK_IGNORED"]

#: config keys that may differ between a checkpoint and its model's config (what a resumed run may change)
CHECK_IGNORED = ck.RESUMABLE_KEYS


@dataclass(frozen=True)
class Model:
    """One model of a study: ``method`` (a name without '/'), training ``seed`` (``train.seed``; data.seed stays
    the config's), ``config`` (a TOML path relative to the project root) and ``overrides`` (``section.key=value``
    strings, as ``vsmlab train --set``)."""

    method: str
    seed: int
    config: str
    overrides: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if not isinstance(self.method, str) or not self.method or "/" in self.method:
            raise ValueError(f"method: expected a non-empty name without '/', got {self.method!r}")
        check_int("seed", self.seed, 0)
        object.__setattr__(self, "overrides", tuple(self.overrides))

    @property
    def name(self) -> str:
        """``<method>-seed<k>``: the shipped folder's name and the start of the run folder's."""
        return f"{self.method}-seed{self.seed}"

    @property
    def all_overrides(self) -> tuple[str, ...]:
        """The overrides, then ``train.seed=<seed>``."""
        return (*self.overrides, f"train.seed={self.seed}")


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


def file_sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def load_checkpoint_model(path: str | os.PathLike, expected: dict[str, Any] | None = None, weights: str = "ema",
                          image_size: int | None = None) -> LoadedModel:
    """Read the checkpoint at ``path`` (explicitly; no cache) and build its model with ``weights``.

    expected: a config the checkpoint's must equal up to :data:`CHECK_IGNORED` (CheckpointError naming the file
    and each differing key otherwise). image_size: the size the caller works at (CheckpointError naming both
    sizes if the checkpoint's differs).
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


def check_shipped(path: str | os.PathLike, expected: dict[str, Any], image_size: int | None = None) -> Path:
    """``path`` if it is a checkpoint trained with the config ``expected`` (up to :data:`CHECK_IGNORED`) and, when
    given, for ``image_size``; FileNotFoundError or CheckpointError naming the file otherwise."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"shipped checkpoint {str(path)!r} does not exist")
    payload = ck.load_checkpoint(path, map_location="cpu")
    ck.check_config_matches(path, payload["config"], expected, CHECK_IGNORED)
    size = payload["model_config"].get("image_size")
    if image_size is not None and size != image_size:
        raise ck.CheckpointError(f"checkpoint {str(path)!r}: image size {size}, expected {image_size}")
    return path


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


@dataclass
class Study:
    """Where the weights of a study's models come from (the rule of the module docstring).

    root: the project root (configs are relative to it). runs: the folder of models trained here. shipped: the
    folder of shipped checkpoints (``checkpoints/<set>``) or None. use_shipped: whether rule 2 applies (False for
    ``--no-cache`` and the smoke profile). gpu: {model name: checkpoint} of a GPU run, or None. image_size: the
    size every checkpoint must have (None: not checked). workers: training subprocesses (0: in this process)."""

    root: Path
    runs: Path
    shipped: Path | None = None
    use_shipped: bool = True
    gpu: dict[str, Path] | None = None
    image_size: int | None = None
    workers: int = 2

    def __post_init__(self) -> None:
        self.root, self.runs = Path(self.root), Path(self.runs)
        self.shipped = None if self.shipped is None else Path(self.shipped)
        check_workers(self.workers)

    def config(self, model: Model) -> dict[str, dict[str, Any]]:
        """The resolved, validated config of ``model`` (its TOML file plus overrides and train.seed)."""
        return load_config(self.root / model.config, list(model.all_overrides))

    def folder(self, model: Model) -> Path:
        """``runs/<method>-seed<k>-<12 hex>``: the hex is the SHA-256 of the resolved config (every key)."""
        digest = hashlib.sha256(format_config(self.config(model), comments=False).encode()).hexdigest()[:12]
        return self.runs / f"{model.name}-{digest}"

    def shipped_path(self, model: Model, step: int | None = None) -> Path | None:
        """The shipped file of ``model`` (``latest`` or ``step_<S>``), or None without a shipped folder."""
        if self.shipped is None:
            return None
        return self.shipped / model.name / ("latest.safetensors" if step is None else f"step_{step:07d}.safetensors")

    def source(self, model: Model, step: int | None = None) -> str:
        """Which rule gives the weights of ``model``: "gpu", "shipped" or "trained"."""
        if self.gpu is not None:
            return "gpu"
        shipped = self.shipped_path(model, step)
        return "shipped" if self.use_shipped and shipped is not None and shipped.is_file() else "trained"

    def exists(self, model: Model, step: int | None = None) -> bool:
        """Whether the checkpoint of ``model`` (at ``step``) is on disk now (False for one a GPU run did not bring)."""
        if self.source(model, step) == "gpu":
            return step is None and model.name in self.gpu and Path(self.gpu[model.name]).is_file()
        return self.checkpoint(model, step).is_file()

    def checkpoint(self, model: Model, step: int | None = None) -> Path:
        """The checkpoint file of ``model`` by the rule (it may not exist yet for a model still to train)."""
        src = self.source(model, step)
        if src == "gpu":
            if step is not None:
                raise ValueError(f"step: a GPU run brings back final weights only, got step {step}")
            if model.name not in self.gpu:
                raise FileNotFoundError(f"{model.name}: the GPU run brought back no weights for this model "
                                        f"(it has {', '.join(sorted(self.gpu)) or 'none'})")
            return Path(self.gpu[model.name])
        if src == "shipped":
            return self.shipped_path(model, step)
        return self.folder(model) / ("latest.pt" if step is None else f"step_{step:07d}.pt")

    def train_command(self, model: Model, out: str | os.PathLike) -> list[str]:
        """The exact ``vsmlab train`` command line that makes ``model`` in ``out``."""
        cmd = [sys.executable, "-m", "vsmlab", "train", model.config, "--out", str(out), "--device", "cpu", "--quiet"]
        for o in model.all_overrides:
            cmd += ["--set", o]
        return cmd

    def ensure(self, models: Sequence[Model]) -> dict[Model, Path]:
        """{model: checkpoint} by the rule; shipped and GPU files are config-checked, the missing trained runs
        are trained (``workers`` CLI subprocesses with one thread each, or in this process with 0). A folder
        holding a partial run (step files, no latest.pt) is resumed with ``--resume``; a failed run raises
        RuntimeError naming the model and the CLI's message."""
        out, jobs = {}, []
        for m in models:
            path = self.checkpoint(m)
            out[m] = path
            if self.source(m) != "trained":
                check_shipped(path, self.config(m), self.image_size)
            elif not path.exists():
                folder = path.parent
                resume = bool(ck.step_checkpoints(folder))
                cmd = self.train_command(m, folder) + (["--resume"] if resume else [])
                call = functools.partial(train_run, self.root / m.config, folder.resolve(), overrides=m.all_overrides,
                                         device="cpu", resume=resume, log=None)
                jobs.append(Job(f"vsmlab train {m.name} ({m.config})", cmd, call))
        if jobs:
            self.runs.mkdir(parents=True, exist_ok=True)
        run_jobs(jobs, self.root, self.workers)
        return out

    def load(self, model: Model, weights: str = "ema", step: int | None = None) -> LoadedModel:
        """The model's checkpoint (by the rule) loaded with ``weights``, its config checked against the model's."""
        return load_checkpoint_model(self.checkpoint(model, step), self.config(model), weights, self.image_size)

    def training_times(self) -> dict[str, float]:
        """{model name: seconds} from the shipped folder's ``training_times.json`` ({} when there is none)."""
        path = None if self.shipped is None else self.shipped / "training_times.json"
        return json.loads(path.read_text()) if path is not None and path.is_file() else {}
