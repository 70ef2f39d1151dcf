"""The ideal denoiser of a finite training set (the score a perfect net would learn from N images).

The empirical distribution of N training points x^(1..N) (flattened to d numbers each) is a mixture of
point masses. Under the forward process x_t = a x_0 + sigma eps (a = sqrt(alpha_bar_t), sigma^2 = 1 - a^2)
its noised marginal is a mixture of N Gaussians N(a x^(i), sigma^2 I), so the posterior over training
points, the denoiser and the score are exact::

    r_i(x_t)     = softmax_i( -||x_t - a x^(i)||^2 / (2 sigma^2) )
    E[x_0 | x_t] = sum_i r_i x^(i)
    score(x_t)   = (a E[x_0 | x_t] - x_t) / sigma^2,        eps = -sigma score

A sampler driven by this score can only return training images (it memorises); the true distribution's
score (e.g. :class:`vsmlab.data.shapes_score.ExactShapesScore`) composes new images. A trained net sits
between the two, which is why the lab compares all three.

This is a Gaussian mixture with zero-width components; :class:`vsmlab.data.mixtures.GaussianMixture`
needs stds > 0 and forms [B, K, d] differences, which at K = 5,000 images of 1,024 pixels is gigabytes.
Here the squared distances come from one matmul (||x||^2 - 2 a x.X^T + a^2 ||X||^2), so memory is
[B, N] + [N, d]. Computed in float64 on x_t's device; answers in x_t's dtype.
"""

from __future__ import annotations

import torch
from torch import nn

from vsmlab.core.prediction import Prediction
from vsmlab.core.schedules import Schedule

__all__ = ["EmpiricalScore"]


class EmpiricalScore(nn.Module):
    """Exact score of the empirical distribution of ``train`` under ``schedule`` (the memorising oracle).

    train: [N, ...] float training points in model space (e.g. images in [-1, 1], [N, 1, H, W]);
    ``model(x_t, t) -> Prediction(eps)`` with x_t shaped [B, ...] like one training point; t [B] int.
    Also :meth:`posterior` ([B, N] responsibilities r_i), :meth:`posterior_mean` and :meth:`score`.
    No parameters (the training points are a buffer, moved with ``.to``).
    """

    def __init__(self, train: torch.Tensor, schedule: Schedule) -> None:
        super().__init__()
        if not isinstance(train, torch.Tensor) or not train.is_floating_point():
            raise TypeError(f"train: expected a float tensor [N, ...], got {type(train).__name__}"
                            + (f" of dtype {train.dtype}" if isinstance(train, torch.Tensor) else ""))
        if train.dim() < 2 or train.shape[0] < 1:
            raise ValueError(f"train: expected shape [N, ...] with N >= 1 points, got {tuple(train.shape)}")
        if not torch.isfinite(train).all():
            raise ValueError("train: contains NaN or inf")
        if not isinstance(schedule, Schedule):
            raise TypeError(f"schedule: expected a Schedule, got {type(schedule).__name__}")
        self.schedule = schedule
        self.point_shape = tuple(train.shape[1:])
        flat = train.detach().reshape(train.shape[0], -1).to(torch.float64)
        self.register_buffer("points", flat, persistent=False)
        self.register_buffer("sq_norms", (flat * flat).sum(1), persistent=False)

    def _check(self, x_t: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if not isinstance(x_t, torch.Tensor) or not x_t.is_floating_point():
            raise TypeError(f"x_t: expected a float tensor, got {type(x_t).__name__}")
        if tuple(x_t.shape[1:]) != self.point_shape:
            raise ValueError(f"x_t: expected shape [B, {', '.join(map(str, self.point_shape))}] like one training "
                             f"point, got {tuple(x_t.shape)}")
        t = self.schedule.check_t(t, x_t.shape[0]).to(x_t.device)
        return x_t.reshape(x_t.shape[0], -1).to(torch.float64), t

    def _posterior_and_mean(self, x: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        ab = self.schedule.table("alpha_bar", x.device)[t]  # float64 [B]
        a, s2 = ab.sqrt()[:, None], (1.0 - ab)[:, None]
        X = self.points.to(x.device)
        d2 = (x * x).sum(1, keepdim=True) - 2.0 * a * (x @ X.T) + ab[:, None] * self.sq_norms.to(x.device)[None]
        r = torch.softmax(-d2 / (2.0 * s2), dim=1)  # [B, N]
        return r, r @ X, s2

    def posterior(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """r_i(x_t): [B, N] float64 responsibilities of the training points (rows sum to 1)."""
        x, t = self._check(x_t, t)
        return self._posterior_and_mean(x, t)[0]

    def posterior_mean(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """E[x_0 | x_t] = sum_i r_i x^(i), shaped and typed like x_t."""
        x, t = self._check(x_t, t)
        return self._posterior_and_mean(x, t)[1].reshape(x_t.shape).to(x_t.dtype)

    def _eps64(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        x, t = self._check(x_t, t)
        _, x0, s2 = self._posterior_and_mean(x, t)
        ab = 1.0 - s2
        return (x - ab.sqrt() * x0) / s2.sqrt()

    def score(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """grad_x log p_t(x_t) = (a E[x_0 | x_t] - x_t) / sigma^2, shaped and typed like x_t."""
        x, t = self._check(x_t, t)
        _, x0, s2 = self._posterior_and_mean(x, t)
        return ((x0 * (1.0 - s2).sqrt() - x) / s2).reshape(x_t.shape).to(x_t.dtype)

    def forward(self, x_t: torch.Tensor, t: torch.Tensor) -> Prediction:
        return Prediction(eps=self._eps64(x_t, t).reshape(x_t.shape).to(x_t.dtype))

    def extra_repr(self) -> str:
        return f"points={self.points.shape[0]}, point_shape={self.point_shape}, schedule={self.schedule.name}"
