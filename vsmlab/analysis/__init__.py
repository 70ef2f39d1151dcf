"""Layer 4, measurement: hallucination metrics, bounds, detectors, distances, statistics of studies (paired
differences, power), fidelity. Imports the layers below; plain rates and intervals live in vsmlab.core.rates."""
