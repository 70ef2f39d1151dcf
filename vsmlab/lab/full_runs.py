"""The runs GPU windows brought back: ``runs/full/<benchmark>/<run-id>/`` (written by ``benchmarks/gpu_window.py``).

Each GPU window trains K models in one process and adds ONE run folder; seeds accumulate across windows as
complete runs, steps do not (a later window never continues an earlier model). A run folder holds::

    summary.json                     device, versions, pinned commit, calibration, steps, times, per-model status
    run.log                          the window's log
    chess_tiles_<size>.npy           (chess) the square tiles the GPU machine rendered its training boards with
    models/<name>/config.toml        the resolved config the model trained with (train.steps = the step count N)
    models/<name>/log.jsonl          one line per read step (step, lr, loss terms, grad_norm, seconds)
    weights/<name>.safetensors       float16 EMA weights (vsmlab.diffusion.checkpoints.load_checkpoint reads them)
    samples/<set>.npz                uint8 sample sets, named by :func:`sample_name` (the GPU script writes them,
                                     notebooks 06 and 07 read them); a SimpleShapes primary set also holds the
                                     detector scores of every sample and, for a few rows, the x0_hat tail
                                     (``trajectory_x0_hat``, uint8 like the images)
    local/samples/<set>.npz          sets that ``unpack`` kept on this machine only (git-ignored) so the tree a GPU
                                     machine receives stays within its limit (``kept_local`` in the summary)

``<benchmark>`` is the data kind and size (``shapes64``, ``cards128``, ``chess128``); ``<name>`` is
``<method>-seed<k>``. A model is *complete* when it trained all its planned steps (status ``"complete"``) and every
primary sample set of it is on disk; :func:`complete_models` lists those of every run, and :func:`pick_models` picks
what a notebook's full profile reads (the oldest run of a (method, seed) first, every model left out named). Nothing here imports torch: the summaries are JSON and the
sample sets npz (numpy, imported when a set is loaded).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

__all__ = ["SUMMARY", "LOCAL", "FORMAT", "ModelRun", "run_folders", "load_summary", "run_models", "complete_models",
           "used_seeds", "sample_name", "pick_models", "describe_run"]

SUMMARY = "summary.json"
LOCAL = "local"  # <run>/local/: files of a run kept on the machine that unpacked it (git-ignored)
FORMAT = "vsmlab.gpu_window"
ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class ModelRun:
    """One model of one run: where its files are and how far it got.

    status: "complete" (all ``steps_planned`` steps), "stopped" (the window's deadline came first: ``step`` <
    ``steps_planned``) or "failed" (``error`` names why). weights / config: paths (None when not brought back).
    samples: {set name: path} of the sets on disk (in samples/ or local/samples/); primary: the names of its
    primary sets (DDPM with x0 clipping, EMA weights), present or not."""

    run_id: str
    run_dir: Path
    name: str
    method: str
    seed: int
    status: str
    step: int
    steps_planned: int
    error: str | None = None
    weights: Path | None = None
    config: Path | None = None
    samples: dict[str, Path] = field(default_factory=dict)
    primary: tuple[str, ...] = ()

    @property
    def complete(self) -> bool:
        """Trained to its planned step count, with every primary sample set on disk."""
        return self.status == "complete" and bool(self.primary) and all(p in self.samples for p in self.primary)


def _root(root: str | os.PathLike | None) -> Path:
    return Path(root) if root is not None else ROOT / "runs" / "full"


def run_folders(benchmark: str, root: str | os.PathLike | None = None) -> list[Path]:
    """Run folders of ``benchmark`` (e.g. ``"shapes64"``) under ``root`` (default ``runs/full`` of the
    repository) that hold a ``summary.json``, sorted by run id (run ids start with the UTC start time)."""
    base = _root(root) / benchmark
    if not base.is_dir():
        return []
    return sorted(p for p in base.iterdir() if p.is_dir() and (p / SUMMARY).is_file())


def load_summary(run: str | os.PathLike) -> dict[str, Any]:
    """The run's ``summary.json`` as a dict (ValueError naming the file if it is not a GPU-window summary)."""
    path = Path(run) / SUMMARY
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"run summary {str(path)!r}: cannot be read: {exc}") from None
    if not isinstance(summary, dict) or summary.get("format") != FORMAT:
        raise ValueError(f"run summary {str(path)!r}: not a GPU-window summary (format "
                         f"{summary.get('format') if isinstance(summary, dict) else None!r}, expected {FORMAT!r})")
    return summary


def _set_path(run: Path, name: str) -> Path:
    """Where the set ``name`` of ``run`` is: samples/, or local/samples/ when unpack kept it on this machine only."""
    path = run / "samples" / f"{name}.npz"
    local = run / LOCAL / "samples" / f"{name}.npz"
    return local if not path.is_file() and local.is_file() else path


def run_models(run: str | os.PathLike) -> list[ModelRun]:
    """Every model of one run folder, in the run's order (complete or not: see :attr:`ModelRun.complete`)."""
    run = Path(run)
    summary = load_summary(run)
    sets = summary.get("sample_sets", {})
    out = []
    for name, m in summary.get("models", {}).items():
        weights = run / "weights" / f"{name}.safetensors"
        config = run / "models" / name / "config.toml"
        mine = {s: _set_path(run, s) for s, info in sets.items() if info.get("model") == name}
        out.append(ModelRun(
            run_id=str(summary.get("run_id", run.name)), run_dir=run, name=name, method=str(m["method"]),
            seed=int(m["seed"]), status=str(m.get("status", "unknown")), step=int(m.get("step", 0)),
            steps_planned=int(m.get("steps_planned", 0)), error=m.get("error"),
            weights=weights if weights.is_file() else None, config=config if config.is_file() else None,
            samples={s: p for s, p in mine.items() if p.is_file()},
            primary=tuple(s for s, info in sets.items() if info.get("model") == name and info.get("kind") == "primary")))
    return out


def complete_models(benchmark: str, root: str | os.PathLike | None = None) -> list[ModelRun]:
    """The complete models of every run of ``benchmark``, oldest run first (what a full profile reads)."""
    return [m for run in run_folders(benchmark, root) for m in run_models(run) if m.complete]


def pick_models(benchmark: str, root: str | os.PathLike | None = None,
                unusable: Callable[[ModelRun], str | None] = lambda m: None) -> tuple[dict[tuple[str, int], ModelRun], list[str]]:
    """What a full profile reads of ``benchmark``: {(method, seed): ModelRun} of the complete models of every run, the
    oldest run of a (method, seed) first, and one line per model left out, saying why (not complete, ``unusable(m)``
    returned a reason, or its seed is taken)."""
    chosen: dict[tuple[str, int], ModelRun] = {}
    left: list[str] = []
    for run in run_folders(benchmark, root):
        for m in run_models(run):
            if not m.complete:
                why = f"{m.status} at step {m.step} of {m.steps_planned}" + (
                    ", its primary sets are not on this machine" if m.status == "complete" else "")
            else:
                why = unusable(m)
            if why is None and (m.method, m.seed) in chosen:
                why = f"seed {m.seed} of {m.method} is already in {chosen[(m.method, m.seed)].run_id}"
            if why is None:
                chosen[(m.method, m.seed)] = m
            else:
                left.append(f"{m.run_id}/{m.name} ({why})")
    return chosen, left


def used_seeds(benchmark: str, root: str | os.PathLike | None = None, complete_only: bool = False) -> set[int]:
    """Training seeds that any run of ``benchmark`` already used (``complete_only``: only those of complete
    models). A new window draws other seeds, so the runs stay independent."""
    seeds = set()
    for run in run_folders(benchmark, root):
        seeds |= {m.seed for m in run_models(run) if m.complete or not complete_only}
    return seeds


def sample_name(method: str, seed: int, sampler: str = "ddpm", steps: int = 250, variance: str = "auto",
                weights: str = "ema", ckpt_step: int | None = None, clip: bool = True,
                variance_frac: float | None = None) -> str:
    """The file stem of a sample set,
    ``<method>-seed<k>_<sampler><steps>_<variance>_<weights>[_step<S>][_noclip][_frac<f>]``: the one source of these
    names (the GPU scripts write them, notebook 06 reads them); ``_frac<f>``: Sigma forced to
    ``f * beta + (1 - f) * beta_tilde`` (the ceiling sets)."""
    return (f"{method}-seed{seed}_{sampler}{steps}_{variance}_{weights}" + (f"_step{ckpt_step}" if ckpt_step else "")
            + ("" if clip else "_noclip") + ("" if variance_frac is None else f"_frac{float(variance_frac):g}"))


def describe_run(summary: dict[str, Any], used: list[str]) -> str:
    """One line on a window: device, versions, training mode, steps, throughput, what it drew and did not, and the
    models of it that a notebook uses (``used``)."""
    s = summary
    cut = s.get("primary_rows_kept")
    return (f"GPU window {s.get('run_id')} on {s.get('device')} (torch {s.get('torch')}, CUDA {s.get('cuda')}; "
            f"training mode {s.get('calibration', {}).get('chosen')}): {len(s.get('models', {}))} models trained "
            f"{s.get('steps_planned')} steps in lockstep in {s.get('train_wall_s')} s ({s.get('img_per_s_all')} img/s, "
            f"MFU {s.get('mfu_training')}); {len(s.get('samples_done', []))} sample sets drawn, "
            f"{len(s.get('samples_not_run', []))} not drawn before its deadline"
            + (f"; primary sets cut to their first {cut} samples for the transfer" if isinstance(cut, int) else "")
            + f"; models used here: {', '.join(used)}")
