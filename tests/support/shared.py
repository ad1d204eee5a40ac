"""The team's shared test data: beside the checkout (../shared), inside it, or at DIZUO_SHARED_DIR."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SHARED = next(
    (
        p
        for p in (
            Path(os.environ.get("DIZUO_SHARED_DIR", "/nonexistent")),
            REPO / "shared",
            REPO.parent / "shared",
        )
        if (p / "data").is_dir()
    ),
    None,
)
DATA = (SHARED or REPO) / "data"
needs_shared = pytest.mark.skipif(
    SHARED is None, reason="../shared (the team's test data) is not beside this checkout"
)
