"""KITTI stereo pairs and resized copies of sequence folders (half-resolution evaluation): ROS-free."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from r2d2_ros.sequences import load_sequence, load_stereo_pair, write_resized_sequence

P0 = np.array([[707.0912, 0, 601.8873, 0], [0, 707.0912, 183.1104, 0], [0, 0, 1, 0]])
P1 = P0 + np.array([[0, 0, 0, -379.8145], [0, 0, 0, 0], [0, 0, 0, 0]])


def _kitti(root: Path, frames: int = 3, size: tuple[int, int] = (61, 31), labels: bool = True) -> Path:
    (root / "image").mkdir(parents=True)
    for index in range(frames):
        cv2.imwrite(str(root / "image" / f"{index:06d}.png"), np.full(size[::-1], 10 * index, np.uint8))
    lines = [("P0: " if labels else "") + " ".join(f"{v:.6e}" for v in P0.ravel()),
             ("P1: " if labels else "") + " ".join(f"{v:.6e}" for v in P1.ravel())]
    (root / "calib.txt").write_text("\n".join(lines) + "\n")
    np.savetxt(root / "poses.txt", np.tile(np.eye(3, 4).ravel(), (frames, 1)))
    return root


def test_a_stereo_pair_takes_the_right_camera_from_the_second_projection(tmp_path: Path) -> None:
    left, right = load_stereo_pair(_kitti(tmp_path / "left"), _kitti(tmp_path / "right", labels=False))
    np.testing.assert_allclose(left.calibration.P, P0, rtol=1e-6)
    np.testing.assert_allclose(right.calibration.P, P1, rtol=1e-6)
    assert load_sequence(tmp_path / "right").calibration.P[0, 3] == 0, "alone, a folder is its first camera"
    _kitti(tmp_path / "short", frames=2)
    with pytest.raises(ValueError, match="not the same frames"):
        load_stereo_pair(tmp_path / "left", tmp_path / "short")
    (tmp_path / "plain").mkdir()
    with pytest.raises(ValueError, match="two KITTI folders"):
        load_stereo_pair(tmp_path / "left", tmp_path / "plain")


def test_a_resized_kitti_copy_keeps_the_pixels_of_the_same_points(tmp_path: Path) -> None:
    """Pixel centres at integers: x' = (x + 0.5) * s - 0.5, with each axis' own ratio of the rounded size."""
    copy = load_sequence(write_resized_sequence(_kitti(tmp_path / "left", size=(61, 31)), tmp_path / "half", 0.5))
    width, height = 30, 16  # round(30.5) = 30 (to even), round(15.5) = 16
    assert (copy.calibration.width, copy.calibration.height) == (width, height)
    sx, sy = width / 61, height / 31
    expected = np.diag([sx, sy, 1.0]) @ P0 + np.outer([0.5 * sx - 0.5, 0.5 * sy - 0.5, 0], P0[2])
    np.testing.assert_allclose(copy.calibration.P, expected, rtol=1e-9)
    np.testing.assert_array_equal(copy.poses, load_sequence(tmp_path / "left").poses)
    assert [f.name for f in copy.frames] == ["000000.png", "000001.png", "000002.png"]
    assert cv2.imread(str(copy.frames[2]), cv2.IMREAD_UNCHANGED)[0, 0] == 20, "the image content, not a blank"
    pair = load_stereo_pair(tmp_path / "half", write_resized_sequence(_kitti(tmp_path / "right"), tmp_path / "rhalf",
                                                                      0.5))
    assert pair[1].calibration.P[0, 3] == pytest.approx(P1[0, 3] * sx), "the baseline term scales with fx"


def test_a_resized_euroc_copy(tmp_path: Path) -> None:
    root = tmp_path / "euroc"
    (root / "data").mkdir(parents=True)
    stamps = [1403715273262142976, 1403715273312143104]
    for stamp in stamps:
        cv2.imwrite(str(root / "data" / f"{stamp}.png"), np.zeros((48, 76), np.uint8))
    (root / "data.csv").write_text("#timestamp [ns],filename\n" + "".join(f"{s},{s}.png\n" for s in stamps))
    (root / "sensor.yaml").write_text("%YAML:1.0\nrate_hz: 20\nresolution: [76, 48]\n"
                                      "intrinsics: [458.654, 457.296, 37.215, 24.375]\n"
                                      "distortion_coefficients: [-0.28, 0.07, 0.0002, 0.00002]\n")
    copy = load_sequence(write_resized_sequence(root, tmp_path / "half", 0.5))
    assert copy.timestamps_ns == stamps and copy.rate_hz == 20
    assert (copy.calibration.width, copy.calibration.height) == (38, 24)
    np.testing.assert_allclose(copy.calibration.K, [[229.327, 0, 18.3575], [0, 228.648, 11.9375], [0, 0, 1]])
    assert copy.calibration.D[:4] == (-0.28, 0.07, 0.0002, 0.00002), "distortion is scale-free"
    assert cv2.imread(str(copy.frames[0]), cv2.IMREAD_UNCHANGED).shape == (24, 38)


def test_resizing_refuses_what_it_cannot_copy(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"scale must be in \(0, 1\]"):
        write_resized_sequence(tmp_path, tmp_path / "out", 2.0)
    with pytest.raises(ValueError, match="neither a KITTI"):
        write_resized_sequence(tmp_path, tmp_path / "out", 0.5)
