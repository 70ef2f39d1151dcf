"""Training: a briefly trained 1-D MLP approaches the exact score; seeding; divergence errors; bit-identity
with the loop the toy notebooks were published with; EMA, warm-up, clipping, timestep samplers, per-step
randomness, eval mode on early stop."""

from __future__ import annotations

import math

import pytest
import torch

import vsmlab
from vsmlab import MLP, ExactScoreModel, GaussianMixture, Schedule, TrainingDiverged
from vsmlab.diffusion.losses import make_loss
from vsmlab.diffusion.training import (EMA, LossSecondMomentSampler, Trainer, UniformSampler, lr_at, step_key)


def eps_error(model, mix: GaussianMixture, schedule: Schedule) -> float:
    """Mean squared distance to the exact eps over x_t ~ p_t on a grid of steps 0, 10, ..., 990."""
    g = torch.Generator().manual_seed(123)
    t = torch.arange(0, schedule.num_steps, 10).repeat_interleave(40)
    x = schedule.noise(mix.sample(t.numel(), generator=g), t, generator=g)
    exact = ExactScoreModel(mix, schedule)
    with torch.no_grad():
        return float(((model(x, t).eps - exact(x, t).eps) ** 2).mean())


def test_brief_training_approaches_the_exact_score(mix1d: GaussianMixture, aggressive: Schedule) -> None:
    data = mix1d.sample(20_000, generator=torch.Generator().manual_seed(0))
    model = MLP(1, width=64, depth=3, seed=0)
    before = eps_error(model, mix1d, aggressive)
    history = vsmlab.fit(model, data, aggressive, 200, batch_size=1024, lr=1e-3, seed=0)
    after = eps_error(model, mix1d, aggressive)
    assert len(history) == 200 and [r.step for r in history[:3]] == [1, 2, 3]
    assert not model.training  # train() leaves the model in eval mode
    assert after < 0.2 * before, f"eps error vs exact: {before:.4f} untrained -> {after:.4f} trained"
    assert history[-1].terms["total"] < history[0].terms["total"]


def test_same_seed_same_history(mix1d: GaussianMixture, aggressive: Schedule) -> None:
    data = mix1d.sample(2000, generator=torch.Generator().manual_seed(0))

    def run(seed: int) -> tuple[list, MLP]:
        model = MLP(1, width=32, depth=2, seed=0)
        return [(r.step, r.terms, r.grad_norm) for r in vsmlab.train(model, data, aggressive, 15, batch_size=256,
                                                                     seed=seed, grad_norms=True)], model

    (h1, m1), (h2, m2), (h3, _) = run(7), run(7), run(8)
    assert h1 == h2
    assert h1 != h3
    assert all(torch.equal(p, q) for p, q in zip(m1.parameters(), m2.parameters()))
    assert all(isinstance(g, float) and g > 0 for _, _, g in h1)
    assert set(h1[0][1]) == {"mse", "vb", "vsm", "total"}


def test_callable_data_source(mix1d: GaussianMixture, aggressive: Schedule) -> None:
    calls = []

    def fresh(n: int, g: torch.Generator) -> torch.Tensor:
        calls.append(n)
        return mix1d.sample(n, generator=g)

    records = vsmlab.fit(MLP(1, width=16, depth=1), fresh, aggressive, 3, batch_size=64)
    assert calls == [64, 64, 64] and len(records) == 3


def test_nan_data_stops_at_the_step_and_names_the_term(mix1d: GaussianMixture, aggressive: Schedule) -> None:
    def poisoned(n: int, g: torch.Generator) -> torch.Tensor:
        x = mix1d.sample(n, generator=g)
        poisoned.calls += 1
        if poisoned.calls == 3:
            x[5] = float("nan")
        return x

    poisoned.calls = 0
    seen = []
    with pytest.raises(TrainingDiverged, match=r"step 3\b.*'mse'"):
        for record in vsmlab.train(MLP(1, width=16, depth=1), poisoned, aggressive, 10, batch_size=64):
            seen.append(record.step)
    assert seen == [1, 2]
    data = mix1d.sample(100)
    data[:] = float("nan")
    with pytest.raises(TrainingDiverged, match=r"step 1\b"):
        vsmlab.fit(MLP(1, width=16, depth=1), data, aggressive, 5, batch_size=32)
    assert issubclass(TrainingDiverged, FloatingPointError)


def test_nan_is_found_at_the_next_read_with_its_step_range(mix1d: GaussianMixture, aggressive: Schedule) -> None:
    def poisoned(n: int, g: torch.Generator) -> torch.Tensor:
        x = mix1d.sample(n, generator=g)
        poisoned.calls += 1
        if poisoned.calls == 7:
            x[0] = float("inf")
        return x

    poisoned.calls = 0
    seen = []
    with pytest.raises(TrainingDiverged, match=r"step 7 \(checked steps 6-10\).*'mse'"):
        for record in vsmlab.train(MLP(1, width=16, depth=1), poisoned, aggressive, 20, batch_size=64, log_every=5):
            seen.append(record.step)
    assert seen == list(range(1, 10))  # the check runs at step 10, before its update
    # between reads the record holds 0-d tensors, on read steps floats
    recs = vsmlab.fit(MLP(1, width=16, depth=1), mix1d.sample(64), aggressive, 6, batch_size=16, log_every=4)
    assert isinstance(recs[3].terms["total"], float) and isinstance(recs[5].terms["total"], float)
    assert isinstance(recs[0].terms["total"], torch.Tensor) and recs[0].terms["total"].dim() == 0
    assert recs[0].floats()["total"] == float(recs[0].terms["total"])


def test_huge_learning_rate_diverges_with_a_step(mix1d: GaussianMixture, aggressive: Schedule) -> None:
    data = mix1d.sample(1000, generator=torch.Generator().manual_seed(0))
    with pytest.raises(TrainingDiverged, match=r"training diverged at step \d+: loss term '\w+' is (nan|inf)"):
        vsmlab.fit(MLP(1, width=16, depth=1, norm=False), data, aggressive, 50, batch_size=64, lr=1e30)


# --------------------------------------------------------------------- bit-identity with the published loop
def frozen_old_train(model, data, schedule, steps, batch_size=1024, lr=1e-3, seed=0, loss_fn=vsmlab.eps_mse_loss,
                     grad_norms=False, max_grad_norm=None, lr_decay="none"):
    """Frozen copy of the arithmetic of the toy loop the notebooks 01-05 were published with
    (``git show 7abbd5a:vsmlab/diffusion/training.py``, function ``train``): do not edit."""
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    out = []
    for step in range(1, steps + 1):
        if lr_decay == "cosine":
            for group in opt.param_groups:
                group["lr"] = lr * 0.5 * (1 + math.cos(math.pi * (step - 1) / steps))
        if callable(data):
            x0 = data(batch_size, g)
        else:
            x0 = data[torch.randint(0, data.shape[0], (batch_size,), generator=g)]
        t = torch.randint(0, schedule.num_steps, (x0.shape[0],), generator=g)
        eps = torch.randn(x0.shape, generator=g, dtype=x0.dtype)
        terms = loss_fn(model, x0, t, eps, schedule)
        means = terms.means()
        opt.zero_grad(set_to_none=True)
        terms.total.mean().backward()
        norm = None
        if grad_norms or max_grad_norm is not None:
            limit = max_grad_norm if max_grad_norm is not None else math.inf
            norm = float(torch.nn.utils.clip_grad_norm_(model.parameters(), limit))
        opt.step()
        out.append((step, means, norm))
    model.eval()
    return out


@pytest.mark.parametrize("case", ["default", "cosine_clip", "hybrid_fourier", "callable_2d"])
def test_default_loop_is_bit_identical_to_the_published_loop(case: str, mix1d, aggressive) -> None:
    data = mix1d.sample(3000, generator=torch.Generator().manual_seed(1))
    kwargs: dict = dict(batch_size=256, lr=1e-3, seed=3)
    make = lambda: MLP(1, width=32, depth=2, seed=5)  # noqa: E731
    steps = 40
    if case == "cosine_clip":
        kwargs.update(lr_decay="cosine", max_grad_norm=0.5)
    elif case == "hybrid_fourier":
        kwargs.update(loss_fn=make_loss("vsm", rho=0.1), grad_norms=True)
        make = lambda: MLP(1, width=32, depth=2, seed=5, learn_variance=True, fourier_features=8)  # noqa: E731
    elif case == "callable_2d":
        mix2 = vsmlab.grid_2d(3)
        data = lambda n, g: mix2.sample(n, generator=g)  # noqa: E731
        make = lambda: MLP(2, width=32, depth=2, seed=5)  # noqa: E731
    old_model, new_model = make(), make()
    old = frozen_old_train(old_model, data, aggressive, steps, **kwargs)
    new = [(r.step, r.terms, r.grad_norm) for r in vsmlab.train(new_model, data, aggressive, steps, **kwargs)]
    assert new == old  # every logged float equal
    for (name, p), q in zip(old_model.state_dict().items(), new_model.state_dict().values()):
        assert torch.equal(p, q), name


# ------------------------------------------------------------------------------------------ new options
def test_model_is_back_in_eval_mode_when_the_caller_stops_early(mix1d, aggressive) -> None:
    model = MLP(1, width=16, depth=1)
    for rec in vsmlab.train(model, mix1d.sample(64), aggressive, 10, batch_size=16):
        assert model.training
        break
    assert not model.training
    model2 = MLP(1, width=16, depth=1)
    it = vsmlab.train(model2, mix1d.sample(64), aggressive, 10, batch_size=16)
    next(it)
    assert model2.training
    it.close()
    assert not model2.training


def test_lr_warmup_and_cosine() -> None:
    assert lr_at(1, 1e-3, 100) == 1e-3
    assert [lr_at(s, 1.0, 100, "none", warmup=4) for s in (1, 2, 4, 50)] == [0.25, 0.5, 1.0, 1.0]
    assert lr_at(1, 1.0, 100, "cosine") == 1.0 and lr_at(51, 1.0, 100, "cosine") == pytest.approx(0.5)
    assert lr_at(10, 1.0, 110, "cosine", warmup=10) == 1.0
    assert lr_at(60, 1.0, 110, "cosine", warmup=10) == pytest.approx(0.5 * (1 + math.cos(math.pi * 49 / 100)))


def test_ema_matches_a_hand_computed_average(mix1d, aggressive) -> None:
    data = mix1d.sample(500, generator=torch.Generator().manual_seed(0))
    model = MLP(1, width=8, depth=1, seed=0)
    trainer = Trainer(model, data, aggressive, 5, batch_size=32, ema_decay=0.9999, ema_warmup="ramp")
    expected = {k: v.clone() for k, v in model.state_dict().items()}
    for rec in trainer.run():
        d = min(0.9999, (1 + rec.step) / (10 + rec.step))
        for k, v in model.state_dict().items():
            expected[k] = d * expected[k] + (1 - d) * v if v.is_floating_point() else v.clone()
    for k, v in trainer.ema.state_dict().items():
        torch.testing.assert_close(v, expected[k], rtol=1e-6, atol=1e-7)
    # without the ramp a 0.9999 EMA of 5 steps is (almost) the initial weights
    assert EMA(model, 0.9999, "none").decay_at(5) == 0.9999 and EMA(model, 0.9999).decay_at(0) == pytest.approx(0.1)
    ema_model = trainer.ema.copy_model(model)
    assert not ema_model.training and torch.equal(ema_model.out.weight, trainer.ema.state_dict()["out.weight"])


def test_adamw_weight_decay_shrinks_weights_without_gradient() -> None:
    class Frozen(torch.nn.Module):  # a parameter with zero gradient
        def __init__(self):
            super().__init__()
            self.net = MLP(1, width=8, depth=1)
            self.unused = torch.nn.Parameter(torch.ones(3))

        def forward(self, x, t):  # zero gradient for ``unused``: Adam's step is 0, only the decay moves it
            return vsmlab.Prediction(eps=self.net(x, t).eps + 0.0 * self.unused.sum())

    model = Frozen()
    vsmlab.fit(model, torch.randn(64, 1), vsmlab.linear(50), 3, batch_size=8, lr=0.1, optimizer="adamw",
               weight_decay=0.5)
    torch.testing.assert_close(model.unused.detach(), torch.full((3,), (1 - 0.1 * 0.5) ** 3))
    with pytest.raises(ValueError, match="weight_decay.*adamw"):
        vsmlab.fit(MLP(1, width=8, depth=1), torch.randn(8, 1), vsmlab.linear(50), 1, weight_decay=0.1)


def test_loss_second_moment_sampler_history_probabilities_and_weights() -> None:
    T, H = 4, 3
    s = LossSecondMomentSampler(T, history_per_term=H)
    g = torch.Generator().manual_seed(0)
    t, w = s.sample(1000, g)
    torch.testing.assert_close(w, torch.ones(1000))  # uniform until every step has H losses
    # step 0 gets 5 losses in one batch (only the last 3 are kept), the others 3 each
    s.update(torch.tensor([0, 1, 0, 0, 2, 3, 0, 0, 1, 1, 2, 2, 3, 3]),
             torch.tensor([9.0, 1, 9, 1, 2, 3, 2, 3, 1, 1, 2, 2, 3, 3]))
    assert s.count.tolist() == [5, 3, 3, 3]
    rms = torch.tensor([math.sqrt((1 + 4 + 9) / 3), 1.0, 2.0, 3.0], dtype=torch.float64)
    p = rms / rms.sum() * (1 - 1e-3) + 1e-3 / T
    torch.testing.assert_close(s.probabilities(), p)
    t, w = s.sample(20000, g)
    torch.testing.assert_close(w, (1 / (T * p[t])).float())
    freq = torch.bincount(t, minlength=T) / 20000
    torch.testing.assert_close(freq.double(), p, atol=0.015, rtol=0)
    # the ring keeps the last H: two more losses for step 1 replace its two oldest
    s.update(torch.tensor([1, 1]), torch.tensor([5.0, 5.0]))
    assert sorted(s.state_dict()["history"][1].tolist()) == [1.0, 5.0, 5.0]
    s2 = LossSecondMomentSampler(T, history_per_term=H)
    s2.load_state_dict(s.state_dict())
    torch.testing.assert_close(s2.probabilities(), s.probabilities())
    with pytest.raises(ValueError, match="timestep_sampler"):
        UniformSampler(T).load_state_dict(s.state_dict())


def test_importance_weighted_training_runs_and_fills_the_history(mix1d) -> None:
    sched = vsmlab.linear(20, 1e-3, 0.2)
    trainer = Trainer(MLP(1, width=8, depth=1), mix1d.sample(200), sched, 30, batch_size=64,
                      timestep_sampler="loss_second_moment")
    list(trainer.run())
    assert int(trainer.timestep_sampler.count.sum()) == 30 * 64
    assert bool((trainer.timestep_sampler.count >= 10).all())


def test_per_step_rng_depends_on_seed_and_step_only(mix1d, aggressive) -> None:
    data = mix1d.sample(500, generator=torch.Generator().manual_seed(0))

    def batches(trainer, steps):
        return [trainer._batch(s) for s in steps]

    a = Trainer(MLP(1, width=8, depth=1), data, aggressive, 10, batch_size=16, rng="per_step", seed=4)
    b = Trainer(MLP(1, width=8, depth=1), data, aggressive, 10, batch_size=16, rng="per_step", seed=4)
    for (x1, t1, e1, _), (x2, t2, e2, _) in zip(batches(a, [3, 1, 2]), batches(b, [3, 1, 2])):
        assert torch.equal(x1, x2) and torch.equal(t1, t2) and torch.equal(e1, e2)
    x3, t3, _, _ = a._batch(4)
    assert not torch.equal(t3, a._batch(3)[1])
    assert step_key(4, 3) != step_key(4, 3, 0) != step_key(4, 3, 1) and step_key(0, 1) != step_key(1, 0)
    # dropout draws are keyed too: the same run twice gives the same weights
    def dropout_run():
        torch.manual_seed(123)  # the global generator must not matter
        net = DropMLP()
        list(Trainer(net, data, aggressive, 5, batch_size=16, rng="per_step", seed=2).run())
        torch.manual_seed(999)
        return net

    n1, n2 = dropout_run(), dropout_run()
    assert all(torch.equal(p, q) for p, q in zip(n1.parameters(), n2.parameters()))


class DropMLP(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.net = MLP(1, width=8, depth=1, seed=0)
        self.drop = torch.nn.Dropout(0.5)

    def forward(self, x, t):
        pred = self.net(self.drop(x), t)
        return pred


def test_bad_options_name_the_argument(mix1d, aggressive) -> None:
    data = mix1d.sample(16)
    for kwargs, name in ((dict(optimizer="sgd"), "optimizer"), (dict(timestep_sampler="x"), "timestep_sampler"),
                         (dict(rng="global"), "rng"), (dict(amp="fp16"), "amp"), (dict(ema_decay=1.5), "ema_decay"),
                         (dict(warmup=-1), "warmup"), (dict(log_every=0), "log_every"),
                         (dict(max_grad_norm=0.0), "max_grad_norm"), (dict(amp="bf16"), "amp")):
        with pytest.raises(ValueError, match=name):
            vsmlab.fit(MLP(1, width=8, depth=1), data, aggressive, 1, batch_size=4, **kwargs)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="device.*CUDA"):
            vsmlab.fit(MLP(1, width=8, depth=1), data, aggressive, 1, batch_size=4, device="cuda")


def test_uint8_images_are_scaled_to_minus_one_one(aggressive) -> None:
    seen = []

    def loss(model, x0, t, eps, schedule):
        seen.append(x0)
        return vsmlab.eps_mse_loss(model, x0.flatten(1), t, eps.flatten(1), schedule)

    images = torch.tensor([[[[0, 255]]]], dtype=torch.uint8).expand(4, 1, 1, 2).contiguous()
    vsmlab.fit(MLP(2, width=8, depth=1), images, aggressive, 1, batch_size=2, loss_fn=loss)
    assert seen[0].dtype == torch.float32 and seen[0][0].flatten().tolist() == [-1.0, 1.0]


def test_ranks_take_consecutive_slices_of_the_global_batch(mix1d, aggressive) -> None:
    data = mix1d.sample(300, generator=torch.Generator().manual_seed(0))
    trainer = Trainer(MLP(1, width=8, depth=1), data, aggressive, 5, batch_size=12, rng="per_step",
                      timestep_sampler="loss_second_moment")
    whole = trainer._batch(4)
    parts = []
    for rank in range(3):  # what rank r of 3 would draw (the slicing is all that depends on the rank)
        trainer.rank, trainer.world = rank, 3
        parts.append(trainer._batch(4))
    for i in range(4):
        if whole[i] is not None:
            assert torch.equal(torch.cat([p[i] for p in parts]), whole[i])
    assert parts[0][0].shape[0] == 4
