"""Command line: ``vsmlab figures | data | validate | train | sample`` (also ``python -m vsmlab``).

The top layer: it parses arguments, calls library functions and reports; nothing below imports it. One
module per verb registers its subcommands (``add_parsers``) and handlers; this module only dispatches:

- ``figures``: :mod:`vsmlab.cli.figures` (run the notebooks, regenerate figures/: :mod:`vsmlab.lab.runner`)
- ``data``: :mod:`vsmlab.cli.data` (write SimpleShapes, Cards, ChessImages: :mod:`vsmlab.data`)
- ``validate``: :mod:`vsmlab.cli.validate` (judge images with a data set's validator)
- ``train``: :mod:`vsmlab.cli.train` (a TOML config into a run folder: :func:`vsmlab.diffusion.runs.train_run`)
- ``sample``: :mod:`vsmlab.cli.sample` (a checkpoint into an .npz:
  :func:`vsmlab.diffusion.sample_sets.sample_checkpoint`)

Errors. A handler returns its exit code (0 ok, 1 a run that failed, 2 bad input) after printing one line
``vsmlab <verb>: error: <what>``. Anything a handler does not catch is reported here the same way, as one
line, never a traceback: exit code 2 for bad input or an environment problem (ValueError, TypeError,
OSError such as a read-only or full disk, MemoryError, a corrupt zip / JSON file), 1 for anything else (an
internal error), 130 for Ctrl-C. ``vsmlab --debug ...`` or ``VSMLAB_DEBUG=1`` shows the full traceback instead.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import zipfile

__all__ = ["main", "build_parser", "DEBUG_ENV"]

#: set to 1 to get full tracebacks instead of one-line errors (same as ``vsmlab --debug``)
DEBUG_ENV = "VSMLAB_DEBUG"

#: how torch reports a failed allocation (a RuntimeError): treated as a MemoryError
_ALLOCATION_FAILED = ("out of memory", "can't allocate memory", "not enough memory")

_INPUT_ERRORS = (ValueError, TypeError, OSError, MemoryError, OverflowError, zipfile.BadZipFile, EOFError,
                 json.JSONDecodeError, UnicodeError)


def build_parser() -> argparse.ArgumentParser:
    """The full ``vsmlab`` argument parser."""
    from vsmlab.cli import data, figures, sample, train, validate

    parser = argparse.ArgumentParser(prog="vsmlab", description="vsmlab: hallucination in diffusion models, measured.",
                                     epilog=f"Errors are one line; --debug (or {DEBUG_ENV}=1) shows the traceback.")
    parser.add_argument("--debug", action="store_true", help=f"full tracebacks instead of one-line errors "
                        f"(also {DEBUG_ENV}=1)")
    sub = parser.add_subparsers(dest="command", required=True)
    for verb in (figures, data, validate, train, sample):
        verb.add_parsers(sub)
    return parser


def _verb(args: argparse.Namespace) -> str:
    return " ".join(str(x) for x in (args.command, getattr(args, "dataset", None)) if x)


def _debug(args: argparse.Namespace) -> bool:
    return bool(getattr(args, "debug", False)) or os.environ.get(DEBUG_ENV, "").strip() not in ("", "0")


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` and run the chosen subcommand; returns the process exit code (errors as one line)."""
    args = build_parser().parse_args(argv)
    if _debug(args):
        return int(args.func(args) or 0)
    verb = _verb(args)
    rank = os.environ.get("RANK", "0")
    where = f"vsmlab {verb}" + ("" if rank in ("", "0") else f" (rank {rank})")
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print(f"\n{where}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader of stdout went away (`vsmlab ... | head`)
        try:
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - silence the flush at exit
        except OSError:  # pragma: no cover
            pass
        return 1
    except _INPUT_ERRORS as exc:
        from vsmlab.core.checks import error_text

        detail = error_text(exc) if isinstance(exc, (OSError, MemoryError, zipfile.BadZipFile, EOFError)) else \
            (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        if isinstance(exc, OSError) and getattr(exc, "filename", None) and str(exc.filename) not in detail:
            detail = f"{exc.filename!s}: {detail}"
        print(f"{where}: error: {detail}", file=sys.stderr)
        return 2
    except Exception as exc:  # an internal error: still one line; the traceback on request
        text = (str(exc).strip().splitlines() or [""])[0]
        if isinstance(exc, RuntimeError) and any(m in text.lower() for m in _ALLOCATION_FAILED):
            print(f"{where}: error: not enough memory ({text}); use a smaller --n / --batch-size "
                  "(or train.batch_size / data.n)", file=sys.stderr)
            return 2
        print(f"{where}: error: internal error {type(exc).__name__}{': ' + text if text else ''} "
              f"(rerun with --debug or {DEBUG_ENV}=1 for the traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
