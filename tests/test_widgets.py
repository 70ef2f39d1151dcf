"""Headless tests of the interactive explorers (vsmlab.lab.widgets, vsmlab.lab.explorer_state): callbacks,
readouts, bad input, oracles.

No browser and no kernel: ipywidgets run without a frontend, so a control's ``.value = ...`` fires the
same observers a slider release fires in JupyterLab. The end-to-end browser test is tests/test_browser.py.
"""

from __future__ import annotations

import math
import subprocess
import sys

import pytest
import torch

pytest.importorskip("ipywidgets")
pytest.importorskip("matplotlib")

import vsmlab  # noqa: E402
from vsmlab.lab import explorer_state as S  # noqa: E402
from vsmlab.lab import widgets as W  # noqa: E402

FAST = dict(num_samples=600, sampler="ddim", steps=20)  # keeps each update to a few tens of ms


def readout_texts(explorer) -> dict[str, str]:
    return {name: w.value for name, w in explorer.readouts.items()}


# --------------------------------------------------------------------------------- import cost
def test_import_vsmlab_stays_light():
    code = ("import sys, vsmlab, vsmlab.lab.explorer_state, vsmlab.lab.widgets; "
            "heavy = [m for m in ('ipywidgets', 'matplotlib', 'IPython') if m in sys.modules]; "
            "print(heavy); sys.exit(1 if heavy else 0)")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, (f"importing vsmlab.lab.explorer_state / widgets pulled in {res.stdout.strip()} "
                                 f"{res.stderr[-500:]}")


# ----------------------------------------------------------------------------- compute_state
def lipschitz_two_modes(spacing: float, std: float, schedule: vsmlab.Schedule, temperature: float) -> float:
    """Exact max |ds/dx| at t = 0 for two equal 1-D modes: with g_k = -(x - a mu_k) / v, the Jacobian is
    J = -1/v + r_1 r_2 (g_1 - g_2)^2 / tau, g_1 - g_2 = a spacing / v constant and r_1 r_2 <= 1/4 (at the
    midpoint), so max |J| = max(1/v, |-1/v + (a spacing / v)^2 / (4 tau)|)."""
    ab = float(schedule.alpha_bar[0])
    a, v = math.sqrt(ab), ab * std**2 + 1 - ab
    return max(1 / v, abs(-1 / v + (a * spacing / v) ** 2 / (4 * temperature)))


@pytest.mark.parametrize("temperature", [1.0, 3.0, 30.0])
@pytest.mark.parametrize("schedule", ["linear", "aggressive", "cosine"])
def test_lipschitz_readout_matches_closed_form(temperature, schedule):
    state = S.compute_state(temperature=temperature, num_modes=2, spacing=1.0, std=0.05, schedule=schedule, **FAST)
    expected = lipschitz_two_modes(1.0, 0.05, S.explorer_schedule(schedule), temperature)
    assert state.lipschitz == pytest.approx(expected, rel=1e-6)
    assert state.lipschitz_exact == pytest.approx(lipschitz_two_modes(1.0, 0.05, S.explorer_schedule(schedule), 1.0), rel=1e-6)


def test_rate_readout_is_the_metric_on_the_same_seeded_samples(mix1d):
    settings = dict(temperature=5.0, num_samples=800, sampler="ddim", steps=30, seed=3)
    state = S.compute_state(**settings)
    schedule = S.explorer_schedule("linear")
    model = vsmlab.ExactScoreModel(mix1d, schedule, 5.0)
    samples = vsmlab.ddim(model, schedule, shape=(800, 1), generator=torch.Generator().manual_seed(3), num_steps=30).samples
    expected = vsmlab.hallucination_rate(samples, mix1d)
    assert state.rate == expected
    assert state.floor == pytest.approx(6.334e-5, rel=1e-3)  # P(|z| > 4)
    assert torch.equal(state.samples, samples[:, 0].double())


def test_compute_state_is_deterministic_and_seed_dependent():
    a, b = S.compute_state(temperature=4.0, **FAST), S.compute_state(temperature=4.0, **FAST)
    assert a.readouts()["rate"] == b.readouts()["rate"] and torch.equal(a.samples, b.samples)
    c = S.compute_state(temperature=4.0, seed=1, **FAST)
    assert not torch.equal(a.samples, c.samples)


def test_smoother_score_hallucinates_more_and_the_bound_holds():
    states = {tau: S.compute_state(temperature=tau, num_samples=2000, sampler="ddim", steps=50) for tau in (1.0, 10.0)}
    sharp, smooth = states[1.0], states[10.0]
    assert smooth.lipschitz < sharp.lipschitz
    assert smooth.rate.low > sharp.rate.high  # intervals do not overlap: 19% vs ~0%
    assert smooth.bound > sharp.bound
    # at tau = 1 the bound underflows (0 < 1e-300): the readout must say so instead of claiming a bound
    assert sharp.bound == 0 and "underflow" in sharp.readouts()["bound"]


def test_bound_is_informative_and_below_the_actual_gap_mass_where_it_does_not_underflow():
    """Only a bound that is well above zero says anything: check it there (tau = 100: L ~ 385, bound ~ 3e-5)."""
    s = S.compute_state(temperature=100.0, num_samples=100, sampler="ddim", steps=10)
    assert s.bound_exact_modes and math.isfinite(s.gap_mass)
    assert s.bound > 1e-6  # informative: a mass a sampler could resolve, not an underflow
    assert s.bound <= s.gap_mass  # a lower bound on the smoothed density's own gap mass must not exceed it
    assert f"{s.bound:.3g}" in s.readouts()["bound"] and "underflow" not in s.readouts()["bound"]


def test_ddpm_ignores_steps_and_other_samplers_use_them():
    base = dict(temperature=3.0, num_samples=300)
    assert torch.equal(S.compute_state(sampler="ddpm", steps=10, **base).samples,
                       S.compute_state(sampler="ddpm", steps=500, **base).samples)
    assert not torch.equal(S.compute_state(sampler="ode", steps=10, **base).samples,
                           S.compute_state(sampler="ode", steps=50, **base).samples)


@pytest.mark.parametrize("bad, name", [
    (dict(num_samples=10), "num_samples"), (dict(num_samples=10**7), "num_samples"), (dict(seed=-1), "seed"),
    (dict(temperature=0.0), "temperature"), (dict(temperature=float("nan")), "temperature"),
    (dict(steps=2.5), "steps"), (dict(schedule="quadratic"), "schedule"), (dict(sampler="euler"), "sampler"),
    (dict(std=0.2, spacing=1.0), "std"), (dict(colour="red"), "colour"), (dict(num_modes=True), "num_modes"),
])
def test_validate_settings_names_the_bad_setting(bad, name):
    with pytest.raises(ValueError, match=name):
        S.compute_state(**bad)


# ------------------------------------------------------------------------------- the widget
@pytest.fixture
def explorer():
    return W.Explorer(temperature=1.0, **FAST)


def test_explorer_starts_with_a_plot_and_readouts(explorer):
    assert explorer.updates == 1 and explorer.failures == 0 and explorer.message.value == ""
    (out,) = explorer.plot.outputs
    assert out["output_type"] == "display_data" and out["data"]["image/png"]
    texts = readout_texts(explorer)
    assert "hallucination rate" in texts["rate"] and "Lipschitz" in texts["lipschitz"]
    assert "bound" in texts["bound"] and texts["time"].startswith("updated ")
    expected = S.compute_state(**explorer.settings()).readouts()
    assert texts["rate"] == expected["rate"] and texts["lipschitz"] == expected["lipschitz"]
    assert set(explorer.controls) == set(S.DEFAULTS)


def test_temperature_change_updates_readout_and_figure(explorer):
    before_text, before_hash = readout_texts(explorer)["rate"], explorer.plot_hash
    before_lipschitz = explorer.state.lipschitz
    before_png = explorer.plot.outputs[0]["data"]["image/png"]
    explorer.controls["temperature"].value = 10.0
    assert explorer.updates == 2 and explorer.message.value == ""
    assert readout_texts(explorer)["rate"] != before_text
    assert explorer.state.settings["temperature"] == pytest.approx(10.0)
    assert explorer.plot_hash != before_hash
    assert explorer.plot.outputs[0]["data"]["image/png"] != before_png
    assert explorer.state.lipschitz < before_lipschitz  # smoother score, smaller Lipschitz constant


@pytest.mark.parametrize("name, value", [("num_modes", 5), ("spacing", 1.5), ("std", 0.02), ("schedule", "cosine"),
                                         ("sampler", "ode"), ("steps", 40), ("num_samples", 700), ("seed", 9)])
def test_every_control_triggers_an_update(explorer, name, value):
    before = explorer.plot_hash
    explorer.controls[name].value = value
    assert explorer.updates == 2 and explorer.failures == 0
    assert explorer.state.settings[name] == value
    assert explorer.plot_hash != before


def test_invalid_typed_value_shows_message_and_keeps_previous_plot(explorer):
    plot_before, texts_before, state_before = explorer.plot.outputs, readout_texts(explorer), explorer.state
    explorer.controls["num_samples"].value = 10  # typed into the IntText: below the allowed 100
    assert explorer.failures == 1 and explorer.updates == 1
    assert "num_samples" in explorer.message.value and "Not updated" in explorer.message.value
    assert explorer.plot.outputs == plot_before and readout_texts(explorer) == texts_before
    assert explorer.state is state_before
    explorer.controls["num_samples"].value = 800  # a valid value clears the message and updates
    assert explorer.message.value == "" and explorer.updates == 2 and explorer.plot.outputs != plot_before


def test_overlapping_modes_are_refused_visibly(explorer):
    before = explorer.plot_hash
    explorer.controls["std"].value = 0.2  # inside the slider's range, but 4 std > half the spacing
    assert "std" in explorer.message.value and "overlap" in explorer.message.value
    assert explorer.plot_hash == before


def test_out_of_range_slider_values_are_clamped(explorer):
    explorer.controls["temperature"].value = 1e6
    assert explorer.controls["temperature"].value == pytest.approx(S.LIMITS["temperature"][1])
    explorer.controls["steps"].value = 10**6
    assert explorer.controls["steps"].value == S.LIMITS["steps"][1]
    explorer.controls["spacing"].value = -3.0
    assert explorer.controls["spacing"].value == pytest.approx(S.LIMITS["spacing"][0])
    # spacing 0.2 with std 0.05 overlaps: refused with a message, never raised
    assert "std" in explorer.message.value


def test_unexpected_error_is_shown_not_raised(explorer, monkeypatch):
    before = explorer.plot.outputs

    def broken(**settings):
        raise RuntimeError("solver exploded")

    monkeypatch.setattr(W, "compute_state", broken)  # the name the widgets module calls
    explorer.controls["seed"].value = 5
    assert "solver exploded" in explorer.message.value and "RuntimeError" in explorer.message.value
    assert explorer.plot.outputs == before


def test_steps_control_is_disabled_under_ddpm(explorer):
    explorer.controls["num_samples"].value = 200
    explorer.controls["sampler"].value = "ddpm"
    assert explorer.controls["steps"].disabled
    explorer.controls["sampler"].value = "ddim"
    assert not explorer.controls["steps"].disabled


def test_update_runs_single_threaded_and_restores_torch_threads(explorer, monkeypatch):
    seen = []
    real = S.compute_state

    def spy(**settings):
        seen.append(torch.get_num_threads())
        return real(**settings)

    monkeypatch.setattr(W, "compute_state", spy)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        explorer.controls["seed"].value = 4
        assert seen == [1] and torch.get_num_threads() == 2
        explorer.threads = None
        explorer.controls["seed"].value = 5
        assert seen == [1, 2]
    finally:
        torch.set_num_threads(before)


def test_display_bundle_has_widget_view_and_static_fallback(explorer):
    bundle = explorer._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert bundle["image/png"] == explorer.plot.outputs[0]["data"]["image/png"]
    assert "hallucination rate" in bundle["text/plain"]


# ------------------------------------------------------------------------ trained explorer
def spec(width: int, seed: int = 0, mixture: dict | None = None) -> dict:
    return dict(mixture=mixture or dict(name="1d"), schedule=dict(name="linear", beta_start=1e-3, beta_end=0.2),
                model=dict(width=width, depth=1), train=dict(steps=10, batch_size=64, lr=1e-3), n_train=100, seed=seed)


def mlp_loader(s: dict) -> vsmlab.MLP:
    """Stands in for the cache: an untrained MLP per spec (different widths give different scores)."""
    return vsmlab.MLP(1, width=s["model"]["width"], depth=1, seed=s["seed"]).eval()


def test_trained_explorer_switches_networks():
    calls = []

    def loader(s):
        calls.append(s["model"]["width"])
        return mlp_loader(s)

    ex = W.TrainedExplorer([spec(8), spec(16)], num_samples=300, steps=20, loader=loader)
    assert ex.labels == ["width=8", "width=16"] and calls == [8]
    before_text, before_hash = readout_texts(ex)["lipschitz"], ex.plot_hash
    ex.controls["model"].value = 1
    assert calls == [8, 16] and ex.updates == 2 and ex.message.value == ""
    assert readout_texts(ex)["lipschitz"] != before_text and ex.plot_hash != before_hash
    ex.controls["model"].value = 0
    assert calls == [8, 16]  # loaded once, then kept
    ex.controls["num_samples"].value = 5
    assert "num_samples" in ex.message.value and ex.updates == 3


def test_trained_explorer_lipschitz_estimate_matches_exact_score():
    """Feed the exact score through the trained-net path (autograd Jacobian): L must equal the exact one."""
    mixture = vsmlab.evenly_spaced_1d()
    schedule = vsmlab.linear(1000, 1e-3, 0.2)
    ex = W.TrainedExplorer({"exact": spec(8)}, num_samples=200, steps=20,
                           loader=lambda s: vsmlab.ExactScoreModel(mixture, schedule))
    assert ex.state.lipschitz == pytest.approx(ex.state.lipschitz_exact, rel=1e-4)
    assert ex.state.bound_exact_modes is False and "approx" in readout_texts(ex)["bound"]


def test_default_loader_reads_final_nets_and_snapshots_from_the_cache(tmp_path, monkeypatch):
    from vsmlab.lab.experiments import train_toy

    monkeypatch.setenv("VSMLAB_CACHE_DIR", str(tmp_path))
    base = spec(8)
    run = train_toy(base, snapshot_steps=(5,))  # what the notebook does before the explorer cell
    cached = sorted(tmp_path.glob("*.pt"))
    entries = {"final": {**base, "snapshot_steps": [5]}, "@5": {**base, "snapshot_steps": [5], "snapshot": 5}}
    ex = W.TrainedExplorer(entries, num_samples=200, steps=20)
    ex.controls["model"].value = 1
    assert ex.message.value == "" and ex.updates == 2
    assert sorted(tmp_path.glob("*.pt")) == cached  # nothing retrained, nothing new cached
    x = torch.linspace(0, 4, 50)[:, None]
    t = torch.zeros(50, dtype=torch.long)
    assert torch.equal(ex.model(0)(x, t).eps, run.model(x, t).eps)
    assert torch.equal(ex.model(1)(x, t).eps, run.snapshots[5](x, t).eps)
    assert not torch.equal(ex.model(0)(x, t).eps, ex.model(1)(x, t).eps)
    with pytest.raises(ValueError, match="snapshot"):
        W.load_trained({**base, "snapshot_steps": [5], "snapshot": 7})


def test_trained_explorer_refuses_2d_specs():
    with pytest.raises(ValueError, match="1-D"):
        W.TrainedExplorer([spec(8, mixture=dict(name="grid"))], loader=mlp_loader)


def test_spec_labels_name_only_differences():
    assert S.spec_labels([spec(8, 0), spec(8, 1)]) == ["seed=0", "seed=1"]
    assert S.spec_labels([spec(8), spec(8)]) == ["#0", "#1"]


# -------------------------------------------------------------------------- static figure
def test_small_multiples_one_column_per_setting():
    fig = S.small_multiples([dict(temperature=t, **FAST) for t in (1.0, 10.0)], title="tau sweep")
    try:
        axes = fig.get_axes()
        assert len(axes) == 4
        titles = [ax.get_title() for ax in axes]
        assert any("temperature=1" in t for t in titles) and any("temperature=10" in t for t in titles)
    finally:
        import matplotlib.pyplot as plt

        plt.close(fig)
    with pytest.raises(ValueError, match="settings_list"):
        S.small_multiples([])


# --------------------------------------------------------------- executed notebooks (runner)
def notebook_with(explorer):
    """A notebook as papermill saves it: the explorer's widget-view output plus the saved widget state."""
    import nbformat
    from ipywidgets.embed import dependency_state

    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("explorer", id="explorer-cell")
    cell.outputs = [nbformat.v4.new_output("display_data", data=explorer._repr_mimebundle_())]
    nb.cells = [cell]
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {
        "state": dependency_state(explorer.widget, drop_defaults=False), "version_major": 2, "version_minor": 0}}
    return nb


def test_runner_makes_saved_widget_ids_stable():
    """Two runs create widgets with different random ids; the cleaned notebooks must not differ by them."""
    import json
    import re

    import nbformat
    from vsmlab.lab.notebook_clean import clean_notebook

    texts = []
    for _ in range(2):
        explorer = W.Explorer(temperature=2.0, **FAST)
        explorer.readouts["time"].value = "updated (fixed for the test)"
        nb = notebook_with(explorer)
        clean_notebook(nb)
        nbformat.validate(nb)
        texts.append(nbformat.writes(nb))
        state = nb.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
        refs = set(re.findall(r"IPY_MODEL_([0-9a-f]{32})", json.dumps(state)))
        assert refs <= set(state), "a widget reference points to no saved model"
        view = nb.cells[0].outputs[0]["data"]["application/vnd.jupyter.widget-view+json"]
        assert view["model_id"] in state and view["model_id"] != explorer.widget.model_id
    assert texts[0] == texts[1]
