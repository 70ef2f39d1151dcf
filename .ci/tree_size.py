"""How many bytes a GPU machine would receive: the working tree's tracked files plus untracked files git does
not ignore (what a device call copies). The GPU machine takes at most 64 MiB; the repository keeps <= 48 MiB.

    python .ci/tree_size.py            # prints the total, the largest folders, exit 1 over the limit
"""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path

LIMIT_MIB = 48
ROOT = Path(__file__).resolve().parents[1]


def tree_files(root: Path = ROOT) -> dict[str, int]:
    """{relative path: bytes} of tracked files and untracked files that are not ignored (existing ones)."""
    out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=root,
                         check=True, capture_output=True).stdout.decode()
    sizes = {}
    for name in filter(None, out.split("\0")):
        p = root / name
        if p.is_file() and not p.is_symlink():
            sizes[name] = p.stat().st_size
    return sizes


def main() -> int:
    sizes = tree_files()
    total = sum(sizes.values())
    folders = Counter()
    for name, b in sizes.items():
        parts = name.split("/")
        folders["/".join(parts[:2]) if len(parts) > 2 else parts[0]] += b
    print(f"working tree sent to a GPU machine: {total / 2**20:.1f} MiB ({len(sizes)} files; limit {LIMIT_MIB} MiB)")
    for folder, b in folders.most_common(10):
        print(f"  {b / 2**20:6.1f} MiB  {folder}")
    return 0 if total <= LIMIT_MIB * 2**20 else 1


if __name__ == "__main__":
    sys.exit(main())
