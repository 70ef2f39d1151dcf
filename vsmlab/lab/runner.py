"""The figure runner: execute the notebooks with papermill and publish their figures atomically.

For each notebook ``notebooks/NN_name.py`` (jupytext percent source, the reviewable text):

1. convert it to a notebook and execute it with papermill, injecting ``profile``, ``seed`` (if given)
   and ``figures_dir`` = a fresh staging folder;
2. on success, strip volatile metadata, write the executed ``.ipynb`` atomically, swap the staging folder
   in as ``<out>/NN_name/`` (the old one is removed only after the new one is in place) and merge its
   manifest entries into ``<out>/MANIFEST.json`` with the notebook's runtime;
3. on failure, leave every published figure and executed notebook untouched and raise
   :class:`NotebookFailed` naming the notebook and the failing cell.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from vsmlab.core.io import atomic_write_bytes

__all__ = ["PROFILES", "NotebookFailed", "NotebookResult", "list_notebooks", "run_notebook", "run_figures", "ROOT"]

PROFILES = ("smoke", "default", "full")
ROOT = Path(__file__).resolve().parent.parent
VOLATILE_NB_KEYS = ("papermill",)
VOLATILE_CELL_KEYS = ("papermill", "execution", "collapsed", "scrolled")
PAPERMILL_CELL_TAGS = ("injected-parameters", "papermill-error-cell-tag")


class NotebookFailed(RuntimeError):
    """A notebook failed; ``notebook``, ``cell`` and ``error`` say where and why.

    ``cell`` is the failing cell's 1-based position among the cells of the notebook's source (the
    ``# %%`` cells of the ``.py`` file); cells that papermill inserts (injected parameters, error
    banners) are not counted. None when no cell ran (the kernel did not start, say).
    """

    def __init__(self, notebook: str, cell: int | None, error: str, source: str = "") -> None:
        where = f"cell {cell} (counting the source's cells from 1)" if cell is not None else "before any cell ran"
        snippet = f"\n  cell source: {source.strip().splitlines()[0][:120]}" if source.strip() else ""
        super().__init__(f"notebook {notebook!r} failed in {where}: {error}{snippet}")
        self.notebook, self.cell, self.error = notebook, cell, error


@dataclass
class NotebookResult:
    """A successful run: notebook stem, seconds, published figure folder and executed notebook path."""

    notebook: str
    seconds: float
    figures: Path
    executed: Path


def list_notebooks(notebooks_dir: str | os.PathLike = ROOT / "notebooks") -> list[str]:
    """Stems of the notebook sources (``NN_*.py``), in order."""
    return sorted(p.stem for p in Path(notebooks_dir).glob("[0-9][0-9]_*.py"))


def _resolve(names: list[str] | None, available: list[str]) -> list[str]:
    if not names:
        return available
    out = []
    for name in names:
        matches = [a for a in available if a == name or a.startswith(name) or a.split("_", 1)[0] == name]
        if not matches:
            raise ValueError(f"only: unknown notebook {name!r}; allowed: {', '.join(available)} (or a prefix like '01')")
        out.extend(m for m in matches if m not in out)
    return out


def clean_notebook(nb) -> None:
    """Remove volatile metadata (timings, papermill bookkeeping) so re-runs diff cleanly."""
    for key in VOLATILE_NB_KEYS:
        nb.metadata.pop(key, None)
    for cell in nb.cells:
        for key in VOLATILE_CELL_KEYS:
            cell.metadata.pop(key, None)
    stable_widget_ids(nb)


def stable_widget_ids(nb) -> None:
    """Replace the random ipywidgets model ids (saved widget state, widget-view outputs) by ids that depend
    only on the widget tree: numbered depth-first from the displayed widgets (cell order, then attribute
    names), so re-running the same notebook gives the same text. Widgets never displayed keep their ids."""
    import hashlib

    state = nb.metadata.get("widgets", {}).get("application/vnd.jupyter.widget-state+json", {}).get("state", {})
    if not state:
        return

    def refs(value):
        if isinstance(value, str) and value.startswith("IPY_MODEL_"):
            yield value[len("IPY_MODEL_"):]
        elif isinstance(value, (list, tuple)):
            for v in value:
                yield from refs(v)
        elif isinstance(value, dict):
            for k in sorted(value):
                yield from refs(value[k])

    order: list[str] = []

    def visit(model_id: str) -> None:
        if model_id in state and model_id not in order:
            order.append(model_id)
            for ref in refs(state[model_id].get("state", {})):
                visit(ref)

    for cell in nb.cells:
        for out in cell.get("outputs", []):
            view = out.get("data", {}).get("application/vnd.jupyter.widget-view+json")
            if isinstance(view, dict) and "model_id" in view:
                visit(view["model_id"])
    ids = {old: hashlib.sha256(f"vsmlab-widget-{i}".encode()).hexdigest()[:32] for i, old in enumerate(order)}

    def swap(value):
        if isinstance(value, dict):
            return type(value)((ids.get(k, k), swap(v)) for k, v in value.items())
        if isinstance(value, list):
            return [swap(v) for v in value]
        if isinstance(value, str):
            if value in ids:
                return ids[value]
            if value.startswith("IPY_MODEL_") and value[len("IPY_MODEL_"):] in ids:
                return "IPY_MODEL_" + ids[value[len("IPY_MODEL_"):]]
        return value

    nb.metadata["widgets"] = swap(nb.metadata["widgets"])
    for cell in nb.cells:
        if "outputs" in cell:
            cell.outputs = swap(cell.outputs)


def _failure(nb_path: Path, stem: str, exc: Exception) -> NotebookFailed:
    import nbformat

    cell_index, source = None, ""
    try:
        nb = nbformat.read(nb_path, as_version=4)
        # papermill adds cells (injected parameters, error banners): number only the source's own cells
        own = [c for c in nb.cells if not set(c.metadata.get("tags", [])) & set(PAPERMILL_CELL_TAGS)]
        for i, cell in enumerate(own, 1):
            if cell.cell_type == "code" and any(o.get("output_type") == "error" for o in cell.get("outputs", [])):
                cell_index, source = i, cell.source
                break
    except Exception:
        pass
    err = getattr(exc, "ename", type(exc).__name__)
    val = getattr(exc, "evalue", str(exc))
    return NotebookFailed(stem, cell_index, f"{err}: {val}", source)


def run_notebook(
    stem: str, profile: str = "default", out_dir: str | os.PathLike = ROOT / "figures",
    executed_dir: str | os.PathLike = ROOT / "notebooks", notebooks_dir: str | os.PathLike = ROOT / "notebooks",
    seed: int | None = None, progress: bool = True, extra_parameters: dict[str, Any] | None = None,
) -> NotebookResult:
    """Execute one notebook and publish its figures (see module docstring). Raises NotebookFailed."""
    import jupytext
    import nbformat
    import papermill

    if profile not in PROFILES:
        raise ValueError(f"profile: expected one of {', '.join(PROFILES)}, got {profile!r}")
    notebooks_dir, out_dir, executed_dir = Path(notebooks_dir), Path(out_dir), Path(executed_dir)
    source = notebooks_dir / f"{stem}.py"
    if not source.exists():
        raise ValueError(f"notebook: no source {source} (allowed: {', '.join(list_notebooks(notebooks_dir))})")
    out_dir.mkdir(parents=True, exist_ok=True)
    executed_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{stem}.", dir=out_dir))
    staging = work / "figures"
    try:
        nb = jupytext.read(source)
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        src_nb, out_nb = work / "input.ipynb", work / "output.ipynb"
        nbformat.write(nb, src_nb)
        params: dict[str, Any] = {"profile": profile, "figures_dir": str(staging)}
        if seed is not None:
            params["seed"] = seed
        params.update(extra_parameters or {})
        start = time.perf_counter()
        try:
            papermill.execute_notebook(
                str(src_nb), str(out_nb), parameters=params, cwd=str(notebooks_dir), kernel_name="python3",
                progress_bar=progress, log_output=False, report_mode=False,
            )
        except Exception as exc:  # papermill raises PapermillExecutionError for cell errors
            raise _failure(out_nb, stem, exc) from None
        seconds = time.perf_counter() - start
        executed = nbformat.read(out_nb, as_version=4)
        clean_notebook(executed)
        executed.metadata["vsmlab"] = {"profile": profile}
        executed_path = executed_dir / f"{stem}.ipynb"
        atomic_write_bytes(executed_path, nbformat.writes(executed).encode())
        figures = _publish(staging, out_dir, stem, seconds, profile)
        return NotebookResult(stem, seconds, figures, executed_path)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _publish(staging: Path, out_dir: Path, stem: str, seconds: float, profile: str) -> Path:
    staging.mkdir(parents=True, exist_ok=True)
    entries: dict[str, Any] = {}
    manifest = staging / "manifest.json"
    if manifest.exists():
        entries = json.loads(manifest.read_text())
        manifest.unlink()
    target = out_dir / stem
    old = out_dir / f".{stem}.old"
    shutil.rmtree(old, ignore_errors=True)
    if target.exists():
        os.replace(target, old)
    os.replace(staging, target)
    shutil.rmtree(old, ignore_errors=True)
    main = out_dir / "MANIFEST.json"
    data = json.loads(main.read_text()) if main.exists() else {}
    data = {k: v for k, v in data.items() if not k.startswith(f"{stem}/")}
    for key, entry in entries.items():
        entry["notebook_runtime_s"] = round(seconds, 1)
        data[key] = entry
    atomic_write_bytes(main, json.dumps(dict(sorted(data.items())), indent=1, sort_keys=True).encode() + b"\n")
    return target


def run_figures(
    names: list[str] | None = None, profile: str = "default", out_dir: str | os.PathLike | None = None,
    executed_dir: str | os.PathLike | None = None, seed: int | None = None,
    log: Callable[[str], None] = lambda s: print(s, file=sys.stderr, flush=True), progress: bool = True,
) -> list[NotebookResult]:
    """Run the chosen notebooks (default all) in order; stops at the first failure (NotebookFailed)."""
    if profile not in PROFILES:
        raise ValueError(f"profile: expected one of {', '.join(PROFILES)}, got {profile!r}")
    out = Path(out_dir) if out_dir is not None else ROOT / "figures"
    if executed_dir is None:
        executed_dir = ROOT / "notebooks" if out_dir is None else out / "notebooks"
    stems = _resolve(names, list_notebooks())
    results = []
    for i, stem in enumerate(stems, 1):
        log(f"[{i}/{len(stems)}] {stem} (profile {profile}) ...")
        res = run_notebook(stem, profile, out, executed_dir, seed=seed, progress=progress)
        log(f"[{i}/{len(stems)}] {stem} done in {res.seconds:.1f} s -> {res.figures}")
        results.append(res)
    return results
