"""Validators for SimpleShapes images: the strict per-column rule and the VSM code's rule.

**Strict rule.** Binarise at 127 (white = pixel > 127) and label 8-connected components
(``scipy.ndimage.label``). Each component is tested as a shape:

- *where*: it must lie inside one strip (a component crossing a column border, or touching the area
  outside the three strips, e.g. row/column 63 at 64 px, is ``malformed``);
- *what*: its best-aligned IoU (over all integer shifts) against the rendered footprints of each kind
  (every distinct cropped mask the generator draws, clipped variants included) is computed; it is
  recognised as the kind with the highest IoU if that IoU >= ``iou_min`` (default 0.85) and its area lies
  in that kind's area band (64 px: triangle [63, 67], square [60, 68], pentagon [68, 72]; 32 px:
  [14, 17], [14, 18], [23, 27]). Different kinds never reach the threshold against each other (best
  IoU between kinds: 0.77 at 64 px, 0.68 at 32 px), so area alone need not separate square from triangle.

Categories per image (an image may show several; ``valid`` only when it shows none of the others):

- ``blank``: no white pixel at all;
- ``wrong_kind``: a recognised shape of another kind than its column's;
- ``duplicate``: two or more recognised shapes in one column (the mode-interpolation signature);
- ``malformed``: a component that is not a shape (partial shape, stray blob, shapes merged into one
  component), a component crossing a column border, or any white pixel outside the three strips.

:func:`summarize` counts each image once, in the order blank, wrong_kind, duplicate, malformed.

**VSM rule** (:func:`vsm_rule`): crop to the strips, count white pixels per column; valid if ANY column's
count is in its band (``Geometry.vsm_bands``), blank (not valid) if fewer than ``blank_below`` white pixels
in all (50 at 64 px, 12 at 32 px). Known weakness: a duplicate in another column goes unflagged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import torch
from scipy import ndimage
from scipy.signal import correlate

from vsmlab.core.checks import check_range
from vsmlab.data.shapes import KINDS, SIZES, Geometry, geometry, template_bank

__all__ = [
    "CATEGORIES",
    "SUMMARY_ORDER",
    "Component",
    "Verdict",
    "Summary",
    "as_gray_uint8",
    "validate",
    "summarize",
    "vsm_rule",
    "report",
]

CATEGORIES: tuple[str, ...] = ("valid", "blank", "wrong_kind", "duplicate", "malformed")
SUMMARY_ORDER: tuple[str, ...] = ("blank", "wrong_kind", "duplicate", "malformed")


@dataclass(frozen=True)
class Component:
    """One connected component of white pixels.

    column: strip index 0..2 (0 triangle, 1 square, 2 pentagon), -1 when it crosses a column border or
    touches the area outside the strips. kind: the recognised shape (None: not a shape). closest: the kind
    with the highest IoU, iou: that IoU. area: pixels. bbox: (row0, col0, row1, col1), ends exclusive, in
    image coordinates. position: (x1, y1) of the nearest generator template of ``kind`` in strip
    coordinates (None when not recognised); exact: the component equals that template pixel for pixel
    (so it sits at a position the generator draws). problem: why it is malformed, or None.
    """

    column: int
    kind: str | None
    closest: str
    iou: float
    area: int
    bbox: tuple[int, int, int, int]
    position: tuple[int, int] | None
    exact: bool
    problem: str | None


@dataclass(frozen=True)
class Verdict:
    """Every category one image shows (``("valid",)`` or a sub-tuple of SUMMARY_ORDER, in that order),
    its components and the number of white pixels outside the strips."""

    categories: tuple[str, ...]
    components: tuple[Component, ...]
    outside_pixels: int = 0

    @property
    def valid(self) -> bool:
        return self.categories == ("valid",)

    @property
    def category(self) -> str:
        """The one category the summary counts this image under (first in SUMMARY_ORDER, or valid)."""
        return self.categories[0]


@dataclass(frozen=True)
class Summary:
    """n images; invalid = images with any non-valid category (the strict hallucination count);
    counts: each image once (valid + SUMMARY_ORDER, summing to n); shows: images showing each category."""

    n: int
    invalid: int
    counts: dict[str, int] = field(default_factory=dict)
    shows: dict[str, int] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.invalid / self.n if self.n else float("nan")


@dataclass(frozen=True)
class _Tables:
    geom: Geometry
    footprints: tuple[tuple[np.ndarray, ...], ...]  # per kind: distinct cropped masks (float64)
    exact_fp: dict  # (shape, bytes) -> kind index
    exact_pos: tuple[dict, ...]  # per kind: (row0, col0, shape, bytes) in strip coords -> (x1, y1)
    flat: tuple[np.ndarray, ...]  # per kind: float32 [M, strip pixels]


def _crop(mask: np.ndarray) -> tuple[int, int, np.ndarray]:
    rows, cols = np.nonzero(mask)
    r0, c0 = int(rows.min()), int(cols.min())
    return r0, c0, np.ascontiguousarray(mask[r0: rows.max() + 1, c0: cols.max() + 1])


@lru_cache(maxsize=None)
def _tables(size: int) -> _Tables:
    bank = template_bank(size)
    footprints, exact_fp, exact_pos, flat = [], {}, [], []
    for k in range(3):
        fps: dict = {}
        pos_map: dict = {}
        for m, (x1, y1) in zip(bank.masks[k], bank.positions[k]):
            r0, c0, fp = _crop(m)
            key = (fp.shape, fp.tobytes())
            fps.setdefault(key, fp.astype(np.float64))
            exact_fp[key] = k
            pos_map[(r0, c0) + key] = (int(x1), int(y1))
        footprints.append(tuple(fps.values()))
        exact_pos.append(pos_map)
        flat.append(bank.masks[k].reshape(bank.masks[k].shape[0], -1).astype(np.float32))
    return _Tables(bank.geometry, tuple(footprints), exact_fp, tuple(exact_pos), tuple(flat))


def _aligned_iou(a: np.ndarray, b: np.ndarray) -> float:
    inter = correlate(a, b, mode="full", method="direct").max()
    return float(inter / (a.sum() + b.sum() - inter))


def as_gray_uint8(images: np.ndarray | torch.Tensor) -> np.ndarray:
    """uint8 [N, H, W], [N, H, W, 1] or [N, H, W, 3] (RGB -> mean of the channels, rounded) -> [N, H, W]."""
    if isinstance(images, torch.Tensor):
        images = images.detach().cpu().numpy()
    images = np.asarray(images)
    if images.dtype != np.uint8:
        raise TypeError(f"images: expected uint8 pixels (0..255), got dtype {images.dtype}")
    if images.ndim == 4 and images.shape[-1] in (1, 3):
        images = np.rint(images.mean(axis=-1)).astype(np.uint8) if images.shape[-1] == 3 else images[..., 0]
    if images.ndim != 3:
        raise ValueError(f"images: expected shape [N, H, W] or [N, H, W, 3], got {images.shape}")
    return images


def _size_of(images: np.ndarray, size: int | None) -> Geometry:
    h, w = images.shape[1:]
    if h != w or h not in SIZES:
        raise ValueError(f"images: expected square images of side {' or '.join(map(str, SIZES))}, got {h}x{w}")
    if size is not None and size != h:
        raise ValueError(f"size: {size!r} does not match the images' side {h}")
    return geometry(h)


def _component(mask: np.ndarray, r0: int, c0: int, tab: _Tables, iou_min: float) -> Component:
    geom = tab.geom
    r1, c1 = r0 + mask.shape[0], c0 + mask.shape[1]
    area = int(mask.sum())
    bbox = (r0, c0, r1, c1)
    col = c0 // geom.strip_width
    problem = None
    if r1 > geom.strip_height or c1 > 3 * geom.strip_width:
        problem, col = "outside the strips", -1
    elif (c1 - 1) // geom.strip_width != col:
        problem, col = "crosses a column border", -1
    key = (mask.shape, mask.tobytes())
    if key in tab.exact_fp:
        best, ious = tab.exact_fp[key], None
        best_iou = 1.0
    else:
        fm = mask.astype(np.float64)
        ious = [max(_aligned_iou(fm, fp) for fp in tab.footprints[k]) for k in range(3)]
        best = int(np.argmax(ious))
        best_iou = ious[best]
    lo, hi = geom.area_bands[best]
    recognised = best_iou >= iou_min and lo <= area <= hi
    kind = KINDS[best] if recognised and problem is None else None
    if problem is None and not recognised:
        problem = "not a shape"
    position, exact = None, False
    if kind is not None:
        local_c0 = c0 - col * geom.strip_width
        hit = tab.exact_pos[best].get((r0, local_c0) + key)
        if hit is not None:
            position, exact = hit, True
        else:
            strip = np.zeros((geom.strip_height, geom.strip_width), dtype=np.float32)
            strip[r0:r1, local_c0: local_c0 + mask.shape[1]] = mask
            inter = tab.flat[best] @ strip.ravel()
            iou = inter / (tab.flat[best].sum(1) + area - inter)
            x1, y1 = template_bank(geom.size).positions[best][int(np.argmax(iou))]
            position = (int(x1), int(y1))
    return Component(col, kind, KINDS[best], float(best_iou), area, bbox, position, exact, problem)


def validate(images: np.ndarray | torch.Tensor, size: int | None = None, iou_min: float = 0.85) -> list[Verdict]:
    """Strict verdict per image. images: uint8 [N, H, W] or [N, H, W, 3], H = W in SIZES (decides the
    geometry; ``size`` only checks it). Returns N :class:`Verdict` objects."""
    check_range("iou_min", iou_min, 0, 1, low_open=True)
    images = as_gray_uint8(images)
    tab = _tables(_size_of(images, size).size)
    geom = tab.geom
    white = images > 127
    structure = np.zeros((3, 3, 3), dtype=bool)
    structure[1] = True  # 8-connected within an image, never across images
    labels, _ = ndimage.label(white, structure=structure)
    per_image: list[list[Component]] = [[] for _ in range(images.shape[0])]
    for lab, sl in enumerate(ndimage.find_objects(labels), start=1):
        if sl is None:
            continue
        i = sl[0].start
        mask = np.ascontiguousarray(labels[i, sl[1], sl[2]] == lab)
        per_image[i].append(_component(mask, sl[1].start, sl[2].start, tab, float(iou_min)))
    inside = np.zeros(images.shape[1:], dtype=bool)
    inside[: geom.strip_height, : 3 * geom.strip_width] = True
    outside = (white & ~inside).sum(axis=(1, 2))
    verdicts = []
    for i, comps in enumerate(per_image):
        cats = set()
        if not comps:
            cats.add("blank")
        if outside[i] or any(c.problem is not None for c in comps):
            cats.add("malformed")
        for col in range(3):
            shapes = [c for c in comps if c.column == col and c.kind is not None]
            if any(c.kind != KINDS[col] for c in shapes):
                cats.add("wrong_kind")
            if len(shapes) >= 2:
                cats.add("duplicate")
        ordered = tuple(c for c in SUMMARY_ORDER if c in cats) or ("valid",)
        verdicts.append(Verdict(ordered, tuple(comps), int(outside[i])))
    return verdicts


def summarize(verdicts: list[Verdict]) -> Summary:
    """Counts over verdicts: each image once (first category in SUMMARY_ORDER), and images showing each."""
    counts = {c: 0 for c in CATEGORIES}
    shows = {c: 0 for c in CATEGORIES}
    for v in verdicts:
        counts[v.category] += 1
        for c in v.categories:
            shows[c] += 1
    n = len(verdicts)
    return Summary(n, n - counts["valid"], counts, shows)


def vsm_rule(images: np.ndarray | torch.Tensor, size: int | None = None) -> dict[str, np.ndarray]:
    """The VSM code's rule. Returns ``valid`` bool [N], ``blank`` bool [N], ``column_counts`` int [N, 3]."""
    images = as_gray_uint8(images)
    geom = _size_of(images, size)
    white = images[:, : geom.strip_height, : 3 * geom.strip_width] > 127
    counts = white.reshape(white.shape[0], geom.strip_height, 3, geom.strip_width).sum(axis=(1, 3))
    blank = counts.sum(axis=1) < geom.blank_below
    in_band = np.stack([(counts[:, c] >= lo) & (counts[:, c] <= hi) for c, (lo, hi) in enumerate(geom.vsm_bands)], 1)
    return {"valid": in_band.any(axis=1) & ~blank, "blank": blank, "column_counts": counts}


def report(images: np.ndarray | torch.Tensor, size: int | None = None, iou_min: float = 0.85) -> dict:
    """Strict summary and the VSM rule side by side: ``n``, ``invalid``, ``categories`` (each image once),
    ``shows``, ``vsm_rule_invalid`` and ``flagged_not_vsm`` (strict-invalid images the VSM rule passes,
    per category). Counts only; callers attach intervals (vsmlab.analysis.metrics.wilson_interval)."""
    images = as_gray_uint8(images)
    verdicts = validate(images, size, iou_min)
    summ = summarize(verdicts)
    vsm = vsm_rule(images, size)
    passed = {c: 0 for c in SUMMARY_ORDER}
    for v, ok in zip(verdicts, vsm["valid"]):
        if not v.valid and ok:
            passed[v.category] += 1
    return {
        "n": summ.n, "invalid": summ.invalid, "categories": summ.counts, "shows": summ.shows,
        "vsm_rule_invalid": int((~vsm["valid"]).sum()), "flagged_not_vsm": passed,
    }
