"""Copy slim checkpoints of finished CPU runs into checkpoints/<set>/ with a manifest (how the shipped files were made).

    python checkpoints/ship.py cards64                  # runs/cards64/<method>-seed<k>/ -> checkpoints/cards64/
    python checkpoints/ship.py chess128                 # the CPU chess pilot of notebook 07
    python checkpoints/ship.py shapes32 fixed-seed1     # add (or replace) one run; the other entries are kept

For each run folder ``runs/<set>/<method>-seed<k>`` with a line ``<method>-seed<k> rc=0 wall=<seconds>`` in
``runs/<set>-logs/times.txt`` (all of them, or only the runs named):
``latest.pt`` keeps raw + EMA weights; the step files of seed 0 listed in SETS keep EMA weights only (the
rate-vs-training-step sweep); Cards and chess runs also ship their ``log.jsonl`` (notebook 07 plots it). ``manifest.json`` records every file's step, size,
SHA-256 and source, the exact training command and the resolved config; ``training_times.json`` the wall times.
Each file must stay <= 5 MB. (The first 6 runs of checkpoints/shapes32/ were shipped by an earlier version of this
script that made the same files.)
"""

from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path

from vsmlab.diffusion import checkpoints as ck
from vsmlab.lab.shapes_study import file_sha256, slim_checkpoint

ROOT = Path(__file__).resolve().parents[1]
SETS = {
    "cards64": dict(configs={**{m: f"configs/cards-{m}-cpu.toml" for m in ("fixed", "rho0", "vsm")},
                             "vsm10": "configs/cards-vsm-cpu.toml --set loss.rho=10.0"},
                    sweep_steps=(1000, 2000, 4000), sweep_methods=("fixed", "rho0", "vsm"), seed_flag=False),
    "chess128": dict(configs={m: f"configs/chess-{m}-cpu.toml" for m in ("rho0", "vsm")},
                     sweep_steps=(1500, 3000), sweep_methods=("rho0", "vsm"), seed_flag=True),
    "shapes32": dict(configs={"fixed": "configs/shapes-fixed-cpu.toml", "rho0": "configs/shapes-rho0-cpu.toml",
                              "vsm": "configs/shapes-vsm-cpu.toml", "vsm10": "configs/shapes-vsm-cpu.toml --set loss.rho=10.0"},
                     sweep_steps=(500, 1000, 2000, 3000, 4500), sweep_methods=("fixed", "rho0", "vsm"), seed_flag=True),
}
LIMIT = 5_000_000


def ship(name: str, only: list[str]) -> None:
    spec = SETS[name]
    src, dst = ROOT / "runs" / name, ROOT / "checkpoints" / name
    times = {}
    for line in (ROOT / "runs" / f"{name}-logs" / "times.txt").read_text().splitlines():
        found = re.match(r"(\S+-seed\d+) rc=0 wall=(\d+)", line)
        if found and (not only or found.group(1) in only):
            times[found.group(1)] = int(found.group(2))
    if only and sorted(times) != sorted(only):
        raise SystemExit(f"no finished run (rc=0) in times.txt for {sorted(set(only) - set(times))}")
    manifest = json.loads((dst / "manifest.json").read_text()) if only else {}
    manifest = {k: v for k, v in manifest.items() if k.split("/")[0] not in times}
    old_times = json.loads((dst / "training_times.json").read_text()) if only else {}
    for old in (dst / r for r in times) if only else dst.glob("*-seed*"):
        shutil.rmtree(old, ignore_errors=True)
    for run_name in sorted(times):
        method, seed = run_name.rsplit("-seed", 1)
        run = src / run_name
        files = [("latest.pt", ck.latest_path(run), "both")]
        if seed == "0" and method in spec["sweep_methods"]:
            files += [(p.name, p, "ema") for s, p in ck.step_checkpoints(run) if s in spec["sweep_steps"]]
        for fname, path, weights in files:
            out = dst / run_name / fname
            size = slim_checkpoint(path, out, weights=weights)
            if size > LIMIT:
                raise SystemExit(f"{out}: {size} bytes, over the {LIMIT} byte limit")
            manifest[f"{run_name}/{fname}"] = dict(
                step=int(ck.load_checkpoint(out)["step"]), bytes=size, sha256=file_sha256(out),
                weights="raw+ema" if weights == "both" else "ema",
                made_from=f"runs/{name}/{run_name}/{path.name} (vsmlab.lab.shapes_study.slim_checkpoint, weights={weights!r})")
        if name in ("cards64", "chess128"):  # notebook 07 reads the training curves from the shipped log
            shutil.copyfile(run / "log.jsonl", dst / run_name / "log.jsonl")
        manifest[f"{run_name}/command"] = (f"OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 python -m vsmlab train "
                                           f"{spec['configs'][method]} --out runs/{name}/{run_name} --quiet --device cpu"
                                           + (f" --set train.seed={seed}" if spec["seed_flag"] or seed != "0" else ""))
        manifest[f"{run_name}/config"] = (run / "config.toml").read_text()
    (dst / "training_times.json").write_text(json.dumps({**old_times, **times}, indent=1, sort_keys=True) + "\n")
    (dst / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    total = sum(v["bytes"] for v in manifest.values() if isinstance(v, dict))
    print(f"{name}: {sum(k.endswith('.pt') for k in manifest)} files, {total / 1e6:.1f} MB")


if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in SETS:
        raise SystemExit(f"usage: python checkpoints/ship.py {{{'|'.join(SETS)}}} [RUN ...]")
    ship(sys.argv[1], sys.argv[2:])
