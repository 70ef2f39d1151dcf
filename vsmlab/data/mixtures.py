"""Gaussian mixtures with exact noised densities, scores, score Jacobians and posterior means.

A mixture of K isotropic Gaussians in d dimensions::

    p_0(x) = sum_k w_k N(x; mu_k, s_k^2 I)

Under the DDPM forward process x_t = a x_0 + sqrt(1 - a^2) eps with a = sqrt(alpha_bar_t), the noised
marginal stays a mixture in closed form::

    p_t(x) = sum_k w_k N(x; a mu_k, v_k I),     v_k = a^2 s_k^2 + 1 - a^2

With l_k(x) = log w_k + log N(x; a mu_k, v_k I), responsibilities r_k = softmax_k(l_k / tau) and
g_k = -(x - a mu_k) / v_k, the (temperature-smoothed) score and its Jacobian are::

    s(x)  = sum_k r_k g_k                               (= grad_x  tau * logsumexp_k(l_k / tau))
    J(x)  = -sum_k r_k / v_k I + (1/tau) (sum_k r_k g_k g_k^T - s s^T)

tau = 1 is the exact score of p_t; tau > 1 blends neighbouring modes (a smoother score, the
training-free smoothness dial). The posterior mean (the ideal denoiser) is::

    E[x_0 | x_t] = sum_k r_k (mu_k + a s_k^2 / v_k (x_t - a mu_k))   (= (x_t + (1 - a^2) s) / a, Tweedie)

Devices: the parameters are float64 on the CPU, with a cached float64 copy per device; every method
computes in float64 on x's device and answers on x's device in x's dtype. :meth:`GaussianMixture.sample`
draws on ``device`` (default: the generator's device, else the CPU) with a generator on that device.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from vsmlab.core.checks import check_int, check_positive
from vsmlab.core.prediction import Prediction
from vsmlab.core.schedules import Schedule, gather

__all__ = [
    "GaussianMixture",
    "evenly_spaced_1d",
    "grid_2d",
    "diamond_2d",
    "ExactScoreModel",
]


def _as_float64(value: object, name: str) -> torch.Tensor:
    try:
        return torch.as_tensor(value, dtype=torch.float64).detach().clone()
    except Exception as exc:  # pragma: no cover - torch's message is appended
        raise TypeError(f"{name}: expected numbers convertible to a tensor, got {type(value).__name__}") from exc


@dataclass(frozen=True)
class GaussianMixture:
    """K isotropic Gaussians in d dimensions.

    means: [K, d] (a [K] vector is read as K one-dimensional modes); stds: [K] or a scalar, each > 0;
    weights: [K] non-negative with a positive sum (normalised here), default equal.
    All stored as float64; methods accept float32 or float64 inputs and answer in the input dtype.
    """

    means: torch.Tensor
    stds: torch.Tensor
    weights: torch.Tensor

    def __init__(self, means: object, stds: object, weights: object | None = None) -> None:
        m = _as_float64(means, "means")
        if m.dim() == 1:
            m = m[:, None]
        if m.dim() != 2 or m.shape[0] < 1:
            raise ValueError(f"means: expected shape [K, d] with K >= 1, got {tuple(m.shape)}")
        K = m.shape[0]
        s = _as_float64(stds, "stds")
        if s.dim() == 0:
            s = s.expand(K).clone()
        if s.shape != (K,):
            raise ValueError(f"stds: expected a scalar or shape [{K}] (one per mode), got {tuple(s.shape)}")
        if not torch.all(torch.isfinite(s) & (s > 0)):
            raise ValueError(f"stds: every std must be finite and > 0, got {s.tolist()}")
        if not torch.all(torch.isfinite(m)):
            raise ValueError("means: every mean must be finite")
        w = torch.full((K,), 1.0 / K, dtype=torch.float64) if weights is None else _as_float64(weights, "weights")
        if w.shape != (K,):
            raise ValueError(f"weights: expected shape [{K}] (one per mode), got {tuple(w.shape)}")
        if not torch.all(torch.isfinite(w) & (w >= 0)) or float(w.sum()) <= 0:
            raise ValueError(f"weights: expected non-negative finite numbers with a positive sum, got {w.tolist()}")
        object.__setattr__(self, "means", m)
        object.__setattr__(self, "stds", s)
        object.__setattr__(self, "weights", w / w.sum())
        object.__setattr__(self, "_on_device", {})

    def params_on(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(means [K, d], stds [K], weights [K]) in float64 on ``device``, copied once per device."""
        device = torch.device(device)
        if device.type == "cpu":
            return self.means, self.stds, self.weights
        found = self._on_device.get(device)
        if found is None:
            found = (self.means.to(device), self.stds.to(device), self.weights.to(device))
            self._on_device[device] = found
        return found

    # ------------------------------------------------------------------ basics
    @property
    def num_modes(self) -> int:
        """K."""
        return int(self.means.shape[0])

    @property
    def dim(self) -> int:
        """d."""
        return int(self.means.shape[1])

    def _check_x(self, x: torch.Tensor, name: str = "x") -> None:
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"{name}: expected a tensor of shape [B, {self.dim}], got {type(x).__name__}")
        if x.dim() != 2 or x.shape[1] != self.dim:
            raise ValueError(f"{name}: expected shape [B, {self.dim}] for this {self.dim}-D mixture, got {tuple(x.shape)}")

    def sample(
        self, n: int, generator: torch.Generator | None = None, dtype: torch.dtype = torch.float32,
        return_labels: bool = False, device: torch.device | str | None = None,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Draw ``n`` points [n, d] (and their component labels [n] if ``return_labels``) on ``device``.

        Labels first (multinomial over the weights), then N(0, I) in float64, both from ``generator``,
        which must live on ``device`` (default: the generator's device, else the CPU).
        """
        check_int("n", n, low=1)
        dev = _draw_device(device, generator)
        means, stds, weights = self.params_on(dev)
        labels = torch.multinomial(weights, n, replacement=True, generator=generator)
        z = torch.randn((n, self.dim), generator=generator, dtype=torch.float64, device=dev)
        x = (means[labels] + stds[labels, None] * z).to(dtype)
        return (x, labels) if return_labels else x

    def global_std(self) -> float:
        """Exact total standard deviation of the data, sqrt(trace(Cov) / d) (used to normalise grids)."""
        mean = (self.weights[:, None] * self.means).sum(0)
        second = (self.weights[:, None] * (self.means**2 + self.stds[:, None] ** 2)).sum(0)
        return float(torch.sqrt((second - mean**2).mean()))

    def scaled(self, factor: float) -> "GaussianMixture":
        """The mixture of ``factor * x`` (means and stds multiplied)."""
        if not factor > 0:
            raise ValueError(f"factor: expected > 0, got {factor!r}")
        return GaussianMixture(self.means * factor, self.stds * factor, self.weights)

    # -------------------------------------------------------- noised quantities
    def _terms(self, x: torch.Tensor, alpha_bar: torch.Tensor, temperature: float):
        """Shared pieces at per-example alpha_bar [B]: (a [B,1], v [B,K], diff [B,K,d], l [B,K], r [B,K])."""
        check_positive("temperature", temperature, hint="1 = exact score")
        means, stds, weights = self.params_on(x.device)
        xd = x.to(torch.float64)
        ab = alpha_bar.to(device=x.device, dtype=torch.float64).reshape(-1, 1)
        a = torch.sqrt(ab)
        v = ab * stds[None, :] ** 2 + (1.0 - ab)  # [B, K]
        diff = xd[:, None, :] - a[:, :, None] * means[None, :, :]  # [B, K, d]
        log_n = -0.5 * (diff**2).sum(-1) / v - 0.5 * self.dim * torch.log(2 * math.pi * v)
        log_w = torch.log(weights).clamp_min(-1e30)
        l = log_w[None, :] + log_n
        r = torch.softmax(l / temperature, dim=1)
        return a, v, diff, l, r

    def _alpha_bar(self, x: torch.Tensor, t: torch.Tensor | None, schedule: Schedule | None) -> torch.Tensor:
        """alpha_bar_t [B] (float64, on x's device; ones for t=None). Validates t (see check_t)."""
        self._check_x(x)
        if t is None:
            return torch.ones(x.shape[0], dtype=torch.float64, device=x.device)
        if schedule is None:
            raise ValueError("schedule: a Schedule is required when t is given")
        t = schedule.check_t(t, x.shape[0]).to(x.device)
        return schedule.table("alpha_bar", x.device)[t]

    def log_prob(
        self, x: torch.Tensor, t: torch.Tensor | None = None, schedule: Schedule | None = None,
        temperature: float = 1.0,
    ) -> torch.Tensor:
        """log p_t(x) [B] (t=None: the clean data density p_0). x: [B, d]; t: [B] int.

        With temperature tau != 1: tau * logsumexp_k(l_k / tau), the *unnormalised* log-density whose
        gradient is the smoothed :meth:`score` (normalise numerically, e.g. :func:`vsmlab.analysis.bounds.smoothed_density_1d`).
        """
        _, _, _, l, _ = self._terms(x, self._alpha_bar(x, t, schedule), temperature)
        return (temperature * torch.logsumexp(l / temperature, dim=1)).to(x.dtype)

    def responsibilities(
        self, x: torch.Tensor, t: torch.Tensor | None = None, schedule: Schedule | None = None,
        temperature: float = 1.0,
    ) -> torch.Tensor:
        """Posterior component probabilities r_k(x) = p(k | x_t) [B, K] (softmax of l_k / temperature)."""
        return self._terms(x, self._alpha_bar(x, t, schedule), temperature)[4].to(x.dtype)

    def score(
        self, x: torch.Tensor, t: torch.Tensor | None = None, schedule: Schedule | None = None,
        temperature: float = 1.0,
    ) -> torch.Tensor:
        """Score grad_x log p_t(x) [B, d] (temperature > 1: the smoothed score, see module docstring)."""
        return self._score_at(x, self._alpha_bar(x, t, schedule), temperature)

    def _score_at(self, x: torch.Tensor, alpha_bar: torch.Tensor, temperature: float) -> torch.Tensor:
        _, v, diff, _, r = self._terms(x, alpha_bar, temperature)
        g = -diff / v[:, :, None]
        return (r[:, :, None] * g).sum(1).to(x.dtype)

    def score_jacobian(
        self, x: torch.Tensor, t: torch.Tensor | None = None, schedule: Schedule | None = None,
        temperature: float = 1.0,
    ) -> torch.Tensor:
        """Exact Jacobian d score / d x [B, d, d] (symmetric), including the temperature-smoothed case."""
        _, v, diff, _, r = self._terms(x, self._alpha_bar(x, t, schedule), temperature)
        g = -diff / v[:, :, None]
        s = (r[:, :, None] * g).sum(1)
        eye = torch.eye(self.dim, dtype=torch.float64, device=x.device)
        diag = -(r / v).sum(1)[:, None, None] * eye
        outer = torch.einsum("bk,bki,bkj->bij", r, g, g) - s[:, :, None] * s[:, None, :]
        return (diag + outer / temperature).to(x.dtype)

    def posterior_mean(
        self, x: torch.Tensor, t: torch.Tensor | None = None, schedule: Schedule | None = None,
        temperature: float = 1.0,
    ) -> torch.Tensor:
        """Ideal denoiser E[x_0 | x_t] [B, d] from the per-component posteriors (independent of Tweedie)."""
        a, v, diff, _, r = self._terms(x, self._alpha_bar(x, t, schedule), temperature)
        means, stds, _ = self.params_on(x.device)
        comp = means[None] + (a[:, :, None] * stds[None, :, None] ** 2 / v[:, :, None]) * diff
        return (r[:, :, None] * comp).sum(1).to(x.dtype)

    # ---------------------------------------------------------------- support
    def nearest_mode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(distance in units of that mode's std [B], index [B]) of the mode nearest in that unit."""
        self._check_x(x)
        means, stds, _ = self.params_on(x.device)
        d = torch.cdist(x.to(torch.float64), means) / stds[None, :]
        dist, idx = d.min(1)
        return dist.to(x.dtype), idx

    def in_support(self, x: torch.Tensor, k: float = 4.0) -> torch.Tensor:
        """Boolean [B]: True where x lies within ``k`` component stds (Euclidean) of some mode.

        A sample from the mixture itself falls outside with probability P(chi_d > k) (see
        :meth:`support_floor`): 6.3e-5 in 1-D and 3.4e-4 in 2-D for k = 4.
        """
        check_positive("k", k, hint="radius in component stds", finite=False)
        return self.nearest_mode(x)[0] <= k

    def support_floor(self, k: float = 4.0) -> float:
        """The hallucination rate of perfect samples: P(||z|| > k) for z ~ N(0, I_d) (chi distribution tail)."""
        from scipy.stats import chi

        return float(chi.sf(k, self.dim))

    def between_modes(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """For each point, its two nearest modes (i [B], j [B]) and whether it lies between them ([B] bool).

        "Between" means the projection onto the segment mu_i -> mu_j falls strictly inside it.
        """
        self._check_x(x)
        means, _, _ = self.params_on(x.device)
        d = torch.cdist(x.to(torch.float64), means)
        if self.num_modes < 2:
            z = torch.zeros(x.shape[0], dtype=torch.long, device=x.device)
            return z, z, torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)
        idx = d.topk(2, dim=1, largest=False).indices
        i, j = idx[:, 0], idx[:, 1]
        seg = means[j] - means[i]
        u = ((x.to(torch.float64) - means[i]) * seg).sum(1) / (seg**2).sum(1)
        return i, j, (u > 0) & (u < 1)

    def neighbour_pairs(self, rtol: float = 1e-6) -> torch.Tensor:
        """Index pairs [P, 2] (i < j) of modes at the smallest spacing: the nearest neighbours."""
        d = torch.cdist(self.means, self.means)
        spacing = self.min_mode_spacing()
        i, j = torch.nonzero((d - spacing).abs() <= rtol * max(spacing, 1.0), as_tuple=True)
        keep = i < j
        return torch.stack([i[keep], j[keep]], 1)

    def distance_to_bridges(self, x: torch.Tensor) -> torch.Tensor:
        """Distance [B] from each point to the nearest segment joining two nearest-neighbour modes,
        in units of the smallest component std (a "bridge": where mode interpolation puts its samples)."""
        self._check_x(x)
        pairs = self.neighbour_pairs()
        if pairs.numel() == 0:
            return torch.full((x.shape[0],), math.inf, dtype=x.dtype, device=x.device)
        means, stds, _ = self.params_on(x.device)
        pairs = pairs.to(x.device)
        a, b = means[pairs[:, 0]], means[pairs[:, 1]]  # [P, d]
        xd = x.to(torch.float64)[:, None, :]  # [B, 1, d]
        seg = (b - a)[None]
        u = (((xd - a[None]) * seg).sum(-1) / (seg**2).sum(-1)).clamp(0, 1)  # [B, P]
        closest = a[None] + u[..., None] * seg
        return ((xd - closest).norm(dim=-1).min(1).values / stds.min()).to(x.dtype)

    def min_mode_spacing(self) -> float:
        """Smallest distance between two distinct modes (inf for K = 1)."""
        if self.num_modes < 2:
            return math.inf
        d = torch.cdist(self.means, self.means)
        d.fill_diagonal_(math.inf)
        return float(d.min())


# --------------------------------------------------------------------- factories
def _draw_device(device: torch.device | str | None, generator: torch.Generator | None) -> torch.device:
    """Where a draw happens: ``device`` if given (it must match the generator's), else the generator's."""
    from vsmlab.core.checks import check_device

    dev = check_device("device", device)
    if dev is None:
        return generator.device if generator is not None else torch.device("cpu")
    if generator is not None and generator.device.type != dev.type:
        raise ValueError(f"generator: it lives on {generator.device} but the draw happens on device={str(dev)!r}; "
                         f"pass torch.Generator(device={str(dev)!r})")
    return dev


def evenly_spaced_1d(num_modes: int = 3, spacing: float = 1.0, start: float = 1.0, std: float = 0.05) -> GaussianMixture:
    """Equal-weight 1-D mixture with modes start, start + spacing, ... (default {1, 2, 3}, std 0.05)."""
    check_int("num_modes", num_modes, low=1)
    if not spacing > 0:
        raise ValueError(f"spacing: expected > 0, got {spacing!r}")
    means = start + spacing * torch.arange(num_modes, dtype=torch.float64)
    return GaussianMixture(means[:, None], std)


def grid_2d(n: int = 5, spacing: float = 2.0, std: float = 0.05, normalize: bool = True, rotate_deg: float = 0.0) -> GaussianMixture:
    """n x n grid of equal-weight modes centred at 0 (default 5x5, spacing 2, std 0.05).

    With ``normalize`` the whole mixture is divided by its exact global std (as the mode-interpolation
    work divides its data). ``rotate_deg`` rotates the grid about the origin.
    """
    check_int("n", n, low=1)
    if not spacing > 0:
        raise ValueError(f"spacing: expected > 0, got {spacing!r}")
    c = spacing * (torch.arange(n, dtype=torch.float64) - (n - 1) / 2)
    gx, gy = torch.meshgrid(c, c, indexing="xy")
    means = torch.stack([gx.reshape(-1), gy.reshape(-1)], 1)
    if rotate_deg:
        th = math.radians(rotate_deg)
        rot = torch.tensor([[math.cos(th), -math.sin(th)], [math.sin(th), math.cos(th)]], dtype=torch.float64)
        means = means @ rot.T
    mix = GaussianMixture(means, std)
    return mix.scaled(1.0 / mix.global_std()) if normalize else mix


def diamond_2d(n: int = 5, spacing: float = 2.0, std: float = 0.05, normalize: bool = True) -> GaussianMixture:
    """The control: the same grid rotated by 45 degrees (nearest neighbours are no longer axis-aligned)."""
    return grid_2d(n, spacing, std, normalize, rotate_deg=45.0)


class ExactScoreModel(nn.Module):
    """The exact (optionally temperature-smoothed) mixture score behind the model contract.

    Prediction.eps = -sigma_t * score_t(x_t): [B, d] on x_t's device in x_t's dtype. No parameters.
    ``t`` is validated once per call (reading its min/max: one host synchronisation when t lives on an
    accelerator; the oracle is for tests and studies, trained nets do not validate t this way).
    """

    def __init__(self, mixture: GaussianMixture, schedule: Schedule, temperature: float = 1.0) -> None:
        super().__init__()
        if not isinstance(mixture, GaussianMixture):
            raise TypeError(f"mixture: expected a GaussianMixture, got {type(mixture).__name__}")
        if not isinstance(schedule, Schedule):
            raise TypeError(f"schedule: expected a Schedule, got {type(schedule).__name__}")
        check_positive("temperature", temperature, hint="1 = exact", finite=False)
        self.mixture, self.schedule, self.temperature = mixture, schedule, float(temperature)

    def forward(self, x_t: torch.Tensor, t: torch.Tensor) -> Prediction:
        self.mixture._check_x(x_t, "x_t")
        t = self.schedule.check_t(t, x_t.shape[0]).to(x_t.device)  # one validation per call
        alpha_bar = self.schedule.table("alpha_bar", x_t.device)[t]
        score = self.mixture._score_at(x_t, alpha_bar, self.temperature)
        return Prediction(eps=-score * gather(self.schedule.table("sigma", score.device, score.dtype), t, score))
