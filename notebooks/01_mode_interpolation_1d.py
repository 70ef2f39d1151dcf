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
# # 01 · Mode interpolation in 1D: a smooth network puts samples between the modes
#
# The data is a mixture of three narrow Gaussians at 1, 2 and 3 (std 0.05). Nothing lies between the modes:
# a sample at 1.5 is a **hallucination**: outside the support of the data. We train a small $\epsilon$-network
# (the setting of the mode-interpolation work: $T = 1000$, linear $\beta_t$ from 0.001 to 0.2, ancestral DDPM
# sampling) and compare it with sampling from the **exact score** of the noised mixture, which we know in
# closed form at every step $t$. Every number quoted below is computed in this notebook.
#
# A sample counts as hallucinated when it lies farther than $k = 4$ component stds from every mode. Perfect
# samples cross that line with probability $P(|z| > 4) = 6.3 \times 10^{-5}$ (the *floor*).

# %% [markdown]
# ## What you will learn
#
# - Tell a hallucination (a sample off the data's support) from an ordinary sample, and why even perfect
#   samples have a small floor rate.
# - Compare the exact denoiser $E[x_0 \mid x_t]$ of a Gaussian mixture, a step function near $t = 0$, with the
#   smoothed step a trained network learns, and measure the difference with a *transition width*.
# - Measure a hallucination rate with its 95% Wilson interval, and compare a trained model with the exact score
#   under the same sampler and the same starting noise.
# - Read how the rate moves with training length, training-set size and the sampler (DDPM, DDIM, the
#   probability-flow ODE), and say when two rates cannot be told apart.
#
# **The question.** Why does a trained diffusion model put samples between the modes of the data, where the
# exact score puts none?
#
# **Prerequisites.** DDPM basics (forward noising, the $\epsilon$-prediction loss, ancestral sampling).
#
# **Time.** cold about 5.3 min (315 s) on a 2-core CPU (empty cache; the main job), seconds when the trained models are cached.

# %% tags=["parameters"]
profile = "default"  # smoke | default | full
seed = 0
figures_dir = ""  # "" -> figures/01_mode_interpolation_1d/ (default profile), figures/<profile>/01_mode_interpolation_1d/ otherwise

# %%
import time

import matplotlib.pyplot as plt
import numpy as np
import torch

import vsmlab
from vsmlab.lab.experiments import train_toy
from vsmlab.lab.notebook import start

PROFILES = {
    "smoke": dict(n_train=2000, steps=150, batch_size=256, width=32, n_samples=600, sweep_n_train=[500],
                  snapshot_steps=[50], sampler_samples=300, heun_steps=50),
    "default": dict(n_train=20000, steps=3000, batch_size=2048, width=128, n_samples=20000,
                    sweep_n_train=[1000, 5000], snapshot_steps=[500, 1500], sampler_samples=10000, heun_steps=250),
    "full": dict(n_train=50000, steps=20000, batch_size=10000, width=128, n_samples=100000,
                 sweep_n_train=[1000, 5000, 20000], snapshot_steps=[1000, 5000, 10000], sampler_samples=50000,
                 heun_steps=500),
}
cfg, saver = start("01_mode_interpolation_1d", profile, seed, figures_dir, PROFILES)
K_STD = 4.0
mixture = vsmlab.evenly_spaced_1d(num_modes=3, spacing=1.0, start=1.0, std=0.05)
schedule = vsmlab.linear(1000, beta_start=1e-3, beta_end=0.2)
exact = vsmlab.ExactScoreModel(mixture, schedule)
print(f"profile={profile} seed={seed} settings={cfg}")
print(f"floor (perfect samples outside {K_STD} std): {mixture.support_floor(K_STD):.2e}")
print(f"steps with alpha_bar < 1e-4 (pure noise): {float((schedule.alpha_bar < 1e-4).double().mean()):.0%}")

# %% [markdown]
# ## The data and the exact denoiser
#
# At step t the noised marginal is again a mixture, so its score and the ideal denoiser
# E[x0 | x_t] are exact. Near t = 0 the ideal denoiser is a **step function**: it snaps x_t to the nearest
# mode and switches between neighbours in a very narrow band.

# %%
def spec_for(n_train: int, run_seed: int) -> dict:
    return dict(mixture=dict(name="1d"), schedule=dict(name="linear", beta_start=1e-3, beta_end=0.2),
                model=dict(width=cfg["width"], depth=3),
                train=dict(steps=cfg["steps"], batch_size=cfg["batch_size"], lr=1e-3),
                n_train=n_train, seed=run_seed)


t0 = time.perf_counter()
main_run = train_toy(spec_for(cfg["n_train"], seed), snapshot_steps=tuple(cfg["snapshot_steps"]))
model = main_run.model
print(f"trained (or loaded) in {time.perf_counter() - t0:.1f} s; original training took {main_run.seconds:.1f} s; "
      f"final loss (mean of last 100 steps) {np.mean(main_run.history[-100:]):.4f}")

fig, ax = plt.subplots(1, 2, figsize=(11, 3.2))
ax[0].plot(main_run.history, lw=0.5)
ax[0].set(yscale="log", xlabel="training step", ylabel="eps-MSE", title="training loss")
xs = torch.linspace(0.5, 3.5, 3001, dtype=torch.float64)[:, None]
ax[1].plot(xs[:, 0], mixture.log_prob(xs).exp(), color=vsmlab.lab.plotting.PALETTE["data"])
ax[1].set(xlabel="x", ylabel="density", title="data: three modes, std 0.05")
fig.tight_layout()
_ = saver.save(fig, "data_and_loss")

# %% [markdown]
# ## Exact vs learned: the score and the denoiser as functions of x
#
# Below, for several steps t, the exact posterior mean E[x0 | x_t = x] and the one the network implies
# (x0_hat = (x - sigma_t eps_theta) / sqrt(alpha_bar_t)). We measure how sharp the switch between the first
# two modes is by the **transition width**: the mode spacing (1) divided by the steepest slope of x0_hat(x) in
# the gap 1.2 < x < 1.8, i.e. the distance over which x0_hat would travel from one mode to the next at its
# steepest. A step function has width ~0; a smoothed step has a wide one.

# %%
def transition_width(net, t: int, spacing: float = 1.0) -> float:
    """spacing / max_x d x0_hat/dx over the gap between the first two modes (finite differences)."""
    x = torch.linspace(1.2, 1.8, 6001)[:, None]
    tt = torch.full((x.shape[0],), t)
    with torch.no_grad():
        x0 = schedule.x0_from_eps(x, tt, net(x, tt).eps)[:, 0].double()
    slope = (x0[1:] - x0[:-1]) / (x[1:, 0] - x[:-1, 0]).double()
    return spacing / float(slope.max())


steps_to_show = [0, 2, 5, 10, 50]
xs32 = torch.linspace(0.5, 3.5, 3001)[:, None]
rows = []
fig, axes = plt.subplots(2, len(steps_to_show), figsize=(3.1 * len(steps_to_show), 5.6), sharex=True)
for j, t in enumerate(steps_to_show):
    tt = torch.full((xs32.shape[0],), t)
    x0_exact = mixture.posterior_mean(xs32, tt, schedule)
    with torch.no_grad():
        eps = model(xs32, tt).eps
    x0_learned = schedule.x0_from_eps(xs32, tt, eps)
    s_exact = mixture.score(xs32, tt, schedule)
    s_learned = vsmlab.eps_to_score(eps, tt, schedule)
    rows.append(dict(t=t, sigma=float(schedule.sigma[t]), width_exact=transition_width(exact, t),
                     width_learned=transition_width(model, t)))
    a = axes[0, j]
    a.plot(xs32[:, 0], x0_exact[:, 0], label="exact E[x0|x_t]", color=vsmlab.lab.plotting.PALETTE["exact"])
    a.plot(xs32[:, 0], x0_learned[:, 0], "--", label="learned", color=vsmlab.lab.plotting.PALETTE["learned"])
    a.set_title(f"t = {t}, sigma_t = {float(schedule.sigma[t]):.3f}")
    a = axes[1, j]
    a.plot(xs32[:, 0], s_exact[:, 0], color=vsmlab.lab.plotting.PALETTE["exact"])
    a.plot(xs32[:, 0], s_learned[:, 0], "--", color=vsmlab.lab.plotting.PALETTE["learned"])
    lim = float(s_exact.abs().quantile(0.98)) * 1.2
    a.set_ylim(-lim, lim)
    a.set_xlabel("x")
axes[0, 0].set_ylabel("x0_hat(x)")
axes[1, 0].set_ylabel("score(x)")
axes[0, 0].legend(fontsize=8)
fig.suptitle("The exact denoiser is a step function near t = 0; the network learns a smoothed step")
fig.tight_layout()
saver.save(fig, "denoiser_and_score")
print(f"{'t':>4} {'sigma_t':>8} {'width exact':>12} {'width learned':>14} {'ratio':>6}")
for r in rows:
    print(f"{r['t']:>4} {r['sigma']:>8.3f} {r['width_exact']:>12.4f} {r['width_learned']:>14.4f} "
          f"{r['width_learned'] / r['width_exact']:>6.1f}")

# %% [markdown]
# ## Samples: learned model vs exact score vs the true density
#
# Same sampler (ancestral DDPM, sigma_t^2 = beta_t), same starting noise, same number of samples. The
# histogram is on a log scale so that the rare samples between the modes are visible. DDPM's last step
# returns the posterior mean without fresh noise, so even exact-score samples are slightly narrower than the
# data (the printed std below); that does not move anything across the 4-std support line.

# %%
n = cfg["n_samples"]
x_T = torch.randn(n, 1, generator=torch.Generator().manual_seed(seed))
g_learned, g_exact = torch.Generator().manual_seed(seed + 1), torch.Generator().manual_seed(seed + 1)
t0 = time.perf_counter()
learned_samples = vsmlab.ddpm(model, schedule, x_T=x_T, generator=g_learned).samples
t_learned = time.perf_counter() - t0
exact_samples = vsmlab.ddpm(exact, schedule, x_T=x_T, generator=g_exact).samples
rate_learned = vsmlab.hallucination_rate(learned_samples, mixture, K_STD)
rate_exact = vsmlab.hallucination_rate(exact_samples, mixture, K_STD)
gap_learned = vsmlab.gap_mass(learned_samples, mixture, K_STD)
print(f"DDPM sampling of {n} points with the MLP: {t_learned:.1f} s")
print(f"hallucination rate, learned model: {rate_learned}")
print(f"hallucination rate, exact score:   {rate_exact}")
print(f"  of which between two modes (learned): {gap_learned}")
print(f"floor: {100 * mixture.support_floor(K_STD):.4f}%")
near = (exact_samples[:, 0] - 2.0).abs() < 0.25
print(f"std of exact-score samples around the mode at 2: {float(exact_samples[near, 0].std()):.4f} (data: 0.05)")
print(f"ratio learned / exact (upper CI of exact): >= {rate_learned.rate / max(rate_exact.high, 1e-12):.1f}x")

# %%
fig, ax = plt.subplots(figsize=(10, 3.8))
bins = np.linspace(0.5, 3.5, 301)
width = bins[1] - bins[0]
ax.hist(exact_samples[:, 0].numpy(), bins=bins, density=True, histtype="step", lw=1.2,
        color=vsmlab.lab.plotting.PALETTE["exact"], label=f"exact score: {100 * rate_exact.rate:.2f}% off-support")
ax.hist(learned_samples[:, 0].numpy(), bins=bins, density=True, histtype="step", lw=1.2,
        color=vsmlab.lab.plotting.PALETTE["learned"], label=f"learned MLP: {100 * rate_learned.rate:.2f}% off-support")
ax.plot(xs[:, 0], mixture.log_prob(xs).exp(), color=vsmlab.lab.plotting.PALETTE["data"], lw=0.8, label="true density")
ax.set(yscale="log", ylim=(0.5 / (n * width), None), xlabel="x", ylabel="density (log scale)",
       title="Samples between the modes: learned model vs exact score")
for m in mixture.means[:, 0]:
    for side in (-1, 1):
        ax.axvline(float(m) + side * K_STD * 0.05, color="grey", lw=0.4, ls=":")
ax.legend(loc="upper center", fontsize=8)
fig.tight_layout()
_ = saver.save(fig, "histogram_learned_vs_exact")

# %% [markdown]
# ## How the rate moves with the training-set size and the training length
#
# One training run keeps snapshots of its weights along the way (the training-length sweep); separate runs
# use smaller training sets. Each rate has its 95% Wilson interval over the samples drawn (one training
# seed per setting: the variation between training seeds is not in these intervals).

# %%
m = cfg["sampler_samples"]
x_T_small = x_T[:m] if m <= n else torch.randn(m, 1, generator=torch.Generator().manual_seed(seed))


def rate_of(net) -> vsmlab.Rate:
    res = vsmlab.ddpm(net, schedule, x_T=x_T_small, generator=torch.Generator().manual_seed(seed + 2))
    return vsmlab.hallucination_rate(res.samples, mixture, K_STD)


sweep = []
for step, snap in sorted(main_run.snapshots.items()):
    sweep.append(dict(kind="training steps", value=step, rate=rate_of(snap)))
sweep.append(dict(kind="training steps", value=cfg["steps"], rate=rate_of(model)))
for n_train in cfg["sweep_n_train"]:
    sweep.append(dict(kind="training points", value=n_train, rate=rate_of(train_toy(spec_for(n_train, seed)).model)))
sweep.append(dict(kind="training points", value=cfg["n_train"], rate=rate_of(model)))
for row in sweep:
    print(f"{row['kind']:>16} = {row['value']:>6}: {row['rate']}")

fig, axes = plt.subplots(1, 2, figsize=(10, 3.4), sharey=True)
for a, kind in zip(axes, ["training steps", "training points"]):
    sel = [r for r in sweep if r["kind"] == kind]
    v = [r["value"] for r in sel]
    p = np.array([100 * r["rate"].rate for r in sel])
    err = np.array([[100 * (r["rate"].rate - r["rate"].low), 100 * (r["rate"].high - r["rate"].rate)] for r in sel]).T
    a.errorbar(v, p, yerr=err, marker="o", capsize=3, color=vsmlab.lab.plotting.PALETTE["learned"])
    a.axhline(100 * rate_exact.rate, color=vsmlab.lab.plotting.PALETTE["exact"], ls="--", label="exact score")
    a.set(xscale="log", xlabel=kind, title=f"hallucination rate vs {kind}")
axes[0].set_ylabel("hallucination rate (%)")
axes[0].legend(fontsize=8)
fig.tight_layout()
_ = saver.save(fig, "rate_vs_training")

# %% [markdown]
# ## DDPM vs DDIM vs the probability-flow ODE
#
# The same learned network and the exact score, each sampled three ways: ancestral DDPM (all 1000 steps),
# deterministic DDIM (eta = 0, all 1000 steps; this is also the Euler discretisation of the probability-flow
# ODE), and the ODE with Heun's method on fewer steps. With the exact score every sampler should stay near the
# floor (up to its discretisation error), so any excess of the learned model is the network's doing.

# %%
samplers = {
    "DDPM (1000 steps)": lambda net, g: vsmlab.ddpm(net, schedule, x_T=x_T_small, generator=g),
    "DDIM eta=0 (1000 steps)": lambda net, g: vsmlab.ddim(net, schedule, x_T=x_T_small, generator=g),
    f"ODE Heun ({cfg['heun_steps']} steps)": lambda net, g: vsmlab.ode(net, schedule, x_T=x_T_small, method="heun",
                                                                      num_steps=cfg["heun_steps"]),
}
sampler_rows = []
for name, run in samplers.items():
    for label, net in (("learned", model), ("exact", exact)):
        t0 = time.perf_counter()
        res = run(net, torch.Generator().manual_seed(seed + 3))
        sampler_rows.append(dict(sampler=name, model=label, rate=vsmlab.hallucination_rate(res.samples, mixture, K_STD),
                                 seconds=time.perf_counter() - t0))
for r in sampler_rows:
    print(f"{r['sampler']:>26} | {r['model']:>7}: {r['rate']}  ({r['seconds']:.1f} s)")

fig, ax = plt.subplots(figsize=(8, 3.4))
names = list(samplers)
for off, label in ((-0.18, "learned"), (0.18, "exact")):
    sel = [r for r in sampler_rows if r["model"] == label]
    p = np.array([100 * r["rate"].rate for r in sel])
    err = np.array([[100 * (r["rate"].rate - r["rate"].low), 100 * (r["rate"].high - r["rate"].rate)] for r in sel]).T
    ax.bar(np.arange(len(names)) + off, p, width=0.34, yerr=err, capsize=3, label=label,
           color=vsmlab.lab.plotting.PALETTE[label])
ax.set_xticks(range(len(names)), names, fontsize=8)
ax.set(ylabel="hallucination rate (%)", title="Sampler comparison (95% Wilson intervals)")
ax.legend()
fig.tight_layout()
_ = saver.save(fig, "samplers")

# %% [markdown]
# ## Key takeaways
#
# - **The network learns a smoothed step.** Near $t = 0$ the exact denoiser switches from the mode at 1 to the
#   mode at 2 over a width of 0.0473 in $x$, the trained MLP over 0.5113 (10.8 times wider). The ratio shrinks
#   as $t$ grows: at $t = 50$ the two widths are 0.9249 (exact) and 0.8544 (learned).
# - **The exact score does not hallucinate; the network does.** From the same starting noise with the same
#   sampler, the exact score puts 0.000% [0.000, 0.019] of 20000 samples off the support, the MLP
#   0.490% [0.402, 0.597] (98/20000), and 0.405% of all its samples lie *between* two modes. That is at least
#   25.5x the exact score's upper limit and far above the floor of 0.0063%.
# - **Longer training lowers the rate without removing it.** After 500, 1500 and 3000 training steps the rate
#   is 32.420%, 1.200% and 0.560% [0.432, 0.726]. With 1000, 5000 and 20000 training points it is
#   0.580% [0.449, 0.749], 0.500% [0.379, 0.659] and 0.560%: these intervals overlap, so this run (one
#   training seed per setting) cannot tell the training-set sizes apart.
# - **The sampler is not the cause.** The learned model gives 0.440% [0.328, 0.590] with DDPM,
#   0.680% [0.537, 0.861] with DDIM and 0.550% [0.423, 0.715] with the Heun ODE; the intervals overlap, so the run
#   cannot tell the samplers apart. The exact score gives 0.000%, 0.000% and 0.010% (1/10000) with the same
#   three samplers, so the excess comes from the network.

# %% [markdown]
# ## Exercises
#
# Try each exercise on your own first: predict, then compute. Each check cell says whether your answer is
# right, close or wrong, with a hint when it is not. Worked solutions are in `notebooks/solutions/01_solutions.py`.

# %%
from vsmlab.lab.exercises import check, describe

# %% [markdown]
# ### Exercise 01.1 · The floor at k = 3 (easy)
#
# A sample is hallucinated when it lies farther than $k$ component stds from every mode, so even perfect
# samples cross that line with probability $P(|z| > k)$, $z \sim N(0, 1)$: the floor ($6.3 \times 10^{-5}$ for
# $k = 4$). Predict the floor for $k = 3$, the hallucination rate of samples drawn from the data itself.

# %%
answer = None  # your answer: a share (a number in [0, 1])
check("01.1", answer)

# %% [markdown]
# ### Exercise 01.2 · Where do the steps go? (easy)
#
# The notebook's schedule `vsmlab.linear(1000, 1e-3, 0.2)` spends 70% of its steps at pure noise
# ($\bar\alpha_t < 10^{-4}$). Predict, then compute, the share of the 1000 steps with $\bar\alpha_t < 10^{-4}$
# under the standard DDPM schedule `vsmlab.linear(1000, 1e-4, 0.02)`.

# %%
answer = None  # your answer: a share (a number in [0, 1])
check("01.2", answer)

# %% [markdown]
# ### Exercise 01.3 · The ideal denoiser between two modes (medium)
#
# Compute the posterior mean $E[x_0 \mid x_t]$ at $x_t = 1.5$ and $t = 10$ for the notebook's mixture
# `vsmlab.evenly_spaced_1d(3, 1.0, 1.0, 0.05)` (modes 1, 2, 3, std $s = 0.05$) and schedule
# `vsmlab.linear(1000, 1e-3, 0.2)`. By symmetry one might guess 1.5: is it? With $a = \sqrt{\bar\alpha_t}$ and
# $v_k = a^2 s_k^2 + 1 - a^2$, $E[x_0 \mid x_t] = \sum_k r_k(x_t)\,\big(\mu_k + \frac{a s_k^2}{v_k}(x_t - a\mu_k)\big)$;
# or use Tweedie's formula $E[x_0 \mid x_t] = \big(x_t + (1 - \bar\alpha_t)\,s(x_t)\big) / a$ with `mixture.score`.

# %%
answer = None  # your answer: a number
check("01.3", answer)

# %% [markdown]
# ### Exercise 01.4 · When does the switch get wide? (medium)
#
# The transition width of a denoiser between modes 1 and 2 is the spacing (1) divided by the steepest slope of
# $\hat x_0(x)$ on $1.2 < x < 1.8$. For the exact denoiser $E[x_0 \mid x_t = x]$ of the notebook's mixture and
# schedule, find the first step $t$ at which the width exceeds 0.1. Use
# $\partial E[x_0 \mid x_t] / \partial x = \big(1 + (1 - \bar\alpha_t)\, \partial s / \partial x\big) / \sqrt{\bar\alpha_t}$
# with the exact $\partial s / \partial x$ from `mixture.score_jacobian`, or finite differences of
# `mixture.posterior_mean` on a fine grid.

# %%
answer = None  # your answer: a step t (a whole number in 0..999)
check("01.4", answer)

# %% [markdown]
# ### Exercise 01.5 · Less data, more hallucinations? (open)
#
# Predict, then measure: does a network trained on 10 times less data put more or fewer samples between the
# modes? Train with a smaller `n_train` (the sweep's `spec_for(n_train, seed)`), sample it from the same starting
# noise and read the rate with its 95% interval. Does the interval overlap the one for the full training set?
# How many samples, or training seeds, would you need to tell the two apart?

# %%
describe("01.5");
