"""Training losses as per-example named terms: the plain DDPM loss and the variance-learning losses (hybrid,
VSM, Jacobian penalty), built by name with :func:`make_loss`.

Every loss is ``loss_fn(model, x0, t, eps, schedule) -> LossTerms``: per-example tensors [B] named ``mse``,
``vb``, ``vsm`` and ``total``, so notebooks can plot each term and weights compose outside. Inputs are
[B, ...] (flat toy points [B, d] or images [B, C, H, W]); every per-example term is a mean over all
non-batch dimensions (:func:`vsmlab.diffusion.likelihoods.mean_over_dims`). With
x_t = sqrt(alpha_bar_t) x0 + sqrt(1 - alpha_bar_t) eps::

    mse   = mean_dims (eps - eps_theta(x_t, t))^2                                   (eps_mse_loss: vb = vsm = 0)
    vb    = the variational-bound term of the learned variance, bits/dim            (variance.vb_bits)
    vsm   = w(t) * mean_dims 1 / (1 + J^2),  J = -1 / Sigma,  w(t) = rho / sqrt(1 - alpha_bar_t) or rho
                                                             (variance.vsm_weight * variance.vsm_penalty)
          + jacobian_weight * w_J(t) / (1 + ||d score_theta / d x_t||_F^2 / d)      (the Jacobian penalty)
    total = mse + vb_weight * vb + vsm

- ``"hybrid"``: mse + vb_weight * vb (learned variance, no penalty; = ``"vsm"`` with rho = 0).
- ``"vsm"``: hybrid + the VSM penalty (Variance-guided Score Modulation: rewards a large Sigma, i.e. a
  small proxy Jacobian -1/Sigma of the score, weighted by w(t)).
- ``"jacobian"``: mse + the Jacobian penalty (VSM's functional form on the score network's real Jacobian,
  ||J||_F^2 by Hutchinson: :func:`vsmlab.diffusion.variance.score_jacobian_frobenius_sq`), plus vb when the
  model has a variance head. w_J(t) = 1 / sqrt(1 - alpha_bar_t) or 1. 1 / (1 + mean estimate) is slightly
  biased upwards for d > 1 (Jensen; less with more probes). Like VSM it penalises *small* Jacobians
  (over-smooth scores) and is bounded in (0, 1]; at large t, where the exact Jacobian is about -I, it is
  about 1/2, so the time weight is off and the weight small (0.01) by default. Cost: one extra backward pass
  per probe.

Hybrid weight: improved DDPM writes L_hybrid = L_simple + lambda L_vlb with lambda = 0.001 and
L_vlb = sum_t L_t, estimated per example as T * L_t; its code folds the two into a "rescaled" vb of weight
T / 1000 per sampled t: with T = 1000 that is weight 1 on the per-step KL, the default ``vb_weight = 1``.
``LossTerms.vsm`` holds the score-control penalty: the VSM term, the Jacobian penalty, or their sum.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Callable

import torch
from torch import nn

from vsmlab.core.checks import check_bool, check_int
from vsmlab.core.schedules import Schedule, assume_valid_steps
from vsmlab.diffusion.likelihoods import mean_over_dims
from vsmlab.diffusion.variance import (check_decoder, check_weight, require_variance_head, score_jacobian_frobenius_sq,
                                       vb_bits, vsm_penalty, vsm_weight)

__all__ = ["LossTerms", "LossFn", "eps_mse_loss", "variance_terms", "make_loss", "LOSSES"]


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


def eps_mse_loss(model: nn.Module, x0: torch.Tensor, t: torch.Tensor, eps: torch.Tensor, schedule: Schedule) -> LossTerms:
    """Plain DDPM eps-prediction loss (vb and vsm are zero). x0, eps: [B, ...]; t: [B] (checked once, by
    :meth:`Schedule.noise`; its range read is skipped inside :func:`vsmlab.core.schedules.assume_valid_steps`)."""
    x_t = schedule.noise(x0, t, eps)
    mse = mean_over_dims((model(x_t, t).eps - eps) ** 2)
    zero = torch.zeros_like(mse)
    return LossTerms(mse=mse, vb=zero, vsm=zero, total=mse)


def variance_terms(
    model: nn.Module, x0: torch.Tensor, t: torch.Tensor, eps: torch.Tensor, schedule: Schedule, *,
    vb_weight: float = 1.0, rho: float = 0.0, time_weight: bool = True, jacobian_weight: float = 0.0,
    probes: int = 1, jacobian_time_weight: bool = True, generator: torch.Generator | None = None,
    require_variance: bool = True, loss_name: str = "hybrid", decoder: str = "gaussian",
) -> LossTerms:
    """All terms of the module docstring for one batch. x0, eps: [B, ...]; t: [B]. Returns LossTerms.

    With ``require_variance`` a model without a variance head raises ValueError naming ``model``; without
    it, such a model gets vb = 0 and no VSM term (only mse and the Jacobian penalty). ``decoder``: the t = 0
    term of vb ("gaussian" or "discretized", see :func:`vsmlab.diffusion.variance.vb_bits`).
    """
    check_decoder(decoder)
    vb_weight = check_weight("vb_weight", vb_weight)
    rho = check_weight("rho", rho)
    jacobian_weight = check_weight("weight", jacobian_weight)
    t = schedule.check_t(t, x0.shape[0])  # the one range check of the loss; the pieces below skip theirs
    with assume_valid_steps():
        return _variance_terms(model, x0, t, eps, schedule, vb_weight, rho, time_weight, jacobian_weight, probes,
                               jacobian_time_weight, generator, require_variance, loss_name, decoder)


def _variance_terms(model, x0, t, eps, schedule, vb_weight, rho, time_weight, jacobian_weight, probes,
                    jacobian_time_weight, generator, require_variance, loss_name, decoder) -> LossTerms:
    """:func:`variance_terms` on checked arguments and steps."""
    x_t = schedule.noise(x0, t, eps)
    if jacobian_weight > 0:
        frob, pred = score_jacobian_frobenius_sq(model, x_t, t, schedule, probes, generator, create_graph=True)
        d = x_t[0].numel()  # dimensions per example (d, or C*H*W)
        jac = jacobian_weight * vsm_weight(t, schedule, 1.0, jacobian_time_weight).to(frob.dtype) / (1.0 + frob / d)
    else:
        pred = model(x_t, t)
        jac = None
    mse = mean_over_dims((pred.eps - eps) ** 2)
    zero = torch.zeros_like(mse)
    if pred.v is None and not require_variance:
        vb, vsm = zero, zero
    else:
        v = require_variance_head(pred.v, loss_name)
        vb = vb_bits(x0, x_t, t, pred.eps, v, schedule, decoder)
        if rho > 0:
            vsm = vsm_weight(t, schedule, rho, time_weight).to(mse.dtype) * vsm_penalty(schedule.learned_log_variance(v, t))
        else:
            vsm = zero
    if jac is not None:
        vsm = vsm + jac
    return LossTerms(mse=mse, vb=vb, vsm=vsm, total=mse + vb_weight * vb + vsm)


def _hybrid(vb_weight: float = 1.0, decoder: str = "gaussian") -> LossFn:
    vb_weight, decoder = check_weight("vb_weight", vb_weight), check_decoder(decoder)

    def loss_fn(model, x0, t, eps, schedule):
        return variance_terms(model, x0, t, eps, schedule, vb_weight=vb_weight, loss_name="hybrid", decoder=decoder)

    return loss_fn


def _vsm(rho: float = 0.1, time_weight: bool = True, vb_weight: float = 1.0, decoder: str = "gaussian") -> LossFn:
    rho, vb_weight, decoder = check_weight("rho", rho), check_weight("vb_weight", vb_weight), check_decoder(decoder)
    check_bool("time_weight", time_weight, "True: rho / sqrt(1 - alpha_bar_t); False: constant rho")

    def loss_fn(model, x0, t, eps, schedule):
        return variance_terms(model, x0, t, eps, schedule, vb_weight=vb_weight, rho=rho, time_weight=time_weight,
                              loss_name="vsm", decoder=decoder)

    return loss_fn


def _jacobian(weight: float = 0.01, probes: int = 1, time_weight: bool = False, vb_weight: float = 1.0,
              seed: int = 0, decoder: str = "gaussian") -> LossFn:
    weight, vb_weight, decoder = check_weight("weight", weight), check_weight("vb_weight", vb_weight), check_decoder(decoder)
    check_int("probes", probes, low=1, hint="Hutchinson probe vectors")
    check_bool("time_weight", time_weight, "True: weight / sqrt(1 - alpha_bar_t); False: constant weight")
    generator = torch.Generator().manual_seed(int(seed))

    def loss_fn(model, x0, t, eps, schedule):
        return variance_terms(model, x0, t, eps, schedule, vb_weight=vb_weight, jacobian_weight=weight,
                              probes=probes, jacobian_time_weight=time_weight, generator=generator,
                              require_variance=False, loss_name="jacobian", decoder=decoder)

    return loss_fn


LOSSES: dict[str, Callable[..., LossFn]] = {"hybrid": _hybrid, "vsm": _vsm, "jacobian": _jacobian}


def make_loss(name: str, **options: Any) -> LossFn:
    """A loss_fn(model, x0, t, eps, schedule) -> LossTerms by name.

    - "hybrid" (vb_weight=1, decoder="gaussian"): mse + vb_weight * vb; learned variance, no penalty
      (= "vsm" with rho = 0).
    - "vsm" (rho=0.1, time_weight=True, vb_weight=1, decoder="gaussian"): hybrid + the VSM penalty.
    - "jacobian" (weight=0.01, probes=1, time_weight=False, vb_weight=1, seed=0, decoder="gaussian"): mse +
      the Jacobian penalty, plus vb when the model has a variance head (fixed-variance models are allowed).
      ``seed`` seeds the Hutchinson probes.
    ``decoder`` is the t = 0 term of vb: "gaussian" (density NLL, for continuous toy data) or "discretized"
    (improved DDPM's 8-bit decoder in bits per dimension, for images in [-1, 1]); e.g. the image hybrid loss
    with the VSM penalty is ``make_loss("vsm", rho=0.1, decoder="discretized")``.
    Unknown names or options raise ValueError naming them; negative weights raise ValueError naming the option.
    """
    if name not in LOSSES:
        raise ValueError(f"name: expected one of {sorted(LOSSES)} (or 'eps_mse' via experiments.make_loss), got {name!r}")
    factory = LOSSES[name]
    import inspect

    allowed = list(inspect.signature(factory).parameters)
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ValueError(f"loss {name!r}: unknown option(s) {unknown}; allowed: {allowed}")
    return factory(**options)
