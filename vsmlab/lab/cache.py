"""On-disk cache for expensive results (trained models, big sample sets), keyed by their full config.

The key is a SHA-256 of the JSON config plus the source of the library modules the result depends on,
so editing the library invalidates stale entries. Location: ``$VSMLAB_CACHE_DIR`` or ``.cache/vsmlab``
under the current project. ``VSMLAB_NO_CACHE=1`` recomputes (and refreshes) every entry.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path
from typing import Any, Callable, Sequence, TypeVar

import torch

from vsmlab.core.io import atomic_write_bytes

__all__ = ["cache_dir", "config_key", "load_or_compute", "SOURCE_MODULES"]

T = TypeVar("T")
SOURCE_MODULES = ("core.schedules", "core.prediction", "data.mixtures", "nets.mlp", "diffusion.losses", "diffusion.training",
                  "diffusion.variance", "lab.experiments", "core.estimators")


def cache_dir() -> Path:
    """The cache folder (created on first write)."""
    env = os.environ.get("VSMLAB_CACHE_DIR")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / ".cache" / "vsmlab"


def _source_hash(modules: Sequence[str]) -> str:
    h = hashlib.sha256()
    here = Path(__file__).resolve().parents[1]  # the vsmlab package folder
    for name in dict.fromkeys(modules):
        p = here.joinpath(*name.split(".")).with_suffix(".py")
        if p.exists():
            h.update(p.read_bytes())
    return h.hexdigest()[:16]


def config_key(config: dict[str, Any], modules: Sequence[str] = SOURCE_MODULES) -> str:
    """Stable hex key of a JSON-serialisable config plus the source of the library ``modules`` it depends on."""
    try:
        text = json.dumps(config, sort_keys=True, default=str)
    except TypeError as exc:
        raise TypeError(f"config: expected JSON-serialisable values ({exc})") from exc
    return hashlib.sha256((text + _source_hash(modules)).encode()).hexdigest()[:24]


def load_or_compute(
    config: dict[str, Any], compute: Callable[[], T], use_cache: bool | None = None,
    modules: Sequence[str] = SOURCE_MODULES,
) -> T:
    """Return the cached result for ``config`` or ``compute()`` it and store it (torch.save, atomic).

    use_cache: None reads ``VSMLAB_NO_CACHE``; False always recomputes (and overwrites the entry).
    modules: the library modules (by name) whose source is part of the key.
    """
    if use_cache is None:
        use_cache = os.environ.get("VSMLAB_NO_CACHE", "") not in ("1", "true", "yes")
    path = cache_dir() / f"{config_key(config, modules)}.pt"
    if use_cache and path.exists():
        try:
            return torch.load(path, weights_only=False)
        except Exception:  # a corrupt entry is recomputed, never trusted
            pass
    result = compute()
    buf = io.BytesIO()
    torch.save(result, buf)
    atomic_write_bytes(path, buf.getvalue())
    return result
