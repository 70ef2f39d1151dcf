"""Crash-safe file writes: a reader sees the old bytes or the new ones, never a torn file.

:func:`atomic_write_bytes` writes to a temporary file in the target folder, fsyncs it, renames it over the
target (``os.replace`` is atomic on POSIX) and fsyncs the folder, so the rename itself survives a power
loss. Published files get the usual permissions (0666 minus the process umask), read without changing
the process-wide umask (which other threads may rely on).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

__all__ = ["atomic_write_bytes", "fsync_dir", "current_umask"]


def current_umask() -> int:
    """The process umask, read from /proc where available (no process-wide os.umask round trip)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    return 0o022


def fsync_dir(path: str | os.PathLike) -> None:
    """fsync a folder so that renames and creations inside it are durable (no-op where unsupported)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically: temp file in the same folder, fsync, rename, fsync folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~current_umask())  # mkstemp makes 0600; published files get the usual mode
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)
