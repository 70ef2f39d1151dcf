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
q = p - delta), the per-seed difference d = a - b has Var(d) = Var(a) + Var(b) - 2 Cov(a, b) with::

    Var(a) = sigma_b^2 + q (1 - q) / n,     Var(b) = sigma_b^2 + p (1 - p) / n
    Cov(a, b) = rho sigma_b^2 + rho_s sqrt(p (1 - p) q (1 - q)) / n
    sd_d(delta)^2 = 2 (1 - rho) sigma_b^2 + p (1 - p) / n + q (1 - q) / n - 2 rho_s sqrt(p(1-p) q(1-q)) / n

rho (``correlation``): correlation of the two models' seed effects (the arms of one training seed share
its initialisation and batches); rho_s (``sampling_correlation``): correlation of one sample's verdicts
under the two models when both are sampled with the same noise (the phi coefficient of the pair). Both 0
describe independent arms, the conservative default; the lab's arms share training seed and sampling
noise and are strongly correlated, so with rho = rho_s = 0 the model overstates the noise of its design.
Where the correlations are not known, work from the observed sd of the paired differences instead
(:func:`paired_mde`, df = S - 1 stated) and compare with an unpaired design (:func:`unpaired_mde`,
:func:`design_comparison`, below). The paired t-test at two-sided level alpha has power::

    power(delta) = P(|T'| > t_{1-alpha/2, S-1}),   T' ~ noncentral t(df = S - 1, nc = delta sqrt(S) / sd_d(delta))

and the MDE is the delta with power(delta) = 0.8, solved exactly (brentq). Its well-known closed-form
approximation (normal approximation with a t correction for small S) is::

    delta ~= (t_{1-alpha/2, S-1} + t_{power, S-1}) sd_d / sqrt(S)

(:func:`mde_approx`; within a few percent of the exact value for S >= 4). The relative MDE is delta / p.
:func:`seeds_needed` and :func:`samples_needed` invert it: the smallest S (or n) whose MDE is at most a
given relative reduction (default 25%, the VSM paper's headline). Note that more samples per seed cannot
beat the seed effect: as n -> infinity, sd_d -> sqrt(2 (1 - rho)) sigma_b.

**Unpaired, one run per method** (:func:`unpaired_mde`): the VSM paper's protocol trains one model per
method and samples it with K sampling seeds x m samples (K = 6, m = 100). A method's rate is then the
mean of R independent training runs (R = 1 there) and the difference D = rate_B - rate_A has::

    Var(D) = 2 sigma_b^2 / R + (p (1 - p) + q (1 - q) - 2 rho_s sqrt(p(1-p) q(1-q))) / (R K m)

so the between-training-seed variance counts in full and more samples cannot remove it. With R = 1 the
design holds no replicate to estimate sigma_b^2, so its MDE is the best case: a two-sided z-test that
knows sd_D (critical value from sd_D at delta = 0, power from sd_D at delta). With R >= 2 it is the
two-sample t-test over runs (df = 2R - 2, noncentral t). A t-test over the K sampling seeds of one model
(the protocol's mean +- sd) estimates only the binomial part and is not a valid test of the methods.

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
from vsmlab.core.checks import check_int, check_nonnegative, check_range

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
    "PairedMDE",
    "paired_mde",
    "unpaired_mde",
    "DesignComparison",
    "design_comparison",
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


def _rate_arg(name: str, value: float, low_open: bool = True) -> float:
    return check_range(name, value, 0, 1, low_open, low_open, noun="a rate")


def _prob_arg(name: str, value: float) -> float:
    return check_range(name, value, 0, 1, True, True, noun="a probability")


def _nonneg(name: str, value: float) -> float:
    return check_nonnegative(name, value)


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


# ------------------------------------------------------------------------------- power
def power_paired_t(delta: float, sd: float, n_pairs: int, alpha: float = 0.05) -> float:
    """Power of the two-sided paired t-test at level ``alpha`` with ``n_pairs`` pairs whose differences have
    true mean ``delta`` and sd ``sd``: P(|T'| > t_crit), T' noncentral t(n_pairs - 1, delta sqrt(n) / sd)."""
    check_int("n_pairs", n_pairs, low=2, hint="a t-test needs two pairs")
    sd = _nonneg("sd", sd)
    alpha = _prob_arg("alpha", alpha)
    if sd == 0:
        return 1.0 if delta != 0 else alpha
    nc = float(delta) * math.sqrt(n_pairs) / sd
    power = _t_power(nc, n_pairs - 1, alpha)
    if not math.isfinite(power):
        raise ValueError(f"delta: the noncentral t power is not finite at delta={delta!r}, sd={sd!r}, n_pairs={n_pairs}")
    return power


def _t_power(nc: float, df: int, alpha: float) -> float:
    """P(|T'| > t_{1-alpha/2, df}) for T' ~ noncentral t(df, nc) (nan when scipy fails on both tails)."""
    from scipy import stats

    crit = stats.t.ppf(1 - alpha / 2, df)
    upper, lower = float(stats.nct.sf(crit, df, nc)), float(stats.nct.cdf(-crit, df, nc))
    # scipy's noncentral t returns nan for a tail below ~1e-15 (seen from nc ~ 7.5 on): such a term is ~0
    if not math.isfinite(lower) and nc > 0:
        lower = 0.0
    if not math.isfinite(upper) and nc < 0:
        upper = 0.0
    return upper + lower


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


def _correlation(name: str, value: float) -> float:
    return check_range(name, value, -1, 1)


def _binomial_var_d(p: float, delta: float, samples: int, sampling_correlation: float) -> float:
    """(p(1-p) + q(1-q) - 2 rho_s sqrt(p(1-p) q(1-q))) / samples with q = p - delta: the sampling part of
    Var(a - b) for ``samples`` samples per arm whose verdicts correlate by rho_s."""
    q = p - float(delta)
    if not 0 <= q <= 1:
        raise ValueError(f"delta: {delta!r} puts the other model's rate at {q:.4g}, outside [0, 1]")
    vp, vq = p * (1 - p), q * (1 - q)
    return (vp + vq - 2 * sampling_correlation * math.sqrt(vp * vq)) / samples


def difference_sd(baseline_rate: float, between_var: float, n_per_seed: int, delta: float = 0.0,
                  correlation: float = 0.0, sampling_correlation: float = 0.0) -> float:
    """sd of one seed's difference A - B with p the baseline (B) rate and A at q = p - delta::

        sqrt(2 (1 - rho) sigma_b^2 + p(1-p)/n + q(1-q)/n - 2 rho_s sqrt(p(1-p) q(1-q))/n)

    rho = ``correlation`` of the seed effects, rho_s = ``sampling_correlation`` of paired samples' verdicts
    (module docstring; both 0: independent arms)."""
    p = _rate_arg("baseline_rate", baseline_rate)
    vb = _nonneg("between_var", between_var)
    n = check_int("n_per_seed", n_per_seed, low=1)
    correlation = _correlation("correlation", correlation)
    rho_s = _correlation("sampling_correlation", sampling_correlation)
    return math.sqrt(max(0.0, 2 * (1 - correlation) * vb + _binomial_var_d(p, delta, n, rho_s)))


@dataclass(frozen=True)
class DesignMDE:
    """Minimum detectable reduction of a design: absolute (rate units) and relative (to the baseline
    rate); inf when even delta = baseline (a rate of 0) is not detected with the target power.

    sd_difference: sd of the tested difference at the MDE (one seed's difference for "paired", the
    difference of the methods' rates for "unpaired"). design: "paired" (n_seeds paired training seeds x
    n_per_seed samples per arm) or "unpaired" (n_seeds training runs per method, each sampled with
    n_sampling_seeds x n_per_seed samples); df: the test's degrees of freedom (None: a z-test with known
    sd); correlation, sampling_correlation: rho and rho_s of the model (module docstring).
    """

    absolute: float
    relative: float
    baseline_rate: float
    sd_difference: float
    n_seeds: int
    n_per_seed: int
    power: float
    alpha: float
    design: str = "paired"
    df: int | None = None
    n_sampling_seeds: int = 1
    correlation: float = 0.0
    sampling_correlation: float = 0.0

    def __str__(self) -> str:
        head = f"MDE {100 * self.absolute:.3g} pp ({100 * self.relative:.3g}% of {100 * self.baseline_rate:.3g}%)"
        tail = f"(power {self.power:g}, alpha {self.alpha:g})"
        corr = ""
        if self.correlation or self.sampling_correlation:
            corr = f", arms correlated: seed effects {self.correlation:g}, sampling noise {self.sampling_correlation:g}"
        if self.design == "unpaired":
            test = "z-test with known sd" if self.df is None else f"two-sample t-test, df {self.df}"
            return (f"{head} unpaired, {self.n_seeds} training run(s) per method x {self.n_sampling_seeds} sampling "
                    f"seeds x {self.n_per_seed} samples ({test}{corr}) {tail}")
        return f"{head} with {self.n_seeds} seeds x {self.n_per_seed} samples{corr} {tail}"


def minimum_detectable_effect(
    baseline_rate: float, between_var: float, n_seeds: int, n_per_seed: int, *, power: float = 0.8,
    alpha: float = 0.05, correlation: float = 0.0, sampling_correlation: float = 0.0,
) -> DesignMDE:
    """The smallest reduction delta (A at baseline_rate - delta) a paired t-test over ``n_seeds`` seeds
    with ``n_per_seed`` samples per seed and model detects with ``power`` (two-sided ``alpha``), given the
    between-seed variance ``between_var`` (e.g. :attr:`VarianceComponents.between`) and the arms'
    ``correlation`` (seed effects) and ``sampling_correlation`` (shared sampling noise; both 0 = independent
    arms). Exact noncentral t, df = n_seeds - 1, with the binomial variance of both arms at their own rates
    (module docstring, :func:`difference_sd`)."""
    from scipy import optimize

    p = _rate_arg("baseline_rate", baseline_rate)
    S = check_int("n_seeds", n_seeds, low=2, hint="a paired t-test needs two seeds")
    n = check_int("n_per_seed", n_per_seed, low=1)
    power = _prob_arg("power", power)
    alpha = _prob_arg("alpha", alpha)

    def sd_at(delta: float) -> float:
        return difference_sd(p, between_var, n, delta, correlation, sampling_correlation)

    def gap(delta: float) -> float:
        return power_paired_t(delta, sd_at(delta), S, alpha) - power

    if gap(p) < 0:
        absolute = math.inf
    else:
        absolute = float(optimize.brentq(gap, 1e-12, p, xtol=1e-12, rtol=1e-10))
    return DesignMDE(absolute, absolute / p, p, sd_at(min(absolute, p)), S, n, power, alpha, "paired", S - 1, 1,
                     float(correlation), float(sampling_correlation))


def seeds_needed(
    baseline_rate: float, between_var: float, n_per_seed: int, relative_effect: float = 0.25, *,
    power: float = 0.8, alpha: float = 0.05, correlation: float = 0.0, max_seeds: int = 100_000,
    sampling_correlation: float = 0.0,
) -> int | None:
    """Smallest number of seeds S >= 2 whose MDE (``n_per_seed`` samples per seed; correlations as in
    :func:`minimum_detectable_effect`) is at most ``relative_effect`` x baseline_rate; None when not reached
    by ``max_seeds``."""
    rel = _prob_arg("relative_effect", relative_effect)
    check_int("max_seeds", max_seeds, low=2)

    def ok(S: int) -> bool:
        return minimum_detectable_effect(baseline_rate, between_var, S, n_per_seed, power=power, alpha=alpha,
                                         correlation=correlation,
                                         sampling_correlation=sampling_correlation).relative <= rel

    return _smallest(ok, 2, max_seeds)


def samples_needed(
    baseline_rate: float, between_var: float, n_seeds: int, relative_effect: float = 0.25, *,
    power: float = 0.8, alpha: float = 0.05, correlation: float = 0.0, max_samples: int = 10_000_000,
    sampling_correlation: float = 0.0,
) -> int | None:
    """Smallest samples per seed n >= 1 whose MDE with ``n_seeds`` seeds is at most ``relative_effect`` x
    baseline_rate; None when not reached by ``max_samples`` (e.g. the seed effect alone is too large)."""
    rel = _prob_arg("relative_effect", relative_effect)
    check_int("max_samples", max_samples, low=1)

    def ok(n: int) -> bool:
        return minimum_detectable_effect(baseline_rate, between_var, n_seeds, n, power=power, alpha=alpha,
                                         correlation=correlation,
                                         sampling_correlation=sampling_correlation).relative <= rel

    return _smallest(ok, 1, max_samples)


# ------------------------------------------------------- observed paired sd, unpaired design
@dataclass(frozen=True)
class PairedMDE:
    """MDE of a two-sided paired t-test from an observed sd of the paired differences (same units).

    sd: that sd (ddof 1, treated as the true sd); n_pairs: S; df: S - 1, the degrees of freedom of the sd and
    of the test; exact: noncentral t (:func:`mde_paired_t`); approx: (t_{1-alpha/2, df} + t_{power, df}) sd /
    sqrt(S) (:func:`mde_approx`); power, alpha: the targets.
    """

    sd: float
    n_pairs: int
    df: int
    exact: float
    approx: float
    power: float
    alpha: float

    def relative(self, baseline_rate: float) -> float:
        """exact / baseline_rate."""
        return self.exact / _rate_arg("baseline_rate", baseline_rate)

    def __str__(self) -> str:
        return (f"paired MDE {100 * self.exact:.3g} pp (t-formula {100 * self.approx:.3g} pp) from the observed paired "
                f"sd {100 * self.sd:.3g} pp over {self.n_pairs} pairs, df {self.df} (power {self.power:g}, alpha {self.alpha:g})")


def paired_mde(sd: float, n_pairs: int, power: float = 0.8, alpha: float = 0.05) -> PairedMDE:
    """The paired design's MDE from its observed paired sd ``sd`` over ``n_pairs`` pairs (df = n_pairs - 1):
    both the exact noncentral-t value and the closed-form t approximation (:class:`PairedMDE`)."""
    exact = mde_paired_t(sd, n_pairs, power, alpha)
    return PairedMDE(float(sd), int(n_pairs), int(n_pairs) - 1, exact, mde_approx(sd, n_pairs, power, alpha),
                     float(power), float(alpha))


def unpaired_mde(
    baseline_rate: float, between_var: float, *, n_runs: int = 1, n_sampling_seeds: int = 6,
    n_per_sampling_seed: int = 100, power: float = 0.8, alpha: float = 0.05, sampling_correlation: float = 0.0,
) -> DesignMDE:
    """MDE of an unpaired comparison: ``n_runs`` independent training runs per method (1: the VSM paper's
    protocol), each sampled with ``n_sampling_seeds`` x ``n_per_sampling_seed`` samples, between-training-seed
    variance ``between_var`` per run counting in full (module docstring)::

        sd_D(delta)^2 = 2 sigma_b^2 / R + (p(1-p) + q(1-q) - 2 rho_s sqrt(p(1-p) q(1-q))) / (R K m),  q = p - delta

    R = 1: two-sided z-test with known sd (power Phi((delta - z sd_D(0)) / sd_D(delta)) + Phi((-delta - z
    sd_D(0)) / sd_D(delta)); the best any analysis of one run per method can do); R >= 2: two-sample t-test
    over the runs' rates, noncentral t with df = 2R - 2 and nc = delta / sd_D(delta). Returns a
    :class:`DesignMDE` with design "unpaired" (inf when even a drop to a rate of 0 is not detected)."""
    from scipy import optimize, stats

    p = _rate_arg("baseline_rate", baseline_rate)
    vb = _nonneg("between_var", between_var)
    R = check_int("n_runs", n_runs, low=1)
    K = check_int("n_sampling_seeds", n_sampling_seeds, low=1)
    m = check_int("n_per_sampling_seed", n_per_sampling_seed, low=1)
    power = _prob_arg("power", power)
    alpha = _prob_arg("alpha", alpha)
    rho_s = _correlation("sampling_correlation", sampling_correlation)

    def sd_at(delta: float) -> float:
        return math.sqrt(max(0.0, 2 * vb / R + _binomial_var_d(p, delta, R * K * m, rho_s)))

    df = None if R == 1 else 2 * R - 2
    if df is None:
        z, sd0 = float(stats.norm.ppf(1 - alpha / 2)), sd_at(0.0)

        def power_at(delta: float) -> float:
            sd1 = sd_at(delta)
            return float(stats.norm.cdf((delta - z * sd0) / sd1) + stats.norm.cdf((-delta - z * sd0) / sd1))
    else:
        def power_at(delta: float) -> float:
            return _t_power(delta / sd_at(delta), df, alpha)

    if power <= alpha:
        raise ValueError(f"power: expected a target above alpha = {alpha} (the power at no effect), got {power}")
    if power_at(p) < power:
        absolute = math.inf
    else:
        absolute = float(optimize.brentq(lambda d: power_at(d) - power, 1e-12, p, xtol=1e-12, rtol=1e-10))
    return DesignMDE(absolute, absolute / p, p, sd_at(min(absolute, p)), R, m, power, alpha, "unpaired", df, K,
                     0.0, rho_s)


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

    def __str__(self) -> str:
        paired = (f"MDE {100 * self.paired.exact:.3g} pp = {100 * self.paired_relative:.3g}% of "
                  f"{100 * self.baseline_rate:.3g}%" if self.paired.sd > 0 else
                  "every seed gave the same difference (sd 0): no power statement from them")
        return "\n".join([
            f"paired ({self.n_seeds} training seeds x {self.n_per_seed} samples, observed paired sd, df "
            f"{self.paired.df}): {paired} (arms' per-seed correlation {self.correlation:.2f})",
            f"same design modelled as independent arms: MDE {100 * self.independent.absolute:.3g} pp = "
            f"{100 * self.independent.relative:.3g}% (overstates the paired noise)",
            f"unpaired, one run per method x {self.unpaired.n_sampling_seeds} x {self.unpaired.n_per_seed} samples: "
            f"MDE {100 * self.unpaired.absolute:.3g} pp = {100 * self.unpaired.relative:.3g}% (between-seed var "
            f"{self.between_var:.3g} in full)",
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
