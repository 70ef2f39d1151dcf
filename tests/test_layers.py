"""The layer rule of vsmlab/__init__.py, enforced: import-linter's layers contract in pyproject.toml
(cli > lab > analysis > diffusion > data | nets > core; data and nets independent) holds for the package, and
the contract does catch an import that points up."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ["vsmlab.cli", "vsmlab.lab", "vsmlab.analysis", "vsmlab.diffusion", "vsmlab.data | vsmlab.nets", "vsmlab.core"]


def _lint_imports() -> str:
    script = Path(sys.executable).parent / "lint-imports"
    found = str(script) if script.exists() else shutil.which("lint-imports")
    if found is None:
        pytest.fail("lint-imports not found: install the dev extra (pip install -e '.[dev]', import-linter)")
    return found


def _run(cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(cwd))
    return subprocess.run([_lint_imports(), "--no-cache"], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=120)


def test_pyproject_declares_the_layers_in_order() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    assert config["root_package"] == "vsmlab"
    (contract,) = [c for c in config["contracts"] if c["name"] == "layers"]
    assert contract["type"] == "layers" and contract["layers"] == LAYERS
    assert not contract.get("ignore_imports") and not contract.get("exhaustive_ignores")  # no exceptions


def test_lint_imports_keeps_the_layers_contract() -> None:
    res = _run(ROOT)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]
    assert "layers KEPT" in res.stdout and "0 broken" in res.stdout


def test_an_upward_import_breaks_the_contract(tmp_path) -> None:
    shutil.copytree(ROOT / "vsmlab", tmp_path / "vsmlab", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    module = tmp_path / "vsmlab" / "data" / "mixtures.py"
    module.write_text(module.read_text() + "\n\ndef _up():\n    from vsmlab.diffusion import samplers  # noqa: F401\n")
    res = _run(tmp_path)
    assert res.returncode != 0 and "layers BROKEN" in res.stdout
    assert "vsmlab.data is not allowed to import vsmlab.diffusion" in res.stdout
    assert "vsmlab.data.mixtures -> vsmlab.diffusion.samplers" in res.stdout


# an argument's type check written by hand (``isinstance(x, bool) or not isinstance(x, int)`` and its variants)
_HAND_CHECK = re.compile(r"isinstance\((\w+), bool\) or not isinstance\(\1,|not isinstance\((\w+), bool\)\s*:\s*\n\s*raise")


def test_argument_checks_go_through_core_checks() -> None:
    """One message format for bad arguments: the library checks ints, numbers and bools with vsmlab.core.checks.
    The exercise answers (which turn a wrong type into a hint, not an error) are the one allowed exception."""
    allowed = {ROOT / "vsmlab" / "core" / "checks.py", ROOT / "vsmlab" / "lab" / "exercises" / "answers.py"}
    found = [f"{p.relative_to(ROOT)}:{text[:m.start()].count(chr(10)) + 1}"
             for p in sorted((ROOT / "vsmlab").rglob("*.py")) if p not in allowed
             for text in [p.read_text(encoding="utf-8")] for m in _HAND_CHECK.finditer(text)]
    assert not found, f"hand-written argument checks (use vsmlab.core.checks): {found}"
    assert _HAND_CHECK.search("if isinstance(n, bool) or not isinstance(n, int) or n < 1:\n")  # the pattern does match
    assert _HAND_CHECK.search("    if not isinstance(flag, bool):\n        raise ValueError(flag)\n")
