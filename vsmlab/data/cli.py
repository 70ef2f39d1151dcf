"""``vsmlab data | validate``: generate image data sets and validate samples.

- ``vsmlab data shapes --n N [--size 64|32] --seed S --out PATH [--force]``: SimpleShapes. ``--out x.npz``
  writes ``images`` (uint8 [N, H, W]) with ``presence``, ``positions``, ``templates``, ``size``, ``kinds``,
  ``seed``; any other ``--out`` writes a PNG folder plus ``factors.json`` (published atomically). Existing
  output is never replaced without ``--force``, and ``--force`` replaces only an output vsmlab wrote (a
  SimpleShapes folder: numbered PNGs + factors.json; a vsmlab .npz), never the working folder, a folder above
  it or a folder holding other files (:func:`vsmlab.core.outputs.prepare_output`). ``--n`` is checked
  against the memory available before anything is drawn; ``--seed`` is an int in 0..2**63-1.
- ``vsmlab validate shapes PATH [--json]``: strict validator on an npz with ``images`` or a PNG folder
  (uint8 [N, H, W] or [N, H, W, 3]; RGB is averaged to gray; the side, 64 or 32, decides the geometry).
  ``--json`` prints one object with ``n``, ``rate``, ``low``, ``high`` (95% Wilson), ``categories``
  (each image once, in the order blank, wrong_kind, duplicate, malformed, then valid), ``vsm_rule_rate``.
  A file that is not an .npz, a truncated one, an ``images`` array of objects, of another dtype or shape, or
  with no image is refused with one line naming the file; PNG folders take 8-bit L or RGB files only.
- ``vsmlab data cards|chess ...`` and ``vsmlab validate cards|chess PATH [--json]``: the semantic benchmarks
  (Cards, ChessImages), registered from :mod:`vsmlab.data.semantic_cli`.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
from pathlib import Path

__all__ = ["add_parsers"]


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Register ``data shapes|cards|chess`` and ``validate shapes|cards|chess`` on the top-level subparsers."""
    data = sub.add_parser("data", help="generate image data sets")
    data_sub = data.add_subparsers(dest="dataset", required=True)
    shapes = data_sub.add_parser("shapes", help="SimpleShapes (triangle | square | pentagon columns)")
    shapes.add_argument("--n", type=int, default=5000, help="number of images (default 5000; the VSM study: 75000)")
    shapes.add_argument("--size", type=int, default=64, help="image side: 64 (reference) or 32 (CPU variant)")
    shapes.add_argument("--seed", type=int, default=0, help="seed of the numpy generator, 0..2**63-1 (default 0)")
    shapes.add_argument("--out", required=True, help="x.npz, or a new folder for PNGs + factors.json")
    shapes.add_argument("--force", action="store_true",
                        help="replace an existing output that vsmlab wrote (never a folder holding other files)")
    shapes.set_defaults(func=run_data_shapes)

    val = sub.add_parser("validate", help="validate generated images")
    val_sub = val.add_subparsers(dest="dataset", required=True)
    vshapes = val_sub.add_parser("shapes", help="strict SimpleShapes validator (and the VSM rule)")
    vshapes.add_argument("path", help="an .npz holding `images`, or a folder of PNGs")
    vshapes.add_argument("--json", action="store_true", help="print one JSON object")
    vshapes.add_argument("--iou-min", type=float, default=0.85, help="shape test threshold in (0, 1] (default 0.85)")
    vshapes.set_defaults(func=run_validate_shapes)

    from vsmlab.data import semantic_cli  # Cards and ChessImages: `data cards|chess`, `validate cards|chess`

    semantic_cli.add_data_parsers(data_sub)
    semantic_cli.add_validate_parsers(val_sub)


def _fail(command: str, message: str) -> int:
    """Print ``vsmlab <command>: error: <message>`` (one line) and return exit code 2."""
    print(f"vsmlab {command}: error: {message}", file=sys.stderr)
    return 2


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
        return _fail(cmd, str(exc))
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
    from vsmlab.analysis.metrics import wilson_interval
    from vsmlab.core.checks import check_range
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
        return _fail(cmd, str(exc))
    n = res["n"]
    if n == 0:
        return _fail(cmd, f"PATH: {args.path!r} holds no images (expected at least one)")
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
