"""Time per slider change of the interactive explorer (target: <= 1 s at the defaults on 2 cores).

    python benchmarks/bench_widgets.py [--repeats 7] [--threads 2]

One "slider change" = setting the temperature control of an :class:`vsmlab.lab.widgets.Explorer`, which runs
the whole callback: compute_state (sampling, metric, Lipschitz estimate, bound) + the figure rendered to
PNG + readouts. The explorer computes on 1 torch thread (``Explorer.threads``); the same callback on
``--threads`` torch threads is timed side by side. Reported: median / min / max wall time over the repeats, the median CPU time of this
process (less sensitive to other jobs on the machine), and the split between computing and plotting. The
other samplers and schedules are timed too (same repeats) so the defaults can be judged against them.
Temperatures alternate between values so no change is a no-op.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

TARGET_S = 1.0


def timed(fn, repeats: int) -> tuple[list[float], list[float]]:
    walls, cpus = [], []
    for i in range(repeats):
        w0, c0 = time.perf_counter(), time.process_time()
        fn(i)
        walls.append(time.perf_counter() - w0)
        cpus.append(time.process_time() - c0)
    return walls, cpus


def line(name: str, walls: list[float], cpus: list[float]) -> str:
    med = statistics.median(walls)
    flag = f"<= {TARGET_S:g} s" if med <= TARGET_S else f"> {TARGET_S:g} s"
    return (f"{name:<44s} median {med:6.3f} s  (min {min(walls):.3f}, max {max(walls):.3f}; "
            f"cpu {statistics.median(cpus):.3f} s)  [{flag}]")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2, help="torch threads (the lab's budget is 2 cores)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    import matplotlib

    matplotlib.use("Agg")
    from vsmlab.lab import explorer_state as S
    from vsmlab.lab import widgets as W

    temps = [2.0, 5.0, 3.0, 8.0, 1.5, 12.0, 4.0, 6.0, 2.5, 10.0]
    print(f"vsmlab explorer benchmark: torch threads {torch.get_num_threads()}, repeats {args.repeats}, "
          f"target {TARGET_S:.1f} s per slider change")
    print(f"defaults: {S.DEFAULTS}")

    t0 = time.perf_counter()
    explorer = W.Explorer()
    print(f"{'first display (imports, widgets, first plot)':<44s} {time.perf_counter() - t0:6.3f} s (once)")

    def slider(i: int) -> None:
        explorer.controls["temperature"].value = temps[i % len(temps)]
        if explorer.message.value:
            raise RuntimeError(f"update failed: {explorer.message.value}")

    walls, cpus = timed(slider, args.repeats)
    print(line("slider change at defaults (full callback)", walls, cpus))
    default_median = statistics.median(walls)
    explorer.threads = None  # side by side: the same callback with torch's own thread count
    walls_n, cpus_n = timed(slider, args.repeats)
    explorer.threads = 1
    print(line(f"  same, updates on {torch.get_num_threads()} torch threads", walls_n, cpus_n)
          + f"  ratio {statistics.median(walls_n) / default_median:.1f}x")

    states: list = []

    def compute(i: int) -> None:
        with W.torch_threads(1):
            states.append(S.compute_state(temperature=temps[i % len(temps)]))

    walls_c, cpus_c = timed(compute, args.repeats)
    print(line("  of which compute_state", walls_c, cpus_c))
    walls_p, cpus_p = timed(lambda i: S.figure_png(S.plot_state(states[i])), args.repeats)
    print(line("  of which plot + PNG", walls_p, cpus_p))

    print("other settings (compute_state on 1 thread + plot, one change each):")
    for extra in (dict(sampler="ddpm"), dict(sampler="ode"), dict(sampler="ddim", steps=1000),
                  dict(schedule="aggressive"), dict(schedule="cosine"), dict(num_modes=8, spacing=0.5, std=0.02),
                  dict(num_samples=20_000)):
        def run(i: int, extra=extra) -> None:
            with W.torch_threads(1):
                state = S.compute_state(temperature=temps[i % len(temps)], **extra)
            S.figure_png(S.plot_state(state))

        walls_o, cpus_o = timed(run, max(3, args.repeats // 2))
        print(line("  " + ", ".join(f"{k}={v}" for k, v in extra.items()), walls_o, cpus_o))

    # the trained-network explorer at its defaults, with networks as wide as the lab's largest default net
    # (untrained weights: the cost of a change does not depend on the weights)
    from vsmlab import MLP

    specs = [dict(mixture=dict(name="1d"), schedule=dict(name="linear", beta_start=1e-3, beta_end=0.2),
                  model=dict(width=128, depth=3), seed=i) for i in range(2)]
    trained = W.TrainedExplorer(specs, loader=lambda s: MLP(1, width=128, depth=3, seed=s["seed"]).eval())
    trained.model(1)  # loaded once, as from the cache

    def switch(i: int) -> None:
        trained.controls["model"].value = (i + 1) % 2
        if trained.message.value:
            raise RuntimeError(f"update failed: {trained.message.value}")

    walls_t, cpus_t = timed(switch, args.repeats)
    print(line("trained explorer: network change (128x3 MLP)", walls_t, cpus_t))

    verdict = "meets" if default_median <= TARGET_S else "MISSES"
    print(f"result: median {default_median:.3f} s per slider change at the defaults {verdict} the {TARGET_S:.1f} s target")


if __name__ == "__main__":
    main()
