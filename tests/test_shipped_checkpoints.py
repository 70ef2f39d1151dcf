"""The shipped SimpleShapes checkpoints (checkpoints/shapes32/) are what their manifest says: each file's
SHA-256 and size, a config equal to the one notebook 06 would train for that method and seed, the step,
and the weights it keeps (EMA-only files refuse raw weights)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vsmlab.diffusion.checkpoints import CheckpointError
from vsmlab.lab import shapes_study as study

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "checkpoints" / "shapes32"
METHOD_CONFIGS = {"fixed": ("fixed", ()), "rho0": ("rho0", ()), "vsm": ("vsm", ()), "vsm10": ("vsm", ("loss.rho=10.0",))}
MANIFEST = json.loads((SHIPPED / "manifest.json").read_text()) if (SHIPPED / "manifest.json").exists() else {}
FILES = sorted(k for k in MANIFEST if k.endswith(".pt"))


def test_manifest_lists_every_shipped_file() -> None:
    on_disk = sorted(str(p.relative_to(SHIPPED)) for p in SHIPPED.glob("*/*.pt"))
    assert on_disk == FILES
    assert FILES, "no shipped checkpoints"


@pytest.mark.parametrize("name", FILES)
def test_shipped_checkpoint_matches_manifest_and_config(name: str) -> None:
    entry, path = MANIFEST[name], SHIPPED / name
    assert path.stat().st_size == entry["bytes"] <= 5_000_000
    assert study.file_sha256(path) == entry["sha256"]
    run = name.split("/")[0]
    method, seed = run.rsplit("-seed", 1)
    stem, extra = METHOD_CONFIGS[method]
    spec = study.Spec(method, f"configs/shapes-{stem}-cpu.toml", int(seed), extra)
    expected = study.spec_config(spec, ROOT)
    loaded = study.load_checkpoint_model(path, expected, "ema", image_size=32)  # CheckpointError on any config drift
    assert loaded.step == entry["step"]
    if name.endswith("latest.pt"):
        assert loaded.step == expected["train"]["steps"]
        assert study.load_checkpoint_model(path, expected, "raw", image_size=32).step == loaded.step
    else:
        with pytest.raises(CheckpointError, match="keeps only EMA weights"):
            study.load_checkpoint_model(path, expected, "raw")
