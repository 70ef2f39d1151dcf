"""Image explorer: pick a model, scrub t, watch x_t and x0_hat of a grid of samples settle (or not).

For each model (a mapping name -> model with the contract ``model(x_t, t) -> Prediction``, e.g.
``{"exact": ExactShapesScore(schedule, 32), "rho0": unet}``) the explorer samples ``num_samples`` SimpleShapes
images once with a fixed seed, recording the trajectory (x_t and x0_hat every ``record_every`` steps,
moved to the CPU as recorded), and caches it; scrubbing t only redraws. Each sample is labelled by the
strict validator (:func:`vsmlab.data.shapes_validate.validate`) and scored by the trajectory variance of
x0_hat over the last ``k`` recorded steps (:func:`vsmlab.analysis.detectors.trajectory_variance`; with
``record_every > 1`` those are every ``record_every``-th step, so the score differs from the detector's).

Plain functions do the work: :func:`compute_trajectory` -> :class:`ImageTrajectory`; :func:`plot_frame`
draws one recorded step. :class:`ImageExplorer` only reads controls, calls these and shows the result.
Bad input (an unknown model name, an empty sample set, a model built for another image size, a model that
fails) is shown as a message naming the value; the last plot stays.

ipywidgets and matplotlib are imported inside the functions that need them, so ``import vsmlab`` stays light.
"""

from __future__ import annotations

import base64
import html
import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import numpy as np
import torch

from vsmlab.analysis.detectors import trajectory_variance
from vsmlab.core.checks import check_choice, check_int
from vsmlab.core.schedules import Schedule
from vsmlab.data.shapes import geometry, to_uint8
from vsmlab.data.shapes_validate import validate
from vsmlab.diffusion.samplers import sample
from vsmlab.lab.widgets import PngView

__all__ = ["ImageTrajectory", "model_image_size", "compute_trajectory", "plot_frame", "ImageExplorer"]

MAX_SAMPLES = 64


@dataclass(frozen=True)
class ImageTrajectory:
    """One model's recorded sampling run. steps: the R recorded (original) steps, descending; x_t, x0_hat:
    float32 [R, B, S, S] on the CPU; samples: uint8 [B, S, S]; categories: the validator's category per
    sample; scores: float64 [B] trajectory variance over the last ``k`` recorded steps; seconds: wall time."""

    name: str
    steps: list[int]
    x_t: torch.Tensor
    x0_hat: torch.Tensor
    samples: np.ndarray
    categories: list[str]
    scores: torch.Tensor
    k: int
    seconds: float

    def index_of(self, t: int) -> int:
        """Index of the recorded step nearest to ``t`` (ties: the larger t, i.e. the earlier step)."""
        return int(np.argmin([abs(s - t) for s in self.steps]))


def model_image_size(model: Any) -> int | None:
    """The image side a model declares (``image_size`` of the lab's UNet, ``size`` of ExactShapesScore), or None."""
    for attr in ("image_size", "size"):
        value = getattr(model, attr, None)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


def compute_trajectory(
    model: Callable, schedule: Schedule, *, size: int = 32, num_samples: int = 4, seed: int = 0,
    num_steps: int | None = 50, sampler: str = "ddpm", record_every: int = 1, k: int = 10, name: str = "",
    device: torch.device | str | None = None,
) -> ImageTrajectory:
    """Sample ``num_samples`` images of side ``size`` with ``sampler`` ("ddpm" respaced to ``num_steps`` or
    "ddim", eta = 0) from ``torch.Generator(device).manual_seed(seed)``, recording every ``record_every``-th
    step to the CPU; label and score the samples. Raises ValueError naming a bad argument (e.g. an empty
    sample set, a model declaring another image size)."""
    geom = geometry(size)
    check_int("num_samples", num_samples, low=1, high=MAX_SAMPLES, hint="an empty sample set shows nothing")
    check_int("seed", seed, low=0)
    check_int("record_every", record_every, low=1)
    check_int("k", k, low=2)
    check_choice("sampler", sampler, ("ddpm", "ddim"))
    declared = model_image_size(model)
    if declared is not None and declared != geom.size:
        raise ValueError(f"model {name!r}: built for {declared} px images (a checkpoint for another image size); "
                         f"this explorer shows {geom.size} px")
    start = time.perf_counter()
    dev = torch.device(device) if device is not None else torch.device("cpu")
    gen = torch.Generator(device=dev).manual_seed(seed)
    res = sample(sampler, model, schedule, shape=(num_samples, 1, geom.size, geom.size), generator=gen,
                 num_steps=num_steps, record=True, record_every=record_every, record_device="cpu", device=dev)
    x_t, x0 = res.x_t[:, :, 0].float(), res.x0_hat[:, :, 0].float()
    samples = to_uint8(res.samples)
    categories = [v.category for v in validate(samples)]
    kk = min(k, x0.shape[0])
    scores = trajectory_variance(x0, kk) if kk >= 2 else torch.zeros(num_samples, dtype=torch.float64)
    return ImageTrajectory(name, list(res.recorded_steps), x_t, x0, samples, categories, scores.cpu(), kk,
                           time.perf_counter() - start)


def plot_frame(traj: ImageTrajectory, index: int):
    """Figure: x_t (top row) and x0_hat (bottom row) of every sample at recorded step ``index``; each column
    titled with the sample's validator category and trajectory-variance score (red: not valid)."""
    import matplotlib.pyplot as plt

    check_int("index", index, low=0, high=len(traj.steps) - 1)
    B = traj.x_t.shape[1]
    fig, axes = plt.subplots(2, B, figsize=(1.7 * B + 0.6, 3.9), squeeze=False)
    for b in range(B):
        for row, (img, label) in enumerate(((traj.x_t[index, b], "x_t"), (traj.x0_hat[index, b], "x0_hat"))):
            ax = axes[row, b]
            ax.imshow(img.clamp(-1, 1).numpy(), cmap="gray", vmin=-1, vmax=1, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if b == 0:
                ax.set_ylabel(label)
        cat = traj.categories[b]
        axes[0, b].set_title(f"#{b} {cat}\nvar {float(traj.scores[b]):.3g}", fontsize="small",
                             color="#b2182b" if cat != "valid" else "black")
    fig.suptitle(f"{traj.name}: t = {traj.steps[index]} (recorded step {index + 1} of {len(traj.steps)})",
                 fontsize="medium")
    fig.subplots_adjust(left=0.06, right=0.99, bottom=0.02, top=0.78, wspace=0.08, hspace=0.08)
    return fig


_CSS_ERROR = "color:#b2182b;font-weight:bold"


class ImageExplorer(PngView):
    """Widget over a mapping name -> model (see the module docstring).

    ``ImageExplorer(models, schedule, size=32, num_samples=4, num_steps=50, ...)``. Attributes: ``widget``
    (display it), ``controls`` ("model", "t", "num_samples", "seed"), ``readouts`` ("step", "labels",
    "scores", "time"), ``message``, ``plot`` (an Output), ``trajectory`` (the one shown), ``png``,
    ``computed`` (trajectories sampled so far), ``failures``. :meth:`show` sets any of model / t /
    num_samples / seed programmatically and redraws (errors go to ``message``, never raised).
    """

    threads: int | None = 1

    def __init__(
        self, models: Mapping[str, Callable], schedule: Schedule, *, size: int = 32, num_samples: int = 4,
        num_steps: int | None = 50, sampler: str = "ddpm", seed: int = 0, record_every: int = 1, k: int = 10,
        model: str | None = None, device: torch.device | str | None = None,
    ) -> None:
        import ipywidgets as widgets

        if not isinstance(models, Mapping) or not models:
            raise ValueError(f"models: expected a non-empty mapping name -> model, got {models!r}")
        if not isinstance(schedule, Schedule):
            raise TypeError(f"schedule: expected a Schedule, got {type(schedule).__name__}")
        self.models = {str(k_): m for k_, m in models.items()}
        self.schedule, self.size = schedule, geometry(size).size
        self.options = dict(num_steps=num_steps, sampler=sampler, record_every=record_every, k=k, device=device)
        check_choice("sampler", sampler, ("ddpm", "ddim"))
        first = model if model is not None else next(iter(self.models))
        if first not in self.models:
            raise ValueError(f"model: {first!r} is not one of {list(self.models)}")
        self._cache: dict[tuple, ImageTrajectory] = {}
        self.trajectory: ImageTrajectory | None = None
        self.png: bytes | None = None
        self.computed = 0
        self.failures = 0
        self._busy = False
        T = schedule.num_steps
        self.controls = {
            "model": widgets.Dropdown(options=list(self.models), value=first, description="model"),
            "t": widgets.IntSlider(value=T - 1, min=0, max=T - 1, description="t", continuous_update=False),
            "num_samples": widgets.IntText(value=num_samples, description="samples"),
            "seed": widgets.IntText(value=seed, description="seed"),
        }
        self.readouts = {name: widgets.HTML(value="", layout=widgets.Layout(margin="0 2em 0 0"))
                         for name in ("step", "labels", "scores", "time")}
        for name, w in self.readouts.items():
            w.add_class(f"vsmlab-{name}")
        for name, c in self.controls.items():
            c.add_class(f"vsmlab-{name}")
            c.observe(self._on_change, names="value")
        self.message = widgets.HTML(value="")
        self.message.add_class("vsmlab-message")
        self.plot = widgets.Output()
        self.plot.add_class("vsmlab-plot")
        self.widget = widgets.VBox([
            widgets.HTML("<b>Image explorer: x_t and x0_hat along the sampling trajectory</b>"),
            widgets.HBox(list(self.controls.values())),
            widgets.HBox([self.readouts["step"], self.readouts["time"]]),
            self.readouts["labels"], self.readouts["scores"], self.message, self.plot,
        ])
        self.widget.add_class("vsmlab-image-explorer")
        self.update()

    # ------------------------------------------------------------------------------ computing
    def trajectory_for(self, name: str, num_samples: int, seed: int) -> ImageTrajectory:
        """The cached trajectory of model ``name`` (sampled on first use). ValueError naming a bad value."""
        if name not in self.models:
            raise ValueError(f"model: {name!r} is not one of {list(self.models)}")
        key = (name, num_samples, seed)
        if key not in self._cache:
            from vsmlab.lab.widgets import torch_threads

            with torch_threads(self.threads):
                self._cache[key] = compute_trajectory(
                    self.models[name], self.schedule, size=self.size, num_samples=num_samples, seed=seed,
                    name=name, **self.options)
            self.computed += 1
        return self._cache[key]

    def _on_change(self, change: dict) -> None:
        if not self._busy:
            self.update()

    def show(self, **values: Any) -> ImageTrajectory | None:
        """Set controls (model, t, num_samples, seed) and redraw; a bad value is shown, not raised."""
        unknown = sorted(set(values) - set(self.controls))
        if unknown:
            return self._fail(ValueError(f"show: unknown {', '.join(unknown)}; allowed: {', '.join(self.controls)}"))
        return self.update(**values)

    def update(self, **overrides: Any) -> ImageTrajectory | None:
        """Redraw from the controls (with ``overrides``); on failure show the message and keep the last plot."""
        c = {name: w.value for name, w in self.controls.items()}
        c.update(overrides)
        start = time.perf_counter()
        self.message.value = "<i>updating ...</i>"
        try:
            traj = self.trajectory_for(c["model"], c["num_samples"], c["seed"])
            t = check_int("t", c["t"], low=0, high=self.schedule.num_steps - 1)
            index = traj.index_of(t)
            from vsmlab.lab.explorer_state import figure_png

            png = figure_png(plot_frame(traj, index))
        except Exception as exc:  # shown to the user, never raised into the notebook
            return self._fail(exc)
        self._busy = True
        try:  # reflect programmatic values in the controls without re-triggering an update
            for name, value in overrides.items():
                self.controls[name].value = value
        finally:
            self._busy = False
        self.trajectory, self.png = traj, png
        self.plot.outputs = ({
            "output_type": "display_data",
            "data": {"image/png": base64.b64encode(png).decode("ascii"),
                     "text/plain": f"<image explorer plot {self.plot_hash[:12]}>"},
            "metadata": {},
        },)
        counts = {cat: traj.categories.count(cat) for cat in dict.fromkeys(traj.categories)}
        texts = {
            "step": f"t = {traj.steps[index]} (recorded step {index + 1} of {len(traj.steps)}; asked t = {t})",
            "labels": f"{traj.name}: " + ", ".join(f"#{b} {cat}" for b, cat in enumerate(traj.categories))
                      + " · " + ", ".join(f"{n} {cat}" for cat, n in counts.items()),
            "scores": f"trajectory variance (last {traj.k} recorded steps): "
                      + ", ".join(f"#{b} {float(s):.3g}" for b, s in enumerate(traj.scores)),
            "time": f"updated in {time.perf_counter() - start:.2f} s (sampling took {traj.seconds:.2f} s)",
        }
        for name, text in texts.items():
            self.readouts[name].value = html.escape(text, quote=False)
        self.message.value = ""
        return traj

    def _fail(self, exc: Exception) -> None:
        self.failures += 1
        self.message.value = (f"<span style='{_CSS_ERROR}'>Not updated ({type(exc).__name__}): "
                              f"{html.escape(str(exc), quote=False)}</span> (the plot shows the last valid settings)")
        return None
