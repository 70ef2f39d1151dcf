"""Layer 4, measurement: hallucination metrics, bounds, detectors, distances. Imports the layers below."""
