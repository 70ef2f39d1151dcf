"""What every notebook does first: pick the profile's settings, seed, theme, and a figure saver.

    cfg, saver = start("01_mode_interpolation_1d", profile, seed, figures_dir, PROFILES)

``PROFILES`` maps each of "smoke", "default", "full" to that notebook's settings (a dict).

Where the figures go (the same rule for the runner, plain papermill and Run All in JupyterLab):

- run by ``vsmlab figures``: into the runner's staging folder (``$VSMLAB_FIGURES_STAGING``); the runner
  publishes it when the notebook has finished, together with the executed notebook;
- ``figures_dir`` given (e.g. ``papermill ... -p figures_dir /tmp/x``): exactly there, with the entries in
  ``figures_dir/manifest.json``; nothing under figures/ is touched;
- otherwise the profile's own place, published figure by figure: ``figures/<notebook>/`` for ``default``,
  ``figures/<profile>/<notebook>/`` for any other profile, each figure's entry merged into that
  profile's ``MANIFEST.json`` under its file lock. ``figures/`` is ``$VSMLAB_FIGURES_ROOT`` when set, else
  the ``figures/`` folder of the project around the working folder (the first parent holding both
  ``notebooks/`` and ``figures/``), else the one beside the installed package's checkout.

``start`` prints where the figures go.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from vsmlab.lab.plotting import FigureSaver, set_theme
from vsmlab.lab.runner import PROFILES as PROFILE_NAMES
from vsmlab.lab.runner import STAGING_ENV, TARGET_ENV, figures_root, profile_root

__all__ = ["start", "profile_settings", "figures_destination"]


def profile_settings(profile: str, table: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The settings of ``profile`` from ``table``; ValueError naming the allowed profiles otherwise."""
    if profile not in PROFILE_NAMES or profile not in table:
        raise ValueError(f"profile: expected one of {', '.join(k for k in PROFILE_NAMES if k in table)}, got {profile!r}")
    return dict(table[profile])


def figures_destination(notebook: str, profile: str, figures_dir: str | os.PathLike | None = None) -> tuple[Path, Path | None, str]:
    """Where a notebook run writes its figures: (folder, MANIFEST.json to publish into or None, description).

    See the module docstring for the rule. The MANIFEST path is None when the figures go to a staging
    folder (the runner merges the entries) or to an explicit ``figures_dir`` (entries in its manifest.json).
    """
    staging = os.environ.get(STAGING_ENV)
    if staging:
        target = os.environ.get(TARGET_ENV) or "the figures folder"
        return Path(staging), None, f"{target} (published by the runner when the notebook finishes)"
    if figures_dir:
        return Path(figures_dir), None, f"{figures_dir} (entries in its manifest.json; figures/ untouched)"
    root = profile_root(figures_root(), profile)
    folder = root / notebook
    return folder, root / "MANIFEST.json", f"{folder} (profile {profile}, entries in {root / 'MANIFEST.json'})"


def start(
    notebook: str, profile: str, seed: int, figures_dir: str | os.PathLike | None,
    table: dict[str, dict[str, Any]], device: str | torch.device = "cpu",
) -> tuple[dict[str, Any], FigureSaver]:
    """Settings for ``profile``, seeded torch, the lab's theme, and a FigureSaver for this run.

    figures_dir: None or "" means the profile's own place (module docstring). device: the device the
    notebook computes on, recorded in every manifest entry (set ``saver.device`` if chosen later).
    Prints where the figures go.
    """
    cfg = profile_settings(profile, table)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed: expected an int, got {type(seed).__name__}")
    torch.manual_seed(seed)
    set_theme()
    folder, manifest, description = figures_destination(notebook, profile, figures_dir)
    published = os.environ.get(TARGET_ENV) if os.environ.get(STAGING_ENV) else None
    saver = FigureSaver(folder, notebook=notebook, profile=profile, seed=seed,
                        parameters={"profile": profile, "seed": seed, **cfg}, device=device, manifest=manifest,
                        published_dir=published)
    print(f"figures -> {description}")
    return cfg, saver
