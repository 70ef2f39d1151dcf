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
# # 02 · Mode interpolation in 2D: hallucinations land between *nearest* modes
#
# 25 narrow Gaussians on a $5 \times 5$ grid (spacing 2, std 0.05, the whole mixture divided by its global std),
# and the control: the same grid rotated by 45 degrees (the "diamond"). If a smooth network interpolates between
# modes, hallucinated samples should appear on the segments joining **nearest** neighbours: horizontal and
# vertical segments for the grid, diagonal ($\pm 45$ degree) segments for the diamond, and never along the
# diamond's $x$-axis where no two modes are neighbours. The exact score is the control for the sampler.
#
# The network: the MLP of notebook 01 with 16 random Fourier input features ($\sin$ and $\cos$ of $2\pi B x$) and
# a cosine learning-rate decay. At this CPU budget the plain MLP of notebook 01 has not yet learned the 25 narrow
# modes at all (the last section measures it), so its "hallucinations" would mostly be failure to fit; the
# Fourier-feature net does fit them and still interpolates.

# %% [markdown]
# ## What you will learn
#
# - Predict where a smooth network's hallucinations should land in 2-D: on the *bridges*, the segments joining
#   nearest-neighbour modes.
# - Use a rotated layout as a control: if hallucinations follow the bridges, rotating the modes rotates them.
# - Measure the share of hallucinated samples that lie between their two nearest modes and on a bridge, and
#   compare it with the share of the plane the bridges cover.
# - See why input features matter on a small budget: random Fourier features let a small MLP fit 25 narrow
#   modes that the plain MLP of notebook 01 does not.
#
# **The question.** Where do a trained model's hallucinations land in 2-D: anywhere off the support, or
# between nearest modes?
#
# **Prerequisites.** Notebook 01.
#
# **Time.** cold about 5.6 min (338 s) on a 2-core CPU (empty cache; the main job), seconds when the trained models are cached.

# %% tags=["parameters"]
profile = "default"  # smoke | default | full
seed = 0
figures_dir = ""  # "" -> figures/02_mode_interpolation_2d/ (default profile), figures/<profile>/02_mode_interpolation_2d/ otherwise

# %%
import time

import matplotlib.pyplot as plt
import numpy as np
import torch

import vsmlab
from vsmlab.lab.experiments import make_mixture, train_toy
from vsmlab.lab.notebook import start

PROFILES = {
    "smoke": dict(n_train=4000, steps=150, batch_size=256, width=32, n_samples=500, plain_samples=300),
    "default": dict(n_train=50000, steps=4000, batch_size=2048, width=128, n_samples=20000, plain_samples=5000),
    "full": dict(n_train=100000, steps=30000, batch_size=10000, width=128, n_samples=100000, plain_samples=20000),
}
cfg, saver = start("02_mode_interpolation_2d", profile, seed, figures_dir, PROFILES)
K_STD = 4.0
schedule = vsmlab.linear(1000, beta_start=1e-3, beta_end=0.2)
layouts = {"grid": make_mixture(dict(name="grid")), "diamond": make_mixture(dict(name="diamond"))}
for name, mix in layouts.items():
    print(f"{name}: {mix.num_modes} modes, component std {float(mix.stds[0]):.4f}, "
          f"nearest-mode spacing {mix.min_mode_spacing():.4f}, floor {mix.support_floor(K_STD):.2e}")

# %% [markdown]
# ## Train one network per layout and sample both it and the exact score

# %%
def spec_for(layout: str, fourier: bool) -> dict:
    model = dict(width=cfg["width"], depth=3)
    if fourier:
        model.update(fourier_features=16, fourier_scale=1.0)
    return dict(mixture=dict(name=layout), schedule=dict(name="linear", beta_start=1e-3, beta_end=0.2), model=model,
                train=dict(steps=cfg["steps"], batch_size=cfg["batch_size"], lr=2e-3, lr_decay="cosine"),
                n_train=cfg["n_train"], seed=seed)


results = {}
for name, mix in layouts.items():
    run = train_toy(spec_for(name, fourier=True))
    x_T = torch.randn(cfg["n_samples"], 2, generator=torch.Generator().manual_seed(seed))
    t0 = time.perf_counter()
    learned = vsmlab.ddpm(run.model, schedule, x_T=x_T, generator=torch.Generator().manual_seed(seed + 1)).samples
    seconds = time.perf_counter() - t0
    exact = vsmlab.ddpm(vsmlab.ExactScoreModel(mix, schedule), schedule, x_T=x_T,
                        generator=torch.Generator().manual_seed(seed + 1)).samples
    results[name] = dict(run=run, learned=learned, exact=exact,
                         rate_learned=vsmlab.hallucination_rate(learned, mix, K_STD),
                         rate_exact=vsmlab.hallucination_rate(exact, mix, K_STD),
                         counts=vsmlab.mode_counts(learned, mix, K_STD))
    print(f"{name:>8}: training {run.seconds:.1f} s, sampling {seconds:.1f} s")
    print(f"          learned: {results[name]['rate_learned']}")
    print(f"          exact:   {results[name]['rate_exact']}")
    print(f"          per-mode weight error of in-support learned samples (TV): {results[name]['counts']['total_variation']:.4f}")

# %%
fig, axes = plt.subplots(2, 2, figsize=(10, 10))
for col, (name, mix) in enumerate(layouts.items()):
    r = results[name]
    for row, key in enumerate(("exact", "learned")):
        a = axes[row, col]
        x = r[key]
        inside = mix.in_support(x, K_STD)
        a.scatter(x[inside, 0], x[inside, 1], s=1, alpha=0.15, color="grey", label="in support")
        a.scatter(x[~inside, 0], x[~inside, 1], s=4, color=vsmlab.lab.plotting.PALETTE[key],
                  label=f"hallucinated ({key} score)")
        a.scatter(mix.means[:, 0], mix.means[:, 1], marker="+", color="black", s=30)
        rate = r["rate_" + key]
        a.set(title=f"{name}, {key} score: {100 * rate.rate:.2f}% off-support", aspect="equal",
              xlim=(-2.1, 2.1), ylim=(-2.1, 2.1))
for row in range(2):  # one legend per row: the hallucinated colour differs (exact: green, learned: magenta)
    axes[row, 0].legend(loc="lower left", fontsize=8, markerscale=4)
fig.suptitle("Where the samples land (hallucinated samples coloured)")
fig.tight_layout()
_ = saver.save(fig, "samples_grid_and_diamond")

# %% [markdown]
# ## Which pairs of modes do hallucinations connect?
#
# For each hallucinated sample we ask (a) whether it lies between its two nearest modes (its projection falls
# inside the segment joining them), (b) whether it lies on a **bridge**: within 4 component stds of a segment
# joining two nearest-neighbour modes (horizontal/vertical on the grid, diagonal on the diamond), and (c) the
# angle of the segment joining its two nearest modes. For comparison, (b) is also computed for points drawn
# uniformly over the square the modes occupy: the share of the plane that bridges cover.

# %%
def pair_stats(x: torch.Tensor, mix: vsmlab.GaussianMixture) -> dict:
    off = ~mix.in_support(x, K_STD)
    xo = x[off]
    i, j, between = mix.between_modes(xo)
    seg = mix.means[j] - mix.means[i]
    angle = torch.rad2deg(torch.atan2(seg[:, 1], seg[:, 0])) % 180
    on_bridge = mix.distance_to_bridges(xo) <= K_STD
    n_off = int(off.sum())
    lim = float(mix.means.abs().max())
    uniform = (torch.rand(20000, 2, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * 2 - 1) * lim
    return dict(n_off=n_off, angle=angle[between].numpy(),
                share_between=float(between.double().mean()) if n_off else float("nan"),
                share_bridge=float(on_bridge.double().mean()) if n_off else float("nan"),
                share_bridge_uniform=float((mix.distance_to_bridges(uniform) <= K_STD).double().mean()))


stats = {name: pair_stats(results[name]["learned"], mix) for name, mix in layouts.items()}
for name, s in stats.items():
    print(f"{name:>8}: {s['n_off']} hallucinated learned samples; {100 * s['share_between']:.1f}% lie between their two "
          f"nearest modes; {100 * s['share_bridge']:.1f}% lie on a nearest-neighbour bridge "
          f"(bridges cover {100 * s['share_bridge_uniform']:.1f}% of the square)")
    if len(s["angle"]):
        hist, _ = np.histogram(s["angle"], bins=[0, 22.5, 67.5, 112.5, 157.5, 180])
        hist = [hist[0] + hist[4], hist[1], hist[2], hist[3]]
        print("          segment angle  ~0 deg: {}, ~45 deg: {}, ~90 deg: {}, ~135 deg: {}".format(*hist))

fig, axes = plt.subplots(1, 2, figsize=(10, 3.4), sharey=True)
for a, (name, s) in zip(axes, stats.items()):
    a.hist(s["angle"], bins=np.arange(0, 181, 7.5), color=vsmlab.lab.plotting.PALETTE["learned"])
    a.set(xlabel="angle of the segment between the two nearest modes (deg)", title=f"{name}: hallucinations",
          xticks=[0, 45, 90, 135, 180])
axes[0].set_ylabel("count")
fig.tight_layout()
_ = saver.save(fig, "segment_angles")

# %% [markdown]
# ## Rates with confidence intervals

# %%
fig, ax = plt.subplots(figsize=(6, 3.4))
for off, key in ((-0.18, "learned"), (0.18, "exact")):
    p = np.array([100 * results[n]["rate_" + key].rate for n in layouts])
    err = np.array([[100 * (results[n]["rate_" + key].rate - results[n]["rate_" + key].low),
                     100 * (results[n]["rate_" + key].high - results[n]["rate_" + key].rate)] for n in layouts]).T
    ax.bar(np.arange(len(layouts)) + off, p, width=0.34, yerr=err, capsize=3, label=key,
           color=vsmlab.lab.plotting.PALETTE[key])
ax.set_xticks(range(len(layouts)), list(layouts))
ax.set(ylabel="hallucination rate (%)", title="2D hallucination rates (95% Wilson intervals)")
ax.legend()
fig.tight_layout()
saver.save(fig, "rates")
for name in layouts:
    r = results[name]
    print(f"{name:>8}: learned {r['rate_learned']}   exact {r['rate_exact']}")

# %% [markdown]
# ## The plain MLP at the same budget
#
# The same training budget for the network of notebook 01 (no Fourier features), on the grid. Compare its
# rate with the Fourier-feature net's above.

# %%
plain = train_toy(spec_for("grid", fourier=False))
x_T = torch.randn(cfg["plain_samples"], 2, generator=torch.Generator().manual_seed(seed))
plain_samples = vsmlab.ddpm(plain.model, schedule, x_T=x_T, generator=torch.Generator().manual_seed(seed + 1)).samples
plain_rate = vsmlab.hallucination_rate(plain_samples, layouts["grid"], K_STD)
print(f"plain MLP on the grid: {plain_rate} (training {plain.seconds:.1f} s)")
print(f"Fourier-feature MLP:   {results['grid']['rate_learned']}")

# %% [markdown]
# ## Key takeaways
#
# - **Only the network hallucinates.** With the exact score both layouts stay at 0.000% [0.000, 0.019] of
#   20000 samples; the Fourier-feature network puts 5.145% [4.847, 5.460] (grid) and 4.225% [3.955, 4.513]
#   (diamond) off the support, while its in-support samples keep the mode weights (per-mode error, total
#   variation, 0.0233 and 0.0251).
# - **Hallucinations sit between nearest modes.** 98.7% of the 1029 hallucinated grid samples and 98.8% of the
#   845 diamond ones lie between their two nearest modes; 86.4% (grid) and 88.8% (diamond) lie on a
#   nearest-neighbour bridge, although bridges cover only 36.0% and 23.0% of the square.
# - **Rotating the layout rotates the hallucinations.** On the grid the segments they lie on point at about
#   0 degrees (648 samples) or 90 degrees (368), none at 45 or 135; on the diamond at about 45 (289) or
#   135 degrees (546), none at 0 or 90, so none lie along the diamond's $x$-axis, where no two modes are neighbours.
# - **Without Fourier features the network has not fitted the modes.** With the same training budget the plain
#   MLP of notebook 01 puts 73.620% [72.381, 74.823] of 5000 grid samples off the support, against 5.145% for
#   the Fourier-feature net: its off-support samples are mostly a failure to fit, not interpolation.

# %% [markdown]
# ## Exercises
#
# Try each exercise on your own first: predict, then compute. Each check cell says whether your answer is
# right, close or wrong, with a hint when it is not. Worked solutions are in `notebooks/solutions/02_solutions.py`.

# %%
from vsmlab.lab.exercises import check, describe

# %% [markdown]
# ### Exercise 02.1 · Spacing after normalisation (easy)
#
# `vsmlab.grid_2d()` places 25 modes at spacing 2 (std 0.05; per axis the centres are $-4, -2, 0, 2, 4$) and
# divides the whole mixture by its global std $\sqrt{\operatorname{tr}\mathrm{Cov} / d}$. Derive the
# nearest-mode spacing after this normalisation.

# %%
answer = None  # your answer: a number
check("02.1", answer)

# %% [markdown]
# ### Exercise 02.2 · Bridges (easy)
#
# A bridge joins two nearest-neighbour modes. How many bridges does the $5 \times 5$ grid have, and how many
# does the diamond (the same grid rotated by 45 degrees)? Answer with the two counts, grid first.

# %%
answer = None  # your answer: two whole numbers (grid count, diamond count)
check("02.2", answer)

# %% [markdown]
# ### Exercise 02.3 · Which way do the bridges point? (medium)
#
# Give the angles (degrees, in $[0, 180)$) of the segments joining nearest-neighbour modes on the diamond: the
# directions along which the learned model's hallucinations should line up (compare with the notebook's angle
# histogram). `mixture.neighbour_pairs()` lists the pairs.

# %%
answer = None  # your answer: a list of angles in degrees
check("02.3", answer)

# %% [markdown]
# ### Exercise 02.4 · The floor in 2-D (medium)
#
# In 2-D a perfect sample is hallucinated when it lies farther than 4 component stds from its mode, with
# probability $P(\|z\| > 4)$ for $z \sim N(0, I_2)$. Derive it in closed form ($\|z\|^2$ has a $\chi^2$
# distribution with 2 degrees of freedom, an exponential distribution) and give its value.

# %%
answer = None  # your answer: a share (a number in [0, 1])
check("02.4", answer)

# %% [markdown]
# ### Exercise 02.5 · Rotate by another angle (open)
#
# Predict where the peaks of the angle histogram would move if the grid were rotated by 30 degrees
# (`vsmlab.grid_2d(rotate_deg=30)`). Check the geometry with `mixture.neighbour_pairs()`, then, if you have a
# few minutes, train the Fourier-feature net on it and compare the learned model's hallucinations with your
# prediction. Which pairs of modes does a hallucination never connect?

# %%
describe("02.5");
