"""Toy experiments from plain JSON specs, with the trained models cached on disk.

A spec is a dict of dicts that names everything a run depends on, so it can be hashed for the cache::

    spec = dict(mixture=dict(name="1d"), schedule=dict(name="linear", beta_start=1e-3, beta_end=0.2),
                model=dict(width=128, depth=3), train=dict(steps=2000, batch_size=2048, lr=1e-3),
                n_train=20000, seed=0)
    run = train_toy(spec)          # run.model (eval mode), run.history, run.seconds

``seed`` seeds the training set, the parameter init and the batches. Loss specs are resolved by
:func:`make_loss` (``{"name": "eps_mse"}`` by default).
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from typing import Any

import torch

from vsmlab.lab.cache import load_or_compute
from vsmlab.diffusion import losses
from vsmlab.diffusion.losses import LossFn, eps_mse_loss
from vsmlab.data.mixtures import GaussianMixture, diamond_2d, evenly_spaced_1d, grid_2d
from vsmlab.nets.mlp import MLP
from vsmlab.core.schedules import Schedule, cosine, linear
from vsmlab.diffusion.training import train

__all__ = ["make_mixture", "make_schedule", "make_loss", "make_model", "TrainedRun", "train_toy"]

_MIXTURES = {"1d": evenly_spaced_1d, "grid": grid_2d, "diamond": diamond_2d}
_SCHEDULES = {"linear": linear, "cosine": cosine}


def _split(spec: dict[str, Any], table: dict, what: str):
    spec = dict(spec)
    name = spec.pop("name", None)
    if name not in table:
        raise ValueError(f"{what}.name: expected one of {sorted(table)}, got {name!r}")
    return table[name], spec


def make_mixture(spec: dict[str, Any]) -> GaussianMixture:
    """{"name": "1d"|"grid"|"diamond", **factory kwargs} -> GaussianMixture."""
    factory, kwargs = _split(spec, _MIXTURES, "mixture")
    return factory(**kwargs)


def make_schedule(spec: dict[str, Any]) -> Schedule:
    """{"name": "linear"|"cosine", **kwargs} -> Schedule."""
    factory, kwargs = _split(spec, _SCHEDULES, "schedule")
    return factory(**kwargs)


def make_loss(spec: dict[str, Any] | None) -> LossFn:
    """{"name": "eps_mse"} (default) or a variance-learning loss of :func:`vsmlab.diffusion.losses.make_loss`."""
    spec = dict(spec or {"name": "eps_mse"})
    name = spec.pop("name", "eps_mse")
    if name == "eps_mse":
        if spec:
            raise ValueError(f"loss: 'eps_mse' takes no options, got {sorted(spec)}")
        return eps_mse_loss
    return losses.make_loss(name, **spec)


def make_model(spec: dict[str, Any], dim: int, seed: int) -> MLP:
    """MLP for ``dim``-D data from {"width", "depth", ...} (see :class:`vsmlab.nets.mlp.MLP`)."""
    return MLP(dim, seed=seed, **spec)


@dataclass
class TrainedRun:
    """A trained model (eval mode) with its per-step total loss, wall time (of the original run) and spec.

    ``snapshots`` maps each requested intermediate step to a model (eval mode) with the weights it had then.
    """

    model: MLP
    history: list[float]
    seconds: float
    spec: dict[str, Any]
    snapshots: dict[int, MLP] = field(default_factory=dict)


def train_toy(spec: dict[str, Any], use_cache: bool | None = None, snapshot_steps: tuple[int, ...] = ()) -> TrainedRun:
    """Train (or load from the cache) the toy model described by ``spec`` (see module docstring).

    snapshot_steps: intermediate steps (1..steps) whose weights are kept too (one run gives a
    training-length sweep).
    """
    spec = copy.deepcopy(spec)
    snapshot_steps = tuple(sorted(set(int(s) for s in snapshot_steps)))
    total = int(spec.get("train", {}).get("steps", 0))
    for s in snapshot_steps:
        if not 1 <= s <= total:
            raise ValueError(f"snapshot_steps: step {s} is outside 1..{total} (the spec's train.steps)")
    for key in ("mixture", "schedule", "model", "train", "n_train", "seed"):
        if key not in spec:
            raise ValueError(f"spec: missing key {key!r}; expected mixture, schedule, model, train, n_train, seed")
    seed = int(spec["seed"])

    def compute() -> dict[str, Any]:
        mixture = make_mixture(spec["mixture"])
        schedule = make_schedule(spec["schedule"])
        data = mixture.sample(int(spec["n_train"]), generator=torch.Generator().manual_seed(10_000 + seed))
        model = make_model(spec["model"], mixture.dim, seed)
        loss_fn = make_loss(spec.get("loss"))
        start = time.perf_counter()
        history, snaps = [], {}
        for rec in train(model, data, schedule, seed=seed, loss_fn=loss_fn, **spec["train"]):
            history.append(rec.terms["total"])
            if rec.step in snapshot_steps:
                snaps[rec.step] = copy.deepcopy(model.state_dict())
        return {"state": model.state_dict(), "history": history, "seconds": time.perf_counter() - start, "snapshots": snaps}

    key = {"kind": "train_toy", **spec}
    if snapshot_steps:
        key["snapshot_steps"] = list(snapshot_steps)
    out = load_or_compute(key, compute, use_cache)
    dim = make_mixture(spec["mixture"]).dim

    def frozen(state: dict[str, torch.Tensor]) -> MLP:
        model = make_model(spec["model"], dim, seed)
        model.load_state_dict(state)
        model.eval()
        for p in model.parameters():
            p.requires_grad_(False)
        return model

    snapshots = {int(k): frozen(v) for k, v in out.get("snapshots", {}).items()}
    return TrainedRun(frozen(out["state"]), out["history"], out["seconds"], spec, snapshots)
