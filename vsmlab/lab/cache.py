"""On-disk cache for expensive results (trained models, big sample sets), keyed by their full config.

The key is a SHA-256 of the JSON config, the device type and default dtype the result is computed for,
the torch version, and the *code* of the library modules the result depends on: each module's AST with
docstrings removed (comments never reach the AST), so editing a docstring or a comment does not retrain,
while editing code does. Module names are dotted paths inside the ``vsmlab`` package
(``"core.schedules"``); a name with no such module is a ValueError.

Entries are ``torch.save`` files read back with ``torch.load(..., weights_only=True, map_location=device)``:
no pickled code runs from the cache folder, so a result must be made of tensors, state dicts and plain
containers (dict, list, tuple, str, int, float, bool, None); anything else is refused when stored
(TypeError). An unreadable entry is reported (a warning naming the file), moved aside to
``<entry>.corrupt`` and recomputed.

Location: ``$VSMLAB_CACHE_DIR`` if set, else ``$XDG_CACHE_HOME/vsmlab``, else ``~/.cache/vsmlab`` (a user
folder, so a non-editable install works). ``VSMLAB_NO_CACHE=1`` recomputes (and refreshes) every entry.
"""

from __future__ import annotations

import ast
import hashlib
import io
import json
import os
import pickle
import warnings
import zipfile
from pathlib import Path
from typing import Any, Callable, Sequence, TypeVar

import torch

from vsmlab.core.io import atomic_write_bytes

__all__ = ["cache_dir", "config_key", "load_or_compute", "source_digest", "module_path", "SOURCE_MODULES"]

T = TypeVar("T")
SOURCE_MODULES = ("core.schedules", "core.prediction", "data.mixtures", "nets.mlp", "diffusion.losses", "diffusion.training",
                  "diffusion.optim", "diffusion.variance", "diffusion.likelihoods", "lab.experiments", "core.estimators")
_PACKAGE = Path(__file__).resolve().parents[1]  # the vsmlab package folder (site-packages too)
# what torch.load raises for a truncated, garbled or non-weights-only file
_UNREADABLE = (RuntimeError, EOFError, OSError, ValueError, pickle.UnpicklingError, zipfile.BadZipFile)


def cache_dir() -> Path:
    """The cache folder (created on first write): $VSMLAB_CACHE_DIR, $XDG_CACHE_HOME/vsmlab or ~/.cache/vsmlab."""
    env = os.environ.get("VSMLAB_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "vsmlab"


def module_path(name: str) -> Path:
    """The source file of ``vsmlab.<name>`` (a module file or a package's ``__init__.py``); ValueError if none."""
    if not isinstance(name, str) or not name or not all(part.isidentifier() for part in name.split(".")):
        raise ValueError(f"modules: expected dotted names inside vsmlab such as 'core.schedules', got {name!r}")
    base = _PACKAGE.joinpath(*name.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    raise ValueError(f"modules: no module 'vsmlab.{name}' (looked for {base.with_suffix('.py')}); expected dotted "
                     f"names inside vsmlab such as {', '.join(repr(m) for m in SOURCE_MODULES[:3])}")


def _strip_docstrings(tree: ast.AST) -> ast.AST:
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                    and isinstance(body[0].value.value, str):
                node.body = body[1:] or [ast.Pass()]
    return tree


def source_digest(source: str) -> str:
    """Hex digest of Python ``source``'s code: the AST without docstrings and positions (comments, blank
    lines and docstring edits leave it unchanged; any code change changes it)."""
    tree = _strip_docstrings(ast.parse(source))
    return hashlib.sha256(ast.dump(tree, annotate_fields=True, include_attributes=False).encode()).hexdigest()


def _source_hash(modules: Sequence[str]) -> str:
    if isinstance(modules, str):
        raise TypeError(f"modules: expected a sequence of module names, got the string {modules!r}")
    h = hashlib.sha256()
    for name in dict.fromkeys(modules):
        h.update(name.encode() + b"\0" + source_digest(module_path(name).read_text(encoding="utf-8")).encode())
    return h.hexdigest()[:16]


def _device_type(device: str | torch.device) -> str:
    try:
        return torch.device(device).type
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"device: expected a torch device like 'cpu' or 'cuda', got {device!r} ({exc})") from None


def config_key(
    config: dict[str, Any], modules: Sequence[str] = SOURCE_MODULES, *, device: str | torch.device = "cpu",
    dtype: torch.dtype | None = None,
) -> str:
    """Stable hex key of a JSON-serialisable config, the device type, dtype (default: torch's default
    dtype), the torch version and the code of the library ``modules`` it depends on."""
    try:
        text = json.dumps(config, sort_keys=True, default=str)
    except TypeError as exc:
        raise TypeError(f"config: expected JSON-serialisable values ({exc})") from exc
    dtype = torch.get_default_dtype() if dtype is None else dtype
    if not isinstance(dtype, torch.dtype):
        raise TypeError(f"dtype: expected a torch.dtype, got {dtype!r}")
    context = json.dumps({"device": _device_type(device), "dtype": str(dtype), "torch": torch.__version__})
    return hashlib.sha256((text + context + _source_hash(modules)).encode()).hexdigest()[:24]


def _serialise(result: Any) -> bytes:
    """torch.save bytes of ``result``, checked to load back with weights_only=True (TypeError otherwise)."""
    buf = io.BytesIO()
    torch.save(result, buf)
    data = buf.getvalue()
    try:
        torch.load(io.BytesIO(data), weights_only=True, map_location="cpu")
    except pickle.UnpicklingError as exc:
        raise TypeError(f"compute: its result ({type(result).__name__}) cannot be cached: it would not load with "
                        f"weights_only=True; return tensors, state dicts and plain containers ({exc})") from None
    return data


def load_or_compute(
    config: dict[str, Any], compute: Callable[[], T], use_cache: bool | None = None,
    modules: Sequence[str] = SOURCE_MODULES, *, device: str | torch.device = "cpu", dtype: torch.dtype | None = None,
) -> T:
    """Return the cached result for ``config`` or ``compute()`` it and store it (torch.save, atomic).

    use_cache: None reads ``VSMLAB_NO_CACHE``; False always recomputes (and overwrites the entry).
    modules: the library modules (dotted names inside vsmlab) whose code is part of the key.
    device, dtype: what the result is computed for (part of the key; tensors are loaded onto ``device``).
    A corrupt entry is reported with a warning naming it, moved to ``<entry>.corrupt`` and recomputed.
    """
    if use_cache is None:
        use_cache = os.environ.get("VSMLAB_NO_CACHE", "").lower() not in ("1", "true", "yes")
    path = cache_dir() / f"{config_key(config, modules, device=device, dtype=dtype)}.pt"
    if use_cache and path.exists():
        try:
            return torch.load(path, weights_only=True, map_location=torch.device(device))
        except _UNREADABLE as exc:
            aside = path.with_name(path.name + ".corrupt")
            os.replace(path, aside)
            warnings.warn(f"cache: entry {path} is unreadable ({type(exc).__name__}: {str(exc)[:200]}); "
                          f"moved it to {aside} and recomputing", RuntimeWarning, stacklevel=2)
    result = compute()
    atomic_write_bytes(path, _serialise(result))
    return result
