"""``vsmlab data shapes|cards|chess``: write an image data set (parsing and one-line errors only; the
generators and writers are :mod:`vsmlab.data`).

- ``vsmlab data shapes --n N [--size 64|32] --seed S --out PATH [--force]``: SimpleShapes. ``--out x.npz``
  writes ``images`` (uint8 [N, H, W]) with ``presence``, ``positions``, ``templates``, ``size``, ``kinds``,
  ``seed``; any other ``--out`` writes a PNG folder plus ``factors.json`` (published atomically). Existing
  output is never replaced without ``--force``, and ``--force`` replaces only an output vsmlab wrote (a
  SimpleShapes folder: numbered PNGs + factors.json; a vsmlab .npz), never the working folder, a folder above
  it or a folder holding other files (:func:`vsmlab.core.outputs.prepare_output`). ``--n`` is checked
  against the memory available before anything is drawn; ``--seed`` is an int in 0..2**63-1.
- ``vsmlab data cards|chess``: the semantic benchmarks (Cards, ChessImages). Each writes its folder
  atomically (a temporary folder beside ``--out``, published in one step; a killed run leaves no partial
  ``--out`` and the next run removes its temporary folder). An existing split is replaced only with
  ``--force``, and only inside a folder vsmlab wrote; the other split is kept. Seeds are ints in 0..2**63-1.

Every handler returns the exit code: 0 on success, 2 on bad input (one line ``vsmlab data <set>: error: ...``
naming the flag as typed; nothing is written or overwritten on error).
"""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path
from typing import Callable

from vsmlab.cli.common import fail, flags

__all__ = ["add_parsers", "add_dataset_parsers", "run_data_shapes", "run_data_cards", "run_data_chess"]


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Register ``data shapes|cards|chess`` on the top-level subparsers."""
    data = sub.add_parser("data", help="generate image data sets")
    add_dataset_parsers(data.add_subparsers(dest="dataset", required=True))


def add_dataset_parsers(data_subparsers: argparse._SubParsersAction) -> None:
    """Register ``shapes``, ``cards`` and ``chess`` under ``vsmlab data``."""
    shapes = data_subparsers.add_parser("shapes", help="SimpleShapes (triangle | square | pentagon columns)")
    shapes.add_argument("--n", type=int, default=5000, help="number of images (default 5000; the VSM study: 75000)")
    shapes.add_argument("--size", type=int, default=64, help="image side: 64 (reference) or 32 (CPU variant)")
    shapes.add_argument("--seed", type=int, default=0, help="seed of the numpy generator, 0..2**63-1 (default 0)")
    shapes.add_argument("--out", required=True, help="x.npz, or a new folder for PNGs + factors.json")
    shapes.add_argument("--force", action="store_true",
                        help="replace an existing output that vsmlab wrote (never a folder holding other files)")
    shapes.set_defaults(func=run_data_shapes)

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


def _shapes_folder_kind():
    from vsmlab.core.outputs import OutputKind, owned_folder

    return OutputKind("a SimpleShapes PNG folder", folder=True, owned=lambda p: owned_folder(
        p, (r"\d+\.png", r"factors\.json"), (r"factors\.json",), "a SimpleShapes PNG folder: numbered PNGs + factors.json"))


def run_data_shapes(args: argparse.Namespace) -> int:
    """Handler of ``vsmlab data shapes``; returns the exit code."""
    import numpy as np

    from vsmlab.core.checks import check_int, check_memory, check_seed, input_errors
    from vsmlab.core.io import atomic_write_bytes
    from vsmlab.core.outputs import NPZ_OUTPUT, prepare_output
    from vsmlab.data.pngs import write_png_folder
    from vsmlab.data.shapes import SIZES, generate

    cmd = "data shapes"
    try:
        check_int("--n", args.n, low=1, hint="number of images")
        if args.size not in SIZES:
            raise ValueError(f"--size: expected one of {', '.join(map(str, SIZES))}, got {args.size}")
        check_seed("--seed", args.seed)
        # images + factors in memory (about twice the pixels while composing, ~256 bytes of factors each)
        check_memory("--n", args.n, 2 * args.size * args.size + 256, f"images of {args.size}x{args.size} px")
        npz = Path(args.out).suffix.lower() == ".npz"
        out, _ = prepare_output(args.out, NPZ_OUTPUT if npz else _shapes_folder_kind(), getattr(args, "force", False))
    except ValueError as exc:
        return fail(cmd, str(exc))
    data = generate(args.n, args.size, args.seed)
    with input_errors("--out", out, "cannot write"):
        if npz:
            buf = io.BytesIO()
            np.savez_compressed(buf, **data.arrays())
            atomic_write_bytes(out, buf.getvalue())
        else:
            factors = json.dumps(data.factors(), separators=(",", ":")).encode()
            write_png_folder(data.images, out, extra_files={"factors.json": factors}, force=True)  # checked above
    print(f"wrote {len(data)} SimpleShapes images ({args.size}x{args.size}, seed {args.seed}) to {out}")
    return 0


_WRITE_FLAGS = {"n": "--n", "seed": "--seed", "split": "--split", "split_seed": "--split-seed", "size": "--size",
                "max_plies": "--max-plies", "out": "--out"}


def _check_data_args(args: argparse.Namespace) -> None:
    from vsmlab.core.checks import check_int, check_seed

    check_int("--n", args.n, low=1, hint="number of images")
    check_seed("--seed", args.seed)
    check_seed("--split-seed", args.split_seed)


def _write_split(verb: str, args: argparse.Namespace, check: Callable[[], object],
                 write: Callable[[bool], Path], done: Callable[[Path], str]) -> int:
    """Check the flags (the common ones, then ``check()``), ``write(force)`` the split, print ``done(index)``;
    returns the exit code (2 with one line naming the flag on bad input)."""
    from vsmlab.core.checks import input_errors

    try:
        _check_data_args(args)
        check()
        with input_errors("--out", args.out, "cannot write"):
            index = write(bool(getattr(args, "force", False)))
    except (ValueError, OSError) as exc:
        return fail(verb, flags(str(exc), _WRITE_FLAGS))
    print(done(index))
    return 0


def run_data_cards(args: argparse.Namespace) -> int:
    """Handler of ``vsmlab data cards``."""
    from vsmlab.core.checks import check_int
    from vsmlab.data.cards import split_ranks, write_cards

    def check() -> None:
        sets = split_ranks(args.split, args.split_seed).numel()
        check_int("--n", args.n, low=1, high=sets, hint=f"the {args.split} split has {sets} card sets")

    return _write_split(
        "data cards", args, check,
        lambda force: write_cards(args.out, args.n, args.seed, args.rgb, args.split, args.size, args.split_seed,
                                  force=force),
        lambda index: f"wrote {args.n} {args.split} grids ({args.size} px, {'RGB' if args.rgb else 'grayscale'}) "
                      f"to {index.parent}; labels: {index}")


def run_data_chess(args: argparse.Namespace) -> int:
    """Handler of ``vsmlab data chess``."""
    from vsmlab.core.checks import check_int, check_memory
    from vsmlab.data.chessboards import write_chess

    def check() -> None:
        check_int("--max-plies", args.max_plies, low=1, hint="longest random game")
        # the FENs and the set of placements seen stay in memory while the games are played (~400 bytes each)
        check_memory("--n", args.n, 400, "boards")

    return _write_split(
        "data chess", args, check,
        lambda force: write_chess(args.out, args.n, args.seed, args.split, args.size, args.split_seed,
                                  args.max_plies, force=force),
        lambda index: f"wrote {args.n} {args.split} boards ({args.size} px) to "
                      f"{index.parent / (args.split + '_images')}; FENs: {index}")
