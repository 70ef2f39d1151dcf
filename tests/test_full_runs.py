"""vsmlab.lab.full_runs: the reader of runs/full/<benchmark>/<run-id>/ (what GPU windows bring back): complete models
across runs, seeds already used, sample names as notebook 06 builds them, sample sets loaded."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest

from vsmlab.lab import full_runs, sample_store

ROOT = Path(__file__).resolve().parents[1]


def fake_run(root: Path, run_id: str, models: dict[str, dict], present: set[str], steps: int = 100) -> Path:
    """A run folder with a summary, and the sample files of ``present``."""
    run = root / "shapes64" / run_id
    (run / "samples").mkdir(parents=True)
    sets, summary_models = {}, {}
    for name, m in models.items():
        method, seed = name.split("-seed")
        summary_models[name] = {"method": method, "seed": int(seed), "status": m.get("status", "complete"),
                                "step": m.get("step", steps), "steps_planned": steps, "error": m.get("error")}
        for var in (("beta", "beta_tilde") if method == "fixed" else ("learned",)):
            sets[full_runs.sample_name(method, int(seed), variance=var)] = {"model": name, "kind": "primary"}
        sets[full_runs.sample_name(method, int(seed), variance="beta" if method == "fixed" else "learned", clip=False)] = {
            "model": name, "kind": "noclip"}
    for s in sets:
        if s in present:
            buf = io.BytesIO()
            np.savez_compressed(buf, images=np.zeros((3, 64, 64), np.uint8), batch_seed=np.zeros(3, np.int64),
                                batch_row=np.arange(3), metadata=np.asarray(json.dumps({"n": 3})))
            (run / "samples" / f"{s}.npz").write_bytes(buf.getvalue())
    (run / "summary.json").write_text(json.dumps({"format": full_runs.FORMAT, "run_id": run_id, "models": summary_models,
                                                  "sample_sets": sets}))
    return run


def test_complete_models_need_all_steps_and_every_primary_set(tmp_path) -> None:
    a = fake_run(tmp_path, "20261201T000000Z-h100-abc", {"fixed-seed0": {}, "rho0-seed0": {}, "vsm-seed0": {"status": "stopped", "step": 40}},
                 present={"fixed-seed0_ddpm250_beta_ema", "fixed-seed0_ddpm250_beta_tilde_ema", "rho0-seed0_ddpm250_learned_ema",
                          "vsm-seed0_ddpm250_learned_ema"})
    fake_run(tmp_path, "20261202T000000Z-h200-def", {"fixed-seed1": {}, "rho0-seed1": {"status": "failed", "error": "boom"}},
             present={"fixed-seed1_ddpm250_beta_ema"})  # beta_tilde missing: fixed-seed1 is not complete
    (tmp_path / "shapes64" / "no-summary").mkdir()
    runs = full_runs.run_folders("shapes64", tmp_path)
    assert [r.name for r in runs] == ["20261201T000000Z-h100-abc", "20261202T000000Z-h200-def"]  # oldest first
    models = {m.name: m for m in full_runs.run_models(a)}
    assert models["fixed-seed0"].complete and models["rho0-seed0"].complete
    assert not models["vsm-seed0"].complete and models["vsm-seed0"].step == 40  # stopped by a deadline
    assert models["fixed-seed0"].primary == ("fixed-seed0_ddpm250_beta_ema", "fixed-seed0_ddpm250_beta_tilde_ema")
    assert set(models["fixed-seed0"].samples) == set(models["fixed-seed0"].primary)  # the noclip set is not on disk
    complete = full_runs.complete_models("shapes64", tmp_path)
    assert [(m.run_id[:8], m.name) for m in complete] == [("20261201", "fixed-seed0"), ("20261201", "rho0-seed0")]
    assert full_runs.used_seeds("shapes64", tmp_path) == {0, 1}
    assert full_runs.used_seeds("shapes64", tmp_path, complete_only=True) == {0}
    assert full_runs.run_folders("cards128", tmp_path) == [] and full_runs.used_seeds("shapes64", tmp_path / "none") == set()
    z = sample_store.load_npz_samples(a / "samples" / "rho0-seed0_ddpm250_learned_ema.npz")
    assert z["images"].dtype == np.uint8 and z["metadata"] == {"n": 3}
    with pytest.raises(FileNotFoundError, match="is missing"):
        sample_store.load_npz_samples(a / "samples" / "missing.npz")


def test_a_folder_that_is_not_a_window_summary_is_refused(tmp_path) -> None:
    run = tmp_path / "shapes64" / "r"
    run.mkdir(parents=True)
    (run / "summary.json").write_text(json.dumps({"format": "something else"}))
    with pytest.raises(ValueError, match="not a GPU-window summary"):
        full_runs.run_models(run)


def test_sample_names_are_the_full_profiles_npz_names() -> None:
    assert full_runs.sample_name("fixed", 0, variance="beta_tilde") == "fixed-seed0_ddpm250_beta_tilde_ema"
    assert full_runs.sample_name("vsm", 2, variance="learned", ckpt_step=1500) == "vsm-seed2_ddpm250_learned_ema_step1500"
    assert full_runs.sample_name("rho0", 1, "ddim", 50) == "rho0-seed1_ddim50_auto_ema"
    assert full_runs.sample_name("rho0", 1, variance="learned", weights="raw") == "rho0-seed1_ddpm250_learned_raw"
    assert full_runs.sample_name("fixed", 0, variance="beta", clip=False) == "fixed-seed0_ddpm250_beta_ema_noclip"
    # the one source of these names: the GPU script writes them with it, notebook 06's reader looks them up with it
    window = (ROOT / "benchmarks" / "gpu_window.py").read_text()
    assert "name = sample_name(spec.method, spec.seed, sampler, steps, var, weights, ckpt, clip, frac)" in window
    assert "sample_name(m.method, m.seed, \"ddpm\", cfg[\"ddpm_steps\"], v)" in (ROOT / "vsmlab" / "lab" / "shapes_study.py").read_text()
