"""Cards, the validator: template matching of each quadrant by normalised cross-correlation.

Each quadrant q is compared with every template t by normalised cross-correlation (zero-offset template
matching, OpenCV's TM_CCOEFF_NORMED)::

    ncc(q, t) = <q - mean q, t - mean t> / (|q - mean q| |t - mean t|)

An image is hallucinated if its worst quadrant's best score is below ``threshold``, if a quadrant is
blank (no variation: score 0, no division by zero), or if two quadrants show the same card (the data
never repeats a card; the released validator does not check this).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from vsmlab.core.checks import check_square_images
from vsmlab.data.cards.generate import CARD_CODES, lab_faces

__all__ = ["THRESHOLD", "CATEGORIES", "CardTemplates", "lab_templates", "QuadrantMatch", "match_quadrants",
           "CardsVerdict", "validate_cards"]

THRESHOLD = 0.95  # calibrated in calibrate_cards: see vsmlab.data.cards.calibrate and the benchmark
CATEGORIES = ("blank_quadrant", "low_match", "repeated_card")


@dataclass(frozen=True)
class CardTemplates:
    """Card faces to match against: ``faces`` uint8 ``[K, C, h, w]`` (C 1 or 3) with their ``names``."""

    names: tuple[str, ...]
    faces: torch.Tensor
    source: str = "lab"

    def __post_init__(self) -> None:
        if not isinstance(self.faces, torch.Tensor) or self.faces.dtype != torch.uint8 or self.faces.ndim != 4:
            raise TypeError("faces: expected a uint8 tensor [K, C, h, w]")
        if self.faces.shape[1] not in (1, 3):
            raise ValueError(f"faces: expected 1 or 3 channels, got {self.faces.shape[1]}")
        if len(self.names) != self.faces.shape[0]:
            raise ValueError(f"names: expected {self.faces.shape[0]} names (one per face), got {len(self.names)}")


def lab_templates(face: int = 64, rgb: bool = True) -> CardTemplates:
    """The lab's 40 faces at ``face`` px as templates (names = card codes)."""
    faces = torch.from_numpy(np.array(lab_faces(face, rgb))).permute(0, 3, 1, 2).contiguous()
    return CardTemplates(CARD_CODES, faces, "lab")

def _unit(x: torch.Tensor) -> torch.Tensor:
    """uint8 -> [0, 1] float32; floating images are read as [-1, 1] and mapped to [0, 1]."""
    if x.dtype == torch.uint8:
        return x.float() / 255.0
    if not x.is_floating_point():
        raise TypeError(f"images: expected uint8 or floating point, got {x.dtype}")
    return (x + 1) / 2


def _gray(x: torch.Tensor) -> torch.Tensor:
    w = torch.tensor([0.299, 0.587, 0.114], dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x * w).sum(dim=1, keepdim=True)


def _check_images(images: torch.Tensor) -> None:
    check_square_images("images", images, 2, "[B, 1 or 3, S, S]")


@dataclass(frozen=True)
class QuadrantMatch:
    """Best template per quadrant (TL, TR, BL, BR): ``score`` [B, 4] (NCC in [-1, 1], 0 if blank),
    ``index`` [B, 4] (template index), ``blank`` [B, 4] (no variation in the quadrant)."""

    score: torch.Tensor
    index: torch.Tensor
    blank: torch.Tensor


def match_quadrants(images: torch.Tensor, templates: CardTemplates, blank_std: float = 1e-3) -> QuadrantMatch:
    """Normalised cross-correlation of each quadrant with every template, batched as one matrix product.

    images: uint8 ``[B, C, S, S]`` or float in [-1, 1]; templates are resized (area) to S/2 and converted
    to the images' channels (RGB -> luminance where one side is grayscale). A quadrant whose std (in
    [0, 1] units) is below ``blank_std`` is blank: score 0, no division by zero.
    """
    _check_images(images)
    x = _unit(images)
    t = _unit(templates.faces.to(x.device)).to(x.dtype)
    if x.shape[1] != t.shape[1]:
        x, t = (_gray(x), t) if x.shape[1] == 3 else (x, _gray(t))
    b, c, s, _ = x.shape
    h = s // 2
    if t.shape[-1] != h or t.shape[-2] != h:
        t = F.interpolate(t, size=(h, h), mode="area" if t.shape[-1] > h else "bilinear", **({} if t.shape[-1] > h else {"align_corners": False}))
    q = x.reshape(b, c, 2, h, 2, h).permute(0, 2, 4, 1, 3, 5).reshape(b * 4, -1)
    q = q - q.mean(dim=1, keepdim=True)
    q_norm = q.norm(dim=1)
    blank = q_norm < blank_std * math.sqrt(q.shape[1])
    q = q / torch.where(blank, torch.ones_like(q_norm), q_norm).unsqueeze(1)
    t = t.reshape(t.shape[0], -1)
    t = t - t.mean(dim=1, keepdim=True)
    t_norm = t.norm(dim=1)
    if bool((t_norm < blank_std * math.sqrt(t.shape[1])).any()):
        raise ValueError("templates: a template has no variation (a blank face); NCC is undefined against it")
    ncc = q @ (t / t_norm.unsqueeze(1)).T
    ncc = torch.where(blank.unsqueeze(1), torch.zeros_like(ncc), ncc)
    score, index = ncc.max(dim=1)
    return QuadrantMatch(score.reshape(b, 4), index.reshape(b, 4), blank.reshape(b, 4))


@dataclass(frozen=True)
class CardsVerdict:
    """Per image: ``hallucinated`` [B] bool, ``categories`` (the violated rules, empty if valid),
    ``worst_score`` [B] (lowest quadrant NCC), ``cards`` [B, 4] (best template per quadrant) and ``names``;
    per quadrant (TL, TR, BL, BR): ``scores`` [B, 4] (best NCC) and ``offending`` [B, len(CATEGORIES), 4] bool
    (which quadrants break which rule; an image's categories are the rules with any offending quadrant)."""

    hallucinated: torch.Tensor
    categories: list[tuple[str, ...]]
    worst_score: torch.Tensor
    cards: torch.Tensor
    names: tuple[str, ...]
    scores: torch.Tensor
    offending: torch.Tensor

    def codes(self, i: int) -> list[str]:
        """Names of the cards read in image ``i`` (TL, TR, BL, BR)."""
        return [self.names[j] for j in self.cards[i].tolist()]

    def offending_quadrants(self, i: int, rule: str) -> list[int]:
        """The quadrants (0..3: TL, TR, BL, BR) of image ``i`` that break ``rule`` (one of CATEGORIES)."""
        if rule not in CATEGORIES:
            raise ValueError(f"rule: expected one of {list(CATEGORIES)}, got {rule!r}")
        return torch.nonzero(self.offending[i, CATEGORIES.index(rule)]).flatten().tolist()


def validate_cards(images: torch.Tensor, templates: CardTemplates | None = None, threshold: float = THRESHOLD) -> CardsVerdict:
    """Judge card grids ``[B, C, S, S]``: hallucinated if a quadrant is blank ("blank_quadrant"), matches
    no template at NCC >= threshold ("low_match"), or two matched quadrants show the same card
    ("repeated_card"). templates: default the lab's faces in the images' size and channels."""
    _check_images(images)
    if not 0.0 < float(threshold) <= 1.0:
        raise ValueError(f"threshold: expected a float in (0, 1], got {threshold!r}")
    if templates is None:
        templates = lab_templates(images.shape[-1] // 2, images.shape[1] == 3)
    m = match_quadrants(images, templates)
    ok = (m.score >= threshold) & ~m.blank  # [B, 4]
    low = ~ok & ~m.blank
    same = (m.index.unsqueeze(2) == m.index.unsqueeze(1)) & ok.unsqueeze(2) & ok.unsqueeze(1)  # [B, 4, 4]
    repeated = same.sum(dim=2) > 1  # a matched quadrant whose card another matched quadrant shows too
    offending = torch.stack([m.blank, low, repeated], dim=1).cpu()  # [B, 3, 4] in CATEGORIES order
    flags = offending.any(dim=2)
    categories = [tuple(name for name, f in zip(CATEGORIES, row) if f) for row in flags.tolist()]
    return CardsVerdict(flags.any(dim=1), categories, m.score.min(dim=1).values, m.index, templates.names,
                        m.score, offending)
