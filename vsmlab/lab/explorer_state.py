"""The explorer's state without widgets: settings, computing, plotting, labels (smoothness vs hallucination).

The exact explorer shows the exact score of a 1-D Gaussian mixture, smoothed by a temperature tau (1 = exact,
larger = smoother; see :mod:`vsmlab.data.mixtures`). Its settings are :data:`DEFAULTS` within :data:`LIMITS`
(temperature, number of modes, spacing, component std, schedule, sampler, steps, number of samples, seed),
checked by :func:`validate_settings` (ValueError naming the setting).

Readouts: the hallucination rate with its 95% Wilson interval (:func:`vsmlab.analysis.metrics.hallucination_rate`),
the Lipschitz estimate of the score at t = 0 (max spectral norm of the score Jacobian over a grid), the
lower bound on the mass in the gaps between the modes that this Lipschitz constant implies
(:mod:`vsmlab.analysis.bounds`; for the smoothed exact score also that density's actual gap mass), and how
long the computation took.

Plain functions only: :func:`compute_state` (exact explorer) and :func:`evaluate_model` (any model) return
an :class:`ExplorerState`; :func:`plot_state` draws one; :func:`figure_png` renders a figure to PNG bytes;
:func:`small_multiples` draws several settings side by side (a static figure for ``figures/``);
:func:`spec_labels` names specs by the keys that differ. The widgets of :mod:`vsmlab.lab.widgets` call these.

matplotlib is imported inside the functions that need it, so ``import vsmlab`` stays light.
"""

from __future__ import annotations

import functools
import io
import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import torch

from vsmlab.core.checks import check_int, check_range
from vsmlab.analysis.metrics import Rate, hallucination_rate
from vsmlab.data.mixtures import GaussianMixture, evenly_spaced_1d
from vsmlab.data.mixtures import ExactScoreModel
from vsmlab.diffusion.samplers import sample
from vsmlab.core.schedules import Schedule, cosine, linear

__all__ = [
    "DEFAULTS",
    "LIMITS",
    "SCHEDULE_CHOICES",
    "SAMPLER_CHOICES",
    "ExplorerState",
    "validate_settings",
    "explorer_schedule",
    "compute_state",
    "describe_sampling",
    "describe_settings",
    "evaluate_model",
    "plot_state",
    "small_multiples",
    "figure_png",
    "spec_labels",
]

# ----------------------------------------------------------------------------------- settings
#: Default settings of the exact explorer (respond in well under 1 s on 2 cores, see benchmarks/).
DEFAULTS: dict[str, Any] = dict(
    temperature=3.0, num_modes=3, spacing=1.0, std=0.05, schedule="linear", sampler="ddim", steps=100,
    num_samples=4000, seed=0,
)

#: Allowed range of each numeric setting (inclusive); the sliders use the same bounds.
LIMITS: dict[str, tuple[float, float]] = dict(
    temperature=(10 ** -0.5, 100.0), num_modes=(2, 8), spacing=(0.2, 4.0), std=(0.005, 0.5), steps=(10, 1000),
    num_samples=(100, 50_000), seed=(0, 2**31 - 1),
)

#: Schedule key -> (label shown in the dropdown, factory). All have T = 1000 steps.
SCHEDULE_CHOICES: dict[str, tuple[str, Callable[[], Schedule]]] = {
    "linear": ("linear, standard (1e-4..0.02)", lambda: linear(1000, 1e-4, 0.02)),
    "aggressive": ("linear, aggressive (1e-3..0.2)", lambda: linear(1000, 1e-3, 0.2)),
    "cosine": ("cosine", lambda: cosine(1000)),
}

#: Sampler key -> label. DDPM runs every step of the schedule; DDIM (eta = 0) and ODE (Heun) run ``steps``.
SAMPLER_CHOICES: dict[str, str] = {"ddpm": "DDPM", "ddim": "DDIM", "ode": "ODE"}

K_STD = 4.0  # a sample is hallucinated when it lies farther than K_STD component stds from every mode
GRID_POINTS = 1501  # plot grid (plus the midpoints between modes)
DENSITY_POINTS = 20_001  # grid of the smoothed density behind the bound (2e-4 spacing for the default mixture)


@functools.lru_cache(maxsize=None)
def explorer_schedule(name: str) -> Schedule:
    """The schedule behind a dropdown key ("linear", "aggressive", "cosine"); built once (schedules are immutable)."""
    if name not in SCHEDULE_CHOICES:
        raise ValueError(f"schedule: expected one of {', '.join(SCHEDULE_CHOICES)}, got {name!r}")
    return SCHEDULE_CHOICES[name][1]()


def validate_settings(**settings: Any) -> dict[str, Any]:
    """Fill in :data:`DEFAULTS` and check every setting; ValueError naming the setting otherwise.

    Besides the ranges in :data:`LIMITS`, the modes must not overlap: ``K_STD * std`` must stay below half
    the spacing, or there is no gap between modes and "hallucination" loses its meaning.
    """
    unknown = sorted(set(settings) - set(DEFAULTS))
    if unknown:
        raise ValueError(f"settings: unknown {', '.join(unknown)}; allowed: {', '.join(DEFAULTS)}")
    s = {**DEFAULTS, **settings}
    for name in ("temperature", "spacing", "std"):
        check_range(name, s[name], *LIMITS[name])
    for name in ("num_modes", "steps", "num_samples", "seed"):
        check_int(name, s[name], *map(int, LIMITS[name]))
    if s["schedule"] not in SCHEDULE_CHOICES:
        raise ValueError(f"schedule: expected one of {', '.join(SCHEDULE_CHOICES)}, got {s['schedule']!r}")
    if s["sampler"] not in SAMPLER_CHOICES:
        raise ValueError(f"sampler: expected one of {', '.join(SAMPLER_CHOICES)}, got {s['sampler']!r}")
    if 2 * K_STD * s["std"] >= s["spacing"]:
        raise ValueError(
            f"std: {s['std']:.3g} is too wide for spacing {s['spacing']:.3g}: the {K_STD:g}-std support bands "
            f"overlap and leave no gap; allowed std < spacing / {2 * K_STD:g} = {s['spacing'] / (2 * K_STD):.3g}")
    return s


# ----------------------------------------------------------------------------- the state
@dataclass(frozen=True)
class ExplorerState:
    """Everything one explorer update shows (all tensors float64, 1-D).

    rate: hallucination rate (farther than K_STD stds from every mode) with its 95% Wilson interval;
    floor: the rate of perfect samples, P(|z| > K_STD); lipschitz: Lipschitz estimate of the model's score
    at t = 0; lipschitz_exact: the same for the exact score; bound: lower bound on the mass in the gaps
    between modes implied by ``lipschitz`` (nan when there is none); gap_mass: the actual gap mass of the
    smoothed score's density (nan for trained nets); bound_exact_modes: False when the bound used the data's
    modes instead of the model's; grid [G]; score_exact, score_model [G]: scores at t = 0; density [G]: the
    data density p_0; model_density: (grid [M], density [M]) of the smoothed score at t = 0 or None;
    samples [N]; support: the (lo, hi) support band of each mode; seconds: wall time of the computation.
    """

    rate: Rate
    floor: float
    lipschitz: float
    lipschitz_exact: float
    bound: float
    gap_mass: float
    bound_exact_modes: bool
    grid: torch.Tensor
    score_exact: torch.Tensor
    score_model: torch.Tensor
    density: torch.Tensor
    model_density: tuple[torch.Tensor, torch.Tensor] | None
    samples: torch.Tensor
    support: list[tuple[float, float]]
    seconds: float
    settings: dict[str, Any] = field(default_factory=dict)
    label: str = ""

    def readouts(self) -> dict[str, str]:
        """The readout texts (plain strings) the widgets show: rate, lipschitz, bound, time."""
        r = self.rate
        if math.isfinite(self.bound):
            bound = f"bound: mass in the gaps >= {self.bound:.3g}" + (" (underflow: < 1e-300)" if self.bound == 0 else "")
            if math.isfinite(self.gap_mass):
                bound += f" (the smoothed density has {self.gap_mass:.3g} there)"
            if not self.bound_exact_modes:
                bound += " [approx.: data's mode densities]"
        else:
            bound = "bound: n/a"
        return {
            "rate": f"hallucination rate {100 * r.rate:.2f}% [{100 * r.low:.2f}, {100 * r.high:.2f}] "
                    f"({r.count}/{r.n}; floor {100 * self.floor:.4f}%)",
            "lipschitz": f"Lipschitz L at t=0: {self.lipschitz:.4g} (exact score: {self.lipschitz_exact:.4g})",
            "bound": bound,
            "time": f"{self.seconds:.2f} s",
        }


def _grid(mixture: GaussianMixture, schedule: Schedule, points: int = GRID_POINTS) -> torch.Tensor:
    """1-D grid [G + K - 1] over the modes and a margin, plus the midpoints between neighbouring component
    centres at t = 0 (sqrt(alpha_bar_0) mu_k): there the exact score's Jacobian peaks, in a band narrower
    than the grid step."""
    mu = mixture.means[:, 0].sort().values
    centres = math.sqrt(float(schedule.alpha_bar[0])) * mu
    gap = mixture.min_mode_spacing() if mixture.num_modes > 1 else 1.0
    margin = 0.6 * gap + 6 * float(mixture.stds.max())
    base = torch.linspace(float(mu[0]) - margin, float(mu[-1]) + margin, points, dtype=torch.float64)
    return torch.cat([base, 0.5 * (centres[1:] + centres[:-1])]).sort().values


def _support_bands(mixture: GaussianMixture, k: float) -> list[tuple[float, float]]:
    return [(float(m - k * s), float(m + k * s)) for m, s in zip(mixture.means[:, 0], mixture.stds)]


# --------------------------------------------------------------------------- computing
def evaluate_model(
    model: Callable, mixture: GaussianMixture, schedule: Schedule, *, sampler: str, steps: int, num_samples: int,
    seed: int, temperature: float | None = None, k: float = K_STD, label: str = "",
    settings: dict[str, Any] | None = None,
) -> ExplorerState:
    """Sample ``model`` and compute the explorer's readouts and plot data against the 1-D ``mixture``.

    sampler: "ddpm" (all T steps), "ddim" (eta = 0) or "ode" (Heun), the last two with ``steps`` steps;
    samples drawn from ``torch.Generator().manual_seed(seed)``.

    temperature: set when ``model`` is the exact score smoothed by that temperature. Then the density of
    that score at t = 0 is known (:func:`vsmlab.analysis.bounds.smoothed_density_1d`): its Lipschitz constant, modes
    and mode densities feed the bound (:func:`vsmlab.analysis.bounds.interval_mass_lower_bound`) and its actual mass
    in the gaps is reported next to it. None for any other model (a trained net): L is the max spectral norm
    of the score Jacobian over the plot grid (:func:`vsmlab.core.estimators.local_lipschitz`), and the bound
    uses the *data's* modes and mode densities (an approximation: the net's own density is not known).
    """
    from vsmlab.analysis import bounds
    from vsmlab.core import estimators

    if mixture.dim != 1:
        raise ValueError(f"mixture: the explorer shows 1-D mixtures, got a {mixture.dim}-D one")
    start = time.perf_counter()
    kwargs: dict[str, Any] = {} if sampler == "ddpm" else {"num_steps": min(int(steps), schedule.num_steps)}
    gen = torch.Generator().manual_seed(int(seed))
    samples = sample(sampler, model, schedule, shape=(int(num_samples), 1), generator=gen, **kwargs).samples
    rate = hallucination_rate(samples, mixture, k)
    grid = _grid(mixture, schedule)
    x = grid[:, None]
    t0 = torch.zeros(x.shape[0], dtype=torch.long)
    gaps = bounds.gap_intervals_1d(mixture.means[:, 0], k * mixture.stds)
    exact = bounds.smoothed_density_1d(mixture, schedule, 0, 1.0, num_points=DENSITY_POINTS)
    if temperature is not None:
        smooth = exact if temperature == 1.0 else bounds.smoothed_density_1d(
            mixture, schedule, 0, temperature, num_points=DENSITY_POINTS)
        score_model = mixture.score(x, t0, schedule, temperature=temperature)[:, 0]
        lipschitz, modes, mode_densities = smooth.lipschitz, smooth.modes, smooth.mode_densities
        gap_mass = bounds.interval_mass(smooth.grid, smooth.density, gaps)
        model_density = (smooth.grid, smooth.density)
    else:
        score_fn = estimators.score_function(model, schedule, 0)
        with torch.no_grad():
            score_model = score_fn(x.float())[:, 0].double()
        lipschitz = estimators.local_lipschitz(score_fn, x.float()).value
        modes, mode_densities = exact.modes, exact.mode_densities
        gap_mass, model_density = math.nan, None
    bound = (bounds.interval_mass_lower_bound(lipschitz, modes, mode_densities, gaps)
             if gaps and math.isfinite(lipschitz) and lipschitz > 0 and modes.numel() else math.nan)
    return ExplorerState(
        rate=rate, floor=mixture.support_floor(k), lipschitz=float(lipschitz), lipschitz_exact=exact.lipschitz,
        bound=float(bound), gap_mass=float(gap_mass), bound_exact_modes=temperature is not None, grid=grid,
        score_exact=mixture.score(x, t0, schedule)[:, 0], score_model=score_model,
        density=mixture.log_prob(x).exp(), model_density=model_density,
        samples=samples[:, 0].detach().double(), support=_support_bands(mixture, k),
        seconds=time.perf_counter() - start, settings=dict(settings or {}), label=label,
    )


def compute_state(**settings: Any) -> ExplorerState:
    """Readouts and plot data of the exact explorer for ``settings`` (see :data:`DEFAULTS`, :data:`LIMITS`).

    Builds the mixture (``num_modes`` modes at 1, 1 + spacing, ..., std ``std``), the schedule and the
    exact score smoothed by ``temperature``, then calls :func:`evaluate_model`. Pure: same settings, same
    numbers (seeded), apart from ``seconds``. Raises ValueError naming a bad setting.
    """
    s = validate_settings(**settings)
    mixture = evenly_spaced_1d(s["num_modes"], float(s["spacing"]), 1.0, float(s["std"]))
    schedule = explorer_schedule(s["schedule"])
    model = ExactScoreModel(mixture, schedule, float(s["temperature"]))
    return evaluate_model(model, mixture, schedule, sampler=s["sampler"], steps=s["steps"],
                          num_samples=s["num_samples"], seed=s["seed"], temperature=float(s["temperature"]),
                          label=describe_settings(s), settings=s)


def describe_sampling(s: Mapping[str, Any]) -> str:
    """One-line description of the sampling settings (sampler, steps, samples, seed)."""
    steps = "all T steps" if s["sampler"] == "ddpm" else f"{s['steps']} steps"
    return f"{SAMPLER_CHOICES[s['sampler']]} ({steps}) · {s['num_samples']} samples, seed {s['seed']}"


def describe_settings(s: Mapping[str, Any]) -> str:
    """One-line description of exact-explorer settings (the plot's title)."""
    return (f"τ = {s['temperature']:.3g} · {s['num_modes']} modes, spacing {s['spacing']:.3g}, std {s['std']:.3g} · "
            f"{SCHEDULE_CHOICES[s['schedule']][0]} · {describe_sampling(s)}")


# ---------------------------------------------------------------------------- plotting
def _draw(state: ExplorerState, ax_score, ax_hist, model_name: str, legend: bool = True) -> None:
    from vsmlab.lab.plotting import PALETTE

    for lo, hi in state.support:
        ax_hist.axvspan(lo, hi, color=PALETTE["exact"], alpha=0.08, lw=0)
    ax_score.axhline(0, color="0.6", lw=0.6)
    ax_score.plot(state.grid, state.score_exact, color=PALETTE["exact"], lw=1.2, label="exact")
    ax_score.plot(state.grid, state.score_model, color=PALETTE["learned"], lw=1.2, ls="--", label=model_name)
    ax_score.set(xlabel="x", ylabel="score at t = 0", title=f"score (L = {state.lipschitz:.3g})")
    if legend:
        ax_score.legend(loc="lower left", fontsize="small")
    lo, hi = float(state.grid[0]), float(state.grid[-1])
    n = state.samples.numel()
    x = state.samples[torch.isfinite(state.samples)]
    on_plot = x[(x >= lo) & (x <= hi)]
    off_support = torch.ones_like(on_plot, dtype=torch.bool)
    for a, b in state.support:
        off_support &= (on_plot < a) | (on_plot > b)
    edges = torch.linspace(lo, hi, 241, dtype=torch.float64)
    scale = 1.0 / (n * float(edges[1] - edges[0]))  # density of all n samples
    all_counts = torch.histogram(on_plot, edges).hist
    off_counts = torch.histogram(on_plot[off_support], edges).hist
    ax_hist.stairs(all_counts.numpy() * scale, edges.numpy(), fill=True, color=PALETTE["data"], alpha=0.4,
                   label="samples")
    ax_hist.stairs(off_counts.numpy() * scale, edges.numpy(), fill=True, color="#d6604d", alpha=0.9,
                   label="hallucinated")
    ax_hist.plot(state.grid, state.density, color=PALETTE["exact"], lw=1.0, label="true density")
    if state.model_density is not None:
        g, d = state.model_density
        keep = (g >= lo) & (g <= hi)
        ax_hist.plot(g[keep], d[keep], color=PALETTE["learned"], lw=0.9, ls="--", label=f"{model_name} density")
    ax_hist.set_yscale("log")
    ax_hist.set_ylim(0.3 * scale, 3 * float(state.density.max()))
    r = state.rate
    outside = n - on_plot.numel()
    extra = f", {outside} off-plot" if outside else ""
    ax_hist.set(xlabel="x", ylabel="density (log)",
                title=f"samples: {100 * r.rate:.2f}% [{100 * r.low:.2f}, {100 * r.high:.2f}] hallucinated{extra}")
    if legend:
        ax_hist.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize="small", frameon=False)


def plot_state(state: ExplorerState, model_name: str = "smoothed"):
    """Figure with two panels: exact vs model score at t = 0; sample histogram vs true density (log y)."""
    import matplotlib.pyplot as plt

    fig, (ax_score, ax_hist) = plt.subplots(1, 2, figsize=(12, 3.4))
    _draw(state, ax_score, ax_hist, model_name)
    if state.label:
        fig.suptitle(state.label, fontsize="medium")
    # a fixed layout: tight_layout would cost an extra draw (~0.1 s of the 1 s budget per update)
    fig.subplots_adjust(left=0.065, right=0.82, bottom=0.16, top=0.84, wspace=0.28)
    return fig


def figure_png(fig, dpi: int = 80) -> bytes:
    """PNG bytes of ``fig`` (no metadata, so equal figures give equal bytes); closes the figure."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    try:
        fig.savefig(buf, format="png", dpi=dpi, metadata={"Software": None})
    finally:
        plt.close(fig)
    return buf.getvalue()


def small_multiples(settings_list: Sequence[Mapping[str, Any]], title: str | None = None):
    """Static figure: one column per settings dict (exact explorer), score on top, histogram below.

    Each settings dict is passed to :func:`compute_state` (missing keys take :data:`DEFAULTS`); columns are
    titled by the settings that differ between them. Returns the matplotlib figure.
    """
    import matplotlib.pyplot as plt

    if not settings_list:
        raise ValueError("settings_list: expected at least one settings dict")
    states = [compute_state(**dict(s)) for s in settings_list]
    labels = spec_labels([dict(s) for s in settings_list])
    n = len(states)
    fig, axes = plt.subplots(2, n, figsize=(3.6 * n, 5.6), squeeze=False)
    for j, (state, label) in enumerate(zip(states, labels)):
        _draw(state, axes[0, j], axes[1, j], "smoothed", legend=j == n - 1)
        r = state.rate
        axes[0, j].set_title(f"{label}\nL(t=0) = {state.lipschitz:.3g}", fontsize="small")
        axes[1, j].set_title(f"{100 * r.rate:.2f}% [{100 * r.low:.2f}, {100 * r.high:.2f}] off-support", fontsize="small")
        if j:
            axes[0, j].set_ylabel("")
            axes[1, j].set_ylabel("")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


# ------------------------------------------------------------------------------ labels
def _flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, val in d.items():
        if isinstance(val, Mapping):
            out.update(_flatten(val, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = val
    return out


def spec_labels(specs: Sequence[Mapping[str, Any]]) -> list[str]:
    """Short labels naming only the (flattened) keys whose values differ between the specs."""
    flat = [_flatten(s) for s in specs]
    keys = sorted({k for f in flat for k in f})
    differing = [k for k in keys if len({repr(f.get(k)) for f in flat}) > 1]
    if not differing:
        return [f"#{i}" for i in range(len(specs))]

    def short(key: str) -> str:
        return key.split(".")[-1]

    return [", ".join(f"{short(k)}={f.get(k, '-')}" for k in differing) for f in flat]
