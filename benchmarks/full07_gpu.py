"""Notebook 07's full profile in ONE GPU lease: train Cards and chess models, sample and pack; then unpack here and
run the notebook on CPU.

Here, once (the GPU machine has no ``chess`` package and cannot reach PyPI; python-chess is pure Python)::

    python benchmarks/full07_gpu.py vendor                              # -> build/pydeps/chess (carry it)

On the GPU machine (one call, ``carry=["build/pydeps"]``; everything is bounded by wall-clock deadlines)::

    PYTHONPATH=. python3 benchmarks/full07_gpu.py run --out $OUT --train-seconds 330 --sample-seconds 150

Back on the CPU machine::

    python benchmarks/full07_gpu.py unpack FOLDER_WITH_THE_CHUNKS       # -> runs/full07/
    python -m vsmlab figures --only 07 --profile full                   # -> figures/full/07_semantic_benchmarks/

What ``run`` does, in order:

1. starts every training at once: ``configs/<cards|chess>-<fixed|rho0|vsm>-gpu.toml`` x ``--seeds`` (run names
   ``<bench>-<method>-seed<k>``; one process each on the one GPU, NVIDIA MPS when it starts), and beside them a
   preflight: 2-step runs of chess-vsm and cards-rho0 on 64 training images, each sampled with the primary sampler,
   and the chess samples read by the lab's chess validator (so a missing ``chess`` package or a broken renderer
   stops everything within a minute, before device time is spent).
2. at ``--train-seconds`` stops the runs and takes, per benchmark, the **common step**: the largest saved step
   that every run of that benchmark reached; each run's EMA weights at that step become its ``latest.pt``.
3. samples with ``vsmlab sample`` in priority order until ``--sample-seconds``: the primary sets (DDPM 250
   respaced steps, x0_hat clipped, EMA, ``--n`` samples, seed 1000; seed 0 of every model first), then seed 0's
   rate-vs-training-step sets at half the common step (``--n-sweep`` samples).
4. records the square tiles the device rendered its chess boards with (``chess_tiles_<size>.npy``: the notebook
   reads the GPU samples against them, and prints how far they are from this machine's own), compresses, and packs
   into at most 6 tar chunks of <= 10.3 MB (summary and logs, primary samples, sweeps; checkpoints only if room
   is left). Samples of briefly trained models are noisy and compress poorly (up to ~44 KB per 128-px RGB image),
   so the seed-0 primary sets are cut, all to the same first k samples, until each fits a chunk of its own:
   ``full07.json`` records the device, versions, commands, steps reached, the common steps, per-stage
   times and what was left out.

Nothing here is a timed assertion; the times are for the README and the notebook.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _lease import (CHUNK, PYDEPS, ROOT, cap_rows, common_step, compress, device_facts, fresh_folders, log,  # noqa: E402
                    pack, popen_logged, run_queue, shell_chain, train_until, unpack)
sys.path.insert(0, str(ROOT))  # the repository's vsmlab, also where it is not installed (the GPU machine)
from vsmlab.lab.full_runs import run_name  # noqa: E402

BENCHES = ("chess", "cards")
METHODS = ("fixed", "rho0", "vsm")
SAMPLE_SEED = 1000


def train_cmd(bench: str, method: str, seed: int, out: Path, device: str, extra: list[str]) -> list[str]:
    cmd = [sys.executable, "-m", "vsmlab", "train", f"configs/{bench}-{method}-gpu.toml", "--out", str(out),
           "--device", device, "--quiet", "--set", f"train.seed={seed}"]
    for s in extra:
        cmd += ["--set", s]
    return cmd


def sample_jobs(benches: list[str], methods: list[str], seeds: list[int], common: dict[str, int], sweep: dict[str, int],
                runs: Path, n: int, n_sweep: int, steps: int = 250) -> list[tuple[str, list[str]]]:
    """(npz name, ``vsmlab sample`` arguments) in priority order: every primary set of seed 0, then of the next
    seeds, then seed 0's sets at the sweep step of its benchmark (``<run>_step<S>``)."""
    base = ["--steps", str(steps), "--seed", str(SAMPLE_SEED), "--clip-x0"]
    jobs = [(run_name(b, m, k), [str(runs / run_name(b, m, k) / "latest.pt"), "--n", str(n), *base])
            for k in seeds for b in benches if common.get(b) for m in methods]
    k0 = seeds[0]
    for b in benches:
        st = sweep.get(b, 0)
        if st and st < common.get(b, 0):
            jobs += [(run_name(b, m, k0, st), [str(runs / run_name(b, m, k0) / f"step_{st:07d}.pt"),
                                                        "--n", str(n_sweep), "--weights", "ema", *base]) for m in methods]
    return jobs


def sweep_step(common: int, every: int) -> int:
    """Half the common step, rounded down to a saved step (0: no sweep)."""
    st = (common // 2) // every * every
    return st if 0 < st < common else 0


def check_preflight(folder: str) -> None:
    """Load the preflight's sample sets as the notebook does and read the chess ones with the validator (which needs
    the ``chess`` package): 4 uint8 images each, RGB 128 or 256 px boards."""
    from vsmlab.data.chessboards import SIZES, validate_chess
    from vsmlab.lab.sample_store import load_sample_images

    for name in ("chess", "cards"):
        imgs, _ = load_sample_images(Path(folder) / f"{name}.npz")
        if imgs.dtype.is_floating_point or imgs.shape[0] != 4 or imgs.shape[1] not in (1, 3):
            raise SystemExit(f"preflight: {name}.npz holds {imgs.dtype} {list(imgs.shape)}, expected 4 uint8 images [4, C, S, S]")
    imgs, _ = load_sample_images(Path(folder) / "chess.npz")
    if imgs.shape[1] != 3 or imgs.shape[-1] not in SIZES:
        raise SystemExit(f"preflight: chess samples {list(imgs.shape)}, expected RGB boards of {SIZES} px")
    v = validate_chess(imgs)
    print(f"preflight chess samples {list(imgs.shape)}: validator categories {v.categories}")


def run(args: argparse.Namespace) -> int:
    import numpy as np

    t0 = time.time()
    work = Path(args.work)
    out, runs, samples, logs = fresh_folders(args.out, work, "full07")
    device = args.device
    summary: dict = {**device_facts(device, args.mps), "benches": args.benches, "methods": args.methods, "seeds": args.seeds,
                     "train_seconds_budget": args.train_seconds, "sample_seconds_budget": args.sample_seconds,
                     "extra_train_overrides": args.set, "commands": {}, "stages": {}, "n": args.n, "n_sweep": args.n_sweep,
                     "sample_seed": SAMPLE_SEED}
    log(f"device {summary['device']}  torch {summary['torch']}  cuda {summary['cuda']}; "
        f"nvidia-smi: {summary.get('nvidia_smi')}; MPS: {summary.get('mps')}")

    def write_summary() -> None:
        (runs / "full07.json").write_text(json.dumps(summary, indent=1, sort_keys=True) + "\n")

    # 1. trainings, and the preflight beside them
    procs, files = {}, []
    for k in args.seeds:
        for b in args.benches:
            for m in args.methods:
                name = run_name(b, m, k)
                cmd = train_cmd(b, m, k, runs / name, device, args.set)
                summary["commands"][name] = " ".join(["python", *cmd[1:]])
                procs[name] = popen_logged(cmd, logs / f"train_{name}.log", files)
    pre = work / "preflight"
    tiny = [*args.set, "train.steps=2", "data.n=64"]
    smp = ["--device", device, "--quiet", "--n", "4", "--seed", "1", "--steps", "250", "--clip-x0"]
    chain = []
    for b, m in (("chess", "vsm"), ("cards", "rho0")):
        chain += [train_cmd(b, m, 0, pre / b, device, tiny),
                  [sys.executable, "-m", "vsmlab", "sample", str(pre / b / "latest.pt"), *smp, "--out", str(pre / f"{b}.npz")]]
    chain.append([sys.executable, str(Path(__file__).resolve()), "check-preflight", str(pre)])
    preflight = popen_logged(shell_chain(chain), logs / "preflight.log", files)
    failed = train_until(procs, runs, logs, preflight, args.train_seconds, summary,
                         "2-step chess and cards runs, DDPM-250 clipped, chess validator")
    for f in files:
        f.close()
    common = {b: common_step([runs / run_name(b, m, k) for m in args.methods for k in args.seeds]) for b in args.benches}
    summary["common_step"] = common
    log(f"training stopped after {summary['stages']['train']} s; saved steps {summary['steps_saved']}; common steps {common}")
    if not any(common.values()) or "preflight" in failed:
        write_summary()
        names, _ = pack([("full07.json", runs / "full07.json")] + [(f"logs/{p.name}", p) for p in sorted(logs.glob("*.log"))], out)
        log(f"stopping early: {'failed runs ' + str(failed) if failed else 'no common step'}; packed {names}")
        return 3

    # 2. slim EMA checkpoints at each benchmark's common step
    from vsmlab.diffusion.config import load_config
    from vsmlab.lab.study import slim_checkpoint

    sweep = {}
    for b in args.benches:
        if not common[b]:
            continue
        every = load_config(runs / run_name(b, args.methods[0], args.seeds[0]) / "config.toml")["train"]["save_every"]
        sweep[b] = sweep_step(common[b], every)
        for m in args.methods:
            for k in args.seeds:
                r = runs / run_name(b, m, k)
                slim_checkpoint(r / f"step_{common[b]:07d}.pt", r / "latest.pt", weights="ema")
    summary["sweep_step"] = sweep

    # 3. sampling, a few processes at a time
    jobs = [(name, [sys.executable, "-m", "vsmlab", "sample", *a, "--out", str(samples / f"{name}.npz"), "--device", device,
                    "--quiet", "--batch-size", str(args.sample_batch)])
            for name, a in sample_jobs(args.benches, args.methods, args.seeds, common, sweep, runs, args.n, args.n_sweep,
                                         args.sample_steps)]
    t_sample = time.time()
    done, sample_fail, not_run = run_queue(jobs, args.sample_procs, args.sample_seconds, logs, summary)
    summary["stages"]["sample"] = round(time.time() - t_sample, 1)
    summary["samples_done"], summary["samples_failed"], summary["samples_not_run"] = done, sample_fail, not_run
    log(f"sampling: {len(done)} sets in {summary['stages']['sample']} s; failed {sample_fail}; not run {not_run}")

    # 4. the chess tiles the training data were rendered with, compress, pack by priority
    t_pack = time.time()
    extra = []
    if "chess" in args.benches and common.get("chess"):
        from vsmlab.data.chessboards import lab_tiles

        size = load_config(runs / run_name("chess", args.methods[0], args.seeds[0]) / "config.toml")["data"]["size"]
        tiles = runs / f"chess_tiles_{size}.npy"
        np.save(tiles, lab_tiles(size))
        extra.append((tiles.name, tiles))
    for name in done:
        compress(samples / f"{name}.npz")
    items = [(f"logs/{p.name}", p) for p in [*sorted(logs.glob("train_*.log")), logs / "preflight.log"] if p.exists()]
    items += extra + [(f"{n}/log.jsonl", runs / n / "log.jsonl") for n in procs] + [(f"{n}/config.toml", runs / n / "config.toml")
                                                                                   for n in procs]
    # noisy samples of short runs compress poorly (up to ~44 KB per 128-px RGB image): every seed-0 primary set must
    # travel, each in a chunk of its own beside the small files, so all of them keep the same first k samples
    small = sum(p.stat().st_size + 1024 for _, p in items) + 65_536
    first = [samples / f"{n}.npz" for n in done if n.endswith(f"-seed{args.seeds[0]}")]
    kept = cap_rows(first, CHUNK - small)
    summary["primary_rows_kept"] = kept if kept is not None else "all"
    if kept is not None:
        log(f"seed-{args.seeds[0]} primary sets cut to their first {kept} samples to fit the transfer")
    items += [(f"samples/{n}.npz", samples / f"{n}.npz") for n in done if "_step" not in n]
    items += [(f"samples/{n}.npz", samples / f"{n}.npz") for n in done if "_step" in n]
    items += [(f"{n}/latest.pt", runs / n / "latest.pt") for n in procs]
    summary["stages"]["pack"] = round(time.time() - t_pack, 1)
    summary["total_seconds"] = round(time.time() - t0, 1)
    write_summary()
    items = [("full07.json", runs / "full07.json")] + [it for it in items if it[1].exists()]
    names, left = pack(items, out)
    summary["packed"], summary["left_out"] = names, left
    write_summary()  # the copy in chunk_0 lacks only these two fields; save the final one beside the chunks too
    shutil.copyfile(runs / "full07.json", out / "full07.json")
    log(f"packed {names}; left out {left}; total {summary['total_seconds']} s")
    return 0


def vendor(into: Path) -> int:
    """Copy the installed pure-Python ``chess`` package to ``into``/chess for a machine that cannot install it."""
    import chess

    src = Path(chess.__file__).parent
    dst = into / "chess"
    if dst.exists():
        shutil.rmtree(dst)
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__"))
    print(f"copied chess {chess.__version__} from {src} to {dst}; carry {into.relative_to(ROOT) if into.is_relative_to(ROOT) else into}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="train, sample and pack (on the GPU machine)")
    r.add_argument("--out", default=os.environ.get("OUT", "full07_out"))
    r.add_argument("--work", default="/tmp/full07", help="scratch folder for runs and samples")
    r.add_argument("--device", default="cuda")
    r.add_argument("--benches", nargs="+", default=list(BENCHES), choices=list(BENCHES),
                   help="default both; notebook 07 reads both (one alone: for a test of the script)")
    r.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    r.add_argument("--seeds", nargs="+", type=int, default=[0])
    r.add_argument("--train-seconds", type=float, default=330)
    r.add_argument("--sample-seconds", type=float, default=150)
    r.add_argument("--n", type=int, default=400, help="samples per primary set")
    r.add_argument("--n-sweep", type=int, default=100)
    r.add_argument("--sample-steps", type=int, default=250, help="DDPM respaced steps (250: the VSM protocol; fewer for rehearsals)")
    r.add_argument("--sample-procs", type=int, default=3)
    r.add_argument("--sample-batch", type=int, default=400)
    r.add_argument("--set", action="append", default=[], help="extra train override for every run (rehearsals)")
    r.add_argument("--no-mps", dest="mps", action="store_false", help="do not try NVIDIA MPS")
    c = sub.add_parser("check-preflight", help="check the preflight's samples (the preflight runs it)")
    c.add_argument("folder")
    v = sub.add_parser("vendor", help="copy the chess package to build/pydeps (here, before the lease)")
    v.add_argument("--into", default=str(PYDEPS))
    u = sub.add_parser("unpack", help="extract the chunks (here)")
    u.add_argument("folder")
    u.add_argument("--into", default="runs/full07")
    args = parser.parse_args(argv)
    if args.cmd == "check-preflight":
        check_preflight(args.folder)
        return 0
    if args.cmd == "vendor":
        return vendor(Path(args.into).resolve())
    return run(args) if args.cmd == "run" else unpack(args.folder, args.into, "full07.json")


if __name__ == "__main__":
    sys.exit(main())
