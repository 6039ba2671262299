"""Shared pytest fixtures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
TESTS_DATA = REPO / "tests" / "data"

if os.environ.get("PYTEST_XDIST_WORKER"):
    # one torch thread per xdist worker (and per process it starts): N workers on N cores,
    # not N x N threads, which made the suite twice as slow on 2 cores
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark ``cuda`` every test skipped with "needs CUDA" (``pytest -m cuda`` selects them)."""
    for item in items:
        for mark in item.iter_markers("skipif"):
            if "needs CUDA" in str(mark.kwargs.get("reason", "")):
                item.add_marker(pytest.mark.cuda)
                break


def _torchgeo_fixtures() -> Path:
    env = os.environ.get("RSMM_TORCHGEO_FIXTURES")
    return Path(env) if env else REPO.parent / "shared" / "fixtures" / "torchgeo"


@pytest.fixture(scope="session")
def torchgeo_fixtures() -> Path:
    """TorchGeo's own test fixtures (``../shared/fixtures/torchgeo`` beside the repo).

    Set ``RSMM_TORCHGEO_FIXTURES`` to use another copy. Missing fixtures fail the run
    under CI and skip the test elsewhere.
    """
    path = _torchgeo_fixtures()
    if not path.is_dir():
        msg = f"TorchGeo fixtures not found at {path} (set RSMM_TORCHGEO_FIXTURES)"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    return path


@pytest.fixture(autouse=True)
def _seed_and_threads() -> None:
    torch.manual_seed(0)
