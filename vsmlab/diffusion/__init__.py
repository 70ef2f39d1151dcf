"""Layer 3, diffusion itself: losses (eps-MSE, VB, VSM, Jacobian penalty), samplers, the training loop,
checkpoints. Imports core, data and nets."""
