"""Trajectory-variance detector, ROC / AUC with ties, retention curves, and the Wasserstein distances."""

from __future__ import annotations

import math

import pytest
import torch

import vsmlab
from vsmlab.analysis.detectors import retention_curve, roc_auc, roc_curve, trajectory_variance, window_variance
from vsmlab.analysis.distances import sliced_wasserstein, wasserstein_1d


def test_trajectory_variance_hand_values():
    # sample 0 moves 0, 1, 2 (1-D); sample 1 is 2-D and moves (0,0), (0,0), (1,3)
    x0_hat = torch.tensor([[[0.0, 0.0], [0.0, 0.0]],
                           [[1.0, 0.0], [0.0, 0.0]],
                           [[2.0, 0.0], [1.0, 3.0]]])
    torch.testing.assert_close(trajectory_variance(x0_hat, k=3), torch.tensor([2 / 3, 2 / 9 + 2.0], dtype=torch.float64))
    torch.testing.assert_close(trajectory_variance(x0_hat, k=2), torch.tensor([0.25, 0.25 + 2.25], dtype=torch.float64))


def test_trajectory_variance_from_a_sampler_and_bad_k(aggressive, mix1d):
    exact = vsmlab.ExactScoreModel(mix1d, aggressive)
    res = vsmlab.ddpm(exact, aggressive, shape=(64, 1), generator=torch.Generator().manual_seed(0), record_last=10)
    scores = trajectory_variance(res, k=10)
    assert scores.shape == (64,) and bool(torch.isfinite(scores).all())
    torch.testing.assert_close(scores, res.x0_hat.double().var(0, unbiased=False)[:, 0])
    with pytest.raises(ValueError, match="k"):
        trajectory_variance(res, k=11)
    with pytest.raises(ValueError, match="k"):
        trajectory_variance(res, k=1)
    plain = vsmlab.ddpm(exact, aggressive, shape=(4, 1), generator=torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match="record_last"):
        trajectory_variance(plain, k=10)


def test_roc_known_answers():
    labels = torch.tensor([False, False, False, True, True])
    separable = torch.tensor([0.1, 0.2, 0.3, 0.8, 0.9])
    assert roc_auc(separable, labels) == 1.0
    assert roc_auc(-separable, labels) == 0.0
    assert roc_auc(torch.zeros(5), labels) == 0.5
    # textbook case: pairs (0.35 vs 0.1, 0.4) -> 1 of 2; (0.8 vs both) -> 2 of 2: AUC 3/4
    assert roc_auc(torch.tensor([0.1, 0.4, 0.35, 0.8]), torch.tensor([False, False, True, True])) == pytest.approx(0.75)
    # a tie across classes counts 1/2: pos {2, 1} vs neg {1, 0} -> (1 + 1 + 0.5 + 1) / 4
    assert roc_auc(torch.tensor([2.0, 1.0, 1.0, 0.0]), torch.tensor([True, True, False, False])) == pytest.approx(0.875)
    roc = roc_curve(separable, labels)
    assert roc.fpr[0] == 0 and roc.tpr[0] == 0 and roc.fpr[-1] == 1 and roc.tpr[-1] == 1
    assert math.isinf(float(roc.thresholds[0]))


def test_roc_auc_equals_mann_whitney_with_many_ties():
    g = torch.Generator().manual_seed(0)
    scores = torch.randint(0, 6, (300,), generator=g).double()
    labels = torch.rand(300, generator=g) < 0.3
    pos, neg = scores[labels].numpy(), scores[~labels].numpy()
    diff = pos[:, None] - neg[None, :]
    mann_whitney = float(((diff > 0) + 0.5 * (diff == 0)).mean())
    assert roc_auc(scores, labels) == pytest.approx(mann_whitney, abs=1e-12)
    random_labels = torch.rand(20000, generator=g) < 0.5
    assert roc_auc(torch.randint(0, 3, (20000,), generator=g).double(), random_labels) == pytest.approx(0.5, abs=0.02)


def test_retention_curve_hand_values():
    scores = torch.tensor([0.1, 0.2, 0.3, 0.9])
    labels = torch.tensor([False, False, True, True])
    r = retention_curve(scores, labels, thresholds=[0.05, 0.15, 0.25, 0.5, 1.0])
    torch.testing.assert_close(r.hallucinations_removed, torch.tensor([1.0, 1.0, 1.0, 0.5, 0.0], dtype=torch.float64))
    torch.testing.assert_close(r.in_support_kept, torch.tensor([0.0, 0.5, 1.0, 1.0, 1.0], dtype=torch.float64))
    assert r.kept.tolist() == [0, 1, 2, 3, 4] and r.kept_hallucinated.tolist() == [0, 0, 0, 1, 2]
    assert math.isnan(float(r.rate_after[0]))
    torch.testing.assert_close(r.rate_after[1:], torch.tensor([0.0, 0.0, 1 / 3, 0.5], dtype=torch.float64))
    default = retention_curve(scores, labels)
    assert float(default.hallucinations_removed[0]) == 1.0 and float(default.in_support_kept[0]) == 0.0
    assert float(default.hallucinations_removed[-1]) == 0.0 and float(default.in_support_kept[-1]) == 1.0


def test_detector_bad_inputs():
    with pytest.raises(ValueError, match="labels"):
        roc_auc(torch.rand(4), torch.zeros(4, dtype=torch.bool))
    with pytest.raises(TypeError, match="labels"):
        roc_auc(torch.rand(4), torch.tensor([0, 1, 0, 1]))
    with pytest.raises(ValueError, match="scores"):
        roc_auc(torch.tensor([0.1, float("nan"), 0.2, 0.3]), torch.tensor([True, False, True, False]))
    with pytest.raises(ValueError, match="labels"):
        retention_curve(torch.rand(3), torch.tensor([True, False]))
    with pytest.raises(ValueError, match="trajectory"):
        trajectory_variance(torch.zeros(5), k=2)


def test_wasserstein_hand_values():
    x = torch.tensor([[0.0], [1.0]])
    y = torch.tensor([[0.0], [0.5], [1.0]])
    # quantile functions differ by 0.5 on (1/3, 2/3): W1 = 1/6, W2 = sqrt(2 * 0.25 / 6)
    assert float(wasserstein_1d(x.double(), y.double(), p=1)) == pytest.approx(1 / 6)
    assert sliced_wasserstein(x, y, p=1) == pytest.approx(1 / 6)
    assert sliced_wasserstein(x, y, p=2) == pytest.approx(math.sqrt(1 / 12))
    z = torch.randn(500, 1, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert sliced_wasserstein(z, z + 0.3) == pytest.approx(0.3, abs=1e-9)
    assert sliced_wasserstein(z, z[torch.randperm(500)]) == pytest.approx(0.0, abs=1e-12)


def test_sliced_wasserstein_2d_shift_matches_projections():
    z = torch.randn(400, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    c = torch.tensor([0.6, -0.8], dtype=torch.float64)
    got = sliced_wasserstein(z, z + c, num_projections=32, generator=torch.Generator().manual_seed(7))
    theta = torch.randn(2, 32, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    theta = theta / theta.norm(dim=0, keepdim=True)
    expected = math.sqrt(float(((c.double() @ theta) ** 2).mean()))
    assert got == pytest.approx(expected, rel=1e-9)
    with pytest.raises(ValueError, match="y"):
        sliced_wasserstein(z, torch.zeros(3, 1))
    with pytest.raises(ValueError, match="x"):
        sliced_wasserstein(torch.full((3, 2), float("inf")), z)
    with pytest.raises(ValueError, match="num_projections"):
        sliced_wasserstein(z, z, num_projections=0)


def test_window_variance_selects_the_steps_in_the_window_by_value() -> None:
    x0_hat = torch.tensor([[[5.0]], [[1.0]], [[3.0]], [[0.0]]])  # R=4 steps, B=1, one pixel
    steps = [40, 32, 24, 0]  # descending, as samplers record them
    torch.testing.assert_close(window_variance(x0_hat, steps, 20, 35), torch.tensor([1.0], dtype=torch.float64))
    torch.testing.assert_close(window_variance(x0_hat, steps, 0, 40), trajectory_variance(x0_hat, k=4))
    with pytest.raises(ValueError, match=r"lo, hi: the window 25\.\.30 holds 0 of the recorded steps"):
        window_variance(x0_hat, steps, 25, 30)
    with pytest.raises(ValueError, match=r"x0_hat: expected shape \[R, B, \.\.\.\] with R = len\(steps\) = 3"):
        window_variance(x0_hat, steps[:3], 0, 40)
