"""Run All is safe: a notebook run by hand writes to the git-ignored figures/local/, never to the published
figures; the runner and explicit publishing still publish (vsmlab.lab.notebook, headless: no kernel)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from vsmlab.lab import runner
from vsmlab.lab.notebook import PUBLISH_ENV, figures_destination, publish_requested, start

TABLE = {"smoke": {"n": 1}, "default": {"n": 2}, "full": {"n": 3}}
ENV_VARS = ("VSMLAB_FIGURES_ROOT", runner.STAGING_ENV, runner.TARGET_ENV, PUBLISH_ENV)


@pytest.fixture
def by_hand(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """The environment of a JupyterLab kernel: none of the runner's or publishing variables set."""
    for var in ENV_VARS:
        monkeypatch.delenv(var, raising=False)
    return monkeypatch


@pytest.fixture
def project(tmp_path: Path, by_hand: pytest.MonkeyPatch) -> Path:
    """A checkout with published figures of notebook 01_x; the kernel's working folder is its notebooks/."""
    root = tmp_path / "project"
    (root / "notebooks").mkdir(parents=True)
    published = root / "figures" / "01_x"
    published.mkdir(parents=True)
    (published / "x.png").write_bytes(b"the published figure")
    (root / "figures" / "MANIFEST.json").write_text('{"01_x/x.png": {"profile": "default"}}\n')
    by_hand.chdir(root / "notebooks")
    return root


def snapshot(folder: Path, skip: str = "local") -> dict[str, bytes]:
    """Every file under ``folder`` except those under ``folder/skip``, by relative path."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.relative_to(folder).parts[0] != skip}


def save_one(saver, name: str = "x") -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(1, 1))
    ax.plot([0, 1], [0, 1])
    path = saver.save(fig, name)
    plt.close(fig)
    return path


@pytest.mark.parametrize("profile, local", [("default", "local/01_x"), ("smoke", "local/smoke/01_x")])
def test_run_by_hand_writes_a_local_copy_and_says_where(project: Path, profile: str, local: str,
                                                        capsys: pytest.CaptureFixture) -> None:
    figures = project / "figures"
    before = snapshot(figures)
    cfg, saver = start("01_x", profile, 0, "", TABLE)  # what the notebook's setup cell does under Run All
    out = capsys.readouterr().out.strip().splitlines()
    path = save_one(saver)
    assert cfg == TABLE[profile]
    assert snapshot(figures) == before  # nothing published changed
    assert path == figures / local / "x.png" and path.read_bytes()[:4] == b"\x89PNG"
    manifest = json.loads((path.parent.parent / "MANIFEST.json").read_text())
    assert manifest["01_x/x.png"]["profile"] == profile
    assert len(out) == 1 and out[0].startswith(f"figures -> {figures / local} (a local copy that git ignores")
    assert "vsmlab figures --only 01" in out[0]


def test_the_runner_and_explicit_publishing_still_publish(project: Path, by_hand: pytest.MonkeyPatch,
                                                          tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    figures = project / "figures"
    # vsmlab figures: the runner's staging folder, nothing under figures/ until the runner publishes
    before = snapshot(figures, skip="")
    by_hand.setenv(runner.STAGING_ENV, str(tmp_path / "stage"))
    by_hand.setenv(runner.TARGET_ENV, "figures/01_x")
    _, saver = start("01_x", "default", 0, "", TABLE, publish=False)
    assert save_one(saver) == Path("figures/01_x/x.png")  # the path as published
    assert (tmp_path / "stage" / "x.png").exists() and snapshot(figures, skip="") == before
    assert "published by the runner" in capsys.readouterr().out
    by_hand.delenv(runner.STAGING_ENV)
    by_hand.delenv(runner.TARGET_ENV)

    # papermill -p publish True (the notebook passes its parameter to start)
    _, saver = start("01_x", "default", 0, "", TABLE, publish=True)
    assert save_one(saver, "y") == figures / "01_x" / "y.png"
    assert sorted(json.loads((figures / "MANIFEST.json").read_text())) == ["01_x/x.png", "01_x/y.png"]
    assert capsys.readouterr().out.startswith(f"figures -> {figures / '01_x'} (profile default")

    # VSMLAB_PUBLISH=1 papermill ... (works with any notebook, whatever its parameters)
    by_hand.setenv(PUBLISH_ENV, "1")
    _, saver = start("01_x", "smoke", 0, "", TABLE)
    assert save_one(saver) == figures / "smoke" / "01_x" / "x.png"
    assert "01_x/x.png" in json.loads((figures / "smoke" / "MANIFEST.json").read_text())
    assert not (figures / "local").exists()

    # an explicit folder wins over publishing: exactly there, figures/ untouched
    before = snapshot(figures, skip="")
    folder, manifest, _ = figures_destination("01_x", "default", tmp_path / "mine", publish=True)
    assert (folder, manifest) == (tmp_path / "mine", None)
    assert snapshot(figures, skip="") == before


@pytest.mark.parametrize("env, publish, expected", [
    (None, None, False), (None, False, False), (None, True, True), ("0", None, False), ("", True, True),
    ("1", None, True), ("true", False, True), ("no", "yes", True), (None, "False", False),
])
def test_publish_rule(by_hand: pytest.MonkeyPatch, env: str | None, publish, expected: bool) -> None:
    if env is not None:
        by_hand.setenv(PUBLISH_ENV, env)
    assert publish_requested(publish) is expected


def test_bad_publish_values_name_the_setting(project: Path, by_hand: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match=r"publish: expected True or False .* got 'maybe'"):
        start("01_x", "default", 0, "", TABLE, publish="maybe")
    with pytest.raises(ValueError, match="publish: expected True or False"):
        start("01_x", "default", 0, "", TABLE, publish=1)
    by_hand.setenv(PUBLISH_ENV, "perhaps")
    with pytest.raises(ValueError, match=r"\$VSMLAB_PUBLISH: expected True or False .* got 'perhaps'"):
        start("01_x", "default", 0, "", TABLE)
    assert not (project / "figures" / "local").exists()  # refused before anything was written


def _git(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], cwd=runner.ROOT, capture_output=True, text=True, timeout=60)


@pytest.mark.skipif(shutil.which("git") is None or not (runner.ROOT / ".git").exists(), reason="needs a git checkout")
def test_run_all_in_this_checkout_leaves_committed_figures_alone(by_hand: pytest.MonkeyPatch) -> None:
    """Run All on notebook 01 in this checkout: the figure lands in a git-ignored folder; the published
    folder and MANIFEST.json keep their bytes."""
    stem = "01_mode_interpolation_1d"
    figures = runner.ROOT / "figures"
    by_hand.chdir(runner.ROOT / "notebooks")  # JupyterLab starts the kernel in the notebook's folder
    published = [figures / stem / p.name for p in sorted((figures / stem).glob("*"))] + [figures / "MANIFEST.json"]
    before = {p: p.read_bytes() for p in published if p.is_file()}
    local = figures / "local"
    existed = local.exists()
    local_manifest = local / "MANIFEST.json"
    manifest_before = local_manifest.read_bytes() if local_manifest.exists() else None
    try:
        folder, manifest, _ = figures_destination(stem, "default", "")
        assert folder == local / stem and manifest == local_manifest
        _, saver = start(stem, "default", 0, "", TABLE)
        path = save_one(saver, "run_all_safety_check")
        assert path == local / stem / "run_all_safety_check.png"
        rel = [str(p.relative_to(runner.ROOT)) for p in (path, local_manifest)]
        ignored = _git("check-ignore", *rel)
        assert ignored.returncode == 0 and ignored.stdout.split() == rel, f"{rel} are not ignored by git"
        assert _git("status", "--porcelain", "--", *rel).stdout == ""
        assert {p: p.read_bytes() for p in published if p.is_file()} == before
    finally:
        if not existed:
            shutil.rmtree(local, ignore_errors=True)
        else:
            (local / stem / "run_all_safety_check.png").unlink(missing_ok=True)
            if manifest_before is None:
                local_manifest.unlink(missing_ok=True)
            else:
                local_manifest.write_bytes(manifest_before)
