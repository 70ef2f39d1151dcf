"""vsmlab.diffusion.switch_model.switch_model: rows answered by the right model, samplers at tau = 0 / T equal the
single models, learned-variance (v) rules. Oracle: the exact SimpleShapes score (32 px) and simple models."""

from __future__ import annotations

import pytest
import torch

import vsmlab
from vsmlab.core.prediction import Prediction
from vsmlab.data.shapes_score import ExactShapesScore
from vsmlab.diffusion.samplers import ddim, ddpm
from vsmlab.diffusion.switch_model import SwitchModel, switch_model

SIZE = 32


@pytest.fixture(scope="module")
def schedule():
    return vsmlab.cosine(1000)


@pytest.fixture(scope="module")
def exact(schedule):
    return ExactShapesScore(schedule, SIZE)


class Shrink(torch.nn.Module):
    """A trivial eps model: eps = 0.3 x_t (+ a v head when asked), counting its calls."""

    def __init__(self, with_v: bool = False) -> None:
        super().__init__()
        self.with_v, self.calls = with_v, 0

    def forward(self, x, t):
        self.calls += 1
        return Prediction(eps=0.3 * x, v=torch.tanh(x) * 0.5 if self.with_v else None)


@pytest.mark.parametrize("mode", ["where", "split"])
def test_rows_come_from_the_right_model(exact, mode):
    x = torch.randn(5, 1, SIZE, SIZE, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    t = torch.tensor([900, 10, 500, 499, 0])
    low = Shrink()
    out = switch_model(exact, low, 500, mode=mode)(x, t)
    e, s = exact(x, t).eps, low(x, t).eps
    hi = t >= 500
    assert torch.equal(out.eps[hi], e[hi]) and torch.equal(out.eps[~hi], s[~hi]) and out.v is None
    # the reverse assignment
    rev = switch_model(low, exact, 500, mode=mode)(x, t)
    assert torch.equal(rev.eps[hi], s[hi]) and torch.equal(rev.eps[~hi], e[~hi])


@pytest.mark.parametrize("sampler", ["ddpm", "ddim"])
def test_sampling_at_tau_0_and_T_equals_the_single_models(exact, schedule, sampler):
    low = Shrink()
    run = {"ddpm": lambda m: ddpm(m, schedule, shape=(3, 1, SIZE, SIZE), num_steps=12,
                                  generator=torch.Generator().manual_seed(4), dtype=torch.float64),
           "ddim": lambda m: ddim(m, schedule, shape=(3, 1, SIZE, SIZE), num_steps=12,
                                  generator=torch.Generator().manual_seed(4), dtype=torch.float64)}[sampler]
    a, b = run(exact).samples, run(low).samples
    for mode in ("where", "split"):
        assert torch.equal(run(switch_model(exact, low, 0, mode=mode)).samples, a)
        assert torch.equal(run(switch_model(exact, low, schedule.num_steps, mode=mode)).samples, b)
    mid = run(switch_model(exact, low, 500)).samples
    assert not torch.equal(mid, a) and not torch.equal(mid, b)


def test_split_mode_calls_only_the_needed_model(exact, schedule):
    high, low = Shrink(), Shrink()
    m = switch_model(high, low, 600, mode="split")
    ddpm(m, schedule, shape=(2, 1, 8, 8), num_steps=10, generator=torch.Generator().manual_seed(0))
    steps = schedule.timesteps(10)
    n_high = sum(s >= 600 for s in steps)
    # plus one probe call of low on one row at the first step (does low return v?), then remembered
    assert high.calls == n_high and low.calls == len(steps) - n_high + 1
    both_h, both_l = Shrink(), Shrink()
    ddpm(switch_model(both_h, both_l, 600, mode="where"), schedule, shape=(2, 1, 8, 8), num_steps=10,
         generator=torch.Generator().manual_seed(0))
    assert both_h.calls == both_l.calls == len(steps)


def test_learned_variance_rules(exact, schedule):
    x = torch.randn(4, 1, SIZE, SIZE, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    t = torch.tensor([800, 700, 100, 50])
    vnet = Shrink(with_v=True)
    for mode in ("where", "split"):
        with pytest.raises(ValueError, match="missing_v: 'low' returns v .* 'high' does not"):
            switch_model(exact, vnet, 500, mode=mode)(x, t)
        with pytest.raises(ValueError, match="missing_v"):  # even when only the v-less model answers
            switch_model(exact, Shrink(with_v=True), 500, mode=mode)(x, torch.full((4,), 900))
        assert switch_model(exact, vnet, 500, mode=mode, missing_v="drop")(x, t).v is None
        filled = switch_model(exact, vnet, 500, mode=mode, missing_v=-1.0)(x, t)
        assert torch.equal(filled.v[:2], torch.full_like(x[:2], -1.0))
        assert torch.equal(filled.v[2:], vnet(x, t).v[2:])
        both = switch_model(Shrink(with_v=True), vnet, 500, mode=mode)(x, t)
        assert torch.equal(both.v, vnet(x, t).v)
    # fill v = 1 (Sigma = beta_t) on the exact score: learned-variance DDPM equals DDPM with beta
    kw = dict(shape=(2, 1, SIZE, SIZE), num_steps=8, dtype=torch.float64)
    got = ddpm(switch_model(exact, vnet, 0, missing_v=1.0), schedule, variance="learned",
               generator=torch.Generator().manual_seed(2), **kw).samples
    ref = ddpm(exact, schedule, variance="beta", generator=torch.Generator().manual_seed(2), **kw).samples
    assert torch.allclose(got, ref, rtol=0, atol=1e-10)


def test_arguments_are_checked(exact):
    with pytest.raises(ValueError, match="tau"):
        switch_model(exact, exact, -1)
    with pytest.raises(ValueError, match="mode"):
        switch_model(exact, exact, 3, mode="both")
    with pytest.raises(ValueError, match="missing_v"):
        switch_model(exact, exact, 3, missing_v=2.0)
    with pytest.raises(TypeError, match="low"):
        switch_model(exact, "unet", 3)
    m = switch_model(exact, Shrink(), 3)
    assert isinstance(m, SwitchModel) and "tau=3" in repr(m)
    with pytest.raises(ValueError, match="t:"):
        m(torch.zeros(2, 1, SIZE, SIZE), torch.zeros(3, dtype=torch.long))
