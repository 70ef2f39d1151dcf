"""Checkpoints: atomic write + weights_only read round trip, step files and keep_last, clear errors for
truncated / corrupt / foreign files and for a config that does not match, Trainer state round trip."""

from __future__ import annotations

import os

import pytest
from conftest import assert_same
import torch

import vsmlab
from vsmlab.diffusion import checkpoints as ck
from vsmlab.diffusion.training import Trainer
from vsmlab.nets.mlp import MLP


def make_trainer(mix, steps=6, **kw) -> Trainer:
    data = mix.sample(256, generator=torch.Generator().manual_seed(0))
    opts = dict(batch_size=32, ema_decay=0.9, timestep_sampler="loss_second_moment", optimizer="adamw",
                weight_decay=0.01)
    opts.update(kw)
    return Trainer(MLP(1, width=16, depth=1, seed=0), data, vsmlab.linear(10, 1e-3, 0.2), steps, **opts)


def payload(trainer: Trainer, config=None) -> dict:
    return {"format": ck.FORMAT, "version": ck.VERSION, "config": config or {"train": {"steps": trainer.steps}},
            "model_kind": "mlp", "model_config": trainer.model.config, **trainer.state_dict()}




def test_round_trip_is_exact_and_weights_only(tmp_path, mix1d) -> None:
    trainer = make_trainer(mix1d)
    list(trainer.run())
    p = payload(trainer)
    ck.save_checkpoint(tmp_path / "a.pt", p)
    back = ck.load_checkpoint(tmp_path / "a.pt")
    assert_same(p, back)
    assert back["timestep_sampler"]["count"].sum() == 6 * 32
    torch.load(tmp_path / "a.pt", weights_only=True)  # loadable without unpickling code
    assert not [f for f in os.listdir(tmp_path) if f.endswith(".tmp")]


def test_resumed_trainer_equals_uninterrupted(mix1d) -> None:
    full = make_trainer(mix1d, steps=8, rng="sequential")
    list(full.run())
    first = make_trainer(mix1d, steps=8, rng="sequential")
    for rec in first.run():
        if rec.step == 3:
            break
    state = first.state_dict()
    torch.manual_seed(12345)  # the global RNG in between must not matter (restored from the state)
    second = make_trainer(mix1d, steps=8, rng="sequential")
    second.load_state_dict(state)
    list(second.run())
    assert_same(full.state_dict(), second.state_dict())


def test_step_files_latest_and_keep_last(tmp_path, mix1d) -> None:
    trainer = make_trainer(mix1d)
    for rec in trainer.run():
        ck.write_run_checkpoint(tmp_path, payload(trainer), keep_step=rec.step % 2 == 0, keep_last=2)
    assert [s for s, _ in ck.step_checkpoints(tmp_path)] == [4, 6]
    assert ck.step_path(tmp_path, 4).name == "step_0000004.pt"
    assert ck.load_checkpoint(ck.latest_path(tmp_path))["step"] == 6
    assert ck.prune_step_checkpoints(tmp_path, 0) == []


def test_truncated_corrupt_and_foreign_files_are_named(tmp_path, mix1d) -> None:
    trainer = make_trainer(mix1d, steps=1)
    list(trainer.run())
    good = tmp_path / "good.pt"
    ck.save_checkpoint(good, payload(trainer))
    data = good.read_bytes()
    (tmp_path / "trunc.pt").write_bytes(data[: len(data) // 2])
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint at all")
    torch.save({"weights": torch.zeros(2)}, tmp_path / "foreign.pt")
    for name, pattern in (("trunc.pt", "cannot be read"), ("junk.pt", "cannot be read"),
                          ("foreign.pt", "not a vsmlab training checkpoint"), ("missing.pt", "no such file")):
        with pytest.raises(ck.CheckpointError, match=f"{name}.*{pattern}"):
            ck.load_checkpoint(tmp_path / name)
    with pytest.raises(ValueError, match="payload: missing"):
        ck.save_checkpoint(tmp_path / "x.pt", {"format": ck.FORMAT})


def test_writing_over_a_checkpoint_keeps_the_old_one_on_failure(tmp_path, mix1d, monkeypatch) -> None:
    trainer = make_trainer(mix1d, steps=1)
    list(trainer.run())
    ck.save_checkpoint(tmp_path / "latest.pt", payload(trainer))
    before = (tmp_path / "latest.pt").read_bytes()

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        ck.save_checkpoint(tmp_path / "latest.pt", payload(trainer))
    assert (tmp_path / "latest.pt").read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["latest.pt"]


def test_config_mismatch_names_file_and_keys(tmp_path) -> None:
    saved = {"train": {"steps": 10, "lr": 1e-4, "save_every": 5}, "model": {"base_channels": 64}}
    ok = {"train": {"steps": 20, "lr": 1e-4, "save_every": 2}, "model": {"base_channels": 64}}
    ck.check_config_matches(tmp_path / "latest.pt", saved, ok)  # steps / save_every may change
    bad = {"train": {"steps": 10, "lr": 2e-4, "save_every": 5}, "model": {"base_channels": 32}}
    with pytest.raises(ck.CheckpointError, match=r"latest\.pt.*model\.base_channels: checkpoint 64, config 32.*"
                                                 r"train\.lr: checkpoint 0\.0001, config 0\.0002"):
        ck.check_config_matches(tmp_path / "latest.pt", saved, bad)


def test_trainer_refuses_a_state_of_another_model(mix1d) -> None:
    trainer = make_trainer(mix1d, steps=2)
    list(trainer.run())
    other = Trainer(MLP(1, width=8, depth=1), mix1d.sample(64), vsmlab.linear(10, 1e-3, 0.2), 2, batch_size=8,
                    ema_decay=0.9, timestep_sampler="loss_second_moment", optimizer="adamw")
    with pytest.raises(ValueError, match="model: the checkpoint's weights do not fit"):
        other.load_state_dict(trainer.state_dict())
    no_ema = make_trainer(mix1d, steps=2, ema_decay=None)
    with pytest.raises(ValueError, match="ema"):
        no_ema.load_state_dict(trainer.state_dict())
    short = make_trainer(mix1d, steps=1)
    with pytest.raises(ValueError, match="step"):
        short.load_state_dict(trainer.state_dict())


def test_weights_file_round_trip_ema_only(tmp_path, mix1d) -> None:
    """A shipped weights file (safetensors) keeps the EMA weights and the configs; float32 exactly, float16
    to half precision; it is read by the same load_checkpoint and holds nothing pickled."""
    from safetensors import safe_open

    trainer = make_trainer(mix1d)
    list(trainer.run())
    p = payload(trainer, config={"train": {"steps": 6}, "model": {"kind": "mlp"}})
    for dtype, tol in (("float32", 0.0), ("float16", 1e-3)):
        path = tmp_path / f"w-{dtype}.safetensors"
        size = ck.save_weights(path, p, dtype)
        assert size == path.stat().st_size
        back = ck.load_checkpoint(path)
        assert back["step"] == 6 and back["model_kind"] == "mlp" and back["config"] == p["config"]
        assert back["model_config"] == p["model_config"] and back["slim_weights"] == "ema" and back["model"] == {}
        assert set(back["ema"]) == set(p["ema"])
        for k, v in p["ema"].items():
            assert back["ema"][k].dtype == v.dtype
            assert torch.allclose(back["ema"][k], v, rtol=tol, atol=tol), (dtype, k)
        with safe_open(str(path), framework="pt") as fh:
            assert fh.metadata()["dtype"] == dtype
    assert not [f for f in os.listdir(tmp_path) if f.endswith(".tmp")]


def test_weights_file_errors_name_the_file(tmp_path, mix1d) -> None:
    from safetensors.torch import save_file

    trainer = make_trainer(mix1d)
    list(trainer.run())
    p = payload(trainer)
    with pytest.raises(ValueError, match="dtype: expected one of"):
        ck.save_weights(tmp_path / "a.safetensors", p, "bfloat8")
    with pytest.raises(ValueError, match="path: a weights file ends in"):
        ck.save_weights(tmp_path / "a.pt", p)
    with pytest.raises(ck.CheckpointError, match="no EMA weights"):
        ck.save_weights(tmp_path / "a.safetensors", dict(p, ema=None))
    good = tmp_path / "good.safetensors"
    ck.save_weights(good, p)
    (tmp_path / "trunc.safetensors").write_bytes(good.read_bytes()[:-50])
    (tmp_path / "junk.safetensors").write_bytes(b"not safetensors at all")
    save_file({"w": torch.zeros(2)}, str(tmp_path / "foreign.safetensors"), metadata={"format": "other"})
    for name, pattern in (("trunc", "cannot be read as safetensors"), ("junk", "cannot be read as safetensors"),
                          ("foreign", "not vsmlab weights")):
        with pytest.raises(ck.CheckpointError, match=pattern) as info:
            ck.load_checkpoint(tmp_path / f"{name}.safetensors")
        assert f"{name}.safetensors" in str(info.value)
