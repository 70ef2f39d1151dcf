"""SimpleShapes: the mode-interpolation work's image data set (generator, geometry, factors).

**64 px (the reference generator of the mode-interpolation work).** Each column is a black strip 21 px wide and
63 px tall ('L' mode); one shape may be drawn in it with PIL (fill 255, outline 255). The strips are
concatenated left to right as triangle | square | pentagon into 63x63 and placed at [0:63, 0:63] of a
64x64 canvas (the last row and column stay 0). With target area A = 60 and (x1, y1) the drawn position
inside the strip (ranges inclusive)::

    square    side s = int(sqrt(A)) = 7, rectangle [x1, y1, x1+s, y1+s] (8x8 = 64 px)
              x1 in [1, W - 2s] = [1, 7],  y1 in [1, H - 2s] = [1, 49]               -> 343 positions
    triangle  side a = int(sqrt(4A / sqrt 3)) = 11, vertices (x1, y1), (x1+a, y1), (x1 + a//2, y1 + h)
              with h = int(a sqrt(3) / 2) = 9 (apex down); x1 in [0, W - a] = [0, 10],
              y1 in [0, H - a] = [0, 52]                                            -> 583 positions
    pentagon  circumradius r = int(sqrt(4A / sqrt(5 (5 + 2 sqrt 5)))) = 5 around (x1, y1), vertices
              (x1 + r cos a, y1 - r sin a) for a = 72, 144, ..., 360 degrees;
              x1 in [r, W - r] = [5, 16], y1 in [r, H - r] = [5, 58]                -> 648 positions

(W = 21, H = 63.) The triangle at x1 = 10 and the pentagon at x1 = 16 touch x = 21 and are clipped by the
strip, as in the reference. Rendered areas: triangle 64-65 px, square 64 px, pentagon 69-70 px.

**32 px (reduced size for CPU runs).** Strips 10 px wide and 31 px tall at x = 0, 10, 20 of a 32x32 canvas
(content [0:31, 0:30]; row 31 and columns 30-31 stay 0). Same formulas and range rules with A = 15 except
the pentagon, whose radius int(...) = 2 would make it a 4x4 blob that a template test cannot tell from the
square (IoU 0.82); it is drawn with r = 3 instead::

    square    s = 3 (4x4 = 16 px),  x1 in [1, 4], y1 in [1, 25]                      -> 100 positions
    triangle  a = 5, h = 4,         x1 in [0, 5], y1 in [0, 26]                      -> 162 positions
    pentagon  r = 3,                x1 in [3, 7], y1 in [3, 28]                      -> 130 positions

so the best-aligned IoU between different kinds stays <= 0.68 (at 64 px it is <= 0.77), and every shape is
a single 8-connected component with a gap of at least one pixel to the neighbouring strip's shapes.

**Distribution.** Each column holds its shape independently with p = 1/2 at a uniformly drawn position;
all-blank images are redrawn (composition 3/7 one shape, 3/7 two, 1/7 three; each shape in 4/7). Pixels
are exactly 0 or 255. Images are composed from a bank of PIL-rendered strip templates (one per position),
which gives the same pixels as drawing each image with PIL (tested) and is fast.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
from PIL import Image, ImageDraw

from vsmlab.core.checks import check_choice, check_int

__all__ = [
    "KINDS",
    "SIZES",
    "Geometry",
    "geometry",
    "draw_strip",
    "TemplateBank",
    "template_bank",
    "ShapesData",
    "generate",
    "compose",
    "draw_images_pil",
    "to_uint8",
    "to_unit",
]

KINDS: tuple[str, ...] = ("triangle", "square", "pentagon")
SIZES: tuple[int, ...] = (64, 32)


@dataclass(frozen=True)
class Geometry:
    """Where things are at one image size. Strip c covers rows [0, strip_height) and columns
    [c * strip_width, (c + 1) * strip_width); everything else is always 0.

    ``vsm_bands``: the VSM rule's per-kind white-pixel bands (inclusive), ``blank_below``: fewer white
    pixels than this = blank for the VSM rule; ``area_bands``: the strict validator's per-kind area bands.
    """

    size: int
    strip_width: int
    strip_height: int
    square_side: int
    triangle_side: int
    pentagon_radius: int
    vsm_bands: tuple[tuple[int, int], ...]
    blank_below: int
    area_bands: tuple[tuple[int, int], ...]

    @property
    def triangle_height(self) -> int:
        """Apex offset below the top edge: int(a sqrt(3) / 2)."""
        return int(self.triangle_side * math.sqrt(3) / 2)

    def column_slice(self, column: int) -> slice:
        """Columns of strip ``column`` (0 triangle, 1 square, 2 pentagon) in the image."""
        return slice(column * self.strip_width, (column + 1) * self.strip_width)

    def position_ranges(self, kind: str) -> tuple[tuple[int, int], tuple[int, int]]:
        """Inclusive ranges ((x1_min, x1_max), (y1_min, y1_max)) of the drawn position of ``kind``."""
        W, H = self.strip_width, self.strip_height
        if kind == "square":
            s = self.square_side
            return (1, W - 2 * s), (1, H - 2 * s)
        if kind == "triangle":
            a = self.triangle_side
            return (0, W - a), (0, H - a)
        if kind == "pentagon":
            r = self.pentagon_radius
            return (r, W - r), (r, H - r)
        raise ValueError(f"kind: expected one of {KINDS}, got {kind!r}")

    def positions(self, kind: str) -> np.ndarray:
        """All drawn positions of ``kind``: int64 [M, 2] of (x1, y1), x1 major then y1."""
        (x0, x1), (y0, y1) = self.position_ranges(kind)
        xs, ys = np.meshgrid(np.arange(x0, x1 + 1), np.arange(y0, y1 + 1), indexing="ij")
        return np.stack([xs.ravel(), ys.ravel()], axis=1).astype(np.int64)


_GEOMETRIES = {
    64: Geometry(64, 21, 63, 7, 11, 5, ((63, 67), (60, 68), (68, 72)), 50, ((63, 67), (60, 68), (68, 72))),
    32: Geometry(32, 10, 31, 3, 5, 3, ((14, 17), (14, 18), (23, 27)), 12, ((14, 17), (14, 18), (23, 27))),
}


def geometry(size: int) -> Geometry:
    """The :class:`Geometry` of image size ``size`` (64 = the reference, 32 = the reduced variant)."""
    return _GEOMETRIES[check_choice("size", size, SIZES, hint="image side in pixels")]


def draw_strip(kind: str, x1: int, y1: int, geom: Geometry) -> np.ndarray:
    """Draw one shape with PIL into a black strip: uint8 [strip_height, strip_width], values 0 or 255."""
    im = Image.new("L", (geom.strip_width, geom.strip_height), 0)
    draw = ImageDraw.Draw(im)
    if kind == "square":
        s = geom.square_side
        draw.rectangle([x1, y1, x1 + s, y1 + s], fill=255, outline=255)
    elif kind == "triangle":
        a = geom.triangle_side
        draw.polygon([(x1, y1), (x1 + a, y1), (x1 + a // 2, y1 + geom.triangle_height)], fill=255, outline=255)
    elif kind == "pentagon":
        r = geom.pentagon_radius
        pts = [(x1 + r * math.cos(math.radians(a)), y1 - r * math.sin(math.radians(a))) for a in range(72, 361, 72)]
        draw.polygon(pts, fill=255, outline=255)
    else:
        raise ValueError(f"kind: expected one of {KINDS}, got {kind!r}")
    return np.asarray(im, dtype=np.uint8)


@dataclass(frozen=True)
class TemplateBank:
    """Every rendered shape of one size. ``masks[c]``: bool [M_c, strip_height, strip_width] for kind
    KINDS[c]; ``positions[c]``: int64 [M_c, 2] (x1, y1) in the same order."""

    geometry: Geometry
    masks: tuple[np.ndarray, ...]
    positions: tuple[np.ndarray, ...]

    def counts(self) -> tuple[int, ...]:
        """Number of positions per kind (64 px: 583, 343, 648)."""
        return tuple(int(m.shape[0]) for m in self.masks)

    def index_of(self, column: int, x1: int, y1: int) -> int:
        """Template index of position (x1, y1) of column ``column``'s kind, or -1 if not drawn there."""
        hit = np.nonzero((self.positions[column][:, 0] == x1) & (self.positions[column][:, 1] == y1))[0]
        return int(hit[0]) if hit.size else -1


@lru_cache(maxsize=None)
def template_bank(size: int = 64) -> TemplateBank:
    """Render every position of every kind once with PIL (cached per size)."""
    geom = geometry(size)
    masks, positions = [], []
    for kind in KINDS:
        pos = geom.positions(kind)
        masks.append(np.stack([draw_strip(kind, int(x), int(y), geom) > 127 for x, y in pos]))
        positions.append(pos)
    for arr in masks + positions:
        arr.setflags(write=False)
    return TemplateBank(geom, tuple(masks), tuple(positions))


@dataclass
class ShapesData:
    """A SimpleShapes sample set.

    images: uint8 [N, size, size] (0 or 255); presence: bool [N, 3]; positions: int64 [N, 3, 2] (x1, y1)
    inside each strip, -1 where absent; templates: int64 [N, 3] index into ``template_bank(size)``, -1
    where absent. Column c holds kind KINDS[c].
    """

    images: np.ndarray
    presence: np.ndarray
    positions: np.ndarray
    templates: np.ndarray
    size: int
    seed: int | None = None

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def factors(self) -> dict:
        """Factors as plain Python lists (for ``factors.json``)."""
        return {
            "size": self.size, "seed": self.seed, "kinds": list(KINDS),
            "presence": self.presence.tolist(), "positions": self.positions.tolist(),
            "templates": self.templates.tolist(),
        }

    def arrays(self) -> dict[str, np.ndarray]:
        """Everything as numpy arrays (for ``np.savez``): images, presence, positions, templates, size, kinds."""
        return {
            "images": self.images, "presence": self.presence, "positions": self.positions,
            "templates": self.templates, "size": np.int64(self.size), "kinds": np.array(KINDS),
            "seed": np.int64(-1 if self.seed is None else self.seed),
        }


def compose(templates: np.ndarray, size: int = 64) -> np.ndarray:
    """Images uint8 [N, size, size] from per-column template indices [N, 3] (-1 = empty column)."""
    bank = template_bank(size)
    geom = bank.geometry
    templates = np.asarray(templates)
    if templates.ndim != 2 or templates.shape[1] != 3:
        raise ValueError(f"templates: expected shape [N, 3], got {templates.shape}")
    n = templates.shape[0]
    images = np.zeros((n, size, size), dtype=np.uint8)
    for c in range(3):
        idx = templates[:, c]
        if np.any(idx >= bank.masks[c].shape[0]) or np.any(idx < -1):
            raise ValueError(f"templates: column {c} index out of range -1..{bank.masks[c].shape[0] - 1}")
        present = idx >= 0
        strip = np.zeros((n, geom.strip_height, geom.strip_width), dtype=np.uint8)
        strip[present] = bank.masks[c][idx[present]].astype(np.uint8) * 255
        images[:, : geom.strip_height, geom.column_slice(c)] = strip
    return images


def draw_images_pil(positions: np.ndarray, size: int = 64) -> np.ndarray:
    """The reference drawing path, image by image: three PIL strips, concatenated, on a size x size canvas.

    positions: int [N, 3, 2] (x1, y1) with -1 for absent columns. Returns uint8 [N, size, size].
    (Slow; :func:`generate` composes from the template bank, which gives the same pixels.)
    """
    geom = geometry(size)
    positions = np.asarray(positions)
    out = np.zeros((positions.shape[0], size, size), dtype=np.uint8)
    for i, row in enumerate(positions):
        strips = []
        for c, kind in enumerate(KINDS):
            x1, y1 = int(row[c, 0]), int(row[c, 1])
            blank = np.zeros((geom.strip_height, geom.strip_width), dtype=np.uint8)
            strips.append(blank if x1 < 0 else draw_strip(kind, x1, y1, geom))
        canvas = Image.new("L", (size, size), 0)
        canvas.paste(Image.fromarray(np.concatenate(strips, axis=1)), (0, 0))
        out[i] = np.asarray(canvas)
    return out


def generate(n: int = 5000, size: int = 64, seed: int = 0) -> ShapesData:
    """Draw ``n`` SimpleShapes images (default 5,000 as in the mode-interpolation work; the VSM study
    uses 75,000), deterministic in ``seed`` (a numpy Generator).

    Draw order: presence bool [n, 3] with p = 1/2, all-blank rows redrawn until none is left; then per
    column a uniform template index in that column's position list. Returns a :class:`ShapesData`.
    """
    n = check_int("n", n, low=1, hint="number of images")
    geom = geometry(size)
    seed = check_int("seed", seed, low=0)
    rng = np.random.default_rng(seed)
    presence = rng.random((n, 3)) < 0.5
    blank = ~presence.any(axis=1)
    while blank.any():
        presence[blank] = rng.random((int(blank.sum()), 3)) < 0.5
        blank = ~presence.any(axis=1)
    bank = template_bank(geom.size)
    templates = np.full((n, 3), -1, dtype=np.int64)
    positions = np.full((n, 3, 2), -1, dtype=np.int64)
    for c in range(3):
        idx = rng.integers(0, bank.masks[c].shape[0], size=n)
        templates[presence[:, c], c] = idx[presence[:, c]]
        positions[presence[:, c], c] = bank.positions[c][idx[presence[:, c]]]
    return ShapesData(compose(templates, geom.size), presence, positions, templates, geom.size, seed)


def to_unit(images: np.ndarray | torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """uint8 [N, H, W] -> float [N, 1, H, W] in [-1, 1] (pixel / 127.5 - 1), the model's input space."""
    x = torch.as_tensor(np.asarray(images) if not isinstance(images, torch.Tensor) else images)
    if x.dtype != torch.uint8 or x.dim() != 3:
        raise TypeError(f"images: expected uint8 [N, H, W], got {x.dtype} {tuple(x.shape)}")
    return (x.to(dtype) / 127.5 - 1.0)[:, None]


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """float [N, 1, H, W] or [N, H, W] in [-1, 1] -> uint8 [N, H, W]: round((x + 1) * 127.5), clipped."""
    if not isinstance(x, torch.Tensor) or not x.dtype.is_floating_point:
        raise TypeError(f"x: expected a float tensor in [-1, 1], got {type(x).__name__}")
    if x.dim() == 4:
        if x.shape[1] != 1:
            raise ValueError(f"x: expected one channel [N, 1, H, W], got {tuple(x.shape)}")
        x = x[:, 0]
    if x.dim() != 3:
        raise ValueError(f"x: expected [N, 1, H, W] or [N, H, W], got {tuple(x.shape)}")
    return ((x.detach().double().cpu() + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).numpy()
