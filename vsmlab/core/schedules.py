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

DDPM reverse mean (the posterior mean at x0_hat(eps), written without 1/sqrt(alpha_bar_t))::

    mu_theta(x_t, t) = x_t / sqrt(alpha_t) - beta_t / (sqrt(1 - alpha_bar_t) sqrt(alpha_t)) eps

Devices and dtypes: the master tables are float64 on the CPU. :meth:`Schedule.table` returns a copy
on a given (device, dtype), made once and cached in the (otherwise immutable) schedule, so per-step code
indexes a device table instead of copying the table every call. Every method answers on the device and
in the dtype of its tensor input. A step given as a Python ``int`` is validated on the host and picks a
scalar coefficient (no host synchronisation); a step tensor is validated by :func:`check_t`, which reads
its min/max (one host synchronisation on an accelerator), once per call of a public method (each method
checks its steps once and picks all its coefficients unchecked). Code that made its steps in range by
construction (the training loop draws them from ``0..T-1``) runs the loss inside
:func:`assume_valid_steps`, where every step tensor keeps its dtype and shape checks but skips the range
read: the training step then never synchronises with the host. Per-step sampler loops pass ints.

Respacing (improved DDPM's ``space_timesteps`` / ``SpacedDiffusion``): :meth:`Schedule.respaced` keeps
K of the T steps, ``t_0 < ... < t_{K-1}`` (the steps of :meth:`Schedule.timesteps`, evenly spaced with
rounding, always 0 and T-1), and defines a K-step schedule with the same alpha_bar at the kept steps::

    beta'_i = 1 - alpha_bar_{t_i} / alpha_bar_{t_{i-1}}      (alpha_bar_{t_{-1}} := 1)

Its ``timestep_map[i] = t_i`` is the original step a model trained on T steps must be called with.
"""

from __future__ import annotations

import contextlib
import contextvars
import math
from dataclasses import dataclass, field
from typing import Callable, Iterator

import torch

from vsmlab.core.checks import check_int

__all__ = ["Schedule", "linear", "cosine", "check_t", "assume_valid_steps", "gather", "respace", "TABLES"]

# True inside ``assume_valid_steps()``: step tensors skip the range read (a host synchronisation on a GPU)
_STEPS_TRUSTED: contextvars.ContextVar[bool] = contextvars.ContextVar("vsmlab_steps_trusted", default=False)


@contextlib.contextmanager
def assume_valid_steps() -> Iterator[None]:
    """Within this block, :func:`check_t` trusts the *values* of step tensors (no min/max read, so no host
    synchronisation); dtype and shape are still checked. For code whose steps are in ``0..T-1`` by
    construction, e.g. the training loop around its loss (t drawn by ``randint(0, T)`` or a multinomial over
    T steps). Out-of-range steps inside it are not detected (an indexing error, or a device-side assert on
    a GPU). Scoped to the current thread / context (a :class:`contextvars.ContextVar`); nests."""
    token = _STEPS_TRUSTED.set(True)
    try:
        yield
    finally:
        _STEPS_TRUSTED.reset(token)


def gather(values: torch.Tensor, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Pick ``values[t]`` per example and reshape to broadcast against ``like``.

    values: [T]; t: [B] int; like: [B, ...]. Returns [B, 1, ..., 1] on ``like``'s device in its dtype.
    Indexes on ``values``' device and moves only the B picked values (never the whole table): pass a
    table already on ``like``'s device (:meth:`Schedule.table`) to avoid any copy.
    """
    if t.device != values.device:
        t = t.to(values.device)
    out = values[t].to(device=like.device, dtype=like.dtype)
    return out.reshape(t.shape[0], *([1] * (like.dim() - 1)))


def check_t(t: torch.Tensor | int, num_steps: int, batch: int | None = None, *, validate: bool = True) -> torch.Tensor:
    """Validate a step tensor and return it as int64 of shape [B] (on t's device; an int gives a CPU tensor).

    Raises TypeError / ValueError naming ``t`` for a non-integer dtype or a wrong shape, and (``validate``)
    ValueError when a value is outside ``0..num_steps-1``. The range check reads t's min and max: one host
    synchronisation when t lives on an accelerator. ``validate=False`` (internal calls on steps already
    checked) and :func:`assume_valid_steps` skip only that read.
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
    if t.numel() and validate and not _STEPS_TRUSTED.get():
        low, high = (int(v) for v in torch.stack([t.min(), t.max()]).tolist())
        if low >= 0 and high < num_steps:
            return t.long()
        bad = low if low < 0 else high
        raise ValueError(f"t: step {bad} is out of range; allowed 0..{num_steps - 1}")
    return t.long()


def _derived_tables() -> dict[str, Callable[["Schedule"], torch.Tensor]]:
    # Every table is computed once, in float64 on the CPU, from the master attributes; the arithmetic
    # of each entry is the one the library used before tables were cached (CPU results unchanged).
    return {
        "sqrt_alpha_bar": lambda s: torch.sqrt(s.alpha_bar),
        "inv_sqrt_alpha_bar": lambda s: 1.0 / torch.sqrt(s.alpha_bar),
        "sigma_over_sqrt_alpha_bar": lambda s: s.sigma * (1.0 / torch.sqrt(s.alpha_bar)),
        "sigma_ode": lambda s: torch.sqrt(1 / s.alpha_bar - 1),
        "log_betas": lambda s: torch.log(s.betas),
        "reverse_coef_xt": lambda s: 1 / torch.sqrt(s.alphas),
        "reverse_coef_eps": lambda s: s.betas / (s.sigma * torch.sqrt(s.alphas)),
    }


_MASTER = (
    "betas", "alphas", "alpha_bar", "alpha_bar_prev", "sigma", "beta_tilde", "log_beta_tilde_clipped",
    "posterior_coef_x0", "posterior_coef_xt",
)
_DERIVED = _derived_tables()
#: Names accepted by :meth:`Schedule.table`.
TABLES: tuple[str, ...] = _MASTER + tuple(_DERIVED)


def _as_device(device: torch.device | str | None) -> torch.device:
    dev = torch.device("cpu") if device is None else torch.device(device)
    if dev.type == "cuda" and dev.index is None and torch.cuda.is_available():
        dev = torch.device("cuda", torch.cuda.current_device())
    return dev


@dataclass(frozen=True)
class Schedule:
    """An immutable DDPM schedule over ``betas`` (shape [T], float64, each in (0, 1)).

    Attributes (all [T], float64 on the CPU): ``betas``, ``alphas``, ``alpha_bar``, ``alpha_bar_prev``,
    ``sigma`` (= sqrt(1 - alpha_bar), the std of the noise in x_t), ``beta_tilde`` (posterior variance,
    with beta_tilde_0 = 0), ``log_beta_tilde_clipped`` (t=0 replaced by t=1's value, as in improved DDPM),
    ``posterior_coef_x0`` and ``posterior_coef_xt``. ``timestep_map`` (a tuple of T ints, or None for
    the identity) gives, for a respaced schedule, the original step each of its steps stands for.
    Device/dtype copies of every table come from :meth:`table` (cached).
    """

    betas: torch.Tensor
    name: str = "custom"
    timestep_map: tuple[int, ...] | None = None
    alphas: torch.Tensor = field(init=False, repr=False)
    alpha_bar: torch.Tensor = field(init=False, repr=False)
    alpha_bar_prev: torch.Tensor = field(init=False, repr=False)
    sigma: torch.Tensor = field(init=False, repr=False)
    beta_tilde: torch.Tensor = field(init=False, repr=False)
    log_beta_tilde_clipped: torch.Tensor = field(init=False, repr=False)
    posterior_coef_x0: torch.Tensor = field(init=False, repr=False)
    posterior_coef_xt: torch.Tensor = field(init=False, repr=False)
    _tables: dict = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        betas = torch.as_tensor(self.betas, dtype=torch.float64).detach().to("cpu").clone()
        if betas.dim() != 1 or betas.numel() < 2:
            raise ValueError(f"betas: expected a 1-D tensor with at least 2 steps, got shape {tuple(betas.shape)}")
        if not torch.all((betas > 0) & (betas < 1)):
            raise ValueError(
                f"betas: every beta must lie in (0, 1); got min {float(betas.min())}, max {float(betas.max())}"
            )
        if self.timestep_map is not None:
            tmap = tuple(int(s) for s in self.timestep_map)
            if len(tmap) != betas.numel() or any(b <= a for a, b in zip(tmap, tmap[1:])) or tmap[0] < 0:
                raise ValueError(
                    f"timestep_map: expected {betas.numel()} increasing non-negative steps (one per beta), "
                    f"got {self.timestep_map!r}"
                )
            object.__setattr__(self, "timestep_map", tmap)
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
        set_(self, "_tables", {})

    @property
    def num_steps(self) -> int:
        """T, the number of diffusion steps."""
        return int(self.betas.numel())

    # ------------------------------------------------------------------ tables
    def table(self, name: str, device: torch.device | str | None = None, dtype: torch.dtype = torch.float64) -> torch.Tensor:
        """The table ``name`` ([T]) on ``device`` (default CPU) in ``dtype``, made once and cached.

        name: one of :data:`TABLES` (the float64 attributes plus derived ones: ``sqrt_alpha_bar``,
        ``inv_sqrt_alpha_bar``, ``sigma_over_sqrt_alpha_bar``, ``sigma_ode`` = sqrt(1/alpha_bar - 1),
        ``log_betas``, ``reverse_coef_xt`` = 1/sqrt(alpha_t), ``reverse_coef_eps`` =
        beta_t / (sqrt(1 - alpha_bar_t) sqrt(alpha_t))). The copy is the float64 master rounded once
        to ``dtype``; the same object is returned for the same (name, device, dtype). Treat it as read-only.
        """
        dev = _as_device(device)
        key = (name, dev, dtype)
        out = self._tables.get(key)
        if out is None:
            master = self._tables.get((name, torch.device("cpu"), torch.float64))
            if master is None:
                if name in _MASTER:
                    master = getattr(self, name)
                elif name in _DERIVED:
                    master = _DERIVED[name](self)
                else:
                    raise ValueError(f"name: expected one of {list(TABLES)}, got {name!r}")
                self._tables[(name, torch.device("cpu"), torch.float64)] = master
            out = master.to(device=dev, dtype=dtype)
            self._tables[key] = out
        return out

    def _coef(self, name: str, t: torch.Tensor | int, like: torch.Tensor, validate: bool = True) -> torch.Tensor:
        """``table(name)[t]`` on like's device in like's dtype: a 0-d scalar for an int t (checked on the
        host), else [B, 1, ..., 1] for a step tensor (checked by :func:`check_t`; its range only when
        ``validate``)."""
        values = self.table(name, like.device, like.dtype)
        if isinstance(t, int) and not isinstance(t, bool):
            if not 0 <= t < self.num_steps:
                raise ValueError(f"t: step {t} is out of range; allowed 0..{self.num_steps - 1}")
            return values[t]
        t = self.check_t(t, like.shape[0], validate=validate)
        return gather(values, t, like)

    def _steps(self, t: torch.Tensor | int, like: torch.Tensor) -> torch.Tensor | int:
        """A public method's steps, checked once: an int as is (checked by :meth:`_coef` on the host), a
        tensor by :func:`check_t` against like's batch; the method then picks its coefficients unchecked."""
        if isinstance(t, int) and not isinstance(t, bool):
            return t
        return self.check_t(t, like.shape[0])

    def check_t(self, t: torch.Tensor | int, batch: int | None = None, *, validate: bool = True) -> torch.Tensor:
        """Validate ``t`` against this schedule (see :func:`check_t`)."""
        return check_t(t, self.num_steps, batch, validate=validate)

    # -------------------------------------------------------------- operations
    def noise(
        self, x0: torch.Tensor, t: torch.Tensor | int, eps: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Forward noising ``x_t = sqrt(alpha_bar_t) x0 + sqrt(1 - alpha_bar_t) eps``.

        x0: [B, ...]; t: [B] int (or one int step); eps: same shape as x0 (drawn from N(0, I) with
        ``generator``, on x0's device, if None). Returns x_t with x0's shape, device and dtype.
        """
        t = self._steps(t, x0)
        if eps is None:
            eps = torch.randn(x0.shape, generator=generator, dtype=x0.dtype, device=x0.device)
        elif eps.shape != x0.shape:
            raise ValueError(f"eps: expected shape {tuple(x0.shape)} (same as x0), got {tuple(eps.shape)}")
        return self._coef("sqrt_alpha_bar", t, x0, False) * x0 + self._coef("sigma", t, x0, False) * eps

    def posterior_mean(self, x0: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor | int) -> torch.Tensor:
        """Mean of q(x_{t-1} | x_t, x0) = c0_t x0 + ct_t x_t. Shapes [B, ...]; t: [B] (or an int)."""
        t = self._steps(t, x_t)
        return (self._coef("posterior_coef_x0", t, x_t, False) * x0
                + self._coef("posterior_coef_xt", t, x_t, False) * x_t)

    def reverse_mean(self, x_t: torch.Tensor, t: torch.Tensor | int, eps: torch.Tensor) -> torch.Tensor:
        """DDPM reverse mean mu_theta = x_t / sqrt(alpha_t) - beta_t / (sqrt(1 - alpha_bar_t) sqrt(alpha_t)) eps.

        It equals the posterior mean of q(x_{t-1} | x_t, x0_hat) at x0_hat = x0_from_eps(x_t, t, eps),
        written without 1/sqrt(alpha_bar_t) (which overflows float32 on aggressive schedules); the
        coefficients are float64 tables rounded once to x_t's dtype. x_t, eps: [B, ...]; t: [B] or an int.
        """
        t = self._steps(t, x_t)
        return self._coef("reverse_coef_xt", t, x_t, False) * x_t - self._coef("reverse_coef_eps", t, x_t, False) * eps

    def x0_from_eps(self, x_t: torch.Tensor, t: torch.Tensor | int, eps: torch.Tensor) -> torch.Tensor:
        """x0_hat = (x_t - sqrt(1 - alpha_bar_t) eps) / sqrt(alpha_bar_t). Shapes [B, ...]; t: [B] (or an int).

        Coefficients in float64 before rounding (alpha_bar underflows float32 on aggressive schedules).
        """
        t = self._steps(t, x_t)
        return (self._coef("inv_sqrt_alpha_bar", t, x_t, False) * x_t
                - self._coef("sigma_over_sqrt_alpha_bar", t, x_t, False) * eps)

    def eps_from_x0(self, x_t: torch.Tensor, t: torch.Tensor | int, x0: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`x0_from_eps`: eps = (x_t - sqrt(alpha_bar_t) x0) / sqrt(1 - alpha_bar_t)."""
        t = self._steps(t, x_t)
        return (x_t - self._coef("sqrt_alpha_bar", t, x_t, False) * x0) / self._coef("sigma", t, x_t, False)

    def learned_log_variance(self, v: torch.Tensor, t: torch.Tensor | int) -> torch.Tensor:
        """Improved-DDPM learned range: log Sigma = f log beta_t + (1 - f) log beta_tilde_t, f = (v + 1) / 2.

        v: [B, ...] in [-1, 1]; t: [B] (or an int). beta_tilde_0 is clipped to beta_tilde_1 (log of 0
        otherwise). Returns log Sigma with v's shape, device and dtype.
        """
        t = self._steps(t, v)
        frac = (v + 1) / 2
        return (frac * self._coef("log_betas", t, v, False)
                + (1 - frac) * self._coef("log_beta_tilde_clipped", t, v, False))

    def timesteps(self, num_steps: int | None = None) -> list[int]:
        """Descending list of steps used by a sampler with ``num_steps`` evenly spaced steps (default: all T).

        Always starts at T-1 and ends at 0: round(linspace(T-1, 0, num_steps)) (round half to even),
        the single-section "evenly spaced with rounding" rule of improved DDPM's ``space_timesteps``.
        Raises ValueError if num_steps is outside 2..T.
        """
        T = self.num_steps
        if num_steps is None:
            return list(range(T - 1, -1, -1))
        check_int("num_steps", num_steps, 2, T)
        steps = torch.linspace(T - 1, 0, num_steps).round().long().tolist()
        out: list[int] = []
        for s in steps:
            if not out or s != out[-1]:
                out.append(int(s))
        return out

    def original_step(self, t: int) -> int:
        """The step of the original (un-respaced) schedule that step ``t`` of this one stands for."""
        return t if self.timestep_map is None else self.timestep_map[t]

    def respaced(self, num_steps: int) -> "Schedule":
        """This schedule restricted to ``num_steps`` kept steps (improved DDPM's respacing).

        Kept steps t_0 < ... < t_{K-1}: ``sorted(self.timesteps(num_steps))`` = round(linspace(0, T-1, K))
        (evenly spaced with rounding, half to even; always 0 and T-1), the steps DDIM and the ODE visit.
        This is improved DDPM's ``space_timesteps(T, [K])`` (one section) for the usual K (at T = 1000:
        10, 20, 25, 50, 100, 200, 250, 500, 1000, tested); where a step falls exactly on .5 (some odd K,
        e.g. T = 1000, K = 15) the two may differ by one step in the middle, because improved DDPM
        accumulates a float stride while linspace is computed from both ends. New betas beta'_i = 1 - alpha_bar_{t_i} / alpha_bar_{t_{i-1}}
        (alpha_bar_{t_{-1}} = 1), so the new alpha_bar equals the old one at kept steps (up to float64
        rounding of the product) and beta_tilde, the posterior and the learned-variance range follow
        from the new betas. ``timestep_map[i]`` is the original step t_i (composed through an earlier
        respacing): a model trained on the original schedule must be called with it. Raises ValueError
        naming ``num_steps`` when a kept jump is so large that beta' rounds to 1 (aggressive schedules,
        very few steps).
        """
        kept = sorted(self.timesteps(num_steps))
        alpha_bar = self.alpha_bar[kept]
        prev = torch.cat([torch.ones(1, dtype=torch.float64), alpha_bar[:-1]])
        betas = 1.0 - alpha_bar / prev
        if not bool((betas < 1).all()):
            i = int(torch.nonzero(betas >= 1)[0])
            raise ValueError(
                f"num_steps: respacing to {len(kept)} steps makes beta = 1 at step {i} (alpha_bar falls from "
                f"{float(prev[i]):.3g} to {float(alpha_bar[i]):.3g}, below float64 resolution); use more steps"
            )
        tmap = tuple(self.original_step(t) for t in kept)
        return Schedule(betas, name=f"{self.name} respaced to {len(kept)} steps", timestep_map=tmap)


def respace(schedule: Schedule, num_steps: int) -> Schedule:
    """Function form of :meth:`Schedule.respaced`."""
    if not isinstance(schedule, Schedule):
        raise TypeError(f"schedule: expected a Schedule, got {type(schedule).__name__}")
    return schedule.respaced(num_steps)


def linear(num_steps: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02) -> Schedule:
    """Linear betas from ``beta_start`` to ``beta_end`` (DDPM: 1e-4..0.02; mode-interpolation: 1e-3..0.2)."""
    num_steps = check_int("num_steps", num_steps, low=2)
    for name, val in (("beta_start", beta_start), ("beta_end", beta_end)):
        if not (0 < val < 1):
            raise ValueError(f"{name}: expected a value in (0, 1), got {val!r}")
    betas = torch.linspace(beta_start, beta_end, num_steps, dtype=torch.float64)
    return Schedule(betas, name=f"linear({beta_start:g}..{beta_end:g}, T={num_steps})")


def cosine(num_steps: int = 1000, offset: float = 0.008, max_beta: float = 0.999) -> Schedule:
    """Cosine schedule of improved DDPM: alpha_bar(t) = cos^2(((t/T + s)/(1 + s)) pi/2), betas clipped at max_beta."""
    num_steps = check_int("num_steps", num_steps, low=2)
    if offset < 0:
        raise ValueError(f"offset: expected >= 0, got {offset!r}")
    if not (0 < max_beta < 1):
        raise ValueError(f"max_beta: expected a value in (0, 1), got {max_beta!r}")

    def f(u: float) -> float:
        return math.cos((u + offset) / (1 + offset) * math.pi / 2) ** 2

    betas = [min(1 - f((i + 1) / num_steps) / f(i / num_steps), max_beta) for i in range(num_steps)]
    return Schedule(torch.tensor(betas, dtype=torch.float64), name=f"cosine(T={num_steps})")
