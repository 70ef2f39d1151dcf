"""The Cards / ChessImages study of notebook 07: its methods, profiles, models and sample files, and the summaries
it prints.

    SEM = SemanticStudy.open(profile, cfg, root, seed, samples_dir)   # cfg: PROFILES[profile]

**Methods**: ``fixed``, ``rho0``, ``vsm`` (rho = 0.1) and, on the CPU Cards arm, ``vsm10`` (the VSM config with
``loss.rho=10.0``). The models come from :class:`vsmlab.lab.study.Study` (one folder scheme, one rule: shipped
``checkpoints/cards64/`` and ``checkpoints/chess128/`` in the default profile, trained into the cache otherwise),
their samples from :mod:`vsmlab.lab.sample_store` (``vsmlab sample`` files; a shipped checkpoint's in a cache folder
keyed by its bytes). In the ``full`` profile every set comes from the GPU windows of ``benchmarks/gpu_window.py
--bench cards`` and ``--bench chess`` under ``samples_dir`` (default ``runs/full/``: ``cards128/<run-id>/``,
``chess128/<run-id>/``, read by :mod:`vsmlab.lab.full_runs`); the sets a window does not draw (forced Sigma, fresh
sampling seeds, other sampling steps) are named as measured in the default profile instead.

**Summaries.** :func:`rule_rates`: share of images that violate each rule, with Wilson intervals (an image can
violate several). :func:`compare_rates`: difference of two independent rates (method A - method B) with Newcombe's
hybrid score interval (method 10 of Newcombe 1998) and the smallest difference a two-sided 5% two-proportion
z-test detects with 80% power at these sample sizes::

    mde = (z_{0.975} + z_{0.8}) * sqrt(p (1 - p) (1/n_a + 1/n_b)),   p = pooled rate (p = 0.5 / n when 0 or 1
    would make it vanish: the detectable difference is then bounded by the counts, see the docstring)

:func:`card_coverage`: how many of the 40 cards and how many distinct sets appear among valid samples.
:func:`piece_counts`: pieces per FEN placement (per symbol and in total).
"""

from __future__ import annotations

import json
import math
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Hashable, Sequence

import numpy as np
import torch

from vsmlab.analysis.stats import PairedDifference
from vsmlab.core.rates import Rate, mean_ci, wilson_interval
from vsmlab.data import chessboards as CB
from vsmlab.diffusion.checkpoints import load_checkpoint
from vsmlab.lab.cache import cache_dir
from vsmlab.lab.full_runs import ModelRun, describe_run, load_summary, pick_models, run_folders
from vsmlab.lab.plotting import PALETTE
from vsmlab.lab.sample_store import ensure_samples, sample_command, shipped_sample_dir
from vsmlab.lab.study import Model, Study

__all__ = ["METHODS", "LABELS", "COLOURS", "PROFILES", "SemanticStudy", "rule_rates", "RateDifference",
           "compare_rates", "card_coverage", "piece_counts", "readable_share", "pieces_read", "paired_text",
           "chess_readings", "chess_report"]

METHODS = ("fixed", "rho0", "vsm")  # the three arms of both benchmarks (and of the GPU run)
CARDS_CPU = (*METHODS, "vsm10")  # CPU Cards adds VSM at 100x the released weight, as notebook 06 does for Shapes
CHESS_CPU = ("rho0", "vsm")  # the CPU chess pilot: VSM and its baseline only, two runs on two cores
LABELS = {"fixed": "fixed variance", "rho0": "learned var, rho=0", "vsm": "VSM rho=0.1", "vsm10": "VSM rho=10"}
COLOURS = {"fixed": PALETTE["baseline"], "rho0": PALETTE["learned"], "vsm": PALETTE["vsm"], "vsm10": "#67a9cf"}
_LEARN = ("model.learn_variance=true",)
_SMOKE = {"fixed": (), "rho0": (*_LEARN, "loss.name=hybrid"), "vsm": (*_LEARN, "loss.name=vsm", "loss.rho=0.1"),
          "vsm10": (*_LEARN, "loss.name=vsm", "loss.rho=10.0")}
_CPU = {m: (f"configs/cards-{'vsm' if m == 'vsm10' else m}-cpu.toml", ("loss.rho=10.0",) if m == "vsm10" else ())
        for m in CARDS_CPU}
#: per profile: the calibration sizes, the models ({method: (config, overrides)}) and the sampling designs
PROFILES: dict[str, dict[str, Any]] = {
    "smoke": dict(
        cards_sizes=[(64, False)], cards_real=48, cards_per_kind=12, chess_positions=200, chess_real=16,
        chess_per_kind=8, chess_sizes=[128],
        cards_models={m: ("configs/cards-smoke.toml", (*_SMOKE[m], "train.save_every=2")) for m in CARDS_CPU},
        step_sweep=[2], sweep=dict(n=4, steps=5, batch_size=4), sampling_steps=[3, 5],
        chess_models={m: ("configs/chess-smoke.toml", _SMOKE[m]) for m in METHODS},
        sample=dict(n=8, steps=5, batch_size=8), chess_sample=dict(n=4, steps=3, batch_size=4), workers=0,
        further_seeds=dict(seeds=[1], methods=["rho0", "vsm", "vsm10"])),
    "default": dict(
        cards_sizes=[(64, False), (128, True)], cards_real=2000, cards_per_kind=300, chess_positions=5000,
        chess_real=2000, chess_per_kind=200, chess_sizes=[256, 128],
        cards_models=_CPU, chess_models={m: (f"configs/chess-{m}-cpu.toml", ()) for m in CHESS_CPU},
        # chess: batches of 8 boards (a 128-px UNet runs 1.5-2x faster per board on one core than in batches of 32-50:
        # benchmarks/bench_sample_batch.py) and 64 boards per model
        chess_sweep=dict(steps=[1500, 3000], n=8, steps_ddpm=50, batch_size=8),  # the shipped intermediate checkpoints
        sample=dict(n=100, steps=50, batch_size=50), chess_sample=dict(n=64, steps=50, batch_size=8), workers=2,
        chess_ceiling_n=32,  # boards per forced-Sigma chess set (4 whole batches of 8)
        step_sweep=[1000, 4000], sweep=dict(n=32, steps=50, batch_size=32), sampling_steps=[50, 250],
        further_seeds=dict(seeds=[1, 2], methods=["rho0", "vsm", "vsm10"])),
    "full": dict(
        cards_sizes=[(64, False), (128, True)], cards_real=20000, cards_per_kind=1000, chess_positions=20000,
        chess_real=20000, chess_per_kind=1000, chess_sizes=[256, 128],
        # methods, seeds, sampler and sweep steps come from the GPU windows under runs_dir (samples_dir overrides it)
        cards_models={m: (f"configs/cards-{m}-gpu.toml", ()) for m in METHODS},
        chess_models={m: (f"configs/chess-{m}-gpu.toml", ()) for m in METHODS},
        sample=None, chess_sample=None, workers=0, step_sweep=[], sweep=None, further_seeds=None, runs_dir="runs/full",
        benchmarks={"cards": "cards128", "chess": "chess128"}),
}
_SHIPPED = {"cards": ("cards64", 64), "chess": ("chess128", 128)}
_FULL_RUN = "benchmarks/gpu_window.py"
_FULL_HOW = (f"here `python {_FULL_RUN} prepare`; on a GPU machine (carrying build/pydeps and build/gpu_window) "
             f"`PYTHONPATH=. python3 {_FULL_RUN} run --bench {{bench}} --out $OUT`; here `python {_FULL_RUN} unpack OUT` "
             "(docs/gpu.md)")


def _window_models(base: Path, benchmark: str) -> dict[tuple[str, int], ModelRun]:
    """{(method, seed): ModelRun} of the complete models of the GPU windows under ``base/benchmark`` that notebook 07
    reads (its methods, the oldest run of a (method, seed) first); prints each window used and every model left out.
    FileNotFoundError when no seed-0 model is complete (the notebook's primary sets)."""
    runs = run_folders(benchmark, base)
    chosen, left = pick_models(benchmark, base, lambda m: None if m.method in METHODS else "not one of notebook 07's methods")
    if left:
        print(f"{benchmark}: not used: " + "; ".join(left))
    if not any(k == 0 for _, k in chosen):
        raise FileNotFoundError(f"full profile: no complete seed-0 model of {benchmark} under {base / benchmark} "
                                f"(runs: {[r.name for r in runs] or 'none'}); make one: "
                                + _FULL_HOW.format(bench=benchmark.rstrip("0123456789")))
    for run in sorted({m.run_dir for m in chosen.values()}):
        print(describe_run(load_summary(run), sorted(m.name for m in chosen.values() if m.run_dir == run)))
    return chosen


def _label(key: Hashable) -> str:
    """A job name for a key of a sample request: (method, seed) -> "method@seed"."""
    return "@".join(str(x) for x in key) if isinstance(key, tuple) else str(key)


@dataclass
class SemanticStudy:
    """Notebook 07's models and sample files under one profile (build it with :meth:`open`).

    methods / chess_methods: the Cards and chess arms of this profile; studies: {"cards": Study, "chess": Study};
    full: (full profile, else None) {"cards" | "chess": {(method, seed): ModelRun}}, the GPU windows' complete models
    (the oldest run of a (method, seed) wins); full_dir: the folder of the runs (``runs/full``)."""

    profile: str
    cfg: dict[str, Any]
    root: Path
    seed: int
    methods: tuple[str, ...]
    chess_methods: tuple[str, ...]
    studies: dict[str, Study]
    full: dict[str, dict[tuple[str, int], ModelRun]] | None = None
    full_dir: Path | None = None
    runs: Path = field(default_factory=lambda: cache_dir() / "runs07")

    @classmethod
    def open(cls, profile: str, cfg: dict[str, Any], root: str | os.PathLike, seed: int = 0,
             samples_dir: str | os.PathLike = "", no_cache: bool | None = None) -> "SemanticStudy":
        """The study of ``profile`` (``cfg``: its PROFILES entry; the full profile sets ``further_seeds`` from the GPU
        windows, ``samples_dir``: their folder instead of ``cfg["runs_dir"]``). no_cache (None: reads
        ``$VSMLAB_NO_CACHE``): ignore the shipped checkpoints and train here."""
        root = Path(root)
        if no_cache is None:
            no_cache = os.environ.get("VSMLAB_NO_CACHE", "").lower() in ("1", "true", "yes")
        methods, chess_methods = tuple(cfg["cards_models"]), tuple(cfg["chess_models"])
        full, full_dir = None, None
        if profile == "full":  # what the GPU windows trained, how far, and what they drew
            full_dir = Path(samples_dir or cfg["runs_dir"])
            full_dir = full_dir if full_dir.is_absolute() else root / full_dir
            full = {bench: _window_models(full_dir, cfg["benchmarks"][bench]) for bench in ("cards", "chess")}
            methods = tuple(m for m in methods if (m, 0) in full["cards"])
            chess_methods = tuple(m for m in chess_methods if (m, 0) in full["chess"])
            further = sorted({k for (m, k) in full["cards"] if k != 0 and m in methods})
            cfg["further_seeds"] = dict(seeds=further, methods=list(methods))
            print(f"Cards arms {list(methods)} (seed 0, further seeds {further or 'none'}); chess arms {list(chess_methods)}")
        runs = cache_dir() / "runs07"
        studies = {bench: Study(root, runs / bench, root / "checkpoints" / _SHIPPED[bench][0],
                                use_shipped=profile == "default" and not no_cache, image_size=_SHIPPED[bench][1],
                                workers=cfg["workers"])
                   for bench in ("cards", "chess")}
        return cls(profile, cfg, root, seed, methods, chess_methods, studies, full, full_dir, runs)

    # ------------------------------------------------------------------------------------------------ models
    def model(self, bench: str, method: str, k: int = 0) -> Model:
        """The model of ``method`` and training seed ``k`` on ``bench`` ("cards" | "chess")."""
        config, overrides = self.cfg[f"{bench}_models"][method]
        return Model(method, k, config, tuple(overrides))

    def checkpoints(self, bench: str, keys: Sequence[tuple[str, int]]) -> dict[tuple[str, int], Path]:
        """{(method, seed): checkpoint} by the study rule (shipped and config-checked, or trained here); {} in the
        full profile, which brings back samples only. Prints where they come from."""
        if self.full is not None:
            return {}
        study = self.studies[bench]
        models = {key: self.model(bench, *key) for key in keys}
        t0 = time.perf_counter()
        got = study.ensure(list(models.values()))
        out = {key: got[m] for key, m in models.items()}
        if all(study.source(m) == "shipped" for m in models.values()):
            times = study.training_times()
            print(f"shipped checkpoints ({study.shipped.relative_to(self.root)}/, made by the commands in its "
                  "manifest.json): " + ", ".join(f"{m} seed {k} step {load_checkpoint(p)['step']}, trained in "
                                                 f"{times[f'{m}-seed{k}']:.0f} s" for (m, k), p in out.items())
                  + " (one thread each, two or three runs at a time on 2 cores)")
        else:
            for (m, k), mod in models.items():
                print(f"{m} seed {k}: OMP_NUM_THREADS=1 "
                      + " ".join(study.train_command(mod, study.folder(mod))[1:]).replace(str(study.runs), "$RUNS"))
            print(f"trained or reused in {time.perf_counter() - t0:.0f} s")
        return out

    def log_path(self, bench: str, method: str, ckpts: dict[tuple[str, int], Path]) -> Path:
        """The training log of the seed-0 model: beside its checkpoint, or in its GPU window's folder (full)."""
        if self.full is not None:
            run = self.full[bench][(method, 0)]
            return run.run_dir / "models" / run.name / "log.jsonl"
        return ckpts[(method, 0)].parent / "log.jsonl"

    def trained_steps(self, bench: str, method: str) -> int | None:
        """Full profile: the steps the seed-0 model of ``method`` trained on the GPU (None in other profiles)."""
        return None if self.full is None else self.full[bench][(method, 0)].step

    def training_log(self, bench: str, method: str, ckpts: dict[tuple[str, int], Path]) -> list[dict[str, Any]]:
        """The records of the seed-0 model's log.jsonl (:meth:`log_path`); [] with a printed line when there is none."""
        path = self.log_path(bench, method, ckpts)
        recs = ([json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.is_file() else [])
        if not recs:
            print(f"{bench} {method}: no logged step at {path}")
        return recs

    # ------------------------------------------------------------------------------------------------ samples
    def _out_dirs(self, ckpts: dict[str, Path]) -> dict[str, Path] | None:
        """Shipped checkpoints are sampled into the cache (keyed by their SHA-256), never into checkpoints/."""
        shipped = [s.shipped for s in self.studies.values()]
        return {name: shipped_sample_dir(self.runs, p) for name, p in ckpts.items()
                if any(p.is_relative_to(f) for f in shipped)} or None

    def sample_files(self, ckpts: dict[Hashable, Path], n: int, steps: int, seed: int, batch_size: int,
                     variance_frac: float | None = None) -> dict[Hashable, Path]:
        """{key: npz} of ``vsmlab sample`` with these options for every checkpoint (drawn when missing, cached)."""
        named = {_label(key): p for key, p in ckpts.items()}
        files = ensure_samples(named, n, steps, seed, batch_size, self.root, workers=self.cfg["workers"],
                               out_dirs=self._out_dirs(named), variance_frac=variance_frac)
        return {key: files[_label(key)] for key in ckpts}

    def primary_files(self, bench: str, keys: Sequence[tuple[str, int]],
                      ckpts: dict[tuple[str, int], Path]) -> dict[tuple[str, int], Path]:
        """{(method, seed): npz} of the primary sampler (the profile's ``sample`` / ``chess_sample``) for ``keys``: drawn
        here from ``ckpts``, or (full) the primary sets of the GPU windows' models (every seed-0 model must be there,
        :meth:`open` checked it; a further seed no window completed is named and left out)."""
        if self.full is not None:
            paths = {}
            for key in keys:
                run = self.full[bench].get(key)
                if run is None:
                    print(f"{bench} {key[0]} seed {key[1]}: no complete model of it in the GPU windows under {self.full_dir}")
                else:
                    paths[key] = run.samples[run.primary[0]]
            return paths
        s = self.cfg["sample" if bench == "cards" else "chess_sample"]
        t0 = time.perf_counter()
        out = self.sample_files({key: ckpts[key] for key in keys}, s["n"], s["steps"], self.seed, s["batch_size"])
        print(f"{bench}: {len(out)} sample sets in {time.perf_counter() - t0:.0f} s (0 when cached); command: "
              + " ".join(sample_command("$CKPT", "$OUT.npz", s["n"], s["steps"], self.seed, s["batch_size"])[1:]))
        return out

    def cpu_only(self, what: str) -> bool:
        """True on a CPU profile; in the full profile prints that the GPU run did not draw ``what`` and returns False."""
        if self.full is None:
            return True
        print(f"full profile: the GPU run drew no {what}; they are measured in the default profile")
        return False

    def gpu_sweep_files(self, bench: str) -> dict[tuple[str, int], Path]:
        """Full profile: {(method, step): npz} of the seed-0 sets the GPU window drew from EMA snapshots part-way
        through training (the same sampler as the primary sets; {} otherwise)."""
        if self.full is None:
            return {}
        methods = self.methods if bench == "cards" else self.chess_methods
        found = {}
        for m in methods:
            run = self.full[bench][(m, 0)]
            for name, path in run.samples.items():
                step = re.search(r"_step(\d+)", name)
                if step and name not in run.primary:
                    found[(m, int(step.group(1)))] = path
        steps = sorted({st for _, st in found})
        print(f"{bench} training-step sweep: the GPU window drew {len(found)} set(s) at step(s) {steps or '-'}")
        return dict(sorted(found.items(), key=lambda kv: (methods.index(kv[0][0]), kv[0][1])))

    def chess_templates(self, size: int) -> CB.ChessTemplates | None:
        """Full profile: the chess tiles the GPU machine rendered its training boards with (it prints how far they are
        from this machine's); None otherwise (the validator reads against this machine's own tiles)."""
        runs = {} if self.full is None else self.full["chess"]
        path = next(iter(runs.values())).run_dir / f"chess_tiles_{size}.npy" if runs else None
        if path is None or not path.is_file():
            return None
        tiles = np.load(path)
        diff = np.abs(tiles.astype(np.int16) - CB.lab_tiles(size).astype(np.int16))
        print(f"chess tiles of the GPU machine: max |difference| from this machine's {int(diff.max())} of 255, "
              f"pixels that differ {100 * float((diff > 0).mean()):.3f}%; samples are read against the GPU machine's")
        return CB.ChessTemplates(tiles, "gpu machine")

_Z975, _Z80 = 1.959963984540054, 0.8416212335729143


def rule_rates(categories: Sequence[Sequence[str]], rules: Sequence[str]) -> dict[str, Rate]:
    """For each rule: the share of images whose categories contain it, with its Wilson interval; plus
    "any" (images with at least one rule violated)."""
    n = len(categories)
    if n == 0:
        raise ValueError("categories: expected at least one image")
    unknown = sorted({c for cats in categories for c in cats} - set(rules))
    if unknown:
        raise ValueError(f"categories: rules {unknown} are not in rules={list(rules)}")
    out = {r: wilson_interval(sum(r in cats for cats in categories), n) for r in rules}
    out["any"] = wilson_interval(sum(bool(cats) for cats in categories), n)
    return out


@dataclass(frozen=True)
class RateDifference:
    """``difference`` = rate_a - rate_b with its 95% Newcombe interval [low, high] and ``mde``, the smallest
    |difference| a two-sided 5% z-test detects with 80% power at these sizes and the pooled rate."""

    rate_a: float
    rate_b: float
    difference: float
    low: float
    high: float
    mde: float

    def __str__(self) -> str:
        return (f"{100 * self.difference:+.1f} pp [{100 * self.low:+.1f}, {100 * self.high:+.1f}] "
                f"(detectable: {100 * self.mde:.1f} pp)")


def compare_rates(count_a: int, n_a: int, count_b: int, n_b: int) -> RateDifference:
    """Difference of two independent binomial rates with Newcombe's hybrid score interval:
    low = d - sqrt((p_a - l_a)^2 + (u_b - p_b)^2), high = d + sqrt((u_a - p_a)^2 + (p_b - l_b)^2) with
    (l, u) each rate's Wilson interval; and the 80%-power MDE of the module docstring (the pooled rate is
    clamped to [0.5 / n, 1 - 0.5 / n], n = n_a + n_b, so an all-0 or all-1 pair still gets a finite MDE)."""
    a, b = wilson_interval(count_a, n_a), wilson_interval(count_b, n_b)
    d = a.rate - b.rate
    low = d - math.sqrt((a.rate - a.low) ** 2 + (b.high - b.rate) ** 2)
    high = d + math.sqrt((a.high - a.rate) ** 2 + (b.rate - b.low) ** 2)
    n = n_a + n_b
    p = min(max((count_a + count_b) / n, 0.5 / n), 1 - 0.5 / n)
    mde = (_Z975 + _Z80) * math.sqrt(p * (1 - p) * (1 / n_a + 1 / n_b))
    return RateDifference(a.rate, b.rate, d, max(-1.0, low), min(1.0, high), mde)


def card_coverage(cards: torch.Tensor, valid: torch.Tensor, n_cards: int = 40) -> dict[str, object]:
    """Cards read in the valid images: ``per_card`` counts int64 ``[n_cards]`` (over quadrants),
    ``distinct_cards``, ``distinct_sets`` (unordered sets of 4) and ``n_valid``. cards: ``[N, 4]`` indices."""
    cards = torch.as_tensor(cards, dtype=torch.int64)
    valid = torch.as_tensor(valid, dtype=torch.bool)
    if cards.dim() != 2 or cards.shape[1] != 4 or valid.shape != (cards.shape[0],):
        raise ValueError(f"cards, valid: expected [N, 4] and [N], got {list(cards.shape)} and {list(valid.shape)}")
    kept = cards[valid]
    per_card = torch.bincount(kept.flatten(), minlength=n_cards)
    sets = {tuple(sorted(row)) for row in kept.tolist()}
    return {"per_card": per_card, "distinct_cards": int((per_card > 0).sum()), "distinct_sets": len(sets),
            "n_valid": int(valid.sum())}


def piece_counts(placements: Sequence[str]) -> dict[str, np.ndarray]:
    """Pieces per placement: ``total`` int64 ``[N]`` and one ``[N]`` array per FEN symbol (P N B R Q K p n b r q k)."""
    symbols = "PNBRQKpnbrqk"
    counts = np.zeros((len(placements), len(symbols)), dtype=np.int64)
    for i, fen in enumerate(placements):
        field_ = fen.strip().split(" ")[0]
        for j, s in enumerate(symbols):
            counts[i, j] = field_.count(s)
    out = {s: counts[:, j] for j, s in enumerate(symbols)}
    out["total"] = counts.sum(axis=1)
    return out


# ---------------------------------------------------------------------------------------------------- chess boards
def readable_share(v: CB.ChessVerdict) -> torch.Tensor:
    """[B]: the share of each board's 64 squares that match some tile within the validator's limit."""
    return v.readable.flatten(1).double().mean(1)


def pieces_read(v: CB.ChessVerdict) -> torch.Tensor:
    """[B]: squares read as a piece (best reading, readable or not)."""
    return torch.tensor([sum(ch.isalpha() for ch in p) for p in v.placements], dtype=torch.float64)


def paired_text(d: PairedDifference, digits: int = 2) -> str:
    """A paired difference of per-board shares in percentage points: mean [t-interval], detectable effect."""
    lo, hi = (f"{100 * x:+.{digits}f}" for x in d.interval)
    return (f"{100 * d.mean.mean:+.{digits}f} pp [{lo}, {hi}], detectable "
            + (f"{100 * d.mde:.{digits}f} pp" if d.mde == d.mde else "undefined (no board differs)"))


def chess_readings(images: torch.Tensor, templates: CB.ChessTemplates | None = None
                   ) -> tuple[dict[str, CB.ChessVerdict], torch.Tensor, torch.Tensor]:
    """The strict verdict (the validator) and the colour-calibrated reading (a diagnostic) of the same boards
    uint8 [B, 3, S, S], the calibrated boards and the fitted colour map [B, 3, 2] (gain, offset per channel)."""
    calibrated, gain_offset = CB.calibrate_colours(images, templates)
    return ({"strict": CB.validate_chess(images, templates), "calibrated": CB.validate_chess(calibrated, templates)},
            calibrated, gain_offset)


def chess_report(label: str, method: str, reading: str, v: CB.ChessVerdict, step: int | None,
                 data_pieces: float) -> dict[str, Any]:
    """Print one model's rates, rules and readability under one reading (``data_pieces``: the data's mean pieces per
    board, for comparison); return its table row."""
    n = len(v.placements)
    rates = rule_rates(v.categories, CB.RULES)
    valid = [p for p, h in zip(v.placements, v.hallucinated.tolist()) if not h]
    share, pieces, ci = readable_share(v), pieces_read(v), mean_ci(readable_share(v))
    occupied = torch.from_numpy(np.stack([CB.placement_to_classes(p) != 0 for p in v.placements]))
    print(f"{label:<20} {reading:<10} hallucinated {rates['any']}" + (f"; released rule "
          f"{wilson_interval(int(v.released_hallucinated.sum()), n)}" if reading == "strict" else ""))
    print(f"{'':<31} rules: " + (", ".join(f"{r} {x.count}" for r, x in rates.items() if r != "any" and x.count) or "none"))
    print(f"{'':<31} squares readable per board {100 * ci.mean:.1f}% +- {100 * ci.half:.1f} (t-interval over {n} boards; "
          f"min {100 * float(share.min()):.0f}%, max {100 * float(share.max()):.0f}%); all 64 readable: "
          f"{int((share == 1).sum())} of {n}; pieces read per board {float(pieces.mean()):.1f} (data {data_pieces:.1f}), "
          f"readable {int((v.readable & occupied).sum())} of {int(occupied.sum())}")
    if valid:
        pc = piece_counts(valid)["total"]
        print(f"{'':<31} valid boards: {len(valid)}, distinct placements {len(set(valid))}, pieces mean {pc.mean():.1f} "
              f"(data {data_pieces:.1f}), range {int(pc.min())}-{int(pc.max())}")
    return dict(method=method, reading=reading, n=n, step=step, hallucinated=rates["any"].count,
                **{f"rule_{r}": rates[r].count for r in CB.RULES}, readable_share_mean=round(ci.mean, 4),
                readable_share_half=round(ci.half, 4), all_readable=int((share == 1).sum()),
                pieces_read_mean=round(float(pieces.mean()), 2), valid=len(valid),
                median_square_rmse=round(float(v.square_rmse.median()), 4))
