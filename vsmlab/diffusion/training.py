"""The one training loop (MLP and UNet), as a generator: one :class:`StepRecord` per optimisation step.

The caller decides what to log, plot, checkpoint or stop on::

    for rec in train(model, data, schedule, steps=2000, batch_size=1024, seed=0):
        if rec.step % 100 == 0: print(rec.step, rec.terms["total"])

Each step draws a batch x0 from ``data``, t from the timestep sampler and eps ~ N(0, I), evaluates
``loss_fn`` (default eps-MSE) and takes an optimizer step on ``mean_b(w_b * total_b)`` (w = 1 except under
importance sampling of t). Everything a resumed run needs lives in a :class:`Trainer`
(``trainer.state_dict()`` / ``load_state_dict``); :func:`train` is ``Trainer(...).run()``.

Randomness (``rng``):

- ``"sequential"`` (default; the toy notebooks): one CPU generator seeded with ``seed`` draws, in this
  order and every step, the batch indices (or calls ``data(n, generator)``), t, then eps (moved to
  ``device`` afterwards). With the default arguments on CPU this is bit-identical to the loop the toy
  notebooks 01-05 were published with (tests/test_training.py keeps a frozen copy of it). Dropout and
  other draws inside the model use torch's global generator (saved in checkpoints). Single process only.
- ``"per_step"`` (images, DDP): step s draws its GLOBAL batch (indices, t, eps) from generators seeded
  with ``step_key(seed, s)`` (a CPU one for indices, one on ``device`` for t and eps; the same one on
  CPU); rank r of W keeps rows ``[r B/W, (r+1) B/W)``. The model's own draws (dropout) run under
  ``torch.manual_seed(step_key(seed, s, rank))`` inside a forked RNG. So results do not depend on the
  number of ranks (up to float reduction order) and resuming needs no RNG state at all.

Learning rate at step s (1-based) for ``lr_decay = "none" | "cosine"`` and ``warmup`` W::

    lr_s = lr * min(1, s / W) * (1 + cos(pi (s - 1 - W) / (steps - W))) / 2     (cosine; W = 0: the old form)

EMA (``ema_decay`` = d, off when None): after each step ``ema <- decay_s ema + (1 - decay_s) theta`` with
``decay_s = d`` (``ema_warmup = "none"``) or ``decay_s = min(d, (1 + s) / (10 + s))`` (``"ramp"``: the EMA
then averages roughly the last ~s/10..s steps early on, so a 0.9999 EMA of a short run is not mostly the
initial weights; decay_s reaches 0.999 at s ~ 9,000 and 0.9999 at s ~ 90,000). Buffers are copied.

Timestep samplers: ``"uniform"`` (t ~ U{0..T-1}) or ``"loss_second_moment"`` (improved DDPM): a history
of the last 10 (unweighted) total losses per t; until every t has 10, t is uniform; then
p_t ∝ sqrt(E[L_t^2]), mixed as p = (1 - 1e-3) p + 1e-3 / T; the loss of example b is weighted by
1 / (T p_{t_b}) (unbiased for the uniform objective). The history is part of the training state.

Mixed precision: ``amp = "auto"`` runs the loss under bf16 autocast on CUDA and plain fp32 on CPU.
Records: ``terms`` (batch means of every loss term) and ``grad_norm`` are read from the device every
``log_every`` steps (and on the last step); in between they are detached 0-d tensors (``record.floats()``
reads them). The NaN/inf check runs when they are read; a non-finite value raises
:class:`TrainingDiverged` naming the step range and the term. Under torch.distributed the terms are the
mean over all ranks (the global batch).
"""

from __future__ import annotations

import contextlib
import copy
import math
from dataclasses import dataclass, fields
from typing import Any, Callable, Iterator

import torch
from torch import nn

from vsmlab.core.schedules import Schedule
from vsmlab.diffusion.losses import LossFn, LossTerms, eps_mse_loss

__all__ = [
    "StepRecord", "TrainingDiverged", "train", "fit", "Trainer", "EMA", "UniformSampler",
    "LossSecondMomentSampler", "step_key", "lr_at", "OPTIMIZERS", "TIMESTEP_SAMPLERS", "RNG_MODES",
]

OPTIMIZERS = ("adam", "adamw")
TIMESTEP_SAMPLERS = ("uniform", "loss_second_moment")
RNG_MODES = ("sequential", "per_step")
LR_DECAYS = ("none", "cosine")
EMA_WARMUPS = ("none", "ramp")
AMP_MODES = ("auto", "bf16", "none")
_TERMS = tuple(f.name for f in fields(LossTerms))


class TrainingDiverged(FloatingPointError):
    """Raised when a loss term becomes NaN or infinite; the message names the step (range) and the term."""


@dataclass
class StepRecord:
    """step (1-based, global), terms (batch means of each loss term), grad_norm (global, before clipping) or
    None, lr (the learning rate used at this step).

    ``terms`` / ``grad_norm`` are floats on read steps (every ``log_every`` steps and the last step) and
    detached 0-d tensors (possibly on the GPU) in between; :meth:`floats` reads them.
    """

    step: int
    terms: dict[str, Any]
    grad_norm: Any = None
    lr: float | None = None

    def floats(self) -> dict[str, float]:
        """Every term (and ``grad_norm`` when recorded) as Python floats (synchronises with the device)."""
        out = {k: float(v) for k, v in self.terms.items()}
        if self.grad_norm is not None:
            out["grad_norm"] = float(self.grad_norm)
        return out


# ---------------------------------------------------------------------------------------------- helpers
def step_key(seed: int, step: int, rank: int | None = None) -> int:
    """A 63-bit generator seed for (seed, step[, rank]) (SplitMix64 finaliser: nearby inputs, unrelated keys)."""
    z = (int(seed) * 0x9E3779B97F4A7C15 + int(step) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    if rank is not None:
        z = (z + (int(rank) + 1) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
    return (z ^ (z >> 31)) & 0x7FFFFFFFFFFFFFFF


def lr_at(step: int, lr: float, steps: int, decay: str = "none", warmup: int = 0) -> float:
    """Learning rate at 1-based ``step`` (module docstring). ``warmup`` = 0 and decay "none" give ``lr``."""
    if decay == "cosine":
        if warmup > 0:
            progress = max(0.0, (step - 1 - warmup) / max(1, steps - warmup))
            value = lr * 0.5 * (1 + math.cos(math.pi * progress))
        else:
            value = lr * 0.5 * (1 + math.cos(math.pi * (step - 1) / steps))  # the published toy form
    else:
        value = lr
    if warmup > 0 and step < warmup:
        value = value * (step / warmup)
    return value


def _world() -> tuple[int, int]:
    """(rank, world size) of the default process group, (0, 1) without one."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


class EMA:
    """Exponential moving average of a model's state: float parameters averaged, everything else copied.

    ``decay_at(step)`` is ``decay`` or, with ``warmup="ramp"``, ``min(decay, (1 + step) / (10 + step))``.
    ``state_dict()`` has the model's state_dict keys, so ``model.load_state_dict(ema.state_dict())`` works.
    """

    def __init__(self, model: nn.Module, decay: float, warmup: str = "ramp") -> None:
        if isinstance(decay, bool) or not isinstance(decay, (int, float)) or not 0.0 < decay < 1.0:
            raise ValueError(f"ema_decay: expected a number in (0, 1) (or None for no EMA), got {decay!r}")
        if warmup not in EMA_WARMUPS:
            raise ValueError(f"ema_warmup: expected one of {list(EMA_WARMUPS)}, got {warmup!r}")
        self.decay, self.warmup = float(decay), warmup
        live = model.state_dict(keep_vars=True)
        self.shadow = {k: v.detach().clone() for k, v in live.items()}
        self._averaged = [k for k, v in live.items() if isinstance(v, nn.Parameter) and v.requires_grad
                          and v.is_floating_point()]
        self._copied = [k for k in live if k not in set(self._averaged)]

    def decay_at(self, step: int) -> float:
        """The decay used for the update after 1-based ``step``."""
        if self.warmup == "ramp":
            return min(self.decay, (1 + step) / (10 + step))
        return self.decay

    @torch.no_grad()
    def update(self, model: nn.Module, step: int) -> None:
        """shadow <- d shadow + (1 - d) theta for parameters, copy for buffers; d = decay_at(step)."""
        live = model.state_dict(keep_vars=True)
        d = self.decay_at(step)
        torch._foreach_lerp_([self.shadow[k] for k in self._averaged], [live[k].detach() for k in self._averaged], 1.0 - d)
        for k in self._copied:
            self.shadow[k].copy_(live[k])

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The averaged weights (model state_dict layout)."""
        return self.shadow

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Copy ``state`` (same keys and shapes as the model) into the shadow."""
        missing, extra = sorted(set(self.shadow) - set(state)), sorted(set(state) - set(self.shadow))
        if missing or extra:
            raise ValueError(f"ema: state keys do not match the model (missing {missing[:5]}, unexpected {extra[:5]})")
        with torch.no_grad():
            for k, v in state.items():
                if v.shape != self.shadow[k].shape:
                    raise ValueError(f"ema: {k!r} has shape {tuple(v.shape)}, the model has {tuple(self.shadow[k].shape)}")
                self.shadow[k].copy_(v)

    def copy_model(self, model: nn.Module) -> nn.Module:
        """A deep copy of ``model`` holding the EMA weights (eval mode)."""
        out = copy.deepcopy(model)
        out.load_state_dict(self.shadow)
        return out.eval()


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
    of a draw t: 1 / (T p_t).
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
        full = (self.count >= self.size).all()
        return torch.where(full, p, torch.full_like(p, 1.0 / T))

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
        """Append ``losses`` [B] (in batch order) to the histories of their steps ``t`` [B]."""
        t = t.to(self.history.device)
        losses = losses.detach().to(self.history.device, torch.float64)
        T, H, B = self.num_steps, self.size, t.shape[0]
        order = torch.argsort(t, stable=True)
        ts, ls = t[order], losses[order]
        first = torch.searchsorted(ts, ts, right=False)
        rank = torch.arange(B, device=ts.device) - first
        in_batch = torch.bincount(t, minlength=T)
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


# ------------------------------------------------------------------------------------------------ loop
def _check_int(name: str, value: Any, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{name}: expected an int >= {low}, got {value!r}")
    return value


def _choice(name: str, value: Any, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise ValueError(f"{name}: expected one of {list(allowed)}, got {value!r}")
    return value


class Trainer:
    """Model, optimizer, EMA, timestep sampler and step counter of one run; :meth:`run` yields records.

    Arguments as :func:`train`. ``state_dict()`` holds everything a resumed run needs besides the
    config (step, model, EMA, optimizer, timestep sampler, RNG state of the "sequential" mode);
    ``load_state_dict`` restores it, and :meth:`run` then continues from ``step + 1`` to ``steps``.
    """

    def __init__(
        self,
        model: nn.Module,
        data: torch.Tensor | Callable[[int, torch.Generator], torch.Tensor],
        schedule: Schedule,
        steps: int,
        batch_size: int = 1024,
        lr: float = 1e-3,
        seed: int = 0,
        loss_fn: LossFn = eps_mse_loss,
        grad_norms: bool = False,
        max_grad_norm: float | None = None,
        lr_decay: str = "none",
        *,
        optimizer: str = "adam",
        weight_decay: float = 0.0,
        warmup: int = 0,
        ema_decay: float | None = None,
        ema_warmup: str = "ramp",
        timestep_sampler: str = "uniform",
        rng: str = "sequential",
        device: torch.device | str | None = None,
        amp: str = "auto",
        compile: bool = False,
        channels_last: bool = False,
        log_every: int = 1,
    ) -> None:
        _check_int("steps", steps, 1)
        _check_int("batch_size", batch_size, 1)
        _check_int("warmup", warmup, 0)
        _check_int("log_every", log_every, 1)
        if isinstance(lr, bool) or not (isinstance(lr, (int, float)) and lr > 0 and math.isfinite(lr)):
            raise ValueError(f"lr: expected a number > 0, got {lr!r}")
        if isinstance(weight_decay, bool) or not (isinstance(weight_decay, (int, float)) and weight_decay >= 0):
            raise ValueError(f"weight_decay: expected a number >= 0, got {weight_decay!r}")
        if max_grad_norm is not None and not (isinstance(max_grad_norm, (int, float)) and max_grad_norm > 0):
            raise ValueError(f"max_grad_norm: expected a number > 0 or None (no clipping), got {max_grad_norm!r}")
        _choice("lr_decay", lr_decay, LR_DECAYS)
        _choice("optimizer", optimizer, OPTIMIZERS)
        _choice("timestep_sampler", timestep_sampler, TIMESTEP_SAMPLERS)
        _choice("rng", rng, RNG_MODES)
        _choice("amp", amp, AMP_MODES)
        if optimizer == "adam" and weight_decay:
            raise ValueError(f"weight_decay: {weight_decay!r} needs optimizer='adamw' (decoupled), got optimizer='adam'")
        if isinstance(data, torch.Tensor):
            if data.dim() < 2 or data.shape[0] < 1:
                raise ValueError(f"data: expected a training set of shape [N, ...] with N >= 1, got {tuple(data.shape)}")
        elif not callable(data):
            raise TypeError(f"data: expected a tensor [N, ...] or a callable (n, generator) -> tensor, got {type(data).__name__}")
        self.device = torch.device(device) if device is not None else next(
            (p.device for p in model.parameters()), torch.device("cpu"))
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"device: {str(self.device)!r} requested but CUDA is not available; allowed: 'cpu'")
        if amp == "bf16" and self.device.type != "cuda":
            raise ValueError(f"amp: 'bf16' autocast runs on CUDA only, got device {str(self.device)!r}; use 'auto' or 'none'")
        self.rank, self.world = _world()
        if self.world > 1:
            if rng != "per_step":
                raise ValueError(f"rng: {rng!r} draws per process; under torch.distributed use 'per_step' "
                                 f"(world size {self.world})")
            if batch_size % self.world:
                raise ValueError(f"batch_size: {batch_size} is not divisible by the world size {self.world}")
        self.model = model.to(self.device)
        if channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.data, self.schedule, self.steps, self.batch_size = data, schedule, steps, batch_size
        self.lr, self.seed, self.loss_fn, self.lr_decay, self.warmup = lr, seed, loss_fn, lr_decay, warmup
        self.grad_norms, self.max_grad_norm = grad_norms, max_grad_norm
        self.rng, self.log_every, self.channels_last = rng, log_every, channels_last
        self.autocast = amp == "bf16" or (amp == "auto" and self.device.type == "cuda")
        self.step = 0
        if optimizer == "adam":
            self.optimizer: torch.optim.Optimizer = torch.optim.Adam(self.model.parameters(), lr=lr)
        else:
            self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=lr, weight_decay=weight_decay)
        self.ema = EMA(self.model, ema_decay, ema_warmup) if ema_decay is not None else None
        sampler_cls = UniformSampler if timestep_sampler == "uniform" else LossSecondMomentSampler
        self.timestep_sampler = sampler_cls(schedule.num_steps, device=self.device)
        self.generator = torch.Generator().manual_seed(seed) if rng == "sequential" else None
        self.forward_model: nn.Module = self.model
        if self.world > 1:
            from torch.nn.parallel import DistributedDataParallel

            ids = [self.device.index] if self.device.type == "cuda" else None
            self.forward_model = DistributedDataParallel(self.model, device_ids=ids)
        if compile:
            self.forward_model = torch.compile(self.forward_model)

    # ------------------------------------------------------------------------------------- state
    def state_dict(self) -> dict[str, Any]:
        """{"step", "model", "ema" (or None), "optimizer", "timestep_sampler", "rng"} (tensors and plain types)."""
        rng: dict[str, Any] = {"mode": self.rng}
        if self.generator is not None:
            rng["generator"] = self.generator.get_state()
            rng["torch"] = torch.get_rng_state()
            if torch.cuda.is_available() and self.device.type == "cuda":
                rng["cuda"] = torch.cuda.get_rng_state(self.device)
        return {
            "step": self.step,
            "model": self.model.state_dict(),
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "optimizer": self.optimizer.state_dict(),
            "timestep_sampler": self.timestep_sampler.state_dict(),
            "rng": rng,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict` (raises ValueError naming what does not match this run)."""
        step = state["step"]
        if not isinstance(step, int) or not 0 <= step <= self.steps:
            raise ValueError(f"step: the checkpoint is at step {step!r}, this run trains steps 1..{self.steps}")
        try:
            self.model.load_state_dict(state["model"])
        except RuntimeError as exc:
            raise ValueError(f"model: the checkpoint's weights do not fit this model: {exc}") from None
        if (state["ema"] is None) != (self.ema is None):
            raise ValueError(f"ema: the checkpoint {'has no' if state['ema'] is None else 'has an'} EMA, this run "
                             f"{'uses one' if self.ema is not None else 'uses none'}")
        if self.ema is not None:
            self.ema.load_state_dict(state["ema"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.timestep_sampler.load_state_dict(state["timestep_sampler"])
        rng = state["rng"]
        if rng.get("mode") != self.rng:
            raise ValueError(f"rng: the checkpoint was trained with {rng.get('mode')!r}, this run uses {self.rng!r}")
        if self.generator is not None:
            self.generator.set_state(rng["generator"])
            torch.set_rng_state(rng["torch"])
            if "cuda" in rng and self.device.type == "cuda":
                torch.cuda.set_rng_state(rng["cuda"], self.device)
        self.step = step

    # ------------------------------------------------------------------------------------- batches
    def _to_device(self, x0: torch.Tensor) -> torch.Tensor:
        if x0.device != self.device:
            x0 = x0.to(self.device, non_blocking=True)
        if x0.dtype == torch.uint8:  # 8-bit images -> [-1, 1]
            x0 = x0.float() / 127.5 - 1.0
        if self.channels_last and x0.dim() == 4:
            x0 = x0.contiguous(memory_format=torch.channels_last)
        return x0

    def _draw_indices(self, n: int, g: torch.Generator) -> torch.Tensor:
        if callable(self.data) and not isinstance(self.data, torch.Tensor):
            return self.data(n, g)
        idx = torch.randint(0, self.data.shape[0], (n,), generator=g)
        return self.data[idx]

    def _batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """(x0, t, eps, importance weights or None) of this rank for 1-based ``step``."""
        if self.rng == "sequential":
            g = self.generator
            x0 = self._draw_indices(self.batch_size, g)
            t, w = self.timestep_sampler.sample(x0.shape[0], g, device="cpu")
            eps = torch.randn(x0.shape, generator=g, dtype=torch.float32 if x0.dtype == torch.uint8 else x0.dtype)
            x0 = self._to_device(x0)
            if self.device.type != "cpu":
                t, eps = t.to(self.device), eps.to(self.device)
                w = w.to(self.device) if w is not None else None
            return x0, t, eps, w
        key = step_key(self.seed, step)
        g_cpu = torch.Generator().manual_seed(key)
        g_dev = g_cpu if self.device.type == "cpu" else torch.Generator(device=self.device).manual_seed(key)
        x0 = self._to_device(self._draw_indices(self.batch_size, g_cpu))
        t, w = self.timestep_sampler.sample(x0.shape[0], g_dev, device=self.device)
        eps = torch.randn(x0.shape, generator=g_dev, dtype=x0.dtype, device=self.device)
        if self.world > 1:
            per = self.batch_size // self.world
            rows = slice(self.rank * per, (self.rank + 1) * per)
            x0, t, eps = x0[rows], t[rows], eps[rows]
            w = w[rows] if w is not None else None
        return x0, t, eps, w

    # ------------------------------------------------------------------------------------- loop
    def _check(self, pending: list[tuple[int, torch.Tensor]]) -> None:
        stacked = torch.stack([v for _, v in pending])
        if bool(torch.isfinite(stacked).all()):
            return
        bad = (~torch.isfinite(stacked)).nonzero()[0].tolist()
        step, name = pending[bad[0]][0], _TERMS[bad[1]]
        value = float(stacked[bad[0], bad[1]])
        where = f"step {step}" if len(pending) == 1 else f"step {step} (checked steps {pending[0][0]}-{pending[-1][0]})"
        raise TrainingDiverged(f"training diverged at {where}: loss term {name!r} is {value}")

    def run(self) -> Iterator[StepRecord]:
        """Train from ``self.step + 1`` to ``steps``, yielding a record per step; eval mode at the end (always)."""
        import torch.distributed as dist

        params = list(self.model.parameters())
        pending: list[tuple[int, torch.Tensor]] = []
        self.model.train()
        try:
            for step in range(self.step + 1, self.steps + 1):
                lr = lr_at(step, self.lr, self.steps, self.lr_decay, self.warmup)
                if lr != self.lr or self.lr_decay != "none" or self.warmup:
                    for group in self.optimizer.param_groups:
                        group["lr"] = lr
                x0, t, eps, weights = self._batch(step)
                amp_ctx = (torch.autocast(device_type=self.device.type, dtype=torch.bfloat16) if self.autocast
                           else contextlib.nullcontext())
                if self.rng == "per_step":
                    devices = [self.device] if self.device.type == "cuda" else []
                    rng_ctx = torch.random.fork_rng(devices=devices)
                else:
                    rng_ctx = contextlib.nullcontext()
                with rng_ctx:
                    if self.rng == "per_step":
                        torch.manual_seed(step_key(self.seed, step, self.rank))
                    with amp_ctx:
                        terms = self.loss_fn(self.forward_model, x0, t, eps, self.schedule)
                term_means = [getattr(terms, name).detach().mean() for name in _TERMS]
                dtype = torch.float64 if any(m.dtype == torch.float64 for m in term_means) else torch.float32
                means = torch.stack([m.to(dtype) for m in term_means])
                if self.world > 1:
                    dist.all_reduce(means)
                    means = means / self.world
                pending.append((step, means))
                read = step % self.log_every == 0 or step == self.steps
                if read:
                    self._check(pending)
                    pending = []
                total = terms.total if weights is None else terms.total * weights
                self.optimizer.zero_grad(set_to_none=True)
                total.mean().backward()
                norm = None
                if self.grad_norms or self.max_grad_norm is not None:
                    limit = self.max_grad_norm if self.max_grad_norm is not None else math.inf
                    norm = torch.nn.utils.clip_grad_norm_(params, limit).detach()
                self.optimizer.step()
                if self.timestep_sampler.name != "uniform":
                    losses = terms.total.detach()
                    if self.world > 1:
                        gathered_t = [torch.empty_like(t) for _ in range(self.world)]
                        gathered_l = [torch.empty_like(losses) for _ in range(self.world)]
                        dist.all_gather(gathered_t, t)
                        dist.all_gather(gathered_l, losses)
                        self.timestep_sampler.update(torch.cat(gathered_t), torch.cat(gathered_l))
                    else:
                        self.timestep_sampler.update(t, losses)
                if self.ema is not None:
                    self.ema.update(self.model, step)
                self.step = step
                if read:
                    values = means.tolist()
                    record_terms: dict[str, Any] = dict(zip(_TERMS, values))
                    norm = float(norm) if norm is not None else None
                else:
                    record_terms = dict(zip(_TERMS, means.unbind()))
                yield StepRecord(step=step, terms=record_terms, grad_norm=norm, lr=lr)
        finally:
            self.model.eval()


def train(
    model: nn.Module,
    data: torch.Tensor | Callable[[int, torch.Generator], torch.Tensor],
    schedule: Schedule,
    steps: int,
    batch_size: int = 1024,
    lr: float = 1e-3,
    seed: int = 0,
    loss_fn: LossFn = eps_mse_loss,
    grad_norms: bool = False,
    max_grad_norm: float | None = None,
    lr_decay: str = "none",
    **options: Any,
) -> Iterator[StepRecord]:
    """Train ``model`` in place, yielding a :class:`StepRecord` per step (see the module docstring).

    data: a training set [N, ...] (batches drawn with replacement; uint8 = 8-bit images, scaled to
    [-1, 1] per batch on the device) or a callable ``(n, generator) -> [n, ...]`` drawing fresh points.
    lr_decay: "none" | "cosine". max_grad_norm: clip the global gradient norm (None: no clipping).
    Keyword options (defaults reproduce the toy loop): optimizer "adam" | "adamw", weight_decay (adamw),
    warmup (steps), ema_decay (None = no EMA), ema_warmup "ramp" | "none", timestep_sampler "uniform" |
    "loss_second_moment", rng "sequential" | "per_step", device, amp "auto" | "bf16" | "none", compile,
    channels_last, log_every. The model is left in eval mode, also when the caller stops early.
    Raises TrainingDiverged naming the step (range) and term on a non-finite loss.
    """
    trainer = Trainer(model, data, schedule, steps, batch_size, lr, seed, loss_fn, grad_norms, max_grad_norm,
                      lr_decay, **options)
    yield from trainer.run()


def fit(model: nn.Module, data, schedule: Schedule, steps: int, **kwargs) -> list[StepRecord]:
    """Run :func:`train` to the end and return every record (convenience for notebooks)."""
    return list(train(model, data, schedule, steps, **kwargs))
