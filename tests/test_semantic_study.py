"""Cards / chess as training data (config kinds "cards" and "chess"); runs (vsmlab.lab.study) and samples
(vsmlab.lab.sample_store) through the CLI, sample files; vsmlab.lab.semantic_study: rule rates, two-rate comparisons (Newcombe's published example, a
simulated power check of the MDE), coverage and piece counts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from vsmlab.data import cards as C
from vsmlab.data import chessboards as CB
from vsmlab.diffusion.checkpoints import CheckpointError
from vsmlab.diffusion.config import ConfigError, build_data, build_loss, load_config, validate_config
from vsmlab.lab import sample_store, study
from vsmlab.lab import semantic_study as summaries

ROOT = Path(__file__).resolve().parents[1]
CARDS_SMOKE = "configs/cards-smoke.toml"
CHESS_SMOKE = "configs/chess-smoke.toml"


# ------------------------------------------------------------------------------------------- config kinds
def test_cards_kind_validates_size_rgb_and_defaults():
    cfg = validate_config({"data": {"kind": "cards"}, "model": {"attention_resolutions": []}})
    assert cfg["data"] == {"kind": "cards", "n": 5000, "seed": 0, "size": 128, "rgb": False}  # cards default: 128 px
    assert validate_config({"data": {"kind": "cards", "size": 64, "rgb": True}})["data"]["size"] == 64
    with pytest.raises(ConfigError, match=r"data\.size = 32 is invalid; expected one of \[128, 64\]"):
        validate_config({"data": {"kind": "cards", "size": 32}})
    with pytest.raises(ConfigError, match=r"data\.size = 64 is invalid; expected one of \[256, 128\]"):
        validate_config({"data": {"kind": "chess", "size": 64}})
    with pytest.raises(ConfigError, match=r"data\.rgb applies only when data\.kind is one of \['cards'\]"):
        validate_config({"data": {"kind": "shapes", "rgb": True}})
    with pytest.raises(ConfigError, match=r"model\.kind = 'mlp' does not fit data\.kind = 'cards'"):
        validate_config({"data": {"kind": "cards"}, "model": {"kind": "mlp"}})
    # shapes keeps its own sizes and message
    with pytest.raises(ConfigError, match=r"data\.size = 128 is invalid; expected one of \[64, 32\]"):
        validate_config({"data": {"size": 128}})


def test_build_data_cards_is_the_train_split_and_chess_reads_back():
    cfg = validate_config({"data": {"kind": "cards", "size": 64, "n": 6, "seed": 3, "rgb": True}})
    data = build_data(cfg)
    images, cards = C.make_cards(6, 3, True, "train", 64)
    assert data.dtype == torch.uint8 and torch.equal(data, images)
    assert not C.validate_cards(data).hallucinated.any()
    cfg = validate_config({"data": {"kind": "chess", "size": 128, "n": 5, "seed": 2}, "model": {"attention_resolutions": []}})
    boards = build_data(cfg)
    assert boards.shape == (5, 3, 128, 128) and boards.dtype == torch.uint8
    verdict = CB.validate_chess(boards)
    assert verdict.placements == [f.split()[0] for f in CB.random_positions(5, 2, "train")]
    assert not verdict.hallucinated.any()


def test_image_kinds_get_the_discretized_decoder(monkeypatch):
    from vsmlab.diffusion import losses

    seen = []
    monkeypatch.setattr(losses, "make_loss", lambda name, **options: seen.append((name, options["decoder"])))
    for kind, size in (("cards", 64), ("chess", 128), ("mixture", None)):
        data = {"kind": kind, **({"size": size} if size else {})}
        model = {"learn_variance": True, **({"kind": "mlp"} if kind == "mixture" else {"attention_resolutions": []})}
        build_loss(validate_config({"data": data, "model": model, "loss": {"name": "hybrid"}}))
    assert seen == [("hybrid", "discretized"), ("hybrid", "discretized"), ("hybrid", "gaussian")]


def test_shipped_configs_validate():
    for bench, tier, size in (("cards", "cpu", 64), ("cards", "gpu", 128), ("chess", "gpu", 128)):
        fixed, rho0, vsm = (load_config(ROOT / "configs" / f"{bench}-{m}-{tier}.toml") for m in ("fixed", "rho0", "vsm"))
        assert fixed["data"]["kind"] == bench and fixed["data"]["size"] == size
        if tier == "gpu":
            # sized for one GPU window (benchmarks/gpu_window.py): RGB, bf16
            assert fixed["model"]["base_channels"] >= 32 and fixed["train"]["amp"] == "bf16"
            assert fixed["train"]["save_every"] <= 250 and fixed["data"].get("rgb", True)
        assert (fixed["loss"]["name"], fixed["model"]["learn_variance"]) == ("eps_mse", False)
        assert (rho0["loss"]["name"], rho0["model"]["learn_variance"]) == ("hybrid", True)
        assert (vsm["loss"]["name"], vsm["loss"]["rho"], vsm["loss"]["time_weight"]) == ("vsm", 0.1, True)
        for a, b in ((fixed, rho0), (rho0, vsm)):  # the three differ only in the loss and the variance head
            assert a["train"] == b["train"] and a["data"] == b["data"] and a["diffusion"] == b["diffusion"]
            assert {k: v for k, v in a["model"].items() if k != "learn_variance"} == \
                   {k: v for k, v in b["model"].items() if k != "learn_variance"}
    # the CPU chess pilot (notebook 07 default): VSM and its baseline only, same trunk, 128 px, differing in the loss
    rho0, vsm = (load_config(ROOT / "configs" / f"chess-{m}-cpu.toml") for m in ("rho0", "vsm"))
    assert rho0["data"] == vsm["data"] and rho0["data"]["size"] == 128 and rho0["model"] == vsm["model"]
    assert rho0["train"] == vsm["train"] and rho0["diffusion"] == vsm["diffusion"] and rho0["model"]["learn_variance"]
    assert (rho0["loss"]["name"], vsm["loss"]["name"], vsm["loss"]["rho"]) == ("hybrid", "vsm", 0.1)
    assert not (ROOT / "configs" / "chess-fixed-cpu.toml").exists()
    for name in ("cards-smoke.toml", "chess-smoke.toml"):
        assert load_config(ROOT / "configs" / name)["train"]["steps"] <= 8


# ------------------------------------------------------------------------------------------- runs and samples
def test_train_and_sample_cards_through_the_cli(tmp_path):
    specs = [study.Model("fixed", 0, CARDS_SMOKE, ("train.steps=2",)),
             study.Model("vsm", 0, CARDS_SMOKE, ("train.steps=2", "model.learn_variance=true", "loss.name=vsm"))]
    eng = study.Study(ROOT, tmp_path, image_size=64, workers=0)
    assert eng.folder(specs[0]) != eng.folder(specs[1])
    assert eng.folder(specs[0]) == eng.folder(study.Model("fixed", 0, CARDS_SMOKE, ("train.steps=2",)))
    ckpts = {m.method: p for m, p in eng.ensure(specs).items()}
    assert all(p.exists() for p in ckpts.values())
    stamp = {k: p.stat().st_mtime_ns for k, p in ckpts.items()}
    assert {m.method: p for m, p in eng.ensure(specs).items()} == ckpts  # nothing retrained
    assert {k: p.stat().st_mtime_ns for k, p in ckpts.items()} == stamp
    files = sample_store.ensure_samples(ckpts, n=3, steps=3, seed=1, batch_size=2, root=ROOT, workers=0)
    images, meta = sample_store.load_sample_images(files["vsm"])
    assert images.shape == (3, 1, 64, 64) and images.dtype == torch.uint8
    assert meta["sampler"]["steps"] == 3 and meta["config"]["loss"]["name"] == "vsm"
    verdict = C.validate_cards(images)
    assert verdict.hallucinated.shape == (3,)
    cmd = eng.train_command(specs[1], tmp_path / "x")
    assert cmd[1:4] == ["-m", "vsmlab", "train"] and "--set" in cmd and "loss.name=vsm" in cmd
    # a shipped checkpoint: checked against its model's config, sampled into a cache folder keyed by its bytes
    assert study.check_shipped(ckpts["vsm"], eng.config(specs[1]), image_size=64) == ckpts["vsm"]
    hybrid = study.Model("vsm", 0, CARDS_SMOKE, ("train.steps=2", "model.learn_variance=true", "loss.name=hybrid"))
    with pytest.raises(CheckpointError, match=r"latest\.pt.*loss\.name: checkpoint 'vsm', config 'hybrid'"):
        study.check_shipped(ckpts["vsm"], eng.config(hybrid))
    with pytest.raises(CheckpointError, match="image size 64, expected 128"):
        study.check_shipped(ckpts["vsm"], eng.config(specs[1]), image_size=128)
    with pytest.raises(FileNotFoundError, match="nope.pt"):
        study.check_shipped(tmp_path / "nope.pt", eng.config(specs[1]))
    cache = sample_store.shipped_sample_dir(tmp_path / "cache", ckpts["vsm"])
    assert cache.parent == tmp_path / "cache" and cache.name.startswith(f"shipped-{ckpts['vsm'].parent.name}-latest-")
    assert cache != sample_store.shipped_sample_dir(tmp_path / "cache", ckpts["fixed"])  # other bytes, other folder
    moved = sample_store.ensure_samples({"vsm": ckpts["vsm"]}, n=3, steps=3, seed=1, batch_size=2, root=ROOT, workers=0,
                                        out_dirs={"vsm": cache})
    assert moved["vsm"].parent == cache and moved["vsm"].name == files["vsm"].name
    assert np.array_equal(np.load(moved["vsm"])["images"], np.load(files["vsm"])["images"])  # same command, same bytes


def test_load_sample_images_layouts_and_errors(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 256, (2, 8, 8, 3), dtype=np.uint8)
    np.savez(tmp_path / "rgb.npz", images=rgb, metadata=np.asarray(json.dumps({"n": 2})))
    images, meta = sample_store.load_sample_images(tmp_path / "rgb.npz")
    assert images.shape == (2, 3, 8, 8) and torch.equal(images[1, 2], torch.from_numpy(rgb[1, :, :, 2])) and meta == {"n": 2}
    np.savez(tmp_path / "mlp.npz", samples=np.zeros((3, 2), np.float32))
    with pytest.raises(ValueError, match=r"mlp\.npz: expected an 'images' array"):
        sample_store.load_sample_images(tmp_path / "mlp.npz")
    np.savez(tmp_path / "f.npz", images=np.zeros((2, 8, 8), np.float32))
    with pytest.raises(ValueError, match="uint8"):
        sample_store.load_sample_images(tmp_path / "f.npz")


def test_require_files_names_every_missing_file_and_its_command(tmp_path):
    (tmp_path / "a.npz").write_bytes(b"x")
    sample_store.require_files({"a": tmp_path / "a.npz"})
    with pytest.raises(FileNotFoundError) as err:
        sample_store.require_files({"a": tmp_path / "a.npz", "b": tmp_path / "b.npz", "c": tmp_path / "c.npz"},
                            {"b": "vsmlab sample B"})
    text = str(err.value)
    assert "2 of 3" in text and "b.npz" in text and "c.npz" in text and "a.npz" not in text and "vsmlab sample B" in text


# ------------------------------------------------------------------------------------------- summaries
def test_compare_rates_matches_newcombes_published_example():
    # Newcombe (1998), Statistics in Medicine 17:873, Table II, method 10 (score-based hybrid)
    published = {(56, 70, 48, 80): (0.0524, 0.3339), (9, 10, 3, 10): (0.1705, 0.8090),
                 (6, 7, 2, 7): (0.0582, 0.8062), (5, 56, 0, 29): (-0.0381, 0.1926)}
    for (ka, na, kb, nb), (low, high) in published.items():
        d = summaries.compare_rates(ka, na, kb, nb)
        assert d.difference == pytest.approx(ka / na - kb / nb)
        assert d.low == pytest.approx(low, abs=1e-4) and d.high == pytest.approx(high, abs=1e-4)
    d = summaries.compare_rates(56, 70, 48, 80)
    # the interval is antisymmetric under swapping the groups
    s = summaries.compare_rates(48, 80, 56, 70)
    assert s.low == pytest.approx(-d.high) and s.high == pytest.approx(-d.low)


def test_mde_has_80_percent_power_by_simulation():
    n = 400
    d = summaries.compare_rates(120, n, 120, n)  # pooled rate 0.3
    rng = np.random.default_rng(0)
    p_a, p_b = 0.3 - d.mde / 2, 0.3 + d.mde / 2
    ka, kb = rng.binomial(n, p_a, 20000), rng.binomial(n, p_b, 20000)
    pool = (ka + kb) / (2 * n)
    z = (kb - ka) / n / np.sqrt(pool * (1 - pool) * 2 / n)
    power = float((np.abs(z) > 1.959964).mean())
    assert 0.77 < power < 0.83, power
    # all-or-nothing rates still get a finite, positive MDE
    assert 0 < summaries.compare_rates(100, 100, 100, 100).mde < 0.05


def test_rule_rates_counts_each_rule_and_any():
    cats = [(), ("low_match",), ("low_match", "repeated_card"), ("blank_quadrant",)]
    rates = summaries.rule_rates(cats, C.CATEGORIES)
    assert rates["low_match"].count == 2 and rates["repeated_card"].count == 1 and rates["any"].count == 3
    assert rates["any"].n == 4
    with pytest.raises(ValueError, match="not in rules"):
        summaries.rule_rates([("second_king",)], C.CATEGORIES)


def test_card_coverage_and_piece_counts():
    cards = torch.tensor([[0, 1, 2, 3], [3, 2, 1, 0], [4, 5, 6, 7], [0, 1, 2, 39]])
    cov = summaries.card_coverage(cards, torch.tensor([True, True, False, True]))
    assert cov["n_valid"] == 3 and cov["distinct_sets"] == 2 and cov["distinct_cards"] == 5
    assert cov["per_card"][0] == 3 and cov["per_card"][39] == 1 and cov["per_card"][4] == 0
    counts = summaries.piece_counts(["rnbqkbnr/pppppppp/8/8/8/8/PPPPPPPP/RNBQKBNR w KQkq - 0 1", "8/8/8/8/8/8/8/K6k"])
    assert counts["total"].tolist() == [32, 2] and counts["P"].tolist() == [8, 0] and counts["k"].tolist() == [1, 1]
