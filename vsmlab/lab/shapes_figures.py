"""SimpleShapes images in figures: each image drawn with its three column strips marked.

A SimpleShapes image is three strips side by side, triangle | square | pentagon
(:class:`vsmlab.data.shapes.Geometry`: strip ``c`` covers columns ``[c w, (c + 1) w)`` with ``w`` the strip width),
and every failure the validator names is about a strip: a shape of the wrong kind in it, two shapes in it, a broken
shape. :func:`show_shapes` draws dashed guides at ``x = c w - 0.5`` (``c = 1, 2, 3``) and labels the strips
below the image, so a reader sees at a glance which strip holds what::

    fig, ax = plt.subplots()
    show_shapes(ax, images[0], title=sample_title("rho0", 0, 17))
"""

from __future__ import annotations

from typing import Any

import numpy as np

from vsmlab.data.shapes import geometry

__all__ = ["show_shapes", "sample_title", "GUIDE_COLOUR", "STRIP_LABELS"]

GUIDE_COLOUR = "#f1a340"  # orange: visible on black background and white shapes alike
STRIP_LABELS = ("tri", "sq", "pent")


def show_shapes(ax: Any, image: Any, *, title: str | None = None, vmin: float = 0, vmax: float = 255,
                guides: bool = True, fontsize: float = 8) -> None:
    """Draw one SimpleShapes image ``image`` [H, W] (uint8 0..255, or x0_hat in [-1, 1] with ``vmin=-1, vmax=1``)
    on ``ax``: nearest-neighbour pixels, dashed strip guides and strip labels when ``guides``, ``title`` above.
    ValueError names ``image`` unless it is square at a SimpleShapes size (32 or 64 px)."""
    img = np.asarray(image)
    if img.ndim == 3 and img.shape[0] == 1:
        img = img[0]
    if img.ndim != 2 or img.shape[0] != img.shape[1] or img.shape[0] not in (32, 64):
        raise ValueError(f"image: expected one SimpleShapes image [H, W] with H = W in (32, 64), "
                         f"got shape {list(img.shape)}")
    geom = geometry(int(img.shape[0]))
    ax.imshow(img, cmap="gray", vmin=vmin, vmax=vmax, interpolation="nearest")
    ax.grid(False)  # a theme's grid would draw lines through the strip labels' tick positions
    if guides:
        for c in (1, 2, 3):
            ax.axvline(c * geom.strip_width - 0.5, color=GUIDE_COLOUR, lw=0.9, ls=(0, (2, 2)), alpha=0.9)
        ax.set_xticks([(c + 0.5) * geom.strip_width - 0.5 for c in range(3)], STRIP_LABELS,
                      fontsize=max(fontsize - 2, 5))
        ax.tick_params(axis="x", length=0, pad=1)
    else:
        ax.set_xticks([])
    ax.set_yticks([])
    if title is not None:
        ax.set_title(title, fontsize=fontsize)


def sample_title(model: str, seed: int, index: int) -> str:
    """A gallery title: model, training seed and the sample's number in its set ("rho0 · seed 1 · #17")."""
    return f"{model} · seed {seed} · #{index}"
