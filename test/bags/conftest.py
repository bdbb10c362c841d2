"""Bags recorded from the EuRoC frames in ../shared/data (small and few, so that the network is quick on CPU)."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from r2d2_ros.bags import write_sequence_bag
from r2d2_ros.sequences import Sequence, load_sequence

FRAMES = 4
SIZE = (160, 100)  # width, height: EuRoC's 752x480 scaled down
TOPIC = "/cam0/image"

# Single scale, thresholds off, few keypoints: every frame gives keypoints fast on CPU.
FAST_EXTRACTION = ["--device", "cpu", "--min-scale", "1", "--min-size", "0", "--top-k", "60",
                   "--reliability-threshold", "0", "--repeatability-threshold", "0"]


@pytest.fixture(scope="session")
def euroc(data: Path) -> Sequence:
    return load_sequence(data / "sequences" / "euroc_v1_01_cam0")


@pytest.fixture
def make_bag(euroc: Sequence, tmp_path: Path) -> Callable[..., Path]:
    """make_bag(storage, compressed=False, name=None) -> a bag of the first EuRoC frames on /cam0/image."""
    def make(storage: str, compressed: bool = False, name: str | None = None) -> Path:
        path = tmp_path / (name or f"euroc_{storage}_{'compressed' if compressed else 'raw'}")
        write_sequence_bag(euroc, path, TOPIC, storage=storage, compressed=compressed, size=SIZE, count=FRAMES)
        return path
    return make
