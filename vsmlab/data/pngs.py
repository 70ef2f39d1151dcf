"""PNG files in and out for the image data sets: encode, read with size checks, stream folders in batches.

Images live on disk as 8-bit PNGs and in memory as uint8 arrays ``[H, W, C]`` (numpy) or tensors
``[B, C, H, W]`` (torch). Reading checks every file against the size the caller expects, so a folder with
one odd image fails with the file's name and the expected size instead of a shape error deep in a batch.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

__all__ = ["encode_png", "write_png", "read_png", "list_pngs", "iter_png_batches", "png_size", "png_header",
           "EIGHT_BIT_MODES"]

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


def list_pngs(folder: str | os.PathLike) -> list[Path]:
    """The ``*.png`` files directly inside ``folder`` (sorted by name; hidden files skipped)."""
    folder = Path(folder)
    return sorted(p for p in folder.iterdir() if p.suffix.lower() == ".png" and not p.name.startswith(".") and p.is_file())


def iter_png_batches(
    paths: Sequence[str | os.PathLike], channels: int, size: tuple[int, int], batch_size: int = 256
) -> Iterator[tuple[list[Path], torch.Tensor]]:
    """Stream PNG files as uint8 tensors ``[b, channels, H, W]``, ``b <= batch_size``, with their paths.

    Every file must be ``size`` = (width, height): a file of another size raises ValueError naming it.
    """
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size: expected an int >= 1, got {batch_size!r}")
    paths = [Path(p) for p in paths]
    for start in range(0, len(paths), batch_size):
        chunk = paths[start : start + batch_size]
        arrays = np.stack([read_png(p, channels, size) for p in chunk])
        yield chunk, torch.from_numpy(arrays).permute(0, 3, 1, 2).contiguous()
