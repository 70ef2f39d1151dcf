"""The notebook-05 measurement protocol on a tiny run: consistent numbers, caching, bad input."""

from __future__ import annotations

import pytest
import torch

import vsmlab
from vsmlab.lab.experiments import make_mixture, make_schedule, train_toy
from vsmlab.lab.mitigations import evaluate, evaluate_many, support_grid

SPEC = dict(mixture=dict(name="1d"), schedule=dict(name="linear", num_steps=50, beta_start=1e-3, beta_end=0.2),
            model=dict(width=8, depth=1, learn_variance=True), train=dict(steps=5, batch_size=32), n_train=200,
            seed=0, loss=dict(name="vsm", rho=0.1))
EVAL = dict(n_samples=120, n_reference=100, score_n=50, score_ts=[0, 10], lipschitz_ts=[0], lipschitz_grid=101,
            keep_samples=120, thresholds=[1e-3, 1e-1])


def test_evaluate_is_consistent_with_the_metrics(tmp_path, monkeypatch):
    monkeypatch.setenv("VSMLAB_CACHE_DIR", str(tmp_path))
    r = evaluate(SPEC, EVAL)
    mix = make_mixture(SPEC["mixture"])
    rate = vsmlab.hallucination_rate(r["samples"], mix)
    assert r["rate"] == rate.rate and r["hallucinated"] == rate.count
    assert torch.equal(r["sample_hallucinated"], ~mix.in_support(r["samples"]))
    assert len(r["score_error"]) == 2 and len(r["lipschitz"]) == 1 and len(r["removed"]) == 2
    assert r["kept"][0] <= r["kept"][1] <= 120  # a higher threshold keeps more
    # the exact score's own score error is zero by construction: check the learned one is positive and finite
    assert all(0 < e < float("inf") for e in r["score_error"])
    import vsmlab.lab.mitigations as M

    def no_compute(*args, **kwargs):
        raise AssertionError("evaluate recomputed a cached run")

    with monkeypatch.context() as m:  # a cache hit must not compute anything
        m.setattr(M, "_compute", no_compute)
        again = evaluate_many([(SPEC, EVAL)], workers=1)[0]
    assert again["rate"] == r["rate"] and torch.equal(again["samples"], r["samples"])
    # same seed, different setting: same starting noise (paired comparison)
    other = dict(SPEC, loss=dict(name="hybrid"))
    run = train_toy(other)
    sched = make_schedule(SPEC["schedule"])
    x_T = torch.randn(120, 1, generator=torch.Generator().manual_seed(1_000_003))
    res = vsmlab.ddpm(run.model, sched, x_T=x_T, generator=torch.Generator().manual_seed(2_000_003))
    assert torch.equal(evaluate(other, EVAL)["samples"], res.samples)


def test_sampling_variance_option_resamples_the_same_fixed_model(tmp_path, monkeypatch):
    """variance="beta_tilde" samples the same trained fixed-variance model with sigma^2 = beta_tilde (no retraining)."""
    monkeypatch.setenv("VSMLAB_CACHE_DIR", str(tmp_path))
    fixed = dict(SPEC, model=dict(width=8, depth=1), loss=dict(name="eps_mse"))
    run = train_toy(fixed)
    sched = make_schedule(SPEC["schedule"])
    x_T = torch.randn(120, 1, generator=torch.Generator().manual_seed(1_000_003))
    out = {}
    for variance in ("beta", "beta_tilde"):
        r = evaluate(fixed, dict(EVAL, variance=variance))
        res = vsmlab.ddpm(run.model, sched, x_T=x_T, generator=torch.Generator().manual_seed(2_000_003), variance=variance)
        assert torch.equal(r["samples"], res.samples) and r["variance"] == variance
        out[variance] = r
    assert not torch.equal(out["beta"]["samples"], out["beta_tilde"]["samples"])
    assert evaluate(fixed, EVAL)["rate"] == out["beta"]["rate"]  # "auto" = beta for a model without a v head
    with pytest.raises(ValueError, match="variance"):
        evaluate(fixed, dict(EVAL, variance="small"))


def test_support_grid_and_bad_input():
    grid = support_grid(make_mixture(dict(name="1d")), 11)
    assert grid.shape == (11, 1) and float(grid[0, 0]) == pytest.approx(0.5) and float(grid[-1, 0]) == pytest.approx(3.5)
    assert support_grid(make_mixture(dict(name="grid", n=3)), 100).shape == (100, 2)
    with pytest.raises(ValueError, match="evaluation"):
        evaluate(SPEC, dict(n_sample=10))
    with pytest.raises(ValueError, match="workers"):
        evaluate_many([], workers=0)


def test_toy_ceiling_shares_the_evaluation_noise(tmp_path, monkeypatch):
    """The ceiling's own-Sigma set is evaluate's set (same noise, same rate); forcing f moves it; a model with
    no variance head is refused; the frac summary counts every element of every noise-drawing step."""
    from vsmlab.lab.ceiling import toy_ceiling

    monkeypatch.setenv("VSMLAB_CACHE_DIR", str(tmp_path))
    spec = dict(SPEC, model=dict(width=8, depth=1, learn_variance=True, v_activation="none"))
    r = evaluate(spec, EVAL)
    c = toy_ceiling(spec, EVAL["n_samples"])
    assert c["own"] == r["rate"] and c["n"] == 120
    run = train_toy(spec)
    sched = make_schedule(SPEC["schedule"])
    x_T = torch.randn(120, 1, generator=torch.Generator().manual_seed(1_000_003))
    forced = vsmlab.ddpm(run.model, sched, x_T=x_T, generator=torch.Generator().manual_seed(2_000_003), variance_frac=0.0)
    assert c["frac0"] == vsmlab.hallucination_rate(forced.samples, make_mixture(SPEC["mixture"])).rate
    fo = c["frac_outside"]
    assert fo["total"] == 120 * 1 * 49 and 0 <= fo["below"] + fo["above"] <= fo["total"]
    assert fo["min_frac"] <= fo["max_frac"]
    with pytest.raises(ValueError, match="learned-variance"):
        toy_ceiling(dict(SPEC, model=dict(width=8, depth=1), loss=dict(name="eps_mse")), 10)
    with pytest.raises(ValueError, match="n_samples"):
        toy_ceiling(spec, 0)


def test_toy_ceiling_fresh_sampling_seed_and_fracs(tmp_path, monkeypatch):
    from vsmlab.lab.ceiling import toy_ceiling

    monkeypatch.setenv("VSMLAB_CACHE_DIR", str(tmp_path))
    spec = dict(SPEC, model=dict(width=8, depth=1, learn_variance=True, v_activation="none"))
    first = toy_ceiling(spec, 200, fracs=(None,))
    fresh = toy_ceiling(spec, 200, fracs=(None,), sampling_seed=1)
    assert set(first) >= {"own", "frac_outside"} and "frac0" not in first
    run = train_toy(spec)
    x_T = torch.randn(200, 1, generator=torch.Generator().manual_seed(1_000_003 + 5_000_011))
    res = vsmlab.ddpm(run.model, make_schedule(SPEC["schedule"]), x_T=x_T,
                      generator=torch.Generator().manual_seed(2_000_003 + 5_000_011))
    assert fresh["own"] == vsmlab.hallucination_rate(res.samples, make_mixture(SPEC["mixture"])).rate
    for bad in ((), (0.5,), (None, None)):
        with pytest.raises(ValueError, match="fracs"):
            toy_ceiling(spec, 10, fracs=bad)
    with pytest.raises(ValueError, match="sampling_seed"):
        toy_ceiling(spec, 10, sampling_seed=-1)
