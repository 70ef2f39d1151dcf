"""ChessImages: boards from random play, rendered by the lab, read back by template matching, judged by
python-chess's rule book.

One benchmark in four modules, split like SimpleShapes (generator, validator, diagnostics and corruptions,
folders); every public name is also reachable here (``from vsmlab.data import chessboards as CB;
CB.validate_chess``):

- :mod:`~vsmlab.data.chessboards.generate`: positions from seeded random play, the keyed-hash split, the
  lab's tiles and :func:`render_boards`;
- :mod:`~vsmlab.data.chessboards.validate`: nearest-tile reading (:func:`read_boards`), legality with
  either side to move (:func:`judge_placement`) and :func:`validate_chess`;
- :mod:`~vsmlab.data.chessboards.calibrate`: :func:`calibrate_colours` (a palette-drift diagnostic) and
  :func:`corrupt_chess`;
- :mod:`~vsmlab.data.chessboards.folder`: writing, reading and validating ChessImages folders on disk.
"""

from vsmlab.data.chessboards.calibrate import CORRUPTIONS, calibrate_colours, corrupt_chess
from vsmlab.data.chessboards.folder import (CHESS_FOLDER, ChessFolder, ChessFolderReport, find_chess_folder,
                                            validate_chess_folder, write_chess)
from vsmlab.data.chessboards.generate import (DARK, LIGHT, SIZES, SYMBOLS, TEST_MODULUS, classes_to_placement,
                                              in_split, lab_tiles, placement_to_classes, random_positions,
                                              render_boards)
from vsmlab.data.chessboards.validate import (MAX_RMSE, RULES, ChessTemplates, ChessVerdict, Judgement,
                                              judge_placement, lab_templates, read_boards, templates_from_boards,
                                              validate_chess)

__all__ = [
    "SYMBOLS", "LIGHT", "DARK", "SIZES", "TEST_MODULUS", "MAX_RMSE", "RULES", "CORRUPTIONS", "placement_to_classes",
    "classes_to_placement", "in_split", "random_positions", "lab_tiles", "render_boards", "write_chess",
    "CHESS_FOLDER", "ChessTemplates", "lab_templates", "templates_from_boards", "read_boards", "calibrate_colours",
    "Judgement", "judge_placement", "ChessVerdict", "validate_chess", "corrupt_chess", "ChessFolder",
    "find_chess_folder", "ChessFolderReport", "validate_chess_folder",
]
