"""Shipped configs: every file in configs/ resolves to exactly the config recorded in
tests/data/resolved_configs.json (written once from the 21 full TOML copies the configs were before they
became bases plus method files), so restructuring the files never changes what a run trains with."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vsmlab.diffusion.config import format_config, load_config

ROOT = Path(__file__).resolve().parents[1]
RECORDED = json.loads((ROOT / "tests" / "data" / "resolved_configs.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize("name", sorted(RECORDED))
def test_config_resolves_as_recorded(name: str) -> None:
    cfg = load_config(ROOT / "configs" / name)
    # the JSON text compares key order and int / float / bool types too, not only values
    assert json.dumps(cfg) == json.dumps(RECORDED[name])
    assert format_config(cfg, comments=False) == format_config(RECORDED[name], comments=False)
