"""vsmlab.lab.shapes_study: specs, training through the CLI's handler, slim checkpoints loaded by path with a
config check, sample sets that `vsmlab sample` regenerates, npz errors, per-term gradient norms on the UNet."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pytest
import torch

from vsmlab.diffusion.checkpoints import CheckpointError
from vsmlab.lab import shapes_study as study

ROOT = Path(__file__).resolve().parents[1]
TINY = ("data.n=32", "model.base_channels=8", "model.channel_mult=[1, 2]", "diffusion.T=20", "sample.steps=5",
        "train.steps=2", "train.batch_size=4", "train.save_every=1", "train.warmup=1", "train.log_every=1")


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    spec = study.Spec("rho0", "configs/shapes-rho0-cpu.toml", 0, TINY)
    path = study.train_in_process(spec, out / spec.name, ROOT)
    return spec, path


def test_spec_checks_and_command() -> None:
    with pytest.raises(ValueError, match="seed"):
        study.Spec("fixed", "configs/shapes-fixed-cpu.toml", -1)
    with pytest.raises(ValueError, match="method"):
        study.Spec("a/b", "configs/shapes-fixed-cpu.toml", 0)
    spec = study.Spec("vsm10", "configs/shapes-vsm-cpu.toml", 3, ("loss.rho=10.0",))
    cfg = study.spec_config(spec, ROOT)
    assert cfg["train"]["seed"] == 3 and cfg["loss"]["rho"] == 10.0 and cfg["data"]["seed"] == 0
    cmd = study.train_command(spec, "runs/x")
    assert cmd[:5] == ["python", "-m", "vsmlab", "train", "configs/shapes-vsm-cpu.toml"]
    assert "loss.rho=10.0" in cmd and "train.seed=3" in cmd
    assert spec.name == "vsm10-seed3"


def test_slim_checkpoint_loads_with_config_check(tiny_run, tmp_path) -> None:
    spec, path = tiny_run
    slim = tmp_path / "slim" / "latest.pt"
    size = study.slim_checkpoint(path, slim)
    assert size < path.stat().st_size  # no optimizer state
    expected = study.spec_config(spec, ROOT)
    a = study.load_checkpoint_model(slim, expected, "ema", image_size=32)
    b = study.load_checkpoint_model(path, expected, "ema", image_size=32)
    for (ka, va), (kb, vb) in zip(a.model.state_dict().items(), b.model.state_dict().items()):
        assert ka == kb and torch.equal(va, vb)
    raw = study.load_checkpoint_model(slim, expected, "raw")
    assert any(not torch.equal(x, y) for x, y in zip(raw.model.parameters(), a.model.parameters()))
    other = study.spec_config(study.Spec("rho0", spec.config, 1, spec.overrides), ROOT)
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
    expected = study.spec_config(spec, ROOT)
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
    lm = study.load_checkpoint_model(path, study.spec_config(spec, ROOT))
    got = study.sample_set(lm, 5, seed=7, steps=5, batch_size=2, record_last=3)
    out = tmp_path / "s.npz"
    args = argparse.Namespace(checkpoint=str(path), out=str(out), n=5, seed=7, sampler="ddpm", steps=5, variance=None,
                              eta=None, weights="ema", device="cpu", batch_size=2, trajectory_every=None, quiet=True)
    assert run_sample(args) == 0
    ref = study.load_npz_samples(out)
    np.testing.assert_array_equal(got["images"].numpy(), ref["images"])
    np.testing.assert_array_equal(got["batch_seed"].numpy(), ref["batch_seed"])
    np.testing.assert_array_equal(got["batch_row"].numpy(), ref["batch_row"])
    assert got["x0_hat"].shape == (3, 5, 1, 32, 32) and got["recorded_steps"].tolist()[-1] == 0
    again = study.sample_set(lm, 5, seed=7, steps=5, batch_size=2, record_last=3)  # from the cache
    assert torch.equal(again["images"], got["images"])
    other = study.sample_set(lm, 5, seed=8, steps=5, batch_size=2)
    assert not torch.equal(other["images"], got["images"])
    clipped = study.sample_set(lm, 5, seed=7, steps=5, batch_size=2, record_last=3, clip_x0=True)
    assert not torch.equal(clipped["images"], got["images"])  # a different cache entry and different samples
    assert float(clipped["x0_hat"].abs().max()) <= 1.0 < float(got["x0_hat"].abs().max())
    args.clip_x0, args.out = True, str(tmp_path / "c.npz")
    assert run_sample(args) == 0
    np.testing.assert_array_equal(clipped["images"].numpy(), study.load_npz_samples(tmp_path / "c.npz")["images"])
    with pytest.raises(ValueError, match="n: expected an int >= 1"):
        study.sample_set(lm, 0, seed=7)
    with pytest.raises(ValueError, match="schedule"):
        study.sample_set(lm.model, 2, seed=7)


def test_load_npz_samples_errors(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match=r"missing\.npz.*vsmlab sample"):
        study.load_npz_samples(tmp_path / "missing.npz")
    empty = tmp_path / "empty.npz"
    np.savez(empty, images=np.zeros((0, 32, 32), np.uint8))
    with pytest.raises(ValueError, match="empty sample set"):
        study.load_npz_samples(empty)


def test_unet_term_gradient_norms_scale_with_rho(tiny_run) -> None:
    spec, path = tiny_run
    lm = study.load_checkpoint_model(path, study.spec_config(spec, ROOT), "raw")
    g = torch.Generator().manual_seed(0)
    x0 = torch.rand((3, 1, 32, 32), generator=g).round() * 2 - 1
    eps = torch.randn(x0.shape, generator=g)
    a = study.unet_term_gradient_norms(lm.model, x0, 10, eps, lm.schedule, rho=0.1)
    b = study.unet_term_gradient_norms(lm.model, x0, 10, eps, lm.schedule, rho=0.2)
    assert set(a) == {"mse", "vb", "vsm"} and set(a["mse"]) == {"trunk", "eps_head", "var_head"}
    assert b["vsm"]["trunk"] == pytest.approx(2 * a["vsm"]["trunk"], rel=1e-5)
    assert a["mse"]["trunk"] == pytest.approx(b["mse"]["trunk"])
    assert a["vb"]["eps_head"] == 0.0  # the VB term's mean is detached: it reaches only the variance rows
    assert a["mse"]["var_head"] == 0.0
    from vsmlab.nets.unet import UNet

    with pytest.raises(ValueError, match="variance-learning"):
        study.unet_term_gradient_norms(UNet(32, base_channels=8, channel_mult=(1, 2), attention_resolutions=()),
                                       x0, 10, eps, lm.schedule)
