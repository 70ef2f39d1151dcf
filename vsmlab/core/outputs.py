"""Output safety for every writer: never replace what vsmlab did not write, publish folders atomically.

One mechanism for ``vsmlab data | sample | train | figures`` and the library writers behind them:

- :func:`prepare_output` checks an output path before anything is computed or written. A new path is
  fine (its first existing ancestor must be a writable folder). An existing one is refused unless
  ``force``, and even with ``force`` only when vsmlab itself wrote it, recognised by the :class:`OutputKind`'s
  own markers (a SimpleShapes folder: ``factors.json`` and numbered PNGs; a run folder: ``config.toml`` and
  checkpoints; ...). The working folder, a folder above it and a folder holding anything else are never
  replaced. Every refusal is one line naming the flag, the path and what it holds.
- :func:`staged_folder` builds a folder under a temporary name beside the target and publishes it in one
  atomic step (``renameat2(RENAME_EXCHANGE)`` where the target exists, else a rename): a reader, or a run
  killed at any instant, sees the old folder or the complete new one, never a partial one. Existing files
  may be carried over (hard links), so adding one split to a data folder also publishes atomically.
- stale temporaries of interrupted runs (:func:`vsmlab.core.io.remove_stale_temps`) are removed by the next
  :func:`prepare_output` in the same folder, with a line saying what was removed.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

from vsmlab.core.io import current_umask, exchange_paths, fsync_dir, parse_temp_name, remove_stale_temps, temp_path

__all__ = ["OutputRefused", "OutputKind", "NotOwned", "prepare_output", "describe_entry", "owned_folder", "staged_folder",
           "discard_folder", "npz_members", "is_owned", "FILE_SUFFIXES", "say", "NPZ_MEMBER_SETS", "NPZ_OUTPUT"]

#: suffixes that mark a file name; a folder output named like this (``x.png``) is refused
FILE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".bmp", ".tif", ".tiff", ".txt", ".json", ".jsonl", ".csv",
                 ".npy", ".npz", ".pt", ".pth", ".safetensors", ".toml", ".yaml", ".yml", ".zip", ".gz", ".tar",
                 ".pkl", ".pickle", ".h5", ".ipynb", ".py", ".md", ".pdf", ".svg", ".tex")


class OutputRefused(FileExistsError, ValueError):
    """An output path vsmlab will not write to; the one-line message names the flag, the path, what it holds
    and what would be accepted. Both a FileExistsError and a ValueError (a bad argument)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


def say(line: str) -> None:
    """Print a notice line to stderr (the default log of the output helpers)."""
    print(f"vsmlab: {line}", file=sys.stderr, flush=True)


class NotOwned(str):
    """What an ``owned`` check returns for an entry vsmlab did not write: the reason, e.g. "note.txt is not
    part of a SimpleShapes PNG folder" (falsy tests use :func:`is_owned`)."""


def is_owned(description: str | None) -> bool:
    """True for the description of an entry vsmlab wrote (not None, not :class:`NotOwned`)."""
    return description is not None and not isinstance(description, NotOwned)


@dataclass(frozen=True)
class OutputKind:
    """What a writer produces. ``what``: words for messages ("a SimpleShapes PNG folder"); ``folder``: a
    folder (else one file); ``owned(path) -> str | None``: for an existing entry of the right type, a short
    description of it when vsmlab wrote all of it (what ``force`` may replace), else None or a
    :class:`NotOwned` reason; ``suffixes``: the
    allowed file suffixes (file outputs)."""

    what: str
    folder: bool
    owned: Callable[[Path], str | None]
    suffixes: tuple[str, ...] = ()


def _size_text(n: int) -> str:
    for unit in ("bytes", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n} bytes"  # pragma: no cover


def describe_entry(path: Path, limit: int = 4) -> str:
    """A few words on what ``path`` holds: "a file of 8 bytes", "an empty folder", "a folder holding 3
    entries: note.txt, results/, x.png"."""
    try:
        if path.is_symlink() and not path.exists():
            return "a broken symbolic link"
        if path.is_file():
            return f"a file of {_size_text(path.stat().st_size)}"
        if path.is_dir():
            names = sorted(e.name + ("/" if e.is_dir() else "") for e in os.scandir(path))
            if not names:
                return "an empty folder"
            shown = ", ".join(names[:limit]) + (f", ... ({len(names) - limit} more)" if len(names) > limit else "")
            return f"a folder holding {len(names)} entr{'y' if len(names) == 1 else 'ies'}: {shown}"
    except OSError as exc:
        return f"an entry that cannot be read ({exc.strerror or exc})"
    return "something that is neither a file nor a folder"


def owned_folder(path: Path, allowed: Iterable[str], markers: Iterable[str], what: str) -> str | None:
    """``what`` plus a count when every entry under ``path`` (relative POSIX paths, folders with a trailing
    ``/``) matches one of the ``allowed`` regular expressions (vsmlab temporaries always do) and at least one
    entry matches one of ``markers``; otherwise a :class:`NotOwned` naming the first foreign entry (or the
    missing marker): the folder holds something vsmlab did not write."""
    allow = [re.compile(p) for p in allowed]
    mark = [re.compile(p) for p in markers]
    files, marked = 0, False
    for top, dirs, names in os.walk(path):
        rel_top = Path(top).relative_to(path).as_posix()
        prefix = "" if rel_top == "." else rel_top + "/"
        for d in list(dirs):
            rel = f"{prefix}{d}/"
            if parse_temp_name(d) is not None:
                dirs.remove(d)  # a temporary of an interrupted vsmlab run: cleaned separately
                continue
            if not any(a.fullmatch(rel) for a in allow):
                return NotOwned(f"{rel} is not part of {what.split(':')[0]}")
            marked = marked or any(m.fullmatch(rel) for m in mark)
        for name in names:
            rel = prefix + name
            if parse_temp_name(name) is not None:
                continue
            if not any(a.fullmatch(rel) for a in allow):
                return NotOwned(f"{rel} is not part of {what.split(':')[0]}")
            marked = marked or any(m.fullmatch(rel) for m in mark)
            files += 1
    if not marked:
        return NotOwned(f"none of the files that mark {what.split(':')[0]}")
    return f"{what} ({files} file{'s' if files != 1 else ''})"


def npz_members(path: Path) -> set[str] | None:
    """The member names of a zip / npz file (central directory only), None when it is not a readable zip."""
    try:
        with zipfile.ZipFile(path) as zf:
            return set(zf.namelist())
    except (OSError, zipfile.BadZipFile, ValueError, EOFError):
        return None


def _is_cwd_or_parent(path: Path) -> bool:
    try:
        target = path.resolve()
        cwd = Path.cwd().resolve()
    except OSError:
        return False
    return target == cwd or target in cwd.parents


def _first_existing(path: Path) -> Path:
    p = path.absolute()
    while not p.exists() and not p.is_symlink() and p != p.parent:
        p = p.parent
    return p


def prepare_output(path: str | os.PathLike, kind: OutputKind, force: bool = False, flag: str = "--out",
                   log: Callable[[str], None] | None = say, clean: bool = True,
                   force_flag: str | None = "--force") -> tuple[Path, str | None]:
    """Check ``path`` as the output of a writer of ``kind``; returns (path, what it replaces or None).

    Refuses (:class:`OutputRefused`, message starting with ``flag``): an empty path; the working folder or a
    folder above it; a folder output named like a file (``x.png``) or a file output without one of
    ``kind.suffixes``; a path under a file or under a folder that is not writable; an existing entry of the
    wrong type; an existing entry vsmlab did not write (even with ``force``); an existing output vsmlab
    wrote, unless ``force``. An empty folder counts as new. With ``clean``, first removes the stale
    temporaries of interrupted runs beside the target (and inside it, for a folder), logging each.
    Nothing is written or replaced here: the caller publishes atomically over what this accepted.
    ``force_flag``: how messages name the option that allows a replacement (None: the writer has none).
    """
    text = os.fspath(path)
    if not text.strip():
        raise OutputRefused(f"{flag}: expected a path, got {text!r}")
    p = Path(text)
    if _is_cwd_or_parent(p):
        raise OutputRefused(f"{flag}: {text!r} is the working folder or a folder above it; vsmlab never writes "
                            f"{kind.what} there (it would replace the folder as a whole); name a new folder "
                            "inside it instead, e.g. ./out")
    if kind.folder and p.suffix.lower() in FILE_SUFFIXES:
        raise OutputRefused(f"{flag}: {text!r} looks like a file name ({p.suffix}), but the output is {kind.what}; "
                            "name a folder (no file suffix)")
    if not kind.folder and kind.suffixes and p.suffix.lower() not in kind.suffixes:
        raise OutputRefused(f"{flag}: expected a file name ending in {' or '.join(kind.suffixes)}, got {text!r}")
    if clean:
        remove_stale_temps(p.parent if str(p.parent) else Path("."), legacy_target=p.name, log=log)
        if kind.folder and p.is_dir() and not p.is_symlink():
            remove_stale_temps(p, log=log)
    exists = p.exists() or p.is_symlink()
    if not exists:
        anchor = _first_existing(p.parent)
        if not anchor.is_dir():
            raise OutputRefused(f"{flag}: cannot create {text!r}: {str(anchor)!r} is {describe_entry(anchor)}, "
                                "not a folder")
        if not os.access(anchor, os.W_OK | os.X_OK):
            raise OutputRefused(f"{flag}: cannot create {text!r}: the folder {str(anchor)!r} is not writable "
                                "(permissions or a read-only file system)")
        return p, None
    holds = describe_entry(p)
    if p.is_symlink():
        raise OutputRefused(f"{flag}: {text!r} is a symbolic link; vsmlab does not write through links; "
                            "name the real path or a new one")
    if kind.folder and not p.is_dir():
        raise OutputRefused(f"{flag}: {text!r} is {holds}; the output is {kind.what} and needs a folder path "
                            "(new, or a folder vsmlab wrote); nothing was changed")
    if not kind.folder and p.is_dir():
        raise OutputRefused(f"{flag}: {text!r} is {holds}; the output is {kind.what} and needs a file path; "
                            "nothing was changed")
    if not os.access(p.parent if str(p.parent) else Path("."), os.W_OK | os.X_OK):
        raise OutputRefused(f"{flag}: cannot replace {text!r}: its folder is not writable "
                            "(permissions or a read-only file system)")
    if kind.folder and holds == "an empty folder":
        return p, None
    mine = kind.owned(p)
    if not is_owned(mine):
        never = f"vsmlab never replaces it{f', not even with {force_flag}' if force_flag else ''}"
        why = f"; {mine}" if mine else ""
        raise OutputRefused(f"{flag}: {text!r} already exists and holds what vsmlab did not write ({holds}{why}); "
                            f"{never}; choose a new path for {kind.what} (nothing was changed)")
    if not force:
        raise OutputRefused(f"{flag}: {text!r} already exists ({mine}); pass {force_flag or '--force'} to replace it, "
                            "or choose another path (nothing was changed)")
    return p, mine


def _carry(src: Path, dst: Path, keep: Callable[[str], bool]) -> None:
    """Hard-link (else copy) every file under ``src`` whose relative POSIX path passes ``keep`` into ``dst``."""
    for top, dirs, names in os.walk(src):
        rel_top = Path(top).relative_to(src)
        dirs[:] = [d for d in dirs if parse_temp_name(d) is None]
        for name in names:
            rel = (rel_top / name).as_posix()
            if parse_temp_name(name) is not None or not keep(rel):
                continue
            target = dst / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(Path(top) / name, target)
            except OSError:
                shutil.copy2(Path(top) / name, target)


def discard_folder(path: Path) -> None:
    """Remove a folder vsmlab owns: renamed to a temporary name first (one atomic step), then deleted; a run
    killed half-way leaves only a recognisable temporary for the next run to remove."""
    if not path.exists():
        return
    trash = temp_path(path)
    os.replace(path, trash)
    fsync_dir(path.parent)
    shutil.rmtree(trash, ignore_errors=True)


@contextlib.contextmanager
def staged_folder(target: str | os.PathLike, keep: Callable[[str], bool] | None = None) -> Iterator[Path]:
    """Yield a new empty folder beside ``target`` (a vsmlab temporary name); when the block ends normally,
    publish it as ``target`` atomically and remove the old folder; on an exception remove it and leave
    ``target`` untouched. ``keep``: files of an existing ``target`` (relative POSIX paths) to carry over
    into the new folder before the block runs (hard links; copies where links fail).

    The caller has checked ``target`` (:func:`prepare_output`): it is new, empty or a folder vsmlab wrote.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    stage = temp_path(target)
    os.mkdir(stage, 0o777 & ~current_umask())
    try:
        if keep is not None and target.is_dir():
            _carry(target, stage, keep)
        yield stage
        for top, _, _ in os.walk(stage):
            fsync_dir(top)
        if target.exists():
            if exchange_paths(stage, target):
                shutil.rmtree(stage, ignore_errors=True)  # now holds the old folder
            else:  # pragma: no cover - no renameat2 here: two renames, the old folder kept until the second
                old = temp_path(target)
                os.replace(target, old)
                os.replace(stage, target)
                shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(stage, target)
        fsync_dir(target.parent)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise


#: the arrays by which vsmlab recognises its own .npz files: a SimpleShapes data set, a sample set
NPZ_MEMBER_SETS: tuple[tuple[str, frozenset[str]], ...] = (
    ("a SimpleShapes data set", frozenset({"images.npy", "presence.npy", "positions.npy", "templates.npy", "kinds.npy"})),
    ("a vsmlab sample set", frozenset({"metadata.npy", "batch_seed.npy", "batch_row.npy"})),
)


def _owned_npz(path: Path) -> str | None:
    members = npz_members(path)
    if members is None:
        return None
    for what, required in NPZ_MEMBER_SETS:
        if required <= members:
            return f"{what}, {_size_text(path.stat().st_size)}"
    return None


#: an .npz written by ``vsmlab data shapes`` or ``vsmlab sample`` (either may replace the other with --force)
NPZ_OUTPUT = OutputKind("a vsmlab .npz file", folder=False, owned=_owned_npz, suffixes=(".npz",))
