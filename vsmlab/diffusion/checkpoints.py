"""Training checkpoints: one file holds everything a run needs to continue exactly.

A checkpoint is a dict written with ``torch.save`` into memory and then to disk atomically
(:func:`vsmlab.core.io.atomic_write_bytes`: temp file, fsync, rename, fsync folder), so a reader (or a
resumed run after SIGKILL) sees the previous file or the new one, never a torn one. Layout::

    format            "vsmlab.checkpoint"        version  1
    config            the full validated TOML config (plain dict; see vsmlab.diffusion.config)
    model_kind        "unet" | "mlp"             model_config  the net's ``.config`` (rebuilds it)
    step              completed global steps
    model, ema        state dicts (ema None without EMA)
    optimizer         optimizer state dict
    timestep_sampler  {"name", and for loss_second_moment "history" [T, 10], "count" [T]}
    rng               {"mode"; "sequential" mode also the generator / torch RNG states}

No wall-clock values are stored as tensors (a resumed run must compare equal tensor by tensor). Files in a
run folder: ``latest.pt`` (always the newest) and ``step_NNNNNNN.pt`` (every ``save_every`` steps; only the
newest ``keep_last`` are kept when keep_last > 0). Files are read with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import io
import os
import re
from pathlib import Path
from typing import Any

import torch

from vsmlab.core.io import atomic_write_bytes

__all__ = [
    "FORMAT", "VERSION", "CheckpointError", "save_checkpoint", "load_checkpoint", "step_path", "latest_path",
    "step_checkpoints", "write_run_checkpoint", "prune_step_checkpoints", "check_config_matches", "RESUMABLE_KEYS",
]

FORMAT, VERSION = "vsmlab.checkpoint", 1
_REQUIRED = ("format", "version", "config", "model_kind", "model_config", "step", "model", "ema", "optimizer",
             "timestep_sampler", "rng")
_STEP_FILE = re.compile(r"^step_(\d{7,})\.pt$")

#: config keys a resumed run may change (everything else must equal the checkpoint's config)
RESUMABLE_KEYS = frozenset({("train", "steps"), ("train", "save_every"), ("train", "keep_last"),
                            ("train", "log_every")}) | {("sample", k) for k in (
                                "n", "batch_size", "sampler", "steps", "variance", "eta", "weights", "seed",
                                "trajectory_every")}


class CheckpointError(ValueError):
    """A checkpoint file that cannot be read or does not match the run; the message names the file."""


def latest_path(run_dir: str | os.PathLike) -> Path:
    """``run_dir/latest.pt``."""
    return Path(run_dir) / "latest.pt"


def step_path(run_dir: str | os.PathLike, step: int) -> Path:
    """``run_dir/step_NNNNNNN.pt`` (7 digits, zero-padded)."""
    return Path(run_dir) / f"step_{int(step):07d}.pt"


def step_checkpoints(run_dir: str | os.PathLike) -> list[tuple[int, Path]]:
    """[(step, path)] of the ``step_*.pt`` files in ``run_dir``, ascending."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return []
    found = []
    for p in run_dir.iterdir():
        m = _STEP_FILE.match(p.name)
        if m:
            found.append((int(m.group(1)), p))
    return sorted(found)


def save_checkpoint(path: str | os.PathLike, payload: dict[str, Any]) -> None:
    """Serialise ``payload`` with torch.save into memory, then write it atomically to ``path``."""
    missing = [k for k in _REQUIRED if k not in payload]
    if missing:
        raise ValueError(f"payload: missing {missing}; a checkpoint holds {list(_REQUIRED)}")
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device | None = "cpu") -> dict[str, Any]:
    """Read a checkpoint with ``torch.load(weights_only=True)``; CheckpointError naming the file if it is
    missing, truncated, corrupt or not a vsmlab checkpoint."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {str(path)!r}: no such file")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # truncated zip, bad pickle, ...: all mean "this file is unusable"
        raise CheckpointError(f"checkpoint {str(path)!r}: cannot be read (truncated or corrupt?): "
                              f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"checkpoint {str(path)!r}: not a vsmlab training checkpoint (format "
                              f"{payload.get('format') if isinstance(payload, dict) else type(payload).__name__!r}, "
                              f"expected {FORMAT!r})")
    if payload.get("version") != VERSION:
        raise CheckpointError(f"checkpoint {str(path)!r}: version {payload.get('version')!r}, this vsmlab reads {VERSION}")
    missing = [k for k in _REQUIRED if k not in payload]
    if missing:
        raise CheckpointError(f"checkpoint {str(path)!r}: missing entries {missing}")
    return payload


def prune_step_checkpoints(run_dir: str | os.PathLike, keep_last: int) -> list[Path]:
    """Delete all but the newest ``keep_last`` step files (keep_last = 0: keep all). Returns the deleted paths."""
    if keep_last <= 0:
        return []
    files = step_checkpoints(run_dir)
    doomed = [p for _, p in files[:-keep_last]]
    for p in doomed:
        p.unlink(missing_ok=True)
    return doomed


def write_run_checkpoint(run_dir: str | os.PathLike, payload: dict[str, Any], keep_step: bool,
                         keep_last: int = 0) -> list[Path]:
    """Write ``payload`` as ``step_NNNNNNN.pt`` (when ``keep_step``) and then ``latest.pt``; prune old step
    files to ``keep_last``. The bytes are serialised once. Returns the written paths."""
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    data = buffer.getvalue()
    written = []
    if keep_step:
        p = step_path(run_dir, payload["step"])
        atomic_write_bytes(p, data)
        written.append(p)
    atomic_write_bytes(latest_path(run_dir), data)
    written.append(latest_path(run_dir))
    if keep_step:
        prune_step_checkpoints(run_dir, keep_last)
    return written


def _flat(config: dict[str, Any]) -> dict[tuple[str, str], Any]:
    return {(s, k): v for s, section in config.items() if isinstance(section, dict) for k, v in section.items()}


def check_config_matches(path: str | os.PathLike, saved: dict[str, Any], current: dict[str, Any],
                         allowed_changes: frozenset = RESUMABLE_KEYS) -> None:
    """CheckpointError naming the file and every differing key unless ``current`` equals ``saved`` up to
    ``allowed_changes`` ((section, key) pairs)."""
    a, b = _flat(saved), _flat(current)
    diffs = []
    for key in sorted(set(a) | set(b)):
        if key in allowed_changes:
            continue
        va, vb = a.get(key, "<absent>"), b.get(key, "<absent>")
        if isinstance(va, (list, tuple)) and isinstance(vb, (list, tuple)):
            va, vb = list(va), list(vb)
        if va != vb:
            diffs.append(f"{key[0]}.{key[1]}: checkpoint {va!r}, config {vb!r}")
    if diffs:
        raise CheckpointError(
            f"checkpoint {str(path)!r} does not match the config: " + "; ".join(diffs)
            + ". Resume with the run's own config (config.toml in the run folder) or start a new --out; "
            + "a resumed run may change only " + ", ".join(sorted(f"{s}.{k}" for s, k in allowed_changes if s == "train"))
            + " and [sample]")
