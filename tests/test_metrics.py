"""Metrics against published and hand-computed numbers."""

from __future__ import annotations

import math

import pytest
import torch

import vsmlab
from vsmlab import Rate


@pytest.mark.parametrize(
    "count,n,low,high",
    [  # Newcombe (1998), Statistics in Medicine 17:857, Table II, method 3 (Wilson score, no correction)
        (81, 263, 0.2553, 0.3662),
        (15, 148, 0.0624, 0.1605),
        (0, 20, 0.0, 0.1611),
        (1, 29, 0.0061, 0.1718),
    ],
)
def test_wilson_interval_published_values(count: int, n: int, low: float, high: float) -> None:
    r = vsmlab.wilson_interval(count, n)
    assert isinstance(r, Rate)
    assert (r.count, r.n) == (count, n)
    assert r.rate == pytest.approx(count / n)
    assert r.low == pytest.approx(low, abs=6e-5)
    assert r.high == pytest.approx(high, abs=6e-5)


def test_wilson_interval_edges_by_hand() -> None:
    z2 = 1.959963984540054**2
    # count 0: low = 0, high = (z^2/n) / (1 + z^2/n)
    r = vsmlab.wilson_interval(0, 100)
    assert r.low == 0.0 and r.high == pytest.approx((z2 / 100) / (1 + z2 / 100), rel=1e-12)
    # count n: high = 1, low = 1 / (1 + z^2/n)
    r = vsmlab.wilson_interval(100, 100)
    assert r.high == 1.0 and r.low == pytest.approx(1 / (1 + z2 / 100), rel=1e-12)
    # symmetric around 1/2 for count = n/2
    r = vsmlab.wilson_interval(50, 100)
    assert r.low + r.high == pytest.approx(1.0, abs=1e-12)
    # a wider z widens the interval
    assert vsmlab.wilson_interval(10, 100, z=2.576).high > vsmlab.wilson_interval(10, 100).high
    assert str(vsmlab.wilson_interval(1, 1000)).startswith("0.100% [")


def test_mean_ci_by_hand() -> None:
    # mean 2, sample std 1, t_{0.975, 2} = 4.302652729911275
    ci = vsmlab.mean_ci([1.0, 2.0, 3.0])
    assert ci.mean == pytest.approx(2.0) and ci.n == 3
    assert ci.half == pytest.approx(4.302652729911275 / math.sqrt(3), rel=1e-9)
    # four values, 90%: t_{0.95, 3} = 2.3533634348018264, std of [0, 0, 2, 2] = sqrt(4/3)
    ci = vsmlab.mean_ci(torch.tensor([0.0, 0.0, 2.0, 2.0]), confidence=0.90)
    assert ci.mean == pytest.approx(1.0)
    assert ci.half == pytest.approx(2.3533634348018264 * math.sqrt(4 / 3) / 2, rel=1e-9)
    one = vsmlab.mean_ci([0.5])
    assert one.mean == 0.5 and math.isinf(one.half) and one.n == 1


def test_hallucination_rate_counts_non_finite_samples(mix1d) -> None:
    x = torch.tensor([[1.0], [2.0], [float("nan")], [float("inf")], [1.5], [3.1], [-float("inf")], [2.95]])
    r = vsmlab.hallucination_rate(x, mix1d, k=4.0)
    # in support: 1.0, 2.0, 3.1 (2 stds), 2.95 (1 std); out: nan, inf, 1.5 (10 stds), -inf
    assert (r.count, r.n) == (4, 8)
    assert r.rate == 0.5
    assert (r.low, r.high) == (vsmlab.wilson_interval(4, 8).low, vsmlab.wilson_interval(4, 8).high)
    assert vsmlab.hallucination_rate(x, mix1d, k=1.5).count == 5  # 3.1 (2 stds) is out at k = 1.5


def test_mode_counts_by_hand(mix1d) -> None:
    x = torch.tensor([[1.0], [1.02], [2.0], [3.0], [3.05], [3.1], [1.5], [float("nan")]])
    c = vsmlab.mode_counts(x, mix1d, k=4.0)
    assert c["counts"].tolist() == [2, 1, 3]
    torch.testing.assert_close(c["weights"], torch.tensor([2 / 6, 1 / 6, 3 / 6], dtype=torch.float64))
    assert c["max_weight_error"] == pytest.approx(1 / 6)
    assert c["total_variation"] == pytest.approx(0.5 * (0 + 1 / 6 + 1 / 6))


def test_gap_mass_by_hand(mix1d) -> None:
    # off-support AND between the two nearest modes: 1.5, 2.6; off but outside: 0.0, 3.5; nan: not in a gap
    x = torch.tensor([[1.5], [2.6], [0.0], [3.5], [1.0], [float("nan")], [2.05], [2.5]])
    g = vsmlab.gap_mass(x, mix1d, k=4.0)
    assert (g.count, g.n) == (3, 8)  # 1.5, 2.6 and 2.5
    assert vsmlab.hallucination_rate(x, mix1d).count == 6  # 1.5, 2.6, 0.0, 3.5, nan, 2.5


def test_gap_mass_2d_between_nearest_modes() -> None:
    grid = vsmlab.grid_2d(3, spacing=2.0, normalize=False)  # std 0.05, modes at {-2, 0, 2}^2
    x = torch.tensor([[1.0, 0.0], [0.0, -1.0], [1.0, 1.0], [3.0, 3.0], [2.0, 2.0]], dtype=torch.float64)
    g = vsmlab.gap_mass(x, grid)
    # (1,0) and (0,-1) lie on grid edges; (1,1) projects inside the segment to its nearest neighbours too
    assert g.count == 3
    assert vsmlab.hallucination_rate(x, grid).count == 4
