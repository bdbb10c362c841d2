"""Packing training photos small for a GPU machine: same names, shrunk never enlarged, bad files reported."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from r2d2_ros.training.data import list_images
from r2d2_ros.training.pack_images import main, pack_image


def _photo(path: Path, height: int, width: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(height * width)
    cv2.imwrite(str(path), rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


def test_photos_keep_their_relative_names_and_order(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source, target = tmp_path / "photos", tmp_path / "packed"
    _photo(source / "b" / "large.jpg", 600, 900)
    _photo(source / "a" / "small.jpg", 100, 80)
    _photo(source / "b" / "tall.jpg", 800, 500)
    (source / "b" / "broken.jpg").write_bytes(b"not a jpeg")

    assert main([str(source), str(target), "--short-side", "300", "--quality", "80"]) == 0

    def relative(folder: Path) -> list[Path]:
        return [p.relative_to(folder) for p in list_images([folder])]

    # The trainer holds out every N-th photo of this sorted list: the same list keeps the same held-out photos.
    assert relative(target) == [p for p in relative(source) if p.name != "broken.jpg"]
    assert cv2.imread(str(target / "b" / "large.jpg")).shape == (300, 450, 3)
    assert cv2.imread(str(target / "b" / "tall.jpg")).shape == (480, 300, 3)
    assert cv2.imread(str(target / "a" / "small.jpg")).shape == (100, 80, 3)  # never enlarged
    output = capsys.readouterr()
    assert "broken.jpg: not a readable image" in output.err
    assert "3 photos" in output.out and "1 unreadable skipped" in output.out


def test_a_smaller_quality_writes_fewer_bytes(tmp_path: Path) -> None:
    _photo(tmp_path / "photo.png", 400, 400)
    high = pack_image(tmp_path / "photo.png", tmp_path / "high.jpg", 400, 95)
    low = pack_image(tmp_path / "photo.png", tmp_path / "low.jpg", 400, 50)
    assert low < high == (tmp_path / "high.jpg").stat().st_size
