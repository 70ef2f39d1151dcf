"""Wall time of the figure runner (`vsmlab figures`) per profile, without touching the committed figures.

    python benchmarks/bench_runner.py [--profile smoke default] [--only 01 02] [--out DIR] [--cache cold|warm]

Each profile runs ``python -m vsmlab figures --profile P --out OUT/P [--only ...] --quiet`` as a child
process and is timed end to end (interpreter start, kernels, training, plotting). Figures, the manifest
and executed notebooks go under OUT (default: a fresh temporary folder, removed afterwards unless --out
is given), never into the repository's figures/ or notebooks/. ``--cache cold`` (default) points
VSMLAB_CACHE_DIR at an empty folder so trained models are recomputed, as on a fresh clone; ``warm`` uses
the repository's cache. Targets: smoke, all notebooks <= 120 s; default, 01 + 02 <= 600 s on 2 cores.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGETS_S = {"smoke": 120.0, "default": 600.0}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", nargs="+", choices=["smoke", "default", "full"], default=["smoke", "default"],
                        help="profiles to time, in order (default: smoke default)")
    parser.add_argument("--only", nargs="+", metavar="NAME", default=None,
                        help="notebooks to run (stem or prefix like 01; default: all)")
    parser.add_argument("--out", default=None, help="output folder (default: a temporary folder, removed afterwards)")
    parser.add_argument("--cache", choices=["cold", "warm"], default="cold",
                        help="cold: an empty model cache (fresh clone); warm: the repository's cache")
    args = parser.parse_args()

    root = Path(__file__).resolve().parent.parent
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="vsmlab-bench-runner."))
    out = out.resolve()
    if out == (root / "figures").resolve() or root / "figures" in out.parents:
        parser.error("--out: must not be the repository's figures/ folder (the benchmark never touches it)")
    rows = []
    try:
        for profile in args.profile:
            env = dict(os.environ, MPLBACKEND="Agg")
            if args.cache == "cold":
                env["VSMLAB_CACHE_DIR"] = str(out / f"cache-{profile}")
            cmd = [sys.executable, "-m", "vsmlab", "figures", "--profile", profile, "--out", str(out / profile), "--quiet"]
            if args.only:
                cmd += ["--only", *args.only]
            print(f"# {' '.join(cmd[1:])}", file=sys.stderr, flush=True)
            start = time.perf_counter()
            code = subprocess.call(cmd, cwd=root, env=env)
            seconds = time.perf_counter() - start
            rows.append((profile, seconds, code))
    finally:
        if args.out is None:
            shutil.rmtree(out, ignore_errors=True)

    notebooks = " ".join(args.only) if args.only else "all"
    print(f"# vsmlab figures wall time, notebooks: {notebooks}, cache: {args.cache}, cpus: {os.cpu_count()}")
    header = f"{'profile':<8} {'wall s':>8} {'target s':>9} {'status':<10}"
    print(header)
    print("-" * len(header))
    for profile, seconds, code in rows:
        target = TARGETS_S.get(profile)
        status = "ok" if code == 0 else f"exit {code}"
        print(f"{profile:<8} {seconds:>8.1f} {('-' if target is None else f'{target:.0f}'):>9} {status:<10}")
    return 0 if all(code == 0 for _, _, code in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
