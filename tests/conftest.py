"""Shared fixtures and helpers. Torch threads come from VSMLAB_TEST_THREADS (default 2: the lab's 2-core budget).

Tiers: ``pytest -q -m "not slow"`` is the fast tier for the edit loop; tests marked ``notebook`` or ``browser``
are slow too (added here), so the fast tier skips them. The README's command runs everything.

Helpers (import them with ``from conftest import ...``): :func:`outputs_text` joins an executed notebook's
outputs; :func:`cli` runs the real ``vsmlab`` entry point (``vsmlab.cli.main``) and returns its exit code; :func:`assert_same` compares nested checkpoints exactly."""

from __future__ import annotations

import os

import pytest
import torch

import vsmlab

torch.set_num_threads(int(os.environ.get("VSMLAB_TEST_THREADS", "2")))


@pytest.fixture
def aggressive() -> vsmlab.Schedule:
    """The mode-interpolation work's schedule: T = 1000, linear betas 1e-3 .. 0.2."""
    return vsmlab.linear(1000, 1e-3, 0.2)


@pytest.fixture
def mix1d() -> vsmlab.GaussianMixture:
    """The default 1-D mixture: modes {1, 2, 3}, std 0.05, equal weights."""
    return vsmlab.evenly_spaced_1d()


def cli(*argv: object) -> int:
    """Exit code of ``vsmlab ARGV`` run in-process through the real entry point (``vsmlab.cli.main``)."""
    from vsmlab.cli import main

    return main([str(a) for a in argv])


def assert_same(a, b, where: str = "") -> None:
    """Recursive equality: torch.equal (and the same dtype) on tensors, == on everything else."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert isinstance(b, dict) and set(a) == set(b), f"{where}: keys {sorted(a)} vs {sorted(b)}"
        for k in a:
            assert_same(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert isinstance(b, (list, tuple)) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{where}[{i}]")
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def outputs_text(notebook: dict) -> str:
    """Every output text of an executed notebook (a json-loaded .ipynb): streams and text/plain, joined."""
    parts = []
    for cell in notebook["cells"]:
        for out in cell.get("outputs", []):
            text = out.get("text") or out.get("data", {}).get("text/plain", "")
            parts.append(text if isinstance(text, str) else "".join(text))
    return "\n".join(parts)


def pytest_collection_modifyitems(config, items):
    """``notebook`` and ``browser`` tests are ``slow`` too (the fast tier skips them); tests marked ``cuda`` run
    only where a CUDA GPU exists, elsewhere they are skipped with a reason."""
    for item in items:
        if "notebook" in item.keywords or "browser" in item.keywords:
            item.add_marker(pytest.mark.slow)
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="no CUDA GPU on this machine")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)
