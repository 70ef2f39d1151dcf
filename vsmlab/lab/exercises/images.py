"""Exercises of notebooks 06-07: SimpleShapes, Cards and ChessImages (judged by the library's validators)."""

from __future__ import annotations

import functools
import itertools
import math

import numpy as np
import torch

from vsmlab.lab.exercises.answers import Exercise, exercise, image, numeric, percent_trap, placement, share, whole

__all__ = ["EXERCISES"]


# ------------------------------------------------------------------------------------- 06: shapes
@functools.lru_cache(maxsize=None)
def _two_shape_patterns() -> int:
    from vsmlab.data.shapes import KINDS

    patterns = [p for p in itertools.product((0, 1), repeat=len(KINDS)) if any(p)]
    return sum(sum(p) == 2 for p in patterns)


def _grade_patterns(n: int) -> tuple[str, str]:
    truth = _two_shape_patterns()
    if n == truth:
        return "right", (f"{n} (choose 2 of 3 columns), so 3/7 of images hold two shapes, 3/7 one and 1/7 three: "
                         "the composition the notebook checks its training set against.")
    return "wrong", "a pattern says which of the 3 columns hold a shape; count the patterns with exactly two"


@functools.lru_cache(maxsize=None)
def _distinct_images() -> int:
    from vsmlab.data.shapes import template_bank

    return math.prod(m + 1 for m in template_bank(32).counts()) - 1


def _grade_distinct(n: int) -> tuple[str, str]:
    from vsmlab.data.shapes import template_bank

    truth, counts = _distinct_images(), template_bank(32).counts()
    if n == truth:
        return "right", (f"{n:,} = {' x '.join(str(m + 1) for m in counts)} - 1: far more than the 5,000 training images, "
                         f"yet only {sum(counts)} of them hold a single shape.")
    if n == truth + 1:
        return "close", "the all-blank image is never drawn: subtract it"
    if n == math.prod(counts):
        return "wrong", "a column may also be blank: each column has its positions plus one blank choice"
    return "wrong", ("each column independently is blank or holds its shape at one of its positions; the all-blank "
                     "image is excluded")


@functools.lru_cache(maxsize=None)
def _memorisation() -> float:
    from vsmlab.analysis.fidelity import memorisation_chance

    return memorisation_chance(32, 5000)


def _grade_duplicate(picture: np.ndarray) -> tuple[str, str]:
    from vsmlab.data.shapes_validate import validate

    verdict = validate(picture[None], size=32)[0]
    cats = verdict.categories
    if cats == ("duplicate",):
        return "right", ("the strict validator says 'duplicate' and nothing else: two recognised triangles in the triangle "
                         "column, the signature of mode interpolation between two positions.")
    if "duplicate" in cats:
        return "close", (f"the validator sees {', '.join(cats)}: a duplicate, but also more; keep the two triangles apart "
                         "(a gap of at least one pixel) and draw nothing else")
    problems = "; ".join(c.problem for c in verdict.components if c.problem) or "none"
    return "wrong", (f"the validator sees {', '.join(cats)} (component problems: {problems}). Put two whole triangle "
                     "strips from template_bank(32).masks[0] into columns 0..9, at positions far apart vertically")


# ------------------------------------------------------------------------------------- 07: cards, chess
@functools.lru_cache(maxsize=None)
def _grid_images() -> int:
    from vsmlab.data.cards import N_SETS

    return N_SETS * math.factorial(4)


def _grade_grid_images(n: int) -> tuple[str, str]:
    from vsmlab.data.cards import N_CARDS, N_SETS

    truth = _grid_images()
    if n == truth:
        return "right", (f"{n:,} = C(40, 4) x 4! = 40 x 39 x 38 x 37: far more grids than any training set holds, so "
                         "most valid grids are ones a model never saw.")
    if n == N_SETS:
        return "close", "that counts the sets; each set can be laid out in the four quadrants in 4! orders"
    if n == N_CARDS**4:
        return "wrong", "the four cards of a grid are distinct: no card repeats"
    return "wrong", "choose the card of each quadrant in turn: 40 for the first, then 39, 38, 37"


RANK_CODES = ("4C", "AD", "AH", "10S")


@functools.lru_cache(maxsize=None)
def _set_rank() -> int:
    from vsmlab.data.cards import CARD_CODES, rank_sets

    return int(rank_sets(torch.tensor([[CARD_CODES.index(c) for c in RANK_CODES]]))[0])


def _grade_rank(n: int) -> tuple[str, str]:
    truth = _set_rank()
    if n == truth:
        return "right", f"{n:,}: with the indices 3 < 10 < 20 < 39, C(39,4) + C(20,3) + C(10,2) + C(3,1)."
    return "wrong", ("card index = 10 x suit + rank with suits C, D, H, S = 0..3 and ranks A..10 = 0..9 (so 4C = 3); "
                     "sort the four indices c1 < c2 < c3 < c4, then add C(c4,4) + C(c3,3) + C(c2,2) + C(c1,1)")


def _grade_released(field: str) -> tuple[str, str]:
    from vsmlab.data.chessboards import judge_placement

    j = judge_placement(field)
    if not j.rules and j.released:
        return "right", (f"legal with black to move, but the white-to-move rule reports {', '.join(j.released)}: the "
                         "released validator would count a legal position as a hallucination.")
    if j.rules:
        return "wrong", (f"the lab's rule flags it too ({', '.join(j.rules)}): it must be legal with some side to move. "
                         "Keep one king each and put the black king in check")
    return "wrong", ("both rules accept it. The released rule assumes white to move, so it flags positions where "
                     "black, not to move, is in check: give a white piece a line to the black king")


EXERCISES: tuple[Exercise, ...] = (
    # 06 · SimpleShapes
    exercise("06.1", "Compositions", "easy", """
        Each of the three columns holds its shape with probability 1/2, and all-blank images are redrawn, so
        there are 7 presence patterns. How many of the 7 have exactly two shapes?""",
        "a whole number", whole, _grade_patterns),
    exercise("06.2", "How many distinct images?", "medium", """
        At 32 px the generator can put the triangle at 162 positions, the square at 100 and the pentagon at 130
        (vsmlab.data.shapes.template_bank(32).counts()). Each column is blank or holds its shape at one
        position, and the all-blank image is excluded. How many distinct images can the generator draw?""",
        "a whole number", whole, _grade_distinct),
    exercise("06.3", "Copies by chance", "medium", """
        A fresh sample of the true distribution is an exact copy of one of the 5,000 training images more often
        than one might think. Derive the probability at 32 px: each presence pattern P has probability 1/7 and,
        given P, a particular image has probability prod_(c in P) 1/M_c (M_c: the column's positions); the
        sample is a copy when its image occurs among the 5,000 independent training draws.""",
        "a share (a number in [0, 1])", share, numeric(
            _memorisation, 0.01, 0.1, "sum over the 7 patterns of (1/7) [1 - (1 - q_P)^5000] with q_P = (1/7) "
            "prod_(c in P) 1/M_c: single-shape images dominate",
            traps=[percent_trap()],
            explain="Over 40%: a copy of a training image is not by itself evidence of memorisation; compare "
                    "with this chance.")),
    exercise("06.4", "Build a hallucination", "medium", """
        Build a 32x32 image (uint8, 0 = background, 255 = shape) that the strict validator
        (vsmlab.data.shapes_validate.validate) calls a duplicate and nothing else: two triangles in the triangle
        column (columns 0..9, rows 0..30). Start from vsmlab.data.shapes.template_bank(32).masks[0], the
        triangle strips (bool, [162, 31, 10]).""",
        "a 32x32 image (numpy uint8)", image(32), _grade_duplicate),
    exercise("06.5", "The exact score as a yardstick", "open", """
        Samples of the exact image score are all valid. Predict how the rate of a hybrid sampler (the exact
        score at high noise, the trained UNet below a switch step) changes as the switch moves from T down to 0,
        then compare with the notebook's hybrid samplers. Which noise levels did notebook 03 say matter?"""),
    # 07 · Cards and chess
    exercise("07.1", "How many grids?", "easy", """
        A Cards image shows 4 distinct cards out of 40, one per quadrant. How many distinct images are there,
        counting each order of the cards in the quadrants separately?""",
        "a whole number", whole, _grade_grid_images),
    exercise("07.2", "Number the sets", "medium", f"""
        Sets of cards are numbered by the combinatorial number system: the set c1 < c2 < c3 < c4 of card
        indices (index = 10 x suit + rank, suits C, D, H, S, ranks A..10 from 0) has rank
        C(c4, 4) + C(c3, 3) + C(c2, 2) + C(c1, 1). What is the rank of the set {{{', '.join(RANK_CODES)}}}?""",
        "a whole number", whole, _grade_rank),
    exercise("07.3", "Legal for the lab, illegal for the released rule", "medium", """
        Give a piece placement (the first field of a FEN, e.g. '4k3/8/8/8/8/8/8/4K3') that the lab's rule
        accepts (legal with some side to move) but the released rule (white to move) flags.
        vsmlab.data.chessboards.judge_placement shows both verdicts.""",
        "a piece placement (text)", placement, _grade_released),
    exercise("07.4", "Choose a Cards threshold", "open", """
        The released Cards threshold 0.95 flags no real grid but lets many blends and wrong-pip cards through.
        From the threshold sweep, pick the threshold you would use and say what it costs: how many real grids it
        would flag and what share of blends it catches. Then judge one model's samples at both thresholds: how
        much does its rate move?"""),
    exercise("07.5", "What would a chess study need?", "open", """
        The CPU chess pilot of the appendix compares VSM with its baseline on 64 boards each. Using
        vsmlab.analysis.power and the pilot's calibrated rates, say how many boards per model (one run per method)
        would detect a 25% relative reduction at 80% power, and how many training seeds a paired design would need
        if the per-seed spread were as on Cards. What would you change first: the boards, the models or the
        reading?"""),
)
