"""Learned-range variance, the VB term, the VSM and Jacobian penalties against hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import vsmlab
from vsmlab.diffusion import variance as V
from vsmlab.diffusion.losses import make_loss
from vsmlab.lab.experiments import make_loss as experiments_make_loss


@pytest.fixture
def small() -> vsmlab.Schedule:
    """betas 0.1, 0.2, 0.3: alpha_bar = 0.9, 0.72, 0.504; beta_tilde_1 = 0.1/0.28*0.2, beta_tilde_2 = 0.28/0.496*0.3."""
    return vsmlab.Schedule(torch.tensor([0.1, 0.2, 0.3], dtype=torch.float64))


class Fixed(nn.Module):
    """A stub model returning given eps and v (broadcast to the batch)."""

    def __init__(self, eps: torch.Tensor, v: torch.Tensor | None) -> None:
        super().__init__()
        self.eps, self.v = eps, v

    def forward(self, x, t):
        eps = self.eps.expand_as(x).to(x.dtype)
        return vsmlab.Prediction(eps=eps, v=None if self.v is None else self.v.expand_as(x).to(x.dtype))


class Linear(nn.Module):
    """eps = a * x (score = -a x / sigma_t, Jacobian -a/sigma_t I), fixed variance."""

    def __init__(self, a: float) -> None:
        super().__init__()
        self.a = nn.Parameter(torch.tensor(a, dtype=torch.float64))

    def forward(self, x, t):
        return vsmlab.Prediction(eps=self.a * x)


BT1 = 0.1 / 0.28 * 0.2
BT2 = 0.28 / 0.496 * 0.3


@pytest.mark.parametrize("t, v, expected", [
    (1, -1.0, BT1), (1, 1.0, 0.2), (1, 0.0, math.sqrt(0.2 * BT1)), (1, 0.5, 0.2**0.75 * BT1**0.25),
    (2, 0.0, math.sqrt(0.3 * BT2)), (0, -1.0, BT1), (0, 1.0, 0.1), (0, 0.0, math.sqrt(0.1 * BT1)),
    # v is unbounded (the reference): outside [-1, 1] the range extrapolates in log space
    (1, 2.0, 0.2**1.5 * BT1**-0.5), (1, -3.0, BT1**2 / 0.2), (0, 3.0, 0.1**2 / BT1),
])
def test_learned_variance_hand_values(small, t, v, expected):
    sigma = V.learned_variance(torch.tensor([[v]], dtype=torch.float64), torch.tensor([t]), small)
    assert float(sigma) == pytest.approx(expected, rel=1e-12)


def test_vsm_penalty_and_weight_hand_values(small):
    # Sigma = 0.2 (t=1, v=1): J = -5, 1/(1+J^2) = 1/26; Sigma = BT1 (v=-1): 1/(1 + 1/BT1^2)
    x0 = torch.zeros(1, 2, dtype=torch.float64)
    eps = torch.zeros(1, 2, dtype=torch.float64)
    t = torch.tensor([1])
    model = Fixed(torch.zeros(1, 2), torch.tensor([[1.0, -1.0]]))
    pen = (1 / 26 + 1 / (1 + BT1**-2)) / 2
    tw = make_loss("vsm", rho=0.1, time_weight=True)(model, x0, t, eps, small)
    const = make_loss("vsm", rho=0.1, time_weight=False)(model, x0, t, eps, small)
    assert float(tw.vsm) == pytest.approx(0.1 / math.sqrt(0.28) * pen, rel=1e-6)
    assert float(const.vsm) == pytest.approx(0.1 * pen, rel=1e-6)
    assert float(tw.total) == pytest.approx(float(tw.mse + tw.vb + tw.vsm), rel=1e-12)
    assert float(V.vsm_penalty(torch.log(torch.tensor([[0.2]], dtype=torch.float64)))) == pytest.approx(1 / 26, rel=1e-12)


def test_vb_equals_closed_form_gaussian_kl(aggressive):
    g = torch.Generator().manual_seed(0)
    B, d = 64, 3
    x0 = torch.randn(B, d, generator=g, dtype=torch.float64)
    eps = torch.randn(B, d, generator=g, dtype=torch.float64)
    eps_pred = torch.randn(B, d, generator=g, dtype=torch.float64)
    v = torch.rand(B, d, generator=g, dtype=torch.float64) * 6 - 3  # raw v, also outside [-1, 1]
    t = torch.cat([torch.tensor([0, 0, 1, 2, 999]), torch.randint(0, 60, (B - 5,), generator=g)])
    s = aggressive
    got = V.vb_bits(x0, s.noise(x0, t, eps), t, eps_pred, v, s)

    # independent computation from the textbook formulas and torch.distributions
    ab, ab_prev, beta = s.alpha_bar[t][:, None], s.alpha_bar_prev[t][:, None], s.betas[t][:, None]
    x_t = ab.sqrt() * x0 + (1 - ab).sqrt() * eps
    x0_hat = (x_t - (1 - ab).sqrt() * eps_pred) / ab.sqrt()
    c0, ct = ab_prev.sqrt() * beta / (1 - ab), (1 - beta).sqrt() * (1 - ab_prev) / (1 - ab)
    mean_q, mean_p = c0 * x0 + ct * x_t, c0 * x0_hat + ct * x_t
    bt = (1 - ab_prev) / (1 - ab) * beta
    bt_clipped = torch.where(t[:, None] == 0, s.beta_tilde[1], bt)
    frac = (v + 1) / 2
    var_p = torch.exp(frac * beta.log() + (1 - frac) * bt_clipped.log())
    p = torch.distributions.Normal(mean_p, var_p.sqrt())
    kl = torch.distributions.kl_divergence(torch.distributions.Normal(mean_q, bt.clamp_min(1e-300).sqrt()), p)
    nll = -p.log_prob(x0)
    expected = torch.where(t == 0, nll.mean(1), kl.mean(1)) / math.log(2)
    torch.testing.assert_close(got, expected, rtol=1e-7, atol=1e-9)
    assert torch.all(got[t > 0] >= 0)


def test_rho_zero_equals_hybrid_and_rho_positive_differs(aggressive, mix1d):
    model = vsmlab.MLP(1, width=16, depth=1, learn_variance=True, seed=3)
    g = torch.Generator().manual_seed(1)
    x0 = mix1d.sample(128, generator=g)
    t = torch.randint(0, 1000, (128,), generator=g)
    eps = torch.randn(128, 1, generator=g)
    hybrid = make_loss("hybrid")(model, x0, t, eps, aggressive)
    for time_weight in (True, False):
        vsm0 = make_loss("vsm", rho=0.0, time_weight=time_weight)(model, x0, t, eps, aggressive)
        for name in ("mse", "vb", "vsm", "total"):
            assert torch.equal(getattr(vsm0, name), getattr(hybrid, name)), name
    vsm1 = make_loss("vsm", rho=1.0)(model, x0, t, eps, aggressive)
    assert float(vsm1.vsm.detach().min()) > 0 and not torch.equal(vsm1.total, hybrid.total)
    # the lab's spec path resolves to the same loss
    via_spec = experiments_make_loss({"name": "vsm", "rho": 0.0, "time_weight": True})(model, x0, t, eps, aggressive)
    assert torch.equal(via_spec.total, hybrid.total)


def test_vb_gradient_reaches_variance_rows_only(aggressive, mix1d):
    d = 2
    model = vsmlab.MLP(d, width=16, depth=1, learn_variance=True, seed=0)
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(256, d, generator=g)
    t = torch.randint(0, 40, (256,), generator=g)  # small t: the learned range is non-degenerate
    eps = torch.randn(256, d, generator=g)
    terms = make_loss("vsm", rho=1.0)(model, x0, t, eps, aggressive)
    params = [model.out.weight, model.out.bias]
    w, b = torch.autograd.grad((terms.vb + terms.vsm).mean(), params, retain_graph=True)
    assert torch.count_nonzero(w[:d]) == 0 and torch.count_nonzero(b[:d]) == 0
    assert float(w[d:].abs().sum()) > 0 and float(b[d:].abs().sum()) > 0
    w, b = torch.autograd.grad(terms.vb.mean(), params, retain_graph=True)  # vb alone, too
    assert torch.count_nonzero(w[:d]) == 0 and float(w[d:].abs().sum()) > 0
    w, b = torch.autograd.grad(terms.mse.mean(), params)
    assert torch.count_nonzero(w[d:]) == 0 and float(w[:d].abs().sum()) > 0


def test_term_gradient_norms_groups_and_linearity(aggressive, mix1d):
    model = vsmlab.MLP(1, width=16, depth=1, learn_variance=True, seed=0)
    g = torch.Generator().manual_seed(0)
    x0, eps = mix1d.sample(128, generator=g), torch.randn(128, 1, generator=g)
    n1 = V.term_gradient_norms(model, x0, 3, eps, aggressive, rho=1.0)
    n2 = V.term_gradient_norms(model, x0, 3, eps, aggressive, rho=2.0)
    assert n1["vb"]["eps_head"] == 0.0 and n1["vsm"]["eps_head"] == 0.0 and n1["mse"]["var_head"] == 0.0
    assert n1["vb"]["var_head"] > 0 and n1["vsm"]["trunk"] > 0 and n1["mse"]["trunk"] > 0
    assert n2["vsm"]["var_head"] == pytest.approx(2 * n1["vsm"]["var_head"], rel=1e-5)
    assert all(p.requires_grad for p in model.parameters())


@pytest.mark.parametrize("time_weight", [True, False])
def test_jacobian_penalty_hand_value_and_direction(aggressive, time_weight):
    # eps = a x -> J = -(a / sigma_t) I: ||J||_F^2 / d = a^2 / sigma_t^2 (Rademacher probes are exact here)
    a, t_step, weight = 0.3, 5, 0.5
    model = Linear(a)
    x0 = torch.randn(8, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    t = torch.full((8,), t_step)
    eps = torch.zeros(8, 2, dtype=torch.float64)
    terms = make_loss("jacobian", weight=weight, probes=2, time_weight=time_weight)(model, x0, t, eps, aggressive)
    sigma = float(aggressive.sigma[t_step])
    w = weight / sigma if time_weight else weight
    expected = w / (1 + a**2 / sigma**2)
    torch.testing.assert_close(terms.vsm, torch.full((8,), expected, dtype=torch.float64), rtol=1e-10, atol=0)
    assert torch.equal(terms.vb, torch.zeros(8, dtype=torch.float64))  # fixed-variance model: no vb
    model.zero_grad()
    terms.vsm.mean().backward()
    assert float(model.a.grad) < 0  # the penalty falls as |J| grows: it pushes towards a sharper score


def test_jacobian_frobenius_matches_exact_in_1d(aggressive):
    model = vsmlab.MLP(1, width=16, depth=1, seed=0)
    x = torch.linspace(0.5, 3.5, 50)[:, None]
    t = torch.full((50,), 2)
    est, pred = V.score_jacobian_frobenius_sq(model, x, t, aggressive, probes=1, create_graph=False)
    xr = x.clone().requires_grad_(True)
    score = -model(xr, t).eps / aggressive.sigma[2].float()
    (exact,) = torch.autograd.grad(score.sum(), xr)
    torch.testing.assert_close(est, exact[:, 0] ** 2, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(pred.eps, model(x, t).eps)


def test_variance_losses_train_a_few_steps(aggressive, mix1d):
    model = vsmlab.MLP(1, width=16, depth=1, learn_variance=True, seed=0)
    data = mix1d.sample(512, generator=torch.Generator().manual_seed(0))
    for name, opts in (("hybrid", {}), ("vsm", {"rho": 0.1}), ("jacobian", {"weight": 0.01})):
        recs = vsmlab.fit(model, data, aggressive, steps=3, batch_size=64, loss_fn=make_loss(name, **opts))
        assert len(recs) == 3 and all(math.isfinite(r.terms["total"]) for r in recs)


def test_bad_inputs_name_the_argument(aggressive, mix1d):
    with pytest.raises(ValueError, match="rho"):
        make_loss("vsm", rho=-0.1)
    with pytest.raises(ValueError, match="rho"):
        make_loss("vsm", rho=float("nan"))
    with pytest.raises(ValueError, match="weight"):
        make_loss("jacobian", weight=-1.0)
    with pytest.raises(ValueError, match="vb_weight"):
        make_loss("hybrid", vb_weight=-1.0)
    with pytest.raises(ValueError, match="probes"):
        make_loss("jacobian", probes=0)
    with pytest.raises(ValueError, match="time_weight"):
        make_loss("vsm", time_weight="yes")
    with pytest.raises(ValueError, match="name"):
        make_loss("vlb")
    with pytest.raises(ValueError, match="unknown option"):
        make_loss("vsm", lam=1.0)
    fixed = vsmlab.MLP(1, width=8, depth=1)
    x0 = mix1d.sample(4, generator=torch.Generator().manual_seed(0))
    t, eps = torch.tensor([0, 1, 2, 3]), torch.zeros(4, 1)
    for name in ("hybrid", "vsm"):
        with pytest.raises(ValueError, match="model"):
            make_loss(name)(fixed, x0, t, eps, aggressive)
    with pytest.raises(ValueError, match="model"):
        V.term_gradient_norms(fixed, x0, 1, eps, aggressive)
