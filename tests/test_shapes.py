"""SimpleShapes generator, strict validator, VSM rule and the ``data shapes`` / ``validate shapes`` CLI."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from conftest import cli

from vsmlab.data.shapes import (
    KINDS,
    compose,
    draw_images_pil,
    draw_strip,
    generate,
    geometry,
    template_bank,
)
from vsmlab.data.shapes_validate import report, summarize, validate, vsm_rule

SIZES = (64, 32)


# --------------------------------------------------------------------------------------------- generator
def test_position_counts_match_the_reference_ranges():
    assert template_bank(64).counts() == (583, 343, 648)  # 11*53, 7*49, 12*54
    assert template_bank(32).counts() == (162, 100, 130)  # 6*27, 4*25, 5*26


@pytest.mark.parametrize("size", SIZES)
def test_templates_are_distinct_single_components(size):
    from scipy import ndimage

    bank = template_bank(size)
    for c in range(3):
        flat = bank.masks[c].reshape(bank.masks[c].shape[0], -1)
        assert len({row.tobytes() for row in flat}) == flat.shape[0]
        for m in bank.masks[c][:: max(1, flat.shape[0] // 40)]:
            assert ndimage.label(m, structure=np.ones((3, 3)))[1] == 1


def test_reference_areas_and_drawing_at_64():
    bank = template_bank(64)
    areas = [set(m.reshape(m.shape[0], -1).sum(1).tolist()) for m in bank.masks]
    assert areas[0] <= set(range(63, 68)) and areas[1] == {64} and areas[2] <= set(range(68, 73))
    sq = draw_strip("square", 1, 1, geometry(64))  # rectangle [1, 1, 8, 8] inclusive: 8x8
    assert sq.shape == (63, 21) and set(np.unique(sq)) == {0, 255}
    assert (sq[1:9, 1:9] == 255).all() and (sq > 0).sum() == 64
    tri = draw_strip("triangle", 0, 0, geometry(64)) > 0  # top edge y = 0 from x = 0 to 11, apex (5, 9)
    assert tri[0, 0:12].all() and tri[9, 5] and not tri[10:].any()


@pytest.mark.parametrize("size", SIZES)
def test_composition_equals_pil_drawing_and_borders_stay_black(size):
    data = generate(150, size, seed=7)
    assert data.images.shape == (150, size, size) and data.images.dtype == np.uint8
    assert set(np.unique(data.images)) == {0, 255}
    assert np.array_equal(draw_images_pil(data.positions, size), data.images)
    g = geometry(size)
    assert not data.images[:, g.strip_height:, :].any() and not data.images[:, :, 3 * g.strip_width:].any()
    assert np.array_equal(compose(data.templates, size), data.images)
    present = data.positions[..., 0] >= 0
    assert np.array_equal(present, data.presence) and np.array_equal(data.templates >= 0, data.presence)


def test_generate_is_deterministic_in_the_seed():
    a, b, c = generate(300, 32, seed=3), generate(300, 32, seed=3), generate(300, 32, seed=4)
    assert np.array_equal(a.images, b.images) and np.array_equal(a.positions, b.positions)
    assert not np.array_equal(a.images, c.images)


@pytest.mark.parametrize("size", SIZES)
def test_composition_statistics(size):
    n = 20000
    data = generate(n, size, seed=11)
    shapes = data.presence.sum(1)
    assert shapes.min() >= 1
    for k, p in ((1, 3 / 7), (2, 3 / 7), (3, 1 / 7)):
        se = math.sqrt(p * (1 - p) / n)
        assert abs((shapes == k).mean() - p) < 5 * se, (k, (shapes == k).mean(), p)
    p = 4 / 7
    assert np.all(np.abs(data.presence.mean(0) - p) < 5 * math.sqrt(p * (1 - p) / n))
    # positions uniform over each column's range: chi-square over the x1 values of the square column
    bank = template_bank(size)
    xs = data.positions[data.presence[:, 1], 1, 0]
    values = np.unique(bank.positions[1][:, 0])
    counts = np.array([(xs == v).sum() for v in values])
    expected = len(xs) / len(values)
    chi2 = ((counts - expected) ** 2 / expected).sum()
    assert chi2 < 30  # df <= 6: far beyond the 99.99% quantile (~27.9)


@pytest.mark.parametrize("kwargs, name", [({"n": 0}, "n"), ({"size": 48}, "size"), ({"seed": -1}, "seed"),
                                          ({"n": 2.5}, "n")])
def test_generate_rejects_bad_arguments(kwargs, name):
    with pytest.raises(ValueError, match=name):
        generate(**{"n": 3, **kwargs})


# --------------------------------------------------------------------------------------------- validator
@pytest.mark.parametrize("size", SIZES)
def test_calibration_no_false_positive_on_20000_fresh_images(size):
    data = generate(20000, size, seed=2024)
    res = report(data.images)
    assert res["n"] == 20000 and res["invalid"] == 0 and res["vsm_rule_invalid"] == 0
    assert res["categories"]["valid"] == 20000


def _canvas(size: int) -> np.ndarray:
    return np.zeros((size, size), dtype=np.uint8)


def _put(img: np.ndarray, size: int, kind: str, column: int, x1: int, y1: int) -> np.ndarray:
    g = geometry(size)
    strip = draw_strip(kind, x1, y1, g)
    region = img[: g.strip_height, g.column_slice(column)]
    np.maximum(region, strip, out=region)
    return img


def _pos(size: int, kind: str, where: str) -> tuple[int, int]:
    (x0, x1), (y0, y1) = geometry(size).position_ranges(kind)
    return {"top": (x0, y0), "bottom": (x0, y1), "mid": ((x0 + x1) // 2, (y0 + y1) // 2)}[where]


def _hand_made(size: int) -> dict[str, np.ndarray]:
    g = geometry(size)
    ex = {}
    ex["valid"] = _put(_put(_canvas(size), size, "triangle", 0, *_pos(size, "triangle", "top")),
                       size, "pentagon", 2, *_pos(size, "pentagon", "mid"))
    img = _put(_canvas(size), size, "triangle", 0, *_pos(size, "triangle", "mid"))
    img = _put(img, size, "square", 1, *_pos(size, "square", "top"))
    ex["duplicate"] = _put(img, size, "square", 1, *_pos(size, "square", "bottom"))  # two squares, square column
    ex["wrong_kind"] = _put(_canvas(size), size, "triangle", 1, *_pos(size, "triangle", "mid"))
    img = _put(_canvas(size), size, "pentagon", 2, *_pos(size, "pentagon", "mid"))
    rows = np.nonzero(img.any(1))[0]
    img[rows[len(rows) // 2]:] = 0  # erase the lower half
    ex["half_erased"] = img
    img = _canvas(size)
    c = g.strip_width
    img[10:14, c - 2: c + 2] = 255  # a 4x4 blob across the triangle | square border
    ex["across_border"] = img
    img = _put(_canvas(size), size, "square", 1, *_pos(size, "square", "mid"))
    img[size - 1, 5] = 255  # one pixel in the last row (row 63 at 64 px, row 31 at 32 px)
    ex["last_row"] = img
    img = _put(_canvas(size), size, "square", 1, *_pos(size, "square", "mid"))
    img[3, size - 1] = 255  # one pixel in the last column
    ex["last_col"] = img
    ex["blank"] = _canvas(size)
    x, y = _pos(size, "square", "mid")
    img = _put(_canvas(size), size, "square", 1, x, y)
    ex["merged"] = _put(img, size, "square", 1, x, y + g.square_side)  # two overlapping squares, one component
    img = _put(_canvas(size), size, "square", 1, x, y)
    ex["square_and_pentagon"] = _put(img, size, "pentagon", 1, x + 1, y + 4 * g.square_side)
    return ex


@pytest.mark.parametrize("size", SIZES)
def test_every_category_is_caught_on_hand_made_examples(size):
    ex = _hand_made(size)
    names = list(ex)
    verdicts = dict(zip(names, validate(np.stack([ex[k] for k in names]))))
    assert verdicts["valid"].categories == ("valid",)
    assert verdicts["duplicate"].categories == ("duplicate",)
    assert [c.kind for c in verdicts["duplicate"].components if c.column == 1] == ["square", "square"]
    assert verdicts["wrong_kind"].categories == ("wrong_kind",)
    (comp,) = verdicts["wrong_kind"].components
    assert comp.kind == "triangle" and comp.column == 1
    assert verdicts["half_erased"].categories == ("malformed",)
    assert verdicts["half_erased"].components[0].problem == "not a shape"
    assert verdicts["across_border"].categories == ("malformed",)
    assert verdicts["across_border"].components[0].column == -1
    assert "border" in verdicts["across_border"].components[0].problem
    for key in ("last_row", "last_col"):
        assert verdicts[key].categories == ("malformed",) and verdicts[key].outside_pixels == 1
    assert verdicts["blank"].categories == ("blank",)
    assert verdicts["merged"].categories == ("malformed",)
    assert verdicts["square_and_pentagon"].categories == ("wrong_kind", "duplicate")
    summ = summarize(list(verdicts.values()))
    assert summ.n == len(names) and summ.invalid == len(names) - 1
    assert summ.counts == {"valid": 1, "blank": 1, "wrong_kind": 2, "duplicate": 1, "malformed": 5}
    assert summ.shows["duplicate"] == 2 and sum(summ.counts.values()) == summ.n


@pytest.mark.parametrize("size", SIZES)
def test_components_report_kind_position_and_area(size):
    data = generate(40, size, seed=5)
    bank = template_bank(size)
    for verdict, pos, tmpl in zip(validate(data.images), data.positions, data.templates):
        got = {c.column: c for c in verdict.components}
        assert set(got) == set(np.nonzero(tmpl >= 0)[0].tolist())
        for col, comp in got.items():
            assert comp.kind == KINDS[col] and comp.exact and comp.iou == 1.0
            assert comp.position == tuple(pos[col].tolist())
            assert comp.area == int(bank.masks[col][tmpl[col]].sum())


@pytest.mark.parametrize("size", SIZES)
def test_shape_test_tolerates_one_pixel_and_flags_off_range_positions(size):
    g = geometry(size)
    x, y = _pos(size, "square", "mid")
    img = _put(_canvas(size), size, "square", 1, x, y)
    c0 = g.strip_width
    img[y, c0 + x] = 0  # one corner pixel off
    img2 = _put(_canvas(size), size, "square", 1, g.strip_width - g.square_side - 1, y)  # x1 beyond the range
    v1, v2 = validate(np.stack([img, img2]))
    assert v1.valid and not v1.components[0].exact
    assert v2.valid and not v2.components[0].exact


@pytest.mark.parametrize("size", SIZES)
def test_rgb_input_and_size_check(size):
    data = generate(20, size, seed=1)
    ex = np.stack(list(_hand_made(size).values()))
    both = np.concatenate([data.images, ex])
    rgb = np.repeat(both[..., None], 3, axis=-1)
    assert [v.categories for v in validate(rgb)] == [v.categories for v in validate(both)]
    with pytest.raises(ValueError, match="size"):
        validate(both, size=96 - size)
    with pytest.raises(ValueError, match="images"):
        validate(np.zeros((2, 48, 48), dtype=np.uint8))
    with pytest.raises(TypeError, match="uint8"):
        validate(both.astype(np.float32))


@pytest.mark.parametrize("size", SIZES)
def test_vsm_rule_lets_duplicates_through(size):
    ex = _hand_made(size)
    imgs = np.stack([ex["valid"], ex["duplicate"], ex["blank"], ex["wrong_kind"]])
    rule = vsm_rule(imgs)
    assert rule["valid"].tolist() == [True, True, False, True]  # blank: too few white pixels
    assert rule["blank"].tolist() == [False, False, True, False]
    res = report(imgs)
    assert res["invalid"] == 3 and res["vsm_rule_invalid"] == 1
    assert res["flagged_not_vsm"] == {"blank": 0, "wrong_kind": 1, "duplicate": 1, "malformed": 0}


# --------------------------------------------------------------------------------------------- CLI


def test_cli_npz_roundtrip_and_refuses_overwrite(tmp_path, capsys):
    out = tmp_path / "s.npz"
    assert cli("data", "shapes", "--n", "30", "--size", "32", "--seed", "4", "--out", str(out)) == 0
    with np.load(out) as f:
        ref = generate(30, 32, seed=4)
        assert np.array_equal(f["images"], ref.images) and np.array_equal(f["positions"], ref.positions)
        assert np.array_equal(f["presence"], ref.presence) and int(f["size"]) == 32
    before = out.read_bytes()
    assert cli("data", "shapes", "--n", "5", "--out", str(out)) == 2
    assert str(out) in capsys.readouterr().err and out.read_bytes() == before
    assert cli("data", "shapes", "--n", "5", "--size", "32", "--out", str(out), "--force") == 0
    with np.load(out) as f:
        assert f["images"].shape == (5, 32, 32)
    capsys.readouterr()
    assert cli("validate", "shapes", str(out), "--json") == 0
    res = json.loads(capsys.readouterr().out)
    assert res["n"] == 5 and res["rate"] == 0.0 and res["low"] == 0.0 and 0 < res["high"] < 1
    assert list(res["categories"]) == ["blank", "wrong_kind", "duplicate", "malformed", "valid"]
    assert res["vsm_rule_rate"] == 0.0


def test_cli_png_folder_and_validation_table(tmp_path, capsys):
    from vsmlab.data.pngs import load_png_folder

    out = tmp_path / "pngs"
    assert cli("data", "shapes", "--n", "12", "--seed", "2", "--out", str(out)) == 0
    images, names = load_png_folder(out)
    assert names[0] == "00000.png" and len(names) == 12
    assert np.array_equal(images, generate(12, 64, seed=2).images)
    factors = json.loads((out / "factors.json").read_text())
    assert factors["kinds"] == list(KINDS) and len(factors["positions"]) == 12
    # a folder with hand-made hallucinations
    from vsmlab.data.pngs import write_png_folder

    ex = _hand_made(64)
    write_png_folder(np.stack(list(ex.values())), tmp_path / "bad")
    capsys.readouterr()
    assert cli("validate", "shapes", str(tmp_path / "bad"), "--json") == 0
    res = json.loads(capsys.readouterr().out)
    assert res["n"] == len(ex) and res["categories"]["duplicate"] == 1 and res["categories"]["valid"] == 1
    assert abs(res["rate"] - (len(ex) - 1) / len(ex)) < 1e-12 and res["low"] < res["rate"] < res["high"]
    assert cli("validate", "shapes", str(tmp_path / "bad")) == 0
    text = capsys.readouterr().out
    assert "duplicate" in text and "strict" in text


@pytest.mark.parametrize("argv, needle", [
    (["--n", "0"], "--n: expected an int >= 1 (number of images), got 0"),
    (["--size", "48"], "--size: expected one of 64, 32, got 48"),
])
def test_cli_bad_arguments_exit_2(tmp_path, capsys, argv, needle):
    assert cli("data", "shapes", *argv, "--out", str(tmp_path / "x.npz")) == 2
    assert needle in capsys.readouterr().err and not (tmp_path / "x.npz").exists()


def test_cli_validate_bad_paths(tmp_path, capsys):
    assert cli("validate", "shapes", str(tmp_path / "missing.npz")) == 2
    assert "missing.npz" in capsys.readouterr().err
    np.savez(tmp_path / "other.npz", samples=np.zeros((2, 64, 64), np.uint8))
    assert cli("validate", "shapes", str(tmp_path / "other.npz")) == 2
    assert "images" in capsys.readouterr().err
    np.savez(tmp_path / "odd.npz", images=np.zeros((2, 40, 40), np.uint8))
    assert cli("validate", "shapes", str(tmp_path / "odd.npz")) == 2
    assert "40x40" in capsys.readouterr().err


def test_top_level_cli_dispatches_data_and_validate(tmp_path, capsys):
    from vsmlab.cli import main

    out = tmp_path / "s.npz"
    assert main(["data", "shapes", "--n", "0", "--out", str(out)]) == 2
    assert "--n" in capsys.readouterr().err
    assert main(["data", "shapes", "--n", "4", "--size", "32", "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["validate", "shapes", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["n"] == 4
