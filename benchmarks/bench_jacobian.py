"""Benchmark: batched Jacobian estimators against a per-sample autograd loop, measured in the same run.

    python benchmarks/bench_jacobian.py [--threads 1] [--points 10000] [--loop-points 500]

1. The exact Jacobian of a 2-D MLP score (vsmlab.MLP, width 128, depth 3) at N points: every method of
   vsmlab.core.estimators.jacobian against a per-sample loop (one torch.autograd.functional.jacobian per
   point). The loop is timed on a subset and extrapolated linearly to N (said so in the output).
2. Power iteration and Hutchinson estimators for 64x64 RGB images through a small conv net (defined
   here): seconds per input.
"""

from __future__ import annotations

import argparse
import platform
import time

import torch
from torch import nn

from vsmlab import MLP, linear
from vsmlab.core.estimators import hutchinson_frobenius, hutchinson_trace, jacobian, jacobian_spectral_norm, score_function


def best_of(fn, repeats: int = 3) -> float:
    """Best wall time of ``repeats`` calls (seconds)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


class TinyConvNet(nn.Module):
    """A small image-to-image net: 3 -> 32 -> 32 (stride 2) -> up -> 32 -> 3 channels, SiLU."""

    def __init__(self) -> None:
        super().__init__()
        self.inp = nn.Conv2d(3, 32, 3, padding=1)
        self.down = nn.Conv2d(32, 32, 3, stride=2, padding=1)
        self.mid = nn.Conv2d(32, 32, 3, padding=1)
        self.up = nn.ConvTranspose2d(32, 32, 4, stride=2, padding=1)
        self.out = nn.Conv2d(32, 3, 3, padding=1)
        self.act = nn.SiLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.act(self.inp(x))
        m = self.act(self.mid(self.act(self.down(h))))
        return self.out(self.act(self.up(m) + h))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--points", type=int, default=10_000)
    parser.add_argument("--loop-points", type=int, default=500, help="points the per-sample loop is timed on")
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3, help="alternating loop / batched timing rounds")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} thread(s), {platform.machine()}, float32")

    # ---------------------------------------------------------------- 1. exact Jacobian, 2-D MLP score
    schedule = linear(1000, 1e-3, 0.2)
    model = MLP(2, width=128, depth=3, seed=0).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    f = score_function(model, schedule, 10)
    x = torch.randn(args.points, 2, generator=torch.Generator().manual_seed(0)) * 2
    sub = x[: args.loop_points]

    def loop(points: torch.Tensor) -> torch.Tensor:
        return torch.stack([torch.autograd.functional.jacobian(lambda xb: f(xb[None])[0], xb) for xb in points])

    jacobian(f, x[:16])
    loop(sub[:4])  # warm-up
    J_sub = loop(sub)
    print(f"\n[1] exact Jacobian of a 2-D MLP score (width 128, depth 3, LayerNorm) at {args.points} points")
    print(f"  per-sample loop: torch.autograd.functional.jacobian per point, timed on {args.loop_points} points "
          f"and extrapolated x{args.points / args.loop_points:g}")
    # the machine is shared: measure loop and batched call alternately, in rounds, and report the
    # median of the per-round ratios (both sides see the same load) next to the best times
    ratios: dict[str, list[float]] = {m: [] for m in ("rev", "fwd", "vmap")}
    best: dict[str, float] = {m: float("inf") for m in (*ratios, "loop")}
    for _ in range(args.rounds):
        for method in ratios:
            t_loop = best_of(lambda: loop(sub), repeats=1) * args.points / args.loop_points
            t = best_of(lambda: jacobian(f, x, method=method), repeats=3)
            ratios[method].append(t_loop / t)
            best["loop"], best[method] = min(best["loop"], t_loop), min(best[method], t)
    print(f"  per-sample loop (extrapolated): best {best['loop']:.2f} s")
    for method, r in ratios.items():
        err = float((jacobian(f, sub, method=method) - J_sub).abs().max())
        med = sorted(r)[len(r) // 2]
        print(f"  jacobian(method={method!r:6}): best {best[method]:.3f} s   speed-up vs loop: median {med:6.1f}x "
              f"(rounds: {', '.join(f'{v:.0f}' for v in r)})   max |diff| vs loop: {err:.1e}")
    med = sorted(ratios["rev"])[len(ratios["rev"]) // 2]
    print(f"  default method='auto' is 'rev': {med:.1f}x faster than the loop (target >= 30x: {'met' if med >= 30 else 'NOT met'})")

    # ---------------------------------------------------------------- 2. 64x64 images, tiny conv net
    torch.manual_seed(0)
    net = TinyConvNet().eval()
    for p in net.parameters():
        p.requires_grad_(False)
    imgs = torch.randn(args.images, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    g = torch.Generator().manual_seed(2)
    n = args.images
    print(f"\n[2] 64x64x3 images through a small conv net (D = {3 * 64 * 64}), batch of {n}")
    t_fwd = best_of(lambda: net(imgs))
    print(f"  forward pass: {1e3 * t_fwd / n:.2f} ms per input")
    iters = 20
    t_pow = best_of(lambda: jacobian_spectral_norm(net, imgs, max_iter=iters, tol=0.0, generator=g), repeats=2)
    res = jacobian_spectral_norm(net, imgs, max_iter=200, tol=1e-4, generator=g)
    print(f"  power iteration, {iters} iterations: {1e3 * t_pow / n:.1f} ms per input "
          f"({1e3 * t_pow / n / iters:.2f} ms per input per iteration)")
    print(f"  power iteration to tol 1e-4: median {int(res.iterations.median())} iterations "
          f"(max {int(res.iterations.max())}), ||J||_2 ~ {float(res.value.mean()):.3f}")
    for probes in (1, 16):
        t_tr = best_of(lambda: hutchinson_trace(net, imgs, num_probes=probes, generator=g), repeats=2)
        t_fr = best_of(lambda: hutchinson_frobenius(net, imgs, num_probes=probes, generator=g), repeats=2)
        print(f"  Hutchinson, {probes:2d} probe(s): trace {1e3 * t_tr / n:.1f} ms, Frobenius {1e3 * t_fr / n:.1f} ms per input")
    tr = hutchinson_trace(net, imgs, num_probes=16, generator=g)
    print(f"  divergence estimate (16 probes): {float(tr.value[0]):.2f} +- {float(tr.stderr[0]):.2f} (first image)")


if __name__ == "__main__":
    main()
