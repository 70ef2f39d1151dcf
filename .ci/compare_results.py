"""Are the published results unchanged? Compares every default-profile results table (figures/<notebook>/*.csv)
in the working tree with the same file at a git revision, byte for byte.

    python .ci/compare_results.py            # against HEAD (e.g. after `vsmlab figures` on a refactored tree)
    python .ci/compare_results.py --ref REV  # against any commit

Prints one line per table (identical / DIFFERENT / new / missing) and exits 1 if any table differs or is missing.
"""

from __future__ import annotations

import argparse
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


def tables_here(root: Path = ROOT) -> dict[str, bytes]:
    """{path: bytes} of figures/<notebook>/*.csv in the working tree."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted((root / "figures").glob("*/*.csv"))}


def compare(ref: str, root: Path = ROOT) -> list[tuple[str, str]]:
    """[(path, status)] with status identical | DIFFERENT | new | missing, sorted by path."""
    old, new = tables_at(ref, root), tables_here(root)
    out = []
    for name in sorted(set(old) | set(new)):
        if name not in new:
            out.append((name, "missing"))
        elif name not in old:
            out.append((name, "new"))
        else:
            out.append((name, "identical" if old[name] == new[name] else "DIFFERENT"))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ref", default="HEAD", help="git revision to compare with (default HEAD)")
    args = parser.parse_args(argv)
    rows = compare(args.ref)
    for name, status in rows:
        print(f"{status:<10} {name}")
    bad = [n for n, s in rows if s in ("DIFFERENT", "missing")]
    print(f"{len(rows) - len(bad)} of {len(rows)} tables unchanged against {args.ref}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
