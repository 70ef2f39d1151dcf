"""Exercises of notebooks 04-05: Jacobian estimators, VSM and the other mitigations."""

from __future__ import annotations

import functools
import itertools
import math

import torch

from vsmlab.lab.exercises.answers import Exercise, exercise, number, numeric, whole
from vsmlab.lab.exercises.toys import _diamond, _schedule, _steps

__all__ = ["EXERCISES"]


# ------------------------------------------------------------------------------------- 04: estimators
@functools.lru_cache(maxsize=None)
def _mode_spectral_norm() -> float:
    mix, t = _diamond(), 10
    x = math.sqrt(float(_schedule().alpha_bar[t])) * mix.means[:1]
    return float(torch.linalg.matrix_norm(mix.score_jacobian(x, _steps(t, 1), _schedule())[0], 2))


HUTCHINSON_J = ((2.0, 1.0), (1.0, 3.0))


@functools.lru_cache(maxsize=None)
def _rademacher_variance() -> float:
    J = torch.tensor(HUTCHINSON_J, dtype=torch.float64)
    z = torch.tensor(list(itertools.product((-1.0, 1.0), repeat=J.shape[0])), dtype=torch.float64)
    values = torch.einsum("pi,ij,pj->p", z, J, z)  # every sign vector, each with probability 2^-d
    return float(values.var(unbiased=False))


def _power_iterations(ratio: float = 0.9, target: float = 1e-6) -> int:
    return next(k for k in itertools.count(1) if ratio ** (2 * k) < target)


def _grade_iterations(k: int) -> tuple[str, str]:
    truth = _power_iterations()
    if k == truth:
        return "right", (f"k = {k}: 0.9^{2 * k} = {0.9 ** (2 * k):.2e}. Near-ties are slow: at sigma_2/sigma_1 = 0.99 "
                         f"the same target takes {_power_iterations(0.99)} iterations.")
    if k in (_power_iterations(0.9 ** 0.5), _power_iterations(0.9 ** 0.5) - 1):
        return "wrong", "the error shrinks like (sigma_2/sigma_1)^(2k), squared per iteration: solve 0.9^(2k) < 1e-6"
    if abs(k - truth) <= 2:
        return "close", f"0.9^(2*{k}) = {0.9 ** (2 * k):.2e}: the smallest k with 0.9^(2k) below 1e-6 is what is asked"
    return "wrong", "take logs: 2k log(0.9) < log(1e-6), so k > log(1e-6) / (2 log 0.9); round up"


# ------------------------------------------------------------------------------------- 05: VSM
@functools.lru_cache(maxsize=None)
def _reach():
    from vsmlab.analysis.variance_reach import penalty_reach

    return penalty_reach(_schedule(), rho=0.1, time_weight=True)


def _penalty_at_100() -> float:
    return float(_reach().penalty_high[100])


def _unweighted(t: float) -> float:  # the penalty without w(t)
    return t / float(_reach().weight[100])


@functools.lru_cache(maxsize=None)
def _closed_step() -> int:
    return int(torch.nonzero(_reach().sigma_change < 0.01)[0, 0])


def _grade_closed_step(t: int) -> tuple[str, str]:
    truth, change = _closed_step(), _reach().sigma_change
    if t == truth:
        return "right", (f"t = {t}: 1 - beta_tilde_t/beta_t = {float(change[t]):.4f} (it was {float(change[t - 1]):.4f} "
                         f"at t = {t - 1}). Above this step no variance-only penalty can change Sigma by 1%.")
    if not 0 <= t < change.numel():
        return "wrong", f"a step lies in 0..{change.numel() - 1}"
    status = "close" if abs(t - truth) <= 5 else "wrong"
    return status, (f"at t = {t} the largest possible change is {float(change[t]):.4f}; find the first step where "
                    "1 - beta_tilde_t / beta_t drops below 0.01 (it falls as alpha_bar_t shrinks)")


@functools.lru_cache(maxsize=None)
def _mde() -> float:
    from vsmlab.analysis.power import mde_paired_t

    return mde_paired_t(0.5, 10)


def _mde_normal(_: float) -> float:
    from scipy.stats import norm

    return (norm.ppf(0.975) + norm.ppf(0.8)) * 0.5 / math.sqrt(10)


EXERCISES: tuple[Exercise, ...] = (
    # 04 · Jacobian estimators
    exercise("04.1", "The Jacobian at a mode", "easy", """
        At a noised mode centre x = a mu_k the score Jacobian is almost -I / v with v = a^2 s^2 + 1 - a^2
        (s: the component std after normalisation, a = sqrt(alpha_bar_t)). Give ||J||_2 at
        x = sqrt(alpha_bar_10) * mixture.means[0] for mixture = vsmlab.diamond_2d(), t = 10 and the schedule
        vsmlab.linear(1000, 1e-3, 0.2).""",
        "a number", number, numeric(
            _mode_spectral_norm, 0.01, 0.1, "||J||_2 ~ 1/v: compute a and v from schedule.alpha_bar[10] and "
            "float(mixture.stds[0]), or call mixture.score_jacobian and torch.linalg.matrix_norm(J, 2)",
            traps=[(lambda t: 1 / float(_diamond().stds[0]) ** 2, "wrong", "1/s^2 ignores the noise: at t = 10, "
                    "1 - alpha_bar_10 is far larger than s^2")],
            explain="Near a mode J is a multiple of the identity: every estimator is exact there, the hard "
                    "points lie between the modes.")),
    exercise("04.2", "Why Rademacher probes win near a mode", "medium", f"""
        Hutchinson estimates tr J by z^T J z with a random probe z. For the symmetric matrix J = {[list(r) for r in
        HUTCHINSON_J]}, what is the variance of one Rademacher-probe estimate (each z_i = +1 or -1 with
        probability 1/2)?""",
        "a number", number, numeric(
            _rademacher_variance, 1e-6, 0.1, "z^T J z = sum_i J_ii z_i^2 + sum_(i != j) J_ij z_i z_j and z_i^2 = 1: "
            "only the off-diagonal terms vary", relative=False,
            traps=[(lambda t: 2 * float(torch.tensor(HUTCHINSON_J).pow(2).sum()), "wrong",
                    "2 ||J||_F^2 is the variance with Gaussian probes; with Rademacher probes z_i^2 = 1, so the "
                    "diagonal contributes nothing")],
            explain="Only the off-diagonal entries add variance: near a mode J ~ -I/v is diagonal and one "
                    "Rademacher probe gives the exact trace.")),
    exercise("04.3", "How many power iterations?", "medium", """
        Power iteration's relative error shrinks like (sigma_2 / sigma_1)^(2k) after k iterations. How many
        iterations does a point with sigma_2 / sigma_1 = 0.9 need before that factor falls below 1e-6? Give the
        smallest such k.""",
        "a whole number of iterations", lambda x: whole(x, "a whole number of iterations"), _grade_iterations),
    exercise("04.4", "Choose an estimator for images", "open", """
        A 64x64 RGB image has D = 12,288 dimensions. From the notebook's time per point of the exact Jacobian
        in 2-D and 64-D, extrapolate the cost of one exact Jacobian at D = 12,288; then pick, from the
        accuracy-against-cost figure, the estimator you would use for a per-image spectral norm with about 1%
        error, and say how many probes or iterations it needs. benchmarks/bench_jacobian.py measures it."""),
    # 05 · VSM and mitigations
    exercise("05.1", "The size of the penalty", "easy", """
        The VSM term on one dimension is w(t) Sigma^2 / (1 + Sigma^2) with w(t) = rho / sqrt(1 - alpha_bar_t).
        Give its value at Sigma = beta_t (the top of the learned range), rho = 0.1 and t = 100 under the
        schedule vsmlab.linear(1000, 1e-3, 0.2). Compare it with an MSE of order 1.""",
        "a number", number, numeric(
            _penalty_at_100, 0.01, 0.1, "beta_100 = schedule.betas[100], w(100) = 0.1 / sqrt(1 - "
            "schedule.alpha_bar[100]); the term is w Sigma^2 / (1 + Sigma^2)",
            traps=[(_unweighted, "wrong", "multiply by the weight w(t) = rho / sqrt(1 - alpha_bar_t)")],
            explain="About 5e-5: over four orders of magnitude below the MSE, because Sigma^2 is tiny "
                    "wherever beta_t is small.")),
    exercise("05.2", "Where can a variance penalty act at all?", "medium", """
        A penalty on the variance alone can move Sigma at most from beta_t down to beta_tilde_t: a relative
        change of 1 - beta_tilde_t / beta_t. Under the schedule vsmlab.linear(1000, 1e-3, 0.2), from which step
        t on is that possible change below 1%? Give the first such t.
        (vsmlab.analysis.variance_reach.penalty_reach(schedule).sigma_change has it per step.)""",
        "a step t (a whole number in 0..999)", lambda x: whole(x, "a step t (a whole number)"), _grade_closed_step),
    exercise("05.3", "How large an effect can ten seeds see?", "medium", """
        Ten training seeds per setting, paired by seed. If the per-seed differences (VSM minus rho = 0) have a
        standard deviation of 0.5 percentage points, what is the smallest true difference a two-sided paired
        t-test at the 5% level detects with 80% power? Give it in percentage points.""",
        "a number (percentage points)", number, numeric(
            _mde, 0.02, 0.15, "approximately (t_(0.975, 9) + t_(0.8, 9)) sd / sqrt(10), with t quantiles of 9 degrees "
            "of freedom (scipy.stats.t.ppf); vsmlab.analysis.power.mde_paired_t solves it exactly",
            traps=[(_mde_normal, "close", "that is the normal approximation: with 10 pairs use t quantiles with 9 "
                    "degrees of freedom, which are wider")],
            explain="About 0.5 pp: ten seeds see only differences as large as the spread of one difference.")),
    exercise("05.4", "Would the paper's 25% show up?", "open", """
        The VSM paper reports up to ~25% fewer hallucinations. Take the rho = 0 rate and the spread of the
        paired differences from the notebook's results table, and use vsmlab.analysis.power.seeds_needed (or
        the minimum detectable effect) to say how many seeds a study needs to detect a 25% reduction. Does this
        notebook's interval exclude it?"""),
    exercise("05.5", "A better filter threshold?", "open", """
        Trajectory-variance filtering (the appendix) removes most hallucinations in 1-D and throws away many good
        samples in 2-D. From the retention curves (results[(mixture, FIXED, seed)]["thresholds"], "removed",
        "in_support_kept"), choose for each mixture the threshold that keeps 95% of the in-support samples and say
        what share of the hallucinations it removes. Why does the same threshold behave so differently in 2-D?"""),
)
