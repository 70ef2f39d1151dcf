"""environment.yml stays consistent with pyproject.toml (static: conda is not needed to run this)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
TORCH_PIN = "torch==2.13.0"


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(spec: str) -> str:
    """'numpy>=1.24' -> 'numpy'; 'pytest-timeout >= 2' -> 'pytest-timeout'; 'a[x]==1' -> 'a'."""
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", spec)
    assert match, f"cannot read a package name from {spec!r}"
    return normalise(match.group(1))


def conda_name(spec: str) -> str:
    """'python=3.11' / 'numpy>=1.24' / 'conda-forge::numpy' -> the package name."""
    return requirement_name(spec.split("::")[-1])


@pytest.fixture(scope="module")
def pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


@pytest.fixture(scope="module")
def environment() -> dict:
    return yaml.safe_load((ROOT / "environment.yml").read_text())


def split(environment: dict) -> tuple[list[str], list[str]]:
    conda, pip = [], []
    for item in environment["dependencies"]:
        if isinstance(item, dict):
            assert set(item) == {"pip"}, f"unexpected mapping in dependencies: {item}"
            pip.extend(item["pip"])
        else:
            conda.append(str(item))
    return conda, pip


def test_channels_python_and_pip(environment: dict) -> None:
    assert environment["channels"] == ["conda-forge"]
    conda, pip = split(environment)
    assert "python=3.11" in conda
    assert "pip" in [conda_name(c) for c in conda]
    assert pip, "environment.yml needs a pip section"


def test_torch_is_pinned_and_installed_before_the_package(environment: dict) -> None:
    conda, pip = split(environment)
    assert TORCH_PIN in pip
    assert "torch" not in {conda_name(c) for c in conda} and "pytorch" not in {conda_name(c) for c in conda}
    installs = [i for i, line in enumerate(pip) if line.replace(" ", "").startswith("-e.")]
    assert installs, "the pip section must install the package itself (-e .[lab,dev])"
    assert pip[installs[0]].replace(" ", "") == "-e.[lab,dev]"
    assert pip.index(TORCH_PIN) < installs[0], "torch==2.13.0 must come before the package install"


def test_every_pyproject_dependency_is_in_environment(pyproject: dict, environment: dict) -> None:
    project = pyproject["project"]
    wanted = list(project["dependencies"])
    extras = project["optional-dependencies"]
    assert {"lab", "dev"} <= set(extras)
    wanted += extras["lab"] + extras["dev"]
    conda, pip = split(environment)
    have = {conda_name(c) for c in conda} | {requirement_name(p) for p in pip if not p.strip().startswith("-")}
    missing = sorted({requirement_name(w) for w in wanted} - have)
    assert not missing, f"in pyproject.toml but not in environment.yml: {missing}"
    # and nothing in the conda list that the project does not ask for (besides python and pip)
    extra = sorted({conda_name(c) for c in conda} - {requirement_name(w) for w in wanted} - {"python", "pip"})
    assert not extra, f"in environment.yml but not in pyproject.toml: {extra}"


def test_pyproject_torch_range_admits_the_pin(pyproject: dict) -> None:
    torch_specs = [d for d in pyproject["project"]["dependencies"] if requirement_name(d) == "torch"]
    assert len(torch_specs) == 1
    for clause in re.findall(r"(>=|<=|==|<|>)\s*([0-9.]+)", torch_specs[0]):
        op, version = clause
        pin, bound = tuple(map(int, "2.13.0".split("."))), tuple(map(int, version.split(".")))
        bound = bound + (0,) * (3 - len(bound))
        assert {">=": pin >= bound, "<=": pin <= bound, "==": pin == bound, "<": pin < bound, ">": pin > bound}[op], \
            f"pyproject's {torch_specs[0]!r} excludes {TORCH_PIN}"


def test_readme_installs_torch_first() -> None:
    readme = ROOT / "README.md"
    if not readme.exists():
        pytest.skip("no README.md yet")
    text = readme.read_text()
    assert TORCH_PIN in text, "README.md must tell to install torch==2.13.0"
    package = re.search(r"pip install\s+(-e\s+)?[\"']?\.\[", text)
    assert package, "README.md must install the package (pip install -e \".[...]\")"
    assert text.index(TORCH_PIN) < package.start(), "README.md must install torch==2.13.0 before the package"


def test_ci_script_follows_the_readme() -> None:
    ci = ROOT / ".ci" / "run"
    text = ci.read_text()
    assert text.startswith("#!/usr/bin/env bash") and "set -euo pipefail" in text
    assert ci.stat().st_mode & 0o111, ".ci/run must be executable"
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    torch_line = next(i for i, line in enumerate(lines) if line == f"pip install {TORCH_PIN}")
    package_line = next(i for i, line in enumerate(lines) if line == 'pip install -e ".[lab,dev]"')
    assert torch_line < package_line
    assert "python -m pytest -q" in lines
    assert not any("playwright install" in line for line in lines)  # Debian chromium only
    readme = ROOT / "README.md"
    if readme.exists():
        assert "python -m pytest -q" in readme.read_text(), "README.md and .ci/run must use the same test command"
