"""Every notebook teaches: it opens with what you will learn, ends with key takeaways and exercises, and each
number a takeaway quotes is printed by the executed notebook; every exercise check cell ran and answered."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jupytext
import pytest
from conftest import outputs_text

ROOT = Path(__file__).resolve().parents[1]
STEMS = sorted(p.stem for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.py"))
HEADINGS = ("## What you will learn", "## Key takeaways", "## Exercises")
# a quoted number: has a decimal point or a percent sign, or at least three digits (years of small counts such as
# "2 seeds" or "3 modes" are not checked: they are set by the notebook's own parameters)
NUMBER = re.compile(r"(?<![\w.])[+-]?\d[\d,]*(?:\.\d+)?%?")


def quoted(text: str) -> list[str]:
    return [t.rstrip(",") for t in NUMBER.findall(text) if "." in t or "%" in t or len(t.strip("+-").replace(",", "")) >= 3]


def section(cells: list[dict], heading: str) -> str:
    """The markdown of ``heading``'s cell and the markdown cells after it up to the next '## ' heading."""
    out, inside = [], False
    for cell in cells:
        src = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        if cell["cell_type"] == "markdown" and src.lstrip().startswith("## "):
            if inside:
                break
            inside = src.lstrip().startswith(heading)
        if inside and cell["cell_type"] == "markdown":
            out.append(src)
    return "\n".join(out)


@pytest.mark.parametrize("stem", STEMS)
def test_headings_in_order(stem):
    cells = jupytext.read(ROOT / "notebooks" / f"{stem}.py").cells
    md = [c.source.lstrip() for c in cells if c.cell_type == "markdown"]
    where = {h: next((i for i, s in enumerate(md) if s.startswith(h)), None) for h in HEADINGS}
    assert all(v is not None for v in where.values()), f"{stem}: missing {[h for h, v in where.items() if v is None]}"
    assert where[HEADINGS[0]] <= 1, f"{stem}: 'What you will learn' must come right after the title"
    assert where[HEADINGS[0]] < where[HEADINGS[1]] < where[HEADINGS[2]], stem
    learn = md[where[HEADINGS[0]]]
    bullets = [ln for ln in learn.splitlines() if ln.startswith("- ")]
    assert 3 <= len(bullets) <= 5, f"{stem}: 'What you will learn' has {len(bullets)} bullets"
    for word in ("question", "Prerequisites", "cold"):
        assert word in learn, f"{stem}: 'What you will learn' does not state its {word}"
    takeaways = [ln for ln in md[where[HEADINGS[1]]].splitlines() if ln.startswith("- ")]
    assert 3 <= len(takeaways) <= 6, f"{stem}: {len(takeaways)} takeaways"
    checks = [c for c in cells if c.cell_type == "code" and re.search(r"\bcheck\(\"\d\d\.\d\"", c.source)]
    if stem.endswith("_appendix"):  # the closed exercises are in the lesson; an appendix ends with an open one
        assert any(re.search(r"\bdescribe\(\"\d\d\.\d\"", c.source) for c in cells if c.cell_type == "code"), stem
    else:
        assert 2 <= len(checks), f"{stem}: fewer than two exercise check cells"


@pytest.mark.parametrize("stem", STEMS)
def test_takeaway_numbers_are_printed_and_check_cells_ran(stem):
    nb = json.loads((ROOT / "notebooks" / f"{stem}.ipynb").read_text())
    printed = outputs_text(nb)
    text = section(nb["cells"], HEADINGS[1])
    assert text, f"{stem}: the executed notebook has no '{HEADINGS[1]}' (re-run it)"
    missing = [t for t in quoted(text) if t not in printed]
    assert not missing, f"{stem}: takeaways quote {missing}, which no output of the executed notebook prints"
    for cell in nb["cells"]:
        src = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        if cell["cell_type"] == "code" and re.search(r"\bcheck\(\"\d\d\.\d\"", src):
            outs = cell.get("outputs", [])
            assert outs and not any(o.get("output_type") == "error" for o in outs), f"{stem}: check cell did not answer"
            assert re.search(r"\b(right|close|wrong|invalid|open)\b", outputs_text({"cells": [cell]})), src


def test_readme_reads_in_five_minutes():
    """The README before its reference links (what a newcomer reads) stays within about 1,500 words, opens with the
    answer, says where to start, and lists every notebook in its course table."""
    text = (ROOT / "README.md").read_text()
    head = text.split("\n## Reference", 1)[0]
    assert len(head.split()) <= 1500, f"README is {len(head.split())} words before '## Reference' (limit 1,500)"
    sections = [ln for ln in head.splitlines() if ln.startswith("## ")]
    assert sections[:3] == ["## The answer", "## Start here", "## The course"], sections
    course = head.split("## The course", 1)[1]
    assert all(f"`{stem}`" in course for stem in STEMS), "every notebook has a row in the course table"
    assert "jupyter lab notebooks/01_" in head


def _code_lines(text: str) -> int:
    """Lines of code cells (blank lines included) in a percent-format notebook text."""
    n, code = 0, False
    for line in text.splitlines():
        if line.startswith("# %%"):
            code = "[markdown]" not in line
        elif code:
            n += 1
    return n


@pytest.mark.parametrize("stem", ["05_vsm_and_mitigations", "06_shapes_vsm", "07_semantic_benchmarks"])
def test_long_notebooks_are_a_lesson_then_an_appendix(stem):
    """The lesson (question -> main result -> takeaways -> exercises) stays short and is part of the main job; its
    appendix is a notebook of its own that continues from it with one library call; profiles and files are the
    library's business, not the notebook's."""
    from vsmlab.lab.runner import _resolve, is_appendix, list_notebooks

    lesson = (ROOT / "notebooks" / f"{stem}.py").read_text()
    appendix = (ROOT / "notebooks" / f"{stem}_appendix.py").read_text()
    assert "\n# # Appendix" not in lesson, f"{stem}: the appendix is its own notebook"
    if stem != "05_vsm_and_mitigations":  # the image lessons: at most 400 lines of code
        assert _code_lines(lesson) <= 400, f"{stem}: the lesson has {_code_lines(lesson)} lines of code (at most 400)"
    assert f'continue_lesson(globals(), "{stem}")' in appendix
    for text in (lesson, appendix):
        assert "profile ==" not in text and "profile !=" not in text, f"{stem}: a profile branch in the notebook"
    stems = list_notebooks()
    assert stem in _resolve(None, stems) and f"{stem}_appendix" not in _resolve(None, stems)  # the main job
    assert _resolve(None, stems, appendices=True) == [s for s in stems if is_appendix(s)]
    assert _resolve([stem], stems) == [stem]  # an exact stem names one notebook
    assert _resolve([stem[:2]], stems) == [stem, f"{stem}_appendix"]  # a number names the lesson and its appendix


@pytest.mark.parametrize("stem", STEMS)
def test_no_cell_echoes_a_return_value_above_its_figure(stem):
    """A cell that ends with ``saver.save(...)`` would print "PosixPath('figures/...')" above the figure: every
    published notebook assigns the returned path instead (``_ = saver.save(...)``)."""
    nb = json.loads((ROOT / "notebooks" / f"{stem}.ipynb").read_text(encoding="utf-8"))
    echoes = [c["execution_count"] for c in nb["cells"] if c["cell_type"] == "code" for o in c.get("outputs", [])
              if o.get("output_type") == "execute_result"
              and re.match(r"(Posix|Windows)?Path\(", "".join(o.get("data", {}).get("text/plain", "")))]
    assert not echoes, f"{stem}: cells {echoes} echo a path; end them with `_ = saver.save(...)`"
