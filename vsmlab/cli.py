"""Command line: ``vsmlab figures | data | train | sample | validate`` (also ``python -m vsmlab``).

Each layer registers its own subcommands (``add_parsers``) and handlers; this module only dispatches:

- ``figures``: :mod:`vsmlab.lab.cli` (run the notebooks, regenerate figures/)
- ``data``, ``validate``: :mod:`vsmlab.data.cli` (generate image data sets, validate samples)
- ``train``, ``sample``: :mod:`vsmlab.diffusion.cli` (TOML-configured training, sampling from checkpoints)
"""

from __future__ import annotations

import argparse
import sys

__all__ = ["main", "build_parser"]


def build_parser() -> argparse.ArgumentParser:
    """The full ``vsmlab`` argument parser."""
    from vsmlab.data import cli as data_cli
    from vsmlab.diffusion import cli as diffusion_cli
    from vsmlab.lab import cli as lab_cli

    parser = argparse.ArgumentParser(prog="vsmlab", description="vsmlab: hallucination in diffusion models, measured.")
    sub = parser.add_subparsers(dest="command", required=True)
    lab_cli.add_parsers(sub)
    data_cli.add_parsers(sub)
    diffusion_cli.add_parsers(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` and run the chosen subcommand; returns the process exit code."""
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
