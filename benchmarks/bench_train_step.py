"""ms/step and img/s of the training step, old style vs the current step, side by side in one run.

    OMP_NUM_THREADS=1 python benchmarks/bench_train_step.py                      # CPU, configs/shapes-smoke.toml
    python benchmarks/bench_train_step.py --device cuda                          # configs/shapes-fixed-gpu.toml
    python benchmarks/bench_train_step.py --device cuda --config configs/shapes-vsm-gpu.toml --models 6

Rows (each a :class:`vsmlab.diffusion.training.Trainer` on the same config, batch and data):

- ``old-style``: the step as the library ran it before it was made sync-free, rebuilt here from its parts
  (:class:`OldStyleStep`): fresh CPU and device generators every step, batch indices drawn and gathered on
  the CPU and the uint8 batch copied from pageable memory, ``fork_rng``, a host read of t's min / max for
  every schedule coefficient (3 reads per step for eps-MSE, 11 for the hybrid loss, 14 for VSM, at the
  places the old loss made them: before and after the model call), torch's default AdamW (foreach on CUDA,
  step counters on the CPU: an ``.item()`` per parameter), an EMA that rebuilt ``state_dict`` every step and
  ``bincount`` in the loss-second-moment sampler. On the CPU its numbers equal the current step's (checked
  and printed: the largest loss difference over the timed steps).
- ``eager``: the current step (fused AdamW on CUDA, draws on the device, no host read between log steps).
- CUDA only: ``cuda_graph`` (the whole step captured and replayed), ``compile`` (``torch.compile`` of the
  model) and ``compile+graph``; ``--models K`` adds a row for K runs of the fastest mode in lockstep on CUDA
  streams (:class:`vsmlab.diffusion.training.MultiTrainer`; img/s summed over the K models).

Each row is warmed up (``--warmup`` steps, rounded up to whole runs: CUDA-graph capture, compilation, cuDNN
autotuning with ``torch.backends.cudnn.benchmark = True`` on CUDA), then the rows alternate, ``--steps`` steps per timed run
(the loss is read once per run, at its last step: ``log_every = --steps``), best of ``--repeats`` runs (the
median is printed too). Model FLOPs per image: 3 x the forward FLOPs (:func:`vsmlab.nets.unet_flops`; the
backward pass costs about twice the forward). MFU: achieved FLOP/s over the matmul rate measured in the same
run (bf16 8192 x 8192 on CUDA, fp32 2048 x 2048 on the CPU, best of 10). Peak memory (CUDA): the largest
allocation during the row's warm-up above what was allocated before it. Does not import diffusers.
"""

from __future__ import annotations

import argparse
import contextlib
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import matmul_flops, sync  # noqa: E402

from vsmlab.core.schedules import Schedule  # noqa: E402
from vsmlab.diffusion.config import (build_data, build_loss, build_model, build_schedule, load_config,  # noqa: E402
                                     trainer_options)
from vsmlab.diffusion.optim import EMA, step_key  # noqa: E402
from vsmlab.diffusion.timesteps import LossSecondMomentSampler  # noqa: E402
from vsmlab.diffusion.training import MultiTrainer, Trainer  # noqa: E402

#: host reads of t per step in the old loss path: (before the model call, after it)
OLD_READS = {"eps_mse": (3, 0), "hybrid": (4, 7), "vsm": (4, 10)}


def read_range(t: torch.Tensor) -> None:
    """What the old ``check_t`` did for every coefficient: read t's min and max on the host."""
    torch.stack([t.min(), t.max()]).tolist()


class _OldReads(torch.nn.Module):
    """The model with the old loss path's host reads of t around its call (the current loss makes one itself)."""

    def __init__(self, model: torch.nn.Module, before: int, after: int) -> None:
        super().__init__()
        self.model, self.before, self.after = model, before, after

    def forward(self, x_t: torch.Tensor, t: torch.Tensor):
        for _ in range(self.before):
            read_range(t)
        out = self.model(x_t, t)
        for _ in range(self.after):
            read_range(t)
        return out


class _OldSecondMoment(LossSecondMomentSampler):
    """The sampler's update with torch.bincount (reads the maximum of t on the host), as before."""

    @torch.no_grad()
    def update(self, t: torch.Tensor, losses: torch.Tensor) -> None:
        t = t.to(self.history.device)
        losses = losses.detach().to(self.history.device, torch.float64)
        H, B = self.size, t.shape[0]
        order = torch.argsort(t, stable=True)
        ts, ls = t[order], losses[order]
        first = torch.searchsorted(ts, ts, right=False)
        rank = torch.arange(B, device=ts.device) - first
        in_batch = torch.bincount(t, minlength=self.num_steps)
        keep = rank >= in_batch[ts] - H
        pos = torch.where(keep, (self.count[ts] + rank) % H, torch.full_like(rank, H))
        self.history[ts, pos] = ls
        self.count += in_batch


class _OldEMA(EMA):
    """The EMA update that rebuilt the model's state_dict every step."""

    @torch.no_grad()
    def update(self, model: torch.nn.Module, step: int | None, weight: torch.Tensor | None = None) -> None:
        live = model.state_dict(keep_vars=True)
        d = self.decay_at(step)
        torch._foreach_lerp_([self.shadow[k] for k in self._averaged], [live[k].detach() for k in self._averaged],
                             1.0 - d)
        for k in self._copied:
            self.shadow[k].copy_(live[k])


class OldStyleStep(Trainer):
    """The pre-change step (module docstring), on the current Trainer's state and loop."""

    def __init__(self, *args: Any, cpu_data: torch.Tensor, loss_name: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.data = cpu_data  # gathered on the CPU, copied to the device per batch
        self.optimizer = type(self.optimizer)(self._params, lr=self.lr, **(
            {"weight_decay": self.optimizer.defaults["weight_decay"]} if isinstance(self.optimizer, torch.optim.AdamW)
            else {}))  # torch's default implementation (foreach on CUDA, CPU step counters)
        if self.ema is not None:
            self.ema = _OldEMA(self.model, self.ema.decay, self.ema.warmup)
        if self.timestep_sampler.name == "loss_second_moment":
            self.timestep_sampler = _OldSecondMoment(self.schedule.num_steps, device=self.device)
        before, after = OLD_READS[loss_name]
        self.forward_model = _OldReads(self.forward_model, before - 1, after)

    def _batch(self, step: int):
        key = step_key(self.seed, step)
        g_cpu = torch.Generator().manual_seed(key)
        g_dev = g_cpu if self.device.type == "cpu" else torch.Generator(device=self.device).manual_seed(key)
        idx = torch.randint(0, self.data.shape[0], (self.batch_size,), generator=g_cpu)
        x0 = self._to_device(self.data[idx])
        t, w = self.timestep_sampler.sample(x0.shape[0], g_dev, device=self.device)
        eps = torch.randn(x0.shape, generator=g_dev, dtype=x0.dtype, device=self.device)
        return x0, t, eps, w

    def _loss(self, x0, t, eps, step):  # the loss outside assume_valid_steps: its boundary check reads t
        amp_ctx = (torch.autocast(device_type=self.device.type, dtype=torch.bfloat16) if self.autocast
                   else contextlib.nullcontext())
        with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
            torch.manual_seed(step_key(self.seed, step, self.rank))
            with amp_ctx:
                return self.loss_fn(self.forward_model, x0, t, eps, self.schedule)


def matmul_rate(device: torch.device, repeats: int = 10) -> tuple[float, str]:
    """Best-of-``repeats`` FLOP/s of one square matmul: bf16 8192^2 on CUDA, fp32 2048^2 on the CPU."""
    n, dtype, label = (8192, torch.bfloat16, "bf16") if device.type == "cuda" else (2048, torch.float32, "fp32")
    return matmul_flops(device, n, dtype, repeats), f"{label} {n}x{n}"


class Row:
    """One mode: its trainer(s), an iterator over their steps and the timings."""

    def __init__(self, label: str, trainers: list[Trainer], device: torch.device) -> None:
        self.label, self.trainers, self.device = label, trainers, device
        self.runs = [tr.run() for tr in trainers] if len(trainers) == 1 else None
        self.multi = MultiTrainer(trainers).run() if len(trainers) > 1 else None
        self.times: list[float] = []
        self.totals: list[float] = []
        self.peak_bytes: int | None = None

    def steps(self, n: int) -> None:
        """Advance every trainer by n steps (the last one a read step), timed from sync to sync."""
        sync(self.device)
        start = time.perf_counter()
        for _ in range(n):
            if self.multi is not None:
                for _ in self.trainers:
                    name, rec = next(self.multi)
            else:
                rec = next(self.runs[0])
        sync(self.device)
        self.times.append(time.perf_counter() - start)
        if isinstance(rec.terms["total"], float):
            self.totals.append(rec.terms["total"])

    def warm(self, n: int) -> None:
        if self.device.type == "cuda":
            sync(self.device)
            base = torch.cuda.memory_allocated(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        self.steps(n)
        self.times.clear()
        if self.device.type == "cuda":
            self.peak_bytes = torch.cuda.max_memory_allocated(self.device) - base


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    parser.add_argument("--config", default=None, help="TOML config (default: shapes-smoke on the CPU, "
                        "shapes-fixed-gpu on CUDA)")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE", help="config overrides")
    parser.add_argument("--batch", type=int, default=None, help="batch size (default: the config's)")
    parser.add_argument("--steps", type=int, default=None, help="steps per timed run (default 5 CPU, 20 CUDA)")
    parser.add_argument("--warmup", type=int, default=None, help="warm-up steps per row (default 2 CPU, 10 CUDA)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per row; the best counts (default 3)")
    parser.add_argument("--modes", nargs="+", default=None,
                        help="rows: old eager graph compile compile+graph (default: old eager on the CPU, all on CUDA)")
    parser.add_argument("--models", type=int, default=0, help="add a row of K runs in lockstep (CUDA streams)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads on the CPU (default 1)")
    args = parser.parse_args()

    device = torch.device(args.device)
    cuda = device.type == "cuda"
    if cuda and not torch.cuda.is_available():
        raise SystemExit("--device cuda: CUDA is not available on this machine")
    torch.set_num_threads(args.threads)
    if cuda:
        torch.backends.cudnn.benchmark = True
    default = "shapes-fixed-gpu.toml" if cuda else "shapes-smoke.toml"
    config = Path(args.config) if args.config else ROOT / "configs" / default
    overrides = list(args.set) + ([f"train.batch_size={args.batch}"] if args.batch else [])
    cfg = load_config(config, overrides)
    steps = args.steps or (20 if cuda else 5)
    warmup = args.warmup or (10 if cuda else 2)
    warmup = steps * -(-warmup // steps)  # whole timed runs, so every run ends on a read step (log_every = steps)
    modes = args.modes or (["old", "eager", "graph", "compile", "compile+graph"] if cuda else ["old", "eager"])
    data = build_data(cfg)  # uint8 images on the CPU; the current step moves them to the device once
    resident = data.to(device)
    schedule: Schedule = build_schedule(cfg)
    options = {**trainer_options(cfg), "steps": 10**9, "log_every": steps, "device": device}

    def trainer(mode: str, seed_offset: int = 0) -> Trainer:
        model = build_model(cfg, tuple(data.shape))
        opts = {**options, "seed": options["seed"] + seed_offset}
        if mode == "old":
            opts.update(cuda_graph=False, compile=False)
            return OldStyleStep(model, resident, schedule, loss_fn=build_loss(cfg), cpu_data=data,
                                loss_name=cfg["loss"]["name"], **opts)
        opts.update(cuda_graph="graph" in mode, compile=mode.startswith("compile"))
        return Trainer(model, resident, schedule, loss_fn=build_loss(cfg), **opts)

    rows = []
    for mode in modes:
        if mode not in ("old", "eager", "graph", "compile", "compile+graph"):
            raise SystemExit(f"--modes: unknown mode {mode!r}")
        if not cuda and "graph" in mode:
            raise SystemExit(f"--modes: {mode!r} needs --device cuda")
        row = Row("old-style" if mode == "old" else mode, [trainer(mode)], device)
        row.warm(warmup)
        rows.append(row)
    for _ in range(args.repeats):  # alternate the rows: a shared machine's load hits them alike
        for row in rows:
            row.steps(steps)
    if args.models > 1:
        best = min((r for r in rows if r.label != "old-style"), key=lambda r: min(r.times))
        mode = {"eager": "eager", "cuda_graph": "graph"}.get(best.label, best.label)
        lock = Row(f"{best.label} x{args.models} lockstep", [trainer(mode, k) for k in range(args.models)], device)
        lock.warm(warmup)
        for _ in range(args.repeats):
            lock.steps(steps)
        rows.append(lock)

    batch = cfg["train"]["batch_size"]
    flops_img = None
    if cfg["model"]["kind"] == "unet":
        from vsmlab.nets import unet_flops

        flops_img = 3 * unet_flops(build_model(cfg, tuple(data.shape)), data.shape[-1])
    peak, peak_label = matmul_rate(device)
    name = torch.cuda.get_device_name(device) if cuda else f"{platform.processor() or platform.machine()}, " \
        f"{torch.get_num_threads()} thread(s)"
    set_text = "".join(f" --set {o}" for o in overrides)
    print(f"device: {name}; torch {torch.__version__}; config {config.name}{set_text}; batch {batch}; "
          f"loss {cfg['loss']['name']}; amp {cfg['train']['amp']}; channels_last {cfg['train']['channels_last']}")
    print(f"timing: {warmup} warm-up steps per row, best of {args.repeats} runs of {steps} steps (rows alternate); "
          f"matmul rate ({peak_label}) {peak / 1e12:.3f} TFLOP/s"
          + (f"; model {flops_img / 1e9:.4f} GFLOP per image per training step (3 x forward)" if flops_img else ""))
    header = f"{'mode':<26} {'ms/step':>9} {'(median)':>9} {'img/s':>10} {'vs old':>7}"
    if flops_img:
        header += f" {'TFLOP/s':>8} {'MFU':>7}"
    if cuda:
        header += f" {'peak MiB':>9}"
    print(header)
    old_ms = None
    for row in rows:
        k = len(row.trainers)
        best_ms, median_ms = 1e3 * min(row.times) / steps, 1e3 * statistics.median(row.times) / steps
        rate = k * batch * 1e3 / best_ms
        if row.label == "old-style":
            old_ms = best_ms
        line = f"{row.label:<26} {best_ms:>9.2f} {median_ms:>9.2f} {rate:>10.1f} "
        line += f"{old_ms / best_ms * k:>6.2f}x" if old_ms else f"{'':>7}"
        if flops_img:
            achieved = rate * flops_img
            line += f" {achieved / 1e12:>8.3f} {100 * achieved / peak:>6.1f}%"
        if cuda:
            line += f" {row.peak_bytes / 2**20:>9.0f}" if row.peak_bytes is not None else f" {'':>9}"
        print(line)
    if not cuda and rows[0].label == "old-style" and len(rows) > 1:
        diffs = [abs(a - b) for a, b in zip(rows[0].totals, rows[1].totals)]
        print(f"check (CPU): old-style vs eager loss at the {len(diffs)} read steps: largest |difference| "
              f"{max(diffs) if diffs else float('nan'):.3g} (the same arithmetic: 0 expected)")
    print("vs old: throughput relative to old-style (K models in lockstep: summed over the K).")


if __name__ == "__main__":
    main()
