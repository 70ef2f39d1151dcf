"""Answers to exercises: what each kind of answer may be, and how a number is graded against the truth.

Parsers turn a student's answer into a value or raise :class:`BadAnswer` with a message that says what is
expected (the kind, the shape, the range), never a bare traceback. :func:`numeric` grades a number::

    right   |a - t| <= right   (relative to |t| when ``relative``)
    close   |a - t| <= close
    wrong   otherwise; a *trap* (a common mistake, computed from the truth) gets its own hint and status
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import torch

__all__ = ["Exercise", "BadAnswer", "Grade", "Trap", "number", "share", "whole", "numbers_list", "image", "placement",
           "choice", "numeric", "percent_trap", "exercise", "kind_of"]

Grade = Callable[[Any], "tuple[str, str]"]


@dataclass(frozen=True)
class Exercise:
    """One exercise. ``parse`` turns an answer into a value (raising :class:`BadAnswer` with what is expected),
    ``grade`` turns the value into (status, message); both are None for an open-ended exercise."""

    id: str
    title: str
    level: str  # "easy" | "medium" | "open"
    question: str
    expects: str = ""
    parse: Callable[[Any], Any] | None = None
    grade: Grade | None = None

    @property
    def closed(self) -> bool:
        """True when :func:`check` can judge an answer."""
        return self.grade is not None

    @property
    def notebook(self) -> str:
        """The notebook's number, e.g. "01"."""
        return self.id.split(".")[0]


class BadAnswer(ValueError):
    """An answer of the wrong kind; the message says what is expected."""


# ------------------------------------------------------------------------------------------ answers
def kind_of(x: Any) -> str:
    """A short description of a value for messages: its type and a shortened repr (or its shape)."""
    if isinstance(x, (np.ndarray, torch.Tensor)):
        return f"{type(x).__name__} of shape {tuple(x.shape)}"
    text = repr(x)
    return f"{type(x).__name__} {text if len(text) <= 40 else text[:37] + '...'}"


def number(x: Any, what: str = "a number") -> float:
    """A finite real number from a Python/numpy number or a one-element array or tensor."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    if isinstance(x, np.ndarray):
        if x.size != 1:
            raise BadAnswer(f"expected {what}, got a {kind_of(x)}; give one value (e.g. float(x))")
        if x.dtype.kind not in "iuf":
            raise BadAnswer(f"expected {what}, got an array of dtype {x.dtype}")
        x = x.item()
    if isinstance(x, bool) or not isinstance(x, numbers.Real):
        raise BadAnswer(f"expected {what}, got {kind_of(x)}")
    value = float(x)
    if not math.isfinite(value):
        raise BadAnswer(f"expected {what}, got {value}: the answer must be a finite number")
    return value


def share(x: Any) -> float:
    """A share in [0, 1]; a value in (1, 100] is refused as a likely percentage."""
    value = number(x, "a share (a number in [0, 1])")
    if 1 < value <= 100:
        raise BadAnswer(f"expected a share in [0, 1], got {value:g}: if that is a percentage, divide it by 100")
    if not 0 <= value <= 1:
        raise BadAnswer(f"expected a share in [0, 1], got {value:g}")
    return value


def whole(x: Any, what: str = "a whole number") -> int:
    """A whole number (an int, or a float with no fractional part)."""
    value = number(x, what)
    if value != round(value):
        raise BadAnswer(f"expected {what}, got {value:g}")
    return int(round(value))


def numbers_list(x: Any, what: str = "a list of numbers") -> list[float]:
    """A flat, non-empty list of finite numbers (a list, tuple, array or tensor; one number is a list of one)."""
    if isinstance(x, (str, bytes, dict, set)) or x is None:
        raise BadAnswer(f"expected {what}, got {kind_of(x)}")
    if isinstance(x, (numbers.Real, np.generic)) and not isinstance(x, bool):
        x = [x]
    try:
        arr = np.asarray(x.detach().cpu() if isinstance(x, torch.Tensor) else x)
    except (TypeError, ValueError):
        raise BadAnswer(f"expected {what}, got {kind_of(x)}") from None
    if arr.ndim != 1 or arr.size == 0 or arr.dtype.kind not in "iuf":
        raise BadAnswer(f"expected {what} (a flat, non-empty list), got {kind_of(x)}")
    if not np.all(np.isfinite(arr)):
        raise BadAnswer(f"expected {what}, got non-finite values {arr.tolist()}")
    return [float(v) for v in arr]


def image(size: int) -> Callable[[Any], np.ndarray]:
    """A parser for one ``size`` x ``size`` grayscale image (bool or numbers in 0..255; leading 1-dims dropped) -> uint8."""
    what = f"a {size}x{size} image (numpy uint8 or bool: 0 = background, 255 or True = shape)"

    def parse(x: Any) -> np.ndarray:
        if isinstance(x, torch.Tensor):
            x = x.detach().cpu().numpy()
        if not isinstance(x, np.ndarray):
            raise BadAnswer(f"expected {what}, got {kind_of(x)}")
        img = x.reshape(x.shape[-2:]) if x.ndim > 2 and all(n == 1 for n in x.shape[:-2]) else x
        if img.shape != (size, size):
            raise BadAnswer(f"expected {what}, got shape {tuple(x.shape)}")
        if img.dtype == np.bool_:
            return img.astype(np.uint8) * 255
        if img.dtype.kind not in "iuf" or not np.all(np.isfinite(img)) or img.min() < 0 or img.max() > 255:
            raise BadAnswer(f"expected {what}, got dtype {img.dtype} with values outside 0..255 or not finite")
        return np.rint(img).astype(np.uint8)

    return parse


def placement(x: Any) -> str:
    """A chess piece placement (the first field of a FEN; a whole FEN is cut to it), checked by the chess reader."""
    from vsmlab.data.chessboards import placement_to_classes

    what = "a piece placement as text, the first field of a FEN such as '4k3/8/8/8/8/8/8/4K3'"
    if not isinstance(x, str) or not x.strip():
        raise BadAnswer(f"expected {what}, got {kind_of(x)}")
    field = x.strip().split(" ")[0]
    try:
        placement_to_classes(field)
    except (ValueError, KeyError, IndexError) as exc:
        raise BadAnswer(f"expected {what}; {field!r} is not one ({exc})") from None
    return field


def choice(options: Sequence[float], what: str) -> Callable[[Any], float]:
    """A parser for a number that must be one of ``options``."""
    def parse(x: Any) -> float:
        value = number(x, what)
        if not any(math.isclose(value, o) for o in options):
            raise BadAnswer(f"expected {what}, one of {', '.join(f'{o:g}' for o in options)}; got {value:g}")
        return value

    return parse


# ------------------------------------------------------------------------------------------ grading
Trap = tuple[Callable[[float], float], str, str]  # (value from the truth, status, hint)


def numeric(truth: Callable[[], float], right: float, close: float, hint: str, *, relative: bool = True,
            traps: Sequence[Trap] = (), explain: str = "", close_hint: str = "") -> Grade:
    """Grade a number against ``truth()``: |a - t| (relative to |t| when ``relative``) <= right / close."""

    def err(a: float, t: float) -> float:
        return abs(a - t) / abs(t) if relative and t != 0 else abs(a - t)

    def grade(a: float) -> tuple[str, str]:
        t = truth()
        if err(a, t) <= right:
            return "right", f"{a:.6g} (the library computes {t:.6g}). {explain}".strip()
        for trap, status, trap_hint in traps:
            if err(a, trap(t)) <= max(right, 1e-9):
                return status, trap_hint
        if err(a, t) <= close:
            off = f"{100 * err(a, t):.2g}% off" if relative else f"off by {err(a, t):.3g}"
            tol = f"{100 * right:g}%" if relative else f"{right:g}"
            return "close", f"{a:.6g} is {off}; right means within {tol}. {close_hint or hint}".strip()
        return "wrong", hint

    return grade


def percent_trap(hint: str = "that looks like a percentage: give the share as a fraction (divide by 100)") -> Trap:
    """The trap of answering a share in percent: 100 x the truth."""
    return (lambda t: 100 * t, "wrong", hint)


def exercise(id: str, title: str, level: str, question: str, expects: str = "",
             parse: Callable[[Any], Any] | None = None, grade: Grade | None = None) -> Exercise:
    """An :class:`Exercise` with the question's whitespace collapsed (questions are written as indented blocks)."""
    return Exercise(id, title, level, " ".join(question.split()), expects, parse, grade)


