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

Shipped weights (``*.safetensors``) are the EMA weights alone, nothing pickled: a ``safetensors`` file whose
header metadata holds ``format = "vsmlab.weights"``, ``version``, ``model_kind``, ``model_config`` and
``config`` (JSON), ``step`` and the stored ``dtype`` (float32 or float16; loading upcasts to float32).
:func:`save_weights` writes one from a checkpoint payload; :func:`load_checkpoint` reads either kind and
returns the same dict layout (for a weights file ``model``, ``optimizer``, ``rng`` are empty and
``slim_weights = "ema"``), so every reader (``vsmlab sample``, the studies) takes both. A weights file
cannot resume training. :func:`read_checkpoint` is the reader for a path a user typed: it looks at a file's
first bytes and refuses anything that is not one of these two kinds before torch reads it.
"""

from __future__ import annotations

import io
import json
import os
import re
from pathlib import Path
from typing import Any

import torch

from vsmlab.core.io import atomic_write_bytes

__all__ = [
    "FORMAT", "VERSION", "CheckpointError", "save_checkpoint", "load_checkpoint", "step_path", "latest_path",
    "step_checkpoints", "write_run_checkpoint", "prune_step_checkpoints", "check_config_matches", "RESUMABLE_KEYS",
    "WEIGHTS_FORMAT", "WEIGHTS_SUFFIX", "save_weights", "weights_bytes", "read_checkpoint", "plain",
]

FORMAT, VERSION = "vsmlab.checkpoint", 1
WEIGHTS_FORMAT, WEIGHTS_VERSION, WEIGHTS_SUFFIX = "vsmlab.weights", 1, ".safetensors"
_WEIGHT_DTYPES = {"float32": torch.float32, "float16": torch.float16}
_REQUIRED = ("format", "version", "config", "model_kind", "model_config", "step", "model", "ema", "optimizer",
             "timestep_sampler", "rng")
_STEP_FILE = re.compile(r"^step_(\d{7,})\.pt$")

#: config keys a resumed run may change (everything else must equal the checkpoint's config)
RESUMABLE_KEYS = frozenset({("train", "steps"), ("train", "save_every"), ("train", "keep_last"),
                            ("train", "log_every"), ("train", "cuda_graph")}) | {("sample", k) for k in (
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


def weights_bytes(payload: dict[str, Any], dtype: str = "float32") -> bytes:
    """The bytes of a shipped weights file: ``payload``'s EMA state dict cast to ``dtype`` (float32 | float16)
    in safetensors format, with the model and training config in the header metadata (see module doc)."""
    from safetensors.torch import save

    if dtype not in _WEIGHT_DTYPES:
        raise ValueError(f"dtype: expected one of {sorted(_WEIGHT_DTYPES)}, got {dtype!r}")
    if payload.get("ema") is None:
        raise CheckpointError("payload has no EMA weights (train.ema = 0); a weights file holds EMA weights only")
    tensors = {k: v.detach().to("cpu", _WEIGHT_DTYPES[dtype] if v.is_floating_point() else v.dtype).contiguous()
               for k, v in payload["ema"].items()}
    meta = {"format": WEIGHTS_FORMAT, "version": str(WEIGHTS_VERSION), "model_kind": str(payload["model_kind"]),
            "model_config": json.dumps(payload["model_config"], sort_keys=True),
            "config": json.dumps(payload["config"], sort_keys=True), "step": str(int(payload["step"])),
            "dtype": dtype}
    return save(tensors, metadata=meta)


def save_weights(path: str | os.PathLike, payload: dict[str, Any], dtype: str = "float32") -> int:
    """Write :func:`weights_bytes` of ``payload`` atomically to ``path`` (``*.safetensors``); returns its size."""
    if Path(path).suffix != WEIGHTS_SUFFIX:
        raise ValueError(f"path: a weights file ends in {WEIGHTS_SUFFIX!r}, got {str(path)!r}")
    data = weights_bytes(payload, dtype)
    atomic_write_bytes(path, data)
    return len(data)


def _load_weights(path: Path, map_location: str | torch.device | None) -> dict[str, Any]:
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt", device="cpu") as fh:
            meta = fh.metadata() or {}
            if meta.get("format") != WEIGHTS_FORMAT:
                raise CheckpointError(f"checkpoint {str(path)!r}: a safetensors file but not vsmlab weights "
                                      f"(format {meta.get('format')!r}, expected {WEIGHTS_FORMAT!r})")
            if meta.get("version") != str(WEIGHTS_VERSION):
                raise CheckpointError(f"checkpoint {str(path)!r}: weights version {meta.get('version')!r}, "
                                      f"this vsmlab reads {WEIGHTS_VERSION}")
            ema = {k: fh.get_tensor(k) for k in fh.keys()}
    except (SafetensorError, OSError, ValueError) as exc:
        if isinstance(exc, CheckpointError):
            raise
        raise CheckpointError(f"checkpoint {str(path)!r}: cannot be read as safetensors (truncated or corrupt?): "
                              f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") from None
    try:
        model_config, config = json.loads(meta["model_config"]), json.loads(meta["config"])
        step = int(meta["step"])
    except (KeyError, ValueError) as exc:
        raise CheckpointError(f"checkpoint {str(path)!r}: weights metadata incomplete ({exc})") from None
    ema = {k: (v.float() if v.is_floating_point() else v).to(map_location or "cpu") for k, v in ema.items()}
    return {"format": FORMAT, "version": VERSION, "config": config, "model_kind": meta["model_kind"],
            "model_config": model_config, "step": step, "model": {}, "ema": ema, "optimizer": {},
            "timestep_sampler": {}, "rng": {}, "slim": True, "slim_weights": "ema", "dtype": meta.get("dtype")}


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device | None = "cpu") -> dict[str, Any]:
    """Read a training checkpoint (``torch.load(weights_only=True)``) or a shipped weights file
    (``*.safetensors``, EMA weights upcast to float32); CheckpointError naming the file if it is missing,
    truncated, corrupt or not a vsmlab checkpoint."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {str(path)!r}: no such file")
    if path.suffix == WEIGHTS_SUFFIX:
        return _load_weights(path, map_location)
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


_UNSAFE_ADVICE = ("weights_only", "Weights only", "arbitrary code")


def read_checkpoint(path: str | os.PathLike, name: str = "checkpoint") -> dict[str, Any]:
    """:func:`load_checkpoint` (on the CPU) for a path given by a user: a folder, a file that is neither a
    safetensors file nor a zip archive as ``torch.save`` writes, or an archive without a pickle is refused as
    "not a vsmlab checkpoint" before torch reads it; a file holding other Python objects is refused without
    passing on torch's advice to load it unsafely. Errors (CheckpointError, or InputError for an unreadable
    file) name ``name`` or the file."""
    import zipfile

    from vsmlab.core.checks import input_errors

    path = Path(path)
    what = "expected a vsmlab checkpoint: a run's latest.pt / step_NNNNNNN.pt, or a .safetensors weights file"
    if path.is_dir():
        hint = f"; did you mean {str(path / 'latest.pt')!r}?" if (path / "latest.pt").is_file() else ""
        raise CheckpointError(f"{name}: {str(path)!r} is a folder; {what}{hint}")
    if path.is_file() and path.suffix == WEIGHTS_SUFFIX:
        with input_errors(name, path):
            with open(path, "rb") as fh:
                head = fh.read(9)
        if len(head) < 9 or head[8:9] != b"{":  # safetensors: 8-byte header length, then the JSON header
            raise CheckpointError(f"checkpoint {str(path)!r}: not a vsmlab checkpoint (not a safetensors file); {what}")
    elif path.is_file():
        with input_errors(name, path):
            with open(path, "rb") as fh:
                head = fh.read(4)
        if head != b"PK\x03\x04":
            kind = "an empty file" if not head else "not a zip archive as torch.save writes"
            raise CheckpointError(f"checkpoint {str(path)!r}: not a vsmlab checkpoint ({kind}); {what}")
        try:
            with zipfile.ZipFile(path) as zf:
                names = zf.namelist()
        except (zipfile.BadZipFile, OSError, EOFError, ValueError):
            names = None  # truncated: the loader says so, naming the file
        if names is not None and not any(n.endswith("/data.pkl") for n in names):
            shown = ", ".join(sorted(names)[:3]) or "nothing"
            raise CheckpointError(f"checkpoint {str(path)!r}: not a vsmlab checkpoint (a zip archive holding "
                                  f"{shown}, not one torch.save wrote); {what}")
    try:
        with input_errors(name, path):
            return load_checkpoint(path, map_location="cpu")
    except CheckpointError as exc:
        if any(a in str(exc) for a in _UNSAFE_ADVICE):
            raise CheckpointError(f"checkpoint {str(path)!r}: not a vsmlab checkpoint (it holds Python objects "
                                  "that vsmlab never writes; it was not loaded)") from None
        raise


def plain(value: Any) -> Any:
    """Tuples -> lists, recursively (configs compare equal after a TOML / checkpoint round trip)."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


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
