"""Schedules against hand-computed values for a tiny 3-step schedule and closed-form formulas."""

from __future__ import annotations

import math

import pytest
import torch

import vsmlab
from vsmlab.core.schedules import Schedule

BETAS = [0.1, 0.2, 0.3]


@pytest.fixture
def tiny() -> Schedule:
    return Schedule(torch.tensor(BETAS, dtype=torch.float64))


def close(a: torch.Tensor, b: list[float] | torch.Tensor, tol: float = 1e-12) -> None:
    torch.testing.assert_close(a, torch.as_tensor(b, dtype=torch.float64), rtol=0, atol=tol)


def test_derived_quantities_by_hand(tiny: Schedule) -> None:
    # alphas 0.9, 0.8, 0.7 -> alpha_bar 0.9, 0.72, 0.504
    close(tiny.alphas, [0.9, 0.8, 0.7])
    close(tiny.alpha_bar, [0.9, 0.72, 0.504])
    close(tiny.alpha_bar_prev, [1.0, 0.9, 0.72])
    close(tiny.sigma, [math.sqrt(0.1), math.sqrt(0.28), math.sqrt(0.496)])
    # beta_tilde_t = (1 - ab_{t-1}) / (1 - ab_t) beta_t
    close(tiny.beta_tilde, [0.0, 0.1 / 0.28 * 0.2, 0.28 / 0.496 * 0.3])
    close(tiny.log_beta_tilde_clipped, [math.log(0.1 / 0.28 * 0.2)] * 2 + [math.log(0.28 / 0.496 * 0.3)])
    close(tiny.posterior_coef_x0, [1.0, math.sqrt(0.9) * 0.2 / 0.28, math.sqrt(0.72) * 0.3 / 0.496])
    close(tiny.posterior_coef_xt, [0.0, math.sqrt(0.8) * 0.1 / 0.28, math.sqrt(0.7) * 0.28 / 0.496])
    assert tiny.num_steps == 3
    assert tiny.betas.dtype == torch.float64


def test_posterior_is_the_gaussian_product(tiny: Schedule) -> None:
    """q(x_{t-1}|x_t,x0) ~ N(x_t; sqrt(alpha_t) x_{t-1}, beta_t) N(x_{t-1}; sqrt(ab_{t-1}) x0, 1 - ab_{t-1})."""
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(2, 3, generator=g, dtype=torch.float64)
    x_t = torch.randn(2, 3, generator=g, dtype=torch.float64)
    for t in (1, 2):
        alpha, beta, ab_prev = 1 - BETAS[t], BETAS[t], float(tiny.alpha_bar[t - 1])
        precision = alpha / beta + 1 / (1 - ab_prev)
        mean = (math.sqrt(alpha) * x_t / beta + math.sqrt(ab_prev) * x0 / (1 - ab_prev)) / precision
        tt = torch.full((2,), t)
        torch.testing.assert_close(tiny.posterior_mean(x0, x_t, tt), mean, rtol=0, atol=1e-12)
        assert float(tiny.beta_tilde[t]) == pytest.approx(1 / precision, rel=1e-12)
    # t = 0: the posterior collapses onto x0
    torch.testing.assert_close(tiny.posterior_mean(x0, x_t, torch.zeros(2, dtype=torch.long)), x0, rtol=0, atol=1e-12)


def test_linear_betas_and_aggressive_schedule(aggressive: Schedule) -> None:
    s = vsmlab.linear(5, 0.1, 0.5)
    close(s.betas, [0.1, 0.2, 0.3, 0.4, 0.5])
    assert aggressive.num_steps == 1000
    assert float(aggressive.betas[0]) == pytest.approx(1e-3)
    assert float(aggressive.betas[-1]) == pytest.approx(0.2)
    # log alpha_bar_T = sum log(1 - beta): far below float32's range of normal numbers
    assert float(torch.log(aggressive.alpha_bar[-1])) == pytest.approx(float(torch.log1p(-aggressive.betas).sum()))


def test_cosine_matches_formula() -> None:
    T, s = 50, 0.008
    sched = vsmlab.cosine(T, offset=s)

    def f(u: float) -> float:
        return math.cos((u + s) / (1 + s) * math.pi / 2) ** 2

    expected = torch.tensor([f((t + 1) / T) / f(0) for t in range(T)], dtype=torch.float64)
    unclipped = sched.betas < 0.999
    assert bool(unclipped[:-1].all())  # only the very last beta may hit max_beta
    torch.testing.assert_close(sched.alpha_bar[:-1], expected[:-1], rtol=1e-10, atol=1e-14)
    assert float(sched.betas.max()) <= 0.999


def test_learned_log_variance_endpoints(tiny: Schedule) -> None:
    t = torch.tensor([0, 1, 2])
    lo = tiny.learned_log_variance(-torch.ones(3, 1, dtype=torch.float64), t)[:, 0]
    hi = tiny.learned_log_variance(torch.ones(3, 1, dtype=torch.float64), t)[:, 0]
    mid = tiny.learned_log_variance(torch.zeros(3, 1, dtype=torch.float64), t)[:, 0]
    bt1 = 0.1 / 0.28 * 0.2
    close(lo, [math.log(bt1), math.log(bt1), math.log(0.28 / 0.496 * 0.3)])  # t = 0 clipped to t = 1
    close(hi, [math.log(b) for b in BETAS])
    close(mid, (lo + hi) / 2)


def test_noise_formula_and_statistics(aggressive: Schedule) -> None:
    x0 = torch.full((4, 2), 1.5, dtype=torch.float64)
    eps = torch.tensor([[0.0, 1.0], [-1.0, 2.0], [0.5, 0.5], [3.0, -3.0]], dtype=torch.float64)
    t = torch.tensor([0, 10, 100, 999])
    ab = aggressive.alpha_bar[t][:, None]
    torch.testing.assert_close(aggressive.noise(x0, t, eps), ab.sqrt() * x0 + (1 - ab).sqrt() * eps, rtol=0, atol=1e-12)

    n, step = 200_000, 20
    g = torch.Generator().manual_seed(1)
    x = aggressive.noise(torch.full((n, 1), 2.0, dtype=torch.float64), torch.full((n,), step), generator=g)
    a, sd = math.sqrt(float(aggressive.alpha_bar[step])), float(aggressive.sigma[step])
    assert float(x.mean()) == pytest.approx(2 * a, abs=5 * sd / math.sqrt(n))
    assert float(x.std()) == pytest.approx(sd, rel=0.01)
    assert x.dtype == torch.float64


def test_x0_eps_round_trip(aggressive: Schedule) -> None:
    g = torch.Generator().manual_seed(2)
    x0 = torch.randn(6, 2, generator=g, dtype=torch.float64)
    eps = torch.randn(6, 2, generator=g, dtype=torch.float64)
    t = torch.tensor([0, 1, 5, 50, 150, 300])  # alpha_bar stays well conditioned here
    x_t = aggressive.noise(x0, t, eps)
    torch.testing.assert_close(aggressive.x0_from_eps(x_t, t, eps), x0, rtol=0, atol=1e-9)
    torch.testing.assert_close(aggressive.eps_from_x0(x_t, t, x0), eps, rtol=0, atol=1e-9)


def test_timesteps(aggressive: Schedule) -> None:
    assert aggressive.timesteps() == list(range(999, -1, -1))
    assert aggressive.timesteps(2) == [999, 0]
    for n in (3, 10, 50, 200, 1000):
        steps = aggressive.timesteps(n)
        assert len(steps) == n
        assert steps[0] == 999 and steps[-1] == 0
        assert all(a > b for a, b in zip(steps, steps[1:]))
    assert vsmlab.linear(4).timesteps(3) == [3, 2, 0]  # linspace(3, 0, 3) = [3, 1.5, 0], half to even
