"""Adapters that put outside models behind the lab's contract ``model(x_t, t) -> Prediction``.

With an adapter, the lab's samplers, validators, detectors and Jacobian probes run on a user's model: a
diffusers ``UNet2DModel`` (its output's ``.sample``), or any eps-predicting callable ``f(x_t, t)`` that
returns a tensor, a tuple whose first element is the tensor, or an object with ``.sample``.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch import nn

from vsmlab.core.checks import check_bool
from vsmlab.core.prediction import Prediction

__all__ = ["EpsAdapter"]


class EpsAdapter(nn.Module):
    """Wrap an eps-predicting model ``f(x_t, t)`` as ``model(x_t, t) -> Prediction``.

    Args:
        model: an ``nn.Module`` (registered as a submodule, so ``.to()``, ``.eval()``, ``.parameters()``
            and state dicts reach it) or any callable. Its output is a tensor [B, C', ...], a tuple/list
            whose first element is that tensor, or an object with ``.sample`` (diffusers' ``UNet2DOutput``).
        split_variance: the output has 2C channels (dim 1): the first C are eps, the last C the
            improved-DDPM range value v (passed through unbounded: frac = (v + 1) / 2, as diffusers'
            ``variance_type="learned_range"``). False: the output must have x_t's shape.
        timestep: optional map of the lab's integer steps t [B] to the model's timestep argument (e.g. a
            model trained with another T or continuous time); default: t as is.

    Returns from ``forward``: Prediction(eps [B, C, ...], v [B, C, ...] or None) in x_t's dtype.
    """

    def __init__(self, model: Callable[..., Any], split_variance: bool = False,
                 timestep: Callable[[torch.Tensor], torch.Tensor] | None = None) -> None:
        super().__init__()
        if not callable(model):
            raise TypeError(f"model: expected an nn.Module or a callable f(x_t, t), got {type(model).__name__}")
        check_bool("split_variance", split_variance)
        if timestep is not None and not callable(timestep):
            raise TypeError(f"timestep: expected a callable t -> model timestep or None, got {type(timestep).__name__}")
        if isinstance(model, nn.Module):
            self.model = model
        else:
            self._fn = model
        self.split_variance = split_variance
        self.timestep = timestep

    @property
    def fn(self) -> Callable[..., Any]:
        """The wrapped model or callable."""
        return self.model if "model" in self._modules else self._fn

    def forward(self, x_t: torch.Tensor, t: torch.Tensor) -> Prediction:
        """x_t: [B, C, ...]; t: [B] int steps. See the class docstring."""
        out = self.fn(x_t, t if self.timestep is None else self.timestep(t))
        if hasattr(out, "sample"):
            out = out.sample
        elif isinstance(out, (tuple, list)) and out:
            out = out[0]
        if isinstance(out, Prediction):
            return out
        if not isinstance(out, torch.Tensor):
            raise TypeError(f"model: expected its output to be a tensor, a tuple starting with one or an object "
                            f"with .sample, got {type(out).__name__}")
        out = out.to(x_t.dtype)
        if not self.split_variance:
            if out.shape != x_t.shape:
                hint = " (2C channels: pass split_variance=True)" if out.shape[1:2] == (2 * x_t.shape[1],) else ""
                raise ValueError(f"model: expected an eps output of x_t's shape {tuple(x_t.shape)}, got "
                                 f"{tuple(out.shape)}{hint}")
            return Prediction(eps=out)
        C = x_t.shape[1]
        if out.shape[0] != x_t.shape[0] or out.shape[1] != 2 * C or out.shape[2:] != x_t.shape[2:]:
            raise ValueError(f"model: split_variance=True expects an output of shape "
                             f"{(x_t.shape[0], 2 * C, *x_t.shape[2:])} (eps and v stacked on dim 1), got {tuple(out.shape)}")
        eps, v = out.split(C, dim=1)
        return Prediction(eps=eps, v=v)
