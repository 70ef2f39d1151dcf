"""Layer 2, data sets: each in one module with its generator, its exact score where one exists (behind
the model contract), its validator and its loader. Imports only ``vsmlab.core``."""
