"""``vsmlab figures``: execute the notebooks with papermill and regenerate figures/."""

from __future__ import annotations

import argparse
import sys

__all__ = ["add_parsers"]


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Register ``figures`` on the top-level subparsers."""
    from vsmlab.lab.runner import PROFILES

    fig = sub.add_parser("figures", help="execute the notebooks with papermill and regenerate figures/")
    fig.add_argument("--profile", default="default", help=f"one of {', '.join(PROFILES)} (default: default)")
    fig.add_argument("--only", nargs="+", metavar="NAME", help="run only these notebooks (stem or prefix like 01)")
    fig.add_argument("--out", default=None, help="figures folder (default: figures/ in the repository); default-profile "
                     "figures go to OUT/<notebook>/, other profiles to OUT/<profile>/<notebook>/")
    fig.add_argument("--notebooks", default=None, metavar="DIR",
                     help="folder of the notebook sources NN_*.py (default: notebooks/ in the repository)")
    fig.add_argument("--seed", type=int, default=None, help="override every notebook's seed")
    fig.add_argument("--no-cache", action="store_true", help="recompute cached models instead of loading them")
    fig.add_argument("--list", action="store_true", help="list the notebooks and exit")
    fig.add_argument("--quiet", action="store_true", help="no per-cell progress bar")
    fig.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Handler of ``vsmlab figures``; returns the exit code."""
    from vsmlab.lab.runner import PROFILES, ManifestCorrupt, NotebookFailed, RunInProgress, list_notebooks, run_figures

    folder = {"notebooks_dir": args.notebooks} if args.notebooks else {}
    if args.list:
        print("\n".join(list_notebooks(**folder)))
        return 0
    if args.profile not in PROFILES:
        print(f"vsmlab figures: --profile: expected one of {', '.join(PROFILES)}, got {args.profile!r}", file=sys.stderr)
        return 2
    if args.no_cache:
        import os

        os.environ["VSMLAB_NO_CACHE"] = "1"
    try:
        run_figures(args.only, args.profile, args.out, seed=args.seed, progress=not args.quiet, **folder)
    except ManifestCorrupt as exc:
        print(f"vsmlab figures: {exc}", file=sys.stderr)
        return 1
    except RunInProgress as exc:
        print(f"vsmlab figures: {exc}", file=sys.stderr)
        return 1
    except ValueError as exc:
        print(f"vsmlab figures: {exc}", file=sys.stderr)
        return 2
    except NotebookFailed as exc:
        print(f"vsmlab figures: FAILED: {exc}\n(figures and executed notebooks of this notebook were left as they were)", file=sys.stderr)
        return 1
    return 0
