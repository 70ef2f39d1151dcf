"""Discrete DDPM noise schedules.

A :class:`Schedule` holds one set of betas ``beta_0 .. beta_{T-1}`` (float64) and everything derived
from them. Time is always the integer step ``t`` in ``0..T-1`` (a tensor of shape ``[B]``).

Forward process (DDPM)::

    q(x_t | x_0) = N(sqrt(alpha_bar_t) x_0, (1 - alpha_bar_t) I),   alpha_bar_t = prod_{s<=t} (1 - beta_s)

Posterior (the reverse step the model imitates)::

    q(x_{t-1} | x_t, x_0) = N(c0_t x_0 + ct_t x_t, beta_tilde_t I)
    beta_tilde_t = (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t) * beta_t      (alpha_bar_{-1} := 1)
    c0_t = sqrt(alpha_bar_{t-1}) beta_t / (1 - alpha_bar_t)
    ct_t = sqrt(alpha_t) (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

__all__ = ["Schedule", "linear", "cosine", "check_t", "gather"]


def gather(values: torch.Tensor, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Pick ``values[t]`` per example and reshape to broadcast against ``like``.

    values: [T] (float64); t: [B] int; like: [B, ...]. Returns [B, 1, ..., 1] in ``like``'s dtype.
    """
    out = values.to(like.device)[t.to(like.device)].to(like.dtype)
    return out.reshape(t.shape[0], *([1] * (like.dim() - 1)))


def check_t(t: torch.Tensor | int, num_steps: int, batch: int | None = None) -> torch.Tensor:
    """Validate a step tensor and return it as int64 of shape [B].

    Raises ValueError naming ``t`` when a value is outside ``0..num_steps-1`` or the shape is wrong.
    """
    if isinstance(t, int):
        if batch is None:
            raise ValueError("t: an int step needs the batch size to broadcast")
        t = torch.full((batch,), t, dtype=torch.long)
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"t: expected an integer tensor of shape [B], got {type(t).__name__}")
    if t.dtype.is_floating_point or t.dtype == torch.bool:
        raise TypeError(f"t: expected an integer tensor (discrete step 0..{num_steps - 1}), got dtype {t.dtype}")
    if t.dim() == 0:
        t = t.reshape(1).expand(batch if batch is not None else 1)
    if t.dim() != 1:
        raise ValueError(f"t: expected shape [B], got {tuple(t.shape)}")
    if batch is not None and t.shape[0] != batch:
        raise ValueError(f"t: expected {batch} steps (one per example), got {t.shape[0]}")
    if t.numel() and (int(t.min()) < 0 or int(t.max()) >= num_steps):
        bad = int(t.min()) if int(t.min()) < 0 else int(t.max())
        raise ValueError(f"t: step {bad} is out of range; allowed 0..{num_steps - 1}")
    return t.long()


@dataclass(frozen=True)
class Schedule:
    """An immutable DDPM schedule over ``betas`` (shape [T], float64, each in (0, 1)).

    Attributes (all [T], float64): ``betas``, ``alphas``, ``alpha_bar``, ``alpha_bar_prev``,
    ``sigma`` (= sqrt(1 - alpha_bar), the std of the noise in x_t), ``beta_tilde`` (posterior variance,
    with beta_tilde_0 = 0), ``log_beta_tilde_clipped`` (t=0 replaced by t=1's value, as in improved DDPM),
    ``posterior_coef_x0`` and ``posterior_coef_xt``.
    """

    betas: torch.Tensor
    name: str = "custom"
    alphas: torch.Tensor = field(init=False, repr=False)
    alpha_bar: torch.Tensor = field(init=False, repr=False)
    alpha_bar_prev: torch.Tensor = field(init=False, repr=False)
    sigma: torch.Tensor = field(init=False, repr=False)
    beta_tilde: torch.Tensor = field(init=False, repr=False)
    log_beta_tilde_clipped: torch.Tensor = field(init=False, repr=False)
    posterior_coef_x0: torch.Tensor = field(init=False, repr=False)
    posterior_coef_xt: torch.Tensor = field(init=False, repr=False)

    def __post_init__(self) -> None:
        betas = torch.as_tensor(self.betas, dtype=torch.float64).detach().clone()
        if betas.dim() != 1 or betas.numel() < 2:
            raise ValueError(f"betas: expected a 1-D tensor with at least 2 steps, got shape {tuple(betas.shape)}")
        if not torch.all((betas > 0) & (betas < 1)):
            raise ValueError(
                f"betas: every beta must lie in (0, 1); got min {float(betas.min())}, max {float(betas.max())}"
            )
        alphas = 1.0 - betas
        alpha_bar = torch.cumprod(alphas, 0)
        alpha_bar_prev = torch.cat([torch.ones(1, dtype=torch.float64), alpha_bar[:-1]])
        beta_tilde = (1.0 - alpha_bar_prev) / (1.0 - alpha_bar) * betas
        log_bt = torch.log(torch.cat([beta_tilde[1:2], beta_tilde[1:]]))
        set_ = object.__setattr__
        set_(self, "betas", betas)
        set_(self, "alphas", alphas)
        set_(self, "alpha_bar", alpha_bar)
        set_(self, "alpha_bar_prev", alpha_bar_prev)
        set_(self, "sigma", torch.sqrt(1.0 - alpha_bar))
        set_(self, "beta_tilde", beta_tilde)
        set_(self, "log_beta_tilde_clipped", log_bt)
        set_(self, "posterior_coef_x0", torch.sqrt(alpha_bar_prev) * betas / (1.0 - alpha_bar))
        set_(self, "posterior_coef_xt", torch.sqrt(alphas) * (1.0 - alpha_bar_prev) / (1.0 - alpha_bar))

    @property
    def num_steps(self) -> int:
        """T, the number of diffusion steps."""
        return int(self.betas.numel())

    def check_t(self, t: torch.Tensor | int, batch: int | None = None) -> torch.Tensor:
        """Validate ``t`` against this schedule (see :func:`check_t`)."""
        return check_t(t, self.num_steps, batch)

    def noise(
        self, x0: torch.Tensor, t: torch.Tensor, eps: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Forward noising ``x_t = sqrt(alpha_bar_t) x0 + sqrt(1 - alpha_bar_t) eps``.

        x0: [B, ...]; t: [B] int; eps: same shape as x0 (drawn from N(0, I) with ``generator`` if None).
        Returns x_t with x0's shape and dtype.
        """
        t = self.check_t(t, x0.shape[0])
        if eps is None:
            eps = torch.randn(x0.shape, generator=generator, dtype=x0.dtype, device=x0.device)
        elif eps.shape != x0.shape:
            raise ValueError(f"eps: expected shape {tuple(x0.shape)} (same as x0), got {tuple(eps.shape)}")
        return gather(torch.sqrt(self.alpha_bar), t, x0) * x0 + gather(self.sigma, t, x0) * eps

    def posterior_mean(self, x0: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Mean of q(x_{t-1} | x_t, x0) = c0_t x0 + ct_t x_t. Shapes [B, ...]; t: [B]."""
        t = self.check_t(t, x_t.shape[0])
        return gather(self.posterior_coef_x0, t, x_t) * x0 + gather(self.posterior_coef_xt, t, x_t) * x_t

    def x0_from_eps(self, x_t: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """x0_hat = (x_t - sqrt(1 - alpha_bar_t) eps) / sqrt(alpha_bar_t). Shapes [B, ...]; t: [B]."""
        t = self.check_t(t, x_t.shape[0])
        inv = 1.0 / torch.sqrt(self.alpha_bar)  # float64: alpha_bar underflows float32 on aggressive schedules
        return gather(inv, t, x_t) * x_t - gather(self.sigma * inv, t, x_t) * eps

    def eps_from_x0(self, x_t: torch.Tensor, t: torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`x0_from_eps`: eps = (x_t - sqrt(alpha_bar_t) x0) / sqrt(1 - alpha_bar_t)."""
        t = self.check_t(t, x_t.shape[0])
        return (x_t - gather(torch.sqrt(self.alpha_bar), t, x_t) * x0) / gather(self.sigma, t, x_t)

    def learned_log_variance(self, v: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Improved-DDPM learned range: log Sigma = f log beta_t + (1 - f) log beta_tilde_t, f = (v + 1) / 2.

        v: [B, ...] in [-1, 1]; t: [B]. beta_tilde_0 is clipped to beta_tilde_1 (log of 0 otherwise).
        Returns log Sigma with v's shape and dtype.
        """
        t = self.check_t(t, v.shape[0])
        frac = (v + 1) / 2
        return frac * gather(torch.log(self.betas), t, v) + (1 - frac) * gather(self.log_beta_tilde_clipped, t, v)

    def timesteps(self, num_steps: int | None = None) -> list[int]:
        """Descending list of steps used by a sampler with ``num_steps`` evenly spaced steps (default: all T).

        Always starts at T-1 and ends at 0. Raises ValueError if num_steps is outside 2..T.
        """
        T = self.num_steps
        if num_steps is None:
            return list(range(T - 1, -1, -1))
        if not isinstance(num_steps, int) or num_steps < 2 or num_steps > T:
            raise ValueError(f"num_steps: expected an int in 2..{T}, got {num_steps!r}")
        steps = torch.linspace(T - 1, 0, num_steps).round().long().tolist()
        out: list[int] = []
        for s in steps:
            if not out or s != out[-1]:
                out.append(int(s))
        return out


def linear(num_steps: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02) -> Schedule:
    """Linear betas from ``beta_start`` to ``beta_end`` (DDPM: 1e-4..0.02; mode-interpolation: 1e-3..0.2)."""
    if not isinstance(num_steps, int) or num_steps < 2:
        raise ValueError(f"num_steps: expected an int >= 2, got {num_steps!r}")
    for name, val in (("beta_start", beta_start), ("beta_end", beta_end)):
        if not (0 < val < 1):
            raise ValueError(f"{name}: expected a value in (0, 1), got {val!r}")
    betas = torch.linspace(beta_start, beta_end, num_steps, dtype=torch.float64)
    return Schedule(betas, name=f"linear({beta_start:g}..{beta_end:g}, T={num_steps})")


def cosine(num_steps: int = 1000, offset: float = 0.008, max_beta: float = 0.999) -> Schedule:
    """Cosine schedule of improved DDPM: alpha_bar(t) = cos^2(((t/T + s)/(1 + s)) pi/2), betas clipped at max_beta."""
    if not isinstance(num_steps, int) or num_steps < 2:
        raise ValueError(f"num_steps: expected an int >= 2, got {num_steps!r}")
    if offset < 0:
        raise ValueError(f"offset: expected >= 0, got {offset!r}")
    if not (0 < max_beta < 1):
        raise ValueError(f"max_beta: expected a value in (0, 1), got {max_beta!r}")

    def f(u: float) -> float:
        return math.cos((u + offset) / (1 + offset) * math.pi / 2) ** 2

    betas = [min(1 - f((i + 1) / num_steps) / f(i / num_steps), max_beta) for i in range(num_steps)]
    return Schedule(torch.tensor(betas, dtype=torch.float64), name=f"cosine(T={num_steps})")
