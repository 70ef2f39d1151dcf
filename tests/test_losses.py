"""The loss pieces against independent computations: the discretized Gaussian decoder (scipy, mpmath), the
image hybrid loss on [B, C, H, W] tensors, and the one per-example mean."""

from __future__ import annotations

import math

import mpmath
import pytest
import torch
from scipy.stats import norm
from torch import nn

import vsmlab
from vsmlab.diffusion import variance as V
from vsmlab.diffusion.likelihoods import BIN_HALF_WIDTH, discretized_gaussian_nll, gaussian_nll, mean_over_dims
from vsmlab.diffusion.losses import eps_mse_loss, make_loss

LN2 = math.log(2.0)
H = 1 / 255


def _scipy_bin_prob(x: float, m: float, s: float) -> float:
    """P(8-bit bin of x) under N(m, s^2) by scipy's CDF (edge bins open)."""
    if x <= -1 + 1e-9:
        return float(norm.cdf(-1 + H, m, s))
    if x >= 1 - 1e-9:
        return float(norm.sf(1 - H, m, s))
    return float(norm.cdf(x + H, m, s) - norm.cdf(x - H, m, s))


def _nll(x, m, s, dtype=torch.float64):
    t = lambda v: torch.tensor([v], dtype=dtype)  # noqa: E731
    return float(discretized_gaussian_nll(t(x), t(m), t(2 * math.log(s))))


@pytest.mark.parametrize("x, m, s", [
    (0.0, 0.0, 0.01), (0.0, 0.003, 0.002), (2 * 100 / 255 - 1, 0.3, 0.05), (2 * 200 / 255 - 1, 0.55, 0.02),
    (-1.0, -1.0, 0.01), (-1.0, -0.9, 0.1), (-1.0, 0.5, 1.0), (1.0, 1.0, 0.01), (1.0, 0.98, 0.005), (1.0, -0.2, 0.7),
    (2 * 254 / 255 - 1, 1.0, 0.004), (2 * 1 / 255 - 1, -1.0, 0.004),
])
def test_discretized_nll_matches_scipy_bins_in_bits(x, m, s):
    expected_bits = -math.log(_scipy_bin_prob(x, m, s)) / LN2
    assert _nll(x, m, s) / LN2 == pytest.approx(expected_bits, rel=1e-9, abs=1e-12)


def test_edge_bins_are_open_and_interior_bins_are_not():
    # edge: with the mean far outside [-1, 1] the edge bin holds almost all the mass (nll ~ 0) ...
    assert _nll(-1.0, -5.0, 0.1) < 1e-12 and _nll(1.0, 5.0, 0.1) < 1e-12
    # ... while the neighbouring interior bin holds almost none
    assert _nll(-1 + 2 / 255, -5.0, 0.1) > 100 and _nll(1 - 2 / 255, 5.0, 0.1) > 100
    # a narrow Gaussian centred on an interior pixel: P = 2 Phi(h / s) - 1 exactly
    s = 0.003
    assert _nll(0.2, 0.2, s) == pytest.approx(-math.log(2 * norm.cdf(H / s) - 1), rel=1e-12)


@pytest.mark.parametrize("m, s", [(0.0, 0.01), (0.37, 0.2), (-0.99, 0.004), (1.3, 0.5), (0.0, 3.0), (0.5, 1e-4)])
def test_the_256_bin_probabilities_sum_to_one(m, s):
    x = (2 * torch.arange(256, dtype=torch.float64) / 255 - 1)
    nll = discretized_gaussian_nll(x, torch.full_like(x, m), torch.full_like(x, 2 * math.log(s)))
    assert float(torch.exp(-nll).sum()) == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("x, m, s", [(0.0, 0.5, 0.01), (0.0, -0.5, 0.01), (0.2, 0.9, 0.02), (-1.0, 0.5, 0.01),
                                     (1.0, -0.5, 0.01), (0.6, 0.0, 0.015)])
def test_far_tails_match_high_precision(x, m, s):
    """Bins 30..70 stds from the mean: scipy's cdf difference is 0 there; mpmath (60 digits) is the oracle."""
    mpmath.mp.dps = 60
    X, M, S = mpmath.mpf(x), mpmath.mpf(m), mpmath.mpf(s)
    h = mpmath.mpf(1) / 255
    cdf = lambda z: mpmath.erfc(-(z - M) / S / mpmath.sqrt(2)) / 2  # noqa: E731  Phi, exact in the lower tail
    sf = lambda z: mpmath.erfc((z - M) / S / mpmath.sqrt(2)) / 2  # noqa: E731  1 - Phi, exact in the upper tail
    if x == -1.0:
        p = cdf(X + h)
    elif x == 1.0:
        p = sf(X - h)
    else:  # Phi(b) - Phi(a) = Q(a) - Q(b): either form is exact at 60 digits for the tail this test visits
        p = cdf(X + h) - cdf(X - h) if x < m else sf(X - h) - sf(X + h)
    expected = float(-mpmath.log(p))
    assert expected > 400  # really in the tail
    assert _nll(x, m, s) == pytest.approx(expected, rel=1e-9)
    assert _nll(x, m, s, torch.float32) == pytest.approx(expected, rel=1e-4)


def test_discretized_nll_dtypes_shapes_and_gradients():
    g = torch.Generator().manual_seed(0)
    x = (2 * torch.randint(0, 256, (3, 2, 4, 4), generator=g) / 255 - 1).double()
    mean = x + 0.05 * torch.randn(x.shape, generator=g, dtype=torch.float64)
    log_var = (-6 + torch.randn(x.shape, generator=g, dtype=torch.float64)).requires_grad_(True)
    out = discretized_gaussian_nll(x, mean, log_var)
    assert out.shape == x.shape and out.dtype == torch.float64 and bool((out >= 0).all())
    (grad,) = torch.autograd.grad(out.sum(), log_var)
    assert bool(torch.isfinite(grad).all())
    # autograd through log_ndtr agrees with central differences in log_var
    k = (0, 0, 0, 0)
    step = 1e-6
    lv = log_var.detach().clone()
    up, down = lv.clone(), lv.clone()
    up[k] += step
    down[k] -= step
    fd = (discretized_gaussian_nll(x, mean, up)[k] - discretized_gaussian_nll(x, mean, down)[k]) / (2 * step)
    assert float(grad[k]) == pytest.approx(float(fd), rel=1e-5)
    # float32 and bfloat16 inputs answer in their own dtype, close to the float64 value
    f32 = discretized_gaussian_nll(x.float(), mean.float(), log_var.detach().float())
    assert f32.dtype == torch.float32
    torch.testing.assert_close(f32.double(), out.detach(), rtol=2e-4, atol=2e-4)
    bf = discretized_gaussian_nll(x.bfloat16(), mean.bfloat16(), log_var.detach().bfloat16())
    assert bf.dtype == torch.bfloat16 and bool(torch.isfinite(bf).all())


def test_mean_over_dims_is_the_per_example_mean():
    x = torch.arange(24, dtype=torch.float64).reshape(2, 3, 2, 2)
    torch.testing.assert_close(mean_over_dims(x), torch.tensor([5.5, 17.5], dtype=torch.float64))
    torch.testing.assert_close(mean_over_dims(torch.tensor([1.0, 2.0])), torch.tensor([1.0, 2.0]))
    with pytest.raises(ValueError, match="x"):
        mean_over_dims(torch.tensor(1.0))


class ImageStub(nn.Module):
    """A [B, C, H, W] model: eps = target + a * x_t (parameter a), raw v = b + c * x_t (unbounded; b, c).

    ``target`` (default 0) lets a test put the prediction near the true noise, so that the t = 0 decoder
    sees a mean within a few bins of x0 (a probability scipy can still resolve).
    """

    def __init__(self, variance: bool = True, target: torch.Tensor | None = None) -> None:
        super().__init__()
        self.register_buffer("target", torch.zeros(()) if target is None else target.clone())
        self.a = nn.Parameter(torch.tensor(0.3, dtype=torch.float64))
        self.b = nn.Parameter(torch.tensor(-0.2, dtype=torch.float64))
        self.c = nn.Parameter(torch.tensor(1.5, dtype=torch.float64))
        self.variance = variance

    def forward(self, x, t):
        v = (self.b + self.c * x).to(x.dtype) if self.variance else None
        return vsmlab.Prediction(eps=(self.target + self.a * x).to(x.dtype), v=v)


def _images(B=6, C=3, Hh=4, W=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    x0 = (2 * torch.randint(0, 256, (B, C, Hh, W), generator=g) / 255 - 1).double()
    eps = torch.randn(x0.shape, generator=g, dtype=torch.float64)
    return x0, eps


def test_image_hybrid_vsm_loss_by_hand():
    """make_loss("vsm", decoder="discretized") on [B, C, H, W]: every term recomputed from the formulas."""
    sched = vsmlab.cosine(50)
    x0, eps = _images()
    model = ImageStub(target=eps)
    t = torch.tensor([0, 0, 1, 7, 30, 49])
    rho = 0.1
    terms = make_loss("vsm", rho=rho, time_weight=True, decoder="discretized")(model, x0, t, eps, sched)
    for name in ("mse", "vb", "vsm", "total"):
        assert getattr(terms, name).shape == (6,)

    ab, ab_prev, beta = (getattr(sched, k)[t].reshape(-1, 1, 1, 1) for k in ("alpha_bar", "alpha_bar_prev", "betas"))
    x_t = ab.sqrt() * x0 + (1 - ab).sqrt() * eps
    eps_hat = eps + 0.3 * x_t
    v = -0.2 + 1.5 * x_t
    bt = (1 - ab_prev) / (1 - ab) * beta
    bt_clip = torch.where(t.reshape(-1, 1, 1, 1) == 0, sched.beta_tilde[1], bt)
    log_var = (v + 1) / 2 * beta.log() + (1 - v) / 2 * bt_clip.log()
    mu = (x_t - beta / (1 - ab).sqrt() * eps_hat) / (1 - beta).sqrt()
    mu_q = ab_prev.sqrt() * beta / (1 - ab) * x0 + (1 - beta).sqrt() * (1 - ab_prev) / (1 - ab) * x_t
    kl = torch.distributions.kl_divergence(torch.distributions.Normal(mu_q, bt.clamp_min(1e-300).sqrt()),
                                           torch.distributions.Normal(mu, (0.5 * log_var).exp()))
    # t = 0 rows: the decoder NLL from scipy's CDF, per element
    vb = kl.flatten(1).mean(1) / LN2
    for i in range(2):
        dec = [-math.log(_scipy_bin_prob(float(a), float(b), float(c)))
               for a, b, c in zip(x0[i].flatten(), mu[i].flatten(), (0.5 * log_var[i]).exp().flatten())]
        vb[i] = sum(dec) / len(dec) / LN2
    s2 = log_var.exp() ** 2
    vsm = rho / (1 - sched.alpha_bar[t]).sqrt() * (s2 / (1 + s2)).flatten(1).mean(1)
    mse = ((eps_hat - eps) ** 2).flatten(1).mean(1)
    torch.testing.assert_close(terms.mse, mse, rtol=1e-10, atol=0)
    torch.testing.assert_close(terms.vb, vb, rtol=1e-8, atol=1e-12)
    torch.testing.assert_close(terms.vsm, vsm, rtol=1e-10, atol=0)
    torch.testing.assert_close(terms.total, mse + vb + vsm, rtol=1e-10, atol=0)
    assert bool((terms.vb[:2] > 0).all()) and float(terms.vb[:2].detach().max()) < 30  # bin probabilities, resolved
    assert float(v.abs().max()) > 1  # the raw v leaves [-1, 1]: the learned range extrapolates there

    # the decoder changes the t = 0 rows only; the gaussian decoder is the density NLL there
    gauss = make_loss("vsm", rho=rho, decoder="gaussian")(model, x0, t, eps, sched)
    torch.testing.assert_close(gauss.vb[2:], terms.vb[2:], rtol=0, atol=0)
    dens = gaussian_nll(x0, mu, log_var).flatten(1).mean(1) / LN2
    torch.testing.assert_close(gauss.vb[:2], dens[:2], rtol=1e-10, atol=0)


def test_image_loss_gradients_mean_detached_and_float32():
    sched = vsmlab.cosine(50)
    model = ImageStub()
    x0, eps = _images(seed=1)
    t = torch.tensor([0, 3, 10, 20, 0, 40])
    terms = make_loss("hybrid", decoder="discretized")(model, x0, t, eps, sched)
    ga, gb, gc = torch.autograd.grad(terms.vb.mean(), [model.a, model.b, model.c], allow_unused=True)
    assert ga is None and float(gb) != 0.0 and float(gc) != 0.0  # vb trains the variance only (mean detached)
    (ga,) = torch.autograd.grad(terms.mse.mean(), [model.a])
    assert float(ga) != 0.0
    # float32 images answer in float32, close to the float64 terms
    m32 = ImageStub()
    t32 = make_loss("hybrid", decoder="discretized")(m32, x0.float(), t, eps.float(), sched)
    terms = make_loss("hybrid", decoder="discretized")(ImageStub(), x0, t, eps, sched)
    assert t32.total.dtype == torch.float32
    torch.testing.assert_close(t32.total.double(), terms.total.detach(), rtol=1e-4, atol=1e-5)


def test_eps_mse_on_images_and_errors():
    sched = vsmlab.cosine(50)
    model = ImageStub(variance=False)
    x0, eps = _images()
    t = torch.tensor([0, 1, 2, 3, 4, 5])
    terms = eps_mse_loss(model, x0, t, eps, sched)
    x_t = sched.noise(x0, t, eps)
    torch.testing.assert_close(terms.mse, ((0.3 * x_t - eps) ** 2).mean((1, 2, 3)), rtol=1e-12, atol=0)
    assert torch.equal(terms.vb, torch.zeros(6, dtype=torch.float64))
    with pytest.raises(ValueError, match="decoder"):
        make_loss("vsm", decoder="logistic")
    with pytest.raises(ValueError, match="decoder"):
        V.vb_bits(x0, x_t, t, eps, eps, sched, decoder="bernoulli")
    with pytest.raises(ValueError, match="model"):  # a fixed-variance model has no v for the hybrid loss
        make_loss("hybrid", decoder="discretized")(model, x0, t, eps, sched)
    assert BIN_HALF_WIDTH == 1 / 255


@pytest.mark.cuda
def test_image_loss_on_cuda_matches_cpu():
    sched = vsmlab.cosine(50)
    x0, eps = _images()
    t = torch.tensor([0, 1, 7, 20, 0, 49])
    cpu = make_loss("vsm", rho=0.1, decoder="discretized")(ImageStub(), x0.float(), t, eps.float(), sched)
    model = ImageStub().cuda()
    gpu = make_loss("vsm", rho=0.1, decoder="discretized")(model, x0.float().cuda(), t.cuda(), eps.float().cuda(), sched)
    assert gpu.total.device.type == "cuda"
    torch.testing.assert_close(gpu.total.cpu(), cpu.total, rtol=1e-4, atol=1e-5)
