"""vsmlab: why diffusion models hallucinate, and whether score control (VSM) helps, measured.

The public API, in the order of the data path::

    data      -> GaussianMixture, evenly_spaced_1d, grid_2d, diamond_2d
    schedule  -> Schedule, linear, cosine
    model     -> MLP, ExactScoreModel, Prediction (+ eps/score/x0 conversions)
    loss      -> LossTerms, eps_mse_loss
    training  -> train (generator of StepRecord), fit
    sampling  -> ddpm, ddim, ode, sample
    metrics   -> hallucination_rate, mode_counts, gap_mass, wilson_interval, mean_ci

Submodules: ``vsmlab.estimators`` (Jacobians, spectral norms, Hutchinson, Lipschitz), ``vsmlab.bounds``
(the Lipschitz lower bound on off-support mass), ``vsmlab.variance`` (learned variance, VB, VSM),
``vsmlab.detectors`` (trajectory variance, ROC), ``vsmlab.experiments`` (cached toy runs),
``vsmlab.widgets`` (JupyterLab explorers; imports ipywidgets when used), ``vsmlab.runner`` (figures).
"""

from . import bounds, estimators
from .losses import LossTerms, eps_mse_loss
from .metrics import MeanCI, Rate, gap_mass, hallucination_rate, mean_ci, mode_counts, wilson_interval
from .mixtures import GaussianMixture, diamond_2d, evenly_spaced_1d, grid_2d
from .models import MLP, ExactScoreModel, Prediction, eps_to_score, eps_to_x0, predict_score, score_to_eps, x0_to_eps
from .samplers import SampleResult, ddim, ddpm, ode, sample
from .schedules import Schedule, cosine, linear
from .training import StepRecord, TrainingDiverged, fit, train

__version__ = "0.1.0"

__all__ = [
    "GaussianMixture", "evenly_spaced_1d", "grid_2d", "diamond_2d",
    "Schedule", "linear", "cosine",
    "MLP", "ExactScoreModel", "Prediction", "eps_to_score", "score_to_eps", "eps_to_x0", "x0_to_eps", "predict_score",
    "LossTerms", "eps_mse_loss",
    "train", "fit", "StepRecord", "TrainingDiverged",
    "ddpm", "ddim", "ode", "sample", "SampleResult",
    "hallucination_rate", "mode_counts", "gap_mass", "wilson_interval", "mean_ci", "Rate", "MeanCI",
]
