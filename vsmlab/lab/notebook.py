"""What every notebook does first: pick the profile's settings, seed, theme, and a figure saver.

    cfg, saver = start("01_mode_interpolation_1d", profile, seed, figures_dir, PROFILES, publish=publish)

``PROFILES`` maps each of "smoke", "default", "full" to that notebook's settings (a dict).

**Where the figures go.** Running a notebook by hand (Run All in JupyterLab, a plain Python or IPython
session) never changes the published figures: publishing is asked for explicitly, by the runner or by a
parameter. The first rule that applies decides:

1. run by ``vsmlab figures``: into the runner's staging folder (``$VSMLAB_FIGURES_STAGING``, set by the
   runner for the kernel); the runner publishes it when the notebook has finished, together with the
   executed notebook;
2. ``figures_dir`` given (e.g. ``papermill ... -p figures_dir /tmp/x``): exactly there, with the entries in
   ``figures_dir/manifest.json``; nothing under ``figures/`` is touched;
3. publishing asked for: ``publish=True`` (the notebook's ``publish`` parameter, so
   ``papermill NB.ipynb OUT.ipynb -p profile smoke -p publish True``) or ``$VSMLAB_PUBLISH=1`` in the
   environment (``VSMLAB_PUBLISH=1 papermill NB.ipynb OUT.ipynb -p profile smoke``): the profile's own
   place, published figure by figure: ``figures/<notebook>/`` for ``default``,
   ``figures/<profile>/<notebook>/`` for any other profile, each figure's entry merged into that
   profile's ``MANIFEST.json`` under its file lock;
4. otherwise (Run All, papermill without 2 or 3): a local copy that git ignores, laid out like the
   published one under ``figures/local/``: ``figures/local/<notebook>/`` for ``default``,
   ``figures/local/<profile>/<notebook>/`` otherwise, with its own ``MANIFEST.json`` there.

``figures/`` is ``$VSMLAB_FIGURES_ROOT`` when set, else the ``figures/`` folder of the project around the
working folder (the first parent holding both ``notebooks/`` and ``figures/``), else the one beside the
installed package's checkout. ``start`` prints one line saying where the figures go.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator

import torch

from vsmlab.core.checks import check_int
from vsmlab.lab.plotting import FigureSaver, set_theme
from vsmlab.lab.runner import PROFILES as PROFILE_NAMES
from vsmlab.lab.runner import APPENDIX_SUFFIX, ROOT, STAGING_ENV, TARGET_ENV, figures_root, profile_root

__all__ = ["start", "continue_lesson", "lesson_source", "profile_settings", "figures_destination", "publish_requested",
           "local_figures_root", "PUBLISH_ENV", "LOCAL_FOLDER"]

PUBLISH_ENV = "VSMLAB_PUBLISH"  # "1": a run outside the runner publishes into figures/ (rule 3)
LOCAL_FOLDER = "local"  # figures/local/: where a run by hand writes (git-ignored)
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("", "0", "false", "no", "off")


def profile_settings(profile: str, table: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The settings of ``profile`` from ``table``; ValueError naming the allowed profiles otherwise."""
    if profile not in PROFILE_NAMES or profile not in table:
        raise ValueError(f"profile: expected one of {', '.join(k for k in PROFILE_NAMES if k in table)}, got {profile!r}")
    return dict(table[profile])


def _flag(name: str, value: Any) -> bool:
    """A yes/no setting given as a bool or as text ("1", "true", "yes", "on" / "0", "false", "no", "off", "")."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
        return value.strip().lower() in _TRUE
    raise ValueError(f"{name}: expected True or False (or one of {', '.join(repr(v) for v in _TRUE + _FALSE[1:])}), "
                     f"got {value!r}")


def publish_requested(publish: bool | str | None = None) -> bool:
    """Whether a run outside the runner publishes into ``figures/`` (rule 3 of the module docstring):
    ``publish`` is true, or ``$VSMLAB_PUBLISH`` is set to a true value. ValueError names the bad one."""
    env = os.environ.get(PUBLISH_ENV)
    from_env = _flag(f"${PUBLISH_ENV}", env) if env is not None else False
    return (publish is not None and _flag("publish", publish)) or from_env


def local_figures_root() -> Path:
    """The git-ignored folder where runs by hand write: ``figures/local`` (``figures`` as in :func:`figures_root`)."""
    return figures_root() / LOCAL_FOLDER


def figures_destination(
    notebook: str, profile: str, figures_dir: str | os.PathLike | None = None, publish: bool | str | None = None,
) -> tuple[Path, Path | None, str]:
    """Where a notebook run writes its figures: (folder, MANIFEST.json to merge into or None, description).

    See the module docstring for the rule. The MANIFEST path is None when the figures go to a staging
    folder (the runner merges the entries) or to an explicit ``figures_dir`` (entries in its manifest.json).
    """
    staging = os.environ.get(STAGING_ENV)
    if staging:
        target = os.environ.get(TARGET_ENV) or "the figures folder"
        return Path(staging), None, f"{target} (published by the runner when the notebook finishes)"
    if figures_dir:
        return Path(figures_dir), None, f"{figures_dir} (entries in its manifest.json; figures/ untouched)"
    if publish_requested(publish):
        root = profile_root(figures_root(), profile)
        folder = root / notebook
        return folder, root / "MANIFEST.json", f"{folder} (profile {profile}, entries in {root / 'MANIFEST.json'})"
    root = profile_root(local_figures_root(), profile)
    folder = root / notebook
    published = profile_root(figures_root(), profile) / notebook
    return folder, root / "MANIFEST.json", (
        f"{folder} (a local copy that git ignores; the published {published} is unchanged; "
        f"`vsmlab figures --only {notebook.split('_', 1)[0]}` publishes)")


def start(
    notebook: str, profile: str, seed: int, figures_dir: str | os.PathLike | None,
    table: dict[str, dict[str, Any]], device: str | torch.device = "cpu", publish: bool | str | None = None,
) -> tuple[dict[str, Any], FigureSaver]:
    """Settings for ``profile``, seeded torch, the lab's theme, and a FigureSaver for this run.

    figures_dir: None or "" means the rule of the module docstring decides. device: the device the
    notebook computes on, recorded in every manifest entry (set ``saver.device`` if chosen later).
    publish: True publishes into ``figures/`` (the notebook's ``publish`` parameter; None or False
    leaves it to ``$VSMLAB_PUBLISH``). Prints one line saying where the figures go.
    """
    cfg = profile_settings(profile, table)
    seed = check_int("seed", seed)
    torch.manual_seed(seed)
    set_theme()
    return cfg, _saver(notebook, profile, seed, figures_dir, publish, {"profile": profile, "seed": seed, **cfg}, device)


def _saver(notebook: str, profile: str, seed: int, figures_dir: str | os.PathLike | None,
           publish: bool | str | None, parameters: dict[str, Any], device: Any) -> FigureSaver:
    """The FigureSaver of a run, writing where the module docstring's rule says; prints that place."""
    folder, manifest, description = figures_destination(notebook, profile, figures_dir, publish)
    published = os.environ.get(TARGET_ENV) if os.environ.get(STAGING_ENV) else None
    saver = FigureSaver(folder, notebook=notebook, profile=profile, seed=seed, parameters=parameters, device=device,
                        manifest=manifest, published_dir=published)
    print(f"figures -> {description}")
    return saver


def lesson_source(lesson: str) -> Path:
    """The percent-format source ``<lesson>.py`` of a lesson notebook: in the working folder (where the runner and
    JupyterLab run a notebook), else in ``notebooks/`` of the checkout. ValueError naming ``lesson`` otherwise."""
    if not isinstance(lesson, str) or not re.fullmatch(r"\d\d_\w+", lesson):
        raise ValueError(f"lesson: expected a notebook stem such as '06_shapes_vsm', got {lesson!r}")
    for folder in (Path.cwd(), ROOT / "notebooks"):
        if (folder / f"{lesson}.py").is_file():
            return folder / f"{lesson}.py"
    raise ValueError(f"lesson: no source {lesson}.py in {Path.cwd()} or {ROOT / 'notebooks'}")


def _code_cells(text: str) -> Iterator[tuple[int, bool, str]]:
    """(1-based cell number, is the parameters cell, code) of each code cell of a percent-format notebook."""
    cells = re.split(r"^(# %%.*)$", text, flags=re.MULTILINE)
    number = 0
    for header, body in zip(cells[1::2], cells[2::2]):
        number += 1
        if "[markdown]" not in header:
            yield number, "parameters" in header, body


def _assigned(code: str) -> list[str]:
    """The names a cell assigns at its top level (a parameters cell: ``profile = "default"`` ...)."""
    import ast

    return [t.id for node in ast.parse(code).body if isinstance(node, (ast.Assign, ast.AnnAssign))
            for t in (node.targets if isinstance(node, ast.Assign) else [node.target]) if isinstance(t, ast.Name)]


@contextlib.contextmanager
def _quiet_environment() -> Iterator[None]:
    """No runner staging and no publishing while a lesson is re-run: its figures go to a discarded folder."""
    saved = {k: os.environ.pop(k) for k in (STAGING_ENV, TARGET_ENV, PUBLISH_ENV) if k in os.environ}
    try:
        yield
    finally:
        os.environ.update(saved)


def continue_lesson(namespace: dict[str, Any], lesson: str) -> None:
    """An appendix starts where its lesson ended: run the lesson's code cells quietly into ``namespace``.

    Call it as ``continue_lesson(globals(), "06_shapes_vsm")`` from the appendix ``06_shapes_vsm_appendix``, after
    its parameters cell: the lesson runs with the appendix's ``profile`` and ``seed`` (read from ``namespace``), its
    printed output and figures are discarded (the published lesson shows them), and its trained models and sample
    sets load from the cache (a cold cache makes this as slow as the lesson). Afterwards ``namespace`` holds every
    variable and function of the lesson, the appendix's own parameters, and ``saver``: the appendix's
    :class:`~vsmlab.lab.plotting.FigureSaver` (where it writes follows :func:`start`'s rule). RuntimeError names the
    lesson's cell when one fails.
    """
    import matplotlib.pyplot as plt

    source = lesson_source(lesson)
    params = {k: v for k, v in namespace.items() if not k.startswith("_")}  # the appendix's parameters (and more)
    profile = params.get("profile")
    profile_settings(profile, {p: {} for p in PROFILE_NAMES})  # ValueError naming profile
    seed = check_int("seed", params.get("seed"))
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="vsmlab-lesson-") as scratch, _quiet_environment(), _silenced():
        for number, is_parameters, code in _code_cells(source.read_text(encoding="utf-8")):
            try:
                exec(compile(code, f"<{lesson} cell {number}>", "exec"), namespace)
                if is_parameters:  # the appendix's values win (profile, seed, samples_dir, ...); figures are discarded
                    namespace.update({k: params[k] for k in _assigned(code) if k in params})
                    namespace.update(profile=profile, seed=seed, figures_dir=scratch)
            except Exception as exc:
                raise RuntimeError(f"continue_lesson: the lesson {lesson} failed in its cell {number} "
                                   f"({type(exc).__name__}: {exc})") from exc
            finally:
                plt.close("all")
    lesson_saver = namespace.get("saver")
    namespace.update({k: params[k] for k in ("profile", "seed", "figures_dir") if k in params})
    print(f"continued from the lesson {lesson}: its code re-run quietly in {time.perf_counter() - started:.0f} s "
          "(trained models and sample sets are read from the cache when they are there)")
    namespace["saver"] = _saver(lesson + APPENDIX_SUFFIX, profile, seed, params.get("figures_dir"), params.get("publish"),
                                dict(getattr(lesson_saver, "parameters", {"profile": profile, "seed": seed})),
                                getattr(lesson_saver, "device", "cpu"))


@contextlib.contextmanager
def _silenced() -> Iterator[None]:
    """Hide printed and displayed output (IPython's capture where available, else stdout and stderr)."""
    try:
        from IPython.utils.capture import capture_output
    except ImportError:  # plain Python without IPython
        with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
            yield
        return
    with capture_output():
        yield
