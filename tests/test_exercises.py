"""Exercises that check themselves (vsmlab.lab.exercises): the registry, the worked solutions (each gets
"right"), wrong and close answers with their hints, and bad input (a hint, never an exception)."""

from __future__ import annotations

import math
import re
import runpy

import numpy as np
import pytest
import torch

from vsmlab.lab import exercises as E
from vsmlab.lab.runner import ROOT

SOLUTIONS = ROOT / "notebooks" / "solutions"
NOTEBOOKS = [f"{i:02d}" for i in range(1, 8)]


def closed_ids(notebook: str | None = None) -> list[str]:
    return [e.id for e in E.exercises(notebook) if e.closed]


def test_every_notebook_has_three_to_five_exercises_easy_first() -> None:
    order = {"easy": 0, "medium": 1, "open": 2}
    assert sorted({e.notebook for e in E.exercises()}) == NOTEBOOKS
    for nb in NOTEBOOKS:
        exs = E.exercises(nb)
        assert 3 <= len(exs) <= 5, nb
        assert [e.id for e in exs] == [f"{nb}.{i}" for i in range(1, len(exs) + 1)]
        assert [order[e.level] for e in exs] == sorted(order[e.level] for e in exs), f"{nb}: easy to open-ended"
        assert len(closed_ids(nb)) >= 2 and exs[-1].level == "open" and not exs[-1].closed
        for e in exs:
            assert e.title and len(e.question) > 80 and (e.expects or not e.closed)
            assert e.closed == (e.parse is not None) == (e.level != "open")
    assert E.exercises("01_mode_interpolation_1d") == E.exercises("01")
    with pytest.raises(ValueError, match="notebook: expected one of 01, 02"):
        E.exercises("99")


def test_student_facing_text_has_no_project_history_words() -> None:
    banned = re.compile(r"\b(issue|session|lease|ticket)s?\b", re.IGNORECASE)
    texts = [E.describe(e.id) for e in E.exercises()]
    texts += [p.read_text() for p in sorted(SOLUTIONS.glob("*.py"))]
    for text in texts:
        assert not banned.search(text), banned.search(text).group(0)


@pytest.mark.parametrize("notebook", NOTEBOOKS)
def test_worked_solutions_are_right(notebook: str, capsys: pytest.CaptureFixture) -> None:
    """Each notebook's solutions file runs top to bottom and every closed exercise's answer checks right."""
    path = SOLUTIONS / f"{notebook}_solutions.py"
    assert path.exists(), f"missing worked solutions {path}"
    namespace = runpy.run_path(str(path), run_name="__main__")
    out = capsys.readouterr().out
    answers = namespace["answers"]
    assert sorted(answers) == closed_ids(notebook)
    for ex_id, answer in answers.items():
        verdict = E.check(ex_id, answer, quiet=True)
        assert verdict.status == "right", verdict.message
        assert f"{ex_id} right:" in out  # the solutions file shows the check it passes


def test_describe_and_open_exercises(capsys: pytest.CaptureFixture) -> None:
    text = E.describe("01.3")
    assert capsys.readouterr().out.strip() == text.strip()
    assert text.startswith("01.3 · ") and "posterior mean" in text and "check('01.3', answer)" in text
    open_text = E.describe("01.5")
    assert "Open-ended" in open_text and "check(" not in open_text
    verdict = E.check("01.5", 3.0)
    assert verdict.status == "open" and "describe('01.5')" in verdict.message
    assert "unknown exercise '09.1'" in E.describe("09.1")


def _duplicate_with_extra_blob() -> np.ndarray:
    from vsmlab.data.shapes import template_bank

    bank = template_bank(32)
    img = np.zeros((32, 32), dtype=np.uint8)
    img[:31, :10][bank.masks[0][0] | bank.masks[0][-1]] = 255
    img[:31, 10:20][:3, :3] = 255  # a stray blob in the square column
    return img


def _one_triangle() -> np.ndarray:
    from vsmlab.data.shapes import template_bank

    img = np.zeros((32, 32), dtype=np.uint8)
    img[:31, :10][template_bank(32).masks[0][0]] = 255
    return img


# (exercise, answer, status, a phrase of the hint)
JUDGED = [
    ("01.1", 0.00135, "wrong", "one tail"),
    ("01.1", 0.27, "wrong", "percentage"),
    ("01.1", 0.0029, "close", "right means within 1%"),
    ("01.1", 0.05, "wrong", "standard normal CDF"),
    ("01.2", 0.954, "wrong", "above"),
    ("01.2", 0.06, "close", "alpha_bar"),
    ("01.3", 1.5, "wrong", "responsibility"),
    ("01.3", 1.66, "close", "off"),
    ("01.4", 9, "close", "still narrower than 0.1"),
    ("01.4", 2, "wrong", "dips"),
    ("01.4", 5000, "wrong", "0..999"),
    ("02.1", 2, "wrong", "before normalisation"),
    ("02.2", (80, 80), "wrong", "unordered pair"),
    ("02.2", (40, 20), "close", "rotating"),
    ("02.3", [45], "close", "second direction"),
    ("02.3", [0, 90], "wrong", "rotated by 45"),
    ("02.3", [45, 135, 90], "close", "not bridge directions"),
    ("02.4", 6.334e-5, "wrong", "1-D floor"),
    ("03.1", 400, "wrong", "already noised"),
    ("03.2", 285.9, "wrong", "curvature at a mode"),
    ("03.2", 19000, "close", "midpoint"),
    ("03.3", 75.0, "close", "solve for tau"),
    ("03.4", 5, "close", "smaller temperature"),
    ("03.4", 2, "wrong", "try larger"),
    ("04.1", 3201.0, "wrong", "ignores the noise"),
    ("04.2", 30, "wrong", "Gaussian probes"),
    ("04.3", 132, "wrong", "squared per iteration"),
    ("04.3", 65, "close", "smallest k"),
    ("05.1", 4.37e-4, "wrong", "weight"),
    ("05.2", 100, "close", "drops below 0.01"),
    ("05.2", 20, "wrong", "drops below 0.01"),
    ("05.3", 0.4431, "close", "normal approximation"),
    ("06.1", 4, "wrong", "exactly two"),
    ("06.2", 2_156_653, "close", "all-blank"),
    ("06.2", 162 * 100 * 130, "wrong", "also be blank"),
    ("06.3", 0.3, "wrong", "single-shape"),
    ("06.4", _duplicate_with_extra_blob, "close", "but also more"),
    ("06.4", _one_triangle, "wrong", "the validator sees valid"),
    ("06.4", np.zeros((32, 32), dtype=np.uint8), "wrong", "blank"),
    ("07.1", 91_390, "close", "4! orders"),
    ("07.1", 40**4, "wrong", "distinct"),
    ("07.2", 83_438, "wrong", "sort the four indices"),
    ("07.3", "4k3/8/8/8/8/8/8/4K3", "wrong", "both rules accept it"),
    ("07.3", "4k3/8/8/8/8/8/8/4KK2", "wrong", "too_many_kings"),
]


@pytest.mark.parametrize("ex_id, answer, status, phrase", JUDGED, ids=[f"{j[0]}-{j[2]}-{i}" for i, j in enumerate(JUDGED)])
def test_wrong_and_close_answers_get_a_hint(ex_id: str, answer, status: str, phrase: str,
                                            capsys: pytest.CaptureFixture) -> None:
    verdict = E.check(ex_id, answer() if callable(answer) else answer)
    assert (verdict.status, verdict.exercise) == (status, ex_id), verdict.message
    assert phrase in verdict.message and verdict.message.startswith(f"{ex_id} {status}: ")
    assert capsys.readouterr().out.strip() == verdict.message
    assert not verdict and repr(verdict) == f"Verdict({ex_id!r}, {status!r})"


def test_every_closed_exercise_rejects_a_far_off_answer() -> None:
    far = {"02.2": (1, 2), "02.3": [10.0], "06.4": np.full((32, 32), 255, np.uint8), "07.3": "8/8/8/8/8/8/8/8",
           "03.4": 30, "01.1": 0.9, "01.2": 0.9, "02.4": 0.9, "06.3": 0.99}
    for ex_id in closed_ids():
        verdict = E.check(ex_id, far.get(ex_id, 987654321), quiet=True)
        assert verdict.status in ("wrong", "close"), verdict.message
        assert len(verdict.message) > len(ex_id) + 20


NAN_IMAGE = np.full((32, 32), np.nan)
# (exercise, bad answer, a phrase of what is expected)
BAD = [
    ("01.3", "1.65", "expected a number, got str"),
    ("01.3", None, "no answer yet"),
    ("01.3", ..., "no answer yet"),
    ("01.3", True, "expected a number, got bool"),
    ("01.3", float("nan"), "finite number"),
    ("01.3", float("inf"), "finite number"),
    ("01.3", [1.6, 1.7], "expected a number, got list"),
    ("01.3", np.array([1.6, 1.7]), "give one value"),
    ("01.3", torch.tensor([1.6, 1.7]), "give one value"),
    ("01.3", {"x": 1}, "expected a number, got dict"),
    ("01.3", 1 + 2j, "expected a number, got complex"),
    ("01.1", 27.0, "percentage"),
    ("01.1", -0.1, "share in [0, 1]"),
    ("01.4", 10.5, "whole number"),
    ("01.4", "ten", "a step t"),
    ("02.2", 40, "two whole numbers"),
    ("02.2", (40, 40, 40), "two whole numbers"),
    ("02.2", "40, 40", "two whole numbers"),
    ("02.3", [], "non-empty"),
    ("02.3", [[45], [135]], "flat"),
    ("02.3", ["45"], "flat"),
    ("02.3", [45, float("nan")], "non-finite"),
    ("03.4", 4, "one of 1, 2, 3, 5, 10, 20, 30"),
    ("06.4", np.zeros((3, 32, 32), dtype=np.uint8), "32x32 image"),
    ("06.4", np.zeros((64, 64), dtype=np.uint8), "32x32 image"),
    ("06.4", [[0] * 32] * 32, "32x32 image"),
    ("06.4", NAN_IMAGE, "not finite"),
    ("06.4", np.full((32, 32), 300), "outside 0..255"),
    ("06.4", np.zeros((32, 32), dtype=object), "dtype object"),
    ("07.3", 42, "piece placement"),
    ("07.3", "", "piece placement"),
    ("07.3", "not a board", "is not one"),
    ("07.3", "9/8/8/8/8/8/8/8", "is not one"),
]


@pytest.mark.parametrize("ex_id, answer, phrase", BAD, ids=[f"{b[0]}-{i}" for i, b in enumerate(BAD)])
def test_bad_input_gets_a_hint_not_a_traceback(ex_id: str, answer, phrase: str, capsys: pytest.CaptureFixture) -> None:
    verdict = E.check(ex_id, answer)
    assert verdict.status == "invalid" and verdict.exercise == ex_id
    assert phrase in verdict.message, verdict.message
    assert capsys.readouterr().out.strip() == verdict.message


@pytest.mark.parametrize("ex_id", ["09.1", "1.3", "01.3 ", "", 1.3, None, ("01", 3)])
def test_unknown_exercise_ids_get_a_hint(ex_id) -> None:
    verdict = E.check(ex_id, 1.0, quiet=True)
    assert verdict.status == "invalid" and "unknown exercise" in verdict.message
    assert "'01.3'" in verdict.message and "01.1, 01.2" in verdict.message


def test_answers_of_other_numeric_types_are_accepted() -> None:
    from vsmlab.lab.exercises.toys import _posterior_mean_15

    truth = _posterior_mean_15()
    for answer in (truth, np.float32(truth), np.float64(truth), torch.tensor(truth), torch.tensor([truth]),
                   np.array([[truth]])):
        assert E.check("01.3", answer, quiet=True).right
    assert E.check("01.4", 10.0, quiet=True).right and E.check("01.4", np.int64(10), quiet=True).right
    assert E.check("02.2", np.array([40, 40]), quiet=True).right
    assert E.check("02.3", (135.0, -135.0), quiet=True).right  # angles modulo 180
    assert E.check("03.4", 3, quiet=True).right
    assert E.check("07.3", "4k3/8/8/8/8/8/8/4R1K1 b - - 0 1", quiet=True).right  # a whole FEN is cut to its placement


def test_image_answers_as_bool_tensor_or_batch_of_one() -> None:
    from vsmlab.data.shapes import template_bank

    bank = template_bank(32)
    mask = np.zeros((32, 32), dtype=bool)
    mask[:31, :10] = bank.masks[0][0] | bank.masks[0][-1]
    for answer in (mask, torch.from_numpy(mask), mask[None], (mask * 255.0)[None, None]):
        assert E.check("06.4", answer, quiet=True).right


def test_a_check_recomputes_the_truth_with_the_library() -> None:
    """The oracle behind 01.3 is the mixture's exact posterior mean (and Tweedie's formula agrees)."""
    import vsmlab

    mix, sched = vsmlab.evenly_spaced_1d(3, 1.0, 1.0, 0.05), vsmlab.linear(1000, 1e-3, 0.2)
    x, t = torch.tensor([[1.5]], dtype=torch.float64), torch.tensor([10])
    a = math.sqrt(float(sched.alpha_bar[10]))
    tweedie = float((x + (1 - a**2) * mix.score(x, t, sched)) / a)
    assert E.check("01.3", tweedie, quiet=True).right
    assert E.check("01.3", float(mix.posterior_mean(x, t, sched)), quiet=True).right
