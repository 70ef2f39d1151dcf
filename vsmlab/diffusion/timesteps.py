"""Timestep samplers of the training loop: how t is drawn, and the importance weight of each draw.

``"uniform"``: t ~ U{0..T-1}, weights None (all 1).

``"loss_second_moment"`` (improved DDPM's LossSecondMomentResampler): a history of the last H = 10
(unweighted) total losses per t; until every t has H of them, t is uniform; then::

    p_t ∝ sqrt(E[L_t^2]),   p = (1 - u) p + u / T   (u = 1e-3),   weight of a draw t_b = 1 / (T p_{t_b})

(the weighted loss is unbiased for the uniform objective). The history is part of the training state.

Both draw their steps in ``0..T-1`` by construction (``randint`` / ``multinomial`` over T entries), so the
training loop runs its loss inside :func:`vsmlab.core.schedules.assume_valid_steps` (no range read). Both
are free of host synchronisation: every operation stays on the generator's / history's device, with fixed
shapes (the sampler's state update uses ``scatter_add_`` where ``bincount`` would read the maximum on the
host), so they can be captured in a CUDA graph.
"""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["UniformSampler", "LossSecondMomentSampler", "TIMESTEP_SAMPLERS", "make_timestep_sampler"]

TIMESTEP_SAMPLERS = ("uniform", "loss_second_moment")


class UniformSampler:
    """t ~ U{0..T-1}; importance weights None (all 1)."""

    name = "uniform"

    def __init__(self, num_steps: int, device: torch.device | str = "cpu") -> None:
        self.num_steps = num_steps

    def sample(self, n: int, generator: torch.Generator, device: torch.device | str | None = None
               ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(t [n] int64, None), drawn with ``torch.randint`` from ``generator`` on its device."""
        return torch.randint(0, self.num_steps, (n,), generator=generator, device=device), None

    def update(self, t: torch.Tensor, losses: torch.Tensor) -> None:
        """No state."""

    def state_dict(self) -> dict[str, Any]:
        return {"name": self.name}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("name") != self.name:
            raise ValueError(f"timestep_sampler: checkpoint holds {state.get('name')!r}, this run uses {self.name!r}")


class LossSecondMomentSampler:
    """Improved DDPM's LossSecondMomentResampler, on the device and without host synchronisation.

    State: ``history`` [T, H + 1] float64 (a ring buffer of the last H = ``history_per_term`` losses per t;
    column H is a scratch slot) and ``count`` [T] int64 (losses ever seen per t). Only the mean of the
    squares is used, so the ring order does not matter. Probabilities: uniform until every count >= H, then
    p_t = sqrt(mean(history_t^2)) / sum, p = (1 - u) p + u / T with u = ``uniform_prob``. Importance weight
    of a draw t: 1 / (T p_t). A non-finite loss in the history (a diverging run, stopped at the trainer's next
    read) gives uniform probabilities rather than an invalid distribution (a device-side assert on a GPU).
    """

    name = "loss_second_moment"

    def __init__(self, num_steps: int, device: torch.device | str = "cpu", history_per_term: int = 10,
                 uniform_prob: float = 1e-3) -> None:
        self.num_steps, self.size, self.uniform_prob = num_steps, history_per_term, uniform_prob
        self.history = torch.zeros(num_steps, history_per_term + 1, dtype=torch.float64, device=device)
        self.count = torch.zeros(num_steps, dtype=torch.long, device=device)

    def probabilities(self) -> torch.Tensor:
        """p [T] float64 (module docstring)."""
        T = self.num_steps
        second = torch.sqrt((self.history[:, : self.size] ** 2).mean(1))
        p = second / second.sum().clamp_min(1e-300)
        p = p * (1 - self.uniform_prob) + self.uniform_prob / T
        use = (self.count >= self.size).all() & torch.isfinite(p).all()  # NaN losses: uniform until the NaN check
        return torch.where(use, p, torch.full_like(p, 1.0 / T))

    def sample(self, n: int, generator: torch.Generator, device: torch.device | str | None = None
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """(t [n] int64, weights [n] float32 = 1 / (T p_t)), t drawn by ``torch.multinomial`` from ``generator``."""
        p = self.probabilities()
        if device is not None and p.device != torch.device(device):
            p = p.to(device)
        t = torch.multinomial(p, n, replacement=True, generator=generator)
        weights = (1.0 / (self.num_steps * p[t])).float()
        return t, weights

    @torch.no_grad()
    def update(self, t: torch.Tensor, losses: torch.Tensor) -> None:
        """Append ``losses`` [B] (in batch order) to the histories of their steps ``t`` [B] (no host read)."""
        t = t.to(self.history.device)
        losses = losses.detach().to(self.history.device, torch.float64)
        H, B = self.size, t.shape[0]
        order = torch.argsort(t, stable=True)
        ts, ls = t[order], losses[order]
        first = torch.searchsorted(ts, ts, right=False)
        rank = torch.arange(B, device=ts.device) - first
        in_batch = torch.zeros_like(self.count).scatter_add_(0, t, torch.ones_like(t))  # bincount, on the device
        keep = rank >= in_batch[ts] - H  # only the last H of a step's new losses survive
        pos = torch.where(keep, (self.count[ts] + rank) % H, torch.full_like(rank, H))
        self.history[ts, pos] = ls
        self.count += in_batch

    def state_dict(self) -> dict[str, Any]:
        return {"name": self.name, "history": self.history[:, : self.size].clone(), "count": self.count.clone()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("name") != self.name:
            raise ValueError(f"timestep_sampler: checkpoint holds {state.get('name')!r}, this run uses {self.name!r}")
        hist, count = state["history"], state["count"]
        if tuple(hist.shape) != (self.num_steps, self.size) or tuple(count.shape) != (self.num_steps,):
            raise ValueError(f"timestep_sampler: checkpoint history has shape {tuple(hist.shape)}, expected "
                             f"{(self.num_steps, self.size)}")
        self.history[:, : self.size].copy_(hist)
        self.count.copy_(count)


def make_timestep_sampler(name: str, num_steps: int, device: torch.device | str = "cpu"
                          ) -> UniformSampler | LossSecondMomentSampler:
    """The sampler called ``name`` (one of :data:`TIMESTEP_SAMPLERS`) over T = ``num_steps`` steps."""
    if name not in TIMESTEP_SAMPLERS:
        raise ValueError(f"timestep_sampler: expected one of {list(TIMESTEP_SAMPLERS)}, got {name!r}")
    cls = UniformSampler if name == "uniform" else LossSecondMomentSampler
    return cls(num_steps, device=device)
