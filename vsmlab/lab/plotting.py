"""One plotting theme and one figure writer (deterministic bytes, atomic writes, manifest entries).

Notebooks call :func:`set_theme` once and save every figure through a :class:`FigureSaver`::

    saver = FigureSaver(figures_dir, notebook="01_mode_interpolation_1d", profile=profile, seed=seed,
                        parameters=dict(profile=profile, seed=seed))
    saver.save(fig, "histogram")      # -> figures_dir/histogram.png + an entry in figures_dir/manifest.json

PNG bytes are reproducible: no timestamp or software metadata, fixed dpi; the SVG hash salt is fixed.
"""

from __future__ import annotations

import io
import json
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

__all__ = ["set_theme", "FigureSaver", "atomic_write_bytes", "package_versions", "device_name", "PALETTE"]

PALETTE = {"exact": "#1b7837", "learned": "#c51b7d", "data": "#4d4d4d", "vsm": "#2166ac", "baseline": "#b35806"}


def set_theme(context: str = "notebook") -> None:
    """Apply the lab's seaborn theme (white grid, colour-blind palette, fixed svg hash salt)."""
    import matplotlib as mpl
    import seaborn as sns

    sns.set_theme(context=context, style="whitegrid", palette="colorblind")
    mpl.rcParams.update({"svg.hashsalt": "vsmlab", "figure.dpi": 100, "savefig.dpi": 110,
                         "figure.autolayout": False, "axes.titlesize": "medium"})


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


def device_name() -> str:
    """'cpu (N threads, machine)' or the CUDA device name."""
    import torch

    if torch.cuda.is_available():
        return f"cuda ({torch.cuda.get_device_name(0)})"
    return f"cpu ({torch.get_num_threads()} threads, {platform.machine()})"


class FigureSaver:
    """Saves figures of one notebook run into ``out_dir`` and records a manifest entry per figure.

    Each entry: notebook, profile, parameters, seed, runtime_s (since the saver was created), package
    versions, device. Entries are kept in ``out_dir/manifest.json`` (rewritten atomically).
    """

    def __init__(self, out_dir: str | os.PathLike, notebook: str, profile: str, seed: int,
                 parameters: dict[str, Any] | None = None) -> None:
        if not notebook:
            raise ValueError("notebook: expected the notebook's stem, got an empty name")
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.notebook, self.profile, self.seed = notebook, profile, seed
        self.parameters = dict(parameters or {})
        self.started = time.perf_counter()
        self.entries: dict[str, dict[str, Any]] = {}

    def save(self, fig, name: str, dpi: int | None = None) -> Path:
        """Write ``fig`` as ``out_dir/name.png`` (deterministic bytes, atomic) and return the path."""
        if not name or "/" in name or name.startswith("."):
            raise ValueError(f"name: expected a plain file stem like 'histogram', got {name!r}")
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight", metadata={"Software": None})
        path = self.out_dir / f"{name}.png"
        atomic_write_bytes(path, buf.getvalue())
        self.entries[f"{self.notebook}/{name}.png"] = {
            "notebook": self.notebook, "profile": self.profile, "seed": self.seed,
            "parameters": self.parameters, "runtime_s": round(time.perf_counter() - self.started, 2),
            "versions": package_versions(), "device": device_name(),
        }
        atomic_write_bytes(self.out_dir / "manifest.json", json.dumps(self.entries, indent=1, sort_keys=True).encode())
        return path

    def save_table(self, rows: list[dict[str, Any]], name: str) -> Path:
        """Write rows (dicts with the same keys) as ``out_dir/name.csv`` atomically."""
        import csv

        if not rows:
            raise ValueError("rows: expected at least one row")
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        path = self.out_dir / f"{name}.csv"
        atomic_write_bytes(path, buf.getvalue().encode())
        return path
