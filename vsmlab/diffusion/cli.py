"""``vsmlab train | sample``: TOML-configured training and sampling from checkpoints. (stub: being written)"""

from __future__ import annotations

import argparse

__all__ = ["add_parsers"]


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Register ``train | sample`` on the top-level subparsers."""
