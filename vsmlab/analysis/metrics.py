"""Hallucination metrics with confidence intervals.

A sample is *hallucinated* when it lies outside the data support: farther than ``k`` component stds
(Euclidean) from every mode of the mixture (:meth:`GaussianMixture.in_support`). Perfect samples still
cross that line with probability P(chi_d > k) (the *floor*, :meth:`GaussianMixture.support_floor`).

Rates come with a 95% Wilson score interval (good near 0, unlike the normal approximation)::

    centre = (p + z^2/2n) / (1 + z^2/n),  half = z sqrt(p(1-p)/n + z^2/4n^2) / (1 + z^2/n)

Across seeds use :func:`mean_ci` (Student t interval of the per-seed values).

Devices: the per-sample work runs on the samples' device (the mixture's parameters are copied there once);
only the final counts are read back (one host read per call).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from vsmlab.core.checks import check_int
from vsmlab.data.mixtures import GaussianMixture

__all__ = ["Rate", "wilson_interval", "hallucination_rate", "mode_counts", "gap_mass", "mean_ci", "MeanCI"]


@dataclass(frozen=True)
class Rate:
    """A proportion ``count / n`` with its 95% interval [low, high]."""

    count: int
    n: int
    rate: float
    low: float
    high: float

    def __str__(self) -> str:
        return f"{100 * self.rate:.3f}% [{100 * self.low:.3f}, {100 * self.high:.3f}] ({self.count}/{self.n})"


def wilson_interval(count: int, n: int, z: float = 1.959963984540054) -> Rate:
    """Wilson score interval for ``count`` successes in ``n`` trials (default 95%)."""
    check_int("n", n, low=1)
    check_int("count", count, low=0, high=n)
    p = count / n
    den = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return Rate(count, n, p, min(p, max(0.0, centre - half)), max(p, min(1.0, centre + half)))


def _finite(x: torch.Tensor) -> torch.Tensor:
    return torch.isfinite(x).all(dim=1)


def hallucination_rate(samples: torch.Tensor, mixture: GaussianMixture, k: float = 4.0) -> Rate:
    """Share of samples [B, d] outside the support (non-finite samples count as hallucinated)."""
    ok = _finite(samples)
    inside = torch.zeros(samples.shape[0], dtype=torch.bool, device=samples.device)
    inside[ok] = mixture.in_support(samples[ok], k)
    return wilson_interval(int((~inside).sum()), samples.shape[0])


def mode_counts(samples: torch.Tensor, mixture: GaussianMixture, k: float = 4.0) -> dict[str, torch.Tensor | float]:
    """Per-mode counts of in-support samples and the weight error against the mixture.

    Returns ``counts`` [K] (int), ``weights`` [K] (empirical share among in-support samples) and
    ``max_weight_error`` (max_k |weights_k - w_k|) and ``total_variation`` (0.5 sum_k |weights_k - w_k|).
    """
    ok = _finite(samples)
    x = samples[ok]
    dist, idx = mixture.nearest_mode(x)
    idx = idx[dist <= k]
    counts = torch.bincount(idx, minlength=mixture.num_modes)
    share = counts.double() / max(1, int(counts.sum()))
    err = (share - mixture.params_on(share.device)[2]).abs()
    return {"counts": counts, "weights": share, "max_weight_error": float(err.max()), "total_variation": float(0.5 * err.sum())}


def gap_mass(samples: torch.Tensor, mixture: GaussianMixture, k: float = 4.0) -> Rate:
    """Share of samples that are off-support AND lie between their two nearest modes (in a gap)."""
    ok = _finite(samples)
    x = samples[ok]
    off = ~mixture.in_support(x, k)
    between = mixture.between_modes(x)[2]
    return wilson_interval(int((off & between).sum()), samples.shape[0])


@dataclass(frozen=True)
class MeanCI:
    """Mean of per-seed values with a 95% Student-t interval (half-width ``half``)."""

    mean: float
    half: float
    n: int

    def __str__(self) -> str:
        return f"{self.mean:.4g} +- {self.half:.2g} (n={self.n})"


def mean_ci(values: list[float] | torch.Tensor, confidence: float = 0.95) -> MeanCI:
    """Mean and t-interval half-width over independent repeats (seeds). Needs >= 1 value; n = 1 gives inf."""
    from scipy.stats import t as student_t

    v = torch.as_tensor(values, dtype=torch.float64).reshape(-1)
    if v.numel() < 1:
        raise ValueError("values: expected at least one value")
    if v.numel() == 1:
        return MeanCI(float(v[0]), math.inf, 1)
    half = float(student_t.ppf(0.5 + confidence / 2, v.numel() - 1) * v.std(unbiased=True) / math.sqrt(v.numel()))
    return MeanCI(float(v.mean()), half, int(v.numel()))
