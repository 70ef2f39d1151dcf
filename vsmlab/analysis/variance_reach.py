"""How far a variance-only penalty such as VSM can reach, per step t, for any schedule.

Improved DDPM's learned range (:meth:`vsmlab.core.schedules.Schedule.learned_log_variance`, the one
implementation the losses and samplers use, evaluated here at v = -1 and v = 1) confines the reverse
variance to::

    log Sigma = f log beta_t + (1 - f) log beta_tilde_t,   f = (v + 1) / 2,   v in [-1, 1]
    => Sigma in [beta_tilde_t, beta_t]                     (beta_tilde_0 := beta_tilde_1, clipped)

The VSM term on one dimension is P = Sigma^2 / (1 + Sigma^2) (= 1 / (1 + J^2), J = -1/Sigma;
:func:`vsmlab.diffusion.variance.vsm_penalty`), weighted by w(t) = rho / sqrt(1 - alpha_bar_t) or rho
(:func:`vsmlab.diffusion.variance.vsm_weight`). With L_t = log(beta_t / beta_tilde_t), the log-width::

    dP/dSigma = 2 Sigma / (1 + Sigma^2)^2,    dSigma/dv = Sigma L_t / 2
    dP/dv     = Sigma^2 L_t / (1 + Sigma^2)^2                       (per dimension, before w(t))

(the penalty is a mean over the d dimensions, so one element's v receives w(t) dP/dv / d). Two facts
follow, for any schedule:

- the pull on v is proportional to L_t, which is large only at small t (beta_tilde_t / beta_t =
  (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t) -> 1 once alpha_bar_t is small), and the value is ~Sigma^2;
- whatever its weight, a penalty that acts on the variance alone can at most move Sigma from where it is
  down to beta_tilde_t: a relative change 1 - exp(-f L_t) from frac f, at most 1 - beta_tilde_t / beta_t
  (from f = 1), and 1 - exp(-f L_t / 2) of the standard deviation. A penalty that rivals L_vb's gradient
  on v therefore still acts on a range that is closed wherever L_t ~ 0. (An unbounded v can leave the
  range; :class:`vsmlab.diffusion.samplers.FracCounts` measures how often it does while sampling, and
  sampling with ``variance_frac=0`` / ``1`` measures the ceiling on samples directly.)

:func:`penalty_reach` returns every quantity per t as [T] float64 tensors; :func:`reach_summary` formats
a table at chosen steps.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from vsmlab.core.checks import check_bool, check_ints, check_number
from vsmlab.core.schedules import Schedule
from vsmlab.diffusion.variance import vsm_penalty, vsm_weight

__all__ = ["PenaltyReach", "penalty_reach", "reach_summary", "default_reach_steps"]


@dataclass(frozen=True)
class PenaltyReach:
    """Per-step reach of the VSM penalty (module docstring); every tensor is [T], float64, on the CPU.

    beta, beta_tilde: the ends of the range (beta_tilde_0 clipped to beta_tilde_1); log_width: L_t =
    log(beta_t / beta_tilde_t); weight: w(t); penalty_low, penalty_high: w(t) P at Sigma = beta_tilde_t
    and at Sigma = beta_t (the penalty's whole value range on one dimension); grad_low, grad_high: w(t)
    dP/dv there (v = -1 and v = 1); sigma_change: 1 - exp(-frac L_t), the largest relative decrease of
    Sigma a variance-only penalty can cause from ``frac`` (= 1 - beta_tilde_t / beta_t for frac = 1);
    std_change: the same for sqrt(Sigma). rho, time_weight, frac: the arguments; schedule: its name.
    """

    schedule: str
    rho: float
    time_weight: bool
    frac: float | None
    t: torch.Tensor
    beta: torch.Tensor
    beta_tilde: torch.Tensor
    log_width: torch.Tensor
    weight: torch.Tensor
    penalty_low: torch.Tensor
    penalty_high: torch.Tensor
    grad_low: torch.Tensor
    grad_high: torch.Tensor
    sigma_change: torch.Tensor
    std_change: torch.Tensor

    @property
    def penalty_range(self) -> torch.Tensor:
        """[T] penalty_high - penalty_low: the most the (weighted) penalty can be lowered at each t."""
        return self.penalty_high - self.penalty_low

    def rows(self, steps: Sequence[int] | None = None) -> list[dict[str, float]]:
        """One dict per step (default :func:`default_reach_steps`) with every per-step quantity as a float."""
        T = int(self.t.numel())
        steps = default_reach_steps(T) if steps is None else check_ints("steps", steps, 0, T - 1, nonempty=True)
        names = ("beta", "beta_tilde", "log_width", "weight", "penalty_low", "penalty_high", "grad_low",
                 "grad_high", "sigma_change", "std_change")
        return [{"t": s, **{n: float(getattr(self, n)[s]) for n in names}} for s in steps]


def default_reach_steps(num_steps: int) -> list[int]:
    """0, 1, 2, 5, 10, 20, 50, 100, 200, 500 (those below T) and T - 1."""
    return sorted({s for s in (0, 1, 2, 5, 10, 20, 50, 100, 200, 500) if s < num_steps} | {num_steps - 1})


def penalty_reach(
    schedule: Schedule, rho: float = 0.1, time_weight: bool = True, frac: float | torch.Tensor = 1.0,
) -> PenaltyReach:
    """Per-step value range, v-gradient, log-width and largest Sigma change of the VSM penalty.

    schedule: any :class:`Schedule` (T steps); rho, time_weight: the penalty's weight w(t) = rho /
    sqrt(1 - alpha_bar_t) (True) or rho (False); frac: the current frac = (v + 1) / 2 Sigma starts from
    (a number, or a [T] tensor, e.g. the mean frac a trained model predicts per t; default 1: Sigma =
    beta_t, the largest reach). Returns :class:`PenaltyReach` ([T] float64 tensors, equations in the
    module docstring). ValueError names ``rho``, ``time_weight`` or ``frac`` when they are invalid.
    """
    if not isinstance(schedule, Schedule):
        raise TypeError(f"schedule: expected a vsmlab Schedule, got {type(schedule).__name__}")
    check_bool("time_weight", time_weight, hint="True: rho / sqrt(1 - alpha_bar_t); False: constant rho")
    T = schedule.num_steps
    t = torch.arange(T)
    if isinstance(frac, torch.Tensor):
        f = frac.detach().to("cpu", torch.float64).reshape(-1)
        if f.numel() != T or not bool(torch.isfinite(f).all()):
            raise ValueError(f"frac: expected a number or a finite tensor of {T} values (one per t), got shape {tuple(frac.shape)}")
        frac_arg = None
    else:
        frac_arg = check_number("frac", frac, hint="1: Sigma = beta_t, 0: beta_tilde_t; or a [T] tensor")
        f = torch.full((T,), frac_arg, dtype=torch.float64)
    weight = vsm_weight(t, schedule, rho, time_weight)  # validates rho
    ends = torch.tensor([[-1.0], [1.0]], dtype=torch.float64)
    log_low = schedule.learned_log_variance(ends[:1].expand(T, 1), t)[:, 0]   # v = -1: log beta_tilde_t (clipped)
    log_high = schedule.learned_log_variance(ends[1:].expand(T, 1), t)[:, 0]  # v = 1: log beta_t
    low, high = torch.exp(log_low), torch.exp(log_high)
    log_width = log_high - log_low

    def grad(sigma: torch.Tensor) -> torch.Tensor:  # w(t) dP/dv = w Sigma^2 L / (1 + Sigma^2)^2
        return weight * sigma**2 * log_width / (1 + sigma**2) ** 2

    return PenaltyReach(
        schedule=schedule.name, rho=float(rho), time_weight=time_weight, frac=frac_arg, t=t, beta=high,
        beta_tilde=low, log_width=log_width, weight=weight,
        penalty_low=weight * vsm_penalty(log_low[:, None]), penalty_high=weight * vsm_penalty(log_high[:, None]),
        grad_low=grad(low), grad_high=grad(high),
        sigma_change=-torch.expm1(-f * log_width), std_change=-torch.expm1(-0.5 * f * log_width),
    )


def reach_summary(
    schedule: Schedule, steps: Sequence[int] | None = None, rho: float = 0.1, time_weight: bool = True,
    frac: float | torch.Tensor = 1.0,
) -> str:
    """A text table of :func:`penalty_reach` at ``steps`` (default :func:`default_reach_steps`): t, beta_t,
    beta_tilde_t, log-width, the largest relative change of Sigma (%), w(t), the weighted penalty at both
    ends and its v-gradient at both ends. Print it; the numbers are :meth:`PenaltyReach.rows`."""
    reach = penalty_reach(schedule, rho, time_weight, frac)
    weight = f"rho / sqrt(1 - alpha_bar_t), rho = {reach.rho:g}" if time_weight else f"constant rho = {reach.rho:g}"
    head = (f"VSM penalty reach on {reach.schedule}: w(t) = {weight}; Sigma in [beta_tilde_t, beta_t]; "
            f"Sigma change from frac = {'per-t tensor' if reach.frac is None else f'{reach.frac:g}'} down to beta_tilde_t")
    cols = ("t", "beta_t", "beta_tilde_t", "log(b/bt)", "max dSigma", "w(t)", "wP(bt)", "wP(b)", "w dP/dv(-1)", "w dP/dv(1)")
    lines = [head, "  ".join(f"{c:>11}" for c in cols)]
    for r in reach.rows(steps):
        vals = (f"{r['t']:d}", f"{r['beta']:.4g}", f"{r['beta_tilde']:.4g}", f"{r['log_width']:.3g}",
                f"{100 * r['sigma_change']:.3g}%", f"{r['weight']:.3g}", f"{r['penalty_low']:.3g}",
                f"{r['penalty_high']:.3g}", f"{r['grad_low']:.3g}", f"{r['grad_high']:.3g}")
        lines.append("  ".join(f"{v:>11}" for v in vals))
    return "\n".join(lines)
