"""A non-editable install ships every subpackage: build the wheel, install it into a folder of its own and
import every module and run ``vsmlab --help`` from there (not from the repository checkout)."""

from __future__ import annotations

import os
import pkgutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import vsmlab

ROOT = Path(__file__).resolve().parents[1]


def _modules_in_source() -> set[str]:
    found = {"vsmlab"}
    for info in pkgutil.walk_packages([str(ROOT / "vsmlab")], prefix="vsmlab."):
        found.add(info.name)
    return found


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    res = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(ROOT)],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    (whl,) = out.glob("vsmlab-*.whl")
    return whl


def test_wheel_contains_every_module(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {n[:-3].replace("/", ".").removesuffix(".__init__") for n in names if n.endswith(".py")}
    missing = sorted(_modules_in_source() - shipped)
    assert not missing, f"modules missing from the wheel: {missing}"
    entry = next(n for n in names if n.endswith("entry_points.txt"))
    assert "vsmlab = vsmlab.cli:main" in zipfile.ZipFile(wheel).read(entry).decode()
    metadata = next(n for n in names if n.endswith(".dist-info/METADATA"))
    assert f"\nVersion: {vsmlab.__version__}\n" in zipfile.ZipFile(wheel).read(metadata).decode()


def test_one_version() -> None:
    """pyproject.toml takes its version from vsmlab.__version__ (no second number to keep in step)."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "version" not in config["project"] and "version" in config["project"]["dynamic"]
    assert config["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "vsmlab.__version__"}


@pytest.mark.slow
def test_installed_wheel_imports_everything_and_runs_the_cli(wheel: Path, tmp_path: Path) -> None:
    site = tmp_path / "site"
    res = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site), str(wheel)],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    mods = sorted(m for m in _modules_in_source() if not m.endswith("__main__"))
    code = ("import importlib, sys, vsmlab; "
            f"assert vsmlab.__file__.startswith({str(site)!r}), vsmlab.__file__; "
            f"[importlib.import_module(m) for m in {mods!r}]; print('imported', len({mods!r}))")
    env = {**os.environ, "PYTHONPATH": str(site), "OMP_NUM_THREADS": "1"}
    res = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    res = subprocess.run([sys.executable, "-m", "vsmlab", "--help"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-3000:]
    for command in ("figures", "data", "train", "sample", "validate"):
        assert command in res.stdout, f"`vsmlab --help` does not list {command!r}:\n{res.stdout}"
    assert vsmlab.__version__
