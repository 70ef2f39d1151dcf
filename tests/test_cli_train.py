"""``vsmlab train`` / ``vsmlab sample``: configs (validation by name, overrides, printing), refusing to
overwrite a run, exact resume after SIGKILL, sampling outputs, seeds and bad input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import assert_same
import torch

from vsmlab.cli import main
from vsmlab.diffusion import checkpoints as ck
from vsmlab.diffusion.config import ConfigError, load_config, parse_override, validate_config

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ROOT / "configs" / "shapes-smoke.toml"
MIXTURE = ROOT / "configs" / "mixture-smoke.toml"


def train(*argv: str) -> int:
    return main(["train", *map(str, argv), "--device", "cpu", "--quiet"])




# ----------------------------------------------------------------------------------------------- configs
def test_every_shipped_config_is_valid() -> None:
    files = sorted((ROOT / "configs").glob("*.toml"))
    names = {f.name for f in files}
    for stem in ("fixed", "rho0", "vsm"):
        assert {f"shapes-{stem}-cpu.toml", f"shapes-{stem}-gpu.toml"} <= names
    for f in files:
        cfg = load_config(f)
        if f.name.startswith("shapes-") and f.name.endswith("-gpu.toml"):  # cards-/chess-*: tests/test_semantic_study.py
            assert cfg["data"]["size"] == 64 and cfg["model"]["base_channels"] >= 32 and cfg["train"]["amp"] == "bf16"
        if f.name.startswith("shapes-") and f.name.endswith("-cpu.toml"):
            assert cfg["data"]["size"] == 32
    fixed, rho0, vsm = (load_config(ROOT / "configs" / f"shapes-{s}-gpu.toml") for s in ("fixed", "rho0", "vsm"))
    assert (fixed["loss"]["name"], fixed["model"]["learn_variance"]) == ("eps_mse", False)
    assert (rho0["loss"]["name"], rho0["model"]["learn_variance"]) == ("hybrid", True)
    assert (vsm["loss"]["name"], vsm["loss"]["rho"], vsm["loss"]["time_weight"]) == ("vsm", 0.1, True)
    for a, b in ((fixed, rho0), (rho0, vsm)):  # the three differ only in the loss and the variance head
        assert a["train"] == b["train"] and a["data"] == b["data"] and a["diffusion"] == b["diffusion"]


def test_unknown_keys_and_bad_values_are_refused_by_name(tmp_path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[train]\nlrr = 1e-4\n')
    with pytest.raises(ConfigError, match=r"unknown key train\.lrr = 0\.0001; allowed keys in \[train\]: steps, batch_size, lr,"):
        load_config(bad)
    bad.write_text('[trian]\nlr = 1e-4\n')
    with pytest.raises(ConfigError, match=r"unknown section \[trian\]; allowed sections: data, model"):
        load_config(bad)
    for raw, pattern in (({"train": {"lr": -1}}, r"train\.lr = -1 is invalid; expected a number in \(0"),
                         ({"train": {"steps": True}}, r"train\.steps = True is invalid; expected an int >= 1"),
                         ({"train": {"optimizer": "sgd"}}, r"train\.optimizer = 'sgd'.*\['adamw', 'adam'\]"),
                         ({"data": {"size": 48}}, r"data\.size = 48.*\[64, 32\]"),
                         ({"model": {"width": 64}}, r"model\.width applies only when model\.kind is one of \['mlp'\]"),
                         ({"loss": {"name": "vsm"}}, r"needs model\.learn_variance = true"),
                         ({"loss": {"rho": 0.2}}, r"loss\.rho applies only when loss\.name is one of \['vsm'\]"),
                         ({"model": {"attention_resolutions": [12]}}, r"attention_resolutions.*do not fit data\.size = 64")):
        with pytest.raises(ConfigError, match=pattern):
            validate_config(raw)


def test_overrides_and_print_config(tmp_path, capsys) -> None:
    assert parse_override("train.lr=2e-4") == ("train", "lr", 2e-4)
    assert parse_override("loss.name=vsm") == ("loss", "name", "vsm")
    assert parse_override("model.channel_mult=[1, 2]") == ("model", "channel_mult", [1, 2])
    assert parse_override("train.compile=true") == ("train", "compile", True)
    cfg = load_config(SMOKE, ["train.lr=2e-4", "model.dropout=0"])
    assert cfg["train"]["lr"] == 2e-4 and cfg["model"]["dropout"] == 0.0
    with pytest.raises(ConfigError, match=r"--set train\.lrr=1: unknown key train\.lrr; allowed keys in \[train\]"):
        load_config(SMOKE, ["train.lrr=1"])
    with pytest.raises(ConfigError, match="section.key=value"):
        load_config(SMOKE, ["lr=1"])
    assert main(["train", str(SMOKE), "--print-config", "--set", "train.lr=3e-4", "--steps", "99"]) == 0
    text = capsys.readouterr().out
    printed = validate_config(__import__("tomllib").loads(text))  # the printout is itself a valid config
    assert printed["train"]["lr"] == 3e-4 and printed["train"]["steps"] == 99
    full = load_config(SMOKE)
    for section, values in full.items():  # every applicable key, with its default
        for key in values:
            assert f"\n{key} = " in "\n" + text.split(f"[{section}]")[1], (section, key)
    assert "(default 0.9999)" in text
    assert main(["train", str(tmp_path / "nope.toml")]) == 2
    assert "CONFIG: no such file" in capsys.readouterr().err


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_device_cuda_without_cuda_names_the_option(capsys, tmp_path) -> None:
    assert main(["train", str(SMOKE), "--out", str(tmp_path / "r"), "--device", "cuda"]) == 2
    assert "--device: 'cuda' requested but CUDA is not available" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


# --------------------------------------------------------------------------------------- runs and resume
def test_existing_run_is_not_overwritten_and_resume_needs_a_checkpoint(tmp_path, capsys) -> None:
    out = tmp_path / "run"
    assert train(SMOKE, "--out", out, "--resume") == 2
    assert "--resume: no checkpoint" in capsys.readouterr().err
    assert train(SMOKE, "--out", out, "--steps", "2") == 0
    latest = (out / "latest.pt").read_bytes()
    assert train(SMOKE, "--out", out, "--steps", "2") == 2
    err = capsys.readouterr().err
    assert "--out:" in err and "already holds a run" in err and "--resume" in err
    assert (out / "latest.pt").read_bytes() == latest
    # a resumed run that changes the model or the optimisation is refused with the file and the key
    assert train(SMOKE, "--out", out, "--resume", "--set", "train.lr=5e-4") == 2
    err = capsys.readouterr().err
    assert "latest.pt" in err and "train.lr: checkpoint 0.001, config 0.0005" in err
    # a corrupt checkpoint: a clear error naming the file, never a silent retrain
    (out / "latest.pt").write_bytes(latest[:1000])
    assert train(SMOKE, "--out", out, "--resume", "--steps", "4") == 2
    assert "latest.pt" in capsys.readouterr().err
    assert (out / "latest.pt").read_bytes() == latest[:1000]


@pytest.mark.slow
@pytest.mark.parametrize("config,kill_at,saved", [(SMOKE, 5, 3), (MIXTURE, 15, 10)], ids=["shapes-per-step", "mixture-sequential"])
def test_sigkill_then_resume_is_bit_identical(tmp_path, config, kill_at, saved) -> None:
    full, cut = tmp_path / "full", tmp_path / "cut"
    assert train(config, "--out", full) == 0
    threads = str(torch.get_num_threads())  # same arithmetic as this process
    env = dict(os.environ, OMP_NUM_THREADS=threads, MKL_NUM_THREADS=threads, VSMLAB_TEST_KILL_AT_STEP=str(kill_at))
    proc = subprocess.run([sys.executable, "-m", "vsmlab", "train", str(config), "--out", str(cut), "--device", "cpu",
                           "--quiet"], env=env, cwd=ROOT, capture_output=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-2000:]
    assert ck.load_checkpoint(cut / "latest.pt")["step"] == saved
    assert ck.step_path(cut, saved).exists()
    assert max(json.loads(line)["step"] for line in (cut / "log.jsonl").read_text().splitlines()) > saved
    assert train(config, "--out", cut, "--resume") == 0
    a, b = ck.load_checkpoint(full / "latest.pt"), ck.load_checkpoint(cut / "latest.pt")
    for key in ("step", "model", "ema", "optimizer", "timestep_sampler", "config"):
        assert_same(a[key], b[key], key)
    assert (full / "log.jsonl").read_text() == (cut / "log.jsonl").read_text()  # the killed tail was dropped


# ------------------------------------------------------------------------------------------------ sample
@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("smoke") / "run"
    assert train(SMOKE, "--out", out) == 0
    return out


def sample(*argv: str) -> int:
    return main(["sample", *map(str, argv), "--device", "cpu", "--quiet"])


def test_sample_writes_images_seeds_trajectories_and_metadata(smoke_run, tmp_path) -> None:
    a, b = tmp_path / "a.npz", tmp_path / "b.npz"
    assert sample(smoke_run / "latest.pt", "--n", 6, "--batch-size", 4, "--seed", 3, "--out", a,
                  "--trajectory-every", 2) == 0
    assert sample(smoke_run / "latest.pt", "--n", 4, "--batch-size", 4, "--seed", 3, "--out", b) == 0
    da, db = np.load(a), np.load(b)
    assert da["images"].shape == (6, 32, 32) and da["images"].dtype == np.uint8
    assert da["batch_seed"].tolist() == [3_000_009] * 4 + [3_000_010] * 2
    assert da["batch_row"].tolist() == [0, 1, 2, 3, 0, 1]
    np.testing.assert_array_equal(da["images"][:4], db["images"])  # a batch is regenerated from its seed
    steps = da["trajectory_steps"].tolist()
    assert da["trajectory_x_t"].shape == (len(steps), 6, 1, 32, 32) and da["trajectory_x_t"].dtype == np.float16
    assert steps[-1] == 0 and steps == sorted(steps, reverse=True)
    meta = json.loads(str(da["metadata"]))
    assert meta["checkpoint_step"] == 8 and meta["weights"] == "ema" and meta["sampler"]["steps"] == 5
    assert meta["config"]["model"]["kind"] == "unet" and "1000003" in meta["seed_scheme"]
    assert sample(smoke_run / "latest.pt", "--n", 2, "--sampler", "ddim", "--eta", 0.5, "--weights", "raw",
                  "--steps", 4, "--out", tmp_path / "c.npz") == 0


def test_sample_trajectory_last_keeps_the_final_steps_of_the_full_record(smoke_run, tmp_path) -> None:
    full, tail = tmp_path / "full.npz", tmp_path / "tail.npz"
    assert sample(smoke_run / "latest.pt", "--n", 3, "--seed", 5, "--steps", 5, "--out", full, "--trajectory-every", 1) == 0
    assert sample(smoke_run / "latest.pt", "--n", 3, "--seed", 5, "--steps", 5, "--out", tail, "--trajectory-last", 2) == 0
    df, dt = np.load(full), np.load(tail)
    assert df["trajectory_steps"].tolist()[-2:] == dt["trajectory_steps"].tolist() and len(dt["trajectory_steps"]) == 2
    assert dt["trajectory_x0_hat"].shape == (2, 3, 1, 32, 32)
    np.testing.assert_array_equal(df["trajectory_x0_hat"][-2:], dt["trajectory_x0_hat"])
    np.testing.assert_array_equal(df["images"], dt["images"])  # recording does not change the samples
    assert json.loads(str(dt["metadata"]))["trajectory_last"] == 2
    assert sample(smoke_run / "latest.pt", "--n", 1, "--steps", 5, "--out", tmp_path / "x.npz", "--trajectory-last", 6) == 2
    assert sample(smoke_run / "latest.pt", "--n", 1, "--steps", 5, "--out", tmp_path / "x.npz", "--trajectory-last", 0) == 2
    assert not (tmp_path / "x.npz").exists()


def test_sample_bad_input_names_the_argument_and_keeps_files(smoke_run, tmp_path, capsys) -> None:
    out = tmp_path / "keep.npz"
    out.write_bytes(b"precious")
    for args, pattern in ((["--n", 0], r"--n: expected an int >= 1 \(number of samples\), got 0"),
                          (["--steps", 50], r"--steps: expected an int in 2\.\.20"),
                          (["--batch-size", 0], r"--batch-size: expected an int >= 1"),
                          (["--sampler", "euler"], r"--sampler: expected ddpm or ddim, got 'euler'"),
                          (["--eta", 0.3], r"--eta: applies to --sampler ddim only")):
        assert sample(smoke_run / "latest.pt", "--out", out, *args) == 2
        assert __import__("re").search(pattern, capsys.readouterr().err), pattern
    data = (smoke_run / "latest.pt").read_bytes()
    (tmp_path / "trunc.pt").write_bytes(data[:-100])
    assert sample(tmp_path / "trunc.pt", "--n", 2, "--out", out) == 2
    assert "trunc.pt" in capsys.readouterr().err
    # a checkpoint whose weights belong to another model (image size / channels)
    payload = ck.load_checkpoint(smoke_run / "latest.pt")
    payload["model_config"] = dict(payload["model_config"], image_size=64, base_channels=16)
    ck.save_checkpoint(tmp_path / "other.pt", payload)
    assert sample(tmp_path / "other.pt", "--n", 2, "--out", out) == 2
    err = capsys.readouterr().err
    assert "other.pt" in err and "do not fit" in err
    assert out.read_bytes() == b"precious"
    assert sample(smoke_run / "latest.pt", "--n", 2, "--out", tmp_path / "x.png") == 2
    assert "--out: expected a file name ending in .npz" in capsys.readouterr().err


def test_sample_variance_frac_interpolates_the_fixed_variances(smoke_run, tmp_path, capsys) -> None:
    ckpt = smoke_run / "latest.pt"

    def images(name: str, *args) -> np.ndarray:
        assert sample(ckpt, "--n", 3, "--seed", 4, "--out", tmp_path / name, *args) == 0
        return np.load(tmp_path / name)["images"]

    # F = 1 is Sigma = beta_t, F = 0 is Sigma = beta_tilde_t: the same numbers as the fixed choices
    np.testing.assert_array_equal(images("f1.npz", "--variance-frac", 1), images("beta.npz", "--variance", "beta"))
    np.testing.assert_array_equal(images("f0.npz", "--variance-frac", 0), images("bt.npz", "--variance", "beta_tilde"))
    half = images("f5.npz", "--variance-frac", 0.5, "--variance", "learned")
    assert not np.array_equal(half, np.load(tmp_path / "beta.npz")["images"])
    meta = json.loads(str(np.load(tmp_path / "f5.npz")["metadata"]))
    assert meta["sampler"]["variance_frac"] == 0.5 and meta["sampler"]["variance"] == "learned"
    assert "variance_frac" not in json.loads(str(np.load(tmp_path / "beta.npz")["metadata"]))["sampler"]
    out = tmp_path / "bad.npz"
    for args, pattern in ((["--variance-frac", 1.5], r"--variance-frac: expected a number in \[0, 1\].*got 1\.5"),
                          (["--variance-frac", "nan"], r"--variance-frac: expected a number in \[0, 1\]"),
                          (["--variance-frac", 0.5, "--sampler", "ddim"], r"--variance-frac: applies to --sampler ddpm only"),
                          (["--variance-frac", 0.5, "--variance", "beta"],
                           r"--variance-frac: 0\.5 replaces a learned variance and conflicts with --variance beta")):
        assert sample(ckpt, "--n", 2, "--out", out, *args) == 2
        assert __import__("re").search(pattern, capsys.readouterr().err), pattern
    fixed = tmp_path / "mix"
    assert train(MIXTURE, "--out", fixed, "--steps", "2") == 0
    assert sample(fixed / "latest.pt", "--n", 2, "--out", out, "--variance-frac", 0.5) == 2
    err = capsys.readouterr().err
    assert "--variance-frac: overrides a learned variance" in err and "no variance head" in err
    assert not out.exists()


def test_library_run_and_sample_set_name_their_parameters(smoke_run, tmp_path) -> None:
    from vsmlab.diffusion.runs import train_run
    from vsmlab.diffusion.sample_sets import sample_checkpoint

    run = train_run(MIXTURE, tmp_path / "mix", overrides=["train.steps=3"], device="cpu", log=None)
    assert (run.start_step, run.step, run.steps) == (0, 3, 3) and run.latest == tmp_path / "mix" / "latest.pt"
    with pytest.raises(ValueError, match=r"^out: .* already holds a run .*pass resume=True to continue it, force=True"):
        train_run(MIXTURE, tmp_path / "mix", device="cpu", log=None)
    again = train_run(MIXTURE, tmp_path / "mix", overrides=["train.steps=5"], device="cpu", resume=True, log=None)
    assert (again.start_step, again.step) == (3, 5)
    with pytest.raises(ValueError, match=r"^n: expected an int >= 1"):
        sample_checkpoint(smoke_run / "latest.pt", tmp_path / "s.npz", n=0)
    with pytest.raises(ValueError, match=r"^variance_frac: 0\.5 replaces a learned variance and conflicts with variance beta"):
        sample_checkpoint(smoke_run / "latest.pt", tmp_path / "s.npz", variance="beta", variance_frac=0.5)
    info = sample_checkpoint(smoke_run / "latest.pt", tmp_path / "s.npz", n=2, variance_frac=0.25, device="cpu")
    assert info.n == 2 and info.metadata["sampler"]["variance_frac"] == 0.25
    assert np.load(info.out)["images"].shape == (2, 32, 32)


def test_mixture_run_samples_points_and_refuses_learned_variance(tmp_path, capsys) -> None:
    out = tmp_path / "mix"
    assert train(MIXTURE, "--out", out, "--steps", "5") == 0
    assert sample(out / "latest.pt", "--out", tmp_path / "m.npz", "--n", 7, "--batch-size", 5) == 0
    d = np.load(tmp_path / "m.npz")
    assert d["samples"].shape == (7, 1) and d["samples"].dtype == np.float32 and "images" not in d
    assert sample(out / "latest.pt", "--out", tmp_path / "m2.npz", "--variance", "learned") == 2
    assert "--variance: 'learned' needs a model with a variance head" in capsys.readouterr().err
