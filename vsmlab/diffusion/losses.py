"""Training losses as per-example named terms.

Every loss returns :class:`LossTerms`: per-example tensors [B] named ``mse``, ``vb``, ``vsm`` and
``total``, so notebooks can plot each term and weights compose outside. The plain DDPM loss is::

    mse = mean_dims (eps - eps_theta(sqrt(alpha_bar_t) x0 + sqrt(1 - alpha_bar_t) eps, t))^2
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Callable

import torch
from torch import nn

from vsmlab.core.schedules import Schedule

__all__ = ["LossTerms", "eps_mse_loss", "LossFn"]


@dataclass
class LossTerms:
    """Per-example loss terms, each [B]; ``total`` is what training minimises (its mean)."""

    mse: torch.Tensor
    vb: torch.Tensor
    vsm: torch.Tensor
    total: torch.Tensor

    def means(self) -> dict[str, float]:
        """Batch means of every term as floats (for logging)."""
        return {f.name: float(getattr(self, f.name).detach().mean()) for f in fields(self)}


LossFn = Callable[[nn.Module, torch.Tensor, torch.Tensor, torch.Tensor, Schedule], LossTerms]


def _flat_mean(x: torch.Tensor) -> torch.Tensor:
    return x.reshape(x.shape[0], -1).mean(1)


def eps_mse_loss(model: nn.Module, x0: torch.Tensor, t: torch.Tensor, eps: torch.Tensor, schedule: Schedule) -> LossTerms:
    """Plain DDPM eps-prediction loss (vb and vsm are zero). x0, eps: [B, ...]; t: [B]."""
    x_t = schedule.noise(x0, t, eps)
    mse = _flat_mean((model(x_t, t).eps - eps) ** 2)
    zero = torch.zeros_like(mse)
    return LossTerms(mse=mse, vb=zero, vsm=zero, total=mse)
