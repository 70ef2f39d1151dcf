"""``vsmlab data cards|chess`` and ``vsmlab validate cards|chess``: argparse registration and handlers.

The top-level CLI wires these in: :func:`add_data_parsers` on the ``data`` subparsers and
:func:`add_validate_parsers` on the ``validate`` subparsers. Every handler returns a process exit code:
0 on success, 2 on bad input (one line ``vsmlab <verb>: error: ...`` naming the file or the flag as typed
and what was expected; nothing is written or overwritten on error).

``data cards|chess`` write their folder atomically (a temporary folder beside ``--out``, published in one
step; a killed run leaves no partial ``--out`` and the next run removes its temporary folder). An existing
split is replaced only with ``--force``, and only inside a folder vsmlab wrote; the other split is kept.
Seeds are ints in 0..2**63-1. ``validate`` refuses input outside the validator's domain (sizes, bit depth,
template count and size, stale or unlabelled lab images) instead of reporting a rate on it.

``validate`` prints (or, with ``--json``, writes as one JSON object) ``n`` (images), ``count``
(hallucinated), ``rate`` with its 95% Wilson interval ``low`` / ``high``, and ``categories`` (how many
images break each rule; a chess board can break several), plus what was matched against.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

__all__ = ["add_data_parsers", "add_validate_parsers", "run_data_cards", "run_data_chess", "run_validate_cards", "run_validate_chess", "summarise"]


def add_data_parsers(data_subparsers: argparse._SubParsersAction) -> None:
    """Register ``cards`` and ``chess`` under ``vsmlab data``."""
    p = data_subparsers.add_parser("cards", help="write Cards grids (2x2 distinct playing cards), their JSON and the 40 faces")
    p.add_argument("--n", type=int, required=True, help="number of images (distinct card sets; at most the split's sets)")
    p.add_argument("--seed", type=int, default=0, help="seed for which sets and their quadrant order (0..2**63-1)")
    p.add_argument("--rgb", action="store_true", help="RGB images (default grayscale)")
    p.add_argument("--split", choices=("train", "test"), default="train")
    p.add_argument("--split-seed", type=int, default=0, help="seed of the train/test split of the 91,390 sets (0..2**63-1)")
    p.add_argument("--size", type=int, choices=(128, 64), default=128, help="grid size in px (64: 32-px quadrants)")
    p.add_argument("--out", required=True, help="output folder (card_imgs/, templates/, <split>_cards.json): new, or "
                   "one vsmlab wrote holding the other split")
    p.add_argument("--force", action="store_true", help="replace this split in a Cards folder vsmlab wrote")
    p.set_defaults(func=run_data_cards)

    p = data_subparsers.add_parser("chess", help="write ChessImages boards in the released layout")
    p.add_argument("--n", type=int, required=True, help="number of boards (distinct piece placements)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random games (0..2**63-1)")
    p.add_argument("--split", choices=("train", "test"), default="train")
    p.add_argument("--split-seed", type=int, default=0, help="key of the placement hash that splits train/test (0..2**63-1)")
    p.add_argument("--size", type=int, choices=(256, 128), default=256, help="board size in px")
    p.add_argument("--max-plies", type=int, default=160, help="longest random game (>= 1)")
    p.add_argument("--out", required=True, help="output folder (<split>_images/, <split>_fen.json): new, or one "
                   "vsmlab wrote holding the other split")
    p.add_argument("--force", action="store_true", help="replace this split in a ChessImages folder vsmlab wrote")
    p.set_defaults(func=run_data_chess)


def add_validate_parsers(validate_subparsers: argparse._SubParsersAction) -> None:
    """Register ``cards`` and ``chess`` under ``vsmlab validate``."""
    p = validate_subparsers.add_parser("cards", help="validate Cards grids (a folder of PNGs, card_imgs/, optional templates/)")
    p.add_argument("path", help="folder: card_imgs/*.png or *.png, optional templates/ (40 faces)")
    p.add_argument("--templates", default=None, help="a folder of 40 template faces (default: PATH/templates, else the lab's)")
    p.add_argument("--threshold", type=float, default=None, help="lowest accepted quadrant NCC, in (0, 1] (default 0.95)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run_validate_cards)

    p = validate_subparsers.add_parser("chess", help="validate ChessImages boards (released layout or a folder of PNGs)")
    p.add_argument("path", help="folder: train_images/ + train_fen.json (and/or test_), or PNG boards")
    p.add_argument("--split", choices=("train", "test"), default=None, help="only this split of a released folder")
    p.add_argument("--templates", choices=("auto", "lab", "own"), default="auto",
                   help="piece tiles: the lab's, or learned from the folder's own FENs (auto: own where FENs exist)")
    p.add_argument("--released-rule", action="store_true", help="judge with white to move, as the released validator")
    p.add_argument("--max-rmse", type=float, default=None, help="farthest accepted square (RMS in (0, 1]; default 0.07)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run_validate_chess)


def _fail(message: str, verb: str = "") -> int:
    """Print ``vsmlab <verb>: error: <message>`` (one line) and return exit code 2."""
    print(f"vsmlab {verb}: error: {message}" if verb else f"error: {message}", file=sys.stderr)
    return 2


def _flags(message: str, flags: dict[str, str]) -> str:
    """A library message ``"n: expected ..."`` with its leading argument name as the flag typed (``--n: ...``)."""
    head, sep, rest = message.partition(": ")
    return f"{flags[head]}{sep}{rest}" if sep and head in flags else message


_WRITE_FLAGS = {"n": "--n", "seed": "--seed", "split": "--split", "split_seed": "--split-seed", "size": "--size",
                "max_plies": "--max-plies", "out": "--out"}


def _check_data_args(args: argparse.Namespace) -> None:
    from vsmlab.core.checks import check_int, check_seed

    check_int("--n", args.n, low=1, hint="number of images")
    check_seed("--seed", args.seed)
    check_seed("--split-seed", args.split_seed)


def run_data_cards(args: argparse.Namespace) -> int:
    """Handler of ``vsmlab data cards``."""
    from vsmlab.core.checks import check_int, input_errors
    from vsmlab.data.cards import split_ranks, write_cards

    verb = "data cards"
    try:
        _check_data_args(args)
        sets = split_ranks(args.split, args.split_seed).numel()
        check_int("--n", args.n, low=1, high=sets, hint=f"the {args.split} split has {sets} card sets")
        with input_errors("--out", args.out, "cannot write"):
            index = write_cards(args.out, args.n, args.seed, args.rgb, args.split, args.size, args.split_seed,
                                force=getattr(args, "force", False))
    except (ValueError, OSError) as exc:
        return _fail(_flags(str(exc), _WRITE_FLAGS), verb)
    print(f"wrote {args.n} {args.split} grids ({args.size} px, {'RGB' if args.rgb else 'grayscale'}) to {index.parent}; labels: {index}")
    return 0


def run_data_chess(args: argparse.Namespace) -> int:
    """Handler of ``vsmlab data chess``."""
    from vsmlab.core.checks import check_int, check_memory, input_errors
    from vsmlab.data.chessboards import write_chess

    verb = "data chess"
    try:
        _check_data_args(args)
        check_int("--max-plies", args.max_plies, low=1, hint="longest random game")
        # the FENs and the set of placements seen stay in memory while the games are played (~400 bytes each)
        check_memory("--n", args.n, 400, "boards")
        with input_errors("--out", args.out, "cannot write"):
            index = write_chess(args.out, args.n, args.seed, args.split, args.size, args.split_seed, args.max_plies,
                                force=getattr(args, "force", False))
    except (ValueError, OSError) as exc:
        return _fail(_flags(str(exc), _WRITE_FLAGS), verb)
    print(f"wrote {args.n} {args.split} boards ({args.size} px) to {index.parent / (args.split + '_images')}; FENs: {index}")
    return 0


def summarise(flags: list[bool], categories: list[tuple[str, ...]], **extra: Any) -> dict[str, Any]:
    """The ``validate`` fields: n, count, rate with its 95% Wilson interval (low, high), category counts."""
    from vsmlab.core.rates import wilson_interval

    n, count = len(flags), int(sum(bool(f) for f in flags))
    rate = wilson_interval(count, n)
    counts = Counter(name for cats in categories for name in cats)
    return {"n": n, "count": count, "rate": rate.rate, "low": rate.low, "high": rate.high,
            "categories": dict(sorted(counts.items())), **extra}  # fmt: skip


def _print(summary: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(summary, sort_keys=True))
        return
    print(f"n: {summary['n']}")
    print(f"hallucinated: {summary['count']} = {100 * summary['rate']:.3f}% [95% Wilson {100 * summary['low']:.3f}, {100 * summary['high']:.3f}]")
    for name, count in summary["categories"].items():
        print(f"  {name}: {count}")
    for key, value in summary.items():
        if key not in ("n", "count", "rate", "low", "high", "categories", "warnings"):
            print(f"{key}: {value}")
    for note in summary.get("warnings", []):
        print(f"warning: {note}", file=sys.stderr)


def run_validate_cards(args: argparse.Namespace) -> int:
    """Handler of ``vsmlab validate cards PATH``."""
    from vsmlab.core.checks import check_range, input_errors
    from vsmlab.data.cards import THRESHOLD, validate_cards_folder

    threshold = THRESHOLD if args.threshold is None else args.threshold
    try:
        check_range("--threshold", threshold, 0, 1, low_open=True, hint="the lowest accepted quadrant NCC")
        if args.templates is not None and not Path(args.templates).is_dir():
            raise ValueError(f"--templates: {args.templates!r} is not a folder (expected a folder of 40 template PNGs)")
        with warnings.catch_warnings(), input_errors("PATH", args.path):
            warnings.simplefilter("ignore")  # the report carries its warnings; printed once below
            report = validate_cards_folder(args.path, args.templates, threshold)
    except ValueError as exc:
        return _fail(_flags(str(exc), {"threshold": "--threshold", "templates": "--templates"}), "validate cards")
    extra: dict[str, Any] = {"templates": report.templates, "threshold": threshold, "warnings": report.warnings}
    if report.labels_checked:
        extra.update(labels_checked=report.labels_checked, labels_agree=report.labels_agree)
    _print(summarise(report.hallucinated.tolist(), report.categories, **extra), args.json)
    return 0


def run_validate_chess(args: argparse.Namespace) -> int:
    """Handler of ``vsmlab validate chess PATH``."""
    from vsmlab.core.checks import check_range, input_errors
    from vsmlab.data.chessboards import MAX_RMSE, validate_chess_folder

    max_rmse = MAX_RMSE if args.max_rmse is None else args.max_rmse
    try:
        check_range("--max-rmse", max_rmse, 0, 1, low_open=True, hint="RMS distance of a square to its template")
        with warnings.catch_warnings(), input_errors("PATH", args.path):
            warnings.simplefilter("ignore")
            report = validate_chess_folder(args.path, args.split, args.templates, args.released_rule, max_rmse)
    except ValueError as exc:
        return _fail(_flags(str(exc), {"max_rmse": "--max-rmse", "templates": "--templates", "split": "--split"}),
                     "validate chess")
    released = int(report.released_hallucinated.sum())
    extra: dict[str, Any] = {"rule": "released (white to move)" if args.released_rule else "either side to move",
                             "released_rule_count": released, "templates": report.templates, "warnings": report.warnings}  # fmt: skip
    if report.fen_checked:
        extra.update(fen_checked=report.fen_checked, fen_exact=report.fen_exact)
    _print(summarise(report.hallucinated.tolist(), report.categories, **extra), args.json)
    return 0
