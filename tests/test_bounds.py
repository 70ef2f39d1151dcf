"""The Lipschitz lower bound on off-support mass, against exact Gaussians and smoothed mixture densities."""

from __future__ import annotations

import math

import pytest
import torch
from scipy.stats import norm

from vsmlab import GaussianMixture, evenly_spaced_1d, linear
from vsmlab.analysis.bounds import (
    ball_mass_lower_bound,
    density_floor,
    gap_intervals_1d,
    interval_mass,
    interval_mass_lower_bound,
    smoothed_density_1d,
)

SCHEDULE = linear(1000, 1e-3, 0.2)




def test_single_gaussian_interval_bound_is_its_exact_probability():
    # N(mu, v): score -(x - mu)/v is (1/v)-Lipschitz, the bound (1) is the density itself
    mu, v = 0.3, 0.2
    p_star = 1 / math.sqrt(2 * math.pi * v)
    for a, b in ((0.5, 1.2), (-math.inf, -0.4), (0.1, 0.4), (2.0, math.inf)):
        exact = norm.cdf(b, mu, math.sqrt(v)) - norm.cdf(a, mu, math.sqrt(v))
        assert interval_mass_lower_bound(1 / v, [mu], [p_star], [(a, b)]) == pytest.approx(exact, rel=1e-10)


def test_single_gaussian_ball_bound_is_its_exact_probability_monte_carlo():
    d, v = 3, 0.5
    mode = torch.tensor([0.2, -0.1, 0.4], dtype=torch.float64)
    p_star = (2 * math.pi * v) ** (-d / 2)
    centre, radius = torch.tensor([1.0, 0.5, 0.0], dtype=torch.float64), 0.8
    bound = ball_mass_lower_bound(1 / v, mode, p_star, centre, radius)
    x = mode + math.sqrt(v) * torch.randn(400_000, d, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    hits = ((x - centre).norm(dim=1) <= radius).double()
    mc, se = float(hits.mean()), float(hits.std() / math.sqrt(hits.numel()))
    assert abs(bound - mc) <= 4 * se
    # at the mode itself: chi-square probability
    assert ball_mass_lower_bound(1 / v, mode, p_star, mode, radius) == pytest.approx(
        float(__import__("scipy.stats").stats.chi2.cdf(radius**2 / v, d)), rel=1e-10)


def test_envelope_bound_between_best_single_mode_and_sum():
    modes, dens, L = [0.0, 1.0, 2.5], [1.0, 0.5, 2.0], 7.0
    intervals = [(0.3, 0.8), (1.4, 2.0)]
    env = interval_mass_lower_bound(L, modes, dens, intervals)
    singles = [interval_mass_lower_bound(L, [m], [p], intervals) for m, p in zip(modes, dens)]
    assert max(singles) <= env * (1 + 1e-12) and env <= sum(singles) * (1 + 1e-12)
    # and it equals a fine numerical integral of the pointwise floor
    x = torch.linspace(0.3, 0.8, 200_001, dtype=torch.float64)
    y = torch.linspace(1.4, 2.0, 200_001, dtype=torch.float64)
    num = sum(float(torch.trapezoid(density_floor(z[:, None], L, modes, dens), z)) for z in (x, y))
    assert env == pytest.approx(num, rel=1e-8)


def test_gap_intervals():
    flat = lambda gaps: [e for gap in gaps for e in gap]
    assert flat(gap_intervals_1d([1, 2, 3], 0.2)) == pytest.approx([1.2, 1.8, 2.2, 2.8])
    assert flat(gap_intervals_1d([3, 1], [0.6, 0.2])) == pytest.approx([1.2, 2.4])
    assert gap_intervals_1d([1, 2], 0.6) == []
    tails = gap_intervals_1d([1, 2], 0.1, include_tails=True)
    assert tails[0][0] == -math.inf and tails[-1][1] == math.inf and len(tails) == 3


def test_smoothed_density_is_normalised_and_its_score_is_the_mixture_score():
    mix = evenly_spaced_1d(3)
    sd = smoothed_density_1d(mix, SCHEDULE, 3, temperature=2.0, num_points=20_001)
    assert interval_mass(sd.grid, sd.density, [(-math.inf, math.inf)]) == pytest.approx(1.0, rel=1e-9)
    # d log p / dx on the grid (finite differences) equals the smoothed score
    logp = torch.log(sd.density)
    fd = (logp[2:] - logp[:-2]) / (sd.grid[2:] - sd.grid[:-2])
    assert torch.allclose(fd, sd.score[1:-1], rtol=1e-4, atol=1e-3 * float(sd.score.abs().max()))
    assert sd.modes.numel() == 3 and sd.one_sided <= sd.lipschitz
    tt = torch.full((sd.modes.numel(),), 3)
    assert torch.all(mix.score(sd.modes[:, None], tt, SCHEDULE, temperature=2.0).abs() < 1e-8)


def _cases():
    """(mixture, t, temperature, k) over a grid where the k-std support leaves gaps."""
    for mix in (evenly_spaced_1d(3), GaussianMixture(torch.tensor([1.0, 2.0, 4.0, 5.0])[:, None], 0.05)):
        for t in (0, 2, 5, 10, 20):
            for temperature in (0.5, 1.0, 1.5, 3.0, 10.0, 100.0):
                for k in (2.0, 4.0):
                    yield mix, t, temperature, k


@pytest.mark.slow
def test_gap_mass_of_smoothed_exact_scores_never_falls_below_the_bound():
    checked, sharp, broken = 0, 0, 0
    for mix, t, temperature, k in _cases():
        sd = smoothed_density_1d(mix, SCHEDULE, t, temperature, num_points=40_001)
        for tails in (False, True):
            gaps = gap_intervals_1d(sd.centres, k * sd.stds, include_tails=tails)
            if not gaps:
                continue
            mass = interval_mass(sd.grid, sd.density, gaps)
            for L in (sd.lipschitz, sd.one_sided):
                bound = interval_mass_lower_bound(L, sd.modes, sd.mode_densities, gaps)
                # quadrature error of the mass is < 1e-7 relative on this grid
                assert mass >= bound * (1 - 1e-6), (t, temperature, k, tails, L, mass, bound)
                checked += 1
            one_sided = interval_mass_lower_bound(sd.one_sided, sd.modes, sd.mode_densities, gaps)
            sharp += one_sided >= 0.5 * mass
            # the test has teeth: understating L (here by a factor 2) breaks the inequality somewhere
            broken += interval_mass_lower_bound(sd.one_sided / 2, sd.modes, sd.mode_densities, gaps) > mass
    assert checked >= 100
    assert sharp >= 10  # the one-sided bound is nearly tight where the modes are well separated
    assert broken >= 10


def test_bound_decays_exponentially_in_lipschitz():
    # log bound ~ -L delta^2 / 2 for a gap at distance delta from the mode
    delta = 0.5
    Ls = torch.tensor([50.0, 100.0, 200.0, 400.0])
    logs = torch.tensor([math.log(interval_mass_lower_bound(float(L), [0.0], [1.0], [(delta, delta + 0.1)])) for L in Ls])
    slopes = (logs[1:] - logs[:-1]) / (Ls[1:] - Ls[:-1])
    assert torch.all(slopes < -0.5 * delta**2 * 0.95) and torch.all(slopes > -0.5 * (delta + 0.1) ** 2 * 1.05)


def test_bad_inputs():
    with pytest.raises(ValueError, match="lipschitz"):
        interval_mass_lower_bound(0.0, [0.0], [1.0], [(0, 1)])
    with pytest.raises(ValueError, match="lipschitz"):
        ball_mass_lower_bound(-1.0, [0.0], [1.0], [0.0], 1.0)
    with pytest.raises(ValueError, match="mode_densities"):
        interval_mass_lower_bound(1.0, [0.0], [0.0], [(0, 1)])
    with pytest.raises(ValueError, match="modes, mode_densities"):
        interval_mass_lower_bound(1.0, [0.0, 1.0], [1.0], [(0, 1)])
    with pytest.raises(ValueError, match="intervals"):
        interval_mass_lower_bound(1.0, [0.0], [1.0], [(1, 0)])
    with pytest.raises(ValueError, match="radius"):
        ball_mass_lower_bound(1.0, [0.0], [1.0], [0.0], 0.0)
    with pytest.raises(ValueError, match="temperature"):
        smoothed_density_1d(evenly_spaced_1d(), SCHEDULE, 0, temperature=0.0)
    with pytest.raises(ValueError, match="1-D mixture"):
        smoothed_density_1d(GaussianMixture(torch.zeros(2, 2), 0.1), SCHEDULE, 0)
