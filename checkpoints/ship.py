"""Ship the EMA weights of finished CPU runs into checkpoints/<set>/ as safetensors, with a manifest.

    python checkpoints/ship.py cards64                  # runs/cards64/<method>-seed<k>/ -> checkpoints/cards64/
    python checkpoints/ship.py chess128                 # the CPU chess pilot of notebook 07
    python checkpoints/ship.py shapes32 fixed-seed1     # add (or replace) one run; the other entries are kept
    python checkpoints/ship.py --from-shipped shapes32  # re-encode the shipped files (e.g. an older format)

For each run folder ``runs/<set>/<method>-seed<k>`` with a line ``<method>-seed<k> rc=0 wall=<seconds>`` in
``runs/<set>-logs/times.txt`` (all of them, or only the runs named): ``latest.safetensors`` holds the final EMA
weights, and for seed 0 of the methods listed in SETS the ``step_NNNNNNN.safetensors`` files the notebooks
sweep over; Cards and chess runs also ship their ``log.jsonl`` (notebook 07 plots it). Weights are stored in
float16 (:data:`DTYPE`; loading upcasts to float32) with the model and training config in the file's
header (:func:`vsmlab.diffusion.checkpoints.save_weights`). ``manifest.json`` records every file's step,
size, SHA-256, dtype and source, the exact training command and the resolved config;
``training_times.json`` the wall times. Each file must stay <= 5 MB.

``--from-shipped`` reads the files already in ``checkpoints/<set>/`` (``*.pt`` slim checkpoints or
``*.safetensors``) instead of ``runs/``; the commands, configs and times in the manifest are kept.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path

from vsmlab.diffusion import checkpoints as ck
from vsmlab.lab.study import file_sha256

ROOT = Path(__file__).resolve().parents[1]
SETS = {
    "cards64": dict(configs={**{m: f"configs/cards-{m}-cpu.toml" for m in ("fixed", "rho0", "vsm")},
                             "vsm10": "configs/cards-vsm-cpu.toml --set loss.rho=10.0"},
                    sweep_steps=(1000, 4000), sweep_methods=("fixed", "rho0", "vsm"), seed_flag=False),
    "chess128": dict(configs={m: f"configs/chess-{m}-cpu.toml" for m in ("rho0", "vsm")},
                     sweep_steps=(1500, 3000), sweep_methods=("rho0", "vsm"), seed_flag=True),
    "shapes32": dict(configs={"fixed": "configs/shapes-fixed-cpu.toml", "rho0": "configs/shapes-rho0-cpu.toml",
                              "vsm": "configs/shapes-vsm-cpu.toml", "vsm10": "configs/shapes-vsm-cpu.toml --set loss.rho=10.0"},
                     sweep_steps=(1000, 3000), sweep_methods=("fixed", "rho0", "vsm"), seed_flag=True),
}
LIMIT = 5_000_000
DTYPE = "float16"


def _write(src: Path, out: Path, made_from: str) -> dict:
    payload = ck.load_checkpoint(src)
    size = ck.save_weights(out, payload, DTYPE)
    if size > LIMIT:
        raise SystemExit(f"{out}: {size} bytes, over the {LIMIT} byte limit")
    return dict(step=int(payload["step"]), bytes=size, sha256=file_sha256(out), weights="ema", dtype=DTYPE,
                made_from=made_from)


def _files(run: Path, method: str, seed: str, spec: dict) -> list[tuple[str, Path]]:
    """[(shipped name, source file)] of one run: latest, plus the sweep's step files for seed 0."""
    found = {p.stem: p for p in run.iterdir() if p.suffix in (".pt", ck.WEIGHTS_SUFFIX)}
    names = ["latest"]
    if seed == "0" and method in spec["sweep_methods"]:
        names += [ck.step_path(run, s).stem for s in spec["sweep_steps"] if ck.step_path(run, s).stem in found]
    return [(f"{n}{ck.WEIGHTS_SUFFIX}", found[n]) for n in names]


def ship(name: str, only: list[str], from_shipped: bool = False) -> None:
    spec = SETS[name]
    dst = ROOT / "checkpoints" / name
    src = dst if from_shipped else ROOT / "runs" / name
    old_manifest = json.loads((dst / "manifest.json").read_text()) if (dst / "manifest.json").exists() else {}
    old_times = json.loads((dst / "training_times.json").read_text()) if (dst / "training_times.json").exists() else {}
    if from_shipped:
        times = {r: old_times[r] for r in sorted(p.name for p in dst.glob("*-seed*")) if not only or r in only}
    else:
        times = {}
        for line in (ROOT / "runs" / f"{name}-logs" / "times.txt").read_text().splitlines():
            found = re.match(r"(\S+-seed\d+) rc=0 wall=(\d+)", line)
            if found and (not only or found.group(1) in only):
                times[found.group(1)] = int(found.group(2))
    if only and sorted(times) != sorted(only):
        raise SystemExit(f"no finished run for {sorted(set(only) - set(times))}")
    manifest = {k: v for k, v in old_manifest.items() if k.split("/")[0] not in times or from_shipped}
    manifest = {k: v for k, v in manifest.items() if not (isinstance(v, dict) and k.split("/")[0] in times)}
    staging = dst / ".ship-staging"
    shutil.rmtree(staging, ignore_errors=True)
    for run_name in sorted(times):
        method, seed = run_name.rsplit("-seed", 1)
        run = src / run_name
        for fname, path in _files(run, method, seed, spec):
            made_from = (f"{path.relative_to(ROOT)} (sha256 {file_sha256(path)[:16]}), EMA weights as {DTYPE}"
                         if from_shipped else f"runs/{name}/{run_name}/{path.name}, EMA weights as {DTYPE}")
            manifest[f"{run_name}/{fname}"] = _write(path, staging / run_name / fname, made_from)
        if (run / "log.jsonl").exists() and name in ("cards64", "chess128"):  # notebook 07 plots the training curves
            shutil.copyfile(run / "log.jsonl", staging / run_name / "log.jsonl")
        if not from_shipped:
            manifest[f"{run_name}/command"] = (f"OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 python -m vsmlab train "
                                               f"{spec['configs'][method]} --out runs/{name}/{run_name} --quiet --device cpu"
                                               + (f" --set train.seed={seed}" if spec["seed_flag"] or seed != "0" else ""))
            manifest[f"{run_name}/config"] = (run / "config.toml").read_text()
    for run_name in sorted(times):  # swap each run folder in only after every file was written
        shutil.rmtree(dst / run_name, ignore_errors=True)
        (staging / run_name).rename(dst / run_name)
    staging.rmdir()
    (dst / "training_times.json").write_text(json.dumps({**old_times, **times}, indent=1, sort_keys=True) + "\n")
    (dst / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    total = sum(v["bytes"] for v in manifest.values() if isinstance(v, dict))
    print(f"{name}: {sum(k.endswith(ck.WEIGHTS_SUFFIX) for k in manifest)} files, {total / 1e6:.1f} MB")


if __name__ == "__main__":
    args = sys.argv[1:]
    from_shipped = "--from-shipped" in args
    args = [a for a in args if a != "--from-shipped"]
    if not args or args[0] not in SETS:
        raise SystemExit(f"usage: python checkpoints/ship.py [--from-shipped] {{{'|'.join(SETS)}}} [RUN ...]")
    ship(args[0], args[1:], from_shipped)
