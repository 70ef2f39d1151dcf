"""The results-table check (.ci/compare_results.py) finds a changed, a missing and a new table, and passes an
unchanged tree."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs git")


def _module():
    spec = importlib.util.spec_from_file_location("compare_results", ROOT / ".ci" / "compare_results.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True)


def test_compare_finds_changed_missing_and_new_tables(tmp_path) -> None:
    mod = _module()
    repo = tmp_path / "repo"
    (repo / "figures" / "06_x").mkdir(parents=True)
    (repo / "figures" / "07_y").mkdir(parents=True)
    (repo / "figures" / "full" / "06_x").mkdir(parents=True)
    (repo / "figures" / "06_x" / "results.csv").write_text("a,b\n1,2\n")
    (repo / "figures" / "07_y" / "rates.csv").write_text("r\n0.5\n")
    (repo / "figures" / "full" / "06_x" / "results.csv").write_text("other profile\n")
    _git(repo, "init", "-q")
    _git(repo, "add", ".")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "tables")
    assert all(status == "identical" for _, status in mod.compare("HEAD", repo))
    assert len(mod.compare("HEAD", repo)) == 2  # default profile only: figures/<notebook>/*.csv
    (repo / "figures" / "06_x" / "results.csv").write_text("a,b\n1,3\n")
    (repo / "figures" / "07_y" / "rates.csv").unlink()
    (repo / "figures" / "07_y" / "more.csv").write_text("n\n1\n")
    assert dict(mod.compare("HEAD", repo)) == {"figures/06_x/results.csv": "DIFFERENT",
                                               "figures/07_y/rates.csv": "missing", "figures/07_y/more.csv": "new"}


def test_timing_columns_and_an_output_folder(tmp_path) -> None:
    """A cold run measures its training time anew: a table equal but for a "seconds" column is "timings" (unchanged);
    any other cell, or a renamed column, is DIFFERENT. --figures compares a `vsmlab figures --out DIR` folder."""
    mod = _module()
    repo = tmp_path / "repo"
    (repo / "figures" / "05_x").mkdir(parents=True)
    (repo / "figures" / "05_x" / "results.csv").write_text("rate,train_seconds,train_seconds_ci95\n1.5,10.2,0.5\n")
    _git(repo, "init", "-q")
    _git(repo, "add", ".")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "tables")
    out = tmp_path / "out"
    (out / "05_x").mkdir(parents=True)
    table = out / "05_x" / "results.csv"
    table.write_text("rate,train_seconds,train_seconds_ci95\n1.5,31.0,2.5\n")
    assert mod.compare("HEAD", repo, out) == [("figures/05_x/results.csv", "timings")]
    table.write_text("rate,train_seconds,train_seconds_ci95\n1.6,10.2,0.5\n")
    assert mod.compare("HEAD", repo, out) == [("figures/05_x/results.csv", "DIFFERENT")]
    table.write_text("rate,train_s,train_seconds_ci95\n1.5,10.2,0.5\n")
    assert mod.compare("HEAD", repo, out) == [("figures/05_x/results.csv", "DIFFERENT")]
    table.write_text("rate,train_seconds,train_seconds_ci95\n1.5,10.2,0.5\n")
    assert mod.compare("HEAD", repo, out) == [("figures/05_x/results.csv", "identical")]
