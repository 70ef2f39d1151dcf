"""Plain statistics of counts and repeats, below every layer that reports a rate.

:class:`Rate` is a proportion ``count / n`` with a 95% Wilson score interval (good near 0, unlike the
normal approximation)::

    centre = (p + z^2/2n) / (1 + z^2/n),  half = z sqrt(p(1-p)/n + z^2/4n^2) / (1 + z^2/n),  p = count / n

and [low, high] = [max(0, centre - half), min(1, centre + half)], widened to contain p.

:class:`MeanCI` is the mean of independent repeats (seeds) with a Student-t interval::

    half = t_{(1 + confidence) / 2, n - 1} * s / sqrt(n)      (s: the sample standard deviation)

No data set, model or sampler here: :mod:`vsmlab.analysis.metrics` builds the hallucination metrics on these,
and the data layer's validators and the command line report with them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from vsmlab.core.checks import check_int

__all__ = ["Rate", "wilson_interval", "MeanCI", "mean_ci"]


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
