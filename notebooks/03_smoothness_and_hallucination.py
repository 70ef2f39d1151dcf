# ---
# jupyter:
#   jupytext:
#     formats: py:percent,ipynb
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 03 · Smoothness and hallucination: turn the dial, watch the Lipschitz constant, the bound and the rate
#
# Notebooks 01 and 02 showed *that* a trained network puts samples between the modes. Here we test *why*:
# the hypothesis is that the culprit is the **smoothness of the score**, measured by its Lipschitz constant
# $L = \sup_x \|\partial s / \partial x\|$ (the largest singular value of the score Jacobian). We turn two
# smoothness dials:
#
# 1. **Temperature** on the exact mixture score (training-free): responsibilities $\mathrm{softmax}(l_k / \tau)$,
#    $\tau = 1$ exact, larger $\tau$ = the score blends neighbouring modes = smoother.
# 2. **Trained networks**: different width, depth and training length, and a spectrally normalised MLP whose
#    Lipschitz constant (in $x$, per step $t$) is capped by a budget.
#
# For each setting we measure the hallucination rate of ancestral DDPM samples (95% Wilson interval) and the
# Lipschitz constant of the score on a grid (`vsmlab.core.estimators.local_lipschitz`, exact 1-D Jacobians), near
# $t = 0$ and across $t$, and we derive and draw a lower bound on the mass in the gaps (`vsmlab.analysis.bounds`).
# Data: modes $\{1, 2, 3\}$, std 0.05; $T = 1000$, linear $\beta_t$ from 0.001 to 0.2; a sample is hallucinated
# when it lies farther than 4 component stds from every mode.

# %% [markdown]
# ## What you will learn
#
# - Derive a lower bound on the mass a density puts in the gaps between its modes from the Lipschitz
#   constant $L$ of its score: a smoother score (smaller $L$) forces exponentially more mass into the gaps.
# - Smooth the exact score with a temperature $\tau$ and measure, side by side, its Lipschitz constant, the gap
#   mass of the density it is the score of, and the hallucination rate of a sampler that uses it.
# - Tell apart the gap mass of a density (what the bound controls) and the sampled hallucination rate (what a
#   diffusion sampler produces).
# - Find which noise levels matter by smoothing only a window of steps, and compare trained networks with the
#   exact score across $t$.
#
# **The question.** Does a smoother score, one with a smaller Lipschitz constant, hallucinate more?
#
# **Prerequisites.** Notebook 01.
#
# **Time.** cold about 2.3 min (138 s) on a 2-core CPU (empty cache; the main job, after 02), seconds when the trained models are cached.

# %% tags=["parameters"]
profile = "default"  # smoke | default | full
seed = 0
figures_dir = ""  # "" -> figures/03_smoothness_and_hallucination/ (default profile), figures/<profile>/03_smoothness_and_hallucination/ otherwise

# %%
import math
import time

import matplotlib.pyplot as plt
import numpy as np
import torch
from scipy.stats import spearmanr

import vsmlab
from vsmlab.analysis import bounds
from vsmlab.core import estimators
from vsmlab.lab.experiments import train_toy
from vsmlab.nets.mlp import mlp_lipschitz_upper_bound
from vsmlab.lab.notebook import start

PROFILES = {
    "smoke": dict(taus=[1.0, 3.0, 10.0, 30.0], n_tau=600, window_tau=10.0, window_edges=[5, 30], n_window=400,
                  n_train=2000, steps=100, batch_size=256, nets=[[16, 1], [32, 2]], snapshot_steps=[50],
                  budget_net=[32, 2], budgets=[10.0], n_trained=400, grid_points=2001,
                  lip_steps=[0, 2, 5, 10, 20, 50, 200], density_points=20001),
    "default": dict(taus=[1.0, 1.5, 2.0, 3.0, 5.0, 7.0, 10.0, 20.0, 30.0, 50.0], n_tau=10000, window_tau=10.0,
                    window_edges=[2, 5, 10, 20, 30, 50, 100], n_window=4000, n_train=20000, steps=2000,
                    batch_size=1024, nets=[[32, 1], [128, 3]], snapshot_steps=[200, 600], budget_net=[64, 2],
                    budgets=[3.0, 10.0, 30.0, 100.0], n_trained=4000, grid_points=6001,
                    lip_steps=[0, 1, 2, 3, 5, 7, 10, 15, 20, 30, 50, 100, 200, 500, 999], density_points=200001),
    "full": dict(taus=[1.0, 1.25, 1.5, 2.0, 3.0, 4.0, 5.0, 7.0, 10.0, 15.0, 20.0, 30.0, 50.0, 100.0], n_tau=100000,
                 window_tau=10.0, window_edges=[1, 2, 3, 5, 7, 10, 15, 20, 30, 50, 100, 300], n_window=20000,
                 n_train=50000, steps=20000, batch_size=10000, nets=[[32, 1], [64, 2], [128, 3], [256, 4]],
                 snapshot_steps=[1000, 5000], budget_net=[128, 3], budgets=[1.0, 3.0, 10.0, 30.0, 100.0, 300.0],
                 n_trained=20000, grid_points=12001,
                 lip_steps=[0, 1, 2, 3, 5, 7, 10, 15, 20, 30, 50, 100, 200, 500, 999], density_points=400001),
}
cfg, saver = start("03_smoothness_and_hallucination", profile, seed, figures_dir, PROFILES)
K_STD = 4.0
mixture = vsmlab.evenly_spaced_1d(num_modes=3, spacing=1.0, start=1.0, std=0.05)
schedule = vsmlab.linear(1000, beta_start=1e-3, beta_end=0.2)
PAL = vsmlab.lab.plotting.PALETTE
grid = torch.linspace(0.0, 4.0, cfg["grid_points"], dtype=torch.float64)[:, None]  # where L is measured
# the metric's gaps: between the support intervals [mu_k - 4 std, mu_k + 4 std] (hallucination territory)
GAPS = bounds.gap_intervals_1d(mixture.means[:, 0], K_STD * mixture.stds)
print(f"profile={profile} seed={seed}")
print(f"gaps between the support intervals: {[(round(a, 2), round(b, 2)) for a, b in GAPS]}")
print(f"floor (perfect samples off-support): {mixture.support_floor(K_STD):.2e}")


def lipschitz_profile(model, steps, points=grid) -> dict[int, tuple[float, float]]:
    """{t: (L, L_plus)}: L = max |ds/dx| and the one-sided L_plus = max(-ds/dx) on the grid at step t."""
    out = {}
    for t in steps:
        J = estimators.jacobian(estimators.score_function(model, schedule, t), points.to(torch.float64)
                                if isinstance(model, vsmlab.ExactScoreModel) else points.float())[:, 0, 0].double()
        out[t] = (float(J.abs().max()), float((-J).max()))
    return out


x_T = torch.randn(max(cfg["n_tau"], cfg["n_trained"], cfg["n_window"]), 1, generator=torch.Generator().manual_seed(seed))


def sample_rate(model, n: int) -> tuple[torch.Tensor, vsmlab.Rate]:
    """DDPM samples from the same starting noise and sampler seed for every model, and their hallucination rate."""
    samples = vsmlab.ddpm(model, schedule, x_T=x_T[:n], generator=torch.Generator().manual_seed(seed + 1)).samples
    return samples, vsmlab.hallucination_rate(samples, mixture, K_STD)


# %% [markdown]
# ## The bound: a smooth score must leak mass into the gaps
#
# Let p be a density on R^d whose score s = grad log p is L-Lipschitz. Then log p is L-smooth, and Taylor's
# theorem with the integral remainder gives, for any two points x and y,
#
#     log p(x) = log p(y) + s(y).(x - y) + int_0^1 (s(y + r(x - y)) - s(y)).(x - y) dr
#              >= log p(y) + s(y).(x - y) - L ||x - y||^2 / 2.
#
# At a mode y* the score vanishes, so p(x) >= p(y*) exp(-L ||x - y*||^2 / 2): around every mode the density
# is at least a Gaussian bump of variance 1/L. Integrating over a gap region H (and using every mode, the
# bound is the maximum of the bumps):
#
#     P(H) >= int_H max_m p(y_m) exp(-L ||x - y_m||^2 / 2) dx,
#
# which for a 1-D interval [a, b] and one mode is p(y*) sqrt(2 pi / L) [Phi(sqrt(L)(b - y*)) - Phi(sqrt(L)(a - y*))]
# and decays like exp(-L delta^2 / 2) in the distance delta from the mode to the gap. **A smoother score
# (smaller L) forces exponentially more mass into the gaps.** Only the one-sided half of the Lipschitz
# condition is used: it suffices that -ds/dx <= L_+ everywhere (the curvature of -log p); L_+ <= L.
#
# Assumptions (all needed): p is a normalised density; s is *its* score (a gradient field); L (or L_+) holds
# on the segments from the modes to H; p(y*) is the density at exact critical points. The bound is about
# **the density whose score s is**: for the temperature-smoothed exact score at step t that is
# p_tau,t(x) ∝ exp(tau logsumexp_k(l_k(x) / tau)), which we can normalise numerically in 1-D. It is *not* the
# distribution of the samples a diffusion sampler produces with the smoothed score at every step: the sampler
# integrates the score over all t, and p_tau,0 is only the end point of a different, exact process. So we
# measure both: the gap mass of p_tau,0 (where the bound applies) and the sampled hallucination rate.

# %% [markdown]
# ## Dial 1: temperature on the exact score (training-free)
#
# For each tau: L and L_+ of the score at t = 0 on the grid; the gap mass of p_tau,0 and the bound (with L
# and with L_+, each with p_tau,0's own modes and mode heights); and the DDPM hallucination rate.

# %%
t0 = time.perf_counter()
tau_rows = []
for tau in cfg["taus"]:
    model = vsmlab.ExactScoreModel(mixture, schedule, temperature=tau)
    dens = bounds.smoothed_density_1d(mixture, schedule, 0, tau, num_points=cfg["density_points"])
    lip = lipschitz_profile(model, [0])[0]
    samples, rate = sample_rate(model, cfg["n_tau"])
    tau_rows.append(dict(
        tau=tau, model=model, samples=samples, rate=rate, L=lip[0], L_plus=lip[1], L_density=dens.lipschitz,
        gap_mass=bounds.interval_mass(dens.grid, dens.density, GAPS),
        bound_L=bounds.interval_mass_lower_bound(dens.lipschitz, dens.modes, dens.mode_densities, GAPS),
        bound_L_plus=bounds.interval_mass_lower_bound(dens.one_sided, dens.modes, dens.mode_densities, GAPS),
        n_modes=int(dens.modes.numel())))
print(f"temperature dial: {time.perf_counter() - t0:.1f} s")
print(f"{'tau':>5} {'L(t=0)':>9} {'L_+':>7} {'modes':>5} {'gap mass p_tau,0':>17} {'mass/mass(1)':>12} {'bound(L)':>10}"
      f" {'bound(L_+)':>10} {'bound<=mass':>11}   sampled rate")
for r in tau_rows:
    ok = r["bound_L"] <= r["gap_mass"] * (1 + 1e-6) and r["bound_L_plus"] <= r["gap_mass"] * (1 + 1e-6)
    print(f"{r['tau']:>5g} {r['L']:>9.4g} {r['L_plus']:>7.4g} {r['n_modes']:>5} {r['gap_mass']:>17.3e} "
          f"{r['gap_mass'] / tau_rows[0]['gap_mass']:>12.3f} {r['bound_L']:>10.2e} {r['bound_L_plus']:>10.2e} {str(ok):>11}"
          f"   {r['rate']}")
print(f"L on the plot grid vs on the fine density grid (tau = 1): {tau_rows[0]['L']:.5g} vs {tau_rows[0]['L_density']:.5g}")
print("bound <= gap mass for every tau (with L and with L_+):",
      all(max(r["bound_L"], r["bound_L_plus"]) <= r["gap_mass"] * (1 + 1e-6) for r in tau_rows))
rho_tau = spearmanr([r["L"] for r in tau_rows], [r["rate"].rate for r in tau_rows]).statistic
print(f"Spearman rank correlation of L(t=0) and the sampled rate over the temperatures: {rho_tau:.2f}")

# %% [markdown]
# Read the table above column by column. L(t=0) falls as tau grows: at t = 0 the exact score's largest
# slope sits in the gaps, where the denoiser switches modes, and the temperature flattens exactly that switch.
# L_+ (the curvature at the modes, about 1/v_0) moves far less. The gap mass of p_tau,0 is never below either
# bound (the `bound<=mass` column and the line under the table), and the bound with L_+ is close to the mass
# where the modes stay narrow: there the density near each mode *is* the Gaussian bump the bound describes.
# The bound with the global L is astronomically small at t = 0 because L there is set by the switching
# slope, not by the curvature at the modes. The sampled rate is a different quantity: the `mass/mass(1)`
# column shows how little p_tau,0's own gap mass moves over temperatures at which the sampled rate (last
# column) climbs far above the floor.

# %% [markdown]
# ## Which noise levels matter? Smoothing only in a window of steps
#
# The sampler uses the score at every step. We smooth (tau = `window_tau`) only for t < b or only for t >= b,
# and keep the exact score elsewhere (two ExactScoreModels composed by step).

# %%
tau_w = cfg["window_tau"]
smooth_w, exact_model = vsmlab.ExactScoreModel(mixture, schedule, tau_w), vsmlab.ExactScoreModel(mixture, schedule)


def windowed(lo: int, hi: int):
    """The tau_w-smoothed score for lo <= t < hi, the exact score elsewhere (samplers pass one t per call)."""
    return lambda x_t, t: (smooth_w if lo <= int(t[0]) < hi else exact_model)(x_t, t)


window_rows = []
for b in cfg["window_edges"]:
    for lo, hi in ((0, b), (b, schedule.num_steps)):
        window_rows.append(dict(lo=lo, hi=hi, rate=sample_rate(windowed(lo, hi), cfg["n_window"])[1]))
all_rate = sample_rate(windowed(0, schedule.num_steps), cfg["n_window"])[1]
print(f"tau = {tau_w:g} at every step: {all_rate}")
print(f"{'smoothed steps':>16} {'sigma range':>16}   rate")
for r in window_rows:
    sig = (float(schedule.sigma[r['lo']]), float(schedule.sigma[r['hi'] - 1]))
    print(f"{r['lo']:>6} .. {r['hi'] - 1:>5}  {sig[0]:>7.3f}..{sig[1]:.3f}   {r['rate']}")

fig, ax = plt.subplots(figsize=(7.5, 3.6))
edges = cfg["window_edges"]
for key, label, color in (("below", "smoothed only for t < b", PAL["learned"]), ("above", "smoothed only for t >= b", PAL["vsm"])):
    sel = [r for r in window_rows if (r["lo"] == 0) == (key == "below")]
    p = np.array([100 * r["rate"].rate for r in sel])
    err = np.array([[100 * (r["rate"].rate - r["rate"].low), 100 * (r["rate"].high - r["rate"].rate)] for r in sel]).T
    ax.errorbar(edges, p, yerr=err, marker="o", capsize=3, label=label, color=color)
ax.axhline(100 * all_rate.rate, color="grey", ls="--", lw=1, label="smoothed at every t")
ax.set(xscale="log", xlabel="window edge b (step)", ylabel="hallucination rate (%)",
       title=f"Which steps matter: tau = {tau_w:g} inside the window, exact outside")
ax.legend(fontsize=8)
fig.tight_layout()
_ = saver.save(fig, "rate_vs_smoothing_window")

# %% [markdown]
# The rates printed above locate the damage: compare the row "0 .. b-1" (smoothing only the low-noise end)
# with "b .. 999" (smoothing only above b) for each edge b. Steps whose noise level sigma_t is far above
# the mode spacing hardly matter (the marginal there has one broad mode either way), and smoothing only the
# last few steps does not create gap samples on its own either; the band in between, where sigma_t is a
# fraction of the spacing and each trajectory commits to a mode, is where smoothness turns into hallucination.

# %% [markdown]
# ## Dial 2: trained networks (width, depth, training length, Lipschitz budget)
#
# The plain nets use the lab's MLP (LayerNorm residual blocks). The budgeted nets use `norm=False` with
# `lipschitz_budget`: every Linear layer on the x-path is spectrally normalised and scaled so that the
# layer-product bound on Lip(x -> eps) equals the budget; the score is -eps / sigma_t, so at step t its
# Lipschitz constant is at most budget / sigma_t (printed as the certified upper bound).

# %%
def spec(model: dict) -> dict:
    return dict(mixture=dict(name="1d"), schedule=dict(name="linear", beta_start=1e-3, beta_end=0.2), model=model,
                train=dict(steps=cfg["steps"], batch_size=cfg["batch_size"], lr=1e-3), n_train=cfg["n_train"],
                seed=seed)


t0 = time.perf_counter()
nets = []
for i, (width, depth) in enumerate(cfg["nets"]):
    last = i == len(cfg["nets"]) - 1
    run = train_toy(spec(dict(width=width, depth=depth)), snapshot_steps=tuple(cfg["snapshot_steps"]) if last else ())
    nets.append(dict(name=f"MLP {width}x{depth}", kind="plain", model=run.model, upper=math.nan))
    for step, snap in sorted(run.snapshots.items()):
        nets.append(dict(name=f"MLP {width}x{depth} @{step} steps", kind="training length", model=snap, upper=math.nan))
width, depth = cfg["budget_net"]
for budget in cfg["budgets"]:
    run = train_toy(spec(dict(width=width, depth=depth, norm=False, lipschitz_budget=budget)))
    nets.append(dict(name=f"SN {width}x{depth} budget {budget:g}", kind="budget", model=run.model,
                     upper=mlp_lipschitz_upper_bound(run.model, schedule, 0)))
print(f"training (or loading) {len(nets)} models: {time.perf_counter() - t0:.1f} s")

t0 = time.perf_counter()
for net in nets:
    lip = lipschitz_profile(net["model"], [0])[0]
    net["L"], net["L_plus"] = lip
    net["samples"], net["rate"] = sample_rate(net["model"], cfg["n_trained"])
print(f"sampling and Jacobians: {time.perf_counter() - t0:.1f} s")
print(f"{'model':>30} {'L(t=0)':>9} {'L_+(t=0)':>9} {'certified L <=':>14}   sampled rate")
for net in nets:
    print(f"{net['name']:>30} {net['L']:>9.4g} {net['L_plus']:>9.4g} {net['upper']:>14.4g}   {net['rate']}")
print(f"{'exact score (tau = 1)':>30} {tau_rows[0]['L']:>9.4g} {tau_rows[0]['L_plus']:>9.4g} {'':>14}   {tau_rows[0]['rate']}")
print("certified bound >= measured L for every budgeted net:",
      all(n["upper"] >= n["L"] for n in nets if n["kind"] == "budget"))
print("every trained net has a smaller L(t=0) than the exact score:", all(n["L"] < tau_rows[0]["L"] for n in nets))
rho_nets = spearmanr([n["L"] for n in nets], [n["rate"].rate for n in nets]).statistic
print(f"Spearman rank correlation of L(t=0) and the sampled rate over the trained nets: {rho_nets:.2f}")

# %% [markdown]
# The table above lists, per trained model, its Lipschitz constant at t = 0 on the grid next to the exact
# score's (last row), and the sampled rate. The lines under the table check that the budgeted nets stay
# within their certified bound and whether every trained net is smoother at t = 0 than the exact score.
# The printed rank correlation says how consistently a smaller L comes with a larger rate in this run;
# with one training seed per setting, read it together with the intervals.

# %% [markdown]
# ## Rate against the Lipschitz constant at t = 0, with the bound
#
# Filled markers: sampled hallucination rates (95% intervals). Open markers of the same shape at the axis floor
# ($10^{-6}$): settings with no hallucinated sample (0 of $n$), the bar reaching the upper end of the interval.
# Hollow squares: the exact gap mass of $p_{\tau,0}$ for the temperature dial. Line: the bound as a function of
# $L$ for a density with the data's modes and mode heights at $t = 0$ (the exact noised density at step 0),
# against the global $L$ (left) and the one-sided $L_+$ (right). The line is the floor the theory puts under the
# gap mass of *a density* with that $L$; it does not bound the sampled rate of a network whose score is not the
# gradient of a density sampled exactly. Where the line would exceed 1 (it is capped there) no density with such
# small $L$ can have modes that tall.

# %%
ref = bounds.smoothed_density_1d(mixture, schedule, 0, 1.0, num_points=cfg["density_points"])
L_axis = np.logspace(0.5, 4.6, 200)
bound_curve = np.array([bounds.interval_mass_lower_bound(float(L), ref.modes, ref.mode_densities, GAPS) for L in L_axis])
FLOOR_PLOT = 1e-6
fig, axes = plt.subplots(1, 2, figsize=(12, 4.4), sharey=True)
for a, key, label in ((axes[0], "L", "Lipschitz constant L of the score at t = 0"),
                      (axes[1], "L_plus", "one-sided constant L_+ = max(-ds/dx) at t = 0")):
    for rows, color, marker, name in ((tau_rows, PAL["exact"], "o", "temperature dial"), (nets, PAL["learned"], "D", "trained nets")):
        x = np.array([r[key] for r in rows])
        zero = np.array([r["rate"].count == 0 for r in rows])
        p = np.array([max(r["rate"].rate, FLOOR_PLOT) for r in rows])
        err = np.array([[p_i - max(r["rate"].low, FLOOR_PLOT), max(r["rate"].high, FLOOR_PLOT) - p_i]
                        for p_i, r in zip(p, rows)]).T
        a.errorbar(x[~zero], p[~zero], yerr=err[:, ~zero], fmt=marker, color=color, capsize=2, label=f"sampled rate, {name}")
        if zero.any():  # no hallucinated sample: open markers at the axis floor, bar up to the interval's upper end
            n_zero = sorted({r["rate"].n for r, z in zip(rows, zero) if z})
            a.errorbar(x[zero], p[zero], yerr=err[:, zero], fmt=marker, mfc="none", color=color, capsize=2,
                       label=f"{name}: 0 of {'/'.join(map(str, n_zero))} (drawn at the axis floor)")
    a.scatter([r[key] for r in tau_rows], [max(r["gap_mass"], FLOOR_PLOT) for r in tau_rows], marker="s",
              facecolors="none", edgecolors=PAL["exact"], label="gap mass of p_tau,0 (exact)")
    a.plot(L_axis, np.clip(bound_curve, FLOOR_PLOT * 0.1, 1.0), color="black", lw=1.2,
           label="bound(L), data's modes and heights (capped at 1)")
    a.axhline(mixture.support_floor(K_STD), color="grey", ls=":", lw=1, label="floor (perfect samples)")
    a.set(xscale="log", yscale="log", xlabel=label, ylim=(FLOOR_PLOT * 0.5, 1.0))
axes[0].set_ylabel("off-support mass / rate (log; 0 of n: open, at 1e-6)")
axes[0].legend(fontsize=7, loc="lower left")
fig.suptitle("Lipschitz constant of the score at t = 0 against the mass off the support")
fig.tight_layout()
saver.save(fig, "rate_vs_lipschitz_t0")
for L in (10.0, 30.0, 100.0, 300.0, 1000.0):
    value = bounds.interval_mass_lower_bound(L, ref.modes, ref.mode_densities, GAPS)
    print(f"bound at L = {L:>6g}: {value:.3e}" + ("  (> 1: these mode heights are impossible at this L)" if value > 1 else ""))

# %% [markdown]
# ## Across t: where the networks are smoother than the exact score
#
# L(t) on the grid for every model and step in `lip_steps`, and the rate against the Lipschitz constant at
# several steps. The ratio L_model(t) / L_exact(t) shows at which noise levels a network is smoother than
# the exact score.

# %%
steps = cfg["lip_steps"]
t0 = time.perf_counter()
profiles = {f"exact tau={r['tau']:g}": (lipschitz_profile(r["model"], steps), r["rate"], PAL["exact"]) for r in tau_rows}
profiles.update({n["name"]: (lipschitz_profile(n["model"], steps), n["rate"], PAL["learned"]) for n in nets})
print(f"Lipschitz profiles: {time.perf_counter() - t0:.1f} s")
exact_L = profiles["exact tau=1"][0]
print(f"{'model':>30} " + " ".join(f"{'t=' + str(t):>8}" for t in steps))
for name, (prof, _, _) in profiles.items():
    print(f"{name:>30} " + " ".join(f"{prof[t][0]:>8.3g}" for t in steps))
print("ratio L_model(t) / L_exact(t):")
for n in nets:
    prof = profiles[n["name"]][0]
    print(f"{n['name']:>30} " + " ".join(f"{prof[t][0] / exact_L[t][0]:>8.2f}" for t in steps))

fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
cmap_tau = plt.get_cmap("Greens")
cmap_net = plt.get_cmap("RdPu")
# the exact-score family is coloured by tau (colourbar); only the trained nets get legend entries
tau_of = {f"exact tau={r['tau']:g}": r["tau"] for r in tau_rows}
tau_cmap = plt.matplotlib.colors.ListedColormap(cmap_tau(np.linspace(0.35, 1.0, 256)))
tau_norm = plt.matplotlib.colors.LogNorm(min(tau_of.values()), max(max(tau_of.values()), 1.01 * min(tau_of.values())))
for i, (name, (prof, _, _)) in enumerate(profiles.items()):
    is_tau = name in tau_of
    k = i - len(tau_rows)
    color = tau_cmap(tau_norm(tau_of[name])) if is_tau else cmap_net(0.35 + 0.65 * k / max(1, len(nets) - 1))
    axes[0].plot([t + 1 for t in steps], [prof[t][0] for t in steps], marker="." if is_tau else "d",
                 color=color, lw=1, label=None if is_tau else name)
axes[0].set(xscale="log", yscale="log", xlabel="step t + 1", ylabel="L(t) = max |ds/dx| on the grid",
            title="Lipschitz constant of the score across t")
cbar = fig.colorbar(plt.matplotlib.cm.ScalarMappable(norm=tau_norm, cmap=tau_cmap), ax=axes[0],
                    label="temperature tau of the exact score (dots)")
cbar.ax.minorticks_off()
cbar.set_ticks(sorted(tau_of.values()), labels=[f"{tau:g}" for tau in sorted(tau_of.values())])
axes[0].legend(fontsize=7, loc="upper right", title="trained nets", title_fontsize=7)
show_t = [t for t in (0, 5, 10, 20) if t in steps]
for j, (t, marker) in enumerate(zip(show_t, "osD^")):
    x = np.array([profiles[name][0][t][0] / exact_L[t][0] for name in profiles])
    zero = np.array([profiles[name][1].count == 0 for name in profiles])
    y = np.array([profiles[name][1].rate for name in profiles])
    axes[1].scatter(x[~zero], y[~zero], marker=marker, color=f"C{j}", label=f"t = {t}", alpha=0.8)
    axes[1].scatter(x[zero], np.full(int(zero.sum()), FLOOR_PLOT), marker=marker, facecolors="none",
                    edgecolors=f"C{j}", label="0 of n (drawn at the axis floor)" if j == 0 and zero.any() else None)
axes[1].set(xscale="log", yscale="log", xlabel="L_model(t) / L_exact(t)", ylabel="sampled hallucination rate",
            title="Rate against relative smoothness at several steps", ylim=(FLOOR_PLOT * 0.5, 1.0))
axes[1].axhline(mixture.support_floor(K_STD), color="grey", ls=":", lw=1)
axes[1].legend(fontsize=8)
fig.tight_layout()
saver.save(fig, "lipschitz_across_t")
for t in show_t:
    rel = [profiles[name][0][t][0] / exact_L[t][0] for name in profiles]
    rates = [profiles[name][1].rate for name in profiles]
    print(f"t = {t:>3}: Spearman(L_model/L_exact, rate) over all {len(rel)} models = {spearmanr(rel, rates).statistic:.2f}")

# %% [markdown]
# ## The bound across t, on the exact smoothed densities
#
# At each step t, the density p_tau,t of the smoothed score, its mass in the middle third of each gap
# between neighbouring (noised) modes, and the bound with L_+ (t) and with L(t). The bound is checked
# against the numerical mass at every (tau, t) shown.

# %%
bound_rows = []
a_t = lambda t: float(schedule.alpha_bar[t].sqrt())
for r in tau_rows:
    for t in [t for t in steps if t <= 100]:
        d = bounds.smoothed_density_1d(mixture, schedule, t, r["tau"], num_points=cfg["density_points"] // 4 + 1)
        mids = a_t(t) * (mixture.means[:-1, 0] + mixture.means[1:, 0]) / 2
        third = a_t(t) * float(mixture.means[1, 0] - mixture.means[0, 0]) / 6
        H = [(float(m) - third, float(m) + third) for m in mids]
        bound_rows.append(dict(tau=r["tau"], t=t, mass=bounds.interval_mass(d.grid, d.density, H),
                               bound_plus=bounds.interval_mass_lower_bound(d.one_sided, d.modes, d.mode_densities, H),
                               bound_L=bounds.interval_mass_lower_bound(d.lipschitz, d.modes, d.mode_densities, H)))
print(f"checked at tau in {sorted({b['tau'] for b in bound_rows})} and t in {sorted({b['t'] for b in bound_rows})} "
      "(middle third of each gap between neighbouring noised modes)")
print("bound <= mass at every (tau, t):", all(b["bound_plus"] <= b["mass"] * (1 + 1e-6) and b["bound_L"] <= b["mass"] * (1 + 1e-6)
                                               for b in bound_rows))
fig, axes = plt.subplots(1, 2, figsize=(12, 4), sharey=True)
taus_shown = [r["tau"] for r in tau_rows][:: max(1, len(tau_rows) // 4)]
for j, tau in enumerate(taus_shown):
    sel = [b for b in bound_rows if b["tau"] == tau]
    color = cmap_tau(0.35 + 0.65 * j / max(1, len(taus_shown) - 1))
    for a, key in zip(axes, ("bound_plus", "bound_L")):
        a.plot([b["t"] + 1 for b in sel], [max(b["mass"], 1e-12) for b in sel], color=color, lw=1.5, label=f"mass, tau={tau:g}")
        a.plot([b["t"] + 1 for b in sel], [max(b[key], 1e-12) for b in sel], color=color, lw=1, ls="--")
axes[0].set(title="mass in the middle thirds of the gaps (solid) and bound with L_+ (dashed)")
axes[1].set(title="the same with the global L (dashed)")
for a in axes:
    a.set(xscale="log", yscale="log", xlabel="step t + 1", ylim=(1e-12, 1.5))
axes[0].set_ylabel("mass (log; < 1e-12 drawn at 1e-12)")
axes[0].legend(fontsize=7)
fig.tight_layout()
saver.save(fig, "bound_across_t")
for tau in taus_shown:
    sel = {b["t"]: b for b in bound_rows if b["tau"] == tau}
    print(f"tau = {tau:>4g}: " + "  ".join(f"t={t}: {sel[t]['mass']:.1e} >= {sel[t]['bound_plus']:.1e}" for t in list(sel)[:6]))

# %% [markdown]
# ## Small multiples: samples at several smoothness settings
#
# Top row: the temperature dial; bottom row: the trained nets. Each panel is a log-density histogram of the
# DDPM samples over the true density, titled with L(t=0) and the sampled rate.

# %%
def pick(rows, k):
    idx = np.unique(np.linspace(0, len(rows) - 1, min(k, len(rows))).round().astype(int))
    return [rows[i] for i in idx]


top = pick(tau_rows, 4)
bottom = pick(sorted(nets, key=lambda n: -n["L"]), 4)
ncol = max(len(top), len(bottom))
fig, axes = plt.subplots(2, ncol, figsize=(3.2 * ncol, 5.6), sharex=True, sharey=True, squeeze=False)
bins = np.linspace(0.5, 3.5, 241)
xs = torch.linspace(0.5, 3.5, 1201, dtype=torch.float64)[:, None]
for row, (items, color) in enumerate(((top, PAL["exact"]), (bottom, PAL["learned"]))):
    for j in range(ncol):
        a = axes[row, j]
        if j >= len(items):
            a.axis("off")
            continue
        it = items[j]
        a.hist(it["samples"][:, 0].numpy(), bins=bins, density=True, histtype="stepfilled", alpha=0.6, color=color)
        a.plot(xs[:, 0], mixture.log_prob(xs).exp(), color=PAL["data"], lw=0.6)
        name = f"tau = {it['tau']:g}" if "tau" in it else it["name"]
        a.set_title(f"{name}\nL(0) = {it['L']:.3g}, rate {100 * it['rate'].rate:.2f}%", fontsize=8)
        a.set(yscale="log", ylim=(1e-3, 50))
        for m in mixture.means[:, 0]:
            for side in (-1, 1):
                a.axvline(float(m) + side * K_STD * 0.05, color="grey", lw=0.3, ls=":")
axes[0, 0].set_ylabel("temperature dial\ndensity (log)")
axes[1, 0].set_ylabel("trained nets\ndensity (log)")
fig.suptitle("Samples at several smoothness settings (dotted: the 4-std support)")
fig.tight_layout()
_ = saver.save(fig, "small_multiples")

# %% [markdown]
# ## Interactive explorer

# %%
# EXPLORER CELL: the interactive explorer (vsmlab.lab.widgets). Every change calls plain library functions
# (compute_state -> sampler, hallucination_rate, bounds) on release of a control and redraws. Defaults:
# DDIM with 100 steps on the standard linear schedule, 4000 samples (under a second per change on 2 cores:
# benchmarks/bench_widgets.py); choose "aggressive" and DDPM for this notebook's setting (slower). The static
# figure records a few temperatures at the explorer's settings (a live widget needs a running kernel).
from IPython.display import display

from vsmlab.lab.explorer_state import DEFAULTS, small_multiples
from vsmlab.lab.widgets import Explorer, TrainedExplorer

explorer_samples = 1000 if profile == "smoke" else DEFAULTS["num_samples"]
fig = small_multiples([dict(temperature=tau, num_samples=explorer_samples) for tau in (1.0, 3.0, 10.0, 30.0)],
                      title="The explorer at four temperatures (exact score smoothed by tau; DDIM, 100 steps)")
saver.save(fig, "explorer_small_multiples")
display(fig)
plt.close(fig)

explorer = Explorer()
display(explorer)

# Dial 2's networks, read back from the cache filled above (the same train_toy specs: nothing is retrained).
trained_entries = {}
for i, (w, d) in enumerate(cfg["nets"]):
    entry = spec(dict(width=w, depth=d))
    if i == len(cfg["nets"]) - 1:  # trained with snapshots: same snapshot_steps, same cache entry
        entry["snapshot_steps"] = list(cfg["snapshot_steps"])
        for step in cfg["snapshot_steps"]:
            trained_entries[f"MLP {w}x{d} @{step} steps"] = {**entry, "snapshot": step}
    trained_entries[f"MLP {w}x{d}"] = entry
w, d = cfg["budget_net"]
for budget in cfg["budgets"]:
    trained_entries[f"SN {w}x{d} budget {budget:g}"] = spec(dict(width=w, depth=d, norm=False, lipschitz_budget=budget))
trained_explorer = TrainedExplorer(trained_entries)
display(trained_explorer)

# %% [markdown]
# ## Key takeaways
#
# - **Smoother exact score, more hallucinations.** Raising $\tau$ from 1 to 50 lowers $L(t=0)$ from 2.013e+04
#   to 285.6 and raises the sampled rate from 0.000% [0.000, 0.038] to 23.080% [22.265, 23.916]; the Spearman
#   rank correlation of $L(t=0)$ and the rate over the temperatures is -0.98. The one-sided constant $L_+$
#   hardly moves (285.9 up to $\tau = 30$): the temperature flattens the switch in the gaps, not the modes.
# - **The bound holds, and with $L_+$ it is nearly tight.** The gap mass of $p_{\tau,0}$ is never below the
#   bound, with $L$ or with $L_+$, at every $\tau$ and every $(\tau, t)$ checked. With the global $L$ the bound
#   is uselessly small at $t = 0$ (3.66e-176 at $\tau = 1$); with $L_+$ it is 4.88e-04 against a gap mass of
#   4.884e-04.
# - **The sampled rate is not the gap mass of $p_{\tau,0}$.** The gap mass stays at 1.000 times its
#   $\tau = 1$ value up to $\tau = 7$ and is 1.379 times it at $\tau = 20$, while the sampled rate has already
#   reached 2.680% at $\tau = 7$ and 19.540% at $\tau = 20$: the bound speaks about a density, the rate about a
#   sampler that integrates the score over all steps.
# - **The low-noise steps matter, but not the last few alone.** Smoothing ($\tau = 10$) only for $t < 5$ gives
#   0.025% and only for $t \ge 10$ also 0.025%, while smoothing only for $t < 30$ ($\sigma_t \le 0.332$) gives
#   7.525% [6.748, 8.384], an interval that overlaps the 7.250% [6.487, 8.095] of smoothing every step: this run
#   cannot tell them apart.
# - **Trained nets are smoother than the exact score and hallucinate.** Their $L(t=0)$ lies between 33.93
#   and 379.7 against 2.013e+04 for the exact score, and their rates between 4.600% and 58.625%; the Spearman
#   correlation of $L(t=0)$ and rate over the trained nets is -0.83. Measured against the exact score's $L(t)$,
#   it is -0.96 at $t = 0$ but -0.55 at $t = 20$ over all 18 models (one training seed per setting).

# %% [markdown]
# ## Exercises
#
# Try each exercise on your own first: predict, then compute. Each check cell says whether your answer is
# right, close or wrong, with a hint when it is not. Worked solutions are in `notebooks/solutions/03_solutions.py`.

# %%
from vsmlab.lab.exercises import check, describe

# %% [markdown]
# ### Exercise 03.1 · Curvature at a mode (easy)
#
# Near a mode the exact score at $t = 0$ is almost linear, $s(x) \approx -(x - a\mu) / v_0$ with
# $v_0 = \bar\alpha_0 s^2 + 1 - \bar\alpha_0$. Give the one-sided Lipschitz constant
# $L_+ = \max_x (-\partial s / \partial x)$ of the exact score at $t = 0$ for the notebook's mixture
# `vsmlab.evenly_spaced_1d(3, 1.0, 1.0, 0.05)` (modes 1, 2, 3, std 0.05) and schedule `vsmlab.linear(1000, 1e-3, 0.2)`.

# %%
answer = None  # your answer: a number
check("03.1", answer)

# %% [markdown]
# ### Exercise 03.2 · The steepest point sits in the gap (medium)
#
# The global Lipschitz constant $L = \max_x |\partial s / \partial x|$ of the exact score at $t = 0$ is far
# larger than $L_+$. Find it for the same mixture and schedule: where is it reached, and what is its value? The
# mixture module's docstring gives the Jacobian
# $\partial s / \partial x = -\sum_k r_k / v_k + \sum_k r_k g_k^2 - s^2$; at the midpoint between two noised
# centres $r = 1/2$ each.

# %%
answer = None  # your answer: a number
check("03.2", answer)

# %% [markdown]
# ### Exercise 03.3 · When does smoothing open a mode in the gap? (medium)
#
# Take the two-mode mixture `vsmlab.evenly_spaced_1d(2, 1.0, 1.0, 0.05)` (modes 1 and 2) and the notebook's
# schedule. With temperature $\tau$ the outer-product part of the score Jacobian is divided by $\tau$. Derive the
# temperature $\tau^*$ above which the slope of the smoothed score at $t = 0$ turns negative at the midpoint
# between the noised centres: above it the smoothed density $p_{\tau,0}$ has a new mode in the gap. Check with
# `mixture.score_jacobian(x, t, schedule, temperature=tau)`.

# %%
answer = None  # your answer: a number (a temperature)
check("03.3", answer)

# %% [markdown]
# ### Exercise 03.4 · Find a setting with the explorer (medium)
#
# In the exact-score explorer (its defaults: DDIM with 100 steps on the standard linear schedule, 4000 samples,
# seed 0), try the temperatures 1, 2, 3, 5, 10, 20, 30. Which is the smallest temperature whose hallucination
# rate's 95% interval lies entirely above 1%? (`vsmlab.lab.explorer_state.compute_state(temperature=tau)` gives the
# explorer's readouts without the widget.)

# %%
answer = None  # your answer: one of the temperatures listed
check("03.4", answer)

# %% [markdown]
# ### Exercise 03.5 · Which steps matter? (open)
#
# Predict from the window experiment: if you smooth ($\tau = 10$) only the steps where $\sigma_t$ lies between
# 0.2 and 0.8 times the mode spacing, does the rate approach the rate of smoothing every step? Build the windowed
# model from the steps where `schedule.sigma` lies in that band and measure. What does this say about where a
# penalty on smoothness should act?

# %%
describe("03.5");
