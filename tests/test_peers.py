"""Peer checks against diffusers: the lab's schedules and sampler steps equal diffusers' schedulers.

Same model (a deterministic toy eps-function), same x_T, same timestep list, and the stochastic steps draw
their noise from identically seeded CPU generators (one ``torch.randn(x.shape)`` per step with noise, in
the same order in both loops), so whole sampling chains must agree.

diffusers keeps float32 tables: they are compared with the lab's float64 ones at relative 1e-5. Through a
1000-step chain float32 tables alone move the samples by ~2e-5 (linear) to ~4e-4 (cosine) relative (beta_t
is recomputed as 1 - alpha_bar_t / alpha_bar_{t-1}, which float32 holds to ~1e-7 absolute), so the chain
checks give diffusers' schedulers float64 tables built the way their constructor builds them (betas ->
alphas = 1 - betas -> alphas_cumprod = cumprod) and compare its step code, timestep handling and noise
order with the lab's at relative 1e-8.
"""

from __future__ import annotations

import inspect

import pytest
import torch

from vsmlab.core.prediction import Prediction
from vsmlab.core.schedules import Schedule, cosine, linear
from vsmlab.diffusion.samplers import ddim, ddpm

diffusers = pytest.importorskip("diffusers")

T = 1000
SCHEDULES = {
    "linear": (lambda: linear(T, 1e-4, 0.02), dict(beta_schedule="linear", beta_start=1e-4, beta_end=0.02)),
    "cosine": (lambda: cosine(T), dict(beta_schedule="squaredcos_cap_v2")),
}


def toy_eps(schedule: Schedule):
    """A deterministic, nonlinear, t-dependent eps-model that keeps the chains O(1): the exact eps of data
    x0 ~ N(0, 0.5^2) (eps = sigma_t x / (alpha_bar_t 0.25 + sigma_t^2)) plus 0.1 tanh(3 x) cos(t / 150).
    (A model far from any score sends cosine chains to |x| ~ 1e4, where float32 tables dominate.)"""
    alpha_bar = schedule.alpha_bar

    def eps(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        shape = (-1, *([1] * (x.dim() - 1)))
        a = alpha_bar[t].to(x.dtype).reshape(shape)
        tt = t.to(x.dtype).reshape(shape)
        return (1 - a).sqrt() * x / (0.25 * a + 1 - a) + 0.1 * torch.tanh(3 * x) * torch.cos(tt / 150)

    return eps


def lab_model(schedule: Schedule):
    eps = toy_eps(schedule)
    return lambda x, t: Prediction(eps=eps(x, t))


def x_T(seed: int = 0) -> torch.Tensor:
    return torch.randn(4, 1, 6, 6, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def assert_rel_close(lab: torch.Tensor, peer: torch.Tensor, rtol: float = 1e-5) -> None:
    """max |lab - peer| <= rtol * max |peer| (relative to the tensor's scale, not per element)."""
    err = float((lab.double() - peer.double()).abs().max())
    scale = float(peer.double().abs().max())
    assert err <= rtol * scale, f"max abs difference {err:.3e} exceeds {rtol:g} x scale {scale:.3e}"


@pytest.mark.parametrize("name", sorted(SCHEDULES))
def test_schedule_tables_equal_diffusers(name: str) -> None:
    make, kwargs = SCHEDULES[name]
    lab = make()
    peer = diffusers.DDPMScheduler(num_train_timesteps=T, **kwargs)
    torch.testing.assert_close(lab.betas, peer.betas.double(), rtol=1e-5, atol=0)
    # alphas = 1 - beta rounded to float32 near 1: absolute float32 resolution (cosine's 1 - 0.999 is off by 1e-8)
    torch.testing.assert_close(lab.alphas, peer.alphas.double(), rtol=0, atol=float(torch.finfo(torch.float32).eps))
    torch.testing.assert_close(lab.alpha_bar[:-1], peer.alphas_cumprod[:-1].double(), rtol=1e-5, atol=0)
    # the last step also carries the float32 rounding of its alpha (cosine: alpha = 1 - 0.999, relative 1.3e-5)
    bound = 1e-5 + float(torch.finfo(torch.float32).eps) / float(lab.alphas[-1])
    assert abs(float(peer.alphas_cumprod[-1]) / float(lab.alpha_bar[-1]) - 1) <= bound


def float64_tables(sched, schedule: Schedule):
    """Give a diffusers scheduler the lab's betas in float64 (its own derivation of alphas, alphas_cumprod)."""
    sched.betas = schedule.betas.clone()
    sched.alphas = 1.0 - sched.betas
    sched.alphas_cumprod = torch.cumprod(sched.alphas, dim=0)
    sched.one = torch.tensor(1.0, dtype=torch.float64)
    if hasattr(sched, "final_alpha_cumprod"):  # DDIM with set_alpha_to_one=True
        sched.final_alpha_cumprod = torch.tensor(1.0, dtype=torch.float64)
    return sched


def diffusers_ddpm(sched, eps, x: torch.Tensor, steps: list[int], generator: torch.Generator) -> torch.Tensor:
    sched.set_timesteps(timesteps=steps)
    for t in sched.timesteps:
        tt = torch.full((x.shape[0],), int(t), dtype=torch.long)
        x = sched.step(eps(x, tt), int(t), x, generator=generator).prev_sample
    return x


@pytest.mark.parametrize("name", sorted(SCHEDULES))
@pytest.mark.parametrize("variance,peer_variance", [("beta", "fixed_large"), ("beta_tilde", "fixed_small")])
def test_ddpm_chain_equals_diffusers(name: str, variance: str, peer_variance: str) -> None:
    make, kwargs = SCHEDULES[name]
    schedule = make()
    start = x_T()
    lab = ddpm(lab_model(schedule), schedule, x_T=start, generator=torch.Generator().manual_seed(7), variance=variance)
    assert lab.timesteps == list(range(T - 1, -1, -1))
    peer = diffusers.DDPMScheduler(num_train_timesteps=T, variance_type=peer_variance, clip_sample=False, **kwargs)
    out = diffusers_ddpm(float64_tables(peer, schedule), toy_eps(schedule), start, lab.timesteps,
                         torch.Generator().manual_seed(7))
    assert_rel_close(lab.samples, out, rtol=1e-8)


def diffusers_ddim(sched, eps, x: torch.Tensor, steps: list[int], eta: float, generator: torch.Generator) -> torch.Tensor:
    """diffusers' DDIMScheduler.step over an explicit descending timestep list.

    DDIMScheduler.step goes from t to t - T // num_inference_steps (it keeps no list), so each step sets
    num_inference_steps to the n with T // n equal to this step's gap; the last step (from t = 0) goes to
    final_alpha_cumprod (= 1 with set_alpha_to_one=True, the lab's convention).
    """
    for i, t in enumerate(steps):
        if i + 1 < len(steps):
            gap = t - steps[i + 1]
            n = T // gap
            assert T // n == gap, f"gap {gap} between steps {t} and {steps[i + 1]} has no diffusers step size"
        else:
            assert t == 0, f"the lab's DDIM list must end at 0, got {steps[-5:]}"
            n = T
        sched.num_inference_steps = n
        tt = torch.full((x.shape[0],), t, dtype=torch.long)
        x = sched.step(eps(x, tt), t, x, eta=eta, generator=generator).prev_sample
    return x


@pytest.mark.parametrize("name", sorted(SCHEDULES))
@pytest.mark.parametrize("eta", [0.0, 1.0])
@pytest.mark.parametrize("num_steps", [None, 50])
def test_ddim_chain_equals_diffusers(name: str, eta: float, num_steps: int | None) -> None:
    make, kwargs = SCHEDULES[name]
    schedule = make()
    start = x_T(1)
    lab = ddim(lab_model(schedule), schedule, x_T=start, num_steps=num_steps, eta=eta,
               generator=torch.Generator().manual_seed(11))
    assert len(lab.timesteps) == (num_steps or T)
    peer = diffusers.DDIMScheduler(num_train_timesteps=T, clip_sample=False, set_alpha_to_one=True, **kwargs)
    out = diffusers_ddim(float64_tables(peer, schedule), toy_eps(schedule), start, lab.timesteps, eta,
                         torch.Generator().manual_seed(11))
    assert_rel_close(lab.samples, out, rtol=1e-8)


def test_ddim_set_alpha_to_one_false_differs() -> None:
    """The lab's last DDIM step goes to alpha_bar = 1: diffusers' set_alpha_to_one=False (to alpha_bar_0) differs."""
    schedule = cosine(T)
    start = x_T(2)
    lab = ddim(lab_model(schedule), schedule, x_T=start, num_steps=50)
    peer = diffusers.DDIMScheduler(num_train_timesteps=T, clip_sample=False, set_alpha_to_one=False,
                                   beta_schedule="squaredcos_cap_v2")
    tables = float64_tables(peer, schedule)
    tables.final_alpha_cumprod = tables.alphas_cumprod[0]
    out = diffusers_ddim(tables, toy_eps(schedule), start, lab.timesteps, 0.0, torch.Generator())
    assert float((lab.samples - out).abs().max()) > 1e-4


def test_ddpm_respaced_equals_diffusers_custom_timesteps() -> None:
    """Respaced DDPM (improved DDPM: beta'_t = 1 - alpha_bar_t / alpha_bar_prev over the kept steps) equals
    diffusers' DDPMScheduler with the same custom timestep list. Skipped until the lab's ddpm respaces."""
    if "num_steps" not in inspect.signature(ddpm).parameters:
        pytest.skip("vsmlab.diffusion.samplers.ddpm has no num_steps (respacing) argument yet")
    schedule = cosine(T)
    start = x_T(3)
    lab = ddpm(lab_model(schedule), schedule, x_T=start, generator=torch.Generator().manual_seed(5),
               variance="beta", num_steps=50)
    assert len(lab.timesteps) == 50
    peer = diffusers.DDPMScheduler(num_train_timesteps=T, variance_type="fixed_large", clip_sample=False,
                                   beta_schedule="squaredcos_cap_v2")
    out = diffusers_ddpm(float64_tables(peer, schedule), toy_eps(schedule), start, lab.timesteps,
                         torch.Generator().manual_seed(5))
    assert_rel_close(lab.samples, out, rtol=1e-8)
