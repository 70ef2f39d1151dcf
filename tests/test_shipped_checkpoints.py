"""The shipped checkpoints (checkpoints/shapes32/ for notebook 06, checkpoints/cards64/ and chess128/ for notebook 07) are what
their manifests say: each file's SHA-256 and size, a config equal to the one the notebook would train for that
method and seed, the step, and the weights it keeps (EMA weights only, safetensors, float16 upcast on load)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from vsmlab.diffusion.checkpoints import CheckpointError
from vsmlab.lab import study
from vsmlab.lab.shapes_study import METHOD_CONFIGS

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "checkpoints" / "shapes32"
MANIFEST = json.loads((SHIPPED / "manifest.json").read_text()) if (SHIPPED / "manifest.json").exists() else {}
SUFFIX = ".safetensors"
FILES = sorted(k for k in MANIFEST if k.endswith(SUFFIX))


def check_file(path: Path, name: str, entry: dict, expected: dict, size: int) -> None:
    """Size and SHA-256 as in the manifest entry; loads with the expected config at ``size``; step as recorded
    (latest: the config's final step); EMA weights only (raw refused), stored as the manifest's dtype."""
    assert path.stat().st_size == entry["bytes"] <= 5_000_000
    assert study.file_sha256(path) == entry["sha256"]
    loaded = study.load_checkpoint_model(path, expected, "ema", image_size=size)
    assert loaded.step == entry["step"]
    assert entry["weights"] == "ema" and entry["dtype"] in ("float16", "float32")
    assert all(p.dtype == torch.float32 for p in loaded.model.parameters())
    if name.endswith("latest" + SUFFIX):
        assert loaded.step == expected["train"]["steps"]
    with pytest.raises(CheckpointError, match="keeps only EMA weights"):
        study.load_checkpoint_model(path, expected, "raw")


def test_manifest_lists_every_shipped_file() -> None:
    on_disk = sorted(str(p.relative_to(SHIPPED)) for p in SHIPPED.glob("*/*") if p.name != "log.jsonl")
    assert on_disk == FILES
    assert FILES, "no shipped checkpoints"


@pytest.mark.parametrize("name", FILES)
def test_shipped_checkpoint_matches_manifest_and_config(name: str) -> None:
    entry, path = MANIFEST[name], SHIPPED / name
    run = name.split("/")[0]
    method, seed = run.rsplit("-seed", 1)
    stem, extra = METHOD_CONFIGS[method]
    model = study.Model(method, int(seed), f"configs/shapes-{stem}-cpu.toml", extra)
    expected = study.Study(ROOT, ROOT / "runs").config(model)
    check_file(path, name, entry, expected, 32)  # CheckpointError on any config drift


# notebook 07: Cards arms and further seeds, and the CPU chess pilot
SEMANTIC = {
    "cards64": dict(bench="cards", size=64, runs=["fixed-seed0", "rho0-seed0", "rho0-seed1", "rho0-seed2", "vsm-seed0",
                                                   "vsm-seed1", "vsm-seed2", "vsm10-seed0", "vsm10-seed1", "vsm10-seed2"]),
    "chess128": dict(bench="chess", size=128, runs=["rho0-seed0", "vsm-seed0"]),
}


def _manifest(name: str) -> dict:
    path = ROOT / "checkpoints" / name / "manifest.json"
    return json.loads(path.read_text()) if path.exists() else {}


SEMANTIC_FILES = [(name, k) for name in SEMANTIC for k in sorted(_manifest(name)) if k.endswith(SUFFIX)]


@pytest.mark.parametrize("name", sorted(SEMANTIC))
def test_semantic_manifest_lists_every_shipped_file_and_log(name: str) -> None:
    folder, files = ROOT / "checkpoints" / name, sorted(k for k in _manifest(name) if k.endswith(SUFFIX))
    assert sorted(str(p.relative_to(folder)) for p in folder.glob("*/*") if p.name != "log.jsonl") == files
    runs = sorted({k.split("/")[0] for k in files})
    assert runs == SEMANTIC[name]["runs"]  # what notebook 07 loads
    assert all((folder / r / "log.jsonl").is_file() for r in runs)
    assert set(json.loads((folder / "training_times.json").read_text())) == set(runs)


@pytest.mark.parametrize(("name", "file"), SEMANTIC_FILES)
def test_shipped_semantic_checkpoint_matches_manifest_and_config(name: str, file: str) -> None:
    bench, size = SEMANTIC[name]["bench"], SEMANTIC[name]["size"]
    path = ROOT / "checkpoints" / name / file
    method, seed = file.split("/")[0].split("-seed")
    stem, extra = METHOD_CONFIGS[method]
    model = study.Model(method, int(seed), f"configs/{bench}-{stem}-cpu.toml", extra)
    expected = study.Study(ROOT, ROOT / "runs").config(model)
    assert study.check_shipped(path, expected, image_size=size) == path  # CheckpointError on config drift
    check_file(path, file, _manifest(name)[file], expected, size)
