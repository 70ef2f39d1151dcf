"""The answer to "does VSM cut hallucinations by ~25%?": one row per benchmark, and its verdict rule.

A row (:class:`AnswerRow`) holds, for one benchmark:

- the baseline rate p0 of VSM's own baseline (learned variance, rho = 0), mean over training seeds;
- the effect d = rate(VSM) - rate(rho0) with its 95% interval [lo, hi]: paired over training seeds (a
  Student-t interval of the per-seed differences) or, with one training seed, the samples' interval;
- the verdict on the paper's headline, a 25% reduction (:func:`reduction_verdict`), read off the interval
  against -0.25 p0 and +0.25 p0::

      "yes"            lo > -0.25 p0                  a 25% cut lies below the whole interval: excluded
      "uninformative"  lo <= -0.25 p0 and hi >= +0.25 p0   the interval holds a 25% cut and a 25% rise
      "no"             otherwise                      a 25% cut is inside the interval, a 25% rise is not

- the **ceiling**: the rho0 models sampled with Sigma forced to its lower end beta_tilde_t (frac 0) and its
  upper end beta_t (frac 1), with the same noise as their own-Sigma sets (:func:`ceiling`). A penalty that
  acts on the learned variance alone can at most move Sigma across [beta_tilde_t, beta_t], so the larger
  reduction of the two paired differences bounds what any such penalty could do through Sigma at sampling
  time (the trunk's shared features are the other channel, measured by the effect itself);
- how far VSM moved Sigma (:func:`sigma_shift`): the largest relative change of the learned Sigma between
  the VSM and rho0 models on the same noised inputs, over the t that were probed.

:func:`answer_table` formats the rows as the Markdown table that closes notebooks 05-07 and opens the README.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from vsmlab.analysis.metrics import mean_ci
from vsmlab.core.checks import check_range

__all__ = ["Interval", "AnswerRow", "reduction_verdict", "paired_interval", "ceiling", "sigma_shift",
           "answer_table", "VERDICTS"]

VERDICTS: tuple[str, ...] = ("yes", "no", "uninformative")


@dataclass(frozen=True)
class Interval:
    """An estimate with its 95% interval (rate units, e.g. 0.012 = 1.2 percentage points)."""

    estimate: float
    low: float
    high: float

    def pp(self, digits: int = 1) -> str:
        """'+1.2 pp [-0.4, +2.8]'."""
        return (f"{100 * self.estimate:+.{digits}f} pp [{100 * self.low:+.{digits}f}, "
                f"{100 * self.high:+.{digits}f}]")

    def relative(self, baseline: float, digits: int = 0) -> str:
        """The interval as a share of ``baseline``: '+9% [-3, +21]'."""
        b = float(baseline)
        if not b > 0:
            return "n/a (baseline 0)"
        return (f"{100 * self.estimate / b:+.{digits}f}% [{100 * self.low / b:+.{digits}f}, "
                f"{100 * self.high / b:+.{digits}f}]")


def reduction_verdict(low: float, high: float, baseline: float, relative: float = 0.25) -> str:
    """Is a ``relative`` reduction of ``baseline`` excluded by the interval [low, high] of VSM - rho0?
    "yes", "no" or "uninformative" by the rule of the module docstring."""
    check_range("relative", relative, 0, 1, hint="the reduction tested, as a share of the baseline rate",
                low_open=True)
    if not (math.isfinite(low) and math.isfinite(high)) or low > high:
        raise ValueError(f"low, high: expected a finite interval with low <= high, got [{low}, {high}]")
    cut = relative * float(baseline)
    if low > -cut:
        return "yes"
    if high >= cut:
        return "uninformative"
    return "no"


def paired_interval(a: Sequence[float], b: Sequence[float], confidence: float = 0.95) -> Interval:
    """Mean of a_s - b_s over seeds with its Student-t interval (:func:`vsmlab.analysis.metrics.mean_ci`; needs
    >= 2 seeds, same seed order)."""
    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if x.ndim != 1 or x.shape != y.shape or x.size < 2:
        raise ValueError(f"a, b: expected two equal-length 1-D sequences of >= 2 per-seed values, got "
                         f"{x.shape} and {y.shape}")
    m = mean_ci((x - y).tolist(), confidence)
    return Interval(m.mean, m.mean - m.half, m.mean + m.half)


def ceiling(own: Sequence[float], frac0: Sequence[float], frac1: Sequence[float]) -> tuple[float, Interval, Interval]:
    """The ceiling of a variance-only penalty from per-seed rates of the rho0 models sampled with their own
    Sigma (``own``), with Sigma = beta_tilde_t (``frac0``) and Sigma = beta_t (``frac1``), same noise.

    Returns (f, best, other): f in {0, 1} the end whose paired difference (forced - own) has the lower mean,
    that difference's interval (:func:`paired_interval`), and the other end's. ``best.low`` is the largest
    reduction a penalty that only moves Sigma could reach at this confidence."""
    d0, d1 = paired_interval(frac0, own), paired_interval(frac1, own)
    return (0, d0, d1) if d0.estimate <= d1.estimate else (1, d1, d0)


def sigma_shift(log_var_a: torch.Tensor, log_var_b: torch.Tensor) -> float:
    """Largest relative change of Sigma between two models over the probed t: log_var_a, log_var_b [K, ...]
    (log Sigma per t on the same inputs) -> max_t |exp(mean over the rest of (log_var_a - log_var_b)) - 1|."""
    a, b = torch.as_tensor(log_var_a, dtype=torch.float64), torch.as_tensor(log_var_b, dtype=torch.float64)
    if a.shape != b.shape or a.dim() < 1 or a.shape[0] < 1:
        raise ValueError(f"log_var_b: expected the shape of log_var_a {tuple(a.shape)} ([K, ...]), got {tuple(b.shape)}")
    per_t = (a - b).reshape(a.shape[0], -1).mean(dim=1)
    return float((per_t.exp() - 1).abs().max())


@dataclass(frozen=True)
class AnswerRow:
    """One benchmark's answer (module docstring). rates in rate units (0.132 = 13.2%); ``design``: how the
    effect's interval was formed (e.g. "paired, 10 training seeds x 6,000"); ``ceiling`` / ``ceiling_frac``:
    :func:`ceiling`'s best end (None when not measured); ``sigma_moved``: :func:`sigma_shift` (None when
    not measured); ``source``: the notebook and section that print the row."""

    benchmark: str
    source: str
    rho0_rate: float
    effect: Interval
    design: str
    ceiling: Interval | None = None
    ceiling_frac: int | None = None
    sigma_moved: float | None = None

    @property
    def verdict(self) -> str:
        """:func:`reduction_verdict` of the effect against 25% of the rho0 rate."""
        return reduction_verdict(self.effect.low, self.effect.high, self.rho0_rate)

    def cells(self) -> list[str]:
        """The table cells: benchmark, rho0 rate, VSM - rho0 (pp and relative), design, 25% excluded?,
        ceiling, Sigma moved, source."""
        end = "beta_tilde" if self.ceiling_frac == 0 else "beta"
        ceil = "not measured" if self.ceiling is None else (
            f"{self.ceiling.pp(self.digits)} (Sigma = {end})" if self.ceiling.low < self.ceiling.high else
            f"{self.ceiling.pp(self.digits)} (Sigma = {end}: the same rate on every seed, no interval)")
        moved = "not measured" if self.sigma_moved is None else f"{100 * self.sigma_moved:.2g}%"
        return [self.benchmark, f"{100 * self.rho0_rate:.3g}%", self.effect.pp(self.digits),
                self.effect.relative(self.rho0_rate), self.design, self.verdict, ceil, moved, self.source]

    @property
    def digits(self) -> int:
        """Decimals of the pp columns: 2 below a 5% baseline rate (else 0.1 pp would hide the interval), else 1."""
        return 2 if self.rho0_rate < 0.05 else 1


HEADER = ["benchmark", "rho0 rate", "VSM - rho0 (95% CI)", "relative", "design", "25% cut excluded?",
          "ceiling: Sigma forced to an end - own Sigma (rho0 models)", "VSM moved Sigma by", "printed by"]


def answer_table(rows: Sequence[AnswerRow]) -> str:
    """The rows as a Markdown table (the header of :data:`HEADER`)."""
    if not rows:
        raise ValueError("rows: expected at least one AnswerRow")
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(r.cells()) + " |" for r in rows]
    return "\n".join(lines)
