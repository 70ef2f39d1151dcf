"""One prepared GPU check: run it whenever a CUDA machine is lent, in under ~2 minutes.

    PYTHONPATH=. python3 benchmarks/gpu_check.py [--out DIR] [--train-steps 200]

What it does, in order, printing one line per result (and writing ``gpu_check.json`` into --out):

1. the device, torch and CUDA versions;
2. ``pytest -m cuda tests/test_cuda.py`` when pytest is importable (every sampler, the estimators, metrics,
   detectors and distances on CUDA against CPU/oracle values); a machine without pytest can get it as a
   carried wheel (see the device notes in the README), otherwise this step is reported as skipped;
3. a short image training with the CLI on CUDA (``configs/shapes-fixed-gpu.toml``: 64 px, bf16 autocast)
   for ``--train-steps`` steps; its img/s = the last step in the run's ``log.jsonl`` x the batch size in its
   ``config.toml`` over the command's wall time (start-up, data and cuDNN autotuning included: the CLI logs steps,
   not times; ``benchmarks/bench_train_step.py`` and ``gpu_window.py`` measure the steady rate), then
   ``vsmlab sample`` (DDPM, 50 respaced
   steps) and ``vsmlab validate shapes`` on the samples (a short run is not expected to be valid: this checks
   the path end to end, not the quality);
4. ``benchmarks/bench_unet.py --device cuda`` when present (model FLOP/s as a share of the bf16 matmul rate; without
   diffusers, as on the GPU machine, its peer rows are skipped with a note).

Exit 1 when a step failed (named under ``failed_steps`` in the JSON), 2 without CUDA (unless ``--rehearse``: every
step on the CPU with tiny settings, to check the script and, under ``benchmarks/device_image.py``, that it imports
nothing the GPU machine's image lacks). Nothing here is a timed assertion; the numbers are for the docs.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # train_rate reads the run's config with vsmlab
    sys.path.insert(0, str(ROOT))


def _run(cmd: list[str], log: Path, timeout: int) -> tuple[int, float, str]:
    start = time.perf_counter()
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""), "PYTHONUNBUFFERED": "1"}
    try:
        res = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
        code, text = res.returncode, res.stdout + res.stderr
    except subprocess.TimeoutExpired as exc:
        code, text = 124, f"timed out after {timeout} s\n{exc.stdout or ''}{exc.stderr or ''}"
    log.write_text(text)
    return code, time.perf_counter() - start, text


def train_rate(run_dir: Path, seconds: float) -> dict[str, object]:
    """What a CLI training run's files say about its speed: the last logged step (``log.jsonl``: step, lr, loss
    terms, grad_norm per read step; no times), the batch size (``config.toml``) and img/s over ``seconds``, the
    command's wall time (start-up included, so a lower bound of the steady rate)."""
    from vsmlab.diffusion.config import load_config

    out: dict[str, object] = {"steps": None, "batch_size": None, "img_per_s_wall": None}
    log = run_dir / "log.jsonl"
    if log.exists():
        steps = []
        for line in log.read_text().splitlines():
            try:
                steps.append(int(json.loads(line)["step"]))
            except (ValueError, KeyError, TypeError):
                pass
        out["steps"] = max(steps) if steps else None
    if (run_dir / "config.toml").exists():
        out["batch_size"] = load_config(run_dir / "config.toml")["train"]["batch_size"]
    if out["steps"] and out["batch_size"] and seconds > 0:
        out["img_per_s_wall"] = round(out["steps"] * out["batch_size"] / seconds, 1)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=os.environ.get("OUT", "gpu_check_out"), help="folder for logs, samples and the JSON summary")
    parser.add_argument("--train-steps", type=int, default=200, help="steps of the short 64-px training")
    parser.add_argument("--config", default="configs/shapes-fixed-gpu.toml")
    parser.add_argument("--rehearse", action="store_true",
                        help="run every step on the CPU with tiny settings (configs/shapes-smoke.toml, 3 steps, 8 samples, "
                             "a 32-px UNet benchmark): checks the script and its imports, e.g. under "
                             "benchmarks/device_image.py; measures nothing")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    import torch

    summary: dict[str, object] = {"torch": torch.__version__, "cuda": torch.version.cuda,
                                  "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}
    print(f"torch {torch.__version__}  cuda {torch.version.cuda}  device {summary['device']}")
    if args.rehearse:
        device, n, steps = "cpu", 8, 5
        args.config, args.train_steps = "configs/shapes-smoke.toml", 3
        bench_args = ["--device", "cpu", "--sizes", "32", "--base", "32", "--batch", "1", "--steps", "1", "--repeats", "1"]
        summary["rehearsal"] = "CPU, tiny settings: nothing here is a measurement"
    elif not torch.cuda.is_available():
        print("no CUDA device: nothing to check here (run this on the GPU machine, or --rehearse)")
        return 2
    else:
        device, n, steps, bench_args = "cuda", 256, 50, ["--device", "cuda"]
    py = sys.executable

    if importlib.util.find_spec("pytest") is not None:
        code, secs, text = _run([py, "-m", "pytest", "-q", "-m", "cuda", "tests/test_cuda.py", "-p", "no:cacheprovider"],
                                out / "pytest_cuda.log", 300)
        tail = [ln for ln in text.strip().splitlines() if ln.strip()][-1:]
        summary["pytest_cuda"] = {"exit": code, "seconds": round(secs, 1), "summary": tail}
        print(f"pytest -m cuda: exit {code} in {secs:.1f} s: {tail}")
    else:
        summary["pytest_cuda"] = "skipped: pytest not installed on this machine"
        print("pytest -m cuda: skipped (pytest not installed; carry its wheel to run it)")

    run_dir = out / "run"
    code, secs, text = _run([py, "-m", "vsmlab", "train", args.config, "--out", str(run_dir), "--device", device,
                             "--steps", str(args.train_steps), "--quiet", "--set", "train.save_every=100000"],
                            out / "train.log", 400)
    rate = train_rate(run_dir, secs)
    summary["train"] = {"exit": code, "seconds": round(secs, 1), "steps_asked": args.train_steps, **rate}
    print(f"train {args.config} {args.train_steps} steps on {device}: exit {code} in {secs:.1f} s; step {rate['steps']} "
          f"logged, {rate['img_per_s_wall']} img/s over the wall time (start-up included)")
    if code != 0:
        print(text[-3000:])
    else:
        npz = out / "samples.npz"
        code, secs, text = _run([py, "-m", "vsmlab", "sample", str(run_dir / "latest.pt"), "--n", str(n), "--steps", str(steps),
                                 "--device", device, "--out", str(npz), "--quiet"], out / "sample.log", 300)
        summary["sample"] = {"exit": code, "seconds": round(secs, 1)}
        print(f"sample {n} (DDPM, {steps} steps) on {device}: exit {code} in {secs:.1f} s")
        if code == 0:
            code, secs, text = _run([py, "-m", "vsmlab", "validate", "shapes", str(npz), "--json"], out / "validate.log", 120)
            summary["validate"] = text.strip().splitlines()[-1] if code == 0 else f"exit {code}"
            print(f"validate: {summary['validate']}")
        else:
            print(text[-3000:])

    bench = ROOT / "benchmarks" / "bench_unet.py"
    if bench.exists():
        code, secs, text = _run([py, str(bench), *bench_args], out / "bench_unet.log", 300)
        summary["bench_unet"] = {"exit": code, "seconds": round(secs, 1)}
        print(f"bench_unet {' '.join(bench_args)}: exit {code} in {secs:.1f} s\n{text[-2500:]}")
    failed = [k for k, v in summary.items() if isinstance(v, dict) and v.get("exit") not in (None, 0)]
    summary["failed_steps"] = failed
    (out / "gpu_check.json").write_text(json.dumps(summary, indent=2, default=str))
    print(f"failed steps: {', '.join(failed) or 'none'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
