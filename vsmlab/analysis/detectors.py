"""Hallucination detection from the sampling trajectory, with ROC / AUC and retention curves.

Trajectory variance (the mode-interpolation work): record the predicted clean sample x0_hat at each
reverse step; a sample whose x0_hat keeps moving over the last ``k`` steps (t = k-1 .. 0) has not settled
on one mode, and is a likely hallucination::

    score_b = sum_dims Var_{s in last k steps}(x0_hat[s, b])      (population variance, divisor k)

Evaluation against a boolean label (True = hallucinated = the positive class):

- :func:`roc_curve` / :func:`roc_auc`: flag a sample when ``score >= threshold``; one ROC point per
  distinct score, so tied scores move TPR and FPR together (a diagonal segment, worth 1/2 of its
  area): AUC = P(score_pos > score_neg) + 0.5 P(score_pos = score_neg) (the Mann-Whitney statistic).
- :func:`retention_curve`: for thresholds tau, flag ``score > tau``; the share of hallucinations
  removed against the share of in-support samples kept, and the hallucination rate left among the kept.
  A fixed threshold (not a batch percentile, which flags a fixed share) is what can lower a *rate*.

Devices: everything runs on the scores' device (labels and thresholds are moved there); results are
float64 tensors on that device.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from vsmlab.core.checks import check_int
from vsmlab.diffusion.samplers import SampleResult

__all__ = ["trajectory_variance", "ROC", "roc_curve", "roc_auc", "Retention", "retention_curve"]


def trajectory_variance(trajectory: torch.Tensor | SampleResult, k: int = 10) -> torch.Tensor:
    """Per-sample variance of x0_hat over the last ``k`` recorded steps, summed over dimensions: [B].

    trajectory: x0_hat [S, B, ...] (steps in sampling order, the last one at t = 0) or a SampleResult
    recorded with ``record=True`` or ``record_last >= k`` (and ``record_every=1``: the last k recorded
    steps must be the last k steps). Raises ValueError naming ``k`` when k < 2 or k > S.
    """
    if isinstance(trajectory, SampleResult):
        if trajectory.x0_hat is None:
            raise ValueError("trajectory: the SampleResult holds no x0_hat; sample with record_last=k (or record=True)")
        rec = trajectory.recorded_steps
        if rec is not None and isinstance(k, int) and 2 <= k <= len(rec) and rec[-k:] != trajectory.timesteps[-k:]:
            raise ValueError(f"trajectory: its last {k} recorded steps {rec[-k:]} are not the last {k} steps "
                             f"{trajectory.timesteps[-k:]} (recorded with record_every > 1); record with record_every=1")
        trajectory = trajectory.x0_hat
    if not isinstance(trajectory, torch.Tensor) or trajectory.dim() < 2:
        got = getattr(trajectory, "shape", type(trajectory).__name__)
        raise ValueError(f"trajectory: expected x0_hat of shape [S, B, ...], got {got}")
    steps = trajectory.shape[0]
    check_int("k", k, low=2, hint="a variance needs two steps")
    if k > steps:
        raise ValueError(f"k: {k} is larger than the number of recorded steps ({steps}); record at least k steps "
                         f"(record_last={k}) or choose k <= {steps}")
    last = trajectory[-k:].double()
    var = last.var(dim=0, unbiased=False)
    return var.reshape(var.shape[0], -1).sum(1)


def window_variance(x0_hat: torch.Tensor, steps, lo: int, hi: int) -> torch.Tensor:
    """Per-sample variance of x0_hat over the recorded steps t with ``lo <= t <= hi``, summed over dimensions: [B].

    x0_hat: [R, B, ...] recorded at the (original, not respaced) timesteps ``steps`` [R] (e.g. a ``vsmlab sample``
    npz's ``trajectory_x0_hat`` and ``trajectory_steps``). The VSM code's detector uses t in 20..35. Raises
    ValueError naming the window when fewer than two recorded steps fall in it.
    """
    steps = [int(t) for t in steps]
    if not isinstance(x0_hat, torch.Tensor) or x0_hat.dim() < 2 or x0_hat.shape[0] != len(steps):
        got = getattr(x0_hat, "shape", type(x0_hat).__name__)
        raise ValueError(f"x0_hat: expected shape [R, B, ...] with R = len(steps) = {len(steps)}, got {got}")
    idx = [i for i, t in enumerate(steps) if lo <= t <= hi]
    if len(idx) < 2:
        raise ValueError(f"lo, hi: the window {lo}..{hi} holds {len(idx)} of the recorded steps {steps}; a variance "
                         "needs two (record more final steps)")
    var = x0_hat[idx].double().var(dim=0, unbiased=False)
    return var.reshape(var.shape[0], -1).sum(1)


def _check_scores_labels(scores: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    scores = torch.as_tensor(scores)
    labels = torch.as_tensor(labels, device=scores.device)
    if scores.dim() != 1 or scores.numel() < 1:
        raise ValueError(f"scores: expected a 1-D tensor [N] with N >= 1, got shape {tuple(scores.shape)}")
    if labels.shape != scores.shape:
        raise ValueError(f"labels: expected shape {tuple(scores.shape)} (one per score), got {tuple(labels.shape)}")
    if labels.dtype != torch.bool:
        raise TypeError(f"labels: expected a bool tensor (True = hallucinated), got dtype {labels.dtype}")
    scores = scores.double()
    if not bool(torch.isfinite(scores).all()):
        raise ValueError("scores: every score must be finite (got NaN or inf)")
    pos = int(labels.sum())
    if pos == 0 or pos == labels.numel():
        raise ValueError(f"labels: need both classes (hallucinated and in-support); got {pos} positives of {labels.numel()}")
    return scores, labels


@dataclass(frozen=True)
class ROC:
    """fpr, tpr, thresholds: [M + 1] (float64), starting at (0, 0) with threshold +inf; flagged = score >= threshold."""

    fpr: torch.Tensor
    tpr: torch.Tensor
    thresholds: torch.Tensor

    @property
    def auc(self) -> float:
        """Area under the curve by the trapezoid rule (ties count 1/2)."""
        return float(torch.trapezoid(self.tpr, self.fpr))


def roc_curve(scores: torch.Tensor, labels: torch.Tensor) -> ROC:
    """ROC of ``scores`` [N] (higher = more likely hallucinated) against bool ``labels`` [N] (True = hallucinated)."""
    scores, labels = _check_scores_labels(scores, labels)
    order = torch.argsort(scores, descending=True, stable=True)
    s, lab = scores[order], labels[order]
    last_of_group = torch.nonzero(torch.cat([s[1:] != s[:-1], torch.ones(1, dtype=torch.bool, device=s.device)])).reshape(-1)
    tps = torch.cumsum(lab.double(), 0)[last_of_group]
    fps = torch.cumsum((~lab).double(), 0)[last_of_group]
    zero = torch.zeros(1, dtype=torch.float64, device=s.device)
    return ROC(
        fpr=torch.cat([zero, fps / fps[-1]]),
        tpr=torch.cat([zero, tps / tps[-1]]),
        thresholds=torch.cat([torch.full((1,), float("inf"), dtype=torch.float64, device=s.device), s[last_of_group]]),
    )


def roc_auc(scores: torch.Tensor, labels: torch.Tensor) -> float:
    """AUC of :func:`roc_curve` (1 = every hallucination scores above every in-support sample, 0.5 = chance)."""
    return roc_curve(scores, labels).auc


@dataclass(frozen=True)
class Retention:
    """Per threshold tau [M] (flag score > tau): hallucinations_removed and in_support_kept (shares in [0, 1]),
    kept (samples kept), kept_hallucinated (hallucinations among them), rate_after = kept_hallucinated / kept
    (NaN only where nothing is kept; ``kept`` says so)."""

    thresholds: torch.Tensor
    hallucinations_removed: torch.Tensor
    in_support_kept: torch.Tensor
    kept: torch.Tensor
    kept_hallucinated: torch.Tensor
    rate_after: torch.Tensor


def retention_curve(
    scores: torch.Tensor, labels: torch.Tensor, thresholds: torch.Tensor | list[float] | None = None,
) -> Retention:
    """Retention curve of a detector: for each threshold, who is removed (score > tau) and who is kept.

    thresholds: [M] values (default: every distinct score, plus one below the minimum so that the curve
    reaches "remove everything"). Needs both classes in ``labels`` (ValueError naming ``labels``).
    """
    scores, labels = _check_scores_labels(scores, labels)
    if thresholds is None:
        distinct = torch.unique(scores)
        thresholds = torch.cat([distinct[:1] - 1.0, distinct])
    thresholds = torch.as_tensor(thresholds, dtype=torch.float64, device=scores.device).reshape(-1)
    if thresholds.numel() < 1 or not bool(torch.isfinite(thresholds).all()):
        raise ValueError("thresholds: expected at least one finite threshold")
    pos_sorted = torch.sort(scores[labels]).values
    neg_sorted = torch.sort(scores[~labels]).values
    # number of scores <= tau in each class (kept); flagged = score > tau
    kept_h = torch.searchsorted(pos_sorted, thresholds, right=True)
    kept_in = torch.searchsorted(neg_sorted, thresholds, right=True)
    removed = 1.0 - kept_h.double() / pos_sorted.numel()
    kept = kept_h + kept_in
    rate = torch.where(kept > 0, kept_h.double() / kept.clamp_min(1).double(), torch.full_like(removed, float("nan")))
    return Retention(thresholds, removed, kept_in.double() / neg_sorted.numel(), kept, kept_h, rate)
