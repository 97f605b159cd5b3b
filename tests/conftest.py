"""Shared fixtures: tiny in-process models, the real data root."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = (REPO / ".." / "shared" / "data").resolve()


@pytest.fixture(scope="session")
def data_dir() -> Path:
    root = Path(os.environ.get("TRANSFERGRID_DATA", SHARED_DATA))
    if not root.is_dir():
        pytest.skip(f"benchmark data not found at {root}")
    return root


@pytest.fixture(scope="session")
def tiny():
    """(model, tokenizer): a 2-layer random Llama with a real byte-level BPE tokenizer."""
    from transfergrid.testing import tiny_model

    return tiny_model()
