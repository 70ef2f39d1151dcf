"""Every notebook runs end to end in the smoke profile through the real runner (papermill)."""

from __future__ import annotations

import json

import pytest

from vsmlab.lab.runner import list_notebooks, run_notebook

NOTEBOOKS = list_notebooks()
assert NOTEBOOKS, "no notebook sources found in notebooks/"


@pytest.mark.notebook
@pytest.mark.timeout(300)
@pytest.mark.parametrize("stem", NOTEBOOKS)
def test_notebook_runs_in_smoke_profile(stem, tmp_path, monkeypatch):
    monkeypatch.setenv("VSMLAB_CACHE_DIR", str(tmp_path / "cache"))
    res = run_notebook(stem, "smoke", out_dir=tmp_path / "figures", executed_dir=tmp_path / "executed", progress=False)
    assert res.figures == tmp_path / "figures" / "smoke" / stem  # smoke publishes under figures/smoke/
    pngs = sorted(p.name for p in res.figures.glob("*.png"))
    assert pngs, f"{stem} wrote no figure"
    manifest = json.loads((tmp_path / "figures" / "smoke" / "MANIFEST.json").read_text())
    assert {f"{stem}/{p}" for p in pngs} == {k for k in manifest if k.startswith(f"{stem}/")}
    for entry in manifest.values():
        assert entry["profile"] == "smoke" and entry["notebook"] == stem
    text = res.executed.read_text()
    assert ".stage-" not in text and str(tmp_path) not in text  # no staging or run-specific path
    nb = json.loads(text)
    assert "papermill" not in nb["metadata"]
    assert any(c.get("metadata", {}).get("tags") == ["parameters"] for c in nb["cells"])
