"""Layer 2, data sets: each with its generator, its exact score where one exists (behind the model contract),
its validator and its loader. Imports only ``vsmlab.core``.

- :mod:`~vsmlab.data.mixtures`: Gaussian mixtures with exact scores; :mod:`~vsmlab.data.empirical`: the
  ideal denoiser of a finite training set;
- SimpleShapes: :mod:`~vsmlab.data.shapes` (generator), :mod:`~vsmlab.data.shapes_validate`,
  :mod:`~vsmlab.data.shapes_score` (exact score);
- Cards: the package :mod:`vsmlab.data.cards` (generate, validate, calibrate, folder);
- ChessImages: the package :mod:`vsmlab.data.chessboards` (generate, validate, calibrate, folder);
- :mod:`~vsmlab.data.pngs`: PNG files and folders (encode, read, list, load, write atomically).
"""
