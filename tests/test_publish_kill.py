"""A runner killed with SIGKILL in the middle of a publish: right after the kill the published files are
the old ones or the new ones (byte for byte), and the next run repairs what the kill left.

One tiny notebook is published (version 1), then a runner subprocess publishing version 2 is killed at
each instrumented point (``VSMLAB_TEST_KILL_AT``) of :func:`vsmlab.lab.runner.run_notebook`. Every run
happens in its own copy of the lab with the lab folder as working folder, so executed notebooks of
different copies are comparable byte for byte.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from test_runner import ENV, GOOD, leftovers, snapshot, write_notebook
from vsmlab.lab import runner

pytestmark = pytest.mark.notebook

RUN = ("from vsmlab.lab import runner; "
       "runner.run_notebook('01_tiny', 'smoke', out_dir='figures', executed_dir='executed', notebooks_dir='notebooks', "
       "progress=False)")


def run_in(lab: Path, kill_at: str | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in ENV.items() if k != runner.KILL_ENV}
    if kill_at is not None:
        env[runner.KILL_ENV] = kill_at
    return subprocess.run([sys.executable, "-c", RUN], cwd=lab, env=env, capture_output=True, text=True, timeout=240)


def published(lab: Path) -> dict[str, bytes]:
    """Figures (without the manifest, whose entries hold timings) and the executed notebook."""
    return {k: v for k, v in snapshot(lab / "figures", lab / "executed").items() if not k.endswith("MANIFEST.json")}


def manifest(lab: Path) -> dict[str, dict]:
    return json.loads((lab / "figures" / "smoke" / "MANIFEST.json").read_text())


@pytest.fixture(scope="module")
def versions(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """``old``: a lab with version 1 published and version 2 in its source; ``new``: version 2 published."""
    old = tmp_path_factory.mktemp("old")
    write_notebook(old / "notebooks", "01_tiny", GOOD, level=1.0)
    assert run_in(old).returncode == 0
    write_notebook(old / "notebooks", "01_tiny", GOOD, level=2.0)
    new = tmp_path_factory.mktemp("new")
    shutil.copytree(old, new, dirs_exist_ok=True)
    proc = run_in(new)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert published(new) != published(old)
    assert manifest(new)["01_tiny/x.png"]["parameters"] == manifest(old)["01_tiny/x.png"]["parameters"]
    return {"old": old, "new": new}


@pytest.mark.parametrize("point", runner.KILL_POINTS)
def test_sigkill_during_publish_leaves_old_or_new_and_next_run_repairs(point: str, versions: dict[str, Path],
                                                                        tmp_path: Path) -> None:
    lab = tmp_path / "lab"
    shutil.copytree(versions["old"], lab)
    old, new = published(versions["old"]), published(versions["new"])
    proc = run_in(lab, kill_at=point)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]

    now = published(lab)
    figures = {k: v for k, v in now.items() if k.startswith("figures/")}
    notebook = {k: v for k, v in now.items() if k.startswith("executed/")}
    old_figures = {k: v for k, v in old.items() if k.startswith("figures/")}
    new_figures = {k: v for k, v in new.items() if k.startswith("figures/")}
    old_nb = {k: v for k, v in old.items() if k.startswith("executed/")}
    new_nb = {k: v for k, v in new.items() if k.startswith("executed/")}
    if point in ("staged", "committed"):  # before the swap: the old version, byte for byte
        assert now == old
    elif point == "figures_swapped":
        # the one window between two renames: new figures (complete), old executed notebook (complete);
        # the journal written before the swap names it and the next run completes it
        assert figures == new_figures and notebook == old_nb
    else:  # both swapped: the new version, byte for byte
        assert now == new
    assert figures in (old_figures, new_figures) and notebook in (old_nb, new_nb)  # never torn, never missing
    assert leftovers(lab / "figures", lab / "executed")  # the kill left something to repair

    # the next run repairs: here recovery alone (what every run does first) ...
    messages: list[str] = []
    repaired = runner.recover(lab / "figures", "smoke", lab / "executed", log=messages.append)
    assert messages and all(line.startswith("recovery: ") for line in messages)
    if point == "staged":  # never committed: the staging is removed, the old version stays
        assert published(lab) == old
        assert any(".01_tiny.stage-" in line and "never published" in line for line in repaired)
    else:  # committed: the publish is completed from its journal
        assert published(lab) == new
        assert any(".01_tiny.publish.json" in line and "completed" in line for line in repaired)
        assert manifest(lab)["01_tiny/x.png"]["parameters"] == manifest(versions["new"])["01_tiny/x.png"]["parameters"]
    assert leftovers(lab / "figures", lab / "executed") == []


def test_next_run_repairs_before_running(versions: dict[str, Path], tmp_path: Path) -> None:
    lab = tmp_path / "lab"
    shutil.copytree(versions["old"], lab)
    assert run_in(lab, kill_at="figures_swapped").returncode == -signal.SIGKILL
    proc = run_in(lab)  # a plain next run
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "recovery: completed the interrupted publish of 01_tiny" in proc.stderr
    assert published(lab) == published(versions["new"])
    assert leftovers(lab / "figures", lab / "executed") == []


def test_old_backup_folder_is_restored_when_the_published_one_is_missing(tmp_path: Path) -> None:
    root = tmp_path / "figures"
    (root / ".01_x.old").mkdir(parents=True)  # what the previous runner left when killed between its renames
    (root / ".01_x.old" / "a.png").write_bytes(b"old figure")
    (root / ".01_x.stage-abc").mkdir()
    messages: list[str] = []
    runner.recover(root, "default", tmp_path / "nb", log=messages.append)
    assert (root / "01_x" / "a.png").read_bytes() == b"old figure"
    assert not (root / ".01_x.old").exists() and not (root / ".01_x.stage-abc").exists()
    assert any("restored it from the backup folder" in m and ".01_x.old" in m for m in messages)
    assert any(".01_x.stage-abc" in m for m in messages)


def _committed_publish(root: Path, stem: str = "01_x") -> dict:
    """A published old version and a staged new one with its journal (the state at the commit point)."""
    (root / stem).mkdir(parents=True)
    (root / stem / "a.png").write_bytes(b"old")
    staged = root / f".{stem}.stage-tok" / "figures"
    staged.mkdir(parents=True)
    (staged / "a.png").write_bytes(b"new")
    st = staged.stat()
    journal = {"format": 1, "notebook": stem, "profile": "default", "work": f".{stem}.stage-tok",
               "inode": [st.st_dev, st.st_ino], "executed": None, "staged_executed": None,
               "entries": {f"{stem}/a.png": {"notebook": stem}}}
    (root / f".{stem}.publish.json").write_text(json.dumps(journal))
    return journal


def test_publish_without_rename_exchange_uses_a_recoverable_backup(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(runner, "exchange_paths", lambda a, b: False)  # a filesystem without RENAME_EXCHANGE
    root = tmp_path / "figures"
    runner._complete(root, _committed_publish(root))
    assert (root / "01_x" / "a.png").read_bytes() == b"new"
    assert json.loads((root / "MANIFEST.json").read_text()) == {"01_x/a.png": {"notebook": "01_x"}}
    assert sorted(p.name for p in root.iterdir() if p.name != ".MANIFEST.json.lock") == ["01_x", "MANIFEST.json"]

    # killed between the two renames of the fallback: folder moved to the backup, new one not yet in place
    root2 = tmp_path / "figures2"
    journal = _committed_publish(root2)
    (root2 / "01_x").rename(root2 / ".01_x.old-tok")
    messages: list[str] = []
    runner.recover(root2, "default", None, log=messages.append)
    assert (root2 / "01_x" / "a.png").read_bytes() == b"new"
    assert not (root2 / ".01_x.old-tok").exists() and not (root2 / ".01_x.publish.json").exists()
    assert any("completed the interrupted publish" in m for m in messages), messages
    assert journal["notebook"] == "01_x"


def test_corrupt_journal_is_reported_and_moved_aside(tmp_path: Path) -> None:
    root = tmp_path / "figures"
    _committed_publish(root)
    (root / ".01_x.publish.json").write_text("{not json")
    messages: list[str] = []
    runner.recover(root, "default", None, log=messages.append)
    assert (root / "01_x" / "a.png").read_bytes() == b"old"  # nothing half-applied
    assert (root / ".01_x.publish.json.corrupt").exists()
    assert any("corrupt publish journal" in m and ".01_x.publish.json" in m for m in messages)
    assert any(".01_x.stage-tok" in m for m in messages)
