"""Learned reverse variance (improved DDPM's "learned range"): Sigma from v, the variational-bound term that
trains it, the VSM penalty on it, the score-Jacobian estimate, and which parameters each term pushes.

A variance-learning model returns ``Prediction(eps, v)`` with a raw, unbounded v on a shared trunk (as
improved DDPM's code; v = -1 and v = 1 are the ends of the range, values outside extrapolate in log space;
the MLP's ``v_activation="tanh"`` option squashes v into (-1, 1) instead). Its reverse step is
``p_theta(x_{t-1} | x_t) = N(mu_theta, Sigma_theta)`` with::

    mu_theta    = (x_t - beta_t / sqrt(1 - alpha_bar_t) * eps_theta) / sqrt(alpha_t)     (Schedule.reverse_mean)
    log Sigma   = f log beta_t + (1 - f) log beta_tilde_t,   f = (v + 1) / 2     (beta_tilde_0 := beta_tilde_1)

(computed once, by :meth:`vsmlab.core.schedules.Schedule.learned_log_variance`; :func:`learned_variance`).

Per-example terms ([B]; the losses that combine them: :mod:`vsmlab.diffusion.losses`)::

    vb_bits      = KL(q(x_{t-1} | x_t, x0) || N(stopgrad(mu_theta), Sigma)) / d / ln 2       t > 0  (bits/dim)
                 = decoder NLL of x0 under N(stopgrad(mu_theta), Sigma) / d / ln 2          t = 0  (bits/dim)
    vsm_penalty  = mean_dims 1 / (1 + J^2),   J = -1 / Sigma   (= Sigma^2 / (1 + Sigma^2))
    vsm_weight   = rho / sqrt(1 - alpha_bar_t)  (time_weight=True)   or   rho   (time_weight=False)

- **Mean detached in vb.** eps_theta enters mu_theta under a stop-gradient, so vb trains only the
  variance head (and, through it, the shared trunk); the eps output is trained by mse alone.
- **Decoder at t = 0** (``decoder``, :data:`DECODERS`). "discretized" (images): improved DDPM's discretised
  Gaussian likelihood of the 8-bit bin of x0 (bins of width 2/255 in [-1, 1], edge bins open;
  :func:`vsmlab.diffusion.likelihoods.discretized_gaussian_nll`). "gaussian" (default; continuous toy data):
  the Gaussian *density* NLL of x0 under N(mu_theta, Sigma). That one is in bits per dimension of a density,
  so it can be negative; only its gradient in Sigma matters (optimum Sigma = E (x0 - mu_theta)^2).

:func:`score_jacobian_frobenius_sq` estimates ||J||_F^2 of the score network's real Jacobian,
J = d score_theta / d x_t with score_theta = -eps_theta / sqrt(1 - alpha_bar_t), by Hutchinson:
||J||_F^2 = E_z ||J^T z||^2 for Rademacher z (exact in 1-D), averaged over ``probes`` vector-Jacobian
products built with ``create_graph=True`` so a penalty on it is differentiable
(:func:`vsmlab.core.estimators.hutchinson_frobenius`).

:func:`term_gradient_norms`: the gradient norm of each term (mse, vb, vsm) on the eps head, the variance head
and the shared trunk of an MLP or UNet: which parameters each term pushes.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import torch
from torch import nn

from vsmlab.core.checks import check_int, check_nonnegative
from vsmlab.core.estimators import hutchinson_frobenius
from vsmlab.core.prediction import Prediction
from vsmlab.core.schedules import Schedule, assume_valid_steps, gather
from vsmlab.diffusion.likelihoods import discretized_gaussian_nll, gaussian_kl, gaussian_nll, mean_over_dims

__all__ = [
    "learned_variance",
    "DECODERS",
    "vb_bits",
    "vsm_penalty",
    "vsm_weight",
    "score_jacobian_frobenius_sq",
    "require_variance_head",
    "term_gradient_norms",
    "check_weight",
    "check_decoder",
]

_LN2 = math.log(2.0)


def check_weight(name: str, value: Any) -> float:
    """A loss weight or rho: a finite number >= 0 as float (ValueError naming ``name`` otherwise)."""
    return check_nonnegative(name, value, "a negative weight rewards the term")


def learned_variance(v: torch.Tensor, t: torch.Tensor, schedule: Schedule) -> torch.Tensor:
    """Sigma = exp(f log beta_t + (1 - f) log beta_tilde_t), f = (v + 1)/2 (v unbounded). v: [B, ...]; t: [B]."""
    return torch.exp(schedule.learned_log_variance(v, t))


#: the t = 0 term of vb by name: "gaussian" (density NLL, continuous toy data) or "discretized" (8-bit images)
DECODERS: dict[str, Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "gaussian": gaussian_nll, "discretized": discretized_gaussian_nll,
}


def check_decoder(decoder: Any) -> str:
    """``decoder`` if it names one of :data:`DECODERS` (ValueError naming ``decoder`` otherwise)."""
    if decoder not in DECODERS:
        raise ValueError(f"decoder: expected one of {sorted(DECODERS)} ('gaussian' for continuous data, "
                         f"'discretized' for 8-bit images in [-1, 1]), got {decoder!r}")
    return decoder


def vb_bits(
    x0: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor, eps_pred: torch.Tensor, v: torch.Tensor,
    schedule: Schedule, decoder: str = "gaussian",
) -> torch.Tensor:
    """Variational-bound term per example [B] in bits per dimension, mean detached (see module docstring).

    x0, x_t, eps_pred, v: [B, ...] (e.g. [B, d] or [B, C, H, W]); t: [B]. t > 0: KL(q(x_{t-1}|x_t,x0) ||
    N(stopgrad mu_theta, Sigma_theta)); t = 0: the decoder NLL of x0 under N(stopgrad mu_theta, Sigma_theta),
    ``decoder`` = "gaussian" (density; continuous data) or "discretized" (8-bit bins, x0 in [-1, 1], see
    :func:`vsmlab.diffusion.likelihoods.discretized_gaussian_nll`). Gradients reach ``v`` only. Returns x_t's dtype.
    """
    nll_fn = DECODERS[check_decoder(decoder)]
    t = schedule.check_t(t, x_t.shape[0])  # the one range check of this call
    with assume_valid_steps():
        mean_p = schedule.reverse_mean(x_t, t, eps_pred.detach())  # the sampler's mean, detached
        log_var_p = schedule.learned_log_variance(v, t)
        mean_q = schedule.posterior_mean(x0, x_t, t)
    log_var_q = gather(schedule.table("log_beta_tilde_clipped", x_t.device, x_t.dtype), t, x_t)  # log beta_tilde_t, t >= 1
    kl = mean_over_dims(gaussian_kl(mean_q, log_var_q, mean_p, log_var_p)) / _LN2
    nll = mean_over_dims(nll_fn(x0, mean_p, log_var_p)) / _LN2
    return torch.where(t.to(kl.device) == 0, nll.to(kl.dtype), kl)


def vsm_penalty(log_var: torch.Tensor) -> torch.Tensor:
    """mean_dims 1 / (1 + J^2) with J = -1/Sigma, computed as Sigma^2 / (1 + Sigma^2). [B, ...] -> [B]."""
    s2 = torch.exp(2.0 * log_var)
    return mean_over_dims(s2 / (1.0 + s2))


def vsm_weight(t: torch.Tensor, schedule: Schedule, rho: float, time_weight: bool = True) -> torch.Tensor:
    """w(t) [B] (float64): rho / sqrt(1 - alpha_bar_t) if ``time_weight`` else rho."""
    rho = check_weight("rho", rho)
    t = schedule.check_t(t)
    if not time_weight:
        return torch.full(t.shape, rho, dtype=torch.float64, device=t.device)
    return rho / schedule.table("sigma", t.device)[t]


def score_jacobian_frobenius_sq(
    model: nn.Module, x_t: torch.Tensor, t: torch.Tensor, schedule: Schedule, probes: int = 1,
    generator: torch.Generator | None = None, create_graph: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Hutchinson estimate of ||d score_theta / d x_t||_F^2 per example [B] and the model's Prediction.

    x_t: [B, d] (detached here); ``probes`` Rademacher vectors z from ``generator``; estimate = mean_z
    ||J^T z||^2 (exact for d = 1), via :func:`vsmlab.core.estimators.hutchinson_frobenius`. ``create_graph``
    keeps the graph so a loss can differentiate the estimate. Returns (estimate [B], Prediction at x_t).
    """
    check_int("probes", probes, low=1, hint="Hutchinson probe vectors")
    t = schedule.check_t(t, x_t.shape[0])
    captured: dict[str, Prediction] = {}

    def score(x: torch.Tensor) -> torch.Tensor:  # one forward pass, shared with the caller's mse
        pred = model(x, t)
        captured["pred"] = pred
        return -pred.eps / gather(schedule.table("sigma", pred.eps.device, pred.eps.dtype), t, pred.eps)

    est = hutchinson_frobenius(score, x_t.detach(), num_probes=probes, probe="rademacher", generator=generator,
                               create_graph=create_graph, squared=True)
    return est.value, captured["pred"]


def require_variance_head(pred_v: torch.Tensor | None, loss: str) -> torch.Tensor:
    if pred_v is None:
        raise ValueError(
            f"model: the {loss!r} loss learns the reverse variance and needs a model with a variance head "
            "(Prediction.v), but the model returned Prediction.v = None; build it with learn_variance=True"
        )
    return pred_v


# ------------------------------------------------------------------ mechanism: who pushes which parameters
def _param_groups(model: nn.Module) -> dict[str, list[tuple[torch.Tensor, slice | None]]]:
    """eps head / variance head rows of the output layer and the shared trunk (every other parameter).

    The output layer is the MLP's ``out`` (rows 0..d-1 eps, d..2d-1 v) or the UNet's ``out_conv`` (output
    channels 0..C-1 eps, C..2C-1 v); the model must learn the variance.
    """
    if isinstance(getattr(model, "out", None), nn.Linear) and getattr(model, "dim", None) is not None:
        out, c = model.out, model.dim
    elif getattr(model, "out_conv", None) is not None and getattr(model, "in_channels", None) is not None:
        out, c = model.out_conv, model.in_channels
    else:
        raise ValueError("model: expected a vsmlab MLP or UNet with a variance head (learn_variance=True), "
                         f"got {type(model).__name__}")
    if out.weight.shape[0] != 2 * c:
        raise ValueError("model: expected a variance-learning vsmlab MLP or UNet (learn_variance=True)")
    head = {id(out.weight), id(out.bias)}
    trunk = [(p, None) for p in model.parameters() if id(p) not in head]
    return {
        "eps_head": [(out.weight, slice(0, c)), (out.bias, slice(0, c))],
        "var_head": [(out.weight, slice(c, 2 * c)), (out.bias, slice(c, 2 * c))],
        "trunk": trunk,
    }


def term_gradient_norms(
    model: nn.Module, x0: torch.Tensor, t: int, eps: torch.Tensor, schedule: Schedule, rho: float = 1.0,
    time_weight: bool = True, decoder: str = "gaussian",
) -> dict[str, dict[str, float]]:
    """Gradient norms of each loss term's batch mean on the eps head, the variance head and the trunk.

    Works for the MLP and the UNet (see :func:`_param_groups`). The batch x0, eps [B, d] or [B, C, H, W] is
    noised at the single step ``t``; ``decoder`` is the VB term's t = 0 decoder ("discretized" for images). Terms: "mse", "vb", "vsm" (the VSM term
    with this ``rho``/``time_weight``; gradients scale linearly in rho). Returns {term: {group: L2 norm}}.
    The model's parameters are left unchanged (requires_grad restored afterwards).
    """
    groups = _param_groups(model)
    params = list(model.parameters())
    saved = [p.requires_grad for p in params]
    try:
        for p in params:
            p.requires_grad_(True)
        tt = torch.full((x0.shape[0],), int(t), dtype=torch.long)
        with torch.enable_grad():
            x_t = schedule.noise(x0, tt, eps)
            pred = model(x_t, tt)
            v = require_variance_head(pred.v, "vsm")
            log_var = schedule.learned_log_variance(v, tt)
            terms = {
                "mse": mean_over_dims((pred.eps - eps) ** 2).mean(),
                "vb": vb_bits(x0, x_t, tt, pred.eps, v, schedule, decoder=decoder).mean(),
                "vsm": (vsm_weight(tt, schedule, rho, time_weight).to(log_var.dtype) * vsm_penalty(log_var)).mean(),
            }
            out: dict[str, dict[str, float]] = {}
            for name, value in terms.items():
                grads = torch.autograd.grad(value, params, retain_graph=True, allow_unused=True)
                by_param = {id(p): (g if g is not None else torch.zeros_like(p)) for p, g in zip(params, grads)}
                out[name] = {}
                for group, members in groups.items():
                    sq = sum(float((by_param[id(p)] if sl is None else by_param[id(p)][sl]).pow(2).sum()) for p, sl in members)
                    out[name][group] = math.sqrt(sq)
        return out
    finally:
        for p, r in zip(params, saved):
            p.requires_grad_(r)
