"""The measurement protocol of notebook 05: train one toy setting, sample it, measure everything.

:func:`evaluate` takes a training spec (see :func:`vsmlab.lab.experiments.train_toy`) and an evaluation
config and returns plain numbers (a dict), cached on disk keyed by both (and the source of the modules
involved). :func:`evaluate_many` runs a list of them in worker processes (one torch thread each, so
``workers`` = the total thread budget). Per run:

- **samples**: ancestral DDPM over all T steps with the evaluation's ``variance``: "auto" (default: the
  learned variance when the model has a head, else sigma_t^2 = beta_t), "beta", "beta_tilde" (posterior
  variance; resamples a fixed-variance model without retraining) or "learned"; from x_T and sampling noise
  drawn from the spec's seed, so every setting with the same seed starts from the same noise (paired
  comparisons);
- **hallucination rate**: share outside ``support_k`` component stds of every mode (a diverged,
  non-finite sample counts as hallucinated, and ``diverged`` counts them); ``gap_rate``: the share that
  is off-support *and* between its two nearest modes (mode interpolation proper, :func:`vsmlab.analysis.metrics.gap_mass`);
- **fidelity of in-support samples**: max per-mode weight error and total variation of the mode shares
  (:func:`vsmlab.analysis.metrics.mode_counts`), and the sliced Wasserstein-2 distance (exact W2 in 1-D) between
  the in-support samples and fresh samples of the mixture;
- **score error per t**: E ||eps_theta(x_t, t) - eps*(x_t, t)||^2 / d with eps* = -sigma_t * exact score,
  on fresh x_t ~ p_t (the excess of the eps-MSE over the optimum);
- **Lipschitz near t = 0**: max over a grid covering the modes of ||d score_theta / d x||_2 at each
  step in ``lipschitz_ts`` (:func:`vsmlab.core.estimators.local_lipschitz`), next to the exact score's value;
- **trajectory-variance detector**: AUC against the in-support label and, at each threshold, the share
  of hallucinations removed, of in-support samples kept, and the hallucination rate left (a diverged
  sample gets the highest possible score);
- **cost**: training seconds (of the original run, from the cache) and sampling seconds;
- the first ``keep_samples`` samples (and their labels) for plots.
"""

from __future__ import annotations

import copy
import math
import time
from typing import Any

import torch

from vsmlab.core.checks import check_int

__all__ = ["DEFAULT_EVALUATION", "XT_STRIDE", "NOISE_STRIDE", "evaluate", "evaluate_many", "support_grid"]

DEFAULT_EVALUATION: dict[str, Any] = dict(
    n_samples=10000, n_reference=10000, support_k=4.0, k=10,
    thresholds=[round(10.0 ** (e / 4), 10) for e in range(-24, 1)],  # 1e-6 .. 1, four per decade
    score_ts=[0, 5, 20, 50, 100, 200], score_n=2000, lipschitz_ts=[0, 5, 20], lipschitz_grid=3001,
    sw_projections=128, keep_samples=2000, variance="auto",
)
_VARIANCES = ("auto", "beta", "beta_tilde", "learned")
#: the sampling noise of seed s: x_T from manual_seed(XT_STRIDE * (s + 1)), the step noise from NOISE_STRIDE * (s + 1)
XT_STRIDE, NOISE_STRIDE = 1_000_003, 2_000_003

_CODE = ("lab.mitigations", "analysis.detectors", "analysis.distances", "diffusion.samplers", "analysis.metrics",
         "core.estimators", "data.mixtures", "nets.mlp", "core.prediction")


def support_grid(mixture, points: int) -> torch.Tensor:
    """A grid [N, d] covering the modes (box of the means, widened by half the mode spacing).

    1-D: ``points`` points; 2-D: about ``points`` points in total (sqrt(points) per axis).
    """
    lo = mixture.means.min(0).values
    hi = mixture.means.max(0).values
    pad = 0.5 * (mixture.min_mode_spacing() if mixture.num_modes > 1 else 1.0)
    if mixture.dim == 1:
        return torch.linspace(float(lo[0] - pad), float(hi[0] + pad), points)[:, None]
    if mixture.dim == 2:
        per = max(2, int(round(math.sqrt(points))))
        gx = torch.linspace(float(lo[0] - pad), float(hi[0] + pad), per)
        gy = torch.linspace(float(lo[1] - pad), float(hi[1] + pad), per)
        xx, yy = torch.meshgrid(gx, gy, indexing="xy")
        return torch.stack([xx.reshape(-1), yy.reshape(-1)], 1)
    raise ValueError(f"mixture: support_grid covers 1-D and 2-D mixtures, got {mixture.dim}-D")


def _compute(spec: dict[str, Any], ev: dict[str, Any]) -> dict[str, Any]:
    from vsmlab.analysis.detectors import retention_curve, roc_auc, trajectory_variance
    from vsmlab.analysis.distances import sliced_wasserstein
    from vsmlab.core.estimators import local_lipschitz, score_function
    from vsmlab.lab.experiments import make_mixture, make_schedule, train_toy
    from vsmlab.analysis.metrics import gap_mass, hallucination_rate, mode_counts
    from vsmlab.data.mixtures import ExactScoreModel
    from vsmlab.diffusion.samplers import ddpm

    seed = int(spec["seed"])
    run = train_toy(spec)
    model = run.model
    mixture, schedule = make_mixture(spec["mixture"]), make_schedule(spec["schedule"])
    d = mixture.dim
    n = int(ev["n_samples"])
    x_T = torch.randn(n, d, generator=torch.Generator().manual_seed(XT_STRIDE * (seed + 1)))
    start = time.perf_counter()
    res = ddpm(model, schedule, x_T=x_T, generator=torch.Generator().manual_seed(NOISE_STRIDE * (seed + 1)),
               record_last=int(ev["k"]), variance=ev["variance"])
    sample_seconds = time.perf_counter() - start
    samples = res.samples
    finite = torch.isfinite(samples).all(1)
    inside = torch.zeros(n, dtype=torch.bool)
    inside[finite] = mixture.in_support(samples[finite], float(ev["support_k"]))
    hallucinated = ~inside
    rate = hallucination_rate(samples, mixture, float(ev["support_k"]))
    gap = gap_mass(samples, mixture, float(ev["support_k"]))
    modes = mode_counts(samples, mixture, float(ev["support_k"]))
    reference = mixture.sample(int(ev["n_reference"]), generator=torch.Generator().manual_seed(3_000_003 * (seed + 1)))
    sw = (sliced_wasserstein(samples[inside], reference, num_projections=int(ev["sw_projections"]),
                             generator=torch.Generator().manual_seed(seed)) if int(inside.sum()) > 0 else None)

    # score error per t on fresh x_t ~ p_t
    score_error = []
    g = torch.Generator().manual_seed(4_000_003 * (seed + 1))
    for t in ev["score_ts"]:
        x0 = mixture.sample(int(ev["score_n"]), generator=g)
        tt = torch.full((x0.shape[0],), int(t))
        x_t = schedule.noise(x0, tt, generator=g)
        with torch.no_grad():
            eps_model = model(x_t, tt).eps.double()
        eps_star = -mixture.score(x_t.double(), tt, schedule) * float(schedule.sigma[int(t)])
        score_error.append(float(((eps_model - eps_star) ** 2).mean()))

    grid = support_grid(mixture, int(ev["lipschitz_grid"]))
    exact = ExactScoreModel(mixture, schedule)
    lipschitz, lipschitz_exact = [], []
    for t in ev["lipschitz_ts"]:
        lipschitz.append(local_lipschitz(score_function(model, schedule, int(t)), grid).value)
        lipschitz_exact.append(local_lipschitz(score_function(exact, schedule, int(t)), grid.double()).value)

    scores = trajectory_variance(res, int(ev["k"]))
    # a diverged sample (non-finite trajectory) is the most suspicious one: give it the top score
    top = torch.finfo(scores.dtype).max
    scores = torch.nan_to_num(scores, nan=top, posinf=top, neginf=top)
    both = 0 < int(hallucinated.sum()) < n
    thresholds = [float(x) for x in ev["thresholds"]]
    if both:
        auc = roc_auc(scores, hallucinated)
        ret = retention_curve(scores, hallucinated, thresholds)
        removed, kept_in = ret.hallucinations_removed.tolist(), ret.in_support_kept.tolist()
    else:
        auc = None
        if int(hallucinated.sum()):
            removed = [float((scores[hallucinated] > th).double().mean()) for th in thresholds]
        else:
            removed = [None] * len(thresholds)
        kept_in = [float((scores[inside] <= th).double().mean()) if int(inside.sum()) else None for th in thresholds]
    kept = [int((scores <= th).sum()) for th in thresholds]
    kept_h = [int(((scores <= th) & hallucinated).sum()) for th in thresholds]
    return dict(
        seed=seed, n=n, variance=ev["variance"], hallucinated=int(hallucinated.sum()), diverged=int((~finite).sum()), rate=rate.rate,
        gap_rate=gap.rate,
        max_weight_error=float(modes["max_weight_error"]), total_variation=float(modes["total_variation"]),
        sliced_w2=sw, score_ts=list(ev["score_ts"]), score_error=score_error,
        lipschitz_ts=list(ev["lipschitz_ts"]), lipschitz=lipschitz, lipschitz_exact=lipschitz_exact,
        auc=auc, thresholds=thresholds, removed=removed, in_support_kept=kept_in, kept=kept,
        kept_hallucinated=kept_h, rate_after=[(h / k if k else None) for h, k in zip(kept_h, kept)],
        train_seconds=float(run.seconds), sample_seconds=sample_seconds,
        final_loss=float(sum(run.history[-100:]) / len(run.history[-100:])),
        samples=samples[: int(ev["keep_samples"])].clone(), sample_hallucinated=hallucinated[: int(ev["keep_samples"])].clone(),
    )


def evaluate(spec: dict[str, Any], evaluation: dict[str, Any] | None = None, use_cache: bool | None = None) -> dict[str, Any]:
    """Train (or load) ``spec`` and measure it with ``evaluation`` (defaults: :data:`DEFAULT_EVALUATION`).

    Returns a dict of plain numbers (see the module docstring; None where a quantity is undefined, e.g.
    the AUC of a run with no hallucination). Cached by (spec, evaluation, source of the modules used).
    """
    from vsmlab.lab.cache import SOURCE_MODULES, load_or_compute

    ev = {**DEFAULT_EVALUATION, **(evaluation or {})}
    unknown = sorted(set(ev) - set(DEFAULT_EVALUATION))
    if unknown:
        raise ValueError(f"evaluation: unknown key(s) {unknown}; allowed: {sorted(DEFAULT_EVALUATION)}")
    if ev["variance"] not in _VARIANCES:
        raise ValueError(f"evaluation.variance: expected one of {list(_VARIANCES)} (the DDPM sampling variance), "
                         f"got {ev['variance']!r}")
    spec = copy.deepcopy(spec)
    key = {"kind": "mitigation_eval", "spec": spec, "evaluation": ev}
    return load_or_compute(key, lambda: _compute(spec, ev), use_cache, modules=SOURCE_MODULES + _CODE)


def _init_worker() -> None:
    torch.set_num_threads(1)


def _job(args: tuple[dict[str, Any], dict[str, Any] | None]) -> dict[str, Any]:
    return evaluate(*args)


def evaluate_many(
    jobs: list[tuple[dict[str, Any], dict[str, Any] | None]], workers: int = 2, log=None,
) -> list[dict[str, Any]]:
    """:func:`evaluate` for every (spec, evaluation) in ``jobs``, in order of the input.

    workers: processes, each with one torch thread (1 = run here, with the caller's threads). ``log``:
    optional callable receiving a progress line per finished job.
    """
    check_int("workers", workers, low=1, hint="processes, one torch thread each")
    results: list[dict[str, Any] | None] = [None] * len(jobs)
    start = time.perf_counter()
    if workers == 1:
        for i, job in enumerate(jobs):
            results[i] = _job(job)
            if log:
                log(f"{i + 1}/{len(jobs)} done ({time.perf_counter() - start:.0f} s)")
        return results  # type: ignore[return-value]
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor, as_completed

    with ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn"), initializer=_init_worker) as pool:
        futures = {pool.submit(_job, job): i for i, job in enumerate(jobs)}
        for done, fut in enumerate(as_completed(futures), 1):
            results[futures[fut]] = fut.result()
            if log:
                log(f"{done}/{len(jobs)} done ({time.perf_counter() - start:.0f} s)")
    return results  # type: ignore[return-value]
