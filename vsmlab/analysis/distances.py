"""Distances between sample sets: the (sliced) Wasserstein distance.

For two empirical measures on the line with n and m points, W_p is exact in closed form through their
quantile functions (step functions with jumps at i/n and j/m)::

    W_p^p = integral_0^1 |F_x^-1(u) - F_y^-1(u)|^p du = sum over the merged breakpoints of du * |qx - qy|^p

In d > 1 the sliced distance averages W_p^p over random unit directions theta::

    SW_p(x, y) = ( mean_theta W_p^p(<x, theta>, <y, theta>) )^(1/p)

In 1-D every direction is +-1, so SW_p is the exact W_p (no projections are drawn).

Devices: computed in float64 on the samples' device; directions are drawn there by ``generator`` (a
generator on that device).
"""

from __future__ import annotations

import torch

from vsmlab.core.checks import check_int

__all__ = ["wasserstein_1d", "sliced_wasserstein"]


def _check_samples(x: torch.Tensor, name: str) -> torch.Tensor:
    if not isinstance(x, torch.Tensor) or x.dim() != 2 or x.shape[0] < 1:
        raise ValueError(f"{name}: expected samples of shape [N, d] with N >= 1, got {getattr(x, 'shape', type(x).__name__)}")
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name}: every sample must be finite (filter non-finite samples first)")
    return x.double()


def wasserstein_1d(x: torch.Tensor, y: torch.Tensor, p: float = 1.0) -> torch.Tensor:
    """Exact W_p^p between the empirical measures of the columns of x [N, L] and y [M, L]: returns [L].

    (Returns the p-th power so that projections can be averaged before the root.)
    """
    if not p >= 1:
        raise ValueError(f"p: expected a number >= 1, got {p!r}")
    n, m = x.shape[0], y.shape[0]
    xs, ys = torch.sort(x, dim=0).values, torch.sort(y, dim=0).values
    if y.device != x.device:
        raise ValueError(f"y: expected samples on x's device {str(x.device)!r}, got {str(y.device)!r}")
    dev = x.device
    u = torch.unique(torch.cat([torch.arange(1, n + 1, dtype=torch.float64, device=dev) / n,
                                torch.arange(1, m + 1, dtype=torch.float64, device=dev) / m]))
    du = torch.diff(torch.cat([torch.zeros(1, dtype=torch.float64, device=dev), u]))
    mid = u - du / 2
    ix = torch.clamp((mid * n).floor().long(), max=n - 1)
    iy = torch.clamp((mid * m).floor().long(), max=m - 1)
    return (du[:, None] * (xs[ix] - ys[iy]).abs() ** p).sum(0)


def sliced_wasserstein(
    x: torch.Tensor, y: torch.Tensor, num_projections: int = 128, p: float = 2.0,
    generator: torch.Generator | None = None,
) -> float:
    """SW_p between samples x [N, d] and y [M, d] (exact W_p in 1-D). Directions drawn from ``generator``."""
    x, y = _check_samples(x, "x"), _check_samples(y, "y")
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"y: expected {x.shape[1]}-D samples like x, got {y.shape[1]}-D")
    check_int("num_projections", num_projections, low=1)
    if y.device != x.device:
        raise ValueError(f"y: expected samples on x's device {str(x.device)!r}, got {str(y.device)!r}")
    d = x.shape[1]
    if d == 1:
        theta = torch.ones(1, 1, dtype=torch.float64, device=x.device)
    else:
        if generator is not None and generator.device.type != x.device.type:
            raise ValueError(f"generator: it lives on {str(generator.device)!r} but the samples are on "
                             f"{str(x.device)!r}; pass torch.Generator(device={str(x.device)!r})")
        theta = torch.randn(d, num_projections, generator=generator, dtype=torch.float64, device=x.device)
        theta = theta / theta.norm(dim=0, keepdim=True)
    return float(wasserstein_1d(x @ theta, y @ theta, p).mean() ** (1.0 / p))
