"""DDPM sampling throughput of vsmlab.MLP, and its share of the machine's dense matmul FLOP rate.

    python benchmarks/bench_sampling.py [--threads 2] [--steps 10] [--repeats 2] [--batches 10000 50000 100000]

For each MLP (dim 1 and 2, width 128 and 256, depth 3) and batch size, it times ``vsmlab.ddpm`` over a
schedule of ``--steps`` steps (one model call per step, under torch.no_grad, after a warm-up run; the
best of ``--repeats`` runs, so 20 timed model calls by default) and prints sample-steps per second, the
achieved matmul GFLOP/s (model.matmul_flops_per_example() per sample-step) and its ratio to the float32
dense matmul rate measured in the same run with the same number of threads (torch.mm of two 2048 x 2048
matrices, best of 7, measured before and after the models; the higher is used). The ``fwd`` column gives
the same ratio for the bare model call (no sampler arithmetic, best of ``--repeats``), to tell the
sampler's overhead from the network's own efficiency. Best-of timings damp the noise of a shared machine.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time

import torch

import vsmlab


def best_time(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def matmul_gflops(size: int = 2048, repeats: int = 7) -> float:
    """Best-of-``repeats`` float32 GFLOP/s of torch.mm on size x size matrices (2 n^3 FLOPs)."""
    g = torch.Generator().manual_seed(0)
    a = torch.randn(size, size, generator=g)
    b = torch.randn(size, size, generator=g)
    out = torch.empty(size, size)
    torch.mm(a, b, out=out)  # warm-up
    return 2 * size**3 / best_time(lambda: torch.mm(a, b, out=out), repeats) / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2, help="torch threads for everything measured (default 2)")
    parser.add_argument("--steps", type=int, default=10, help="sampler steps (= model calls) per timed run (default 10)")
    parser.add_argument("--repeats", type=int, default=2, help="timed runs per configuration; the best counts (default 2)")
    parser.add_argument("--batches", type=int, nargs="+", default=[10_000, 50_000, 100_000])
    parser.add_argument("--widths", type=int, nargs="+", default=[128, 256])
    parser.add_argument("--dims", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--depth", type=int, default=3)
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    schedule = vsmlab.linear(args.steps, 1e-3, 0.2)
    warm_schedule = vsmlab.linear(2, 1e-3, 0.2)
    before = matmul_gflops()
    measured = []  # (dim, width, batch, flops per example, sampler seconds, forward seconds)
    with torch.no_grad():
        for dim in args.dims:
            for width in args.widths:
                model = vsmlab.MLP(dim, width=width, depth=args.depth, seed=0).eval()
                flops = model.matmul_flops_per_example()
                for batch in args.batches:
                    g = torch.Generator().manual_seed(0)
                    x_T = torch.randn(batch, dim, generator=g)
                    vsmlab.ddpm(model, warm_schedule, x_T=x_T, generator=g)  # warm-up (allocator, kernels)
                    seconds = best_time(lambda: vsmlab.ddpm(model, schedule, x_T=x_T, generator=g), args.repeats)
                    t = torch.full((batch,), args.steps // 2, dtype=torch.long)
                    fwd = best_time(lambda: model(x_T, t), args.repeats)
                    measured.append((dim, width, batch, flops, seconds, fwd))
                    print(f"# measured dim {dim} width {width} batch {batch}", file=sys.stderr, flush=True)
    after = matmul_gflops()
    peak = max(before, after)

    print(f"# torch {torch.__version__}, {args.threads} thread(s), {platform.machine()}; float32 matmul 2048x2048: "
          f"{before:.1f} GFLOP/s before, {after:.1f} after the models (best of 7 each; {peak:.1f} used)")
    print(f"# DDPM: best of {args.repeats} runs of {args.steps} steps after a warm-up run; "
          "FLOPs = Linear layers only (2 per multiply-add)")
    header = (f"{'dim':>3} {'width':>5} {'batch':>7} {'MFLOP/ex':>8} {'sample-steps/s':>15} {'GFLOP/s':>8} "
              f"{'of matmul':>9} {'fwd of matmul':>13}")
    print(header)
    print("-" * len(header))
    big = []
    for dim, width, batch, flops, seconds, fwd in measured:
        rate = batch * args.steps / seconds
        gflops = rate * flops / 1e9
        share, fwd_share = gflops / peak, batch * flops / fwd / 1e9 / peak
        if batch >= 50_000:
            big.append(share)
        print(f"{dim:>3} {width:>5} {batch:>7} {flops / 1e6:>8.3f} {rate:>15,.0f} {gflops:>8.1f} "
              f"{100 * share:>8.1f}% {100 * fwd_share:>12.1f}%")
    if big:
        print(f"# DDPM at batches >= 50k: {100 * min(big):.1f}% .. {100 * max(big):.1f}% of the matmul rate (target >= 40%)")

    # side by side: the forward pass in cache-sized pieces (MLP.inference_chunk) against one piece
    dim, width, batch = args.dims[0], args.widths[0], max(args.batches)
    model = vsmlab.MLP(dim, width=width, depth=args.depth, seed=0).eval()
    x, t = torch.randn(batch, dim), torch.full((batch,), 1, dtype=torch.long)
    times = {}
    with torch.no_grad():
        for label, chunk in (("pieces", vsmlab.MLP.inference_chunk), ("one piece", batch)):
            model.inference_chunk = chunk
            model(x, t)
            times[label] = best_time(lambda: model(x, t), max(3, args.repeats))
    chunk = vsmlab.MLP.inference_chunk
    print(f"# forward dim {dim} width {width} batch {batch}: in {chunk}-row pieces "
          f"{batch * model.matmul_flops_per_example() / times['pieces'] / 1e9:.1f} GFLOP/s, in one piece "
          f"{batch * model.matmul_flops_per_example() / times['one piece'] / 1e9:.1f} GFLOP/s "
          f"(speed-up {times['one piece'] / times['pieces']:.2f}x)")


if __name__ == "__main__":
    main()
