"""The answer table's rules (vsmlab.analysis.answer) and the forced-variance ceiling's pairing by noise."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from vsmlab.analysis.answer import (
    AnswerRow, Interval, answer_table, ceiling, paired_interval, reduction_verdict, sigma_shift,
)


@pytest.mark.parametrize("low, high, verdict", [
    (-0.02, 0.03, "yes"),      # 25% of 0.10 is 0.025: the cut lies below the interval
    (-0.025, 0.01, "no"),      # the interval reaches the cut exactly and not a 25% rise
    (-0.06, -0.03, "no"),      # a reduction larger than 25%, inside the interval
    (-0.03, 0.025, "uninformative"),
    (-0.2, 0.2, "uninformative"),
])
def test_reduction_verdict_table(low, high, verdict):
    assert reduction_verdict(low, high, 0.10) == verdict


@pytest.mark.parametrize("args, match", [
    ((0.1, -0.1, 0.1), "low, high"),
    ((math.nan, 0.1, 0.1), "low, high"),
    ((-0.1, math.inf, 0.1), "low, high"),
])
def test_reduction_verdict_refuses_bad_intervals(args, match):
    with pytest.raises(ValueError, match=match):
        reduction_verdict(*args)


def test_reduction_verdict_refuses_bad_relative():
    with pytest.raises(ValueError, match="relative"):
        reduction_verdict(-0.1, 0.1, 0.1, relative=0)


def test_paired_interval_is_the_t_interval_of_the_differences():
    from scipy import stats

    a, b = [0.12, 0.15, 0.11, 0.14], [0.10, 0.16, 0.10, 0.11]
    d = np.subtract(a, b)
    half = stats.t.ppf(0.975, 3) * d.std(ddof=1) / 2
    iv = paired_interval(a, b)
    assert iv.estimate == pytest.approx(d.mean())
    assert (iv.low, iv.high) == pytest.approx((d.mean() - half, d.mean() + half))
    with pytest.raises(ValueError, match="a, b"):
        paired_interval([0.1], [0.2])


def test_ceiling_picks_the_end_that_lowers_the_rate():
    own, f0, f1 = [0.20, 0.22, 0.21], [0.15, 0.18, 0.16], [0.25, 0.27, 0.24]
    f, best, other = ceiling(own, f0, f1)
    assert f == 0 and best.estimate == pytest.approx(-0.0466666, abs=1e-6) and other.estimate > 0
    f, best, _ = ceiling(own, f1, f0)
    assert f == 1 and best.estimate < 0


def test_sigma_shift_recovers_a_known_relative_change():
    base = torch.randn(3, 8, 4, dtype=torch.float64)
    assert sigma_shift(base, base) == 0.0
    moved = base.clone()
    moved[1] += math.log(1.05)  # Sigma 5% larger at the second t only
    assert sigma_shift(moved, base) == pytest.approx(0.05, rel=1e-9)
    with pytest.raises(ValueError, match="log_var_b"):
        sigma_shift(base, base[:2])


def test_answer_table_rows_and_cells():
    row = AnswerRow("toy", "05 · x", 0.10, Interval(-0.01, -0.03, 0.01), "paired, 3 training seeds x 100",
                    Interval(-0.004, -0.01, 0.002), 0, 0.012)
    table = answer_table([row]).splitlines()
    assert len(table) == 3 and table[0].startswith("| benchmark |")
    cells = [c.strip() for c in table[2].strip("|").split("|")]
    assert cells[1] == "10%" and cells[2] == "-1.0 pp [-3.0, +1.0]" and cells[3] == "-10% [-30, +10]"
    assert cells[5] == "no" and "beta_tilde" in cells[6] and cells[7] == "1.2%"
    assert AnswerRow("t", "s", 0.1, Interval(0, -0.01, 0.01), "d").cells()[6] == "not measured"
    with pytest.raises(ValueError, match="rows"):
        answer_table([])


def test_forced_variance_sets_share_noise_and_count_frac_outside():
    """A learned-variance model sampled with and without the override draws the same noise: with a model whose
    own v is exactly -1 (Sigma = beta_tilde), forcing f = 0 must reproduce its samples (up to float rounding of the
    two log-variance tables), while forcing f = 1 moves them by the size of the noise."""
    from vsmlab.core.prediction import Prediction
    from vsmlab.core.schedules import linear
    from vsmlab.diffusion.sample_sets import draw_samples

    class Fixed(torch.nn.Module):
        learn_variance = True

        def __init__(self, v: float):
            super().__init__()
            self.v = v

        def forward(self, x, t):
            return Prediction(eps=0.1 * x, v=torch.full_like(x, self.v))

    sch = linear(50, 1e-4, 0.02)
    own = draw_samples(Fixed(-1.0), sch, 6, 3, 4, (2,))
    forced = draw_samples(Fixed(-1.0), sch, 6, 3, 4, (2,), variance_frac=0.0)
    torch.testing.assert_close(forced.samples, own.samples, atol=1e-6, rtol=0)
    assert own.frac is not None and own.frac.share_outside == 0.0 and own.frac.total == 6 * 2 * 49
    other = draw_samples(Fixed(-1.0), sch, 6, 3, 4, (2,), variance_frac=1.0)
    assert float((own.samples - other.samples).abs().max()) > 1e-2
    out = draw_samples(Fixed(-3.0), sch, 6, 3, 4, (2,))  # f = -1 everywhere: below the range at every step
    assert out.frac.below == out.frac.total and out.frac.min_frac == pytest.approx(-1.0)
    assert out.frac.as_dict()["share_outside"] == 1.0


def test_a_ceiling_without_spread_says_so_and_mde_text_words_infinity():
    from vsmlab.analysis.stats import mde_text

    row = AnswerRow("t", "s", 0.1, Interval(0, -0.01, 0.01), "d", Interval(0.0, 0.0, 0.0), 0)
    assert "the same rate on every seed, no interval" in row.cells()[6]
    assert mde_text(0.0638, 0.141) == "MDE 6.38 pp = 45.2% of 14.1%"
    assert mde_text(math.inf, 0.141).startswith("no MDE: not even a drop to 0%")


def test_small_baseline_rates_get_two_decimals():
    row = AnswerRow("toy", "05", 0.0156, Interval(0.001, -0.0034, 0.0054), "d", Interval(-0.0029, -0.0039, -0.0018), 0)
    cells = row.cells()
    assert cells[2] == "+0.10 pp [-0.34, +0.54]" and cells[6].startswith("-0.29 pp [-0.39, -0.18]")
