"""vsmlab: why diffusion models hallucinate, and whether score control (VSM) helps, measured.

The library is arranged by layers; imports only point down this list (``data`` and ``nets`` never
import each other)::

    vsmlab.core       schedules, Prediction + eps/score/x0 conversions, Jacobian estimators, atomic writes
    vsmlab.data       mixtures (exact scores), image data sets with validators and loaders
    vsmlab.nets       MLP, UNet, adapters for outside models, Lipschitz bounds
    vsmlab.diffusion  losses (eps-MSE, VB, VSM), samplers, training loop, checkpoints
    vsmlab.analysis   metrics, bounds, detectors, distances
    vsmlab.lab        experiments, cache, plotting, widgets, the figure runner
    vsmlab.cli        ``vsmlab figures | data | train | sample | validate``

The curated public API, in the order of the data path::

    data      -> GaussianMixture, evenly_spaced_1d, grid_2d, diamond_2d, ExactScoreModel;
                 images: vsmlab.data.shapes (generate), shapes_validate (validate, report),
                 shapes_score (ExactShapesScore), pngs (load_png_folder)
    schedule  -> Schedule, linear, cosine, respace
    model     -> MLP, UNet, EpsAdapter, Prediction (+ eps/score/x0 conversions)
    loss      -> LossTerms, eps_mse_loss (learned variance, VB, VSM: vsmlab.diffusion.variance)
    training  -> train (generator of StepRecord), fit, Trainer (checkpointable state)
    sampling  -> ddpm, ddim, ode, sample
    metrics   -> hallucination_rate, mode_counts, gap_mass, wilson_interval, mean_ci
"""

from vsmlab.analysis.metrics import MeanCI, Rate, gap_mass, hallucination_rate, mean_ci, mode_counts, wilson_interval
from vsmlab.core.prediction import Prediction, eps_to_score, eps_to_x0, predict_score, score_to_eps, x0_to_eps
from vsmlab.core.schedules import Schedule, cosine, linear, respace
from vsmlab.data.mixtures import ExactScoreModel, GaussianMixture, diamond_2d, evenly_spaced_1d, grid_2d
from vsmlab.diffusion.losses import LossTerms, eps_mse_loss
from vsmlab.diffusion.samplers import SampleResult, ddim, ddpm, ode, sample
from vsmlab.diffusion.training import StepRecord, Trainer, TrainingDiverged, fit, train
from vsmlab.nets.adapters import EpsAdapter
from vsmlab.nets.mlp import MLP
from vsmlab.nets.unet import UNet

__version__ = "0.2.0"

__all__ = [
    "GaussianMixture", "evenly_spaced_1d", "grid_2d", "diamond_2d",
    "Schedule", "linear", "cosine", "respace",
    "MLP", "UNet", "EpsAdapter", "ExactScoreModel", "Prediction", "eps_to_score", "score_to_eps", "eps_to_x0", "x0_to_eps", "predict_score",
    "LossTerms", "eps_mse_loss",
    "train", "fit", "Trainer", "StepRecord", "TrainingDiverged",
    "ddpm", "ddim", "ode", "sample", "SampleResult",
    "hallucination_rate", "mode_counts", "gap_mass", "wilson_interval", "mean_ci", "Rate", "MeanCI",
]
