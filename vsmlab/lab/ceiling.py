"""The ceiling of a variance-only penalty on the toy benchmarks of notebook 05.

A learned-variance model samples with log Sigma_t = f log beta_t + (1 - f) log beta_tilde_t, f = (v + 1) / 2
from its variance head. A penalty on the variance alone (VSM) can at most move Sigma across that range, so
sampling the trained model with f forced to 0 (Sigma = beta_tilde_t) and to 1 (Sigma = beta_t), from the same
noise as its own-Sigma samples, bounds what such a penalty could change at sampling time.

:func:`toy_ceiling` loads the trained model of a spec (:func:`vsmlab.lab.experiments.train_toy`, cached) and
draws three DDPM sample sets over all T steps from the noise that :func:`vsmlab.lab.mitigations.evaluate`
uses for the same spec (x_T from seed ``1_000_003 (s + 1)``, step noise from ``2_000_003 (s + 1)``; a test
checks that the own-Sigma rate equals ``evaluate``'s): its own Sigma, f = 0 and f = 1. It returns the three
hallucination rates (:func:`vsmlab.analysis.metrics.hallucination_rate`, ``support_k`` stds) and how often
the model's own unbounded f left [0, 1] on its own trajectories
(:meth:`vsmlab.diffusion.sample_sets.FracSummary.as_dict`). Cached on disk like ``evaluate``.

``sampling_seed`` s' > 0 draws fresh noise instead (x_T from ``1_000_003 (s + 1) + FRESH_STRIDE s'``, step
noise from ``2_000_003 (s + 1) + FRESH_STRIDE s'``): the same trained models on new sample sets, to confirm a
comparison chosen after a first look at the s' = 0 sets. ``fracs`` picks the sets: None (own Sigma), 0, 1.
"""

from __future__ import annotations

import copy
from typing import Any

import torch

from vsmlab.lab.mitigations import NOISE_STRIDE, XT_STRIDE

__all__ = ["toy_ceiling", "FRESH_STRIDE"]

#: sampling seed s' > 0 adds FRESH_STRIDE * s' to both
FRESH_STRIDE = 5_000_011
_NAMES = {None: "own", 0.0: "frac0", 1.0: "frac1"}
_CODE = ("lab.ceiling", "diffusion.samplers", "diffusion.sample_sets", "analysis.metrics", "data.mixtures",
         "nets.mlp", "core.prediction")


def _compute(spec: dict[str, Any], n: int, support_k: float, fracs: tuple, sampling_seed: int) -> dict[str, Any]:
    from vsmlab.analysis.metrics import hallucination_rate
    from vsmlab.diffusion.sample_sets import sum_fracs
    from vsmlab.diffusion.samplers import ddpm
    from vsmlab.lab.experiments import make_mixture, make_schedule, train_toy

    seed = int(spec["seed"])
    model = train_toy(spec).model
    if not getattr(model, "learn_variance", False):
        raise ValueError(f"spec: the ceiling needs a learned-variance model (model.learn_variance = true), got "
                         f"{spec.get('model')!r}")
    mixture, schedule = make_mixture(spec["mixture"]), make_schedule(spec["schedule"])
    fresh = FRESH_STRIDE * sampling_seed
    x_T = torch.randn(n, mixture.dim, generator=torch.Generator().manual_seed(XT_STRIDE * (seed + 1) + fresh))
    out: dict[str, Any] = {"seed": seed, "n": n, "sampling_seed": sampling_seed}
    for frac in fracs:
        res = ddpm(model, schedule, x_T=x_T, generator=torch.Generator().manual_seed(NOISE_STRIDE * (seed + 1) + fresh),
                   variance="learned", variance_frac=frac)
        out[_NAMES[frac]] = hallucination_rate(res.samples, mixture, support_k).rate
        if frac is None and res.frac is not None:
            out["frac_outside"] = sum_fracs([res.frac]).as_dict()
    return out


def toy_ceiling(spec: dict[str, Any], n_samples: int, support_k: float = 4.0, *,
                fracs: tuple[float | None, ...] = (None, 0.0, 1.0), sampling_seed: int = 0,
                use_cache: bool | None = None) -> dict[str, Any]:
    """Rates of a trained learned-variance toy model (``spec`` as for ``evaluate``) sampled from one noise draw
    with its own Sigma (None in ``fracs``), Sigma = beta_tilde_t (0) and Sigma = beta_t (1): {"own", "frac0",
    "frac1": rate (those asked for), "frac_outside": dict (with the own set), "seed", "n", "sampling_seed"}
    (module docstring). ``n_samples``: as the evaluation's, so "own" at sampling_seed 0 reproduces its rate."""
    from vsmlab.core.checks import check_int, check_range
    from vsmlab.lab.cache import SOURCE_MODULES, load_or_compute

    n = check_int("n_samples", n_samples, low=1)
    k = check_range("support_k", support_k, 0, 1e6, low_open=True)
    s = check_int("sampling_seed", sampling_seed, low=0)
    chosen = tuple(None if f is None else float(f) for f in fracs)
    if not chosen or any(f not in _NAMES for f in chosen) or len(set(chosen)) != len(chosen):
        raise ValueError(f"fracs: expected distinct values among None (own Sigma), 0 and 1, got {fracs!r}")
    spec = copy.deepcopy(spec)
    key = {"kind": "toy_ceiling", "spec": spec, "n": n, "support_k": k, "fracs": list(chosen), "sampling_seed": s}
    return load_or_compute(key, lambda: _compute(spec, n, k, chosen, s), use_cache, modules=SOURCE_MODULES + _CODE)
