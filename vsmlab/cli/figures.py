"""``vsmlab figures``: execute the notebooks with papermill and regenerate figures/.

``--out`` must be new, empty or a figures folder the runner wrote (``MANIFEST.json``, ``NN_notebook/``,
``smoke/``, ``full/``, ``notebooks/`` and the runner's hidden locks and journals): the runner updates such a
folder notebook by notebook, each swap atomic (:mod:`vsmlab.lab.runner`). A file, the working folder, a
folder above it or a folder holding anything else is refused (there is nothing vsmlab may replace there, so
no ``--force``). ``--notebooks`` must be a folder holding notebook sources ``NN_*.py``.
"""

from __future__ import annotations

import argparse
import sys

from vsmlab.cli.common import fail

__all__ = ["add_parsers"]


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Register ``figures`` on the top-level subparsers."""
    from vsmlab.lab.runner import PROFILES

    fig = sub.add_parser("figures", help="execute the notebooks with papermill and regenerate figures/")
    fig.add_argument("--profile", default="default", help=f"one of {', '.join(PROFILES)} (default: default)")
    fig.add_argument("--only", nargs="+", metavar="NAME",
                     help="run only these notebooks (a stem, or a prefix like 05: the lesson and its appendix)")
    fig.add_argument("--appendices", action="store_true",
                     help="run the appendix notebooks (NN_*_appendix) instead of the lessons (the main job)")
    fig.add_argument("--out", default=None, help="figures folder (default: figures/ in the repository); default-profile "
                     "figures go to OUT/<notebook>/, other profiles to OUT/<profile>/<notebook>/")
    fig.add_argument("--notebooks", default=None, metavar="DIR",
                     help="folder of the notebook sources NN_*.py (default: notebooks/ in the repository)")
    fig.add_argument("--seed", type=int, default=None, help="override every notebook's seed (0..2**63-1)")
    fig.add_argument("--no-cache", action="store_true", help="recompute cached models instead of loading them")
    fig.add_argument("--list", action="store_true", help="list the notebooks and exit")
    fig.add_argument("--quiet", action="store_true", help="no per-cell progress bar")
    fig.set_defaults(func=run)


def _owned_figures(path):
    from vsmlab.core.outputs import owned_folder

    top = r"(MANIFEST\.json|\d\d_[^/]+|smoke|full|default|notebooks|\.[^/]+)"
    return owned_folder(path, (rf"{top}/?", r"(\d\d_[^/]+|smoke|full|default|notebooks|\.[^/]+)/.*"),
                        (r"MANIFEST\.json", r"\d\d_[^/]+/", r"(smoke|full)/", r"\.[^/]+"), "a vsmlab figures folder")


def _check_notebooks(folder: str) -> None:
    from pathlib import Path

    from vsmlab.lab.runner import list_notebooks

    if not folder.strip():
        raise ValueError(f"--notebooks: expected a folder, got {folder!r}")
    path = Path(folder)
    if not path.is_dir():
        raise ValueError(f"--notebooks: {folder!r} is not a folder (expected a folder of notebook sources NN_*.py)")
    if not list_notebooks(path):
        raise ValueError(f"--notebooks: {folder!r} holds no notebook sources (expected files named NN_*.py, e.g. "
                         "01_mode_interpolation_1d.py)")


def run(args: argparse.Namespace) -> int:
    """Handler of ``vsmlab figures``; returns the exit code."""
    from vsmlab.core.checks import check_seed
    from vsmlab.core.outputs import OutputKind, prepare_output
    from vsmlab.lab.runner import PROFILES, ManifestCorrupt, NotebookFailed, RunInProgress, list_notebooks, run_figures

    folder = {"notebooks_dir": args.notebooks} if args.notebooks is not None else {}
    try:
        if args.notebooks is not None:
            _check_notebooks(args.notebooks)
    except ValueError as exc:
        return fail("figures", str(exc))
    if args.list:
        from vsmlab.lab.runner import is_appendix

        print("\n".join(f"{s}  (appendix)" if is_appendix(s) else s for s in list_notebooks(**folder)))
        return 0
    if args.profile not in PROFILES:
        print(f"vsmlab figures: --profile: expected one of {', '.join(PROFILES)}, got {args.profile!r}", file=sys.stderr)
        return 2
    try:
        if args.seed is not None:
            check_seed("--seed", args.seed)
        if args.out is not None:
            kind = OutputKind("a figures folder", folder=True, owned=_owned_figures)
            prepare_output(args.out, kind, force=True, flag="--out", force_flag=None)
    except ValueError as exc:
        return fail("figures", str(exc))
    if args.no_cache:
        import os

        os.environ["VSMLAB_NO_CACHE"] = "1"
    try:
        run_figures(args.only, args.profile, args.out, seed=args.seed, progress=not args.quiet,
                    appendices=args.appendices, **folder)
    except ManifestCorrupt as exc:
        print(f"vsmlab figures: {exc}", file=sys.stderr)
        return 1
    except RunInProgress as exc:
        print(f"vsmlab figures: {exc}", file=sys.stderr)
        return 1
    except ValueError as exc:
        text = str(exc)
        for name in ("only", "profile", "seed"):  # library argument names -> the flags as typed
            if text.startswith(f"{name}: "):
                text = f"--{text}"
        return fail("figures", text)
    except NotebookFailed as exc:
        print(f"vsmlab figures: FAILED: {exc}\n(figures and executed notebooks of this notebook were left as they were)", file=sys.stderr)
        return 1
    return 0
