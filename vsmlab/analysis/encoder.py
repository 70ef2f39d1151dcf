"""A small SimpleShapes encoder the lab trains itself: features for a Frechet distance without downloads.

FID needs an image encoder; Inception features of 32-px white-on-black shapes would say little and need a
download. Instead the lab trains a tiny conv net on generated SimpleShapes (:func:`vsmlab.data.shapes.generate`)
to read the factors of an image, and uses its penultimate layer as the feature space
(:func:`vsmlab.analysis.fidelity.frechet_distance`).

Network (:class:`ShapesEncoder`), input [B, 1, S, S] in [-1, 1], S = 32 or 64::

    conv3x3(1 -> w) ReLU, conv3x3 stride 2 (w -> 2w) ReLU, conv3x3 s2 (2w -> 2w) ReLU, conv3x3 s2 (2w -> 4w) ReLU
    flatten [4w (S/8)^2] -> linear -> ReLU = features [B, F]            (the penultimate layer)
    features -> linear -> 3 presence logits + 3 x ``row_bins`` logits of the shape's coarse row

Targets per image: presence of each kind (binary cross-entropy) and, for each present column, which of
``row_bins`` equal bins of that kind's y1 range the shape sits in (cross-entropy, masked to present columns).
Training (:func:`train_encoder`): Adam on fresh generated images, deterministic in ``seed`` (the weight
initialisation runs under a forked, seeded torch RNG, so the global RNG is untouched; batches come from a
seeded torch.Generator); a few hundred steps at 32 px take seconds on one CPU core.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from vsmlab.core.checks import check_int, check_positive
from vsmlab.data.shapes import KINDS, ShapesData, generate, geometry, to_unit

__all__ = ["ShapesEncoder", "TrainedEncoder", "encoder_targets", "train_encoder", "encoder_accuracy", "encode"]


class ShapesEncoder(nn.Module):
    """Tiny conv encoder (module docstring). ``features(x)`` [B, F]; ``forward(x)`` logits [B, 3 + 3 row_bins]."""

    def __init__(self, size: int = 32, width: int = 8, num_features: int = 32, row_bins: int = 4) -> None:
        super().__init__()
        self.size = geometry(size).size
        check_int("width", width, low=1)
        check_int("num_features", num_features, low=1)
        check_int("row_bins", row_bins, low=1)
        self.width, self.num_features, self.row_bins = width, num_features, row_bins
        w = width
        self.convs = nn.Sequential(
            nn.Conv2d(1, w, 3, padding=1), nn.ReLU(),
            nn.Conv2d(w, 2 * w, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(2 * w, 2 * w, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(2 * w, 4 * w, 3, stride=2, padding=1), nn.ReLU(),
        )
        self.project = nn.Linear(4 * w * (self.size // 8) ** 2, num_features)
        self.head = nn.Linear(num_features, 3 + 3 * row_bins)

    def _check(self, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor) or not x.dtype.is_floating_point:
            raise TypeError(f"x: expected a float tensor [B, 1, {self.size}, {self.size}] in [-1, 1], got {type(x).__name__}")
        if x.dim() != 4 or tuple(x.shape[1:]) != (1, self.size, self.size):
            raise ValueError(f"x: expected [B, 1, {self.size}, {self.size}] (this encoder was built for {self.size} px), "
                             f"got {tuple(x.shape)}")
        return x

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate-layer features [B, num_features] (after the ReLU)."""
        h = self.convs(self._check(x))
        return F.relu(self.project(h.flatten(1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def encoder_targets(data: ShapesData, row_bins: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    """Targets of ``data``: presence float [N, 3] and row bin int64 [N, 3] (-1 where absent); the bin of y1
    is floor(row_bins (y1 - y_min) / (y_max - y_min + 1)) over the kind's y1 range."""
    geom = geometry(data.size)
    presence = torch.as_tensor(data.presence, dtype=torch.float32)
    bins = torch.full((len(data), 3), -1, dtype=torch.int64)
    for c, kind in enumerate(KINDS):
        (_, _), (y0, y1) = geom.position_ranges(kind)
        y = torch.as_tensor(data.positions[:, c, 1])
        b = torch.div((y - y0) * row_bins, y1 - y0 + 1, rounding_mode="floor")
        bins[:, c] = torch.where(torch.as_tensor(data.presence[:, c]), b, torch.full_like(b, -1))
    return presence, bins


def _loss(logits: torch.Tensor, presence: torch.Tensor, bins: torch.Tensor, row_bins: int) -> torch.Tensor:
    loss = F.binary_cross_entropy_with_logits(logits[:, :3], presence)
    rows = logits[:, 3:].reshape(-1, 3, row_bins)
    present = bins >= 0
    if bool(present.any()):
        loss = loss + F.cross_entropy(rows[present], bins[present])
    return loss


@dataclass
class TrainedEncoder:
    """The trained encoder (eval mode), its per-step losses and the settings that made it."""

    encoder: ShapesEncoder
    losses: list[float]
    config: dict = field(default_factory=dict)


def train_encoder(
    size: int = 32, *, steps: int = 200, batch_size: int = 64, n_train: int = 4000, seed: int = 0, lr: float = 2e-3,
    width: int = 8, num_features: int = 32, row_bins: int = 4,
) -> TrainedEncoder:
    """Train a :class:`ShapesEncoder` on ``generate(n_train, size, seed)`` for ``steps`` Adam steps (CPU).

    Deterministic in ``seed``: initial weights from a forked torch RNG seeded with ``seed``, batches drawn
    by ``torch.Generator().manual_seed(seed)``. Returns a :class:`TrainedEncoder` (encoder in eval mode).
    """
    check_int("steps", steps, low=1)
    check_int("batch_size", batch_size, low=1)
    check_int("n_train", n_train, low=1)
    check_int("seed", seed, low=0)
    check_positive("lr", lr)
    data = generate(n_train, size, seed)
    x = to_unit(data.images)
    presence, bins = encoder_targets(data, row_bins)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        enc = ShapesEncoder(size, width, num_features, row_bins)
    opt = torch.optim.Adam(enc.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    losses = []
    enc.train()
    for _ in range(steps):
        idx = torch.randint(0, n_train, (batch_size,), generator=gen)
        loss = _loss(enc(x[idx]), presence[idx], bins[idx], row_bins)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    enc.eval()
    config = dict(size=size, steps=steps, batch_size=batch_size, n_train=n_train, seed=seed, lr=lr, width=width,
                  num_features=num_features, row_bins=row_bins)
    return TrainedEncoder(enc, losses, config)


def _as_input(images: np.ndarray | torch.Tensor, size: int) -> torch.Tensor:
    """uint8 [N, H, W] (pixels) or float [N, 1, H, W] / [N, H, W] in [-1, 1] -> float32 [N, 1, H, W]."""
    if isinstance(images, np.ndarray) or (isinstance(images, torch.Tensor) and images.dtype == torch.uint8):
        x = to_unit(images)
    elif isinstance(images, torch.Tensor) and images.dtype.is_floating_point:
        x = images if images.dim() == 4 else images[:, None]
        x = x.detach().float()
    else:
        raise TypeError(f"images: expected uint8 pixels [N, H, W] or a float tensor in [-1, 1], got {type(images).__name__}")
    if x.shape[0] < 1:
        raise ValueError("images: expected at least one image, got an empty set")
    return x


@torch.no_grad()
def encode(encoder: ShapesEncoder, images: np.ndarray | torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    """Features [N, F] (float64, CPU) of ``images``: uint8 [N, S, S] pixels or float [N, 1, S, S] in [-1, 1]."""
    x = _as_input(images, encoder.size)
    was = encoder.training
    encoder.eval()
    device = next(encoder.parameters()).device
    out = torch.cat([encoder.features(x[i: i + batch_size].to(device)).double().cpu()
                     for i in range(0, x.shape[0], batch_size)])
    encoder.train(was)
    return out


@torch.no_grad()
def encoder_accuracy(encoder: ShapesEncoder, data: ShapesData) -> dict[str, float]:
    """Held-out accuracy: ``presence`` (all three presence bits right, per image), ``presence_bits`` (per
    bit) and ``rows`` (row bin right, over present columns)."""
    presence, bins = encoder_targets(data, encoder.row_bins)
    x = to_unit(data.images)
    logits = torch.cat([encoder(x[i: i + 512]) for i in range(0, x.shape[0], 512)])
    pred_p = logits[:, :3] > 0
    rows = logits[:, 3:].reshape(-1, 3, encoder.row_bins).argmax(-1)
    present = bins >= 0
    return {
        "presence": float((pred_p == presence.bool()).all(1).double().mean()),
        "presence_bits": float((pred_p == presence.bool()).double().mean()),
        "rows": float((rows[present] == bins[present]).double().mean()),
    }
