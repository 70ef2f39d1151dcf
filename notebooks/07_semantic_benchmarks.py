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
# # 07 · Benchmarks with extreme semantic variation: Cards and ChessImages
#
# Shapes (notebook 06) has 7 presence patterns. The VSM paper adds two benchmarks whose semantic spaces are
# huge, and where a hallucination is a *semantic* error that a template or a rule book can catch:
#
# - **Cards**: 2x2 grids of 4 distinct playing cards out of 40 (A..10 of four suits), one image per
#   unordered set: C(40, 4) = 91,390 sets. A hallucination is a quadrant that is no card (a garbled pip count,
#   a blend of two cards, a smear), a blank quadrant, or a card shown twice.
# - **ChessImages**: rendered boards of legal positions (about 10^44 of them). A hallucination is a board
#   that no legal game reaches by the rule book: two white kings, a pawn on the back rank, both sides in
#   check, too many pieces, or a square that shows no piece at all.
#
# The released data sets live on a model hub this lab cannot reach, so the lab draws both itself
# (`vsmlab.data.cards`, `vsmlab.data.chessboards`; `vsmlab data cards|chess` on the command line), and its
# validators are calibrated here on real images and on constructed corruptions before they judge any model.
#
# **How this lesson is laid out.** It goes from the Cards benchmark and its validator to the models, their samples
# and the comparison of record over training seeds, then takeaways and exercises. Its appendix, the notebook
# `07_semantic_benchmarks_appendix` (A1-A12), continues from here: why VSM cannot change the rate (the ceiling, the
# mechanism), every exploratory measurement on Cards, the whole chess benchmark with its CPU pilot, and the answer
# rows.
#
# **What each profile runs.** `smoke` exercises every cell with tiny data and tiny models (seconds). `default`
# (2 CPU cores) calibrates both validators and samples four
# small Cards models at 64 px (32-px faces) trained with the image CLI and shipped in `checkpoints/cards64/`: fixed variance,
# learned variance with rho = 0, VSM at the released weight rho = 0.1 and, exploratory as in notebook 06, VSM at
# rho = 10 (100x), with two further training seeds of each learned-variance model (the comparison of record,
# VSM - rho = 0, is paired over the three seeds). Chess boards are unreadable below 128 px (16-px squares),
# and models that draw them legally need more than a CPU budget (the pilot below measures how far one gets),
# so the chess comparison belongs to `full`: 128-px Cards and 128-px chess models, fixed / rho = 0 / VSM x two
# training seeds per benchmark, each benchmark trained and sampled on a GPU in one short window by
# `benchmarks/gpu_window.py --bench cards` and `--bench chess` (`configs/cards-*-gpu.toml`, `configs/chess-*-gpu.toml`);
# this notebook then reads the runs they brought back (`samples_dir`, default `runs/full/`) and publishes under
# `figures/full/`. **The full profile has not been run on a GPU yet** (it was rehearsed on a
# CPU with tiny models); without the files its first cell stops with a message naming the commands that make
# them. What a CPU *can* do on chess, `default` measures with a **CPU chess pilot**: VSM and its rho = 0
# baseline at 128 px, small UNets trained 4,500 steps on one core each and shipped in `checkpoints/chess128/`,
# judged by the strict validator and by a colour-calibrated reading (appendix A12 says why).
#
# Every rate below comes with its 95% Wilson interval; every comparison of two models prints the interval of
# the difference and the smallest difference this many samples could detect (80% power, 5% two-sided).

# %% [markdown]
# ## What you will learn
#
# - Build benchmarks whose semantic space is huge (Cards: $\binom{40}{4} = 91{,}390$ sets; chess: legal positions)
#   and validators that catch *semantic* hallucinations: a quadrant that is no card, a card shown twice, two white
#   kings, a pawn on the back rank.
# - Calibrate a validator before trusting it: real images must pass, constructed corruptions must be caught, and
#   a threshold has a price on both sides.
# - Compare VSM with its own baseline over training seeds, paired, and read what the interval excludes.
# - Measure the ceiling of any variance-only penalty by sampling with $\Sigma_t$ forced to either end of its range.
#
# **The question.** Does VSM lower the hallucination rate on benchmarks with extreme semantic variation, and could
# any penalty on the variance alone do so?
#
# **Prerequisites.** Notebook 06 (the study design, paired comparisons, strict validators).
#
# **Time.** cold about 5.5 min (331 s) on a 2-core CPU from an empty cache (the models are shipped); under a minute when the sample
# sets are cached.

# %% tags=["parameters"]
profile = "default"  # smoke | default | full
seed = 0
figures_dir = ""  # "" -> figures/07_semantic_benchmarks (default), figures/<profile>/07_semantic_benchmarks otherwise
samples_dir = ""  # full profile: the folder of the GPU windows' runs (cards128/, chess128/); "" -> runs/full

# %%
import math
import time
from pathlib import Path

import chess
import matplotlib.pyplot as plt
import numpy as np
import torch

from vsmlab.analysis import stats
from vsmlab.analysis.answer import AnswerRow, Interval, answer_table, ceiling, paired_interval, sigma_shift
from vsmlab.analysis.metrics import mean_ci, wilson_interval
from vsmlab.data import cards as C
from vsmlab.data import chessboards as CB
from vsmlab.lab.notebook import start
from vsmlab.lab.plotting import PALETTE
from vsmlab.lab.sample_store import load_sample_images
from vsmlab.lab.semantic_figures import (cards_roc_figure, cards_rule_gallery, cards_score_histograms,
                                        chess_boards_figure, show_grid, step_sweep_figure, training_curves,
                                        variance_figure)
from vsmlab.lab.semantic_study import (COLOURS, LABELS, PROFILES, SemanticStudy, card_coverage, chess_readings,
                                       chess_report, compare_rates, paired_text, piece_counts, readable_share, rule_rates)
from vsmlab.lab.study import load_checkpoint_model

torch.set_num_threads(1)
ROOT = Path.cwd().parent if Path.cwd().name == "notebooks" else Path.cwd()
THRESHOLD_GRID = [0.90, 0.93, 0.95, 0.97, 0.98, 0.99, 0.995]
cfg, saver = start("07_semantic_benchmarks", profile, seed, figures_dir, PROFILES)
print(f"profile={profile} seed={seed}; Cards calibrated at {cfg['cards_sizes']} (size, rgb) with {cfg['cards_real']} real "
      f"grids and {cfg['cards_per_kind']} per corruption; chess: {cfg['chess_positions']} positions, {cfg['chess_real']} "
      f"rendered at {cfg['chess_sizes']} px, {cfg['chess_per_kind']} per corruption")


# %% [markdown]
# ## Cards: the benchmark and its semantic space
#
# The lab draws its own 40 faces (white card, grey rounded border, rank index in two corners, the standard
# pip layouts, hearts and diamonds red). A grid is one unordered set of 4 distinct cards; sets are numbered by
# the combinatorial number system, and a seeded 10% of the sets form the test split, so a model trained on
# the train split can be asked whether it ever produces a set it never saw. 128-px grids have 64-px faces (the
# released geometry); the CPU variant uses 64-px grids of 32-px faces.

# %%
n_train_sets, n_test_sets = C.split_ranks("train").numel(), C.split_ranks("test").numel()
print(f"cards: {C.N_CARDS}, sets of 4 distinct cards: C(40, 4) = {C.N_SETS:,}; train split {n_train_sets:,}, "
      f"test split {n_test_sets:,}; with quadrant order, 4! = 24 images per set ({24 * C.N_SETS:,} ordered grids)")
faces = torch.from_numpy(np.array(C.lab_faces(64, True))).permute(0, 3, 1, 2)
ex128, ex_cards = C.make_cards(4, seed, True, "train", 128)
ex64, _ = C.make_cards(4, seed, False, "train", 64)
fig = plt.figure(figsize=(12, 6.4))
gs = fig.add_gridspec(6, 1, height_ratios=[1, 1, 1, 1, 2.2, 1.2])
for row in range(4):
    show_grid(fig.add_subplot(gs[row]), faces[10 * row : 10 * row + 10], f"the lab's faces: {C.SUITS[row]} (A..10), 64 px" if row == 0 else "")
show_grid(fig.add_subplot(gs[4]), ex128, "128-px grids (RGB): " + "; ".join(" ".join(C.card_code(int(c)) for c in row) for row in ex_cards))
show_grid(fig.add_subplot(gs[5]), ex64, "64-px grids (grayscale, 32-px faces): what the CPU models learn")
fig.tight_layout()
saver.save(fig, "cards_examples")
plt.show()

# %% [markdown]
# ## Cards validator: calibration on real grids and on constructed hallucinations
#
# Each quadrant is compared with the 40 templates by normalised cross-correlation (NCC, batched in torch);
# an image is hallucinated if its worst quadrant's best NCC is below a threshold, if a quadrant is blank, or if
# a card repeats (the data never repeats a card; the released validator does not check this). The released
# threshold is 0.95. Negatives: real grids, exact and with Gaussian pixel noise of std 0.02 (the grain of a
# faithful sample). Positives: one corruption per grid of each kind: a quadrant blended 35-65% with another
# card, a card redrawn with one pip too few or too many, a quadrant shifted by 2-6 px per 64, noise of std
# 0.05-0.25 on the whole grid, a blank quadrant, a repeated card. The ROC is that of the score rule over every
# kind but "repeat" (caught by the repeat rule, not by the score). Calibrated at each size a model uses here.

# %%
t0 = time.perf_counter()
calibrations = {}
for size, rgb in cfg["cards_sizes"]:
    cal = C.calibrate_cards(cfg["cards_real"], cfg["cards_per_kind"], seed, size, rgb, C.THRESHOLD)
    calibrations[(size, rgb)] = cal
    print(f"\n{size} px {'RGB' if rgb else 'grayscale'}: real grids flagged at 0.95: {cal.real_flagged} of "
          f"{cal.real_scores.numel()} (lowest worst-quadrant NCC {float(cal.real_scores.min()):.5f}); with noise std "
          f"{cal.negative_noise}: {cal.negative_flagged} flagged (lowest {float(cal.negative_scores.min()):.4f}); "
          f"ROC AUC over the score-based kinds {float(cal.roc['auc']):.4f}")
    for kind in C.CORRUPTIONS:
        s = cal.scores[kind]
        q = torch.quantile(s.double(), torch.tensor([0.1, 0.5, 0.9], dtype=torch.float64)).tolist()
        print(f"  {kind:<10} caught at 0.95: {wilson_interval(cal.caught[kind], s.numel())}; worst-quadrant NCC "
              f"10/50/90%: {q[0]:.3f} / {q[1]:.3f} / {q[2]:.3f}")
print(f"\ncalibration: {time.perf_counter() - t0:.0f} s")

# %% [markdown]
# ### Which threshold?
#
# The released 0.95 flags no real grid, but it lets through a large share of blends and wrong-pip cards,
# whose worst quadrant still correlates at 0.9-0.98 with the right template. Below, for each threshold on a
# grid: the real grids flagged (exact and noisy) and the share of each score-based corruption caught. The
# lab's rule, decided from these numbers: **the largest threshold on the grid at which neither the exact nor
# the noisy real grids lose a single image at any size used**. Model samples are then judged at both 0.95 (the
# released rule) and the lab's threshold, so a reader sees how much the verdict depends on it.

# %%
SCORE_KINDS = [k for k in C.CORRUPTIONS if k != "repeat"]
sweep_rows = []
ok_thresholds = []
for thr in THRESHOLD_GRID:
    row_ok = True
    for (size, rgb), cal in calibrations.items():
        real_f = int((cal.real_scores < thr).sum())
        noisy_f = int((cal.negative_scores < thr).sum())
        row_ok &= real_f == 0 and noisy_f == 0
        row = {"threshold": thr, "size": size, "rgb": rgb, "real_flagged": real_f, "noisy_real_flagged": noisy_f,
               "n_real": cal.real_scores.numel()}
        row.update({f"caught_{k}": round(float((cal.scores[k] < thr).double().mean()), 4) for k in SCORE_KINDS})
        sweep_rows.append(row)
    if row_ok:
        ok_thresholds.append(thr)
print(f"{'thr':>6} {'size':>5} {'real':>5} {'noisy':>6} " + " ".join(f"{k:>10}" for k in SCORE_KINDS))
for r in sweep_rows:
    print(f"{r['threshold']:>6.3f} {r['size']:>5} {r['real_flagged']:>5} {r['noisy_real_flagged']:>6} "
          + " ".join(f"{100 * r[f'caught_{k}']:>9.1f}%" for k in SCORE_KINDS))
LAB_THRESHOLD = max(ok_thresholds) if ok_thresholds else C.THRESHOLD
print(f"\nthresholds with 0 exact and 0 noisy real grids flagged at every size: {ok_thresholds}; "
      f"the lab's threshold: {LAB_THRESHOLD}")
for (size, rgb), cal in calibrations.items():
    for k in ("blend", "wrong_pips"):
        a = wilson_interval(int((cal.scores[k] < C.THRESHOLD).sum()), cal.scores[k].numel())
        b = wilson_interval(int((cal.scores[k] < LAB_THRESHOLD).sum()), cal.scores[k].numel())
        print(f"  {size} px {k:<10} caught: at 0.95 {a}; at {LAB_THRESHOLD} {b}")
saver.save_table(sweep_rows, "cards_threshold_sweep")

fig = cards_roc_figure(calibrations, SCORE_KINDS, C.THRESHOLD, LAB_THRESHOLD, cfg["cards_sizes"][0], PALETTE["vsm"])
saver.save(fig, "cards_roc")
plt.show()

# %% [markdown]
# ## Training on Cards with the image CLI: fixed variance, rho = 0, VSM
#
# Each model is made by `vsmlab train` with `configs/cards-{fixed,rho0,vsm}-cpu.toml` (the rho = 10 arm `vsm10` is
# the VSM config with `--set loss.rho=10.0`: at the released weight the penalty ends training near 1e-5 against an
# eps-MSE of a few 1e-3 (the training-curves cell prints both), so the larger weight asks whether the penalty can
# matter at all; one torch thread per process) and sampled by `vsmlab sample` (ancestral DDPM with the model's own variance: beta_t for the fixed
# model, the learned range for rho = 0 and VSM, respaced to the printed number of steps, with x0_hat clipped to
# [-1, 1] at every step as improved DDPM's image sampler does: `--clip-x0`). The models are small on purpose:
# 64-px grayscale grids (32-px faces), a UNet of base width 16 with four levels and no attention, 6,000 AdamW
# steps of batch 16 from 5,000 training grids, EMA 0.999. That is more than an hour of one core per model, so
# the **default profile loads them from `checkpoints/cards64/`** (notebook 06's rule: explicit path, the
# checkpoint's config checked key by key against the config file, SHA-256 and the training command in its
# `manifest.json`); `--no-cache` (`VSMLAB_NO_CACHE=1`) ignores them and trains from the configs. Their samples are cached
# outside the repository. The models, their folders and their sample files are `vsmlab.lab.semantic_study`
# (one call opens them) on the lab's study engine `vsmlab.lab.study`. (Trained for only 250 steps, such models cannot draw a card at all: 100% hallucinated,
# no quadrant above NCC 0.93, which says nothing about VSM.)

# %%
SEM = SemanticStudy.open(profile, cfg, ROOT, seed, samples_dir)
fs = cfg.get("further_seeds") or {}
CARD_KEYS = [(m, 0) for m in SEM.methods] + [(m, k) for k in fs.get("seeds", []) for m in fs.get("methods", [])
                                             if m in SEM.methods]
CARD_CKPTS = SEM.checkpoints("cards", CARD_KEYS)  # {} in the full profile: it brings back samples only
SEED_FILES = SEM.primary_files("cards", CARD_KEYS, CARD_CKPTS)  # (method, seed) -> npz
card_files = {m: SEED_FILES[(m, 0)] for m in SEM.methods}
card_samples = {m: load_sample_images(p) for m, p in card_files.items()}
for m, (imgs, meta) in card_samples.items():
    print(f"{m:<6} {imgs.shape[0]} samples {list(imgs.shape[1:])}, checkpoint step {meta.get('checkpoint_step')}, "
          f"sampler {meta.get('sampler')}")

# %% [markdown]
# ### Samples, and what the validator says about them
#
# Samples of each model next to real grids of the same size; then, per model, the hallucination rate at the
# released threshold 0.95 and at the lab's threshold, the share of samples that violate each rule, and the
# coverage of the valid samples: how many of the 40 cards and how many distinct sets they show, and how many
# of those sets belong to the test split (never seen in training).

# %%
size = int(next(iter(card_samples.values()))[0].shape[-1])
rgb = int(next(iter(card_samples.values()))[0].shape[1]) == 3
real_ref, _ = C.make_cards(max(200, cfg["cards_real"] // 4), seed + 11, rgb, "train", size)
fig, axes = plt.subplots(len(SEM.methods) + 1, 1, figsize=(12, 1.6 * (len(SEM.methods) + 1) * size / 64 + 0.5))
show_grid(axes[0], real_ref[:8], f"real {size}-px grids")
for ax, m in zip(axes[1:], SEM.methods):
    show_grid(ax, card_samples[m][0][:8], f"{LABELS[m]}: first 8 samples")
fig.tight_layout()
saver.save(fig, "cards_samples")
plt.show()

test_ranks = set(C.split_ranks("test").tolist())
verdicts, rows = {}, []
for m in SEM.methods:
    imgs = card_samples[m][0]
    v_rel = C.validate_cards(imgs, threshold=C.THRESHOLD)
    v_lab = C.validate_cards(imgs, threshold=LAB_THRESHOLD)
    verdicts[m] = (v_rel, v_lab)
    n = imgs.shape[0]
    r_rel, r_lab = wilson_interval(int(v_rel.hallucinated.sum()), n), wilson_interval(int(v_lab.hallucinated.sum()), n)
    rules = rule_rates(v_lab.categories, C.CATEGORIES)
    cov = card_coverage(v_lab.cards, ~v_lab.hallucinated)
    valid_sets = {int(r) for r in C.rank_sets(v_lab.cards[~v_lab.hallucinated]).tolist()} if cov["n_valid"] else set()
    print(f"{LABELS[m]:<20} n={n}: hallucinated at 0.95: {r_rel}; at {LAB_THRESHOLD}: {r_lab}")
    print(f"{'':<20} rules at {LAB_THRESHOLD}: " + ", ".join(f"{k} {rules[k]}" for k in C.CATEGORIES))
    print(f"{'':<20} valid samples: {cov['n_valid']}; distinct cards among them {cov['distinct_cards']} of 40, distinct "
          f"sets {cov['distinct_sets']} (of which in the test split: {len(valid_sets & test_ranks)})")
    rows.append({"method": m, "n": n, "hallucinated_095": r_rel.count, "rate_095": round(r_rel.rate, 4),
                 "low_095": round(r_rel.low, 4), "high_095": round(r_rel.high, 4), "threshold_lab": LAB_THRESHOLD,
                 "hallucinated_lab": r_lab.count, "rate_lab": round(r_lab.rate, 4), "low_lab": round(r_lab.low, 4),
                 "high_lab": round(r_lab.high, 4), **{f"rule_{k}": rules[k].count for k in C.CATEGORIES},
                 "valid_distinct_cards": cov["distinct_cards"], "valid_distinct_sets": cov["distinct_sets"]})
_ = saver.save_table(rows, "cards_model_rates")

# %% [markdown]
# ### Over training seeds: the comparison of record
#
# VSM $-$ rho = 0 on Cards, paired over training seeds, is this notebook's primary endpoint. It was declared after a
# first look at the seed-0 results, so it is confirmed on fresh sample sets (appendix A6).
#
# One training seed says how these particular models differ, not how the methods do: further seeds trained the
# same way (same data, sampler and sampling seed; only `train.seed` differs, so the initialisation and the
# batches change) shows how far two runs of one method disagree. Per model: the rate of each seed and, for each
# pair, the per-seed differences, the difference paired over seeds (t-interval with S - 1 degrees of freedom:
# t = 12.7 for two seeds and 4.3 for three, so it is wide by construction) and the samples of all seeds pooled (Newcombe; it
# ignores the seed-to-seed spread). Every pair but VSM $-$ rho = 0 is exploratory: their Wilcoxon p-values are
# Holm-corrected within that family. Then the between-seed variance of the rho = 0 rate and the smallest effect
# this design, and one with more seeds, could detect.

# %%
PAIRS = (("vsm", "rho0"), ("vsm10", "rho0"), ("rho0", "fixed"), ("vsm", "fixed"))  # the first is the comparison of record
pairs = [(a, b) for a, b in PAIRS if a in SEM.methods and b in SEM.methods]
SEED_VERDICTS = {(m, 0): verdicts[m][1] for m in SEM.methods}
for (m, k), path in [(key, p) for key, p in SEED_FILES.items() if key[1] != 0]:
    imgs_k, meta_k = load_sample_images(path)
    SEED_VERDICTS[(m, k)] = C.validate_cards(imgs_k, threshold=LAB_THRESHOLD)
SEEDS_OF = {m: sorted(k for mm, k in SEED_VERDICTS if mm == m) for m in SEM.methods}
SEED_ROWS = []
for (m, k), v in sorted(SEED_VERDICTS.items(), key=lambda kv: (SEM.methods.index(kv[0][0]), kv[0][1])):
    r = wilson_interval(int(v.hallucinated.sum()), v.hallucinated.numel())
    rules = rule_rates(v.categories, C.CATEGORIES)
    print(f"{LABELS[m]:<20} seed {k}: hallucinated at {LAB_THRESHOLD}: {r}; " + ", ".join(f"{c} {rules[c].count}" for c in C.CATEGORIES))
    SEED_ROWS.append(dict(method=m, train_seed=k, n=r.n, hallucinated=r.count, rate=round(r.rate, 4), low=round(r.low, 4),
                          high=round(r.high, 4), **{f"rule_{c}": rules[c].count for c in C.CATEGORIES}))
saver.save_table(SEED_ROWS, "cards_seed_rates")
SEED_PAIRS = {}
for a, b in pairs:
    common_seeds = [k for k in SEEDS_OF[a] if k in SEEDS_OF[b]]
    if len(common_seeds) < 2:
        continue
    ra = [float(SEED_VERDICTS[(a, k)].hallucinated.double().mean()) for k in common_seeds]
    rb = [float(SEED_VERDICTS[(b, k)].hallucinated.double().mean()) for k in common_seeds]
    d = stats.paired_difference(ra, rb, seed=seed)
    SEED_PAIRS[(a, b)] = d
    ca = sum(int(SEED_VERDICTS[(a, k)].hallucinated.sum()) for k in common_seeds)
    cb = sum(int(SEED_VERDICTS[(b, k)].hallucinated.sum()) for k in common_seeds)
    na = sum(SEED_VERDICTS[(a, k)].hallucinated.numel() for k in common_seeds)
    nb = sum(SEED_VERDICTS[(b, k)].hallucinated.numel() for k in common_seeds)
    print(f"{LABELS[a]} - {LABELS[b]} over seeds {common_seeds}: per seed "
          + ", ".join(f"{100 * x:+.1f}" for x in d.differences)
          + f" pp; paired {100 * d.mean.mean:+.1f} pp [95% CI {100 * (d.mean.mean - d.mean.half):+.1f}, "
          f"{100 * (d.mean.mean + d.mean.half):+.1f}]; pooled samples {compare_rates(ca, na, cb, nb)}")
SECONDARY = {f"{LABELS[a]} - {LABELS[b]}": d.wilcoxon_p for (a, b), d in SEED_PAIRS.items() if (a, b) != ("vsm", "rho0")}
if SECONDARY:  # every pair but the comparison of record is exploratory: Holm within this family
    h = stats.holm(SECONDARY)
    print(f"exploratory pairs over seeds ({len(SECONDARY)}), Wilcoxon p Holm-corrected within the family: "
          + ", ".join(f"{name} {adj:.2f}" for name, adj in zip(h.names, h.adjusted)) + f"; below 0.05: {sum(h.reject)}")
CARDS_DESIGN = None
if ("vsm", "rho0") in SEED_PAIRS:
    ks_ = [k for k in SEEDS_OF["vsm"] if k in SEEDS_OF["rho0"]]
    n_per = SEED_VERDICTS[("rho0", 0)].hallucinated.numel()
    sr = stats.seed_rates([int(SEED_VERDICTS[("rho0", k)].hallucinated.sum()) for k in SEEDS_OF["rho0"]], n_per)
    print(f"rho = 0 over {len(SEEDS_OF['rho0'])} seeds: rates " + ", ".join(f"{100 * x:.1f}%" for x in sr.per_seed)
          + f"; between-seed variance {sr.components.between:.2e} (within: {sr.components.within:.2e})")
    CARDS_DESIGN = stats.design_comparison([int(SEED_VERDICTS[("vsm", k)].hallucinated.sum()) for k in ks_],
                                           [int(SEED_VERDICTS[("rho0", k)].hallucinated.sum()) for k in ks_], n_per)
    print(f"power of VSM - rho = 0 at 80% (two-sided 5%), the design that was run and the paper's one-run-per-method "
          f"design:\n{CARDS_DESIGN}")
    print(CARDS_DESIGN.seeds_text())
else:
    print("one training seed per model in this run: no seed-to-seed spread to report")
print(f"lesson done in {time.perf_counter() - saver.started:.0f} s (every sample set above drawn, or read from the cache)")

# %% [markdown]
# ## Key takeaways
#
# Default profile; every rate is judged at the lab's Cards threshold 0.99, as printed above. Only VSM $-$ rho = 0 on
# Cards over training seeds was declared as the comparison of record; the rest is exploratory.
#
# - **The Cards validator can be trusted on what it was tested on.** 0 of 2000 real grids flagged at 64 and 128 px;
#   the released threshold 0.95 catches only 65.667% of blended cards at 64 px, the lab's 0.99 catches 97.333%
#   [94.827, 98.643] and still flags no real grid.
# - **On Cards, VSM does not beat its own baseline, and the design could have seen it.** Over three training seeds
#   VSM $-$ rho = 0 = -0.7 pp [95% CI -3.5, +2.2] (rho = 0 at 60.7%). A 25% reduction (15.2 pp) lies far below the
#   interval: the paired design detects 3.77 pp (6.21% of 60.7%) at 80% power, while one run per method sampled
#   6 x 100 would need 7.93 pp.
# - **Why, and chess.** The appendix bounds what any variance-only penalty could do on Cards (A6: the ceiling) and
#   runs the chess benchmark with a CPU pilot (A10-A12).

# %% [markdown]
# ## Exercises
#
# Try each exercise on your own first. Each check cell says whether your answer is right, close or wrong, with a
# hint when it is not. Worked solutions are in `notebooks/solutions/07_solutions.py`.

# %%
from vsmlab.lab.exercises import check, describe

# %% [markdown]
# ### Exercise 07.1 · How many grids? (easy)
#
# A Cards image shows 4 distinct cards out of 40, one per quadrant. How many distinct images are there, counting
# each order of the cards in the quadrants separately?

# %%
answer = None  # your answer: a whole number
check("07.1", answer)

# %% [markdown]
# ### Exercise 07.2 · Number the sets (medium)
#
# Sets of cards are numbered by the combinatorial number system: the set $c_1 < c_2 < c_3 < c_4$ of card indices
# (index = 10 x suit + rank; suits C, D, H, S; ranks A..10 from 0) has rank
# $\binom{c_4}{4} + \binom{c_3}{3} + \binom{c_2}{2} + \binom{c_1}{1}$. What is the rank of the set {4C, AD, AH, 10S}?

# %%
answer = None  # your answer: a whole number
check("07.2", answer)

# %% [markdown]
# ### Exercise 07.3 · Legal for the lab, illegal for the released rule (medium)
#
# Give a piece placement (the first field of a FEN, e.g. `'4k3/8/8/8/8/8/8/4K3'`) that the lab's rule accepts
# (legal with some side to move) but the released rule (white to move) flags.
# `vsmlab.data.chessboards.judge_placement` shows both verdicts.

# %%
answer = None  # your answer: a piece placement (text)
check("07.3", answer)

# %% [markdown]
# ### Exercise 07.4 · Choose a Cards threshold (open)
#
# From the threshold sweep, pick the threshold you would use and say what it costs: how many real grids it would
# flag and what share of blends it catches. Then judge one model's samples at both thresholds.

# %%
describe("07.4");
