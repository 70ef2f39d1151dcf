"""The command line never loses a file and never answers confidently on input it cannot read.

- a table of bad inputs across ``vsmlab data | validate | train | sample | figures``: each gets exit code 2
  and one line naming the flag (as typed) or the file and what is allowed; nothing is written;
- data-loss cases: a refused run leaves the user's files byte-identical (``--force`` included);
- atomic Cards / chess writers: SIGKILL mid-write leaves no partial ``--out``; the next run removes the
  stale temporary folder; stale temporary files of other writers are removed, live ones kept;
- the top-level handler: one line per error, tracebacks only under ``--debug`` / ``VSMLAB_DEBUG=1``.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from vsmlab.cli import main
from vsmlab.core.io import parse_temp_name, stale_temps, temp_path
from vsmlab.core.outputs import OutputKind, OutputRefused, is_owned, owned_folder, prepare_output, staged_folder

ROOT = Path(__file__).resolve().parents[1]
MIXTURE = ROOT / "configs" / "mixture-smoke.toml"
SHAPES = ROOT / "configs" / "shapes-smoke.toml"
HUGE = str(2**64 + 1)


def snapshot(folder: Path) -> dict[str, str]:
    """{relative path: md5} of every file under ``folder`` (hidden ones included)."""
    return {p.relative_to(folder).as_posix(): hashlib.md5(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def run(capsys, *argv) -> tuple[int, str]:
    code = main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, err


# ------------------------------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def mixture_run(tmp_path_factory) -> Path:
    """A 3-step mixture run (a real checkpoint for `sample`)."""
    out = tmp_path_factory.mktemp("mix") / "run"
    assert main(["train", str(MIXTURE), "--out", str(out), "--steps", "3", "--device", "cpu", "--quiet"]) == 0
    return out


@pytest.fixture(scope="module")
def cards64(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("cards") / "cards"
    assert main(["data", "cards", "--n", "6", "--size", "64", "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def chess128(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("chess") / "chess"
    assert main(["data", "chess", "--n", "4", "--size", "128", "--out", str(out)]) == 0
    return out


@pytest.fixture
def inputs(tmp_path, mixture_run, cards64, chess128) -> dict[str, Path]:
    """Bad and good inputs in ``tmp_path``, by name."""
    import shutil

    p: dict[str, Path] = {"run": mixture_run, "ckpt": mixture_run / "latest.pt", "cards": cards64, "chess": chess128}
    (tmp_path / "existing.txt").write_text("precious\n")
    (tmp_path / "existing").write_text("precious\n")
    (tmp_path / "user" / "results").mkdir(parents=True)
    (tmp_path / "user" / "note.txt").write_text("mine\n")
    (tmp_path / "user" / "results" / "paper.tex").write_text("\\section{x}\n")
    (tmp_path / "empty_dir").mkdir()
    (tmp_path / "d.npz").mkdir()
    (tmp_path / "empty.toml").write_text("")
    (tmp_path / "loose.toml").write_text("steps = 5\n")
    np.savez(tmp_path / "empty.npz", images=np.zeros((0, 64, 64), np.uint8))
    np.savez(tmp_path / "obj.npz", images=np.array([None, 1], dtype=object))
    np.savez(tmp_path / "float.npz", images=np.zeros((2, 64, 64), np.float32))
    np.save(tmp_path / "single.npy", np.zeros((2, 64, 64), np.uint8))
    (tmp_path / "text.npz").write_text("hello\n")
    assert main(["data", "shapes", "--n", "40", "--out", str(tmp_path / "shapes.npz")]) == 0
    data = (tmp_path / "shapes.npz").read_bytes()
    (tmp_path / "trunc.npz").write_bytes(data[: len(data) // 2])
    assert main(["data", "shapes", "--n", "3", "--size", "32", "--out", str(tmp_path / "shapes32")]) == 0
    (tmp_path / "precious.npz").write_bytes(b"precious")
    (tmp_path / "fake.safetensors").write_text("hello\n")
    torch.save({"x": Path("somewhere")}, tmp_path / "pickled.pt")  # a zip holding a Python object
    # 40 templates of the wrong size; a 16-bit copy of a valid Cards folder and of a chess folder
    shutil.copytree(cards64, tmp_path / "wrong_tpl")
    for f in (tmp_path / "wrong_tpl" / "templates").glob("*.png"):
        Image.open(f).resize((20, 20)).save(f)
    shutil.copytree(cards64, tmp_path / "cards16")
    for f in (tmp_path / "cards16" / "card_imgs").glob("*.png"):
        Image.fromarray(np.asarray(Image.open(f)).astype(np.uint16) * 257).save(f)
    shutil.copytree(chess128, tmp_path / "chess16")
    for f in (tmp_path / "chess16" / "train_images").glob("*.png"):
        Image.fromarray(np.asarray(Image.open(f).convert("L")).astype(np.uint16) * 257).save(f)
    # an interrupted Cards write of an older version: images and templates, no labels
    shutil.copytree(cards64, tmp_path / "cards_partial")
    (tmp_path / "cards_partial" / "train_cards.json").unlink()
    # stale images beside the labels of a smaller rerun
    shutil.copytree(cards64, tmp_path / "cards_stale")
    shutil.copy(cards64 / "card_imgs" / "train_000000.png", tmp_path / "cards_stale" / "card_imgs" / "train_000099.png")
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "notebooks" / "01_real.py").write_text("# %%\nx = 1\n")
    for name in ("existing.txt", "existing", "user", "empty_dir", "d.npz", "empty.toml", "loose.toml", "empty.npz", "obj.npz",
                 "float.npz", "single.npy", "text.npz", "shapes.npz", "trunc.npz", "shapes32", "precious.npz",
                 "fake.safetensors", "pickled.pt", "wrong_tpl", "cards16", "chess16", "cards_partial", "cards_stale", "notebooks"):
        p[name] = tmp_path / name
    p["new"] = tmp_path / "new"
    return p


# ------------------------------------------------------------------------------------- the bad-input table
# (id, argv with {name} placeholders for `inputs`, expected message fragment, exit code)
CASES = [
    # data
    ("shapes-n-huge", ["data", "shapes", "--n", "99999999999999", "--out", "{new}.npz"], "--n: 99999999999999 images", 2),
    ("shapes-n-zero", ["data", "shapes", "--n", "0", "--out", "{new}.npz"], "--n: expected an int >= 1", 2),
    ("shapes-seed-overflow", ["data", "shapes", "--n", "3", "--seed", HUGE, "--out", "{new}.npz"],
     "--seed: expected an int in 0..9223372036854775807", 2),
    ("shapes-seed-negative", ["data", "shapes", "--n", "3", "--seed", "-1", "--out", "{new}.npz"], "--seed: expected", 2),
    ("shapes-out-png-name", ["data", "shapes", "--n", "3", "--out", "{new}.png"], "looks like a file name", 2),
    ("shapes-out-empty", ["data", "shapes", "--n", "3", "--out", ""], "--out: expected a path, got ''", 2),
    ("shapes-out-cwd", ["data", "shapes", "--n", "3", "--out", ".", "--force"], "is the working folder", 2),
    ("shapes-out-parent", ["data", "shapes", "--n", "3", "--out", "..", "--force"], "is the working folder", 2),
    ("shapes-out-user-folder", ["data", "shapes", "--n", "3", "--out", "{user}", "--force"],
     "holds what vsmlab did not write", 2),
    ("shapes-out-existing-npz", ["data", "shapes", "--n", "3", "--out", "{shapes.npz}"], "pass --force", 2),
    ("shapes-out-foreign-npz", ["data", "shapes", "--n", "3", "--out", "{precious.npz}", "--force"],
     "holds what vsmlab did not write", 2),
    ("shapes-out-under-file", ["data", "shapes", "--n", "3", "--out", "{existing}/x.npz"], "is a file of", 2),
    ("chess-out-file", ["data", "chess", "--n", "3", "--out", "{existing}"], "is a file of", 2),
    ("chess-out-txt", ["data", "chess", "--n", "3", "--out", "{existing.txt}"], "looks like a file name", 2),
    ("chess-out-user-folder", ["data", "chess", "--n", "3", "--out", "{user}", "--force"],
     "holds what vsmlab did not write", 2),
    ("chess-split-seed-overflow", ["data", "chess", "--n", "3", "--split-seed", HUGE, "--out", "{new}"], "--split-seed:", 2),
    ("chess-max-plies", ["data", "chess", "--n", "3", "--max-plies", "0", "--out", "{new}"], "--max-plies: expected an int >= 1", 2),
    ("chess-n-huge", ["data", "chess", "--n", "99999999999999", "--out", "{new}"], "--n: 99999999999999 boards", 2),
    ("chess-existing-split", ["data", "chess", "--n", "3", "--size", "128", "--out", "{chess}"], "already exists", 2),
    ("cards-n-over-split", ["data", "cards", "--n", "99999999", "--out", "{new}"], "--n: expected an int in 1..82251", 2),
    ("cards-seed-negative", ["data", "cards", "--n", "3", "--seed", "-1", "--out", "{new}"], "--seed: expected", 2),
    ("cards-existing-split", ["data", "cards", "--n", "3", "--size", "64", "--out", "{cards}"], "already exists", 2),
    ("cards-partial-no-force", ["data", "cards", "--n", "3", "--size", "64", "--out", "{cards_partial}"],
     "but no train_cards.json", 2),
    # validate
    ("vshapes-empty", ["validate", "shapes", "{empty.npz}"], "holds no images", 2),
    ("vshapes-text", ["validate", "shapes", "{text.npz}"], "not an .npz file", 2),
    ("vshapes-npy", ["validate", "shapes", "{single.npy}"], "a single .npy array", 2),
    ("vshapes-object", ["validate", "shapes", "{obj.npz}"], "array of Python objects", 2),
    ("vshapes-float", ["validate", "shapes", "{float.npz}"], "expected uint8", 2),
    ("vshapes-truncated", ["validate", "shapes", "{trunc.npz}"], "truncated or corrupt", 2),
    ("vshapes-iou", ["validate", "shapes", "{shapes.npz}", "--iou-min", "2"], "--iou-min: expected a number in (0, 1]", 2),
    ("vshapes-missing", ["validate", "shapes", "{new}.npz"], "does not exist", 2),
    ("vcards-wrong-templates", ["validate", "cards", "{wrong_tpl}"], "template is 20x20, expected a 32x32 face", 2),
    ("vcards-shapes-pngs", ["validate", "cards", "{shapes32}"], "expected a square Cards grid of 128x128 or 64x64", 2),
    ("vcards-16-bit", ["validate", "cards", "{cards16}"], "mode 'I;16' (16-bit gray); allowed: 8-bit", 2),
    ("vcards-partial", ["validate", "cards", "{cards_partial}"], "an interrupted `vsmlab data cards`", 2),
    ("vcards-stale", ["validate", "cards", "{cards_stale}"], "train_000099.png: no entry in train_cards.json", 2),
    ("vcards-threshold", ["validate", "cards", "{cards}", "--threshold", "0"], "--threshold: expected a number in (0, 1]", 2),
    ("vcards-templates-missing", ["validate", "cards", "{cards}", "--templates", "{new}"], "--templates:", 2),
    ("vchess-16-bit", ["validate", "chess", "{chess16}"], "mode 'I;16' (16-bit gray)", 2),
    ("vchess-max-rmse", ["validate", "chess", "{chess}", "--max-rmse", "5"], "--max-rmse: expected a number in (0, 1]", 2),
    # train
    ("train-empty-config", ["train", "{empty.toml}", "--out", "{new}"], "empty (no [section] tables)", 2),
    ("train-sectionless", ["train", "{loose.toml}", "--out", "{new}"], "outside any [section]", 2),
    ("train-config-folder", ["train", "{empty_dir}", "--out", "{new}"], "CONFIG: ", 2),
    ("train-steps-zero", ["train", str(MIXTURE), "--steps", "0", "--out", "{new}"], "--steps: expected an int >= 1", 2),
    ("train-data-n-huge", ["train", str(SHAPES), "--set", "data.n=100000000000", "--out", "{new}"], "data.n: 100000000000", 2),
    ("train-seed-overflow", ["train", str(MIXTURE), "--set", f"train.seed={HUGE}", "--out", "{new}"], "train.seed", 2),
    ("train-out-file", ["train", str(MIXTURE), "--out", "{existing}"], "is a file of", 2),
    ("train-out-txt", ["train", str(MIXTURE), "--out", "{existing.txt}"], "looks like a file name", 2),
    ("train-out-user-folder", ["train", str(MIXTURE), "--out", "{user}", "--force"], "holds what vsmlab did not write", 2),
    ("train-out-cwd", ["train", str(MIXTURE), "--out", "."], "is the working folder", 2),
    ("train-resume-and-force", ["train", str(MIXTURE), "--out", "{run}", "--resume", "--force"], "choose one", 2),
    ("train-existing-run", ["train", str(MIXTURE), "--out", "{run}"], "already holds a run", 2),
    # sample
    ("sample-text-file", ["sample", "{existing.txt}", "--out", "{new}.npz"], "not a vsmlab checkpoint", 2),
    ("sample-npz-as-ckpt", ["sample", "{shapes.npz}", "--out", "{new}.npz"], "not a vsmlab checkpoint", 2),
    ("sample-pickled", ["sample", "{pickled.pt}", "--out", "{new}.npz"], "not a vsmlab checkpoint", 2),
    ("sample-folder", ["sample", "{run}", "--out", "{new}.npz"], "is a folder", 2),
    ("sample-fake-safetensors", ["sample", "{fake.safetensors}", "--out", "{new}.npz"], "not a vsmlab checkpoint", 2),
    ("sample-empty-file", ["sample", "{empty.toml}", "--out", "{new}.npz"], "not a vsmlab checkpoint (an empty file)", 2),
    ("sample-steps-zero", ["sample", "{ckpt}", "--steps", "0", "--out", "{new}.npz"], "--steps: expected an int in 2..100", 2),
    ("sample-steps-one", ["sample", "{ckpt}", "--steps", "1", "--out", "{new}.npz"], "--steps: expected an int in 2..100", 2),
    ("sample-eta", ["sample", "{ckpt}", "--sampler", "ddim", "--eta", "2", "--out", "{new}.npz"],
     "--eta: expected a number in [0, 1]", 2),
    ("sample-seed-overflow", ["sample", "{ckpt}", "--seed", HUGE, "--out", "{new}.npz"], "--seed: expected an int in 0..", 2),
    ("sample-n-huge", ["sample", "{ckpt}", "--n", "99999999999999", "--out", "{new}.npz"], "--n: 99999999999999 samples", 2),
    ("sample-out-existing", ["sample", "{ckpt}", "--out", "{shapes.npz}"], "already exists", 2),
    ("sample-out-foreign", ["sample", "{ckpt}", "--out", "{precious.npz}", "--force"], "holds what vsmlab did not write", 2),
    ("sample-out-no-suffix", ["sample", "{ckpt}", "--out", "{empty_dir}"], "expected a file name ending in .npz", 2),
    ("sample-out-folder", ["sample", "{ckpt}", "--out", "{d.npz}"], "is an empty folder", 2),
    # figures
    ("figures-empty-notebooks", ["figures", "--notebooks", "{empty_dir}", "--list"], "holds no notebook sources", 2),
    ("figures-out-user-folder", ["figures", "--notebooks", "{notebooks}", "--out", "{user}"], "holds what vsmlab did not write", 2),
    ("figures-out-file", ["figures", "--notebooks", "{notebooks}", "--out", "{existing}"], "is a file of", 2),
    ("figures-seed", ["figures", "--notebooks", "{notebooks}", "--seed", "-1", "--out", "{new}"], "--seed: expected", 2),
    ("figures-only", ["figures", "--notebooks", "{notebooks}", "--only", "zz", "--profile", "smoke", "--out", "{new}"],
     "--only: unknown notebook 'zz'", 2),
]


@pytest.mark.parametrize("argv, fragment, code", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_gets_one_line_naming_it(inputs, tmp_path, capsys, monkeypatch, argv, fragment, code) -> None:
    monkeypatch.chdir(tmp_path)
    before = snapshot(tmp_path)
    args = []
    for a in argv:
        for name, path in inputs.items():
            a = a.replace("{" + name + "}", str(path))
        args.append(a)
    if args[0] in ("train", "sample"):
        args += ["--device", "cpu", "--quiet"]
    got, err = run(capsys, *args)
    assert got == code, err
    assert fragment in err, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("vsmlab ") and ": error: " in lines[0], err
    assert "weights_only" not in err and "arbitrary code" not in err
    assert snapshot(tmp_path) == before  # nothing written, nothing changed
    assert not inputs["new"].exists()


# ---------------------------------------------------------------------------------------------- data loss
def test_force_never_deletes_a_users_folder_or_the_working_folder(tmp_path, capsys, monkeypatch) -> None:
    user = tmp_path / "work"
    (user / "results").mkdir(parents=True)
    (user / "note.txt").write_text("mine")
    (user / "results" / "paper.tex").write_text("tex")
    before = snapshot(tmp_path)
    for verb in (["data", "shapes", "--n", "3"], ["data", "cards", "--n", "3", "--size", "64"],
                 ["data", "chess", "--n", "3", "--size", "128"]):
        assert run(capsys, *verb, "--out", user, "--force")[0] == 2
    monkeypatch.chdir(user)
    for out in (".", "..", str(user), "./"):
        code, err = run(capsys, "data", "shapes", "--n", "3", "--out", out, "--force")
        assert code == 2 and "working folder" in err
    assert snapshot(tmp_path) == before
    # a vsmlab folder with a user's file added is not vsmlab's any more
    monkeypatch.chdir(tmp_path)
    assert run(capsys, "data", "shapes", "--n", "3", "--size", "32", "--out", "set")[0] == 0
    (tmp_path / "set" / "mine.txt").write_text("keep me")
    before = snapshot(tmp_path)
    code, err = run(capsys, "data", "shapes", "--n", "3", "--size", "32", "--out", "set", "--force")
    assert code == 2 and "mine.txt" in err and snapshot(tmp_path) == before


def test_sample_never_replaces_an_existing_file_without_force(mixture_run, tmp_path, capsys) -> None:
    keep = tmp_path / "keep.npz"
    assert run(capsys, "data", "shapes", "--n", "5", "--size", "32", "--out", keep)[0] == 0
    digest = hashlib.md5(keep.read_bytes()).hexdigest()
    code, err = run(capsys, "sample", mixture_run / "latest.pt", "--out", keep, "--device", "cpu", "--quiet")
    assert code == 2 and str(keep) in err and "--force" in err
    assert hashlib.md5(keep.read_bytes()).hexdigest() == digest
    assert run(capsys, "sample", mixture_run / "latest.pt", "--out", keep, "--device", "cpu", "--quiet", "--force")[0] == 0
    assert "samples" in np.load(keep).files
    assert [p.name for p in tmp_path.iterdir()] == ["keep.npz"]  # no temporary left


def test_cards_force_replaces_only_its_split_and_leaves_no_stale_images(tmp_path, capsys) -> None:
    out = tmp_path / "cards"
    assert run(capsys, "data", "cards", "--n", "30", "--size", "64", "--out", out)[0] == 0
    assert run(capsys, "data", "cards", "--n", "4", "--size", "64", "--split", "test", "--out", out)[0] == 0
    test_files = {k: v for k, v in snapshot(out).items() if "test" in k}
    assert run(capsys, "data", "cards", "--n", "10", "--size", "64", "--out", out, "--force")[0] == 0
    assert len(list((out / "card_imgs").glob("train_*.png"))) == 10  # the 20 older images are gone
    assert {k: v for k, v in snapshot(out).items() if "test" in k} == test_files
    assert main(["validate", "cards", str(out), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["n"] == 14 and summary["labels_agree"] == 14 and summary["count"] == 0


def test_cards_validate_counts_after_force(tmp_path, capsys) -> None:
    out = tmp_path / "cards"
    assert run(capsys, "data", "cards", "--n", "12", "--size", "64", "--out", out)[0] == 0
    assert run(capsys, "data", "cards", "--n", "5", "--size", "64", "--out", out, "--force")[0] == 0
    assert main(["validate", "cards", str(out), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["n"] == 5 and summary["labels_checked"] == 5 and summary["count"] == 0


def test_an_interrupted_old_cards_write_is_replaced_with_force(tmp_path, capsys) -> None:
    out = tmp_path / "cards"
    assert run(capsys, "data", "cards", "--n", "8", "--size", "64", "--out", out)[0] == 0
    (out / "train_cards.json").unlink()  # what a killed write of an older version left
    code, err = run(capsys, "data", "cards", "--n", "3", "--size", "64", "--out", out)
    assert code == 2 and "8 train images but no train_cards.json" in err
    assert run(capsys, "data", "cards", "--n", "3", "--size", "64", "--out", out, "--force")[0] == 0
    assert sorted(p.name for p in (out / "card_imgs").iterdir()) == [f"train_{i:06d}.png" for i in range(3)]


def test_chess_adds_a_split_and_force_replaces_one(tmp_path, capsys) -> None:
    out = tmp_path / "chess"
    assert run(capsys, "data", "chess", "--n", "4", "--size", "128", "--out", out)[0] == 0
    assert run(capsys, "data", "chess", "--n", "2", "--size", "128", "--split", "test", "--out", out)[0] == 0
    train = {k: v for k, v in snapshot(out).items() if k.startswith("train")}
    assert run(capsys, "data", "chess", "--n", "3", "--size", "128", "--split", "test", "--out", out, "--force")[0] == 0
    assert len(json.loads((out / "test_fen.json").read_text())) == 3
    assert len(list((out / "test_images").iterdir())) == 3
    assert {k: v for k, v in snapshot(out).items() if k.startswith("train")} == train


def test_train_force_starts_over_only_in_a_run_folder(tmp_path, capsys) -> None:
    out = tmp_path / "run"
    args = ["train", MIXTURE, "--out", out, "--device", "cpu", "--quiet"]
    assert run(capsys, *args, "--steps", "2")[0] == 0
    code, err = run(capsys, *args, "--steps", "2")
    assert code == 2 and "already holds a run" in err and "--force" in err
    code, err = run(capsys, *args, "--steps", "3", "--force")
    assert code == 0 and "started over" in err
    lines = (out / "log.jsonl").read_text().splitlines()
    assert [json.loads(x)["step"] for x in lines][-1] == 3 and sorted(p.name for p in out.iterdir()) == [
        "config.toml", "latest.pt", "log.jsonl", "step_0000003.pt"]
    # a sample set beside the run is vsmlab's; a user's note is not: --resume goes on, --force refuses
    assert run(capsys, "sample", out / "latest.pt", "--n", "2", "--out", out / "samples.npz", "--device", "cpu",
               "--quiet")[0] == 0
    (out / "notes.txt").write_text("keep")
    assert run(capsys, *args, "--steps", "4", "--resume")[0] == 0
    before = snapshot(out)
    code, err = run(capsys, *args, "--steps", "5", "--force")
    assert code == 2 and "notes.txt is not part of a vsmlab run folder" in err and snapshot(out) == before
    (out / "notes.txt").unlink()
    code, err = run(capsys, *args, "--steps", "2", "--force")
    assert code == 0 and not (out / "samples.npz").exists()


def test_figures_accepts_its_own_folder_only(tmp_path, capsys) -> None:
    from vsmlab.cli.figures import _owned_figures

    figs = tmp_path / "figs"
    (figs / "smoke" / "01_tiny").mkdir(parents=True)
    (figs / "01_tiny").mkdir()
    (figs / "MANIFEST.json").write_text("{}")
    (figs / ".01_tiny.lock").write_text("")
    assert is_owned(_owned_figures(figs))
    (figs / "thesis.pdf").write_text("x")
    assert not is_owned(_owned_figures(figs)) and "thesis.pdf" in _owned_figures(figs)


# ------------------------------------------------------------------------------ atomic writers: kill tests
def _kill_mid_write(cmd: list[str], out: Path, images: str, cwd: Path) -> Path:
    """Start ``vsmlab <cmd> --out out``, SIGKILL it once its staging folder holds a few images; returns the
    staging folder left behind."""
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, "-m", "vsmlab", *cmd, "--out", str(out)], cwd=cwd, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    stage = None
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            stages = [p for p in out.parent.iterdir() if parse_temp_name(p.name) and p.name.startswith(f".{out.name}.")]
            if stages and (stages[0] / images).is_dir() and len(os.listdir(stages[0] / images)) >= 20:
                stage = stages[0]
                break
            time.sleep(0.02)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    assert stage is not None, f"no staging folder seen (exit {proc.returncode}): {proc.stderr.read().decode()[-800:]}"
    assert proc.returncode == -signal.SIGKILL
    return stage


@pytest.mark.slow
@pytest.mark.parametrize("cmd, images, index, small", [
    (["data", "cards", "--n", "20000", "--size", "64"], "card_imgs", "train_cards.json",
     ["data", "cards", "--n", "5", "--size", "64"]),
    (["data", "chess", "--n", "1000", "--size", "128"], "train_images", "train_fen.json",
     ["data", "chess", "--n", "5", "--size", "128"]),
], ids=["cards", "chess"])
def test_killed_folder_writer_leaves_no_partial_output_and_the_next_run_cleans_up(tmp_path, capsys, cmd, images, index,
                                                                                 small) -> None:
    out = tmp_path / "set"
    stage = _kill_mid_write(cmd, out, images, tmp_path)
    assert not out.exists()  # nothing partial at --out
    assert stage.is_dir() and len(os.listdir(stage / images)) >= 20 and not (stage / index).exists()
    # validating the staging folder itself is refused, never a confident rate on a partial set
    assert main(["validate", cmd[1], str(stage)]) == 2
    capsys.readouterr()
    res = subprocess.run([sys.executable, "-m", "vsmlab", *small, "--out", str(out)], capture_output=True, text=True,
                         timeout=120, env=dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1"))
    assert res.returncode == 0, res.stderr
    assert f"removed the stale temporary folder {stage}" in res.stderr
    assert not stage.exists() and [p.name for p in tmp_path.iterdir()] == ["set"]
    assert len(json.loads((out / index).read_text())) == 5 and len(os.listdir(out / images)) == 5


def test_stale_temporary_files_are_removed_and_live_ones_kept(mixture_run, tmp_path, capsys) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    old = time.time() - 3600
    stale = tmp_path / f".s.npz.vsmlab-{dead.pid}-0123abcd.tmp"
    legacy = tmp_path / ".s.npz.k2j3h4a_.tmp"  # the mkstemp name of older versions
    live = tmp_path / f".s.npz.vsmlab-{os.getpid()}-89abcdef.tmp"
    other = tmp_path / ".notes.k2j3h4a_.tmp"  # another target's legacy name: not ours to judge
    for p in (stale, legacy, live, other):
        p.write_bytes(b"partial")
        os.utime(p, (old, old))
    assert set(stale_temps(tmp_path, "s.npz")) == {stale, legacy}
    code, err = run(capsys, "sample", mixture_run / "latest.pt", "--out", tmp_path / "s.npz", "--device", "cpu", "--quiet")
    assert code == 0 and "removed the stale temporary file" in err
    assert not stale.exists() and not legacy.exists() and live.exists() and other.exists()
    fresh = temp_path(tmp_path / "x")  # one made after this process started is never stale
    fresh.write_bytes(b"")
    assert fresh not in stale_temps(tmp_path)


# ------------------------------------------------------------------------------------------ output helpers
def test_prepare_output_and_staged_folder(tmp_path, monkeypatch) -> None:
    kind = OutputKind("a test folder", folder=True,
                      owned=lambda p: owned_folder(p, (r"\d+\.txt", r"marker"), (r"marker",), "a test folder"))
    out = tmp_path / "out"
    assert prepare_output(out, kind) == (out, None)
    with staged_folder(out) as stage:
        (stage / "marker").write_text("")
        (stage / "1.txt").write_text("one")
        assert not out.exists()  # nothing published before the block ends
    assert sorted(p.name for p in out.iterdir()) == ["1.txt", "marker"]
    with pytest.raises(OutputRefused, match="pass --force"):
        prepare_output(out, kind)
    assert prepare_output(out, kind, force=True)[1] == "a test folder (2 files)"
    with pytest.raises(RuntimeError):
        with staged_folder(out, keep=lambda rel: rel == "1.txt") as stage:
            assert (stage / "1.txt").read_text() == "one"  # carried over
            raise RuntimeError("boom")
    assert sorted(p.name for p in out.iterdir()) == ["1.txt", "marker"]  # untouched by the failed write
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # and its staging removed
    (out / "other").write_text("")
    with pytest.raises(OutputRefused, match="did not write"):
        prepare_output(out, kind, force=True)
    monkeypatch.chdir(out)
    with pytest.raises(OutputRefused, match="working folder"):
        prepare_output(".", kind, force=True)


# ----------------------------------------------------------------------------------- the top-level handler
def test_unexpected_errors_are_one_line_and_debug_shows_the_traceback(tmp_path, capsys, monkeypatch) -> None:
    from vsmlab.core import io as core_io
    from vsmlab.cli import data as data_cli

    def read_only(path, data):
        raise OSError(errno.EROFS, "Read-only file system", str(path))

    monkeypatch.setattr(core_io, "atomic_write_bytes", read_only)
    code, err = run(capsys, "data", "shapes", "--n", "3", "--out", tmp_path / "x.npz")
    assert code == 2 and err.strip() == f"vsmlab data shapes: error: --out: cannot write {str(tmp_path / 'x.npz')!r}: " \
                                        "Read-only file system"

    def boom(args):
        raise RuntimeError("something internal\nsecond line")

    monkeypatch.setattr(data_cli, "run_data_shapes", boom)
    code, err = run(capsys, "data", "shapes", "--n", "3", "--out", tmp_path / "y.npz")
    assert code == 1 and err.count("\n") == 1 and "internal error RuntimeError: something internal" in err
    assert "VSMLAB_DEBUG=1" in err
    with pytest.raises(RuntimeError):
        main(["--debug", "data", "shapes", "--n", "3", "--out", str(tmp_path / "y.npz")])
    monkeypatch.setenv("VSMLAB_DEBUG", "1")
    with pytest.raises(RuntimeError):
        main(["data", "shapes", "--n", "3", "--out", str(tmp_path / "y.npz")])

    def no_space(args):
        raise OSError(errno.ENOSPC, "No space left on device", "/data/x.npz")

    monkeypatch.delenv("VSMLAB_DEBUG")
    monkeypatch.setattr(data_cli, "run_data_shapes", no_space)
    code, err = run(capsys, "data", "shapes", "--n", "3", "--out", tmp_path / "z.npz")
    assert code == 2 and err.strip() == "vsmlab data shapes: error: /data/x.npz: No space left on device"

    def allocation(args):
        raise RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 10 GB")

    monkeypatch.setattr(data_cli, "run_data_shapes", allocation)
    code, err = run(capsys, "data", "shapes", "--n", "3", "--out", tmp_path / "z.npz")
    assert code == 2 and "error: not enough memory (DefaultCPUAllocator" in err and err.count("\n") == 1


def test_no_traceback_in_a_real_process(tmp_path) -> None:
    res = subprocess.run([sys.executable, "-m", "vsmlab", "data", "shapes", "--n", "99999999999999", "--out",
                          str(tmp_path / "x.npz")], capture_output=True, text=True, timeout=120,
                         env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert res.returncode == 2 and "Traceback" not in res.stderr and res.stderr.count("\n") == 1
    assert res.stderr.startswith("vsmlab data shapes: error: --n: 99999999999999 images")
