"""Comparing hallucination rates over seeds: intervals, paired differences, variance components, power.

A study runs each model with S seeds and draws n samples per seed; a validator marks each sample, so a
model has per-seed counts ``k_s`` of hallucinated samples out of ``n_s``. This module turns those counts
into the statements the notebooks make.

**One model.** :func:`seed_rates`: the pooled rate sum k / sum n with its Wilson interval
(:func:`vsmlab.analysis.metrics.wilson_interval`; treats all samples as independent, so it is too narrow
when seeds differ), and the mean of the per-seed rates p_s = k_s / n_s with a Student-t interval over seeds
(:func:`vsmlab.analysis.metrics.mean_ci`: the honest interval when seeds differ).

**Variance components** (:func:`variance_components`, method of moments). Model the per-seed rate as
p_s = p + u_s + e_s with u_s the seed effect (training and sampling seed), Var u = sigma_b^2 (between
seeds), and e_s the binomial noise of n_s samples, Var e_s = p_s (1 - p_s) / n_s (within seed). Then::

    total   = sample variance of p_s over seeds            (divisor S - 1)
    within  = mean_s p_s (1 - p_s) / (n_s - 1)             (unbiased for E[p(1-p)/n])
    between = max(0, total - within)

**Paired by seed** (:func:`paired_difference`): d_s = p_{A,s} - p_{B,s}; mean with t-interval, the
Wilcoxon signed-rank p-value (zero differences dropped, as scipy's default; p = 1 when all are zero) and a
bootstrap percentile interval of the mean (resampling seeds), plus the minimum detectable effect of a
paired t-test with the observed sd of the differences (:func:`mde_paired_t`).

**Power** (how small an effect a design detects) lives in :mod:`vsmlab.analysis.power`: the
paired design's minimum detectable effect from a model of the arms or from the observed paired sd, and
the unpaired one-run-per-method design.

:func:`design_comparison` gives, from the per-seed counts of two arms, the paired MDE from their observed
paired sd (df S - 1), the independent-arms model of the same design and the unpaired one-run-per-method
design, so each comparison quotes one MDE for the design that was run and the paper-like design beside it.

**Holm correction** (:func:`holm`): within a family of m exploratory tests with p-values p_(1) <= ... <=
p_(m), the adjusted p_(i)^Holm = max_{j <= i} min(1, (m - j + 1) p_(j)); reject where it is <= alpha
(controls the family-wise error rate at alpha under any dependence).

Pure Python/numpy/scipy on host numbers (counts and rates are read back once by the caller).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from vsmlab.analysis.metrics import MeanCI, Rate, mean_ci, wilson_interval
from vsmlab.analysis.power import (  # the power of the designs these comparisons run (stats.paired_mde etc.)
    DesignMDE, PairedMDE, _prob_arg, mde_paired_t, minimum_detectable_effect, paired_mde, unpaired_mde,
)
from vsmlab.core.checks import check_int, check_range

__all__ = [
    "VarianceComponents",
    "SeedRates",
    "PairedDifference",
    "variance_components",
    "seed_rates",
    "category_rates",
    "paired_difference",
    "DesignComparison",
    "design_comparison",
    "mde_text",
    "HolmResult",
    "holm",
]


# ------------------------------------------------------------------------------- checks
def _counts(counts: Sequence[int] | np.ndarray, n: Sequence[int] | np.ndarray | int, name: str = "counts") -> tuple[np.ndarray, np.ndarray]:
    k = np.asarray(counts)
    if k.ndim != 1 or k.size < 1:
        raise ValueError(f"{name}: expected a 1-D sequence of per-seed counts (at least one), got shape {k.shape}")
    if not np.issubdtype(k.dtype, np.integer):
        if not np.all(np.isfinite(k)) or not np.all(k == np.round(k)):
            raise ValueError(f"{name}: expected integer counts, got {counts!r}")
        k = k.astype(np.int64)
    nn = np.broadcast_to(np.asarray(n), k.shape).astype(np.float64)
    if not np.all(nn == np.round(nn)) or np.any(nn < 1):
        raise ValueError(f"n: expected per-seed sample counts >= 1 (an int or one per seed), got {n!r}")
    nn = nn.astype(np.int64)
    if np.any(k < 0) or np.any(k > nn):
        raise ValueError(f"{name}: every count must lie in 0..n (samples per seed), got {k.tolist()} with n = {nn.tolist()}")
    return k.astype(np.int64), nn


# --------------------------------------------------------------------- one model over seeds
@dataclass(frozen=True)
class VarianceComponents:
    """Per-seed rate variance split into between-seed and within-seed (binomial) parts (module docstring).

    rate: mean of the per-seed rates; total: their sample variance (nan for one seed); within: mean
    p_s (1 - p_s) / (n_s - 1); between: max(0, total - within) (nan for one seed); n_seeds; n_per_seed:
    mean samples per seed; between_share: between / (between + within) (nan when undefined).
    """

    rate: float
    total: float
    within: float
    between: float
    n_seeds: int
    n_per_seed: float

    @property
    def between_share(self) -> float:
        den = self.between + self.within
        return self.between / den if den > 0 and math.isfinite(den) else float("nan")


def variance_components(counts: Sequence[int] | np.ndarray, n: Sequence[int] | np.ndarray | int) -> VarianceComponents:
    """Between-seed and within-seed variance of per-seed rates ``counts / n`` (method of moments).

    counts: [S] hallucinated samples per seed; n: samples per seed (an int or [S]). See the module docstring.
    """
    k, nn = _counts(counts, n)
    p = k / nn
    S = p.size
    within = float(np.mean(p * (1 - p) / np.maximum(nn - 1, 1)))
    total = float(np.var(p, ddof=1)) if S > 1 else float("nan")
    between = max(0.0, total - within) if S > 1 else float("nan")
    return VarianceComponents(float(p.mean()), total, within, between, S, float(nn.mean()))


@dataclass(frozen=True)
class SeedRates:
    """One model over seeds. per_seed: rates [S]; pooled: sum k / sum n with its Wilson interval; mean:
    mean of the per-seed rates with a t-interval over seeds; components: :class:`VarianceComponents`."""

    counts: tuple[int, ...]
    n: tuple[int, ...]
    per_seed: tuple[float, ...]
    pooled: Rate
    mean: MeanCI
    components: VarianceComponents


def seed_rates(counts: Sequence[int] | np.ndarray, n: Sequence[int] | np.ndarray | int, confidence: float = 0.95) -> SeedRates:
    """Pooled Wilson rate, mean over seeds with a ``confidence`` t-interval, and variance components."""
    k, nn = _counts(counts, n)
    z = float(_z(confidence))
    p = k / nn
    return SeedRates(tuple(int(x) for x in k), tuple(int(x) for x in nn), tuple(float(x) for x in p),
                     wilson_interval(int(k.sum()), int(nn.sum()), z=z), mean_ci(p.tolist(), confidence),
                     variance_components(k, nn))


def category_rates(counts: dict[str, int], n: int, confidence: float = 0.95) -> dict[str, Rate]:
    """Per-category rates with Wilson intervals, e.g. from ``Summary.counts`` (each image once) or
    ``Summary.shows`` of :mod:`vsmlab.data.shapes_validate`: {category: Rate(count / n)}."""
    check_int("n", n, low=1)
    z = _z(confidence)
    out = {}
    for name, count in counts.items():
        count = check_int("counts", count, 0, n, hint=f"the count of {name!r}")
        out[name] = wilson_interval(count, n, z=z)
    return out


def _z(confidence: float) -> float:
    from scipy.stats import norm

    return float(norm.ppf(0.5 + _prob_arg("confidence", confidence) / 2))


# ------------------------------------------------------------------------------ paired
@dataclass(frozen=True)
class PairedDifference:
    """A - B per seed. differences [S]; mean: t-interval of their mean; sd: their sd (ddof 1);
    wilcoxon_p: two-sided Wilcoxon signed-rank p-value (zeros dropped; 1.0 when all are zero);
    bootstrap: (low, high) percentile interval of the mean over ``n_bootstrap`` resamples of the seeds;
    nonzero / lower / higher: seeds with d != 0, d < 0, d > 0; mde: the paired t-test's minimum detectable
    |mean difference| at ``power`` with this sd and S (nan when sd = 0 or S < 2)."""

    differences: tuple[float, ...]
    mean: MeanCI
    sd: float
    wilcoxon_p: float
    bootstrap: tuple[float, float]
    nonzero: int
    lower: int
    higher: int
    mde: float

    @property
    def interval(self) -> tuple[float, float]:
        """The t-interval (low, high) of the mean difference."""
        return (self.mean.mean - self.mean.half, self.mean.mean + self.mean.half)


def paired_difference(
    a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray, *, confidence: float = 0.95,
    n_bootstrap: int = 10_000, seed: int = 0, power: float = 0.8, alpha: float = 0.05,
) -> PairedDifference:
    """Paired-by-seed comparison of per-seed values ``a`` [S] and ``b`` [S] (e.g. rates; same seed order).

    Bootstrap draws come from ``numpy.random.default_rng(seed)``. See :class:`PairedDifference`.
    """
    from scipy import stats

    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if x.ndim != 1 or x.size < 1 or not np.all(np.isfinite(x)):
        raise ValueError(f"a: expected a 1-D sequence of finite per-seed values, got {a!r}")
    if y.shape != x.shape or not np.all(np.isfinite(y)):
        raise ValueError(f"b: expected {x.size} finite per-seed values (paired with a), got {b!r}")
    check_int("n_bootstrap", n_bootstrap, low=1)
    check_int("seed", seed, low=0)
    d = x - y
    S = d.size
    nz = d[d != 0]
    p_w = float(stats.wilcoxon(nz).pvalue) if nz.size else 1.0
    rng = np.random.default_rng(seed)
    boot = d[rng.integers(0, S, size=(n_bootstrap, S))].mean(axis=1)
    lo, hi = np.percentile(boot, [50 * (1 - confidence), 50 * (1 + confidence)])
    sd = float(d.std(ddof=1)) if S > 1 else float("nan")
    mde = mde_paired_t(sd, S, power, alpha) if S > 1 and sd > 0 else float("nan")
    return PairedDifference(tuple(float(v) for v in d), mean_ci(d.tolist(), confidence), sd, p_w,
                            (float(lo), float(hi)), int(nz.size), int((d < 0).sum()), int((d > 0).sum()), mde)


def mde_text(absolute: float, baseline_rate: float) -> str:
    """'MDE 6.38 pp = 45.4% of 14.1%', or, when even a drop to a rate of 0 is not detected at the target power
    (an infinite MDE), 'no MDE: not even a drop to 0% would be detected'."""
    if not math.isfinite(absolute):
        return "no MDE: not even a drop to 0% would be detected"
    return f"MDE {100 * absolute:.3g} pp = {100 * absolute / baseline_rate:.3g}% of {100 * baseline_rate:.3g}%"


@dataclass(frozen=True)
class DesignComparison:
    """The MDE of one comparison (arm a - arm b, per training seed) under the design that was run and under
    the paper-like one (module docstring, :func:`design_comparison`).

    paired: :class:`PairedMDE` from the observed sd of the per-seed rate differences (df = S - 1): the lab's
    paired design, the number to quote. independent: the same S x n design modelled with independent arms
    (correlation 0, sampling_correlation 0) and the observed between-seed variance: what a power model that
    ignores pairing reports. unpaired: one training run per method sampled with K x m samples (the VSM
    paper's protocol), between-training-seed variance in full (:func:`unpaired_mde`). baseline_rate: arm b's
    mean per-seed rate (kept inside [1/(2 S n), 1 - 1/(2 S n)]); between_var: mean of both arms'
    :attr:`VarianceComponents.between`; correlation: Pearson correlation of the arms' per-seed rates (nan
    when undefined); n_seeds, n_per_seed: the design that was run.
    """

    paired: PairedMDE
    independent: DesignMDE
    unpaired: DesignMDE
    baseline_rate: float
    between_var: float
    correlation: float
    n_seeds: int
    n_per_seed: int

    @property
    def paired_relative(self) -> float:
        """paired.exact / baseline_rate."""
        return self.paired.exact / self.baseline_rate

    def seeds_needed(self, reduction: float = 0.25, max_seeds: int = 200) -> int | None:
        """Training seeds S the paired design needs to detect a cut of ``reduction`` x baseline_rate at 80% power,
        taking the observed paired sd as true: the smallest S in 2..max_seeds with paired_mde(sd, S).exact <= the
        cut; None when no S up to max_seeds does, or when the sd is 0 (no power statement)."""
        if self.paired.sd <= 0:
            return None
        cut = reduction * self.baseline_rate
        return next((s for s in range(2, max_seeds + 1) if paired_mde(self.paired.sd, s).exact <= cut), None)

    def seeds_text(self, reduction: float = 0.25, max_seeds: int = 200) -> str:
        """One line: how many training seeds :meth:`seeds_needed` asks for, with the sd it takes as true."""
        need = self.seeds_needed(reduction, max_seeds)
        answer = "not computable (sd 0)" if self.paired.sd <= 0 else (need or f"more than {max_seeds}")
        return (f"seeds needed for the paired design to detect a {100 * reduction:.0f}% reduction "
                f"({100 * reduction * self.baseline_rate:.1f} pp) at 80% power, taking the observed paired sd "
                f"({100 * self.paired.sd:.2f} pp, df {self.paired.df}) as true: {answer} (a rough guide: an sd from "
                f"{self.n_seeds} seeds is itself very uncertain)")

    def __str__(self) -> str:
        paired = (mde_text(self.paired.exact, self.baseline_rate) if self.paired.sd > 0 else
                  "every seed gave the same difference (sd 0): no power statement from them")
        corr = "" if math.isnan(self.correlation) else f" (arms' per-seed correlation {self.correlation:.2f})"
        return "\n".join([
            f"paired ({self.n_seeds} training seeds x {self.n_per_seed} samples, observed paired sd, df "
            f"{self.paired.df}): {paired}{corr}",
            f"same design modelled as independent arms: {mde_text(self.independent.absolute, self.baseline_rate)} "
            "(overstates the paired noise)",
            f"unpaired, one run per method x {self.unpaired.n_sampling_seeds} x {self.unpaired.n_per_seed} samples: "
            f"{mde_text(self.unpaired.absolute, self.baseline_rate)} (between-seed var {self.between_var:.3g} in full)",
        ])


def design_comparison(
    counts_a: Sequence[int] | np.ndarray, counts_b: Sequence[int] | np.ndarray, n: Sequence[int] | np.ndarray | int,
    *, unpaired_runs: int = 1, unpaired_sampling_seeds: int = 6, unpaired_samples: int = 100, power: float = 0.8,
    alpha: float = 0.05,
) -> DesignComparison:
    """MDEs of the comparison a - b from per-training-seed counts ``counts_a``, ``counts_b`` [S] (same seed
    order, S >= 2) out of ``n`` samples per seed and arm: the paired design from the observed paired sd,
    the same design modelled with independent arms, and the unpaired design of ``unpaired_runs`` run(s)
    per method x ``unpaired_sampling_seeds`` x ``unpaired_samples`` (default: the VSM paper's protocol,
    6 x 100 from one model per method). See :class:`DesignComparison`."""
    ka, na = _counts(counts_a, n, "counts_a")
    kb, nb = _counts(counts_b, n, "counts_b")
    if ka.shape != kb.shape:
        raise ValueError(f"counts_b: expected {ka.size} per-seed counts (paired with counts_a), got {kb.size}")
    S = check_int("counts_a", int(ka.size), low=2, hint="seeds: a paired comparison needs two")
    pa, pb = ka / na, kb / nb
    n_mean = int(round(float(nb.mean())))
    floor = 0.5 / (S * n_mean)
    p0 = min(max(float(pb.mean()), floor), 1 - floor)
    between = [variance_components(k, nn).between for k, nn in ((ka, na), (kb, nb))]
    between_var = float(np.mean([b if math.isfinite(b) else 0.0 for b in between]))
    d = pa - pb
    corr = float(np.corrcoef(pa, pb)[0, 1]) if S > 2 and pa.std() > 0 and pb.std() > 0 else float("nan")
    return DesignComparison(
        paired=paired_mde(float(d.std(ddof=1)), S, power, alpha),
        independent=minimum_detectable_effect(p0, between_var, S, n_mean, power=power, alpha=alpha),
        unpaired=unpaired_mde(p0, between_var, n_runs=unpaired_runs, n_sampling_seeds=unpaired_sampling_seeds,
                              n_per_sampling_seed=unpaired_samples, power=power, alpha=alpha),
        baseline_rate=p0, between_var=between_var, correlation=corr, n_seeds=S, n_per_seed=n_mean,
    )


# ------------------------------------------------------------------------------- Holm
@dataclass(frozen=True)
class HolmResult:
    """Holm's step-down correction of one family (module docstring), in the input order.

    names: the tests' names (the mapping's keys, or "0", "1", ... for a sequence); p_values: as given;
    adjusted: Holm-adjusted p-values (monotone in p, capped at 1); reject: adjusted <= alpha; alpha: the
    family-wise level.
    """

    names: tuple[str, ...]
    p_values: tuple[float, ...]
    adjusted: tuple[float, ...]
    reject: tuple[bool, ...]
    alpha: float

    def as_dict(self) -> dict[str, tuple[float, bool]]:
        """{name: (adjusted p, reject)}."""
        return {k: (a, r) for k, a, r in zip(self.names, self.adjusted, self.reject)}


def holm(p_values: Sequence[float] | Mapping[str, float] | np.ndarray, alpha: float = 0.05) -> HolmResult:
    """Holm-corrected p-values of one family of tests (a sequence, or a mapping name -> p-value).

    adjusted p_(i) = max_{j <= i} min(1, (m - j + 1) p_(j)) over the ascending order (ties keep the input
    order); reject where adjusted <= ``alpha``. ValueError names ``p_values`` unless every value is in [0, 1].
    """
    if isinstance(p_values, Mapping):
        names = tuple(str(k) for k in p_values)
        values = list(p_values.values())
    else:
        values = list(np.asarray(p_values, dtype=object).reshape(-1)) if isinstance(p_values, np.ndarray) else list(p_values)
        names = tuple(str(i) for i in range(len(values)))
    if not values:
        raise ValueError(f"p_values: expected a non-empty family of p-values in [0, 1], got {p_values!r}")
    values = [check_range("p_values", v, 0, 1, hint="each value of the family", noun="a p-value") for v in values]
    alpha = _prob_arg("alpha", alpha)
    p = np.asarray(values, dtype=np.float64)
    m = p.size
    order = np.argsort(p, kind="stable")
    stepped = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[order]))
    adjusted = np.empty(m)
    adjusted[order] = stepped
    return HolmResult(names, tuple(float(v) for v in p), tuple(float(v) for v in adjusted),
                      tuple(bool(v <= alpha) for v in adjusted), alpha)
