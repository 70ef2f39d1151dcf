"""Layer 1, the contract and the maths everything builds on: schedules, ``Prediction`` with the
eps/score/x0 conversions, Jacobian tools on any batched callable, crash-safe writes, plain statistics
(Wilson and Student-t intervals, :mod:`vsmlab.core.rates`). Imports nothing else from vsmlab.

Devices and randomness, one convention for the library: every function follows the device and dtype of
its tensor inputs; a ``torch.Generator`` lives on the device where the draw happens (a CUDA draw needs
``torch.Generator(device="cuda")``; a generator on another device is refused with an error naming
``generator``); functions that create their first tensor from a shape (samplers, ``GaussianMixture.sample``)
take ``device=`` (default: the generator's device, else the CPU). Schedule tables are float64 masters
on the CPU with cached per-(device, dtype) copies (``Schedule.table``); per-step loops index those and
pass steps as Python ints, so they never copy tables or synchronise with the host."""
