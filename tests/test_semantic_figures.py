"""Notebook 07's figures (vsmlab.lab.semantic_figures) draw what they are given: one panel per rule and sample, red
boxes on the offending quadrants and unreadable squares, one line per model; and the chess summaries that go with
them (vsmlab.lab.semantic_study) count squares and pieces as the verdict says."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib import pyplot as plt  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

from vsmlab.data import cards as C  # noqa: E402
from vsmlab.data import chessboards as CB  # noqa: E402
from vsmlab.lab import semantic_figures as F  # noqa: E402
from vsmlab.lab.semantic_study import LABELS, COLOURS, chess_readings, chess_report, pieces_read, readable_share  # noqa: E402


def test_show_grid_puts_images_side_by_side() -> None:
    fig, ax = plt.subplots()
    F.show_grid(ax, torch.zeros(3, 1, 8, 8, dtype=torch.uint8), "t")
    assert ax.images[0].get_array().shape == (12, 36) and ax.get_title() == "t"
    plt.close(fig)


def test_cards_rule_gallery_boxes_the_offending_quadrants(capsys) -> None:
    images, cards = C.make_cards(4, 0, False, "train", 64)
    bad = C.corrupt_cards(images, cards, "blank", torch.Generator().manual_seed(0))  # one blank quadrant each
    v = C.validate_cards(bad)
    fig = F.cards_rule_gallery({"rho0": bad}, {"rho0": v}, ["rho0"], C.CATEGORIES, C.lab_templates(32, False), LABELS)
    rows = [r for r in C.CATEGORIES if any(r in c for c in v.categories)]
    assert len(fig.axes) == 6 * len(rows)
    boxes = [p for ax in fig.axes for p in ax.patches if isinstance(p, Rectangle)]
    assert len(boxes) >= 4 and all(p.get_edgecolor()[:3] == (1.0, 0.0, 0.0) for p in boxes)
    assert "blank_quadrant: learned var, rho=0 4 of 4; shown:" in capsys.readouterr().out
    plt.close(fig)
    good = C.validate_cards(images)
    assert F.cards_rule_gallery({"rho0": images}, {"rho0": good}, ["rho0"], C.CATEGORIES, C.lab_templates(32, False),
                                LABELS) is None


def test_chess_summaries_and_boards_figure(capsys) -> None:
    fens = CB.random_positions(2, 0, "train")
    classes = np.stack([CB.placement_to_classes(f) for f in fens])
    boards = torch.from_numpy(CB.render_boards(classes, CB.lab_tiles(128))).permute(0, 3, 1, 2).contiguous()
    boards[1, :, :16, :16] = 128  # square a8 of board 1 becomes unreadable
    readings, calibrated, gain_offset = chess_readings(boards)
    v = readings["strict"]
    assert readable_share(v).tolist() == pytest.approx([1.0, 63 / 64])
    assert pieces_read(v)[0] == sum(ch.isalpha() for ch in fens[0].split()[0])
    assert calibrated.shape == boards.shape and gain_offset.shape == (2, 3, 2)
    row = chess_report(LABELS["vsm"], "vsm", "strict", v, 10, 20.0)
    assert row["n"] == 2 and row["all_readable"] == 1 and row["hallucinated"] == 1 and row["step"] == 10
    assert "squares readable per board" in capsys.readouterr().out
    fig = F.chess_boards_figure({"vsm": (boards, readings, calibrated)}, LABELS, n_show=2)
    boxes = [p for ax in fig.axes for p in ax.patches if isinstance(p, Rectangle)]
    assert len(fig.axes) == 4 and len(boxes) == 2  # the one unreadable square, in the strict and the calibrated row
    plt.close(fig)


def test_line_figures_draw_one_line_per_model() -> None:
    logs = {"fixed": [dict(step=1, mse=0.5, vb=0.0), dict(step=2, mse=0.4, vb=0.0)],
            "vsm": [dict(step=1, mse=0.6, vb=0.2), dict(step=2, mse=0.3, vb=0.1)]}
    fig = F.training_curves(logs, LABELS, COLOURS)
    assert len(fig.axes[0].lines) == 2 and len(fig.axes[1].lines) == 1  # no VB curve for the fixed variance
    plt.close(fig)
    rows = [dict(method=m, t=t, frac=0.1, sigma_over_beta_tilde=1.0) for m in ("rho0", "vsm") for t in (0, 10, 100)]
    fig = F.variance_figure(rows, ["rho0", "vsm"], LABELS, COLOURS)
    assert [len(line.get_xdata()) for line in fig.axes[0].lines] == [2, 2]  # t = 0 left out of the log axis
    plt.close(fig)
    sweep = {"rho0": [dict(step=1000, hallucinated=50, n=100, median_quadrant_ncc=0.9),
                      dict(step=6000, hallucinated=40, n=100, median_quadrant_ncc=0.95)]}
    fig = F.step_sweep_figure(sweep, 0.99, LABELS, COLOURS)
    assert fig.axes[1].lines[-1].get_ydata()[0] == 0.99  # the threshold line
    plt.close(fig)
