"""The study engine (vsmlab.lab.study): models, one folder scheme, the shipped-trained-GPU rule, training missing runs,
slim checkpoints loaded by path with a config check; the sample store (vsmlab.lab.sample_store): sample sets that
`vsmlab sample` regenerates, npz errors; per-term gradient norms on the UNet (vsmlab.lab.shapes_study)."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pytest
import torch

from vsmlab.diffusion.checkpoints import CheckpointError, load_checkpoint, save_weights
from vsmlab.lab import sample_store, study
from vsmlab.lab.shapes_study import unet_term_gradient_norms

ROOT = Path(__file__).resolve().parents[1]
TINY = ("data.n=32", "model.base_channels=8", "model.channel_mult=[1, 2]", "diffusion.T=20", "sample.steps=5",
        "train.steps=2", "train.batch_size=4", "train.save_every=1", "train.warmup=1", "train.log_every=1")


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    runs = tmp_path_factory.mktemp("runs")
    spec = study.Model("rho0", 0, "configs/shapes-rho0-cpu.toml", TINY)
    eng = study.Study(ROOT, runs, workers=0)
    path = eng.ensure([spec])[spec]
    return spec, path


def config_of(spec: study.Model) -> dict:
    return study.Study(ROOT, ROOT / "runs").config(spec)


def test_model_checks_and_command(tmp_path) -> None:
    with pytest.raises(ValueError, match="seed"):
        study.Model("fixed", -1, "configs/shapes-fixed-cpu.toml")
    with pytest.raises(ValueError, match="method"):
        study.Model("a/b", 0, "configs/shapes-fixed-cpu.toml")
    spec = study.Model("vsm10", 3, "configs/shapes-vsm-cpu.toml", ("loss.rho=10.0",))
    eng = study.Study(ROOT, tmp_path)
    cfg = eng.config(spec)
    assert cfg["train"]["seed"] == 3 and cfg["loss"]["rho"] == 10.0 and cfg["data"]["seed"] == 0
    cmd = eng.train_command(spec, "runs/x")
    assert cmd[1:5] == ["-m", "vsmlab", "train", "configs/shapes-vsm-cpu.toml"]
    assert "loss.rho=10.0" in cmd and "train.seed=3" in cmd
    assert spec.name == "vsm10-seed3"
    with pytest.raises(ValueError, match="workers"):
        study.Study(ROOT, tmp_path, workers=-1)


def test_one_folder_scheme_and_the_rule_for_the_weights(tiny_run, tmp_path) -> None:
    spec, path = tiny_run
    eng = study.Study(ROOT, tmp_path / "runs")
    folder = eng.folder(spec)
    assert folder.parent == tmp_path / "runs" and folder.name.startswith("rho0-seed0-") and len(folder.name) == 23
    assert eng.folder(study.Model("rho0", 0, spec.config, TINY)) == folder  # the same config, the same folder
    assert eng.folder(study.Model("rho0", 1, spec.config, TINY)) != folder  # another seed, another folder
    assert eng.source(spec) == "trained" and eng.checkpoint(spec) == folder / "latest.pt" and not eng.exists(spec)
    shipped = tmp_path / "shipped"
    (shipped / spec.name).mkdir(parents=True)
    save_weights(shipped / spec.name / "latest.safetensors", load_checkpoint(path), "float16")  # as checkpoints/ship.py
    eng = study.Study(ROOT, tmp_path / "runs", shipped)
    assert eng.source(spec) == "shipped" and eng.checkpoint(spec) == shipped / spec.name / "latest.safetensors"
    assert eng.source(spec, step=1) == "trained"  # no shipped file of that step
    assert eng.ensure([spec]) == {spec: shipped / spec.name / "latest.safetensors"}  # config-checked, nothing trained
    assert not (tmp_path / "runs").exists()
    other = study.Model("rho0", 0, spec.config, (*TINY, "loss.vb_weight=0.5"))
    with pytest.raises(CheckpointError, match=r"loss\.vb_weight"):
        eng.ensure([other])  # a shipped file trained with another config is refused
    assert study.Study(ROOT, tmp_path / "runs", shipped, use_shipped=False).source(spec) == "trained"
    gpu = study.Study(ROOT, tmp_path / "runs", shipped, gpu={spec.name: path})
    assert gpu.source(spec) == "gpu" and gpu.checkpoint(spec) == path and gpu.exists(spec)
    assert gpu.load(spec).step == 2
    assert not gpu.exists(study.Model("vsm", 0, spec.config, TINY)) and not gpu.exists(spec, step=1)
    with pytest.raises(FileNotFoundError, match="vsm-seed0: the GPU run brought back no weights"):
        gpu.checkpoint(study.Model("vsm", 0, spec.config, TINY))


def test_slim_checkpoint_loads_with_config_check(tiny_run, tmp_path) -> None:
    spec, path = tiny_run
    slim = tmp_path / "slim" / "latest.pt"
    size = study.slim_checkpoint(path, slim)
    assert size < path.stat().st_size  # no optimizer state
    expected = config_of(spec)
    a = study.load_checkpoint_model(slim, expected, "ema", image_size=32)
    b = study.load_checkpoint_model(path, expected, "ema", image_size=32)
    for (ka, va), (kb, vb) in zip(a.model.state_dict().items(), b.model.state_dict().items()):
        assert ka == kb and torch.equal(va, vb)
    raw = study.load_checkpoint_model(slim, expected, "raw")
    assert any(not torch.equal(x, y) for x, y in zip(raw.model.parameters(), a.model.parameters()))
    other = config_of(study.Model("rho0", 1, spec.config, spec.overrides))
    with pytest.raises(CheckpointError, match=r"train\.seed: checkpoint 0, config 1"):
        study.load_checkpoint_model(slim, other)
    with pytest.raises(CheckpointError, match="image size 32, expected 64"):
        study.load_checkpoint_model(slim, expected, image_size=64)
    with pytest.raises(ValueError, match="weights"):
        study.load_checkpoint_model(slim, expected, "best")


def test_ema_only_slim_checkpoint_refuses_raw_weights(tiny_run, tmp_path) -> None:
    from vsmlab.cli.sample import run_sample

    spec, path = tiny_run
    both = tmp_path / "both.pt"
    ema = tmp_path / "ema" / "step.pt"
    assert study.slim_checkpoint(path, ema, weights="ema") < 0.7 * study.slim_checkpoint(path, both)
    expected = config_of(spec)
    a = study.load_checkpoint_model(ema, expected, "ema", image_size=32)
    b = study.load_checkpoint_model(both, expected, "ema", image_size=32)
    assert all(torch.equal(x, y) for x, y in zip(a.model.state_dict().values(), b.model.state_dict().values()))
    with pytest.raises(CheckpointError, match=r"keeps only EMA weights.*allowed weights: 'ema'"):
        study.load_checkpoint_model(ema, expected, "raw")
    args = argparse.Namespace(checkpoint=str(ema), out=str(tmp_path / "s.npz"), n=2, seed=0, sampler="ddpm", steps=2,
                              variance=None, eta=None, weights="raw", device="cpu", batch_size=2, trajectory_every=None,
                              quiet=True)
    assert run_sample(args) != 0 and not (tmp_path / "s.npz").exists()
    with pytest.raises(ValueError, match="weights: expected 'both' or 'ema'"):
        study.slim_checkpoint(path, tmp_path / "z.pt", weights="raw")


def test_sample_set_matches_vsmlab_sample(tiny_run, tmp_path, monkeypatch) -> None:
    from vsmlab.cli.sample import run_sample

    monkeypatch.setenv("VSMLAB_CACHE_DIR", str(tmp_path / "cache"))
    spec, path = tiny_run
    lm = study.load_checkpoint_model(path, config_of(spec))
    got = sample_store.sample_set(lm, 5, seed=7, steps=5, batch_size=2, record_last=3)
    out = tmp_path / "s.npz"
    args = argparse.Namespace(checkpoint=str(path), out=str(out), n=5, seed=7, sampler="ddpm", steps=5, variance=None,
                              eta=None, weights="ema", device="cpu", batch_size=2, trajectory_every=None, quiet=True)
    assert run_sample(args) == 0
    ref = sample_store.load_npz_samples(out)
    np.testing.assert_array_equal(got["images"].numpy(), ref["images"])
    np.testing.assert_array_equal(got["batch_seed"].numpy(), ref["batch_seed"])
    np.testing.assert_array_equal(got["batch_row"].numpy(), ref["batch_row"])
    assert got["x0_hat"].shape == (3, 5, 1, 32, 32) and got["recorded_steps"].tolist()[-1] == 0
    again = sample_store.sample_set(lm, 5, seed=7, steps=5, batch_size=2, record_last=3)  # from the cache
    assert torch.equal(again["images"], got["images"])
    other = sample_store.sample_set(lm, 5, seed=8, steps=5, batch_size=2)
    assert not torch.equal(other["images"], got["images"])
    clipped = sample_store.sample_set(lm, 5, seed=7, steps=5, batch_size=2, record_last=3, clip_x0=True)
    assert not torch.equal(clipped["images"], got["images"])  # a different cache entry and different samples
    assert float(clipped["x0_hat"].abs().max()) <= 1.0 < float(got["x0_hat"].abs().max())
    args.clip_x0, args.out = True, str(tmp_path / "c.npz")
    assert run_sample(args) == 0
    np.testing.assert_array_equal(clipped["images"].numpy(), sample_store.load_npz_samples(tmp_path / "c.npz")["images"])
    with pytest.raises(ValueError, match="n: expected an int >= 1"):
        sample_store.sample_set(lm, 0, seed=7)
    with pytest.raises(ValueError, match="schedule"):
        sample_store.sample_set(lm.model, 2, seed=7)


def test_load_npz_samples_errors(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match=r"missing\.npz.*vsmlab sample"):
        sample_store.load_npz_samples(tmp_path / "missing.npz")
    empty = tmp_path / "empty.npz"
    np.savez(empty, images=np.zeros((0, 32, 32), np.uint8))
    with pytest.raises(ValueError, match="empty sample set"):
        sample_store.load_npz_samples(empty)


def test_unet_term_gradient_norms_scale_with_rho(tiny_run) -> None:
    spec, path = tiny_run
    lm = study.load_checkpoint_model(path, config_of(spec), "raw")
    g = torch.Generator().manual_seed(0)
    x0 = torch.rand((3, 1, 32, 32), generator=g).round() * 2 - 1
    eps = torch.randn(x0.shape, generator=g)
    a = unet_term_gradient_norms(lm.model, x0, 10, eps, lm.schedule, rho=0.1)
    b = unet_term_gradient_norms(lm.model, x0, 10, eps, lm.schedule, rho=0.2)
    assert set(a) == {"mse", "vb", "vsm"} and set(a["mse"]) == {"trunk", "eps_head", "var_head"}
    assert b["vsm"]["trunk"] == pytest.approx(2 * a["vsm"]["trunk"], rel=1e-5)
    assert a["mse"]["trunk"] == pytest.approx(b["mse"]["trunk"])
    assert a["vb"]["eps_head"] == 0.0  # the VB term's mean is detached: it reaches only the variance rows
    assert a["mse"]["var_head"] == 0.0
    from vsmlab.nets.unet import UNet

    with pytest.raises(ValueError, match="variance-learning"):
        unet_term_gradient_norms(UNet(32, base_channels=8, channel_mult=(1, 2), attention_resolutions=()),
                                       x0, 10, eps, lm.schedule)
