"""Crash-safe file writes: a reader sees the old bytes or the new ones, never a torn file.

:func:`atomic_write_bytes` writes to a temporary file in the target folder, fsyncs it, renames it over the
target (``os.replace`` is atomic on POSIX) and fsyncs the folder, so the rename itself survives a power
loss. Published files get the usual permissions (0666 minus the process umask), read without changing
the process-wide umask (which other threads may rely on).

:func:`file_lock` serialises read-modify-write updates between processes (``fcntl.flock`` on a lock
file; released by the kernel when the holder dies, so a killed process never leaves a stale lock).
:func:`exchange_paths` swaps two folders in one atomic step (Linux ``renameat2(RENAME_EXCHANGE)``), so
a published folder is never missing, not even for an instant.
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from pathlib import Path
from typing import Iterator

__all__ = ["atomic_write_bytes", "fsync_dir", "current_umask", "file_lock", "LockHeld", "exchange_paths"]


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


class LockHeld(RuntimeError):
    """A non-blocking :func:`file_lock` found the lock held by another process; ``path`` names the lock file."""

    def __init__(self, path: Path) -> None:
        super().__init__(f"lock {path} is held by another process")
        self.path = path


@contextlib.contextmanager
def file_lock(path: str | os.PathLike, blocking: bool = True) -> Iterator[Path]:
    """Hold an exclusive ``fcntl.flock`` on ``path`` (created if missing) for the ``with`` block.

    blocking: False raises :class:`LockHeld` at once instead of waiting. The lock file itself stays (an
    empty file); the lock dies with its process. Where ``fcntl`` does not exist (Windows) this is a no-op.
    """
    path = Path(path)
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield path
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666 & ~current_umask())
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            raise LockHeld(path) from None
        yield path
    finally:
        os.close(fd)  # closing the descriptor releases the flock


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def exchange_paths(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """Atomically swap the entries ``a`` and ``b`` (both must exist, same filesystem); fsync the folders.

    Returns False, changing nothing, where the platform or filesystem cannot exchange (no ``renameat2``,
    EINVAL, ENOSYS); the caller then falls back to two renames.
    """
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    renameat2.restype = ctypes.c_int
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) != 0:
        err = ctypes.get_errno()
        if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
            return False
        raise OSError(err, f"exchanging {a} and {b}: {os.strerror(err)}")
    for folder in {Path(a).parent, Path(b).parent}:
        fsync_dir(folder)
    return True
