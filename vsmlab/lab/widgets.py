"""Interactive explorers: smoothness of the score vs hallucination, in JupyterLab (ipywidgets).

Two explorers share one layout (controls | readouts | message | plot):

- :class:`Explorer`: the exact score of a 1-D Gaussian mixture, smoothed by a temperature tau. Controls:
  the settings of :data:`vsmlab.lab.explorer_state.DEFAULTS` (temperature, number of modes, spacing,
  component std, schedule, sampler, steps, number of samples, seed).
- :class:`TrainedExplorer`: trained eps-networks of different smoothness, loaded from the cache that
  :func:`vsmlab.lab.experiments.train_toy` keeps (one spec per network, :func:`load_trained`).

The widget classes only read controls, call the plain functions of :mod:`vsmlab.lab.explorer_state`
(:func:`~vsmlab.lab.explorer_state.compute_state`, :func:`~vsmlab.lab.explorer_state.evaluate_model`,
:func:`~vsmlab.lab.explorer_state.plot_state`), and show the readouts (listed there), the plot and when / how
fast the update ran. Heavy work runs on release (``continuous_update=False``), never while a slider is
dragged, on :func:`torch_threads` threads.

Bad input never raises into the notebook: slider values typed out of range are clamped to the slider's
bounds; other invalid values (e.g. a sample count outside its range, modes so wide they overlap) are refused
with a visible message, and the previous plot stays in place.

ipywidgets and matplotlib are imported inside the functions that need them, so ``import vsmlab`` stays light.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import html
import math
import time
from typing import Any, Callable, Mapping, Sequence

import torch

from vsmlab.lab.explorer_state import (
    LIMITS, SAMPLER_CHOICES, SCHEDULE_CHOICES, ExplorerState, compute_state, describe_sampling, evaluate_model,
    figure_png, plot_state, spec_labels, validate_settings,
)

__all__ = [
    "load_trained",
    "torch_threads",
    "Explorer",
    "TrainedExplorer",
]

# ------------------------------------------------------------------------------- widgets
_CSS_ERROR = "color:#b2182b;font-weight:bold"


@contextlib.contextmanager
def torch_threads(threads: int | None):
    """Run the block with ``threads`` torch intra-op threads (None: unchanged), then restore the setting.

    The explorer's tensors are small (thousands of numbers): extra threads only add synchronisation, and
    on a busy 2-core machine they made an update about 10x slower (benchmarks/bench_widgets.py).
    """
    if threads is None:
        yield
        return
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(old)


class PngView:
    """What every explorer shows: ``self.widget`` and, for renderers without widgets (a static notebook viewer),
    the last plotted PNG ``self.png`` and :meth:`plain_text` when it returns one."""

    widget: Any
    png: bytes | None = None

    @property
    def plot_hash(self) -> str:
        """SHA-256 of the PNG currently shown ('' before the first successful update)."""
        return hashlib.sha256(self.png).hexdigest() if self.png else ""

    def plain_text(self) -> str | None:
        """The text a renderer without widgets shows beside the PNG (None: none)."""
        return None

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        bundle = dict(self.widget._repr_mimebundle_(**kwargs))
        if self.png:
            bundle["image/png"] = base64.b64encode(self.png).decode("ascii")
        text = self.plain_text()
        if text is not None:
            bundle["text/plain"] = text
        return bundle


class _ExplorerBase(PngView):
    """Shared widget plumbing: readouts, message line, plot Output and the guarded update."""

    model_name = "smoothed"
    threads: int | None = 1  # torch threads during an update (see torch_threads); None leaves torch's setting

    def __init__(self, controls: dict[str, Any], title: str) -> None:
        import ipywidgets as widgets

        self.controls = controls
        self.readouts = {name: widgets.HTML(value="", layout=widgets.Layout(margin="0 2.5em 0 0"))
                         for name in ("rate", "lipschitz", "bound", "time")}
        for name, w in self.readouts.items():
            w.add_class(f"vsmlab-{name}")
        self.message = widgets.HTML(value="")
        self.message.add_class("vsmlab-message")
        self.plot = widgets.Output()
        self.plot.add_class("vsmlab-plot")
        self.state: ExplorerState | None = None
        self.png: bytes | None = None
        self.updates = 0
        self.failures = 0
        for name, control in controls.items():
            control.add_class(f"vsmlab-{name}")
            control.style.description_width = "8.5em"
            control.observe(self._on_change, names="value")
        rows = list(controls.values())
        half = (len(rows) + 1) // 2
        self.widget = widgets.VBox([
            widgets.HTML(f"<b>{html.escape(title)}</b>"),
            widgets.HBox([widgets.VBox(rows[:half]), widgets.VBox(rows[half:])]),
            widgets.HBox([self.readouts["rate"], self.readouts["time"]]),
            widgets.HBox([self.readouts["lipschitz"], self.readouts["bound"]]),
            self.message,
            self.plot,
        ])
        self.widget.add_class("vsmlab-explorer")

    # subclasses: read the controls and compute
    def _compute(self) -> ExplorerState:  # pragma: no cover - abstract
        raise NotImplementedError

    def _sync_controls(self) -> None:
        """Enable/disable controls that do not apply (e.g. steps under DDPM)."""
        if "steps" in self.controls and "sampler" in self.controls:
            self.controls["steps"].disabled = self.controls["sampler"].value == "ddpm"

    def _on_change(self, change: dict) -> None:
        self.update()

    def update(self) -> ExplorerState | None:
        """Recompute from the controls and redraw. On any failure: show the message, keep the old plot."""
        self._sync_controls()
        self.message.value = "<i>updating ...</i>"
        start = time.perf_counter()
        try:
            with torch_threads(self.threads):
                state = self._compute()
            png = figure_png(plot_state(state, self.model_name))
        except Exception as exc:  # shown to the user, never raised into the notebook
            self.failures += 1
            self.message.value = (f"<span style='{_CSS_ERROR}'>Not updated ({type(exc).__name__}): "
                                  f"{html.escape(str(exc))}</span> (the plot shows the last valid settings)")
            return None
        self.state, self.png = state, png
        self.updates += 1
        self.plot.outputs = ({
            "output_type": "display_data",
            "data": {"image/png": base64.b64encode(png).decode("ascii"),
                     "text/plain": f"<explorer plot {self.plot_hash[:12]}>"},
            "metadata": {},
        },)
        texts = state.readouts()
        stamp = time.strftime("%H:%M:%S")
        texts["time"] = f"updated {stamp} in {time.perf_counter() - start:.2f} s"
        for name, text in texts.items():
            self.readouts[name].value = html.escape(text)
        self.message.value = ""
        return state

    def plain_text(self) -> str | None:
        """The rate, Lipschitz and bound readouts of the last update (None before the first)."""
        if self.state is None:
            return None
        texts = self.state.readouts()
        return "\n".join(texts[k] for k in ("rate", "lipschitz", "bound"))


def _sampler_controls(widgets, sampler: str, steps: int, num_samples: int, seed: int) -> dict[str, Any]:
    lo, hi = LIMITS["steps"]
    return {
        "sampler": widgets.ToggleButtons(options=[(v, k) for k, v in SAMPLER_CHOICES.items()], value=sampler,
                                         description="sampler", style={"button_width": "64px"}),
        "steps": widgets.IntSlider(value=steps, min=int(lo), max=int(hi), step=10, description="steps",
                                   continuous_update=False),
        "num_samples": widgets.IntText(value=num_samples, description="samples"),
        "seed": widgets.IntText(value=seed, description="seed"),
    }


class Explorer(_ExplorerBase):
    """Exact score smoothed by a temperature: drag tau and watch samples leak into the gaps.

    ``Explorer(**settings)`` starts from :data:`DEFAULTS` updated by ``settings``. Attributes: ``widget``
    (display it), ``controls`` (name -> widget, names as in :data:`DEFAULTS`), ``readouts``, ``message``,
    ``plot`` (the Output), ``state`` (last :class:`ExplorerState`), ``updates`` / ``failures`` (counters),
    ``threads`` (torch threads while updating, default 1; None keeps torch's setting). ``update()`` redraws
    from the current controls.
    """

    def __init__(self, **settings: Any) -> None:
        import ipywidgets as widgets

        s = validate_settings(**settings)
        log10 = math.log10
        t_lo, t_hi = LIMITS["temperature"]
        s_lo, s_hi = LIMITS["std"]
        controls = {
            "temperature": widgets.FloatLogSlider(
                value=s["temperature"], base=10, min=log10(t_lo), max=log10(t_hi), step=0.05,
                description="temperature τ", readout_format=".3g", continuous_update=False),
            "num_modes": widgets.IntSlider(value=s["num_modes"], min=int(LIMITS["num_modes"][0]),
                                           max=int(LIMITS["num_modes"][1]), description="modes",
                                           continuous_update=False),
            "spacing": widgets.FloatSlider(value=s["spacing"], min=LIMITS["spacing"][0], max=LIMITS["spacing"][1],
                                           step=0.05, description="spacing", continuous_update=False),
            "std": widgets.FloatLogSlider(value=s["std"], base=10, min=log10(s_lo), max=log10(s_hi), step=0.05,
                                          description="mode std", readout_format=".3g", continuous_update=False),
            "schedule": widgets.Dropdown(options=[(label, key) for key, (label, _) in SCHEDULE_CHOICES.items()],
                                         value=s["schedule"], description="schedule"),
            **_sampler_controls(widgets, s["sampler"], s["steps"], s["num_samples"], s["seed"]),
        }
        super().__init__(controls, "Smoothness vs hallucination: the exact score at temperature τ (τ = 1: exact)")
        self.update()

    def settings(self) -> dict[str, Any]:
        """The current control values as a settings dict for :func:`compute_state`."""
        return {name: control.value for name, control in self.controls.items()}

    def _compute(self) -> ExplorerState:
        return compute_state(**self.settings())


SNAPSHOT_KEYS = ("snapshot_steps", "snapshot")


def load_trained(entry: Mapping[str, Any]):
    """The network of one trained-explorer entry, through the cache: ``train_toy(spec).model``.

    An entry is a :func:`vsmlab.lab.experiments.train_toy` spec, optionally with two extra keys that pick a
    training snapshot: ``snapshot_steps`` (the steps the run kept, exactly as the notebook passed them, so the
    same cache entry is read) and ``snapshot`` (one of those steps; without it the final network).
    """
    from vsmlab.lab.experiments import train_toy

    spec = {k: v for k, v in entry.items() if k not in SNAPSHOT_KEYS}
    run = train_toy(spec, snapshot_steps=tuple(entry.get("snapshot_steps", ())))
    step = entry.get("snapshot")
    if step is None:
        return run.model
    if step not in run.snapshots:
        raise ValueError(f"snapshot: step {step!r} was not kept by this run; kept: {sorted(run.snapshots)} "
                         "(list it in snapshot_steps)")
    return run.snapshots[step]


class TrainedExplorer(_ExplorerBase):
    """Trained networks of different smoothness, loaded from the cache of :func:`vsmlab.lab.experiments.train_toy`.

    entries: a list of train_toy specs (labels name the keys that differ) or a mapping label -> spec; a
    spec may carry ``snapshot_steps`` / ``snapshot`` to pick a training snapshot (see :func:`load_trained`).
    Networks are loaded on first selection with ``loader(entry)`` (default :func:`load_trained`: the cache
    the notebook filled, so nothing is retrained) and kept. Every spec must describe a 1-D mixture.
    Controls: network, sampler, steps, samples, seed (the default DDIM with 50 steps keeps a change under a
    second for the lab's nets; DDPM runs all T steps of the network and is much slower).
    """

    model_name = "learned"

    def __init__(
        self, entries: Sequence[Mapping[str, Any]] | Mapping[str, Mapping[str, Any]], *, sampler: str = "ddim",
        steps: int = 50, num_samples: int = 2000, seed: int = 0, loader: Callable[[dict], Any] | None = None,
    ) -> None:
        import ipywidgets as widgets

        from vsmlab.lab.experiments import make_mixture, make_schedule

        if isinstance(entries, Mapping):
            labels, entry_list = [str(k) for k in entries], [dict(v) for v in entries.values()]
        else:
            entry_list = [dict(s) for s in entries]
            labels = spec_labels(entry_list)
        if not entry_list:
            raise ValueError("entries: expected at least one train_toy spec")
        for i, entry in enumerate(entry_list):
            for key in ("mixture", "schedule"):
                if key not in entry:
                    raise ValueError(f"entries: entry {i} ({labels[i]}) has no {key!r}; expected train_toy specs")
            dim = make_mixture(entry["mixture"]).dim
            if dim != 1:
                raise ValueError(f"entries: entry {i} ({labels[i]}) has a {dim}-D mixture; "
                                 "the trained explorer shows 1-D mixtures")
        validate_settings(sampler=sampler, steps=steps, num_samples=num_samples, seed=seed)
        self.entries, self.labels = entry_list, labels
        self._make_mixture, self._make_schedule = make_mixture, make_schedule
        self._loader = loader or load_trained
        self._models: dict[int, Any] = {}
        controls = {
            "model": widgets.Dropdown(options=[(label, i) for i, label in enumerate(labels)], value=0,
                                      description="network"),
            **_sampler_controls(widgets, sampler, steps, num_samples, seed),
        }
        super().__init__(controls, "Trained networks: learned vs exact score at t = 0")
        self.update()

    def model(self, index: int):
        """The network of entry ``index`` (loaded once through the loader, i.e. the cache)."""
        if index not in self._models:
            self._models[index] = self._loader(self.entries[index])
        return self._models[index]

    def _compute(self) -> ExplorerState:
        c = {name: control.value for name, control in self.controls.items()}
        s = validate_settings(sampler=c["sampler"], steps=c["steps"], num_samples=c["num_samples"], seed=c["seed"])
        index = c["model"]
        entry = self.entries[index]
        return evaluate_model(self.model(index), self._make_mixture(entry["mixture"]),
                              self._make_schedule(entry["schedule"]), sampler=s["sampler"], steps=s["steps"],
                              num_samples=s["num_samples"], seed=s["seed"],
                              label=f"{self.labels[index]} · {describe_sampling(s)}",
                              settings={"model": self.labels[index], **{k: s[k] for k in c if k != "model"}})
