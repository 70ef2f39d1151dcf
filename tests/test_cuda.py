"""Every sampler, the estimators, metrics, detectors and distances on CUDA (skipped without a GPU).

Outputs must live on the GPU and match the CPU within tolerance on deterministic paths (DDIM eta = 0 and
the ODE from a given x_T with the exact score, Jacobians, metrics on given tensors). Random paths use a
CUDA generator (CPU and CUDA streams differ, so they are checked against the oracle, not the CPU draws).
"""

from __future__ import annotations

import pytest
import torch

import vsmlab
from vsmlab.analysis import bounds, detectors, distances, metrics
from vsmlab.core import estimators
from vsmlab.core.prediction import Prediction

pytestmark = pytest.mark.cuda
DEV = "cuda"


def gen(seed: int, device: str = DEV) -> torch.Generator:
    return torch.Generator(device=device).manual_seed(seed)


@pytest.fixture
def setup(mix1d, aggressive):
    return mix1d, aggressive, vsmlab.ExactScoreModel(mix1d, aggressive)


def test_schedule_and_mixture_on_cuda(setup) -> None:
    mix, sched, model = setup
    x = torch.randn(64, 1, generator=gen(0, "cpu"), dtype=torch.float64)
    t = torch.randint(0, 1000, (64,), generator=gen(1, "cpu"))
    xc, tc = x.to(DEV), t.to(DEV)
    assert sched.table("alpha_bar", DEV, torch.float32) is sched.table("alpha_bar", DEV, torch.float32)
    for f in (lambda a, s: sched.noise(a, s, a), lambda a, s: sched.x0_from_eps(a, s, a),
              lambda a, s: sched.reverse_mean(a, s, a), lambda a, s: mix.score(a, s, sched),
              lambda a, s: mix.score_jacobian(a, s, sched), lambda a, s: mix.posterior_mean(a, s, sched),
              lambda a, s: mix.log_prob(a, s, sched), lambda a, s: model(a, s).eps):
        out = f(xc, tc)
        assert out.device.type == DEV
        torch.testing.assert_close(out.cpu(), f(x, t), rtol=1e-10, atol=1e-10)
    draws = mix.sample(1000, generator=gen(2), device=DEV)
    assert draws.device.type == DEV and draws.dtype == torch.float32
    assert float(draws.mean()) == pytest.approx(2.0, abs=0.1)


@pytest.mark.parametrize("name", ["ddim", "ode-euler", "ode-heun"])
def test_deterministic_samplers_match_the_cpu(name: str, setup) -> None:
    mix, sched, model = setup
    x_T = torch.randn(500, 1, generator=gen(3, "cpu"), dtype=torch.float64)
    run = {
        "ddim": lambda x: vsmlab.ddim(model, sched, x_T=x, num_steps=100, record_last=5),
        "ode-euler": lambda x: vsmlab.ode(model, sched, x_T=x, method="euler", num_steps=100, record_last=5),
        "ode-heun": lambda x: vsmlab.ode(model, sched, x_T=x, method="heun", num_steps=100, record_last=5),
    }[name]
    gpu, cpu = run(x_T.to(DEV)), run(x_T)
    assert gpu.samples.device.type == DEV and gpu.x0_hat.device.type == DEV
    torch.testing.assert_close(gpu.samples.cpu(), cpu.samples, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(gpu.x0_hat.cpu(), cpu.x0_hat, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("kwargs", [dict(variance="beta_tilde"), dict(variance="beta"),
                                    dict(variance="beta_tilde", num_steps=250)])
def test_ddpm_on_cuda_reproduces_the_mixture(kwargs, mix1d) -> None:
    from tests.test_samplers import check_reproduces

    sched = vsmlab.linear(1000)
    model = vsmlab.ExactScoreModel(mix1d, sched)
    out = vsmlab.ddpm(model, sched, shape=(8000, 1), generator=gen(4), device=DEV, **kwargs)
    assert out.samples.device.type == DEV
    check_reproduces(out.samples.cpu(), mix1d, sched)
    again = vsmlab.ddpm(model, sched, shape=(8000, 1), generator=gen(4), device=DEV, **kwargs)
    assert torch.equal(out.samples, again.samples)  # same CUDA generator seed, same numbers


def test_ddim_eta_and_learned_variance_on_cuda(setup) -> None:
    mix, sched, model = setup

    class WithV(torch.nn.Module):
        def forward(self, x, t):
            return Prediction(model(x, t).eps, torch.zeros_like(x))

    out = vsmlab.ddim(model, sched, shape=(256, 1), generator=gen(5), eta=1.0, num_steps=200)
    assert out.samples.device.type == DEV and bool(torch.isfinite(out.samples).all())
    learned = vsmlab.ddpm(WithV(), sched, shape=(256, 1), generator=gen(6), num_steps=100, variance="learned")
    assert learned.samples.device.type == DEV and bool(torch.isfinite(learned.samples).all())


@pytest.mark.xfail(strict=True, raises=RuntimeError, reason=(
    "measured on an H200 (torch 2.11, 2026-11-28): the first step of each sampler call copies a schedule table "
    "to the GPU with a blocking copy (vsmlab/core/schedules.py, Schedule.table: master.to(device=dev)), which sync "
    "debug mode 'error' stops; fix: pinned non-blocking copies. Later steps are unchecked until then."))
def test_no_host_sync_in_the_sampler_loops(aggressive) -> None:
    """With a model that does not synchronise, the loops run under CUDA's sync debug mode 'error'."""
    model = lambda x, t: Prediction(0.1 * x)  # noqa: E731
    x_T = torch.randn(128, 3, 8, 8, device=DEV, generator=gen(7))
    g = gen(8)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        vsmlab.ddpm(model, aggressive, x_T=x_T, generator=g, num_steps=50)
        vsmlab.ddim(model, aggressive, x_T=x_T, generator=g, num_steps=50, eta=0.5)
        vsmlab.ode(model, aggressive, x_T=x_T, num_steps=50)
    finally:
        torch.cuda.set_sync_debug_mode("default")


def test_recording_to_the_cpu(setup) -> None:
    mix, sched, model = setup
    x_T = torch.randn(64, 1, generator=gen(9, "cpu"), dtype=torch.float64).to(DEV)
    on_gpu = vsmlab.ddim(model, sched, x_T=x_T, num_steps=100, record=True)
    to_cpu = vsmlab.ddim(model, sched, x_T=x_T, num_steps=100, record=True, record_every=10, record_device="cpu")
    assert to_cpu.x_t.device.type == "cpu" and to_cpu.x0_hat.shape == (10, 64, 1)
    assert torch.equal(to_cpu.x_t, on_gpu.x_t[9::10].cpu()) and torch.equal(to_cpu.x0_hat, on_gpu.x0_hat[9::10].cpu())


def test_generator_on_the_wrong_device_is_refused(setup) -> None:
    mix, sched, model = setup
    with pytest.raises(ValueError, match=r"^generator: it lives on 'cpu'"):
        vsmlab.ddpm(model, sched, shape=(4, 1), generator=gen(0, "cpu"), device=DEV)
    with pytest.raises(ValueError, match=r"^generator: it lives on 'cpu'"):
        vsmlab.ddpm(model, sched, x_T=torch.zeros(4, 1, device=DEV), generator=gen(0, "cpu"))


def test_estimators_on_cuda(setup) -> None:
    mix, sched, model = setup
    grid = vsmlab.grid_2d(3)
    m2 = vsmlab.ExactScoreModel(grid, sched)
    f = estimators.score_function(m2, sched, 50)
    x = grid.sample(32, generator=gen(10, "cpu"), dtype=torch.float64)
    xc = x.to(DEV)
    J = estimators.jacobian(f, xc)
    assert J.device.type == DEV
    torch.testing.assert_close(J.cpu(), estimators.jacobian(f, x), rtol=1e-8, atol=1e-8)
    exact = torch.linalg.matrix_norm(J, ord=2)
    spec = estimators.jacobian_spectral_norm(f, xc, generator=gen(11), max_iter=500, tol=1e-12)
    assert spec.value.device.type == DEV
    assert bool((spec.value <= exact * (1 + 1e-9)).all())  # power iteration approaches sigma_max from below
    torch.testing.assert_close(spec.value, exact, rtol=1e-3, atol=1e-8)
    tr = estimators.hutchinson_trace(f, xc, num_probes=64, generator=gen(12))
    true_tr = torch.diagonal(J, dim1=1, dim2=2).sum(1)
    assert tr.value.device.type == DEV and bool(((tr.value - true_tr).abs() <= 5 * tr.stderr + 1e-9).all())
    fro = estimators.hutchinson_frobenius(f, xc, num_probes=64, probe="gaussian", generator=gen(13))
    assert fro.value.device.type == DEV
    local = estimators.local_lipschitz(f, xc)
    assert local.value == pytest.approx(float(exact.max()), rel=1e-8)
    lb = estimators.lipschitz_lower_bound(f, xc, radius=1e-3, generator=gen(14))
    assert lb.per_point.device.type == DEV and 0 < lb.value <= local.value * 1.01
    perm = estimators.lipschitz_lower_bound(f, xc, generator=gen(15))
    assert perm.per_point.device.type == DEV


def test_metrics_detectors_distances_on_cuda(setup) -> None:
    mix, sched, model = setup
    res = vsmlab.ddim(model, sched, x_T=torch.randn(400, 1, generator=gen(16, "cpu")), num_steps=60, record_last=10)
    samples, traj = res.samples.clone(), res.x0_hat
    samples[5] = float("nan")
    s_gpu = samples.to(DEV)
    for fn in (metrics.hallucination_rate, metrics.gap_mass):
        assert fn(s_gpu, mix) == fn(samples, mix)
    mc_gpu, mc_cpu = metrics.mode_counts(s_gpu, mix), metrics.mode_counts(samples, mix)
    assert torch.equal(mc_gpu["counts"].cpu(), mc_cpu["counts"]) and mc_gpu["total_variation"] == pytest.approx(mc_cpu["total_variation"])
    tv = detectors.trajectory_variance(traj.to(DEV), k=5)
    assert tv.device.type == DEV
    torch.testing.assert_close(tv.cpu(), detectors.trajectory_variance(traj, k=5))
    labels = torch.arange(400) % 3 == 0
    roc_g, roc_c = detectors.roc_curve(tv, labels.to(DEV)), detectors.roc_curve(tv.cpu(), labels)
    assert roc_g.fpr.device.type == DEV and roc_g.auc == pytest.approx(roc_c.auc, abs=1e-12)
    ret_g, ret_c = detectors.retention_curve(tv, labels), detectors.retention_curve(tv.cpu(), labels)
    assert ret_g.kept.device.type == DEV and torch.equal(ret_g.kept.cpu(), ret_c.kept)
    y = mix.sample(300, generator=gen(17, "cpu"))
    clean = res.samples
    assert distances.sliced_wasserstein(clean.to(DEV), y.to(DEV)) == pytest.approx(distances.sliced_wasserstein(clean, y), rel=1e-9)
    w = distances.wasserstein_1d(clean.to(DEV).double(), y.to(DEV).double())
    assert w.device.type == DEV
    g2 = vsmlab.grid_2d(2)
    a, b = g2.sample(200, generator=gen(18)), g2.sample(200, generator=gen(19))
    assert a.device.type == DEV
    same, shifted = (distances.sliced_wasserstein(a, c, generator=gen(20)) for c in (b, b + 1.0))
    assert same < 0.5 < 0.7 < shifted  # same law vs a shift by (1, 1): SW_2 ~ |shift| / sqrt(2)
    floor = bounds.density_floor(s_gpu[:4].nan_to_num(), 10.0, [[1.0], [2.0]], [1.0, 1.0])
    assert floor.device.type == DEV
