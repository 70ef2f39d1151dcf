"""Cards, constructed hallucinations and the validator's calibration: six corruption kinds of real grids,
the ROC of the worst-quadrant score rule, and :func:`calibrate_cards`, which measures both on real, noisy
real and corrupted grids at a threshold (the benchmark's :data:`~vsmlab.data.cards.validate.THRESHOLD`)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from vsmlab.data.cards.generate import _COL, N_CARDS, _layout, draw_face, lab_faces, make_cards
from vsmlab.data.cards.validate import THRESHOLD, _check_images, validate_cards

__all__ = ["CORRUPTIONS", "corrupt_cards", "roc_curve", "CardsCalibration", "calibrate_cards"]

CORRUPTIONS = ("blend", "wrong_pips", "shift", "noise", "blank", "repeat")


def _wrong_pip_face(card: int, face: int, rgb: bool, gen: torch.Generator) -> np.ndarray:
    """Card ``card`` drawn with one pip too few or too many (the rank index kept)."""
    rank = card % 10
    if rank == 0:
        pips = [(_COL["C"], 0.2), (_COL["C"], 0.8)]  # an ace with two small pips
    elif int(torch.randint(2, (1,), generator=gen)) == 0 or rank == 9:  # one pip dropped
        layout = _layout(rank)
        drop = int(torch.randint(len(layout), (1,), generator=gen))
        pips = layout[:drop] + layout[drop + 1 :]
    else:  # the next rank's layout under this rank's index
        pips = _layout(rank + 1)
    return draw_face(card, face, rgb, pips)


def corrupt_cards(images: torch.Tensor, cards: torch.Tensor, kind: str, generator: torch.Generator) -> torch.Tensor:
    """One constructed hallucination per image (uint8 ``[B, C, S, S]`` grids of the lab's faces).

    kind: "blend" (a quadrant = 0.35..0.65 mix of its card and another), "wrong_pips" (a quadrant redrawn
    with one pip too few or too many), "shift" (a quadrant's content moved 2..6 px per 64, white fill),
    "noise" (Gaussian noise, std 0.05..0.25 of the range, on the whole image), "blank" (a quadrant of one
    grey level), "repeat" (a quadrant replaced by a copy of another). cards: ``[B, 4]`` card indices.
    """
    _check_images(images)
    if images.dtype != torch.uint8:
        raise TypeError(f"images: expected uint8, got {images.dtype}")
    if kind not in CORRUPTIONS:
        raise ValueError(f"kind: expected one of {CORRUPTIONS}, got {kind!r}")
    out = images.clone()
    b, c, s, _ = images.shape
    h = s // 2
    rgb = c == 3
    faces = torch.from_numpy(np.array(lab_faces(h, rgb))).permute(0, 3, 1, 2)

    def quad(i: int, q: int) -> torch.Tensor:
        r, col = divmod(q, 2)
        return out[i, :, r * h : (r + 1) * h, col * h : (col + 1) * h]

    for i in range(b):
        q = int(torch.randint(4, (1,), generator=generator))
        card = int(cards[i, q])
        if kind == "blend":
            other = (card + 1 + int(torch.randint(N_CARDS - 1, (1,), generator=generator))) % N_CARDS
            a = 0.35 + 0.3 * float(torch.rand(1, generator=generator))
            mix = a * faces[card].float() + (1 - a) * faces[other].float()
            quad(i, q).copy_(mix.round().to(torch.uint8))
        elif kind == "wrong_pips":
            quad(i, q).copy_(torch.from_numpy(_wrong_pip_face(card, h, rgb, generator)).permute(2, 0, 1))
        elif kind == "shift":
            m = max(1, round((2 + int(torch.randint(5, (1,), generator=generator))) * h / 64))
            dy, dx = [m * int(v) for v in torch.randint(-1, 2, (2,), generator=generator)]
            if dy == 0 and dx == 0:
                dx = m
            src = quad(i, q).clone()
            shifted = torch.full_like(src, 255)
            ys, yd = (slice(0, h - dy), slice(dy, h)) if dy >= 0 else (slice(-dy, h), slice(0, h + dy))
            xs, xd = (slice(0, h - dx), slice(dx, h)) if dx >= 0 else (slice(-dx, h), slice(0, h + dx))
            shifted[:, yd, xd] = src[:, ys, xs]
            quad(i, q).copy_(shifted)
        elif kind == "noise":
            sigma = 255 * (0.05 + 0.2 * float(torch.rand(1, generator=generator)))
            noisy = out[i].float() + sigma * torch.randn(out[i].shape, generator=generator)
            out[i] = noisy.round().clamp(0, 255).to(torch.uint8)
        elif kind == "blank":
            quad(i, q).fill_(int(torch.randint(256, (1,), generator=generator)))
        else:  # repeat
            other_q = (q + 1 + int(torch.randint(3, (1,), generator=generator))) % 4
            quad(i, q).copy_(quad(i, other_q).clone())
    return out


def roc_curve(negative: torch.Tensor, positive: torch.Tensor) -> dict[str, torch.Tensor]:
    """ROC of the rule "flag if score < threshold": negatives = real images, positives = corrupted.

    Returns float64 tensors ``threshold`` (ascending, one past the largest score at the end), ``fpr``
    (share of negatives flagged), ``tpr`` (share of positives flagged) and ``auc`` (trapezoid rule).
    """
    neg = torch.as_tensor(negative, dtype=torch.float64).flatten()
    pos = torch.as_tensor(positive, dtype=torch.float64).flatten()
    if neg.numel() == 0 or pos.numel() == 0:
        raise ValueError("negative, positive: expected at least one score each")
    levels = torch.unique(torch.cat([neg, pos]))
    thresholds = torch.cat([levels[:1] - 1e-9, levels + 1e-12, levels[-1:] + 1.0])
    fpr = (neg.unsqueeze(0) < thresholds.unsqueeze(1)).double().mean(dim=1)
    tpr = (pos.unsqueeze(0) < thresholds.unsqueeze(1)).double().mean(dim=1)
    auc = torch.trapezoid(tpr, fpr)
    return {"threshold": thresholds, "fpr": fpr, "tpr": tpr, "auc": auc}


@dataclass(frozen=True)
class CardsCalibration:
    """Validator calibration at ``threshold``: worst-quadrant scores of exact real images
    (``real_scores``, ``real_flagged`` of them flagged), of real images with pixel noise of std
    ``negative_noise`` (``negative_scores``: a faithful sample's grain, the ROC's negatives), of each
    corruption kind (``scores``, ``caught`` flagged), and the ROC of the score rule over all score-based kinds."""

    threshold: float
    negative_noise: float
    real_scores: torch.Tensor
    real_flagged: int
    negative_scores: torch.Tensor
    negative_flagged: int
    scores: dict[str, torch.Tensor]
    caught: dict[str, int]
    roc: dict[str, torch.Tensor]


def calibrate_cards(
    n_real: int = 2000,
    n_per_kind: int = 200,
    seed: int = 0,
    size: int = 128,
    rgb: bool = False,
    threshold: float = THRESHOLD,
    negative_noise: float = 0.02,
) -> CardsCalibration:
    """Validate ``n_real`` real grids (exact, and with Gaussian pixel noise of std ``negative_noise`` in
    [0, 1] units) and ``n_per_kind`` corruptions of each kind in :data:`CORRUPTIONS` (test-split sets).

    The ROC uses the worst-quadrant score (blank quadrants score 0) with the noisy real images as
    negatives; "repeat" is caught by the repeat rule, not the score, so it is left out of the ROC.
    """
    images, _ = make_cards(n_real, seed, rgb, "train", size)
    real = validate_cards(images, threshold=threshold)
    gen = torch.Generator().manual_seed(int(seed) + 2)
    noisy = (images.float() + 255 * negative_noise * torch.randn(images.shape, generator=gen)).round().clamp(0, 255)
    negative = validate_cards(noisy.to(torch.uint8), threshold=threshold)
    base, cards = make_cards(n_per_kind, seed + 1, rgb, "test", size)
    scores, caught = {}, {}
    for kind in CORRUPTIONS:
        verdict = validate_cards(corrupt_cards(base, cards, kind, gen), threshold=threshold)
        scores[kind] = verdict.worst_score
        caught[kind] = int(verdict.hallucinated.sum())
    positives = torch.cat([scores[k] for k in CORRUPTIONS if k != "repeat"])
    return CardsCalibration(
        float(threshold), float(negative_noise), real.worst_score, int(real.hallucinated.sum()),
        negative.worst_score, int(negative.hallucinated.sum()), scores, caught, roc_curve(negative.worst_score, positives),
    )
