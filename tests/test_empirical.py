"""The ideal denoiser of a finite training set against independent references: the Gaussian mixture with
(nearly) zero-width components, autograd of its log-density, and what a sampler driven by it returns."""

from __future__ import annotations

import pytest
import torch

from vsmlab.core.schedules import cosine, linear
from vsmlab.data.empirical import EmpiricalScore
from vsmlab.data.mixtures import GaussianMixture
from vsmlab.data.shapes import generate, to_uint8, to_unit
from vsmlab.data.shapes_score import ExactShapesScore


@pytest.fixture(scope="module")
def schedule():
    return linear(1000)


def test_matches_a_mixture_with_vanishing_widths(schedule):
    g = torch.Generator().manual_seed(0)
    pts = torch.randn(7, 3, generator=g, dtype=torch.float64)
    emp = EmpiricalScore(pts, schedule)
    gm = GaussianMixture(pts, 1e-9)
    for t in (0, 3, 40, 500, 999):
        tt = torch.full((5,), t)
        x = schedule.noise(pts[:5], tt, generator=g)
        torch.testing.assert_close(emp.score(x, tt), gm.score(x, tt, schedule), rtol=1e-6, atol=1e-6)
        torch.testing.assert_close(emp.posterior(x, tt), gm.responsibilities(x, tt, schedule), rtol=1e-6, atol=1e-9)


def test_score_is_the_gradient_of_the_log_density(schedule):
    g = torch.Generator().manual_seed(1)
    pts = torch.randn(20, 2, 4, generator=g, dtype=torch.float64)
    emp = EmpiricalScore(pts, schedule)
    for t in (1, 100, 900):
        tt = torch.full((6,), t)
        ab = schedule.table("alpha_bar")[t]
        x = torch.randn(6, 2, 4, generator=g, dtype=torch.float64).requires_grad_(True)
        d2 = ((x.reshape(6, 1, -1) - ab.sqrt() * pts.reshape(1, 20, -1)) ** 2).sum(-1)
        logp = torch.logsumexp(-d2 / (2 * (1 - ab)), dim=1).sum()
        (grad,) = torch.autograd.grad(logp, x)
        torch.testing.assert_close(emp.score(x.detach(), tt), grad, rtol=1e-9, atol=1e-9)
        # the contract: eps = -sigma score, in x's dtype
        pred = emp(x.detach().float(), tt)
        assert pred.eps.dtype == torch.float32 and pred.eps.shape == (6, 2, 4)
        torch.testing.assert_close(pred.eps.double(), -(1 - ab).sqrt() * grad, rtol=1e-4, atol=1e-5)


def test_denoiser_returns_the_nearest_training_image_at_low_noise(schedule):
    imgs = to_unit(generate(50, 32, seed=3).images, torch.float64)
    emp = EmpiricalScore(imgs, schedule)
    tt = torch.full((4,), 5)
    x_t = schedule.noise(imgs[:4], tt, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(emp.posterior_mean(x_t, tt), imgs[:4], rtol=0, atol=1e-8)
    r = emp.posterior(x_t, tt)
    assert torch.equal(r.argmax(1), torch.arange(4)) and torch.allclose(r.sum(1), torch.ones(4, dtype=torch.float64))


def test_ddpm_with_the_empirical_score_memorises_while_the_true_score_composes():
    """With 12 training images, the empirical score only returns copies; the true score rarely does."""
    from vsmlab.diffusion.samplers import ddpm

    sched = cosine(100)
    train = to_unit(generate(12, 32, seed=5).images, torch.float64)
    out = ddpm(EmpiricalScore(train, sched), sched, shape=(16, 1, 32, 32), generator=torch.Generator().manual_seed(0),
               dtype=torch.float64)
    d = torch.cdist(out.samples.reshape(16, -1), train.reshape(12, -1))
    assert (d.min(1).values < 0.05).all(), d.min(1).values
    out = ddpm(ExactShapesScore(sched, 32), sched, shape=(16, 1, 32, 32), generator=torch.Generator().manual_seed(0),
               dtype=torch.float64)
    u8 = to_uint8(out.samples)
    copies = [(u8[i:i + 1] == to_uint8(train)).all(axis=(1, 2)).any() for i in range(16)]
    assert sum(copies) <= 4, copies


def test_bad_input_names_the_argument(schedule):
    with pytest.raises(TypeError, match="train"):
        EmpiricalScore(torch.zeros(3, 2, dtype=torch.int64), schedule)
    with pytest.raises(ValueError, match="train"):
        EmpiricalScore(torch.zeros(3), schedule)
    with pytest.raises(TypeError, match="schedule"):
        EmpiricalScore(torch.zeros(3, 2), "linear")
    emp = EmpiricalScore(torch.zeros(3, 1, 4, 4), schedule)
    with pytest.raises(ValueError, match="x_t"):
        emp(torch.zeros(2, 1, 8, 8), torch.zeros(2, dtype=torch.int64))
