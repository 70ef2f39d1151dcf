"""``vsmlab validate shapes|cards|chess PATH [--json]``: judge generated images with a data set's validator
(parsing, input checks and the report only; the validators are :mod:`vsmlab.data`).

- ``shapes``: the strict SimpleShapes validator on an npz with ``images`` or a PNG folder (uint8 [N, H, W] or
  [N, H, W, 3]; RGB is averaged to gray; the side, 64 or 32, decides the geometry). ``--json`` prints one
  object with ``n``, ``rate``, ``low``, ``high`` (95% Wilson), ``categories`` (each image once, in the order
  blank, wrong_kind, duplicate, malformed, then valid), ``vsm_rule_rate``. A file that is not an .npz, a
  truncated one, an ``images`` array of objects, of another dtype or shape, or with no image is refused with
  one line naming the file; PNG folders take 8-bit L or RGB files only.
- ``cards``, ``chess``: print (or, with ``--json``, write as one JSON object) ``n`` (images), ``count``
  (hallucinated), ``rate`` with its 95% Wilson interval ``low`` / ``high``, and ``categories`` (how many
  images break each rule; a chess board can break several), plus what was matched against. Input outside the
  validator's domain (sizes, bit depth, template count and size, stale or unlabelled lab images) is refused
  instead of reported on.

Every handler returns the exit code: 0 on success, 2 on bad input (one line ``vsmlab validate <set>: error:
...`` naming the file or the flag as typed).
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

from vsmlab.cli.common import fail, flags

__all__ = ["add_parsers", "add_dataset_parsers", "run_validate_shapes", "run_validate_cards", "run_validate_chess",
           "summarise"]


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Register ``validate shapes|cards|chess`` on the top-level subparsers."""
    val = sub.add_parser("validate", help="validate generated images")
    add_dataset_parsers(val.add_subparsers(dest="dataset", required=True))


def add_dataset_parsers(validate_subparsers: argparse._SubParsersAction) -> None:
    """Register ``shapes``, ``cards`` and ``chess`` under ``vsmlab validate``."""
    vshapes = validate_subparsers.add_parser("shapes", help="strict SimpleShapes validator (and the VSM rule)")
    vshapes.add_argument("path", help="an .npz holding `images`, or a folder of PNGs")
    vshapes.add_argument("--json", action="store_true", help="print one JSON object")
    vshapes.add_argument("--iou-min", type=float, default=0.85, help="shape test threshold in (0, 1] (default 0.85)")
    vshapes.set_defaults(func=run_validate_shapes)

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


_NPZ_HINT = "expected an .npz holding `images` (uint8 [N, H, W] or [N, H, W, 3]) or a folder of PNGs"


def _load_images(path: Path):
    import zlib

    import numpy as np

    from vsmlab.core.checks import input_errors
    from vsmlab.data.pngs import load_png_folder

    if path.is_dir():
        return load_png_folder(path)[0]
    if not path.exists():
        raise ValueError(f"PATH: {str(path)!r} does not exist ({_NPZ_HINT})")
    with input_errors("PATH", path):
        with open(path, "rb") as fh:
            head = fh.read(6)
    if head[:4] not in (b"PK\x03\x04", b"PK\x05\x06"):
        what = ("an empty file" if not head else "a single .npy array" if head == b"\x93NUMPY"
                else "not an .npz file (no zip header)")
        raise ValueError(f"PATH: {str(path)!r} is {what}; {_NPZ_HINT}")
    with input_errors("PATH", path):
        try:
            with np.load(path, allow_pickle=False) as f:
                if "images" not in f.files:
                    raise ValueError(f"PATH: {str(path)!r} holds no `images` array (found: {', '.join(f.files) or 'nothing'}); "
                                     f"{_NPZ_HINT}")
                return f["images"]
        except zlib.error as exc:
            raise ValueError(f"PATH: cannot read {str(path)!r}: truncated or corrupt ({exc})") from None
        except ValueError as exc:
            if "allow_pickle" in str(exc) or "pickled" in str(exc):
                raise ValueError(f"PATH: {str(path)!r}: `images` is an array of Python objects, which vsmlab never "
                                 f"reads; {_NPZ_HINT}") from None
            raise


def run_validate_shapes(args: argparse.Namespace) -> int:
    """Handler of ``vsmlab validate shapes``; returns the exit code."""
    from vsmlab.core.checks import check_range
    from vsmlab.core.rates import wilson_interval
    from vsmlab.data.shapes_validate import SUMMARY_ORDER, report

    cmd = "validate shapes"
    try:
        check_range("--iou-min", args.iou_min, 0, 1, low_open=True, hint="IoU of a shape with its template")
        images = _load_images(Path(args.path))
        if getattr(images, "ndim", 0) >= 1 and images.shape[0] == 0:
            raise ValueError(f"PATH: {args.path!r} holds no images (an empty `images` array of shape "
                             f"{list(images.shape)}); expected at least one")
        try:
            res = report(images, iou_min=args.iou_min)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"PATH: {args.path!r}: {exc}") from None
    except (ValueError, TypeError) as exc:
        return fail(cmd, str(exc))
    n = res["n"]
    if n == 0:
        return fail(cmd, f"PATH: {args.path!r} holds no images (expected at least one)")
    strict = wilson_interval(res["invalid"], n)
    vsm = wilson_interval(res["vsm_rule_invalid"], n)
    categories = {c: res["categories"][c] for c in (*SUMMARY_ORDER, "valid")}
    if args.json:
        print(json.dumps({
            "n": n, "rate": strict.rate, "low": strict.low, "high": strict.high, "categories": categories,
            "vsm_rule_rate": vsm.rate, "vsm_rule_low": vsm.low, "vsm_rule_high": vsm.high,
            "invalid": res["invalid"], "shows": {c: res["shows"][c] for c in SUMMARY_ORDER},
            "flagged_not_vsm": res["flagged_not_vsm"], "size": int(images.shape[1]),
        }))
        return 0
    print(f"{args.path}: {n} images, {images.shape[1]}x{images.shape[2]}")
    print(f"  strict non-valid rate  {strict.rate:7.2%}  (95% CI {strict.low:.2%} .. {strict.high:.2%})")
    print(f"  VSM-rule non-valid     {vsm.rate:7.2%}  (95% CI {vsm.low:.2%} .. {vsm.high:.2%})")
    print(f"  {'category':<12}{'images':>8}{'share':>9}{'shows':>8}{'VSM rule passes':>17}")
    for c in (*SUMMARY_ORDER, "valid"):
        shows = res["shows"][c]
        passes = res["flagged_not_vsm"].get(c, "")
        print(f"  {c:<12}{categories[c]:>8}{categories[c] / n:>9.2%}{shows:>8}{passes!s:>17}")
    return 0


def summarise(hallucinated: list[bool], categories: list[tuple[str, ...]], **extra: Any) -> dict[str, Any]:
    """The ``validate`` fields: n, count, rate with its 95% Wilson interval (low, high), category counts."""
    from vsmlab.core.rates import wilson_interval

    n, count = len(hallucinated), int(sum(bool(f) for f in hallucinated))
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
        return fail("validate cards", flags(str(exc), {"threshold": "--threshold", "templates": "--templates"}))
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
        return fail("validate chess", flags(str(exc), {"max_rmse": "--max-rmse", "templates": "--templates", "split": "--split"}))
    released = int(report.released_hallucinated.sum())
    extra: dict[str, Any] = {"rule": "released (white to move)" if args.released_rule else "either side to move",
                             "released_rule_count": released, "templates": report.templates, "warnings": report.warnings}  # fmt: skip
    if report.fen_checked:
        extra.update(fen_checked=report.fen_checked, fen_exact=report.fen_exact)
    _print(summarise(report.hallucinated.tolist(), report.categories, **extra), args.json)
    return 0
