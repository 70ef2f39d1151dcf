"""Layer 1, the contract and the maths everything builds on: schedules, ``Prediction`` with the
eps/score/x0 conversions, Jacobian tools on any batched callable, crash-safe writes. Imports nothing
else from vsmlab."""
