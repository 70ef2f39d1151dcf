"""Gaussian-mixture oracle: exact score, Jacobian, posterior mean and support checks against autograd,
Tweedie's identity, numerical integration and Monte Carlo."""

from __future__ import annotations

import math

import pytest
import torch

import vsmlab
from vsmlab import GaussianMixture, Schedule


def random_points(mix: GaussianMixture, schedule: Schedule, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Points drawn around the noised marginal at random steps (float64), plus the steps [n]."""
    g = torch.Generator().manual_seed(seed)
    t = torch.randint(0, schedule.num_steps, (n,), generator=g)
    x0 = mix.sample(n, generator=g, dtype=torch.float64)
    x = schedule.noise(x0, t, generator=g) + 0.1 * torch.randn(n, mix.dim, generator=g, dtype=torch.float64)
    return x, t


def mixtures() -> list[GaussianMixture]:
    return [
        vsmlab.evenly_spaced_1d(),
        GaussianMixture([[0.0, 1.0], [2.0, -1.0], [-1.5, 0.5]], [0.3, 0.1, 0.5], [0.2, 0.5, 0.3]),
        vsmlab.grid_2d(3),
    ]


def autograd_jacobian(f, x: torch.Tensor) -> torch.Tensor:
    """Per-example Jacobian [B, d, d] of a row-wise function f: [B, d] -> [B, d]."""
    x = x.detach().requires_grad_(True)
    y = f(x)
    rows = [torch.autograd.grad(y[:, i].sum(), x, retain_graph=True)[0] for i in range(y.shape[1])]
    return torch.stack(rows, dim=1)


@pytest.mark.parametrize("mix", mixtures(), ids=["1d", "2d-3modes", "grid3"])
def test_score_is_autograd_of_log_prob(mix: GaussianMixture, aggressive: Schedule) -> None:
    x, t = random_points(mix, aggressive, 64, seed=0)
    xg = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(mix.log_prob(xg, t, aggressive).sum(), xg)
    torch.testing.assert_close(mix.score(x, t, aggressive), grad, rtol=1e-8, atol=1e-8)
    # the clean density (t=None) too
    xg = x.clone().requires_grad_(True)
    (grad0,) = torch.autograd.grad(mix.log_prob(xg).sum(), xg)
    torch.testing.assert_close(mix.score(x), grad0, rtol=1e-8, atol=1e-8)


@pytest.mark.parametrize("temperature", [1.0, 3.0, 0.5])
@pytest.mark.parametrize("mix", mixtures(), ids=["1d", "2d-3modes", "grid3"])
def test_score_jacobian_is_autograd_of_score(mix: GaussianMixture, aggressive: Schedule, temperature: float) -> None:
    x, t = random_points(mix, aggressive, 32, seed=1)
    exact = mix.score_jacobian(x, t, aggressive, temperature=temperature)
    auto = autograd_jacobian(lambda z: mix.score(z, t, aggressive, temperature=temperature), x)
    assert exact.shape == (32, mix.dim, mix.dim)
    torch.testing.assert_close(exact, auto, rtol=1e-8, atol=1e-8)
    torch.testing.assert_close(exact, exact.transpose(1, 2), rtol=0, atol=1e-10)


def test_smoothed_score_is_gradient_of_tempered_logsumexp(aggressive: Schedule) -> None:
    """s_tau = grad tau logsumexp_k(l_k / tau): check against autograd of that potential."""
    mix = mixtures()[1]
    x, t = random_points(mix, aggressive, 32, seed=2)
    tau = 2.5
    xg = x.clone().requires_grad_(True)
    _, _, _, l, _ = mix._terms(xg, aggressive.alpha_bar[t], 1.0)
    (grad,) = torch.autograd.grad((tau * torch.logsumexp(l / tau, dim=1)).sum(), xg)
    torch.testing.assert_close(mix.score(x, t, aggressive, temperature=tau), grad, rtol=1e-8, atol=1e-8)


@pytest.mark.parametrize("mix", mixtures(), ids=["1d", "2d-3modes", "grid3"])
def test_tweedie_identity(mix: GaussianMixture, aggressive: Schedule) -> None:
    """E[x0 | x_t] = (x_t + (1 - ab) score) / sqrt(ab) where ab = alpha_bar_t is not tiny."""
    usable = int((aggressive.alpha_bar > 1e-3).sum())
    x, _ = random_points(mix, aggressive, 128, seed=3)
    t = torch.randint(0, usable, (128,), generator=torch.Generator().manual_seed(4))
    ab = aggressive.alpha_bar[t][:, None]
    tweedie = (x + (1 - ab) * mix.score(x, t, aggressive)) / ab.sqrt()
    torch.testing.assert_close(mix.posterior_mean(x, t, aggressive), tweedie, rtol=1e-7, atol=1e-7)


def test_posterior_mean_limits(mix1d: GaussianMixture, aggressive: Schedule) -> None:
    # pure noise: E[x0 | x_T] is the data mean (alpha_bar_T ~ 1e-44)
    x = torch.linspace(-3, 3, 7, dtype=torch.float64)[:, None]
    t = torch.full((7,), 999)
    torch.testing.assert_close(mix1d.posterior_mean(x, t, aggressive), torch.full((7, 1), 2.0, dtype=torch.float64))
    # t = None (clean data): the per-component posterior mean with a = 1 is x itself
    torch.testing.assert_close(mix1d.posterior_mean(x), x)


@pytest.mark.parametrize("step", [None, 0, 30, 999])
def test_log_prob_integrates_to_one_1d(mix1d: GaussianMixture, aggressive: Schedule, step: int | None) -> None:
    x = torch.linspace(-8, 10, 180_001, dtype=torch.float64)[:, None]
    t = None if step is None else torch.full((x.shape[0],), step)
    density = mix1d.log_prob(x, t, aggressive if step is not None else None).exp()
    assert float(torch.trapezoid(density, x[:, 0])) == pytest.approx(1.0, abs=1e-9)


def test_log_prob_by_hand() -> None:
    mix = GaussianMixture([[0.0], [3.0]], [1.0, 0.5], [1.0, 3.0])  # weights normalise to 0.25, 0.75
    x = torch.tensor([[0.0], [3.0], [1.0]], dtype=torch.float64)

    def normal(x: float, mu: float, s: float) -> float:
        return math.exp(-0.5 * ((x - mu) / s) ** 2) / (s * math.sqrt(2 * math.pi))

    expected = [math.log(0.25 * normal(v, 0, 1) + 0.75 * normal(v, 3, 0.5)) for v in (0.0, 3.0, 1.0)]
    torch.testing.assert_close(mix.log_prob(x), torch.tensor(expected, dtype=torch.float64), rtol=0, atol=1e-12)
    close_w = torch.tensor([0.25, 0.75], dtype=torch.float64)
    torch.testing.assert_close(mix.weights, close_w)


@pytest.mark.parametrize("temperature", [1.0, 4.0])
def test_responsibilities_sum_to_one(aggressive: Schedule, temperature: float) -> None:
    for mix in mixtures():
        x, t = random_points(mix, aggressive, 50, seed=5)
        r = mix.responsibilities(x, t, aggressive, temperature=temperature)
        assert r.shape == (50, mix.num_modes)
        assert bool((r >= 0).all())
        torch.testing.assert_close(r.sum(1), torch.ones(50, dtype=torch.float64), rtol=0, atol=1e-12)


def test_sample_dtype_labels_and_moments(mix1d: GaussianMixture) -> None:
    g = torch.Generator().manual_seed(6)
    x, labels = mix1d.sample(30_000, generator=g, return_labels=True)
    assert x.shape == (30_000, 1) and x.dtype == torch.float32 and labels.shape == (30_000,)
    for k in range(3):
        xs = x[labels == k, 0].double()
        assert float(xs.mean()) == pytest.approx(k + 1.0, abs=5 * 0.05 / math.sqrt(len(xs)))
        assert float(xs.std()) == pytest.approx(0.05, rel=0.05)
    share = torch.bincount(labels, minlength=3).double() / 30_000
    assert float((share - 1 / 3).abs().max()) < 4 * math.sqrt(2 / 9 / 30_000)
    # same generator seed -> same samples
    again = mix1d.sample(30_000, generator=torch.Generator().manual_seed(6))
    assert torch.equal(x, again)


@pytest.mark.parametrize("mix,k", [(vsmlab.evenly_spaced_1d(), 2.0), (vsmlab.grid_2d(), 2.0), (vsmlab.grid_2d(), 1.0)])
def test_support_floor_matches_monte_carlo(mix: GaussianMixture, k: float) -> None:
    n = 40_000
    x = mix.sample(n, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    outside = float((~mix.in_support(x, k)).double().mean())
    floor = mix.support_floor(k)
    assert outside == pytest.approx(floor, abs=4 * math.sqrt(floor * (1 - floor) / n))


def test_support_floor_closed_forms() -> None:
    one, two = vsmlab.evenly_spaced_1d(), vsmlab.grid_2d()
    assert one.support_floor(4.0) == pytest.approx(math.erfc(4 / math.sqrt(2)), rel=1e-10)  # 6.3e-5
    assert two.support_floor(4.0) == pytest.approx(math.exp(-8.0), rel=1e-10)  # 3.4e-4


def test_grid_normalised_has_unit_global_std() -> None:
    grid = vsmlab.grid_2d()
    assert grid.num_modes == 25 and grid.dim == 2
    assert grid.global_std() == pytest.approx(1.0, rel=1e-12)
    x = grid.sample(100_000, generator=torch.Generator().manual_seed(8), dtype=torch.float64)
    assert float(x.var(0).mean().sqrt()) == pytest.approx(1.0, abs=0.01)
    raw = vsmlab.grid_2d(normalize=False)
    # spacing 2 on a 5x5 grid: per-axis variance 8 (discrete uniform on -4..4 step 2) + 0.05^2
    assert raw.global_std() == pytest.approx(math.sqrt(8 + 0.05**2), rel=1e-12)
    torch.testing.assert_close(grid.means, raw.means / raw.global_std())
    torch.testing.assert_close(grid.stds, raw.stds / raw.global_std())


def test_diamond_is_the_rotated_grid() -> None:
    grid, diamond = vsmlab.grid_2d(), vsmlab.diamond_2d()
    d_grid = torch.pdist(grid.means).sort().values
    d_diamond = torch.pdist(diamond.means).sort().values
    torch.testing.assert_close(d_grid, d_diamond, rtol=0, atol=1e-12)
    torch.testing.assert_close(diamond.stds, grid.stds)
    assert diamond.min_mode_spacing() == pytest.approx(grid.min_mode_spacing(), rel=1e-12)
    # grid neighbours are axis-aligned; diamond neighbours lie on the diagonals
    for mix, diagonal in ((grid, False), (diamond, True)):
        d = torch.cdist(mix.means, mix.means)
        d.fill_diagonal_(math.inf)
        i, j = torch.nonzero(d < mix.min_mode_spacing() * 1.001, as_tuple=True)
        delta = (mix.means[j] - mix.means[i]).abs()
        if diagonal:
            torch.testing.assert_close(delta[:, 0], delta[:, 1])
        else:
            assert bool((delta.min(1).values < 1e-12).all())


def test_nearest_mode_and_in_support_by_hand(mix1d: GaussianMixture) -> None:
    x = torch.tensor([[1.0], [1.1], [1.25], [2.19], [3.3], [0.0]])
    dist, idx = mix1d.nearest_mode(x)
    torch.testing.assert_close(dist, torch.tensor([0.0, 2.0, 5.0, 3.8, 6.0, 20.0]), rtol=0, atol=1e-5)
    assert idx.tolist() == [0, 0, 0, 1, 2, 0]
    assert mix1d.in_support(x, 4.0).tolist() == [True, True, False, True, False, False]
    assert mix1d.in_support(x, 5.5).tolist() == [True, True, True, True, False, False]


def test_between_modes_by_hand(mix1d: GaussianMixture) -> None:
    x = torch.tensor([[1.5], [0.5], [2.2], [3.5], [2.9]], dtype=torch.float64)
    i, j, between = mix1d.between_modes(x)
    assert i.tolist() == [0, 0, 1, 2, 2]
    assert between.tolist() == [True, False, True, False, True]
    assert sorted([int(i[0]), int(j[0])]) == [0, 1]
    assert [int(i[2]), int(j[2])] == [1, 2]
    grid = vsmlab.grid_2d(3, spacing=2.0, normalize=False)  # modes at -2, 0, 2 on each axis
    pts = torch.tensor([[1.0, 0.0], [1.0, 0.05], [3.0, 3.0], [-2.0, -1.0]], dtype=torch.float64)
    i, j, between = grid.between_modes(pts)
    assert between.tolist() == [True, True, False, True]
    pair = {tuple(grid.means[int(i[0])].tolist()), tuple(grid.means[int(j[0])].tolist())}
    assert pair == {(0.0, 0.0), (2.0, 0.0)}


def test_float32_inputs_answer_in_float32(mix1d: GaussianMixture, aggressive: Schedule) -> None:
    x = torch.tensor([[1.0], [2.5]])
    t = torch.tensor([0, 100])
    for out in (mix1d.score(x, t, aggressive), mix1d.posterior_mean(x, t, aggressive), mix1d.log_prob(x, t, aggressive)):
        assert out.dtype == torch.float32
    assert mix1d.score_jacobian(x, t, aggressive).shape == (2, 1, 1)


def test_tempered_log_prob_is_the_potential_of_the_smoothed_score(aggressive: Schedule) -> None:
    """log_prob(..., temperature=tau) is tau * logsumexp(l / tau): its gradient is the smoothed score."""
    mix = mixtures()[1]
    x, t = random_points(mix, aggressive, 32, seed=5)
    tau = 2.5
    xg = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(mix.log_prob(xg, t, aggressive, temperature=tau).sum(), xg)
    torch.testing.assert_close(mix.score(x, t, aggressive, temperature=tau), grad, rtol=1e-8, atol=1e-8)


@pytest.mark.parametrize("mix", mixtures(), ids=["1d", "2d-3modes", "grid3"])
@pytest.mark.parametrize("tau", [1.0, 2.5])
def test_log_prob_matches_scipy_mixture_density(mix: GaussianMixture, aggressive: Schedule, tau: float) -> None:
    """log p_t(x) = log sum_k w_k N(x; sqrt(ab_t) mu_k, (ab_t s_k^2 + 1 - ab_t) I), summed by scipy per point;
    at tau != 1 the potential tau * log sum_k (w_k N_k)^(1/tau)."""
    from scipy.stats import multivariate_normal

    x, t = random_points(mix, aggressive, 24, seed=9)
    got = mix.log_prob(x, t, aggressive, temperature=tau)
    expected = []
    for xi, ti in zip(x.numpy(), t.tolist()):
        ab = float(aggressive.alpha_bar[ti])
        logs = [math.log(float(w)) + multivariate_normal.logpdf(xi, mean=math.sqrt(ab) * mu.numpy(),
                                                                 cov=(ab * float(s) ** 2 + 1 - ab) * torch.eye(mix.dim, dtype=torch.float64).numpy())
                for mu, s, w in zip(mix.means, mix.stds, mix.weights)]
        top = max(logs)
        expected.append(tau * (top / tau + math.log(sum(math.exp((v - top) / tau) for v in logs))))
    torch.testing.assert_close(got, torch.tensor(expected, dtype=torch.float64), rtol=1e-10, atol=1e-10)
    if tau == 1.0:  # the clean density (t = None) as well
        xi = x[:1]
        dens = sum(float(w) * multivariate_normal.pdf(xi[0].numpy(), mean=mu.numpy(), cov=float(s) ** 2 * torch.eye(mix.dim, dtype=torch.float64).numpy())
                   for mu, s, w in zip(mix.means, mix.stds, mix.weights))
        if dens > 0:
            assert float(mix.log_prob(xi)) == pytest.approx(math.log(dens), rel=1e-9, abs=1e-9)
