"""The locality dial of the exact SimpleShapes score (ExactShapesScore(..., window=w)): a training-free
smoothness dial that makes duplicates instead of fading shapes into blanks.

Oracles: with a window covering the whole strip it IS the exact score; the exact score makes no duplicate
and a small window makes many (sampled, validated by the strict rule)."""

from __future__ import annotations

import pytest
import torch

import vsmlab
from vsmlab.data.shapes import to_uint8
from vsmlab.data.shapes_score import ExactShapesScore
from vsmlab.data.shapes_validate import summarize, validate

SIZE = 32


@pytest.fixture(scope="module")
def schedule():
    return vsmlab.cosine(1000)


@pytest.mark.parametrize("t", [0, 5, 100, 500, 999])
def test_a_window_over_the_whole_strip_is_the_exact_score(schedule, t):
    exact = ExactShapesScore(schedule, SIZE)
    full = ExactShapesScore(schedule, SIZE, window=exact.geometry.strip_height - 1)
    x = torch.randn(4, 1, SIZE, SIZE, dtype=torch.float64, generator=torch.Generator().manual_seed(t))
    tt = torch.full((4,), t)
    for xx in (x, 0.2 * x - 0.9, torch.full_like(x, -1.0)):  # noise, near-blank, blank
        assert torch.allclose(full(xx, tt).eps, exact(xx, tt).eps, rtol=1e-8, atol=1e-8)
    # a smaller window changes the answer (at a noise level where the posterior is still undecided)
    if t == 500:
        assert not torch.allclose(ExactShapesScore(schedule, SIZE, window=3)(x, tt).eps, exact(x, tt).eps, atol=1e-3)


def test_local_x0_hat_stays_finite_and_in_range_near_blank(schedule):
    model = ExactShapesScore(schedule, SIZE, window=2)
    x = torch.full((2, 1, SIZE, SIZE), -1.0, dtype=torch.float64)
    x[1] += 1e-3
    for t in (0, 1, 10):
        x0 = model.posterior_mean(x, torch.full((2,), t))
        assert torch.isfinite(x0).all() and x0.min() >= -1 - 1e-12 and x0.max() <= 1 + 1e-12


def test_small_windows_make_duplicates_and_the_exact_score_does_not(schedule):
    counts = {}
    for window in (None, 5):
        model = ExactShapesScore(schedule, SIZE, window=window)
        x = vsmlab.ddpm(model, schedule, shape=(48, 1, SIZE, SIZE), num_steps=40, dtype=torch.float64,
                        generator=torch.Generator().manual_seed(0)).samples
        counts[window] = summarize(validate(to_uint8(x))).counts
    print("DDPM-40, 48 samples, 32 px: exact", counts[None], "| window 5", counts[5])
    assert counts[None]["valid"] == 48
    assert counts[5]["duplicate"] >= 5


def test_window_arguments(schedule):
    with pytest.raises(ValueError, match="window"):
        ExactShapesScore(schedule, SIZE, window=-1)
    with pytest.raises(ValueError, match="window"):
        ExactShapesScore(schedule, SIZE, window=2.5)
    local = ExactShapesScore(schedule, SIZE, window=4)
    x, t = torch.zeros(1, 1, SIZE, SIZE), torch.zeros(1, dtype=torch.long)
    with pytest.raises(ValueError, match="window: log_prob"):
        local.log_prob(x, t)
    with pytest.raises(ValueError, match="window: posterior"):
        local.posterior(x, t)
    assert "window=4" in repr(local)
