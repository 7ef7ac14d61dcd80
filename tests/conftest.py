"""Shared fixtures. Tests needing ../shared/data skip (with the reason) when it is absent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("FINEXTRACT_SHARED", REPO.parent / "shared")) / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data not found at {SHARED_DATA} (set FINEXTRACT_SHARED to the shared folder that holds data/)")
    return SHARED_DATA


@pytest.fixture(autouse=True, scope="session")
def _limit_threads():
    """Two xdist workers on two cores: one thread each avoids oversubscription."""
    try:
        import torch

        if os.environ.get("PYTEST_XDIST_WORKER"):
            torch.set_num_threads(1)
    except ImportError:
        pass
    yield
