"""Fidelity of SimpleShapes samples without downloads: precision, composition, coverage, memorisation, FD.

All functions take the strict validator's verdicts (:func:`vsmlab.data.shapes_validate.validate`) and/or
uint8 images [N, S, S] and the training set (:class:`vsmlab.data.shapes.ShapesData`).

- **Precision** (:func:`precision`): the valid share with its Wilson interval.
- **Composition** (:func:`pattern_tv`): the presence pattern of a valid image is the set of columns that
  hold a shape, coded as bits (triangle 1, square 2, pentagon 4), so patterns 1..7. In the data every
  non-empty pattern has probability exactly 1/7 (each column present with p = 1/2, all-blank redrawn).
  TV = 1/2 sum_P |share_P - 1/7| over valid samples. With n samples even perfect ones give TV > 0; the
  result carries the TV of n draws from the exact distribution (Monte Carlo: mean and 95th percentile).
- **Position coverage** (:func:`position_coverage`): per kind, the share of the M_k positions seen among
  the shapes of valid samples (the validator's ``Component.position``: the nearest generator template).
  Positions are uniform in the data, so k shapes of a kind cover 1 - (1 - 1/M_k)^k of the positions in
  expectation (``expected``); :func:`real_position_coverage` gives the same count for real images.
- **Memorisation** (:func:`nearest_training`): the nearest training image of each sample by L2 in model
  space ([-1, 1]), and exact copies (binarised at 127, equal pixel for pixel). The share of exact copies
  has a chance level: a fresh sample of the true distribution equals one of N iid training images with
  probability :func:`memorisation_chance` = sum_P (1/7) [1 - (1 - q_P)^N], q_P = (1/7) prod_{c in P} 1/M_c
  (each image of pattern P has probability q_P), which is large at 32 px (single shapes are common).
- **Duplicates** (:func:`duplicate_positions`): for each image with a column holding two or more shapes,
  whether each recognised shape sits at a (kind, position) that occurs in the training set.
- **Frechet distance** (:func:`frechet_distance`) between Gaussians fitted to features (e.g. of the lab's
  encoder, :mod:`vsmlab.analysis.encoder`)::

      FD = ||mu_a - mu_b||^2 + tr(C_a + C_b - 2 (C_a C_b)^{1/2})

  (scipy.linalg.sqrtm; a small imaginary part from rounding is dropped, a large one is an error). FD is
  biased upward at small n: compare sets of equal size, and against real-vs-real at that size.
- :func:`corrupt_shapes` makes controlled corruptions of real images (a duplicated shape, pixel noise) to
  calibrate FD and the validator.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from vsmlab.analysis.metrics import Rate, wilson_interval
from vsmlab.core.checks import check_choice, check_int
from vsmlab.data.shapes import KINDS, ShapesData, generate, geometry, template_bank
from vsmlab.data.shapes_validate import Verdict, as_gray_uint8

__all__ = [
    "precision",
    "presence_pattern",
    "pattern_counts",
    "PatternTV",
    "pattern_tv",
    "Coverage",
    "position_coverage",
    "real_position_coverage",
    "Nearest",
    "nearest_training",
    "memorisation_chance",
    "DuplicateShape",
    "duplicate_positions",
    "frechet_distance",
    "frechet_interval",
    "corrupt_shapes",
]


def _check_verdicts(verdicts: Sequence[Verdict]) -> list[Verdict]:
    verdicts = list(verdicts)
    if not verdicts:
        raise ValueError("verdicts: expected at least one verdict (an empty sample set)")
    if not all(isinstance(v, Verdict) for v in verdicts):
        raise TypeError("verdicts: expected Verdict objects from vsmlab.data.shapes_validate.validate")
    return verdicts


def precision(verdicts: Sequence[Verdict]) -> Rate:
    """Share of valid images (strict rule) with its 95% Wilson interval."""
    verdicts = _check_verdicts(verdicts)
    return wilson_interval(sum(v.valid for v in verdicts), len(verdicts))


def presence_pattern(verdict: Verdict) -> int:
    """Bits of the columns holding a recognised shape (triangle 1, square 2, pentagon 4): 0..7."""
    cols = {c.column for c in verdict.components if c.kind is not None and c.column >= 0}
    return sum(1 << c for c in cols)


def pattern_counts(verdicts: Sequence[Verdict], valid_only: bool = True) -> np.ndarray:
    """Counts int64 [7] of patterns 1..7 (index P - 1) over the (valid) images; pattern 0 is not counted."""
    verdicts = _check_verdicts(verdicts)
    counts = np.zeros(7, dtype=np.int64)
    for v in verdicts:
        if v.valid or not valid_only:
            p = presence_pattern(v)
            if p:
                counts[p - 1] += 1
    return counts


@dataclass(frozen=True)
class PatternTV:
    """counts [7] of patterns 1..7, n = their sum, tv against the exact 1/7 each, and the TV of n draws of
    the exact distribution: null_mean and null_q95 (Monte Carlo, ``draws`` repetitions)."""

    counts: tuple[int, ...]
    n: int
    tv: float
    null_mean: float
    null_q95: float


def _tv(counts: np.ndarray) -> np.ndarray:
    n = counts.sum(-1, keepdims=True)
    return 0.5 * np.abs(counts / np.maximum(n, 1) - 1 / 7).sum(-1)


def pattern_tv(verdicts_or_counts: Sequence[Verdict] | np.ndarray, *, draws: int = 2000, seed: int = 0) -> PatternTV:
    """TV between the pattern distribution of the valid images (or given counts [7]) and the data's 1/7 each."""
    if isinstance(verdicts_or_counts, np.ndarray):
        counts = verdicts_or_counts.astype(np.int64)
        if counts.shape != (7,) or np.any(counts < 0):
            raise ValueError(f"verdicts_or_counts: expected 7 non-negative pattern counts, got {verdicts_or_counts!r}")
    else:
        counts = pattern_counts(verdicts_or_counts)
    check_int("draws", draws, low=1)
    n = int(counts.sum())
    if n == 0:
        raise ValueError("verdicts_or_counts: no valid image with a shape; the pattern distribution is undefined")
    null = _tv(np.random.default_rng(seed).multinomial(n, np.full(7, 1 / 7), size=draws))
    return PatternTV(tuple(int(c) for c in counts), n, float(_tv(counts)), float(null.mean()),
                     float(np.quantile(null, 0.95)))


@dataclass(frozen=True)
class Coverage:
    """Per kind: shapes counted, positions seen (distinct), total positions M, share = seen / M and the
    expected share for that many uniform draws, 1 - (1 - 1/M)^shapes."""

    kind: str
    shapes: int
    seen: int
    total: int

    @property
    def share(self) -> float:
        return self.seen / self.total

    @property
    def expected(self) -> float:
        return 1.0 - (1.0 - 1.0 / self.total) ** self.shapes


def position_coverage(verdicts: Sequence[Verdict], size: int, valid_only: bool = True) -> dict[str, Coverage]:
    """Position coverage per kind over the recognised shapes of the (valid) images, at image ``size``."""
    verdicts = _check_verdicts(verdicts)
    counts = template_bank(geometry(size).size).counts()
    seen: dict[str, set] = {k: set() for k in KINDS}
    shapes = {k: 0 for k in KINDS}
    for v in verdicts:
        if valid_only and not v.valid:
            continue
        for c in v.components:
            if c.kind is not None and c.position is not None:
                seen[c.kind].add(tuple(c.position))
                shapes[c.kind] += 1
    return {k: Coverage(k, shapes[k], len(seen[k]), counts[i]) for i, k in enumerate(KINDS)}


def real_position_coverage(n_images: int, size: int, seed: int = 0) -> dict[str, Coverage]:
    """The same coverage for ``n_images`` real images drawn by ``generate(n_images, size, seed)`` (factors)."""
    check_int("n_images", n_images, low=1)
    data = generate(n_images, size, seed)
    counts = template_bank(data.size).counts()
    out = {}
    for c, k in enumerate(KINDS):
        present = data.presence[:, c]
        out[k] = Coverage(k, int(present.sum()), len(np.unique(data.templates[present, c])), counts[c])
    return out


@dataclass(frozen=True)
class Nearest:
    """Per sample: index [N] of the nearest training image (L2 in [-1, 1] units), distance [N], exact [N]
    (binarised sample equals a training image; exact_index [N] is that image, -1 otherwise)."""

    index: np.ndarray
    distance: np.ndarray
    exact: np.ndarray
    exact_index: np.ndarray

    @property
    def copies(self) -> Rate:
        """Share of samples that are exact copies of a training image, with its Wilson interval."""
        return wilson_interval(int(self.exact.sum()), int(self.exact.size))


def _images(images: np.ndarray | torch.Tensor, name: str) -> np.ndarray:
    try:
        out = as_gray_uint8(images)
    except (TypeError, ValueError) as exc:
        raise type(exc)(f"{name}: {exc}") from None
    if out.shape[0] < 1:
        raise ValueError(f"{name}: expected at least one image, got an empty set")
    return out


def nearest_training(samples: np.ndarray | torch.Tensor, train: np.ndarray | torch.Tensor | ShapesData,
                     batch_size: int = 256) -> Nearest:
    """Nearest training image of each sample. samples, train: uint8 [N, S, S] / [M, S, S] (or ShapesData)."""
    x = _images(samples, "samples")
    t = _images(train.images if isinstance(train, ShapesData) else train, "train")
    if x.shape[1:] != t.shape[1:]:
        raise ValueError(f"samples: image size {x.shape[1:]} differs from the training images' {t.shape[1:]}")
    check_int("batch_size", batch_size, low=1)
    tf = torch.from_numpy(t.reshape(t.shape[0], -1)).float() / 127.5 - 1
    t_sq = (tf * tf).sum(1)
    index = np.empty(x.shape[0], dtype=np.int64)
    dist = np.empty(x.shape[0], dtype=np.float64)
    for i in range(0, x.shape[0], batch_size):
        xf = torch.from_numpy(x[i: i + batch_size].reshape(-1, tf.shape[1])).float() / 127.5 - 1
        d2 = ((xf * xf).sum(1)[:, None] + t_sq[None] - 2 * xf @ tf.T).clamp_min(0)
        val, idx = d2.min(1)
        index[i: i + len(xf)] = idx.numpy()
        dist[i: i + len(xf)] = val.double().sqrt().numpy()
    lookup: dict[bytes, int] = {}
    for j, img in enumerate(np.packbits(t > 127, axis=-1).reshape(t.shape[0], -1)):
        lookup.setdefault(img.tobytes(), j)
    packed = np.packbits(x > 127, axis=-1).reshape(x.shape[0], -1)
    exact_index = np.array([lookup.get(p.tobytes(), -1) for p in packed], dtype=np.int64)
    return Nearest(index, dist, exact_index >= 0, exact_index)


def memorisation_chance(size: int, n_train: int) -> float:
    """Probability that a fresh sample of the true distribution equals one of ``n_train`` iid training
    images: sum_P (1/7) [1 - (1 - q_P)^n_train], q_P = (1/7) prod_{c in P} 1/M_c (module docstring)."""
    check_int("n_train", n_train, low=0)
    M = template_bank(geometry(size).size).counts()
    total = 0.0
    for pattern in range(1, 8):
        q = 1 / 7
        for c in range(3):
            if pattern >> c & 1:
                q /= M[c]
        total += (1 / 7) * -math.expm1(n_train * math.log1p(-q))
    return total


@dataclass(frozen=True)
class DuplicateShape:
    """One recognised shape in a column that holds two or more: image index, column, kind, position (x1, y1)
    and whether (kind, position) occurs in the training set."""

    image: int
    column: int
    kind: str
    position: tuple[int, int]
    seen_in_training: bool


def duplicate_positions(verdicts: Sequence[Verdict], train: ShapesData) -> list[DuplicateShape]:
    """Every recognised shape of every column with >= 2 shapes (the ``duplicate`` category), and whether it
    sits at a training (kind, position). Compare the share seen with the training set's coverage of each
    kind (:func:`real_position_coverage` style: positions seen / M), the chance level for a random position."""
    verdicts = _check_verdicts(verdicts)
    if not isinstance(train, ShapesData):
        raise TypeError(f"train: expected ShapesData (factors of the training set), got {type(train).__name__}")
    seen = {(c, int(x), int(y)) for c in range(3) for x, y in train.positions[train.presence[:, c], c]}
    out = []
    for i, v in enumerate(verdicts):
        for col in range(3):
            shapes = [c for c in v.components if c.column == col and c.kind is not None]
            if len(shapes) < 2:
                continue
            for c in shapes:
                k = KINDS.index(c.kind)
                pos = (int(c.position[0]), int(c.position[1]))
                out.append(DuplicateShape(i, col, c.kind, pos, (k, *pos) in seen))
    return out


def frechet_distance(features_a: torch.Tensor | np.ndarray, features_b: torch.Tensor | np.ndarray) -> float:
    """Frechet distance between Gaussians fitted to features [N_a, F] and [N_b, F] (module docstring)."""
    from scipy import linalg

    a = np.asarray(features_a.detach().cpu() if isinstance(features_a, torch.Tensor) else features_a, dtype=np.float64)
    b = np.asarray(features_b.detach().cpu() if isinstance(features_b, torch.Tensor) else features_b, dtype=np.float64)
    for name, f in (("features_a", a), ("features_b", b)):
        if f.ndim != 2 or f.shape[0] < 2 or not np.all(np.isfinite(f)):
            raise ValueError(f"{name}: expected finite features [N, F] with N >= 2, got shape {f.shape}")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"features_b: expected {a.shape[1]} features per row (as features_a), got {b.shape[1]}")
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.atleast_2d(np.cov(a, rowvar=False)), np.atleast_2d(np.cov(b, rowvar=False))
    with warnings.catch_warnings():  # dead ReLU features make C singular; sqrtm still answers (checked below)
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        covmean = linalg.sqrtm(cov_a @ cov_b)
        if not np.all(np.isfinite(covmean)):  # regularise as FID implementations do
            eps = 1e-10 * np.eye(a.shape[1])
            covmean = linalg.sqrtm((cov_a + eps) @ (cov_b + eps))
    if np.iscomplexobj(covmean):
        scale = max(1.0, float(np.abs(np.trace(cov_a)) + np.abs(np.trace(cov_b))))
        if np.abs(covmean.imag).max() > 1e-6 * scale:
            raise ValueError(f"features: sqrtm(C_a C_b) has an imaginary part {np.abs(covmean.imag).max():.3g}; "
                             "the covariances are too ill-conditioned (more samples or fewer features)")
        covmean = covmean.real
    fd = float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2 * np.trace(covmean))
    return max(fd, 0.0)


def frechet_interval(features_a: torch.Tensor | np.ndarray, features_b: torch.Tensor | np.ndarray, *,
                     n_bootstrap: int = 200, confidence: float = 0.95, seed: int = 0) -> tuple[float, float, float]:
    """(FD, low, high): FD of the two sets and a bootstrap percentile interval (both sets resampled with
    replacement, ``numpy.random.default_rng(seed)``). The interval shows the sampling spread only; FD's
    small-n bias is not removed (compare at equal set sizes)."""
    check_int("n_bootstrap", n_bootstrap, low=1)
    if not 0 < confidence < 1:
        raise ValueError(f"confidence: expected a number in (0, 1), got {confidence!r}")
    a = np.asarray(features_a.detach().cpu() if isinstance(features_a, torch.Tensor) else features_a, dtype=np.float64)
    b = np.asarray(features_b.detach().cpu() if isinstance(features_b, torch.Tensor) else features_b, dtype=np.float64)
    fd = frechet_distance(a, b)
    rng = np.random.default_rng(seed)
    boots = [frechet_distance(a[rng.integers(0, len(a), len(a))], b[rng.integers(0, len(b), len(b))])
             for _ in range(n_bootstrap)]
    lo, hi = np.percentile(boots, [50 * (1 - confidence), 50 * (1 + confidence)])
    return fd, float(lo), float(hi)


def corrupt_shapes(data: ShapesData, kind: str, seed: int = 0, noise: float = 0.3) -> np.ndarray:
    """Corrupted copies uint8 [N, S, S] of ``data.images``, deterministic in ``seed``:

    - ``"duplicate"``: in one present column per image, a second shape of the column's kind at a random
      position whose footprint keeps a gap of at least one pixel to the first (the validator's
      ``duplicate``); images whose column has no such position are left unchanged (rare);
    - ``"noise"``: each pixel's model-space value gets N(0, noise^2) added, then rounded back to uint8.
    """
    check_choice("kind", kind, ("duplicate", "noise"))
    if not isinstance(data, ShapesData):
        raise TypeError(f"data: expected ShapesData, got {type(data).__name__}")
    rng = np.random.default_rng(seed)
    images = data.images.copy()
    if kind == "noise":
        x = images.astype(np.float64) / 127.5 - 1 + noise * rng.standard_normal(images.shape)
        return np.clip(np.rint((x + 1) * 127.5), 0, 255).astype(np.uint8)
    bank = template_bank(data.size)
    geom = bank.geometry
    from scipy.ndimage import binary_dilation

    for i in range(len(data)):
        cols = np.nonzero(data.presence[i])[0]
        c = int(rng.choice(cols))
        first = bank.masks[c][data.templates[i, c]]
        grown = binary_dilation(first, structure=np.ones((3, 3), dtype=bool), iterations=2)
        free = ~(bank.masks[c] & grown[None]).any(axis=(1, 2))
        options = np.nonzero(free)[0]
        if options.size == 0:
            continue
        second = bank.masks[c][int(rng.choice(options))]
        strip = images[i, : geom.strip_height, geom.column_slice(c)]
        strip[second] = 255
    return images
