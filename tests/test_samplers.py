"""Samplers driven by the exact mixture score must reproduce the mixture.

The default 1-D mixture ({1, 2, 3}, std 0.05) with the aggressive schedule linear(1000, 1e-3, 0.2):
component weights within 4 standard errors, per-mode means within ~5 standard errors, and a
hallucination rate (k = 4) at the floor: at most 0.1%, with a Wilson interval that reaches the floor.
"""

from __future__ import annotations

import functools
import math

import pytest
import torch

import vsmlab
from vsmlab import GaussianMixture, Schedule

N_1D = 8000
K_STD = 4.0


def final_spread(mix: GaussianMixture, schedule: Schedule, k: int) -> float:
    """Per-axis std of E[x0 | x at t=0] within mode k: a s^2 / sqrt(a^2 s^2 + 1 - a^2), a = sqrt(alpha_bar_0).

    Every sampler here returns the denoised mean at its last step (no noise at t = 0), so its samples are
    narrower than the data wherever the noise at t = 0 is comparable to the mode width
    (aggressive schedule: sigma_0 = 0.032 vs std 0.05 in 1-D, 0.018 on the normalised grid).
    """
    ab, s = float(schedule.alpha_bar[0]), float(mix.stds[k])
    return math.sqrt(ab) * s * s / math.sqrt(ab * s * s + 1 - ab)


def check_reproduces(samples: torch.Tensor, mix: GaussianMixture, schedule: Schedule) -> None:
    n = samples.shape[0]
    assert samples.shape == (n, mix.dim)
    assert bool(torch.isfinite(samples).all())
    # hallucination rate at the floor
    rate = vsmlab.hallucination_rate(samples, mix, K_STD)
    floor = mix.support_floor(K_STD)
    assert rate.rate <= 1e-3, f"hallucination rate {rate} above 0.1%"
    assert rate.low <= floor, f"Wilson interval {rate} lies above the floor {floor:.2e}"
    # component weights within 4 standard errors
    counts = vsmlab.mode_counts(samples, mix, K_STD)
    w = mix.weights
    se = torch.sqrt(w * (1 - w) / n)
    err = (counts["weights"] - w).abs()
    assert bool((err <= 4 * se).all()), f"weights {counts['weights'].tolist()} vs {w.tolist()} (4 se = {(4 * se).tolist()})"
    # per-mode mean within 5 standard errors (+ a small discretisation allowance); spread of the right size
    _, idx = mix.nearest_mode(samples)
    ratios = []
    for k in range(mix.num_modes):
        xs = samples[idx == k].double()
        s = float(mix.stds[k])
        tol = 5 * s / math.sqrt(len(xs)) + 0.05 * s
        assert float((xs.mean(0) - mix.means[k]).abs().max()) <= tol, f"mode {k}: mean {xs.mean(0).tolist()}"
        ratios.append(float(xs.var(0).mean().sqrt()) / final_spread(mix, schedule, k))
    pooled = math.sqrt(sum(r * r for r in ratios) / len(ratios))  # per-mode std / expected, pooled over modes
    assert 0.8 <= pooled <= 1.3, f"within-mode spread {pooled:.3f} x the expected one (per mode: {ratios})"


SAMPLERS_1D = {
    "ddpm-beta": functools.partial(vsmlab.ddpm, variance="beta"),
    "ddpm-beta_tilde": functools.partial(vsmlab.ddpm, variance="beta_tilde"),
    "ddim-eta0": functools.partial(vsmlab.ddim, eta=0.0),
    "ddim-eta1": functools.partial(vsmlab.ddim, eta=1.0),
    "ode-heun-200": functools.partial(vsmlab.ode, method="heun", num_steps=200),
    "ode-euler-all": functools.partial(vsmlab.ode, method="euler"),
}


@pytest.mark.parametrize("name", list(SAMPLERS_1D))
def test_exact_score_sampler_reproduces_1d_mixture(name: str, mix1d: GaussianMixture, aggressive: Schedule) -> None:
    model = vsmlab.ExactScoreModel(mix1d, aggressive)
    result = SAMPLERS_1D[name](model, aggressive, shape=(N_1D, 1), generator=torch.Generator().manual_seed(0))
    check_reproduces(result.samples, mix1d, aggressive)


def test_exact_score_heun_reproduces_2d_grid(aggressive: Schedule) -> None:
    grid = vsmlab.grid_2d()
    model = vsmlab.ExactScoreModel(grid, aggressive)
    result = vsmlab.ode(model, aggressive, shape=(4000, 2), generator=torch.Generator().manual_seed(0),
                        method="heun", num_steps=100)
    check_reproduces(result.samples, grid, aggressive)


def test_exact_score_with_unequal_weights(aggressive: Schedule) -> None:
    mix = GaussianMixture([[-1.0], [1.0]], 0.1, [0.8, 0.2])
    model = vsmlab.ExactScoreModel(mix, aggressive)
    result = vsmlab.ddim(model, aggressive, shape=(6000, 1), generator=torch.Generator().manual_seed(1))
    check_reproduces(result.samples, mix, aggressive)


def test_ode_euler_equals_ddim_eta0(mix1d: GaussianMixture, aggressive: Schedule) -> None:
    model = vsmlab.ExactScoreModel(mix1d, aggressive)
    x_T = torch.randn(500, 1, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    for steps in (None, 50):
        a = vsmlab.ode(model, aggressive, x_T=x_T, method="euler", num_steps=steps).samples
        b = vsmlab.ddim(model, aggressive, x_T=x_T, eta=0.0, num_steps=steps).samples
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


def test_ddim_eta1_all_steps_is_ddpm_with_posterior_variance(mix1d: GaussianMixture, aggressive: Schedule) -> None:
    """sig^2 = (1 - a_s)/(1 - a_t) (1 - a_t/a_s) = beta_tilde_t; same generator -> same noise draws."""
    model = vsmlab.ExactScoreModel(mix1d, aggressive)
    a = vsmlab.ddim(model, aggressive, shape=(500, 1), generator=torch.Generator().manual_seed(3), eta=1.0).samples
    b = vsmlab.ddpm(model, aggressive, shape=(500, 1), generator=torch.Generator().manual_seed(3), variance="beta_tilde").samples
    torch.testing.assert_close(a, b, rtol=0, atol=1e-4)


def test_same_seed_same_samples(mix1d: GaussianMixture, aggressive: Schedule) -> None:
    model = vsmlab.ExactScoreModel(mix1d, aggressive)
    runs = [vsmlab.ddpm(model, aggressive, shape=(64, 1), generator=torch.Generator().manual_seed(4)).samples for _ in range(2)]
    assert torch.equal(runs[0], runs[1])
    other = vsmlab.ddpm(model, aggressive, shape=(64, 1), generator=torch.Generator().manual_seed(5)).samples
    assert not torch.equal(runs[0], other)


def test_sample_dispatch_matches_direct_call(mix1d: GaussianMixture, aggressive: Schedule) -> None:
    model = vsmlab.ExactScoreModel(mix1d, aggressive)
    x_T = torch.randn(32, 1, generator=torch.Generator().manual_seed(6))
    direct = vsmlab.ode(model, aggressive, x_T=x_T, method="heun", num_steps=20).samples
    via = vsmlab.sample("ode", model, aggressive, x_T=x_T, method="heun", num_steps=20).samples
    assert torch.equal(direct, via)
    assert torch.equal(x_T, torch.randn(32, 1, generator=torch.Generator().manual_seed(6)))  # x_T not modified


def test_record_shapes(mix1d: GaussianMixture, aggressive: Schedule) -> None:
    model = vsmlab.ExactScoreModel(mix1d, aggressive)
    x_T = torch.randn(8, 1, generator=torch.Generator().manual_seed(7))
    full = vsmlab.ddpm(model, aggressive, x_T=x_T, generator=torch.Generator().manual_seed(8), record=True)
    assert full.timesteps == list(range(999, -1, -1))
    assert full.x_t.shape == (1000, 8, 1) and full.x0_hat.shape == (1000, 8, 1)
    assert torch.equal(full.x_t[0], x_T)  # the first recorded state is the starting noise
    last = vsmlab.ddpm(model, aggressive, x_T=x_T, generator=torch.Generator().manual_seed(8), record_last=10)
    assert last.x_t.shape == (10, 8, 1) and last.x0_hat.shape == (10, 8, 1)
    assert torch.equal(last.x_t, full.x_t[-10:]) and torch.equal(last.x0_hat, full.x0_hat[-10:])
    assert torch.equal(last.samples, full.samples)
    # x0_hat at step t is the ideal denoiser of the state the model saw (where alpha_bar is not tiny)
    t0 = torch.zeros(8, dtype=torch.long)
    torch.testing.assert_close(full.x0_hat[-1], mix1d.posterior_mean(full.x_t[-1], t0, aggressive), rtol=1e-4, atol=1e-4)
    plain = vsmlab.ddpm(model, aggressive, x_T=x_T, generator=torch.Generator().manual_seed(8))
    assert plain.x_t is None and plain.x0_hat is None

    ddim = vsmlab.ddim(model, aggressive, x_T=x_T, num_steps=50, record=True)
    assert len(ddim.timesteps) == 50 and ddim.x_t.shape == (50, 8, 1)
    heun = vsmlab.ode(model, aggressive, x_T=x_T, num_steps=30, record_last=5)
    assert heun.x_t.shape == (5, 8, 1) and heun.x0_hat.shape == (5, 8, 1)
    two_d = vsmlab.ddim(vsmlab.ExactScoreModel(vsmlab.grid_2d(2), aggressive), aggressive, shape=(3, 2),
                        generator=torch.Generator().manual_seed(9), num_steps=10, record=True)
    assert two_d.samples.shape == (3, 2) and two_d.x_t.shape == (10, 3, 2) and two_d.x0_hat.shape == (10, 3, 2)


def test_the_check_has_teeth_coarse_ddim_hallucinates(mix1d: GaussianMixture, aggressive: Schedule) -> None:
    """Negative control: DDIM with only 100 steps puts ~2% of samples in the gaps even with the exact
    score (the jumps near the mode-switching band are too coarse), and the reproduction check catches it."""
    model = vsmlab.ExactScoreModel(mix1d, aggressive)
    samples = vsmlab.ddim(model, aggressive, shape=(N_1D, 1), generator=torch.Generator().manual_seed(0),
                          num_steps=100).samples
    rate = vsmlab.hallucination_rate(samples, mix1d, K_STD)
    assert rate.low > 10 * mix1d.support_floor(K_STD)
    with pytest.raises(AssertionError, match="hallucination rate"):
        check_reproduces(samples, mix1d, aggressive)
