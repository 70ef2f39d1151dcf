"""Figures of notebook 07: image rows, the Cards validator's ROC and score histograms, Cards hallucinations by rule (with
the card each one came closest to), training curves, where the learned Sigma sits, rate against training step, and
chess boards as drawn and colour-calibrated (unreadable squares boxed in red)."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import torch
from matplotlib import pyplot as plt
from matplotlib.patches import Rectangle

from vsmlab.core.rates import wilson_interval

__all__ = ["show_grid", "cards_rule_gallery", "chess_boards_figure", "cards_roc_figure", "cards_score_histograms",
           "training_curves", "variance_figure", "step_sweep_figure"]

_CORNERS = [(0, 0), (0, 1), (1, 0), (1, 1)]  # (row, column) of the quadrants TL, TR, BL, BR


def _two_panels(fig, ax, left: dict[str, Any], right: dict[str, Any]):
    """Label both panels of a 1 x 2 figure, add their legends and lay it out; returns the figure."""
    ax[0].set(**left)
    ax[1].set(**right)
    for a in ax:
        a.legend(fontsize=7)
    fig.tight_layout()
    return fig


def show_grid(ax, images: torch.Tensor, title: str = "") -> None:
    """Show uint8 images [B, C, H, W] side by side on one axis (white 2-px gaps)."""
    x = images.permute(0, 2, 3, 1).numpy()
    row = np.concatenate([np.pad(im, ((2, 2), (2, 2), (0, 0)), constant_values=255) for im in x], axis=1)
    ax.imshow(row[:, :, 0] if row.shape[2] == 1 else row, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
    ax.set_title(title, fontsize=9)
    ax.axis("off")


def cards_rule_gallery(images: Mapping[str, torch.Tensor], verdicts: Mapping[str, Any], order: Sequence[str],
                       rules: Sequence[str], templates, labels: Mapping[str, str], per_rule: int = 6):
    """Up to ``per_rule`` samples per violated rule (a row each), taken in turn from the models of ``order`` (each
    sample index once: the models share their sampling noise), the offending quadrants boxed in red and, beside
    each, the template its worst offending quadrant matches best. images: {method: uint8 [N, C, S, S]};
    verdicts: {method: CardsVerdict}. Prints the counts and every sample shown; returns the figure (None when no
    sample violates any rule)."""
    shown_rules = [r for r in rules if any(r in c for m in order for c in verdicts[m].categories)]
    if not shown_rules:
        return None
    size = int(next(iter(images.values())).shape[-1])
    half = size // 2
    fig, axes = plt.subplots(len(shown_rules), per_rule, figsize=(13, 2.5 * len(shown_rules)), squeeze=False)
    for row, rule in zip(axes, shown_rules):
        queues = {m: [i for i, c in enumerate(verdicts[m].categories) if rule in c] for m in order}
        picks, used = [], set()
        while len(picks) < per_rule and any(queues.values()):
            for m in order:
                while queues[m] and queues[m][0] in used:
                    queues[m].pop(0)
                if queues[m] and len(picks) < per_rule:
                    used.add(queues[m][0])
                    picks.append((m, queues[m].pop(0)))
        print(f"{rule}: " + ", ".join(f"{labels[m]} {sum(rule in c for c in verdicts[m].categories)} of "
                                      f"{len(verdicts[m].categories)}" for m in order) + "; shown:")
        for ax, (m, i) in zip(row, picks):
            img, v = images[m][i], verdicts[m]
            bad = v.offending_quadrants(i, rule)
            q = min(bad, key=lambda q_: float(v.scores[i, q_]))
            j = int(v.cards[i, q])
            face = templates.faces[j]
            canvas = torch.full((img.shape[0], size, size + 4 + half), 255, dtype=torch.uint8)
            canvas[:, :, :size] = img
            canvas[:, :half, size + 4:] = (face if face.shape[0] == img.shape[0]
                                           else face.float().mean(0, keepdim=True).round().to(torch.uint8))
            arr = canvas.permute(1, 2, 0).numpy()
            ax.imshow(arr[:, :, 0] if arr.shape[2] == 1 else arr, cmap="gray", vmin=0, vmax=255)
            for q_ in bad:
                r_, c_ = _CORNERS[q_]
                ax.add_patch(Rectangle((c_ * half - 0.5, r_ * half - 0.5), half, half, fill=False, ec="red", lw=1.5))
            ax.set_title(f"{m} #{i}: {'TL TR BL BR'.split()[q]} ~ {v.names[j]}\nNCC {float(v.scores[i, q]):.3f}",
                         fontsize=8)
            print(f"  {labels[m]:<20} sample {i:>3}: rules {', '.join(v.categories[i])}; read as {' '.join(v.codes(i))}; "
                  "quadrant NCC " + " ".join(f"{float(x):.3f}" for x in v.scores[i]))
        for ax in row:
            ax.axis("off")
        row[0].text(-0.08, 0.5, rule, transform=row[0].transAxes, rotation=90, va="center", ha="right", fontsize=9)
    fig.tight_layout()
    return fig


def chess_boards_figure(boards: Mapping[str, tuple[torch.Tensor, dict, torch.Tensor]], labels: Mapping[str, str],
                        n_show: int = 6):
    """Two rows per model: its first ``n_show`` boards as drawn (strict reading) and after the fitted colour map is
    undone (calibrated reading), unreadable squares boxed in red. boards: {method: (uint8 [N, 3, S, S],
    {"strict": verdict, "calibrated": verdict}, calibrated uint8 [N, 3, S, S])}."""
    methods = list(boards)
    n_show = min(n_show, min(boards[m][0].shape[0] for m in methods))
    fig, axes = plt.subplots(2 * len(methods), n_show, figsize=(1.8 * n_show, 4.0 * len(methods)), squeeze=False)
    for k, m in enumerate(methods):
        imgs, readings, calibrated = boards[m]
        shown = {"strict": imgs, "calibrated": calibrated}
        for row, reading in zip(axes[2 * k: 2 * k + 2], ("strict", "calibrated")):
            v = readings[reading]
            q = imgs.shape[-1] // 8
            for i, ax in enumerate(row):
                ax.imshow(shown[reading][i].permute(1, 2, 0).numpy(), interpolation="nearest")
                for r, c in torch.nonzero(~v.readable[i]).tolist():
                    ax.add_patch(Rectangle((c * q - 0.5, r * q - 0.5), q, q, fill=False, ec="red", lw=0.8))
                ax.set_title((f"{labels[m]}, {reading}\n" if i == 0 else "\n") + f"{int(v.readable[i].sum())}/64 readable"
                             + (f"; {len(v.categories[i])} rule(s)" if v.categories[i] else "; legal"), fontsize=7)
                ax.axis("off")
    fig.suptitle("chess samples as drawn (strict) and after the per-board colour map is undone (calibrated); "
                 "unreadable squares boxed in red", fontsize=9)
    fig.tight_layout()
    return fig


def cards_roc_figure(calibrations: Mapping[tuple[int, bool], Any], kinds: Sequence[str], released: float,
                     lab: float, first: tuple[int, bool], colour: str):
    """The Cards validator's ROC at each calibrated (size, rgb), with the released and the lab's threshold marked,
    and the share of each corruption kind (and of noisy real grids) flagged against the threshold at ``first``."""
    fig, axes = plt.subplots(1, len(calibrations) + 1, figsize=(5 * (len(calibrations) + 1), 3.8))
    for ax, ((size, rgb), cal) in zip(axes, calibrations.items()):
        ax.plot(cal.roc["fpr"], cal.roc["tpr"], color=colour)
        positives = torch.cat([cal.scores[k] for k in kinds])
        for thr, marker in ((released, "o"), (lab, "s")):
            fpr, tpr = float((cal.negative_scores < thr).double().mean()), float((positives < thr).double().mean())
            ax.plot([fpr], [tpr], marker, color="k", label=f"threshold {thr}: FPR {fpr:.3f}, TPR {tpr:.3f}")
        ax.set(xlim=(-0.02, 1), ylim=(0, 1.02), xlabel="noisy real grids flagged (FPR)", ylabel="corruptions flagged (TPR)",
               title=f"ROC, {size} px {'RGB' if rgb else 'gray'} (AUC {float(cal.roc['auc']):.4f})")
        ax.legend(fontsize=7, loc="lower right")
    ax = axes[-1]
    thr_axis = np.linspace(0.85, 1.0, 301)
    cal0 = calibrations[first]
    for k in kinds:
        ax.plot(thr_axis, [(cal0.scores[k] < t).double().mean().item() for t in thr_axis], label=k)
    ax.plot(thr_axis, [(cal0.negative_scores < t).double().mean().item() for t in thr_axis], "k--", label="noisy real")
    ax.axvline(released, color="grey", lw=0.8)
    ax.axvline(lab, color="k", lw=0.8)
    ax.set(xlabel="threshold", ylabel="share flagged", title=f"flagged vs threshold, {first[0]} px (lines: 0.95, lab)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def cards_score_histograms(cal, worst: Mapping[str, torch.Tensor], released: float, lab: float, size: int,
                           labels: Mapping[str, str], colours: Mapping[str, str], data_colour: str):
    """Histograms (each summing to 1, log scale) of the worst-quadrant best NCC: noisy real grids, four corruption
    kinds of the calibration ``cal``, and each model's samples (``worst``: {method: [N]})."""
    fig, ax = plt.subplots(figsize=(10, 3.6))
    bins = np.linspace(-0.2, 1.0, 121)

    def share(x: torch.Tensor) -> np.ndarray:
        return np.full(x.numel(), 1.0 / x.numel())

    ax.hist(cal.negative_scores.numpy(), bins=bins, weights=share(cal.negative_scores), alpha=0.5, color=data_colour,
            label="real + noise 0.02")
    for k in ("blend", "wrong_pips", "noise", "shift"):
        ax.hist(cal.scores[k].numpy(), bins=bins, weights=share(cal.scores[k]), histtype="step", lw=1,
                label=f"corruption: {k}")
    for (m, w), ls in zip(worst.items(), ("-", "--", ":", "-.")):
        ax.hist(w.numpy(), bins=bins, weights=share(w), histtype="step", lw=2, ls=ls, color=colours[m], label=labels[m])
    ax.axvline(released, color="grey", lw=0.8)
    ax.axvline(lab, color="k", lw=0.8)
    ax.set(yscale="log", xlabel="worst-quadrant best NCC", ylabel="share of images",
           title=f"{size}-px Cards: samples vs real grids and corruptions")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    return fig


def training_curves(logs: Mapping[str, Sequence[dict]], labels: Mapping[str, str], colours: Mapping[str, str]):
    """eps-MSE (left) and, for the learned-variance models, the VB term (right) of every logged step; ``logs``:
    {method: records of its log.jsonl}."""
    fig, ax = plt.subplots(1, 2, figsize=(11, 3.4))
    for m, recs in logs.items():
        steps = [r["step"] for r in recs]
        ax[0].plot(steps, [r["mse"] for r in recs], color=colours[m], label=labels[m])
        if m != "fixed":
            ax[1].plot(steps, [r["vb"] for r in recs], color=colours[m], label=labels[m])
    return _two_panels(fig, ax, dict(yscale="log", xlabel="step", ylabel="eps-MSE", title="eps-MSE per logged step"),
                       dict(yscale="log", xlabel="step", ylabel="VB (bits/dim)", title="VB term (learned-variance models)"))


def variance_figure(rows: Sequence[dict], methods: Sequence[str], labels: Mapping[str, str], colours: Mapping[str, str]):
    """Where the learned Sigma sits, per t > 0: the mean frac (0 = beta_tilde_t, 1 = beta_t) and Sigma / beta_tilde_t;
    ``rows``: dicts with method, t, frac, sigma_over_beta_tilde."""
    fig, ax = plt.subplots(1, 2, figsize=(11, 3.4))
    for m in methods:
        rs = [r for r in rows if r["method"] == m and r["t"] > 0]
        ax[0].plot([r["t"] for r in rs], [r["frac"] for r in rs], marker="o", color=colours[m], label=labels[m])
        ax[1].plot([r["t"] for r in rs], [r["sigma_over_beta_tilde"] for r in rs], marker="o", color=colours[m],
                   label=labels[m])
    return _two_panels(fig, ax, dict(xscale="log", xlabel="t", ylabel="mean frac",
                                     title="learned variance: 0 = beta_tilde_t, 1 = beta_t"),
                       dict(xscale="log", xlabel="t", ylabel="Sigma / beta_tilde_t",
                            title="learned Sigma relative to its lower end"))


def step_sweep_figure(rows: Mapping[str, Sequence[dict]], threshold: float, labels: Mapping[str, str],
                      colours: Mapping[str, str]):
    """Rate against training step with 95% Wilson bars (left) and the median quadrant NCC (right); ``rows``:
    {method: dicts with step, hallucinated, n, median_quadrant_ncc, sorted by step}."""
    fig, ax = plt.subplots(1, 2, figsize=(11, 3.4))
    for m, rs in rows.items():
        rates = [wilson_interval(r["hallucinated"], r["n"]) for r in rs]
        steps = [r["step"] for r in rs]
        ax[0].errorbar(steps, [100 * x.rate for x in rates], yerr=[[100 * (x.rate - x.low) for x in rates],
                       [100 * (x.high - x.rate) for x in rates]], marker="o", capsize=3, color=colours[m], label=labels[m])
        ax[1].plot(steps, [r["median_quadrant_ncc"] for r in rs], marker="o", color=colours[m], label=labels[m])
    ax[1].axhline(threshold, color="k", lw=0.8)
    return _two_panels(fig, ax, dict(xlabel="training step", ylabel=f"hallucinated at {threshold} (%)",
                                     title="rate vs training step (95% Wilson)"),
                       dict(xlabel="training step", ylabel="median quadrant NCC", title="how card-like the quadrants are"))
