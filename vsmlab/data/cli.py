"""``vsmlab data | validate``: generate image data sets and validate samples. (stub: being written)"""

from __future__ import annotations

import argparse

__all__ = ["add_parsers"]


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Register ``data | validate`` on the top-level subparsers."""
