"""``vsmlab data | validate``: generate image data sets and validate samples.

- ``vsmlab data shapes --n N [--size 64|32] --seed S --out PATH [--force]``: SimpleShapes. ``--out x.npz``
  writes ``images`` (uint8 [N, H, W]) with ``presence``, ``positions``, ``templates``, ``size``, ``kinds``,
  ``seed``; any other ``--out`` writes a PNG folder plus ``factors.json``. Existing output is never
  replaced without ``--force``.
- ``vsmlab validate shapes PATH [--json]``: strict validator on an npz with ``images`` or a PNG folder
  (uint8 [N, H, W] or [N, H, W, 3]; RGB is averaged to gray; the side, 64 or 32, decides the geometry).
  ``--json`` prints one object with ``n``, ``rate``, ``low``, ``high`` (95% Wilson), ``categories``
  (each image once, in the order blank, wrong_kind, duplicate, malformed, then valid), ``vsm_rule_rate``.
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
    shapes.add_argument("--seed", type=int, default=0, help="seed of the numpy generator (default 0)")
    shapes.add_argument("--out", required=True, help="x.npz, or a folder for PNGs + factors.json")
    shapes.add_argument("--force", action="store_true", help="replace existing output")
    shapes.set_defaults(func=run_data_shapes)

    val = sub.add_parser("validate", help="validate generated images")
    val_sub = val.add_subparsers(dest="dataset", required=True)
    vshapes = val_sub.add_parser("shapes", help="strict SimpleShapes validator (and the VSM rule)")
    vshapes.add_argument("path", help="an .npz holding `images`, or a folder of PNGs")
    vshapes.add_argument("--json", action="store_true", help="print one JSON object")
    vshapes.add_argument("--iou-min", type=float, default=0.85, help="shape test threshold (default 0.85)")
    vshapes.set_defaults(func=run_validate_shapes)

    from vsmlab.data import semantic_cli  # Cards and ChessImages: `data cards|chess`, `validate cards|chess`

    semantic_cli.add_data_parsers(data_sub)
    semantic_cli.add_validate_parsers(val_sub)


def _fail(command: str, message: str) -> int:
    print(f"vsmlab {command}: {message}", file=sys.stderr)
    return 2


def run_data_shapes(args: argparse.Namespace) -> int:
    """Handler of ``vsmlab data shapes``; returns the exit code."""
    import numpy as np

    from vsmlab.core.io import atomic_write_bytes
    from vsmlab.data.folders import check_new_output, write_png_folder
    from vsmlab.data.shapes import SIZES, generate

    cmd = "data shapes"
    if args.n < 1:
        return _fail(cmd, f"--n: expected an int >= 1 (number of images), got {args.n}")
    if args.size not in SIZES:
        return _fail(cmd, f"--size: expected one of {', '.join(map(str, SIZES))}, got {args.size}")
    if args.seed < 0:
        return _fail(cmd, f"--seed: expected an int >= 0, got {args.seed}")
    out = Path(args.out)
    try:
        check_new_output(out, args.force)
    except FileExistsError as exc:
        return _fail(cmd, f"--out: {exc}")
    data = generate(args.n, args.size, args.seed)
    if out.suffix.lower() == ".npz":
        if out.is_dir():
            return _fail(cmd, f"--out: {out} is a folder; an .npz output must be a file path")
        buf = io.BytesIO()
        np.savez_compressed(buf, **data.arrays())
        atomic_write_bytes(out, buf.getvalue())
    else:
        factors = json.dumps(data.factors(), separators=(",", ":")).encode()
        write_png_folder(data.images, out, extra_files={"factors.json": factors}, force=args.force)
    print(f"wrote {len(data)} SimpleShapes images ({args.size}x{args.size}, seed {args.seed}) to {out}")
    return 0


def _load_images(path: Path):
    import numpy as np

    from vsmlab.data.folders import load_png_folder

    if path.is_dir():
        return load_png_folder(path)[0]
    if not path.exists():
        raise ValueError(f"path: {str(path)!r} does not exist (expected an .npz with `images` or a PNG folder)")
    try:
        with np.load(path, allow_pickle=False) as f:
            if "images" not in f.files:
                raise ValueError(f"path: {str(path)!r} holds no `images` array (found: {', '.join(f.files) or 'nothing'})")
            return f["images"]
    except (OSError, EOFError) as exc:
        raise ValueError(f"path: {str(path)!r} is not a readable .npz ({exc})") from None


def run_validate_shapes(args: argparse.Namespace) -> int:
    """Handler of ``vsmlab validate shapes``; returns the exit code."""
    from vsmlab.analysis.metrics import wilson_interval
    from vsmlab.data.shapes_validate import SUMMARY_ORDER, report

    cmd = "validate shapes"
    try:
        images = _load_images(Path(args.path))
        res = report(images, iou_min=args.iou_min)
    except (ValueError, TypeError) as exc:
        return _fail(cmd, str(exc))
    n = res["n"]
    if n == 0:
        return _fail(cmd, f"path: {args.path!r} holds no images (expected at least one)")
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
