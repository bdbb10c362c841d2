"""Shared fixtures: the read-only ../shared material and small synthetic images."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from r2d2_ros.model import save_checkpoint
from r2d2_ros.model.nets import Quad_L2Net_ConfCFS

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


def rectangles_image(height: int, width: int, count: int, sides: tuple[int, int] = (4, 20), seed: int = 0
                     ) -> np.ndarray:
    """(height, width, 3) uint8: ``count`` random coloured rectangles (corners and blobs) on black."""
    rng = np.random.default_rng(seed)
    image = np.zeros((height, width, 3), np.uint8)
    for _ in range(count):
        y, x = rng.integers(0, height - 10), rng.integers(0, width - 10)
        image[y : y + rng.integers(*sides), x : x + rng.integers(*sides)] = rng.integers(0, 256, 3)
    return image


@pytest.fixture
def textured_image() -> np.ndarray:
    """A small (120, 160, 3) uint8 image with corners and blobs, deterministic."""
    return rectangles_image(120, 160, 40)


@pytest.fixture(scope="session")
def random_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small-input-friendly N16 checkpoint with fixed random weights (fast on CPU)."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("model") / "random_n16.pt"
    save_checkpoint(path, Quad_L2Net_ConfCFS())
    return path
