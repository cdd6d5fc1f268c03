"""Fixtures shared by every test module: paths to the shared data and the default model."""
from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = ROOT.parent / "shared" / "data"
CONFIGS = ROOT / "configs"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The labelled data beside the checkout; tests that read it skip, saying why, without it."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data folder {SHARED_DATA} is absent")
    return SHARED_DATA
