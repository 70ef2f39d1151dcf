"""vsmlab.analysis.fidelity and vsmlab.analysis.encoder: precision, composition TV, coverage, memorisation,
duplicate positions, the shapes encoder and the Frechet distance on its features.

Oracles: the exact SimpleShapes distribution (patterns 1/7 each, uniform positions, the chance of an exact
copy), constructed corruptions (duplicates the validator must call duplicate), an independent FD computation
(eigendecomposition of the symmetric form), FD(x, x) = 0."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from vsmlab.analysis import encoder as E
from vsmlab.analysis import fidelity as F
from vsmlab.data.shapes import KINDS, generate, template_bank
from vsmlab.data.shapes_validate import validate

SIZE = 32


@pytest.fixture(scope="module")
def real():
    return generate(600, SIZE, seed=11)


@pytest.fixture(scope="module")
def trained():
    return E.train_encoder(SIZE, seed=0)


# ---------------------------------------------------------------------------------- precision, patterns
def test_precision_and_patterns_of_real_images(real):
    v = validate(real.images)
    assert F.precision(v).rate == 1.0
    expected = np.bincount((real.presence * np.array([1, 2, 4])).sum(1), minlength=8)[1:]
    assert np.array_equal(F.pattern_counts(v), expected)
    tv = F.pattern_tv(v)
    assert tv.n == 600 and tv.tv == pytest.approx(0.5 * np.abs(expected / 600 - 1 / 7).sum())
    assert tv.null_mean < tv.null_q95 < 0.1


def test_pattern_tv_null_is_calibrated_on_real_sets():
    """Real sets exceed the null's 95th percentile about 5% of the time (60 sets of 300 images)."""
    over = []
    for seed in range(60):
        pres = generate(300, SIZE, seed=1000 + seed).presence
        counts = np.bincount((pres * np.array([1, 2, 4])).sum(1), minlength=8)[1:]
        r = F.pattern_tv(counts, draws=1000, seed=seed)
        over.append(r.tv > r.null_q95)
    assert np.mean(over) <= 0.15  # binomial(60, 0.05): P(> 9) < 0.2%


def test_pattern_tv_flags_a_skewed_composition():
    counts = np.array([300, 0, 0, 0, 0, 0, 0])
    tv = F.pattern_tv(counts)
    assert tv.tv == pytest.approx(6 / 7) and tv.tv > tv.null_q95
    # invalid images do not count: a duplicate's pattern is only counted with valid_only=False
    dup = F.corrupt_shapes(generate(20, SIZE, seed=2), "duplicate", seed=0)
    v = validate(dup)
    assert F.pattern_counts(v).sum() == 0 and F.pattern_counts(v, valid_only=False).sum() == 20
    with pytest.raises(ValueError, match="no valid image"):
        F.pattern_tv(v)
    with pytest.raises(ValueError, match="empty"):
        F.precision([])


# ------------------------------------------------------------------------------------------ coverage
def test_position_coverage_matches_factors_and_expectation(real):
    cov = F.position_coverage(validate(real.images), SIZE)
    ref = F.real_position_coverage(600, SIZE, seed=11)  # the same images, from their factors
    M = template_bank(SIZE).counts()
    for c, k in enumerate(KINDS):
        assert cov[k].total == M[c] and cov[k].shapes == int(real.presence[:, c].sum())
        assert cov[k].seen == ref[k].seen == len(np.unique(real.templates[real.presence[:, c], c]))
        # uniform positions: seen/M close to 1 - (1 - 1/M)^k (sd of the count ~ sqrt(M)/M, < 0.1 here)
        assert abs(cov[k].share - cov[k].expected) < 0.1


# ------------------------------------------------------------------------------------- memorisation
def test_nearest_training_finds_copies_and_distances():
    train = generate(300, SIZE, seed=0)
    samples = np.concatenate([train.images[[5, 17]], F.corrupt_shapes(generate(3, SIZE, seed=9), "noise", seed=1)])
    nn = F.nearest_training(samples, train)
    assert nn.index[:2].tolist() == [5, 17] or np.array_equal(train.images[nn.index[:2]], train.images[[5, 17]])
    assert nn.distance[:2].tolist() == [0.0, 0.0] and nn.exact[:2].all()
    # brute force L2 in [-1, 1] units for the noisy ones
    x = samples[2:].reshape(3, -1).astype(np.float64) / 127.5 - 1
    t = train.images.reshape(300, -1).astype(np.float64) / 127.5 - 1
    d = np.sqrt(((x[:, None] - t[None]) ** 2).sum(-1))
    assert np.allclose(nn.distance[2:], d.min(1), rtol=1e-5) and np.array_equal(nn.index[2:], d.argmin(1))
    with pytest.raises(ValueError, match="samples"):
        F.nearest_training(np.zeros((0, SIZE, SIZE), np.uint8), train)
    with pytest.raises(ValueError, match="samples"):
        F.nearest_training(generate(2, 64, seed=0).images, train)


def test_copies_of_fresh_real_images_match_the_chance_level():
    """A fresh real sample equals one of N training images with the exact probability memorisation_chance."""
    n_train = 3000
    chance = F.memorisation_chance(SIZE, n_train)
    fresh = generate(1500, SIZE, seed=77).images
    copies = F.nearest_training(fresh, generate(n_train, SIZE, seed=0)).copies
    print(f"32 px, {n_train} training images: chance {chance:.4f}, fresh real images copied {copies}")
    assert copies.low <= chance <= copies.high
    assert F.memorisation_chance(SIZE, 0) == 0.0
    assert F.memorisation_chance(64, 5000) < F.memorisation_chance(SIZE, 5000)


def test_duplicate_positions_against_the_training_factors():
    base = generate(40, SIZE, seed=3)
    dup = F.corrupt_shapes(base, "duplicate", seed=4)
    v = validate(dup)
    assert all(x.categories == ("duplicate",) for x in v)
    shapes = F.duplicate_positions(v, base)
    assert len(shapes) == 80  # two shapes in one column per image
    seen = {(k, int(x), int(y)) for k in range(3) for x, y in base.positions[base.presence[:, k], k]}
    for s in shapes:
        assert s.kind == KINDS[s.column]
        assert s.seen_in_training == ((s.column, *s.position) in seen)
    # each image's original shape is in the training set (it is the training image); the added one mostly not
    assert sum(s.seen_in_training for s in shapes) >= 40
    assert F.duplicate_positions(validate(base.images), base) == []


# ------------------------------------------------------------------------------------ encoder, FD
def test_encoder_is_deterministic_and_accurate(trained):
    again = E.train_encoder(SIZE, seed=0, steps=5)
    first5 = E.train_encoder(SIZE, seed=0, steps=5)
    assert all(torch.equal(a, b) for a, b in zip(again.encoder.parameters(), first5.encoder.parameters()))
    assert not all(torch.equal(a, b) for a, b in
                   zip(E.train_encoder(SIZE, seed=1, steps=5).encoder.parameters(), first5.encoder.parameters()))
    acc = E.encoder_accuracy(trained.encoder, generate(1000, SIZE, seed=123))
    print(f"encoder held-out accuracy (1000 images): {acc}; loss {trained.losses[0]:.3f} -> {trained.losses[-1]:.4f}")
    assert acc["presence"] > 0.95 and acc["rows"] > 0.9
    with pytest.raises(ValueError, match="32"):
        E.encode(trained.encoder, generate(2, 64, seed=0).images)
    with pytest.raises(ValueError, match="empty"):
        E.encode(trained.encoder, np.zeros((0, SIZE, SIZE), np.uint8))


def _fd_reference(a: np.ndarray, b: np.ndarray) -> float:
    """FD via the symmetric form tr((C_a^1/2 C_b C_a^1/2)^1/2) with eigendecompositions."""
    ca, cb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    w, U = np.linalg.eigh(ca)
    ra = (U * np.sqrt(np.clip(w, 0, None))) @ U.T
    m = ra @ cb @ ra
    tr = np.sqrt(np.clip(np.linalg.eigvalsh((m + m.T) / 2), 0, None)).sum()
    return float(((a.mean(0) - b.mean(0)) ** 2).sum() + np.trace(ca) + np.trace(cb) - 2 * tr)


def test_frechet_distance_against_an_independent_computation():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((500, 6)) @ rng.standard_normal((6, 6))
    b = rng.standard_normal((400, 6)) * 2 + 1
    assert F.frechet_distance(a, b) == pytest.approx(_fd_reference(a, b), rel=1e-8)
    assert F.frechet_distance(a, a) == pytest.approx(0.0, abs=1e-9)
    # 1-D closed form: (mu_a - mu_b)^2 + (s_a - s_b)^2
    x, y = rng.standard_normal((300, 1)), 3 + 2 * rng.standard_normal((300, 1))
    closed = (x.mean() - y.mean()) ** 2 + (x.std(ddof=1) - y.std(ddof=1)) ** 2
    assert F.frechet_distance(x, y) == pytest.approx(closed, rel=1e-10)
    with pytest.raises(ValueError, match="features_b"):
        F.frechet_distance(a, b[:, :3])


def test_fd_small_between_real_sets_and_grows_with_corruption(trained, real):
    other = generate(600, SIZE, seed=12)
    f_real, f_other = E.encode(trained.encoder, real.images), E.encode(trained.encoder, other.images)
    fd_rr = F.frechet_distance(f_real, f_other)
    fd = {"self": F.frechet_distance(f_real, f_real), "real'": fd_rr}
    for kind, kw in (("noise 0.3", dict(kind="noise", noise=0.3)), ("noise 0.6", dict(kind="noise", noise=0.6)),
                     ("duplicate", dict(kind="duplicate"))):
        fd[kind] = F.frechet_distance(f_other, E.encode(trained.encoder, F.corrupt_shapes(real, seed=5, **kw)))
    print("FD (600 vs 600 images, 32 px):", {k: round(v, 2) for k, v in fd.items()})
    value, lo, hi = F.frechet_interval(f_real, f_other, n_bootstrap=50)
    assert value == pytest.approx(fd_rr) and lo < hi and hi < fd["noise 0.3"]
    assert fd["self"] == pytest.approx(0.0, abs=1e-6)
    assert fd["noise 0.3"] > 2 * fd_rr and fd["noise 0.6"] > fd["noise 0.3"] and fd["duplicate"] > 5 * fd_rr


def test_corrupt_shapes_arguments():
    d = generate(3, SIZE, seed=0)
    with pytest.raises(ValueError, match="kind"):
        F.corrupt_shapes(d, "blur")
    assert np.array_equal(F.corrupt_shapes(d, "noise", seed=1), F.corrupt_shapes(d, "noise", seed=1))
    assert math.isclose(F.Coverage("square", 0, 0, 100).expected, 0.0)
