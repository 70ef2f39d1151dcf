"""ChessImages: boards from random play, rendered by the lab, read back by template matching, judged by
python-chess's rule book.

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

**Reading.** Each square is assigned the class (empty or one of 12 pieces) whose tile on that square's
colour is nearest in root-mean-square difference (in [0, 1] units); a square whose nearest tile is
farther than ``max_rmse`` is unreadable. The classes give the FEN piece placement. A generated board whose
palette drifted (a tint, a loss of contrast) is unreadable square by square; ``calibrate_colours`` undoes a
per-board affine colour map first, a diagnostic that asks what the board shows apart from its colours.

**Legality.** ``chess.Board(placement + " w - - 0 1").status()`` and the same with black to move; the
position is legal if either side to move is valid (the lab's rule). The released validator parses only
the placement and so judges every position with white to move ("released" rule), flagging legal
positions where black is in check. Violated rules are reported by name (``too_many_kings``,
``pawns_on_backrank``, ``opposite_check``, ...): those present with both sides to move, or, where no
flag is common to both, every flag of either side.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import random
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import chess
import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from vsmlab.core.outputs import OutputKind, owned_folder, prepare_output, staged_folder
from vsmlab.data.pngs import encode_png, iter_png_batches, list_pngs, png_header

__all__ = [
    "SYMBOLS",
    "LIGHT",
    "DARK",
    "SIZES",
    "MAX_RMSE",
    "RULES",
    "CORRUPTIONS",
    "placement_to_classes",
    "classes_to_placement",
    "in_split",
    "random_positions",
    "lab_tiles",
    "render_boards",
    "write_chess",
    "CHESS_FOLDER",
    "ChessTemplates",
    "lab_templates",
    "templates_from_boards",
    "read_boards",
    "calibrate_colours",
    "Judgement",
    "judge_placement",
    "ChessVerdict",
    "validate_chess",
    "corrupt_chess",
    "ChessFolder",
    "find_chess_folder",
    "ChessFolderReport",
    "validate_chess_folder",
]

SYMBOLS: tuple[str, ...] = ("", "P", "N", "B", "R", "Q", "K", "p", "n", "b", "r", "q", "k")  # class 0 = empty
_CLASS = {s: i for i, s in enumerate(SYMBOLS) if s}
_GLYPH = {"K": 0x2654, "Q": 0x2655, "R": 0x2656, "B": 0x2657, "N": 0x2658, "P": 0x2659,
          "k": 0x265A, "q": 0x265B, "r": 0x265C, "b": 0x265D, "n": 0x265E, "p": 0x265F}  # fmt: skip
LIGHT = (0xFF, 0xCE, 0x9E)
DARK = (0xD1, 0x8B, 0x47)
SIZES = (256, 128)
MAX_RMSE = 0.07
TEST_MODULUS = 10
CORRUPTIONS = ("second_king", "backrank_pawn", "blurred_square")
_STATUS = {
    chess.STATUS_NO_WHITE_KING: "no_white_king",
    chess.STATUS_NO_BLACK_KING: "no_black_king",
    chess.STATUS_TOO_MANY_KINGS: "too_many_kings",
    chess.STATUS_TOO_MANY_WHITE_PAWNS: "too_many_white_pawns",
    chess.STATUS_TOO_MANY_BLACK_PAWNS: "too_many_black_pawns",
    chess.STATUS_PAWNS_ON_BACKRANK: "pawns_on_backrank",
    chess.STATUS_TOO_MANY_WHITE_PIECES: "too_many_white_pieces",
    chess.STATUS_TOO_MANY_BLACK_PIECES: "too_many_black_pieces",
    chess.STATUS_BAD_CASTLING_RIGHTS: "bad_castling_rights",
    chess.STATUS_INVALID_EP_SQUARE: "invalid_ep_square",
    chess.STATUS_OPPOSITE_CHECK: "opposite_check",
    chess.STATUS_EMPTY: "empty",
    chess.STATUS_RACE_CHECK: "race_check",
    chess.STATUS_RACE_OVER: "race_over",
    chess.STATUS_RACE_MATERIAL: "race_material",
    chess.STATUS_TOO_MANY_CHECKERS: "too_many_checkers",
    chess.STATUS_IMPOSSIBLE_CHECK: "impossible_check",
}
RULES: tuple[str, ...] = ("unreadable_square",) + tuple(_STATUS.values())


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
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"n: expected an int >= 1, got {n!r}")
    if split not in ("train", "test"):
        raise ValueError(f"split: expected 'train' or 'test', got {split!r}")
    if not isinstance(max_plies, int) or max_plies < 1:
        raise ValueError(f"max_plies: expected an int >= 1, got {max_plies!r}")
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


def _owned_chess(path: Path) -> str | None:
    return owned_folder(path, (r"(train|test)_images/", r"(train|test)_images/\d+\.png", r"(train|test)_fen\.json"),
                        (r"(train|test)_fen\.json", r"(train|test)_images/"),
                        "a ChessImages folder: <split>_images/, <split>_fen.json")


#: what :func:`write_chess` writes: ``<split>_images/<id>.png`` and ``<split>_fen.json``
CHESS_FOLDER = OutputKind("a ChessImages folder", folder=True, owned=_owned_chess)


def write_chess(
    out: str | os.PathLike, n: int, seed: int = 0, split: str = "train", size: int = 256, split_seed: int = 0,
    max_plies: int = 160, force: bool = False,
) -> Path:
    """Write ``n`` boards in the released layout: ``out/<split>_images/<id>.png`` and ``out/<split>_fen.json``
    ({id: full FEN}).

    Atomic: everything is written into a temporary folder beside ``out`` and published in one step
    (:func:`vsmlab.core.outputs.staged_folder`; the other split's files are carried over), so a killed run
    never leaves a partial ``out``; the next run removes the stale temporary folder. Refuses
    (FileExistsError) an existing ``<split>_fen.json`` or a non-empty ``<split>_images/`` unless ``force``
    (which replaces that split only), and any ``out`` that is not a ChessImages folder vsmlab wrote (a file,
    a folder holding other files, the working folder). Returns the JSON path."""
    _check_size(size)
    if split not in ("train", "test"):
        raise ValueError(f"split: expected 'train' or 'test', got {split!r}")
    out, _ = prepare_output(out, CHESS_FOLDER, force=True, flag="out")  # vsmlab's own folder, or new
    index_path, img_dir = out / f"{split}_fen.json", out / f"{split}_images"
    if index_path.exists() and not force:
        raise FileExistsError(f"{index_path}: already exists; pass --force (force=True) to replace the {split} split, "
                              "or choose another --out (nothing was overwritten)")
    if img_dir.is_dir() and any(img_dir.iterdir()) and not force:
        raise FileExistsError(f"{img_dir}: not empty (no {index_path.name}: an interrupted write?); pass --force "
                              f"(force=True) to replace the {split} split, or choose another --out (nothing was overwritten)")
    fens = random_positions(n, seed, split, split_seed, max_plies)
    tiles = lab_tiles(size)
    width = max(6, len(str(n - 1)))
    other = "test" if split == "train" else "train"
    keep = re.compile(rf"({other}_images/\d+\.png|{other}_fen\.json)")
    with staged_folder(out, keep=lambda rel: bool(keep.fullmatch(rel))) as stage:
        (stage / img_dir.name).mkdir()
        index: dict[str, str] = {}
        for start in range(0, n, 512):
            chunk = fens[start : start + 512]
            boards = render_boards(np.stack([placement_to_classes(f) for f in chunk]), tiles)
            for j, (fen, board) in enumerate(zip(chunk, boards)):
                ident = f"{start + j:0{width}d}"
                with open(stage / img_dir.name / f"{ident}.png", "wb") as fh:
                    fh.write(encode_png(board))
                index[ident] = fen
        (stage / index_path.name).write_bytes(json.dumps(index, indent=0, sort_keys=True).encode())
    return index_path


# ---------------------------------------------------------------------------------------- reading
@dataclass(frozen=True)
class ChessTemplates:
    """Square templates uint8 ``[13, 2, q, q, 3]`` (class x square colour) and where they came from."""

    tiles: np.ndarray
    source: str = "lab"
    missing: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        t = self.tiles
        if not isinstance(t, np.ndarray) or t.dtype != np.uint8 or t.ndim != 5 or t.shape[:2] != (13, 2) or t.shape[4] != 3:
            raise TypeError("tiles: expected a uint8 array [13, 2, q, q, 3]")


def lab_templates(size: int = 256) -> ChessTemplates:
    """The lab's own tiles for ``size``-px boards as templates."""
    return ChessTemplates(lab_tiles(size), "lab")


def _check_boards(images: torch.Tensor) -> None:
    if not isinstance(images, torch.Tensor) or images.ndim != 4:
        raise TypeError(f"images: expected a tensor [B, 3, S, S], got {type(images).__name__} {getattr(images, 'shape', '')}")
    b, c, h, w = images.shape
    if c not in (1, 3) or h != w or h % 8:
        raise ValueError(f"images: expected [B, 3, S, S] with S a multiple of 8, got {list(images.shape)}")
    if images.dtype != torch.uint8 and not images.is_floating_point():
        raise TypeError(f"images: expected uint8 or floating point, got {images.dtype}")


def _squares(x: torch.Tensor) -> torch.Tensor:
    """[B, 3, 8q, 8q] -> [B, 64, 3 q q] (square k = 8 * row + col, row 0 = rank 8)."""
    b, c, s, _ = x.shape
    q = s // 8
    return x.reshape(b, c, 8, q, 8, q).permute(0, 2, 4, 1, 3, 5).reshape(b, 64, c * q * q)


def templates_from_boards(images: torch.Tensor, placements: list[str], fallback: ChessTemplates | None = None) -> ChessTemplates:
    """Templates harvested from labelled boards (another artwork, e.g. a released folder): for each class
    and square colour the per-pixel median of up to 64 occurrences. Combinations never seen are taken
    from ``fallback`` (default: the lab's tiles at this size) and listed in ``missing``."""
    _check_boards(images)
    x = images if images.dtype == torch.uint8 else ((images + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)
    if x.shape[1] != 3:
        raise ValueError(f"images: expected RGB boards [B, 3, S, S], got {list(images.shape)}")
    if len(placements) != x.shape[0]:
        raise ValueError(f"placements: expected {x.shape[0]} (one per image), got {len(placements)}")
    s = x.shape[-1]
    q = s // 8
    squares = x.reshape(x.shape[0], 3, 8, q, 8, q).permute(0, 2, 4, 3, 5, 1).reshape(-1, q, q, 3)  # [B*64, q, q, 3]
    labels = torch.from_numpy(np.stack([placement_to_classes(p) for p in placements]).reshape(-1))
    parity = torch.from_numpy(np.tile(_PARITY.reshape(-1), len(placements)))
    if fallback is None:
        fallback = lab_templates(s) if s in SIZES else None
    tiles = np.zeros((13, 2, q, q, 3), dtype=np.uint8)
    missing = []
    for k in range(13):
        for colour in range(2):
            idx = torch.nonzero((labels == k) & (parity == colour)).flatten()[:64]
            if idx.numel():
                tiles[k, colour] = squares[idx].median(dim=0).values.numpy()
            elif fallback is not None and fallback.tiles.shape[2] == q:
                tiles[k, colour] = fallback.tiles[k, colour]
                missing.append(f"{SYMBOLS[k] or 'empty'}/{('light', 'dark')[colour]}")
            else:
                raise ValueError(f"placements: no {SYMBOLS[k] or 'empty'} square on a {('light', 'dark')[colour]} square to learn from")
    return ChessTemplates(tiles, "boards", tuple(missing))


def read_boards(images: torch.Tensor, templates: ChessTemplates | None = None, chunk: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    """Nearest tile per square: classes int64 ``[B, 8, 8]`` and their RMS difference ``[B, 8, 8]`` in [0, 1]
    units (0 for an exact render). images: uint8 ``[B, 3, S, S]`` or float in [-1, 1], S = 8 * tile size.

    ``|x - t|^2 = |x|^2 - 2 x.t + |t|^2`` over each square's own colour, as matrix products, ``chunk``
    boards at a time (the float copy of a chunk stays small).
    """
    _check_boards(images)
    size = images.shape[-1]
    if templates is None:
        if size not in SIZES:
            raise ValueError(f"images: the lab renders 256 or 128 px boards, got {size} px; pass templates")
        templates = lab_templates(size)
    q = templates.tiles.shape[2]
    if size != 8 * q:
        raise ValueError(f"images: expected {8 * q}x{8 * q} boards for {q}-px templates, got {size} px")
    dtype = images.dtype if images.is_floating_point() else torch.float32
    d = 3 * q * q
    t = torch.from_numpy(np.array(templates.tiles)).to(device=images.device, dtype=dtype) / 255.0  # [13, 2, q, q, 3]
    t = t.permute(1, 0, 4, 2, 3).reshape(2, 13, d)  # [colour, class, D] in the squares' channel-first order
    t_sq = (t * t).sum(-1)  # [2, 13]
    parity = torch.from_numpy(_PARITY.reshape(-1)).to(images.device)
    cols = [torch.nonzero(parity == colour).flatten() for colour in range(2)]
    classes = torch.empty(images.shape[0], 64, dtype=torch.int64, device=images.device)
    rmse = torch.empty(images.shape[0], 64, dtype=dtype, device=images.device)
    for start in range(0, images.shape[0], chunk):
        x = images[start : start + chunk]
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        sq = _squares(x).to(dtype)  # [b, 64, D]
        sq = sq / 255.0 if images.dtype == torch.uint8 else (sq + 1) / 2
        for colour in range(2):
            part = sq[:, cols[colour]]  # [b, 32, D]
            dist = (part * part).sum(-1, keepdim=True) - 2 * part @ t[colour].T + t_sq[colour]
            best, idx = dist.min(dim=-1)
            classes[start : start + chunk, cols[colour]] = idx
            rmse[start : start + chunk, cols[colour]] = (best.clamp_min(0) / d).sqrt()
    return classes.reshape(-1, 8, 8), rmse.reshape(-1, 8, 8)


@functools.lru_cache(maxsize=1)
def _reference_classes() -> np.ndarray:
    """Classes [32, 8, 8] of 32 fixed random-play positions: the colour statistics of typical boards."""
    return np.stack([placement_to_classes(f) for f in random_positions(32, seed=0, split="train")])


def calibrate_colours(images: torch.Tensor, templates: ChessTemplates | None = None,
                      iterations: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    """Undo a per-board, per-channel affine colour drift: a diagnostic, not part of the validator.

    A generated board ``y`` [3, S, S] whose palette drifted (a global tint or contrast change, which the
    strict reader rejects square by square) is mapped to ``x = (y - b) / a``, where for each channel c
    ``y_c ~ a_c r_c + b_c`` by least squares and ``r`` is the render of the board's own current reading;
    the first reading is taken after matching each channel's mean and std to those of 32 typical boards,
    then ``iterations`` rounds of read, render, fit. A faithfully coloured board gets a = 1, b = 0 (up to
    rounding); the placement read from ``x`` is what the board shows apart from its palette.

    images: uint8 ``[B, 3, S, S]``; returns (uint8 boards ``[B, 3, S, S]``, float64 ``[B, 3, 2]`` = (a, b) per
    channel, in 0..255 units). ValueError for iterations < 1.
    """
    _check_boards(images)
    if images.dtype != torch.uint8 or images.shape[1] != 3:
        raise TypeError(f"images: expected uint8 RGB boards [B, 3, S, S], got {images.dtype} {list(images.shape)}")
    if not isinstance(iterations, int) or isinstance(iterations, bool) or iterations < 1:
        raise ValueError(f"iterations: expected an int >= 1, got {iterations!r}")
    size = images.shape[-1]
    templates = templates or lab_templates(size)
    y = images.double().flatten(2)  # [B, 3, P]
    ref = torch.from_numpy(render_boards(_reference_classes(), templates.tiles)).double().permute(0, 3, 1, 2).flatten(2)
    ref_mean, ref_std = ref.mean((0, 2)), ref.std(2).mean(0)  # [3]
    mean, std = y.mean(2), y.std(2).clamp_min(1e-6)  # [B, 3]
    a, b = std / ref_std, mean - std / ref_std * ref_mean  # y = a x + b maps the reference moments onto the board's
    for _ in range(iterations):
        x = ((y - b[..., None]) / a[..., None]).clamp(0, 255).round().reshape(images.shape).to(torch.uint8)
        classes, _ = read_boards(x, templates)
        r = torch.from_numpy(render_boards(classes.cpu().numpy(), templates.tiles)).double().permute(0, 3, 1, 2).flatten(2)
        rc, yc = r - r.mean(2, keepdim=True), y - y.mean(2, keepdim=True)
        a = ((rc * yc).sum(2) / (rc * rc).sum(2).clamp_min(1e-6)).clamp_min(1e-3)
        b = y.mean(2) - a * r.mean(2)
    x = ((y - b[..., None]) / a[..., None]).clamp(0, 255).round().reshape(images.shape).to(torch.uint8)
    return x, torch.stack([a, b], dim=-1)


# ---------------------------------------------------------------------------------------- legality
def _flags(status: int) -> set[str]:
    return {name for bit, name in _STATUS.items() if status & bit}


@dataclass(frozen=True)
class Judgement:
    """Rule violations of a piece placement: ``rules`` under the lab's rule (legal with either side to
    move: empty when legal) and ``released`` under the released rule (white to move)."""

    rules: tuple[str, ...]
    released: tuple[str, ...]


@functools.lru_cache(maxsize=65536)
def judge_placement(placement: str) -> Judgement:
    """Judge a piece placement with ``chess.Board.status()`` for white and for black to move."""
    field = placement.strip().split(" ")[0]
    placement_to_classes(field)  # ValueError on a malformed field
    white = _flags(chess.Board(f"{field} w - - 0 1").status())
    black = _flags(chess.Board(f"{field} b - - 0 1").status())
    if not white or not black:
        rules: set[str] = set()
    else:
        rules = (white & black) or (white | black)
    order = {name: i for i, name in enumerate(RULES)}
    return Judgement(tuple(sorted(rules, key=order.get)), tuple(sorted(white, key=order.get)))


@dataclass(frozen=True)
class ChessVerdict:
    """Per board: ``hallucinated`` [B] bool and ``categories`` (violated rules, several per board, empty
    if valid) under the chosen rule; ``released_hallucinated`` [B] under the released (white-to-move)
    rule; the ``placements`` read; ``square_rmse`` [B, 8, 8], each square's RMS difference from the tile it
    was read as (rank 8 in row 0), and ``readable`` [B, 8, 8], ``square_rmse <= max_rmse``."""

    hallucinated: torch.Tensor
    categories: list[tuple[str, ...]]
    released_hallucinated: torch.Tensor
    placements: list[str]
    square_rmse: torch.Tensor
    readable: torch.Tensor

    @property
    def max_rmse(self) -> torch.Tensor:
        """Each board's worst square, ``[B]``: above the limit, the board is unreadable."""
        return self.square_rmse.flatten(1).max(dim=1).values


def validate_chess(
    images: torch.Tensor, templates: ChessTemplates | None = None, released_rule: bool = False, max_rmse: float = MAX_RMSE
) -> ChessVerdict:
    """Read boards ``[B, 3, S, S]`` square by square and judge the placements (module docstring).

    A board with a square farther than ``max_rmse`` from every tile gets "unreadable_square" (and is
    judged on its best reading as well). released_rule: categories follow the white-to-move rule.
    """
    if not float(max_rmse) > 0:
        raise ValueError(f"max_rmse: expected a float > 0, got {max_rmse!r}")
    classes, rmse = read_boards(images, templates)
    rmse = rmse.cpu()
    worst = rmse.flatten(1).max(dim=1).values
    placements = [classes_to_placement(c) for c in classes.cpu().numpy()]
    categories, released = [], []
    for placement, w in zip(placements, worst.tolist()):
        judgement = judge_placement(placement)
        unreadable = ("unreadable_square",) if w > max_rmse else ()
        categories.append(unreadable + (judgement.released if released_rule else judgement.rules))
        released.append(bool(unreadable or judgement.released))
    flagged = torch.tensor([bool(c) for c in categories], dtype=torch.bool)
    return ChessVerdict(flagged, categories, torch.tensor(released, dtype=torch.bool), placements, rmse, rmse <= max_rmse)


# ---------------------------------------------------------------------------------------- corruptions
def corrupt_chess(fens: list[str], kind: str, generator: torch.Generator, size: int = 256) -> tuple[torch.Tensor, list[str]]:
    """Constructed hallucinations of real positions, rendered: images uint8 ``[B, 3, size, size]`` and the
    corrupted placements. kind: "second_king" (an extra king of a random colour on an empty square),
    "backrank_pawn" (a pawn of a random colour on an empty square of rank 1 or 8, else replacing a
    non-king piece there), "blurred_square" (a Gaussian blur, radius size/96 px, over one occupied square;
    the placement is unchanged)."""
    if kind not in CORRUPTIONS:
        raise ValueError(f"kind: expected one of {CORRUPTIONS}, got {kind!r}")
    _check_size(size)
    grids = np.stack([placement_to_classes(f) for f in fens])
    pick = lambda n: int(torch.randint(n, (1,), generator=generator))  # noqa: E731
    blur_at = []
    for g in grids:
        if kind == "second_king":
            empty = np.argwhere(g == 0)
            r, c = empty[pick(len(empty))]
            g[r, c] = _CLASS["K" if pick(2) == 0 else "k"]
        elif kind == "backrank_pawn":
            back = np.array([(r, c) for r in (0, 7) for c in range(8) if g[r, c] not in (_CLASS["K"], _CLASS["k"])])
            r, c = back[pick(len(back))]
            g[r, c] = _CLASS["P" if pick(2) == 0 else "p"]
        else:
            occupied = np.argwhere(g != 0)
            blur_at.append(tuple(occupied[pick(len(occupied))]))
    boards = render_boards(grids, lab_tiles(size))
    if kind == "blurred_square":
        boards = boards.copy()
        q = size // 8
        for board, (r, c) in zip(boards, blur_at):
            y0, x0, m = r * q, c * q, q // 4  # blur with a margin so the square's own pixels mix with neighbours'
            ys, xs = slice(max(0, y0 - m), y0 + q + m), slice(max(0, x0 - m), x0 + q + m)
            patch = Image.fromarray(np.ascontiguousarray(board[ys, xs])).filter(ImageFilter.GaussianBlur(size / 96))
            board[y0 : y0 + q, x0 : x0 + q] = np.asarray(patch)[y0 - ys.start : y0 - ys.start + q, x0 - xs.start : x0 - xs.start + q]
    images = torch.from_numpy(np.ascontiguousarray(boards)).permute(0, 3, 1, 2).contiguous()
    return images, [classes_to_placement(g) for g in grids]


# ---------------------------------------------------------------------------------------- folders
@dataclass(frozen=True)
class ChessFolder:
    """A ChessImages folder: ``files`` (PNG boards, all ``size`` px), ``ids`` and ``fens`` (None for a
    plain folder of samples) and ``layout`` ("released": ``<split>_images/`` + ``<split>_fen.json``;
    "samples": PNGs directly in the folder)."""

    root: Path
    layout: str
    files: list[Path]
    ids: list[str]
    fens: list[str] | None
    size: int


def _load_fen_json(path: Path) -> dict[str, str]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:  # unreadable, not UTF-8, not JSON
        raise ValueError(f"{path}: expected a JSON object {{id: FEN}} ({exc})") from exc
    if not isinstance(data, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in data.items()):
        raise ValueError(f"{path}: expected a JSON object mapping each image id (file name without .png) to a FEN string")
    for ident, fen in data.items():
        try:
            placement_to_classes(fen)
        except ValueError as exc:
            raise ValueError(f"{path}: entry {ident!r}: {exc}") from exc
    return data


def find_chess_folder(path: str | os.PathLike, split: str | None = None) -> ChessFolder:
    """Read a ChessImages folder's layout and check it before anything is validated.

    Released layout: for each split present (or only ``split``), ``<split>_images/<id>.png`` and
    ``<split>_fen.json`` ({id: FEN}); a FEN naming a missing file, an image without a FEN, a split with
    only one of the two, boards not all 256x256 (or all 128x128) or not 8-bit L / RGB PNGs raise ValueError
    naming the file and what was expected. Otherwise PNG boards directly in ``path`` are read as samples (no FENs).
    """
    root = Path(path)
    if split not in (None, "train", "test"):
        raise ValueError(f"split: expected 'train', 'test' or None (both), got {split!r}")
    if not root.is_dir():
        raise ValueError(f"{root}: expected a ChessImages folder (train_images/ + train_fen.json, or PNG boards), not found")
    splits = [s for s in ("train", "test") if (root / f"{s}_images").is_dir() or (root / f"{s}_fen.json").is_file()]
    files: list[Path] = []
    ids: list[str] = []
    fens: list[str] | None = None
    if splits:
        layout, fens = "released", []
        chosen = [s for s in splits if split in (None, s)]
        if not chosen:
            raise ValueError(f"{root}: no {split}_images/ + {split}_fen.json here (found {', '.join(splits)})")
        for s in chosen:
            img_dir, index = root / f"{s}_images", root / f"{s}_fen.json"
            if not index.is_file():
                raise ValueError(f"{root}: found {s}_images/ but no {s}_fen.json; expected both ({s}_images/<id>.png and {s}_fen.json mapping <id> to a FEN)")
            if not img_dir.is_dir():
                raise ValueError(f"{root}: found {s}_fen.json but no {s}_images/; expected both ({s}_images/<id>.png and {s}_fen.json mapping <id> to a FEN)")
            table = _load_fen_json(index)
            for ident in sorted(table):
                png = img_dir / f"{ident}.png"
                if not png.is_file():
                    raise ValueError(f"{index}: names {ident!r} but {png} is missing (expected one PNG per FEN)")
            for png in list_pngs(img_dir):
                if png.stem not in table:
                    raise ValueError(f"{png}: no entry in {index} (expected one FEN per image)")
            for ident in sorted(table):
                files.append(img_dir / f"{ident}.png")
                ids.append(ident if len(chosen) == 1 else f"{s}/{ident}")
                fens.append(table[ident])
        if not files:
            raise ValueError(f"{root}: the FEN files list no images; expected <split>_fen.json entries with their PNGs")
    else:
        layout = "samples"
        files = list_pngs(root)
        ids = [p.stem for p in files]
        if not files:
            raise ValueError(
                f"{root}: expected the released layout (train_images/<id>.png + train_fen.json, and/or test_) "
                "or PNG boards directly in the folder; found neither"
            )
    size, _ = png_header(files[0])  # 8-bit L or RGB PNGs only (a 16-bit copy would read as all white)
    if size not in ((256, 256), (128, 128)):
        raise ValueError(f"{files[0]}: board is {size[0]}x{size[1]}, expected 256x256 (or 128x128)")
    for p in files[1:]:
        other, _ = png_header(p)
        if other != size:
            raise ValueError(f"{p}: board is {other[0]}x{other[1]}, expected {size[0]}x{size[1]} like {files[0].name}")
    return ChessFolder(root, layout, files, ids, fens, size[0])


@dataclass(frozen=True)
class ChessFolderReport:
    """Validation of a folder: per board ``hallucinated``, ``categories`` and ``released_hallucinated``;
    ``fen_checked`` / ``fen_exact`` (boards with a FEN, and those whose placement was read exactly), the
    ``templates`` source and ``warnings``."""

    files: list[str]
    hallucinated: torch.Tensor
    categories: list[tuple[str, ...]]
    released_hallucinated: torch.Tensor
    fen_checked: int
    fen_exact: int
    templates: str
    warnings: list[str]


def validate_chess_folder(
    path: str | os.PathLike,
    split: str | None = None,
    templates: str = "auto",
    released_rule: bool = False,
    max_rmse: float = MAX_RMSE,
    batch_size: int = 256,
) -> ChessFolderReport:
    """Validate every board of a ChessImages folder (:func:`find_chess_folder`).

    templates: "lab" (the lab's tiles), "own" (learned from up to 2,000 of the folder's own labelled boards:
    reads another artwork, needs FENs), "auto" (own where FENs exist, else lab). The lab's tiles match only
    the lab's art: a warning says so where they are used on a released folder.
    """
    if templates not in ("auto", "lab", "own"):
        raise ValueError(f"templates: expected 'auto', 'lab' or 'own', got {templates!r}")
    folder = find_chess_folder(path, split)
    notes: list[str] = []
    if templates == "own" and folder.fens is None:
        raise ValueError(f"{folder.root}: templates='own' needs the released layout's FEN files; found only PNG boards")
    use_own = templates == "own" or (templates == "auto" and folder.fens is not None)
    if use_own:
        k = min(len(folder.files), 2000)
        boards = torch.cat([b for _, b in iter_png_batches(folder.files[:k], 3, (folder.size, folder.size), batch_size)])
        tpl = templates_from_boards(boards, folder.fens[:k])
        if tpl.missing:
            notes.append(f"{folder.root}: no labelled example of {', '.join(tpl.missing)}; the lab's tiles stand in for them")
    else:
        if folder.size not in SIZES:  # pragma: no cover - find_chess_folder already refuses other sizes
            raise ValueError(f"{folder.root}: the lab renders 256 or 128 px boards, got {folder.size}")
        tpl = lab_templates(folder.size)
        if folder.layout == "released":
            notes.append(f"{folder.root}: reading with the lab's own piece tiles, which will not match another artwork")
    for note in notes:
        warnings.warn(note, stacklevel=2)
    flagged, released, categories, checked, exact = [], [], [], 0, 0
    start = 0
    for paths, batch in iter_png_batches(folder.files, 3, (folder.size, folder.size), batch_size):
        verdict = validate_chess(batch, tpl, released_rule, max_rmse)
        flagged.append(verdict.hallucinated)
        released.append(verdict.released_hallucinated)
        categories.extend(verdict.categories)
        if folder.fens is not None:
            for placement, fen in zip(verdict.placements, folder.fens[start : start + len(paths)]):
                checked += 1
                exact += int(placement == fen.strip().split(" ")[0])
        start += len(paths)
    return ChessFolderReport(
        [str(p) for p in folder.files], torch.cat(flagged), categories, torch.cat(released), checked, exact, tpl.source, notes
    )
