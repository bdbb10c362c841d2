"""Shared fixtures: the read-only ../shared material and small synthetic images."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
REFERENCE = SHARED / "reference"
DATA = SHARED / "data"

torch.set_num_threads(2)


def _require(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"{path} is absent: the reference/data material lives in ../shared beside the repo")
    return path


@pytest.fixture(scope="session")
def reference() -> Path:
    """../shared/reference (original checkpoints, images and outputs); skips when absent."""
    return _require(REFERENCE)


@pytest.fixture(scope="session")
def data() -> Path:
    """../shared/data (training, evaluation and sequence images); skips when absent."""
    return _require(DATA)


@pytest.fixture
def textured_image() -> np.ndarray:
    """A small (120, 160, 3) uint8 image with corners and blobs, deterministic."""
    rng = np.random.default_rng(0)
    image = np.zeros((120, 160, 3), np.uint8)
    for _ in range(40):
        y, x = rng.integers(0, 110), rng.integers(0, 150)
        image[y : y + rng.integers(4, 20), x : x + rng.integers(4, 20)] = rng.integers(0, 256, 3)
    return image
