"""Throughput of the lab's image UNet against diffusers' UNet2DModel at equal FLOPs per image.

    OMP_NUM_THREADS=1 python benchmarks/bench_unet.py [--threads 1] [--sizes 32 64] [--base 32] [--batch 8]
        [--repeats 5] [--device cpu|cuda] [--gpu-base 128] [--gpu-batch 64] [--channels-last] [--compile]

For each image size the lab's :class:`vsmlab.nets.UNet` (channel_mult (1, 2, 2) at 32 px, (1, 2, 2, 2) at
64 px, 2 res blocks, attention at 16 px and in the middle, 32 channels per head) is measured side by side
with diffusers' ``UNet2DModel`` built to the same plan (block_out_channels = base x mult, layers_per_block
2, Attn blocks at the same resolutions, scale-shift time conditioning, attention_head_dim 32). Their FLOPs
per image (:func:`vsmlab.nets.unet_flops`: convs, linears, attention matmuls, 2 per MAC) must agree within
10%; both are printed with the parameter counts.

- train img/s: one step = forward, eps-MSE, backward, AdamW step, on a fixed batch (x, t, eps).
- sample img/s: one forward under ``torch.no_grad`` in eval mode (a sampler's model call).

Each timed run is ``--steps`` calls; the two models alternate run by run (A B A B ...), so a shared
machine's load hits both alike, and the best of ``--repeats`` runs counts (the median is printed too).
Ratios are lab / diffusers, > 1 means the lab's UNet is faster: the ratio of the best runs, and the median
over runs of the paired ratio (lab run i / diffusers run i, measured back to back), which is the steadier
figure on a loaded machine.

On CUDA (``--device cuda``, default when a GPU exists) the same comparison runs under bf16 autocast, and a
larger 64-px config (``--gpu-base`` channels, (1, 2, 2, 2), ``--gpu-batch``) reports model FLOP/s in training
(3 x forward FLOPs per image: the backward pass costs about twice the forward) as a share of the bf16 matmul
rate measured in the same run (torch.matmul of two 8192 x 8192 bf16 matrices, best of 10).

Without diffusers (the GPU machine's image has none) the peer rows and ratios are skipped with a printed note and
the lab UNet is measured alone; nothing else needs it.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import statistics
import sys
import time
from typing import Callable

import torch

from vsmlab.nets import UNet, count_parameters, unet_flops

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _timing import matmul_flops, sync  # noqa: E402

HEAD_CHANNELS = 32


def lab_unet(size: int, base: int, channels: int) -> UNet:
    mult = (1, 2, 2) if size <= 32 else (1, 2, 2, 2)
    return UNet(size, channels, base, mult, num_res_blocks=2, attention_resolutions=(16,),
                head_channels=HEAD_CHANNELS, seed=0)


def diffusers_twin(model: UNet):
    """diffusers' UNet2DModel with the lab UNet's plan (same channels, blocks, attention resolutions)."""
    import diffusers

    cfg = model.config
    size, mult = cfg["image_size"], cfg["channel_mult"]
    res = [size // 2**i for i in range(len(mult))]
    attn = cfg["attention_resolutions"]
    torch.manual_seed(0)
    return diffusers.UNet2DModel(
        sample_size=size, in_channels=cfg["in_channels"], out_channels=cfg["in_channels"],
        block_out_channels=tuple(cfg["base_channels"] * m for m in mult), layers_per_block=cfg["num_res_blocks"],
        down_block_types=tuple("AttnDownBlock2D" if r in attn else "DownBlock2D" for r in res),
        up_block_types=tuple("AttnUpBlock2D" if r in attn else "UpBlock2D" for r in reversed(res)),
        attention_head_dim=HEAD_CHANNELS, resnet_time_scale_shift="scale_shift", norm_num_groups=32,
    )


def peer_missing() -> str | None:
    """Why the diffusers peer cannot be built here (None when diffusers imports)."""
    try:
        if importlib.util.find_spec("diffusers") is None:
            return "diffusers is not installed"
        import diffusers  # noqa: F401
    except Exception as exc:  # noqa: BLE001 - a broken install counts as missing
        return f"diffusers does not import ({type(exc).__name__}: {exc})"
    return None


def eps_of(model: torch.nn.Module) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    if isinstance(model, UNet) or isinstance(getattr(model, "_orig_mod", None), UNet):
        return lambda x, t: model(x, t).eps
    return lambda x, t: model(x, t).sample


class Bench:
    """One model's train step and sampling call on a fixed batch."""

    def __init__(self, model: torch.nn.Module, batch: int, size: int, channels: int, device: torch.device,
                 autocast: bool, channels_last: bool, compile_: bool) -> None:
        self.model = model.to(device)
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        if channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.fn = eps_of(torch.compile(self.model) if compile_ else self.model)
        g = torch.Generator().manual_seed(0)
        self.x = torch.randn(batch, channels, size, size, generator=g).to(device).contiguous(memory_format=fmt)
        self.eps = torch.randn(batch, channels, size, size, generator=g).to(device).contiguous(memory_format=fmt)
        self.t = torch.randint(0, 1000, (batch,), generator=g).to(device)
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=1e-4)
        self.device, self.autocast, self.batch = device, autocast, batch

    def _ctx(self):
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.autocast)

    def train(self, steps: int) -> float:
        self.model.train()
        sync(self.device)
        start = time.perf_counter()
        for _ in range(steps):
            with self._ctx():
                loss = (self.fn(self.x, self.t).float() - self.eps).square().mean()
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
        sync(self.device)
        return self.batch * steps / (time.perf_counter() - start)

    def sample(self, steps: int) -> float:
        self.model.eval()
        sync(self.device)
        start = time.perf_counter()
        with torch.no_grad(), self._ctx():
            for _ in range(steps):
                self.fn(self.x, self.t)
        sync(self.device)
        return self.batch * steps / (time.perf_counter() - start)


def alternate(benches: list[Bench], kind: str, steps: int, repeats: int) -> list[list[float]]:
    """img/s per bench and run; one warm-up call each, then A B A B ... runs."""
    for b in benches:
        getattr(b, kind)(1)
    rates: list[list[float]] = [[] for _ in benches]
    for _ in range(repeats):
        for i, b in enumerate(benches):
            rates[i].append(getattr(b, kind)(steps))
    return rates


def bf16_matmul_flops(device: torch.device, n: int = 8192, repeats: int = 10) -> float:
    """Best-of-``repeats`` FLOP/s of torch.matmul on two n x n bf16 matrices (2 n^3 FLOPs)."""
    return matmul_flops(device, n, torch.bfloat16, repeats)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[32, 64])
    parser.add_argument("--base", type=int, default=32, help="base channels of the compared UNets (default 32)")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--channels", type=int, default=1, help="image channels (default 1)")
    parser.add_argument("--steps", type=int, default=3, help="calls per timed run (default 3)")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per model; the best counts (default 5)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--gpu-base", type=int, default=128, help="base channels of the GPU FLOP-share config")
    parser.add_argument("--gpu-batch", type=int, default=64)
    parser.add_argument("--channels-last", action="store_true", help="both models and inputs in channels_last")
    parser.add_argument("--compile", action="store_true", help="torch.compile both models")
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device: 'cuda' was asked for but torch.cuda.is_available() is False; allowed: cpu")
    autocast = device.type == "cuda"
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine()
    print(f"# torch {torch.__version__}, device {device} ({name}), {torch.get_num_threads()} thread(s), "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, load average {load:.2f} at start, "
          f"{'bf16 autocast' if autocast else 'float32'}{', channels_last' if args.channels_last else ''}"
          f"{', torch.compile' if args.compile else ''}; batch {args.batch}, {args.steps} calls per run, best of {args.repeats}")
    print(f"{'size':>4} {'model':<10} {'params':>10} {'MFLOP/img':>10} {'train img/s':>12} {'(median)':>9} "
          f"{'sample img/s':>13} {'(median)':>9}")
    ratios = []
    missing = peer_missing()
    if missing:
        print(f"# peer rows skipped: {missing}; the lab UNet is measured alone (no ratios)", flush=True)
    for size in args.sizes:
        lab = lab_unet(size, args.base, args.channels)
        models, labels = [lab], ["lab UNet"]
        flops = [unet_flops(lab, size)]
        if not missing:
            peer = diffusers_twin(lab)
            flops.append(unet_flops(peer, size, in_channels=args.channels))
            if abs(flops[1] / flops[0] - 1) > 0.10:
                raise SystemExit(f"FLOPs differ by more than 10% at {size} px: lab {flops[0]}, diffusers {flops[1]}")
            models.append(peer)
            labels.append("diffusers")
        params = [count_parameters(m) for m in models]
        benches = [Bench(m, args.batch, size, args.channels, device, autocast, args.channels_last, args.compile)
                   for m in models]
        train = alternate(benches, "train", args.steps, args.repeats)
        sample = alternate(benches, "sample", args.steps, args.repeats)
        for i, label in enumerate(labels):
            print(f"{size:>4} {label:<10} {params[i]:>10,} {flops[i] / 1e6:>10.1f} {max(train[i]):>12.2f} "
                  f"{statistics.median(train[i]):>9.2f} {max(sample[i]):>13.2f} {statistics.median(sample[i]):>9.2f}",
                  flush=True)
        def paired(rates: list[list[float]]) -> float:
            return statistics.median(a / b for a, b in zip(*rates))

        if missing:
            del benches
            continue
        ratios.append((size, max(train[0]) / max(train[1]), paired(train), max(sample[0]) / max(sample[1]),
                       paired(sample)))
        del benches
    for size, tr, tr_pair, sa, sa_pair in ratios:
        print(f"# {size} px: lab / diffusers train img/s {tr:.2f}x best, {tr_pair:.2f}x median paired; "
              f"sample img/s {sa:.2f}x best, {sa_pair:.2f}x median paired")
    print(f"# load average {os.getloadavg()[0]:.2f} at the end (other jobs share this machine)")

    if device.type == "cuda":
        size = 64
        lab = UNet(size, args.channels, args.gpu_base, (1, 2, 2, 2), 2, (16,), head_channels=64, seed=0)
        flops = unet_flops(lab, size)
        bench = Bench(lab, args.gpu_batch, size, args.channels, device, True, args.channels_last, args.compile)
        peak = bf16_matmul_flops(device)
        rate = max(alternate([bench], "train", max(args.steps, 10), args.repeats)[0])
        srate = max(alternate([bench], "sample", max(args.steps, 10), args.repeats)[0])
        peak = max(peak, bf16_matmul_flops(device))
        achieved = 3 * flops * rate
        print(f"# GPU config 64 px, base {args.gpu_base}, batch {args.gpu_batch}: {count_parameters(lab):,} params, "
              f"{flops / 1e9:.2f} GFLOP/img forward; train {rate:.1f} img/s = {achieved / 1e12:.1f} TFLOP/s "
              f"(3 x forward) = {100 * achieved / peak:.1f}% of the bf16 matmul rate {peak / 1e12:.1f} TFLOP/s; "
              f"sample {srate:.1f} img/s = {100 * flops * srate / peak:.1f}%")
    print("# done", file=sys.stderr)


if __name__ == "__main__":
    main()
