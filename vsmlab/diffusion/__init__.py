"""Layer 3, diffusion itself: losses (eps-MSE, hybrid, VSM, Jacobian penalty) and their likelihood pieces,
learned variance, samplers (with respacing) and switch models, the training loop, checkpoints, TOML configs,
run folders (:mod:`~vsmlab.diffusion.runs`) and sample sets (:mod:`~vsmlab.diffusion.sample_sets`).
Imports core, data and nets."""
