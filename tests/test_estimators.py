"""Estimators against the exact (temperature-smoothed) mixture-score Jacobian and known linear maps."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

from vsmlab import MLP, ExactScoreModel, GaussianMixture, grid_2d, linear
from vsmlab.core.estimators import (
    hutchinson_frobenius,
    hutchinson_trace,
    jacobian,
    jacobian_spectral_norm,
    lipschitz_lower_bound,
    local_lipschitz,
    score_function,
)
from vsmlab.nets.mlp import mlp_lipschitz_upper_bound

SCHEDULE = linear(1000, 1e-3, 0.2)




def _mixture_case(dim: int, t: int = 3, temperature: float = 1.5, n: int = 48, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    mix = GaussianMixture(torch.randn(4, dim, generator=g, dtype=torch.float64) * 1.5, 0.4)
    model = ExactScoreModel(mix, SCHEDULE, temperature)
    f = score_function(model, SCHEDULE, t)
    # points around the modes and near midpoints between two modes (there the responsibilities are
    # split, J = -a I + Cov_r(g) / tau has a large, well-separated top eigenvalue)
    near = mix.sample(n - n // 2, generator=g, dtype=torch.float64) + 0.6 * torch.randn(n - n // 2, dim, generator=g, dtype=torch.float64)
    i, j = torch.randint(0, 4, (2, n // 2), generator=g)
    j = torch.where(i == j, (j + 1) % 4, j)
    mid = 0.5 * (mix.means[i] + mix.means[j]) * float(SCHEDULE.alpha_bar[t].sqrt())
    mid = mid + 0.05 * torch.randn(n // 2, dim, generator=g, dtype=torch.float64)
    x = torch.cat([near, mid])
    J = mix.score_jacobian(x, torch.full((n,), t), SCHEDULE, temperature=temperature)
    return f, x, J


def _batched_linear(A: torch.Tensor):
    """f(x)_b = A_b x_b: the Jacobian of example b is exactly A_b."""
    return lambda x: torch.einsum("bij,bj->bi", A, x)


# ------------------------------------------------------------------ exact Jacobian
@pytest.mark.parametrize("method", ["auto", "rev", "fwd", "vmap", "loop"])
@pytest.mark.parametrize("dim", [2, 16])
def test_exact_jacobian_matches_mixture_jacobian(method, dim):
    f, x, J_true = _mixture_case(dim, n=48 if method != "loop" else 8)
    x = x[: J_true.shape[0]]
    J = jacobian(f, x, method=method)
    assert J.shape == (x.shape[0], dim, dim)
    rel = (J - J_true[: x.shape[0]]).norm() / J_true[: x.shape[0]].norm()
    assert rel <= 1e-5


def test_exact_jacobian_of_2d_grid_at_several_temperatures_and_steps():
    mix = grid_2d()
    x = mix.sample(64, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * 1.3
    for temperature in (1.0, 3.0):
        for t in (0, 10, 200):
            f = score_function(ExactScoreModel(mix, SCHEDULE, temperature), SCHEDULE, t)
            J_true = mix.score_jacobian(x, torch.full((64,), t), SCHEDULE, temperature=temperature)
            assert (jacobian(f, x) - J_true).norm() / J_true.norm() <= 1e-5


def test_jacobian_of_images_is_flattened_and_exact():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.Tanh(), nn.Conv2d(4, 2, 3, padding=1)).double()
    x = torch.randn(3, 2, 4, 4, dtype=torch.float64)
    J = jacobian(net, x)
    assert J.shape == (3, 32, 32)
    ref = jacobian(net, x, method="loop")
    assert torch.allclose(J, ref, atol=1e-12)
    # power iteration and Hutchinson work on images too
    sn = jacobian_spectral_norm(net, x, max_iter=500, tol=1e-12, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(sn.value, torch.linalg.matrix_norm(J, 2), rtol=1e-3)
    assert sn.vector.shape == x.shape
    tr = hutchinson_trace(net, x, num_probes=400, generator=torch.Generator().manual_seed(0))
    exact = J.diagonal(dim1=1, dim2=2).sum(1)
    assert torch.all((tr.value - exact).abs() <= 4 * tr.stderr)


def test_works_under_no_grad_and_returns_detached():
    f, x, J_true = _mixture_case(3, n=8)
    with torch.no_grad():
        J = jacobian(f, x)
        sn = jacobian_spectral_norm(f, x)
        tr = hutchinson_trace(f, x, 4)
        fr = hutchinson_frobenius(f, x, 4)
        loc = local_lipschitz(f, x)
    assert torch.allclose(J, J_true, rtol=1e-10, atol=1e-12)
    for value in (J, sn.value, tr.value, fr.value):
        assert not value.requires_grad
    assert loc.value == pytest.approx(float(torch.linalg.matrix_norm(J_true, 2).max()), rel=1e-10)


# ------------------------------------------------------------------ power iteration
def test_power_iteration_within_one_percent_in_50_iterations_on_separated_spectrum():
    g = torch.Generator().manual_seed(0)
    B, d = 32, 12
    U, _ = torch.linalg.qr(torch.randn(B, d, d, generator=g, dtype=torch.float64))
    V, _ = torch.linalg.qr(torch.randn(B, d, d, generator=g, dtype=torch.float64))
    top = 1 + 9 * torch.rand(B, generator=g, dtype=torch.float64)
    s = top[:, None] * torch.cat([torch.ones(B, 1, dtype=torch.float64), 0.7 * torch.rand(B, d - 1, generator=g, dtype=torch.float64)], 1)
    A = U @ torch.diag_embed(s) @ V.transpose(1, 2)
    res = jacobian_spectral_norm(_batched_linear(A), torch.randn(B, d, generator=g, dtype=torch.float64),
                                 max_iter=50, tol=1e-4, generator=g)
    assert torch.all((res.value - top).abs() <= 0.01 * top)
    assert int(res.iterations.max()) <= 50 and bool(res.converged.all())
    # the singular vector is the top right singular vector (up to sign)
    assert torch.all(torch.einsum("bi,bi->b", res.vector, V[:, :, 0]).abs() >= 0.99)


def test_power_iteration_on_mixture_score_jacobian():
    f, x, J_true = _mixture_case(16)
    svals = torch.linalg.svdvals(J_true)
    keep = svals[:, 1] <= 0.8 * svals[:, 0]  # well separated spectra
    assert int(keep.sum()) >= 10
    res = jacobian_spectral_norm(f, x[keep], max_iter=50, tol=1e-6, generator=torch.Generator().manual_seed(0))
    assert torch.all((res.value - svals[keep, 0]).abs() <= 0.01 * svals[keep, 0])
    assert torch.all(res.iterations <= 50)


def _spectrum_case(ratio: float, B: int = 8, d: int = 12, seed: int = 0):
    """Batched linear maps with top singular value s1 in [1, 10] and every other one = ratio * s1."""
    g = torch.Generator().manual_seed(seed)
    U, _ = torch.linalg.qr(torch.randn(B, d, d, generator=g, dtype=torch.float64))
    V, _ = torch.linalg.qr(torch.randn(B, d, d, generator=g, dtype=torch.float64))
    top = 1 + 9 * torch.rand(B, generator=g, dtype=torch.float64)
    s = top[:, None] * torch.cat([torch.ones(B, 1, dtype=torch.float64), torch.full((B, d - 1), ratio, dtype=torch.float64)], 1)
    return _batched_linear(U @ torch.diag_embed(s) @ V.transpose(1, 2)), torch.randn(B, d, generator=g, dtype=torch.float64), top


def test_power_iteration_reports_non_convergence_when_the_gap_is_tiny():
    """s2 / s1 = 0.999: after 30 steps the estimate still moves by >= ~1e-11 relative per step (~1e-4 for a
    typical start; ~9e-11 for example 4 of this seed, whose start is nearly orthogonal to the top singular
    vector: a relative-change rule with tol = 1e-10 would stop it, stalled at 0.999 s1). With tol = 1e-13
    none may claim convergence, and every value must still be a lower bound on the true norm."""
    f, x, top = _spectrum_case(0.999)
    res = jacobian_spectral_norm(f, x, max_iter=30, tol=1e-13, generator=torch.Generator().manual_seed(1))
    assert torch.all(res.iterations == 30) and not bool(res.converged.any())
    assert torch.all(res.value <= top * (1 + 1e-12)) and torch.all(res.value >= 0.999 * top)


def test_power_iteration_converges_before_the_cap_when_the_gap_is_wide():
    """s2 / s1 = 0.1: the error shrinks 100x per step, so tol = 1e-10 is met well inside max_iter."""
    f, x, top = _spectrum_case(0.1)
    res = jacobian_spectral_norm(f, x, max_iter=50, tol=1e-10, generator=torch.Generator().manual_seed(1))
    assert bool(res.converged.all()) and int(res.iterations.max()) < 50
    torch.testing.assert_close(res.value, top, rtol=1e-8, atol=0)


# ------------------------------------------------------------------ Hutchinson
@pytest.mark.parametrize("probe", ["rademacher", "gaussian"])
def test_hutchinson_trace_and_frobenius_within_three_standard_errors(probe):
    f, x, J_true = _mixture_case(16, n=32)
    g = torch.Generator().manual_seed(3)
    tr = hutchinson_trace(f, x, num_probes=64, probe=probe, generator=g)
    fr2 = hutchinson_frobenius(f, x, num_probes=64, probe=probe, generator=g, squared=True)
    fr = hutchinson_frobenius(f, x, num_probes=64, probe=probe, generator=g)
    trace = J_true.diagonal(dim1=1, dim2=2).sum(1)
    frob = torch.linalg.matrix_norm(J_true)
    for est, truth in ((tr, trace), (fr2, frob**2), (fr, frob)):
        err = (est.value - truth).abs()
        assert est.num_probes == 64
        # ~99.7% expected within 3 SE (the SEs are themselves estimated). Where J is a multiple of I
        # (near a mode) Rademacher probes are exact: SE ~ 0 and the error is rounding only.
        within = err <= 3 * est.stderr + 1e-9 * (1 + truth.abs())
        assert float(within.double().mean()) >= 0.9
        noisy = est.stderr > 1e-6 * (1 + truth.abs())
        assert int(noisy.sum()) >= 10
        z = (est.value - truth)[noisy] / est.stderr[noisy]
        assert 0.6 <= float(z.std()) <= 1.5  # standard errors are calibrated, not just large
        assert float(err.max()) < 0.5 * float(truth.abs().max())


def test_hutchinson_single_probe_has_infinite_stderr_and_rademacher_is_exact_on_diagonal():
    x = torch.randn(5, 4, dtype=torch.float64)
    d = torch.arange(1.0, 5.0, dtype=torch.float64)
    f = lambda z: z * d  # J = diag(1..4): Rademacher probes give the exact trace
    tr = hutchinson_trace(f, x, num_probes=3)
    assert torch.allclose(tr.value, torch.full((5,), 10.0, dtype=torch.float64)) and torch.all(tr.stderr == 0)
    assert torch.all(torch.isinf(hutchinson_trace(f, x, num_probes=1).stderr))


# ------------------------------------------------------------------ create_graph
def _tiny_param_mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 3)).double()


def _reference_param_grad(net, x, functional):
    """d functional(J) / d params with J from torch.func inside regular autograd."""
    from torch.func import jacrev, vmap

    J = vmap(jacrev(lambda xb: net(xb[None])[0]))(x)
    return _grads(functional(J), net)


def _grads(value, net):
    params = list(net.parameters())
    grads = torch.autograd.grad(value, params, allow_unused=True)
    return [torch.zeros_like(p) if g is None else g for p, g in zip(params, grads)]


def test_create_graph_jacobian_and_hutchinson_backpropagate_to_parameters():
    net = _tiny_param_mlp()
    x = torch.randn(6, 3, dtype=torch.float64)
    ref = _reference_param_grad(net, x, lambda J: (J**2).sum())
    with torch.no_grad():  # a no_grad caller still gets a graph when it asks for one
        J = jacobian(net, x, create_graph=True)
    got = _grads((J**2).sum(), net)
    for a, b in zip(got, ref):
        assert torch.allclose(a, b, atol=1e-10)
    # Hutchinson with many Gaussian probes: its gradient is an unbiased estimate of the true one
    est = hutchinson_frobenius(net, x, num_probes=2000, probe="gaussian", generator=torch.Generator().manual_seed(0),
                               create_graph=True, squared=True)
    got = _grads(est.value.sum(), net)
    for a, b in zip(got, ref):
        assert torch.allclose(a, b, rtol=0.15, atol=0.05 * float(b.abs().max()))
    tr = hutchinson_trace(net, x, num_probes=4, create_graph=True)
    assert tr.value.requires_grad


def test_create_graph_spectral_norm_gradient_matches_svd_gradient():
    net = _tiny_param_mlp()
    x = torch.randn(6, 3, dtype=torch.float64)
    ref = _reference_param_grad(net, x, lambda J: torch.linalg.matrix_norm(J, 2).sum())
    res = jacobian_spectral_norm(net, x, max_iter=500, tol=1e-13, generator=torch.Generator().manual_seed(0),
                                 create_graph=True)
    got = _grads(res.value.sum(), net)
    for a, b in zip(got, ref):
        assert torch.allclose(a, b, atol=1e-6)


# ------------------------------------------------------------------ Lipschitz
def test_local_and_pairwise_lipschitz_bracket_consistently():
    f, x, J_true = _mixture_case(2, n=400)
    loc = local_lipschitz(f, x)
    norms = torch.linalg.matrix_norm(J_true, 2)
    assert loc.value == pytest.approx(float(norms.max()), rel=1e-10) and loc.argmax == int(norms.argmax())
    assert local_lipschitz(f, x, method="power", max_iter=300, tol=1e-10,
                           generator=torch.Generator().manual_seed(0)).value == pytest.approx(loc.value, rel=1e-3)
    g = torch.Generator().manual_seed(0)
    # tiny local pairs around the worst point recover the local constant from below
    near = lipschitz_lower_bound(f, x[loc.argmax].expand(256, 2).clone(), radius=1e-6, generator=g)
    assert near.value <= loc.value * (1 + 1e-4) and near.value >= 0.95 * loc.value
    far = lipschitz_lower_bound(f, x, generator=g)
    assert 0 < far.value and far.per_point.shape == (400,)
    pairs = lipschitz_lower_bound(f, x, x.flip(0))
    assert pairs.value > 0


def _eps_fn(model, t: int):
    return lambda x: model(x, torch.full((x.shape[0],), t, dtype=torch.long)).eps


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    dim=st.integers(1, 3), width=st.integers(1, 24), depth=st.integers(0, 3),
    activation=st.sampled_from(["leaky_relu", "relu", "silu", "gelu"]), fourier=st.integers(0, 3),
    budget=st.one_of(st.none(), st.floats(0.1, 100.0)), seed=st.integers(0, 10_000),
    scale=st.floats(0.1, 10.0), t=st.integers(0, 999),
)
def test_mlp_upper_bound_dominates_every_local_constant(dim, width, depth, activation, fourier, budget, seed, scale, t):
    model = MLP(dim, width=width, depth=depth, norm=False, activation=activation, fourier_features=fourier,
                fourier_scale=0.7, seed=seed, lipschitz_budget=budget).eval()
    bound = mlp_lipschitz_upper_bound(model)
    x = scale * torch.randn(256, dim, generator=torch.Generator().manual_seed(seed))
    assert local_lipschitz(_eps_fn(model, t), x).value <= bound * (1 + 1e-5)
    score_bound = mlp_lipschitz_upper_bound(model, SCHEDULE, t)
    assert local_lipschitz(score_function(model, SCHEDULE, t), x).value <= score_bound * (1 + 1e-5)
    if budget is not None:
        assert bound == pytest.approx(budget, rel=0.05)  # spectral_norm's power-iteration sigma is ~exact


def test_mlp_upper_bound_is_tight_for_a_one_unit_net():
    model = MLP(1, width=1, depth=0, norm=False, seed=3).eval()
    x = torch.linspace(-50, 50, 2001)[:, None]
    assert local_lipschitz(_eps_fn(model, 0), x).value == pytest.approx(mlp_lipschitz_upper_bound(model), rel=1e-5)


# ------------------------------------------------------------------ bad input
def test_bad_inputs_raise_clear_errors():
    f, x, _ = _mixture_case(2, n=4)
    with pytest.raises(TypeError, match="f: expected a callable"):
        jacobian(3, x)
    with pytest.raises(TypeError, match="x: expected a tensor"):
        jacobian(f, [[1.0, 2.0]])
    with pytest.raises(ValueError, match="does not match x's shape"):
        jacobian(lambda z: z[:, :1], x)
    with pytest.raises(ValueError, match="does not match x's shape"):
        hutchinson_trace(lambda z: z.sum(1), x)
    with pytest.raises(ValueError, match="num_probes"):
        hutchinson_trace(f, x, num_probes=0)
    with pytest.raises(ValueError, match="num_probes"):
        hutchinson_frobenius(f, x, num_probes=-1)
    with pytest.raises(ValueError, match="max_iter"):
        jacobian_spectral_norm(f, x, max_iter=0)
    with pytest.raises(ValueError, match="probe"):
        hutchinson_trace(f, x, probe="uniform")
    with pytest.raises(ValueError, match="method"):
        jacobian(f, x, method="magic")
    with pytest.raises(ValueError, match="non-finite"):
        hutchinson_trace(lambda z: z / 0.0, x)
    with pytest.raises(ValueError, match="zero distance"):
        lipschitz_lower_bound(f, x, x.clone())
    with pytest.raises(TypeError, match="model: expected a callable"):
        score_function("net", SCHEDULE, 0)
    with pytest.raises(ValueError, match="t: expected an int step"):
        score_function(ExactScoreModel(grid_2d(), SCHEDULE), SCHEDULE, 1000)
    with pytest.raises(ValueError, match="temperature"):
        ExactScoreModel(grid_2d(), SCHEDULE, temperature=0.0)
    with pytest.raises(ValueError, match="lipschitz_budget"):
        MLP(2, norm=False, lipschitz_budget=-1.0)
    with pytest.raises(ValueError, match="norm=False"):
        MLP(2, norm=True, lipschitz_budget=1.0)
    with pytest.raises(ValueError, match="norm=False"):
        mlp_lipschitz_upper_bound(MLP(2))
    with pytest.raises(TypeError, match="vsmlab.MLP"):
        mlp_lipschitz_upper_bound(nn.Linear(2, 2))
    with pytest.raises(ValueError, match="schedule, t"):
        mlp_lipschitz_upper_bound(MLP(2, norm=False), SCHEDULE)


def test_math_constants_of_activations():
    from vsmlab.nets.mlp import ACTIVATION_LIPSCHITZ

    z = torch.linspace(-20, 20, 400_001, dtype=torch.float64, requires_grad=True)
    for cls, fn in ((nn.SiLU, torch.nn.functional.silu), (nn.GELU, torch.nn.functional.gelu)):
        (grad,) = torch.autograd.grad(fn(z).sum(), z)
        assert float(grad.abs().max()) <= ACTIVATION_LIPSCHITZ[cls] <= float(grad.abs().max()) + 2e-4
    assert math.isclose(ACTIVATION_LIPSCHITZ[nn.ReLU], 1.0)
