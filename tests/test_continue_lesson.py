"""An appendix continues its lesson: vsmlab.lab.notebook.continue_lesson re-runs the lesson's code quietly into the
appendix's namespace, keeps the appendix's parameters and gives it its own figure saver; jobs.call_many keeps order."""

from __future__ import annotations

import json

import pytest

from vsmlab.lab.jobs import call_many
from vsmlab.lab.notebook import continue_lesson, lesson_source

LESSON = '''# %% [markdown]
# # 99 · a lesson

# %% tags=["parameters"]
profile = "default"
seed = 0
figures_dir = ""
extra = "lesson value"

# %%
import matplotlib.pyplot as plt

from vsmlab.lab.notebook import start

cfg, saver = start("99_lesson", profile, seed, figures_dir, {"smoke": {"n": 3}, "default": {"n": 30}})
print("PRINTED BY THE LESSON")
fig, ax = plt.subplots()
ax.plot([0, 1], [cfg["n"], 0])
_ = saver.save(fig, "lesson_figure")

# %% [markdown]
# ## Some words

# %%
def total() -> int:
    return cfg["n"] + seed


values = [total()]
'''


@pytest.fixture
def lesson_dir(tmp_path, monkeypatch):
    (tmp_path / "99_lesson.py").write_text(LESSON)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("VSMLAB_FIGURES_ROOT", str(tmp_path / "figures"))
    for var in ("VSMLAB_FIGURES_STAGING", "VSMLAB_FIGURES_TARGET", "VSMLAB_PUBLISH"):
        monkeypatch.delenv(var, raising=False)
    return tmp_path


def test_the_appendix_gets_the_lesson_state_with_its_own_parameters(lesson_dir, capsys):
    figures = lesson_dir / "appendix-figures"
    ns = {"profile": "smoke", "seed": 4, "figures_dir": str(figures), "extra": "appendix value"}
    continue_lesson(ns, "99_lesson")
    out = capsys.readouterr().out
    assert "PRINTED BY THE LESSON" not in out  # the lesson runs quietly
    assert "continued from the lesson 99_lesson" in out and str(figures) in out
    assert ns["cfg"] == {"n": 3} and ns["values"] == [7] and ns["total"]() == 7  # smoke profile, seed 4
    assert ns["profile"] == "smoke" and ns["seed"] == 4 and ns["figures_dir"] == str(figures)
    assert ns["extra"] == "appendix value"  # every parameter the appendix sets wins over the lesson's default
    assert not (lesson_dir / "figures").exists()  # the lesson's figure went to a discarded folder
    saver = ns["saver"]
    assert saver.notebook == "99_lesson_appendix" and saver.profile == "smoke" and saver.seed == 4
    import matplotlib.pyplot as plt

    fig, _ = plt.subplots()
    saver.save(fig, "appendix_figure")
    assert (figures / "appendix_figure.png").is_file()
    assert "99_lesson_appendix/appendix_figure.png" in json.loads((figures / "manifest.json").read_text())


def test_a_failing_lesson_cell_is_named(lesson_dir):
    (lesson_dir / "99_lesson.py").write_text(LESSON.replace("values = [total()]", "values = [total() / 0]"))
    with pytest.raises(RuntimeError, match=r"the lesson 99_lesson failed in its cell 5 \(ZeroDivisionError"):
        continue_lesson({"profile": "smoke", "seed": 0, "figures_dir": str(lesson_dir / "f")}, "99_lesson")


def test_bad_arguments_name_themselves(lesson_dir):
    with pytest.raises(ValueError, match="lesson: expected a notebook stem"):
        lesson_source("../etc/passwd")
    with pytest.raises(ValueError, match="lesson: no source 98_missing.py"):
        lesson_source("98_missing")
    with pytest.raises(ValueError, match="profile: expected one of"):
        continue_lesson({"profile": "huge", "seed": 0}, "99_lesson")


def test_call_many_keeps_the_input_order():
    calls = [((x,), {"base": 16}) for x in ("1", "ff", "7")]
    assert call_many(int, calls, workers=1) == [1, 255, 7]
    assert call_many(int, calls, workers=2) == [1, 255, 7]  # worker processes, same order
    with pytest.raises(ValueError, match="workers"):
        call_many(int, calls, workers=-1)
