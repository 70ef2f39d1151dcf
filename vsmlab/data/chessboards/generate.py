"""ChessImages, the generator: positions from random play, split by a keyed hash, rendered by the lab.

**Positions.** Random games from the initial position (uniformly random legal moves, a ``random.Random``
seeded by ``seed``), each of a length drawn in 1..``max_plies``; along each game a position becomes a
candidate with probability 1/9 per ply (train) or at every ply (test), and is kept if its piece placement
belongs to the split and was not kept before. The split is a keyed hash of the piece placement
(blake2b keyed by ``split_seed``; test if ``hash % 10 == 0``), so train and test never share a placement
and both see the same distribution of game lengths (0.9 / 9 = 1 / 10 kept per ply either way).

**Rendering.** 8x8 squares of ``size / 8`` px (256 -> 32 px, 128 -> 16 px), light #ffce9e / dark
#d18b47, rank 8 at the top, no coordinates. Pieces are the Unicode chess glyphs (U+2654..U+265F) of
DejaVu Sans (shipped with matplotlib), drawn by the lab: each glyph's silhouette filled white, then the
glyph's ink in black (white pieces: the outline glyphs, so white with a black outline; black pieces:
the solid glyphs, black with white detail lines), drawn at 4-8x and box-averaged to the square size.
A board is assembled from 13 x 2 precomputed tiles (class x square colour).
"""

from __future__ import annotations

import functools
import hashlib
import os
import random

import chess
import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from vsmlab.core.checks import check_int

__all__ = ["SYMBOLS", "LIGHT", "DARK", "SIZES", "TEST_MODULUS", "placement_to_classes", "classes_to_placement",
           "in_split", "random_positions", "lab_tiles", "render_boards"]

SYMBOLS: tuple[str, ...] = ("", "P", "N", "B", "R", "Q", "K", "p", "n", "b", "r", "q", "k")  # class 0 = empty
_CLASS = {s: i for i, s in enumerate(SYMBOLS) if s}
_GLYPH = {"K": 0x2654, "Q": 0x2655, "R": 0x2656, "B": 0x2657, "N": 0x2658, "P": 0x2659,
          "k": 0x265A, "q": 0x265B, "r": 0x265C, "b": 0x265D, "n": 0x265E, "p": 0x265F}  # fmt: skip
LIGHT = (0xFF, 0xCE, 0x9E)
DARK = (0xD1, 0x8B, 0x47)
SIZES = (256, 128)
TEST_MODULUS = 10


# ---------------------------------------------------------------------------------------- placements
def placement_to_classes(placement: str) -> np.ndarray:
    """FEN piece placement (or a full FEN: only its first field is read) -> classes int64 ``[8, 8]``,
    row 0 = rank 8, column 0 = file a; 0 = empty, 1..12 = ``SYMBOLS``. ValueError on a malformed field."""
    if not isinstance(placement, str):
        raise TypeError(f"placement: expected a FEN string, got {type(placement).__name__}")
    field = placement.strip().split(" ")[0]
    rows = field.split("/")
    if len(rows) != 8:
        raise ValueError(f"placement: expected 8 ranks separated by '/', got {field!r}")
    out = np.zeros((8, 8), dtype=np.int64)
    for r, row in enumerate(rows):
        c = 0
        for ch in row:
            if ch in "12345678":
                c += int(ch)
            elif ch in _CLASS:
                if c < 8:
                    out[r, c] = _CLASS[ch]
                c += 1
            else:
                raise ValueError(f"placement: unexpected character {ch!r} in {field!r}")
        if c != 8:
            raise ValueError(f"placement: rank {8 - r} of {field!r} covers {c} squares, expected 8")
    return out


def classes_to_placement(classes: np.ndarray | torch.Tensor) -> str:
    """Classes ``[8, 8]`` (row 0 = rank 8) -> FEN piece placement (runs of empty squares as digits)."""
    grid = np.asarray(classes)
    rows = []
    for r in range(8):
        row, empty = "", 0
        for c in range(8):
            k = int(grid[r, c])
            if k == 0:
                empty += 1
            else:
                row += (str(empty) if empty else "") + SYMBOLS[k]
                empty = 0
        rows.append(row + (str(empty) if empty else ""))
    return "/".join(rows)


def in_split(placement: str, split: str, split_seed: int = 0) -> bool:
    """Whether a piece placement belongs to ``split``: test iff blake2b(placement, key=seed) % 10 == 0."""
    key = int(split_seed).to_bytes(8, "little", signed=True)
    digest = hashlib.blake2b(placement.encode(), digest_size=8, key=key).digest()
    return (int.from_bytes(digest, "little") % TEST_MODULUS == 0) == (split == "test")


def random_positions(n: int, seed: int = 0, split: str = "train", split_seed: int = 0, max_plies: int = 160) -> list[str]:
    """``n`` full FENs (side to move included) of distinct piece placements from random play (see the
    module docstring). Deterministic in (n, seed, split, split_seed, max_plies)."""
    check_int("n", n, low=1)
    if split not in ("train", "test"):
        raise ValueError(f"split: expected 'train' or 'test', got {split!r}")
    check_int("max_plies", max_plies, low=1)
    rng = random.Random(int(seed))
    rate = 1.0 if split == "test" else 1.0 / (TEST_MODULUS - 1)
    seen: set[str] = set()
    out: list[str] = []
    games_without_new = 0
    while len(out) < n:
        board = chess.Board()
        found = False
        for _ in range(rng.randint(1, max_plies)):
            moves = list(board.legal_moves)
            if not moves:
                break
            board.push(rng.choice(moves))
            if rng.random() < rate:
                placement = board.board_fen()
                if placement not in seen and in_split(placement, split, split_seed):
                    seen.add(placement)
                    out.append(board.fen())
                    found = True
                    if len(out) == n:
                        break
        games_without_new = 0 if found else games_without_new + 1
        if games_without_new > 10_000:  # pragma: no cover - only for absurd n with tiny max_plies
            raise ValueError(f"n: could not find {n} distinct positions with max_plies={max_plies}")
    return out


# ---------------------------------------------------------------------------------------- rendering
@functools.lru_cache(maxsize=2)
def _font(px: int) -> ImageFont.FreeTypeFont:
    try:
        import matplotlib
    except ImportError as exc:  # pragma: no cover - the lab extra ships matplotlib
        raise ImportError("chess: the pieces are DejaVu Sans glyphs shipped with matplotlib; install matplotlib") from exc
    return ImageFont.truetype(os.path.join(matplotlib.get_data_path(), "fonts", "ttf", "DejaVuSans.ttf"), px)


def _sprite(symbol: str, canvas: int) -> tuple[np.ndarray, np.ndarray]:
    """(fill, ink) alpha masks in [0, 1], ``[canvas, canvas]``: the glyph's filled silhouette and its ink."""
    font = _font(int(0.86 * canvas))
    text = chr(_GLYPH[symbol])
    left, top, right, bottom = font.getbbox(text)
    ink = Image.new("L", (canvas, canvas), 0)
    ImageDraw.Draw(ink).text(((canvas - (right - left)) / 2 - left, (canvas - (bottom - top)) / 2 - top), text, font=font, fill=255)
    solid = ink.point(lambda v: 255 if v >= 96 else 0)
    ImageDraw.floodfill(solid, (0, 0), 128)  # the outside: reachable from a corner
    fill = np.asarray(solid) != 128
    return fill.astype(np.float32), np.asarray(ink, dtype=np.float32) / 255.0


@functools.lru_cache(maxsize=4)
def _tiles_cached(square: int) -> np.ndarray:
    canvas = square * max(1, 128 // square)
    factor = canvas // square
    tiles = np.empty((13, 2, square, square, 3), dtype=np.uint8)
    for colour, rgb in enumerate((LIGHT, DARK)):
        base = np.empty((canvas, canvas, 3), dtype=np.float32)
        base[:] = rgb
        for k, symbol in enumerate(SYMBOLS):
            img = base.copy()
            if symbol:
                fill, ink = _sprite(symbol, canvas)
                img = img * (1 - fill[:, :, None]) + 255.0 * fill[:, :, None]
                img = img * (1 - ink[:, :, None])
            tile = Image.fromarray(np.clip(np.rint(img), 0, 255).astype(np.uint8), "RGB").reduce(factor)
            tiles[k, colour] = np.asarray(tile)
    tiles.setflags(write=False)
    return tiles


def _check_size(size: int) -> None:
    if size not in SIZES:
        raise ValueError(f"size: expected 256 or 128, got {size!r}")


def lab_tiles(size: int = 256) -> np.ndarray:
    """The lab's square tiles for ``size``-px boards: uint8 ``[13, 2, size/8, size/8, 3]``
    (class: empty, P N B R Q K, p n b r q k; square colour: 0 light, 1 dark). Cached, read-only."""
    _check_size(size)
    return _tiles_cached(size // 8)


_PARITY = (np.add.outer(np.arange(8), np.arange(8)) % 2).astype(np.int64)  # 0 light (a8, h1), 1 dark


def render_boards(classes: np.ndarray | torch.Tensor, tiles: np.ndarray) -> np.ndarray:
    """Boards uint8 ``[B, 8q, 8q, 3]`` for classes ``[B, 8, 8]`` from tiles ``[13, 2, q, q, 3]``."""
    cls = np.asarray(classes, dtype=np.int64)
    b, q = cls.shape[0], tiles.shape[2]
    squares = tiles[cls, np.broadcast_to(_PARITY, cls.shape)]  # [B, 8, 8, q, q, 3]
    return squares.transpose(0, 1, 3, 2, 4, 5).reshape(b, 8 * q, 8 * q, 3)
