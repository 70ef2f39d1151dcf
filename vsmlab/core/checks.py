"""Shared argument validators: one message format for every bad argument.

Each validator returns the (possibly normalised) value or raises an error whose message starts with the
argument's name, then says what is allowed and what was given::

    check_int("n", 0, low=1)            -> ValueError("n: expected an int >= 1, got 0")
    check_positive("tol", -1.0)         -> ValueError("tol: expected a finite number > 0, got -1.0")
    check_choice("method", "x", ("euler", "heun")) -> ValueError("method: expected 'euler' or 'heun', got 'x'")
    check_device("device", "cuda")      -> ValueError when CUDA is not available

Booleans are not accepted as ints or numbers (``True`` is almost always a mistake there).
"""

from __future__ import annotations

import math
from typing import Any, Iterable

import torch

__all__ = ["check_int", "check_positive", "check_nonnegative", "check_choice", "check_device"]


def _range_text(low: int | None, high: int | None) -> str:
    if low is not None and high is not None:
        return f"an int in {low}..{high}"
    if low is not None:
        return f"an int >= {low}"
    if high is not None:
        return f"an int <= {high}"
    return "an int"


def check_int(name: str, value: Any, low: int | None = None, high: int | None = None, hint: str = "") -> int:
    """``value`` as an int in ``low..high`` (both inclusive, None = unbounded); ``hint`` is appended in
    parentheses after what is allowed. Raises ValueError naming ``name`` (bools and floats are refused)."""
    allowed = _range_text(low, high) + (f" ({hint})" if hint else "")
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name}: expected {allowed}, got {value!r}")
    if (low is not None and value < low) or (high is not None and value > high):
        raise ValueError(f"{name}: expected {allowed}, got {value!r}")
    return int(value)


def _check_number(name: str, value: Any, allowed: str, ok) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or not ok(value):
        raise ValueError(f"{name}: expected {allowed}, got {value!r}")
    return float(value)


def check_positive(name: str, value: Any, hint: str = "") -> float:
    """``value`` as a finite float > 0. Raises ValueError naming ``name``."""
    return _check_number(name, value, "a finite number > 0" + (f" ({hint})" if hint else ""), lambda v: v > 0)


def check_nonnegative(name: str, value: Any, hint: str = "") -> float:
    """``value`` as a finite float >= 0. Raises ValueError naming ``name``."""
    return _check_number(name, value, "a finite number >= 0" + (f" ({hint})" if hint else ""), lambda v: v >= 0)


def check_choice(name: str, value: Any, choices: Iterable[Any]) -> Any:
    """``value`` if it is one of ``choices`` (same type and equal). Raises ValueError naming ``name`` and
    listing the choices: ``"name: expected 'a', 'b' or 'c', got 'x'"``."""
    options = tuple(choices)
    if any(value is c or (type(value) is type(c) and value == c) for c in options):
        return value
    names = [repr(c) for c in options]
    listed = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]
    raise ValueError(f"{name}: expected {listed}, got {value!r}")


def check_device(name: str, device: torch.device | str | None) -> torch.device | None:
    """``device`` as a ``torch.device`` (None stays None). Raises ValueError naming ``name`` for an unknown
    device string, or a CUDA / MPS device on a machine without one (saying which devices exist)."""
    if device is None:
        return None
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"{name}: expected a torch device such as 'cpu' or 'cuda', got {device!r}") from exc
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"{name}: {str(device)!r} asked for CUDA, but no CUDA device is available here; "
                             "use 'cpu'")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(f"{name}: {str(device)!r} does not exist; this machine has "
                             f"{torch.cuda.device_count()} CUDA device(s) (cuda:0..cuda:{torch.cuda.device_count() - 1})")
    if dev.type == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        raise ValueError(f"{name}: {str(device)!r} asked for MPS, but MPS is not available here; use 'cpu'")
    return dev
