"""The on-disk cache: real hits, weights-only loading, corrupt entries, what the key covers, where it lives."""

from __future__ import annotations

import math
import os
from pathlib import Path

import pytest
import torch

from vsmlab.lab import cache, experiments


@pytest.fixture(autouse=True)
def cache_in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("VSMLAB_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("VSMLAB_NO_CACHE", raising=False)
    return tmp_path / "cache"


def counted(value):
    calls = []

    def compute():
        calls.append(1)
        return value() if callable(value) else value

    return compute, calls


TINY = dict(mixture=dict(name="1d"), schedule=dict(name="linear", num_steps=100, beta_start=1e-3, beta_end=0.2),
            model=dict(width=8, depth=2), train=dict(steps=5, batch_size=32, lr=1e-3), n_train=64, seed=3)


def test_trained_toy_is_a_real_cache_hit(monkeypatch: pytest.MonkeyPatch, cache_in_tmp: Path) -> None:
    calls = []
    real_train = experiments.train

    def spy(*args, **kwargs):
        calls.append(1)
        return real_train(*args, **kwargs)

    monkeypatch.setattr(experiments, "train", spy)
    first = experiments.train_toy(TINY, snapshot_steps=(2,))
    second = experiments.train_toy(TINY, snapshot_steps=(2,))
    assert len(calls) == 1  # the second call loaded the entry, it did not train again
    assert len(list(cache_in_tmp.glob("*.pt"))) == 1
    for a, b in zip(first.model.state_dict().values(), second.model.state_dict().values()):
        assert torch.equal(a, b)
    assert [float(h) for h in first.history] == [float(h) for h in second.history] and len(second.history) == 5
    assert set(second.snapshots) == {2} and second.seconds == first.seconds
    experiments.train_toy(TINY, use_cache=False)  # bypass: trains again
    assert len(calls) == 2


def test_plain_result_round_trips_with_weights_only() -> None:
    # the shape of a mitigations.evaluate result: numbers, None, lists, tensors
    result = dict(seed=1, rate=0.25, auc=None, removed=[0.5, None], kept=[3, 4], flag=True, name="x",
                  samples=torch.randn(5, 2), labels=torch.tensor([True, False]), nested={"a": (1, 2.0)})
    compute, calls = counted(result)
    config = {"kind": "test", "n": 1}
    first = cache.load_or_compute(config, compute)
    second = cache.load_or_compute(config, compute)
    assert len(calls) == 1
    assert second is not first and torch.equal(second["samples"], result["samples"])
    assert {k: v for k, v in second.items() if not isinstance(v, torch.Tensor)} == \
        {k: v for k, v in result.items() if not isinstance(v, torch.Tensor)}


def test_result_that_would_need_pickle_code_is_refused(cache_in_tmp: Path) -> None:
    with pytest.raises(TypeError, match="weights_only"):
        cache.load_or_compute({"kind": "custom"}, lambda: {"obj": _Custom()})
    assert not cache_in_tmp.exists() or not list(cache_in_tmp.glob("*.pt"))


def test_entry_with_pickled_code_is_never_executed(cache_in_tmp: Path) -> None:
    config = {"kind": "evil"}
    path = cache_in_tmp / f"{cache.config_key(config)}.pt"
    path.parent.mkdir(parents=True)
    marker = cache_in_tmp / "executed"
    torch.save({"x": _Touch(str(marker))}, path)  # a pickle whose loading would run code
    compute, calls = counted({"x": 1})
    with pytest.warns(RuntimeWarning, match="unreadable"):
        assert cache.load_or_compute(config, compute) == {"x": 1}
    assert not marker.exists() and len(calls) == 1


class _Custom:
    pass


class _Touch:
    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty"])
def test_corrupt_entry_is_reported_moved_aside_and_recomputed(damage: str, cache_in_tmp: Path) -> None:
    config = {"kind": "corrupt", "damage": damage}
    compute, calls = counted(lambda: {"w": torch.arange(1000.0)})
    cache.load_or_compute(config, compute)
    path = cache_in_tmp / f"{cache.config_key(config)}.pt"
    data = path.read_bytes()
    path.write_bytes({"truncate": data[: len(data) // 2], "garbage": b"not a torch file" * 10, "empty": b""}[damage])
    with pytest.warns(RuntimeWarning) as record:
        again = cache.load_or_compute(config, compute)
    message = str(record[0].message)
    assert str(path) in message and "moved it to" in message
    assert len(calls) == 2 and torch.equal(again["w"], torch.arange(1000.0))
    assert path.with_name(path.name + ".corrupt").exists()
    assert torch.load(path, weights_only=True)["w"].shape == (1000,)  # a fresh, good entry


def test_key_covers_device_dtype_torch_version_and_config(monkeypatch: pytest.MonkeyPatch) -> None:
    config = {"a": 1}
    base = cache.config_key(config)
    assert base == cache.config_key({"a": 1}, device="cpu", dtype=torch.get_default_dtype())
    assert cache.config_key(config, device="cuda") != base
    assert cache.config_key(config, device="cuda:0") == cache.config_key(config, device="cuda:1")  # the type counts
    assert cache.config_key(config, dtype=torch.float64) != base
    assert cache.config_key({"a": 2}) != base
    assert cache.config_key(config, modules=("core.schedules",)) != base
    monkeypatch.setattr(torch, "__version__", "0.0.1")
    assert cache.config_key(config) != base
    with pytest.raises(ValueError, match="device"):
        cache.config_key(config, device="gpu")


def test_source_digest_ignores_docstrings_and_comments_not_code() -> None:
    code = '''"""Module doc."""
import math


def area(r):
    """Area of a circle."""
    return math.pi * r ** 2  # pi r^2


class Box:
    """A box."""

    def size(self):
        """Nothing."""
'''
    edited_docs = code.replace("Area of a circle.", "The area, pi r^2, of a disc.").replace('"""Module doc."""', "")
    edited_docs = edited_docs.replace("# pi r^2", "# changed comment\n    # another") + "\n# trailing comment\n"
    assert cache.source_digest(edited_docs) == cache.source_digest(code)
    assert cache.source_digest(code.replace("r ** 2", "r * r")) != cache.source_digest(code)
    assert cache.source_digest(code.replace('return math.pi', 'return 3.0')) != cache.source_digest(code)
    # a string that is not a docstring is code
    assert cache.source_digest(code.replace("return math.pi", "'x'\n    return math.pi")) != cache.source_digest(code)


def test_module_names_are_checked() -> None:
    for name in cache.SOURCE_MODULES:
        assert cache.module_path(name).is_file()
    assert cache.module_path("lab").name == "__init__.py"
    with pytest.raises(ValueError, match="vsmlab.core.schedule'"):
        cache.config_key({}, modules=("core.schedule",))  # misspelled
    with pytest.raises(ValueError, match="dotted names"):
        cache.config_key({}, modules=("core/schedules.py",))
    with pytest.raises(TypeError, match="sequence"):
        cache.config_key({}, modules="core.schedules")


def test_cache_dir_defaults_to_a_user_folder(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("VSMLAB_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache.cache_dir() == tmp_path / "xdg" / "vsmlab"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache.cache_dir() == tmp_path / "home" / ".cache" / "vsmlab"
    monkeypatch.setenv("VSMLAB_CACHE_DIR", str(tmp_path / "explicit"))
    assert cache.cache_dir() == tmp_path / "explicit"


def test_no_cache_env_recomputes(monkeypatch: pytest.MonkeyPatch) -> None:
    compute, calls = counted({"v": math.e})
    cache.load_or_compute({"k": 1}, compute)
    monkeypatch.setenv("VSMLAB_NO_CACHE", "1")
    cache.load_or_compute({"k": 1}, compute)
    assert len(calls) == 2
    monkeypatch.delenv("VSMLAB_NO_CACHE")
    cache.load_or_compute({"k": 1}, compute)
    assert len(calls) == 2


def test_map_location_follows_the_device(cache_in_tmp: Path) -> None:
    compute, calls = counted({"t": torch.ones(2)})
    cache.load_or_compute({"k": "dev"}, compute, device=torch.device("cpu"))
    out = cache.load_or_compute({"k": "dev"}, compute, device="cpu")
    assert len(calls) == 1 and out["t"].device.type == "cpu"
    assert os.path.basename(next(iter(cache_in_tmp.glob("*.pt")))).endswith(".pt")


def test_mitigation_evaluation_is_a_real_cache_hit(monkeypatch: pytest.MonkeyPatch) -> None:
    from vsmlab.lab import mitigations

    calls = []
    real = mitigations._compute

    def spy(*args):
        calls.append(1)
        return real(*args)

    monkeypatch.setattr(mitigations, "_compute", spy)
    ev = dict(n_samples=200, n_reference=200, score_n=100, score_ts=[0, 5], lipschitz_ts=[0], lipschitz_grid=51,
              keep_samples=50, sw_projections=8)
    first = mitigations.evaluate(TINY, ev)
    second = mitigations.evaluate(TINY, ev)
    assert len(calls) == 1  # its real result (numbers, None, lists, tensors) loads with weights_only=True
    assert sorted(first) == sorted(second)
    for key, value in first.items():
        assert torch.equal(value, second[key]) if isinstance(value, torch.Tensor) else value == second[key], key
