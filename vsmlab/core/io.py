"""Crash-safe file writes: a reader sees the old bytes or the new ones, never a torn file.

:func:`atomic_write_bytes` writes to a temporary file in the target folder, fsyncs it, renames it over the
target (``os.replace`` is atomic on POSIX) and fsyncs the folder, so the rename itself survives a power
loss. Published files get the usual permissions (0666 minus the process umask), read without changing
the process-wide umask (which other threads may rely on).

:func:`file_lock` serialises read-modify-write updates between processes (``fcntl.flock`` on a lock
file; released by the kernel when the holder dies, so a killed process never leaves a stale lock).
:func:`exchange_paths` swaps two folders in one atomic step (Linux ``renameat2(RENAME_EXCHANGE)``), so
a published folder is never missing, not even for an instant.

Temporary names. Every temporary file or folder vsmlab writes beside a target ``NAME`` is called
``.NAME.vsmlab-<pid>-<token>.tmp`` (:func:`temp_path`), so a later run can recognise what an interrupted
one left: :func:`stale_temps` lists those whose writer is gone (its pid is not alive) and that are older
than the running process, and :func:`remove_stale_temps` deletes them, saying which.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
import shutil
import time
from pathlib import Path
from typing import Callable, Iterator

__all__ = ["atomic_write_bytes", "fsync_dir", "current_umask", "file_lock", "LockHeld", "exchange_paths",
           "TEMP_MARK", "temp_path", "parse_temp_name", "process_start_time", "stale_temps", "remove_stale_temps"]

#: what every vsmlab temporary name carries: ``.NAME.vsmlab-<pid>-<token>.tmp``
TEMP_MARK = "vsmlab"
_TEMP_NAME = re.compile(r"^\.(?P<target>.+)\.vsmlab-(?P<pid>\d+)-(?P<token>[0-9a-f]{8})\.tmp$")
#: names of the temp files older versions made with ``tempfile.mkstemp(prefix=".NAME.", suffix=".tmp")``
_LEGACY_NAME = re.compile(r"^\.(?P<target>.+)\.[a-z0-9_]{8}\.tmp$")


def temp_path(target: str | os.PathLike) -> Path:
    """A fresh temporary name beside ``target``: ``<folder>/.NAME.vsmlab-<pid>-<8 hex>.tmp`` (not created)."""
    target = Path(target)
    return target.parent / f".{target.name}.{TEMP_MARK}-{os.getpid()}-{secrets.token_hex(4)}.tmp"


def parse_temp_name(name: str) -> tuple[str, int] | None:
    """(target name, writer pid) of a vsmlab temporary name, None for any other name."""
    m = _TEMP_NAME.match(name)
    return (m["target"], int(m["pid"])) if m else None


def process_start_time() -> float:
    """When this process started (seconds since the epoch, to about 10 ms; from /proc where available, else
    the time this module was imported)."""
    try:
        with open("/proc/self/stat", encoding="ascii") as fh:
            ticks = int(fh.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/uptime", encoding="ascii") as fh:
            uptime = float(fh.read().split()[0])
        return time.time() - (uptime - ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return _IMPORTED


_IMPORTED = time.time()


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # exists, owned by someone else (or cannot tell: keep it)
    return True


def stale_temps(folder: str | os.PathLike, legacy_target: str | None = None) -> list[Path]:
    """Temporary entries in ``folder`` left by interrupted vsmlab writers: vsmlab-named ones (any target)
    whose writer pid is not alive and which are older than this process; with ``legacy_target``, also the
    older ``.NAME.XXXXXXXX.tmp`` names of that one target older than this process. Never raises."""
    folder = Path(folder)
    started = process_start_time()
    found = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return []
    for entry in entries:
        if not entry.name.startswith(".") or not entry.name.endswith(".tmp"):
            continue
        try:
            old = entry.stat(follow_symlinks=False).st_mtime < started
        except OSError:
            continue
        parsed = parse_temp_name(entry.name)
        if parsed is not None:
            if old and not _pid_alive(parsed[1]):
                found.append(Path(entry.path))
        elif legacy_target is not None and old:
            m = _LEGACY_NAME.match(entry.name)
            if m and m["target"] == legacy_target:
                found.append(Path(entry.path))
    return sorted(found)


def remove_stale_temps(folder: str | os.PathLike, legacy_target: str | None = None,
                       log: Callable[[str], None] | None = None) -> list[Path]:
    """Delete :func:`stale_temps` of ``folder`` (files and folders); ``log`` gets one line per entry (what it
    was, how big). Entries that cannot be removed are reported, not raised. Returns the removed paths."""
    removed = []
    for path in stale_temps(folder, legacy_target):
        try:
            if path.is_dir() and not path.is_symlink():
                count = sum(len(files) for _, _, files in os.walk(path))
                shutil.rmtree(path)
                what = f"temporary folder {path} ({count} files)"
            else:
                size = path.stat().st_size
                path.unlink()
                what = f"temporary file {path} ({size} bytes)"
        except OSError as exc:
            if log is not None:
                log(f"could not remove the stale {path} left by an interrupted run: {exc.strerror or exc}")
            continue
        removed.append(path)
        if log is not None:
            log(f"removed the stale {what} left by an interrupted run")
    return removed


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
    """Write ``data`` to ``path`` atomically: temp file in the same folder (:func:`temp_path`), fsync, rename,
    fsync folder. A killed writer leaves only that temp file, which :func:`remove_stale_temps` recognises."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        tmp = temp_path(path)
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            break
        except FileExistsError:  # pragma: no cover - 32 random bits collided
            continue
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
