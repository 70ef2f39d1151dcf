"""Cards: 2x2 grids of four distinct playing cards, drawn by the lab, and a template validator.

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

**Validator.** Each quadrant q is compared with every template t by normalised cross-correlation
(zero-offset template matching, OpenCV's TM_CCOEFF_NORMED)::

    ncc(q, t) = <q - mean q, t - mean t> / (|q - mean q| |t - mean t|)

An image is hallucinated if its worst quadrant's best score is below ``threshold``, if a quadrant is
blank (no variation: score 0, no division by zero), or if two quadrants show the same card (the data
never repeats a card; the released validator does not check this).
"""

from __future__ import annotations

import functools
import json
import math
import os
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw, ImageFont

from vsmlab.core.outputs import OutputKind, owned_folder, prepare_output, staged_folder
from vsmlab.data.pngs import encode_png, iter_png_batches, list_pngs, png_header, read_png

__all__ = [
    "RANKS",
    "SUITS",
    "CARD_CODES",
    "N_CARDS",
    "N_SETS",
    "TEST_FRACTION",
    "THRESHOLD",
    "CORRUPTIONS",
    "card_code",
    "draw_face",
    "lab_faces",
    "unrank_sets",
    "rank_sets",
    "split_ranks",
    "choose_cards",
    "make_cards",
    "assemble_grids",
    "write_cards",
    "CARDS_FOLDER",
    "CardTemplates",
    "lab_templates",
    "load_templates",
    "QuadrantMatch",
    "match_quadrants",
    "CardsVerdict",
    "validate_cards",
    "corrupt_cards",
    "roc_curve",
    "CardsCalibration",
    "calibrate_cards",
    "CardsFolder",
    "find_cards_folder",
    "CardsFolderReport",
    "validate_cards_folder",
]

RANKS: tuple[str, ...] = ("A", "2", "3", "4", "5", "6", "7", "8", "9", "10")
SUITS: tuple[str, ...] = ("C", "D", "H", "S")  # clubs, diamonds, hearts, spades
CARD_CODES: tuple[str, ...] = tuple(r + s for s in SUITS for r in RANKS)
N_CARDS = 40
N_SETS = math.comb(N_CARDS, 4)  # 91,390
TEST_FRACTION = 0.1
THRESHOLD = 0.95  # calibrated in calibrate_cards: see the module docstring and the benchmark
CATEGORIES = ("blank_quadrant", "low_match", "repeated_card")
CORRUPTIONS = ("blend", "wrong_pips", "shift", "noise", "blank", "repeat")
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
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"n: expected an int >= 1, got {n!r}")
    if size not in SIZES:
        raise ValueError(f"size: expected 128 or 64, got {size!r}")


def choose_cards(n: int, seed: int = 0, split: str = "train", split_seed: int = 0) -> torch.Tensor:
    """The cards of ``n`` distinct sets from ``split``, in quadrant order (TL, TR, BL, BR): ``[n, 4]``.

    The sets are the first ``n`` of a permutation (seeded by ``seed``) of the split's ranks; each image's
    quadrant order is a permutation drawn from the same generator. Same arguments, same cards.
    """
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"n: expected an int >= 1, got {n!r}")
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


def _split_files(split: str) -> re.Pattern:
    return re.compile(rf"(card_imgs/{split}_\d+\.png|{split}_cards\.json)")


def _owned_cards(path: Path) -> str | None:
    return owned_folder(path, (r"card_imgs/", r"card_imgs/(train|test)_\d+\.png", r"templates/",
                               rf"templates/({'|'.join(CARD_CODES)})\.png", r"(train|test)_cards\.json"),
                        (r"(train|test)_cards\.json", r"templates/", r"card_imgs/(train|test)_\d+\.png"),
                        "a Cards folder: card_imgs/, templates/, <split>_cards.json")


#: what :func:`write_cards` writes: ``card_imgs/<split>_<i>.png``, ``templates/<code>.png``, ``<split>_cards.json``
CARDS_FOLDER = OutputKind("a Cards folder", folder=True, owned=_owned_cards)


def write_cards(
    out: str | os.PathLike,
    n: int,
    seed: int = 0,
    rgb: bool = False,
    split: str = "train",
    size: int = 128,
    split_seed: int = 0,
    chunk: int = 1024,
    force: bool = False,
) -> Path:
    """Write ``n`` grids as ``out/card_imgs/<split>_<i>.png``, the faces as ``out/templates/<code>.png``
    and ``out/<split>_cards.json`` ({id: [TL, TR, BL, BR codes]}).

    Atomic: everything is written into a temporary folder beside ``out`` and published in one step
    (:func:`vsmlab.core.outputs.staged_folder`; the other split's files are carried over), so a reader or a
    killed run never leaves a partial ``out``; the next run removes the stale temporary folder.

    Refuses (FileExistsError) a ``split`` already in ``out`` (its ``<split>_cards.json`` or its images)
    unless ``force`` (which replaces that split only), a ``templates/`` folder holding other faces while the
    other split uses them, and any ``out`` that is not a Cards folder vsmlab wrote (a file, a folder holding
    other files, the working folder); two splits (same size and mode) share one folder. Returns the JSON path.
    """
    _check_common(n, size)
    if split not in ("train", "test"):
        raise ValueError(f"split: expected 'train' or 'test', got {split!r}")
    if not isinstance(chunk, int) or chunk < 1:
        raise ValueError(f"chunk: expected an int >= 1, got {chunk!r}")
    out, _ = prepare_output(out, CARDS_FOLDER, force=True, flag="out")  # vsmlab's own folder, or new
    other = "test" if split == "train" else "train"
    index_path = out / f"{split}_cards.json"
    mine, theirs = _split_files(split), _split_files(other)
    if out.is_dir():
        present = [p for p in out.rglob("*") if mine.fullmatch(p.relative_to(out).as_posix())]
        if present and not force:
            if index_path.exists():
                raise FileExistsError(f"{index_path}: already exists; pass --force (force=True) to replace the {split} "
                                      "split, or choose another --out (nothing was overwritten)")
            raise FileExistsError(f"{out / 'card_imgs'}: holds {len(present)} {split} images but no {index_path.name} "
                                  f"(an interrupted write?); pass --force (force=True) to replace the {split} split, "
                                  "or choose another --out (nothing was overwritten)")
        keeps_other = any(theirs.fullmatch(p.relative_to(out).as_posix()) for p in out.rglob("*"))
    else:
        keeps_other = False
    cards = choose_cards(n, seed, split, split_seed)  # argument errors before anything is written
    faces = lab_faces(size // 2, rgb)
    face_bytes = {CARD_CODES[i]: encode_png(faces[i]) for i in range(N_CARDS)}
    tdir = out / "templates"
    if keeps_other:
        for code, data in face_bytes.items():
            path = tdir / f"{code}.png"
            if path.exists() and path.read_bytes() != data:
                raise FileExistsError(f"{path}: holds another face (other size or mode) used by the {other} split; "
                                      "choose another --out")
    width = max(6, len(str(n - 1)))
    with staged_folder(out, keep=lambda rel: bool(theirs.fullmatch(rel))) as stage:
        (stage / "card_imgs").mkdir(exist_ok=True)
        (stage / "templates").mkdir(exist_ok=True)
        for code, data in face_bytes.items():
            (stage / "templates" / f"{code}.png").write_bytes(data)
        labels: dict[str, list[str]] = {}
        for start in range(0, n, chunk):
            grids = assemble_grids(cards[start : start + chunk], faces)
            for j, grid in enumerate(grids):
                ident = f"{split}_{start + j:0{width}d}"
                with open(stage / "card_imgs" / f"{ident}.png", "wb") as fh:
                    fh.write(encode_png(grid))
                labels[ident] = [CARD_CODES[c] for c in cards[start + j].tolist()]
        (stage / index_path.name).write_bytes(json.dumps(labels, indent=0, sort_keys=True).encode())
    return index_path


# ---------------------------------------------------------------------------------------- validator
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


def load_templates(folder: str | os.PathLike, face: int | None = None) -> CardTemplates:
    """Read a ``templates/`` folder: exactly 40 square 8-bit (L or RGB) PNG faces of one size (names = file
    stems); ``face``: the side they must have (half the grid side). Each refusal is a ValueError naming the
    folder or file and what is allowed."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"{folder}: expected a folder of 40 template PNGs, not found")
    paths = list_pngs(folder)
    if len(paths) != N_CARDS:
        raise ValueError(f"{folder}: expected {N_CARDS} template PNGs (one face per card), found {len(paths)}")
    size, mode = png_header(paths[0])
    want = f"{face}x{face}" if face is not None else "square"
    if size[0] != size[1] or (face is not None and size[0] != face):
        raise ValueError(f"{paths[0]}: template is {size[0]}x{size[1]}, expected a {want} face"
                         + (f" (half the {2 * face}-px grid)" if face is not None else ""))
    for p in paths[1:]:
        other, _ = png_header(p)
        if other != size:
            raise ValueError(f"{p}: template is {other[0]}x{other[1]}, expected {size[0]}x{size[1]} like {paths[0].name}")
    channels = 1 if mode == "L" else 3
    faces = np.stack([read_png(p, channels, size) for p in paths])
    return CardTemplates(tuple(p.stem for p in paths), torch.from_numpy(faces).permute(0, 3, 1, 2).contiguous(), str(folder))


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
    if not isinstance(images, torch.Tensor) or images.ndim != 4:
        raise TypeError(f"images: expected a tensor [B, C, H, W], got {type(images).__name__} {getattr(images, 'shape', '')}")
    b, c, h, w = images.shape
    if c not in (1, 3) or h != w or h % 2:
        raise ValueError(f"images: expected [B, 1 or 3, S, S] with S even, got {list(images.shape)}")


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


# ---------------------------------------------------------------------------------------- calibration
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


# ---------------------------------------------------------------------------------------- folders
@dataclass(frozen=True)
class CardsFolder:
    """A Cards folder on disk: ``images`` (PNG grids, all ``size`` x ``size``, ``channels`` 1 or 3),
    ``templates_dir`` (its ``templates/`` or None) and ``labels`` ({image stem: codes} from any
    ``*_cards.json`` the lab wrote, or None)."""

    root: Path
    images: list[Path]
    size: int
    channels: int
    templates_dir: Path | None
    labels: dict[str, list[str]] | None


_LAB_IMAGE = re.compile(r"(train|test)_\d+")


def find_cards_folder(path: str | os.PathLike) -> CardsFolder:
    """Read a Cards folder's layout: PNG grids in ``path/card_imgs/`` (the released layout) or directly in
    ``path``, optional ``path/templates/``. Checked from the headers before anything is read, each refusal a
    ValueError naming the file and what is allowed: every image an 8-bit L or RGB PNG, square, 128x128 or
    64x64 (the Cards sizes), all the size of the first. Where the lab's ``<split>_cards.json`` labels exist,
    every labelled image must exist and every lab-named image (``<split>_<i>.png``) must be labelled; lab-named
    images beside ``templates/`` with no labels at all are refused as an interrupted write."""
    root = Path(path)
    if not root.is_dir():
        raise ValueError(f"{root}: expected a Cards folder (card_imgs/*.png or *.png, optional templates/), not found")
    img_dir = root / "card_imgs" if (root / "card_imgs").is_dir() else root
    images = list_pngs(img_dir)
    if not images:
        raise ValueError(
            f"{root}: expected PNG grids in {root / 'card_imgs'}/ (the released layout) or directly in {root}/, found none"
        )
    size, mode = png_header(images[0])
    if size[0] != size[1] or size[0] not in SIZES:
        raise ValueError(f"{images[0]}: image is {size[0]}x{size[1]}, expected a square Cards grid of 128x128 or 64x64")
    for p in images[1:]:
        other, _ = png_header(p)
        if other != size:
            raise ValueError(f"{p}: image is {other[0]}x{other[1]}, expected {size[0]}x{size[1]} like {images[0].name}")
    labels: dict[str, list[str]] | None = None
    indexes = sorted(root.glob("*_cards.json"))
    for index in indexes:
        try:
            table = json.loads(index.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ValueError(f"{index}: expected a JSON object {{id: [4 card codes]}} ({exc})") from exc
        if not isinstance(table, dict):
            raise ValueError(f"{index}: expected a JSON object {{id: [4 card codes]}} mapping each image id to its cards")
        for ident in sorted(table):
            if not (img_dir / f"{ident}.png").is_file():
                raise ValueError(f"{index}: names {ident!r} but {img_dir / (ident + '.png')} is missing "
                                 "(expected one PNG per label)")
        labels = {**(labels or {}), **table}
    lab_named = [p for p in images if _LAB_IMAGE.fullmatch(p.stem)]
    if labels is not None:
        for p in lab_named:
            if p.stem not in labels:
                raise ValueError(f"{p}: no entry in {', '.join(i.name for i in indexes)} (a stale image of an earlier or "
                                 "interrupted write?); expected one label per lab-named image")
    elif lab_named and (root / "templates").is_dir():
        raise ValueError(f"{root}: card_imgs/ holds {len(lab_named)} lab-named images ({lab_named[0].name}, ...) but no "
                         "<split>_cards.json: an interrupted `vsmlab data cards`; write it again (with --force), or "
                         "validate a folder of sample PNGs")
    tdir = root / "templates"
    return CardsFolder(root, images, size[0], 1 if mode == "L" else 3, tdir if tdir.is_dir() else None, labels)


@dataclass(frozen=True)
class CardsFolderReport:
    """Validation of a folder: per file ``hallucinated`` and ``categories``, the ``templates`` source,
    ``labels_checked`` / ``labels_agree`` (images with a lab label, and those read exactly), ``warnings``."""

    files: list[str]
    hallucinated: torch.Tensor
    categories: list[tuple[str, ...]]
    worst_score: torch.Tensor
    templates: str
    labels_checked: int
    labels_agree: int
    warnings: list[str]


def validate_cards_folder(
    path: str | os.PathLike, templates: str | os.PathLike | None = None, threshold: float = THRESHOLD, batch_size: int = 256
) -> CardsFolderReport:
    """Validate every grid of a Cards folder against ``templates`` (a folder of 40 faces), else the
    folder's own ``templates/``, else the lab's faces (with a warning: they match only the lab's art)."""
    folder = find_cards_folder(path)
    notes: list[str] = []
    if templates is not None:
        tpl = load_templates(templates, folder.size // 2)
    elif folder.templates_dir is not None:
        tpl = load_templates(folder.templates_dir, folder.size // 2)
    else:
        tpl = lab_templates(max(8, folder.size // 2), folder.channels == 3)
        notes.append(
            f"{folder.root}: no templates/ folder; matching against the lab's own faces, which will not match "
            "another artwork (give the released templates/ with --templates)"
        )
        warnings.warn(notes[-1], stacklevel=2)
    flagged, categories, worst, checked, agree = [], [], [], 0, 0
    for paths, batch in iter_png_batches(folder.images, folder.channels, (folder.size, folder.size), batch_size):
        verdict = validate_cards(batch, tpl, threshold)
        flagged.append(verdict.hallucinated)
        worst.append(verdict.worst_score)
        categories.extend(verdict.categories)
        if folder.labels:
            for i, p in enumerate(paths):
                if p.stem in folder.labels:
                    checked += 1
                    agree += int(verdict.codes(i) == list(folder.labels[p.stem]))
    return CardsFolderReport(
        [str(p) for p in folder.images], torch.cat(flagged), categories, torch.cat(worst), tpl.source, checked, agree, notes
    )
