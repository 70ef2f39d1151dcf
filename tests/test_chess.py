"""ChessImages: positions, rendering, square reading, legality rules, corruptions, released layout, CLI."""

from __future__ import annotations

import json

import chess
import numpy as np
import pytest
from conftest import cli
import torch
from PIL import Image

from vsmlab.data import chessboards as CB


def _render(fens: list[str], size: int = 256) -> torch.Tensor:
    boards = CB.render_boards(np.stack([CB.placement_to_classes(f) for f in fens]), CB.lab_tiles(size))
    return torch.from_numpy(np.ascontiguousarray(boards)).permute(0, 3, 1, 2).contiguous()


@pytest.fixture(scope="module")
def fens() -> list[str]:
    return CB.random_positions(500, seed=11)


def test_placement_round_trip_and_errors():
    start = chess.STARTING_BOARD_FEN
    grid = CB.placement_to_classes(chess.STARTING_FEN)
    assert grid[0, 4] == CB.SYMBOLS.index("k") and grid[7, 4] == CB.SYMBOLS.index("K") and grid[3].sum() == 0
    assert CB.classes_to_placement(grid) == start
    for bad, msg in (("8/8/8", "8 ranks"), ("p8/8/8/8/8/8/8/8", "covers 9"), ("x7/8/8/8/8/8/8/8", "unexpected character")):
        with pytest.raises(ValueError, match=msg):
            CB.placement_to_classes(bad)


def test_positions_are_legal_distinct_seeded_and_split(fens):
    assert len({f.split()[0] for f in fens}) == 500
    assert all(chess.Board(f).is_valid() for f in fens)
    assert {f.split()[1] for f in fens} == {"w", "b"}
    assert all(CB.in_split(f.split()[0], "train") for f in fens)
    test = CB.random_positions(50, seed=11, split="test")
    assert all(CB.in_split(f.split()[0], "test") and not CB.in_split(f.split()[0], "train") for f in test)
    assert CB.random_positions(20, seed=11) == fens[:20]
    assert CB.random_positions(20, seed=12) != fens[:20]
    pieces = [sum(c.isalpha() for c in f.split()[0]) for f in fens]
    assert min(pieces) < 20 and max(pieces) == 32  # varied game lengths


def test_board_geometry_and_colours():
    for size in CB.SIZES:
        empty = _render(["8/8/8/8/8/8/8/8"], size)[0].permute(1, 2, 0).numpy()
        q = size // 8
        assert tuple(empty[0, 0]) == CB.LIGHT and tuple(empty[size - 1, 0]) == CB.DARK  # a8 light, a1 dark
        assert tuple(empty[0, q]) == CB.DARK and tuple(empty[size - 1, size - 1]) == CB.LIGHT  # b8 dark, h1 light
        board = _render(["K7/8/8/8/8/8/8/7k"], size)[0].permute(1, 2, 0).numpy()
        assert (board[:q, :q] != empty[:q, :q]).any() and (board[:q, q : 2 * q] == empty[:q, q : 2 * q]).all()
    tiles = CB.lab_tiles(256)
    assert tiles.shape == (13, 2, 32, 32, 3)
    flat = tiles.reshape(26, -1).astype(np.int64)
    assert len({t.tobytes() for t in flat}) == 26  # every piece differs on both colours
    def piece_mean(symbol: str) -> float:  # mean grey level of the pixels the piece covers
        tile, empty = tiles[CB.SYMBOLS.index(symbol), 0].astype(float), tiles[0, 0].astype(float)
        return float(tile[(tile != empty).any(-1)].mean())

    assert piece_mean("K") > piece_mean("k") + 60  # white pieces white-filled, black pieces black


def test_real_boards_read_exactly_and_none_flagged(fens):
    verdict = CB.validate_chess(_render(fens))
    assert int(verdict.hallucinated.sum()) == 0
    assert verdict.placements == [f.split()[0] for f in fens]  # 100% exact piece placement
    small = CB.validate_chess(_render(fens[:100], 128))
    assert int(small.hallucinated.sum()) == 0 and small.placements == [f.split()[0] for f in fens[:100]]
    black_in_check = [f for f in fens if f.split()[1] == "b" and chess.Board(f).is_check()]
    flagged = {p for p, r in zip(verdict.placements, verdict.released_hallucinated.tolist()) if r}
    assert black_in_check and {f.split()[0] for f in black_in_check} == flagged  # released rule: exactly those


def test_rules_by_name():
    assert CB.judge_placement(chess.STARTING_BOARD_FEN) == CB.Judgement((), ())
    black_checked = CB.judge_placement("4k3/8/8/8/8/8/8/4R1K1")  # legal with black to move
    assert black_checked.rules == () and black_checked.released == ("opposite_check",)
    assert "too_many_kings" in CB.judge_placement("4k3/8/8/8/8/8/8/K3K3").rules
    assert CB.judge_placement("4k2P/8/8/8/8/8/8/4K3").rules == ("pawns_on_backrank",)
    assert set(CB.judge_placement("8/8/8/8/8/8/8/8").rules) >= {"no_white_king", "no_black_king"}
    assert "too_many_white_pawns" in CB.judge_placement("4k3/8/8/PPPPPPPP/P7/8/8/4K3").rules
    both_in_check = CB.judge_placement("4k3/8/8/8/8/8/5q2/4RK2")  # rook checks e8, queen checks f1
    assert both_in_check.rules == ("opposite_check",) and both_in_check.released == ("opposite_check",)
    assert CB.judge_placement("3k4/3Q4/8/8/8/8/8/3K4").rules == ()  # black in check, black to move: legal
    adjacent = CB.judge_placement("8/8/8/3kK3/8/8/8/8")  # kings side by side: illegal whoever moves
    assert adjacent.rules == ("opposite_check",)


def test_constructed_corruptions_are_caught(fens):
    gen = torch.Generator().manual_seed(0)
    expected = {"second_king": "too_many_kings", "backrank_pawn": "pawns_on_backrank", "blurred_square": "unreadable_square"}
    for kind, rule in expected.items():
        images, placements = CB.corrupt_chess(fens[:60], kind, gen)
        verdict = CB.validate_chess(images)
        assert all(rule in c for c in verdict.categories), kind
        if kind != "blurred_square":
            assert verdict.placements == placements and bool(verdict.readable.all())
        else:  # exactly one square per board is unreadable, and it is the blurred (occupied) one
            assert verdict.readable.flatten(1).sum(1).tolist() == [63] * 60
            for classes, readable in zip(map(CB.placement_to_classes, placements), verdict.readable):
                assert classes[~readable.numpy()].item() != 0
            assert torch.equal(verdict.max_rmse, verdict.square_rmse.flatten(1).amax(1))
            assert bool((verdict.max_rmse > CB.MAX_RMSE).all())
    noisy = (_render(fens[:60]).float() + 5 * torch.randn(60, 3, 256, 256, generator=gen)).round().clamp(0, 255)
    verdict = CB.validate_chess(noisy.to(torch.uint8))  # a faithful board with 2% pixel noise still passes
    assert int(verdict.hallucinated.sum()) == 0 and verdict.placements == [f.split()[0] for f in fens[:60]]


def test_colour_calibration_undoes_a_palette_drift_and_keeps_semantic_errors(fens):
    images = _render(fens[:80], 128)
    calibrated, ab = CB.calibrate_colours(images)
    assert torch.equal(calibrated, images)  # a faithful board is left exactly as it is
    assert torch.allclose(ab[..., 0], torch.ones(80, 3, dtype=torch.float64)) and float(ab[..., 1].abs().max()) < 1e-6
    gen = torch.Generator().manual_seed(3)
    gain = 0.5 + 0.5 * torch.rand(80, 3, 1, 1, generator=gen)  # contrast loss and a tint per channel, in range
    offset = 255 * (1 - gain) * torch.rand(80, 3, 1, 1, generator=gen)
    drifted = (images * gain + offset).round().clamp(0, 255).to(torch.uint8)
    assert int(CB.validate_chess(drifted).hallucinated.sum()) >= 60  # the strict reader rejects the palette
    calibrated, ab = CB.calibrate_colours(drifted)
    verdict = CB.validate_chess(calibrated)
    assert int(verdict.hallucinated.sum()) == 0 and verdict.placements == [f.split()[0] for f in fens[:80]]
    assert float((ab[..., 0] - gain.view(80, 3).double()).abs().max()) < 0.02
    kings, placements = CB.corrupt_chess(fens[:40], "second_king", gen, 128)  # a semantic error survives calibration
    kings = (kings * gain[:40] + offset[:40]).round().clamp(0, 255).to(torch.uint8)
    verdict = CB.validate_chess(CB.calibrate_colours(kings)[0])
    assert verdict.placements == placements and all("too_many_kings" in c for c in verdict.categories)
    with pytest.raises(ValueError, match="iterations: expected an int >= 1"):
        CB.calibrate_colours(images, iterations=0)
    with pytest.raises(TypeError, match="uint8 RGB boards"):
        CB.calibrate_colours(images.float())


def test_templates_from_boards_recover_the_tiles(fens):
    images = _render(fens[:40])
    tpl = CB.templates_from_boards(images, fens[:40])
    assert np.array_equal(tpl.tiles, CB.lab_tiles(256)) and tpl.source == "boards"
    few = CB.templates_from_boards(images[:1], fens[:1])
    assert few.missing  # one board cannot show every piece on both colours
    # another artwork: the tiles with inverted colours, read through templates learned from it
    art = 255 - images
    verdict = CB.validate_chess(art, CB.templates_from_boards(art, fens[:40]))
    assert verdict.placements == [f.split()[0] for f in fens[:40]]


def test_released_layout_loader_and_errors(tmp_path):
    CB.write_chess(tmp_path, 12, seed=1)
    CB.write_chess(tmp_path, 5, seed=1, split="test")
    folder = CB.find_chess_folder(tmp_path)
    assert folder.layout == "released" and len(folder.files) == 17 and folder.size == 256
    table = json.loads((tmp_path / "train_fen.json").read_text())
    assert len(table) == 12 and all(chess.Board(f).is_valid() for f in table.values())
    report = CB.validate_chess_folder(tmp_path)
    assert int(report.hallucinated.sum()) == 0 and report.fen_checked == report.fen_exact == 17
    with pytest.raises(FileExistsError, match="train_fen.json"):
        CB.write_chess(tmp_path, 3)
    assert json.loads((tmp_path / "train_fen.json").read_text()) == table  # nothing overwritten

    missing = sorted(table)[0]
    (tmp_path / "train_images" / f"{missing}.png").rename(tmp_path / f"{missing}.bak")
    with pytest.raises(ValueError, match=rf"train_fen.json: names '{missing}' but .*{missing}.png is missing"):
        CB.find_chess_folder(tmp_path)
    (tmp_path / f"{missing}.bak").rename(tmp_path / "train_images" / f"{missing}.png")
    Image.new("RGB", (256, 256)).save(tmp_path / "train_images" / "stray.png")
    with pytest.raises(ValueError, match=r"stray.png: no entry in .*train_fen.json"):
        CB.find_chess_folder(tmp_path)
    Image.new("RGB", (200, 200)).save(tmp_path / "train_images" / "stray.png")
    table["stray"] = chess.STARTING_FEN
    (tmp_path / "train_fen.json").write_text(json.dumps(table))
    with pytest.raises(ValueError, match=r"stray.png: board is 200x200, expected 256x256"):
        CB.find_chess_folder(tmp_path)
    (tmp_path / "test_fen.json").unlink()
    with pytest.raises(ValueError, match="found test_images/ but no test_fen.json; expected both"):
        CB.find_chess_folder(tmp_path)
    (tmp_path / "train_images" / "stray.png").unlink()
    samples = CB.find_chess_folder(tmp_path / "train_images")  # a plain folder of samples
    assert samples.layout == "samples" and len(samples.files) == 12 and samples.fens is None
    (tmp_path / "nothing_here").mkdir()
    with pytest.raises(ValueError, match="expected the released layout"):
        CB.find_chess_folder(tmp_path / "nothing_here")





def test_cli_handlers_count_every_rule(tmp_path, capsys):
    out = tmp_path / "boards"
    assert cli("data", "chess", "--n", "8", "--size", "128", "--out", str(out)) == 0
    capsys.readouterr()
    # corrupt one board: two extra white kings on a8 and h8 cells that are empty or not: rules counted once each
    path = sorted((out / "train_images").glob("*.png"))[0]
    fen = json.loads((out / "train_fen.json").read_text())[path.stem]
    grid = CB.placement_to_classes(fen)
    grid[0, 0], grid[0, 7] = CB.SYMBOLS.index("K"), CB.SYMBOLS.index("P")
    Image.fromarray(CB.render_boards(grid[None], CB.lab_tiles(128))[0]).save(path)
    assert cli("validate", "chess", str(out), "--json", "--templates", "lab") == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["n"] == 8 and summary["count"] == 1 and summary["fen_exact"] == 7
    assert summary["categories"]["too_many_kings"] == 1 and summary["categories"]["pawns_on_backrank"] == 1
    assert summary["low"] < 1 / 8 < summary["high"] and summary["rate"] == 1 / 8
    assert cli("validate", "chess", str(tmp_path)) == 2
    assert "expected the released layout" in capsys.readouterr().err
