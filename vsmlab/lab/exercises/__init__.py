"""Exercises that check themselves: each notebook ends with a few, from easy to open-ended.

    from vsmlab.lab.exercises import check, describe
    describe("01.3")             # prints the question and the kind of answer expected
    check("01.3", 1.65)          # prints and returns a Verdict: right, close or wrong, with a hint

**How a closed exercise is checked.** At check time the checker computes the true answer with the library
(the exact Gaussian-mixture oracle of :mod:`vsmlab.data.mixtures` where there is one: its score, score
Jacobian and posterior mean at every t; the schedule tables; the validators) and compares::

    right   |answer - truth| <= tol_right  (relative or absolute, per exercise)
    close   |answer - truth| <= tol_close  (a looser tolerance; the hint says what to refine)
    wrong   otherwise, with a hint that teaches; common mistakes get a hint of their own

Construction exercises (an image, a chess position) are judged by the library's validator instead.
A check runs in milliseconds to seconds on 2 cores; nothing is trained inside a check.

**Statuses** of a :class:`Verdict`: ``right``, ``close``, ``wrong``; ``invalid`` for an answer of the wrong
kind (wrong type or shape, NaN, an unknown exercise): the message says what is expected, and no exception
reaches the notebook; ``open`` for open-ended exercises, which have no check (:func:`describe` says what
to explore).

The exercises live by notebook in :mod:`~vsmlab.lab.exercises.toys` (01-03),
:mod:`~vsmlab.lab.exercises.methods` (04-05) and :mod:`~vsmlab.lab.exercises.images` (06-07); the kinds of
answer and the grading rules in :mod:`~vsmlab.lab.exercises.answers`. Worked solutions are in
``notebooks/solutions/NN_solutions.py``: try first.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from typing import Any

from vsmlab.lab.exercises import images, methods, toys
from vsmlab.lab.exercises.answers import BadAnswer, Exercise, kind_of

__all__ = ["STATUSES", "Verdict", "Exercise", "check", "describe", "exercises", "EXERCISES"]

STATUSES: tuple[str, ...] = ("right", "close", "wrong", "invalid", "open")


@dataclass(frozen=True)
class Verdict:
    """The outcome of :func:`check`: ``status`` (one of :data:`STATUSES`) and the ``message`` printed."""

    exercise: str
    status: str
    message: str

    @property
    def right(self) -> bool:
        return self.status == "right"

    def __bool__(self) -> bool:
        return self.right

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return f"Verdict({self.exercise!r}, {self.status!r})"



_ALL: tuple[Exercise, ...] = toys.EXERCISES + methods.EXERCISES + images.EXERCISES
EXERCISES: dict[str, Exercise] = {e.id: e for e in _ALL}


def _unknown(exercise_id: Any) -> str:
    ids = sorted(EXERCISES)
    return (f"unknown exercise {exercise_id!r}: expected an id such as '01.3' (a notebook number, a dot, the "
            f"exercise number); the exercises are {', '.join(ids)}")


def exercises(notebook: str | None = None) -> list[Exercise]:
    """The exercises of ``notebook`` ("01" or the stem "01_mode_interpolation_1d"), or all, in order."""
    if notebook is None:
        return list(_ALL)
    prefix = str(notebook).split("_", 1)[0]
    found = [e for e in _ALL if e.notebook == prefix]
    if not found:
        have = sorted({e.notebook for e in _ALL})
        raise ValueError(f"notebook: expected one of {', '.join(have)} (or a notebook stem), got {notebook!r}")
    return found


def describe(exercise_id: str) -> str:
    """Print and return the exercise's question, the kind of answer expected and how to check it."""
    ex = EXERCISES.get(exercise_id) if isinstance(exercise_id, str) else None
    if ex is None:
        text = _unknown(exercise_id)
    else:
        body = textwrap.fill(ex.question, 100)
        how = (f"Answer: {ex.expects}. Check it with check({ex.id!r}, answer)." if ex.closed
               else "Open-ended: there is no single right answer and no check; explore and write down what you find.")
        text = f"{ex.id} · {ex.title} ({ex.level})\n{body}\n{how}"
    print(text)
    return text


def _judge(exercise_id: Any, answer: Any) -> Verdict:
    ex = EXERCISES.get(exercise_id) if isinstance(exercise_id, str) else None
    if ex is None:
        return Verdict(str(exercise_id), "invalid", _unknown(exercise_id))
    if not ex.closed:
        return Verdict(ex.id, "open", f"{ex.id} is open-ended: there is no check. describe({ex.id!r}) says what to explore.")
    if answer is None or answer is Ellipsis:
        return Verdict(ex.id, "invalid", f"{ex.id}: no answer yet. Expected {ex.expects}; describe({ex.id!r}) shows the question.")
    try:
        value = ex.parse(answer)
    except BadAnswer as exc:
        return Verdict(ex.id, "invalid", f"{ex.id}: {exc}")
    except Exception as exc:  # an answer no parser foresaw: say what is expected, never raise into the notebook
        return Verdict(ex.id, "invalid", f"{ex.id}: expected {ex.expects}, got {kind_of(answer)} ({type(exc).__name__}: {exc})")
    try:
        status, detail = ex.grade(value)
    except Exception as exc:  # the library refused this value: report it as the answer's problem
        return Verdict(ex.id, "invalid", f"{ex.id}: could not judge {kind_of(answer)} ({type(exc).__name__}: {exc}); "
                                         f"expected {ex.expects}")
    return Verdict(ex.id, status, f"{ex.id} {status}: {detail}")


def check(exercise_id: str, answer: Any, quiet: bool = False) -> Verdict:
    """Judge ``answer`` to exercise ``exercise_id``; print the verdict (unless ``quiet``) and return it.

    Never raises for a bad answer or id: those give status "invalid" with a message saying what is
    expected. See the module docstring for how answers are compared.
    """
    verdict = _judge(exercise_id, answer)
    if not quiet:
        print(verdict.message)
    return verdict
