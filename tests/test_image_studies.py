"""The two image studies on the one engine: notebook 06's ShapesStudy and notebook 07's SemanticStudy read a GPU run's
files by the library's names (full profile), say what the run did not draw, and use the shipped checkpoints under
the engine's rule (default profile)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from vsmlab.lab.full_runs import run_name, sample_name
from vsmlab.lab.semantic_study import PROFILES as SEMANTIC_PROFILES
from vsmlab.lab.semantic_study import SemanticStudy
from vsmlab.lab.shapes_study import PROFILES as SHAPES_PROFILES
from vsmlab.lab.shapes_study import ROWS, ShapesStudy

ROOT = Path(__file__).resolve().parents[1]


def _npz(path: Path, n: int = 4, size: int = 8, **extra) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    images = np.arange(n * size * size, dtype=np.uint8).reshape(n, size, size)
    np.savez(path, images=images, batch_seed=np.full(n, 1000 * 1000003, np.int64), batch_row=np.arange(n),
             metadata=np.asarray(json.dumps({"n": n})), **extra)


def test_shapes_full_profile_reads_the_gpu_runs_sets_and_names_the_rest(tmp_path, capsys) -> None:
    gpu = tmp_path / "runs" / "full06"
    record = dict(seeds=[0, 1], started="2026-01-01", device="GPU X", torch="2.x", cuda="12", steps_saved=[1, 2],
                  stages={"train": 10.0, "sample": 5.0}, common_step=750, samples_done=["a"], samples_not_run=["b"])
    gpu.mkdir(parents=True)
    (gpu / "full06.json").write_text(json.dumps(record))
    for _, method, variance in ROWS:  # seed 0 complete, seed 1 only for rho0
        _npz(gpu / "samples" / f"{sample_name(method, 0, 'ddpm', 250, variance)}.npz")
    _npz(gpu / "samples" / f"{sample_name('rho0', 1, 'ddpm', 250, 'learned')}.npz")
    cfg = dict(SHAPES_PROFILES["full"])
    st = ShapesStudy.open("full", cfg, tmp_path)
    assert cfg["seeds"] == [0] and cfg["extra_seeds"] == {"rho0": [1]}  # the record sets the seeds
    assert st.seeds_of("rho0") == [0, 1] and st.seeds_of("vsm") == [0]
    assert st.loaded == {} and st.cpu_methods == [] and st.train_step("vsm", 0) == 750
    assert st.device_of_samples == "cuda: GPU X" and st.hardware == "GPU"
    got = st.samples("fixed", 0, "beta_tilde")
    assert got["images"].dtype == torch.uint8 and got["images"].shape == (4, 8, 8)
    assert st.drawn("rho0", 1, "learned") and not st.drawn("vsm", 1, "learned")
    assert not st.drawn("rho0", 0, "learned", variance_frac=0) and not st.drawn("rho0", 0, "learned", seed=7)
    out = capsys.readouterr().out
    assert "GPU X" in out and "not drawn in the GPU run" in out and "Sigma forced" in out
    with pytest.raises(ValueError, match="forced-Sigma"):
        st.samples("rho0", 0, "learned", variance_frac=0)
    with pytest.raises(FileNotFoundError, match="full06.json"):
        ShapesStudy.open("full", dict(SHAPES_PROFILES["full"]), tmp_path / "elsewhere")


def test_semantic_full_profile_reads_the_gpu_runs_files(tmp_path, capsys) -> None:
    gpu = tmp_path / "runs" / "full07"
    record = dict(benches=["cards", "chess"], methods=["fixed", "rho0", "vsm"], seeds=[0, 1], device="GPU Y",
                  torch="2.x", started="2026-01-01", stages={"train": 1}, common_step={"cards": 500, "chess": 500},
                  steps_logged=[], n=8, sweep_step={"cards": 250})
    gpu.mkdir(parents=True)
    (gpu / "full07.json").write_text(json.dumps(record))
    for m in ("fixed", "rho0", "vsm"):
        _npz(gpu / "samples" / f"{run_name('cards', m, 0)}.npz")
    _npz(gpu / "samples" / f"{run_name('cards', 'rho0', 1)}.npz")
    _npz(gpu / "samples" / f"{run_name('cards', 'vsm', 0, 250)}.npz")
    cfg = dict(SEMANTIC_PROFILES["full"])
    sem = SemanticStudy.open("full", cfg, tmp_path)
    assert sem.methods == ("fixed", "rho0", "vsm") and cfg["further_seeds"] == {"seeds": [1], "methods": list(sem.methods)}
    assert sem.checkpoints("cards", [("rho0", 0)]) == {}  # the GPU run brings back samples only
    keys = [("fixed", 0), ("rho0", 0), ("vsm", 0), ("rho0", 1), ("vsm", 1)]
    files = sem.primary_files("cards", keys, {})
    assert set(files) == {("fixed", 0), ("rho0", 0), ("vsm", 0), ("rho0", 1)}  # vsm seed 1 was not drawn
    assert files[("rho0", 1)].name == "cards-rho0-seed1.npz"
    assert sem.gpu_sweep_files("cards") == {("vsm", 250): gpu / "samples" / "cards-vsm-seed0_step250.npz"}
    assert sem.log_path("chess", "vsm", {}) == gpu / "chess-vsm-seed0" / "log.jsonl"
    assert not sem.cpu_only("sets with Sigma forced") and sem.chess_templates(128) is None
    out = capsys.readouterr().out
    assert "GPU Y" in out and "vsm seed 1: not drawn by the GPU run" in out and "measured in the default profile" in out
    with pytest.raises(FileNotFoundError, match=r"3 of 3 sample files are missing(.|\n)*full07_gpu.py run"):
        sem.primary_files("chess", [(m, 0) for m in sem.chess_methods], {})


def test_semantic_default_profile_uses_the_shipped_checkpoints(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("VSMLAB_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("VSMLAB_NO_CACHE", raising=False)
    sem = SemanticStudy.open("default", dict(SEMANTIC_PROFILES["default"]), ROOT)
    assert sem.methods == ("fixed", "rho0", "vsm", "vsm10") and sem.chess_methods == ("rho0", "vsm")
    ckpts = sem.checkpoints("cards", [("rho0", 0), ("vsm10", 1)])
    assert ckpts[("rho0", 0)] == ROOT / "checkpoints" / "cards64" / "rho0-seed0" / "latest.safetensors"
    assert ckpts[("vsm10", 1)] == ROOT / "checkpoints" / "cards64" / "vsm10-seed1" / "latest.safetensors"
    assert "shipped checkpoints (checkpoints/cards64/" in capsys.readouterr().out
    dirs = sem._out_dirs({"rho0@0": ckpts[("rho0", 0)]})  # a shipped file's samples go to the cache, keyed by its bytes
    assert dirs["rho0@0"].parent == tmp_path / "cache" / "runs07" and dirs["rho0@0"].name.startswith("shipped-rho0-seed0-")
    assert sem.cpu_only("anything") and sem.gpu_sweep_files("cards") == {}
    no_cache = SemanticStudy.open("default", dict(SEMANTIC_PROFILES["default"]), ROOT, no_cache=True)
    model = no_cache.model("cards", "rho0", 0)
    assert no_cache.studies["cards"].source(model) == "trained"
    assert no_cache.studies["cards"].checkpoint(model).parent.parent == tmp_path / "cache" / "runs07" / "cards"
