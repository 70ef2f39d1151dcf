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
# # 05 appendix · VSM's other settings, a 2-D mixture, filtering and the mechanism
#
# This notebook continues the lesson `05_vsm_and_mitigations`: its first code cell re-runs the lesson quietly (the
# trained models and sample sets come from the cache), then adds the settings the lesson left out, all with the
# same seeds and the same measurements:
#
# - **VSM** with $\rho \in \{0.01, 0.1, 1, 10\}$, time-weighted ($w(t) = \rho / \sqrt{1 - \bar\alpha_t}$) or
#   constant ($w = \rho$);
# - **the tanh-squashed variance head** ($f$ kept inside $[0, 1]$) against the reference's unbounded one;
# - a **Jacobian penalty** on the score network itself (VSM's functional form on the real Jacobian, estimated by
#   Hutchinson; see `vsmlab.diffusion.variance`);
# - **a 2-D mixture**: a $3 \times 3$ grid with the same std-to-spacing ratio as the 1-D mixture (spacing 2, std 0.1,
#   divided by the global std), five seeds per setting;
# - **trajectory-variance filtering** (the mode-interpolation work's detector) at several thresholds.
#
# Then the fidelity of the kept samples, the score error per $t$ and smoothness, the mechanism (which loss term
# pushes which parameters), the ceiling for every learned-variance model, every verdict with a rank test and a
# bootstrap beside the t-interval, Holm-corrected as one exploratory family per mixture.

# %% [markdown]
# ## What you will learn
#
# - Check whether any VSM weight or weighting, or a bounded variance head, changes the verdict of the lesson.
# - Compare VSM's diagonal proxy with a penalty on the real score Jacobian, and both with a sharper network.
# - Weigh trajectory-variance filtering: the hallucinations it removes against the in-support samples it discards.
# - Measure the mechanism: the gradient of each loss term on the variance head, the $\epsilon$ head and the trunk.
#
# **The question.** Does anything in VSM's family, or beside it, change the lesson's answer on toy mixtures, and why
# does the penalty move so little?
#
# **Prerequisites.** The lesson `05_vsm_and_mitigations` (this notebook continues from it).
#
# **Time.** cold about 50 min on a 2-core CPU from an empty cache, the lesson's runs included (175 runs, which train
# 160 small models, and 390 extra sample sets for the ceiling); minutes when everything is cached.

# %% tags=["parameters"]
profile = "default"  # smoke | default | full
seed = 0
figures_dir = ""  # "" -> figures/05_vsm_and_mitigations_appendix

# %%
from vsmlab.lab.notebook import continue_lesson, profile_settings

continue_lesson(globals(), "05_vsm_and_mitigations")  # the lesson's variables and functions, its models from the cache
ALL_VSM = [vsm_name(r, tw) for tw in (True, False) for r in (0.01, 0.1, 1.0, 10.0)]
MAIN_1D = [FIXED, FIXED_BT, RHO0, RHO0_TANH, *ALL_VSM, jac_name(0.01, False), FOURIER]
SETTINGS_2D = [FIXED, FIXED_BT, RHO0, vsm_name(0.1, True), vsm_name(10.0, True), jac_name(0.01, False), FOURIER]
THRESHOLDS = [1e-3, 0.0031622777, 1e-2]  # trajectory-variance filter thresholds shown in the table
# every mixture and setting of the appendix; the lesson's runs (same settings, seeds and budget) are reused
MIXTURES_ALL = {
    "smoke": {"1d": dict(cfg["mixtures"]["1d"], settings=[FIXED, FIXED_BT, RHO0, vsm_name(0.1, True),
                                                           jac_name(0.01, False), FOURIER]),
              "2d": dict(settings=[FIXED, FIXED_BT, RHO0], seeds=2, width=16, steps=60, batch_size=128, n_train=2000,
                         evaluation=dict(n_samples=200, n_reference=200, score_n=200, score_ts=[0, 20, 100],
                                         lipschitz_ts=[0, 5], lipschitz_grid=400, keep_samples=200))},
    "default": {"1d": dict(cfg["mixtures"]["1d"], settings=MAIN_1D),
                "2d": dict(settings=SETTINGS_2D, seeds=5, width=64, steps=2000, batch_size=1024, n_train=50000,
                           evaluation=dict(n_samples=4000, n_reference=4000, keep_samples=4000, lipschitz_grid=40000))},
    "full": {"1d": dict(cfg["mixtures"]["1d"], settings=list(SETTINGS)),
             "2d": dict(settings=list(SETTINGS), seeds=10, width=128, steps=6000, batch_size=2048, n_train=100000,
                        evaluation=dict(n_samples=20000, n_reference=20000, keep_samples=20000, lipschitz_grid=90000))},
}
cfg["mixtures"] = profile_settings(profile, MIXTURES_ALL)
for name, m in cfg["mixtures"].items():
    print(f"  {name}: {len(m['settings'])} settings x {m['seeds']} seeds, width {m['width']}, {m['steps']} steps, "
          f"batch {m['batch_size']}")
results = measure(results)

# %% [markdown]
# ## The results tables
#
# The columns of the lesson's table, now for every setting and both mixtures (the 2-D rates: off-support = farther
# than 4 component stds from every grid mode).

# %%
summary = {}
rows = [row for mixture in cfg["mixtures"] for row in results_table(mixture)]

# %% [markdown]
# ## Trajectory-variance filtering
#
# Score each sample by the variance of its predicted x0 over the last 10 reverse steps and discard it when the
# score exceeds a threshold tau. Left: the retention curves of the fixed-variance baseline (one line per seed;
# share of hallucinations removed against share of in-support samples kept; the dots mark the thresholds of the
# table). The table rows give the rate left among the kept samples, with the share of in-support samples kept.

# %%
fig, axes = plt.subplots(1, len(cfg["mixtures"]), figsize=(5.2 * len(cfg["mixtures"]), 4), squeeze=False)
for a, (mixture, m) in zip(axes[0], cfg["mixtures"].items()):
    for r in runs(mixture, FIXED):
        if r["auc"] is None:
            continue
        kept = np.array([np.nan if v is None else v for v in r["in_support_kept"]], dtype=float)
        removed = np.array([np.nan if v is None else v for v in r["removed"]], dtype=float)
        a.plot(100 * kept, 100 * removed, lw=1, color=PALETTE["baseline"], alpha=0.7)
        marks = [r["thresholds"].index(min(r["thresholds"], key=lambda x: abs(x - th))) for th in THRESHOLDS]
        a.plot(100 * kept[marks], 100 * removed[marks], "o", ms=3, color="black")
    auc = summary[(mixture, FIXED)]["auc"]
    a.set(xlabel="in-support samples kept (%)", ylabel="hallucinations removed (%)", xlim=(0, 101), ylim=(0, 101),
          title=f"{mixture}, fixed variance: AUC {fmt(auc)}")
fig.tight_layout()
saver.save(fig, "trajectory_filter_retention")

print(f"{'mixture':<6} {'setting':<28} {'tau':>8} {'rate left %':>16} {'in-support kept %':>20} {'halluc. removed %':>20}")
for mixture, m in cfg["mixtures"].items():
    for setting in (FIXED, FIXED_BT, RHO0, FOURIER):
        if setting not in m["settings"]:
            continue
        rs = runs(mixture, setting)
        for th in THRESHOLDS:
            j = min(range(len(rs[0]["thresholds"])), key=lambda i: abs(rs[0]["thresholds"][i] - th))
            left = ci([r["rate_after"][j] for r in rs])
            kept = ci([r["in_support_kept"][j] for r in rs])
            removed = ci([r["removed"][j] for r in rs])
            print(f"{mixture:<6} {setting:<28} {th:>8.2g} {fmt(left, 100):>16} {fmt(kept, 100):>20} {fmt(removed, 100):>20}")
            row = dict(mixture=mixture, setting=f"{setting} + trajectory filter", variant=variant(setting), seeds=len(rs),
                       filter_threshold=f"{th:.3g}")
            row["rate_pct"], row["rate_pct_ci95"] = cell(left, 100)
            for _, col, _, _, _ in COLUMNS[1:]:
                row[col], row[col + "_ci95"] = "", ""
            if setting == FIXED:
                row["diff_vs_fixed_pct"], row["diff_vs_fixed_pct_ci95"] = cell(
                    ci([r["rate_after"][j] - r["rate"] for r in rs if r["rate_after"][j] is not None]), 100)
            row["in_support_kept_pct"], row["in_support_kept_pct_ci95"] = cell(kept, 100)
            rows.append(row)
saver.save_table(rows, "results")
print(f"\nwrote {len(rows)} rows to results.csv (the settings above and the filter rows)")

# %% [markdown]
# ## Hallucination rate per setting
#
# Left of each pair: the rate (95% interval over seeds). Right: the paired difference to the rho = 0 model (VSM's
# own baseline). An interval that crosses 0 means this many seeds cannot tell the setting from rho = 0.

# %%
_ = saver.save(rates_figure(), "rates")

# %% [markdown]
# ## Fidelity of the kept samples, the score error per t, and smoothness
#
# A mitigation that lowers the rate by distorting the in-support samples is not a win. Top: per-mode weight
# error and sliced Wasserstein-2 (exact W2 in 1-D) to fresh mixture samples, per setting. Bottom left: the score
# error per t (mean over seeds). Bottom right: each run's Lipschitz estimate at t = 0 against its hallucination
# rate: does a sharper learned score go with fewer hallucinations?

# %%
n_mix = len(cfg["mixtures"])
fig, axes = plt.subplots(2 * n_mix, 2, figsize=(12, 6.2 * n_mix), squeeze=False)
for k, (mixture, m) in enumerate(cfg["mixtures"].items()):
    names = m["settings"]
    y = np.arange(len(names))[::-1]
    for a, key, label in ((axes[2 * k, 0], "mwe", "max per-mode weight error"), (axes[2 * k, 1], "sw", "sliced W2 to the mixture")):
        for yi, setting in zip(y, names):
            c = summary[(mixture, setting)][key]
            if c is not None:
                a.errorbar(c.mean, yi, xerr=c.half, fmt="o", capsize=3, color=GROUPS[group(setting)])
        a.set_yticks(y, names, fontsize=7)
        a.set(xlabel=label, title=f"{mixture}: {label}")
    a = axes[2 * k + 1, 0]
    for setting in names:
        rs = runs(mixture, setting)
        err = np.mean([r["score_error"] for r in rs], axis=0)
        ts = np.array(rs[0]["score_ts"], dtype=float)
        a.plot(np.maximum(ts, 0.5), err, marker=".", lw=1 if group(setting) == "VSM" else 2,
               alpha=0.5 if group(setting) == "VSM" else 1, color=GROUPS[group(setting)],
               label=setting if group(setting) != "VSM" or setting == names[2] else None)
    a.set(xscale="log", yscale="log", xlabel="t (t = 0 drawn at 0.5)", ylabel="E||eps_theta - eps*||^2 / d",
          title=f"{mixture}: score error vs t (VSM settings thin)")
    a.legend(fontsize=7)
    a = axes[2 * k + 1, 1]
    for setting in names:
        rs = runs(mixture, setting)
        a.scatter([r["lipschitz"][0] for r in rs], [100 * r["rate"] for r in rs], s=14, color=GROUPS[group(setting)],
                  label=group(setting))
    handles, labels = a.get_legend_handles_labels()
    uniq = dict(zip(labels, handles))
    a.legend(uniq.values(), uniq.keys(), fontsize=7)
    a.set(xscale="log", xlabel="Lipschitz estimate of the learned score at t = 0 "
          f"(exact: {results[(mixture, names[0], seed)]['lipschitz_exact'][0]:.3g})",
          ylabel="hallucination rate (%)", title=f"{mixture}: smoothness vs hallucination (one dot per run)")
    a.xaxis.set_minor_formatter(plt.NullFormatter())
fig.tight_layout()
_ = saver.save(fig, "fidelity_score_error_smoothness")
for mixture, m in cfg["mixtures"].items():
    lips = [r["lipschitz"][0] for s_ in m["settings"] for r in runs(mixture, s_)]
    rates = [r["rate"] for s_ in m["settings"] for r in runs(mixture, s_)]
    if len(lips) > 2 and len(set(lips)) > 1 and len(set(rates)) > 1:
        from scipy.stats import spearmanr

        rho_s, p_s = spearmanr(lips, rates)
        print(f"{mixture}: Spearman correlation of Lipschitz(t=0) and rate over all {len(lips)} runs: {rho_s:.2f} (p = {p_s:.2g})")

# %% [markdown]
# ## Samples (first seed)
#
# The first seed's samples of the main settings: log-density histograms in 1-D, scatter plots in 2-D (red:
# hallucinated).

# %%
for mixture in cfg["mixtures"]:
    _ = saver.save(samples_figure(mixture), f"samples_{mixture}")

# %% [markdown]
# ## Mechanism: which term pushes which parameters, and does the variance head move?
#
# For the first seed's VSM model (rho = 0.1, time-weighted) we take a batch of training points at single steps t
# and compute the gradient norm of each term's batch mean on the variance head (the v rows of the output
# layer), on the eps head, and on the shared trunk. The VSM term is evaluated at rho = 1 (its gradient is
# linear in rho: multiply by rho for any other setting). An exactly zero gradient (the learned range has
# collapsed, beta_tilde_t = beta_t) is not drawn on the log scale. Right: the learned interpolation fraction
# f = (v + 1)/2 (0: Sigma = beta_tilde_t, 1: Sigma = beta_t; with the unbounded head f may leave [0, 1]) averaged
# over x_t ~ p_t and seeds, for rho = 0 and VSM.
# A change of f moves log Sigma by (change of f) * (log beta_t - log beta_tilde_t): printed below as a change of Sigma.

# %%
main = "1d" if "1d" in cfg["mixtures"] else next(iter(cfg["mixtures"]))
mix = mixtures[main]
vsm_setting = vsm_name(0.1, True) if vsm_name(0.1, True) in cfg["mixtures"][main]["settings"] else RHO0
vsm_model = train_toy(spec_for(main, vsm_setting, seed)).model
g = torch.Generator().manual_seed(seed)
x0 = mix.sample(cfg["grad_batch"], generator=g)
eps = torch.randn(x0.shape, generator=g)
norms = {t: variance.term_gradient_norms(vsm_model, x0, t, eps, schedule, rho=1.0, time_weight=True) for t in cfg["grad_ts"]}
ts = np.array(cfg["grad_ts"], dtype=float)
fig, axes = plt.subplots(1, 4, figsize=(16, 3.6))
for a, grp in zip(axes[:3], ("var_head", "trunk", "eps_head")):
    for term, colour, label in (("mse", PALETTE["baseline"], "MSE"), ("vb", PALETTE["learned"], "VB"),
                                ("vsm", PALETTE["vsm"], "VSM (rho = 1)")):
        vals = np.array([norms[t][term][grp] for t in cfg["grad_ts"]])
        a.plot(np.maximum(ts, 0.5), np.where(vals > 0, vals, np.nan), marker="o", ms=3, color=colour, label=label)
    a.set(xscale="log", yscale="log", xlabel="t (t = 0 drawn at 0.5)", ylabel="gradient norm", title=grp)
axes[0].legend(fontsize=7)
a = axes[3]
fractions = {}
for setting in [s_ for s_ in (RHO0, vsm_name(0.1, True), vsm_name(10.0, True), vsm_name(10.0, False))
                if s_ in cfg["mixtures"][main]["settings"]]:
    per_seed, f_lo, f_hi = [], math.inf, -math.inf
    for i in range(cfg["mixtures"][main]["seeds"]):
        model = train_toy(spec_for(main, setting, seed + i)).model
        f_t = []
        for t in cfg["grad_ts"]:
            tt = torch.full((x0.shape[0],), t)
            with torch.no_grad():
                f = (model(schedule.noise(x0, tt, eps), tt).v + 1) / 2
            f_t.append(float(f.mean()))
            f_lo, f_hi = min(f_lo, float(f.min())), max(f_hi, float(f.max()))
        per_seed.append(f_t)
    fractions[setting] = np.array(per_seed)
    print(f"{setting}: f = (v + 1)/2 over all seeds, t in grad_ts and the batch ranges over [{f_lo:.3f}, {f_hi:.3f}]")
    a.plot(np.maximum(ts, 0.5), fractions[setting].mean(0), marker="o", ms=3, label=setting)
a.set(xscale="log", xlabel="t", ylabel="mean f = (v + 1) / 2", title="learned variance position in its range")
a.axhline(0, color="grey", lw=0.6, ls=":")
a.axhline(1, color="grey", lw=0.6, ls=":")
a.legend(fontsize=7)
fig.tight_layout()
_ = saver.save(fig, "mechanism_gradients")
ratios = []
print(f"{'t':>5} | {'var head: MSE':>13} {'VB':>9} {'VSM(rho=1)':>11} | {'trunk: MSE':>11} {'VB':>9} {'VSM(rho=1)':>11} | "
      f"{'VSM/MSE on trunk at rho=0.1':>28}")
for t in cfg["grad_ts"]:
    n_ = norms[t]
    ratio = 0.1 * n_["vsm"]["trunk"] / n_["mse"]["trunk"] if n_["mse"]["trunk"] > 0 else float("nan")
    ratios.append(ratio)
    print(f"{t:>5} | {n_['mse']['var_head']:>13.2e} {n_['vb']['var_head']:>9.2e} {n_['vsm']['var_head']:>11.2e} | "
          f"{n_['mse']['trunk']:>11.2e} {n_['vb']['trunk']:>9.2e} {n_['vsm']['trunk']:>11.2e} | {ratio:>28.2e}")
pos = [r_ for r_ in ratios if r_ > 0 and math.isfinite(r_)]
if pos:
    print(f"VSM/MSE gradient ratio on the trunk at rho = 0.1: from {min(pos):.1e} to {max(pos):.1e} over the t where "
          f"it is non-zero ({len(pos)} of {len(ratios)}; zero where the range has collapsed)")
if RHO0 in fractions:
    log_range = (torch.log(schedule.betas) - schedule.log_beta_tilde_clipped)[cfg["grad_ts"]].numpy()
    for setting, fr in fractions.items():
        if setting != RHO0:
            delta = fr.mean(0) - fractions[RHO0].mean(0)
            k = int(np.abs(delta).argmax())
            sigma_change = np.abs(delta) * log_range  # |change of log Sigma| = |change of f| * (log beta - log beta_tilde)
            k2 = int(sigma_change.argmax())
            print(f"{setting} vs rho=0: largest change of the mean fraction f: {delta[k]:+.3f} at t={cfg['grad_ts'][k]} "
                  f"(log-range there {log_range[k]:.1e}); largest implied change of Sigma: "
                  f"{100 * (math.exp(sigma_change[k2]) - 1):.2f}% at t={cfg['grad_ts'][k2]}")

# %% [markdown]
# ## The ceiling for every learned-variance model
#
# As in the lesson: each model sampled with its own $\Sigma$ and with $f$ forced to 0 ($\Sigma_t = \tilde\beta_t$) and
# to 1 ($\Sigma_t = \beta_t$), from the same noise; paired differences over training seeds.

# %%
ceiling_table({mixture: [s_ for s_ in m["settings"] if SETTINGS[s_][1].get("learn_variance")]
               for mixture, m in cfg["mixtures"].items()})

# %% [markdown]
# ## Verdicts, computed from the intervals above

# %%
for mixture in cfg["mixtures"]:
    print_verdicts(mixture)

# %% [markdown]
# ## How large an effect could these seeds see, and do the verdicts survive other tests?
#
# For each main comparison (paired by seed): the t-interval of the mean difference; the **minimum detectable
# effect** (MDE): the true mean difference a two-sided paired t-test at 5% would detect with 80% power given this
# many seeds and the observed spread of the differences (noncentral t); a **Wilcoxon signed-rank** test (exact for
# these n, no normality assumption) and a **bootstrap** 95% percentile interval of the mean (10,000 resamples of the
# seeds); and per seed: how many differences are non-zero at all, how many go each way, and how many a
# two-proportion z-test on that seed's samples would call significant at 5% (samples treated as independent;
# they share their starting noise across settings, so this is conservative).

# %%
from scipy import stats

from vsmlab.analysis.power import mde_paired_t


def robustness(mixture: str, setting: str, base: str) -> dict:
    a, b = runs(mixture, setting), runs(mixture, base)
    d = np.array([x["rate"] - y["rate"] for x, y in zip(a, b)])
    n = len(d)
    c = ci(d.tolist())
    sd = float(d.std(ddof=1)) if n > 1 else float("nan")
    nonzero = int((d != 0).sum())
    p_w = float(stats.wilcoxon(d[d != 0]).pvalue) if nonzero else 1.0  # zero differences carry no sign
    boot = np.random.default_rng(seed).choice(d, size=(10_000, n), replace=True).mean(1)
    lo, hi = np.percentile(boot, [2.5, 97.5])
    z_sig = 0
    for x, y in zip(a, b):
        n1, n2 = x["n"], y["n"]
        p1, p2 = x["hallucinated"] / n1, y["hallucinated"] / n2
        pool = (x["hallucinated"] + y["hallucinated"]) / (n1 + n2)
        se = math.sqrt(pool * (1 - pool) * (1 / n1 + 1 / n2)) if 0 < pool < 1 else 0.0
        z_sig += int(se > 0 and abs(p1 - p2) / se > 1.959964)
    return dict(n=n, ci=c, sd=sd, mde=mde_paired_t(sd, n) if n > 1 and sd > 0 else float("nan"), p_w=p_w, boot=(float(lo), float(hi)), nonzero=nonzero,
                lower=int((d < 0).sum()), higher=int((d > 0).sum()), z_sig=z_sig)


COMPARISONS = [(FIXED_BT, FIXED), (RHO0, FIXED), (RHO0, FIXED_BT), (RHO0_TANH, RHO0), (RHO0_TANH, FIXED_BT),
               *[(s_, RHO0) for s_ in ALL_VSM], *[(s_, FIXED_BT) for s_ in ALL_VSM],
               (jac_name(0.01, False), RHO0), (FOURIER, FIXED), (FOURIER, FIXED_BT), (FOURIER, RHO0)]
robust = {}
print(f"{'mixture':<5} {'setting':<28} {'vs':<22} {'n':>2} {'mean diff pp [95% t]':>24} {'MDE80 pp':>9} "
      f"{'(rel.)':>7} {'Wilcoxon p':>10} {'bootstrap 95% pp':>18} {'!=0':>4} {'<0':>3} {'>0':>3} {'z-sig':>5}")
for mixture, m in cfg["mixtures"].items():
    for setting, base in COMPARISONS:
        if setting not in m["settings"] or base not in m["settings"]:
            continue
        r = robustness(mixture, setting, base)
        robust[(mixture, setting, base)] = r
        ref = summary[(mixture, base)]["rate"].mean
        c, (b_lo, b_hi) = r["ci"], r["boot"]
        t_int = f"{100 * c.mean:+.2f} [{100 * (c.mean - c.half):+.2f}, {100 * (c.mean + c.half):+.2f}]"
        rel = f"{r['mde'] / ref:.0%}" if ref > 0 else "n/a"
        b_int = f"[{100 * b_lo:+.2f}, {100 * b_hi:+.2f}]"
        print(f"{mixture:<5} {setting:<28} {base:<22} {r['n']:>2} {t_int:>24} {100 * r['mde']:>9.2f} {rel:>7} "
              f"{r['p_w']:>10.3g} {b_int:>18} {r['nonzero']:>4} {r['lower']:>3} {r['higher']:>3} {r['z_sig']:>5}")
print("MDE80: smallest true paired difference detectable with 80% power at 5% (two-sided); rel.: against the base's "
      "mean rate. !=0 / <0 / >0: seeds whose difference is non-zero / negative / positive; z-sig: seeds individually "
      "significant by a two-proportion z-test.")
# one declared primary endpoint; every other comparison is exploratory, corrected by Holm within its mixture
from vsmlab.analysis.stats import holm  # noqa: E402

for mixture in cfg["mixtures"]:
    family = {f"{s_} vs {b_}": r["p_w"] for (mx, s_, b_), r in robust.items() if mx == mixture and (mx, s_, b_) != PRIMARY}
    if family:
        h = holm(family)
        hits = [f"{name} (Holm p = {adj:.3g})" for name, adj, rej in zip(h.names, h.adjusted, h.reject) if rej]
        print(f"{mixture}: {len(family)} exploratory comparisons, Wilcoxon p Holm-corrected within the family: "
              f"{len(hits)} below 0.05" + (f": {'; '.join(hits)}" if hits else ""))

# %% [markdown]
# ## The answer in numbers
#
# The same verdicts, condensed: the best and worst settings, VSM as a family, and what filtering buys.

# %%
for mixture, m in cfg["mixtures"].items():
    ref_fixed, ref_rho0 = summary[(mixture, FIXED)]["rate"], summary[(mixture, RHO0)]["rate"]
    ranked = sorted(m["settings"], key=lambda s_: summary[(mixture, s_)]["rate"].mean)
    best = ranked[0]
    print(f"{mixture}: lowest mean rate: {best} ({fmt(summary[(mixture, best)]['rate'], 100)}%), "
          f"highest: {ranked[-1]} ({fmt(summary[(mixture, ranked[-1])]['rate'], 100)}%)")
    vsm_settings = [s_ for s_ in m["settings"] if s_.startswith("VSM")]
    lower = [s_ for s_ in vsm_settings if summary[(mixture, s_)]["d_rho0"] is not None
             and summary[(mixture, s_)]["d_rho0"].mean + summary[(mixture, s_)]["d_rho0"].half < 0]
    higher = [s_ for s_ in vsm_settings if summary[(mixture, s_)]["d_rho0"] is not None
              and summary[(mixture, s_)]["d_rho0"].mean - summary[(mixture, s_)]["d_rho0"].half > 0]
    print(f"  VSM: {len(lower)} of {len(vsm_settings)} settings lower the rate vs rho=0 beyond seed noise "
          f"({', '.join(lower) or 'none'}); {len(higher)} raise it ({', '.join(higher) or 'none'})")
    ref_fbt = summary[(mixture, FIXED_BT)]["rate"]
    print(f"  {FIXED_BT} vs fixed (same models, only the sampling variance changes): "
          f"{verdict(summary[(mixture, FIXED_BT)]['d_fixed'], ref_fixed)}")
    vs_fbt_lower = [s_ for s_ in vsm_settings if summary[(mixture, s_)]["d_fbt"] is not None
                    and summary[(mixture, s_)]["d_fbt"].mean + summary[(mixture, s_)]["d_fbt"].half < 0]
    vs_fixed_lower = [s_ for s_ in vsm_settings if summary[(mixture, s_)]["d_fixed"] is not None
                      and summary[(mixture, s_)]["d_fixed"].mean + summary[(mixture, s_)]["d_fixed"].half < 0]
    print(f"  VSM vs fixed (beta_t): {len(vs_fixed_lower)} of {len(vsm_settings)} lower the rate beyond seed noise; "
          f"vs fixed+bt: {len(vs_fbt_lower)} of {len(vsm_settings)}")
    for setting in (RHO0, RHO0_TANH, FOURIER, jac_name(0.01, False)):
        if setting in m["settings"]:
            print(f"  {setting} vs fixed: {verdict(summary[(mixture, setting)]['d_fixed'], ref_fixed)}")
            print(f"  {setting} vs fixed+bt: {verdict(summary[(mixture, setting)]['d_fbt'], ref_fbt)}")
    if RHO0_TANH in m["settings"]:
        print(f"  {RHO0_TANH} vs rho=0 (unbounded v): "
              f"{verdict(summary[(mixture, RHO0_TANH)]['d_rho0'], summary[(mixture, RHO0)]['rate'])}")
    # ratios quoted in the conclusions
    serr = {s_: summary[(mixture, s_)]["serr"].mean for s_ in m["settings"]}
    lip = {s_: summary[(mixture, s_)]["lip"].mean for s_ in m["settings"]}
    train_s = {s_: summary[(mixture, s_)]["train"].mean for s_ in m["settings"]}
    if FOURIER in m["settings"]:
        print(f"  score error at t = 0, ratio to Fourier: fixed {serr[FIXED] / serr[FOURIER]:.1f}x, "
              f"rho=0 {serr[RHO0] / serr[FOURIER]:.1f}x; Lipschitz at t = 0, Fourier / fixed: {lip[FOURIER] / lip[FIXED]:.2f}x, "
              f"Fourier / rho=0: {lip[FOURIER] / lip[RHO0]:.2f}x; training seconds Fourier {train_s[FOURIER]:.1f} vs "
              f"fixed {train_s[FIXED]:.1f}")
    jac = jac_name(0.01, False)
    if jac in m["settings"]:
        print(f"  Jacobian penalty training time: {train_s[jac]:.1f} s vs rho=0 {train_s[RHO0]:.1f} s per run "
              f"({train_s[jac] / train_s[RHO0]:.2f}x)")
    aucs = [summary[(mixture, s_)]["auc"].mean for s_ in m["settings"] if summary[(mixture, s_)]["auc"] is not None]
    if aucs:
        print(f"  detector AUC (mean over seeds) across settings: {min(aucs):.2f} to {max(aucs):.2f}")
    rs = runs(mixture, FIXED)
    j = min(range(len(rs[0]["thresholds"])), key=lambda i: abs(rs[0]["thresholds"][i] - 1e-3))
    left, kept = ci([r["rate_after"][j] for r in rs]), ci([r["in_support_kept"][j] for r in rs])
    removed = ci([r["removed"][j] for r in rs])
    print(f"  trajectory filter (tau = 1e-3) on the fixed model: rate {fmt(ref_fixed, 100)}% -> {fmt(left, 100)}%, "
          f"removing {fmt(removed, 100)}% of hallucinations, keeping {fmt(kept, 100)}% of in-support samples")
print(f"\nnotebook total: {time.perf_counter() - saver.started:.0f} s")

# %% [markdown]
# ## The answer for both toy mixtures
#
# The lesson's row for the 1-D mixture and the same row for the 2-D mixture: the rho = 0 rate, VSM $-$ rho0 with its
# 95% interval, whether it excludes the paper's 25% reduction, the ceiling and how far VSM moved $\Sigma$.

# %%
ANSWER_ROWS = [row for row in map(answer_row, cfg["mixtures"]) if row is not None]
print(answer_table(ANSWER_ROWS) if ANSWER_ROWS else "no VSM / rho = 0 pair with two seeds in this profile")

# %% [markdown]
# ## Key takeaways
#
# Default profile, seed 0: the lesson's 1-D runs (10 seeds, 6000 samples each) plus the settings above, and the 2-D
# grid with 5 seeds and 4000 samples per run. Every comparison here is exploratory.
#
# - **No VSM setting differs from its baseline.** None of the 8 VSM settings in 1-D (1.51 to 1.77 against
#   1.56 +- 0.6) and neither of the 2 in 2-D differs from $\rho = 0$ beyond seed noise, and no VSM-against-$\rho = 0$
#   comparison survives Holm's correction (in 1-D, 5 of the 24 exploratory comparisons do: Fourier features against
#   each baseline, fixed + $\tilde\beta_t$ against fixed, and VSM $\rho = 1$ against fixed + $\tilde\beta_t$).
# - **In 2-D the sampling variance matters more, and VSM still leaves it alone.** Fixed models resampled with
#   $\tilde\beta_t$: -2.01 pp [-2.23, -1.80]; the $\rho = 0$ models forced to $\Sigma_t = \tilde\beta_t$: -1.10 pp
#   [-1.62, -0.58]; VSM moved the learned $\Sigma$ by at most 1.5%.
# - **The mechanism.** On the shared trunk VSM's gradient (rho = 0.1) is 2.1e-09 to 2.9e-05 of the MSE's: the
#   penalty barely reaches the score.
# - **Fourier features are sharper and more accurate at once.** Their score error at $t = 0$ is 6.0x (fixed) and 5.9x
#   ($\rho = 0$) smaller while their Lipschitz estimate is 2.25x the fixed model's; in 2-D, with 5 seeds, the
#   interval against fixed + $\tilde\beta_t$ includes 0 (-9.08 pp [-19.32, +1.16]).
# - **Trajectory-variance filtering works in 1-D and costs samples in 2-D.** Mean AUC 0.95 to 0.98 in 1-D: at
#   $\tau = 10^{-3}$ the fixed model goes from 2.1 +- 0.93 to 0.151 +- 0.098, removing 94.5 +- 2.7 of the
#   hallucinations and keeping 78.7 +- 2.8 of the in-support samples; in 2-D the same $\tau$ keeps only
#   21.3 +- 3.3 of them.

# %% [markdown]
# ## Exercises
#
# The closed exercises of this topic are in the lesson; this one is for exploring with the appendix's results.

# %% [markdown]
# ### Exercise 05.5 · A better filter threshold? (open)
#
# Trajectory-variance filtering removes most hallucinations in 1-D and throws away many good samples in 2-D. Using
# the retention curves above (`results[(mixture, FIXED, seed)]["thresholds"]`, `"removed"`, `"in_support_kept"`),
# choose for each mixture the threshold that keeps 95% of the in-support samples, and say what share of the
# hallucinations it removes. Why does the same $\tau$ behave so differently in 2-D?

# %%
from vsmlab.lab.exercises import describe  # noqa: E402

describe("05.5");
