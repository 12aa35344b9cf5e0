"""Shared test fixtures. Tests run offline on tiny models and tiny data that they write themselves.

Tests that read real benchmark files use the ``shared_data`` fixture, which skips cleanly when ../shared
(beside the project root) is absent, as in a user's fresh clone.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("XLTUNE_SHARED", ROOT.parent / "shared"))

torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data, or skip the test when it is not there."""
    path = SHARED / "data"
    if not path.is_dir():
        pytest.skip(f"real benchmark data not found at {path}")
    return path
