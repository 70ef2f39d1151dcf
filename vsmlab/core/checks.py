"""Shared argument validators: one message format for every bad argument.

Each validator returns the (possibly normalised) value or raises an error whose message starts with the
argument's name, then says what is allowed and what was given::

    check_int("n", 0, low=1)            -> ValueError("n: expected an int >= 1, got 0")
    check_optional_int("h", 0, low=1)   -> ValueError("h: expected an int >= 1 or None, got 0")
    check_step("t", 1000, 1000)         -> ValueError("t: expected an int step in 0..999, got 1000")
    check_ints("steps", [], 0, 9, nonempty=True) -> ValueError("steps: expected a non-empty sequence of ints in 0..9, got []")
    check_bool("learn_variance", 1)     -> ValueError("learn_variance: expected a bool, got 1")
    check_number("frac", math.nan)      -> ValueError("frac: expected a finite number, got nan")
    check_positive("tol", -1.0)         -> ValueError("tol: expected a finite number > 0, got -1.0")
    check_choice("method", "x", ("euler", "heun")) -> ValueError("method: expected 'euler' or 'heun', got 'x'")
    check_device("device", "cuda")      -> ValueError when CUDA is not available
    resolve_device("--device", None)    -> cuda when available, else cpu (only cpu / cuda / cuda:N accepted)
    check_seed("--seed", 2**70)         -> ValueError("--seed: expected an int in 0..9223372036854775807 ...")
    check_range("--eta", 2.0, 0, 1)     -> ValueError("--eta: expected a number in [0, 1], got 2.0")
    check_memory("--n", 10**14, 4096, "images of 64x64 px") -> ValueError naming the bytes needed and free

For command-line input files, :func:`input_errors` turns what reading a bad file raises (OSError,
MemoryError, a truncated zip, bad JSON, undecodable text) into one :class:`InputError` line naming the
flag and the path.

Booleans are not accepted as ints or numbers (``True`` is almost always a mistake there); numpy integer
and float scalars are (``np.int64(3)``, ``np.float32(0.5)``), and come back as Python ints and floats.
"""

from __future__ import annotations

import contextlib
import json
import math
import numbers
import os
import zipfile
from typing import Any, Iterable, Iterator

import torch

__all__ = ["check_int", "check_optional_int", "check_ints", "check_step", "check_bool", "check_number",
           "check_positive", "check_nonnegative", "check_choice", "check_device", "resolve_device", "check_seed",
           "check_range", "check_square_images", "check_memory", "available_memory", "format_bytes", "SEED_MAX",
           "InputError", "input_errors", "error_text"]

#: the largest seed vsmlab accepts anywhere: seeds are stored as int64 (npz, JSON) and fit torch.Generator
#: (which takes < 2**64), numpy's default_rng and Python's random (which take any int >= 0)
SEED_MAX = 2**63 - 1


def _range_text(low: int | None, high: int | None, noun: str = "an int") -> str:
    if low is not None and high is not None:
        return f"{noun} in {low}..{high}"
    if low is not None:
        return f"{noun} >= {low}"
    if high is not None:
        return f"{noun} <= {high}"
    return noun


def _int_in(value: Any, low: int | None, high: int | None) -> bool:
    """Whether ``value`` is an int (not a bool; numpy ints count) in ``low..high``."""
    return (isinstance(value, numbers.Integral) and not isinstance(value, bool)
            and (low is None or value >= low) and (high is None or value <= high))


def check_int(name: str, value: Any, low: int | None = None, high: int | None = None, hint: str = "", *,
              noun: str = "an int") -> int:
    """``value`` as an int in ``low..high`` (both inclusive, None = unbounded); ``hint`` is appended in
    parentheses after what is allowed, ``noun`` names the kind of int ("an even int"). Raises ValueError
    naming ``name`` (bools and floats are refused)."""
    if not _int_in(value, low, high):
        raise ValueError(f"{name}: expected {_range_text(low, high, noun)}{f' ({hint})' if hint else ''}, got {value!r}")
    return int(value)


def check_optional_int(name: str, value: Any, low: int | None = None, high: int | None = None, hint: str = "") -> int | None:
    """None, or ``value`` as an int in ``low..high`` as by :func:`check_int` (the message says "... or None")."""
    if value is not None and not _int_in(value, low, high):
        raise ValueError(f"{name}: expected {_range_text(low, high)} or None{f' ({hint})' if hint else ''}, got {value!r}")
    return None if value is None else int(value)


def check_step(name: str, value: Any, num_steps: int) -> int:
    """``value`` as a diffusion step: an int in ``0..num_steps - 1``. Raises ValueError naming ``name``."""
    return check_int(name, value, 0, num_steps - 1, noun="an int step")


def check_ints(name: str, values: Any, low: int | None = None, high: int | None = None, nonempty: bool = False) -> list[int]:
    """``values`` (a list, tuple or other iterable, not a string) as a list of ints in ``low..high``;
    ``nonempty``: at least one. Raises ValueError naming ``name``: "name: expected a non-empty sequence of
    ints >= 1, got (1, 0)"."""
    allowed = f"a {'non-empty ' if nonempty else ''}sequence of {_range_text(low, high, 'ints')}"
    try:
        out = None if isinstance(values, (str, bytes)) else list(values)
    except TypeError:
        out = None
    if out is None or (nonempty and not out) or not all(_int_in(v, low, high) for v in out):
        raise ValueError(f"{name}: expected {allowed}, got {values!r}")
    return [int(v) for v in out]


def check_bool(name: str, value: Any, hint: str = "") -> bool:
    """``value`` if it is True or False (not 0 / 1 or a string). Raises ValueError naming ``name``."""
    if not isinstance(value, bool):
        raise ValueError(f"{name}: expected a bool{f' ({hint})' if hint else ''}, got {value!r}")
    return value


def _check_number(name: str, value: Any, allowed: str, ok, finite: bool = True) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or (finite and not math.isfinite(value)) \
            or not ok(value):  # nan fails every ok
        raise ValueError(f"{name}: expected {allowed}, got {value!r}")
    return float(value)


def check_number(name: str, value: Any, hint: str = "") -> float:
    """``value`` as a finite float. Raises ValueError naming ``name``."""
    return _check_number(name, value, "a finite number" + (f" ({hint})" if hint else ""), lambda v: True)


def check_positive(name: str, value: Any, hint: str = "", finite: bool = True) -> float:
    """``value`` as a float > 0, finite unless ``finite=False`` (then +inf is allowed). Raises ValueError
    naming ``name``."""
    allowed = ("a finite number > 0" if finite else "a number > 0") + (f" ({hint})" if hint else "")
    return _check_number(name, value, allowed, lambda v: v > 0, finite)


def check_nonnegative(name: str, value: Any, hint: str = "") -> float:
    """``value`` as a finite float >= 0. Raises ValueError naming ``name``."""
    return _check_number(name, value, "a finite number >= 0" + (f" ({hint})" if hint else ""), lambda v: v >= 0)


def check_choice(name: str, value: Any, choices: Iterable[Any], hint: str = "") -> Any:
    """The choice equal to ``value`` (same type; a numpy int counts as an int). Raises ValueError naming
    ``name`` and listing the choices: ``"name: expected 'a', 'b' or 'c', got 'x'"``."""
    options = tuple(choices)
    probe = int(value) if _int_in(value, None, None) else value
    for c in options:
        if value is c or (type(probe) is type(c) and probe == c):
            return c
    names = [repr(c) for c in options]
    listed = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]
    raise ValueError(f"{name}: expected {listed}{f' ({hint})' if hint else ''}, got {value!r}")


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


def resolve_device(name: str, value: str | None) -> torch.device:
    """Where a run or a sample set computes: ``None`` -> cuda when available, else cpu; otherwise "cpu",
    "cuda" or "cuda:N". ValueError naming ``name`` for anything else, or for CUDA on a machine without it."""
    if value is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if value not in ("cpu", "cuda") and not str(value).startswith("cuda:"):
        raise ValueError(f"{name}: expected cpu or cuda, got {value!r}")
    if str(value).startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"{name}: {value!r} requested but CUDA is not available on this machine; allowed: cpu")
    return torch.device(value)


def check_seed(name: str, value: Any, high: int = SEED_MAX, hint: str = "") -> int:
    """``value`` as a seed: an int in ``0..high`` (default :data:`SEED_MAX` = 2**63 - 1, the int64 range
    every generator in vsmlab accepts). Raises ValueError naming ``name``."""
    return check_int(name, value, 0, high, hint or "0..2**63-1: seeds are stored as int64")


def check_range(name: str, value: Any, low: float, high: float, low_open: bool = False, high_open: bool = False,
                hint: str = "", *, noun: str = "a number") -> float:
    """``value`` as a finite float in the interval low..high (``low_open`` / ``high_open``: that end
    excluded), e.g. ``check_range("--eta", eta, 0, 1)`` -> "--eta: expected a number in [0, 1], got 2.0";
    ``noun`` names the kind of number ("a probability")."""
    interval = f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"

    def ok(v: float) -> bool:
        return (v > low if low_open else v >= low) and (v < high if high_open else v <= high)

    return _check_number(name, value, f"{noun} in {interval}" + (f" ({hint})" if hint else ""), ok)


def check_square_images(name: str, images: Any, multiple: int, layout: str = "[B, C, S, S]") -> torch.Tensor:
    """``images`` if it is a tensor [B, C, S, S] with C 1 or 3 and S a multiple of ``multiple``: TypeError for
    anything but a 4-D tensor, ValueError for another shape, both naming ``name`` and ``layout`` (the shape
    the caller reads, e.g. "[B, 3, S, S]")."""
    if not isinstance(images, torch.Tensor) or images.ndim != 4:
        raise TypeError(f"{name}: expected a tensor {layout}, got {type(images).__name__} {getattr(images, 'shape', '')}")
    _, c, h, w = images.shape
    if c not in (1, 3) or h != w or h % multiple:
        side = "even" if multiple == 2 else f"a multiple of {multiple}"
        raise ValueError(f"{name}: expected {layout} with S {side}, got {list(images.shape)}")
    return images


def format_bytes(n: float) -> str:
    """``n`` bytes in decimal units: "812 bytes", "3.2 MB", "2.1 PB"."""
    if n < 1000:
        return f"{int(n)} bytes"
    for unit in ("KB", "MB", "GB", "TB", "PB", "EB"):
        n /= 1000
        if n < 1000 or unit == "EB":
            return f"{n:.1f} {unit}"
    return f"{n:.1f} EB"  # pragma: no cover


def available_memory() -> int | None:
    """Bytes of memory available to a new allocation (MemAvailable from /proc/meminfo, else the physical
    memory); None when it cannot be told."""
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (OSError, ValueError, AttributeError):  # pragma: no cover - not POSIX
        return None


def check_memory(name: str, count: int, bytes_per_item: float, what: str, extra_bytes: float = 0,
                 available: int | None = None) -> int:
    """Refuse ``count`` items of ``bytes_per_item`` bytes each (plus ``extra_bytes``) when that estimate
    exceeds the memory available now, before anything is allocated. The ValueError names ``name`` (the flag
    or key), the estimate, what is available and the largest count that would fit; ``what`` describes one
    item ("images of 64x64 px"). Returns ``count``."""
    need = count * bytes_per_item + extra_bytes
    free = available_memory() if available is None else available
    if free is not None and need > free:
        fit = max(0, int((free - extra_bytes) // max(bytes_per_item, 1)))
        raise ValueError(f"{name}: {count} {what} need about {format_bytes(need)} of memory, but about "
                         f"{format_bytes(free)} is available here; allowed: at most about {fit}")
    return count


class InputError(ValueError):
    """A named input (a command-line path) that cannot be read; the message is one line naming the flag,
    the path and why."""


def error_text(exc: BaseException) -> str:
    """One line for what went wrong in ``exc``: the OS reason for an OSError ("Permission denied"), the first
    line of the message otherwise, with the exception type where the message alone says little."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    if isinstance(exc, MemoryError):
        return "not enough memory" + (f" ({str(exc).splitlines()[0]})" if str(exc) else "")
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    if isinstance(exc, (zipfile.BadZipFile, EOFError)):
        return f"truncated or corrupt ({text or type(exc).__name__})"
    if isinstance(exc, json.JSONDecodeError):
        return f"not valid JSON ({text})"
    if isinstance(exc, UnicodeDecodeError):
        return f"not text in UTF-8 ({exc.reason} at byte {exc.start})"
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


@contextlib.contextmanager
def input_errors(name: str, path: Any, action: str = "cannot read") -> Iterator[None]:
    """Turn what reading a bad input raises inside the block (OSError, MemoryError, a truncated zip, bad JSON,
    undecodable text) into :class:`InputError`: "``name``: cannot read 'PATH': Permission denied" (plus the
    file inside PATH where that differs). Errors raised with a message of their own (ValueErrors, an OSError
    without an errno such as a refusal to overwrite) pass through unchanged."""
    try:
        yield
    except InputError:
        raise
    except (OSError, MemoryError, zipfile.BadZipFile, EOFError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        if isinstance(exc, OSError) and exc.errno is None:
            raise  # raised with a message of its own (e.g. a refusal to overwrite): already names the path
        inner = getattr(exc, "filename", None)
        where = f" ({inner})" if inner is not None and os.fspath(inner) != os.fspath(path) else ""
        raise InputError(f"{name}: {action} {str(path)!r}{where}: {error_text(exc)}") from exc
