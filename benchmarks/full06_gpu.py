"""Notebook 06's full profile in ONE GPU lease: train, sample and pack; then unpack here and run the notebook on CPU.

Superseded by ``benchmarks/gpu_window.py`` (one process: calibrated mode, K models in lockstep, a measured step count,
runs that accumulate under runs/full/); kept while notebook 06's full profile still reads this script's layout
(runs/full06/full06.json).

On the GPU machine (one call; everything is bounded by wall-clock deadlines well inside the call's limit)::

    PYTHONPATH=. python3 benchmarks/full06_gpu.py run --out $OUT --train-seconds 300 --sample-seconds 150

Back on the CPU machine::

    python benchmarks/full06_gpu.py unpack FOLDER_WITH_THE_CHUNKS      # -> runs/full06/
    python -m vsmlab figures --only 06 --profile full                  # -> figures/full/06_shapes_vsm/

What ``run`` does, in order:

1. starts every training at once (``configs/shapes-<fixed|rho0|vsm>-gpu.toml``, methods fixed / rho0 / vsm /
   vsm10 (``--set loss.rho=10.0``) x ``--seeds``; one process each on the one GPU, ``--device cuda``), and
   ``pytest -m cuda tests/test_cuda.py`` beside them when pytest is there. A run that fails stops the
   trainings; with no common saved step the script packs the logs and exits 3 (no device time is spent
   sampling from a broken setup).
2. at ``--train-seconds`` stops the runs (SIGTERM) and takes the **common step**: the largest saved step
   (``step_NNNNNNN.pt``, every ``train.save_every``) that every run reached, so every model of the study has
   the same number of updates. Each run's EMA weights at that step become its ``latest.pt`` (slim, EMA only).
3. samples with ``vsmlab sample`` on the GPU, in priority order until ``--sample-seconds``: the primary sets
   (DDPM 250 respaced steps, x0_hat clipped, EMA, ``--n`` samples, seed 1000, the last 12 x0_hat recorded;
   the fixed models with beta and beta_tilde), then seed 0's sweeps (training step, DDIM steps, raw weights,
   no clipping; ``--n-sweep`` samples). File names are the sample store's
   (``vsmlab.lab.sample_store.gpu_sample_path``), which notebook 06 reads.
4. shrinks each primary npz: stores the detector scores of notebook 06 section 9 for every sample
   (``x0hat_var_last10``: variance of x0_hat over the last 10 steps; ``x0hat_var_t20_35``: over t in 20..35) and
   keeps the recorded x0_hat only for a few rows (``trajectory_rows``: per category the first two non-valid
   samples of the strict validator, and the first four valid ones) so that the files fit the transfer limit.
5. packs into at most 6 tar chunks of <= 10.3 MB under --out, in priority order (summary and logs, primary
   samples, seed-0 checkpoints, sweeps, other checkpoints): ``full06.json`` records the device, versions,
   commands, steps reached, the common step, per-stage times and what was left out.

Nothing here is a timed assertion; the times are for the README and the notebook.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _lease import (ROOT, common_step, compress, device_facts, env, fresh_folders, log, pack, popen_logged,  # noqa: E402
                    run_queue, shell_chain, train_until, unpack)
sys.path.insert(0, str(ROOT))  # the repository's vsmlab, also where it is not installed (the GPU machine)
from vsmlab.lab.full_runs import sample_name  # noqa: E402

METHODS = {"fixed": ("fixed", ()), "rho0": ("rho0", ()), "vsm": ("vsm", ()), "vsm10": ("vsm", ("loss.rho=10.0",))}
VAR_OF = {"fixed": "beta", "rho0": "learned", "vsm": "learned", "vsm10": "learned"}
SAMPLE_SEED = 1000
RECORD_LAST = 12


def train_cmd(method: str, seed: int, out: Path, device: str, extra: list[str]) -> list[str]:
    stem, sets = METHODS[method]
    cmd = [sys.executable, "-m", "vsmlab", "train", f"configs/shapes-{stem}-gpu.toml", "--out", str(out),
           "--device", device, "--quiet", "--set", f"train.seed={seed}"]
    for s in (*sets, *extra):
        cmd += ["--set", s]
    return cmd


def sample_jobs(methods: list[str], seeds: list[int], common: int, runs: Path, n: int, n_sweep: int,
                sweep_steps: list[int], ddim_steps: list[int]) -> list[tuple[str, list[str]]]:
    """(npz name, vsmlab sample arguments) in priority order; names from :func:`vsmlab.lab.full_runs.sample_name`."""
    jobs = []
    base = ["--seed", str(SAMPLE_SEED), "--clip-x0"]
    for k in seeds:
        for m in methods:
            ck = runs / f"{m}-seed{k}" / "latest.pt"
            for var in (("beta", "beta_tilde") if m == "fixed" else ("learned",)):
                jobs.append((sample_name(m, k, variance=var), [str(ck), "--n", str(n), "--steps", "250", "--variance", var,
                                                                 "--trajectory-last", str(RECORD_LAST), *base]))
    k0 = seeds[0]
    for m in methods:  # rate vs training step (seed 0), EMA weights of the step files
        for st in sweep_steps:
            if st < common:
                ck = runs / f"{m}-seed{k0}" / f"step_{st:07d}.pt"
                jobs.append((sample_name(m, k0, variance=VAR_OF[m], ckpt_step=st), [str(ck), "--n", str(n_sweep), "--steps",
                                                                                    "250", "--variance", VAR_OF[m], *base]))
    for m in methods[:2]:
        for st in ddim_steps:
            jobs.append((sample_name(m, k0, "ddim", st), [str(runs / f"{m}-seed{k0}" / "latest.pt"), "--n", str(n_sweep),
                                                            "--sampler", "ddim", "--steps", str(st), "--seed", str(SAMPLE_SEED), "--clip-x0"]))
    for m in methods:
        raw = runs / f"{m}-seed{k0}" / f"step_{common:07d}.pt"
        jobs.append((sample_name(m, k0, variance=VAR_OF[m], weights="raw"), [str(raw), "--n", str(n_sweep), "--steps", "250",
                                                                             "--variance", VAR_OF[m], "--weights", "raw", *base]))
    for m in methods:
        jobs.append((sample_name(m, k0, variance=VAR_OF[m], clip=False), [str(runs / f"{m}-seed{k0}" / "latest.pt"),
                                                                          "--n", str(n_sweep), "--steps", "250", "--variance",
                                                                          VAR_OF[m], "--seed", str(SAMPLE_SEED)]))
    return jobs


def shrink_primary(path: Path) -> dict:
    """Detector scores for every sample, trajectories for a few rows only (see the module docstring)."""
    import numpy as np
    import torch

    from vsmlab.analysis.detectors import trajectory_variance, window_variance
    from vsmlab.data.shapes_validate import validate

    z = dict(np.load(path))
    x0 = torch.from_numpy(z.pop("trajectory_x0_hat").astype(np.float32))
    z.pop("trajectory_x_t", None)
    steps = z["trajectory_steps"].tolist()
    z["x0hat_var_last10"] = trajectory_variance(x0, k=10).numpy()
    z["x0hat_var_t20_35"] = window_variance(x0, steps, 20, 35).numpy()
    cats = [v.category for v in validate(z["images"])]
    rows = [i for i, c in enumerate(cats) if c == "valid"][:4]
    for c in sorted(set(cats) - {"valid"}):
        rows += [i for i, cc in enumerate(cats) if cc == c][:2]
    rows = sorted(rows)
    z["trajectory_rows"] = np.asarray(rows, dtype=np.int64)
    z["trajectory_x0_hat"] = x0[:, rows].numpy().astype(np.float16)
    compress(path, z)
    return {c: cats.count(c) for c in sorted(set(cats))}


def run(args: argparse.Namespace) -> int:
    t0 = time.time()
    work = Path(args.work)
    out, runs, samples, logs = fresh_folders(args.out, work, "full06")
    device = args.device
    summary: dict = {**device_facts(device, args.mps), "methods": args.methods, "seeds": args.seeds,
                     "train_seconds_budget": args.train_seconds, "sample_seconds_budget": args.sample_seconds,
                     "extra_train_overrides": args.set, "commands": {}, "stages": {}}
    log(f"device {summary['device']}  torch {summary['torch']}  cuda {summary['cuda']}; "
        f"nvidia-smi: {summary.get('nvidia_smi')}; MPS: {summary.get('mps')}")

    def write_summary() -> None:
        (runs / "full06.json").write_text(json.dumps(summary, indent=1, sort_keys=True) + "\n")

    # 1. trainings (and the CUDA tests beside them)
    procs, files = {}, []
    for k in args.seeds:
        for m in args.methods:
            name = f"{m}-seed{k}"
            cmd = train_cmd(m, k, runs / name, device, args.set)
            summary["commands"][name] = " ".join(["python", *cmd[1:]])
            procs[name] = popen_logged(cmd, logs / f"train_{name}.log", files)
    # preflight beside the trainings: a 2-step run of the same config, sampled with every option used later
    # (DDPM 250 with the trajectory tail, DDIM, raw weights) and shrunk; if it fails, everything stops at once
    pre = work / "preflight"
    pre_ck = pre / "run" / "latest.pt"
    smp = [sys.executable, "-m", "vsmlab", "sample", str(pre_ck), "--device", device, "--quiet", "--n", "4", "--seed", "1"]
    chain = [train_cmd("vsm", 0, pre / "run", device, [*args.set, "train.steps=2"]),
             [*smp, "--steps", "250", "--clip-x0", "--trajectory-last", str(RECORD_LAST), "--out", str(pre / "a.npz")],
             [*smp, "--steps", "10", "--sampler", "ddim", "--weights", "raw", "--out", str(pre / "b.npz")],
             [sys.executable, str(Path(__file__).resolve()), "shrink", str(pre / "a.npz")]]
    preflight = popen_logged(shell_chain(chain), logs / "preflight.log", files)
    tests = None
    if args.cuda_tests and device == "cuda":
        try:
            import pytest  # noqa: F401
            ft = open(logs / "pytest_cuda.log", "w")  # closed by the OS at exit; the tests run until sampling ends
            tests = subprocess.Popen([sys.executable, "-m", "pytest", "-q", "-m", "cuda", "tests/test_cuda.py", "-p",
                                      "no:cacheprovider", "--timeout", "240"], cwd=ROOT, env=env(), stdout=ft, stderr=subprocess.STDOUT)
        except ImportError:
            summary["pytest_cuda"] = "skipped: no pytest on this machine"
    failed = train_until(procs, runs, logs, preflight, args.train_seconds, summary,
                         "train 2 steps, DDPM-250 with trajectory tail, DDIM raw, shrink")
    for f in files:  # the trainings' and the preflight's logs
        f.close()
    common = common_step([runs / n for n in procs])
    summary["common_step"] = common
    log(f"training stopped after {summary['stages']['train']} s; saved steps {summary['steps_saved']}; common step {common}")
    if common == 0 or "preflight" in failed:
        write_summary()
        names, _ = pack([("full06.json", runs / "full06.json")] + [(f"logs/{p.name}", p) for p in sorted(logs.glob("*.log"))], out)
        log(f"stopping early: {'failed runs ' + str(failed) if failed else 'no common step'}; packed {names}")
        return 3

    # 2. slim EMA checkpoints at the common step
    from vsmlab.lab.study import slim_checkpoint

    for n in procs:
        slim_checkpoint(runs / n / f"step_{common:07d}.pt", runs / n / "latest.pt", weights="ema")

    # 3. sampling, a few processes at a time
    sweep = [s for s in args.sweep_steps if s < common]
    if not sweep:  # 1/4, 1/2 and 3/4 of the common step, rounded down to saved steps
        from vsmlab.diffusion.config import load_config

        every = load_config(runs / next(iter(procs)) / "config.toml")["train"]["save_every"]
        sweep = sorted({max(every, (common * f // 4) // every * every) for f in (1, 2, 3)} - {common})
    summary["sweep_steps"] = sweep
    jobs = [(name, [sys.executable, "-m", "vsmlab", "sample", *a, "--out", str(samples / f"{name}.npz"), "--device", device,
                    "--quiet", "--batch-size", str(args.sample_batch)])
            for name, a in sample_jobs(args.methods, args.seeds, common, runs, args.n, args.n_sweep, sweep, args.ddim_steps)]
    t_sample = time.time()
    done, sample_fail, not_run = run_queue(jobs, args.sample_procs, args.sample_seconds, logs, summary)
    summary["stages"]["sample"] = round(time.time() - t_sample, 1)
    summary["samples_done"], summary["samples_failed"], summary["samples_not_run"] = done, sample_fail, not_run
    log(f"sampling: {len(done)} sets in {summary['stages']['sample']} s; failed {sample_fail}; not run {not_run}")
    if tests is not None:
        if tests.poll() is None:
            tests.kill()
        summary["pytest_cuda"] = {"exit": tests.returncode,
                                  "tail": (logs / "pytest_cuda.log").read_text().strip().splitlines()[-3:]}
        log(f"pytest -m cuda: {summary['pytest_cuda']}")

    # 4. shrink and compress
    t_pack = time.time()
    cats = {}
    for name in done:
        p = samples / f"{name}.npz"
        if "_ema" in name and "step" not in name and "noclip" not in name and name.split("_")[1] == "ddpm250":
            cats[name] = shrink_primary(p)
        else:
            compress(p)
    summary["primary_categories"] = cats

    # 5. pack by priority
    k0 = args.seeds[0]
    prim = [n for n in done if n in cats]
    items = [(f"logs/{p.name}", p) for p in [*sorted(logs.glob("train_*.log")), logs / "pytest_cuda.log", logs / "preflight.log"] if p.exists()]
    items += [(f"{n}/log.jsonl", runs / n / "log.jsonl") for n in procs] + [(f"{n}/config.toml", runs / n / "config.toml") for n in procs]
    items += [(f"samples/{n}.npz", samples / f"{n}.npz") for n in prim]
    items += [(f"{m}-seed{k0}/latest.pt", runs / f"{m}-seed{k0}" / "latest.pt") for m in args.methods]
    items += [(f"samples/{n}.npz", samples / f"{n}.npz") for n in done if n not in cats]
    items += [(f"{m}-seed{k}/latest.pt", runs / f"{m}-seed{k}" / "latest.pt") for k in args.seeds[1:] for m in args.methods]
    summary["stages"]["pack"] = round(time.time() - t_pack, 1)
    summary["total_seconds"] = round(time.time() - t0, 1)
    write_summary()
    items = [("full06.json", runs / "full06.json")] + [it for it in items if it[1].exists()]
    names, left = pack(items, out)
    summary["packed"], summary["left_out"] = names, left
    write_summary()  # the copy in chunk_0 lacks only these two fields; save the final one beside the chunks too
    shutil.copyfile(runs / "full06.json", out / "full06.json")
    log(f"packed {names}; left out {left}; total {summary['total_seconds']} s")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="train, sample and pack (on the GPU machine)")
    r.add_argument("--out", default=os.environ.get("OUT", "full06_out"))
    r.add_argument("--work", default="/tmp/full06", help="scratch folder for runs and samples")
    r.add_argument("--device", default="cuda")
    r.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    r.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    r.add_argument("--train-seconds", type=float, default=300)
    r.add_argument("--sample-seconds", type=float, default=150)
    r.add_argument("--n", type=int, default=600, help="samples per primary set")
    r.add_argument("--n-sweep", type=int, default=200)
    r.add_argument("--sweep-steps", nargs="*", type=int, default=[], help="default: 1/4, 1/2, 3/4 of the common step")
    r.add_argument("--ddim-steps", nargs="*", type=int, default=[10, 25, 50, 100, 250])
    r.add_argument("--sample-procs", type=int, default=4)
    r.add_argument("--sample-batch", type=int, default=600)
    r.add_argument("--set", action="append", default=[], help="extra train override for every run (rehearsals)")
    r.add_argument("--no-cuda-tests", dest="cuda_tests", action="store_false")
    r.add_argument("--no-mps", dest="mps", action="store_false", help="do not try NVIDIA MPS")
    sh = sub.add_parser("shrink", help="shrink one primary npz in place (the preflight checks it)")
    sh.add_argument("npz")
    u = sub.add_parser("unpack", help="extract the chunks (here)")
    u.add_argument("folder")
    u.add_argument("--into", default="runs/full06")
    args = parser.parse_args(argv)
    if args.cmd == "shrink":
        print(shrink_primary(Path(args.npz)))
        return 0
    return run(args) if args.cmd == "run" else unpack(args.folder, args.into, "full06.json")


if __name__ == "__main__":
    sys.exit(main())
