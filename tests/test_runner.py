"""The figure runner on tiny throw-away notebooks: publishing, manifest, failure safety, CLI exit codes."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import nbformat
import pytest

from vsmlab import cli
from vsmlab.lab import runner

pytestmark = pytest.mark.notebook

PARAMETERS = '''# %% tags=["parameters"]
profile = "default"
seed = 0
figures_dir = ""
'''

GOOD = PARAMETERS + '''
# %%
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
from vsmlab.lab.plotting import FigureSaver

saver = FigureSaver(figures_dir, notebook=STEM, profile=profile, seed=seed, parameters={"profile": profile, "seed": seed})
fig, ax = plt.subplots(figsize=(2, 2))
ax.plot([0, 1], [0, LEVEL])
saver.save(fig, "x")
print("saved", profile, seed)
'''

BAD = GOOD.replace('saver.save(fig, "x")', 'saver.save(fig, "x")\nsaver.save(fig, "partial")') + '''
# %%
# this cell fails on purpose
raise RuntimeError("boom in the third cell")
'''


def write_notebook(folder: Path, stem: str, text: str, level: float = 1.0) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{stem}.py").write_text(text.replace("STEM", repr(stem)).replace("LEVEL", repr(level)))


def snapshot(*folders: Path) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for folder in folders for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def lab(tmp_path: Path) -> dict[str, Path]:
    paths = {"notebooks": tmp_path / "notebooks", "figures": tmp_path / "figures", "executed": tmp_path / "executed"}
    write_notebook(paths["notebooks"], "01_tiny", GOOD)
    return paths


def run(lab: dict[str, Path], stem: str = "01_tiny", **kwargs) -> runner.NotebookResult:
    return runner.run_notebook(stem, kwargs.pop("profile", "smoke"), out_dir=lab["figures"], executed_dir=lab["executed"],
                               notebooks_dir=lab["notebooks"], progress=False, **kwargs)


def test_publish_then_failed_run_leaves_everything_untouched(lab: dict[str, Path]) -> None:
    result = run(lab, seed=5)
    figure = lab["figures"] / "01_tiny" / "x.png"
    assert result.figures == lab["figures"] / "01_tiny"
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not (lab["figures"] / "01_tiny" / "manifest.json").exists()  # merged into MANIFEST.json

    manifest = json.loads((lab["figures"] / "MANIFEST.json").read_text())
    assert list(manifest) == ["01_tiny/x.png"]
    entry = manifest["01_tiny/x.png"]
    for key in ("notebook", "profile", "parameters", "seed", "runtime_s", "notebook_runtime_s", "versions", "device"):
        assert key in entry, key
    assert entry["notebook"] == "01_tiny" and entry["profile"] == "smoke" and entry["seed"] == 5
    assert entry["parameters"] == {"profile": "smoke", "seed": 5}
    assert {"python", "torch", "vsmlab", "matplotlib"} <= set(entry["versions"])
    assert entry["device"].startswith(("cpu", "cuda"))

    executed = result.executed
    assert executed == lab["executed"] / "01_tiny.ipynb"
    nb = nbformat.read(executed, as_version=4)
    assert "papermill" not in nb.metadata
    assert nb.metadata["vsmlab"] == {"profile": "smoke"}
    for cell in nb.cells:
        assert not {"papermill", "execution"} & set(cell.metadata), cell.metadata
    outputs = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "saved smoke 5" in outputs
    assert any("injected-parameters" in c.metadata.get("tags", []) for c in nb.cells)

    # the same notebook now writes a new figure and then fails: nothing published may change
    before = snapshot(lab["figures"], lab["executed"])
    write_notebook(lab["notebooks"], "01_tiny", BAD, level=-1.0)
    with pytest.raises(runner.NotebookFailed) as info:
        run(lab)
    err = info.value
    assert err.notebook == "01_tiny"
    assert err.cell == 3  # the third cell of the source (papermill's injected and banner cells not counted)
    message = str(err)
    assert "'01_tiny'" in message and "cell 3 " in message
    assert "RuntimeError: boom in the third cell" in message
    assert "this cell fails on purpose" in message  # the failing cell's source is quoted
    assert snapshot(lab["figures"], lab["executed"]) == before
    assert not (lab["figures"] / "01_tiny" / "partial.png").exists()
    assert sorted(p.name for p in lab["figures"].iterdir()) == ["01_tiny", "MANIFEST.json"]  # no staging left


def test_cli_exit_codes(lab: dict[str, Path], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    # point the CLI's notebook discovery at the temporary folder
    monkeypatch.setattr(runner, "list_notebooks", functools.partial(runner.list_notebooks, lab["notebooks"]))
    monkeypatch.setattr(runner, "run_notebook", functools.partial(runner.run_notebook, notebooks_dir=lab["notebooks"]))
    out = lab["figures"]

    assert cli.main(["figures", "--profile", "huge", "--out", str(out)]) == 2
    assert "--profile" in capsys.readouterr().err
    assert cli.main(["figures", "--profile", "smoke", "--only", "99_nope", "--out", str(out)]) == 2
    assert "only: unknown notebook '99_nope'" in capsys.readouterr().err
    assert not out.exists()
    assert cli.main(["figures", "--list"]) == 0
    assert capsys.readouterr().out.split() == ["01_tiny"]

    write_notebook(lab["notebooks"], "02_broken", BAD)
    code = cli.main(["figures", "--profile", "smoke", "--only", "02", "--out", str(out), "--quiet"])
    err = capsys.readouterr().err
    assert code == 1
    assert "FAILED" in err and "'02_broken'" in err and "cell 3 " in err and "boom in the third cell" in err
    assert not (out / "02_broken").exists() and not (out / "MANIFEST.json").exists()
