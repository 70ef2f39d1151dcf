"""The training loop as a generator: one :class:`StepRecord` per optimisation step.

The caller decides what to log, plot, checkpoint or stop on::

    for rec in train(model, data, schedule, steps=2000, batch_size=1024, seed=0):
        if rec.step % 100 == 0: print(rec.step, rec.terms["total"])

Each step draws a batch of training points, t ~ U{0..T-1} and eps ~ N(0, I) from one seeded generator,
evaluates ``loss_fn`` (default eps-MSE) and takes an Adam step on the mean of ``total``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Iterator

import torch
from torch import nn

from vsmlab.diffusion.losses import LossFn, eps_mse_loss
from vsmlab.core.schedules import Schedule

__all__ = ["StepRecord", "TrainingDiverged", "train", "fit"]


class TrainingDiverged(FloatingPointError):
    """Raised when a loss term becomes NaN or infinite; the message names the step and the term."""


@dataclass
class StepRecord:
    """step (1-based), terms (batch means of each loss term), grad_norm (global, before clipping) or None."""

    step: int
    terms: dict[str, float]
    grad_norm: float | None = None


def _batch(data: torch.Tensor | Callable[[int, torch.Generator], torch.Tensor], n: int, g: torch.Generator) -> torch.Tensor:
    if callable(data):
        return data(n, g)
    idx = torch.randint(0, data.shape[0], (n,), generator=g)
    return data[idx]


def train(
    model: nn.Module,
    data: torch.Tensor | Callable[[int, torch.Generator], torch.Tensor],
    schedule: Schedule,
    steps: int,
    batch_size: int = 1024,
    lr: float = 1e-3,
    seed: int = 0,
    loss_fn: LossFn = eps_mse_loss,
    grad_norms: bool = False,
    max_grad_norm: float | None = None,
    lr_decay: str = "none",
) -> Iterator[StepRecord]:
    """Train ``model`` in place, yielding a :class:`StepRecord` per step.

    data: a training set [N, ...] (batches drawn with replacement) or a callable ``(n, generator) -> [n, ...]``
    drawing fresh points. lr_decay: "none" (constant lr) or "cosine" (lr * (1 + cos(pi step/steps)) / 2,
    which lets the net settle on sharp features at the end). Raises TrainingDiverged naming the step and
    term on a non-finite loss.
    """
    if lr_decay not in ("none", "cosine"):
        raise ValueError(f"lr_decay: expected 'none' or 'cosine', got {lr_decay!r}")
    for name, val in (("steps", steps), ("batch_size", batch_size)):
        if not isinstance(val, int) or val < 1:
            raise ValueError(f"{name}: expected an int >= 1, got {val!r}")
    if not (isinstance(lr, (int, float)) and lr > 0):
        raise ValueError(f"lr: expected a number > 0, got {lr!r}")
    if isinstance(data, torch.Tensor):
        if data.dim() < 2 or data.shape[0] < 1:
            raise ValueError(f"data: expected a training set of shape [N, ...] with N >= 1, got {tuple(data.shape)}")
    elif not callable(data):
        raise TypeError(f"data: expected a tensor [N, ...] or a callable (n, generator) -> tensor, got {type(data).__name__}")
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    for step in range(1, steps + 1):
        if lr_decay == "cosine":
            for group in opt.param_groups:
                group["lr"] = lr * 0.5 * (1 + math.cos(math.pi * (step - 1) / steps))
        x0 = _batch(data, batch_size, g)
        t = torch.randint(0, schedule.num_steps, (x0.shape[0],), generator=g)
        eps = torch.randn(x0.shape, generator=g, dtype=x0.dtype)
        terms = loss_fn(model, x0, t, eps, schedule)
        means = terms.means()
        for name, value in means.items():
            if not math.isfinite(value):
                raise TrainingDiverged(f"training diverged at step {step}: loss term {name!r} is {value}")
        opt.zero_grad(set_to_none=True)
        terms.total.mean().backward()
        norm = None
        if grad_norms or max_grad_norm is not None:
            limit = max_grad_norm if max_grad_norm is not None else math.inf
            norm = float(torch.nn.utils.clip_grad_norm_(model.parameters(), limit))
        opt.step()
        yield StepRecord(step=step, terms=means, grad_norm=norm)
    model.eval()


def fit(model: nn.Module, data, schedule: Schedule, steps: int, **kwargs) -> list[StepRecord]:
    """Run :func:`train` to the end and return every record (convenience for notebooks)."""
    return list(train(model, data, schedule, steps, **kwargs))
