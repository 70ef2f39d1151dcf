"""The semantic benchmarks of notebook 07 (Cards, ChessImages): models trained and sampled with the image CLI,
sample files, and the summaries the notebook prints.

**Runs.** A :class:`RunSpec` is one model: a name, a TOML config and ``--set`` overrides. It is trained by
exactly ``python -m vsmlab train CONFIG --out DIR --set ...`` (:func:`train_command`) into
``runs_root/<name>-<hash>`` where the hash covers the resolved config (:func:`run_folder`), so changing a
config trains a new model and re-running a notebook reuses the old one. :func:`ensure_runs` trains the
missing ones: ``workers`` subprocesses with one torch thread each, or (``workers=0``) in this process
through the library function the command calls (:func:`vsmlab.diffusion.runs.train_run`). Samples come
from ``python -m vsmlab sample CKPT --n N --steps K --seed S --batch-size B --device cpu --out FILE.npz``
(:func:`sample_command`, :func:`ensure_samples`; in this process
:func:`vsmlab.diffusion.sample_sets.sample_checkpoint`), stored beside the checkpoint (or in a folder the
caller names) and keyed by (n, steps, seed, batch size).

**Shipped checkpoints** (``checkpoints/cards64/<method>-seed<k>/``, notebook 06's rule): read by explicit path.
:func:`check_shipped` raises CheckpointError naming the file and every key where its config differs from the
spec's (so a shipped model is never used for a config it was not trained with); :func:`shipped_sample_dir` is
the cache folder for its samples, keyed by the file's SHA-256 (a replaced file is sampled afresh).

**Files made elsewhere** (the full profile's GPU samples): :func:`require_files` stops with one message that
names every missing file and the command that makes it.

**Summaries.** :func:`rule_rates`: share of images that violate each rule, with Wilson intervals (an image
can violate several). :func:`compare_rates`: difference of two independent rates (method A - method B)
with Newcombe's hybrid score interval (method 10 of Newcombe 1998) and the smallest difference a
two-sided 5% two-proportion z-test detects with 80% power at these sample sizes::

    mde = (z_{0.975} + z_{0.8}) * sqrt(p (1 - p) (1/n_a + 1/n_b)),   p = pooled rate (p = 0.5 / n when 0 or 1
    would make it vanish: the detectable difference is then bounded by the counts, see the docstring)

:func:`card_coverage`: how many of the 40 cards and how many distinct sets appear among valid samples.
:func:`piece_counts`: pieces per FEN placement (per symbol and in total).
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from vsmlab.core.rates import Rate, wilson_interval
from vsmlab.diffusion import checkpoints as ck
from vsmlab.diffusion.config import format_config, load_config
from vsmlab.diffusion.runs import train_run
from vsmlab.diffusion.sample_sets import sample_checkpoint
from vsmlab.lab.jobs import Job, check_workers, run_jobs
from vsmlab.lab.shapes_study import file_sha256

__all__ = [
    "RunSpec", "run_folder", "train_command", "ensure_runs", "sample_command", "sample_path", "ensure_samples",
    "check_shipped", "shipped_sample_dir",
    "load_sample_images", "require_files", "rule_rates", "RateDifference", "compare_rates", "card_coverage",
    "piece_counts",
]

_Z975, _Z80 = 1.959963984540054, 0.8416212335729143


@dataclass(frozen=True)
class RunSpec:
    """One model: ``name`` (no '/'), ``config`` (TOML path, relative to the project root given to the
    functions below) and ``overrides`` (``section.key=value`` strings, as ``vsmlab train --set``)."""

    name: str
    config: str
    overrides: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name or "/" in self.name:
            raise ValueError(f"name: expected a non-empty name without '/', got {self.name!r}")
        object.__setattr__(self, "overrides", tuple(self.overrides))


def run_folder(runs_root: str | os.PathLike, spec: RunSpec, root: str | os.PathLike = ".") -> Path:
    """``runs_root/<name>-<12 hex>``: the hash is SHA-256 of the resolved config (every key, TOML text)."""
    cfg = load_config(Path(root) / spec.config, list(spec.overrides))
    digest = hashlib.sha256(format_config(cfg, comments=False).encode()).hexdigest()[:12]
    return Path(runs_root) / f"{spec.name}-{digest}"


def train_command(spec: RunSpec, out: str | os.PathLike) -> list[str]:
    """The exact command line that trains ``spec`` into ``out``."""
    cmd = [sys.executable, "-m", "vsmlab", "train", spec.config, "--out", str(out), "--device", "cpu", "--quiet"]
    for o in spec.overrides:
        cmd += ["--set", o]
    return cmd


def ensure_runs(specs: Sequence[RunSpec], runs_root: str | os.PathLike, root: str | os.PathLike = ".",
                workers: int = 2) -> dict[str, Path]:
    """Train every spec whose ``latest.pt`` is missing; returns {name: latest.pt}. A folder holding a
    partial run (step files, no latest.pt) is resumed with ``--resume``."""
    check_workers(workers)
    out, jobs = {}, []
    for spec in specs:
        folder = run_folder(runs_root, spec, root)
        out[spec.name] = ck.latest_path(folder)
        if not out[spec.name].exists():
            cmd = train_command(spec, folder)
            resume = bool(ck.step_checkpoints(folder))
            if resume:
                cmd.append("--resume")
            call = functools.partial(train_run, spec.config, folder, overrides=spec.overrides, device="cpu",
                                     resume=resume, log=None)
            jobs.append(Job(f"vsmlab train {spec.name}", cmd, call))
    run_jobs(jobs, root, workers)
    return out


def sample_path(checkpoint: str | os.PathLike, n: int, steps: int, seed: int, batch_size: int,
                out_dir: str | os.PathLike | None = None, variance_frac: float | None = None) -> Path:
    """Where :func:`ensure_samples` keeps the samples of ``checkpoint``: in ``out_dir``, or beside it (a set with
    Sigma forced by ``variance_frac`` f ends in ``-frac<f>``)."""
    folder = Path(checkpoint).parent if out_dir is None else Path(out_dir)
    frac = "" if variance_frac is None else f"-frac{float(variance_frac):g}"
    return folder / f"samples-{Path(checkpoint).stem}-n{n}-steps{steps}-seed{seed}-b{batch_size}-clip{frac}.npz"


def sample_command(checkpoint: str | os.PathLike, out: str | os.PathLike, n: int, steps: int, seed: int,
                   batch_size: int, variance_frac: float | None = None) -> list[str]:
    """The exact ``vsmlab sample`` command line (DDPM with the checkpoint's variance, or Sigma forced by
    ``variance_frac``; respaced to ``steps``, x0_hat clipped to [-1, 1] as improved DDPM's image sampler does)."""
    frac = [] if variance_frac is None else ["--variance-frac", f"{float(variance_frac):g}"]
    return [sys.executable, "-m", "vsmlab", "sample", str(checkpoint), "--n", str(n), "--steps", str(steps),
            "--seed", str(seed), "--batch-size", str(batch_size), "--sampler", "ddpm", *frac, "--clip-x0",
            "--device", "cpu", "--out", str(out), "--quiet"]


def ensure_samples(checkpoints: dict[str, Path], n: int, steps: int, seed: int, batch_size: int,
                   root: str | os.PathLike = ".", workers: int = 2,
                   out_dirs: dict[str, Path] | None = None, variance_frac: float | None = None) -> dict[str, Path]:
    """Sample every checkpoint whose sample file is missing; returns {name: npz path}. out_dirs: {name: folder}
    for the sample files (default: beside each checkpoint; a shipped checkpoint's go to the cache instead).
    variance_frac: f in [0, 1] forces Sigma_t of learned-variance checkpoints (same noise as without it)."""
    check_workers(workers)
    out, jobs = {}, []
    for name, ckpt in checkpoints.items():
        out[name] = sample_path(ckpt, n, steps, seed, batch_size, (out_dirs or {}).get(name), variance_frac)
        if not out[name].exists():
            out[name].parent.mkdir(parents=True, exist_ok=True)
            call = functools.partial(sample_checkpoint, ckpt, out[name], n=n, steps=steps, seed=seed, batch_size=batch_size,
                                     sampler="ddpm", clip_x0=True, device="cpu", variance_frac=variance_frac)
            jobs.append(Job(f"vsmlab sample {name}", sample_command(ckpt, out[name], n, steps, seed, batch_size,
                                                                      variance_frac), call))
    run_jobs(jobs, root, workers)
    return out


def check_shipped(path: str | os.PathLike, spec: RunSpec, root: str | os.PathLike = ".",
                  image_size: int | None = None) -> Path:
    """``path`` if it is a checkpoint trained with ``spec``'s resolved config (up to the keys a resumed run may
    change, :data:`vsmlab.diffusion.checkpoints.RESUMABLE_KEYS`) and, when given, for ``image_size``;
    FileNotFoundError or CheckpointError naming the file otherwise."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"shipped checkpoint {str(path)!r} does not exist")
    payload = ck.load_checkpoint(path, map_location="cpu")
    ck.check_config_matches(path, payload["config"], load_config(Path(root) / spec.config, list(spec.overrides)))
    size = payload["model_config"].get("image_size")
    if image_size is not None and size != image_size:
        raise ck.CheckpointError(f"checkpoint {str(path)!r}: image size {size}, expected {image_size}")
    return path


def shipped_sample_dir(cache_root: str | os.PathLike, path: str | os.PathLike) -> Path:
    """``cache_root/shipped-<parent folder>-<12 hex of the file's SHA-256>``: where samples of a shipped
    checkpoint are cached (never inside ``checkpoints/``)."""
    return Path(cache_root) / f"shipped-{Path(path).parent.name}-{Path(path).stem}-{file_sha256(path)[:12]}"


def load_sample_images(path: str | os.PathLike) -> tuple[torch.Tensor, dict]:
    """Images of a ``vsmlab sample`` file as uint8 ``[N, C, H, W]`` and its metadata (dict)."""
    path = Path(path)
    with np.load(path) as z:
        if "images" not in z.files:
            raise ValueError(f"{path}: expected an 'images' array (a UNet run's `vsmlab sample` output), "
                             f"found {sorted(z.files)}")
        images = torch.from_numpy(np.array(z["images"]))
        meta = json.loads(str(z["metadata"])) if "metadata" in z.files else {}
    if images.dtype != torch.uint8 or images.dim() not in (3, 4):
        raise ValueError(f"{path}: images must be uint8 [N, H, W] or [N, H, W, 3], got {images.dtype} "
                         f"{list(images.shape)}")
    images = images.unsqueeze(1) if images.dim() == 3 else images.permute(0, 3, 1, 2).contiguous()
    return images, meta


def require_files(paths: dict[str, Path], how: dict[str, str] | None = None) -> None:
    """FileNotFoundError naming every missing file (and the command that makes it, from ``how``)."""
    missing = [name for name, p in paths.items() if not Path(p).is_file()]
    if missing:
        lines = [f"  {paths[m]}" + (f"\n      made by: {how[m]}" if how and m in how else "") for m in missing]
        raise FileNotFoundError(f"{len(missing)} of {len(paths)} sample files are missing:\n" + "\n".join(lines))


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
