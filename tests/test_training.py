"""Training: a briefly trained 1-D MLP approaches the exact score; seeding; divergence errors."""

from __future__ import annotations

import pytest
import torch

import vsmlab
from vsmlab import MLP, ExactScoreModel, GaussianMixture, Schedule, TrainingDiverged


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


def test_huge_learning_rate_diverges_with_a_step(mix1d: GaussianMixture, aggressive: Schedule) -> None:
    data = mix1d.sample(1000, generator=torch.Generator().manual_seed(0))
    with pytest.raises(TrainingDiverged, match=r"training diverged at step \d+: loss term '\w+' is (nan|inf)"):
        vsmlab.fit(MLP(1, width=16, depth=1, norm=False), data, aggressive, 50, batch_size=64, lr=1e30)
