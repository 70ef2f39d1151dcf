"""Benchmark: Cards and ChessImages generation speed and validator calibration, measured in one run.

    OMP_NUM_THREADS=1 python benchmarks/bench_semantic_data.py [--threads 1] [--cards 5000] [--chess 2000]
                                                               [--calibrate 20000]

1. Generation, images per second on the given threads: cards (sets + grids + PNG bytes, in memory and
   written to a temporary folder) and chess (random play + rendering + PNG bytes, in memory and written).
   Targets: >= 500 cards/s and >= 200 chess boards/s per core.
2. Calibration (``--calibrate N``, 0 to skip): the validators on N real images each: cards flagged,
   chess boards flagged, exact piece-placement recovery, boards the released white-to-move rule flags;
   constructed corruptions caught (cards: each kind; chess: second king, back-rank pawn, blurred square).
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time

import numpy as np
import torch

from vsmlab.data import cards as C
from vsmlab.data import chessboards as CB
from vsmlab.data.pngs import encode_png


class Clock:
    """Wall time and this process's CPU time (the per-core rate on a machine shared with other jobs)."""

    def __init__(self) -> None:
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def rate(self, n: int) -> str:
        wall, cpu = time.perf_counter() - self.wall, time.process_time() - self.cpu
        return f"{n / cpu:7.1f} images/s per core (CPU time), {n / wall:7.1f} images/s wall ({n} in {wall:.2f} s wall, {cpu:.2f} s CPU)"


def bench_cards(n: int) -> None:
    C.lab_faces(64, False), C.lab_faces(64, True)  # faces drawn once per process (cached): not timed
    for rgb in (False, True):
        clock = Clock()
        cards = C.choose_cards(n, seed=0)
        grids = C.assemble_grids(cards, C.lab_faces(64, rgb))
        total = sum(len(encode_png(g)) for g in grids)
        print(f"cards 128 px {'RGB ' if rgb else 'gray'} in memory:  {clock.rate(n)}, {total / n / 1024:.1f} KiB/PNG")
        with tempfile.TemporaryDirectory() as out:
            clock = Clock()
            C.write_cards(out, n, seed=0, rgb=rgb)
            print(f"cards 128 px {'RGB ' if rgb else 'gray'} write_cards: {clock.rate(n)}")


def bench_chess(n: int) -> None:
    CB.lab_tiles(256)  # tiles drawn once per process (cached): not timed
    clock = Clock()
    fens = CB.random_positions(n, seed=0)
    t_pos = time.process_time() - clock.cpu
    boards = CB.render_boards(np.stack([CB.placement_to_classes(f) for f in fens]), CB.lab_tiles(256))
    t_render = time.process_time() - clock.cpu - t_pos
    total = sum(len(encode_png(b)) for b in boards)
    t_png = time.process_time() - clock.cpu - t_pos - t_render
    print(f"chess 256 px in memory:  {clock.rate(n)}, {total / n / 1024:.1f} KiB/PNG")
    print(f"  CPU per board: positions {1e3 * t_pos / n:.2f} ms, render {1e3 * t_render / n:.2f} ms, PNG {1e3 * t_png / n:.2f} ms")
    with tempfile.TemporaryDirectory() as out:
        clock = Clock()
        CB.write_chess(out, n, seed=0)
        print(f"chess 256 px write_chess: {clock.rate(n)}")


def calibrate(n: int) -> None:
    start = time.perf_counter()
    cal = C.calibrate_cards(n_real=n, n_per_kind=500, seed=0, size=128)
    print(f"\ncards ({time.perf_counter() - start:.1f} s): {cal.real_flagged}/{n} real flagged at threshold {cal.threshold}; "
          f"lowest real score {float(cal.real_scores.min()):.6f}; with pixel noise std {cal.negative_noise}: "
          f"{cal.negative_flagged}/{n} flagged, lowest {float(cal.negative_scores.min()):.4f}")
    for kind in C.CORRUPTIONS:
        s = cal.scores[kind]
        print(f"  {kind:11s} caught {cal.caught[kind]:4d}/500   worst-quadrant score median {float(s.median()):.3f}, max {float(s.max()):.3f}")
    roc = cal.roc
    best = int(torch.argmax(roc["tpr"] - roc["fpr"]))
    print(f"  ROC (noisy real vs score-based corruptions): AUC {float(roc['auc']):.4f}; best Youden threshold "
          f"{float(roc['threshold'][best]):.4f} (tpr {float(roc['tpr'][best]):.3f}, fpr {float(roc['fpr'][best]):.3f})")

    start = time.perf_counter()
    fens = CB.random_positions(n, seed=0)
    flagged = exact = released = 0
    for i in range(0, n, 500):
        chunk = fens[i : i + 500]
        images = torch.from_numpy(np.ascontiguousarray(CB.render_boards(np.stack([CB.placement_to_classes(f) for f in chunk]), CB.lab_tiles(256))))
        verdict = CB.validate_chess(images.permute(0, 3, 1, 2))
        flagged += int(verdict.hallucinated.sum())
        released += int(verdict.released_hallucinated.sum())
        exact += sum(p == f.split()[0] for p, f in zip(verdict.placements, chunk))
    print(f"\nchess ({time.perf_counter() - start:.1f} s): {flagged}/{n} real boards flagged, exact placement {exact}/{n}, "
          f"released white-to-move rule flags {released}/{n}")
    gen = torch.Generator().manual_seed(0)
    for kind in CB.CORRUPTIONS:
        images, _ = CB.corrupt_chess(fens[:500], kind, gen)
        verdict = CB.validate_chess(images)
        print(f"  {kind:14s} caught {int(verdict.hallucinated.sum())}/500")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--cards", type=int, default=5000)
    parser.add_argument("--chess", type=int, default=2000)
    parser.add_argument("--calibrate", type=int, default=20000)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {platform.processor() or platform.machine()}, {args.threads} thread(s)")
    bench_cards(args.cards)
    bench_chess(args.chess)
    if args.calibrate:
        calibrate(args.calibrate)


if __name__ == "__main__":
    main()
