"""The model contract: ExactScoreModel and MLP shapes, heads and seeding."""

from __future__ import annotations

import pytest
import torch

import vsmlab
from vsmlab import MLP, ExactScoreModel, Prediction, Schedule
from vsmlab.core.prediction import timestep_embedding


def _autograd_score(mix, x: torch.Tensor, t: torch.Tensor, schedule: Schedule, temperature: float = 1.0) -> torch.Tensor:
    """grad_x of the mixture's log-density (or tempered potential) at t, by autograd: the oracle score."""
    xg = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(mix.log_prob(xg, t, schedule, temperature=temperature).sum(), xg)
    return grad


@pytest.mark.parametrize("temperature", [1.0, 2.0])
def test_exact_score_model_eps_converts_to_the_autograd_score(aggressive: Schedule, temperature: float) -> None:
    """eps -> score (and predict_score) against autograd of the exact log p_t; score -> eps back to the model's eps."""
    for mix in (vsmlab.evenly_spaced_1d(), vsmlab.grid_2d(3)):
        g = torch.Generator().manual_seed(0)
        x = 3 * torch.randn(40, mix.dim, generator=g, dtype=torch.float64)
        t = torch.randint(0, 1000, (40,), generator=g)
        model = ExactScoreModel(mix, aggressive, temperature=temperature)
        pred = model(x, t)
        assert isinstance(pred, Prediction) and pred.v is None
        oracle = _autograd_score(mix, x, t, aggressive, temperature)
        torch.testing.assert_close(vsmlab.eps_to_score(pred.eps, t, aggressive), oracle, rtol=1e-8, atol=1e-8)
        torch.testing.assert_close(vsmlab.predict_score(model, x, t, aggressive), oracle, rtol=1e-8, atol=1e-8)
        torch.testing.assert_close(vsmlab.score_to_eps(oracle, t, aggressive), pred.eps, rtol=1e-8, atol=1e-8)


def test_exact_score_model_x0_hat_is_the_quadrature_posterior_mean(mix1d, aggressive: Schedule) -> None:
    """eps -> x0_hat equals E[x0 | x_t] computed by quadrature of p(x0) N(x_t; sqrt(ab) x0, 1 - ab) over x0."""
    x = torch.linspace(0.5, 3.5, 31, dtype=torch.float64)[:, None]
    for step in (0, 3, 20):
        t = torch.full((31,), step)
        eps = ExactScoreModel(mix1d, aggressive)(x, t).eps
        ab = float(aggressive.alpha_bar[step])
        grid = torch.linspace(0.0, 4.0, 400_001, dtype=torch.float64)
        log_prior = mix1d.log_prob(grid[:, None])  # the clean density p_0 (t = None)
        log_lik = -0.5 * (x - ab**0.5 * grid[None, :]) ** 2 / (1 - ab)  # [31, N]
        w = torch.softmax(log_prior[None, :] + log_lik, dim=1)
        expected = (w * grid[None, :]).sum(1, keepdim=True)
        torch.testing.assert_close(vsmlab.eps_to_x0(x, t, eps, aggressive), expected, rtol=1e-6, atol=1e-6)
        torch.testing.assert_close(vsmlab.x0_to_eps(x, t, expected, aggressive), eps, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dim", [1, 2, 3])
def test_mlp_shapes(dim: int) -> None:
    model = MLP(dim, width=32, depth=2, time_dim=16)
    x = torch.randn(7, dim)
    t = torch.randint(0, 1000, (7,))
    pred = model(x, t)
    assert pred.eps.shape == (7, dim) and pred.eps.dtype == torch.float32 and pred.v is None
    assert model.trunk(x, t).shape == (7, 32)
    # equal steps take the shared-embedding shortcut and must give the same answer as distinct ones
    same = torch.full((7,), 123)
    a = model.time_embedding(same)
    b = model.time_proj(timestep_embedding(same, 16))
    torch.testing.assert_close(a, b)


def test_mlp_variance_head_raw_by_default_and_tanh_as_option() -> None:
    """v_activation="none" (default, as improved DDPM) returns the raw output rows; "tanh" squashes the same rows."""
    raw = MLP(2, width=32, depth=1, norm=False, learn_variance=True, seed=4)  # no LayerNorm: outputs grow with x
    squashed = MLP(2, width=32, depth=1, norm=False, learn_variance=True, seed=4, v_activation="tanh")
    x = 1e3 * torch.randn(50, 2, generator=torch.Generator().manual_seed(1))
    t = torch.randint(0, 1000, (50,), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        pr, ps = raw(x, t), squashed(x, t)
        head = raw.out(raw.trunk(x, t))
    assert raw.config["v_activation"] == "none" and pr.v.shape == (50, 2)
    torch.testing.assert_close(pr.eps, head[:, :2], rtol=0, atol=0)
    torch.testing.assert_close(pr.v, head[:, 2:], rtol=0, atol=0)
    assert float(pr.v.abs().max()) > 1  # unbounded: leaves [-1, 1] on these inputs
    torch.testing.assert_close(ps.v, torch.tanh(pr.v), rtol=0, atol=0)
    torch.testing.assert_close(ps.eps, pr.eps, rtol=0, atol=0)
    with pytest.raises(ValueError, match="v_activation"):
        MLP(2, learn_variance=True, v_activation="sigmoid")


def test_mlp_fourier_features() -> None:
    model = MLP(2, width=16, depth=1, fourier_features=8, fourier_scale=3.0)
    x = torch.randn(5, 2)
    feats = model.features(x)
    assert feats.shape == (5, 2 + 16)
    torch.testing.assert_close(feats[:, :2], x)
    proj = 2 * torch.pi * x @ model.fourier_matrix
    torch.testing.assert_close(feats[:, 2:10], torch.sin(proj))
    torch.testing.assert_close(feats[:, 10:], torch.cos(proj))
    assert model.fourier_matrix.shape == (2, 8)
    assert model(x, torch.zeros(5, dtype=torch.long)).eps.shape == (5, 2)
    assert MLP(2, width=16, depth=1).features(x) is x


def test_mlp_seeding() -> None:
    def params(model: MLP) -> list[torch.Tensor]:
        return [p.detach().clone() for p in model.state_dict().values()]

    a, b = params(MLP(2, seed=3, fourier_features=4)), params(MLP(2, seed=3, fourier_features=4))
    c = params(MLP(2, seed=4, fourier_features=4))
    assert all(torch.equal(p, q) for p, q in zip(a, b))
    assert not all(torch.equal(p, q) for p, q in zip(a, c))
    # building a model does not consume the global RNG
    torch.manual_seed(0)
    before = torch.rand(1)
    torch.manual_seed(0)
    MLP(1, seed=5)
    assert torch.equal(torch.rand(1), before)


def test_timestep_embedding() -> None:
    t = torch.tensor([0, 1, 999])
    emb = timestep_embedding(t, 8)
    assert emb.shape == (3, 8)
    torch.testing.assert_close(emb[0], torch.tensor([1.0] * 4 + [0.0] * 4))
    # first frequency is 1: cos(t), sin(t)
    torch.testing.assert_close(emb[:, 0], torch.cos(t.float()))
    torch.testing.assert_close(emb[:, 4], torch.sin(t.float()))


def test_matmul_flops_per_example_by_hand() -> None:
    model = MLP(2, width=128, depth=3)
    # in: 2x128, blocks: 3 x 128x128, out: 128x2; 2 FLOPs per multiply-add
    assert model.matmul_flops_per_example() == 2 * (2 * 128 + 3 * 128 * 128 + 128 * 2)
    assert MLP(1, width=64, depth=2, learn_variance=True, fourier_features=4).matmul_flops_per_example() == \
        2 * (9 * 64 + 2 * 64 * 64 + 64 * 2)


def test_chunked_inference_equals_one_pass():
    """Inference splits big batches into cache-sized pieces; the result must equal the unsplit pass."""
    import vsmlab

    m = vsmlab.MLP(2, width=16, depth=2, learn_variance=True).eval()
    m.inference_chunk = 100
    x, t = torch.randn(1050, 2), torch.randint(0, 1000, (1050,))
    with torch.no_grad():
        split = m(x, t)
    whole = m(x, t)  # gradients enabled: one pass
    assert torch.allclose(split.eps, whole.eps.detach(), atol=1e-6)
    assert torch.allclose(split.v, whole.v.detach(), atol=1e-6)
