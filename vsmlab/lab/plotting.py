"""One plotting theme and one figure writer (deterministic bytes, atomic writes, manifest entries).

Notebooks call :func:`set_theme` once and save every figure through a :class:`FigureSaver`::

    saver = FigureSaver(figures_dir, notebook="01_mode_interpolation_1d", profile=profile, seed=seed,
                        parameters=dict(profile=profile, seed=seed))
    saver.save(fig, "histogram")      # -> figures_dir/histogram.png + an entry in figures_dir/manifest.json

PNG bytes are reproducible and compact (:func:`compact_png`): no timestamp or software metadata, fixed dpi, a
256-colour palette where it changes the pixels by at most half a grey level on average; the SVG hash salt is fixed.
Inside IPython, :func:`set_theme` makes the figures a notebook shows inline go through the same encoder.

A profile's figures live under one folder with one ``MANIFEST.json`` (key ``<notebook>/<name>.png``).
:func:`merge_manifest` updates it under a file lock (concurrent runs of different notebooks keep each
other's entries); :func:`read_manifest` raises :class:`ManifestCorrupt` naming the file when it is not a
JSON object of entries. A saver given ``manifest=`` publishes each figure straight into it (a notebook
run outside the runner); otherwise entries go to ``out_dir/manifest.json`` for the runner to merge.
"""

from __future__ import annotations

import binascii
import io
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

from vsmlab.core.io import atomic_write_bytes, file_lock

__all__ = ["set_theme", "compact_png", "figure_png_bytes", "PNG_MAX_MEAN_ERROR", "FigureSaver", "atomic_write_bytes",
           "package_versions", "device_name", "PALETTE",
           "ManifestCorrupt", "read_manifest", "merge_manifest", "manifest_lock_path"]

PALETTE = {"exact": "#1b7837", "learned": "#c51b7d", "data": "#4d4d4d", "vsm": "#2166ac", "baseline": "#b35806"}


PNG_MAX_MEAN_ERROR = 0.5  # grey levels (of 255): the most a palette may change an image's pixels on average


def set_theme(context: str = "notebook") -> None:
    """Apply the lab's seaborn theme (white grid, colour-blind palette, fixed svg hash salt); inside IPython,
    figures shown inline are encoded by :func:`compact_png` too."""
    import matplotlib as mpl
    import seaborn as sns

    sns.set_theme(context=context, style="whitegrid", palette="colorblind")
    mpl.rcParams.update({"svg.hashsalt": "vsmlab", "figure.dpi": 100, "savefig.dpi": 110,
                         "figure.autolayout": False, "axes.titlesize": "medium"})
    _compact_inline_figures()


def compact_png(data: bytes, max_mean_error: float = PNG_MAX_MEAN_ERROR) -> bytes:
    """Re-encode PNG ``data`` small and reproducibly: no metadata, zlib level 9.

    An opaque image is stored as RGB, or as a 256-colour palette (median cut, no dithering) when the palette
    changes its pixels by at most ``max_mean_error`` grey levels on average, mean |palette - RGB| over pixels and
    channels. Plots pass (about half the bytes; a few antialiased edge pixels shift in shade); images with rich
    colour, such as grids of rendered samples, stay exact RGB. An image with any transparency keeps its alpha; an
    opaque palette image is kept as it is (so ``compact_png(compact_png(x)) == compact_png(x)``).
    """
    import numpy as np
    from PIL import Image

    if max_mean_error < 0:
        raise ValueError(f"max_mean_error: expected grey levels >= 0, got {max_mean_error!r}")
    try:
        image = Image.open(io.BytesIO(data))
        image.load()
    except (OSError, SyntaxError, ValueError) as exc:
        raise ValueError(f"data: expected PNG bytes, got {len(data)} bytes that PIL cannot read ({exc})") from None
    rgba = np.asarray(image.convert("RGBA"))
    if (rgba[..., 3] != 255).any():
        out = image.convert("RGBA")
    elif image.mode == "P":  # already a palette (this encoder's output): kept exactly, so re-encoding is a fixed point
        out = image
    else:
        out = image.convert("RGB")
        palette = out.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
        error = np.abs(np.asarray(palette.convert("RGB"), dtype=np.int16) - rgba[..., :3]).mean()
        if error <= max_mean_error:
            out = palette
    buf = io.BytesIO()
    out.save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def figure_png_bytes(fig, dpi: float | None = None) -> bytes:
    """``fig`` as compact PNG bytes (:func:`compact_png`), cropped to its content; dpi: savefig.dpi when None."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight", facecolor=fig.get_facecolor(),
                edgecolor=fig.get_edgecolor(), metadata={"Software": None})
    return compact_png(buf.getvalue())


def _inline_png(fig) -> str | None:
    """IPython's image/png for a figure shown inline: base64 of :func:`figure_png_bytes` at the figure's dpi."""
    if not fig.axes and not fig.lines:
        return None  # as IPython does: an empty figure shows nothing
    return binascii.b2a_base64(figure_png_bytes(fig, dpi=fig.dpi), newline=False).decode("ascii")


def _compact_inline_figures() -> None:
    """Inside IPython, show figures through :func:`_inline_png`. The inline backend installs its own PNG
    printer when it loads (lazily, at the first figure), so it is loaded first and then replaced."""
    import sys

    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    if shell is None or not hasattr(shell, "display_formatter"):
        return
    import importlib

    import matplotlib
    from matplotlib.figure import Figure

    backend = matplotlib.get_backend()
    if backend.startswith("module://"):
        importlib.import_module(backend[len("module://"):])
    shell.display_formatter.formatters["image/png"].for_type(Figure, _inline_png)


def package_versions() -> dict[str, str]:
    """Versions of Python and the packages that shape the figures."""
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for name in ("vsmlab", "torch", "numpy", "scipy", "matplotlib", "seaborn"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out


def device_name(device: Any = "cpu") -> str:
    """Describe the device a notebook ran on: 'cpu (N threads, machine)' or 'cuda:I (GPU name)'.

    device: what the notebook actually used (a ``torch.device`` or its string; default "cpu"). Whether
    CUDA exists on this machine plays no part: a CPU run on a GPU machine is reported as cpu.
    """
    import torch

    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"device: expected a torch device like 'cpu' or 'cuda:0', got {device!r} ({exc})") from None
    if dev.type == "cpu":
        return f"cpu ({torch.get_num_threads()} threads, {platform.machine()})"
    if dev.type == "cuda":
        index = dev.index if dev.index is not None else 0
        name = torch.cuda.get_device_name(index) if torch.cuda.is_available() else "unavailable"
        return f"cuda:{index} ({name})"
    return str(dev)


class ManifestCorrupt(RuntimeError):
    """A MANIFEST.json that is not a JSON object of entries; ``path`` names it. Nothing was published."""

    def __init__(self, path: Path, detail: str) -> None:
        super().__init__(f"corrupt manifest {path}: {detail}; fix it or move it aside (nothing was published)")
        self.path = path


def read_manifest(path: str | os.PathLike) -> dict[str, dict[str, Any]]:
    """The entries of ``path`` ({} when it does not exist); ManifestCorrupt naming the file otherwise."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as exc:
        raise ManifestCorrupt(path, f"unreadable ({type(exc).__name__}: {exc})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ManifestCorrupt(path, f"not valid JSON ({exc})") from None
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise ManifestCorrupt(path, "expected a JSON object mapping '<notebook>/<figure>' to an entry object")
    return data


def manifest_lock_path(path: str | os.PathLike) -> Path:
    """The lock file that guards updates of the manifest ``path`` (a hidden file beside it)."""
    path = Path(path)
    return path.with_name(f".{path.name}.lock")


def merge_manifest(
    path: str | os.PathLike, entries: dict[str, dict[str, Any]], replace_notebook: str | None = None,
) -> dict[str, dict[str, Any]]:
    """Add ``entries`` to the manifest ``path`` under its file lock and write it atomically; return it.

    replace_notebook: drop this notebook's old entries first (a complete run replaces them all).
    Raises ManifestCorrupt (nothing written) when the manifest on disk is corrupt.
    """
    path = Path(path)
    with file_lock(manifest_lock_path(path)):
        data = read_manifest(path)
        if replace_notebook is not None:
            data = {k: v for k, v in data.items() if not k.startswith(f"{replace_notebook}/")}
        data.update(entries)
        delay = os.environ.get("VSMLAB_TEST_MANIFEST_DELAY")  # tests: widen the read-modify-write window
        if delay:
            time.sleep(float(delay))
        atomic_write_bytes(path, json.dumps(dict(sorted(data.items())), indent=1, sort_keys=True).encode() + b"\n")
    return data


class FigureSaver:
    """Saves figures of one notebook run into ``out_dir`` and records a manifest entry per figure.

    Each entry: notebook, profile, parameters, seed, runtime_s (since the saver was created), package
    versions, device (:func:`device_name` of ``device``, the device the notebook actually used; set
    ``saver.device`` if the notebook picks it later). Entries are kept in ``out_dir/manifest.json``
    (rewritten atomically), or, with ``manifest=`` given, merged into that MANIFEST.json under its lock
    as each figure is written (publishing directly, no local manifest.json). ``published_dir``: where
    ``out_dir`` ends up once published (a runner's staging folder is renamed), used for the paths that
    ``save`` and ``save_table`` return, so a notebook's output never shows a staging path.
    """

    def __init__(self, out_dir: str | os.PathLike, notebook: str, profile: str, seed: int,
                 parameters: dict[str, Any] | None = None, device: Any = "cpu",
                 manifest: str | os.PathLike | None = None, published_dir: str | os.PathLike | None = None) -> None:
        if not notebook:
            raise ValueError("notebook: expected the notebook's stem, got an empty name")
        if not str(out_dir):
            raise ValueError("out_dir: expected a folder, got an empty path")
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.notebook, self.profile, self.seed = notebook, profile, seed
        self.parameters = dict(parameters or {})
        self.device = device
        self.manifest = Path(manifest) if manifest is not None else None
        self.published_dir = Path(published_dir) if published_dir else self.out_dir
        if self.manifest is not None:
            read_manifest(self.manifest)  # a corrupt manifest is reported before any figure is written
        self.started = time.perf_counter()
        self.entries: dict[str, dict[str, Any]] = {}

    def save(self, fig, name: str, dpi: int | None = None) -> Path:
        """Write ``fig`` as ``out_dir/name.png`` (deterministic bytes, atomic); return its published path."""
        if not name or "/" in name or name.startswith("."):
            raise ValueError(f"name: expected a plain file stem like 'histogram', got {name!r}")
        path = self.out_dir / f"{name}.png"
        atomic_write_bytes(path, figure_png_bytes(fig, dpi))
        key = f"{self.notebook}/{name}.png"
        self.entries[key] = {
            "notebook": self.notebook, "profile": self.profile, "seed": self.seed,
            "parameters": self.parameters, "runtime_s": round(time.perf_counter() - self.started, 2),
            "versions": package_versions(), "device": device_name(self.device),
        }
        if self.manifest is not None:
            merge_manifest(self.manifest, {key: self.entries[key]})
        else:
            atomic_write_bytes(self.out_dir / "manifest.json", json.dumps(self.entries, indent=1, sort_keys=True).encode())
        return self.published_dir / path.name

    def save_table(self, rows: list[dict[str, Any]], name: str) -> Path:
        """Write rows (dicts with the same keys) as ``out_dir/name.csv`` atomically; return its published path."""
        import csv

        if not rows:
            raise ValueError("rows: expected at least one row")
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        path = self.out_dir / f"{name}.csv"
        atomic_write_bytes(path, buf.getvalue().encode())
        return self.published_dir / path.name
