"""Learned reverse variance (improved DDPM), the VSM penalty and a penalty on the score's own Jacobian.

A variance-learning model returns ``Prediction(eps, v)`` with a raw, unbounded v on a shared trunk (as
improved DDPM's code; v = -1 and v = 1 are the ends of the range, values outside extrapolate in log space;
the MLP's ``v_activation="tanh"`` option squashes v into (-1, 1) instead). Its reverse step is ``p_theta(x_{t-1} | x_t) = N(mu_theta, Sigma_theta)`` with (improved DDPM, "learned range")::

    mu_theta    = (x_t - beta_t / sqrt(1 - alpha_bar_t) * eps_theta) / sqrt(alpha_t)     (Schedule.reverse_mean)
    log Sigma   = f log beta_t + (1 - f) log beta_tilde_t,   f = (v + 1) / 2     (beta_tilde_0 := beta_tilde_1)

(computed once, by :meth:`vsmlab.core.schedules.Schedule.learned_log_variance`).

Loss terms (all per example [B], see :class:`vsmlab.diffusion.losses.LossTerms`)::

    mse = mean_dims (eps - eps_theta)^2
    vb  = KL(q(x_{t-1} | x_t, x0) || N(stopgrad(mu_theta), Sigma)) / d / ln 2          t > 0  (bits/dim)
        = decoder NLL of x0 under N(stopgrad(mu_theta), Sigma) / d / ln 2             t = 0  (bits/dim)
    vsm = w(t) * mean_dims 1 / (1 + J^2),   J = -1 / Sigma   (= Sigma^2 / (1 + Sigma^2))
          w(t) = rho / sqrt(1 - alpha_bar_t)  (time_weight=True)   or   rho   (time_weight=False)
    total = mse + vb_weight * vb + vsm

Choices made here (and why):

- **Mean detached in vb.** eps_theta enters mu_theta under a stop-gradient, so vb trains only the
  variance head (and, through it, the shared trunk); the eps output is trained by mse alone.
- **Decoder at t = 0** (the ``decoder`` option). "discretized" (images): improved DDPM's discretised
  Gaussian likelihood of the 8-bit bin of x0 (bins of width 2/255 in [-1, 1], edge bins open;
  :func:`vsmlab.diffusion.losses.discretized_gaussian_nll`). "gaussian" (default; continuous toy data): the
  Gaussian *density* NLL of x0 under N(mu_theta, Sigma). That one is in bits per dimension of a density,
  so it can be negative; only its gradient in Sigma matters (optimum Sigma = E (x0 - mu_theta)^2).
- **Hybrid weight.** Improved DDPM writes L_hybrid = L_simple + lambda L_vlb with lambda = 0.001 and
  L_vlb = sum_t L_t, estimated per example as T * L_t. Its code folds the two into a "rescaled" vb of
  weight T / 1000 per sampled t: with T = 1000 that is weight 1 on the per-step KL, our default
  ``vb_weight = 1``.
- **Where the penalties go.** ``LossTerms.vsm`` holds the score-control penalty: the VSM proxy above,
  or the Jacobian penalty below (their sum when both are on).

Jacobian penalty (VSM's idea applied to the score network's real Jacobian, J = d score_theta / d x_t,
score_theta = -eps_theta / sqrt(1 - alpha_bar_t))::

    jacobian = weight * w(t) * 1 / (1 + ||J||_F^2 / d),    w(t) = 1 / sqrt(1 - alpha_bar_t) or 1

||J||_F^2 is estimated with Hutchinson: ||J||_F^2 = E_z ||J^T z||^2 for Rademacher z (exact in 1-D),
averaged over ``probes`` vector-Jacobian products built with ``create_graph=True`` so the penalty is
differentiable (:func:`vsmlab.core.estimators.hutchinson_frobenius`). 1/(1 + mean estimate) is slightly
biased upwards for d > 1 (Jensen); the bias shrinks with more probes. Like VSM, it penalises *small*
Jacobians (over-smooth scores) and is bounded in (0, 1]. Why this form (and not a hinge): it is VSM's
own functional form, so the comparison isolates "real Jacobian vs the -1/Sigma proxy". Its caveat: it
pushes towards sharper scores everywhere, also at large t where the exact Jacobian is about -I (the
penalty is then ~1/2 and dominates); in exploratory 1-D runs weight 0.1 with the 1/sqrt(1 - alpha_bar_t)
weight put about half of the samples off the support, so the defaults are weight 0.01, constant weight.
The cost is one extra backward pass per probe (about 2x the training time).
"""

from __future__ import annotations

import math
from typing import Any, Callable

import torch
from torch import nn

from vsmlab.core.estimators import hutchinson_frobenius
from vsmlab.diffusion.losses import (
    LossFn, LossTerms, discretized_gaussian_nll, gaussian_kl, gaussian_nll, mean_over_dims,
)
from vsmlab.core.prediction import Prediction
from vsmlab.core.schedules import Schedule, assume_valid_steps, gather

__all__ = [
    "learned_variance",
    "DECODERS",
    "vb_bits",
    "vsm_penalty",
    "vsm_weight",
    "score_jacobian_frobenius_sq",
    "variance_terms",
    "make_loss",
    "LOSSES",
    "term_gradient_norms",
]

_LN2 = math.log(2.0)


def _check_nonneg(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{name}: expected a finite number >= 0, got {value!r}")
    if value < 0:
        raise ValueError(f"{name}: expected a number >= 0, got {value!r} (negative weights reward the term)")
    return float(value)


def learned_variance(v: torch.Tensor, t: torch.Tensor, schedule: Schedule) -> torch.Tensor:
    """Sigma = exp(f log beta_t + (1 - f) log beta_tilde_t), f = (v + 1)/2 (v unbounded). v: [B, ...]; t: [B]."""
    return torch.exp(schedule.learned_log_variance(v, t))


#: the t = 0 term of vb by name: "gaussian" (density NLL, continuous toy data) or "discretized" (8-bit images)
DECODERS: dict[str, Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "gaussian": gaussian_nll, "discretized": discretized_gaussian_nll,
}


def _check_decoder(decoder: Any) -> str:
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
    :func:`vsmlab.diffusion.losses.discretized_gaussian_nll`). Gradients reach ``v`` only. Returns x_t's dtype.
    """
    nll_fn = DECODERS[_check_decoder(decoder)]
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
    rho = _check_nonneg("rho", rho)
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
    if isinstance(probes, bool) or not isinstance(probes, int) or probes < 1:
        raise ValueError(f"probes: expected an int >= 1 (Hutchinson probe vectors), got {probes!r}")
    t = schedule.check_t(t, x_t.shape[0])
    captured: dict[str, Prediction] = {}

    def score(x: torch.Tensor) -> torch.Tensor:  # one forward pass, shared with the caller's mse
        pred = model(x, t)
        captured["pred"] = pred
        return -pred.eps / gather(schedule.table("sigma", pred.eps.device, pred.eps.dtype), t, pred.eps)

    est = hutchinson_frobenius(score, x_t.detach(), num_probes=probes, probe="rademacher", generator=generator,
                               create_graph=create_graph, squared=True)
    return est.value, captured["pred"]


def _require_variance_head(pred_v: torch.Tensor | None, loss: str) -> torch.Tensor:
    if pred_v is None:
        raise ValueError(
            f"model: the {loss!r} loss learns the reverse variance and needs a model with a variance head "
            "(Prediction.v), but the model returned Prediction.v = None; build it with learn_variance=True"
        )
    return pred_v


def variance_terms(
    model: nn.Module, x0: torch.Tensor, t: torch.Tensor, eps: torch.Tensor, schedule: Schedule, *,
    vb_weight: float = 1.0, rho: float = 0.0, time_weight: bool = True, jacobian_weight: float = 0.0,
    probes: int = 1, jacobian_time_weight: bool = True, generator: torch.Generator | None = None,
    require_variance: bool = True, loss_name: str = "hybrid", decoder: str = "gaussian",
) -> LossTerms:
    """All terms of the module docstring for one batch. x0, eps: [B, ...]; t: [B]. Returns LossTerms.

    With ``require_variance`` a model without a variance head raises ValueError naming ``model``; without
    it, such a model gets vb = 0 and no VSM term (only mse and the Jacobian penalty). ``decoder``: the t = 0
    term of vb ("gaussian" or "discretized", see :func:`vb_bits`).
    """
    _check_decoder(decoder)
    vb_weight = _check_nonneg("vb_weight", vb_weight)
    rho = _check_nonneg("rho", rho)
    jacobian_weight = _check_nonneg("weight", jacobian_weight)
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
        v = _require_variance_head(pred.v, loss_name)
        vb = vb_bits(x0, x_t, t, pred.eps, v, schedule, decoder)
        if rho > 0:
            vsm = vsm_weight(t, schedule, rho, time_weight).to(mse.dtype) * vsm_penalty(schedule.learned_log_variance(v, t))
        else:
            vsm = zero
    if jac is not None:
        vsm = vsm + jac
    return LossTerms(mse=mse, vb=vb, vsm=vsm, total=mse + vb_weight * vb + vsm)


def _hybrid(vb_weight: float = 1.0, decoder: str = "gaussian") -> LossFn:
    vb_weight, decoder = _check_nonneg("vb_weight", vb_weight), _check_decoder(decoder)

    def loss_fn(model, x0, t, eps, schedule):
        return variance_terms(model, x0, t, eps, schedule, vb_weight=vb_weight, loss_name="hybrid", decoder=decoder)

    return loss_fn


def _vsm(rho: float = 0.1, time_weight: bool = True, vb_weight: float = 1.0, decoder: str = "gaussian") -> LossFn:
    rho, vb_weight, decoder = _check_nonneg("rho", rho), _check_nonneg("vb_weight", vb_weight), _check_decoder(decoder)
    if not isinstance(time_weight, bool):
        raise ValueError(f"time_weight: expected True (rho / sqrt(1 - alpha_bar_t)) or False (constant rho), got {time_weight!r}")

    def loss_fn(model, x0, t, eps, schedule):
        return variance_terms(model, x0, t, eps, schedule, vb_weight=vb_weight, rho=rho, time_weight=time_weight,
                              loss_name="vsm", decoder=decoder)

    return loss_fn


def _jacobian(weight: float = 0.01, probes: int = 1, time_weight: bool = False, vb_weight: float = 1.0,
              seed: int = 0, decoder: str = "gaussian") -> LossFn:
    weight, vb_weight, decoder = _check_nonneg("weight", weight), _check_nonneg("vb_weight", vb_weight), _check_decoder(decoder)
    if isinstance(probes, bool) or not isinstance(probes, int) or probes < 1:
        raise ValueError(f"probes: expected an int >= 1 (Hutchinson probe vectors), got {probes!r}")
    if not isinstance(time_weight, bool):
        raise ValueError(f"time_weight: expected True (1 / sqrt(1 - alpha_bar_t)) or False (constant), got {time_weight!r}")
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
            v = _require_variance_head(pred.v, "vsm")
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
