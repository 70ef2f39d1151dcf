"""The figure runner on tiny throw-away notebooks: publishing per profile, manifest, failure safety,
reproducible executed notebooks, corrupt manifests, concurrent runs, CLI exit codes, plain papermill."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from vsmlab import cli
from vsmlab.lab import runner
from vsmlab.lab.notebook_clean import stable_cell_ids
from vsmlab.lab.plotting import ManifestCorrupt

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
from vsmlab.lab.notebook import start

cfg, saver = start(STEM, profile, seed, figures_dir, {"smoke": {}, "default": {}, "full": {}})
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

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def write_notebook(folder: Path, stem: str, text: str, level: float = 1.0) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{stem}.py").write_text(text.replace("STEM", repr(stem)).replace("LEVEL", repr(level)))


def snapshot(*folders: Path) -> dict[str, bytes]:
    """Every published (non-hidden) file under ``folders``, by path relative to its folder."""
    out = {}
    for folder in folders:
        for p in sorted(folder.rglob("*")):
            rel = p.relative_to(folder)
            if p.is_file() and not any(part.startswith(".") for part in rel.parts):
                out[f"{folder.name}/{rel}"] = p.read_bytes()
    return out


def leftovers(*folders: Path) -> list[str]:
    """Hidden entries other than the (harmless, empty) lock files: staging, journals, backups, temp files."""
    return sorted(str(p) for f in folders if f.exists() for p in f.rglob(".*") if not p.name.endswith(".lock"))


@pytest.fixture
def lab(tmp_path: Path) -> dict[str, Path]:
    paths = {"notebooks": tmp_path / "notebooks", "figures": tmp_path / "figures", "executed": tmp_path / "executed"}
    write_notebook(paths["notebooks"], "01_tiny", GOOD)
    return paths


def run(lab: dict[str, Path], stem: str = "01_tiny", **kwargs) -> runner.NotebookResult:
    kwargs.setdefault("executed_dir", lab["executed"])
    return runner.run_notebook(stem, kwargs.pop("profile", "smoke"), out_dir=lab["figures"],
                               notebooks_dir=lab["notebooks"], progress=False, **kwargs)


def test_publish_then_failed_run_leaves_everything_untouched(lab: dict[str, Path]) -> None:
    result = run(lab, seed=5)
    root = lab["figures"] / "smoke"  # a smoke run publishes under figures/smoke/
    figure = root / "01_tiny" / "x.png"
    assert result.figures == root / "01_tiny"
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not (root / "01_tiny" / "manifest.json").exists()  # merged into MANIFEST.json
    assert not (lab["figures"] / "01_tiny").exists() and not (lab["figures"] / "MANIFEST.json").exists()

    manifest = json.loads((root / "MANIFEST.json").read_text())
    assert list(manifest) == ["01_tiny/x.png"]
    entry = manifest["01_tiny/x.png"]
    for key in ("notebook", "profile", "parameters", "seed", "runtime_s", "notebook_runtime_s", "versions", "device"):
        assert key in entry, key
    assert entry["notebook"] == "01_tiny" and entry["profile"] == "smoke" and entry["seed"] == 5
    assert entry["parameters"] == {"profile": "smoke", "seed": 5}
    assert {"python", "torch", "vsmlab", "matplotlib"} <= set(entry["versions"])
    assert entry["device"].startswith("cpu (")  # what the notebook used, not whether CUDA exists

    executed = result.executed
    assert executed == lab["executed"] / "01_tiny.ipynb"
    nb = nbformat.read(executed, as_version=4)
    assert "papermill" not in nb.metadata
    assert nb.metadata["vsmlab"] == {"profile": "smoke"}
    for cell in nb.cells:
        assert not {"papermill", "execution"} & set(cell.metadata), cell.metadata
    outputs = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "saved smoke 5" in outputs
    assert "figures -> " in outputs and ".stage-" not in outputs
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
    assert not (root / "01_tiny" / "partial.png").exists()
    assert leftovers(lab["figures"], lab["executed"]) == []  # no staging, journal or staged notebook left


def test_each_profile_publishes_to_its_own_place(lab: dict[str, Path]) -> None:
    default = run(lab, profile="default", executed_dir=None)
    assert default.figures == lab["figures"] / "01_tiny"
    assert default.executed == lab["figures"] / "notebooks" / "01_tiny.ipynb"
    published = snapshot(lab["figures"])
    write_notebook(lab["notebooks"], "01_tiny", GOOD, level=3.0)  # a different figure
    smoke = run(lab, executed_dir=None)
    # a non-default run keeps its executed notebook inside its own figure folder
    assert smoke.figures == lab["figures"] / "smoke" / "01_tiny"
    assert smoke.executed == smoke.figures / "01_tiny.ipynb"
    after = snapshot(lab["figures"])
    assert {k: v for k, v in after.items() if not k.startswith("figures/smoke/")} == published
    assert after["figures/smoke/01_tiny/x.png"] != after["figures/01_tiny/x.png"]
    assert json.loads((lab["figures"] / "smoke" / "MANIFEST.json").read_text())["01_tiny/x.png"]["profile"] == "smoke"
    assert json.loads((lab["figures"] / "MANIFEST.json").read_text())["01_tiny/x.png"]["profile"] == "default"


def test_rerun_gives_identical_executed_notebook(lab: dict[str, Path]) -> None:
    first = run(lab)
    text, figure = first.executed.read_bytes(), (first.figures / "x.png").read_bytes()
    nb = nbformat.reads(text.decode(), as_version=4)
    ids = [c["id"] for c in nb.cells]
    assert len(set(ids)) == len(ids)
    second = run(lab)
    assert second.executed.read_bytes() == text  # stable cell ids, no staging path, no run-specific string
    assert (second.figures / "x.png").read_bytes() == figure
    for banned in (".stage-", "tmp", "figures_dir = \"/"):
        assert banned not in text.decode().replace(str(lab["figures"]), "<figures>"), banned


def test_stable_cell_ids_follow_the_source() -> None:
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("a = 1"), nbformat.v4.new_code_cell("a = 1"),
                                         nbformat.v4.new_markdown_cell("a = 1")])
    stable_cell_ids(nb)
    ids = [c["id"] for c in nb.cells]
    assert ids[1] == ids[0] + "-2" and ids[2] != ids[0]  # repeats numbered, cell type part of the id
    nb.cells.insert(0, nbformat.v4.new_code_cell("b = 2"))
    stable_cell_ids(nb)
    assert [c["id"] for c in nb.cells][1:] == ids  # inserting a cell does not renumber the others


def test_corrupt_manifest_is_reported_before_anything_is_swapped(lab: dict[str, Path], capsys) -> None:
    run(lab)
    manifest = lab["figures"] / "smoke" / "MANIFEST.json"
    manifest.write_text('{"01_tiny/x.png": {"notebook": ')  # truncated
    before = snapshot(lab["figures"], lab["executed"])
    write_notebook(lab["notebooks"], "01_tiny", GOOD, level=2.0)
    with pytest.raises(ManifestCorrupt) as info:
        run(lab)
    assert not isinstance(info.value, ValueError)  # reported as a corrupt file, not as a bad argument
    assert str(manifest) in str(info.value) and "corrupt manifest" in str(info.value)
    assert snapshot(lab["figures"], lab["executed"]) == before
    code = cli.main(["figures", "--profile", "smoke", "--out", str(lab["figures"]), "--notebooks", str(lab["notebooks"]),
                     "--quiet"])
    assert code == 1
    assert f"corrupt manifest {manifest}" in capsys.readouterr().err
    assert snapshot(lab["figures"], lab["executed"]) == before


def test_concurrent_runs_of_two_notebooks_keep_both_manifest_entries(lab: dict[str, Path]) -> None:
    write_notebook(lab["notebooks"], "02_tiny", GOOD, level=2.0)
    # widen the manifest's read-modify-write window: without the lock one entry would be lost
    env = {**ENV, "VSMLAB_TEST_MANIFEST_DELAY": "4"}
    base = [sys.executable, "-m", "vsmlab", "figures", "--profile", "smoke", "--quiet", "--out", str(lab["figures"]),
            "--notebooks", str(lab["notebooks"]), "--only"]
    procs = [subprocess.Popen(base + [n], env=env, stderr=subprocess.PIPE, text=True) for n in ("01", "02")]
    errs = [p.communicate(timeout=240)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], errs
    manifest = json.loads((lab["figures"] / "smoke" / "MANIFEST.json").read_text())
    assert sorted(manifest) == ["01_tiny/x.png", "02_tiny/x.png"]


def test_cli_exit_codes(lab: dict[str, Path], capsys: pytest.CaptureFixture) -> None:
    out = lab["figures"]
    where = ["--out", str(out), "--notebooks", str(lab["notebooks"])]
    assert cli.main(["figures", "--profile", "huge", *where]) == 2
    assert "--profile" in capsys.readouterr().err
    assert cli.main(["figures", "--profile", "smoke", "--only", "99_nope", *where]) == 2
    assert "only: unknown notebook '99_nope'" in capsys.readouterr().err
    assert not out.exists()
    assert cli.main(["figures", "--list", "--notebooks", str(lab["notebooks"])]) == 0
    assert capsys.readouterr().out.split() == ["01_tiny"]

    write_notebook(lab["notebooks"], "02_broken", BAD)
    code = cli.main(["figures", "--profile", "smoke", "--only", "02", *where, "--quiet"])
    err = capsys.readouterr().err
    assert code == 1
    assert "FAILED" in err and "'02_broken'" in err and "cell 3 " in err and "boom in the third cell" in err
    assert not (out / "smoke" / "02_broken").exists() and not (out / "smoke" / "MANIFEST.json").exists()
    assert leftovers(out) == []


def test_a_second_run_of_the_same_notebook_is_refused_while_one_runs(lab: dict[str, Path]) -> None:
    from vsmlab.core.io import file_lock

    root = lab["figures"] / "smoke"
    with file_lock(root / ".01_tiny.lock"):
        with pytest.raises(runner.RunInProgress, match="01_tiny"):
            run(lab)


def test_plain_papermill_publishes_to_the_profile_place(tmp_path: Path) -> None:
    """`VSMLAB_PUBLISH=1 papermill notebooks/NN.ipynb out.ipynb -p profile smoke` from a checkout: figures/smoke/NN/,
    never figures/NN/ (without VSMLAB_PUBLISH a run outside the runner writes to figures/local/: tests/test_notebook_safety.py)."""
    import jupytext

    project = tmp_path / "project"
    write_notebook(project / "notebooks", "04_tiny", GOOD)
    nb = jupytext.read(project / "notebooks" / "04_tiny.py")
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, project / "notebooks" / "04_tiny.ipynb")
    default = project / "figures" / "04_tiny"
    default.mkdir(parents=True)
    (default / "x.png").write_bytes(b"the published default figure")
    (project / "figures" / "MANIFEST.json").write_text('{"04_tiny/x.png": {"profile": "default"}}\n')
    before = snapshot(project / "figures")

    env = {k: v for k, v in ENV.items() if k not in ("VSMLAB_FIGURES_ROOT", runner.STAGING_ENV, runner.TARGET_ENV)}
    env["VSMLAB_PUBLISH"] = "1"
    proc = subprocess.run([sys.executable, "-m", "papermill", "notebooks/04_tiny.ipynb", str(tmp_path / "out.ipynb"),
                           "-p", "profile", "smoke", "--no-progress-bar"], cwd=project, env=env,
                          capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-2000:]
    after = snapshot(project / "figures")
    assert {k: v for k, v in after.items() if not k.startswith("figures/smoke/")} == before  # default untouched
    smoke = project / "figures" / "smoke"
    assert (smoke / "04_tiny" / "x.png").read_bytes()[:4] == b"\x89PNG"
    assert not (smoke / "04_tiny" / "manifest.json").exists() and not (default / "manifest.json").exists()
    entry = json.loads((smoke / "MANIFEST.json").read_text())["04_tiny/x.png"]
    assert entry["profile"] == "smoke" and entry["device"].startswith("cpu")
    text = (tmp_path / "out.ipynb").read_text()
    assert f"figures -> {smoke / '04_tiny'} (profile smoke" in text  # says where it wrote


def test_figures_destination_by_profile(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from vsmlab.lab.notebook import figures_destination

    for var in ("VSMLAB_FIGURES_ROOT", runner.STAGING_ENV, runner.TARGET_ENV):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("VSMLAB_PUBLISH", "1")  # publishing asked for (runs by hand: tests/test_notebook_safety.py)
    monkeypatch.chdir(runner.ROOT / "notebooks")  # the kernel starts in notebooks/
    folder, manifest, _ = figures_destination("04_jacobian_estimators", "smoke")
    assert folder == runner.ROOT / "figures" / "smoke" / "04_jacobian_estimators"
    assert manifest == runner.ROOT / "figures" / "smoke" / "MANIFEST.json"
    folder, manifest, _ = figures_destination("04_jacobian_estimators", "default")
    assert folder == runner.ROOT / "figures" / "04_jacobian_estimators"
    assert manifest == runner.ROOT / "figures" / "MANIFEST.json"
    folder, manifest, _ = figures_destination("04_jacobian_estimators", "full", tmp_path / "mine")
    assert folder == tmp_path / "mine" and manifest is None  # an explicit folder: figures/ untouched
    monkeypatch.setenv("VSMLAB_FIGURES_ROOT", str(tmp_path / "f"))
    assert figures_destination("04_x", "full")[0] == tmp_path / "f" / "full" / "04_x"
    monkeypatch.setenv(runner.STAGING_ENV, str(tmp_path / "stage"))
    assert figures_destination("04_x", "full") [:2] == (tmp_path / "stage", None)
    with pytest.raises(ValueError, match="profile"):
        runner.profile_root(tmp_path, "huge")


def test_manifest_device_is_the_device_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch

    from vsmlab.lab.plotting import FigureSaver, device_name

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # a GPU machine ...
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i=0: f"Fake GPU {i}")
    fig = plt.figure(figsize=(1, 1))
    saver = FigureSaver(tmp_path, notebook="01_x", profile="smoke", seed=0)
    saver.save(fig, "a")  # ... where the notebook ran on the CPU
    saver.device = "cuda:1"
    saver.save(fig, "b")
    plt.close(fig)
    entries = json.loads((tmp_path / "manifest.json").read_text())
    assert entries["01_x/a.png"]["device"].startswith("cpu (")
    assert entries["01_x/b.png"]["device"] == "cuda:1 (Fake GPU 1)"
    assert device_name(torch.device("cuda")) == "cuda:0 (Fake GPU 0)"
    with pytest.raises(ValueError, match="device"):
        device_name("gpu0")
