"""Shipped configs: every file in configs/ resolves to exactly the config recorded in
tests/data/resolved_configs.json (written once from the 21 full TOML copies the configs were before they
became bases plus method files), so restructuring the files never changes what a run trains with."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from vsmlab.diffusion.config import ConfigError, format_config, load_config

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
RECORDED = json.loads((ROOT / "tests" / "data" / "resolved_configs.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize("name", sorted(RECORDED))
def test_config_resolves_as_recorded(name: str) -> None:
    cfg = load_config(ROOT / "configs" / name)
    # the JSON text compares key order and int / float / bool types too, not only values
    assert json.dumps(cfg) == json.dumps(RECORDED[name])
    assert format_config(cfg, comments=False) == format_config(RECORDED[name], comments=False)


def test_method_files_hold_only_the_method_keys() -> None:
    with_base = 0
    for path in sorted((ROOT / "configs").glob("*.toml")):
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
        if "base" not in raw:
            continue
        with_base += 1
        assert (path.parent / raw.pop("base")).is_file()
        assert set(raw) == {"model", "loss"} and set(raw["model"]) == {"learn_variance"}, path.name
        assert set(raw["loss"]) <= {"name", "rho", "time_weight", "vb_weight", "decoder"}, path.name
    assert with_base == 17  # every fixed / rho0 / vsm config of shapes, Cards and chess; the smoke configs stand alone
    for base in sorted((ROOT / "configs" / "base").glob("*.toml")):  # a base is a valid config on its own
        assert load_config(base)["loss"] == {"name": "eps_mse"}


def _write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_base_chain_merges_key_by_key(tmp_path) -> None:
    _write(tmp_path, "base/root.toml", '[data]\nkind = "shapes"\nsize = 32\nn = 64\n[train]\nsteps = 10\nlr = 1e-3\n')
    _write(tmp_path, "base/mid.toml", 'base = "root.toml"\n[train]\nsteps = 20\n')
    top = _write(tmp_path, "top.toml", 'base = "base/mid.toml"\n[data]\nn = 128\n')
    cfg = load_config(top)
    assert "base" not in cfg and (cfg["data"]["size"], cfg["data"]["n"]) == (32, 128)
    assert (cfg["train"]["steps"], cfg["train"]["lr"]) == (20, 1e-3)
    assert load_config(top, ["train.steps=30"])["train"]["steps"] == 30  # --set applies after the bases
    only_base = _write(tmp_path, "same.toml", 'base = "base/root.toml"\n')
    assert load_config(only_base) == load_config(tmp_path / "base" / "root.toml")


@pytest.mark.parametrize("files, pattern", [
    ({"bad-base.toml": "[train]\nlrr = 1\n", "top.toml": 'base = "bad-base.toml"\n[train]\nsteps = 2\n'},
     r"config '.*bad-base\.toml': unknown key train\.lrr = 1; allowed keys in \[train\]"),
    ({"b.toml": "[train]\nsteps = 3\n", "top.toml": 'base = "b.toml"\n[trian]\nsteps = 2\n'},
     r"config '.*top\.toml': unknown section \[trian\]"),
    ({"top.toml": 'base = "nowhere.toml"\n[train]\nsteps = 2\n'},
     r"config '.*top\.toml': base = 'nowhere\.toml': no such file '.*nowhere\.toml'"),
    ({"top.toml": 'base = "b.toml"\n[train]\nsteps = 2\n', "b.toml": 'base = "top.toml"\n[train]\nsteps = 3\n'},
     r"base = 'top\.toml' makes a cycle of bases: '.*top\.toml' -> '.*b\.toml' -> '.*top\.toml'"),
    ({"top.toml": 'base = "top.toml"\n'}, "makes a cycle"),
    ({"top.toml": "base = 3\n[train]\nsteps = 2\n"}, r"base = 3; expected the path of a base config file"),
    ({"top.toml": 'base = "b.toml"\n', "b.toml": "[train]\nlr = -1\n"},
     r"config '.*top\.toml' \(base '.*b\.toml'\): train\.lr = -1 is invalid"),
])
def test_base_errors_name_the_file(tmp_path, files: dict[str, str], pattern: str) -> None:
    for name, text in files.items():
        _write(tmp_path, name, text)
    with pytest.raises(ConfigError, match=pattern):
        load_config(tmp_path / "top.toml")
