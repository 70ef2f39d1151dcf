"""Schedules against hand-computed values for a tiny 3-step schedule and closed-form formulas."""

from __future__ import annotations

import math

import pytest
import torch

import vsmlab
from vsmlab.core.schedules import Schedule, respace

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


# ----------------------------------------------------------------------------- tables, reverse mean, respacing
def test_tables_are_cached_per_device_and_dtype(aggressive: Schedule) -> None:
    a = aggressive.table("alpha_bar", "cpu", torch.float32)
    assert a is aggressive.table("alpha_bar", torch.device("cpu"), torch.float32)  # same object, not a copy
    assert a.dtype == torch.float32 and torch.equal(a, aggressive.alpha_bar.float())
    assert aggressive.table("alpha_bar") is aggressive.alpha_bar  # float64 CPU master itself
    meta = aggressive.table("sigma", "meta", torch.float16)
    assert meta.device.type == "meta" and meta.dtype == torch.float16 and meta.shape == (1000,)
    assert meta is aggressive.table("sigma", "meta", torch.float16)
    assert aggressive.table("sigma", "meta", torch.float32) is not meta
    with pytest.raises(ValueError, match=r"^name: expected one of \[.*'alpha_bar'.*\], got 'alphabar'"):
        aggressive.table("alphabar")
    with pytest.raises(Exception):  # frozen: the cache does not make the schedule mutable
        aggressive.betas = torch.ones(3)  # type: ignore[misc]


def test_reverse_mean_is_the_posterior_mean_at_x0_hat(tiny: Schedule, aggressive: Schedule) -> None:
    g = torch.Generator().manual_seed(1)
    for sched in (tiny, aggressive):
        T = sched.num_steps
        x_t = torch.randn(6, 2, generator=g, dtype=torch.float64)
        eps = torch.randn(6, 2, generator=g, dtype=torch.float64)
        t = torch.tensor([1, 2, T - 1, 1, 2, T - 1])
        x0 = sched.x0_from_eps(x_t, t, eps)
        torch.testing.assert_close(sched.reverse_mean(x_t, t, eps), sched.posterior_mean(x0, x_t, t), rtol=1e-9, atol=1e-9)
    # by hand on the tiny schedule at t = 2: (x - beta_2 / sqrt(1 - ab_2) eps) / sqrt(alpha_2)
    x_t, eps = torch.tensor([[0.3]], dtype=torch.float64), torch.tensor([[-0.7]], dtype=torch.float64)
    want = (0.3 - 0.3 / math.sqrt(1 - 0.504) * -0.7) / math.sqrt(0.7)
    assert float(tiny.reverse_mean(x_t, torch.tensor([2]), eps)) == pytest.approx(want, rel=1e-14)
    assert torch.equal(tiny.reverse_mean(x_t, 2, eps), tiny.reverse_mean(x_t, torch.tensor([2]), eps))
    with pytest.raises(ValueError, match=r"^t: step 3 is out of range; allowed 0\.\.2"):
        tiny.reverse_mean(x_t, 3, eps)


def test_int_steps_equal_tensor_steps(aggressive: Schedule) -> None:
    x = torch.randn(5, 3, generator=torch.Generator().manual_seed(2))
    tt = torch.full((5,), 417)
    for f in (lambda t: aggressive.noise(x, t, x), lambda t: aggressive.x0_from_eps(x, t, x),
              lambda t: aggressive.eps_from_x0(x, t, x), lambda t: aggressive.posterior_mean(x, x, t),
              lambda t: aggressive.learned_log_variance(torch.tanh(x), t)):
        assert torch.equal(f(417), f(tt))


def test_respacing_by_hand(tiny: Schedule) -> None:
    # keep steps 0 and 2: alpha_bar 0.9, 0.504 -> betas 0.1, 1 - 0.504 / 0.9 = 0.44
    r = tiny.respaced(2)
    assert r.timestep_map == (0, 2) and r.num_steps == 2
    close(r.betas, [0.1, 0.44])
    close(r.alpha_bar, [0.9, 0.504])
    close(r.beta_tilde, [0.0, 0.1 / 0.496 * 0.44])
    assert r.original_step(1) == 2 and tiny.original_step(1) == 1
    assert torch.equal(respace(tiny, 2).betas, r.betas) and respace(tiny, 2).timestep_map == r.timestep_map


def test_respacing_with_all_steps_is_the_identity(aggressive: Schedule) -> None:
    r = aggressive.respaced(1000)
    assert r.timestep_map == tuple(range(1000))
    for name in ("betas", "alpha_bar", "beta_tilde", "posterior_coef_x0", "posterior_coef_xt", "log_beta_tilde_clipped"):
        torch.testing.assert_close(getattr(r, name), getattr(aggressive, name), rtol=1e-11, atol=1e-15)


@pytest.mark.parametrize("K", [2, 10, 50, 250, 999])
def test_respaced_alpha_bar_equals_the_original_at_kept_steps(K: int) -> None:
    for sched in (vsmlab.linear(1000, 1e-3, 0.2), vsmlab.cosine(1000)):
        if K == 2 and sched.name.startswith("linear"):  # alpha_bar_999 / alpha_bar_0 ~ 1e-44: beta' = 1.0
            with pytest.raises(ValueError, match=r"^num_steps: respacing to 2 steps makes beta = 1 at step 1"):
                sched.respaced(K)
            continue
        r = sched.respaced(K)
        kept = list(r.timestep_map)
        assert kept == sorted(sched.timesteps(K)) and kept[0] == 0 and kept[-1] == 999 and len(kept) == K
        # equal up to float64 rounding of 1 - ratio (absolute ~1e-16 where alpha_bar is tiny)
        torch.testing.assert_close(r.alpha_bar, sched.alpha_bar[kept], rtol=1e-10, atol=1e-15)
        assert bool(((r.betas > 0) & (r.betas < 1)).all())
    # respacing a respaced schedule composes the maps
    twice = vsmlab.linear(1000).respaced(100).respaced(10)
    assert twice.timestep_map == tuple(vsmlab.linear(1000).respaced(100).timestep_map[t] for t in sorted(vsmlab.linear(100).timesteps(10)))


def _improved_ddpm_space_timesteps(T: int, K: int) -> list[int]:
    """improved-diffusion's space_timesteps(T, [K]) for one section (its float-stride loop)."""
    stride, cur, out = (T - 1) / (K - 1), 0.0, []
    for _ in range(K):
        out.append(round(cur))
        cur += stride
    return out


def test_kept_steps_match_improved_ddpm_for_the_usual_counts() -> None:
    s = vsmlab.linear(1000)
    for K in (10, 20, 25, 50, 100, 200, 250, 500, 1000):
        assert list(s.respaced(K).timestep_map) == _improved_ddpm_space_timesteps(1000, K), K
    # documented difference at an exact .5 tie (K = 15): one middle step differs by one
    ours, theirs = list(s.respaced(15).timestep_map), _improved_ddpm_space_timesteps(1000, 15)
    assert sum(a != b for a, b in zip(ours, theirs)) == 1 and max(abs(a - b) for a, b in zip(ours, theirs)) == 1


def test_bad_respacing_and_timestep_map(tiny: Schedule) -> None:
    with pytest.raises(ValueError, match=r"^num_steps: expected an int in 2\.\.3, got 4"):
        tiny.respaced(4)
    with pytest.raises(ValueError, match=r"^num_steps: expected an int in 2\.\.3, got True"):
        tiny.respaced(True)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"^schedule: expected a Schedule"):
        respace("linear", 2)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"^timestep_map: expected 3 increasing"):
        Schedule(torch.tensor(BETAS), timestep_map=(0, 2, 1))
