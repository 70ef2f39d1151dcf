"""The two image studies on the one engine: notebook 06's ShapesStudy and notebook 07's SemanticStudy read a GPU run's
files by the library's names (full profile), say what the run did not draw, and use the shipped checkpoints under
the engine's rule (default profile)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from vsmlab.lab.full_runs import FORMAT, sample_name
from vsmlab.lab.semantic_study import PROFILES as SEMANTIC_PROFILES
from vsmlab.lab.semantic_study import SemanticStudy
from vsmlab.lab.shapes_study import PROFILES as SHAPES_PROFILES
from vsmlab.lab.shapes_study import ShapesStudy

ROOT = Path(__file__).resolve().parents[1]


def _npz(path: Path, n: int = 4, size: int = 8, **extra) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    images = np.arange(n * size * size, dtype=np.uint8).reshape(n, size, size)
    np.savez(path, images=images, batch_seed=np.full(n, 1000 * 1000003, np.int64), batch_row=np.arange(n),
             metadata=np.asarray(json.dumps({"n": n})), **extra)


def _window(root: Path, run_id: str, models: dict[str, str], sets: dict[str, str], device: str = "GPU X",
            bench: str = "shapes64") -> Path:
    """A GPU window's run folder under root/runs/full/<bench>/: {model name: status}; {set name: kind} on disk."""
    run = root / "runs" / "full" / bench / run_id
    summary_models = {}
    for name, status in models.items():
        method, seed = name.split("-seed")
        summary_models[name] = {"method": method, "seed": int(seed), "status": status, "step": 500, "steps_planned": 500}
    for name, kind in sets.items():
        _npz(run / "samples" / f"{name}.npz")
    summary = {"format": FORMAT, "run_id": run_id, "device": device, "torch": "2.x", "cuda": "12", "models": summary_models,
               "sample_sets": {n: {"model": n.split("_")[0], "kind": k} for n, k in sets.items()},
               "options": {"n": 4, "n_sweep": 2, "sample_steps": 250, "ddim_steps": [10]}, "sweep_steps": [250],
               "steps_planned": 500, "samples_done": list(sets), "samples_not_run": ["x"]}
    (run / "summary.json").write_text(json.dumps(summary))
    return run


def _primary(name: str) -> dict[str, str]:
    method, seed = name.split("-seed")
    variances = ("beta", "beta_tilde") if method == "fixed" else ("learned",)
    return {sample_name(method, int(seed), "ddpm", 250, v): "primary" for v in variances}


def test_shapes_full_profile_reads_every_windows_complete_models(tmp_path, capsys) -> None:
    first = {f"{m}-seed0": "complete" for m in ("fixed", "rho0", "vsm")} | {"vsm-seed1": "stopped"}
    ceiling = {sample_name("rho0", 0, "ddpm", 250, "learned", variance_frac=f): "ceiling" for f in (0, 1)}
    _window(tmp_path, "20261201T000000Z-a", first, {**{k: v for n in first for k, v in _primary(n).items()}, **ceiling})
    second = {"fixed-seed2": "complete", "rho0-seed2": "complete", "vsm-seed2": "failed"}
    _window(tmp_path, "20261202T000000Z-b", second, {k: v for n in ("fixed-seed2", "rho0-seed2") for k, v in _primary(n).items()},
            device="GPU Y")
    cfg = dict(SHAPES_PROFILES["full"])
    st = ShapesStudy.open("full", cfg, tmp_path)
    out = capsys.readouterr().out
    assert st.methods == ["fixed", "rho0", "vsm"] and "vsm10" not in [m for _, m, _ in st.rows]  # the windows' methods
    assert cfg["seeds"] == [0] and cfg["extra_seeds"] == {"fixed": [2], "rho0": [2]}  # across windows
    assert cfg["n"] == 4 and cfg["n_sweep"] == 2 and cfg["step_sweep"] == [250]
    assert st.seeds_of("rho0") == [0, 2] and st.seeds_of("vsm") == [0]
    assert st.loaded == {} and st.cpu_methods == [] and st.train_step("vsm", 0) == 500  # no weights here
    assert st.device_of_samples == "cuda: GPU X, GPU Y" and st.hardware == "GPU"
    assert "20261201T000000Z-a" in out and "20261202T000000Z-b" in out
    assert "vsm-seed1 (stopped at step 500" in out and "vsm-seed2 (failed" in out  # named, not used
    got = st.samples("fixed", 2, "beta_tilde")  # read from the second window's files
    assert got["images"].dtype == torch.uint8 and got["images"].shape == (4, 8, 8)
    assert st.drawn("rho0", 2, "learned") and not st.drawn("rho0", 0, "learned", weights="raw")
    assert all(st.drawn("rho0", 0, "learned", variance_frac=f) for f in (0, 1))  # the ceiling sets
    assert st.samples("rho0", 0, "learned", variance_frac=1)["images"].shape == (4, 8, 8)
    assert not st.drawn("vsm", 0, "learned", variance_frac=0) and not st.drawn("rho0", 0, "learned", seed=7)
    out = capsys.readouterr().out
    assert "not drawn in the GPU run" in out and "fresh sampling seed" in out
    with pytest.raises(ValueError, match="fresh sampling seed"):
        st.samples("rho0", 0, "learned", seed=7)
    with pytest.raises(FileNotFoundError, match="gpu_window.py"):
        ShapesStudy.open("full", dict(SHAPES_PROFILES["full"]), tmp_path / "elsewhere")


def test_shapes_full_profile_needs_a_seed_with_every_method(tmp_path) -> None:
    models = {"fixed-seed0": "complete", "rho0-seed1": "complete"}
    _window(tmp_path, "r", models, {k: v for n in models for k, v in _primary(n).items()})
    with pytest.raises(FileNotFoundError, match="no training seed has a complete model of every method"):
        ShapesStudy.open("full", dict(SHAPES_PROFILES["full"]), tmp_path)


def test_semantic_full_profile_reads_the_cards_and_chess_windows(tmp_path, capsys) -> None:
    def prim(m: str, k: int) -> str:
        return sample_name(m, k, "ddpm", 250, "beta" if m == "fixed" else "learned")

    cards = {f"{m}-seed0": "complete" for m in ("fixed", "rho0", "vsm")} | {"rho0-seed1": "complete", "vsm-seed1": "stopped"}
    sets = {prim(m, k): "primary" for m, k in (("fixed", 0), ("rho0", 0), ("vsm", 0), ("rho0", 1))}
    sets[sample_name("vsm", 0, "ddpm", 250, "learned", ckpt_step=250)] = "train_step"
    c = _window(tmp_path, "20261201T000000Z-c", cards, sets, device="GPU Y", bench="cards128")
    chess = {f"{m}-seed0": "complete" for m in ("fixed", "rho0", "vsm")}
    h = _window(tmp_path, "20261202T000000Z-h", chess, {prim(m, 0): "primary" for m in ("rho0", "vsm")}, bench="chess128")
    (h / "models" / "vsm-seed0").mkdir(parents=True)
    np.save(h / "chess_tiles_128.npy", __import__("vsmlab.data.chessboards", fromlist=["lab_tiles"]).lab_tiles(128))
    cfg = dict(SEMANTIC_PROFILES["full"])
    sem = SemanticStudy.open("full", cfg, tmp_path)
    assert sem.methods == ("fixed", "rho0", "vsm") and cfg["further_seeds"] == {"seeds": [1], "methods": list(sem.methods)}
    assert sem.chess_methods == ("rho0", "vsm")  # the chess window's fixed model has no primary set here
    assert sem.checkpoints("cards", [("rho0", 0)]) == {}  # the windows' sets are read, no weights
    files = sem.primary_files("cards", [("fixed", 0), ("rho0", 0), ("vsm", 0), ("rho0", 1), ("vsm", 1)], {})
    assert set(files) == {("fixed", 0), ("rho0", 0), ("vsm", 0), ("rho0", 1)}  # vsm seed 1 stopped early
    assert files[("fixed", 0)] == c / "samples" / "fixed-seed0_ddpm250_beta_ema.npz"
    assert sem.gpu_sweep_files("cards") == {("vsm", 250): c / "samples" / "vsm-seed0_ddpm250_learned_ema_step250.npz"}
    assert sem.log_path("chess", "vsm", {}) == h / "models" / "vsm-seed0" / "log.jsonl"
    assert sem.trained_steps("chess", "vsm") == 500
    assert not sem.cpu_only("sets with Sigma forced") and sem.chess_templates(128).source == "gpu machine"
    out = capsys.readouterr().out
    assert "GPU Y" in out and "GPU X" in out and "20261201T000000Z-c" in out
    assert "vsm-seed1 (stopped at step 500" in out and "fixed-seed0 (complete" in out  # named, not used
    assert "cards vsm seed 1: no complete model" in out and "measured in the default profile" in out
    import shutil

    shutil.rmtree(h)
    with pytest.raises(FileNotFoundError, match=r"no complete seed-0 model of chess128 .*gpu_window.py run --bench chess"):
        SemanticStudy.open("full", dict(SEMANTIC_PROFILES["full"]), tmp_path)


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
