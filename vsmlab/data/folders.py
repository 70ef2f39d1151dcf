"""PNG folders: load any folder of PNGs into one uint8 array, write an array as a PNG folder.

:func:`load_png_folder` walks a folder recursively, takes every file whose name ends in ``.png`` (any
case), sorted by relative path (POSIX form), and stacks them: mode 'L' -> uint8 [N, H, W], mode 'RGB' ->
uint8 [N, H, W, 3]. All files must share one size and one mode; the first file that differs, a file that
is not a PNG image, or an empty folder raises ValueError naming the file (or folder), what was found and
what is allowed.

:func:`write_png_folder` writes ``00000.png, 00001.png, ...`` (plus optional extra files such as
``factors.json``) into a fresh temporary folder beside the target and publishes it in one atomic step
(:func:`vsmlab.core.outputs.staged_folder`), so a reader never sees a half-written folder and an existing
folder is never touched unless ``force=True``; then it is replaced as a whole (no stale files from an
earlier, larger set survive), and only if it is a PNG folder (PNG files and top-level JSON files, nothing
else): the working folder, a folder above it and a folder holding other files are never replaced.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image

from vsmlab.core.outputs import OutputKind, owned_folder, prepare_output, staged_folder

__all__ = ["ALLOWED_MODES", "list_pngs", "load_png_folder", "write_png_folder", "check_new_output", "PNG_FOLDER"]

ALLOWED_MODES: tuple[str, ...] = ("L", "RGB")


def list_pngs(folder: str | os.PathLike) -> list[str]:
    """Relative POSIX paths of every ``*.png`` (any case) under ``folder``, recursively, sorted."""
    root = Path(folder)
    if not root.is_dir():
        raise ValueError(f"folder: {str(root)!r} is not a folder (expected a folder of PNG images)")
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file() and p.suffix.lower() == ".png")


def load_png_folder(folder: str | os.PathLike) -> tuple[np.ndarray, list[str]]:
    """Load every PNG under ``folder``. Returns (images uint8 [N, H, W] or [N, H, W, 3], relative names)."""
    root = Path(folder)
    names = list_pngs(root)
    if not names:
        raise ValueError(f"folder: {str(root)!r} holds no .png files (expected at least one PNG image)")
    arrays: list[np.ndarray] = []
    first: tuple[str, tuple[int, int], str] | None = None
    for name in names:
        path = root / name
        try:
            with Image.open(path) as im:
                fmt, mode, size = im.format, im.mode, im.size
                if fmt == "PNG" and mode in ALLOWED_MODES:
                    arr = np.asarray(im.copy(), dtype=np.uint8)
        except (OSError, SyntaxError, ValueError) as exc:
            raise ValueError(f"{path}: not a readable PNG image ({exc}); allowed: PNG files in mode L or RGB") from None
        if fmt != "PNG":
            raise ValueError(f"{path}: is a {fmt} image, not a PNG; allowed: PNG files in mode L or RGB")
        if mode not in ALLOWED_MODES:
            raise ValueError(f"{path}: mode {mode!r}; allowed modes: {', '.join(ALLOWED_MODES)}")
        if first is None:
            first = (name, size, mode)
        elif (size, mode) != first[1:]:
            raise ValueError(
                f"{path}: size {size[0]}x{size[1]} mode {mode}; expected {first[1][0]}x{first[1][1]} mode {first[2]}"
                f" like the first file {first[0]!r} (all images of a folder share one size and mode)"
            )
        arrays.append(arr)
    return np.stack(arrays), names


#: a folder of PNG files (any depth) and top-level JSON files, as :func:`write_png_folder` writes it
PNG_FOLDER = OutputKind("a PNG folder", folder=True,
                        owned=lambda p: owned_folder(p, (r"(.+/)?", r".+\.png", r"[^/]+\.json"), (r".+\.png",), "a PNG folder"))


def check_new_output(path: str | os.PathLike, force: bool, kind: OutputKind = PNG_FOLDER, flag: str = "folder") -> Path:
    """Refuse (:class:`vsmlab.core.outputs.OutputRefused`, a FileExistsError naming the path) an output path
    that exists, unless ``force`` and it is a ``kind`` output vsmlab wrote; see
    :func:`vsmlab.core.outputs.prepare_output`. Returns the path."""
    return prepare_output(path, kind, force, flag=flag)[0]


def write_png_folder(
    images: np.ndarray, folder: str | os.PathLike, names: list[str] | None = None,
    extra_files: dict[str, bytes] | None = None, force: bool = False,
) -> list[str]:
    """Write uint8 [N, H, W] (mode L) or [N, H, W, 3] (RGB) images as PNGs into ``folder``.

    names: relative file names (default ``{i:05d}.png``); extra_files: name -> bytes written beside them.
    Refuses an existing non-empty folder (or a file at that path) unless ``force``; with ``force`` the old
    folder is replaced as a whole, and only when it is a PNG folder (:data:`PNG_FOLDER`). Returns the names
    written.
    """
    images = np.asarray(images)
    if images.dtype != np.uint8 or not (images.ndim == 3 or (images.ndim == 4 and images.shape[-1] == 3)):
        raise ValueError(f"images: expected uint8 [N, H, W] or [N, H, W, 3], got {images.dtype} {images.shape}")
    n = images.shape[0]
    width = max(5, len(str(max(n - 1, 0))))
    names = [f"{i:0{width}d}.png" for i in range(n)] if names is None else list(names)
    if len(names) != n:
        raise ValueError(f"names: expected {n} names (one per image), got {len(names)}")
    target = check_new_output(folder, force)
    with staged_folder(target) as tmp:
        for name, img in zip(names, images):
            out = tmp / name
            out.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(img, mode="L" if img.ndim == 2 else "RGB").save(out, format="PNG")
        for name, data in (extra_files or {}).items():
            (tmp / name).write_bytes(data)
    return names

