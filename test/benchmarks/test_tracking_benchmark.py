"""benchmarks/tracking.py runs every row it offers (tiny frames, one repeat: seconds); its figures are not checked."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np

from ..conftest import REPO, rectangles_image


def test_every_tracking_row_is_printed(tmp_path: Path) -> None:
    scene = rectangles_image(120, 170, 60, seed=4)
    (tmp_path / "image").mkdir()
    for index in range(2):
        cv2.imwrite(str(tmp_path / "image" / f"{index:06d}.png"), scene[:, 3 * index : 3 * index + 160])
    (tmp_path / "calib.txt").write_text("P0: 150 0 80 0 0 150 60 0 0 0 1 0\n")
    result = subprocess.run([sys.executable, "benchmarks/tracking.py", "--sequence", str(tmp_path), "--top-k", "300", "--max-points", "100", "--guided-radius", "5",
                             "--flow", "--repeats", "1"], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    rows = [line.split(" | ") for line in result.stdout.splitlines() if line.startswith("| ")][1:]  # after the header
    expected = ["| extraction", "| matching + verification", "| matching + verification + guided search (5 px",
                "| two updates keeping 100 points", "| two flow-tracker updates keeping 100 points ("]
    assert len(rows) == len(expected) and all(row[0].startswith(label) for row, label in zip(rows, expected)), \
        result.stdout
    assert all(np.isfinite(float(row[1])) for row in rows), result.stdout
    carried = int(rows[-1][0].split("(")[1].split()[0])
    assert carried > 50, "the bundled model's points on a 3 px pan are carried: the flow row timed real work"
