"""The sample store of the image benchmarks: every sample set a notebook reads, drawn here or by a GPU run, and
every file name it is kept under.

**Drawn in this process** (:func:`sample_set`, notebook 06): :func:`vsmlab.diffusion.sample_sets.draw_samples`,
the loop behind ``vsmlab sample``: batch k (of ``batch_size``) draws with ``torch.Generator().manual_seed(seed *
1000003 + k)``, so ``vsmlab sample CKPT --seed S --batch-size B --steps 250 --device cpu`` regenerates every
sample; ``batch_seed`` / ``batch_row`` say which batch and row each sample came from. Sets are cached on disk
(:mod:`vsmlab.lab.cache`) keyed by the checkpoint's bytes (SHA-256), the sampler options and the sampling code.

**Drawn by the command line** (:func:`ensure_samples`, notebook 07): ``python -m vsmlab sample CKPT --n N
--steps K --seed S --batch-size B --clip-x0 --device cpu --out FILE.npz`` (:func:`sample_command`; in this process
:func:`vsmlab.diffusion.sample_sets.sample_checkpoint`), kept in :func:`sample_path`: beside the checkpoint, or for
a shipped checkpoint in the cache folder :func:`shipped_sample_dir` keyed by the file's SHA-256 (never inside
``checkpoints/``).

**Drawn on a GPU** (the full profiles): :mod:`vsmlab.lab.full_runs` lists the runs and their sets (named by
:func:`vsmlab.lab.full_runs.sample_name`); :func:`load_npz_samples` reads a set, :func:`require_files` names every
missing file with the command that makes it.
"""

from __future__ import annotations

import functools
import json
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from vsmlab.core.checks import check_choice, check_int
from vsmlab.diffusion.sample_sets import draw_samples, sample_checkpoint, to_uint8
from vsmlab.lab.jobs import Job, check_workers, run_jobs
from vsmlab.lab.study import LoadedModel, file_sha256

__all__ = ["sample_set", "load_npz_samples", "sample_path", "sample_command", "ensure_samples", "shipped_sample_dir",
           "load_sample_images", "require_files", "SAMPLING_MODULES"]

#: the code a cached sample set depends on (part of its cache key)
SAMPLING_MODULES = ("core.schedules", "core.prediction", "nets.unet", "diffusion.samplers", "diffusion.sample_sets",
                    "lab.sample_store")


def _sample_uncached(model: nn.Module, schedule, n: int, seed: int, sampler: str, steps: int | None,
                     variance: str, eta: float, batch_size: int, record_last: int, shape: tuple[int, ...],
                     clip_x0: bool = False, variance_frac: float | None = None) -> dict:
    drawn = draw_samples(model, schedule, n, seed, batch_size, shape, sampler=sampler, num_steps=steps,
                         variance=variance, variance_frac=variance_frac, eta=eta, clip_x0=clip_x0,
                         record_last=record_last or None, device="cpu")
    out = {"images": to_uint8(drawn.samples)[:, 0], "batch_seed": drawn.batch_seed, "batch_row": drawn.batch_row}
    if drawn.frac is not None:
        out["frac_outside"] = drawn.frac.as_dict()
    if record_last:
        out["x0_hat"] = drawn.x0_hat
        out["recorded_steps"] = torch.tensor(drawn.recorded_steps, dtype=torch.int64)
    return out


def sample_set(loaded: LoadedModel | nn.Module, n: int, seed: int, sampler: str = "ddpm", steps: int | None = 250,
               variance: str = "auto", eta: float = 0.0, batch_size: int = 64, record_last: int = 0,
               schedule=None, cache: bool | None = None, label: str = "", size: int | None = None,
               clip_x0: bool = False, variance_frac: float | None = None) -> dict[str, Any]:
    """``n`` samples as ``vsmlab sample`` draws them: {"images": uint8 [n, H, W], "batch_seed", "batch_row":
    int64 [n]} and with ``record_last`` = k > 0 also "x0_hat" float16 [k, n, 1, H, W] (the last k steps,
    sampling order) and "recorded_steps" [k]. sampler: "ddpm" (variance auto | beta | beta_tilde | learned)
    or "ddim" (eta). A LoadedModel is cached under its checkpoint hash; a bare module (e.g. the exact
    score) needs ``schedule`` and ``label`` (part of the cache key) and is cached only when label is set;
    ``size``: the image side for a bare model that does not say (no ``image_size`` / ``size`` attribute).
    clip_x0: clip x0_hat to [-1, 1] at every step (improved DDPM's ``clip_denoised=True``; ``vsmlab sample
    --clip-x0``). variance_frac: f in [0, 1] forces a learned-variance model's
    Sigma_t = exp(f log beta_t + (1 - f) log beta_tilde_t) with the same noise as without it (``vsmlab sample
    --variance-frac``). A learned-variance model's set also has "frac_outside"
    (:meth:`vsmlab.diffusion.sample_sets.FracSummary.as_dict`: how often its own v left [-1, 1])."""
    from vsmlab.lab.cache import load_or_compute

    n = check_int("n", n, low=1, hint="number of samples")
    check_choice("sampler", sampler, ("ddpm", "ddim"))
    if isinstance(loaded, LoadedModel):
        model, schedule, key_id = loaded.model, loaded.schedule, f"{loaded.sha256}:{loaded.weights}"
        size = loaded.model.image_size
    else:
        if schedule is None:
            raise ValueError("schedule: required when sampling a bare model (not a LoadedModel)")
        model, key_id = loaded, label
        size = size or getattr(loaded, "image_size", None) or getattr(loaded, "size", None)
        if not isinstance(size, int):
            raise ValueError(f"size: the model {type(loaded).__name__} does not say its image size; pass size=32 or 64")
    shape = (1, size, size)
    key = dict(kind="sample_store.sample_set", model=key_id, n=n, seed=seed, sampler=sampler, steps=steps,
               variance=variance, eta=float(eta), batch_size=batch_size, record_last=record_last,
               T=schedule.num_steps, clip_x0=bool(clip_x0))
    if variance_frac is not None:
        key["variance_frac"] = float(variance_frac)

    def compute() -> dict:
        with torch.no_grad():
            return _sample_uncached(model, schedule, n, seed, sampler, steps, variance, eta, batch_size,
                                    record_last, shape, bool(clip_x0), variance_frac)

    if not key_id:
        return compute()
    return load_or_compute(key, compute, use_cache=cache, modules=SAMPLING_MODULES)


def load_npz_samples(path: str | os.PathLike) -> dict[str, Any]:
    """Read a ``vsmlab sample`` npz (a GPU run's set): ``images`` uint8 [N, H, W] (or [N, H, W, 3]), ``batch_seed`` /
    ``batch_row`` int64 [N] (sample i is row batch_row[i] of the batch drawn with generator seed batch_seed[i]),
    ``metadata`` (dict), and for primary sets the detector scores of every sample (``x0hat_var_last10``,
    ``x0hat_var_t20_35``), the x0_hat tail of the rows ``trajectory_rows`` (``trajectory_x0_hat`` uint8 like the
    images, [R, rows, C, H, W] at ``trajectory_steps``) and ``categories`` (the strict validator's category per sample, when
    it ran). FileNotFoundError naming the file if missing; ValueError if it holds no images."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"sample file {str(path)!r} is missing: the full profile reads sample sets drawn on a GPU with "
            "`vsmlab sample CHECKPOINT --out FILE.npz ...` (see the notebook's 'full profile' section)")
    with np.load(path, allow_pickle=False) as z:
        out = {k: z[k] for k in z.files}
    out["metadata"] = json.loads(str(out["metadata"])) if "metadata" in out else {}
    if out.get("images") is None or len(out["images"]) == 0:
        raise ValueError(f"sample file {str(path)!r}: holds no images (an empty sample set)")
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


def shipped_sample_dir(cache_root: str | os.PathLike, path: str | os.PathLike) -> Path:
    """``cache_root/shipped-<parent folder>-<stem>-<12 hex of the file's SHA-256>``: where samples of a shipped
    checkpoint are cached (never inside ``checkpoints/``)."""
    return Path(cache_root) / f"shipped-{Path(path).parent.name}-{Path(path).stem}-{file_sha256(path)[:12]}"


def ensure_samples(checkpoints: dict[str, Path], n: int, steps: int, seed: int, batch_size: int,
                   root: str | os.PathLike = ".", workers: int = 2,
                   out_dirs: dict[str, Path] | None = None, variance_frac: float | None = None) -> dict[str, Path]:
    """Sample every checkpoint whose sample file is missing; returns {name: npz path}. out_dirs: {name: folder}
    for the sample files (default: beside each checkpoint). variance_frac: f in [0, 1] forces Sigma_t of
    learned-variance checkpoints (same noise as without it)."""
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
