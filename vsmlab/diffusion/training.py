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
  ``device`` afterwards); tests/test_training.py pins it against a plain reference loop. Dropout and
  other draws inside the model use torch's global generator (saved in checkpoints). Single process only.
- ``"per_step"`` (images, DDP): step s draws its GLOBAL batch (indices, t, eps) from a generator on
  ``device`` seeded with ``step_key(seed, s)``; rank r of W keeps rows ``[r B/W, (r+1) B/W)``. The model's own
  draws (dropout) use torch's default generators seeded with ``step_key(seed, s, rank)`` (the global RNG is
  restored afterwards). So results do not depend on the number of ranks (up to float reduction order) and
  resuming needs no RNG state at all. The generators are persistent objects re-seeded every step
  (``manual_seed``: a host-side reset, the numbers of a fresh generator with that seed, no allocation; on a
  GPU the Philox (seed, offset) pair that a CUDA graph reads at replay). A tensor data set is moved to
  ``device`` once (uint8 images stay uint8, converted per batch), and its batch indices are drawn there; a
  callable data source draws on a CPU generator with the same key. On the CPU all of this is the same
  arithmetic as fresh generators per step with indices drawn first, then t, then eps; on a GPU the indices
  come from the device generator.

Learning rate (``lr``, ``lr_decay = "none" | "cosine"``, ``warmup``), optimizer (``"adam" | "adamw"``) and the
EMA of the weights (``ema_decay`` = d, off when None; ``ema_warmup = "ramp" | "none"``): the equations are in
:mod:`vsmlab.diffusion.optim`.

Timestep samplers (:mod:`vsmlab.diffusion.timesteps`): ``"uniform"`` (t ~ U{0..T-1}) or
``"loss_second_moment"`` (improved DDPM importance sampling of t; its loss history is training state). Their
steps are in range by construction, so the loss runs inside
:func:`vsmlab.core.schedules.assume_valid_steps` (no host read of t).

Mixed precision: ``amp = "auto"`` runs the loss under bf16 autocast on CUDA and plain fp32 on CPU.

A step without host synchronisation (CUDA): Adam / AdamW are ``fused=True`` (one kernel for all
parameters, step counters on the device: no per-parameter ``.item()``; on the CPU torch's default
implementation), the EMA lerps cached parameter lists with
one ``torch._foreach_lerp_``, the timestep sampler and the data draws stay on the device, and the loss is
read every ``log_every`` steps. ``cuda_graph=True`` (CUDA, ``rng="per_step"``, one process, a tensor data
set) captures the whole step in one CUDA graph at the first step and replays it
(:mod:`vsmlab.diffusion.step_graph`: lr and EMA weight in device tensors, generators re-seeded before each
replay, warm-up runs undone before capture, so a graph run draws the same numbers as an eager one).
``compile=True`` wraps the model in ``torch.compile``
(fusing GroupNorm, SiLU and the scale-shift); ``channels_last`` converts the model and each batch.
cuDNN autotuning (``torch.backends.cudnn.benchmark``) is process-wide and left to the caller. Several
runs in lockstep in one process (CUDA streams): :class:`MultiTrainer` / :func:`train_many`
(:mod:`vsmlab.diffusion.lockstep`).

Records: ``terms`` (batch means of every loss term) and ``grad_norm`` are read from the device every
``log_every`` steps (and on the last step); in between they are detached 0-d tensors (``record.floats()``
reads them). The NaN/inf check runs when they are read; a non-finite value raises
:class:`TrainingDiverged` naming the step range and the term. Under torch.distributed the terms are the
mean over all ranks (the global batch).
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, fields
from typing import Any, Callable, Iterator

import torch
from torch import nn

from vsmlab.core.checks import check_bool, check_choice, check_int, check_nonnegative, check_positive
from vsmlab.core.schedules import Schedule, assume_valid_steps
from vsmlab.diffusion.lockstep import MultiTrainer, train_many
from vsmlab.diffusion.losses import LossFn, LossTerms, eps_mse_loss
from vsmlab.diffusion.optim import EMA, LR_DECAYS, OPTIMIZERS, load_optimizer_state, lr_at, make_optimizer, step_key
from vsmlab.diffusion.step_graph import StepGraph, check_graphable
from vsmlab.diffusion.timesteps import (TIMESTEP_SAMPLERS, LossSecondMomentSampler, UniformSampler,
                                        make_timestep_sampler)

__all__ = [
    "StepRecord", "TrainingDiverged", "train", "fit", "Trainer", "EMA", "UniformSampler",
    "LossSecondMomentSampler", "step_key", "lr_at", "OPTIMIZERS", "TIMESTEP_SAMPLERS", "RNG_MODES",
    "MultiTrainer", "train_many",
]

RNG_MODES = ("sequential", "per_step")
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


# ------------------------------------------------------------------------------------------------ loop
def _world() -> tuple[int, int]:
    """(rank, world size) of the default process group, (0, 1) without one."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


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
        cuda_graph: bool = False,
    ) -> None:
        check_int("steps", steps, low=1)
        check_int("batch_size", batch_size, low=1)
        check_int("warmup", warmup, low=0)
        check_int("log_every", log_every, low=1)
        check_positive("lr", lr)
        check_nonnegative("weight_decay", weight_decay)
        if max_grad_norm is not None:
            check_positive("max_grad_norm", max_grad_norm, hint="or None: no clipping")
        check_choice("lr_decay", lr_decay, LR_DECAYS)
        check_choice("optimizer", optimizer, OPTIMIZERS)
        check_choice("timestep_sampler", timestep_sampler, TIMESTEP_SAMPLERS)
        check_choice("rng", rng, RNG_MODES)
        check_choice("amp", amp, AMP_MODES)
        for name, flag in (("compile", compile), ("channels_last", channels_last), ("cuda_graph", cuda_graph)):
            check_bool(name, flag)
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
        if self.device.type == "cuda" and self.device.index is None:
            self.device = torch.device("cuda", torch.cuda.current_device())
        if amp == "bf16" and self.device.type != "cuda":
            raise ValueError(f"amp: 'bf16' autocast runs on CUDA only, got device {str(self.device)!r}; use 'auto' or 'none'")
        self.rank, self.world = _world()
        if cuda_graph:
            check_graphable(self.device, rng, data, self.world)
        if self.world > 1:
            if rng != "per_step":
                raise ValueError(f"rng: {rng!r} draws per process; under torch.distributed use 'per_step' "
                                 f"(world size {self.world})")
            if batch_size % self.world:
                raise ValueError(f"batch_size: {batch_size} is not divisible by the world size {self.world}")
        self.model = model.to(self.device)
        if channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        if isinstance(data, torch.Tensor) and rng == "per_step" and data.device != self.device:
            data = data.to(self.device)  # resident on the device (uint8 images stay 1 byte per pixel)
        self.data, self.schedule, self.steps, self.batch_size = data, schedule, steps, batch_size
        self.lr, self.seed, self.loss_fn, self.lr_decay, self.warmup = lr, seed, loss_fn, lr_decay, warmup
        self.grad_norms, self.max_grad_norm = grad_norms, max_grad_norm
        self.rng, self.log_every, self.channels_last = rng, log_every, channels_last
        self.cuda_graph = cuda_graph
        self.autocast = amp == "bf16" or (amp == "auto" and self.device.type == "cuda")
        self.step = 0
        self._params = list(self.model.parameters())
        self.optimizer, self._lr_tensor = make_optimizer(self._params, optimizer, lr, weight_decay, self.device,
                                                         tensor_lr=cuda_graph)
        self.ema = EMA(self.model, ema_decay, ema_warmup) if ema_decay is not None else None
        self.timestep_sampler = make_timestep_sampler(timestep_sampler, schedule.num_steps, self.device)
        self.generator = torch.Generator().manual_seed(seed) if rng == "sequential" else None
        # per_step: persistent generators re-seeded with step_key(seed, step) every step (see the module docstring)
        self._g_dev = torch.Generator(device=self.device) if rng == "per_step" else None
        self._g_cpu = self._g_dev if self.device.type == "cpu" else (torch.Generator() if rng == "per_step" else None)
        self.forward_model: nn.Module = self.model
        if self.world > 1:
            from torch.nn.parallel import DistributedDataParallel

            ids = [self.device.index] if self.device.type == "cuda" else None
            self.forward_model = DistributedDataParallel(self.model, device_ids=ids)
        if compile:
            self.forward_model = torch.compile(self.forward_model)
        self.graph = StepGraph(self) if cuda_graph else None  # captured at the first step of run()

    # ------------------------------------------------------------------------------------- state
    def state_dict(self) -> dict[str, Any]:
        """{"step", "model", "ema" (or None), "optimizer", "timestep_sampler", "rng"} (tensors and plain types).

        The optimizer's learning rate is stored as a float also when the run keeps it in a tensor (CUDA graph),
        so checkpoints load into every mode."""
        rng: dict[str, Any] = {"mode": self.rng}
        if self.generator is not None:
            rng["generator"] = self.generator.get_state()
            rng["torch"] = torch.get_rng_state()
            if torch.cuda.is_available() and self.device.type == "cuda":
                rng["cuda"] = torch.cuda.get_rng_state(self.device)
        optimizer = self.optimizer.state_dict()
        optimizer["param_groups"] = [
            {**g, "lr": float(g["lr"])} if isinstance(g["lr"], torch.Tensor) else g for g in optimizer["param_groups"]]
        return {
            "step": self.step,
            "model": self.model.state_dict(),
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "optimizer": optimizer,
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
        load_optimizer_state(self.optimizer, state["optimizer"])
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
        if self.graph is not None:
            self.graph.reset()  # the optimizer state tensors are new: capture again

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
        idx = torch.randint(0, self.data.shape[0], (n,), generator=g, device=g.device)
        if idx.device != self.data.device:
            idx = idx.to(self.data.device)
        return self.data[idx]

    def _seed_step(self, step: int) -> None:
        """Re-seed the per_step generators with step_key(seed, step) (host-side; no allocation)."""
        key = step_key(self.seed, step)
        self._g_dev.manual_seed(key)
        if self._g_cpu is not self._g_dev:
            self._g_cpu.manual_seed(key)

    def _draw(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """(x0, t, eps, weights) of this rank from the per_step generators as seeded (indices, then t, then eps)."""
        g = self._g_dev if isinstance(self.data, torch.Tensor) else self._g_cpu
        x0 = self._to_device(self._draw_indices(self.batch_size, g))
        t, w = self.timestep_sampler.sample(x0.shape[0], self._g_dev, device=self.device)
        eps = torch.randn(x0.shape, generator=self._g_dev, dtype=x0.dtype, device=self.device)
        if self.world > 1:
            per = self.batch_size // self.world
            rows = slice(self.rank * per, (self.rank + 1) * per)
            x0, t, eps = x0[rows], t[rows], eps[rows]
            w = w[rows] if w is not None else None
        return x0, t, eps, w

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
        self._seed_step(step)
        return self._draw()

    # ------------------------------------------------------------------------------------- one step
    def _loss(self, x0: torch.Tensor, t: torch.Tensor, eps: torch.Tensor, step: int | None) -> LossTerms:
        """The loss terms under autocast, t trusted (drawn in range). Eager per_step runs seed the model's own
        draws (dropout) with step_key(seed, step, rank) inside a forked RNG; a graph (``step`` None) is
        seeded by the caller before each replay."""
        amp_ctx = (torch.autocast(device_type=self.device.type, dtype=torch.bfloat16, cache_enabled=step is not None)
                   if self.autocast else contextlib.nullcontext())
        fork = self.rng == "per_step" and step is not None
        rng_ctx = (torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else [])
                   if fork else contextlib.nullcontext())
        with rng_ctx:
            if fork:
                torch.manual_seed(step_key(self.seed, step, self.rank))
            with amp_ctx, assume_valid_steps():
                return self.loss_fn(self.forward_model, x0, t, eps, self.schedule)

    def _means(self, terms: LossTerms) -> torch.Tensor:
        """Batch means of every term, stacked [4] (float64 if a term is; the mean over ranks under DDP)."""
        import torch.distributed as dist

        term_means = [getattr(terms, name).detach().mean() for name in _TERMS]
        dtype = torch.float64 if any(m.dtype == torch.float64 for m in term_means) else torch.float32
        means = torch.stack([m.to(dtype) for m in term_means])
        if self.world > 1:
            dist.all_reduce(means)
            means = means / self.world
        return means

    def _update(self, terms: LossTerms, t: torch.Tensor, weights: torch.Tensor | None, step: int | None,
                ema_weight: torch.Tensor | None = None) -> torch.Tensor | None:
        """Backward, clipping, optimizer step, sampler and EMA updates; returns the gradient norm (or None).
        The EMA decays by ``step``'s decay, or (graph) by the 0-d tensor ``ema_weight`` = 1 - decay."""
        import torch.distributed as dist

        total = terms.total if weights is None else terms.total * weights
        self.optimizer.zero_grad(set_to_none=True)
        total.mean().backward()
        norm = None
        if self.grad_norms or self.max_grad_norm is not None:
            limit = self.max_grad_norm if self.max_grad_norm is not None else math.inf
            norm = torch.nn.utils.clip_grad_norm_(self._params, limit).detach()
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
            self.ema.update(self.model, step, ema_weight)
        return norm

    def _graph_body(self, ema_weight: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """One whole step with the generators as seeded, the EMA weight from its tensor (what a graph captures;
        :mod:`vsmlab.diffusion.step_graph`): (loss means [4], gradient norm or None)."""
        x0, t, eps, weights = self._draw()
        terms = self._loss(x0, t, eps, None)
        means = self._means(terms)
        return means, self._update(terms, t, weights, None, ema_weight)

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
        """Train from ``self.step + 1`` to ``steps``, yielding a record per step; eval mode at the end (always).

        Between read steps (every ``log_every`` and the last) nothing here reads a device value on the host.
        Eager: on a read step the NaN check runs before that step's update. Graph: after it (one replay)."""
        pending: list[tuple[int, torch.Tensor]] = []
        self.model.train()
        try:
            for step in range(self.step + 1, self.steps + 1):
                lr = lr_at(step, self.lr, self.steps, self.lr_decay, self.warmup)
                read = step % self.log_every == 0 or step == self.steps
                if self.graph is not None:
                    means, norm = self.graph.step(step, lr)
                    pending.append((step, means))
                    if read:
                        self._check(pending)
                        pending = []
                else:
                    if lr != self.lr or self.lr_decay != "none" or self.warmup:
                        for group in self.optimizer.param_groups:
                            group["lr"] = lr
                    x0, t, eps, weights = self._batch(step)
                    terms = self._loss(x0, t, eps, step)
                    means = self._means(terms)
                    pending.append((step, means))
                    if read:
                        self._check(pending)
                        pending = []
                    norm = self._update(terms, t, weights, step)
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


def train(model: nn.Module, data: torch.Tensor | Callable[[int, torch.Generator], torch.Tensor], schedule: Schedule,
          steps: int, **options: Any) -> Iterator[StepRecord]:
    """Train ``model`` in place, yielding a :class:`StepRecord` per step (see the module docstring): the
    :class:`Trainer` with these arguments (batch_size 1024, lr 1e-3, seed 0, loss_fn eps-MSE, grad_norms False
    unless given).

    data: a training set [N, ...] (batches drawn with replacement; uint8 = 8-bit images, scaled to
    [-1, 1] per batch on the device) or a callable ``(n, generator) -> [n, ...]`` drawing fresh points.
    lr_decay: "none" | "cosine". max_grad_norm: clip the global gradient norm (None: no clipping).
    Keyword options (defaults reproduce the toy loop): optimizer "adam" | "adamw", weight_decay (adamw),
    warmup (steps), ema_decay (None = no EMA), ema_warmup "ramp" | "none", timestep_sampler "uniform" |
    "loss_second_moment", rng "sequential" | "per_step", device, amp "auto" | "bf16" | "none", compile,
    channels_last, log_every, cuda_graph (CUDA only). The model is left in eval mode, also when the caller
    stops early.
    Raises TrainingDiverged naming the step (range) and term on a non-finite loss.
    """
    yield from Trainer(model, data, schedule, steps, **options).run()


def fit(model: nn.Module, data, schedule: Schedule, steps: int, **kwargs) -> list[StepRecord]:
    """Run :func:`train` to the end and return every record (convenience for notebooks)."""
    return list(train(model, data, schedule, steps, **kwargs))
