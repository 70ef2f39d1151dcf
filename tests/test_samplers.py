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
from vsmlab.analysis.detectors import trajectory_variance

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


# ----------------------------------------------------------------------------- respacing and recording
DDPM = vsmlab.linear(1000)  # DDPM's own schedule, 1e-4 .. 0.02
RESPACED = {
    "linear-250-beta_tilde": (DDPM, 250, "beta_tilde"),
    "linear-250-beta": (DDPM, 250, "beta"),
    "cosine-250-beta_tilde": (vsmlab.cosine(1000), 250, "beta_tilde"),
}


@pytest.mark.parametrize("name", list(RESPACED))
def test_respaced_ddpm_with_the_exact_score_reproduces_the_mixture(name: str, mix1d: GaussianMixture) -> None:
    schedule, K, variance = RESPACED[name]
    model = vsmlab.ExactScoreModel(mix1d, schedule)
    result = vsmlab.ddpm(model, schedule, shape=(N_1D, 1), generator=torch.Generator().manual_seed(0),
                         num_steps=K, variance=variance)
    assert len(result.timesteps) == K and result.timesteps[0] == 999 and result.timesteps[-1] == 0
    check_reproduces(result.samples, mix1d, schedule)


def test_respaced_ddpm_check_has_teeth(mix1d: GaussianMixture) -> None:
    """Negative control: 100 respaced steps with the posterior variance under-disperse each mode (the
    reverse step drops Var[x0 | x_t], large for large jumps): the spread check catches it."""
    model = vsmlab.ExactScoreModel(mix1d, DDPM)
    samples = vsmlab.ddpm(model, DDPM, shape=(N_1D, 1), generator=torch.Generator().manual_seed(0),
                          num_steps=100, variance="beta_tilde").samples
    with pytest.raises(AssertionError, match="within-mode spread"):
        check_reproduces(samples, mix1d, DDPM)


class _Spy(torch.nn.Module):
    """Records the t the sampler passes; eps = exact score's; optional constant v head."""

    def __init__(self, inner, v: float | None = None) -> None:
        super().__init__()
        self.inner, self.v, self.seen = inner, v, []

    def forward(self, x, t):
        self.seen.append(int(t[0]))
        eps = self.inner(x, t).eps
        return vsmlab.Prediction(eps, None if self.v is None else torch.full_like(x, self.v))


def test_respaced_ddpm_calls_the_model_with_original_steps(mix1d: GaussianMixture) -> None:
    spy = _Spy(vsmlab.ExactScoreModel(mix1d, DDPM))
    res = vsmlab.ddpm(spy, DDPM, shape=(16, 1), generator=torch.Generator().manual_seed(1), num_steps=10)
    kept = sorted(DDPM.timesteps(10), reverse=True)
    assert spy.seen == kept == res.timesteps
    # the same run on a schedule respaced beforehand
    again = vsmlab.ddpm(spy, DDPM.respaced(10), shape=(16, 1), generator=torch.Generator().manual_seed(1))
    assert torch.equal(again.samples, res.samples) and again.timesteps == kept
    # DDIM and the ODE visit the same subsequence
    for sampler in (vsmlab.ddim, vsmlab.ode):
        spy.seen.clear()
        out = sampler(spy, DDPM, shape=(4, 1), generator=torch.Generator().manual_seed(2), num_steps=10)
        assert out.timesteps == kept and spy.seen[:1] == [999] and set(spy.seen) == set(kept)
    # DDIM on the respaced schedule (its own alpha_bar, equal up to rounding) matches num_steps=K
    x_T = torch.randn(64, 1, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    model = vsmlab.ExactScoreModel(mix1d, DDPM)
    a = vsmlab.ddim(model, DDPM, x_T=x_T, num_steps=50).samples
    b = vsmlab.ddim(model, DDPM.respaced(50), x_T=x_T).samples
    torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9)


def test_respaced_learned_variance_uses_the_respaced_betas(mix1d: GaussianMixture) -> None:
    """v = 1 gives Sigma = beta'_i and v = -1 gives beta_tilde'_i of the respaced schedule: the learned
    path equals the fixed ones with the same draws (and differs from the un-respaced betas)."""
    model = vsmlab.ExactScoreModel(mix1d, DDPM)
    x_T = torch.randn(256, 1, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    run = lambda m, var: vsmlab.ddpm(m, DDPM, x_T=x_T, generator=torch.Generator().manual_seed(5), num_steps=20,
                                     variance=var).samples
    torch.testing.assert_close(run(_Spy(model, 1.0), "learned"), run(model, "beta"), rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(run(_Spy(model, -1.0), "learned"), run(model, "beta_tilde"), rtol=1e-10, atol=1e-10)
    assert not torch.allclose(run(model, "beta"), run(model, "beta_tilde"), atol=1e-3)


def test_record_every_and_record_device(mix1d: GaussianMixture, aggressive: Schedule) -> None:
    model = vsmlab.ExactScoreModel(mix1d, aggressive)
    x_T = torch.randn(8, 1, generator=torch.Generator().manual_seed(7))
    g = lambda: torch.Generator().manual_seed(8)
    full = vsmlab.ddpm(model, aggressive, x_T=x_T, generator=g(), record=True)
    assert full.recorded_steps == full.timesteps
    every = vsmlab.ddpm(model, aggressive, x_T=x_T, generator=g(), record=True, record_every=100, record_device="cpu")
    assert every.recorded_steps == list(range(900, -1, -100))  # counted back from t = 0, which is always kept
    assert torch.equal(every.x_t, full.x_t[99::100]) and torch.equal(every.x0_hat, full.x0_hat[99::100])
    assert torch.equal(every.samples, full.samples) and every.x_t.device.type == "cpu"
    tail = vsmlab.ode(model, aggressive, x_T=x_T, num_steps=30, record_last=7, record_every=3)
    assert tail.recorded_steps == tail.timesteps[-7:][::-1][::3][::-1] and tail.x0_hat.shape == (3, 8, 1)
    with pytest.raises(ValueError, match=r"^record_every: expected an int >= 1, got 0"):
        vsmlab.ddim(model, aggressive, x_T=x_T, record=True, record_every=0)
    with pytest.raises(ValueError, match=r"^record_every: 5 has no effect without record=True or record_last"):
        vsmlab.ddim(model, aggressive, x_T=x_T, record_every=5)
    with pytest.raises(ValueError, match=r"^trajectory: its last 3 recorded steps"):
        trajectory_variance(every, k=3)


def test_dtype_and_device_arguments(mix1d: GaussianMixture, aggressive: Schedule) -> None:
    model = vsmlab.ExactScoreModel(mix1d, aggressive)
    out = vsmlab.ddim(model, aggressive, shape=(5, 1), generator=torch.Generator().manual_seed(0), num_steps=10,
                      device="cpu", dtype=torch.float64)
    assert out.samples.dtype == torch.float64
    x_T = torch.randn(5, 1, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert torch.equal(out.samples, vsmlab.ddim(model, aggressive, x_T=x_T, num_steps=10).samples)
    with pytest.raises(ValueError, match=r"^dtype: torch.float32 differs from x_T's dtype"):
        vsmlab.ddim(model, aggressive, x_T=x_T, dtype=torch.float32)
    with pytest.raises(ValueError, match=r"^device: 'meta' differs from x_T's device 'cpu'"):
        vsmlab.ddim(model, aggressive, x_T=x_T, device="meta")


def test_clip_x0_keeps_images_bounded_where_the_plain_step_explodes() -> None:
    """improved DDPM's clip_denoised: with x0_hat clipped to [-1, 1] a cosine schedule's first step (beta ~
    0.999) cannot amplify an eps error; without it the same wrong model sends pixels far outside [-1, 1]."""
    sched = vsmlab.cosine(100)

    def wrong(x, t):  # the right eps for x0 = 0 at the first step is x_T itself: a constant 0.5 is wrong
        return vsmlab.Prediction(eps=torch.full_like(x, 0.5))

    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    plain = vsmlab.ddpm(wrong, sched, shape=(64, 16), generator=g(), variance="beta_tilde").samples
    clipped = vsmlab.ddpm(wrong, sched, shape=(64, 16), generator=g(), variance="beta_tilde", clip_x0=True)
    assert plain.abs().max() > 5
    assert clipped.samples.abs().max() <= 1.5
    rec = vsmlab.ddpm(wrong, sched, shape=(8, 16), generator=g(), clip_x0=True, record=True)
    assert rec.x0_hat.abs().max() <= 1
    ddim = vsmlab.ddim(wrong, sched, shape=(64, 16), generator=g(), num_steps=20, clip_x0=True).samples
    assert ddim.abs().max() <= 1.5


def test_clip_x0_changes_nothing_when_x0_hat_stays_in_range(mix1d) -> None:
    sched = vsmlab.linear(200)
    model = vsmlab.ExactScoreModel(vsmlab.GaussianMixture(mix1d.means / 4, mix1d.stds / 4, mix1d.weights), sched)
    x_T = torch.randn(256, 1, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    g = lambda: torch.Generator().manual_seed(2)  # noqa: E731
    a = vsmlab.ddpm(model, sched, x_T=x_T, generator=g(), variance="beta_tilde").samples
    b = vsmlab.ddpm(model, sched, x_T=x_T, generator=g(), variance="beta_tilde", clip_x0=True).samples
    inside = (a.abs() < 0.9).all()
    assert inside and torch.allclose(a, b, atol=1e-6)


# ----------------------------------------------------------------------------- variance override (ceiling)
def _learned(mix1d: GaussianMixture, schedule: Schedule, v_of_x=None):
    """The exact score's eps with a hand-made v head: v = v_of_x(x) (default: 3 x, unbounded)."""
    inner = vsmlab.ExactScoreModel(mix1d, schedule)
    v_of_x = v_of_x or (lambda x: 3 * x)

    def model(x, t):
        return vsmlab.Prediction(inner(x, t).eps, v_of_x(x))

    return model, inner


@pytest.mark.parametrize("steps, num_steps", [(100, None), (1000, 20)])
def test_variance_frac_0_and_1_are_beta_tilde_and_beta_exactly(mix1d: GaussianMixture, steps, num_steps) -> None:
    """frac forced to 0 / 1 gives the fixed-variance samplers' samples bit for bit (same noise draws), and
    the model's own v gives different samples; an interior frac equals a constant v = 2 f - 1."""
    sched = vsmlab.linear(steps)
    model, fixed = _learned(mix1d, sched)
    x_T = torch.randn(256, 1, generator=torch.Generator().manual_seed(4), dtype=torch.float64)

    def run(m, **kw):
        g = torch.Generator().manual_seed(5)
        out = vsmlab.ddpm(m, sched, x_T=x_T, generator=g, num_steps=num_steps, **kw)
        return out, g.get_state()

    low, g_low = run(model, variance_frac=0.0)
    high, g_high = run(model, variance_frac=1.0)
    own, g_own = run(model)
    assert torch.equal(low.samples, run(fixed, variance="beta_tilde")[0].samples)
    assert torch.equal(high.samples, run(fixed, variance="beta")[0].samples)
    assert torch.equal(g_low, g_own) and torch.equal(g_high, g_own)  # the same draws, in the same order
    assert not torch.allclose(own.samples, low.samples, atol=1e-3)
    half, _ = run(model, variance_frac=0.25)
    const = run(lambda x, t: vsmlab.Prediction(fixed(x, t).eps, torch.full_like(x, -0.5)))[0]
    torch.testing.assert_close(half.samples, const.samples, rtol=1e-10, atol=1e-10)
    assert low.frac is not None and high.frac is not None  # the model's own v is still counted


def test_frac_counts_how_often_v_leaves_the_range(mix1d: GaussianMixture) -> None:
    """v fixed per example at -2, -1.5, -1, 0, 1, 1.5, 2, 3 (frac -0.5 .. 2): at every noise-drawing step
    2 elements below 0 and 3 above 1; t = 0 (no noise) is not counted."""
    v = torch.tensor([-2.0, -1.5, -1.0, 0.0, 1.0, 1.5, 2.0, 3.0], dtype=torch.float64)[:, None]
    model, fixed = _learned(mix1d, DDPM, lambda x: v.expand_as(x))
    x_T = torch.randn(8, 1, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    out = vsmlab.ddpm(model, DDPM, x_T=x_T, generator=torch.Generator().manual_seed(1), num_steps=10,
                      variance_frac=0.0)
    c = out.frac
    assert c.steps == out.timesteps[:-1] and c.per_step == 8 and c.total == 72
    assert c.below.tolist() == [2] * 9 and c.above.tolist() == [3] * 9
    assert c.low.tolist() == [-0.5] * 9 and c.high.tolist() == [2.0] * 9
    s = c.summary()
    assert s["share_below"] == pytest.approx(2 / 8) and s["share_above"] == pytest.approx(3 / 8)
    assert s["share_outside"] == pytest.approx(5 / 8) and (s["min_frac"], s["max_frac"]) == (-0.5, 2.0)
    assert s["steps_outside"] == 9
    inside = vsmlab.ddpm(_learned(mix1d, DDPM, lambda x: torch.zeros_like(x))[0], DDPM, x_T=x_T,
                         generator=torch.Generator().manual_seed(1), num_steps=10).frac.summary()
    assert inside["share_outside"] == 0 and inside["min_frac"] == inside["max_frac"] == 0.5
    assert vsmlab.ddpm(fixed, DDPM, x_T=x_T, generator=torch.Generator().manual_seed(1), num_steps=10).frac is None


@pytest.mark.parametrize("value", [-0.1, 1.5, float("nan"), True, "0"])
def test_variance_frac_outside_0_1_is_refused(mix1d: GaussianMixture, value) -> None:
    model, _ = _learned(mix1d, DDPM)
    with pytest.raises(ValueError, match=r"^variance_frac: expected a number in \[0, 1\]"):
        vsmlab.ddpm(model, DDPM, shape=(4, 1), generator=torch.Generator().manual_seed(0), variance_frac=value)


def test_variance_frac_needs_a_learned_variance_model(mix1d: GaussianMixture) -> None:
    model, fixed = _learned(mix1d, DDPM)
    with pytest.raises(ValueError, match=r"^variance_frac: 0\.0 .*does not learn its variance"):
        vsmlab.ddpm(fixed, DDPM, shape=(4, 1), generator=torch.Generator().manual_seed(0), variance_frac=0.0)
    with pytest.raises(ValueError, match=r"^variance_frac: 1\.0 .*conflicts with variance='beta'"):
        vsmlab.ddpm(model, DDPM, shape=(4, 1), generator=torch.Generator().manual_seed(0), variance="beta",
                    variance_frac=1.0)
