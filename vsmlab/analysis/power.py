"""Power of a comparison of hallucination rates: how small an effect a design detects.

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

Pure Python/numpy/scipy on host numbers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

from vsmlab.core.checks import check_int, check_nonnegative, check_range

__all__ = [
    "DesignMDE",
    "PairedMDE",
    "power_paired_t",
    "mde_paired_t",
    "mde_approx",
    "difference_sd",
    "minimum_detectable_effect",
    "seeds_needed",
    "samples_needed",
    "paired_mde",
    "unpaired_mde",
]


# ------------------------------------------------------------------------------- checks
def _rate_arg(name: str, value: float, low_open: bool = True) -> float:
    return check_range(name, value, 0, 1, low_open, low_open, noun="a rate")


def _prob_arg(name: str, value: float) -> float:
    return check_range(name, value, 0, 1, True, True, noun="a probability")


def _nonneg(name: str, value: float) -> float:
    return check_nonnegative(name, value)


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

    ok = _mde_at_most(rel, baseline_rate, between_var, power=power, alpha=alpha, correlation=correlation,
                      sampling_correlation=sampling_correlation)
    return _smallest(lambda S: ok(S, n_per_seed), 2, max_seeds)


def samples_needed(
    baseline_rate: float, between_var: float, n_seeds: int, relative_effect: float = 0.25, *,
    power: float = 0.8, alpha: float = 0.05, correlation: float = 0.0, max_samples: int = 10_000_000,
    sampling_correlation: float = 0.0,
) -> int | None:
    """Smallest samples per seed n >= 1 whose MDE with ``n_seeds`` seeds is at most ``relative_effect`` x
    baseline_rate; None when not reached by ``max_samples`` (e.g. the seed effect alone is too large)."""
    rel = _prob_arg("relative_effect", relative_effect)
    check_int("max_samples", max_samples, low=1)

    ok = _mde_at_most(rel, baseline_rate, between_var, power=power, alpha=alpha, correlation=correlation,
                      sampling_correlation=sampling_correlation)
    return _smallest(lambda n: ok(n_seeds, n), 1, max_samples)


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


def _mde_at_most(relative: float, baseline_rate: float, between_var: float, **options: Any) -> Callable[[int, int], bool]:
    """(S, n) -> whether the MDE with S seeds of n samples each (:func:`minimum_detectable_effect` with ``options``)
    is at most ``relative`` x the baseline rate."""
    return lambda S, n: minimum_detectable_effect(baseline_rate, between_var, S, n, **options).relative <= relative


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
