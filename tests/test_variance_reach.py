"""vsmlab.analysis.variance_reach: the VSM penalty's reach per t against autograd and hand formulas."""

from __future__ import annotations

import math

import pytest
import torch

import vsmlab
from vsmlab.analysis.variance_reach import default_reach_steps, penalty_reach, reach_summary
from vsmlab.diffusion.variance import vsm_penalty, vsm_weight

SCHEDULES = {
    "toy linear 1e-3..0.2": lambda: vsmlab.linear(1000, 1e-3, 0.2),
    "DDPM linear 1e-4..0.02": lambda: vsmlab.linear(1000),
    "cosine": lambda: vsmlab.cosine(1000),
    "short linear": lambda: vsmlab.linear(50, 1e-3, 0.2),
}


@pytest.mark.parametrize("name", list(SCHEDULES))
@pytest.mark.parametrize("time_weight", [True, False])
def test_gradient_matches_autograd(name: str, time_weight: bool) -> None:
    """w(t) dP/dv at v = -1 and v = 1 (closed form) against autograd through the library's own
    learned_log_variance and vsm_penalty, for every t."""
    schedule = SCHEDULES[name]()
    reach = penalty_reach(schedule, rho=0.3, time_weight=time_weight)
    T = schedule.num_steps
    t = torch.arange(T)
    w = vsm_weight(t, schedule, 0.3, time_weight)
    for end, closed in ((-1.0, reach.grad_low), (1.0, reach.grad_high)):
        v = torch.full((T, 1), end, dtype=torch.float64, requires_grad=True)
        value = w * vsm_penalty(schedule.learned_log_variance(v, t))
        (grad,) = torch.autograd.grad(value.sum(), v)
        # where L_t ~ 1e-16 (the range closed) both sides are rounding noise of size w Sigma^2 1e-16
        atol = float((w * schedule.betas**2).max()) * 1e-15
        torch.testing.assert_close(closed, grad[:, 0], rtol=1e-10, atol=atol)
        torch.testing.assert_close(value.detach(), reach.penalty_low if end < 0 else reach.penalty_high, rtol=1e-12, atol=0)
    assert bool((reach.grad_high >= reach.grad_low).all())  # dP/dv grows with Sigma in [beta_tilde, beta] (Sigma < 1)


@pytest.mark.parametrize("name", list(SCHEDULES))
def test_value_range_endpoints(name: str) -> None:
    schedule = SCHEDULES[name]()
    r = penalty_reach(schedule, rho=0.1)
    beta, bt = schedule.betas, schedule.beta_tilde.clone()
    bt[0] = bt[1]  # improved DDPM's clipping at t = 0
    w = 0.1 / torch.sqrt(1 - schedule.alpha_bar)
    torch.testing.assert_close(r.beta, beta, rtol=1e-13, atol=0)
    torch.testing.assert_close(r.beta_tilde, bt, rtol=1e-13, atol=0)
    torch.testing.assert_close(r.weight, w, rtol=1e-14, atol=0)
    torch.testing.assert_close(r.penalty_low, w * bt**2 / (1 + bt**2), rtol=1e-12, atol=0)
    torch.testing.assert_close(r.penalty_high, w * beta**2 / (1 + beta**2), rtol=1e-12, atol=0)
    assert bool((r.penalty_range >= 0).all())
    torch.testing.assert_close(r.log_width, torch.log(beta / bt), rtol=1e-9, atol=1e-14)
    # the most a variance-only penalty can do from Sigma = beta_t: 1 - beta_tilde / beta (std: 1 - sqrt(.))
    torch.testing.assert_close(r.sigma_change, 1 - bt / beta, rtol=1e-9, atol=1e-14)
    torch.testing.assert_close(r.std_change, 1 - torch.sqrt(bt / beta), rtol=1e-9, atol=1e-14)
    # from the middle of the range (frac 1/2): 1 - sqrt(beta_tilde / beta); from a per-t frac tensor: the same
    half = penalty_reach(schedule, frac=0.5)
    torch.testing.assert_close(half.sigma_change, 1 - torch.sqrt(bt / beta), rtol=1e-9, atol=1e-14)
    per_t = penalty_reach(schedule, frac=torch.full((schedule.num_steps,), 0.5))
    assert torch.equal(per_t.sigma_change, half.sigma_change) and per_t.frac is None
    assert penalty_reach(schedule, time_weight=False).weight.eq(0.1).all()


def test_log_width_vanishes_at_large_t() -> None:
    """L_t = log(beta_t / beta_tilde_t) ~ beta_t alpha_bar_{t-1} / (1 - alpha_bar_t) -> 0: the range closes."""
    ddpm = penalty_reach(vsmlab.linear(1000))
    toy = penalty_reach(vsmlab.linear(1000, 1e-3, 0.2))
    cos = penalty_reach(vsmlab.cosine(1000))
    for r in (ddpm, toy, cos):
        assert float(r.log_width[1]) > 0.7 and float(r.log_width[0]) > 0.6  # wide at the first steps
        assert bool((r.log_width[1:].diff() <= 1e-15).all())  # and narrowing with t
    assert float(ddpm.log_width[500:].max()) < 1e-3 and float(ddpm.log_width[200:].max()) < 1e-2
    assert float(toy.log_width[200:].max()) < 1e-3 and float(toy.log_width[500:].max()) < 1e-12
    assert float(cos.log_width[500:-1].max()) < 4e-3
    # so the largest change of Sigma is below 1% from t = 200 (DDPM) and t = 110 (toy) on
    assert float(ddpm.sigma_change[200:].max()) < 0.01 and float(toy.sigma_change[110:].max()) < 0.01


def test_summary_table_and_errors() -> None:
    schedule = vsmlab.linear(1000)
    text = reach_summary(schedule, steps=[0, 10, 999])
    lines = text.splitlines()
    assert len(lines) == 5 and "linear(0.0001..0.02, T=1000)" in lines[0] and "rho = 0.1" in lines[0]
    assert [ln.split()[0] for ln in lines[2:]] == ["0", "10", "999"]
    rows = penalty_reach(schedule).rows([10])
    assert rows[0]["t"] == 10 and rows[0]["beta"] == pytest.approx(float(schedule.betas[10]))
    assert default_reach_steps(1000) == [0, 1, 2, 5, 10, 20, 50, 100, 200, 500, 999]
    assert default_reach_steps(30) == [0, 1, 2, 5, 10, 20, 29]
    assert "constant rho = 1" in reach_summary(schedule, rho=1.0, time_weight=False)
    with pytest.raises(ValueError, match="^rho:"):
        penalty_reach(schedule, rho=-1.0)
    with pytest.raises(ValueError, match="^steps:"):
        reach_summary(schedule, steps=[1000])
    with pytest.raises(ValueError, match="^frac:"):
        penalty_reach(schedule, frac=math.nan)
    with pytest.raises(ValueError, match="^frac:"):
        penalty_reach(schedule, frac=torch.ones(3))
    with pytest.raises(ValueError, match="^time_weight:"):
        penalty_reach(schedule, time_weight=1)
