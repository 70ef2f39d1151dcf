"""The lab's lower bound on off-support mass from the Lipschitz constant of a score.

Setting. p is a probability density on R^d whose score s = grad log p exists everywhere and is
L-Lipschitz: ||s(x) - s(y)|| <= L ||x - y||. (The bound is about *this* density: the one whose gradient
of log the score is. A learned network need not be a gradient field, and the samples a diffusion sampler
draws with a score are not distributed as the density of that score at t = 0; see notebook 03.)

Derivation. log p is then L-smooth, so along the segment from y to x
(the descent lemma, used as a lower bound)::

    log p(x) = log p(y) + s(y).(x - y) + int_0^1 (s(y + r(x - y)) - s(y)).(x - y) dr
             >= log p(y) + s(y).(x - y) - L ||x - y||^2 / 2.

Only the one-sided part of the Lipschitz condition is used: it is enough that the curvature of -log p
is at most L, i.e. (s(z) - s(y)).(z - y) >= -L ||z - y||^2, equivalently every eigenvalue of -J = -ds/dx
is <= L (J symmetric for a gradient field). Call the smallest such L the *one-sided* constant
L_+ = sup_z lambda_max(-J(z)) <= Lip(s). Near t = 0 the two differ enormously for a mixture: Lip(s) is set
by the steep *positive* slope of the score in the gaps (the denoiser switching modes), L_+ by the curvature
at the modes (about 1 / v_k). Every function here takes ``lipschitz`` = either; L_+ gives the sharper bound.

At a critical point y* of p (s(y*) = 0, e.g. a mode) this is a Gaussian-shaped floor::

    p(x) >= p(y*) exp(-L ||x - y*||^2 / 2)                                              (1)

and (1) holds for every mode y_1..y_M at once, so p(x) >= max_m p(y_m) exp(-L ||x - y_m||^2 / 2). Integrating
over a region H (e.g. the gaps between the modes, off the data support)::

    P(H) >= int_H max_m p(y_m) exp(-L ||x - y_m||^2 / 2) dx                              (2)

1-D interval H = [a, b] and one mode: p(y*) sqrt(2 pi / L) [Phi(sqrt(L)(b - y*)) - Phi(sqrt(L)(a - y*))].
d-D ball H = B(c, r) and one mode: p(y*) (2 pi / L)^(d/2) P(chi'^2_d(lambda = L ||c - y*||^2) <= L r^2)
(non-central chi-square). For a gap at distance delta from the nearest mode the bound decays like
exp(-L delta^2 / 2): a smoother score (smaller L) forces exponentially more mass into the gap.

Assumptions, all needed: p is a normalised density; s = grad log p exactly (a gradient field); L is a
*global* Lipschitz constant of s on the segments from the modes to H (an L estimated on a grid must cover
them; underestimating L overstates the bound); p(y_m) are the density's values at exact critical points.

Devices: :func:`density_floor` follows x's device; the closed-form bounds return Python floats; the 1-D
grid of :func:`smoothed_density_1d` is built on the CPU (its inputs are a mixture and a schedule, not
tensors) and :func:`interval_mass` reads its grid on the host (numpy interpolation).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from vsmlab.core.checks import check_int, check_positive
from vsmlab.data.mixtures import GaussianMixture
from vsmlab.core.schedules import Schedule

__all__ = [
    "density_floor",
    "interval_mass_lower_bound",
    "ball_mass_lower_bound",
    "gap_intervals_1d",
    "SmoothedDensity1D",
    "smoothed_density_1d",
    "interval_mass",
]


def _check_lipschitz(lipschitz: object) -> float:
    if isinstance(lipschitz, torch.Tensor) and lipschitz.numel() == 1:
        lipschitz = float(lipschitz)
    return check_positive("lipschitz", lipschitz, hint="the score's Lipschitz constant")


def _modes(modes: object, densities: object, dim: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    m = torch.as_tensor(modes, dtype=torch.float64)
    if dim == 1 and m.dim() <= 1:
        m = m.reshape(-1, 1)
    if m.dim() == 1:
        m = m[None]
    p = torch.as_tensor(densities, dtype=torch.float64).reshape(-1)
    if m.dim() != 2 or m.shape[0] < 1 or p.shape[0] != m.shape[0]:
        raise ValueError(f"modes, mode_densities: expected [M, d] modes and [M] densities (M >= 1), got "
                         f"{tuple(m.shape)} and {tuple(p.shape)}")
    if dim is not None and m.shape[1] != dim:
        raise ValueError(f"modes: expected {dim}-D modes, got shape {tuple(m.shape)}")
    if not torch.all(torch.isfinite(p) & (p > 0)):
        raise ValueError(f"mode_densities: expected finite densities > 0, got {p.tolist()}")
    return m, p


def density_floor(x: torch.Tensor, lipschitz: float, modes: object, mode_densities: object) -> torch.Tensor:
    """The pointwise floor (1): max_m p(y_m) exp(-L ||x - y_m||^2 / 2) at points x [B, d] -> [B] (float64).

    modes: [M, d] critical points of p (s = 0 there); mode_densities: [M] their density values.
    """
    L = _check_lipschitz(lipschitz)
    if not isinstance(x, torch.Tensor) or x.dim() != 2:
        raise ValueError(f"x: expected a tensor of shape [B, d], got {getattr(x, 'shape', type(x).__name__)}")
    m, p = _modes(modes, mode_densities, x.shape[1])
    m, p = m.to(x.device), p.to(x.device)
    d2 = torch.cdist(x.double(), m) ** 2
    return (torch.log(p)[None] - 0.5 * L * d2).max(1).values.exp()


def interval_mass_lower_bound(
    lipschitz: float, modes: object, mode_densities: object, intervals: Sequence[tuple[float, float]],
) -> float:
    """Lower bound (2) on P(union of disjoint 1-D intervals) in closed form (the envelope over all modes).

    In log space every term of the max is the same parabola -L x^2 / 2 plus a line
    c_m + L y_m x (c_m = log p(y_m) - L y_m^2 / 2), so each mode dominates one interval of the line
    (found by intersecting half-lines) and on it contributes
    p_m sqrt(2 pi / L) [Phi(sqrt(L)(hi - y_m)) - Phi(sqrt(L)(lo - y_m))].
    intervals: (a, b) pairs with a < b (b may be inf, a may be -inf), assumed disjoint.
    """
    from scipy.special import ndtr

    L = _check_lipschitz(lipschitz)
    m, p = _modes(modes, mode_densities, 1)
    y = m[:, 0].tolist()
    logp = torch.log(p).tolist()
    M = len(y)
    slope = [L * yi for yi in y]
    const = [lp - 0.5 * L * yi * yi for lp, yi in zip(logp, y)]
    total = 0.0
    for a, b in intervals:
        a, b = float(a), float(b)
        if not a < b:
            raise ValueError(f"intervals: expected (a, b) with a < b, got ({a}, {b})")
        for k in range(M):
            lo, hi = a, b
            for j in range(M):
                if j == k:
                    continue
                if slope[j] == slope[k]:
                    if const[j] > const[k] or (const[j] == const[k] and j < k):
                        lo, hi = 1.0, 0.0  # dominated everywhere (ties go to the lower index)
                    continue
                cross = (const[j] - const[k]) / (slope[k] - slope[j])
                if slope[k] > slope[j]:
                    lo = max(lo, cross)
                else:
                    hi = min(hi, cross)
            if lo >= hi:
                continue
            s = math.sqrt(L)
            # Phi(s(hi - y)) - Phi(s(lo - y)), computed on the far side of y for accuracy in the tails
            if lo - y[k] > 0:
                part = ndtr(-s * (lo - y[k])) - ndtr(-s * (hi - y[k]))
            else:
                part = ndtr(s * (hi - y[k])) - ndtr(s * (lo - y[k]))
            if part > 0:
                total += math.exp(logp[k] + 0.5 * math.log(2 * math.pi / L) + math.log(part))
    return total


def ball_mass_lower_bound(
    lipschitz: float, modes: object, mode_densities: object, centre: object, radius: float,
) -> float:
    """Lower bound (2) on P(||x - centre|| <= radius) in d dimensions, from the best single mode::

        max_m p(y_m) (2 pi / L)^(d/2) P(chi'^2_d(L ||centre - y_m||^2) <= L radius^2)

    (the Gaussian integral of (1) over a ball is a non-central chi-square probability).
    """
    from scipy.stats import chi2, ncx2

    L = _check_lipschitz(lipschitz)
    c = torch.as_tensor(centre, dtype=torch.float64).reshape(-1)
    m, p = _modes(modes, mode_densities, c.numel())
    check_positive("radius", radius)
    d = c.numel()
    best = 0.0
    for k in range(m.shape[0]):
        lam = L * float(((c - m[k]) ** 2).sum())
        prob = float(chi2.cdf(L * radius**2, d)) if lam == 0 else float(ncx2.cdf(L * radius**2, d, lam))
        if prob > 0:
            best = max(best, math.exp(math.log(float(p[k])) + 0.5 * d * math.log(2 * math.pi / L) + math.log(prob)))
    return best


def gap_intervals_1d(centres: object, half_widths: object, include_tails: bool = False) -> list[tuple[float, float]]:
    """The complement of the support intervals [c_k - w_k, c_k + w_k] as disjoint intervals.

    Without ``include_tails`` only the gaps *between* the outermost support intervals (mode
    interpolation's territory); with it also (-inf, first) and (last, inf). Overlapping supports leave no gap.
    """
    c = torch.as_tensor(centres, dtype=torch.float64).reshape(-1)
    w = torch.as_tensor(half_widths, dtype=torch.float64).reshape(-1)
    if w.numel() == 1:
        w = w.expand(c.numel())
    if c.numel() < 1 or w.shape != c.shape or not torch.all(w > 0):
        raise ValueError(f"centres, half_widths: expected [K] centres and K (or one) positive half-widths, got "
                         f"{tuple(c.shape)} and {tuple(w.shape)}")
    order = torch.argsort(c)
    lo, hi = (c - w)[order].tolist(), (c + w)[order].tolist()
    merged: list[list[float]] = []
    for a, b in zip(lo, hi):
        if merged and a <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], b)
        else:
            merged.append([a, b])
    gaps = [(merged[i][1], merged[i + 1][0]) for i in range(len(merged) - 1)]
    if include_tails:
        gaps = [(-math.inf, merged[0][0])] + gaps + [(merged[-1][1], math.inf)]
    return gaps


# --------------------------------------------------------------------------- numerics for mixtures
@dataclass(frozen=True)
class SmoothedDensity1D:
    """The temperature-smoothed noised mixture density on a grid (all float64).

    grid [N]; density [N] (normalised numerically); score [N] and jacobian [N] (exact ds/dx);
    lipschitz = max |jacobian| on the grid; one_sided = max(-jacobian) on the grid (L_+, see the module
    docstring; <= lipschitz); modes [M] (exact zeros of the score where it falls through 0,
    refined by bisection) and mode_densities [M]; log_normaliser = log of the numerical normaliser Z.
    centres [K] and stds [K]: the components at step t (a mu_k and sqrt(v_k)).
    """

    grid: torch.Tensor
    density: torch.Tensor
    score: torch.Tensor
    jacobian: torch.Tensor
    lipschitz: float
    one_sided: float
    modes: torch.Tensor
    mode_densities: torch.Tensor
    log_normaliser: float
    centres: torch.Tensor
    stds: torch.Tensor


def smoothed_density_1d(
    mixture: GaussianMixture, schedule: Schedule, t: int, temperature: float = 1.0,
    num_points: int = 200_001, pad: float = 12.0,
) -> SmoothedDensity1D:
    """The density whose score is the temperature-smoothed mixture score at step t, on a 1-D grid.

    mixture.score(..., temperature=tau) is the gradient of tau * logsumexp_k(l_k / tau), l_k = log w_k +
    log N(x; a mu_k, v_k), so it is the score of p_tau(x) = exp(tau LSE(l / tau)) / Z (tau = 1: the
    noised mixture itself). Z is computed by the trapezoid rule on a grid spanning the component centres
    +- ``pad`` component stds (the tails beyond are below e^{-pad^2/2} relative).
    """
    if mixture.dim != 1:
        raise ValueError(f"mixture: expected a 1-D mixture, got dim {mixture.dim}")
    check_positive("temperature", temperature, hint="1 = exact score")
    check_int("num_points", num_points, low=101)
    steps = schedule.check_t(torch.tensor([t]), 1)
    ab = schedule.alpha_bar[steps]
    a = float(torch.sqrt(ab))
    centres = a * mixture.means[:, 0]
    stds = torch.sqrt(ab * mixture.stds**2 + 1 - ab)
    width = pad * float(stds.max()) * max(1.0, math.sqrt(temperature))
    grid = torch.linspace(float(centres.min()) - width, float(centres.max()) + width, num_points, dtype=torch.float64)

    def evaluate(x: torch.Tensor):
        tt = torch.full((x.shape[0],), int(t), dtype=torch.long)
        log_density = mixture.log_prob(x[:, None], tt, schedule, temperature=float(temperature))
        return log_density, mixture.score(x[:, None], tt, schedule, temperature=temperature)[:, 0]

    log_u, score = evaluate(grid)
    jac = mixture.score_jacobian(grid[:, None], torch.full((num_points,), int(t)), schedule, temperature=temperature)[:, 0, 0]
    shift = float(log_u.max())
    Z = float(torch.trapezoid(torch.exp(log_u - shift), grid))
    log_z = shift + math.log(Z)
    density = torch.exp(log_u - log_z)
    # modes: the score falls from > 0 to <= 0 between neighbouring grid points; refine by bisection
    idx = torch.nonzero((score[:-1] > 0) & (score[1:] <= 0)).reshape(-1)
    lo, hi = grid[idx].clone(), grid[idx + 1].clone()
    for _ in range(60):
        mid = (lo + hi) / 2
        s_mid = evaluate(mid)[1]
        lo, hi = torch.where(s_mid > 0, mid, lo), torch.where(s_mid > 0, hi, mid)
    modes = (lo + hi) / 2
    mode_densities = torch.exp(evaluate(modes)[0] - log_z) if modes.numel() else modes
    return SmoothedDensity1D(grid, density, score, jac, float(jac.abs().max()), float((-jac).max()), modes, mode_densities, log_z, centres, stds)


def interval_mass(grid: torch.Tensor, density: torch.Tensor, intervals: Sequence[tuple[float, float]]) -> float:
    """Numerical mass of a density [N] on a sorted grid [N] over disjoint intervals (trapezoid rule,
    with the density interpolated linearly at the interval ends; infinite ends clip to the grid)."""
    if grid.shape != density.shape or grid.dim() != 1:
        raise ValueError(f"grid, density: expected two [N] tensors, got {tuple(grid.shape)} and {tuple(density.shape)}")
    total = 0.0
    grid_cpu, density_cpu = grid.detach().cpu(), density.detach().cpu()  # numpy's interp works on the host
    for a, b in intervals:
        a, b = max(float(a), float(grid_cpu[0])), min(float(b), float(grid_cpu[-1]))
        if a >= b:
            continue
        inside = (grid_cpu > a) & (grid_cpu < b)
        xs = torch.cat([torch.tensor([a], dtype=grid.dtype), grid_cpu[inside], torch.tensor([b], dtype=grid.dtype)])
        ys = torch.from_numpy(np.interp(xs.numpy(), grid_cpu.numpy(), density_cpu.numpy()))
        total += float(torch.trapezoid(ys, xs))
    return total
