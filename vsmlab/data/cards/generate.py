"""Cards, the generator: 40 lab-drawn faces, the C(40,4) sets of four distinct cards, the seeded split and
the 2x2 grids.

**Faces.** 40 cards, A..10 of clubs, diamonds, hearts, spades (card index ``i = 10 * suit + rank``, codes
``"AC", "2C", ..., "10S"``). Each face is drawn by the lab at 4-8x resolution with PIL and box-averaged
down to ``face`` px (64, or 32 for the 64-px grids): white card, grey rounded border, rank index in the
top-left and (rotated) bottom-right corners with a small suit pip, and the standard pip layout in the
middle (pips below the centre upside down). Suits are vector shapes (diamond: rhombus; heart: two discs
and a triangle; spade: a flipped heart with a stem; club: three discs and a stem), so the four suits
differ in shape even in grayscale; hearts and diamonds are red, clubs and spades black.

**Grids.** An image is one unordered set of 4 distinct cards out of 40 (C(40,4) = 91,390 sets), its
faces tiled at (row, col) = (0,0), (0,h), (h,0), (h,h) with h = face size, no borders; the quadrant order
(top-left, top-right, bottom-left, bottom-right) is a seeded permutation. Sets are numbered by the
combinatorial number system (colex rank r = C(c4,4) + C(c3,3) + C(c2,2) + C(c1,1), c1 < c2 < c3 < c4), so
a seeded choice of ranks is unranked without listing every set. The train/test split is a seeded
permutation of the ranks (``split_seed``; 10% test), independent of the seed that picks images.
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from vsmlab.core.checks import check_int

__all__ = ["RANKS", "SUITS", "CARD_CODES", "N_CARDS", "N_SETS", "TEST_FRACTION", "SIZES", "card_code", "draw_face",
           "lab_faces", "unrank_sets", "rank_sets", "split_ranks", "choose_cards", "make_cards", "assemble_grids"]

RANKS: tuple[str, ...] = ("A", "2", "3", "4", "5", "6", "7", "8", "9", "10")
SUITS: tuple[str, ...] = ("C", "D", "H", "S")  # clubs, diamonds, hearts, spades
CARD_CODES: tuple[str, ...] = tuple(r + s for s in SUITS for r in RANKS)
N_CARDS = 40
N_SETS = math.comb(N_CARDS, 4)  # 91,390
TEST_FRACTION = 0.1
SIZES = (128, 64)

_CANVAS = 256  # faces are drawn on a 256 px canvas and box-averaged down to the face size
_RED = (200, 0, 0)
_BLACK = (0, 0, 0)
_BORDER = (150, 150, 150)
_COL = {"L": 0.36, "C": 0.5, "R": 0.64}


def card_code(index: int) -> str:
    """The code of card ``index`` (0..39): rank + suit letter, e.g. 0 -> "AC", 39 -> "10S"."""
    if not 0 <= int(index) < N_CARDS:
        raise ValueError(f"index: expected 0..39, got {index!r}")
    return CARD_CODES[int(index)]


def _layout(rank: int) -> list[tuple[float, float]]:
    """Standard pip centres (x, y) in card units for rank 0 (ace) .. 9 (ten)."""
    L, C, R = _COL["L"], _COL["C"], _COL["R"]
    sides = lambda ys: [(x, y) for y in ys for x in (L, R)]  # noqa: E731
    table = {
        0: [(C, 0.5)],
        1: [(C, 0.2), (C, 0.8)],
        2: [(C, 0.2), (C, 0.5), (C, 0.8)],
        3: sides((0.2, 0.8)),
        4: sides((0.2, 0.8)) + [(C, 0.5)],
        5: sides((0.2, 0.5, 0.8)),
        6: sides((0.2, 0.5, 0.8)) + [(C, 0.35)],
        7: sides((0.2, 0.5, 0.8)) + [(C, 0.35), (C, 0.65)],
        8: sides((0.2, 0.4, 0.6, 0.8)) + [(C, 0.5)],
        9: sides((0.2, 0.4, 0.6, 0.8)) + [(C, 0.3), (C, 0.7)],
    }
    return table[rank]


def _draw_pip(draw: ImageDraw.ImageDraw, suit: int, cx: float, cy: float, half: float, flip: bool) -> None:
    """One suit pip (ink 255) centred at (cx, cy) px with half-size ``half`` px; ``flip`` turns it 180 deg."""
    s = -half if flip else half
    pt = lambda u, v: (cx + s * u, cy + s * v)  # noqa: E731

    def disc(u: float, v: float, r: float) -> None:
        x, y = pt(u, v)
        draw.ellipse([x - r * half, y - r * half, x + r * half, y + r * half], fill=255)

    if suit == 1:  # diamond
        draw.polygon([pt(0, -1), pt(0.72, 0), pt(0, 1), pt(-0.72, 0)], fill=255)
    elif suit == 2:  # heart
        disc(-0.42, -0.4, 0.5), disc(0.42, -0.4, 0.5)
        draw.polygon([pt(-0.91, -0.25), pt(0.91, -0.25), pt(0, 0.95)], fill=255)
    elif suit == 3:  # spade: a heart upside down on a stem
        disc(-0.42, 0.22, 0.48), disc(0.42, 0.22, 0.48)
        draw.polygon([pt(-0.88, 0.1), pt(0.88, 0.1), pt(0, -1)], fill=255)
        draw.polygon([pt(0, 0.3), pt(0.32, 1), pt(-0.32, 1)], fill=255)
    else:  # club
        disc(0, -0.52, 0.38), disc(-0.5, 0.08, 0.38), disc(0.5, 0.08, 0.38), disc(0, -0.05, 0.25)
        draw.polygon([pt(0, -0.1), pt(0.3, 1), pt(-0.3, 1)], fill=255)


@functools.lru_cache(maxsize=4)
def _font() -> ImageFont.FreeTypeFont:
    try:
        import matplotlib
    except ImportError as exc:  # pragma: no cover - the lab extra ships matplotlib
        raise ImportError("cards: the rank index uses matplotlib's DejaVu Sans Bold; install matplotlib") from exc
    return ImageFont.truetype(os.path.join(matplotlib.get_data_path(), "fonts", "ttf", "DejaVuSans-Bold.ttf"), 52)


def _index_mask(rank: int, suit: int) -> Image.Image:
    """Top-left corner index (rank text over a small pip) as an ink mask on the canvas."""
    mask = Image.new("L", (_CANVAS, _CANVAS), 0)
    text = RANKS[rank]
    font = _font()
    left, top, right, bottom = font.getbbox(text)
    glyph = Image.new("L", (right - left, bottom - top), 0)
    ImageDraw.Draw(glyph).text((-left, -top), text, font=font, fill=255)
    box_w, box_h = int(0.16 * _CANVAS), int(0.15 * _CANVAS)
    w = min(box_w, max(1, round(glyph.width * box_h / glyph.height)))  # "10" is squeezed to fit the box
    glyph = glyph.resize((w, box_h), Image.LANCZOS)
    x0 = int(0.055 * _CANVAS) + (box_w - w) // 2
    mask.paste(glyph, (x0, int(0.045 * _CANVAS)))
    _draw_pip(ImageDraw.Draw(mask), suit, 0.055 * _CANVAS + box_w / 2, 0.285 * _CANVAS, 0.05 * _CANVAS, False)
    return mask


def draw_face(card: int, size: int = 64, rgb: bool = True, pips: Sequence[tuple[float, float]] | None = None) -> np.ndarray:
    """Draw one card face as uint8 ``[size, size, 3]`` (rgb) or ``[size, size, 1]`` (grayscale, PIL 'L').

    card: 0..39; size: a divisor of 256 (64 for the 128-px grids, 32 for the 64-px ones); pips: pip
    centres (x, y) in card units in place of the standard layout (for constructed corruptions; all small
    pips, pips below the centre upside down).
    """
    if not 0 <= int(card) < N_CARDS:
        raise ValueError(f"card: expected 0..39, got {card!r}")
    if not isinstance(size, int) or size < 8 or _CANVAS % size:
        raise ValueError(f"size: expected a divisor of {_CANVAS} >= 8 (64 or 32), got {size!r}")
    suit, rank = divmod(int(card), 10)
    ink = _index_mask(rank, suit)
    ink.paste(ink.rotate(180), mask=ink.rotate(180))
    draw = ImageDraw.Draw(ink)
    if pips is None:
        layout, half = _layout(rank), (0.2 if rank == 0 else 0.07) * _CANVAS
    else:
        layout, half = list(pips), 0.07 * _CANVAS
    for x, y in layout:
        _draw_pip(draw, suit, x * _CANVAS, y * _CANVAS, half, flip=y > 0.5)
    border = Image.new("L", (_CANVAS, _CANVAS), 0)
    inset = _CANVAS // 64
    ImageDraw.Draw(border).rounded_rectangle(
        [inset, inset, _CANVAS - 1 - inset, _CANVAS - 1 - inset], radius=6 * inset, outline=255, width=_CANVAS // 64
    )
    colour = np.array(_RED if suit in (1, 2) else _BLACK, dtype=np.float32)
    out = np.full((_CANVAS, _CANVAS, 3), 255.0, dtype=np.float32)
    for mask, col in ((border, np.array(_BORDER, dtype=np.float32)), (ink, colour)):
        a = np.asarray(mask, dtype=np.float32)[:, :, None] / 255.0
        out = out * (1 - a) + col * a
    face = Image.fromarray(np.clip(np.rint(out), 0, 255).astype(np.uint8), "RGB").reduce(_CANVAS // size)
    if not rgb:
        return np.asarray(face.convert("L"))[:, :, None].copy()
    return np.asarray(face).copy()


@functools.lru_cache(maxsize=8)
def _faces_cached(size: int, rgb: bool) -> np.ndarray:
    faces = np.stack([draw_face(i, size, rgb) for i in range(N_CARDS)])
    faces.setflags(write=False)
    return faces


def lab_faces(size: int = 64, rgb: bool = True) -> np.ndarray:
    """The lab's 40 faces, uint8 ``[40, size, size, C]`` in card-index order (cached, read-only)."""
    return _faces_cached(int(size), bool(rgb))


# ---------------------------------------------------------------------------------------- sets and split
def _binom_table(k: int) -> np.ndarray:
    return np.array([math.comb(c, k) for c in range(N_CARDS)], dtype=np.int64)


def unrank_sets(ranks: torch.Tensor | np.ndarray) -> torch.Tensor:
    """Colex unranking: ranks ``[n]`` in 0..91389 -> sets ``[n, 4]`` (c1 < c2 < c3 < c4, card indices).

    For k = 4..1 the k-th element is the largest c with C(c, k) <= r, then r -= C(c, k).
    """
    r = np.asarray(ranks, dtype=np.int64).copy()
    if r.ndim != 1 or (r.size and (r.min() < 0 or r.max() >= N_SETS)):
        raise ValueError(f"ranks: expected a 1-D array of ints in 0..{N_SETS - 1}")
    out = np.empty((r.size, 4), dtype=np.int64)
    for k in (4, 3, 2, 1):
        table = _binom_table(k)
        c = np.searchsorted(table, r, side="right") - 1
        out[:, k - 1] = c
        r -= table[c]
    return torch.from_numpy(out)


def rank_sets(sets: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`unrank_sets`: sets ``[n, 4]`` (any order) -> colex ranks ``[n]``."""
    s = torch.sort(torch.as_tensor(sets, dtype=torch.int64), dim=1).values.numpy()
    return torch.from_numpy(sum(_binom_table(k)[s[:, k - 1]] for k in (1, 2, 3, 4)))


def split_ranks(split: str, split_seed: int = 0) -> torch.Tensor:
    """Ranks of the sets in ``split`` ('train' or 'test'): a seeded permutation, first 10% = test."""
    if split not in ("train", "test"):
        raise ValueError(f"split: expected 'train' or 'test', got {split!r}")
    perm = torch.randperm(N_SETS, generator=torch.Generator().manual_seed(int(split_seed)))
    n_test = round(TEST_FRACTION * N_SETS)
    return perm[:n_test] if split == "test" else perm[n_test:]


def assemble_grids(cards: torch.Tensor | np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Tile faces ``[40, h, w, C]`` into grids ``[n, 2h, 2w, C]`` for cards ``[n, 4]`` (TL, TR, BL, BR)."""
    idx = np.asarray(cards, dtype=np.int64)
    n, (_, h, w, c) = idx.shape[0], faces.shape
    tiles = faces[idx].reshape(n, 2, 2, h, w, c)
    return tiles.transpose(0, 1, 3, 2, 4, 5).reshape(n, 2 * h, 2 * w, c)


def _check_common(n: int, size: int) -> None:
    check_int("n", n, low=1)
    if size not in SIZES:
        raise ValueError(f"size: expected 128 or 64, got {size!r}")


def choose_cards(n: int, seed: int = 0, split: str = "train", split_seed: int = 0) -> torch.Tensor:
    """The cards of ``n`` distinct sets from ``split``, in quadrant order (TL, TR, BL, BR): ``[n, 4]``.

    The sets are the first ``n`` of a permutation (seeded by ``seed``) of the split's ranks; each image's
    quadrant order is a permutation drawn from the same generator. Same arguments, same cards.
    """
    check_int("n", n, low=1)
    ranks = split_ranks(split, split_seed)
    if n > ranks.numel():
        raise ValueError(f"n: the {split} split has {ranks.numel()} sets, got n={n}")
    gen = torch.Generator().manual_seed(int(seed))
    chosen = ranks[torch.randperm(ranks.numel(), generator=gen)[:n]]
    order = torch.rand(n, 4, generator=gen).argsort(dim=1)
    return unrank_sets(chosen).gather(1, order)


def make_cards(
    n: int, seed: int = 0, rgb: bool = False, split: str = "train", size: int = 128, split_seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` distinct card grids from ``split``: images uint8 ``[n, C, size, size]`` and cards ``[n, 4]``
    (card indices, quadrant order TL, TR, BL, BR; see :func:`choose_cards`)."""
    _check_common(n, size)
    cards = choose_cards(n, seed, split, split_seed)
    grids = assemble_grids(cards, lab_faces(size // 2, rgb))
    return torch.from_numpy(grids).permute(0, 3, 1, 2).contiguous(), cards
