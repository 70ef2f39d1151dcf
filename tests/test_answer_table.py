"""The README's answer table is what the executed notebooks print.

Each row names the notebook that prints it (last column: "05 · The answer", "06 full · 5b", ...). Every number in
the row must appear in that executed notebook's outputs, and the "25% cut excluded?" cell must be the verdict
that :func:`vsmlab.analysis.answer.reduction_verdict` gives for the row's own numbers.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from conftest import outputs_text

from vsmlab.analysis.answer import HEADER, reduction_verdict

ROOT = Path(__file__).resolve().parents[1]
NUMBER = re.compile(r"[+-]?\d[\d,]*(?:\.\d+)?%?")


def answer_rows() -> list[list[str]]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## The answer", 1)[1].split("\n## ", 1)[0]
    lines = [ln for ln in section.splitlines() if ln.startswith("|")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    assert header == HEADER, f"README answer table header {header} != vsmlab.analysis.answer.HEADER"
    return [[c.strip() for c in ln.strip("|").split("|")] for ln in lines[2:]]


def executed(printed_by: str) -> Path:
    nn = printed_by.split()[0]  # "05 · The answer" (the lesson), "05 appendix · The answer", "06 full · 5"
    suffix = "_appendix" if " appendix" in printed_by else ""
    stems = sorted(p.stem for p in (ROOT / "notebooks").glob(f"{nn}_*.py") if p.stem.endswith("_appendix") == bool(suffix))
    assert len(stems) == 1, f"'printed by' {printed_by!r}: no single notebook {nn}_*{suffix}"
    if " full" in printed_by:
        return ROOT / "figures" / "full" / stems[0] / f"{stems[0]}.ipynb"
    return ROOT / "notebooks" / f"{stems[0]}.ipynb"


ROWS = answer_rows()


def test_the_table_has_a_row_per_benchmark():
    names = [r[0] for r in ROWS]
    assert len(names) == 6, names
    for key in ("05 toy 1D", "05 toy 2D", "06 SimpleShapes 32 px", "06 SimpleShapes 64 px", "07 Cards", "07 chess"):
        assert any(n.startswith(key) for n in names), (key, names)


@pytest.mark.parametrize("row", ROWS, ids=[r[0] for r in ROWS])
def test_every_number_of_a_row_is_printed_by_its_notebook(row):
    path = executed(row[-1])
    assert path.is_file(), f"{row[0]}: the executed notebook {path} is missing"
    printed = outputs_text(json.loads(path.read_text()))
    missing = [tok for cell in row[1:-1] for tok in NUMBER.findall(cell) if tok not in printed]
    assert not missing, f"{row[0]}: {missing} are not in the outputs of {path.relative_to(ROOT)}"


@pytest.mark.parametrize("row", ROWS, ids=[r[0] for r in ROWS])
def test_the_verdict_follows_from_the_row(row):
    rate = float(row[1].rstrip("%")) / 100
    est, low, high = (float(x) / 100 for x in re.findall(r"[+-]\d+(?:\.\d+)?", row[2])[:3])
    assert low <= est <= high
    assert row[5] == reduction_verdict(low, high, rate), row
