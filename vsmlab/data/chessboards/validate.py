"""ChessImages, the validator: boards read back square by square, placements judged by python-chess.

**Reading.** Each square is assigned the class (empty or one of 12 pieces) whose tile on that square's
colour is nearest in root-mean-square difference (in [0, 1] units); a square whose nearest tile is
farther than ``max_rmse`` is unreadable. The classes give the FEN piece placement.

**Legality.** ``chess.Board(placement + " w - - 0 1").status()`` and the same with black to move; the
position is legal if either side to move is valid (the lab's rule). The released validator parses only
the placement and so judges every position with white to move ("released" rule), flagging legal
positions where black is in check. Violated rules are reported by name (``too_many_kings``,
``pawns_on_backrank``, ``opposite_check``, ...): those present with both sides to move, or, where no
flag is common to both, every flag of either side.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import chess
import numpy as np
import torch

from vsmlab.core.checks import check_square_images
from vsmlab.data.chessboards.generate import (_PARITY, SIZES, SYMBOLS, classes_to_placement, lab_tiles,
                                              placement_to_classes)

__all__ = ["MAX_RMSE", "RULES", "ChessTemplates", "lab_templates", "templates_from_boards", "read_boards",
           "Judgement", "judge_placement", "ChessVerdict", "validate_chess"]

MAX_RMSE = 0.07
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
    check_square_images("images", images, 8, "[B, 3, S, S]")
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
