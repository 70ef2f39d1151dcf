"""What the verb modules share: the one-line error and library argument names shown as the flags typed."""

from __future__ import annotations

import sys

__all__ = ["fail", "flags"]


def fail(verb: str, message: str) -> int:
    """Print ``vsmlab <verb>: error: <message>`` (one line; ``error: <message>`` without a verb) and return
    exit code 2 (bad input)."""
    print(f"vsmlab {verb}: error: {message}" if verb else f"error: {message}", file=sys.stderr)
    return 2


def flags(message: str, names: dict[str, str]) -> str:
    """A library message ``"n: expected ..."`` with its leading argument name as the flag typed (``--n: ...``)."""
    head, sep, rest = message.partition(": ")
    return f"{names[head]}{sep}{rest}" if sep and head in names else message
