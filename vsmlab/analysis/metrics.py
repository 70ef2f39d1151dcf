"""Hallucination metrics with confidence intervals.

A sample is *hallucinated* when it lies outside the data support: farther than ``k`` component stds
(Euclidean) from every mode of the mixture (:meth:`GaussianMixture.in_support`). Perfect samples still
cross that line with probability P(chi_d > k) (the *floor*, :meth:`GaussianMixture.support_floor`).

Rates come with a 95% Wilson score interval and repeats across seeds with a Student-t interval:
:class:`Rate`, :func:`wilson_interval`, :class:`MeanCI` and :func:`mean_ci` are defined in
:mod:`vsmlab.core.rates` (with their equations) and re-exported here.

Devices: the per-sample work runs on the samples' device (the mixture's parameters are copied there once);
only the final counts are read back (one host read per call).
"""

from __future__ import annotations

import torch

from vsmlab.core.rates import MeanCI, Rate, mean_ci, wilson_interval
from vsmlab.data.mixtures import GaussianMixture

__all__ = ["Rate", "wilson_interval", "hallucination_rate", "mode_counts", "gap_mass", "mean_ci", "MeanCI"]


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
