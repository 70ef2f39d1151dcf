"""What the training loop's optimisation is made of: the learning-rate schedule, Adam / AdamW, the EMA of the
weights, and the per-step generator keys.

Learning rate at step s (1-based) for ``decay = "none" | "cosine"`` and warm-up W (:func:`lr_at`)::

    lr_s = lr * min(1, s / W) * (1 + cos(pi (s - 1 - W) / (steps - W))) / 2     (cosine, W > 0)
    lr_s = lr * (1 + cos(pi (s - 1) / steps)) / 2                               (cosine, W = 0)
    lr_s = lr * min(1, s / W)                                                   (none; W = 0: lr)

EMA (decay d; :class:`EMA`): after each step ``ema <- decay_s ema + (1 - decay_s) theta`` with ``decay_s = d``
(``warmup = "none"``) or ``decay_s = min(d, (1 + s) / (10 + s))`` (``"ramp"``: the EMA then averages roughly
the last ~s/10..s steps early on, so a 0.9999 EMA of a short run is not mostly the initial weights; decay_s
reaches 0.999 at s ~ 9,000 and 0.9999 at s ~ 90,000). Buffers are copied.

Optimizers (:func:`make_optimizer`): ``"adam"`` or ``"adamw"`` (decoupled weight decay). On CUDA they are
``fused=True`` (one kernel for all parameters, step counters on the device: no per-parameter ``.item()``); a
CUDA graph also needs the learning rate in a float32 device tensor (filled before each replay) and
``capturable=True``. On the CPU torch's default implementation is used.

:func:`step_key`: a 63-bit generator seed for (seed, step[, rank]) by the SplitMix64 finaliser, so nearby
inputs give unrelated keys.
"""

from __future__ import annotations

import copy
import math
from typing import Any, Iterable

import torch
from torch import nn

from vsmlab.core.checks import check_choice, check_range

__all__ = ["step_key", "lr_at", "LR_DECAYS", "EMA", "EMA_WARMUPS", "OPTIMIZERS", "make_optimizer",
           "load_optimizer_state"]

OPTIMIZERS = ("adam", "adamw")
LR_DECAYS = ("none", "cosine")
EMA_WARMUPS = ("none", "ramp")


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
            value = lr * 0.5 * (1 + math.cos(math.pi * (step - 1) / steps))  # W = 0: no warm-up shift
    else:
        value = lr
    if warmup > 0 and step < warmup:
        value = value * (step / warmup)
    return value


def make_optimizer(params: Iterable[nn.Parameter], name: str, lr: float, weight_decay: float,
                   device: torch.device, tensor_lr: bool = False) -> tuple[torch.optim.Optimizer, torch.Tensor | None]:
    """Adam (``name="adam"``) or AdamW over ``params`` for a run on ``device`` (module docstring); returns the
    optimizer and, with ``tensor_lr`` (a CUDA graph), the float32 device tensor that holds its learning rate."""
    # CUDA: fused kernels with the step counters on the device; a CUDA graph also needs a tensor lr
    # (filled before each replay) and capturable state. CPU: torch's default implementation.
    opt_options: dict[str, Any] = {"fused": True} if device.type == "cuda" else {}
    lr_tensor: torch.Tensor | None = None
    first_lr: float | torch.Tensor = lr
    if tensor_lr:
        lr_tensor = torch.tensor(float(lr), dtype=torch.float32, device=device)  # fused reads float32
        first_lr, opt_options["capturable"] = lr_tensor, True
    if name == "adam":
        return torch.optim.Adam(params, lr=first_lr, **opt_options), lr_tensor
    return torch.optim.AdamW(params, lr=first_lr, weight_decay=weight_decay, **opt_options), lr_tensor


def load_optimizer_state(optimizer: torch.optim.Optimizer, state: dict[str, Any]) -> None:
    """Load ``state`` into ``optimizer``, keeping this optimizer's implementation flags (fused / capturable /
    foreach: torch would take the saved ones) and its lr tensor (filled with the saved value); ValueError when the
    number of parameter groups differs."""
    saved_groups = state.get("param_groups", [])
    if len(saved_groups) != len(optimizer.param_groups):
        raise ValueError(f"optimizer: the checkpoint has {len(saved_groups)} parameter groups, this optimizer "
                         f"{len(optimizer.param_groups)}")
    groups = []
    for saved, live in zip(saved_groups, optimizer.param_groups):
        group = dict(saved)
        for key in ("fused", "foreach", "capturable", "differentiable"):
            if key in live:
                group[key] = live[key]
        if isinstance(live["lr"], torch.Tensor):
            live["lr"].fill_(float(saved["lr"]))
            group["lr"] = live["lr"]
        groups.append(group)
    optimizer.load_state_dict({**state, "param_groups": groups})



class EMA:
    """Exponential moving average of a model's state: float parameters averaged, everything else copied.

    ``decay_at(step)`` is ``decay`` or, with ``warmup="ramp"``, ``min(decay, (1 + step) / (10 + step))``.
    ``state_dict()`` has the model's state_dict keys, so ``model.load_state_dict(ema.state_dict())`` works.
    The averaged parameters and the copied entries are looked up once (parameters are updated in place) and
    :meth:`update` is one ``torch._foreach_lerp_`` over the cached lists plus a copy per buffer.
    """

    def __init__(self, model: nn.Module, decay: float, warmup: str = "ramp") -> None:
        decay = check_range("ema_decay", decay, 0, 1, low_open=True, high_open=True, hint="or None for no EMA")
        self.decay, self.warmup = decay, check_choice("ema_warmup", warmup, EMA_WARMUPS)
        live = model.state_dict(keep_vars=True)
        self.shadow = {k: v.detach().clone() for k, v in live.items()}
        self._averaged = [k for k, v in live.items() if isinstance(v, nn.Parameter) and v.requires_grad
                          and v.is_floating_point()]
        self._copied = [k for k in live if k not in set(self._averaged)]
        self._bind(model)

    def _bind(self, model: nn.Module) -> None:
        """Cache the live tensors of ``model``: its averaged Parameter objects (their ``.data`` may be
        replaced, the objects stay) and (module, attribute) of every copied entry (buffers can be reassigned)."""
        live = model.state_dict(keep_vars=True)
        if set(live) != set(self.shadow):
            differ = sorted(set(live) ^ set(self.shadow))[:5]
            raise ValueError(f"model: its state keys do not match the EMA's (e.g. {differ})")
        self._model = model
        self._live_averaged = [live[k] for k in self._averaged]
        self._shadow_averaged = [self.shadow[k] for k in self._averaged]
        self._live_copied = []
        for k in self._copied:
            owner, _, attr = k.rpartition(".")
            self._live_copied.append((model.get_submodule(owner) if owner else model, attr, self.shadow[k]))

    def decay_at(self, step: int) -> float:
        """The decay used for the update after 1-based ``step``."""
        if self.warmup == "ramp":
            return min(self.decay, (1 + step) / (10 + step))
        return self.decay

    @torch.no_grad()
    def update(self, model: nn.Module, step: int | None, weight: torch.Tensor | None = None) -> None:
        """shadow <- d shadow + (1 - d) theta for parameters, copy for buffers; d = decay_at(step).

        ``weight``: a 0-d tensor holding 1 - d (on the parameters' device), used instead of ``step`` (a
        CUDA graph captures the tensor, which is filled before each replay)."""
        if model is not self._model:
            self._bind(model)
        if self._live_averaged:
            w = weight if weight is not None else 1.0 - self.decay_at(step)
            torch._foreach_lerp_(self._shadow_averaged, self._live_averaged, w)
        for module, attr, shadow in self._live_copied:
            shadow.copy_(getattr(module, attr))

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
