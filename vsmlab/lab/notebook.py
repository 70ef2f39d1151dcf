"""What every notebook does first: pick the profile's settings, seed, theme, and a figure saver.

    cfg, saver = start("01_mode_interpolation_1d", profile, seed, figures_dir, PROFILES)

``PROFILES`` maps each of "smoke", "default", "full" to that notebook's settings (a dict).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from vsmlab.lab.plotting import FigureSaver, set_theme
from vsmlab.lab.runner import PROFILES as PROFILE_NAMES

__all__ = ["start", "profile_settings"]


def profile_settings(profile: str, table: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The settings of ``profile`` from ``table``; ValueError naming the allowed profiles otherwise."""
    if profile not in PROFILE_NAMES or profile not in table:
        raise ValueError(f"profile: expected one of {', '.join(k for k in PROFILE_NAMES if k in table)}, got {profile!r}")
    return dict(table[profile])


def start(
    notebook: str, profile: str, seed: int, figures_dir: str | os.PathLike | None,
    table: dict[str, dict[str, Any]],
) -> tuple[dict[str, Any], FigureSaver]:
    """Settings for ``profile``, seeded torch, the lab's theme, and a FigureSaver writing to ``figures_dir``.

    figures_dir None or "" means ``figures/<notebook>`` in the repository (a notebook run by hand).
    """
    cfg = profile_settings(profile, table)
    if not isinstance(seed, int):
        raise TypeError(f"seed: expected an int, got {type(seed).__name__}")
    torch.manual_seed(seed)
    set_theme()
    out = Path(figures_dir) if figures_dir else Path(__file__).resolve().parent.parent / "figures" / notebook
    saver = FigureSaver(out, notebook=notebook, profile=profile, seed=seed, parameters={"profile": profile, "seed": seed, **cfg})
    return cfg, saver
