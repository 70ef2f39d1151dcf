"""Are the published results unchanged? Compares every default-profile results table (figures/<notebook>/*.csv)
in the working tree (or in a folder a `vsmlab figures --out DIR` run wrote) with the same file at a git revision,
byte for byte, except for timing columns.

    python .ci/compare_results.py                    # against HEAD (e.g. after `vsmlab figures` on a refactored tree)
    python .ci/compare_results.py --ref REV          # against any commit
    python .ci/compare_results.py --figures DIR      # the tables of `vsmlab figures --out DIR` (or bench_runner's DIR/default)

Prints one line per table and exits 1 if any table differs or is missing. Statuses: identical; "timings" (every
byte the same but the columns whose name contains "seconds", which a cold run measures anew: the training time);
DIFFERENT; new; missing.
"""

from __future__ import annotations

import argparse
import csv
import io
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def tables_at(ref: str, root: Path = ROOT) -> dict[str, bytes]:
    """{path: bytes} of figures/<notebook>/*.csv (default profile: one folder level) at git revision ``ref``."""
    names = subprocess.run(["git", "ls-tree", "-r", "--name-only", ref, "--", "figures"], cwd=root, check=True,
                           capture_output=True, text=True).stdout.split()
    wanted = [n for n in names if n.endswith(".csv") and n.count("/") == 2]
    return {n: subprocess.run(["git", "show", f"{ref}:{n}"], cwd=root, check=True, capture_output=True).stdout
            for n in wanted}


def tables_here(root: Path = ROOT, figures: Path | None = None) -> dict[str, bytes]:
    """{figures/<notebook>/<table>.csv: bytes} of the tables in ``figures`` (default: the working tree's figures/)."""
    figures = root / "figures" if figures is None else Path(figures)
    return {f"figures/{p.parent.name}/{p.name}": p.read_bytes() for p in sorted(figures.glob("*/*.csv"))}


def _without_timings(table: bytes) -> tuple[list[str], list[list[str]]]:
    """(header, rows) of a CSV with every column whose name contains "seconds" left out."""
    rows = list(csv.reader(io.StringIO(table.decode("utf-8"))))
    keep = [i for i, name in enumerate(rows[0] if rows else []) if "seconds" not in name]
    return [rows[0][i] for i in keep] if rows else [], [[r[i] for i in keep if i < len(r)] for r in rows[1:]]


def _status(old: bytes, new: bytes) -> str:
    if old == new:
        return "identical"
    try:
        same = _without_timings(old) == _without_timings(new) and _without_timings(old)[0] != []
    except (UnicodeDecodeError, csv.Error):
        same = False
    return "timings" if same else "DIFFERENT"


def compare(ref: str, root: Path = ROOT, figures: Path | None = None) -> list[tuple[str, str]]:
    """[(path, status)] with status identical | timings | DIFFERENT | new | missing, sorted by path."""
    old, new = tables_at(ref, root), tables_here(root, figures)
    out = []
    for name in sorted(set(old) | set(new)):
        if name not in new:
            out.append((name, "missing"))
        elif name not in old:
            out.append((name, "new"))
        else:
            out.append((name, _status(old[name], new[name])))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ref", default="HEAD", help="git revision to compare with (default HEAD)")
    parser.add_argument("--figures", type=Path, default=None,
                        help="the folder holding <notebook>/*.csv (default: the working tree's figures/)")
    args = parser.parse_args(argv)
    if args.figures is not None and not args.figures.is_dir():
        parser.error(f"--figures: expected a folder of <notebook>/*.csv tables, got {str(args.figures)!r} (no such folder)")
    rows = compare(args.ref, figures=args.figures)
    for name, status in rows:
        print(f"{status:<10} {name}")
    bad = [n for n, s in rows if s in ("DIFFERENT", "missing")]
    print(f"{len(rows) - len(bad)} of {len(rows)} tables unchanged against {args.ref}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
