"""benchmarks/gpu_window.py rehearsed end to end on the CPU with tiny settings (32 px, base 8, a few steps, 4 samples):
the files under --out and their limits, the summary, a model made to fail is named while the others finish, a
deadline hit mid-training still returns every model's weights with the step reached, unpack checks the manifest,
the reader sees the run, and a shipped weights file regenerates its sample set with the seed scheme. The rehearsals
run as on the GPU machine's Python image (benchmarks/device_image.py). Also: the pure-Python safetensors writer, the
5 MB rule for the 64-px GPU UNet, gpu_check's rate and its CPU rehearsal, bench_unet without diffusers."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from vsmlab.diffusion import checkpoints as ck
from vsmlab.lab import full_runs, sample_store

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu_window.py"
sys.path.insert(0, str(ROOT / "benchmarks"))
spec = importlib.util.spec_from_file_location("gpu_window", SCRIPT)
gw = importlib.util.module_from_spec(spec)
sys.modules["gpu_window"] = gw  # its dataclasses look their module up
spec.loader.exec_module(gw)
import device_image  # noqa: E402  (benchmarks/ is on sys.path)

TINY = ["--device", "cpu", "--modes", "eager", "graph", "--calib-seconds", "30", "--n", "4", "--n-sweep", "2",
        "--sample-batch", "4", "--sample-steps", "5", "--ddim-steps", "5", "--sweep-fracs", "0.5", "--log-every", "2",
        "--pack-seconds", "4", "--write-seconds", "1", "--sweep-seconds", "1", "--validate-workers", "0",
        "--set", "data.n=64", "--set", "data.size=32", "--set", "model.base_channels=8", "--set", "model.channel_mult=[1, 2]",
        "--set", "model.attention_resolutions=[]", "--set", "model.num_res_blocks=1", "--set", "diffusion.T=40",
        "--set", "train.batch_size=4", "--set", "train.warmup=2"]


def window(tmp: Path, *extra: str, base: list[str] = TINY) -> tuple[subprocess.CompletedProcess, Path, dict, float]:
    """One rehearsal, run as on the GPU machine's image (benchmarks/device_image.py: what it lacks fails to import)."""
    out, work = tmp / "out", tmp / "work"
    env = device_image.env_for(tmp / "guard", {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
                                                "PYTHONUNBUFFERED": "1"})
    t = time.time()
    res = subprocess.run([sys.executable, str(SCRIPT), "run", "--out", str(out), "--work", str(work), *base, *extra],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    wall = time.time() - t
    summary = json.loads((out / gw.SUMMARY_NAME).read_text()) if (out / gw.SUMMARY_NAME).exists() else {}
    return res, out, summary, wall


@pytest.fixture(scope="module")
def failing(tmp_path_factory):
    """fixed / rho0 / vsm x seeds 0, 1 in lockstep; rho0-seed1 made to fail at its first training step; validation
    in 2 worker processes (as on the GPU machine)."""
    tmp = tmp_path_factory.mktemp("gw_fail")
    res, out, summary, wall = window(tmp, "--methods", "fixed", "rho0", "vsm", "--seeds", "0", "1", "--train-seconds", "4",
                                     "--deadline", "150", "--fail", "rho0-seed1:1", "--validate-workers", "2")
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-4000:]
    return tmp, out, summary, wall, res.stdout


def check_out_limits(out: Path) -> list[Path]:
    files = sorted(out.iterdir())
    assert 1 <= len(files) <= 8 and all(p.is_file() for p in files)
    assert all(p.stat().st_size <= 16_000_000 for p in files)
    assert all(re.fullmatch(r"[A-Za-z0-9._-]+", p.name) for p in files)
    return files


@pytest.mark.slow
def test_rehearsal_trains_samples_validates_and_packs_within_the_limits(failing) -> None:
    tmp, out, s, wall, stdout = failing
    files = check_out_limits(out)
    assert {p.name for p in files} == {gw.SUMMARY_NAME, *s["packed"]} and s["left_out"] == []
    assert s["format"] == gw.FORMAT and s["device"] == "cpu" and s["torch"] == torch.__version__
    assert s["benchmark"] == "shapes32" and s["seeds"] == [0, 1] and s["commit"]["commit"] != "unknown"
    assert s["stages"]["total"] < 150 and {"setup", "preflight", "calibration", "lockstep", "train", "sample", "pack"} <= set(s["stages"])
    # calibration: eager measured, graph dropped with its error named (CUDA graphs need CUDA)
    modes = {r["mode"]: r for r in s["calibration"]["modes"]}
    assert modes["eager"]["img_per_s"] > 0 and 0 < modes["eager"]["mfu"] < 1
    assert "CUDA" in modes["graph"]["error"] and s["calibration"]["chosen"] == "eager"
    assert s["matmul"]["tflops"] > 0 and s["model"]["train_flops_per_image"] > 0
    assert s["preflight"]["weights_roundtrip"] == "ok" and s["preflight"]["sampling"].startswith("ok")
    # N from the measured lockstep rate; cosine to N
    n = s["steps_planned"]
    assert n >= 1 and s["steps_from"].startswith("measured") and s["lockstep"]["models"] == 6
    assert s["img_per_s_all"] > 0 and s["mfu_training"] > 0
    m = s["models"]
    assert m["rho0-seed1"]["status"] == "failed" and "injected failure" in m["rho0-seed1"]["error"]
    assert m["rho0-seed1"]["step"] == 0 and "rho0-seed1" in stdout
    others = [k for k in m if k != "rho0-seed1"]
    assert all(m[k]["status"] == "complete" and m[k]["step"] == n and m[k]["img_per_s"] > 0 for k in others)
    # every model's weights (the failed one's too: its last complete step), the primary sets of the others
    assert all(m[k]["weights_bytes"] > 0 for k in m)
    prim = [k for k in s["samples_planned"] if s["sample_sets"][k]["kind"] == "primary"]  # in priority order
    assert prim[:4] == ["fixed-seed0_ddpm5_beta_ema", "fixed-seed0_ddpm5_beta_tilde_ema", "rho0-seed0_ddpm5_learned_ema",
                        "vsm-seed0_ddpm5_learned_ema"]
    assert len(prim) == 7 and not any(e["model"] == "rho0-seed1" for e in s["sample_sets"].values())
    assert all(sum(e["categories"].values()) == e["n"] for e in s["sample_sets"].values())
    assert {"fixed-seed0_ddpm5_beta_ema_noclip", "vsm-seed0_ddpm5_learned_raw", "rho0-seed0_ddim5_auto_ema"} <= set(s["sample_sets"])
    assert s["sweeps"] == {"drawn": True, "option": "auto", "earlier_runs": []}  # the benchmark's first window
    ceiling = [n for n in s["samples_planned"] if s["sample_sets"][n]["kind"] == "ceiling"]  # learned variance, f = 0, 1
    assert ceiling == [f"{m}-seed{k}_ddpm5_learned_ema_frac{f}" for k in (0, 1) for m in ("rho0", "vsm") for f in (0, 1)
                       if f"{m}-seed{k}" != "rho0-seed1"]
    order = [s["sample_sets"][n]["kind"] for n in s["samples_planned"]]
    assert order.index("ceiling") > max(i for i, x in enumerate(order) if x == "primary")  # after every primary set
    assert min(i for i, x in enumerate(order) if x not in ("primary", "ceiling")) > max(
        i for i, x in enumerate(order) if x == "ceiling")  # before the sweeps
    with tarfile.open(out / "chunk_0.tar") as tar:
        names = tar.getnames()
    assert {"summary.json", "run.log", "models/vsm-seed1/config.toml", "models/vsm-seed1/log.jsonl",
            "weights/fixed-seed0.safetensors", "samples/vsm-seed1_ddpm5_learned_ema.npz"} <= set(names)


@pytest.mark.slow
def test_unpack_puts_the_run_in_runs_full_and_the_reader_and_seed_scheme_agree(failing) -> None:
    tmp, out, s, _, _ = failing
    into = tmp / "runs_full"
    assert gw.main(["unpack", str(out), "--into", str(into)]) == 0
    run = into / "shapes32" / s["run_id"]
    assert (run / "summary.json").is_file() and json.loads((run / "summary.json").read_text())["packed"] == s["packed"]
    with pytest.raises(SystemExit, match="exists"):  # never unpacked twice over
        gw.main(["unpack", str(out), "--into", str(into)])
    complete = full_runs.complete_models("shapes32", into)
    assert sorted(x.name for x in complete) == ["fixed-seed0", "fixed-seed1", "rho0-seed0", "vsm-seed0", "vsm-seed1"]
    assert full_runs.used_seeds("shapes32", into) == {0, 1}
    # a primary set: detector scores for every sample, x0_hat tails for the listed rows, categories
    z = sample_store.load_npz_samples(run / "samples" / "rho0-seed0_ddpm5_learned_ema.npz")
    assert z["images"].shape == (4, 32, 32) and z["images"].dtype == np.uint8
    assert z["x0hat_var_last10"].shape == (4,) and z["x0hat_var_t20_35"].shape == (4,)
    from vsmlab.data.shapes_validate import validate

    assert z["categories"].tolist() == [v.category for v in validate(z["images"])]  # the workers' verdicts, in order
    rows = z["trajectory_rows"].tolist()
    assert z["trajectory_x0_hat"].shape == (5, len(rows), 1, 32, 32) and z["trajectory_x0_hat"].dtype == np.uint8
    assert z["metadata"]["seed"] == 1000 and z["metadata"]["sampler"]["clip_x0"] is True
    # the shipped weights: float16 EMA of the last step, the config with train.steps = N and cosine decay
    w = ck.load_checkpoint(run / "weights" / "fixed-seed0.safetensors")
    assert w["dtype"] == "float16" and w["step"] == s["steps_planned"]
    assert w["config"]["train"]["steps"] == s["steps_planned"] and w["config"]["train"]["lr_decay"] == "cosine"
    # the seed scheme of `vsmlab sample`: the shipped weights regenerate the primary set here
    from vsmlab.diffusion.config import build_schedule, model_from_config
    from vsmlab.diffusion.samplers import ddpm

    model = model_from_config(w["model_kind"], w["model_config"])
    model.load_state_dict(w["ema"])
    g = torch.Generator().manual_seed(1000 * 1_000_003)
    x = ddpm(model.eval(), build_schedule(w["config"]), shape=(4, 1, 32, 32), generator=g, num_steps=5, clip_x0=True,
             variance="beta").samples
    again = ((x.double() + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)[:, 0].numpy()
    drawn = sample_store.load_npz_samples(run / "samples" / "fixed-seed0_ddpm5_beta_ema.npz")["images"]
    assert np.mean(again == drawn) > 0.99
    # a damaged transfer is refused: a file that differs from the manifest
    bad = tmp / "bad"
    shutil.copytree(out, bad)
    summary = json.loads((bad / gw.SUMMARY_NAME).read_text())
    summary["files"]["weights/vsm-seed0.safetensors"]["sha256"] = "0" * 64
    (bad / gw.SUMMARY_NAME).write_text(json.dumps(summary))
    with pytest.raises(SystemExit, match="differ from the summary"):
        gw.main(["unpack", str(bad), "--into", str(tmp / "runs_bad")])
    assert not (tmp / "runs_bad" / "shapes32" / s["run_id"]).exists()


@pytest.mark.slow
def test_unpack_keeps_the_tree_within_the_limit_by_keeping_sweep_sets_local(failing, tmp_path, capsys) -> None:
    """Unpacked into a repository whose tree would pass the limit, the run's sweep sets move (lowest priority first)
    to its git-ignored local/ folder until the tree fits; primary sets stay; the reader still finds every set."""
    tmp, out, s, _, _ = failing
    repo = tmp_path / "repo"
    repo.mkdir()
    shutil.copy(ROOT / ".gitignore", repo / ".gitignore")
    (repo / ".ci").mkdir()
    (repo / "big.bin").write_bytes(b"x" * 100_000)
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    subprocess.run(["git", "add", "."], cwd=repo, check=True)
    planned = s["samples_planned"]
    sweeps = [n for n in planned if s["sample_sets"][n]["kind"] != "primary"]
    need = sum(e["bytes"] for e in s["sample_sets"].values() if e["kind"] == "primary")
    run_bytes = sum(f["bytes"] for rel, f in s["files"].items() if not rel.startswith("weights/")) + 20_000
    limit = (100_000 + 200 + run_bytes - s["sample_sets"][sweeps[-1]]["bytes"] - 1) / 2**20  # one set too many
    assert gw.unpack(out, "runs/full", root=repo, limit_mib=limit) == 0
    run = repo / "runs" / "full" / "shapes32" / s["run_id"]
    summary = json.loads((run / "summary.json").read_text())
    moved = summary["kept_local"]["sets"]
    assert moved and moved == list(reversed(sweeps))[:len(moved)]  # lowest priority first
    assert all((run / "local" / "samples" / f"{n}.npz").is_file() and not (run / "samples" / f"{n}.npz").exists() for n in moved)
    listed = subprocess.run(["git", "ls-files", "--others", "--exclude-standard"], cwd=repo, capture_output=True, text=True).stdout
    assert "local/" not in listed and "weights/" not in listed and f"samples/{planned[0]}.npz" in listed  # primaries committed
    assert sum((repo / n).stat().st_size for n in [*listed.split(), "big.bin", ".gitignore"]) <= limit * 2**20
    models = {m.name: m for m in full_runs.run_models(run)}
    found = {n: p for m in models.values() for n, p in m.samples.items()}
    assert all(found[n].parent == run / "local" / "samples" for n in moved) and need > 0
    # on a checkout without local/ (a fresh clone), the notebook says why such a set is missing
    from vsmlab.lab.shapes_study import PROFILES, ShapesStudy

    shutil.rmtree(run / "local")
    study = ShapesStudy.open("full", {**PROFILES["full"], "size": 32}, repo)
    method, k, sampler, steps, variance, weights = re.fullmatch(r"(\w+)-seed(\d+)_([a-z]+)(\d+)_(\w+?)_(ema|raw)",
                                                                moved[0]).groups()
    capsys.readouterr()
    assert not study.drawn(method, int(k), variance, sampler=sampler, steps=int(steps), weights=weights)
    assert "kept on the machine that unpacked the run" in capsys.readouterr().out
    assert sorted(m.name for m in full_runs.complete_models("shapes32", repo / "runs" / "full")) == [
        "fixed-seed0", "fixed-seed1", "rho0-seed0", "vsm-seed0", "vsm-seed1"]


@pytest.mark.slow
def test_notebook_06s_full_profile_reads_the_unpacked_window(failing, capsys) -> None:
    """The rehearsal's run, unpacked into <root>/runs/full/shapes32/, is what ShapesStudy's full profile opens: the
    run sets the methods, seeds and sampler; the model whose training failed is left out and named; the weights load
    against the run's own config; sample sets are read from the run's files."""
    from vsmlab.lab.shapes_study import PROFILES, ShapesStudy

    tmp, out, s, _, _ = failing
    root = tmp / "repo"
    if not (root / "runs" / "full" / "shapes32" / s["run_id"]).exists():
        assert gw.main(["unpack", str(out), "--into", str(root / "runs" / "full")]) == 0
    cfg = {**PROFILES["full"], "size": 32}
    study = ShapesStudy.open("full", cfg, root)
    printed = capsys.readouterr().out
    assert study.methods == ["fixed", "rho0", "vsm"] and [r for r, _, _ in study.rows] == ["fixed", "fixed~", "rho0", "vsm"]
    assert cfg["seeds"] == [0] and cfg["extra_seeds"] == {"fixed": [1], "vsm": [1]}  # rho0-seed1 failed
    assert cfg["n"] == 4 and cfg["ddpm_steps"] == 5 and cfg["n_sweep"] == 2 and cfg["step_sweep"] == s["sweep_steps"]
    assert s["run_id"] in printed and "rho0-seed1 (failed" in printed
    assert sorted(study.loaded) == [("fixed", 0), ("fixed", 1), ("rho0", 0), ("vsm", 0), ("vsm", 1)]
    assert study.train_step("vsm", 1) == s["steps_planned"] and study.device_of_samples == "cpu"
    assert "5 models from the GPU windows' weights" in study.describe()
    primary = study.samples("rho0", 0, "learned", record_last=3)
    assert primary["images"].shape == (4, 32, 32) and primary["x0_hat"].shape[0] == 3
    assert set(primary["scores"]) == {"last 10 steps", "t in 20..35"}
    assert study.drawn("rho0", 0, "learned", weights="raw") and study.drawn("vsm", 1, "learned", variance_frac=1)
    forced = study.samples("vsm", 1, "learned", variance_frac=0)["images"]
    assert forced.shape == (4, 32, 32) and not study.drawn("rho0", 0, "learned", seed=7)
    # without the weights (they stay where the run was unpacked), the sample sets are still read
    for w in (root / "runs" / "full" / "shapes32" / s["run_id"] / "weights").glob("*.safetensors"):
        w.rename(w.with_suffix(".away"))
    bare = ShapesStudy.open("full", {**PROFILES["full"], "size": 32}, root)
    assert bare.loaded == {} and bare.cpu_methods == [] and bare.train_step("fixed", 0) == s["steps_planned"]
    assert "no weights on this machine" in bare.describe()
    assert bare.samples("fixed", 0, "beta_tilde")["images"].dtype == torch.uint8


@pytest.mark.slow
def test_a_deadline_mid_training_returns_every_models_weights_with_the_step_reached(failing, tmp_path) -> None:
    """N forced far beyond the deadline; --seeds auto takes the next seed the first window did not use."""
    tmp, out_a, s_a, _, _ = failing
    into = tmp / "runs_full_b"
    if not (into / "shapes32" / s_a["run_id"]).exists():
        gw.main(["unpack", str(out_a), "--into", str(into)])
    res, out, s, wall = window(tmp_path, "--methods", "fixed", "vsm", "--seeds", "auto", "--n-seeds", "1", "--runs-root",
                               str(into), "--steps", "100000", "--deadline", "55")
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-4000:]
    check_out_limits(out)
    assert s["seeds"] == [2] and s["seeds_auto"]["used_by_earlier_runs"] == [0, 1]
    # a later window: no sweeps (no snapshots, no sweep sets); its sampling time is for the primary sets
    assert s["sweeps"]["drawn"] is False and s["sweeps"]["earlier_runs"] == [s_a["run_id"]] and s["sweep_steps"] == []
    assert {e["kind"] for e in s["sample_sets"].values()} <= {"primary", "ceiling"}
    assert s["steps_planned"] == 100000 and "hard stop" in s["training_stopped"]
    steps = {k: v["step"] for k, v in s["models"].items()}
    assert set(steps) == {"fixed-seed2", "vsm-seed2"} and len(set(steps.values())) == 1  # stopped at the same step
    assert all(1 <= v < 100000 and s["models"][k]["status"] == "stopped" for k, v in steps.items())
    assert any("training" in x for x in s["not_done"])
    assert s["stages"]["total"] <= 55 and wall < 75
    names = []
    for c in s["packed"]:
        with tarfile.open(out / c) as tar:
            tar.extractall(tmp_path / "x", filter="data")
            names += tar.getnames()
    for k, v in steps.items():
        w = ck.load_checkpoint(tmp_path / "x" / "weights" / f"{k}.safetensors")
        assert w["step"] == v and w["config"]["train"]["steps"] == 100000


def test_the_pure_python_safetensors_writer_matches_the_package(tmp_path) -> None:
    from vsmlab.diffusion.config import build_model, load_config

    cfg = load_config(ROOT / "configs" / "shapes-rho0-gpu.toml", ["model.base_channels=8", "model.channel_mult=[1, 2]",
                                                                  "data.size=32", "model.attention_resolutions=[]"])
    model = build_model(cfg, (1, 1, 32, 32))
    payload = {"config": cfg, "model_kind": "unet", "model_config": model.config, "step": 7, "ema": model.state_dict()}
    write, label = gw.weights_writer()
    assert label.startswith("safetensors")
    real = tmp_path / "a.safetensors"
    real.write_bytes(write(payload))
    py = tmp_path / "b.safetensors"
    meta = {"format": ck.WEIGHTS_FORMAT, "version": "1", "model_kind": "unet",
            "model_config": json.dumps(model.config, sort_keys=True), "config": json.dumps(cfg, sort_keys=True),
            "step": "7", "dtype": "float16"}
    py.write_bytes(gw._safetensors_py({k: v.half() for k, v in model.state_dict().items()}, meta))
    a, b = ck.load_checkpoint(real), ck.load_checkpoint(py)
    assert a["step"] == b["step"] == 7 and a["config"] == b["config"] and a["model_config"] == b["model_config"]
    assert a["ema"].keys() == b["ema"].keys() and all(torch.equal(a["ema"][k], b["ema"][k]) for k in a["ema"])
    assert abs(py.stat().st_size - real.stat().st_size) < 4096


def test_the_64px_gpu_unet_ships_under_5_mb_in_float16() -> None:
    from vsmlab.diffusion.config import build_model, load_config

    for method in ("fixed", "vsm"):
        cfg = load_config(ROOT / "configs" / f"shapes-{method}-gpu.toml")
        model = build_model(cfg, (1, 1, 64, 64))
        data = ck.weights_bytes({"config": cfg, "model_kind": "unet", "model_config": model.config, "step": 6000,
                                 "ema": model.state_dict()}, "float16")
        assert 4_500_000 < len(data) < 5_000_000, (method, len(data))  # ~2.4M parameters x 2 bytes


def test_unpack_refuses_a_folder_without_chunks_or_summary(tmp_path) -> None:
    with pytest.raises(SystemExit, match="no chunk_"):
        gw.main(["unpack", str(tmp_path)])
    with tarfile.open(tmp_path / "chunk_0.tar", "w"):
        pass
    with pytest.raises(SystemExit, match="no GPU-window summary"):
        gw.main(["unpack", str(tmp_path), "--into", str(tmp_path / "x")])


def test_gitignore_tracks_runs_full_but_not_other_runs_nor_window_weights() -> None:
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("needs a git checkout")
    paths = ["runs/full/shapes64/r/summary.json", "runs/full/shapes64/r/samples/a.npz", "runs/full/shapes64/r/weights/a.safetensors",
             "runs/shapes32-notebook/latest.pt", "runs/full06/full06.json", "build/pydeps/safetensors/__init__.py"]
    res = subprocess.run(["git", "check-ignore", "--no-index", *paths], cwd=ROOT, capture_output=True, text=True)
    assert set(res.stdout.split()) == set(paths) - {"runs/full/shapes64/r/summary.json", "runs/full/shapes64/r/samples/a.npz"}


def test_gpu_check_reads_the_rate_from_what_the_cli_writes(tmp_path) -> None:
    spec_ = importlib.util.spec_from_file_location("gpu_check", ROOT / "benchmarks" / "gpu_check.py")
    gc_ = importlib.util.module_from_spec(spec_)
    spec_.loader.exec_module(gc_)
    run = tmp_path / "run"
    run.mkdir()
    (run / "log.jsonl").write_text("".join(json.dumps({"step": s, "lr": 1e-3, "total": 0.5, "grad_norm": 1.0}) + "\n"
                                           for s in (50, 100, 150, 200)))
    from vsmlab.diffusion.config import format_config, load_config

    # a run folder's config.toml is the resolved config (every key, no base)
    (run / "config.toml").write_text(format_config(load_config(ROOT / "configs" / "shapes-fixed-gpu.toml"), comments=False))
    assert gc_.train_rate(run, 32.0) == {"steps": 200, "batch_size": 128, "img_per_s_wall": 800.0}
    assert gc_.train_rate(tmp_path / "none", 10.0) == {"steps": None, "batch_size": None, "img_per_s_wall": None}
    assert "img_per_s\")" not in (ROOT / "benchmarks" / "gpu_check.py").read_text()


def test_bench_unet_skips_the_peer_without_diffusers(monkeypatch, capsys) -> None:
    spec_ = importlib.util.spec_from_file_location("bench_unet", ROOT / "benchmarks" / "bench_unet.py")
    bu = importlib.util.module_from_spec(spec_)
    spec_.loader.exec_module(bu)
    monkeypatch.setitem(sys.modules, "diffusers", None)  # import diffusers -> ImportError, as on the GPU image
    assert bu.peer_missing() is not None
    bu.main(["--device", "cpu", "--sizes", "32", "--base", "32", "--batch", "1", "--steps", "1", "--repeats", "1"])
    text = capsys.readouterr().out
    assert "peer rows skipped" in text and re.search(r"^\s+32 lab UNet", text, re.M)
    assert not re.search(r"^\s+32 diffusers", text, re.M) and "lab / diffusers" not in text


def test_the_commit_is_pinned_from_git_or_from_the_carried_pin_file(tmp_path, monkeypatch) -> None:
    assert gw.git_pin()["source"] == "git" and len(gw.git_pin()["commit"]) == 40

    def no_git(*args, **kwargs):
        raise OSError("no git on the GPU machine")

    monkeypatch.setattr(gw.subprocess, "run", no_git)
    monkeypatch.setattr(gw, "PIN", tmp_path / "pin.json")
    assert gw.git_pin()["commit"] == "unknown" and "prepare" in gw.git_pin()["source"]
    (tmp_path / "pin.json").write_text(json.dumps({"commit": "ab" * 20, "dirty": ["x.py"]}))
    assert gw.git_pin() == {"commit": "ab" * 20, "dirty": ["x.py"], "source": "build/gpu_window/pin.json (prepare)"}
    assert gw.device_tag("NVIDIA H100 80GB HBM3") == "h100" and gw.device_tag("NVIDIA H200") == "h200"
    assert gw.device_tag("cpu") == "cpu"


def fake_window(monkeypatch, rows: dict, free_bytes: int | None, **opts):
    """A Window with six planned models whose calibration returns ``rows`` (a mode -> row, or an exception)."""
    import argparse

    args = argparse.Namespace(deadline=10_000, modes=list(rows), calib_seconds=40, mode_seconds=4.0, memory_fraction=0.85,
                              train_seconds=300, pack_seconds=25, sweep_seconds=40, **opts)
    w = gw.Window(args)
    w.torch, w.device = torch, torch.device("cpu")
    for k in (0, 1):
        for m in ("fixed", "rho0", "vsm"):
            w.specs[f"{m}-seed{k}"] = gw.Spec(f"{m}-seed{k}", m, k, {})
            w.summary["models"][f"{m}-seed{k}"] = {"method": m, "seed": k}

    def measure(mode):
        if isinstance(rows[mode], Exception):
            raise rows[mode]
        return {"mode": mode, **gw.MODES[mode], "mfu": 0.1, **rows[mode]}

    monkeypatch.setattr(w, "measure_mode", measure)
    monkeypatch.setattr(w, "free_memory", lambda: free_bytes)
    monkeypatch.setattr(w, "cuda_alive", lambda: None)
    return w


def test_calibration_drops_failing_modes_skips_what_the_budget_cannot_hold_and_weighs_compile_time(monkeypatch) -> None:
    rows = {"eager": {"img_per_s": 1000.0, "setup_s": 1.0, "peak_mib": 3000.0},
            "graph": {"img_per_s": 2000.0, "setup_s": 2.0, "peak_mib": 3000.0},
            "graph+cl": torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"),
            "compile+graph": {"img_per_s": 3000.0, "setup_s": 60.0, "setup_next_s": 10.0, "peak_mib": 2500.0}}
    w = fake_window(monkeypatch, rows, 80 * 2**30)
    w.calibrate()
    table = {r["mode"]: r for r in w.summary["calibration"]["modes"]}
    assert table["graph+cl"]["error"].startswith("OutOfMemoryError: CUDA out of memory")  # dropped, named
    assert "calibration budget" in table["compile+graph"]["skipped"]  # a first compile (~45 s guessed) > 40 s budget
    assert w.mode == "graph" and w.summary["calibration"]["chosen"] == "graph"
    # with the budget for it, compile+graph is measured, but its compile time in the window (60 s cold for the fixed
    # model's graph + 6 x 10 s) costs more images than its speed gains: 3000 x 180 < 2000 x 288
    w = fake_window(monkeypatch, rows, 80 * 2**30)
    w.args.calib_seconds = 200
    w.calibrate()
    table = {r["mode"]: r for r in w.summary["calibration"]["modes"]}
    assert table["compile+graph"]["setup_window_est_s"] == 120.0 and w.mode == "graph"
    rows["compile+graph"]["img_per_s"] = 4000.0  # 4000 x 180 > 2000 x 288
    w = fake_window(monkeypatch, rows, 80 * 2**30)
    w.args.calib_seconds = 200
    w.calibrate()
    assert w.mode == "compile+graph" and len(w.specs) == 6


def test_when_no_mode_fits_every_model_the_last_seeds_models_are_named_as_not_trained(monkeypatch) -> None:
    rows = {"eager": {"img_per_s": 1000.0, "setup_s": 1.0, "peak_mib": 2000.0},
            "graph": {"img_per_s": 2000.0, "setup_s": 2.0, "peak_mib": 2400.0}}
    w = fake_window(monkeypatch, rows, 10 * 2**30)  # 8.5 GiB usable: 4 models of 2000 MiB, not 6
    w.calibrate()
    assert w.mode == "eager" and list(w.specs) == ["fixed-seed0", "rho0-seed0", "vsm-seed0", "fixed-seed1"]
    assert w.summary["models"]["vsm-seed1"]["status"] == "not trained"
    assert any("rho0-seed1: not trained" in x for x in w.summary["not_done"])
    w = fake_window(monkeypatch, {"graph": RuntimeError("capture failed")}, None)
    with pytest.raises(RuntimeError, match="no training mode ran: graph: RuntimeError: capture failed"):
        w.calibrate()


def test_a_model_failing_in_the_lockstep_measurement_is_rebuilt_eagerly_and_measured_again(monkeypatch) -> None:
    w = fake_window(monkeypatch, {}, None)
    w.mode, w.flops_img, w.peak_flops = "graph", 1e9, 1e12

    class FakeTrainer:
        def __init__(self):
            self.loaded = None

        def load_state_dict(self, state):
            self.loaded = state

    warmed = []

    def warm(spec, modes, snapshots):
        warmed.append((spec.name, modes))
        spec.trainer, spec.mode, spec.setup_s = FakeTrainer(), modes[0], 1.0
        spec.cfg = {"train": {"batch_size": 128}}
        snapshots[spec.name] = {"step": 0, "of": spec.name, "mode": modes[0]}

    calls = []

    def lockstep(live):
        calls.append(sorted(live))
        if len(calls) == 1:
            return 0.0, 0, {"vsm-seed1": RuntimeError("operation not permitted when stream is capturing")}
        return 10.0, 40, {}

    monkeypatch.setattr(w, "warm", warm)
    monkeypatch.setattr(w, "lockstep", lockstep)
    w.build_all()
    assert warmed[-1] == ("vsm-seed1", ["eager"]) and len(calls) == 2 and w.rounds_per_s == 10.0
    assert w.specs["vsm-seed1"].mode == "eager" and w.summary["lockstep"]["modes"]["vsm-seed1"] == "eager"
    assert all(s.trainer.loaded == {"step": 0, "of": n, "mode": s.mode} for n, s in w.specs.items())  # back at step 0
    assert w.summary["lockstep"]["img_per_s_all"] == 10.0 * 6 * 128


def test_the_device_image_guard_refuses_what_the_image_lacks_unless_it_travels_vendored(tmp_path) -> None:
    blocked = device_image.blocked_modules()
    assert {"papermill", "ipywidgets", "chess", "diffusers", "nbformat", "IPython"} <= set(blocked)
    assert not {"torch", "numpy", "scipy", "matplotlib", "seaborn", "tqdm", "safetensors", "vsmlab", "pytest"} & set(blocked)
    vendored = tmp_path / "pydeps" / "chess"
    vendored.mkdir(parents=True)
    (vendored / "__init__.py").write_text("VENDORED = True\n")
    code = ("import numpy, torch, safetensors, vsmlab.diffusion.config\nimport chess\nprint('chess', chess.VENDORED)\n"
            "try:\n    import papermill\nexcept ModuleNotFoundError as e:\n    print('refused', e.name)\n")
    res = subprocess.run([sys.executable, "-c", code], env=device_image.env_for(tmp_path / "g", allowed=tmp_path / "pydeps"),
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.split("\n")[:2] == ["chess True", "refused papermill"]
    res = subprocess.run([sys.executable, "-c", "import chess"], env=device_image.env_for(tmp_path / "g2", allowed=tmp_path / "none"),
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 1 and "not on the GPU machine's image" in res.stderr
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "sitecustomize.py").write_text("print('a user file')\n")
    with pytest.raises(FileExistsError, match="sitecustomize.py this script did not write"):
        device_image.guard_dir(mine)
    assert (mine / "sitecustomize.py").read_text() == "print('a user file')\n"  # never replaced
    assert device_image.guard_dir(tmp_path / "g") == tmp_path / "g"  # its own guard is rewritten


@pytest.mark.slow
def test_gpu_check_rehearses_every_step_on_the_cpu_as_on_the_device_image(tmp_path) -> None:
    env = device_image.env_for(tmp_path / "guard", {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"})
    res = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--rehearse", "--out", str(tmp_path / "out")],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    summary = json.loads((tmp_path / "out" / "gpu_check.json").read_text())
    assert summary["failed_steps"] == [] and summary["train"]["steps"] == 3
    assert summary["sample"]["exit"] == 0 and summary["bench_unet"]["exit"] == 0 and '"n": 8' in summary["validate"]
    assert "peer rows skipped" in (tmp_path / "out" / "bench_unet.log").read_text()  # no diffusers on the image


CHESS = ["--bench", "chess", "--methods", "fixed", "rho0", "vsm", "--seeds", "0", "--steps", "2", "--log-every", "1",
         "--n", "2", "--n-sweep", "2", "--sample-batch", "2", "--sample-steps", "3", "--deadline", "300", "--train-seconds", "60",
         "--validate-workers", "2", "--set", "data.n=16", "--set", "train.batch_size=2"]


@pytest.fixture(scope="module")
def chess_window(tmp_path_factory):
    """A chess window at the real 128 px (tiny UNet): notebook 07's sets, the device's tiles, chess validated there
    (python-chess vendored in build/pydeps, as the GPU machine's image lacks it)."""
    tmp = tmp_path_factory.mktemp("gw_chess")
    if not (device_image.PYDEPS / "chess").is_dir():
        assert gw.main(["prepare"]) == 0
    i = TINY.index("data.size=32")
    args = TINY[:i - 1] + TINY[i + 1:]  # the real 128 px: chess boards are read from 16-px squares
    res, out, summary, _ = window(tmp, *CHESS, base=args)
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-4000:]
    return tmp, out, summary


@pytest.mark.slow
def test_a_chess_window_draws_notebook_07s_sets_and_validates_them_on_the_device(chess_window) -> None:
    tmp, out, s = chess_window
    assert s["benchmark"] == "chess128" and s["options"]["n"] == 2 and not s["options"]["ceiling"]
    assert all(m["status"] == "complete" and m["step"] == 2 for m in s["models"].values())
    kinds = {n: e["kind"] for n, e in s["sample_sets"].items()}
    assert sorted(n for n, k in kinds.items() if k == "primary") == [  # one primary set per model (fixed: beta)
        "fixed-seed0_ddpm3_beta_ema", "rho0-seed0_ddpm3_learned_ema", "vsm-seed0_ddpm3_learned_ema"]
    assert set(kinds.values()) == {"primary", "train_step"} and s["sweep_steps"] == [1]  # no ceiling, noclip, raw, DDIM
    for e in s["sample_sets"].values():  # chess rules read on the device: "valid" or the rules a board breaks
        assert sum(e["categories"].values()) == e["n"] and all(c == "valid" or "_" in c for c in e["categories"])
    assert "chess_tiles_128.npy" in s["files"] and s["primary_rows_kept"] == "all"
    with np.load(tmp / "work" / "run" / "samples" / "vsm-seed0_ddpm3_learned_ema.npz") as z:
        assert z["images"].shape == (2, 128, 128, 3) and "trajectory_x0_hat" not in z.files  # no detector scores


@pytest.mark.slow
def test_notebook_07s_full_profile_reads_the_window_and_unpack_keeps_even_primary_sets_local_when_needed(
        chess_window, tmp_path, capsys) -> None:
    from vsmlab.lab.semantic_study import PROFILES, SemanticStudy

    _, out, s = chess_window
    repo = tmp_path / "repo"
    (repo / ".ci").mkdir(parents=True)
    shutil.copy(ROOT / ".gitignore", repo / ".gitignore")
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    limit = 0.01  # MiB: below even the summary, so every set goes to local/, primary sets last
    assert gw.unpack(out, "runs/full", root=repo, limit_mib=limit) == 0
    printed = capsys.readouterr().out
    run = repo / "runs" / "full" / "chess128" / s["run_id"]
    moved = json.loads((run / "summary.json").read_text())["kept_local"]["sets"]
    assert len(moved) == len(s["sample_sets"]) and [s["sample_sets"][n]["kind"] for n in moved][-3:] == ["primary"] * 3
    assert "3 of them primary: their models are complete on this machine only" in printed and "OVER THE LIMIT" in printed
    shutil.copytree(run, repo / "runs" / "full" / "cards128" / s["run_id"])  # the study reads both benchmarks
    sem = SemanticStudy.open("full", dict(PROFILES["full"]), repo)
    assert sem.chess_methods == ("fixed", "rho0", "vsm")
    files = sem.primary_files("chess", [(m, 0) for m in sem.chess_methods], {})
    assert all(p.parent == run / "local" / "samples" and p.is_file() for p in files.values())
    from vsmlab.lab.sample_store import load_sample_images

    imgs, meta = load_sample_images(files[("vsm", 0)])
    assert imgs.shape == (2, 3, 128, 128) and meta["checkpoint_step"] == 2 and meta["sampler"]["clip_x0"]
    assert set(sem.gpu_sweep_files("chess")) == {("fixed", 1), ("rho0", 1), ("vsm", 1)}
    assert sem.chess_templates(128) is not None and sem.trained_steps("chess", "rho0") == 2
    assert sem.log_path("chess", "vsm", {}).is_file()
    shutil.rmtree(run / "local")  # a fresh checkout: the sets are not there, the models are not complete here
    with pytest.raises(FileNotFoundError, match="no complete seed-0 model of chess128"):
        SemanticStudy.open("full", dict(PROFILES["full"]), repo)
    assert "its primary sets are not on this machine" in capsys.readouterr().out


def test_each_benchmarks_validator_passes_its_real_images() -> None:
    from vsmlab.data import cards as C
    from vsmlab.data import chessboards as CB

    cards, _ = C.make_cards(4, 0, True, "train", 128)
    nhwc = cards.permute(0, 2, 3, 1).contiguous().numpy()  # as the window writes RGB sets
    assert gw.verdicts("cards", nhwc) == ["valid"] * 4
    bad = nhwc.copy()
    bad[0, :64, :64] = 255  # a blank quadrant: no card there
    assert gw.verdicts("cards", bad)[0] != "valid" and gw.verdicts("cards", bad)[1:] == ["valid"] * 3
    classes = np.stack([CB.placement_to_classes(p) for p in CB.random_positions(3, seed=0)])
    boards = CB.render_boards(classes, CB.lab_tiles(128))  # [3, 128, 128, 3] uint8, as the window writes them
    assert gw.verdicts("chess", boards) == ["valid"] * 3
    boards[0, :16, :16] = 0  # a black blot on a8: no tile reads it
    assert gw.verdicts("chess", boards)[0].startswith("unreadable")


def test_primary_sets_too_large_for_a_chunk_all_keep_the_same_first_samples(tmp_path) -> None:
    """Noisy 128-px RGB sets compress poorly: every primary set is cut to the same first k samples so that each one
    travels in a chunk; the summary says so and recounts the device's verdicts of the rows kept."""
    import argparse
    import threading

    w = gw.Window.__new__(gw.Window)
    w.args = argparse.Namespace(chunk_bytes=300_000)
    w.lock, w.log, w.run_dir = threading.Lock(), (lambda msg: None), tmp_path / "run"
    (w.run_dir / "samples").mkdir(parents=True)
    rng = np.random.default_rng(0)
    w.summary = {"not_done": [], "sample_sets": {}}
    for name, kind in (("a", "primary"), ("b", "primary"), ("c", "train_step")):
        cats = np.asarray(["valid", "blank"] * 10)
        np.savez_compressed(w.run_dir / "samples" / f"{name}.npz", images=rng.integers(0, 256, (20, 64, 64, 3), dtype=np.uint8),
                            categories=cats, metadata=np.asarray("{}"))
        w.summary["sample_sets"][name] = {"kind": kind, "n": 20, "categories": {"blank": 10, "valid": 10}, "valid_fraction": 0.5}
    w.cap_primary()
    k = w.summary["primary_rows_kept"]
    assert isinstance(k, int) and 1 <= k < 20 and "first" in w.summary["not_done"][0]
    for name in ("a", "b"):
        e = w.summary["sample_sets"][name]
        assert e["n"] == k and e["n_drawn"] == 20 and sum(e["categories"].values()) == k
        assert (w.run_dir / "samples" / f"{name}.npz").stat().st_size <= 300_000
        assert np.load(w.run_dir / "samples" / f"{name}.npz")["images"].shape[0] == k
    assert np.load(w.run_dir / "samples" / "c.npz")["images"].shape[0] == 20  # only primary sets are cut
    w.summary = {"not_done": [], "sample_sets": {"c": {"kind": "primary", "n": 20}}}
    w.args.chunk_bytes = 10**8
    w.cap_primary()
    assert w.summary["primary_rows_kept"] == "all" and not w.summary["not_done"]
