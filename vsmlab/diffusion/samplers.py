"""Reverse-process samplers: DDPM ancestral, DDIM (eta), probability-flow ODE (Euler, Heun).

Every sampler is a plain function ``sampler(model, schedule, x_T=None, shape=None, generator=None,
...) -> SampleResult``. Give either ``x_T`` [B, ...] or ``shape`` (then x_T ~ N(0, I) from ``generator``).
Steps run from t = T-1 down to 0; with ``record=True`` the result holds, per step, the state x_t the
model saw and its prediction x0_hat (both [S, B, ...], S = steps), or only the last ``record_last`` steps;
``record_every=k`` keeps every k-th of those (counted back from the last step, which is always kept) and
``record_device="cpu"`` moves each kept state off the accelerator as it is recorded (``recorded_steps``
says which steps were kept).

Devices and randomness (one convention for the whole library): a ``torch.Generator`` lives on the device
where the draw happens. With ``shape``, the starting noise is drawn on ``device`` (default: the
generator's device, else the CPU) in ``dtype`` (default: torch's default dtype) by ``generator``; with
``x_T``, everything follows x_T's device and dtype. The noise inside the loop is drawn on x's device with
the same generator, so a CUDA run needs ``torch.Generator(device="cuda")``: a generator on another device
is refused before the first step. The same seed gives the same numbers on the same device; CPU and CUDA
streams differ. Per step the loop builds the step tensor on the device (``torch.full``, no copy from the
host tensor), indexes coefficients from the schedule's cached device tables (:meth:`Schedule.table`) or
from per-call vectors made once before the loop, and never reads a device value back to the host (no
``.item()``, ``float()``, ``bool()``): only a recording to ``record_device="cpu"`` copies, asynchronously
into pinned memory, and the copies are waited for once at the end. (A model may still synchronise
inside its own call: :class:`vsmlab.data.mixtures.ExactScoreModel` validates its t.)

DDPM (all T steps, or ``num_steps=K`` respaced steps)::

    x_{t-1} = (x_t - beta_t / sqrt(1 - alpha_bar_t) eps) / sqrt(alpha_t) + sqrt(var_t) z,   z = 0 at t = 0
    var_t = beta_t ("beta"), beta_tilde_t ("beta_tilde") or exp(learned log variance) ("learned")

Variance override (learned-variance models only): ``variance_frac=f`` in [0, 1] replaces the model's
frac = (v + 1) / 2 by the constant f, so log var_t = f log beta_t + (1 - f) log beta_tilde_t (f = 0:
var_t = beta_tilde_t, f = 1: var_t = beta_t, both taken from the same tables as "beta_tilde" / "beta").
The eps head is still used; the noise draws are the same as without the override (one draw per step in
the same order), so a run with and without it from the same generator seed is paired by noise: their
difference is the most a penalty acting on the variance alone could change. Whenever the model returns
v, DDPM also counts how often its frac leaves [0, 1] (v is unbounded, so Sigma can leave
[beta_tilde_t, beta_t]): :class:`FracCounts` in ``SampleResult.frac``.

With ``num_steps=K`` DDPM runs on :meth:`Schedule.respaced` (improved DDPM's SpacedDiffusion): the kept
steps t_0 < ... < t_{K-1} of :meth:`Schedule.timesteps` (evenly spaced with rounding, always T-1 and 0),
betas beta'_i = 1 - alpha_bar_{t_i} / alpha_bar_{t_{i-1}}, beta_tilde and the learned-variance range from
those betas; the model is always called with the original step t_i. A schedule that is already respaced
works the same way (its ``timestep_map`` gives the original steps).

DDIM (steps t -> s over the same kept subsequence, a = alpha_bar of the original schedule)::

    x0 = (x_t - sqrt(1 - a_t) eps) / sqrt(a_t)
    sig = eta sqrt((1 - a_s)/(1 - a_t)) sqrt(1 - a_t / a_s)
    x_s = sqrt(a_s) x0 + sqrt(1 - a_s - sig^2) eps + sig z          (after the last step a_s = 1)

Probability-flow ODE in y = x / sqrt(a), sigma = sqrt(1/a - 1): dy/dsigma = eps(x, t). Its Euler step is
exactly DDIM with eta = 0; Heun adds a trapezoidal correction (Euler on the final step to sigma = 0).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch

from vsmlab.core.checks import check_choice, check_device, check_int, check_nonnegative, check_range
from vsmlab.core.prediction import Prediction
from vsmlab.core.schedules import Schedule

__all__ = ["SampleResult", "FracCounts", "ddpm", "ddim", "ode", "SAMPLERS", "sample"]

Model = Callable[[torch.Tensor, torch.Tensor], Prediction]


@dataclass
class FracCounts:
    """How often a learned-variance model's frac = (v + 1) / 2 left [0, 1] during DDPM sampling.

    One entry per step that drew noise (every visited step but t = 0), in ``steps`` order (original
    steps, descending). below, above: [K] int64, elements (batch x dimensions) with frac < 0 (Sigma below
    beta_tilde_t) and frac > 1 (Sigma above beta_t); low, high: [K] the smallest and largest frac at each
    step (v's dtype); per_step: elements per step. Tensors stay on the sampling device until read.
    The counts describe the model's own v, also when ``variance_frac`` overrode it.
    """

    steps: list[int]
    below: torch.Tensor
    above: torch.Tensor
    low: torch.Tensor
    high: torch.Tensor
    per_step: int

    @property
    def total(self) -> int:
        """Elements counted over all steps: len(steps) x per_step."""
        return len(self.steps) * self.per_step

    def summary(self) -> dict[str, float]:
        """Host numbers (reads the tensors once): share_below, share_above, share_outside (of ``total``),
        min_frac, max_frac over all steps, and steps_outside (steps with any element outside [0, 1])."""
        if not self.steps:
            return {"share_below": 0.0, "share_above": 0.0, "share_outside": 0.0, "min_frac": float("nan"),
                    "max_frac": float("nan"), "steps_outside": 0}
        below, above = int(self.below.sum()), int(self.above.sum())
        return {"share_below": below / self.total, "share_above": above / self.total,
                "share_outside": (below + above) / self.total, "min_frac": float(self.low.min()),
                "max_frac": float(self.high.max()), "steps_outside": int(((self.below + self.above) > 0).sum())}


@dataclass
class SampleResult:
    """samples: [B, ...]; timesteps: the (original) steps visited, descending; x_t, x0_hat: [R, B, ...]
    or None; recorded_steps: the R steps recorded (a tail of ``timesteps``, every ``record_every``-th);
    frac: :class:`FracCounts` (DDPM with a model that returns v), else None."""

    samples: torch.Tensor
    timesteps: list[int]
    x_t: torch.Tensor | None = None
    x0_hat: torch.Tensor | None = None
    recorded_steps: list[int] | None = None
    frac: FracCounts | None = None


class _FracCounter:
    """Fills :class:`FracCounts` buffers on the device, one slot per noise-drawing step (no host reads)."""

    def __init__(self, steps: list[int]) -> None:
        self.steps = steps[:-1]  # every visited step but t = 0 (descending)
        self.buffers: tuple[torch.Tensor, ...] | None = None
        self.per_step = 0

    def add(self, j: int, v: torch.Tensor) -> None:
        frac = (v + 1) / 2
        if self.buffers is None:
            k = len(self.steps)
            self.per_step = v.numel()
            self.buffers = (torch.zeros(k, dtype=torch.long, device=v.device), torch.zeros(k, dtype=torch.long, device=v.device),
                            torch.full((k,), math.nan, dtype=v.dtype, device=v.device),
                            torch.full((k,), math.nan, dtype=v.dtype, device=v.device))
        below, above, low, high = self.buffers
        below[j] = (frac < 0).sum()
        above[j] = (frac > 1).sum()
        low[j] = frac.min()
        high[j] = frac.max()

    def result(self) -> FracCounts | None:
        if self.buffers is None:
            return None
        return FracCounts(self.steps, *self.buffers, per_step=self.per_step)


def _check_variance_frac(variance_frac: float | None, variance: str) -> float | None:
    if variance_frac is None:
        return None
    variance_frac = check_range("variance_frac", variance_frac, 0, 1,
                                hint="0: Sigma = beta_tilde_t, 1: Sigma = beta_t; or None: the model's own v")
    if variance not in ("auto", "learned"):
        raise ValueError(f"variance_frac: {variance_frac!r} overrides a learned variance and conflicts with "
                         f"variance={variance!r}; leave variance='auto' (or 'learned')")
    return float(variance_frac)


class _Recorder:
    """Keeps the chosen steps' (x_t, x0_hat) in preallocated [R, B, ...] buffers on ``record_device``."""

    def __init__(self, record: bool, record_last: int | None, record_every: int, record_device,
                 steps: list[int]) -> None:
        n = len(steps)
        if record_last is not None:
            check_int("record_last", record_last, low=1, high=n, hint="the number of steps")
        check_int("record_every", record_every, low=1)
        on = bool(record or record_last)
        if record_every != 1 and not on:
            raise ValueError(f"record_every: {record_every} has no effect without record=True or record_last; "
                             "pass one of them (or leave record_every=1)")
        self.device = check_device("record_device", record_device)
        keep = (record_last or n) if on else 0
        self.indices = [i for i in range(n - keep, n) if (n - 1 - i) % record_every == 0]
        self.slot = {i: j for j, i in enumerate(self.indices)}
        self.recorded_steps = [steps[i] for i in self.indices]
        self.x_t: torch.Tensor | None = None
        self.x0: torch.Tensor | None = None
        self.pending = False  # asynchronous device -> host copies to wait for
        self.i = 0

    def _buffer(self, like: torch.Tensor) -> torch.Tensor:
        device = self.device or like.device
        pin = device.type == "cpu" and like.device.type == "cuda"
        return torch.empty((len(self.indices), *like.shape), dtype=like.dtype, device=device, pin_memory=pin)

    def add(self, x_t: torch.Tensor, x0: torch.Tensor) -> None:
        j = self.slot.get(self.i)
        self.i += 1
        if j is None:
            return
        if self.x_t is None:
            self.x_t, self.x0 = self._buffer(x_t), self._buffer(x0)
        async_copy = self.x_t.is_pinned() and x_t.device.type == "cuda"
        self.pending |= async_copy
        self.x_t[j].copy_(x_t, non_blocking=async_copy)
        self.x0[j].copy_(x0, non_blocking=async_copy)

    def result(self, samples: torch.Tensor, steps: list[int]) -> SampleResult:
        if not self.indices:
            return SampleResult(samples, steps)
        if self.pending:
            torch.cuda.current_stream(samples.device).synchronize()
        return SampleResult(samples, steps, self.x_t, self.x0, self.recorded_steps)


def _same_device(a: torch.device, b: torch.device) -> bool:
    return a.type == b.type and (a.index is None or b.index is None or a.index == b.index)


def _initial(
    x_T: torch.Tensor | None, shape: tuple[int, ...] | None, generator: torch.Generator | None,
    device: torch.device | str | None, dtype: torch.dtype | None,
) -> torch.Tensor:
    """x_T (cloned) or N(0, I) of ``shape`` drawn by ``generator`` on ``device`` (see the module docstring)."""
    if (x_T is None) == (shape is None):
        raise ValueError("x_T, shape: give exactly one (the starting noise, or the shape to draw it with)")
    dev = check_device("device", device)
    if x_T is not None:
        if not isinstance(x_T, torch.Tensor) or x_T.dim() < 2:
            raise ValueError(f"x_T: expected a tensor of shape [B, ...], got {getattr(x_T, 'shape', type(x_T).__name__)}")
        if dev is not None and not _same_device(dev, x_T.device):
            raise ValueError(f"device: {str(dev)!r} differs from x_T's device {str(x_T.device)!r}; with x_T the "
                             "sampler follows x_T (move it, or give shape= instead)")
        if dtype is not None and dtype != x_T.dtype:
            raise ValueError(f"dtype: {dtype} differs from x_T's dtype {x_T.dtype}; with x_T the sampler follows x_T")
        return x_T.clone()
    shape = tuple(int(s) for s in shape)  # type: ignore[union-attr]
    if len(shape) < 2 or min(shape) < 1:
        raise ValueError(f"shape: expected [B, ...] with positive sizes, got {shape}")
    if dev is None:
        dev = generator.device if generator is not None else torch.device("cpu")
    _check_generator(generator, dev)
    return torch.randn(shape, generator=generator, device=dev, dtype=dtype)


def _check_generator(generator: torch.Generator | None, device: torch.device) -> None:
    if generator is None:
        return
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"generator: expected a torch.Generator or None, got {type(generator).__name__}")
    if not _same_device(generator.device, device):
        raise ValueError(f"generator: it lives on {str(generator.device)!r} but the draws happen on {str(device)!r}; "
                         f"pass torch.Generator(device={str(device)!r}) (a generator draws on its own device)")


def _step_tensor(t: int, x: torch.Tensor) -> torch.Tensor:
    """The model's t [B] for step ``t``, made on x's device (a fill: no host-to-device copy, no sync)."""
    return torch.full((x.shape[0],), t, dtype=torch.long, device=x.device)


def ddpm(
    model: Model, schedule: Schedule, x_T: torch.Tensor | None = None, shape: tuple[int, ...] | None = None,
    generator: torch.Generator | None = None, variance: str = "auto", record: bool = False,
    record_last: int | None = None, num_steps: int | None = None, record_every: int = 1,
    record_device: torch.device | str | None = None, device: torch.device | str | None = None,
    dtype: torch.dtype | None = None, clip_x0: bool = False, variance_frac: float | None = None,
) -> SampleResult:
    """Ancestral DDPM sampling over all T steps, or over ``num_steps`` respaced steps (improved DDPM).

    clip_x0: clip x0_hat to [-1, 1] (images) and take the mean of q(x_{t-1} | x_t, clipped x0_hat), as
    improved DDPM's ``clip_denoised``; needed for schedules whose first betas are near 1 (cosine's last
    beta 0.999 multiplies eps errors ~31x on the first step). False (default): the plain reverse mean.

    variance: "beta" (sigma_t^2 = beta_t, as in the mode-interpolation work), "beta_tilde" (posterior
    variance), "learned" (the model's v head), or "auto" (learned when the model returns v, else beta);
    with respacing each uses the respaced betas / beta_tilde. device, dtype: where and in what the
    starting noise is drawn from ``shape`` (module docstring). Returns samples on that device.

    variance_frac: None (default), or f in [0, 1] for a learned-variance model: Sigma_t = exp(f log beta_t
    + (1 - f) log beta_tilde_t) in place of the model's v (0: beta_tilde_t, 1: beta_t), same noise draws
    (module docstring). ValueError naming ``variance_frac`` when f is outside [0, 1], when ``variance`` is
    "beta" or "beta_tilde", or when the model returns no v (it does not learn its variance). With a model
    that returns v, ``SampleResult.frac`` counts how often its frac left [0, 1] (:class:`FracCounts`).
    """
    check_choice("variance", variance, ("auto", "beta", "beta_tilde", "learned"))
    forced = _check_variance_frac(variance_frac, variance)
    spaced = schedule if num_steps is None else schedule.respaced(num_steps)
    x = _initial(x_T, shape, generator, device, dtype)
    _check_generator(generator, x.device)
    indices = list(range(spaced.num_steps - 1, -1, -1))
    steps = [spaced.original_step(i) for i in indices]  # what the model sees and the result reports
    rec = _Recorder(record, record_last, record_every, record_device, steps)
    counter = _FracCounter(steps)
    std_tables: dict[str, torch.Tensor] = {}
    with torch.no_grad():
        for i, t in zip(indices, steps):
            pred = model(x, _step_tensor(t, x))
            eps = pred.eps
            if forced is not None and pred.v is None:
                raise ValueError(f"variance_frac: {forced!r} forces a learned variance, but the model does not learn "
                                 "its variance (its Prediction has v = None); sample a fixed-variance model with "
                                 "variance='beta' or 'beta_tilde' instead")
            if pred.v is not None and i > 0:
                counter.add(len(indices) - 1 - i, pred.v)
            x0 = spaced.x0_from_eps(x, i, eps)
            if clip_x0:
                x0 = x0.clamp(-1, 1)
                mean = spaced.posterior_mean(x0, x, i)
            else:
                mean = spaced.reverse_mean(x, i, eps)
            rec.add(x, x0)
            if i == 0:
                x = mean
                continue
            mode = variance
            if forced is not None:
                mode = {0.0: "beta_tilde", 1.0: "beta"}.get(forced, "forced")
            elif mode == "auto":
                mode = "learned" if pred.v is not None else "beta"
            if mode == "forced":
                if mode not in std_tables:  # f log beta + (1 - f) log beta_tilde for every step, once per call
                    n = spaced.num_steps
                    log_var = spaced.learned_log_variance(torch.full((n,), 2 * forced - 1, dtype=torch.float64),
                                                          torch.arange(n))
                    std_tables[mode] = torch.exp(0.5 * log_var).to(device=x.device, dtype=x.dtype)
                std = std_tables[mode][i]
            elif mode == "learned":
                if pred.v is None:
                    raise ValueError("variance: 'learned' needs a model that returns v (a variance head)")
                std = torch.exp(0.5 * spaced.learned_log_variance(pred.v, i))
            else:
                if mode not in std_tables:  # sqrt of the table rounded to x's dtype, once per call
                    std_tables[mode] = torch.sqrt(spaced.table("betas" if mode == "beta" else "beta_tilde", x.device, x.dtype))
                std = std_tables[mode][i]
            x = mean + std * torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
    result = rec.result(x, steps)
    result.frac = counter.result()
    return result


def ddim(
    model: Model, schedule: Schedule, x_T: torch.Tensor | None = None, shape: tuple[int, ...] | None = None,
    generator: torch.Generator | None = None, eta: float = 0.0, num_steps: int | None = None,
    record: bool = False, record_last: int | None = None, record_every: int = 1,
    record_device: torch.device | str | None = None, device: torch.device | str | None = None,
    dtype: torch.dtype | None = None, clip_x0: bool = False,
) -> SampleResult:
    """DDIM over the ``num_steps`` kept steps of :meth:`Schedule.timesteps` (default all T; the same
    subsequence DDPM's respacing keeps); eta = 0 deterministic, 1 ~ DDPM with posterior variance.
    clip_x0: clip x0_hat to [-1, 1] and use the eps implied by the clipped x0_hat (improved DDPM)."""
    check_nonnegative("eta", eta)
    x = _initial(x_T, shape, generator, device, dtype)
    if eta > 0:
        _check_generator(generator, x.device)
    steps = schedule.timesteps(num_steps)
    rec = _Recorder(record, record_last, record_every, record_device, steps)
    # Per-step coefficients for the whole step list, in float64 on the CPU, then once to x's device/dtype.
    ab = schedule.alpha_bar
    a_t = ab[steps]
    a_s = torch.cat([ab[steps[1:]], torch.ones(1, dtype=torch.float64)])
    sig = eta * torch.sqrt((1 - a_s) / (1 - a_t)) * torch.sqrt(1 - a_t / a_s)
    # x_s = sqrt(a_s) x0 + sqrt(1 - a_s - sig^2) eps, with x0 expanded
    c_x = torch.sqrt(a_s / a_t)
    c_eps = torch.sqrt((1 - a_s - sig**2).clamp_min(0)) - c_x * torch.sqrt(1 - a_t)
    c_x, c_eps, sig = (c.to(device=x.device, dtype=x.dtype) for c in (c_x, c_eps, sig))
    with torch.no_grad():
        for i, t in enumerate(steps):
            eps = model(x, _step_tensor(schedule.original_step(t), x)).eps
            x0 = schedule.x0_from_eps(x, t, eps)
            if clip_x0:
                x0 = x0.clamp(-1, 1)
                eps = schedule.eps_from_x0(x, t, x0)
            rec.add(x, x0)
            x = c_x[i] * x + c_eps[i] * eps
            if eta > 0 and i + 1 < len(steps):
                x = x + sig[i] * torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
    return rec.result(x, [schedule.original_step(t) for t in steps])


def ode(
    model: Model, schedule: Schedule, x_T: torch.Tensor | None = None, shape: tuple[int, ...] | None = None,
    generator: torch.Generator | None = None, method: str = "heun", num_steps: int | None = None,
    record: bool = False, record_last: int | None = None, record_every: int = 1,
    record_device: torch.device | str | None = None, device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> SampleResult:
    """Probability-flow ODE dy/dsigma = eps, y = x/sqrt(alpha_bar), integrated by "euler" or "heun" over
    the kept steps of :meth:`Schedule.timesteps` (``generator`` only draws the start from ``shape``)."""
    check_choice("method", method, ("euler", "heun"))
    x = _initial(x_T, shape, generator, device, dtype)
    steps = schedule.timesteps(num_steps)
    rec = _Recorder(record, record_last, record_every, record_device, steps)
    ab, sig = schedule.alpha_bar, schedule.table("sigma_ode")
    one = torch.ones(1, dtype=torch.float64)
    a_t, a_n = ab[steps], torch.cat([ab[steps[1:]], one])
    s_t, s_n = sig[steps], torch.cat([sig[steps[1:]], 0 * one])
    # y = x / sqrt(a): x_next = sqrt(a_n / a_t) x + (s_n - s_t) sqrt(a_n) eps  (float64 coefficients)
    c_x = torch.sqrt(a_n / a_t).to(device=x.device, dtype=x.dtype)
    c_eps = ((s_n - s_t) * torch.sqrt(a_n)).to(device=x.device, dtype=x.dtype)
    with torch.no_grad():
        for i, t in enumerate(steps):
            eps = model(x, _step_tensor(schedule.original_step(t), x)).eps
            rec.add(x, schedule.x0_from_eps(x, t, eps))
            last = i + 1 == len(steps)
            x_next = c_x[i] * x + c_eps[i] * eps
            if method == "heun" and not last:
                eps_next = model(x_next, _step_tensor(schedule.original_step(steps[i + 1]), x)).eps
                x_next = c_x[i] * x + c_eps[i] * 0.5 * (eps + eps_next)
            x = x_next
    return rec.result(x, [schedule.original_step(t) for t in steps])


SAMPLERS: dict[str, Callable[..., SampleResult]] = {"ddpm": ddpm, "ddim": ddim, "ode": ode}


def sample(name: str, model: Model, schedule: Schedule, **kwargs) -> SampleResult:
    """Dispatch by name ("ddpm", "ddim", "ode") for widgets and sweeps; kwargs go to the sampler."""
    if name not in SAMPLERS:
        raise ValueError(f"name: expected one of {sorted(SAMPLERS)}, got {name!r}")
    return SAMPLERS[name](model, schedule, **kwargs)
