"""The figure runner: execute the notebooks with papermill and publish their figures crash-safely.

Where a profile publishes (the same place :func:`vsmlab.lab.notebook.start` uses for a run outside the runner
that asks to publish; a run by hand, e.g. Run All in JupyterLab, writes to the git-ignored ``figures/local/``):
the profile's root is ``figures/`` for ``default`` and ``figures/<profile>/`` for any other profile; it
holds ``<notebook>/`` (the figures) and ``MANIFEST.json`` (one entry per figure, key
``<notebook>/<figure>.png``). The executed notebook goes to ``notebooks/<notebook>.ipynb`` for
``default`` and inside the figure folder, ``<root>/<notebook>/<notebook>.ipynb``, for other profiles
(``executed_dir`` overrides both), so a smoke run never replaces default figures or notebooks.

For each notebook ``notebooks/NN_name.py`` (jupytext percent source, the reviewable text):

1. take the notebook's run lock (``<root>/.NN_name.lock``; a second concurrent run of the same notebook
   and profile is refused) and repair what an interrupted earlier run left (below);
2. execute it with papermill, injecting ``profile`` (and ``seed`` if given); the kernel gets the staging
   folder in ``$VSMLAB_FIGURES_STAGING``, so no staging path enters the executed notebook;
3. on failure: leave every published file untouched, remove the staging, raise :class:`NotebookFailed`
   naming the notebook and the failing cell;
4. on success: strip volatile metadata and give cells and widgets stable ids
   (:func:`vsmlab.lab.notebook_clean.clean_notebook`), stage the executed notebook next to its destination,
   check ``MANIFEST.json`` (a corrupt one raises :class:`ManifestCorrupt` before anything is swapped), then
   publish in this order:

   a. write the journal ``<root>/.NN_name.publish.json`` atomically: the commit point. Before it the old
      version stays published; after it the new one is completed, by this run or by the next;
   b. swap the staged figure folder in (one atomic ``renameat2(RENAME_EXCHANGE)`` on Linux, so the
      folder is never missing; elsewhere two renames recorded in the journal);
   c. rename the staged notebook over the executed one (atomic);
   d. merge the entries into ``MANIFEST.json`` under its file lock (concurrent runs of other notebooks
      keep theirs);
   e. remove the old folder and the staging, then the journal.

   Steps b and c are two renames back to back: a crash exactly between them leaves the new figures with
   the old executed notebook until the next run completes the publish from the journal (with
   ``executed_dir`` unset, a non-default profile keeps its notebook inside the folder, so b alone
   switches everything).

Recovery (every run, per notebook, under its lock): a journal is completed (roll forward); staging
folders without a journal are removed (never published); a backup folder (``.NN_name.old*``) is put
back when the published folder is missing, removed otherwise; stray staged notebooks and temporary
files are removed. Each repair prints a line naming the file.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from vsmlab.core.io import LockHeld, atomic_write_bytes, exchange_paths, file_lock, fsync_dir
from vsmlab.lab.notebook_clean import clean_notebook
from vsmlab.lab.plotting import ManifestCorrupt, manifest_lock_path, merge_manifest, read_manifest

__all__ = ["PROFILES", "NotebookFailed", "NotebookResult", "ManifestCorrupt", "RunInProgress", "list_notebooks",
           "run_notebook", "run_figures", "is_appendix", "APPENDIX_SUFFIX", "recover", "recover_notebook", "figures_root",
           "profile_root", "ROOT", "STAGING_ENV", "TARGET_ENV", "KILL_POINTS"]

PROFILES = ("smoke", "default", "full")
APPENDIX_SUFFIX = "_appendix"  # NN_name_appendix.py continues the lesson NN_name.py
ROOT = Path(__file__).resolve().parents[2]  # the checkout holding the package (notebooks/, figures/)
PAPERMILL_CELL_TAGS = ("injected-parameters", "papermill-error-cell-tag")
STAGING_ENV = "VSMLAB_FIGURES_STAGING"  # where a notebook run by the runner writes its figures
TARGET_ENV = "VSMLAB_FIGURES_TARGET"  # where they will be published (for the notebook's message)
KILL_ENV = "VSMLAB_TEST_KILL_AT"  # tests: SIGKILL this process at the named point of a publish
KILL_POINTS = ("staged", "committed", "figures_swapped", "notebook_swapped", "manifest_merged")
Log = Callable[[str], None]


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _kill_point(name: str) -> None:
    """Test hook: die by SIGKILL here when ``$VSMLAB_TEST_KILL_AT`` names this point."""
    if os.environ.get(KILL_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)


def figures_root() -> Path:
    """The ``figures/`` folder: ``$VSMLAB_FIGURES_ROOT``, else that of the first folder at or above the
    working folder holding both ``notebooks/`` and ``figures/``, else the one in the package's checkout."""
    env = os.environ.get("VSMLAB_FIGURES_ROOT")
    if env:
        return Path(env)
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        if (folder / "notebooks").is_dir() and (folder / "figures").is_dir():
            return folder / "figures"
    return ROOT / "figures"


def profile_root(figures: str | os.PathLike, profile: str) -> Path:
    """Where ``profile`` publishes inside ``figures``: itself for "default", ``figures/<profile>`` otherwise."""
    if profile not in PROFILES:
        raise ValueError(f"profile: expected one of {', '.join(PROFILES)}, got {profile!r}")
    return Path(figures) if profile == "default" else Path(figures) / profile


def _display(target: Path, out: Path) -> str:
    """``target`` as the executed notebook shows it: relative to the folder above the figures folder
    ``out`` (``figures/04_x``, ``figures/smoke/04_x``), so no machine- or run-specific prefix enters it."""
    return str(target.relative_to(out.parent))


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

class RunInProgress(RuntimeError):
    """Another process is running the same notebook in the same profile (its run lock is held)."""


def list_notebooks(notebooks_dir: str | os.PathLike = ROOT / "notebooks") -> list[str]:
    """Stems of the notebook sources (``NN_*.py``, lessons and appendices), in order (a lesson before its appendix)."""
    return sorted(p.stem for p in Path(notebooks_dir).glob("[0-9][0-9]_*.py"))


def is_appendix(stem: str) -> bool:
    """Whether ``stem`` is an appendix (``NN_name_appendix``: it continues its lesson; not part of the main job)."""
    return stem.endswith(APPENDIX_SUFFIX)


def _resolve(names: list[str] | None, available: list[str], appendices: bool = False) -> list[str]:
    """The notebooks to run: ``names`` (an exact stem, or a prefix such as '05' naming the lesson and its appendix),
    else every lesson (the main job), or every appendix when ``appendices``."""
    if not names:
        return [a for a in available if is_appendix(a) == appendices]
    out = []
    for name in names:
        exact = [a for a in available if a == name]
        matches = exact or [a for a in available if a.startswith(name) or a.split("_", 1)[0] == name]
        if not matches:
            raise ValueError(f"only: unknown notebook {name!r}; allowed: {', '.join(available)} (or a prefix like '01')")
        out.extend(m for m in matches if m not in out)
    return out


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
    except (OSError, ValueError, KeyError, AttributeError):  # no readable output notebook: report without a cell
        pass
    err = getattr(exc, "ename", type(exc).__name__)
    val = getattr(exc, "evalue", str(exc))
    return NotebookFailed(stem, cell_index, f"{err}: {val}", source)


@contextlib.contextmanager
def _kernel_env(values: dict[str, str]) -> Iterator[None]:
    """Set environment variables for the kernel papermill starts (it inherits them), restore after."""
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in old.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@contextlib.contextmanager
def _run_lock(root: Path, stem: str) -> Iterator[None]:
    try:
        with file_lock(root / f".{stem}.lock", blocking=False):
            yield
    except LockHeld as exc:
        raise RunInProgress(f"notebook {stem!r}: another run of it is publishing into {root} (lock {exc.path} held); "
                            "wait for it to finish") from None


def _journal_path(root: Path, stem: str) -> Path:
    return root / f".{stem}.publish.json"


def _take_entries(staging: Path, seconds: float) -> dict[str, dict[str, Any]]:
    """The manifest entries the notebook wrote into the staging folder (removed from it), with its runtime."""
    local = staging / "manifest.json"
    entries = read_manifest(local)
    if local.exists():
        local.unlink()
    for entry in entries.values():
        entry["notebook_runtime_s"] = round(seconds, 1)
    return entries


def run_notebook(
    stem: str, profile: str = "default", out_dir: str | os.PathLike | None = None,
    executed_dir: str | os.PathLike | None = None, notebooks_dir: str | os.PathLike = ROOT / "notebooks",
    seed: int | None = None, progress: bool = True, extra_parameters: dict[str, Any] | None = None,
    log: Log = _stderr,
) -> NotebookResult:
    """Execute one notebook and publish its figures and executed notebook (see the module docstring).

    out_dir: the figures folder (default ``figures/`` of the checkout); the profile publishes into
    :func:`profile_root` of it. executed_dir: where ``<stem>.ipynb`` goes; None means ``notebooks/`` (or
    ``out_dir/notebooks`` when ``out_dir`` is given) for "default" and the figure folder otherwise.
    Raises NotebookFailed (nothing published), ManifestCorrupt (nothing swapped), RunInProgress, ValueError.
    """
    import jupytext
    import nbformat
    import papermill

    if profile not in PROFILES:
        raise ValueError(f"profile: expected one of {', '.join(PROFILES)}, got {profile!r}")
    notebooks_dir = Path(notebooks_dir).absolute()
    source = notebooks_dir / f"{stem}.py"
    if not source.exists():
        raise ValueError(f"notebook: no source {source} (allowed: {', '.join(list_notebooks(notebooks_dir))})")
    out = Path(out_dir).absolute() if out_dir is not None else ROOT / "figures"
    root = profile_root(out, profile)
    if executed_dir is None and profile == "default":
        executed_dir = ROOT / "notebooks" if out_dir is None else out / "notebooks"
    executed_folder = Path(executed_dir).absolute() if executed_dir is not None else None
    root.mkdir(parents=True, exist_ok=True)
    if executed_folder is not None:
        executed_folder.mkdir(parents=True, exist_ok=True)
    target = root / stem
    executed_path = (executed_folder or target) / f"{stem}.ipynb"
    manifest = root / "MANIFEST.json"

    with _run_lock(root, stem):
        recover_notebook(stem, root, executed_folder, log)
        read_manifest(manifest)  # a corrupt manifest stops the run before any work
        work = Path(tempfile.mkdtemp(prefix=f".{stem}.stage-", dir=root))
        token = work.name.rsplit("-", 1)[-1]
        staging = work / "figures"
        staged_nb = executed_folder / f".{stem}.ipynb.stage-{token}" if executed_folder is not None else None
        committed = False
        try:
            staging.mkdir()
            nb = jupytext.read(source)
            nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
            src_nb, out_nb = work / "input.ipynb", work / "output.ipynb"
            nbformat.write(nb, src_nb)
            params: dict[str, Any] = {"profile": profile}
            if seed is not None:
                params["seed"] = seed
            params.update(extra_parameters or {})
            start = time.perf_counter()
            with _kernel_env({STAGING_ENV: str(staging), TARGET_ENV: _display(target, out)}):
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
            entries = _take_entries(staging, seconds)
            data = nbformat.writes(executed).encode()
            atomic_write_bytes(staged_nb if staged_nb is not None else staging / f"{stem}.ipynb", data)
            fsync_dir(staging)
            _kill_point("staged")
            read_manifest(manifest)  # checked again right before the commit: corrupt -> nothing swapped
            st = staging.stat()
            journal = {
                "format": 1, "notebook": stem, "profile": profile, "work": work.name, "inode": [st.st_dev, st.st_ino],
                "executed": str(executed_path) if staged_nb is not None else None,
                "staged_executed": str(staged_nb) if staged_nb is not None else None, "entries": entries,
            }
            atomic_write_bytes(_journal_path(root, stem), json.dumps(journal, indent=1, sort_keys=True).encode())
            committed = True
            _kill_point("committed")
            _complete(root, journal)
        finally:
            if not committed:
                shutil.rmtree(work, ignore_errors=True)
                if staged_nb is not None and staged_nb.exists():
                    staged_nb.unlink()
    return NotebookResult(stem, seconds, target, executed_path)


def _complete(root: Path, journal: dict[str, Any]) -> None:
    """Steps b-e of a committed publish (module docstring); idempotent, so recovery can call it again."""
    stem = journal["notebook"]
    target, work = root / stem, root / journal["work"]
    staged = work / "figures"
    dev, ino = journal["inode"]

    def is_new(path: Path) -> bool:
        try:
            st = path.stat()
        except FileNotFoundError:
            return False
        return (st.st_dev, st.st_ino) == (dev, ino)

    if not is_new(target):
        if not is_new(staged):
            raise RuntimeError(f"publish journal {_journal_path(root, stem)}: the staged figures are neither at {staged} "
                               f"nor at {target}; remove the journal after checking {target}")
        if not target.exists():
            os.replace(staged, target)
            fsync_dir(root)
        elif not exchange_paths(staged, target):  # no RENAME_EXCHANGE here: two renames, backup in between
            backup = root / f".{stem}.old-{journal['work'].rsplit('-', 1)[-1]}"
            os.replace(target, backup)
            os.replace(staged, target)
            fsync_dir(root)
    _kill_point("figures_swapped")
    if journal.get("staged_executed"):
        staged_nb, executed = Path(journal["staged_executed"]), Path(journal["executed"])
        if staged_nb.exists():
            os.replace(staged_nb, executed)
            fsync_dir(executed.parent)
    _kill_point("notebook_swapped")
    merge_manifest(root / "MANIFEST.json", journal["entries"], replace_notebook=stem)
    _kill_point("manifest_merged")
    shutil.rmtree(work, ignore_errors=True)  # after the swap it holds the old figures
    for backup in root.glob(f".{stem}.old-*"):
        shutil.rmtree(backup, ignore_errors=True)
    _journal_path(root, stem).unlink()
    fsync_dir(root)


def recover_notebook(stem: str, root: str | os.PathLike, executed_dir: str | os.PathLike | None = None,
                     log: Log = _stderr) -> list[str]:
    """Repair what an interrupted run of ``stem`` left in the profile root ``root`` (and ``executed_dir``).

    Completes a committed publish from its journal, removes uncommitted staging, restores or removes
    backup folders, removes staged notebooks and temporary files; logs (and returns) one line per repair,
    naming the file. The caller must hold the notebook's run lock (:func:`run_notebook` does; use
    :func:`recover` otherwise).
    """
    root = Path(root)
    messages: list[str] = []

    def say(line: str) -> None:
        messages.append(line)
        log(line)

    journal_path = _journal_path(root, stem)
    if journal_path.exists():
        try:
            journal = json.loads(journal_path.read_text(encoding="utf-8"))
            if not isinstance(journal, dict) or journal.get("notebook") != stem or "work" not in journal:
                raise ValueError(f"not a publish journal of {stem!r}")
        except (OSError, ValueError) as exc:
            aside = journal_path.with_name(journal_path.name + ".corrupt")
            os.replace(journal_path, aside)
            say(f"recovery: corrupt publish journal {journal_path} ({exc}); moved it to {aside}; "
                f"check {root / stem} by eye, its staging is removed below")
        else:
            _complete(root, journal)
            executed = journal.get("executed") or root / stem / f"{stem}.ipynb"
            say(f"recovery: completed the interrupted publish of {stem} recorded in {journal_path} "
                f"(figures {root / stem}, executed notebook {executed})")
    for path in sorted(root.glob(f".{stem}.*")):
        if not path.is_dir():
            continue
        if path.name[len(stem) + 2:].startswith("old"):
            if not (root / stem).exists():
                os.replace(path, root / stem)
                say(f"recovery: {root / stem} was missing; restored it from the backup folder {path}")
            else:
                shutil.rmtree(path)
                say(f"recovery: removed the leftover backup folder {path} (the published folder is complete)")
        else:
            shutil.rmtree(path)
            say(f"recovery: removed the leftover staging folder {path} of an interrupted run (never published)")
    if executed_dir is not None:
        for path in sorted(Path(executed_dir).glob(f".{stem}.ipynb.*")):
            if path.is_file():
                path.unlink()
                say(f"recovery: removed the leftover staged notebook {path} of an interrupted run")
    manifest = root / "MANIFEST.json"
    if root.is_dir():
        with file_lock(manifest_lock_path(manifest)):
            for path in sorted(root.glob(f".{manifest.name}.*.tmp")):
                path.unlink()
                say(f"recovery: removed the temporary file {path} of an interrupted manifest write")
    if messages:
        fsync_dir(root)
    return messages


def recover(out_dir: str | os.PathLike | None = None, profile: str = "default",
            executed_dir: str | os.PathLike | None = None, log: Log = _stderr) -> list[str]:
    """:func:`recover_notebook` for every notebook with leftovers in the profile's root; notebooks whose run
    lock is held (a live run) are skipped. executed_dir as in :func:`run_notebook`."""
    out = Path(out_dir) if out_dir is not None else ROOT / "figures"
    root = profile_root(out, profile)
    if executed_dir is None and profile == "default":
        executed_dir = ROOT / "notebooks" if out_dir is None else out / "notebooks"
    if not root.is_dir():
        return []
    stems = {p.name[1:].split(".", 1)[0] for p in root.glob(".*.*") if p.name.count(".") >= 2}
    stems.discard("MANIFEST")
    messages: list[str] = []
    for stem in sorted(stems):
        try:
            with _run_lock(root, stem):
                messages += recover_notebook(stem, root, executed_dir, log)
        except RunInProgress:
            continue
    return messages


def run_figures(
    names: list[str] | None = None, profile: str = "default", out_dir: str | os.PathLike | None = None,
    executed_dir: str | os.PathLike | None = None, seed: int | None = None,
    log: Log = _stderr, progress: bool = True, notebooks_dir: str | os.PathLike = ROOT / "notebooks",
    appendices: bool = False,
) -> list[NotebookResult]:
    """Run the chosen notebooks in order; stops at the first failure (NotebookFailed). ``names`` None: every
    lesson (the main job), or every appendix when ``appendices`` (each continues its lesson, so run the lessons
    first to have their models cached).

    First repairs what interrupted runs left in the profile's root (:func:`recover`).
    """
    if profile not in PROFILES:
        raise ValueError(f"profile: expected one of {', '.join(PROFILES)}, got {profile!r}")
    stems = _resolve(names, list_notebooks(notebooks_dir), appendices)
    recover(out_dir, profile, executed_dir, log)
    results = []
    for i, stem in enumerate(stems, 1):
        log(f"[{i}/{len(stems)}] {stem} (profile {profile}) ...")
        res = run_notebook(stem, profile, out_dir, executed_dir, notebooks_dir, seed=seed, progress=progress, log=log)
        log(f"[{i}/{len(stems)}] {stem} done in {res.seconds:.1f} s -> {res.figures}, {res.executed}")
        results.append(res)
    return results
