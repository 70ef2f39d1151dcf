"""Cards: 2x2 grids of four distinct playing cards, drawn by the lab, and a template validator.

One benchmark in four modules, split like SimpleShapes (generator, validator, corruptions and calibration,
folders); every public name is also reachable here (``from vsmlab.data import cards as C; C.make_cards``):

- :mod:`~vsmlab.data.cards.generate`: the 40 faces, the C(40,4) = 91,390 sets (colex ranks), the seeded
  train/test split, the grids (:func:`make_cards`);
- :mod:`~vsmlab.data.cards.validate`: normalised cross-correlation of each quadrant with 40 templates and
  the rules "blank_quadrant", "low_match", "repeated_card" (:func:`validate_cards`);
- :mod:`~vsmlab.data.cards.calibrate`: constructed hallucinations, the ROC, :func:`calibrate_cards`;
- :mod:`~vsmlab.data.cards.folder`: writing, reading and validating Cards folders on disk.
"""

from vsmlab.data.cards.calibrate import CORRUPTIONS, CardsCalibration, calibrate_cards, corrupt_cards, roc_curve
from vsmlab.data.cards.folder import (CARDS_FOLDER, CardsFolder, CardsFolderReport, find_cards_folder, load_templates,
                                      validate_cards_folder, write_cards)
from vsmlab.data.cards.generate import (CARD_CODES, N_CARDS, N_SETS, RANKS, SIZES, SUITS, TEST_FRACTION, assemble_grids,
                                        card_code, choose_cards, draw_face, lab_faces, make_cards, rank_sets,
                                        split_ranks, unrank_sets)
from vsmlab.data.cards.validate import (CATEGORIES, THRESHOLD, CardsVerdict, CardTemplates, QuadrantMatch,
                                        lab_templates, match_quadrants, validate_cards)

__all__ = [
    "RANKS", "SUITS", "CARD_CODES", "N_CARDS", "N_SETS", "TEST_FRACTION", "SIZES", "THRESHOLD", "CATEGORIES",
    "CORRUPTIONS", "card_code", "draw_face", "lab_faces", "unrank_sets", "rank_sets", "split_ranks", "choose_cards",
    "make_cards", "assemble_grids", "write_cards", "CARDS_FOLDER", "CardTemplates", "lab_templates",
    "load_templates", "QuadrantMatch", "match_quadrants", "CardsVerdict", "validate_cards", "corrupt_cards",
    "roc_curve", "CardsCalibration", "calibrate_cards", "CardsFolder", "find_cards_folder", "CardsFolderReport",
    "validate_cards_folder",
]
