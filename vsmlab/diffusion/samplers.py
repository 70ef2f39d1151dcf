"""Reverse-process samplers: DDPM ancestral, DDIM (eta), probability-flow ODE (Euler, Heun).

Every sampler is a plain function ``sampler(model, schedule, x_T=None, shape=None, generator=None,
...) -> SampleResult``. Give either ``x_T`` [B, ...] or ``shape`` (then x_T ~ N(0, I) from ``generator``).
Steps run from t = T-1 down to 0; with ``record=True`` the result holds, per step, the state x_t the
model saw and its prediction x0_hat (both [S, B, ...], S = steps), or only the last ``record_last`` steps.

DDPM (all T steps)::

    x_{t-1} = (x_t - beta_t / sqrt(1 - alpha_bar_t) eps) / sqrt(alpha_t) + sqrt(var_t) z,   z = 0 at t = 0
    var_t = beta_t ("beta"), beta_tilde_t ("beta_tilde") or exp(learned log variance) ("learned")

DDIM (steps t -> s, a = alpha_bar)::

    x0 = (x_t - sqrt(1 - a_t) eps) / sqrt(a_t)
    sig = eta sqrt((1 - a_s)/(1 - a_t)) sqrt(1 - a_t / a_s)
    x_s = sqrt(a_s) x0 + sqrt(1 - a_s - sig^2) eps + sig z          (after the last step a_s = 1)

Probability-flow ODE in y = x / sqrt(a), sigma = sqrt(1/a - 1): dy/dsigma = eps(x, t). Its Euler step is
exactly DDIM with eta = 0; Heun adds a trapezoidal correction (Euler on the final step to sigma = 0).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from vsmlab.core.prediction import Prediction
from vsmlab.core.schedules import Schedule

__all__ = ["SampleResult", "ddpm", "ddim", "ode", "SAMPLERS", "sample"]

Model = Callable[[torch.Tensor, torch.Tensor], Prediction]


@dataclass
class SampleResult:
    """samples: [B, ...]; timesteps: the steps visited (descending); x_t, x0_hat: [S, B, ...] or None."""

    samples: torch.Tensor
    timesteps: list[int]
    x_t: torch.Tensor | None = None
    x0_hat: torch.Tensor | None = None


class _Recorder:
    def __init__(self, record: bool, record_last: int | None, num_steps: int) -> None:
        if record_last is not None and (not isinstance(record_last, int) or not 1 <= record_last <= num_steps):
            raise ValueError(f"record_last: expected an int in 1..{num_steps} (the number of steps), got {record_last!r}")
        self.keep = (record_last or num_steps) if (record or record_last) else 0
        self.start = num_steps - self.keep
        self.x_t: list[torch.Tensor] = []
        self.x0: list[torch.Tensor] = []
        self.i = 0

    def add(self, x_t: torch.Tensor, x0: torch.Tensor) -> None:
        if self.keep and self.i >= self.start:
            self.x_t.append(x_t.clone())
            self.x0.append(x0.clone())
        self.i += 1

    def result(self, samples: torch.Tensor, steps: list[int]) -> SampleResult:
        if not self.keep:
            return SampleResult(samples, steps)
        return SampleResult(samples, steps, torch.stack(self.x_t), torch.stack(self.x0))


def _initial(x_T: torch.Tensor | None, shape: tuple[int, ...] | None, generator: torch.Generator | None) -> torch.Tensor:
    if (x_T is None) == (shape is None):
        raise ValueError("x_T, shape: give exactly one (the starting noise, or the shape to draw it with)")
    if x_T is not None:
        if not isinstance(x_T, torch.Tensor) or x_T.dim() < 2:
            raise ValueError(f"x_T: expected a tensor of shape [B, ...], got {getattr(x_T, 'shape', type(x_T).__name__)}")
        return x_T.clone()
    shape = tuple(int(s) for s in shape)  # type: ignore[union-attr]
    if len(shape) < 2 or min(shape) < 1:
        raise ValueError(f"shape: expected [B, ...] with positive sizes, got {shape}")
    return torch.randn(shape, generator=generator)


def _coef(values: torch.Tensor, t: int, like: torch.Tensor) -> torch.Tensor:
    return values[t].to(like.dtype).to(like.device)


def _step_tensor(t: int, x: torch.Tensor) -> torch.Tensor:
    return torch.full((x.shape[0],), t, dtype=torch.long, device=x.device)


def ddpm(
    model: Model, schedule: Schedule, x_T: torch.Tensor | None = None, shape: tuple[int, ...] | None = None,
    generator: torch.Generator | None = None, variance: str = "auto", record: bool = False,
    record_last: int | None = None,
) -> SampleResult:
    """Ancestral DDPM sampling over all T steps.

    variance: "beta" (sigma_t^2 = beta_t, as in the mode-interpolation work), "beta_tilde" (posterior
    variance), "learned" (the model's v head), or "auto" (learned when the model returns v, else beta).
    """
    if variance not in ("auto", "beta", "beta_tilde", "learned"):
        raise ValueError(f"variance: expected 'auto', 'beta', 'beta_tilde' or 'learned', got {variance!r}")
    x = _initial(x_T, shape, generator)
    steps = schedule.timesteps()
    rec = _Recorder(record, record_last, len(steps))
    with torch.no_grad():
        for t in steps:
            tt = _step_tensor(t, x)
            pred = model(x, tt)
            eps = pred.eps
            x0 = schedule.x0_from_eps(x, tt, eps)
            rec.add(x, x0)
            mean = schedule.reverse_mean(x, t, eps)
            if t == 0:
                x = mean
                continue
            mode = variance
            if mode == "auto":
                mode = "learned" if pred.v is not None else "beta"
            if mode == "learned":
                if pred.v is None:
                    raise ValueError("variance: 'learned' needs a model that returns v (a variance head)")
                std = torch.exp(0.5 * schedule.learned_log_variance(pred.v, tt))
            else:
                std = torch.sqrt(_coef(schedule.betas if mode == "beta" else schedule.beta_tilde, t, x))
            x = mean + std * torch.randn(x.shape, generator=generator, dtype=x.dtype)
    return rec.result(x, steps)


def ddim(
    model: Model, schedule: Schedule, x_T: torch.Tensor | None = None, shape: tuple[int, ...] | None = None,
    generator: torch.Generator | None = None, eta: float = 0.0, num_steps: int | None = None,
    record: bool = False, record_last: int | None = None,
) -> SampleResult:
    """DDIM over ``num_steps`` evenly spaced steps (default all T); eta = 0 deterministic, 1 ~ DDPM."""
    if not (isinstance(eta, (int, float)) and eta >= 0):
        raise ValueError(f"eta: expected a number >= 0, got {eta!r}")
    x = _initial(x_T, shape, generator)
    steps = schedule.timesteps(num_steps)
    rec = _Recorder(record, record_last, len(steps))
    with torch.no_grad():
        for i, t in enumerate(steps):
            tt = _step_tensor(t, x)
            eps = model(x, tt).eps
            x0 = schedule.x0_from_eps(x, tt, eps)
            rec.add(x, x0)
            a_t = schedule.alpha_bar[t]
            a_s = schedule.alpha_bar[steps[i + 1]] if i + 1 < len(steps) else torch.ones((), dtype=torch.float64)
            sig = eta * torch.sqrt((1 - a_s) / (1 - a_t)) * torch.sqrt(1 - a_t / a_s)
            # x_s = sqrt(a_s) x0 + sqrt(1 - a_s - sig^2) eps, with x0 expanded; coefficients in float64
            c_x = torch.sqrt(a_s / a_t)
            c_eps = torch.sqrt((1 - a_s - sig**2).clamp_min(0)) - c_x * torch.sqrt(1 - a_t)
            x = c_x.to(x.dtype) * x + c_eps.to(x.dtype) * eps
            if eta > 0 and i + 1 < len(steps):
                x = x + sig.to(x.dtype) * torch.randn(x.shape, generator=generator, dtype=x.dtype)
    return rec.result(x, steps)


def ode(
    model: Model, schedule: Schedule, x_T: torch.Tensor | None = None, shape: tuple[int, ...] | None = None,
    generator: torch.Generator | None = None, method: str = "heun", num_steps: int | None = None,
    record: bool = False, record_last: int | None = None,
) -> SampleResult:
    """Probability-flow ODE dy/dsigma = eps, y = x/sqrt(alpha_bar), integrated by "euler" or "heun"."""
    if method not in ("euler", "heun"):
        raise ValueError(f"method: expected 'euler' or 'heun', got {method!r}")
    x = _initial(x_T, shape, generator)
    steps = schedule.timesteps(num_steps)
    rec = _Recorder(record, record_last, len(steps))
    sig = torch.sqrt(1 / schedule.alpha_bar - 1)
    one = torch.ones((), dtype=torch.float64)
    with torch.no_grad():
        for i, t in enumerate(steps):
            tt = _step_tensor(t, x)
            eps = model(x, tt).eps
            rec.add(x, schedule.x0_from_eps(x, tt, eps))
            last = i + 1 == len(steps)
            a_t, a_n = schedule.alpha_bar[t], (one if last else schedule.alpha_bar[steps[i + 1]])
            s_t, s_n = sig[t], (0 * one if last else sig[steps[i + 1]])
            # y = x / sqrt(a): x_next = sqrt(a_n / a_t) x + (s_n - s_t) sqrt(a_n) eps  (float64 coefficients)
            c_x, c_eps = torch.sqrt(a_n / a_t).to(x.dtype), ((s_n - s_t) * torch.sqrt(a_n)).to(x.dtype)
            x_next = c_x * x + c_eps * eps
            if method == "heun" and not last:
                eps_next = model(x_next, _step_tensor(steps[i + 1], x)).eps
                x_next = c_x * x + c_eps * 0.5 * (eps + eps_next)
            x = x_next
    return rec.result(x, steps)


SAMPLERS: dict[str, Callable[..., SampleResult]] = {"ddpm": ddpm, "ddim": ddim, "ode": ode}


def sample(name: str, model: Model, schedule: Schedule, **kwargs) -> SampleResult:
    """Dispatch by name ("ddpm", "ddim", "ode") for widgets and sweeps; kwargs go to the sampler."""
    if name not in SAMPLERS:
        raise ValueError(f"name: expected one of {sorted(SAMPLERS)}, got {name!r}")
    return SAMPLERS[name](model, schedule, **kwargs)
