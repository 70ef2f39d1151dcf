"""PNG files and folders for the image data sets: encode, read with size checks, list, stream in batches,
load a whole folder, write one atomically.

Images live on disk as 8-bit PNGs and in memory as uint8 arrays ``[H, W, C]`` (numpy) or tensors
``[B, C, H, W]`` (torch). Reading checks every file against the size the caller expects, so a folder with
one odd image fails with the file's name and the expected size instead of a shape error deep in a batch.

:func:`list_pngs` lists a folder's PNGs, directly inside it (the data sets' own layouts) or recursively.
:func:`load_png_folder` loads every PNG under a folder, recursively, sorted by relative path (POSIX form),
into one uint8 array: mode 'L' -> [N, H, W], mode 'RGB' -> [N, H, W, 3]. All files must share one size and
one mode; the first file that differs, a file that is not a PNG image, or an empty folder raises ValueError
naming the file (or folder), what was found and what is allowed.

:func:`write_png_folder` writes ``00000.png, 00001.png, ...`` (plus optional extra files such as
``factors.json``) into a fresh temporary folder beside the target and publishes it in one atomic step
(:func:`vsmlab.core.outputs.staged_folder`), so a reader never sees a half-written folder and an existing
folder is never touched unless ``force=True``; then it is replaced as a whole (no stale files from an
earlier, larger set survive), and only if it is a PNG folder (PNG files and top-level JSON files, nothing
else): the working folder, a folder above it and a folder holding other files are never replaced.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from vsmlab.core.checks import check_int
from vsmlab.core.outputs import OutputKind, owned_folder, prepare_output, staged_folder

__all__ = ["encode_png", "write_png", "read_png", "list_pngs", "iter_png_batches", "png_size", "png_header",
           "EIGHT_BIT_MODES", "load_png_folder", "write_png_folder", "check_new_output", "PNG_FOLDER"]

_MODES = {1: "L", 3: "RGB"}
#: the PNG modes the validators read: 8-bit gray and 8-bit RGB
EIGHT_BIT_MODES: tuple[str, ...] = ("L", "RGB")
_MODE_WORDS = {"I;16": "16-bit gray", "I;16B": "16-bit gray", "I;16L": "16-bit gray", "I": "32-bit integer gray",
               "F": "32-bit float gray", "1": "1-bit", "P": "palette", "PA": "palette with alpha",
               "LA": "gray with alpha", "RGBA": "RGB with alpha", "CMYK": "CMYK", "RGBX": "RGB with padding"}


def encode_png(array: np.ndarray, compress_level: int = 1) -> bytes:
    """PNG bytes of a uint8 image ``[H, W]``, ``[H, W, 1]`` or ``[H, W, 3]`` (lossless at any level)."""
    if not isinstance(array, np.ndarray) or array.dtype != np.uint8:
        raise TypeError(f"array: expected a uint8 numpy array, got {type(array).__name__} {getattr(array, 'dtype', '')}")
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if not (array.ndim == 2 or (array.ndim == 3 and array.shape[2] == 3)):
        raise ValueError(f"array: expected shape [H, W], [H, W, 1] or [H, W, 3], got {list(array.shape)}")
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG", compress_level=compress_level)
    return buf.getvalue()


def write_png(path: str | os.PathLike, array: np.ndarray) -> None:
    """Write a uint8 image as a PNG (plain write: bulk data; callers publish an index file atomically)."""
    with open(path, "wb") as fh:
        fh.write(encode_png(array))


def png_header(path: str | os.PathLike) -> tuple[tuple[int, int], str]:
    """((width, height), mode) of a PNG, read from its header only. ValueError naming the file when it is not
    a readable PNG or not 8-bit gray (L) or RGB (a 16-bit copy, a palette or alpha image, a JPEG, ...)."""
    allowed = "allowed: 8-bit PNG files in mode L (gray) or RGB"
    try:
        with Image.open(path) as im:
            size, mode, fmt = im.size, im.mode, im.format
    except (OSError, SyntaxError, ValueError) as exc:
        raise ValueError(f"{path}: not a readable PNG image ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__}); "
                         f"{allowed}") from None
    if fmt != "PNG":
        raise ValueError(f"{path}: is a {fmt} image, not a PNG; {allowed}")
    if mode not in EIGHT_BIT_MODES:
        raise ValueError(f"{path}: mode {mode!r} ({_MODE_WORDS.get(mode, 'not 8-bit gray or RGB')}); {allowed}")
    return size, mode


def png_size(path: str | os.PathLike) -> tuple[int, int]:
    """(width, height) of an image file, read from its header only."""
    with Image.open(path) as im:
        return im.size


def read_png(path: str | os.PathLike, channels: int, size: tuple[int, int] | None = None) -> np.ndarray:
    """Read an image as uint8 ``[H, W, channels]`` (channels 1: luminance 'L'; 3: RGB, alpha dropped).

    size: the expected (width, height); a file of another size raises ValueError naming it.
    """
    if channels not in _MODES:
        raise ValueError(f"channels: expected 1 or 3, got {channels!r}")
    try:
        with Image.open(path) as im:
            if size is not None and im.size != tuple(size):
                raise ValueError(f"{path}: image is {im.size[0]}x{im.size[1]}, expected {size[0]}x{size[1]}")
            array = np.asarray(im.convert(_MODES[channels]))
    except OSError as exc:
        raise ValueError(f"{path}: not a readable image ({exc})") from exc
    return array.reshape(array.shape[0], array.shape[1], channels)


def list_pngs(folder: str | os.PathLike, recursive: bool = False) -> list[Path]:
    """The ``*.png`` files (any case) in ``folder``, sorted by their path relative to it (POSIX form).

    recursive: False lists the files directly inside ``folder`` and skips hidden names (``.*``, e.g. the
    ``._x.png`` copies some archivers add): the data sets' own layouts. True lists every file at any depth
    (a folder of samples, :func:`load_png_folder`). ValueError when ``folder`` is not a folder.
    """
    root = Path(folder)
    if not root.is_dir():
        raise ValueError(f"folder: {str(root)!r} is not a folder (expected a folder of PNG images)")
    found = root.rglob("*") if recursive else (p for p in root.iterdir() if not p.name.startswith("."))
    return sorted((p for p in found if p.suffix.lower() == ".png" and p.is_file()),
                  key=lambda p: p.relative_to(root).as_posix())


def iter_png_batches(
    paths: Sequence[str | os.PathLike], channels: int, size: tuple[int, int], batch_size: int = 256
) -> Iterator[tuple[list[Path], torch.Tensor]]:
    """Stream PNG files as uint8 tensors ``[b, channels, H, W]``, ``b <= batch_size``, with their paths.

    Every file must be ``size`` = (width, height): a file of another size raises ValueError naming it.
    """
    check_int("batch_size", batch_size, low=1)
    paths = [Path(p) for p in paths]
    for start in range(0, len(paths), batch_size):
        chunk = paths[start : start + batch_size]
        arrays = np.stack([read_png(p, channels, size) for p in chunk])
        yield chunk, torch.from_numpy(arrays).permute(0, 3, 1, 2).contiguous()


def load_png_folder(folder: str | os.PathLike) -> tuple[np.ndarray, list[str]]:
    """Load every PNG under ``folder``. Returns (images uint8 [N, H, W] or [N, H, W, 3], relative names)."""
    root = Path(folder)
    paths = list_pngs(root, recursive=True)
    if not paths:
        raise ValueError(f"folder: {str(root)!r} holds no .png files (expected at least one PNG image)")
    arrays: list[np.ndarray] = []
    names = [p.relative_to(root).as_posix() for p in paths]
    first: tuple[str, tuple[int, int], str] | None = None
    for name, path in zip(names, paths):
        try:
            with Image.open(path) as im:
                fmt, mode, size = im.format, im.mode, im.size
                if fmt == "PNG" and mode in EIGHT_BIT_MODES:
                    arr = np.asarray(im.copy(), dtype=np.uint8)
        except (OSError, SyntaxError, ValueError) as exc:
            raise ValueError(f"{path}: not a readable PNG image ({exc}); allowed: PNG files in mode L or RGB") from None
        if fmt != "PNG":
            raise ValueError(f"{path}: is a {fmt} image, not a PNG; allowed: PNG files in mode L or RGB")
        if mode not in EIGHT_BIT_MODES:
            raise ValueError(f"{path}: mode {mode!r}; allowed modes: {', '.join(EIGHT_BIT_MODES)}")
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
