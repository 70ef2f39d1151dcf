"""Score models behind one contract: ``model(x_t, t) -> Prediction``.

``x_t``: [B, ...] float; ``t``: [B] integer steps in 0..T-1. A :class:`Prediction` holds the predicted
noise ``eps`` (same shape as x_t) and, for variance-learning models, ``v`` (improved DDPM's
learned-range interpolation value). The exact mixture score is wrapped to the same contract by
:class:`ExactScoreModel`, so samplers, estimators and metrics accept a trained net or the oracle alike.

Conversions (named functions, never branches inside models), with sigma_t = sqrt(1 - alpha_bar_t)::

    score = -eps / sigma_t          eps = -sigma_t * score
    x0_hat = (x_t - sigma_t eps) / sqrt(alpha_bar_t)

Every conversion answers on its input's device in its dtype, with sigma_t from the schedule's cached
device table; t is a step tensor [B] (validated) or one int step (validated on the host, no sync).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from vsmlab.core.schedules import Schedule

__all__ = [
    "Prediction",
    "eps_to_score",
    "score_to_eps",
    "eps_to_x0",
    "x0_to_eps",
    "timestep_embedding",
    "predict_score",
]


@dataclass
class Prediction:
    """Model output. eps: [B, ...]; v: [B, ...] or None (fixed-variance model).

    v is the learned-range value, unbounded as in improved DDPM: frac = (v + 1) / 2 interpolates
    log Sigma between log beta_tilde_t (v = -1) and log beta_t (v = 1); values outside [-1, 1] extrapolate.
    """

    eps: torch.Tensor
    v: torch.Tensor | None = None


def eps_to_score(eps: torch.Tensor, t: torch.Tensor, schedule: Schedule) -> torch.Tensor:
    """score = -eps / sqrt(1 - alpha_bar_t). eps: [B, ...]; t: [B]."""
    return -eps / schedule._coef("sigma", t, eps)


def score_to_eps(score: torch.Tensor, t: torch.Tensor, schedule: Schedule) -> torch.Tensor:
    """eps = -sqrt(1 - alpha_bar_t) * score. score: [B, ...]; t: [B]."""
    return -score * schedule._coef("sigma", t, score)


def eps_to_x0(x_t: torch.Tensor, t: torch.Tensor, eps: torch.Tensor, schedule: Schedule) -> torch.Tensor:
    """x0_hat = (x_t - sqrt(1 - alpha_bar_t) eps) / sqrt(alpha_bar_t)."""
    return schedule.x0_from_eps(x_t, t, eps)


def x0_to_eps(x_t: torch.Tensor, t: torch.Tensor, x0: torch.Tensor, schedule: Schedule) -> torch.Tensor:
    """eps = (x_t - sqrt(alpha_bar_t) x0) / sqrt(1 - alpha_bar_t)."""
    return schedule.eps_from_x0(x_t, t, x0)


def predict_score(model: nn.Module, x_t: torch.Tensor, t: torch.Tensor, schedule: Schedule) -> torch.Tensor:
    """The score a model implies at (x_t, t): -eps / sigma_t. Shapes as x_t."""
    return eps_to_score(model(x_t, t).eps, t, schedule)


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding [B, dim] of integer steps t [B] (DDPM/Transformer style; dim must be even)."""
    if dim % 2:
        raise ValueError(f"dim: expected an even embedding size, got {dim}")
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=1)
