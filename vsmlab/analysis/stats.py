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

**Minimum detectable effect of a design** (:func:`minimum_detectable_effect`). For a paired design with S
seeds and n samples per seed per model, baseline rate p (model B) and a reduction delta (model A at
p - delta), the per-seed difference has variance::

    sd_d(delta)^2 = 2 (1 - rho) sigma_b^2 + p (1 - p) / n + (p - delta)(1 - p + delta) / n

(rho: correlation of the seed effects of the two models, 0 = independent, the conservative default). The
paired t-test at two-sided level alpha has power::

    power(delta) = P(|T'| > t_{1-alpha/2, S-1}),   T' ~ noncentral t(df = S - 1, nc = delta sqrt(S) / sd_d(delta))

and the MDE is the delta with power(delta) = 0.8, solved exactly (brentq). Its well-known closed-form
approximation (normal approximation with a t correction for small S) is::

    delta ~= (t_{1-alpha/2, S-1} + t_{power, S-1}) sd_d / sqrt(S)

(:func:`mde_approx`; within a few percent of the exact value for S >= 4). The relative MDE is delta / p.
:func:`seeds_needed` and :func:`samples_needed` invert it: the smallest S (or n) whose MDE is at most a
given relative reduction (default 25%, the VSM paper's headline). Note that more samples per seed cannot
beat the seed effect: as n -> infinity, sd_d -> sqrt(2 (1 - rho)) sigma_b.

Pure Python/numpy/scipy on host numbers (counts and rates are read back once by the caller).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from vsmlab.analysis.metrics import MeanCI, Rate, mean_ci, wilson_interval
from vsmlab.core.checks import check_int

__all__ = [
    "VarianceComponents",
    "SeedRates",
    "PairedDifference",
    "DesignMDE",
    "variance_components",
    "seed_rates",
    "category_rates",
    "paired_difference",
    "power_paired_t",
    "mde_paired_t",
    "mde_approx",
    "difference_sd",
    "minimum_detectable_effect",
    "seeds_needed",
    "samples_needed",
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


def _rate_arg(name: str, value: float, low_open: bool = True) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)) or not math.isfinite(value) \
            or not (0 < value < 1 if low_open else 0 <= value <= 1):
        raise ValueError(f"{name}: expected a rate in (0, 1), got {value!r}")
    return float(value)


def _prob_arg(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1:
        raise ValueError(f"{name}: expected a probability in (0, 1), got {value!r}")
    return float(value)


def _nonneg(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{name}: expected a finite number >= 0, got {value!r}")
    return float(value)


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
        if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or not 0 <= count <= n:
            raise ValueError(f"counts: {name!r} has count {count!r}, expected an int in 0..{n}")
        out[name] = wilson_interval(int(count), n, z=z)
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


# ------------------------------------------------------------------------------- power
def power_paired_t(delta: float, sd: float, n_pairs: int, alpha: float = 0.05) -> float:
    """Power of the two-sided paired t-test at level ``alpha`` with ``n_pairs`` pairs whose differences have
    true mean ``delta`` and sd ``sd``: P(|T'| > t_crit), T' noncentral t(n_pairs - 1, delta sqrt(n) / sd)."""
    from scipy import stats

    check_int("n_pairs", n_pairs, low=2, hint="a t-test needs two pairs")
    sd = _nonneg("sd", sd)
    alpha = _prob_arg("alpha", alpha)
    if sd == 0:
        return 1.0 if delta != 0 else alpha
    df = n_pairs - 1
    crit = stats.t.ppf(1 - alpha / 2, df)
    nc = float(delta) * math.sqrt(n_pairs) / sd
    upper, lower = float(stats.nct.sf(crit, df, nc)), float(stats.nct.cdf(-crit, df, nc))
    # scipy's noncentral t returns nan for a tail below ~1e-15 (seen from nc ~ 7.5 on): such a term is ~0
    if not math.isfinite(lower) and nc > 0:
        lower = 0.0
    if not math.isfinite(upper) and nc < 0:
        upper = 0.0
    power = upper + lower
    if not math.isfinite(power):
        raise ValueError(f"delta: the noncentral t power is not finite at delta={delta!r}, sd={sd!r}, n_pairs={n_pairs}")
    return power


def mde_paired_t(sd: float, n_pairs: int, power: float = 0.8, alpha: float = 0.05) -> float:
    """Smallest true mean difference a two-sided paired t-test (``n_pairs`` pairs, differences with sd
    ``sd``) detects with ``power`` at level ``alpha`` (noncentral t, solved exactly; same units as sd)."""
    from scipy import optimize

    check_int("n_pairs", n_pairs, low=2, hint="a t-test needs two pairs")
    sd = _nonneg("sd", sd)
    power = _prob_arg("power", power)
    alpha = _prob_arg("alpha", alpha)
    if sd == 0:
        return 0.0
    if power <= alpha:
        raise ValueError(f"power: expected a target above alpha = {alpha} (the power at no effect), got {power}")
    def gap(delta: float) -> float:
        return power_paired_t(delta, sd, n_pairs, alpha) - power

    high = sd
    while gap(high) < 0:
        high *= 2
    return float(optimize.brentq(gap, 1e-12 * sd, high, xtol=1e-14 * sd, rtol=1e-12))


def mde_approx(sd: float, n_pairs: int, power: float = 0.8, alpha: float = 0.05) -> float:
    """Closed-form approximation (t_{1-alpha/2, S-1} + t_{power, S-1}) sd / sqrt(S) of :func:`mde_paired_t`."""
    from scipy import stats

    check_int("n_pairs", n_pairs, low=2, hint="a t-test needs two pairs")
    sd = _nonneg("sd", sd)
    df = n_pairs - 1
    return float((stats.t.ppf(1 - _prob_arg("alpha", alpha) / 2, df) + stats.t.ppf(_prob_arg("power", power), df))
                 * sd / math.sqrt(n_pairs))


def difference_sd(baseline_rate: float, between_var: float, n_per_seed: int, delta: float = 0.0,
                  correlation: float = 0.0) -> float:
    """sd of one seed's difference A - B: sqrt(2 (1 - rho) sigma_b^2 + p(1-p)/n + (p-delta)(1-p+delta)/n)
    with p the baseline (B) rate and A at p - delta (module docstring)."""
    p = _rate_arg("baseline_rate", baseline_rate)
    vb = _nonneg("between_var", between_var)
    n = check_int("n_per_seed", n_per_seed, low=1)
    if isinstance(correlation, bool) or not isinstance(correlation, (int, float)) or not -1 <= correlation <= 1:
        raise ValueError(f"correlation: expected a number in [-1, 1], got {correlation!r}")
    q = p - float(delta)
    if not 0 <= q <= 1:
        raise ValueError(f"delta: {delta!r} puts the other model's rate at {q:.4g}, outside [0, 1]")
    return math.sqrt(max(0.0, 2 * (1 - correlation) * vb + p * (1 - p) / n + q * (1 - q) / n))


@dataclass(frozen=True)
class DesignMDE:
    """Minimum detectable reduction of a paired design: absolute (rate units) and relative (to the
    baseline rate); inf when even delta = baseline (a rate of 0) is not detected with the target power."""

    absolute: float
    relative: float
    baseline_rate: float
    sd_difference: float
    n_seeds: int
    n_per_seed: int
    power: float
    alpha: float

    def __str__(self) -> str:
        return (f"MDE {100 * self.absolute:.3g} pp ({100 * self.relative:.3g}% of {100 * self.baseline_rate:.3g}%) "
                f"with {self.n_seeds} seeds x {self.n_per_seed} samples (power {self.power:g}, alpha {self.alpha:g})")


def minimum_detectable_effect(
    baseline_rate: float, between_var: float, n_seeds: int, n_per_seed: int, *, power: float = 0.8,
    alpha: float = 0.05, correlation: float = 0.0,
) -> DesignMDE:
    """The smallest reduction delta (A at baseline_rate - delta) a paired t-test over ``n_seeds`` seeds
    with ``n_per_seed`` samples per seed and model detects with ``power`` (two-sided ``alpha``), given the
    between-seed variance ``between_var`` (e.g. :attr:`VarianceComponents.between`). Exact noncentral t,
    with the binomial variance of both arms at their own rates (module docstring)."""
    from scipy import optimize

    p = _rate_arg("baseline_rate", baseline_rate)
    S = check_int("n_seeds", n_seeds, low=2, hint="a paired t-test needs two seeds")
    n = check_int("n_per_seed", n_per_seed, low=1)
    power = _prob_arg("power", power)
    alpha = _prob_arg("alpha", alpha)

    def gap(delta: float) -> float:
        return power_paired_t(delta, difference_sd(p, between_var, n, delta, correlation), S, alpha) - power

    if gap(p) < 0:
        absolute = math.inf
    else:
        absolute = float(optimize.brentq(gap, 1e-12, p, xtol=1e-12, rtol=1e-10))
    sd = difference_sd(p, between_var, n, min(absolute, p), correlation)
    return DesignMDE(absolute, absolute / p, p, sd, S, n, power, alpha)


def seeds_needed(
    baseline_rate: float, between_var: float, n_per_seed: int, relative_effect: float = 0.25, *,
    power: float = 0.8, alpha: float = 0.05, correlation: float = 0.0, max_seeds: int = 100_000,
) -> int | None:
    """Smallest number of seeds S >= 2 whose MDE (``n_per_seed`` samples per seed) is at most
    ``relative_effect`` x baseline_rate; None when not reached by ``max_seeds``."""
    rel = _prob_arg("relative_effect", relative_effect)
    check_int("max_seeds", max_seeds, low=2)

    def ok(S: int) -> bool:
        return minimum_detectable_effect(baseline_rate, between_var, S, n_per_seed, power=power, alpha=alpha,
                                         correlation=correlation).relative <= rel

    return _smallest(ok, 2, max_seeds)


def samples_needed(
    baseline_rate: float, between_var: float, n_seeds: int, relative_effect: float = 0.25, *,
    power: float = 0.8, alpha: float = 0.05, correlation: float = 0.0, max_samples: int = 10_000_000,
) -> int | None:
    """Smallest samples per seed n >= 1 whose MDE with ``n_seeds`` seeds is at most ``relative_effect`` x
    baseline_rate; None when not reached by ``max_samples`` (e.g. the seed effect alone is too large)."""
    rel = _prob_arg("relative_effect", relative_effect)
    check_int("max_samples", max_samples, low=1)

    def ok(n: int) -> bool:
        return minimum_detectable_effect(baseline_rate, between_var, n_seeds, n, power=power, alpha=alpha,
                                         correlation=correlation).relative <= rel

    return _smallest(ok, 1, max_samples)


def _smallest(ok, low: int, high: int) -> int | None:
    """Smallest integer in low..high where the monotone predicate ``ok`` holds (exponential + bisection)."""
    if ok(low):
        return low
    hi = low
    while not ok(hi):
        if hi >= high:
            return None
        hi = min(high, 2 * hi)
    lo = hi // 2 if hi // 2 >= low else low  # ok(lo) is False
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if ok(mid) else (mid, hi)
    return hi
