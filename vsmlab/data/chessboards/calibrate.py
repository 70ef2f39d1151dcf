"""ChessImages, diagnostics and constructed hallucinations: :func:`calibrate_colours` undoes a per-board
affine colour map (a generated board whose palette drifted, a tint or a loss of contrast, is unreadable
square by square; after the map the reading says what the board shows apart from its colours), and
:func:`corrupt_chess` renders real positions with one rule broken or one square blurred."""

from __future__ import annotations

import functools

import numpy as np
import torch
from PIL import Image, ImageFilter

from vsmlab.core.checks import check_int
from vsmlab.data.chessboards.generate import (_CLASS, _check_size, classes_to_placement, lab_tiles,
                                              placement_to_classes, random_positions, render_boards)
from vsmlab.data.chessboards.validate import ChessTemplates, _check_boards, lab_templates, read_boards

__all__ = ["CORRUPTIONS", "calibrate_colours", "corrupt_chess"]

CORRUPTIONS = ("second_king", "backrank_pawn", "blurred_square")


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
    check_int("iterations", iterations, low=1)
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
