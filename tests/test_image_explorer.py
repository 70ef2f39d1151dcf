"""Headless tests of the image explorer (vsmlab.lab.image_explorer): callbacks, cache, oracles, bad input.

No browser: a control's ``.value = ...`` fires the same observers as in JupyterLab (tests/test_browser.py
opens the explorer in a real JupyterLab)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

pytest.importorskip("ipywidgets")
pytest.importorskip("matplotlib")

import vsmlab  # noqa: E402
from vsmlab.analysis.detectors import trajectory_variance  # noqa: E402
from vsmlab.core.prediction import Prediction  # noqa: E402
from vsmlab.data.shapes import to_uint8  # noqa: E402
from vsmlab.data.shapes_score import ExactShapesScore  # noqa: E402
from vsmlab.data.shapes_validate import validate  # noqa: E402
from vsmlab.lab import image_explorer as IE  # noqa: E402

SIZE = 32
STEPS = 12


@pytest.fixture(scope="module")
def schedule():
    return vsmlab.cosine(1000)


class Shrink(torch.nn.Module):
    """A poor model (eps = 0.3 x): its samples are not shapes."""

    def forward(self, x, t):
        return Prediction(eps=0.3 * x)


class WrongSize(Shrink):
    image_size = 64


@pytest.fixture
def explorer(schedule):
    models = {"exact": ExactShapesScore(schedule, SIZE), "shrink": Shrink(), "unet64": WrongSize(),
              "exact64": ExactShapesScore(schedule, 64)}
    return IE.ImageExplorer(models, schedule, size=SIZE, num_samples=3, num_steps=STEPS, seed=5)


def test_import_stays_light():
    code = ("import sys, vsmlab.lab.image_explorer; "
            "heavy = [m for m in ('ipywidgets', 'matplotlib') if m in sys.modules]; print(heavy); sys.exit(bool(heavy))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr[-500:]


def test_trajectory_is_the_seeded_ddpm_run_with_labels_and_scores(schedule):
    model = ExactShapesScore(schedule, SIZE)
    traj = IE.compute_trajectory(model, schedule, size=SIZE, num_samples=3, seed=5, num_steps=STEPS, name="exact")
    ref = vsmlab.ddpm(model, schedule, shape=(3, 1, SIZE, SIZE), num_steps=STEPS, record=True,
                      generator=torch.Generator().manual_seed(5))
    assert traj.steps == ref.timesteps and traj.x_t.shape == (STEPS, 3, SIZE, SIZE)
    assert torch.equal(traj.x0_hat, ref.x0_hat[:, :, 0]) and np.array_equal(traj.samples, to_uint8(ref.samples))
    assert traj.categories == [v.category for v in validate(to_uint8(ref.samples))]
    assert torch.equal(traj.scores, trajectory_variance(ref.x0_hat, 10))
    assert traj.index_of(1000) == 0 and traj.index_of(-5) == STEPS - 1
    thinned = IE.compute_trajectory(model, schedule, size=SIZE, num_samples=3, seed=5, num_steps=STEPS, record_every=3)
    keep = [i for i in range(STEPS) if (STEPS - 1 - i) % 3 == 0]  # every 3rd, counted back from the last step
    assert thinned.steps == [ref.timesteps[i] for i in keep] and torch.equal(thinned.x0_hat, ref.x0_hat[keep, :, 0])
    assert thinned.k == len(keep)  # fewer recorded steps than k: the score uses all of them


def test_explorer_starts_with_a_plot_and_readouts(explorer):
    assert explorer.png and explorer.computed == 1 and explorer.message.value == ""
    assert explorer.readouts["step"].value.startswith("t = 999")
    assert "exact: #0" in explorer.readouts["labels"].value
    assert explorer.readouts["scores"].value.startswith("trajectory variance")


def test_scrubbing_t_redraws_without_resampling(explorer):
    before, h = explorer.readouts["step"].value, explorer.plot_hash
    explorer.controls["t"].value = 300
    traj = explorer.trajectory
    assert explorer.computed == 1 and explorer.plot_hash != h
    assert explorer.readouts["step"].value != before
    assert explorer.readouts["step"].value.startswith(f"t = {traj.steps[traj.index_of(300)]} ")


def test_switching_models_samples_once_per_model(explorer):
    explorer.controls["model"].value = "shrink"
    assert explorer.computed == 2 and explorer.trajectory.name == "shrink"
    assert "shrink:" in explorer.readouts["labels"].value
    explorer.controls["model"].value = "exact"
    explorer.controls["model"].value = "shrink"
    assert explorer.computed == 2  # cached
    explorer.show(seed=6)
    assert explorer.computed == 3 and explorer.controls["seed"].value == 6


@pytest.mark.parametrize("values, needle", [
    (dict(model="nope"), "'nope'"),
    (dict(num_samples=0), "num_samples"),
    (dict(model="unet64"), "built for 64 px"),
    (dict(model="exact64"), "64"),
    (dict(t=5000), "t:"),
    (dict(colour=1), "colour"),
])
def test_bad_input_shows_a_message_and_keeps_the_plot(explorer, values, needle):
    h, step = explorer.plot_hash, explorer.readouts["step"].value
    assert explorer.show(**values) is None
    assert needle in explorer.message.value and "Not updated" in explorer.message.value
    assert explorer.plot_hash == h and explorer.readouts["step"].value == step and explorer.failures == 1
    explorer.show(t=500)  # and it recovers
    assert explorer.message.value == "" and explorer.plot_hash != h


def test_typing_zero_samples_in_the_widget_is_refused(explorer):
    h = explorer.plot_hash
    explorer.controls["num_samples"].value = 0
    assert "num_samples" in explorer.message.value and explorer.plot_hash == h


def test_constructor_errors(schedule):
    with pytest.raises(ValueError, match="models"):
        IE.ImageExplorer({}, schedule)
    with pytest.raises(ValueError, match="model: 'x'"):
        IE.ImageExplorer({"a": Shrink()}, schedule, model="x")
    with pytest.raises(ValueError, match="size"):
        IE.ImageExplorer({"a": Shrink()}, schedule, size=48)
