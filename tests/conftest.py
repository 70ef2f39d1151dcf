"""Shared fixtures. Torch threads come from VSMLAB_TEST_THREADS (default 2: the lab's 2-core budget)."""

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


def pytest_collection_modifyitems(config, items):
    """Tests marked ``cuda`` run only where a CUDA GPU exists; elsewhere they are skipped with a reason."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="no CUDA GPU on this machine")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)
