"""Camera sequences on disk: plain image folders, EuRoC (cam0) and KITTI odometry layouts.

Shared by the replay player (publishing them as a camera), the bag recorder (r2d2_ros.bags) and
the visual-odometry check.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import yaml

from .image_io import IMAGE_SUFFIXES

__all__ = ["CameraCalibration", "Sequence", "load_sequence"]


@dataclass(frozen=True)
class CameraCalibration:
    """Pinhole intrinsics of the sequence's camera, as sensor_msgs/CameraInfo wants them."""

    width: int
    height: int
    K: np.ndarray  # (3, 3)
    D: tuple[float, ...] = ()
    distortion_model: str = "plumb_bob"
    P: np.ndarray | None = None  # (3, 4); K with a zero column when None

    def resized(self, width: int, height: int) -> CameraCalibration:
        """The calibration of the same camera with its images resized to ``width`` x ``height``."""
        scale = np.diag([width / self.width, height / self.height, 1.0])
        return replace(self, width=width, height=height, K=scale @ self.K,
                       P=None if self.P is None else scale @ self.P)

    def camera_info_fields(self) -> dict[str, Any]:
        """The sensor_msgs/CameraInfo fields this calibration gives (k, d, r, p as lists of floats)."""
        projection = self.P if self.P is not None else np.hstack([self.K, np.zeros((3, 1))])
        return {"k": [float(v) for v in self.K.reshape(-1)], "d": [float(v) for v in self.D],
                "distortion_model": self.distortion_model, "r": [float(v) for v in np.eye(3).reshape(-1)],
                "p": [float(v) for v in projection.reshape(-1)]}


@dataclass
class Sequence:
    """Frames in order, with their timestamps (ns) and, where the layout has them, calibration and poses."""

    name: str
    frames: list[Path]
    timestamps_ns: list[int] | None = None
    calibration: CameraCalibration | None = None
    poses: np.ndarray | None = None  # (N, 3, 4) camera-to-world, KITTI convention
    rate_hz: float | None = field(default=None)

    def times_ns(self) -> list[int]:
        """Each frame's time: the recorded timestamp, else its index over the rate (10 Hz when unknown)."""
        if self.timestamps_ns is not None:
            return list(self.timestamps_ns)
        period_ns = round(1e9 / (self.rate_hz or 10.0))
        return [index * period_ns for index in range(len(self.frames))]


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def _load_euroc(folder: Path) -> Sequence:
    frames, stamps = [], []
    for line in (folder / "data.csv").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            stamp, name = (part.strip() for part in line.split(",")[:2])
            frames.append(folder / "data" / name)
            stamps.append(int(stamp))
    calibration = None
    sensor = folder / "sensor.yaml"
    if sensor.exists():
        # EuRoC files start with an OpenCV '%YAML:1.0' directive that PyYAML does not accept.
        text = "\n".join(line for line in sensor.read_text().splitlines() if not line.startswith("%YAML"))
        info = yaml.safe_load(text)
        fu, fv, cu, cv = info["intrinsics"]
        width, height = info["resolution"]
        calibration = CameraCalibration(
            width, height, np.array([[fu, 0, cu], [0, fv, cv], [0, 0, 1]], float),
            tuple(float(c) for c in info.get("distortion_coefficients", [])) + (0.0,), "plumb_bob",
        )
        return Sequence(folder.name, frames, stamps, calibration, rate_hz=float(info.get("rate_hz", 20)))
    return Sequence(folder.name, frames, stamps)


def _load_kitti(folder: Path) -> Sequence:
    frames = _images_in(folder / "image")
    # First line: the left camera's 3x4 projection, with or without a 'P0:' label.
    tokens = [v for v in (folder / "calib.txt").read_text().split() if not v.endswith(":")]
    projection = np.array([float(v) for v in tokens[:12]]).reshape(3, 4)
    first = cv2.imread(os.fspath(frames[0]), cv2.IMREAD_UNCHANGED)
    height, width = first.shape[:2]
    calibration = CameraCalibration(width, height, projection[:, :3].copy(), (0.0,) * 5, "plumb_bob", projection)
    poses = None
    if (folder / "poses.txt").exists():
        poses = np.loadtxt(folder / "poses.txt").reshape(-1, 3, 4)
    return Sequence(folder.name, frames, None, calibration, poses, rate_hz=10.0)


def load_sequence(path: str | os.PathLike[str]) -> Sequence:
    """Reads a sequence folder: EuRoC (data.csv), KITTI (image/ + calib.txt), or a folder of images.

    Raises:
        ValueError: the folder is missing or holds no images.
    """
    folder = Path(path)
    if not folder.is_dir():
        raise ValueError(f"{folder}: not a folder")
    if (folder / "data.csv").exists():
        sequence = _load_euroc(folder)
    elif (folder / "image").is_dir() and (folder / "calib.txt").exists():
        sequence = _load_kitti(folder)
    else:
        sequence = Sequence(folder.name, _images_in(folder))
    if not sequence.frames:
        raise ValueError(f"{folder}: no images found")
    return sequence
