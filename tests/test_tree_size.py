"""The working tree a GPU machine receives (tracked + untracked-not-ignored files) stays <= 48 MiB."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _module():
    spec = importlib.util.spec_from_file_location("tree_size", ROOT / ".ci" / "tree_size.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.skipif(shutil.which("git") is None or not (ROOT / ".git").exists(), reason="needs a git checkout")
def test_tree_fits_the_gpu_machine() -> None:
    mod = _module()
    sizes = mod.tree_files(ROOT)
    assert "vsmlab/__init__.py" in sizes and not any(n.startswith(".venv/") for n in sizes)
    total = sum(sizes.values())
    biggest = sorted(sizes.items(), key=lambda kv: -kv[1])[:5]
    assert total <= mod.LIMIT_MIB * 2**20, f"tree {total / 2**20:.1f} MiB > {mod.LIMIT_MIB} MiB; largest: {biggest}"


def test_no_shipped_file_over_5_mb() -> None:
    big = [(n, b) for n, b in _module().tree_files(ROOT).items() if b > 5_000_000]
    assert not big, f"files over 5 MB: {big}"
