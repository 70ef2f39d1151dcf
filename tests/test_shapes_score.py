"""Exact score of SimpleShapes: against autograd of its log-density, against brute-force enumeration,
its posterior over factors, the model contract, and DDPM sampling with it."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from vsmlab.core.schedules import cosine
from vsmlab.data.shapes import generate, geometry, template_bank, to_uint8, to_unit
from vsmlab.data.shapes_score import ExactShapesScore
from vsmlab.data.shapes_validate import report


@pytest.fixture(scope="module")
def schedule():
    return cosine(1000)


def _inputs(size: int, schedule, t: int, n: int = 3, seed: int = 0):
    """Noised real images and plain Gaussian inputs (float64, [n, 1, size, size])."""
    g = torch.Generator().manual_seed(seed + t)
    x0 = to_unit(generate(n, size, seed=seed).images, torch.float64)
    tt = torch.full((n,), t)
    return tt, schedule.noise(x0, tt, generator=g), torch.randn(x0.shape, generator=g, dtype=torch.float64)


@pytest.mark.parametrize("size, steps", [(32, (0, 1, 5, 50, 300, 999)), (64, (0, 3, 200))])
def test_score_equals_autograd_of_log_prob(schedule, size, steps):
    model = ExactShapesScore(schedule, size)
    for t in steps:
        tt, real, rand = _inputs(size, schedule, t)
        for x in (real, rand):
            x = x.clone().requires_grad_(True)
            (grad,) = torch.autograd.grad(model.log_prob(x, tt).sum(), x)
            score = model.score(x.detach(), tt)
            # compare the data-dependent part sqrt(ab) x0_hat / s2 = score + x / s2 (the -x/s2 part dominates
            # at small t and would hide errors in the posterior)
            s2 = (1 - schedule.alpha_bar[tt]).reshape(-1, 1, 1, 1)
            part_auto, part = grad + x.detach() / s2, score + x.detach() / s2
            assert torch.allclose(part_auto, part, rtol=1e-9, atol=1e-9 * float(part.abs().max())), t


def _brute_force_log_prob(x: torch.Tensor, t: int, schedule, size: int) -> torch.Tensor:
    """log p_t by enumerating every image of the distribution (all non-blank combinations of templates),
    each Gaussian density computed from its own squared distance; no expansion of ||x0||^2."""
    g = geometry(size)
    bank = template_bank(size)
    a = math.sqrt(float(schedule.alpha_bar[t]))
    s2 = 1 - float(schedule.alpha_bar[t])
    B = x.shape[0]
    x = x.reshape(B, size, size)
    logn = []  # per column: [B, 1 + M_c] log N(x_c; a x0_c, s2) for blank then every template
    for c in range(3):
        xc = x[:, : g.strip_height, g.column_slice(c)].reshape(B, 1, -1)
        x0 = torch.cat([torch.zeros(1, xc.shape[-1], dtype=torch.float64),
                        torch.from_numpy(bank.masks[c].reshape(bank.masks[c].shape[0], -1).astype(np.float64))]) * 2 - 1
        sq = ((xc - a * x0[None]) ** 2).sum(-1)
        M = bank.masks[c].shape[0]
        logw = torch.tensor([math.log(0.5)] + [math.log(0.5 / M)] * M, dtype=torch.float64)
        logn.append(logw - sq / (2 * s2) - xc.shape[-1] / 2 * math.log(2 * math.pi * s2))
    total = logn[0][:, :, None, None] + logn[1][:, None, :, None] + logn[2][:, None, None, :]
    total[:, 0, 0, 0] = -math.inf  # the all-blank image is excluded
    inside = torch.zeros(size, size, dtype=torch.bool)
    inside[: g.strip_height, : 3 * g.strip_width] = True
    x_out = x[:, ~inside]
    out = -((x_out + a) ** 2).sum(-1) / (2 * s2) - x_out.shape[-1] / 2 * math.log(2 * math.pi * s2)
    return torch.logsumexp(total.reshape(B, -1), dim=1) + out - math.log(7 / 8)


@pytest.mark.parametrize("t", [0, 20, 400, 999])
def test_log_prob_equals_brute_force_enumeration(schedule, t):
    model = ExactShapesScore(schedule, 32)
    tt, real, rand = _inputs(32, schedule, t, n=2)
    x = torch.cat([real, rand[:1] * 0.3])
    tt = torch.full((3,), t)
    exact = model.log_prob(x, tt)
    brute = _brute_force_log_prob(x, t, schedule, 32)
    assert torch.allclose(exact, brute, rtol=1e-10, atol=1e-8), (exact, brute)


def test_near_blank_input_at_small_t_stays_finite(schedule):
    """x close to the (excluded) blank image: the blank term dominates numerically; log-diff-exp in log
    space keeps log p, score and posterior finite, and the posterior still puts mass 1 on non-blank."""
    model = ExactShapesScore(schedule, 32)
    tt = torch.zeros(2, dtype=torch.long)
    x = torch.full((2, 1, 32, 32), -1.0, dtype=torch.float64) * math.sqrt(float(schedule.alpha_bar[0]))
    assert torch.isfinite(model.log_prob(x, tt)).all() and torch.isfinite(model.score(x, tt)).all()
    post = model.posterior(x, tt)
    p_any = 1 - post.blank.prod(1)
    assert torch.allclose(p_any, torch.ones(2, dtype=torch.float64), atol=1e-9)


@pytest.mark.parametrize("size", [32, 64])
def test_posterior_over_factors(schedule, size):
    model = ExactShapesScore(schedule, size)
    data = generate(6, size, seed=3)
    x0 = to_unit(data.images, torch.float64)
    tt = torch.full((6,), 5)
    x = schedule.noise(x0, tt, generator=torch.Generator().manual_seed(0))
    post = model.posterior(x, tt)
    assert torch.equal(post.map_template, torch.from_numpy(data.templates))
    for c in range(3):
        total = post.templates[c].sum(1) + post.blank[:, c]
        assert torch.allclose(total, torch.ones_like(total), atol=1e-12)
    # pure noise: the posterior is the prior, P(blank) = (1/2 - 1/8) / (7/8) = 3/7 per column
    last = torch.full((2,), schedule.num_steps - 1)
    prior = model.posterior(torch.randn(2, 1, size, size, dtype=torch.float64), last)
    assert torch.allclose(prior.blank, torch.full_like(prior.blank, 3 / 7), atol=2e-3)
    # small t: posterior mean close to x0
    assert (model.posterior_mean(x, tt) - x0).abs().max() < 1e-3


def test_model_contract_dtype_and_eps(schedule):
    model = ExactShapesScore(schedule, 32)
    tt, real, _ = _inputs(32, schedule, 100, n=4)
    pred = model(real.float(), tt)
    assert pred.eps.dtype == torch.float32 and pred.eps.shape == real.shape and pred.v is None
    eps64 = model(real, tt).eps
    x0_hat = schedule.x0_from_eps(real, tt, eps64)
    assert torch.allclose(x0_hat, model.posterior_mean(real, tt), atol=1e-10)
    assert torch.allclose(model(real[:, 0], tt).eps, eps64[:, 0])  # [B, H, W] accepted too
    with pytest.raises(ValueError, match="x_t"):
        model(torch.zeros(2, 1, 64, 64), torch.zeros(2, dtype=torch.long))
    with pytest.raises(ValueError, match="t"):
        model(real, torch.full((4,), 1000))
    with pytest.raises(TypeError, match="schedule"):
        ExactShapesScore("cosine", 32)
    with pytest.raises(ValueError, match="size"):
        ExactShapesScore(schedule, 48)


def test_ddpm_with_the_exact_score_gives_strictly_valid_images():
    from vsmlab.diffusion.samplers import ddpm

    sched = cosine(100)
    model = ExactShapesScore(sched, 32)
    out = ddpm(model, sched, shape=(48, 1, 32, 32), generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    res = report(to_uint8(out.samples))
    assert res["invalid"] == 0, res
    # and the samples follow the data's composition roughly: every column present in some, not all
    present = np.stack([(to_uint8(out.samples)[:, :31, c * 10:(c + 1) * 10] > 127).any((1, 2)) for c in range(3)], 1)
    assert present.any(1).all() and 0 < present.mean() < 1


@pytest.mark.cuda
def test_exact_score_follows_the_device(schedule):
    model = ExactShapesScore(schedule, 32)
    tt, real, _ = _inputs(32, schedule, 10, n=3)
    cpu = model(real, tt).eps
    gpu = model(real.cuda(), tt.cuda()).eps
    assert gpu.device.type == "cuda" and torch.allclose(gpu.cpu(), cpu, atol=1e-9)
