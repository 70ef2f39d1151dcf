"""Wall time of the figure runner (`vsmlab figures`) per profile and per notebook, without touching the committed figures.

    python benchmarks/bench_runner.py [--profile smoke default] [--only 01 02] [--appendices] [--out DIR]
                                      [--cache cold|warm] [--publishable]

Each profile runs ``python -m vsmlab figures --profile P --out OUT/P/figures [--only ...] [--appendices] --quiet``
as a child process and is timed end to end (interpreter start, kernels, training, plotting); the runner's own line
per notebook ("... done in X s") gives the per-notebook times. Figures, the manifest and executed notebooks go under
OUT (default: a fresh temporary folder, removed afterwards unless --out is given), never into the repository's
figures/ or notebooks/. ``--cache cold`` (default) points VSMLAB_CACHE_DIR at an empty folder so trained models are
recomputed, as on a fresh clone; ``warm`` uses the repository's cache. Kernels draw figures with the Agg backend
(the executed notebooks keep no images) unless ``--publishable``, which keeps the inline backend so the executed
notebooks under OUT/P/figures/notebooks/ are what ``vsmlab figures`` would publish.

Targets: smoke, all notebooks <= 120 s; default (the main job: the lessons), <= 45 min in all and no notebook over
12 min on 2 cores, cold.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGETS_S = {"smoke": 120.0, "default": 45 * 60.0}
NOTEBOOK_TARGET_S = {"default": 12 * 60.0}
DONE = re.compile(r"^\[\d+/\d+\] (\S+) done in ([\d.]+) s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", nargs="+", choices=["smoke", "default", "full"], default=["smoke", "default"],
                        help="profiles to time, in order (default: smoke default)")
    parser.add_argument("--only", nargs="+", metavar="NAME", default=None,
                        help="notebooks to run (stem or prefix like 01; default: the lessons, i.e. the main job)")
    parser.add_argument("--appendices", action="store_true", help="time the appendix notebooks instead of the lessons")
    parser.add_argument("--out", default=None, help="output folder (default: a temporary folder, removed afterwards)")
    parser.add_argument("--cache", choices=["cold", "warm"], default="cold",
                        help="cold: an empty model cache (fresh clone); warm: the repository's cache")
    parser.add_argument("--publishable", action="store_true",
                        help="keep the kernels' inline backend, so the executed notebooks under OUT hold their figures")
    args = parser.parse_args()

    root = Path(__file__).resolve().parent.parent
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="vsmlab-bench-runner."))
    out = out.resolve()
    if out == (root / "figures").resolve() or root / "figures" in out.parents:
        parser.error("--out: must not be the repository's figures/ folder (the benchmark never touches it)")
    rows, per_notebook = [], []
    try:
        for profile in args.profile:
            env = dict(os.environ)
            if not args.publishable:
                env["MPLBACKEND"] = "Agg"
            if args.cache == "cold":
                env["VSMLAB_CACHE_DIR"] = str(out / f"cache-{profile}")
            cmd = [sys.executable, "-m", "vsmlab", "figures", "--profile", profile, "--out", str(out / profile / "figures"),
                   "--quiet"]
            if args.only:
                cmd += ["--only", *args.only]
            if args.appendices:
                cmd += ["--appendices"]
            print(f"# {' '.join(cmd[1:])}", file=sys.stderr, flush=True)
            start = time.perf_counter()
            proc = subprocess.Popen(cmd, cwd=root, env=env, stderr=subprocess.PIPE, text=True)
            for line in proc.stderr:  # echo the runner's log and keep its per-notebook times
                sys.stderr.write(line)
                m = DONE.match(line)
                if m:
                    per_notebook.append((profile, m.group(1), float(m.group(2))))
            code = proc.wait()
            rows.append((profile, time.perf_counter() - start, code))
    finally:
        if args.out is None:
            shutil.rmtree(out, ignore_errors=True)

    notebooks = " ".join(args.only) if args.only else ("the appendices" if args.appendices else "the lessons (main job)")
    print(f"# vsmlab figures wall time, notebooks: {notebooks}, cache: {args.cache}, cpus: {os.cpu_count()}")
    header = f"{'profile':<8} {'notebook':<36} {'wall s':>8} {'min':>6} {'target s':>9} {'status':<10}"
    print(header)
    print("-" * len(header))
    for profile, stem, seconds in per_notebook:
        target = NOTEBOOK_TARGET_S.get(profile)
        status = "-" if target is None else ("ok" if seconds <= target else "over")
        print(f"{profile:<8} {stem:<36} {seconds:>8.1f} {seconds / 60:>6.1f} {('-' if target is None else f'{target:.0f}'):>9} "
              f"{status:<10}")
    for profile, seconds, code in rows:
        target = TARGETS_S.get(profile) if not (args.only or args.appendices) else None
        status = f"exit {code}" if code != 0 else "-" if target is None else "ok" if seconds <= target else "over"
        print(f"{profile:<8} {'all, end to end':<36} {seconds:>8.1f} {seconds / 60:>6.1f} "
              f"{('-' if target is None else f'{target:.0f}'):>9} {status:<10}")
    return 0 if all(code == 0 for _, _, code in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
