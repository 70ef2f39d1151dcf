"""vsmlab.analysis.stats and .power: rates over seeds, paired differences, variance components, power and MDE.

Oracles: hand computations, scipy (t-test, Wilcoxon, noncentral t), and a simulation of binomial seed data
with a known effect (the MDE must give ~80% power empirically)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from vsmlab.analysis import power as P
from vsmlab.analysis import stats as S
from vsmlab.analysis.metrics import mean_ci, wilson_interval


def test_variance_components_by_hand():
    counts, n = [10, 20, 15, 25], 100
    p = np.array(counts) / n
    total = p.var(ddof=1)
    within = np.mean(p * (1 - p) / (n - 1))
    vc = S.variance_components(counts, n)
    assert vc.rate == pytest.approx(p.mean())
    assert vc.total == pytest.approx(total) and vc.within == pytest.approx(within)
    assert vc.between == pytest.approx(total - within) and vc.between > 0
    assert vc.between_share == pytest.approx((total - within) / total)
    # identical per-seed rates: no between-seed variance (clipped at 0, never negative)
    same = S.variance_components([20, 20, 20], [100, 100, 100])
    assert same.between == 0 and same.total == pytest.approx(0, abs=1e-20) and same.within > 0


def test_variance_components_recover_a_simulated_between_variance():
    rng = np.random.default_rng(0)
    sb, n, seeds = 0.04, 400, 4000
    p = np.clip(0.3 + sb * rng.standard_normal(seeds), 0, 1)
    vc = S.variance_components(rng.binomial(n, p), n)
    assert vc.between == pytest.approx(sb**2, rel=0.1)
    assert vc.within == pytest.approx(0.3 * 0.7 / n, rel=0.05)


def test_seed_rates_use_wilson_and_mean_ci():
    r = S.seed_rates([3, 7, 5], [100, 100, 50])
    assert r.pooled == wilson_interval(15, 250)
    m = mean_ci([0.03, 0.07, 0.1])
    assert r.mean.mean == pytest.approx(m.mean) and r.mean.half == pytest.approx(m.half)
    assert r.per_seed == (0.03, 0.07, 0.1) and r.components.n_seeds == 3


def test_category_rates():
    r = S.category_rates({"valid": 90, "duplicate": 7, "blank": 3}, 100)
    assert r["duplicate"] == wilson_interval(7, 100) and set(r) == {"valid", "duplicate", "blank"}
    with pytest.raises(ValueError, match="counts"):
        S.category_rates({"valid": 101}, 100)


def test_paired_difference_matches_scipy():
    a = np.array([0.12, 0.10, 0.15, 0.09, 0.11, 0.14])
    b = np.array([0.14, 0.13, 0.15, 0.12, 0.10, 0.18])
    r = S.paired_difference(a, b, n_bootstrap=2000, seed=3)
    d = a - b
    assert r.differences == pytest.approx(tuple(d))
    t = sps.ttest_rel(a, b)
    ci = t.confidence_interval(0.95)
    assert r.interval == pytest.approx((ci.low, ci.high))
    assert r.wilcoxon_p == pytest.approx(sps.wilcoxon(d[d != 0]).pvalue)
    boot = d[np.random.default_rng(3).integers(0, 6, size=(2000, 6))].mean(1)
    assert r.bootstrap == pytest.approx(tuple(np.percentile(boot, [2.5, 97.5])))
    assert (r.nonzero, r.lower, r.higher) == (5, 4, 1)
    assert r.sd == pytest.approx(d.std(ddof=1))
    assert P.power_paired_t(r.mde, r.sd, 6) == pytest.approx(0.8, abs=1e-6)


def test_paired_difference_all_zero_and_errors():
    r = S.paired_difference([0.1, 0.2], [0.1, 0.2])
    assert r.wilcoxon_p == 1.0 and r.nonzero == 0 and math.isnan(r.mde)
    with pytest.raises(ValueError, match="b:"):
        S.paired_difference([0.1, 0.2], [0.1])
    with pytest.raises(ValueError, match="a:"):
        S.paired_difference([float("nan")], [0.1])


def test_power_and_mde_of_the_paired_t_test():
    # noncentral-t power against a direct scipy evaluation
    df, crit = 5, sps.t.ppf(0.975, 5)
    nc = 0.02 * math.sqrt(6) / 0.015
    expected = sps.nct.sf(crit, df, nc) + sps.nct.cdf(-crit, df, nc)
    assert P.power_paired_t(0.02, 0.015, 6) == pytest.approx(expected)
    assert P.power_paired_t(0.0, 0.015, 6) == pytest.approx(0.05)  # no effect: the level
    mde = P.mde_paired_t(0.015, 6)
    assert P.power_paired_t(mde, 0.015, 6) == pytest.approx(0.8, abs=1e-8)
    # the closed-form approximation is close for moderate S, and both tend to the normal formula
    assert P.mde_approx(0.015, 6) == pytest.approx(mde, rel=0.05)
    big = 5000
    normal = (sps.norm.ppf(0.975) + sps.norm.ppf(0.8)) * 0.015 / math.sqrt(big)
    assert P.mde_paired_t(0.015, big) == pytest.approx(normal, rel=1e-3)


def test_power_survives_scipy_nan_tails():
    """scipy's nct.cdf gives nan in the far lower tail (e.g. df 1, nc 7.625): power must stay finite and ~1,
    and the MDE search must not trip over it (notebook 05's bracket [0, 20 sd] does for sd 0.0117, n 6)."""
    crit = sps.t.ppf(0.975, 1)
    p = P.power_paired_t(7.625 / math.sqrt(2), 1.0, 2)
    assert p == pytest.approx(sps.nct.sf(crit, 1, 7.625)) and math.isfinite(p)
    d = np.array([0.01, -0.02, 0.0, -0.015, -0.005, -0.01])
    m = P.mde_paired_t(float(d.std(ddof=1)), 6)
    assert P.power_paired_t(m, float(d.std(ddof=1)), 6) == pytest.approx(0.8, abs=1e-8)


def test_design_mde_solves_the_power_equation():
    p, vb, seeds, n = 0.2, 0.02**2, 6, 100
    m = P.minimum_detectable_effect(p, vb, seeds, n)
    sd = math.sqrt(2 * vb + p * (1 - p) / n + (p - m.absolute) * (1 - p + m.absolute) / n)
    assert m.sd_difference == pytest.approx(sd)
    assert P.power_paired_t(m.absolute, sd, seeds) == pytest.approx(0.8, abs=1e-6)
    assert m.relative == pytest.approx(m.absolute / p)
    # more seeds or samples, or correlated seed effects: smaller MDE
    assert P.minimum_detectable_effect(p, vb, 12, n).absolute < m.absolute
    assert P.minimum_detectable_effect(p, vb, seeds, 1000).absolute < m.absolute
    assert P.minimum_detectable_effect(p, vb, seeds, n, correlation=0.5).absolute < m.absolute
    # tiny designs cannot detect even a drop to zero
    assert math.isinf(P.minimum_detectable_effect(0.01, 0.0, 2, 10).absolute)


@pytest.mark.parametrize("p, sb, seeds, n", [(0.2, 0.02, 6, 100), (0.08, 0.0, 10, 300), (0.3, 0.05, 4, 50)])
def test_mde_gives_80_percent_power_in_simulation(p, sb, seeds, n):
    """Simulated studies: per seed and model, rate = baseline (+ effect) + seed effect, binomial counts;
    a two-sided paired t-test at 5%. At delta = MDE the rejection rate must be ~0.8 (Monte-Carlo error
    0.8 * 0.2 / 4000 -> sd 0.0063; tolerance 0.03 also covers the normal approximation of the counts)."""
    m = P.minimum_detectable_effect(p, sb**2, seeds, n)
    rng = np.random.default_rng(1)
    reps = 4000
    pa = np.clip(p - m.absolute + sb * rng.standard_normal((reps, seeds)), 0, 1)
    pb = np.clip(p + sb * rng.standard_normal((reps, seeds)), 0, 1)
    d = rng.binomial(n, pa) / n - rng.binomial(n, pb) / n
    with np.errstate(divide="ignore", invalid="ignore"):  # equal differences in a tiny design: |t| = inf
        tstat = d.mean(1) / (d.std(1, ddof=1) / math.sqrt(seeds))
    power = np.mean(np.abs(tstat) > sps.t.ppf(0.975, seeds - 1))
    print(f"p={p} sigma_b={sb} S={seeds} n={n}: MDE {m.absolute:.4f} ({m.relative:.1%}), simulated power {power:.3f}")
    assert power == pytest.approx(0.8, abs=0.03), (m, power)
    # negative control: at half the MDE the power is clearly lower
    pa_half = np.clip(p - m.absolute / 2 + sb * rng.standard_normal((reps, seeds)), 0, 1)
    d2 = rng.binomial(n, pa_half) / n - rng.binomial(n, pb) / n
    with np.errstate(divide="ignore", invalid="ignore"):
        t2 = d2.mean(1) / (d2.std(1, ddof=1) / math.sqrt(seeds))
    assert np.mean(np.abs(t2) > sps.t.ppf(0.975, seeds - 1)) < 0.55


def test_seeds_and_samples_needed_invert_the_mde():
    p, vb, n = 0.2, 0.02**2, 100
    s = P.seeds_needed(p, vb, n, 0.25)
    assert P.minimum_detectable_effect(p, vb, s, n).relative <= 0.25
    assert P.minimum_detectable_effect(p, vb, s - 1, n).relative > 0.25
    k = P.samples_needed(p, vb, 20, 0.25)
    assert P.minimum_detectable_effect(p, vb, 20, k).relative <= 0.25
    assert P.minimum_detectable_effect(p, vb, 20, k - 1).relative > 0.25
    # the seed effect alone (sd_d -> 2 * 0.05^2 ...) rules out 25% with 3 seeds, however many samples
    assert P.samples_needed(p, 0.05**2, 3, 0.25, max_samples=10**6) is None


@pytest.mark.parametrize("call, name", [
    (lambda: S.variance_components([5, 200], 100), "counts"),
    (lambda: S.variance_components([5, 2], 0), "n"),
    (lambda: P.minimum_detectable_effect(1.5, 0.0, 6, 100), "baseline_rate"),
    (lambda: P.minimum_detectable_effect(0.2, -1.0, 6, 100), "between_var"),
    (lambda: P.minimum_detectable_effect(0.2, 0.0, 1, 100), "n_seeds"),
    (lambda: P.minimum_detectable_effect(0.2, 0.0, 6, 100, power=1.2), "power"),
    (lambda: P.seeds_needed(0.2, 0.0, 100, 0.0), "relative_effect"),
])
def test_bad_arguments_are_named(call, name):
    with pytest.raises(ValueError, match=name):
        call()


# ------------------------------------------------------------- correlated arms, observed sd, unpaired
def _paired_rates(rng, p, delta, sb, rho, rho_s, seeds, n, reps):
    """Per-seed rate differences a - b of simulated paired studies [reps, seeds]: seed effects with
    correlation rho (a at p - delta, b at p), and per sample a pair of verdicts with phi coefficient rho_s
    (shared sampling noise), drawn as one multinomial over the four verdict pairs."""
    z1 = rng.standard_normal((reps, seeds))
    z2 = rho * z1 + math.sqrt(1 - rho**2) * rng.standard_normal((reps, seeds))
    pa = np.clip(p - delta + sb * z1, 0, 1)
    pb = np.clip(p + sb * z2, 0, 1)
    both = np.clip(pa * pb + rho_s * np.sqrt(pa * (1 - pa) * pb * (1 - pb)), np.maximum(0, pa + pb - 1), np.minimum(pa, pb))
    cells = np.stack([both, pa - both, pb - both], -1).clip(0, 1)
    cells = np.concatenate([cells, (1 - cells.sum(-1, keepdims=True)).clip(0, 1)], -1)
    c = rng.multinomial(n, cells / cells.sum(-1, keepdims=True))
    return (c[..., 0] + c[..., 1]) / n - (c[..., 0] + c[..., 2]) / n


def _t_rejects(d: np.ndarray) -> float:
    seeds = d.shape[1]
    with np.errstate(divide="ignore", invalid="ignore"):
        tstat = d.mean(1) / (d.std(1, ddof=1) / math.sqrt(seeds))
    return float(np.mean(np.abs(tstat) > sps.t.ppf(0.975, seeds - 1)))


def test_difference_sd_with_correlated_arms_by_hand():
    p, vb, n, delta = 0.2, 0.03**2, 100, 0.05
    q = p - delta
    expected = math.sqrt(vb + q * (1 - q) / n + vb + p * (1 - p) / n
                         - 2 * (0.9 * vb + 0.5 * math.sqrt(p * (1 - p) * q * (1 - q)) / n))  # Var a + Var b - 2 Cov
    assert P.difference_sd(p, vb, n, delta, 0.9, 0.5) == pytest.approx(expected)
    assert P.difference_sd(p, vb, n, delta) == pytest.approx(
        math.sqrt(2 * vb + p * (1 - p) / n + q * (1 - q) / n))  # the independent-arms case is unchanged
    # correlated arms: a much smaller MDE than the independent model of the same design
    ind = P.minimum_detectable_effect(p, vb, 6, n)
    cor = P.minimum_detectable_effect(p, vb, 6, n, correlation=0.9, sampling_correlation=0.5)
    assert cor.absolute < 0.7 * ind.absolute and cor.df == 5 and "arms correlated" in str(cor)
    assert P.seeds_needed(p, vb, n, 0.25, correlation=0.9, sampling_correlation=0.5) < P.seeds_needed(p, vb, n, 0.25)
    with pytest.raises(ValueError, match="^sampling_correlation:"):
        P.difference_sd(p, vb, n, 0.0, 0.0, 1.5)
    with pytest.raises(ValueError, match="^correlation:"):
        P.minimum_detectable_effect(p, vb, 6, n, correlation=-2.0)


@pytest.mark.parametrize("rho, rho_s", [(0.9, 0.5), (0.9, 0.0), (0.0, 0.0)])
def test_correlated_design_mde_gives_80_percent_power_in_simulation(rho, rho_s):
    """The design model with correlated arms: simulated paired studies (seed effects correlated by rho,
    verdicts of one noise draw by rho_s) at delta = MDE reject in 75-85% of 4000 runs (MC sd 0.0063), and
    the simulated sd of a seed's difference matches the model's."""
    p, sb, seeds, n = 0.2, 0.04, 6, 100
    m = P.minimum_detectable_effect(p, sb**2, seeds, n, correlation=rho, sampling_correlation=rho_s)
    d = _paired_rates(np.random.default_rng(11), p, m.absolute, sb, rho, rho_s, seeds, n, 4000)
    power = _t_rejects(d)
    print(f"rho={rho} rho_s={rho_s}: MDE {m.absolute:.4f} ({m.relative:.1%}), sd_d {m.sd_difference:.4f} "
          f"(simulated {d.std():.4f}), simulated power {power:.3f}")
    assert 0.75 <= power <= 0.85, (m, power)
    assert float(d.std()) == pytest.approx(m.sd_difference, rel=0.04)
    assert float(d.mean()) == pytest.approx(-m.absolute, abs=4 * m.sd_difference / math.sqrt(d.size))


def test_paired_mde_from_the_observed_sd():
    """Arms correlated 0.9 (Gaussian per-seed values): the MDE from the paired sd (df = S - 1) gives 80%
    power in simulation; the t-formula is within 5% of the exact value."""
    seeds, sd_arm, rho = 6, 0.02, 0.9
    sd_d = sd_arm * math.sqrt(2 * (1 - rho))
    r = P.paired_mde(sd_d, seeds)
    assert (r.df, r.n_pairs) == (5, 6) and r.exact == pytest.approx(P.mde_paired_t(sd_d, seeds))
    assert r.approx == pytest.approx(P.mde_approx(sd_d, seeds)) and r.approx == pytest.approx(r.exact, rel=0.05)
    assert r.relative(0.2) == pytest.approx(r.exact / 0.2) and "df 5" in str(r)
    rng = np.random.default_rng(12)
    z1 = rng.standard_normal((4000, seeds))
    z2 = rho * z1 + math.sqrt(1 - rho**2) * rng.standard_normal((4000, seeds))
    d = (0.2 - r.exact + sd_arm * z1) - (0.2 + sd_arm * z2)
    assert 0.77 <= _t_rejects(d) <= 0.83


@pytest.mark.parametrize("runs", [1, 3])
def test_unpaired_mde_gives_80_percent_power_in_simulation(runs):
    """One (or three) training runs per method, 6 sampling seeds x 100 samples each, independent training
    effects: z-test with the known sd (one run) or two-sample t-test over runs (three) at the MDE."""
    p, sb, K, m_ = 0.2, 0.03, 6, 100
    u = P.unpaired_mde(p, sb**2, n_runs=runs, n_sampling_seeds=K, n_per_sampling_seed=m_)
    assert u.design == "unpaired" and u.df == (None if runs == 1 else 2 * runs - 2) and u.n_sampling_seeds == K
    rng = np.random.default_rng(13)
    reps = 4000
    rate_a = rng.binomial(K * m_, np.clip(p - u.absolute + sb * rng.standard_normal((reps, runs)), 0, 1)) / (K * m_)
    rate_b = rng.binomial(K * m_, np.clip(p + sb * rng.standard_normal((reps, runs)), 0, 1)) / (K * m_)
    if runs == 1:
        sd0 = math.sqrt(2 * sb**2 + 2 * p * (1 - p) / (K * m_))
        power = float(np.mean(np.abs(rate_b[:, 0] - rate_a[:, 0]) > sps.norm.ppf(0.975) * sd0))
    else:
        pooled = (rate_a.var(1, ddof=1) + rate_b.var(1, ddof=1)) / 2  # Student's two-sample t, df 2R - 2
        with np.errstate(divide="ignore", invalid="ignore"):
            tstat = (rate_b.mean(1) - rate_a.mean(1)) / np.sqrt(pooled * 2 / runs)
        power = float(np.mean(np.abs(tstat) > sps.t.ppf(0.975, 2 * runs - 2)))
    print(f"unpaired R={runs}: MDE {u.absolute:.4f} ({u.relative:.1%}), simulated power {power:.3f}")
    assert 0.75 <= power <= 0.85, (u, power)
    # the between-training-seed variance counts in full: far above the paired design with correlated arms
    paired = P.minimum_detectable_effect(p, sb**2, 6, 100, correlation=0.9, sampling_correlation=0.5)
    assert u.absolute > 1.5 * paired.absolute and "unpaired" in str(u)
    with pytest.raises(ValueError, match="^n_runs:"):
        P.unpaired_mde(p, sb**2, n_runs=0)


def test_design_comparison_from_counts():
    a, b, n = [18, 25, 14, 30, 21, 16], [20, 28, 15, 33, 22, 19], 100
    r = S.design_comparison(a, b, n)
    pa, pb = np.array(a) / n, np.array(b) / n
    assert r.paired == P.paired_mde(float((pa - pb).std(ddof=1)), 6)
    between = np.mean([S.variance_components(a, n).between, S.variance_components(b, n).between])
    assert r.between_var == pytest.approx(between) and r.baseline_rate == pytest.approx(pb.mean())
    assert r.independent == P.minimum_detectable_effect(pb.mean(), between, 6, 100)
    assert r.unpaired == P.unpaired_mde(pb.mean(), between, n_sampling_seeds=6, n_per_sampling_seed=100)
    assert r.correlation == pytest.approx(np.corrcoef(pa, pb)[0, 1])
    assert r.paired.exact < r.independent.absolute < r.unpaired.absolute  # strongly paired arms
    assert r.paired_relative == pytest.approx(r.paired.exact / pb.mean()) and len(str(r).splitlines()) == 3
    with pytest.raises(ValueError, match="^counts_b:"):
        S.design_comparison(a, b[:5], n)
    with pytest.raises(ValueError, match="^counts_a:"):
        S.design_comparison([3], [4], n)


def test_seeds_needed_is_the_smallest_design_whose_paired_mde_reaches_the_cut():
    a, b, n = [18, 25, 14, 30, 21, 16], [20, 28, 15, 33, 22, 19], 100
    r = S.design_comparison(a, b, n)
    need = r.seeds_needed(0.25)
    cut = 0.25 * r.baseline_rate
    assert need is not None and P.paired_mde(r.paired.sd, need).exact <= cut < P.paired_mde(r.paired.sd, need - 1).exact
    assert r.seeds_needed(0.01, max_seeds=10) is None and "more than 10" in r.seeds_text(0.01, max_seeds=10)
    assert f"as true: {need} " in r.seeds_text() and f"({100 * cut:.1f} pp)" in r.seeds_text()
    same = S.design_comparison([10, 20], [12, 22], 100)  # the same difference on every seed: sd 0
    assert same.seeds_needed() is None and "not computable (sd 0)" in same.seeds_text()


def test_holm_by_hand():
    r = S.holm([0.01, 0.04, 0.03, 0.005])
    # ascending 0.005, 0.01, 0.03, 0.04 -> 4 x 0.005, 3 x 0.01, 2 x 0.03, 1 x 0.04, then the running max
    assert r.adjusted == pytest.approx((0.03, 0.06, 0.06, 0.02))
    assert r.reject == (True, False, False, True) and r.names == ("0", "1", "2", "3")
    named = S.holm({"blank": 0.5, "duplicate": 0.6}, alpha=0.1)
    assert named.as_dict() == {"blank": (1.0, False), "duplicate": (1.0, False)}
    assert S.holm([0.01]).adjusted == (0.01,)
    with pytest.raises(ValueError, match="^p_values:"):
        S.holm([0.2, 1.5])
    with pytest.raises(ValueError, match="^p_values:"):
        S.holm([])
