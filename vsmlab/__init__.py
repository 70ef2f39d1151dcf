"""vsmlab: why diffusion models hallucinate, and whether score control (VSM) helps, measured.

The library is arranged by layers; a module imports only from its own layer and the layers below it in
this list (``data`` and ``nets`` share a rank and never import each other). ``lint-imports`` checks it (the
import-linter layers contract in pyproject.toml, run by tests/test_layers.py)::

    vsmlab.cli        ``vsmlab figures | data | validate | train | sample``: one module per verb, parsing only
    vsmlab.lab        studies, experiments, cache, plotting, widgets, exercises, the figure runner
    vsmlab.analysis   hallucination metrics, bounds, detectors, distances, statistics of studies, fidelity
    vsmlab.diffusion  losses (eps-MSE, hybrid, VSM, Jacobian penalty), learned variance, samplers, switch
                      models, the training loop, checkpoints, configs, run folders, sample sets
    vsmlab.data       mixtures (exact scores), image data sets with validators and loaders
    vsmlab.nets       MLP, UNet, adapters for outside models, Lipschitz bounds
    vsmlab.core       schedules, Prediction + eps/score/x0 conversions, Jacobian estimators, argument checks,
                      atomic writes and output rules, plain statistics (Wilson and Student-t intervals)

Library code never calls the command line: training a run folder
(:func:`vsmlab.diffusion.runs.train_run`) and drawing a sample set from a checkpoint
(:func:`vsmlab.diffusion.sample_sets.sample_checkpoint`) are library functions that ``vsmlab train`` /
``vsmlab sample``, the studies and the GPU scripts all call.

The curated public API, in the order of the data path::

    data      -> GaussianMixture, evenly_spaced_1d, grid_2d, diamond_2d, ExactScoreModel;
                 images: vsmlab.data.shapes (generate), shapes_validate (validate, report),
                 shapes_score (ExactShapesScore), pngs (load_png_folder)
    schedule  -> Schedule, linear, cosine, respace
    model     -> MLP, UNet, EpsAdapter, Prediction (+ eps/score/x0 conversions)
    loss      -> LossTerms, eps_mse_loss (hybrid, VSM, Jacobian penalty: vsmlab.diffusion.losses.make_loss;
                 learned variance and VB: vsmlab.diffusion.variance)
    training  -> train (generator of StepRecord), fit, Trainer (checkpointable state)
    sampling  -> ddpm, ddim, ode, sample
    metrics   -> hallucination_rate, mode_counts, gap_mass; Rate, wilson_interval, MeanCI, mean_ci (vsmlab.core.rates)
"""

from vsmlab.analysis.metrics import gap_mass, hallucination_rate, mode_counts
from vsmlab.core.prediction import Prediction, eps_to_score, eps_to_x0, predict_score, score_to_eps, x0_to_eps
from vsmlab.core.rates import MeanCI, Rate, mean_ci, wilson_interval
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
