"""Cards: faces, C(40,4) sets and split, grids, NCC validator, corruptions/ROC, folders, CLI handlers."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest
from conftest import cli
import torch
from PIL import Image

from vsmlab.data import cards as C


def test_faces_are_forty_distinct_cards_even_in_grayscale():
    for face, rgb in ((64, False), (32, False), (64, True)):
        t = C.lab_templates(face, rgb)
        assert t.faces.shape == (40, 3 if rgb else 1, face, face)
        x = t.faces.float().flatten(1)
        x = (x - x.mean(1, keepdim=True)) / (x - x.mean(1, keepdim=True)).norm(dim=1, keepdim=True)
        ncc = x @ x.T
        assert torch.allclose(ncc.diagonal(), torch.ones(40), atol=1e-4)
        assert float((ncc - 2 * torch.eye(40)).max()) < 0.99  # no two faces (e.g. 2C / 2S) are the same picture
    rgb = C.lab_faces(64, True)
    hearts, clubs = rgb[C.CARD_CODES.index("5H")], rgb[C.CARD_CODES.index("5C")]
    assert (hearts[..., 0].astype(int) - hearts[..., 1]).max() > 150  # red ink
    assert (np.abs(clubs[..., 0].astype(int) - clubs[..., 1])).max() < 30  # black ink


def test_unranking_is_a_bijection_onto_the_sets_of_four():
    sets = C.unrank_sets(torch.arange(C.N_SETS))
    assert C.N_SETS == 91390 == math.comb(40, 4)
    assert bool((sets[:, 1:] > sets[:, :-1]).all()) and int(sets.min()) == 0 and int(sets.max()) == 39
    assert len({tuple(s) for s in sets.tolist()}) == C.N_SETS
    assert torch.equal(C.rank_sets(sets), torch.arange(C.N_SETS))
    # colex order by hand: the first sets are {0,1,2,3}, {0,1,2,4}, {0,1,3,4}, {0,2,3,4}, {1,2,3,4}, {0,1,2,5}
    first = [tuple(c) for c in itertools.combinations(range(6), 4)]
    first.sort(key=lambda c: c[::-1])
    assert [tuple(s) for s in sets[:6].tolist()] == first[:6]
    with pytest.raises(ValueError, match="ranks"):
        C.unrank_sets(torch.tensor([C.N_SETS]))


def test_split_is_seeded_disjoint_and_complete():
    train, test = C.split_ranks("train", 0), C.split_ranks("test", 0)
    assert test.numel() == round(0.1 * C.N_SETS) and train.numel() + test.numel() == C.N_SETS
    assert torch.equal(torch.sort(torch.cat([train, test])).values, torch.arange(C.N_SETS))
    assert not torch.equal(C.split_ranks("test", 1), test)
    with pytest.raises(ValueError, match="split"):
        C.split_ranks("val")


def test_grids_tile_the_faces_in_quadrant_order():
    for size, rgb in ((128, False), (64, True)):
        images, cards = C.make_cards(64, seed=3, rgb=rgb, split="test", size=size)
        assert images.shape == (64, 3 if rgb else 1, size, size) and images.dtype == torch.uint8
        h = size // 2
        faces = torch.from_numpy(np.array(C.lab_faces(h, rgb))).permute(0, 3, 1, 2)
        for q, (r, c) in enumerate(((0, 0), (0, 1), (1, 0), (1, 1))):
            assert torch.equal(images[:, :, r * h : (r + 1) * h, c * h : (c + 1) * h], faces[cards[:, q]])
        assert all(len(set(row)) == 4 for row in cards.tolist())
        test_ranks = set(C.split_ranks("test").tolist())
        assert set(C.rank_sets(cards).tolist()) <= test_ranks and len(set(C.rank_sets(cards).tolist())) == 64
    again, _ = C.make_cards(64, seed=3, rgb=True, split="test", size=64)
    assert torch.equal(again, images)
    other, _ = C.make_cards(64, seed=4, rgb=True, split="test", size=64)
    assert not torch.equal(other, images)
    with pytest.raises(ValueError, match="size"):
        C.make_cards(4, size=96)
    with pytest.raises(ValueError, match="n: the test split has 9139"):
        C.make_cards(9140, split="test")


def test_validator_reads_real_grids_and_flags_none():
    images, cards = C.make_cards(400, seed=1)
    verdict = C.validate_cards(images)
    assert int(verdict.hallucinated.sum()) == 0 and all(c == () for c in verdict.categories)
    assert torch.equal(verdict.cards, cards) and float(verdict.worst_score.min()) > 0.9999
    floats = images.float() / 127.5 - 1  # the model-side convention: [-1, 1]
    assert torch.equal(C.validate_cards(floats).cards, cards)
    rgb, rgb_cards = C.make_cards(50, seed=1, rgb=True, size=64)
    assert torch.equal(C.validate_cards(rgb, C.lab_templates(64, False)).cards, rgb_cards)  # 64-px faces resized, RGB -> L


def test_corruptions_are_caught_and_blank_has_no_nan():
    images, cards = C.make_cards(60, seed=2, split="test")
    gen = torch.Generator().manual_seed(0)
    blank = C.validate_cards(C.corrupt_cards(images, cards, "blank", gen))
    assert all("blank_quadrant" in c for c in blank.categories) and torch.isfinite(blank.worst_score).all()
    assert float(blank.worst_score.max()) == 0.0
    repeat = C.validate_cards(C.corrupt_cards(images, cards, "repeat", gen))
    assert all(c == ("repeated_card",) for c in repeat.categories)
    for kind in ("shift", "blend", "wrong_pips", "noise"):
        corrupted = C.corrupt_cards(images, cards, kind, gen)
        assert int((corrupted != images).flatten(1).any(1).sum()) == 60, kind
        strict = C.validate_cards(corrupted, threshold=0.996)  # real grids score > 0.9999
        assert int(strict.hallucinated.sum()) == 60, kind
    shift = C.validate_cards(C.corrupt_cards(images, cards, "shift", gen))
    assert int(shift.hallucinated.sum()) == 60
    with pytest.raises(ValueError, match="kind"):
        C.corrupt_cards(images, cards, "smudge", gen)


def test_verdict_names_the_offending_quadrants():
    """One hand-made grid per quadrant fault: TR blank, BL a copy of TL, BR a 50/50 blend of two faces."""
    images, cards = C.make_cards(3, seed=6, size=64)
    x = images.clone()
    h = 32
    x[0, :, :h, h:] = 200  # TR: constant, i.e. blank
    x[1, :, h:, :h] = x[1, :, :h, :h]  # BL repeats TL
    faces = torch.from_numpy(C.lab_faces(h, False)).permute(0, 3, 1, 2)
    x[2, :, h:, h:] = ((faces[0].float() + faces[17].float()) / 2).round().to(torch.uint8)  # BR: no single card
    v = C.validate_cards(x, threshold=0.99)
    assert v.categories == [("blank_quadrant",), ("repeated_card",), ("low_match",)]
    assert v.offending_quadrants(0, "blank_quadrant") == [1] and v.offending_quadrants(0, "low_match") == []
    assert v.offending_quadrants(1, "repeated_card") == [0, 2]
    assert v.offending_quadrants(2, "low_match") == [3] and v.offending_quadrants(2, "repeated_card") == []
    assert v.offending.shape == (3, len(C.CATEGORIES), 4) and v.scores.shape == (3, 4)
    assert torch.equal(v.offending.any(dim=2).any(dim=1), v.hallucinated)
    assert float(v.scores[0, 1]) == 0.0 and float(v.scores[2, 3]) < 0.99 <= float(v.scores[2, :3].min())
    with pytest.raises(ValueError, match="rule: expected one of"):
        v.offending_quadrants(0, "smear")


def test_roc_curve_against_hand_counts():
    roc = C.roc_curve(torch.tensor([0.9, 1.0], dtype=torch.float64), torch.tensor([0.5, 0.95], dtype=torch.float64))
    t = roc["threshold"]
    at = lambda x: int(torch.nonzero(t > x)[0])  # noqa: E731  first threshold above x
    assert float(roc["fpr"][at(0.95)]) == 0.5 and float(roc["tpr"][at(0.95)]) == 1.0  # flags 0.5, 0.9, 0.95
    assert float(roc["fpr"][at(0.5)]) == 0.0 and float(roc["tpr"][at(0.5)]) == 0.5
    assert float(roc["fpr"][-1]) == 1.0 and float(roc["tpr"][-1]) == 1.0 and float(roc["fpr"][0]) == 0.0
    assert float(roc["auc"]) == pytest.approx(0.75)  # P(pos < neg) = 3/4
    cal = C.calibrate_cards(n_real=200, n_per_kind=30, seed=0, size=64)
    assert cal.real_flagged == 0 and cal.negative_flagged == 0
    assert cal.caught["blank"] == cal.caught["repeat"] == cal.caught["shift"] == 30
    assert 0.9 < float(cal.roc["auc"]) <= 1.0


def test_write_cards_layout_and_no_overwrite(tmp_path):
    index = C.write_cards(tmp_path, 30, seed=5, size=64)
    labels = json.loads(index.read_text())
    assert index.name == "train_cards.json" and len(labels) == 30
    assert len(list((tmp_path / "templates").glob("*.png"))) == 40
    first = sorted(labels)[0]
    image = torch.from_numpy(np.array(Image.open(tmp_path / "card_imgs" / f"{first}.png")))[None, None]
    verdict = C.validate_cards(image)
    assert verdict.codes(0) == labels[first]
    before = index.read_bytes()
    with pytest.raises(FileExistsError, match="train_cards.json"):
        C.write_cards(tmp_path, 5, seed=9, size=64)
    assert index.read_bytes() == before
    C.write_cards(tmp_path, 10, split="test", size=64)  # the other split shares the folder and its faces
    report = C.validate_cards_folder(tmp_path)
    assert len(report.files) == 40 and int(report.hallucinated.sum()) == 0
    assert report.labels_checked == 40 and report.labels_agree == 40


def test_write_cards_refuses_other_faces(tmp_path):
    C.write_cards(tmp_path, 3, size=64)
    with pytest.raises(FileExistsError, match="templates"):
        C.write_cards(tmp_path, 3, split="test", size=128)  # 64-px faces already there
    assert not (tmp_path / "test_cards.json").exists()


def test_folder_errors_name_the_file(tmp_path):
    C.write_cards(tmp_path, 6, size=128)
    (tmp_path / "templates" / "AC.png").unlink()
    with pytest.raises(ValueError, match=r"templates: expected 40 template PNGs .* found 39"):
        C.validate_cards_folder(tmp_path)
    Image.new("L", (100, 100)).save(tmp_path / "card_imgs" / "zz.png")
    with pytest.raises(ValueError, match=r"zz.png: image is 100x100, expected 128x128"):
        C.find_cards_folder(tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="expected PNG grids"):
        C.find_cards_folder(tmp_path / "empty")


def test_released_folder_without_templates_warns(tmp_path):
    images, _ = C.make_cards(8, seed=0, rgb=True)
    for i, image in enumerate(images.permute(0, 2, 3, 1).numpy()):
        Image.fromarray(image).save(tmp_path / f"{i}.png")
    with pytest.warns(UserWarning, match="will not match another artwork"):
        report = C.validate_cards_folder(tmp_path)
    assert report.templates == "lab" and int(report.hallucinated.sum()) == 0





def test_cli_handlers(tmp_path, capsys):
    out = tmp_path / "cards"
    assert cli("data", "cards", "--n", "12", "--seed", "1", "--rgb", "--size", "64", "--out", str(out)) == 0
    capsys.readouterr()
    assert cli("validate", "cards", str(out), "--json") == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["n"] == 12 and summary["count"] == 0 and summary["rate"] == 0.0 and summary["low"] == 0.0
    assert summary["high"] == pytest.approx(1 - 0.05 ** (1 / 12), abs=0.05) and summary["categories"] == {}
    assert summary["labels_agree"] == 12
    # a corrupted copy: one image with a blank quadrant
    path = sorted((out / "card_imgs").glob("*.png"))[0]
    image = np.asarray(Image.open(path)).copy()
    image[:32, :32] = 255
    Image.fromarray(image).save(path)
    assert cli("validate", "cards", str(out), "--json") == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["count"] == 1 and summary["categories"] == {"blank_quadrant": 1}
    assert summary["low"] < 1 / 12 < summary["high"]
    assert cli("data", "cards", "--n", "3", "--out", str(out), "--size", "64") == 2
    assert "already exists" in capsys.readouterr().err
    assert cli("validate", "cards", str(tmp_path / "nowhere")) == 2
    assert "expected a Cards folder" in capsys.readouterr().err
